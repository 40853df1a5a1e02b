/* anode.c: the hiredis connections of a lash_aconn (see aconn.h). */
#include <hiredis/adapters/libev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "registry/aconn.h"
#include "registry/conn.h"
#include "registry/reply.h"
#include "registry/resp.h"

static void node_setup_timeout(struct ev_loop *loop, ev_timer *w, int revents);

/* hiredis has let go of nd's context (or is about to, after the callbacks). */
static void node_gone(lash_anode *nd)
{
    lash_aconn *c = nd->c;
    nd->ac = NULL;
    nd->state = LASH_NODE_GONE;
    nd->retry_at = lash_amono_ms() + LASH_ARETRY_MS;
    ev_timer_stop(c->t->loop, &nd->tmo);
    if (nd == c->asking) c->asking = NULL;
    if (nd->kind == LASH_NODE_DATA && c->state == LASH_ACONN_UP) {
        if (nd == c->anchor && (c->sub || c->t->mode != LASH_TOPO_CLUSTER)) {
            c->down_due = true;
            if (!c->down_why.msg[0])
                lash_fail(&c->down_why, LASH_EIO, "Redis at %s: %s", c->where,
                          c->last.msg[0] ? c->last.msg : "connection lost");
        } else {
            c->want_refresh = true; /* a Cluster node went away: who serves its slots now? */
        }
    }
    lash_akick(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    lash_anode *nd = ac->data;
    if (!nd) return;
    if (status != REDIS_OK) {
        lash_fail(&nd->c->last, LASH_EIO, "%s", ac->errstr[0] ? ac->errstr : "cannot connect");
        node_gone(nd); /* hiredis frees ac after this callback and the NULL replies */
        return;
    }
    nd->connected = true;
}

/* What Redis wrote before closing a connection it refuses (protected mode's
 * DENIED, maxclients): its error line, still in the socket when hiredis gives
 * up on a failed write (the connection closed under our setup commands) before
 * it read it. false when there is none. */
static bool said_on_close(const redisAsyncContext *ac, char *out, size_t len)
{
    char buf[512];
    ssize_t n = recv(ac->c.fd, buf, sizeof buf - 1, MSG_DONTWAIT);
    if (n < 2 || buf[0] != '-') return false;
    buf[n] = 0;
    size_t k = strcspn(buf + 1, "\r\n");
    if (k >= len) k = len - 1;
    memcpy(out, buf + 1, k);
    out[k] = 0;
    return true;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    lash_anode *nd = ac->data;
    if (!nd) return;
    /* hiredis 0.14 drops a subscribed connection that gets an error reply, with
     * the error as errstr: MOVED to an SSUBSCRIBE (async.h). */
    if (status != REDIS_OK && nd->c->sub && nd == nd->c->anchor && nd->state == LASH_NODE_UP &&
        strncmp(ac->errstr, "MOVED ", 6) == 0)
        lash_asub_left(nd, ac->errstr, strlen(ac->errstr));
    char said[300];
    if (!nd->setup_failed && nd->kind == LASH_NODE_DATA) {
        if (status != REDIS_OK && nd->state == LASH_NODE_SETUP &&
            said_on_close(ac, said, sizeof said))
            lash_fail(&nd->c->last, LASH_EREDIS, "Redis refused the connection: %s", said);
        else
            lash_fail(&nd->c->last, LASH_EIO, "%s",
                      status == REDIS_OK ? "disconnected" : (ac->errstr[0] ? ac->errstr : "lost"));
    }
    node_gone(nd);
}

/* Gives up on nd now (a setup that failed or took too long). Not from inside one
 * of nd's own callbacks: use redisAsyncDisconnect there. */
static void node_abort(lash_anode *nd)
{
    if (!nd->ac) return;
    redisAsyncContext *ac = nd->ac;
    nd->connected = false; /* its setup never finished: nothing behind it has run */
    redisAsyncFree(ac);    /* runs the NULL replies; on_disconnect only if connected */
    if (nd->state != LASH_NODE_GONE) node_gone(nd);
}

lash_anode *lash_anode_new(lash_aconn *c, lash_anode_kind kind, const lash_url_host *at, bool seed)
{
    lash_anode *nd = calloc(1, sizeof *nd);
    if (!nd) return NULL;
    nd->c = c;
    nd->kind = kind;
    nd->seed = seed;
    if (at) nd->at = *at;
    ev_timer_init(&nd->tmo, node_setup_timeout, 0, 0);
    nd->tmo.data = nd;
    nd->next = c->nodes;
    c->nodes = nd;
    return nd;
}

/* Opens (or re-opens) nd's hiredis context. false when it could not even start. */
bool lash_anode_dial(lash_anode *nd, int setup_ms)
{
    lash_aconn *c = nd->c;
    const lash_url *u = &c->t->url;
    redisAsyncContext *ac = nd->seed && u->path[0] ? redisAsyncConnectUnix(u->path)
                                                   : redisAsyncConnect(nd->at.host, nd->at.port);
    if (!ac || ac->err) {
        lash_fail(&c->last, LASH_EIO, "%s", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        nd->state = LASH_NODE_GONE;
        nd->retry_at = lash_amono_ms() + LASH_ARETRY_MS;
        return false;
    }
    lash_fd_cloexec(ac->c.fd);
    lash_resp_adopt(ac->c.reader);
    nd->ac = ac;
    nd->state = LASH_NODE_SETUP;
    nd->connected = false;
    nd->setup_failed = false;
    nd->setup_left = 0;
    ac->data = nd;
    redisLibevAttach(c->t->loop, ac);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    ev_timer_set(&nd->tmo, (double)setup_ms / 1000.0, 0);
    ev_timer_start(c->t->loop, &nd->tmo);
    return true;
}

static void setup_done(lash_anode *nd)
{
    ev_timer_stop(nd->c->t->loop, &nd->tmo);
    nd->state = LASH_NODE_UP;
    lash_atopo *t = nd->c->t;
    if (nd->kind == LASH_NODE_DATA && !nd->seed && t->mode == LASH_TOPO_CLUSTER) {
        int i = lash_slotmap_node(&t->map, nd->at.host, nd->at.port);
        if (i >= 0) t->hint = i;
    }
    lash_akick(nd->c);
}

/* A setup step failed: why, and drop the connection. */
static void setup_failed(redisAsyncContext *ac, lash_anode *nd, const char *fmt, const char *arg)
{
    char why[300];
    snprintf(why, sizeof why, fmt, arg);
    lash_fail(&nd->c->last, LASH_EREDIS, "%s", why);
    ev_timer_stop(nd->c->t->loop, &nd->tmo);
    nd->setup_failed = true;
    nd->connected = false; /* what is queued behind the setup must not run: park it */
    redisAsyncFree(ac);    /* (deferred by hiredis until this callback returns) */
}

static void on_setup(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    redisReply *r = r_;
    lash_anode *nd = ac->data;
    if (!nd || nd->state != LASH_NODE_SETUP) return;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        lash_err re;
        if (r) lash_reply_check(r, "setup", &re);
        if (r) setup_failed(ac, nd, "%s", re.msg);
        return; /* NULL: the connection is going; on_connect/on_disconnect say why */
    }
    if (--nd->setup_left == 0) setup_done(nd);
}

/* HELLO on the first connection of a redis:// URL (mode) and under Sentinel
 * (role). An error reply of Redis < 6 (unknown command) or of a user without
 * HELLO (NOPERM) tells nothing; any other is why the setup failed: Redis in
 * protected mode answers the first command (HELLO when there is no password)
 * with DENIED and closes. */
static void on_hello(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    redisReply *r = r_;
    lash_anode *nd = ac->data;
    if (!nd || nd->state != LASH_NODE_SETUP || !r) return;
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "ERR unknown command", 19) != 0 &&
        strncmp(r->str, "NOPERM", 6) != 0) {
        on_setup(ac, r, priv);
        return;
    }
    lash_atopo *t = nd->c->t;
    lash_node_info info;
    if (r->type != REDIS_REPLY_ERROR && !lash_hello_parse(r, &info, NULL)) {
        if (info.sentinel) {
            setup_failed(ac, nd,
                         "%s is a Sentinel, not a Redis server: name the primary with "
                         "redis-sentinel://host:port[,host:port...]#<master-name>",
                         nd->c->where);
            return;
        }
        if (nd->check_role && !info.primary) {
            setup_failed(ac, nd, "%s, named by the Sentinels, is not a primary (yet)", nd->at.host);
            return;
        }
        if (t->mode == LASH_TOPO_SINGLE && info.mode == LASH_TOPO_CLUSTER) {
            if (t->url.db) {
                setup_failed(ac, nd, "Redis Cluster has only database 0%s", "");
                return;
            }
            t->mode = LASH_TOPO_CLUSTER;
            nd->c->want_refresh = true;
        }
    }
    if (--nd->setup_left == 0) setup_done(nd);
}

