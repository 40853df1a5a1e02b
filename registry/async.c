/* async.c: the registry on libev, routed (see async.h, aconn.h, route.h). */
#include <hiredis/adapters/libev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/slot.h"
#include "registry/aconn.h"
#include "registry/conn.h"
#include "registry/reply.h"

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
    t->park_ms = failover_ms < LASH_APARK_BOUND_MS ? failover_ms : LASH_APARK_BOUND_MS;
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

static void on_reply(redisAsyncContext *ac, void *r_, void *priv);

static lash_apending *new_pending(size_t n, lash_aclaim_cb *ccb, lash_astatus_cb *scb, void *ud)
{
    lash_apending *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n;
    p->claim_cb = ccb;
    p->status_cb = scb;
    p->ud = ud;
    p->slot = -1;
    return p;
}

/* Answers the caller: the reply r, or (r NULL) the error code/why. */
void lash_apending_finish(lash_apending *p, redisReply *r, lash_status code, const char *why)
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
    } else if (p->peek_cb) {
        int64_t wait = -1;
        if (!st) st = lash_reply_peek(r, &wait, &e);
        p->peek_cb(st, wait, &e, p->ud);
    } else if (p->raw_cb) {
        p->raw_cb(st, st ? NULL : r, &e, p->ud);
    } else if (p->recover_cb) {
        lash_recovered rec = {0};
        if (!st) st = lash_reply_recover(r, p->owner, &rec, &e);
        p->recover_cb(st, &rec, &e, p->ud);
        lash_recovered_free(&rec);
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

/* Keeps p until a route appears, at most park_ms (a claim: LASH_APARK_CLAIM_MS)
 * from its first setback. */
void lash_apending_park(lash_aconn *c, lash_apending *p, int64_t pause_ms)
{
    int64_t now = lash_amono_ms();
    int bound = c->t->park_ms;
    if (p->claim_cb && bound > LASH_APARK_CLAIM_MS) bound = LASH_APARK_CLAIM_MS;
    if (!p->deadline) p->deadline = now + bound;
    if (now >= p->deadline) {
        char why[300];
        snprintf(why, sizeof why, "no primary answered for slot %d within %d ms (%.200s)", p->slot,
                 bound, c->last.msg);
        lash_apending_finish(p, NULL, LASH_EIO, why);
        return;
    }
    p->not_before = now + pause_ms;
    p->next = NULL;
    lash_apending **tail = &c->parked;
    while (*tail)
        tail = &(*tail)->next;
    *tail = p;
    lash_akick_in(c, pause_ms);
}

int64_t lash_apending_pause(lash_apending *p)
{
    p->pause_ms = p->pause_ms ? p->pause_ms * 2 : LASH_APARK_MIN_MS;
    if (p->pause_ms > LASH_APARK_MAX_MS) p->pause_ms = LASH_APARK_MAX_MS;
    return p->pause_ms;
}

/* Where a command for slot goes now; NULL: park it. */
static lash_anode *pick(lash_aconn *c, int slot)
{
    if (c->t->mode != LASH_TOPO_CLUSTER)
        return c->anchor && c->anchor->state != LASH_NODE_GONE ? c->anchor : NULL;
    const lash_url_host *at = lash_slotmap_owner(&c->t->map, slot);
    if (at) return lash_anode_data(c, at);
    /* Owner unknown: any live node answers or redirects. */
    for (lash_anode *nd = c->nodes; nd; nd = nd->next)
        if (nd->kind == LASH_NODE_DATA && nd->state == LASH_NODE_UP) return nd;
    return NULL;
}

/* Sends p where it belongs now, or parks it. */
void lash_aconn_dispatch(lash_aconn *c, lash_apending *p)
{
    if (c->state != LASH_ACONN_UP) {
        lash_apending_finish(p, NULL, LASH_EIO, "not connected");
        return;
    }
    lash_anode *nd = pick(c, p->slot);
    if (!nd && c->t->mode != LASH_TOPO_CLUSTER) {
        lash_apending_finish(p, NULL, LASH_EIO, "not connected");
        return;
    }
    const char **argv = nd ? lash_argv_finish(&p->argv, p->how) : NULL;
    if (nd && !argv) {
        lash_apending_finish(p, NULL, LASH_ENOMEM, "out of memory");
        return;
    }
    if (nd &&
        redisAsyncCommandArgv(nd->ac, on_reply, p, p->argv.argc, argv, p->argv.len) == REDIS_OK)
        return;
    if (!nd) c->want_refresh = true;
    lash_apending_park(c, p, lash_apending_pause(p));
}

static void on_reply(redisAsyncContext *ac, void *r_, void *priv)
{
    lash_apending *p = priv;
    redisReply *r = r_;
    lash_anode *nd = ac->data;
    lash_aconn *c = nd ? nd->c : NULL;
    if (!c) { /* the connection is being closed */
        lash_apending_finish(p, NULL, LASH_EIO, "connection closed");
        return;
    }
    if (!r) {
        /* In a Cluster a command that never reached its node waits for another. */
        if (!nd->connected && c->t->mode == LASH_TOPO_CLUSTER && c->state == LASH_ACONN_UP) {
            lash_apending_park(c, p, lash_apending_pause(p));
            return;
        }
        lash_apending_finish(p, NULL, LASH_EIO, c->last.msg[0] ? c->last.msg : "connection lost");
        return;
    }
    if (lash_send_fallback(&c->send, &p->how, r)) {
        /* Another library version, or the script cache flushed (restart,
         * fail-over, SCRIPT FLUSH): by SHA, then with the text. */
        const char **argv = lash_argv_finish(&p->argv, p->how);
        if (argv &&
            redisAsyncCommandArgv(ac, on_reply, p, p->argv.argc, argv, p->argv.len) == REDIS_OK)
            return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        lash_atopo *t = c->t;
        lash_url_host to;
        lash_route_step step =
            lash_route_reply(&t->map, t->mode, r, p->slot, true, lash_ahost(ac), p->redirects, &to);
        if (step == LASH_ROUTE_RESEND) {
            if (t->mode == LASH_TOPO_SINGLE) t->mode = LASH_TOPO_CLUSTER; /* no HELLO said so */
            p->redirects++;
            c->want_refresh = true; /* one slot moved: others did too */
            lash_akick(c);
            lash_aconn_dispatch(c, p);
            return;
        }
        if (step == LASH_ROUTE_WAIT) {
            lash_apending_park(c, p, lash_apending_pause(p));
            return;
        }
        if (step == LASH_ROUTE_REFRESH) {
            if (t->mode == LASH_TOPO_SENTINEL) {
                /* READONLY: the primary was demoted. Drop it; the caller
                 * reconnects, and the Sentinels name the new one. */
                lash_fail(&c->last, LASH_EIO, "%.200s", r->str);
                lash_apending_finish(p, NULL, LASH_EIO, "the primary was demoted");
                if (nd->ac && nd == c->anchor) redisAsyncDisconnect(nd->ac);
                return;
            }
            c->want_refresh = true;
            lash_apending_park(c, p, lash_apending_pause(p));
            return;
        }
    }
    lash_apending_finish(p, r, LASH_OK, NULL);
}

static lash_status open_conn(lash_atopo *t, int pin, const lash_aconn_cbs *cbs, void *ud,
                             lash_aconn **out, lash_err *e)
{
    lash_aconn *c = calloc(1, sizeof *c);
    if (!c) return lash_fail(e, LASH_ENOMEM, "out of memory");
    c->t = t;
    c->cbs = *cbs;
    c->ud = ud;
    c->sub = cbs->on_message != NULL;
    c->pin = c->sub ? pin : -1;
    c->state = LASH_ACONN_OPENING;
    lash_url_describe(&t->url, c->where, sizeof c->where);
    ev_timer_init(&c->tick, lash_aconn_on_tick, 0, 0);
    c->tick.data = c;
    /* A single Redis that cannot be dialed at all fails here, as it always did. */
    if (t->mode == LASH_TOPO_SINGLE) {
        lash_url_host seed = {{0}, t->url.port};
        snprintf(seed.host, sizeof seed.host, "%s", t->url.host);
        lash_anode *nd = lash_anode_new(c, LASH_NODE_DATA, &seed, true);
        if (!nd || !lash_anode_dial(nd, LASH_ASETUP_MS)) {
            lash_fail(e, LASH_EIO, "cannot reach Redis at %s: %s", c->where, c->last.msg);
            lash_aconn_close(c);
            return LASH_EIO;
        }
        c->anchor = nd;
        c->cand = 2;
        lash_anode_setup(nd, true);
    }
    lash_akick(c);
    *out = c;
    return LASH_OK;
}

lash_status lash_aconn_open(lash_atopo *t, const lash_aconn_cbs *cbs, void *ud, lash_aconn **out,
                            lash_err *e)
{
    return open_conn(t, -1, cbs, ud, out, e);
}

lash_status lash_aconn_open_pinned(lash_atopo *t, const char *queue, const lash_aconn_cbs *cbs,
                                   void *ud, lash_aconn **out, lash_err *e)
{
    return open_conn(t, lash_queue_slot(queue), cbs, ud, out, e);
}

bool lash_aconn_moved(const lash_aconn *c)
{
    return c && c->moved;
}

bool lash_atopo_cluster(const lash_atopo *t)
{
    return t && t->mode == LASH_TOPO_CLUSTER;
}

void lash_aconn_close(lash_aconn *c)
{
    if (!c || c->closed) return;
    c->closed = true;
    ev_timer_stop(c->t->loop, &c->tick);
    for (lash_anode *nd = c->nodes; nd; nd = nd->next) {
        ev_timer_stop(c->t->loop, &nd->tmo);
        if (nd->ac) {
            redisAsyncContext *ac = nd->ac;
            ac->data = NULL; /* its callbacks must not touch c any more */
            nd->ac = NULL;
            redisAsyncFree(ac);
        }
    }
    while (c->parked) {
        lash_apending *p = c->parked;
        c->parked = p->next;
        lash_apending_finish(p, NULL, LASH_EIO, "connection closed");
    }
    if (!c->busy) lash_aconn_free(c); /* inside tick: freed when it returns */
}

/* Up: connected, not marked down, and its node not gone from the map. */
static bool aconn_up(const lash_aconn *c)
{
    return c && c->state == LASH_ACONN_UP && !c->down_due && c->anchor &&
           c->anchor->state != LASH_NODE_GONE;
}

/* A subscriber's node no longer serves a channel's slot (see aconn.h). */
void lash_asub_left(lash_anode *nd, const char *why, size_t len)
{
    lash_aconn *c = nd->c;
    if (c->moved) return;
    c->moved = true;
    lash_fail(&c->down_why, LASH_EIO, "Redis at %s:%d: %.*s", nd->at.host, nd->at.port,
              (int)(len > 200 ? 200 : len), why);
    /* MOVED names the owner: the next pinned subscriber goes straight there,
     * even for a user who may not read CLUSTER SLOTS. */
    lash_atopo *t = c->t;
    lash_redirect d;
    if (lash_redirect_parse(why, len, nd->at.host, &d) != LASH_REPLY_MOVED) return;
    if (lash_slotmap_moved(&t->map, d.slot, &d.to) && t->mode == LASH_TOPO_SINGLE)
        t->mode = LASH_TOPO_CLUSTER; /* no HELLO said so */
}

/* Every array reply of the subscribed connection: message and smessage are
 * what was published (classic and sharded alike); subscribe and ssubscribe
 * confirm; sunsubscribe is Redis dropping a sharded channel whose slot left
 * the node. hiredis 0.14 drops the connection itself on an error reply; one
 * that reaches this callback all the same (a later hiredis) is handled alike. */
static void on_message(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    redisReply *r = r_;
    lash_anode *nd = ac->data;
    lash_aconn *c = nd ? nd->c : NULL;
    if (!c || !r) return;
    if (r->type == REDIS_REPLY_ERROR) {
        lash_redirect d;
        if (lash_redirect_parse(r->str, r->len, nd->at.host, &d) == LASH_REPLY_MOVED)
            lash_asub_left(nd, r->str, r->len);
        else if (!c->down_why.msg[0])
            lash_fail(&c->down_why, LASH_EREDIS, "Redis at %s: %.200s", c->where, r->str);
        redisAsyncDisconnect(ac); /* after this callback; on_disconnect makes it down */
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    redisReply *kind = r->element[0], *chan = r->element[1], *msg = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING) return;
    if (strcmp(kind->str, "sunsubscribe") == 0) {
        char why[300];
        snprintf(why, sizeof why, "the slot of %.200s left this node (sunsubscribe)", chan->str);
        lash_asub_left(nd, why, strlen(why));
        redisAsyncDisconnect(ac);
        return;
    }
    if (strcmp(kind->str, "message") != 0 && strcmp(kind->str, "smessage") != 0) return;
    if (msg->type != REDIS_REPLY_STRING || c->moved) return;
    if (c->cbs.on_message) c->cbs.on_message(c, chan->str, msg->str, msg->len, c->ud);
}

lash_status lash_asubscribe(lash_aconn *c, const char *const *channels, size_t n, lash_err *e)
{
    if (!aconn_up(c) || !c->anchor->ac) return lash_fail(e, LASH_EIO, "subscribe: not connected");
    if (!n) return LASH_OK;
    const char **argv = malloc((n + 1) * sizeof *argv);
    int *slot = malloc(n * sizeof *slot);
    bool *sent = calloc(n, sizeof *sent);
    if (!argv || !slot || !sent) {
        free(argv);
        free(slot);
        free(sent);
        return lash_fail(e, LASH_ENOMEM, "out of memory");
    }
    /* Classic first: hiredis learns the names (and enters subscribed mode)
     * only from SUBSCRIBE; see async.h. */
    argv[0] = "SUBSCRIBE";
    for (size_t i = 0; i < n; i++) {
        argv[i + 1] = channels[i];
        slot[i] = lash_key_slot(channels[i], strlen(channels[i]));
    }
    redisAsyncContext *ac = c->anchor->ac;
    int rc = redisAsyncCommandArgv(ac, on_message, NULL, (int)n + 1, argv, NULL);
    argv[0] = "SSUBSCRIBE";
    for (size_t i = 0; i < n && rc == REDIS_OK; i++) {
        if (sent[i]) continue;
        int k = 1;
        for (size_t j = i; j < n; j++)
            if (!sent[j] && slot[j] == slot[i]) {
                sent[j] = true;
                argv[k++] = channels[j];
            }
        rc = redisAsyncCommandArgv(ac, on_message, NULL, k, argv, NULL);
    }
    free(argv);
    free(slot);
    free(sent);
    return rc == REDIS_OK ? LASH_OK : lash_fail(e, LASH_EIO, "subscribe: cannot send");
}

/* The API's send: an error (and no callback) when it cannot go at all. */
static lash_status send_pending(lash_aconn *c, lash_apending *p)
{
    lash_status st = LASH_OK;
    if (c) p->how = lash_sendpref_first(&c->send);
    if (p->argv.oom || !lash_argv_finish(&p->argv, p->how))
        st = LASH_ENOMEM;
    else if (!aconn_up(c))
        st = c && c->t->mode == LASH_TOPO_CLUSTER && c->state == LASH_ACONN_UP ? LASH_OK : LASH_EIO;
    if (st) {
        lash_argv_free(&p->argv);
        free(p);
        return st;
    }
    p->c = c;
    /* Every script's one key is the queue base lash:{q} (argv.h). */
    p->slot = lash_key_slot(p->argv.arena + p->argv.off[3], p->argv.len[3]);
    lash_aconn_dispatch(c, p);
    return LASH_OK;
}

lash_status lash_aclaim(lash_aconn *c, const char *queue, const char *owner, int n, int64_t ttl_ms,
                        lash_retention keep, uint32_t seq, int upkeep, lash_aclaim_cb *cb, void *ud)
{
    lash_apending *p = new_pending(0, cb, NULL, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_claim(&p->argv, queue, owner, n, ttl_ms, keep, seq, upkeep);
    return send_pending(c, p);
}

lash_status lash_apeek(lash_aconn *c, const char *queue, lash_apeek_cb *cb, void *ud)
{
    lash_apending *p = new_pending(0, NULL, NULL, ud);
    if (!p) return LASH_ENOMEM;
    p->peek_cb = cb;
    lash_argv_script(&p->argv, LASH_OP_PEEK, queue);
    return send_pending(c, p);
}

lash_status lash_asend_raw(lash_aconn *c, lash_argv *argv, lash_araw_cb *cb, void *ud)
{
    lash_apending *p = new_pending(0, NULL, NULL, ud);
    if (!p) {
        lash_argv_free(argv);
        return LASH_ENOMEM;
    }
    p->raw_cb = cb;
    p->argv = *argv;
    memset(argv, 0, sizeof *argv);
    return send_pending(c, p);
}

lash_status lash_arecover(lash_aconn *c, const char *queue, const char *owner, uint32_t seq,
                          lash_arecover_cb *cb, void *ud)
{
    lash_apending *p = new_pending(0, NULL, NULL, ud);
    if (!p) return LASH_ENOMEM;
    p->recover_cb = cb;
    p->owner = owner;
    lash_argv_recover(&p->argv, queue, owner, seq);
    return send_pending(c, p);
}

lash_status lash_arenew(lash_aconn *c, const char *queue, int64_t ttl_ms, const lash_lease *l,
                        size_t n, lash_astatus_cb *cb, void *ud)
{
    lash_apending *p = new_pending(n, NULL, cb, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_renew(&p->argv, queue, ttl_ms, l, n);
    return send_pending(c, p);
}

lash_status lash_acomplete(lash_aconn *c, const char *queue, const lash_completion *r, size_t n,
                           lash_astatus_cb *cb, void *ud)
{
    lash_apending *p = new_pending(n, NULL, cb, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_complete(&p->argv, queue, r, n);
    return send_pending(c, p);
}

lash_status lash_arelease(lash_aconn *c, const char *queue, const lash_lease *l, const bool *ran,
                          size_t n, lash_astatus_cb *cb, void *ud)
{
    lash_apending *p = new_pending(n, NULL, cb, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_release(&p->argv, queue, l, ran, n);
    return send_pending(c, p);
}

lash_status lash_aprogress(lash_aconn *c, const char *queue, const lash_progress_report *r,
                           size_t n, lash_astatus_cb *cb, void *ud)
{
    lash_apending *p = new_pending(n, NULL, cb, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_progress(&p->argv, queue, r, n);
    return send_pending(c, p);
}
