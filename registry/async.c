/* async.c: the registry on libev (see async.h). */
#include "registry/async.h"

#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/argv.h"
#include "registry/conn.h"
#include "registry/reply.h"

struct lash_aconn {
    redisAsyncContext *ac; /* NULL once hiredis has let go of it */
    lash_aconn_cbs cbs;
    void *ud;
    bool up;
    int setup_left; /* setup replies still awaited before on_up */
    bool failed;    /* setup failed: on_down already told */
    char where[400];
};

/* A command in flight: kept so that a NOSCRIPT reply can be re-sent as EVAL. */
typedef struct {
    lash_argv argv;
    size_t n; /* rows, for status replies */
    bool retried;
    lash_aclaim_cb *claim_cb;
    lash_astatus_cb *status_cb;
    lash_arecover_cb *recover_cb;
    const char *owner; /* recover: the leases name it (the caller keeps it alive) */
    void *ud;
} pending;

static void down(lash_aconn *c, lash_status code, const char *why)
{
    lash_err e;
    c->up = false;
    if (c->failed) return;
    c->failed = true;
    lash_fail(&e, code, "Redis at %s: %s", c->where, why);
    if (c->cbs.on_down) c->cbs.on_down(c, &e, c->ud);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    lash_aconn *c = ac->data;
    if (!c) return;
    if (status != REDIS_OK) {
        c->ac = NULL; /* hiredis frees it after this callback */
        down(c, LASH_EIO, ac->errstr[0] ? ac->errstr : "cannot connect");
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    lash_aconn *c = ac->data;
    if (!c) return;
    c->ac = NULL;
    down(c, LASH_EIO, status == REDIS_OK ? "disconnected" : (ac->errstr[0] ? ac->errstr : "lost"));
}

static void on_setup(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    redisReply *r = r_;
    lash_aconn *c = ac->data;
    if (!c || c->failed) return;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        lash_err re;
        lash_status st = lash_reply_check(r, "setup", &re);
        down(c, st, re.msg);
        redisAsyncDisconnect(ac);
        return;
    }
    if (--c->setup_left == 0) {
        c->up = true;
        if (c->cbs.on_up) c->cbs.on_up(c, c->ud);
    }
}

lash_status lash_aconn_open(struct ev_loop *loop, const lash_url *u, const lash_aconn_cbs *cbs,
                            void *ud, lash_aconn **out, lash_err *e)
{
    lash_aconn *c = calloc(1, sizeof *c);
    if (!c) return lash_fail(e, LASH_ENOMEM, "out of memory");
    c->cbs = *cbs;
    c->ud = ud;
    lash_url_describe(u, c->where, sizeof c->where);
    c->ac = u->path[0] ? redisAsyncConnectUnix(u->path) : redisAsyncConnect(u->host, u->port);
    if (!c->ac || c->ac->err) {
        lash_fail(e, LASH_EIO, "cannot reach Redis at %s: %s", c->where,
                  c->ac ? c->ac->errstr : "out of memory");
        if (c->ac) redisAsyncFree(c->ac);
        free(c);
        return LASH_EIO;
    }
    lash_fd_cloexec(c->ac->c.fd);
    c->ac->data = c;
    redisLibevAttach(loop, c->ac);
    redisAsyncSetConnectCallback(c->ac, on_connect);
    redisAsyncSetDisconnectCallback(c->ac, on_disconnect);
    /* Queued now, written once connected; on_up waits for all of them. */
    const char *pw = lash_url_password(u);
    if (pw[0]) {
        c->setup_left++;
        if (u->user[0])
            redisAsyncCommandArgv(c->ac, on_setup, NULL, 3, (const char *[]){"AUTH", u->user, pw},
                                  NULL);
        else
            redisAsyncCommandArgv(c->ac, on_setup, NULL, 2, (const char *[]){"AUTH", pw}, NULL);
    }
    if (u->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        c->setup_left++;
        redisAsyncCommandArgv(c->ac, on_setup, NULL, 2, (const char *[]){"SELECT", db}, NULL);
    }
    /* Before anything big: Redis cuts an unauthenticated client that sends a
     * long argument (the scripts) with a protocol error, where a PING gets the
     * NOAUTH that says what is wrong. */
    c->setup_left++;
    redisAsyncCommand(c->ac, on_setup, NULL, "PING");
    if (!cbs->on_message) {
        /* A command connection: load every script now, so EVALSHA meets NOSCRIPT
         * only after a SCRIPT FLUSH mid-connection. (A NOSCRIPT re-send goes
         * behind what is already queued, which would let a claim overtake an
         * earlier complete; harmless, but not the order the worker chose.) */
        for (int op = 0; op < LASH_OP_COUNT; op++) {
            size_t len;
            const char *text = lash_script_text((lash_op)op, &len);
            c->setup_left++;
            redisAsyncCommand(c->ac, on_setup, NULL, "SCRIPT LOAD %b", text, len);
        }
    }
    *out = c;
    return LASH_OK;
}

void lash_aconn_close(lash_aconn *c)
{
    if (!c) return;
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        ac->data = NULL; /* its callbacks must not touch c any more */
        c->ac = NULL;
        redisAsyncFree(ac);
    }
    free(c);
}

