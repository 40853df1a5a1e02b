/* limit.c: fleet-wide limits per kind: set, remove, list (the limit script). */
#include "registry/limit.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keys.h"
#include "registry/argv.h"
#include "registry/conn.h"
#include "registry/reply.h"

/* Runs the limit script with a; the reply (NULL on error). */
static redisReply *run(lash_conn *c, lash_argv *a, lash_err *e, lash_status *st)
{
    redisReply *r = lash_conn_script(c, a, e);
    lash_argv_free(a);
    *st = r ? lash_reply_check(r, "limit", e) : LASH_EIO;
    if (*st && r) {
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

lash_status lash_limit_set(lash_conn *c, const char *queue, const char *kind, int64_t concurrency,
                           int64_t rate, int64_t period_ms, lash_err *e)
{
    lash_status st;
    if ((st = lash_queue_check(queue, e)) || (st = lash_kind_check(kind, strlen(kind), e)))
        return st;
    if (concurrency != LASH_LIMIT_KEEP &&
        (concurrency < 0 || concurrency > LASH_LIMIT_CONCURRENCY_MAX))
        return lash_fail(e, LASH_EINVAL, "limit concurrency must be 1..%d (0: remove it)",
                         LASH_LIMIT_CONCURRENCY_MAX);
    if (rate != LASH_LIMIT_KEEP && (rate < 0 || rate > LASH_LIMIT_RATE_MAX))
        return lash_fail(e, LASH_EINVAL, "limit rate must be 1..%d starts (0: remove it)",
                         LASH_LIMIT_RATE_MAX);
    if (rate > 0 && (period_ms < 1 || period_ms > LASH_LIMIT_PERIOD_MAX))
        return lash_fail(e, LASH_EINVAL, "limit rate period must be 1..%lld ms",
                         (long long)LASH_LIMIT_PERIOD_MAX);
    if (concurrency == LASH_LIMIT_KEEP && rate == LASH_LIMIT_KEEP)
        return lash_fail(e, LASH_EINVAL, "limit set wants a concurrency or a rate");
    char cs[32] = "", rs[48] = "";
    if (concurrency == 0)
        snprintf(cs, sizeof cs, "none");
    else if (concurrency > 0)
        snprintf(cs, sizeof cs, "%" PRId64, concurrency);
    if (rate == 0)
        snprintf(rs, sizeof rs, "none");
    else if (rate > 0)
        snprintf(rs, sizeof rs, "%" PRId64 "/%" PRId64, rate, period_ms);
    lash_argv a;
    lash_argv_script(&a, LASH_OP_LIMIT, queue);
    lash_argv_adds(&a, "set");
    lash_argv_adds(&a, kind);
    lash_argv_adds(&a, cs);
    lash_argv_adds(&a, rs);
    redisReply *r = run(c, &a, e, &st);
    freeReplyObject(r);
    return st;
}

lash_status lash_limit_rm(lash_conn *c, const char *queue, const char *kind, bool *had, lash_err *e)
{
    lash_status st;
    if ((st = lash_queue_check(queue, e)) || (st = lash_kind_check(kind, strlen(kind), e)))
        return st;
    lash_argv a;
    lash_argv_script(&a, LASH_OP_LIMIT, queue);
    lash_argv_adds(&a, "rm");
    lash_argv_adds(&a, kind);
    redisReply *r = run(c, &a, e, &st);
    if (!r) return st;
    if (r->type != REDIS_REPLY_INTEGER)
        st = lash_fail(e, LASH_EPROTO, "limit rm: expected an integer");
    else if (had)
        *had = r->integer == 1;
    freeReplyObject(r);
    return st;
}

/* A decimal integer in [lo, hi], or -1 (malformed). */
static int64_t num(const char *s, int64_t lo, int64_t hi)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+') return -1;
    long long v = strtoll(s, &end, 10);
    return (*end || v < lo || v > hi) ? -1 : (int64_t)v;
}

/* One {kind, concurrency, rate, running, held} entry of the list reply. */
static bool entry(const redisReply *x, lash_limit *l)
{
    if (x->type != REDIS_REPLY_ARRAY || x->elements != 5) return false;
    for (int i = 0; i < 3; i++)
        if (x->element[i]->type != REDIS_REPLY_STRING) return false;
    for (int i = 3; i < 5; i++)
        if (x->element[i]->type != REDIS_REPLY_INTEGER) return false;
    memset(l, 0, sizeof *l);
    if (lash_kind_check(x->element[0]->str, x->element[0]->len, NULL)) return false;
    memcpy(l->kind, x->element[0]->str, x->element[0]->len);
    const char *cs = x->element[1]->str, *rs = x->element[2]->str;
    if (*cs) l->concurrency = num(cs, 1, LASH_LIMIT_CONCURRENCY_MAX);
    if (*rs) {
        char r[24] = "", p[24] = "";
        const char *slash = strchr(rs, '/');
        size_t rl = slash ? (size_t)(slash - rs) : 0;
        if (slash && rl < sizeof r && strlen(slash + 1) < sizeof p) {
            memcpy(r, rs, rl);
            snprintf(p, sizeof p, "%s", slash + 1);
        }
        l->rate = num(r, 1, LASH_LIMIT_RATE_MAX);
        l->period_ms = num(p, 1, LASH_LIMIT_PERIOD_MAX);
        if (l->rate < 0 || l->period_ms < 0) l->rate = l->period_ms = -1;
    }
    l->running = x->element[3]->integer;
    l->held = x->element[4]->integer;
    return true;
}

lash_status lash_limit_list(lash_conn *c, const char *queue, lash_limit **out, size_t *n,
                            lash_err *e)
{
    lash_status st;
    *out = NULL;
    *n = 0;
    if ((st = lash_queue_check(queue, e))) return st;
    lash_argv a;
    lash_argv_script(&a, LASH_OP_LIMIT, queue);
    lash_argv_adds(&a, "list");
    redisReply *r = run(c, &a, e, &st);
    if (!r) return st;
    if (r->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        return lash_fail(e, LASH_EPROTO, "limit list: expected an array");
    }
    if (r->elements > 0 && !(*out = calloc(r->elements, sizeof **out))) {
        freeReplyObject(r);
        return lash_fail(e, LASH_ENOMEM, "limit list: out of memory");
    }
    for (size_t i = 0; i < r->elements; i++) {
        if (!entry(r->element[i], &(*out)[*n])) {
            free(*out);
            *out = NULL;
            *n = 0;
            freeReplyObject(r);
            return lash_fail(e, LASH_EPROTO, "limit list: entry %zu is malformed", i);
        }
        ++*n;
    }
    freeReplyObject(r);
    return LASH_OK;
}
