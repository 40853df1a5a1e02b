/* sut.c: the registry calls and the hands of the model-based test (see sut.h). */
#include "sut.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"
#include "registry/limit.h"

#define Q "lash:{" LM_QUEUE "}"

const bool sut_release_knows_ran = true;

static const lash_retention KEEP_ALL = {-1, 0};

/* "owner:fence" into a lease; false when the text is not one. */
static bool parse_token(const char *token, char *owner, size_t cap, int64_t *fence)
{
    const char *colon = strrchr(token, ':');
    if (!colon || colon == token || (size_t)(colon - token) >= cap) return false;
    char *end;
    long long f = strtoll(colon + 1, &end, 10);
    if (*end || end == colon + 1) return false;
    memcpy(owner, token, (size_t)(colon - token));
    owner[colon - token] = 0;
    *fence = f;
    return true;
}

typedef struct {
    char owner[LM_TOKEN_MAX];
} owner_buf;

static lash_lease *leases(const lm_tok *t, size_t n, owner_buf *ob)
{
    lash_lease *l = calloc(n ? n : 1, sizeof *l);
    cr_assert(l);
    for (size_t i = 0; i < n; i++) {
        int64_t fence = 0;
        cr_assert(parse_token(t[i].token, ob[i].owner, sizeof ob[i].owner, &fence),
                  "token '%s' is not owner:fence", t[i].token);
        l[i] = (lash_lease){lm_id(t[i].id), ob[i].owner, fence};
    }
    return l;
}

lash_status sut_submit(lash_conn *c, const lm_sub *s, size_t n, lash_submitted *out, lash_err *e)
{
    lash_submission subs[8];
    char after[8][64];
    cr_assert(n <= 8);
    for (size_t i = 0; i < n; i++) {
        const lm_reg *g = &lm_regs[s[i].reg];
        subs[i] = (lash_submission){0};
        subs[i].id = lm_id(s[i].id);
        subs[i].kind = "k";
        subs[i].payload = g->payload;
        subs[i].payload_len = strlen(g->payload);
        subs[i].max_attempts = g->max_attempts;
        subs[i].on_lost = g->abandon ? LASH_ON_LOST_ABANDON : LASH_ON_LOST_RERUN;
        subs[i].delay_ms = s[i].delay ? LM_DELAY_LONG : 0;
        subs[i].priority = s[i].prio;
        after[i][0] = 0;
        for (int d = 0; d < LM_NIDS; d++)
            if (s[i].after & (1u << d))
                snprintf(after[i] + strlen(after[i]), sizeof after[i] - strlen(after[i]), "%s%s",
                         after[i][0] ? "," : "", lm_id(d));
        subs[i].after = after[i][0] ? after[i] : NULL;
    }
    return lash_submit(c, LM_QUEUE, subs, n, out, e);
}

lash_status sut_claim(lash_conn *c, int owner, int n, int64_t ttl_ms, lash_claim_batch *out,
                      lash_err *e)
{
    return lash_claim(c, LM_QUEUE, lm_owner(owner), n, ttl_ms, KEEP_ALL, 0, -1, out, e);
}

lash_status sut_renew(lash_conn *c, int64_t ttl_ms, const lm_tok *t, size_t n, int *st, lash_err *e)
{
    owner_buf ob[16];
    cr_assert(n <= 16);
    lash_lease *l = leases(t, n, ob);
    lash_status s = lash_renew(c, LM_QUEUE, ttl_ms, l, n, st, e);
    free(l);
    return s;
}

lash_status sut_complete(lash_conn *c, const lm_fin *f, size_t n, int *st, lash_err *e)
{
    owner_buf ob[16];
    lash_completion r[16];
    cr_assert(n <= 16);
    for (size_t i = 0; i < n; i++) {
        int64_t fence = 0;
        cr_assert(parse_token(f[i].t.token, ob[i].owner, sizeof ob[i].owner, &fence));
        const char *text = f[i].outcome == LASH_OUT_OK ? "\"done\"" : "it broke";
        r[i] = (lash_completion){{lm_id(f[i].t.id), ob[i].owner, fence},
                                 f[i].outcome,
                                 text,
                                 strlen(text),
                                 f[i].later ? LM_DELAY_LONG : 0};
    }
    return lash_complete(c, LM_QUEUE, r, n, st, e);
}

lash_status sut_release(lash_conn *c, const lm_tok *t, const bool *ran, size_t n, int *st,
                        lash_err *e)
{
    owner_buf ob[16];
    cr_assert(n <= 16);
    lash_lease *l = leases(t, n, ob);
    lash_status s = lash_release(c, LM_QUEUE, l, ran, n, st, e);
    free(l);
    return s;
}

