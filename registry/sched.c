/* sched.c: recurring schedules in Redis (see sched.h). */
#include "registry/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keys.h"
#include "registry/aconn.h"
#include "registry/conn.h"
#include "registry/reply.h"

/* A refusal of the script ("ERR lash: ...") is the caller's bad input. */
static lash_status check(const redisReply *r, const char *what, lash_err *e)
{
    lash_status st = lash_reply_check(r, what, e);
    if (st == LASH_EREDIS && strstr(r->str, "ERR lash: "))
        return lash_fail(e, LASH_EINVAL, "%s", strstr(r->str, "ERR lash: ") + 10);
    return st;
}

static redisReply *call(lash_conn *c, lash_argv *a, const char *what, lash_status *st, lash_err *e)
{
    redisReply *r = lash_conn_script(c, a, e);
    lash_argv_free(a);
    *st = r ? check(r, what, e) : LASH_EIO;
    return r;
}

static bool is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static bool str_is(const redisReply *r, const char *s)
{
    return is_str(r) && r->len == strlen(s) && memcmp(r->str, s, r->len) == 0;
}

lash_status lash_sched_add(lash_conn *c, const char *queue, const lash_sched_def *d,
                           lash_sched_added *out, lash_err *e)
{
    lash_status st;
    lash_cron cron;
    if ((st = lash_queue_check(queue, e)) || (st = lash_sched_name_check(d->job.id, e)) ||
        (st = lash_cron_parse(d->spec, &cron, e)) ||
        (d->tz && *d->tz && (st = lash_tz_name_check(d->tz, e))) ||
        (st = lash_submission_check(&d->job, e)))
        return st;
    if (d->job.delay_ms || d->job.run_at_ms)
        return lash_fail(e, LASH_EINVAL, "a schedule's firing runs at once: no delay or run_at");
    lash_argv a;
    lash_argv_script(&a, LASH_OP_SCHED, queue);
    lash_argv_adds(&a, "add");
    lash_argv_adds(&a, d->spec);
    lash_argv_adds(&a, d->tz ? d->tz : "");
    lash_argv_submit_row(&a, &d->job, d->job.id);
    redisReply *r = call(c, &a, "schedule add", &st, e);
    if (!st) {
        if (str_is(r, "created"))
            *out = LASH_SCHED_CREATED;
        else if (str_is(r, "exists"))
            *out = LASH_SCHED_EXISTS;
        else if (str_is(r, "replaced"))
            *out = LASH_SCHED_REPLACED;
        else
            st = lash_fail(e, LASH_EPROTO, "schedule add: unexpected reply");
    }
    freeReplyObject(r);
    return st;
}

lash_status lash_sched_do(lash_conn *c, const char *queue, lash_sched_verb v, const char *name,
                          bool *found, lash_err *e)
{
    static const char *const verbs[] = {"rm", "pause", "resume"};
    lash_status st;
    *found = false;
    if ((st = lash_queue_check(queue, e)) || (st = lash_sched_name_check(name, e))) return st;
    lash_argv a;
    lash_argv_script(&a, LASH_OP_SCHED, queue);
    lash_argv_adds(&a, verbs[v]);
    lash_argv_adds(&a, name);
    redisReply *r = call(c, &a, "schedule", &st, e);
    if (!st) {
        if (str_is(r, "ok"))
            *found = true;
        else if (!str_is(r, "not found"))
            st = lash_fail(e, LASH_EPROTO, "schedule %s: unexpected reply", verbs[v]);
    }
    freeReplyObject(r);
    return st;
}

const char *lash_sched_field(const lash_sched_info *s, const char *f)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->fields[i], f) == 0) return s->values[i];
    return NULL;
}

static char *dup_reply(const redisReply *r)
{
    char *s = malloc(r->len + 1);
    if (s) {
        memcpy(s, r->str, r->len);
        s[r->len] = 0;
    }
    return s;
}

void lash_sched_list_free(lash_sched_info *s, size_t n)
{
    for (size_t i = 0; s && i < n; i++) {
        for (size_t j = 0; j < s[i].n; j++) {
            free(s[i].fields[j]);
            free(s[i].values[j]);
        }
        free(s[i].fields);
        free(s[i].values);
        free(s[i].name);
    }
    free(s);
}

