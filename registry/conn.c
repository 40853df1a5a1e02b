/* conn.c: the blocking connection and its routing (see conn.h, registry.h). */
#include "registry/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "proto/record.h"
#include "registry/reply.h"
#include "registry/resp.h"

#define DEFAULT_FAILOVER_MS 30000
/* Pauses between attempts while a failover or a migration runs: short first
 * (a migration of one slot takes milliseconds), then no busier than 2/s. */
#define PAUSE_MIN_MS 10
#define PAUSE_MAX_MS 500

void lash_fd_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl >= 0) fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
}

const char *lash_url_password(const lash_url *u)
{
    const char *env = getenv("LASH_REDIS_PASSWORD");
    return env && *env ? env : u->password;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static lash_status simple(redisContext *ctx, int argc, const char **argv, const char *what,
                          lash_err *e)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    /* A timeout says so in words (hiredis says "Resource temporarily unavailable"). */
    bool silent = !r && ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK);
    lash_status st = r        ? lash_reply_check(r, what, e)
                     : silent ? lash_fail(e, LASH_EIO, "%s: no answer from Redis in time", what)
                              : lash_fail(e, LASH_EIO, "%s: %s", what, ctx->errstr);
    freeReplyObject(r);
    return st;
}

/* Opens a context to host:port (or the socket path), authenticates and selects
 * the database of the URL. NULL with e set on failure. A failure to reach the
 * URL's own address is described by the URL (without its password). */