static void on_message(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    redisReply *r = r_;
    lash_aconn *c = ac->data;
    if (!c || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    redisReply *kind = r->element[0], *chan = r->element[1], *msg = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || strcmp(kind->str, "message") != 0) return;
    if (chan->type != REDIS_REPLY_STRING || msg->type != REDIS_REPLY_STRING) return;
    if (c->cbs.on_message) c->cbs.on_message(c, chan->str, msg->str, msg->len, c->ud);
}

lash_status lash_asubscribe(lash_aconn *c, const char *const *channels, size_t n, lash_err *e)
{
    if (!c->ac) return lash_fail(e, LASH_EIO, "subscribe: not connected");
    const char **argv = malloc((n + 1) * sizeof *argv);
    if (!argv) return lash_fail(e, LASH_ENOMEM, "out of memory");
    argv[0] = "SUBSCRIBE";
    for (size_t i = 0; i < n; i++)
        argv[i + 1] = channels[i];
    int rc = redisAsyncCommandArgv(c->ac, on_message, NULL, (int)n + 1, argv, NULL);
    free(argv);
    return rc == REDIS_OK ? LASH_OK : lash_fail(e, LASH_EIO, "subscribe: cannot send");
}

static void finish(pending *p, redisReply *r)
{
    lash_err e = {0};
    lash_status st = lash_reply_check(r, lash_op_name(p->argv.op), &e);
    if (p->claim_cb) {
        lash_claim_batch b = {0};
        if (!st) st = lash_reply_claim(r, &b, &e);
        p->claim_cb(st, &b, &e, p->ud);
        if (st) lash_claim_batch_free(&b);
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

static void on_reply(redisAsyncContext *ac, void *r_, void *priv)
{
    pending *p = priv;
    redisReply *r = r_;
    if (lash_reply_noscript(r) && !p->retried && ac->data) {
        /* Script cache flushed (restart, fail-over, SCRIPT FLUSH): send the text. */
        const char **argv = lash_argv_finish(&p->argv, true);
        p->retried = true;
        if (argv &&
            redisAsyncCommandArgv(ac, on_reply, p, p->argv.argc, argv, p->argv.len) == REDIS_OK)
            return;
    }
    finish(p, r);
}

/* Sends p's script call, or frees p and says why not. */
static lash_status send_pending(lash_aconn *c, pending *p)
{
    const char **argv = lash_argv_finish(&p->argv, false);
    lash_err e;
    lash_status st = LASH_OK;
    if (!argv)
        st = lash_fail(&e, LASH_ENOMEM, "out of memory");
    else if (!c->ac || !c->up)
        st = lash_fail(&e, LASH_EIO, "not connected");
    else if (redisAsyncCommandArgv(c->ac, on_reply, p, p->argv.argc, argv, p->argv.len) != REDIS_OK)
        st = lash_fail(&e, LASH_EIO, "cannot send");
    if (st) {
        lash_argv_free(&p->argv);
        free(p);
    }
    return st;
}

static pending *new_pending(size_t n, lash_aclaim_cb *ccb, lash_astatus_cb *scb, void *ud)
{
    pending *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->n = n;
    p->claim_cb = ccb;
    p->status_cb = scb;
    p->ud = ud;
    return p;
}

lash_status lash_aclaim(lash_aconn *c, const char *queue, const char *owner, int n, int64_t ttl_ms,
                        lash_retention keep, uint32_t seq, lash_aclaim_cb *cb, void *ud)
{
    pending *p = new_pending(0, cb, NULL, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_claim(&p->argv, queue, owner, n, ttl_ms, keep, seq);
    return send_pending(c, p);
}

lash_status lash_arecover(lash_aconn *c, const char *queue, const char *owner, uint32_t seq,
                          lash_arecover_cb *cb, void *ud)
{
    pending *p = new_pending(0, NULL, NULL, ud);
    if (!p) return LASH_ENOMEM;
    p->recover_cb = cb;
    p->owner = owner;
    lash_argv_recover(&p->argv, queue, owner, seq);
    return send_pending(c, p);
}

lash_status lash_arenew(lash_aconn *c, const char *queue, int64_t ttl_ms, const lash_lease *l,
                        size_t n, lash_astatus_cb *cb, void *ud)
{
    pending *p = new_pending(n, NULL, cb, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_renew(&p->argv, queue, ttl_ms, l, n);
    return send_pending(c, p);
}

lash_status lash_acomplete(lash_aconn *c, const char *queue, const lash_completion *r, size_t n,
                           lash_astatus_cb *cb, void *ud)
{
    pending *p = new_pending(n, NULL, cb, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_complete(&p->argv, queue, r, n);
    return send_pending(c, p);
}

lash_status lash_arelease(lash_aconn *c, const char *queue, const lash_lease *l, const bool *ran,
                          size_t n, lash_astatus_cb *cb, void *ud)
{
    pending *p = new_pending(n, NULL, cb, ud);
    if (!p) return LASH_ENOMEM;
    lash_argv_release(&p->argv, queue, l, ran, n);
    return send_pending(c, p);
}