lash_status lash_sched_list(lash_conn *c, const char *queue, lash_sched_info **out, size_t *n,
                            lash_err *e)
{
    lash_status st;
    *out = NULL;
    *n = 0;
    if ((st = lash_queue_check(queue, e))) return st;
    lash_argv a;
    lash_argv_script(&a, LASH_OP_SCHED, queue);
    lash_argv_adds(&a, "list");
    redisReply *r = call(c, &a, "schedule list", &st, e);
    if (st) goto done;
    if (r->type != REDIS_REPLY_ARRAY) {
        st = lash_fail(e, LASH_EPROTO, "schedule list: expected an array");
        goto done;
    }
    lash_sched_info *s = calloc(r->elements ? r->elements : 1, sizeof *s);
    if (!s) {
        st = lash_fail(e, LASH_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *row = r->element[i];
        if (row->type != REDIS_REPLY_ARRAY || row->elements < 1 || row->elements % 2 != 1 ||
            !is_str(row->element[0])) {
            lash_sched_list_free(s, i);
            st = lash_fail(e, LASH_EPROTO, "schedule list: malformed row %zu", i);
            goto done;
        }
        lash_sched_info *x = &s[i];
        x->n = row->elements / 2;
        x->name = dup_reply(row->element[0]);
        x->fields = calloc(x->n + 1, sizeof *x->fields);
        x->values = calloc(x->n + 1, sizeof *x->values);
        bool ok = x->name && x->fields && x->values;
        for (size_t j = 0; ok && j < x->n; j++) {
            const redisReply *f = row->element[1 + 2 * j], *v = row->element[2 + 2 * j];
            if (!is_str(f) || !is_str(v)) {
                lash_sched_list_free(s, i + 1);
                st = lash_fail(e, LASH_EPROTO, "schedule list: malformed field");
                goto done;
            }
            ok = (x->fields[j] = dup_reply(f)) && (x->values[j] = dup_reply(v));
        }
        if (!ok) {
            lash_sched_list_free(s, i + 1);
            st = lash_fail(e, LASH_ENOMEM, "out of memory");
            goto done;
        }
    }
    *out = s;
    *n = r->elements;
done:
    freeReplyObject(r);
    return st;
}

/* ---- the workers ------------------------------------------------------------ */

static bool reply_i64(const redisReply *r, int64_t *v)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *v = r->integer;
        return true;
    }
    if (!is_str(r) || r->len == 0 || r->len > 20) return false;
    return lash_parse_i64(r->str, r->len, -1, INT64_MAX, v);
}

static bool copy_field(char *dst, size_t cap, const redisReply *r)
{
    if (!is_str(r) || r->len >= cap || memchr(r->str, 0, r->len)) return false;
    memcpy(dst, r->str, r->len);
    dst[r->len] = 0;
    return true;
}

static lash_status parse_due(const redisReply *r, lash_sched_due *d, lash_err *e)
{
    memset(d, 0, sizeof *d);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2 || (r->elements - 2) % 4 ||
        (r->elements - 2) / 4 > 16 || !reply_i64(r->element[0], &d->now_ms) ||
        !reply_i64(r->element[1], &d->earliest))
        return lash_fail(e, LASH_EPROTO, "schedpeek: malformed reply");
    d->n = (r->elements - 2) / 4;
    for (size_t i = 0; i < d->n; i++) {
        redisReply **f = r->element + 2 + 4 * i;
        lash_sched_due_row *x = &d->rows[i];
        if (!copy_field(x->name, sizeof x->name, f[0]))
            return lash_fail(e, LASH_EPROTO, "schedpeek: malformed name");
        /* Anything wrong with the stored fields is the schedule's, not the call's. */
        x->bad = !copy_field(x->spec, sizeof x->spec, f[1]) ||
                 !copy_field(x->tz, sizeof x->tz, f[2]) || !reply_i64(f[3], &x->next_ms) ||
                 x->next_ms < 0;
    }
    return LASH_OK;
}