lash_status sut_cancel(lash_conn *c, int id, bool *requested, lash_err *e)
{
    *requested = false;
    return lash_cancel(c, LM_QUEUE, lm_id(id), "not needed", requested, e);
}

lash_status sut_retry(lash_conn *c, int id, lash_err *e)
{
    return lash_retry(c, LM_QUEUE, lm_id(id), e);
}

lash_status sut_trim(lash_conn *c, int keep_n, int max, int64_t *removed, lash_err *e)
{
    *removed = -1;
    return lash_trim(c, LM_QUEUE, (lash_retention){keep_n, 0}, max, removed, e);
}

/* ---- raw commands --------------------------------------------------------------- */

static redisReply *raw(lash_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(lash_conn_redis(c), fmt, ap);
    va_end(ap);
    cr_assert(r, "redis: %s", lash_conn_redis(c)->errstr);
    return r;
}

static void raw_ok(lash_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(lash_conn_redis(c), fmt, ap);
    va_end(ap);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "%s: %s", fmt,
              r ? r->str : lash_conn_redis(c)->errstr);
    freeReplyObject(r);
}

void sut_recount(lash_conn *c)
{
    static const char *const states[6] = {"pending", "running",   "completed",
                                          "failed",  "cancelled", "abandoned"};
    long long n[6] = {0};
    char cursor[32] = "0";
    do {
        redisReply *r = raw(c, "SCAN %s MATCH %s COUNT 1000", cursor, Q ":p:*");
        cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            redisReply *s = raw(c, "HGET %s state", r->element[1]->element[i]->str);
            for (int k = 0; k < 6; k++)
                if (s->type == REDIS_REPLY_STRING && strcmp(s->str, states[k]) == 0) n[k]++;
            freeReplyObject(s); /* an error: a key of another type, not a row */
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    raw_ok(c,
           "HSET " Q ":stats pending %lld running %lld completed %lld failed %lld "
           "cancelled %lld abandoned %lld",
           n[0], n[1], n[2], n[3], n[4], n[5]);
}

lash_status sut_progress(lash_conn *c, const lm_tok *t, const int *pct, size_t n, int *st,
                         lash_err *e)
{
    owner_buf ob[16];
    lash_progress_report r[16];
    char text[16][16];
    cr_assert(n <= 16);
    lash_lease *l = leases(t, n, ob);
    for (size_t i = 0; i < n; i++) {
        snprintf(text[i], sizeof text[i], "step %d", pct[i]);
        r[i] = (lash_progress_report){l[i], pct[i], text[i], strlen(text[i])};
    }
    lash_status s = lash_report_progress(c, LM_QUEUE, r, n, st, e);
    free(l);
    return s;
}

lash_status sut_limit(lash_conn *c, int concurrency, lash_err *e)
{
    if (!concurrency) {
        bool had = false;
        return lash_limit_rm(c, LM_QUEUE, "k", &had, e);
    }
    return lash_limit_set(c, LM_QUEUE, "k", concurrency, LASH_LIMIT_KEEP, LASH_LIMIT_KEEP, e);
}

void sut_advance(lash_conn *c, int id, const char *score, bool move_due)
{
    redisReply *r = raw(c, "PTTL " Q ":lease:%s", lm_id(id));
    bool expires = r->type == REDIS_REPLY_INTEGER && r->integer >= 0;
    freeReplyObject(r);
    if (expires) {
        raw_ok(c, "PEXPIRE " Q ":lease:%s 1", lm_id(id));
        sut_wait_leases_gone(c, &id, 1);
    }
    if (!move_due) return;
    raw_ok(c, "ZADD " Q ":due XX %s %s", score, lm_id(id));
    /* A prioritized row waiting for its time; one in prio:ready is due already. */
    raw_ok(c, "ZADD " Q ":prio:wait XX %s %s", score, lm_id(id));
}

void sut_wait_leases_gone(lash_conn *c, const int *ids, size_t n)
{
    long long until = lash_fx_ms() + 5000;
    for (size_t i = 0; i < n; i++) {
        for (;;) {
            redisReply *r = raw(c, "PTTL " Q ":lease:%s", lm_id(ids[i]));
            bool gone = r->type == REDIS_REPLY_INTEGER && r->integer < 0; /* or never will */
            freeReplyObject(r);
            if (gone) break;
            cr_assert(lash_fx_ms() < until, "the lease of %s did not run out", lm_id(ids[i]));
            lash_fx_sleep_ms(2);
        }
    }
    /* A due score set beside the lease (now + ttl, from TIME) may lie a hair
     * after the lease's own expiry: let the clock pass it too. */
    lash_fx_sleep_ms(3);
}

/* ---- hands ---------------------------------------------------------------------- */

static char said[256];

#define SAY(...) (snprintf(said, sizeof said, __VA_ARGS__), said)

const char *sut_hand_row_junk(lash_conn *c, int id, int variant)
{
    const char *id_ = lm_id(id);
    raw_ok(c, "DEL " Q ":p:%s", id_);
    switch (variant % 3) {
    case 0:
        raw_ok(c, "SET " Q ":p:%s junk", id_);
        return SAY("SET '" Q ":p:%s' junk", id_);
    case 1:
        raw_ok(c, "RPUSH " Q ":p:%s junk", id_);
        return SAY("RPUSH '" Q ":p:%s' junk", id_);
    default:
        raw_ok(c, "SADD " Q ":p:%s junk", id_);
        return SAY("SADD '" Q ":p:%s' junk", id_);
    }
}

const char *sut_hand_del_row(lash_conn *c, int id)
{
    raw_ok(c, "DEL " Q ":p:%s", lm_id(id));
    return SAY("DEL '" Q ":p:%s'", lm_id(id));
}

const char *sut_hand_del_field(lash_conn *c, int id, const char *field)
{
    raw_ok(c, "HDEL " Q ":p:%s %s", lm_id(id), field);
    return SAY("HDEL '" Q ":p:%s' %s", lm_id(id), field);
}

const char *sut_hand_set_state_junk(lash_conn *c, int id)
{
    raw_ok(c, "HSET " Q ":p:%s state zombie", lm_id(id));
    return SAY("HSET '" Q ":p:%s' state zombie", lm_id(id));
}

const char *sut_hand_set_fence(lash_conn *c, int id, int64_t fence)
{
    raw_ok(c, "HSET " Q ":p:%s fence %lld", lm_id(id), (long long)fence);
    return SAY("HSET '" Q ":p:%s' fence %lld", lm_id(id), (long long)fence);
}

const char *sut_hand_set_lease(lash_conn *c, int id, const char *token, bool ttl)
{
    raw_ok(c, "DEL " Q ":lease:%s", lm_id(id));
    if (ttl) {
        raw_ok(c, "SET " Q ":lease:%s %s PX %d", lm_id(id), token, LM_TTL_LONG);
        return SAY("SET '" Q ":lease:%s' %s PX %d", lm_id(id), token, LM_TTL_LONG);
    }
    raw_ok(c, "SET " Q ":lease:%s %s", lm_id(id), token);
    return SAY("SET '" Q ":lease:%s' %s", lm_id(id), token);
}

const char *sut_hand_lease_junk(lash_conn *c, int id, int variant, bool ttl)
{
    const char *id_ = lm_id(id);
    raw_ok(c, "DEL " Q ":lease:%s", id_);
    if (variant % 2 == 0)
        raw_ok(c, "HSET " Q ":lease:%s junk 1", id_);
    else
        raw_ok(c, "RPUSH " Q ":lease:%s junk", id_);
    if (ttl) raw_ok(c, "PEXPIRE " Q ":lease:%s %d", id_, LM_TTL_LONG);
    return SAY("%s '" Q ":lease:%s' junk%s%s", variant % 2 == 0 ? "HSET" : "RPUSH", id_,
               variant % 2 == 0 ? " 1" : "", ttl ? " + PEXPIRE" : " (no expiry)");
}

const char *sut_hand_due(lash_conn *c, int id, const char *score)
{
    raw_ok(c, "ZADD " Q ":due %s %s", score, lm_id(id));
    return SAY("ZADD '" Q ":due' %s %s", score, lm_id(id));
}

const char *sut_hand_done(lash_conn *c, int id, const char *score)
{
    raw_ok(c, "ZADD " Q ":done %s %s", score, lm_id(id));
    return SAY("ZADD '" Q ":done' %s %s", score, lm_id(id));
}

const char *sut_qfault_begin(lash_conn *c, const char *name, sut_saved *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->key, sizeof s->key, Q ":%s", name);
    redisReply *r = raw(c, "DUMP %s", s->key);
    if (r->type == REDIS_REPLY_STRING) {
        s->dump = malloc(r->len);
        cr_assert(s->dump);
        memcpy(s->dump, r->str, r->len);
        s->len = r->len;
    }
    freeReplyObject(r);
    r = raw(c, "PTTL %s", s->key);
    s->pttl = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    raw_ok(c, "SET %s junk", s->key);
    return SAY("SET '%s' junk (put back after the call)", s->key);
}

void sut_qfault_end(lash_conn *c, sut_saved *s)
{
    raw_ok(c, "DEL %s", s->key);
    if (s->dump)
        raw_ok(c, "RESTORE %s %lld %b", s->key, s->pttl > 0 ? s->pttl : 0LL, s->dump, s->len);
    free(s->dump);
    s->dump = NULL;
}
