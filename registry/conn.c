/* conn.c: opening a blocking connection from a URL (see registry.h). */
#include "registry/conn.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "registry/reply.h"

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

/* Why a blocking command got no reply: a timeout says so in words. */
static lash_status no_reply(lash_conn *c, const char *what, lash_err *e)
{
    if (c->ctx->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        char where[400];
        lash_url_describe(&c->url, where, sizeof where);
        return lash_fail(e, LASH_EIO, "%s: no answer from Redis at %s within %d ms", what, where,
                         c->timeout_ms);
    }
    return lash_fail(e, LASH_EIO, "%s: %s", what, c->ctx->errstr);
}

static lash_status simple(lash_conn *c, int argc, const char **argv, const char *what, lash_err *e)
{
    redisReply *r = redisCommandArgv(c->ctx, argc, argv, NULL);
    lash_status st = r ? lash_reply_check(r, what, e) : no_reply(c, what, e);
    freeReplyObject(r);
    return st;
}

lash_status lash_connect_url(const lash_url *u, int timeout_ms, lash_conn **out, lash_err *e)
{
    char where[400];
    lash_conn *c = calloc(1, sizeof *c);
    if (!c) return lash_fail(e, LASH_ENOMEM, "out of memory");
    c->url = *u;
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};
    c->ctx = u->path[0] ? redisConnectUnixWithTimeout(u->path, tv)
                        : redisConnectWithTimeout(u->host, u->port, tv);
    lash_url_describe(u, where, sizeof where);
    if (!c->ctx || c->ctx->err) {
        lash_fail(e, LASH_EIO, "cannot reach Redis at %s: %s", where,
                  c->ctx ? c->ctx->errstr : "out of memory");
        lash_close(c);
        return LASH_EIO;
    }
    lash_fd_cloexec(c->ctx->fd);
    redisSetTimeout(c->ctx, tv);
    lash_status st = LASH_OK;
    const char *pw = lash_url_password(u);
    if (pw[0]) {
        const char *auth[] = {"AUTH", u->user, pw};
        st = u->user[0] ? simple(c, 3, auth, "AUTH", e)
                        : simple(c, 2, (const char *[]){"AUTH", pw}, "AUTH", e);
    }
    if (!st && u->db) {
        char db[16];
        snprintf(db, sizeof db, "%d", u->db);
        st = simple(c, 2, (const char *[]){"SELECT", db}, "SELECT", e);
    }
    /* A PING before the first real command: a Redis that wants a password
     * answers it NOAUTH, one clear line, where a first command with a long
     * argument would have the connection cut with a protocol error. */
    if (!st) st = simple(c, 1, (const char *[]){"PING"}, "PING", e);
    if (st) {
        lash_close(c);
        return st;
    }
    *out = c;
    return LASH_OK;
}

lash_status lash_connect(const char *url, int timeout_ms, lash_conn **out, lash_err *e)
{
    lash_url u;
    lash_status st = lash_url_parse(url, &u, e);
    if (st) return st;
    return lash_connect_url(&u, timeout_ms, out, e);
}

void lash_close(lash_conn *c)
{
    if (!c) return;
    if (c->ctx) redisFree(c->ctx);
    memset(&c->url, 0, sizeof c->url); /* no password left in freed memory */
    free(c);
}

redisContext *lash_conn_redis(lash_conn *c)
{
    return c->ctx;
}

redisReply *lash_conn_command(lash_conn *c, const char *queue, const char *what, int argc,
                              const char **argv, const size_t *len, lash_err *e)
{
    (void)queue; /* one node holds every queue */
    redisReply *r = redisCommandArgv(c->ctx, argc, argv, len);
    if (!r) lash_fail(e, LASH_EIO, "%s: %s", what, c->ctx->errstr);
    return r;
}

redisReply *lash_conn_script(lash_conn *c, lash_argv *a, lash_err *e)
{
    const char **p = lash_argv_finish(a, false);
    if (!p) {
        lash_fail(e, LASH_ENOMEM, "out of memory");
        return NULL;
    }
    redisReply *r = redisCommandArgv(c->ctx, a->argc, p, a->len);
    if (lash_reply_noscript(r)) {
        freeReplyObject(r);
        p = lash_argv_finish(a, true);
        r = p ? redisCommandArgv(c->ctx, a->argc, p, a->len) : NULL;
    }
    if (!r) lash_fail(e, LASH_EIO, "%s: %s", lash_op_name(a->op), c->ctx->errstr);
    return r;
}