static void node_setup_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    lash_anode *nd = w->data;
    lash_fail(&nd->c->last, LASH_EIO, "no answer within %d ms",
              nd->kind == LASH_NODE_DATA ? LASH_ASETUP_MS : LASH_ASENTINEL_SETUP_MS);
    node_abort(nd);
}

/* Queues the setup of a Redis node: AUTH, SELECT, HELLO when needed, PING.
 * Commands queued after it run after it. */
void lash_anode_setup(lash_anode *nd, bool hello)
{
    lash_aconn *c = nd->c;
    const lash_url *u = &c->t->url;
    redisAsyncContext *ac = nd->ac;
    const char *pw = lash_url_password(u);
    if (pw[0]) {
        nd->setup_left++;
        if (u->user[0])
            redisAsyncCommandArgv(ac, on_setup, NULL, 3, (const char *[]){"AUTH", u->user, pw},
                                  NULL);
        else
            redisAsyncCommandArgv(ac, on_setup, NULL, 2, (const char *[]){"AUTH", pw}, NULL);
    }
    if (u->db && c->t->mode != LASH_TOPO_CLUSTER) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        nd->setup_left++;
        redisAsyncCommandArgv(ac, on_setup, NULL, 2, (const char *[]){"SELECT", db}, NULL);
    }
    if (hello) {
        nd->setup_left++;
        redisAsyncCommand(ac, on_hello, NULL, "HELLO 2");
    }
    /* Before anything big: Redis cuts an unauthenticated client that sends a
     * long argument (the scripts) with a protocol error, where a PING gets the
     * NOAUTH that says what is wrong. */
    nd->setup_left++;
    redisAsyncCommand(ac, on_setup, NULL, "PING");
    /* No SCRIPT LOAD: calls go by FCALL, and without the library (or with
     * another version) a call falls back to EVALSHA, then on NOSCRIPT to EVAL,
     * which leaves the script cached for the EVALSHAs after it (argv.h). Loading
     * every script here, as this did before, cost Redis ~5 ms of CPU per
     * connection (17 compiles of lib.lua and an operation), for scripts that
     * FCALL never needs: a fleet reconnecting after a failover paid it all at
     * once. A fallback re-send goes behind what is already queued, so a claim
     * may overtake an earlier complete: harmless. */
}

