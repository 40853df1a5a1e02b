/* async.c: the registry on libev, routed (see async.h, route.h).
 *
 * A lash_aconn owns hiredis connections ("nodes"): Redis servers it sends to,
 * and, under Sentinel, the Sentinels it asks and the one it listens to for
 * +switch-master. hiredis calls back with the node (ac->data); a node struct
 * outlives its hiredis context (it stays as a tombstone until the lash_aconn
 * is closed), so a callback never meets freed memory. Decisions that need the
 * whole picture (coming up, going down, re-reading the map, sending parked
 * commands) are taken in one timer callback, `tick`, never inside hiredis.
 */
#include "registry/async.h"

#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/slot.h"
#include "registry/argv.h"
#include "registry/conn.h"
#include "registry/reply.h"
#include "registry/route.h"

#define SETUP_MS 5000          /* connect + AUTH + SELECT + HELLO + SCRIPT LOAD */
#define SENTINEL_SETUP_MS 2000 /* a Sentinel that does not answer soon: ask the next */
#define RETRY_MS 100           /* between rounds of candidates / Sentinels; redials */
/* After a failover event, how long new connections go straight to the replica
 * it names: Sentinels that did not lead the failover (and after the switch,
 * those slow to hear of it) still name the old primary for a while. */
#define PROMOTING_MS 5000
#define REFRESH_MS 100 /* at most one CLUSTER SLOTS per this, while needed */
#define PARK_MIN_MS 10 /* a parked command waits this long first, then doubles */
#define PARK_MAX_MS 250
/* A parked command gives up (LASH_EIO) after at most this long, even when
 * failover_ms is longer: well inside any reply timeout of the caller's (the
 * worker's is 10 s), so the caller sees one command fail and sends it again,
 * rather than a silent connection it would tear down as a whole. */
#define PARK_BOUND_MS 4000

struct lash_atopo {
    struct ev_loop *loop;
    lash_url url;
    int failover_ms;     /* how long a connection keeps trying to come up */
    int park_ms;         /* how long a command waits for a route */
    lash_topo_mode mode; /* SINGLE until HELLO (or a MOVED) says otherwise */
    lash_slotmap map;
    int sentinel_next; /* the Sentinel that answered last */
    /* Sentinel: where a failover under way is moving the primary (only the
     * Sentinel leading it knows yet: asking another would name the old one). */
    lash_url_host promoting;
    int64_t promoting_until;
    int hint; /* map node that last came up (-1: none): tried first */
};

typedef enum { N_DATA, N_ASK, N_WATCH } node_kind;
typedef enum { N_SETUP, N_UP, N_GONE } node_state;

typedef struct anode {
    struct lash_aconn *c; /* owner */
    redisAsyncContext *ac;
    node_kind kind;
    node_state state;
    bool connected;    /* the socket connected: what it was given may have run */
    bool setup_failed; /* c->last says why */
    bool seed;         /* dialed from the URL itself (maybe a unix socket) */
    bool check_role;
    int idx; /* Sentinel index (N_ASK, N_WATCH) */
    int setup_left;
    int64_t retry_at; /* GONE: do not dial this address again before */
    lash_url_host at;
    ev_timer tmo;
    struct anode *next;
} anode;

/* A command: kept until answered, so it can be re-sent (NOSCRIPT, redirects). */
typedef struct pending {
    struct lash_aconn *c;
    lash_argv argv;
    int slot;
    size_t n; /* rows, for status replies */
    int retried, redirects, pause_ms;
    int64_t deadline, not_before; /* parked: give up at / not before */
    lash_aclaim_cb *claim_cb;
    lash_astatus_cb *status_cb;
    void *ud;
    struct pending *next;
} pending;

typedef enum { C_OPENING, C_UP, C_DOWN } conn_state;