static void fire_argv(lash_argv *a, const char *queue, const lash_sched_firing *f, size_t n)
{
    lash_argv_script(a, LASH_OP_SCHED, queue);
    lash_argv_adds(a, "fire");
    for (size_t i = 0; i < n; i++) {
        lash_argv_adds(a, f[i].name);
        lash_argv_addi(a, f[i].expect_ms);
        if (f[i].fire_ms >= 0)
            lash_argv_addi(a, f[i].fire_ms);
        else
            lash_argv_adds(a, "");
        lash_argv_addi(a, f[i].next_ms);
        lash_argv_addi(a, f[i].skipped);
        lash_argv_adds(a, f[i].why ? f[i].why : "");
    }
}

void lash_sched_statuses_free(char **s, size_t n)
{
    for (size_t i = 0; s && i < n; i++)
        free(s[i]);
    free(s);
}

static lash_status parse_statuses(const redisReply *r, size_t n, char ***out, lash_err *e)
{
    *out = NULL;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
        return lash_fail(e, LASH_EPROTO, "schedule fire: expected %zu statuses", n);
    char **s = calloc(n ? n : 1, sizeof *s);
    if (!s) return lash_fail(e, LASH_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!is_str(r->element[i]) || !(s[i] = dup_reply(r->element[i]))) {
            lash_sched_statuses_free(s, i);
            return lash_fail(e, LASH_EPROTO, "schedule fire: malformed status");
        }
    }
    *out = s;
    return LASH_OK;
}

lash_status lash_sched_peek(lash_conn *c, const char *queue, lash_sched_due *out, lash_err *e)
{
    lash_status st;
    if ((st = lash_queue_check(queue, e))) return st;
    lash_argv a;
    lash_argv_script(&a, LASH_OP_SCHEDPEEK, queue);
    redisReply *r = call(c, &a, "schedpeek", &st, e);
    if (!st) st = parse_due(r, out, e);
    freeReplyObject(r);
    return st;
}

lash_status lash_sched_fire(lash_conn *c, const char *queue, const lash_sched_firing *f, size_t n,
                            char ***statuses, lash_err *e)
{
    lash_status st;
    *statuses = NULL;
    if ((st = lash_queue_check(queue, e))) return st;
    lash_argv a;
    fire_argv(&a, queue, f, n);
    redisReply *r = call(c, &a, "schedule fire", &st, e);
    if (!st) st = parse_statuses(r, n, statuses, e);
    freeReplyObject(r);
    return st;
}

typedef struct {
    lash_asched_peek_cb *peek;
    lash_asched_fire_cb *fire;
    size_t n;
    void *ud;
} actx;

static void on_raw(lash_status st, const redisReply *r, const lash_err *e0, void *ud)
{
    actx *x = ud;
    lash_err e = *e0;
    if (!st && r) st = check(r, x->peek ? "schedpeek" : "schedule fire", &e);
    if (x->peek) {
        lash_sched_due d = {0};
        if (!st) st = parse_due(r, &d, &e);
        x->peek(st, &d, &e, x->ud);
    } else {
        char **s = NULL;
        if (!st) st = parse_statuses(r, x->n, &s, &e);
        x->fire(st, s, st ? 0 : x->n, &e, x->ud);
        lash_sched_statuses_free(s, st ? 0 : x->n);
    }
    free(x);
}

lash_status lash_asched_peek(struct lash_aconn *c, const char *queue, lash_asched_peek_cb *cb,
                             void *ud)
{
    actx *x = calloc(1, sizeof *x);
    if (!x) return LASH_ENOMEM;
    x->peek = cb;
    x->ud = ud;
    lash_argv a;
    lash_argv_script(&a, LASH_OP_SCHEDPEEK, queue);
    lash_status st = lash_asend_raw(c, &a, on_raw, x);
    if (st) free(x);
    return st;
}

lash_status lash_asched_fire(struct lash_aconn *c, const char *queue, const lash_sched_firing *f,
                             size_t n, lash_asched_fire_cb *cb, void *ud)
{
    actx *x = calloc(1, sizeof *x);
    if (!x) return LASH_ENOMEM;
    x->fire = cb;
    x->n = n;
    x->ud = ud;
    lash_argv a;
    fire_argv(&a, queue, f, n);
    lash_status st = lash_asend_raw(c, &a, on_raw, x);
    if (st) free(x);
    return st;
}
