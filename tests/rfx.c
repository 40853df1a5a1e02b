/* rfx.c: the registry suites' fixture (see rfx.h). */
#include "rfx.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const lash_retention KEEP_ALL = {-1, 0};

lash_fx_redis R;
lash_conn *C;

void rfx_setup(void)
{
    lash_fx_redis_start(&R, NULL);
    C = lash_fx_connect(&R);
}

void rfx_teardown(void)
{
    lash_close(C);
    lash_fx_redis_stop(&R);
}

/* ---- helpers -------------------------------------------------------------------- */

/* A raw command on the test's connection; asserts it was answered. */
redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(lash_conn_redis(C), fmt, ap);
    va_end(ap);
    cr_assert(r, "redis: %s", lash_conn_redis(C)->errstr);
    return r;
}

long long cmd_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(lash_conn_redis(C), fmt, ap);
    va_end(ap);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "expected an integer reply (%s)",
              r && r->type == REDIS_REPLY_ERROR ? r->str : "?");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

void cmd_ok(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(lash_conn_redis(C), fmt, ap);
    va_end(ap);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "command failed: %s",
              r ? r->str : lash_conn_redis(C)->errstr);
    freeReplyObject(r);
}

redisContext *subscriber(const char *how, const char *chan)
{
    redisContext *s = redisConnectUnix(R.sock);
    cr_assert(s && !s->err);
    struct timeval tv = {5, 0};
    redisSetTimeout(s, tv);
    redisReply *r = redisCommand(s, "%s %s", how, chan);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "%s %s failed", how, chan);
    freeReplyObject(r);
    return s;
}

void expect_message(redisContext *s, const char *kind, const char *chan, const char *msg)
{
    void *rv = NULL;
    cr_assert_eq(redisGetReply(s, &rv), REDIS_OK, "no message on %s", chan);
    redisReply *r = rv;
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    cr_expect_str_eq(r->element[0]->str, kind);
    cr_expect_str_eq(r->element[1]->str, chan);
    cr_expect_str_eq(r->element[2]->str, msg);
    freeReplyObject(r);
}

long long server_ms(void)
{
    redisReply *r = cmd("TIME");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    long long ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

/* ZSCORE as ms, or -1 when absent. */
long long zscore(const char *q, const char *set, const char *id)
{
    redisReply *r = cmd("ZSCORE lash:{%s}:%s %s", q, set, id);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

/* HGET of a row field, malloc'd, or NULL. */
char *hget(const char *q, const char *id, const char *field)
{
    redisReply *r = cmd("HGET lash:{%s}:p:%s %s", q, id, field);
    char *v = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    freeReplyObject(r);
    return v;
}

int64_t F(const char *q, const char *id)
{
    char *v = hget(q, id, "fence");
    cr_assert(v, "%s has no fence", id);
    int64_t f = atoll(v);
    free(v);
    return f;
}

void expect_field(const char *q, const char *id, const char *field, const char *want)
{
    char *v = hget(q, id, field);
    if (want)
        cr_expect(v && strcmp(v, want) == 0, "%s.%s = %s, want %s", id, field, v ? v : "(nil)",
                  want);
    else
        cr_expect_null(v, "%s.%s = %s, want nothing", id, field, v);
    free(v);
}

void expect_field_has(const char *q, const char *id, const char *field, const char *part)
{
    char *v = hget(q, id, field);
    cr_expect(v && strstr(v, part), "%s.%s = %s, want it to contain '%s'", id, field,
              v ? v : "(nil)", part);
    free(v);
}

lash_submission job(const char *id, const char *kind, const char *payload)
{
    lash_submission s = {0};
    s.id = id;
    s.kind = kind;
    s.payload = payload;
    s.payload_len = payload ? strlen(payload) : 0;
    return s;
}

lash_submitted submit1(const char *q, lash_submission s)
{
    lash_submitted out;
    lash_err e = {0};
    cr_assert_eq(lash_submit(C, q, &s, 1, &out, &e), LASH_OK, "submit: %s", e.msg);
    return out;
}

void submit_ok(const char *q, lash_submission s)
{
    lash_submitted o = submit1(q, s);
    cr_assert_eq(o.status, LASH_SUB_CREATED, "submit %s: %d %s", o.id, o.status, o.msg);
}

/* n rows "<prefix><i>" of kind k, payload {"i":i}, in one call. */
void submit_many(lash_conn *c, const char *q, const char *prefix, int n, int max_attempts)
{
    lash_submission *s = calloc((size_t)n, sizeof *s);
    char(*ids)[32] = calloc((size_t)n, 32);
    char(*pl)[32] = calloc((size_t)n, 32);
    lash_submitted *out = calloc((size_t)n, sizeof *out);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], 32, "%s%d", prefix, i);
        snprintf(pl[i], 32, "{\"i\":%d}", i);
        s[i] = job(ids[i], "k", pl[i]);
        s[i].max_attempts = max_attempts;
    }
    lash_err e = {0};
    cr_assert_eq(lash_submit(c, q, s, (size_t)n, out, &e), LASH_OK, "%s", e.msg);
    for (int i = 0; i < n; i++)
        cr_assert_eq(out[i].status, LASH_SUB_CREATED, "%s: %s", ids[i], out[i].msg);
    free(s);
    free(ids);
    free(pl);
    free(out);
}