struct lash_aconn {
    lash_atopo *t;
    lash_aconn_cbs cbs;
    void *ud;
    bool sub; /* a subscriber */
    conn_state state;
    bool up_due, down_due, want_refresh;
    lash_err down_why;
    anode *nodes;
    anode *anchor; /* the node whose coming up makes the connection up */
    anode *asking; /* Sentinel: the query in flight */
    int cand;      /* opening: next candidate address */
    int rr;        /* map refresh: next node to ask when none is open */
    int tries;     /* Sentinel: Sentinels asked this round */
    int busy;      /* inside tick: a close there is finished at its end */
    bool closed;
    int64_t since;   /* opening (or unreachable) since */
    int64_t wait_to; /* opening: next round not before */
    int64_t refresh_at;
    int64_t watch_at[LASH_URL_SENTINELS_MAX]; /* Sentinel i: listen again not before */
    bool refreshing;
    pending *parked;
    lash_err last; /* why the last candidate failed */
    ev_timer tick;
    char where[400];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void kick_in(lash_aconn *c, int64_t ms)
{
    double at = ms > 0 ? (double)ms / 1000.0 : 0.0;
    if (ev_is_active(&c->tick)) {
        double left = ev_timer_remaining(c->t->loop, &c->tick);
        if (left <= at) return;
        ev_timer_stop(c->t->loop, &c->tick);
    }
    ev_timer_set(&c->tick, at, 0);
    ev_timer_start(c->t->loop, &c->tick);
}

static void kick(lash_aconn *c)
{
    kick_in(c, 0);
}

static const char *host_of(const redisAsyncContext *ac)
{
    return ac && ac->c.connection_type == REDIS_CONN_TCP ? ac->c.tcp.host : "127.0.0.1";
}

/* ---- topology ----------------------------------------------------------------- */

lash_status lash_atopo_new(struct ev_loop *loop, const lash_url *u, int failover_ms,
                           lash_atopo **out, lash_err *e)
{
    lash_atopo *t = calloc(1, sizeof *t);
    if (!t) return lash_fail(e, LASH_ENOMEM, "out of memory");
    t->loop = loop;
    t->url = *u;
    if (failover_ms <= 0) {
        const char *s = getenv("LASH_FAILOVER_MS");
        int64_t v;
        failover_ms = s && *s && lash_parse_i64(s, strlen(s), 1, 3600000, &v) ? (int)v : 30000;
    }
    t->failover_ms = failover_ms;
    t->park_ms = failover_ms < PARK_BOUND_MS ? failover_ms : PARK_BOUND_MS;
    t->mode = u->nsentinels ? LASH_TOPO_SENTINEL : LASH_TOPO_SINGLE;
    t->hint = -1;
    lash_slotmap_init(&t->map);
    *out = t;
    return LASH_OK;
}

void lash_atopo_free(lash_atopo *t)
{
    if (!t) return;
    lash_slotmap_free(&t->map);
    memset(&t->url, 0, sizeof t->url);
    free(t);
}

/* ---- commands ----------------------------------------------------------------- */

static pending *new_pending(size_t n, lash_aclaim_cb *ccb, lash_astatus_cb *scb, void *ud)
{
    pending *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n;
    p->claim_cb = ccb;
    p->status_cb = scb;
    p->ud = ud;
    p->slot = -1;
    return p;
}

/* Answers the caller: the reply r, or (r NULL) the error code/why. */
static void finish(pending *p, redisReply *r, lash_status code, const char *why)
{
    lash_err e = {0};
    lash_status st = r ? lash_reply_check(r, lash_op_name(p->argv.op), &e)
                       : lash_fail(&e, code ? code : LASH_EIO, "%s: %s", lash_op_name(p->argv.op),
                                   why ? why : "no reply (connection lost)");
    if (p->claim_cb) {
        lash_claim_batch b = {0};
        if (!st) st = lash_reply_claim(r, &b, &e);
        p->claim_cb(st, &b, &e, p->ud);
        if (st) lash_claim_batch_free(&b);
    } else {
        int *status = NULL;
        if (!st && !(status = malloc((p->n ? p->n : 1) * sizeof *status)))
            st = lash_fail(&e, LASH_ENOMEM, "out of memory");
        if (!st) st = lash_reply_ints(r, p->n, status, &e);
        p->status_cb(st, status, st ? 0 : p->n, &e, p->ud);
        free(status);
    }
    lash_argv_free(&p->argv);
    free(p);
}

/* Keeps p until a route appears, at most failover_ms from its first setback. */
static void park(lash_aconn *c, pending *p, int64_t pause_ms)
{
    int64_t now = now_ms();
    if (!p->deadline) p->deadline = now + c->t->park_ms;
    if (now >= p->deadline) {
        char why[300];
        snprintf(why, sizeof why, "no primary answered for slot %d within %d ms (%.200s)", p->slot,
                 c->t->park_ms, c->last.msg);
        finish(p, NULL, LASH_EIO, why);
        return;
    }
    p->not_before = now + pause_ms;
    p->next = NULL;
    pending **tail = &c->parked;
    while (*tail)
        tail = &(*tail)->next;
    *tail = p;
    kick_in(c, pause_ms);
}

static int64_t next_pause(pending *p)
{
    p->pause_ms = p->pause_ms ? p->pause_ms * 2 : PARK_MIN_MS;
    if (p->pause_ms > PARK_MAX_MS) p->pause_ms = PARK_MAX_MS;
    return p->pause_ms;
}

/* ---- nodes -------------------------------------------------------------------- */

static void on_reply(redisAsyncContext *ac, void *r_, void *priv);
static void node_setup_timeout(struct ev_loop *loop, ev_timer *w, int revents);

/* hiredis has let go of nd's context (or is about to, after the callbacks). */
static void node_gone(anode *nd)
{
    lash_aconn *c = nd->c;
    nd->ac = NULL;
    nd->state = N_GONE;
    nd->retry_at = now_ms() + RETRY_MS;
    ev_timer_stop(c->t->loop, &nd->tmo);
    if (nd == c->asking) c->asking = NULL;
    if (nd->kind == N_DATA && c->state == C_UP) {
        if (nd == c->anchor && (c->sub || c->t->mode != LASH_TOPO_CLUSTER)) {
            c->down_due = true;
            if (!c->down_why.msg[0])
                lash_fail(&c->down_why, LASH_EIO, "Redis at %s: %s", c->where,
                          c->last.msg[0] ? c->last.msg : "connection lost");
        } else {
            c->want_refresh = true; /* a Cluster node went away: who serves its slots now? */
        }
    }
    kick(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    anode *nd = ac->data;
    if (!nd) return;
    if (status != REDIS_OK) {
        lash_fail(&nd->c->last, LASH_EIO, "%s", ac->errstr[0] ? ac->errstr : "cannot connect");
        node_gone(nd); /* hiredis frees ac after this callback and the NULL replies */
        return;
    }
    nd->connected = true;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    anode *nd = ac->data;
    if (!nd) return;
    if (!nd->setup_failed && nd->kind == N_DATA)
        lash_fail(&nd->c->last, LASH_EIO, "%s",
                  status == REDIS_OK ? "disconnected" : (ac->errstr[0] ? ac->errstr : "lost"));
    node_gone(nd);
}

/* Gives up on nd now (a setup that failed or took too long). Not from inside one
 * of nd's own callbacks: use redisAsyncDisconnect there. */
static void node_abort(anode *nd)
{
    if (!nd->ac) return;
    redisAsyncContext *ac = nd->ac;
    nd->connected = false; /* its setup never finished: nothing behind it has run */
    redisAsyncFree(ac);    /* runs the NULL replies; on_disconnect only if connected */
    if (nd->state != N_GONE) node_gone(nd);
}

static anode *node_new(lash_aconn *c, node_kind kind, const lash_url_host *at, bool seed)
{
    anode *nd = calloc(1, sizeof *nd);
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
static bool node_dial(anode *nd, int setup_ms)
{
    lash_aconn *c = nd->c;
    const lash_url *u = &c->t->url;
    redisAsyncContext *ac = nd->seed && u->path[0] ? redisAsyncConnectUnix(u->path)
                                                   : redisAsyncConnect(nd->at.host, nd->at.port);
    if (!ac || ac->err) {
        lash_fail(&c->last, LASH_EIO, "%s", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        nd->state = N_GONE;
        nd->retry_at = now_ms() + RETRY_MS;
        return false;
    }
    nd->ac = ac;
    nd->state = N_SETUP;
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

static void setup_done(anode *nd)
{
    ev_timer_stop(nd->c->t->loop, &nd->tmo);
    nd->state = N_UP;
    lash_atopo *t = nd->c->t;
    if (nd->kind == N_DATA && !nd->seed && t->mode == LASH_TOPO_CLUSTER) {
        int i = lash_slotmap_node(&t->map, nd->at.host, nd->at.port);
        if (i >= 0) t->hint = i;
    }
    kick(nd->c);
}

/* A setup step failed: why, and drop the connection. */
static void setup_failed(redisAsyncContext *ac, anode *nd, const char *fmt, const char *arg)
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
    anode *nd = ac->data;
    if (!nd || nd->state != N_SETUP) return;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        if (r) setup_failed(ac, nd, "setup failed: %.250s", r->str);
        return; /* NULL: the connection is going; on_connect/on_disconnect say why */
    }
    if (--nd->setup_left == 0) setup_done(nd);
}

/* HELLO on the first connection of a redis:// URL (mode) and under Sentinel
 * (role). An error reply (Redis < 6, or a user without HELLO) tells nothing. */
static void on_hello(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    redisReply *r = r_;
    anode *nd = ac->data;
    if (!nd || nd->state != N_SETUP || !r) return;
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
    anode *nd = w->data;
    lash_fail(&nd->c->last, LASH_EIO, "no answer within %d ms",
              nd->kind == N_DATA ? SETUP_MS : SENTINEL_SETUP_MS);
    node_abort(nd);
}

/* Queues the setup of a Redis node: AUTH, SELECT, HELLO when needed, the
 * scripts (command connections), PING. Commands queued after it run after it. */
static void data_setup(anode *nd, bool hello)
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
    if (!c->sub) {
        /* A command connection: load every script now, so EVALSHA meets NOSCRIPT
         * only after a SCRIPT FLUSH mid-connection. (A NOSCRIPT re-send goes
         * behind what is already queued, which would let a claim overtake an
         * earlier complete; harmless, but not the order the worker chose.) */
        for (int op = 0; op < LASH_OP_COUNT; op++) {
            size_t len;
            const char *text = lash_script_text((lash_op)op, &len);
            nd->setup_left++;
            redisAsyncCommand(ac, on_setup, NULL, "SCRIPT LOAD %b", text, len);
        }
    }
    nd->setup_left++;
    redisAsyncCommand(ac, on_setup, NULL, "PING");
}

/* A data node for a Cluster address, dialed if it is not open (and was not
 * given up on a moment ago). NULL: none now. */
static anode *data_node(lash_aconn *c, const lash_url_host *at)
{
    anode *nd = c->nodes;
    for (; nd; nd = nd->next)
        if (nd->kind == N_DATA && !nd->seed && nd->at.port == at->port &&
            strcmp(nd->at.host, at->host) == 0)
            break;
    if (nd && nd->state != N_GONE) return nd;
    if (nd && now_ms() < nd->retry_at) return NULL;
    if (!nd && !(nd = node_new(c, N_DATA, at, false))) return NULL;
    if (!node_dial(nd, SETUP_MS)) return NULL;
    data_setup(nd, false);
    return nd;
}

/* ---- routing ------------------------------------------------------------------ */

/* Where a command for slot goes now; NULL: park it. */
static anode *pick(lash_aconn *c, int slot)
{
    if (c->t->mode != LASH_TOPO_CLUSTER)
        return c->anchor && c->anchor->state != N_GONE ? c->anchor : NULL;
    const lash_url_host *at = lash_slotmap_owner(&c->t->map, slot);
    if (at) return data_node(c, at);
    /* Owner unknown: any live node answers or redirects. */
    for (anode *nd = c->nodes; nd; nd = nd->next)
        if (nd->kind == N_DATA && nd->state == N_UP) return nd;
    return NULL;
}

/* Sends p where it belongs now, or parks it. */
static void dispatch(lash_aconn *c, pending *p)
{
    if (c->state != C_UP) {
        finish(p, NULL, LASH_EIO, "not connected");
        return;
    }
    anode *nd = pick(c, p->slot);
    if (!nd && c->t->mode != LASH_TOPO_CLUSTER) {
        finish(p, NULL, LASH_EIO, "not connected");
        return;
    }
    const char **argv = nd ? lash_argv_finish(&p->argv, p->retried) : NULL;
    if (nd && !argv) {
        finish(p, NULL, LASH_ENOMEM, "out of memory");
        return;
    }
    if (nd &&
        redisAsyncCommandArgv(nd->ac, on_reply, p, p->argv.argc, argv, p->argv.len) == REDIS_OK)
        return;
    if (!nd) c->want_refresh = true;
    park(c, p, next_pause(p));
}

static void on_reply(redisAsyncContext *ac, void *r_, void *priv)
{
    pending *p = priv;
    redisReply *r = r_;
    anode *nd = ac->data;
    lash_aconn *c = nd ? nd->c : NULL;
    if (!c) { /* the connection is being closed */
        finish(p, NULL, LASH_EIO, "connection closed");
        return;
    }
    if (!r) {
        /* In a Cluster a command that never reached its node waits for another. */
        if (!nd->connected && c->t->mode == LASH_TOPO_CLUSTER && c->state == C_UP) {
            park(c, p, next_pause(p));
            return;
        }
        finish(p, NULL, LASH_EIO, c->last.msg[0] ? c->last.msg : "connection lost");
        return;
    }
    if (lash_reply_noscript(r) && !p->retried) {
        /* Script cache flushed (restart, fail-over, SCRIPT FLUSH): send the text. */
        const char **argv = lash_argv_finish(&p->argv, 1);
        p->retried = 1;
        if (argv &&
            redisAsyncCommandArgv(ac, on_reply, p, p->argv.argc, argv, p->argv.len) == REDIS_OK)
            return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        lash_atopo *t = c->t;
        lash_url_host to;
        lash_route_step step =
            lash_route_reply(&t->map, t->mode, r, p->slot, true, host_of(ac), p->redirects, &to);
        if (step == LASH_ROUTE_RESEND) {
            if (t->mode == LASH_TOPO_SINGLE) t->mode = LASH_TOPO_CLUSTER; /* no HELLO said so */
            p->redirects++;
            c->want_refresh = true; /* one slot moved: others did too */
            kick(c);
            dispatch(c, p);
            return;
        }
        if (step == LASH_ROUTE_WAIT) {
            park(c, p, next_pause(p));
            return;
        }
        if (step == LASH_ROUTE_REFRESH) {
            if (t->mode == LASH_TOPO_SENTINEL) {
                /* READONLY: the primary was demoted. Drop it; the caller
                 * reconnects, and the Sentinels name the new one. */
                lash_fail(&c->last, LASH_EIO, "%.200s", r->str);
                finish(p, NULL, LASH_EIO, "the primary was demoted");
                if (nd->ac && nd == c->anchor) redisAsyncDisconnect(nd->ac);
                return;
            }
            c->want_refresh = true;
            park(c, p, next_pause(p));
            return;
        }
    }
    finish(p, r, LASH_OK, NULL);
}

/* ---- the slot map --------------------------------------------------------------- */

static void on_slots(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    anode *nd = ac->data;
    if (!nd) return;
    lash_aconn *c = nd->c;
    c->refreshing = false;
    lash_err e;
    if (lash_slotmap_parse(&c->t->map, r_, host_of(ac), &e) == LASH_OK) {
        c->since = 0; /* reachable */
        for (pending *p = c->parked; p; p = p->next)
            p->not_before = 0; /* a new map: try the parked commands at once */
    } else {
        c->last = e;
        if (r_) c->want_refresh = true;
    }
    kick(c);
}

/* Sends CLUSTER SLOTS to a live node (or dials one); at most every REFRESH_MS. */
static void refresh(lash_aconn *c, int64_t now)
{
    if (c->refreshing || now < c->refresh_at) return;
    anode *nd = NULL;
    for (anode *x = c->nodes; x && !nd; x = x->next)
        if (x->kind == N_DATA && x->state == N_UP) nd = x;
    for (size_t k = 0; !nd && k < c->t->map.nnodes; k++) {
        /* Round robin over every node known, replicas too: they know the map. */
        size_t i = ((size_t)c->rr + k) % c->t->map.nnodes;
        nd = data_node(c, &c->t->map.nodes[i]);
        if (nd) c->rr = (int)(i + 1);
    }
    if (!nd) return;
    c->want_refresh = false;
    c->refresh_at = now + REFRESH_MS;
    if (redisAsyncCommand(nd->ac, on_slots, NULL, "CLUSTER SLOTS") == REDIS_OK)
        c->refreshing = true;
}

/* ---- Sentinel ------------------------------------------------------------------- */

static void sentinel_auth(anode *nd)
{
    const char *pw = getenv("LASH_SENTINEL_PASSWORD"), *user = getenv("LASH_SENTINEL_USER");
    if (!pw || !*pw) return;
    if (user && *user)
        redisAsyncCommandArgv(nd->ac, NULL, NULL, 3, (const char *[]){"AUTH", user, pw}, NULL);
    else
        redisAsyncCommandArgv(nd->ac, NULL, NULL, 2, (const char *[]){"AUTH", pw}, NULL);
}

static anode *sentinel_dial(lash_aconn *c, node_kind kind, int idx)
{
    anode *nd = node_new(c, kind, &c->t->url.sentinels[idx], false);
    if (!nd) return NULL;
    nd->idx = idx;
    if (!node_dial(nd, SENTINEL_SETUP_MS)) return NULL;
    sentinel_auth(nd);
    return nd;
}

static void on_master_addr(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    anode *nd = ac->data;
    if (!nd || nd->state == N_GONE) return;
    lash_aconn *c = nd->c;
    lash_atopo *t = c->t;
    ev_timer_stop(t->loop, &nd->tmo);
    nd->state = N_UP;
    if (c->asking == nd) c->asking = NULL;
    lash_url_host at;
    lash_err e;
    lash_status st = lash_sentinel_master_parse(r_, &at, &e);
    redisAsyncDisconnect(ac); /* one question per connection */
    if (st) {
        snprintf(c->last.msg, sizeof c->last.msg, "Sentinel %.60s:%d: %.180s", nd->at.host,
                 nd->at.port, e.msg);
        c->last.code = st;
        kick(c);
        return;
    }
    t->sentinel_next = nd->idx;
    anode *a = node_new(c, N_DATA, &at, false);
    if (a && node_dial(a, SETUP_MS)) {
        a->check_role = true;
        c->anchor = a;
        data_setup(a, true);
    }
    kick(c);
}

/* Asks the next Sentinel of this round where the primary is. */
static void ask_sentinel(lash_aconn *c)
{
    const lash_url *u = &c->t->url;
    int idx = (c->t->sentinel_next + c->tries) % u->nsentinels;
    c->tries++;
    anode *nd = sentinel_dial(c, N_ASK, idx);
    if (!nd) return;
    c->asking = nd;
    redisAsyncCommand(nd->ac, on_master_addr, NULL, "SENTINEL get-master-addr-by-name %s",
                      u->master);
}

static void on_switch(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    redisReply *r = r_;
    anode *nd = ac->data;
    if (!nd || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    lash_aconn *c = nd->c;
    const redisReply *kind = r->element[0], *chan = r->element[1], *msg = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING) return;
    if (strcmp(kind->str, "subscribe") == 0) {
        ev_timer_stop(c->t->loop, &nd->tmo);
        nd->state = N_UP;
        return;
    }
    if (msg->type != REDIS_REPLY_STRING) return;
    lash_url_host to;
    if (strcmp(kind->str, "message") != 0 ||
        !lash_sentinel_event_parse(chan->str, msg->str, msg->len, c->t->url.master, &to))
        return;
    c->t->promoting = to;
    c->t->promoting_until = now_ms() + PROMOTING_MS;
    anode *a = c->anchor;
    if (c->state == C_OPENING) {
        c->wait_to = 0; /* ask again now */
        kick(c);
    } else if (c->state == C_UP && a && a->ac &&
               (a->at.port != to.port || strcmp(a->at.host, to.host) != 0)) {
        lash_fail(&c->last, LASH_EIO, "the Sentinels are moving the primary to %s:%d", to.host,
                  to.port);
        redisAsyncDisconnect(a->ac);
    }
}

/* Keeps a subscription to the failover events open on every Sentinel: only
 * the one leading a failover publishes that a replica is being promoted, and
 * any of them may lead the next. One that fails is tried again a second later. */
static void watch(lash_aconn *c, int64_t now)
{
    int n = c->t->url.nsentinels;
    bool live[LASH_URL_SENTINELS_MAX] = {0};
    for (anode *nd = c->nodes; nd; nd = nd->next)
        if (nd->kind == N_WATCH && nd->state != N_GONE) live[nd->idx] = true;
    int64_t soonest = -1;
    for (int i = 0; i < n; i++) {
        if (live[i]) continue;
        if (now < c->watch_at[i]) {
            if (soonest < 0 || c->watch_at[i] < soonest) soonest = c->watch_at[i];
            continue;
        }
        c->watch_at[i] = now + 1000;
        anode *nd = sentinel_dial(c, N_WATCH, i);
        if (nd)
            redisAsyncCommand(nd->ac, on_switch, NULL, "SUBSCRIBE +switch-master %s",
                              LASH_SENTINEL_PROMOTING);
    }
    if (soonest >= 0) kick_in(c, soonest - now);
}

/* ---- coming up, going down --------------------------------------------------------- */

/* Opening: starts on the next candidate when none is being tried. */
static void open_step(lash_aconn *c, int64_t now)
{
    lash_atopo *t = c->t;
    if (c->anchor && c->anchor->state == N_SETUP) return;
    if (c->anchor && c->anchor->state == N_UP) {
        if (t->mode == LASH_TOPO_CLUSTER && !c->sub) {
            /* Read the map before claiming, so the first commands go straight to
             * their primaries instead of collecting MOVEDs. */
            if (c->want_refresh || c->refreshing) {
                c->want_refresh = true;
                refresh(c, now);
                if (c->refreshing) return;
            }
        }
        c->state = C_UP;
        c->up_due = true;
        c->since = 0;
        return;
    }
    if (c->asking) return;
    c->anchor = NULL;
    if (!c->since) c->since = now;
    if (now < c->wait_to) {
        kick_in(c, c->wait_to - now);
        return;
    }
    bool last_chance = now - c->since >= t->failover_ms;
    if (t->mode == LASH_TOPO_SENTINEL && now < t->promoting_until) {
        /* Straight to the replica being promoted; its role is checked, and
         * tried again every RETRY_MS until it says primary. */
        anode *a = node_new(c, N_DATA, &t->promoting, false);
        if (a && node_dial(a, SETUP_MS)) {
            a->check_role = true;
            c->anchor = a;
            data_setup(a, true);
        }
        c->wait_to = now + RETRY_MS;
        return;
    }
    if (t->mode == LASH_TOPO_SENTINEL) {
        if (c->tries >= t->url.nsentinels) { /* a round is over */
            c->tries = 0;
            if (c->last.code == LASH_ENOTFOUND || last_chance) goto down;
            c->wait_to = now + RETRY_MS;
            kick_in(c, RETRY_MS);
            return;
        }
        ask_sentinel(c);
        kick(c);
        return;
    }
    /* redis:// and unix://: the node that worked last, the URL, then (Cluster)
     * every node of the map. */
    int ncand = 1 + (t->mode == LASH_TOPO_CLUSTER ? (int)t->map.nnodes : 0);
    while (c->cand < ncand + 1) {
        int k = c->cand++;
        anode *nd;
        if (k == 0) {
            if (t->hint < 0 || (size_t)t->hint >= t->map.nnodes) continue;
            nd = node_new(c, N_DATA, &t->map.nodes[t->hint], false);
        } else if (k == 1) {
            lash_url_host seed = {{0}, t->url.port};
            snprintf(seed.host, sizeof seed.host, "%s", t->url.host);
            nd = node_new(c, N_DATA, &seed, true);
        } else {
            nd = node_new(c, N_DATA, &t->map.nodes[k - 2], false);
        }
        if (nd && node_dial(nd, SETUP_MS)) {
            c->anchor = nd;
            /* HELLO until the mode is known: it does not change under a URL. */
            data_setup(nd, k == 1 && t->mode == LASH_TOPO_SINGLE);
            if (t->mode == LASH_TOPO_CLUSTER) c->want_refresh = true;
            return;
        }
    }
    c->cand = 0;
    if (t->mode != LASH_TOPO_CLUSTER || last_chance) goto down;
    c->wait_to = now + RETRY_MS;
    kick_in(c, RETRY_MS);
    return;
down:
    c->state = C_DOWN;
    c->down_due = true;
    lash_fail(&c->down_why, c->last.code == LASH_EREDIS ? LASH_EREDIS : LASH_EIO, "Redis at %s: %s",
              c->where, c->last.msg[0] ? c->last.msg : "cannot connect");
}

/* Frees tombstones nobody needs: Sentinel connections that are over, Cluster
 * nodes whose redial pause is over (data_node makes a new one when needed). */
static void reap(lash_aconn *c, int64_t now)
{
    anode **pp = &c->nodes;
    while (*pp) {
        anode *nd = *pp;
        bool dead = nd->state == N_GONE && !nd->ac && nd != c->anchor && nd != c->asking &&
                    (nd->kind != N_DATA || now >= nd->retry_at);
        if (dead) {
            *pp = nd->next;
            free(nd);
        } else {
            pp = &nd->next;
        }
    }
}

/* Sends the parked commands whose pause is over (they may park again). */
static void unpark(lash_aconn *c, int64_t now)
{
    pending *p = c->parked, *keep = NULL, **kt = &keep;
    c->parked = NULL;
    int64_t soonest = -1;
    while (p && !c->closed) {
        pending *next = p->next;
        p->next = NULL;
        if (p->not_before <= now) {
            dispatch(c, p); /* may answer the caller, who may close c */
        } else {
            *kt = p;
            kt = &p->next;
            if (soonest < 0 || p->not_before < soonest) soonest = p->not_before;
        }
        p = next;
    }
    if (c->closed) { /* close() answered what was parked then; answer the rest */
        *kt = p;
        while (keep) {
            pending *x = keep;
            keep = x->next;
            finish(x, NULL, LASH_EIO, "connection closed");
        }
        return;
    }
    *kt = c->parked; /* the ones dispatch parked again */
    c->parked = keep;
    if (soonest >= 0) kick_in(c, soonest - now);
    if (c->parked) kick_in(c, REFRESH_MS);
}

/* Cluster, command connection, up: down only when no node at all answers for
 * failover_ms. */
static void check_reachable(lash_aconn *c, int64_t now)
{
    for (anode *nd = c->nodes; nd; nd = nd->next)
        if (nd->kind == N_DATA && nd->state != N_GONE) {
            c->since = 0;
            return;
        }
    if (!c->since) c->since = now;
    if (now - c->since >= c->t->failover_ms) {
        c->down_due = true;
        lash_fail(&c->down_why, LASH_EIO, "no Cluster node reachable for %d ms: %s",
                  c->t->failover_ms, c->last.msg);
    } else {
        c->want_refresh = true;
        kick_in(c, RETRY_MS);
    }
}

static void tick(lash_aconn *c)
{
    int64_t now = now_ms();
    reap(c, now);
    if (c->state == C_OPENING) open_step(c, now);
    if (c->t->mode == LASH_TOPO_SENTINEL && c->state != C_DOWN) watch(c, now);
    if (c->state == C_UP && c->t->mode == LASH_TOPO_CLUSTER && !c->sub) {
        if (c->want_refresh || c->parked) refresh(c, now);
        check_reachable(c, now);
        unpark(c, now);
        if (c->closed) return;
    }
    if (c->up_due) {
        c->up_due = false;
        if (c->cbs.on_up) c->cbs.on_up(c, c->ud); /* may close c */
        if (c->closed) return;
    }
    if (c->down_due) {
        c->down_due = false;
        c->state = C_DOWN;
        /* Parked commands get their EIO before on_down, as in-flight ones do. */
        while (c->parked && !c->closed) {
            pending *p = c->parked;
            c->parked = p->next;
            finish(p, NULL, LASH_EIO, c->down_why.msg);
        }
        lash_err e = c->down_why;
        if (!c->closed && c->cbs.on_down) c->cbs.on_down(c, &e, c->ud); /* may close c */
    }
}

static void free_conn(lash_aconn *c)
{
    while (c->nodes) {
        anode *nd = c->nodes;
        c->nodes = nd->next;
        free(nd);
    }
    free(c);
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    lash_aconn *c = w->data;
    c->busy++;
    tick(c);
    if (--c->busy == 0 && c->closed) free_conn(c);
}

lash_status lash_aconn_open(lash_atopo *t, const lash_aconn_cbs *cbs, void *ud, lash_aconn **out,
                            lash_err *e)
{
    lash_aconn *c = calloc(1, sizeof *c);
    if (!c) return lash_fail(e, LASH_ENOMEM, "out of memory");
    c->t = t;
    c->cbs = *cbs;
    c->ud = ud;
    c->sub = cbs->on_message != NULL;
    c->state = C_OPENING;
    lash_url_describe(&t->url, c->where, sizeof c->where);
    ev_timer_init(&c->tick, on_tick, 0, 0);
    c->tick.data = c;
    /* A single Redis that cannot be dialed at all fails here, as it always did. */
    if (t->mode == LASH_TOPO_SINGLE) {
        lash_url_host seed = {{0}, t->url.port};
        snprintf(seed.host, sizeof seed.host, "%s", t->url.host);
        anode *nd = node_new(c, N_DATA, &seed, true);
        if (!nd || !node_dial(nd, SETUP_MS)) {
            lash_fail(e, LASH_EIO, "cannot reach Redis at %s: %s", c->where, c->last.msg);
            lash_aconn_close(c);
            return LASH_EIO;
        }
        c->anchor = nd;
        c->cand = 2;
        data_setup(nd, true);
    }
    kick(c);
    *out = c;
    return LASH_OK;
}

void lash_aconn_close(lash_aconn *c)
{
    if (!c || c->closed) return;
    c->closed = true;
    ev_timer_stop(c->t->loop, &c->tick);
    for (anode *nd = c->nodes; nd; nd = nd->next) {
        ev_timer_stop(c->t->loop, &nd->tmo);
        if (nd->ac) {
            redisAsyncContext *ac = nd->ac;
            ac->data = NULL; /* its callbacks must not touch c any more */
            nd->ac = NULL;
            redisAsyncFree(ac);
        }
    }
    while (c->parked) {
        pending *p = c->parked;
        c->parked = p->next;
        finish(p, NULL, LASH_EIO, "connection closed");
    }
    if (!c->busy) free_conn(c); /* inside tick: freed when it returns */
}

int lash_aconn_is_up(const lash_aconn *c)
{
    return c && c->state == C_UP && !c->down_due && c->anchor && c->anchor->state != N_GONE;
}

static void on_message(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    redisReply *r = r_;
    anode *nd = ac->data;
    lash_aconn *c = nd ? nd->c : NULL;
    if (!c || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    redisReply *kind = r->element[0], *chan = r->element[1], *msg = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0) return;
    if (chan->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING) return;
    if (c->cbs.on_message) c->cbs.on_message(c, chan->str, msg->str, msg->len, c->ud);
}

lash_status lash_asubscribe(lash_aconn *c, const char *const *channels, size_t n, lash_err *e)
{
    if (!lash_aconn_is_up(c) || !c->anchor->ac)
        return lash_fail(e, LASH_EIO, "subscribe: not connected");
    const char **argv = malloc((n + 1) * sizeof *argv);
    if (!argv) return lash_fail(e, LASH_ENOMEM, "out of memory");
    argv[0] = "SUBSCRIBE";
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = channels[i];
    int rc = redisAsyncCommandArgv(c->anchor->ac, on_message, NULL, (int)n + 1, argv, NULL);
    free(argv);
    return rc == REDIS_OK ? LASH_OK : lash_fail(e, LASH_EIO, "subscribe: cannot send");
}

/* The API's send: an error (and no callback) when it cannot go at all. */
static lash_status send(lash_aconn *c, pending *p)
{
    lash_status st = LASH_OK;
    if (p->argv.oom || !lash_argv_finish(&p->argv, 0))
        st = LASH_ENOMEM;
    else if (!lash_aconn_is_up(c))
        st = c && c->t->mode == LASH_TOPO_CLUSTER && c->state == C_UP ? LASH_OK : LASH_EIO;
    if (st) {
        lash_argv_free(&p->argv);
        free(p);
        return st;
    }
    p->c = c;
    /* Every script's one key is the queue base lash:{q} (argv.h). */
    p->slot = lash_key_slot(p->argv.arena + p->argv.off[3], p->argv.len[3]);
    dispatch(c, p);
    return LASH_OK;
}

lash_status lash_aclaim(lash_aconn *c, const char *queue, const char *owner, int n, int64_t ttl_ms,
                        lash_retention keep, lash_aclaim_cb *cb, void *ud)
{
    pending *p = new_pending(0, cb, NULL, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_claim(&p->argv, queue, owner, n, ttl_ms, keep);
    return send(c, p);
}

lash_status lash_arenew(lash_aconn *c, const char *queue, int64_t ttl_ms, const lash_lease *l,
                        size_t n, lash_astatus_cb *cb, void *ud)
{
    pending *p = new_pending(n, NULL, cb, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_renew(&p->argv, queue, ttl_ms, l, n);
    return send(c, p);
}

lash_status lash_acomplete(lash_aconn *c, const char *queue, const lash_completion *r, size_t n,
                           lash_astatus_cb *cb, void *ud)
{
    pending *p = new_pending(n, NULL, cb, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_complete(&p->argv, queue, r, n);
    return send(c, p);
}

lash_status lash_arelease(lash_aconn *c, const char *queue, const lash_lease *l, size_t n,
                          lash_astatus_cb *cb, void *ud)
{
    pending *p = new_pending(n, NULL, cb, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_release(&p->argv, queue, l, n);
    return send(c, p);
}