/* A data node for a Cluster address, dialed if it is not open (and was not
 * given up on a moment ago). NULL: none now. */
lash_anode *lash_anode_data(lash_aconn *c, const lash_url_host *at)
{
    lash_anode *nd = c->nodes;
    for (; nd; nd = nd->next)
        if (nd->kind == LASH_NODE_DATA && !nd->seed && nd->at.port == at->port &&
            strcmp(nd->at.host, at->host) == 0)
            break;
    if (nd && nd->state != LASH_NODE_GONE) return nd;
    if (nd && lash_amono_ms() < nd->retry_at) return NULL;
    if (!nd && !(nd = lash_anode_new(c, LASH_NODE_DATA, at, false))) return NULL;
    if (!lash_anode_dial(nd, LASH_ASETUP_MS)) return NULL;
    lash_anode_setup(nd, false);
    return nd;
}

static void sentinel_auth(lash_anode *nd)
{
    const char *pw = getenv("LASH_SENTINEL_PASSWORD"), *user = getenv("LASH_SENTINEL_USER");
    if (!pw || !*pw) return;
    if (user && *user)
        redisAsyncCommandArgv(nd->ac, NULL, NULL, 3, (const char *[]){"AUTH", user, pw}, NULL);
    else
        redisAsyncCommandArgv(nd->ac, NULL, NULL, 2, (const char *[]){"AUTH", pw}, NULL);
}

lash_anode *lash_anode_sentinel(lash_aconn *c, lash_anode_kind kind, int idx)
{
    lash_anode *nd = lash_anode_new(c, kind, &c->t->url.sentinels[idx], false);
    if (!nd) return NULL;
    nd->idx = idx;
    if (!lash_anode_dial(nd, LASH_ASENTINEL_SETUP_MS)) return NULL;
    sentinel_auth(nd);
    return nd;
}