lash_claim_batch claim(const char *q, const char *owner, int n, int64_t ttl)
{
    lash_claim_batch b;
    lash_err e = {0};
    cr_assert_eq(lash_claim(C, q, owner, n, ttl, KEEP_ALL, 0, -1, &b, &e), LASH_OK, "claim: %s",
                 e.msg);
    return b;
}

/* Claims exactly one row and returns its fence. */
int64_t claim_one(const char *q, const char *owner, const char *id, int64_t ttl)
{
    lash_claim_batch b = claim(q, owner, 10, ttl);
    cr_assert_eq(b.n, 1, "claimed %zu rows, want 1", b.n);
    cr_assert_str_eq(b.rows[0].id, id);
    int64_t fence = b.rows[0].fence;
    lash_claim_batch_free(&b);
    return fence;
}

int complete1(const char *q, const char *id, const char *owner, int64_t fence, lash_outcome o,
              const char *text, int64_t retry_ms)
{
    lash_completion c = {{id, owner, fence}, o, text, text ? strlen(text) : 0, retry_ms};
    int st = -1;
    lash_err e = {0};
    cr_assert_eq(lash_complete(C, q, &c, 1, &st, &e), LASH_OK, "complete: %s", e.msg);
    return st;
}

int renew1(const char *q, const char *id, const char *owner, int64_t fence, int64_t ttl)
{
    lash_lease l = {id, owner, fence};
    int st = -1;
    lash_err e = {0};
    cr_assert_eq(lash_renew(C, q, ttl, &l, 1, &st, &e), LASH_OK, "renew: %s", e.msg);
    return st;
}

int release1(const char *q, const char *id, const char *owner, int64_t fence)
{
    lash_lease l = {id, owner, fence};
    int st = -1;
    lash_err e = {0};
    cr_assert_eq(lash_release(C, q, &l, NULL, 1, &st, &e), LASH_OK, "release: %s", e.msg);
    return st;
}

lash_stats stats(const char *q)
{
    return lash_fx_stats(C, q);
}

lash_record get(const char *q, const char *id)
{
    return lash_fx_get(C, q, id);
}

void expect_state(const char *q, const char *id, const char *state)
{
    expect_field(q, id, "state", state);
}

long long count_keys(const char *pattern)
{
    return lash_fx_count_keys(C, pattern);
}

/* Polls claim until it returns a row or ms pass (a generous liveness bound). */
lash_claim_batch claim_within(const char *q, const char *owner, int n, int64_t ttl, int ms)
{
    long long until = lash_fx_ms() + ms;
    for (;;) {
        lash_claim_batch b = claim(q, owner, n, ttl);
        if (b.n > 0 || lash_fx_ms() > until) return b;
        lash_claim_batch_free(&b);
        lash_fx_sleep_ms(10);
    }
}