static redisContext *dial(lash_conn *c, const char *host, int port, const char *path, lash_err *e)
{
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    redisContext *ctx = path && path[0] ? redisConnectUnixWithTimeout(path, tv)
                                        : redisConnectWithTimeout(host, port, tv);
    if (!ctx || ctx->err) {
        char where[400];
        if (path && path[0]) {
            lash_url_describe(&c->url, where, sizeof where);
        } else if (!c->url.nsentinels && strcmp(host, c->url.host) == 0 && port == c->url.port) {
            lash_url_describe(&c->url, where, sizeof where);
        } else {
            snprintf(where, sizeof where, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
        }
        lash_fail(e, LASH_EIO, "cannot reach Redis at %s: %s", where,
                  ctx ? ctx->errstr : "out of memory");
        if (ctx) redisFree(ctx);
        return NULL;
    }
    lash_fd_cloexec(ctx->fd);
    lash_resp_adopt(ctx->reader);
    redisSetTimeout(ctx, tv);
    lash_status st = LASH_OK;
    const char *pw = lash_url_password(&c->url);
    if (pw[0]) {
        const char *auth[] = {"AUTH", c->url.user, pw};
        st = c->url.user[0] ? simple(ctx, 3, auth, "AUTH", e)
                            : simple(ctx, 2, (const char *[]){"AUTH", pw}, "AUTH", e);
    }
    if (!st && c->url.db) {
        char db[16];
        snprintf(db, sizeof db, "%d", c->url.db);
        st = simple(ctx, 2, (const char *[]){"SELECT", db}, "SELECT", e);
    }
    /* A PING before the first real command: a Redis that wants a password
     * answers it NOAUTH, one clear line, where a first command with a long
     * argument would have the connection cut with a protocol error. */
    if (!st) st = simple(ctx, 1, (const char *[]){"PING"}, "PING", e);
    if (st) {
        redisFree(ctx);
        return NULL;
    }
    c->dials++;
    return ctx;
}

/* What the node says it is: HELLO (Redis 6+, allowed to lash's ACL users) for
 * mode and role, else ROLE for the role. *mode_known is false when HELLO does
 * not answer (an old Redis, or a user not allowed it): then lash assumes a
 * single Redis and learns better from the first MOVED. *role_known is false
 * when neither answers. */
static lash_status probe(redisContext *ctx, lash_node_info *info, bool *mode_known,
                         bool *role_known, lash_err *e)
{
    memset(info, 0, sizeof *info);
    *mode_known = *role_known = false;
    redisReply *r = redisCommand(ctx, "HELLO 2");
    if (!r) return lash_fail(e, LASH_EIO, "HELLO: %s", ctx->errstr);
    lash_status st = LASH_OK;
    if (r->type != REDIS_REPLY_ERROR) {
        st = lash_hello_parse(r, info, e);
        *mode_known = *role_known = st == LASH_OK;
        freeReplyObject(r);
        return st;
    }
    freeReplyObject(r);
    if (!(r = redisCommand(ctx, "ROLE"))) return lash_fail(e, LASH_EIO, "ROLE: %s", ctx->errstr);
    if (r->type != REDIS_REPLY_ERROR) {
        st = lash_role_parse(r, &info->primary, e);
        *role_known = st == LASH_OK;
    }
    freeReplyObject(r);
    return st;
}

/* ---- Sentinel ------------------------------------------------------------------- */

static redisContext *sentinel_dial(const lash_conn *c, const lash_url_host *h, lash_err *e)
{
    int ms = c->timeout_ms < 2000 ? c->timeout_ms : 2000; /* try the next one soon */
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    redisContext *s = redisConnectWithTimeout(h->host, h->port, tv);
    if (!s || s->err) {
        lash_fail(e, LASH_EIO, "cannot reach Sentinel %s:%d: %s", h->host, h->port,
                  s ? s->errstr : "out of memory");
        if (s) redisFree(s);
        return NULL;
    }
    lash_resp_adopt(s->reader);
    redisSetTimeout(s, tv);
    const char *pw = getenv("LASH_SENTINEL_PASSWORD"), *user = getenv("LASH_SENTINEL_USER");
    if (pw && *pw) {
        const char *argv[] = {"AUTH", user && *user ? user : pw, pw};
        lash_status st = user && *user ? simple(s, 3, argv, "Sentinel AUTH", e)
                                       : simple(s, 2, argv, "Sentinel AUTH", e);
        if (st) {
            redisFree(s);
            return NULL;
        }
    }
    return s;
}

/* Asks the Sentinels for the primary until one they name says it is one, or
 * until deadline. */
static lash_status resolve(lash_conn *c, int64_t deadline, lash_err *e)
{
    const lash_url *u = &c->url;
    lash_err last = {0};
    for (int pause = 100;; pause = pause < 250 ? pause * 2 : 250) {
        int unknown = 0;
        for (int k = 0; k < u->nsentinels; k++) {
            int i = (c->sentinel_next + k) % u->nsentinels;
            redisContext *s = sentinel_dial(c, &u->sentinels[i], &last);
            if (!s) continue;
            redisReply *r = redisCommand(s, "SENTINEL get-master-addr-by-name %s", u->master);
            lash_url_host at;
            lash_status st = lash_sentinel_master_parse(r, &at, &last);
            if (!r)
                lash_fail(&last, LASH_EIO, "Sentinel %s:%d: %s", u->sentinels[i].host,
                          u->sentinels[i].port, s->errstr);
            freeReplyObject(r);
            redisFree(s);
            if (st == LASH_ENOTFOUND) unknown++;
            if (st) continue;
            redisContext *ctx = dial(c, at.host, at.port, NULL, &last);
            if (!ctx) continue;
            lash_node_info info;
            bool mode_known, role_known;
            st = probe(ctx, &info, &mode_known, &role_known, &last);
            /* A node whose role cannot be read is taken at the Sentinels' word;
             * a READONLY reply would send us back to them. */
            if (!st && role_known && (!info.primary || info.sentinel))
                st = lash_fail(&last, LASH_EIO,
                               "%s:%d, named by the Sentinels, is not a primary "
                               "(yet)",
                               at.host, at.port);
            if (st) {
                redisFree(ctx);
                continue;
            }
            if (c->main) redisFree(c->main);
            c->main = c->ctx = ctx;
            c->main_at = at;
            c->sentinel_next = i;
            return LASH_OK;
        }
        if (unknown == u->nsentinels)
            return lash_fail(e, LASH_EINVAL, "no Sentinel knows a primary named '%s'", u->master);
        if (mono_ms() + pause > deadline)
            return lash_fail(e, LASH_EIO, "no primary '%s' from the Sentinels: %s", u->master,
                             last.msg);
        sleep_ms(pause);
    }
}

/* ---- Cluster -------------------------------------------------------------------- */

/* The context for map node idx, opened when needed. */
static redisContext *node_ctx(lash_conn *c, int idx, lash_err *e)
{
    if ((size_t)idx >= c->nnode) {
        size_t n = c->map.cap;
        redisContext **p = realloc(c->node, n * sizeof *p);
        if (!p) {
            lash_fail(e, LASH_ENOMEM, "out of memory");
            return NULL;
        }
        memset(p + c->nnode, 0, (n - c->nnode) * sizeof *p);
        c->node = p;
        c->nnode = n;
    }
    redisContext **slot = &c->node[idx];
    if (*slot && (*slot)->err) {
        if (c->ctx == *slot) c->ctx = NULL;
        redisFree(*slot);
        *slot = NULL;
    }
    if (!*slot) *slot = dial(c, c->map.nodes[idx].host, c->map.nodes[idx].port, NULL, e);
    return *slot;
}

/* Reads CLUSTER SLOTS from the first node that answers: the seed while it
 * lives, then each node of the map in turn (replicas know the map too). */
static lash_status refresh_map(lash_conn *c, lash_err *e)
{
    if (c->slots_refused)
        return lash_fail(e, LASH_EREDIS, "CLUSTER SLOTS is not allowed to this user");
    lash_err last = {0};
    lash_fail(&last, LASH_EIO, "no Cluster node known");
    for (size_t pass = 0; pass < 2 + c->map.nnodes; pass++) {
        redisContext *ctx = NULL;
        if (pass == 0) {
            ctx = c->main && !c->main->err ? c->main : NULL;
        } else {
            size_t i = pass - 1;
            if (i >= c->map.nnodes) break;
            ctx = node_ctx(c, (int)i, &last);
        }
        if (!ctx) continue;
        redisReply *r = redisCommand(ctx, "CLUSTER SLOTS");
        if (!r) {
            lash_fail(&last, LASH_EIO, "CLUSTER SLOTS: %s", ctx->errstr);
            continue;
        }
        const char *host = ctx->connection_type == REDIS_CONN_TCP ? ctx->tcp.host : "127.0.0.1";
        lash_status st = lash_slotmap_parse(&c->map, r, host, &last);
        freeReplyObject(r);
        if (!st) return LASH_OK;
        if (st == LASH_EREDIS && strstr(last.msg, "NOPERM")) {
            /* Every node would refuse it too: ask no more, MOVED teaches the owners. */
            c->slots_refused = true;
            break;
        }
    }
    if (e) *e = last;
    return last.code;
}

/* ---- connecting ----------------------------------------------------------------- */

lash_status lash_connect_opts(const char *url, const lash_conn_opts *o, lash_conn **out,
                              lash_err *e)
{
    lash_url u;
    lash_status st = lash_url_parse(url, &u, e);
    if (st) return st;
    return lash_connect_url_opts(&u, o, out, e);
}

static int env_failover_ms(void)
{
    const char *s = getenv("LASH_FAILOVER_MS");
    int64_t v;
    if (s && *s && lash_parse_i64(s, strlen(s), 0, 3600000, &v)) return (int)v;
    return DEFAULT_FAILOVER_MS;
}

lash_status lash_connect_url_opts(const lash_url *u, const lash_conn_opts *o, lash_conn **out,
                                  lash_err *e)
{
    lash_conn *c = calloc(1, sizeof *c);
    if (!c) return lash_fail(e, LASH_ENOMEM, "out of memory");
    c->url = *u;
    c->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : 5000;
    c->failover_ms = o && o->failover_ms > 0 ? o->failover_ms : env_failover_ms();
    lash_slotmap_init(&c->map);
    lash_status st;
    if (u->nsentinels) {
        c->mode = LASH_TOPO_SENTINEL;
        st = resolve(c, mono_ms() + c->failover_ms, e);
    } else if (!(c->main = c->ctx = dial(c, u->host, u->port, u->path, e))) {
        st = e && e->code ? e->code : LASH_EIO;
    } else {
        lash_node_info info;
        bool known, role_known;
        st = probe(c->main, &info, &known, &role_known, e);
        if (st == LASH_EPROTO || st == LASH_EREDIS) st = LASH_OK; /* assume one Redis */
        if (!st && known && info.sentinel)
            st = lash_fail(e, LASH_EINVAL,
                           "%s is a Sentinel, not a Redis server: name the primary with "
                           "redis-sentinel://host:port[,host:port...]#<master-name>",
                           u->host[0] ? u->host : u->path);
        if (!st && known && info.mode == LASH_TOPO_CLUSTER) {
            c->mode = LASH_TOPO_CLUSTER;
            if (u->db)
                st = lash_fail(e, LASH_EINVAL, "Redis Cluster has only database 0, not %d", u->db);
            else
                refresh_map(c, NULL); /* refused (ACL): learn the owners from MOVED */
        }
    }
    if (st) {
        lash_close(c);
        return st;
    }
    *out = c;
    return LASH_OK;
}

lash_status lash_connect_url(const lash_url *u, int timeout_ms, lash_conn **out, lash_err *e)
{
    lash_conn_opts o = {.timeout_ms = timeout_ms};
    return lash_connect_url_opts(u, &o, out, e);
}

lash_status lash_connect(const char *url, int timeout_ms, lash_conn **out, lash_err *e)
{
    lash_conn_opts o = {.timeout_ms = timeout_ms};
    return lash_connect_opts(url, &o, out, e);
}

void lash_close(lash_conn *c)
{
    if (!c || c->borrowed) return;
    if (c->main) redisFree(c->main);
    for (size_t i = 0; i < c->nnode; i++)
        if (c->node[i]) redisFree(c->node[i]);
    free(c->node);
    lash_slotmap_free(&c->map);
    memset(&c->url, 0, sizeof c->url); /* no password left in freed memory */
    free(c);
}

redisContext *lash_conn_redis(lash_conn *c)
{
    if (!c->ctx) c->ctx = lash_conn_route(c, -1, NULL);
    return c->ctx;
}

/* ---- routing -------------------------------------------------------------------- */

redisContext *lash_conn_route(lash_conn *c, int slot, lash_err *e)
{
    switch (c->mode) {
    case LASH_TOPO_SINGLE:
        return c->main;
    case LASH_TOPO_SENTINEL:
        if (c->main && !c->main->err) return c->main;
        /* One attempt here; lash_conn_retry paces the next ones. */
        if (resolve(c, 0, e)) return NULL;
        return c->main;
    case LASH_TOPO_CLUSTER:
        break;
    }
    int idx = slot >= 0 ? c->map.owner[slot] : LASH_NO_NODE;
    if (idx == LASH_NO_NODE && slot >= 0 && c->map.nnodes == 0) {
        refresh_map(c, NULL);
        idx = c->map.owner[slot];
    }
    if (idx == LASH_NO_NODE) {
        /* No owner known (or no key): any node will answer or redirect. */
        if (c->main && !c->main->err) return c->main;
        for (size_t i = 0; i < c->map.nnodes; i++) {
            if (!c->map.primary[i]) continue;
            redisContext *ctx = node_ctx(c, (int)i, e);
            if (ctx) return ctx;
        }
        lash_fail(e, LASH_EIO, "no Cluster node reachable");
        return NULL;
    }
    return node_ctx(c, idx, e);
}

/* Drops a context that broke, so the next route opens a fresh one. */
static void forget(lash_conn *c, redisContext *ctx)
{
    if (!ctx) return;
    if (c->ctx == ctx) c->ctx = NULL;
    if (c->main == ctx) {
        redisFree(ctx);
        c->main = NULL;
        return;
    }
    for (size_t i = 0; i < c->nnode; i++)
        if (c->node[i] == ctx) {
            redisFree(ctx);
            c->node[i] = NULL;
            return;
        }
}

static const char *host_of(const redisContext *ctx)
{
    return ctx && ctx->connection_type == REDIS_CONN_TCP ? ctx->tcp.host : "127.0.0.1";
}

/* The common part of every setback: bounded by failover_ms, paced, and
 * followed by a fresh look at the topology. ask is set for an ASKING step. */
static bool setback(lash_conn *c, redisContext *ctx, const redisReply *r, int slot, bool script,
                    lash_attempts *t, lash_url_host *ask, lash_route_step *stepp)
{
    lash_route_step step;
    lash_url_host to;
    if (!r) {
        if (c->mode == LASH_TOPO_SINGLE || c->borrowed) return false;
        forget(c, ctx);
        step = LASH_ROUTE_REFRESH;
    } else {
        step = lash_route_reply(&c->map, c->mode, r, slot, script, host_of(ctx), t->redirects, &to);
        if (step == LASH_ROUTE_DONE) return false;
        if (c->borrowed && step != LASH_ROUTE_WAIT) return false;     /* pinned to one node */
        if (c->mode == LASH_TOPO_SINGLE) c->mode = LASH_TOPO_CLUSTER; /* HELLO said nothing */
        if (ask) *ask = to;
    }
    if (stepp) *stepp = step;
    if (step == LASH_ROUTE_RESEND || step == LASH_ROUTE_ASKING) {
        t->redirects++;
        /* One slot moved means others did: read the whole map once per MOVED,
         * then keep what the MOVED said of its slot, which the map may not know
         * yet when it was read from a replica (the URL's node): without it, a
         * command after a migration bounced between the old owner and the
         * stale map until its redirects ran out. */
        if (step == LASH_ROUTE_RESEND) {
            refresh_map(c, NULL);
            lash_slotmap_moved(&c->map, slot, &to);
        }
        return true;
    }
    int64_t now = mono_ms();
    if (!t->deadline) t->deadline = now + c->failover_ms;
    if (now >= t->deadline) return false;
    t->pause_ms = t->pause_ms ? t->pause_ms * 2 : PAUSE_MIN_MS;
    if (t->pause_ms > PAUSE_MAX_MS) t->pause_ms = PAUSE_MAX_MS;
    if (now + t->pause_ms > t->deadline) t->pause_ms = (int)(t->deadline - now);
    sleep_ms(t->pause_ms);
    if (step == LASH_ROUTE_REFRESH) {
        if (c->mode == LASH_TOPO_CLUSTER) {
            refresh_map(c, NULL);
        } else if (c->mode == LASH_TOPO_SENTINEL && c->main && ctx == c->main) {
            forget(c, c->main); /* READONLY: it was demoted; ask the Sentinels again */
        }
    }
    return true;
}

bool lash_conn_retry(lash_conn *c, redisContext *ctx, const redisReply *r, int slot,
                     lash_attempts *t)
{
    return setback(c, ctx, r, slot, true, t, NULL, NULL);
}

/* Sends ASKING and the command to the node at `to`; the reply to the command. */
static redisReply *asking(lash_conn *c, const lash_url_host *to, int argc, const char **argv,
                          const size_t *len, redisContext **used, lash_err *e)
{
    int idx = lash_slotmap_node(&c->map, to->host, to->port);
    redisContext *ctx = idx >= 0 ? node_ctx(c, idx, e) : NULL;
    *used = ctx;
    if (!ctx) return NULL;
    void *a = NULL, *b = NULL;
    if (redisAppendCommand(ctx, "ASKING") != REDIS_OK ||
        redisAppendCommandArgv(ctx, argc, argv, len) != REDIS_OK ||
        redisGetReply(ctx, &a) != REDIS_OK || redisGetReply(ctx, &b) != REDIS_OK) {
        freeReplyObject(a);
        return NULL;
    }
    freeReplyObject(a);
    return b;
}

static redisReply *routed(lash_conn *c, int slot, bool script, const char *what, int argc,
                          const char **argv, const size_t *len, lash_err *e)
{
    lash_attempts t = {0};
    lash_url_host ask;
    bool asked = false;
    lash_err why = {0};
    for (;;) {
        redisContext *ctx;
        redisReply *r;
        if (asked) {
            r = asking(c, &ask, argc, argv, len, &ctx, &why);
            asked = false;
        } else {
            ctx = lash_conn_route(c, slot, &why);
            r = ctx ? redisCommandArgv(ctx, argc, argv, len) : NULL;
        }
        if (ctx) c->ctx = ctx;
        if (!r && ctx) lash_fail(&why, LASH_EIO, "%s", ctx->errstr);
        lash_route_step step = LASH_ROUTE_DONE;
        if (setback(c, ctx, r, slot, script, &t, &ask, &step)) {
            freeReplyObject(r);
            asked = step == LASH_ROUTE_ASKING;
            continue;
        }
        if (!r) lash_fail(e, LASH_EIO, "%s: %s", what, why.msg[0] ? why.msg : "no connection");
        return r;
    }
}

redisReply *lash_conn_command(lash_conn *c, const char *queue, const char *what, int argc,
                              const char **argv, const size_t *len, lash_err *e)
{
    return routed(c, queue ? lash_queue_slot(queue) : -1, false, what, argc, argv, len, e);
}

redisReply *lash_conn_script(lash_conn *c, lash_argv *a, lash_err *e)
{
    lash_send how = lash_sendpref_first(&c->send);
    const char **p = lash_argv_finish(a, how);
    if (!p) {
        lash_fail(e, LASH_ENOMEM, "out of memory");
        return NULL;
    }
    /* Every script's one key is the queue base lash:{q} (argv.h). */
    int slot = lash_key_slot(p[3], a->len[3]);
    const char *what = lash_op_name(a->op);
    redisReply *r = routed(c, slot, true, what, a->argc, p, a->len, e);
    while (lash_send_fallback(&c->send, &how, r)) {
        freeReplyObject(r);
        p = lash_argv_finish(a, how);
        if (!p) {
            lash_fail(e, LASH_ENOMEM, "out of memory");
            return NULL;
        }
        r = routed(c, slot, true, what, a->argc, p, a->len, e);
    }
    return r;
}

/* ---- every primary --------------------------------------------------------------- */

/* Connects every primary (the Sentinels' one, or each the map names) before
 * any is visited: one that does not answer (killed, and the node the map came
 * from has not yet heard of its replacement) is a setback like any, waited out
 * within failover_ms, with the map read again after each pause. Visiting none
 * until all answer keeps a visit from happening twice (a scan adds up what it
 * finds). */
static lash_status open_primaries(lash_conn *c, lash_err *e)
{
    if (c->mode == LASH_TOPO_CLUSTER) {
        lash_status st = refresh_map(c, e);
        if (st) return st;
    }
    lash_attempts t = {0};
    for (;;) {
        lash_err why = {0};
        bool all = c->mode != LASH_TOPO_SENTINEL || lash_conn_route(c, -1, &why);
        for (size_t i = 0; all && c->mode == LASH_TOPO_CLUSTER && i < c->map.nnodes; i++)
            if (c->map.primary[i] && !node_ctx(c, (int)i, &why)) all = false;
        if (all) return LASH_OK;
        if (why.code == LASH_ENOMEM || !setback(c, NULL, NULL, -1, false, &t, NULL, NULL)) {
            if (e) *e = why;
            return why.code ? why.code : LASH_EIO;
        }
    }
}

lash_status lash_conn_each_primary(lash_conn *c, lash_node_fn *fn, void *ud, lash_err *e)
{
    lash_status st = c->mode == LASH_TOPO_SINGLE ? LASH_OK : open_primaries(c, e);
    if (st) return st;
    if (c->mode != LASH_TOPO_CLUSTER) return fn(c, ud, e);
    for (size_t i = 0; i < c->map.nnodes; i++) {
        if (!c->map.primary[i]) continue;
        redisContext *ctx = node_ctx(c, (int)i, e);
        if (!ctx) return LASH_EIO;
        lash_conn *view = calloc(1, sizeof *view);
        if (!view) return lash_fail(e, LASH_ENOMEM, "out of memory");
        view->url = c->url;
        view->timeout_ms = c->timeout_ms;
        view->failover_ms = c->failover_ms;
        view->mode = LASH_TOPO_SINGLE;
        view->borrowed = true;
        view->main = view->ctx = ctx;
        lash_slotmap_init(&view->map);
        st = fn(view, ud, e);
        memset(&view->url, 0, sizeof view->url);
        free(view);
        if (st) return st;
    }
    return LASH_OK;
}
