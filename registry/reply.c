/* reply.c: reply parsers (see reply.h). */
#include "registry/reply.h"

#include "proto/limits.h"

#include <stddef.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

lash_status lash_reply_check(const redisReply *r, const char *what, lash_err *e)
{
    if (!r) return lash_fail(e, LASH_EIO, "%s: no reply (connection lost)", what);
    if (r->type != REDIS_REPLY_ERROR) return LASH_OK;
    /* What Redis answers a client it has not authenticated, in one line. */
    if (strncmp(r->str, "NOAUTH", 6) == 0 || strstr(r->str, "unauthenticated"))
        return lash_fail(e, LASH_EREDIS,
                         "authentication required: this Redis wants a password "
                         "(LASH_REDIS_PASSWORD, or the URL's user and password)");
    if (strncmp(r->str, "WRONGPASS", 9) == 0)
        return lash_fail(e, LASH_EREDIS, "WRONGPASS: Redis refused the user or password");
    return lash_fail(e, LASH_EREDIS, "%s: Redis said: %.180s", what, r->str);
}

static bool is_str(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS;
}

/* Copies a string element into dst (cap bytes incl. NUL); false when too long. */
static bool copy_str(char *dst, size_t cap, const redisReply *r)
{
    if (!is_str(r) || r->len >= cap) return false;
    memcpy(dst, r->str, r->len);
    dst[r->len] = 0;
    return true;
}

/* An integer reply, or a string holding one; false otherwise. */
static bool get_int(const redisReply *r, int64_t *out)
{
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return true;
    }
    return is_str(r) && lash_parse_i64(r->str, r->len, INT64_MIN, INT64_MAX, out);
}

/* The claim's notes: n texts from x, each kept to 300 bytes (they go to logs). */
static lash_status claim_notes(redisReply **x, size_t n, lash_claim_batch *out, lash_err *e)
{
    if (n == 0) return LASH_OK;
    if (!(out->notes = calloc(n, sizeof *out->notes)))
        return lash_fail(e, LASH_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (!is_str(x[i])) return lash_fail(e, LASH_EPROTO, "claim: a note is not a string");
        size_t len = x[i]->len > 300 ? 300 : x[i]->len;
        if (!(out->notes[i] = malloc(len + 1))) return lash_fail(e, LASH_ENOMEM, "out of memory");
        memcpy(out->notes[i], x[i]->str, len);
        out->notes[i][len] = 0;
        out->bad++;
    }
    return LASH_OK;
}

/* One claimed row: its CLAIM_ROW values in a run of the reply (claim.lua puts
 * them there flat, not as an array each: a nested table costs Redis more). */
enum { CLAIM_ROW = 8 };

static lash_status claim_row(redisReply **x, lash_claimed *c, lash_err *e)
{
    int64_t attempt, fence, timeout, max;
    if (!copy_str(c->id, sizeof c->id, x[0]) || !copy_str(c->kind, sizeof c->kind, x[1]) ||
        !is_str(x[2]) || !get_int(x[3], &attempt) || !get_int(x[4], &fence) ||
        !get_int(x[5], &timeout) || !copy_str(c->backoff, sizeof c->backoff, x[6]) ||
        !get_int(x[7], &max))
        return lash_fail(e, LASH_EPROTO, "claim: a row has a field of the wrong type or size");
    c->payload = malloc(x[2]->len + 1);
    if (!c->payload) return lash_fail(e, LASH_ENOMEM, "out of memory");
    memcpy(c->payload, x[2]->str, x[2]->len);
    c->payload[x[2]->len] = 0;
    c->payload_len = x[2]->len;
    c->attempt = (int)attempt;
    c->max_attempts = (int)max;
    c->fence = fence;
    c->timeout_ms = timeout;
    return LASH_OK;
}

lash_status lash_reply_peek(const redisReply *r, int64_t *wait_ms, lash_err *e)
{
    /* More than the scripts' cap is not a wait lash wrote. */
    if (r->type != REDIS_REPLY_INTEGER || r->integer < -1 || r->integer > LASH_WAIT_MAX)
        return lash_fail(e, LASH_EPROTO, "peek: expected -1..%d ms", LASH_WAIT_MAX);
    *wait_ms = r->integer;
    return LASH_OK;
}

lash_status lash_reply_claim(const redisReply *r, lash_claim_batch *out, lash_err *e)
{
    lash_status st;
    int64_t seen, workers, wait, rows;
    memset(out, 0, sizeof *out);
    if ((st = lash_reply_check(r, "claim", e))) return st;
    /* {seen, workers, wait, rows, CLAIM_ROW values a row..., notes...} */
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 4 || !get_int(r->element[0], &seen) ||
        seen < 0 || !get_int(r->element[1], &workers) || workers < 0 || workers > INT_MAX ||
        !get_int(r->element[2], &wait) || wait < -1 || wait > LASH_WAIT_MAX ||
        !get_int(r->element[3], &rows) || rows < 0 ||
        (uint64_t)rows > (r->elements - 4) / CLAIM_ROW)
        return lash_fail(e, LASH_EPROTO,
                         "claim: reply is not {seen, workers, wait, rows, 8 values a row..., "
                         "notes...}");
    out->seen = (size_t)seen;
    out->workers = (int)workers;
    out->wait_ms = wait;
    size_t n = (size_t)rows, at = 4 + n * CLAIM_ROW;
    if ((st = claim_notes(r->element + at, r->elements - at, out, e))) {
        lash_claim_batch_free(out);
        return st;
    }
    if (n == 0) return LASH_OK;
    out->rows = calloc(n, sizeof *out->rows);
    if (!out->rows) return lash_fail(e, LASH_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if ((st = claim_row(r->element + 4 + i * CLAIM_ROW, &out->rows[i], e))) {
            lash_claim_batch_free(out);
            return st;
        }
        out->n++;
    }
    return LASH_OK;
}

lash_status lash_reply_recover(const redisReply *r, const char *owner, lash_recovered *out,
                               lash_err *e)
{
    lash_status st;
    memset(out, 0, sizeof *out);
    if ((st = lash_reply_check(r, "recover", e))) return st;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return lash_fail(e, LASH_EPROTO, "recover: reply is not id/fence pairs");
    if (r->elements == 0) return LASH_OK;
    if (!(out->leases = calloc(r->elements / 2, sizeof *out->leases)))
        return lash_fail(e, LASH_ENOMEM, "out of memory");
    for (size_t i = 0; i < r->elements; i += 2) {
        lash_lease *l = &out->leases[out->n];
        char *id = malloc(LASH_ID_MAX + 1);
        if (!id)
            st = lash_fail(e, LASH_ENOMEM, "out of memory");
        else if (!copy_str(id, LASH_ID_MAX + 1, r->element[i]) ||
                 !get_int(r->element[i + 1], &l->fence))
            st = lash_fail(e, LASH_EPROTO, "recover: pair %zu is not an id and a fence", i / 2);
        if (st) {
            free(id);
            lash_recovered_free(out);
            return st;
        }
        l->id = id;
        l->owner = owner;
        out->n++;
    }
    return LASH_OK;
}

lash_status lash_reply_ints(const redisReply *r, size_t n, int *status, lash_err *e)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != n)
        return lash_fail(e, LASH_EPROTO, "expected an array of %zu statuses", n);
    for (size_t i = 0; i < n; i++) {
        int64_t v;
        if (!get_int(r->element[i], &v)) return lash_fail(e, LASH_EPROTO, "status not an integer");
        status[i] = (int)v;
    }
    return LASH_OK;
}

lash_status lash_reply_submit(const redisReply *r, lash_submitted *out, const size_t *map,
                              size_t nsent, lash_err *e)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != nsent)
        return lash_fail(e, LASH_EPROTO, "submit: expected %zu results", nsent);
    for (size_t j = 0; j < nsent; j++) {
        const redisReply *x = r->element[j];
        lash_submitted *o = &out[map[j]];
        if (x->type != REDIS_REPLY_ARRAY || x->elements != 2 ||
            !copy_str(o->id, sizeof o->id, x->element[0]) || !is_str(x->element[1]))
            return lash_fail(e, LASH_EPROTO, "submit: result %zu is not {id, status}", j);
        const char *s = x->element[1]->str;
        o->msg[0] = 0;
        if (strcmp(s, "created") == 0)
            o->status = LASH_SUB_CREATED;
        else if (strcmp(s, "exists") == 0)
            o->status = LASH_SUB_EXISTS;
        else {
            o->status = strncmp(s, "conflict", 8) == 0 ? LASH_SUB_CONFLICT : LASH_SUB_INVALID;
            snprintf(o->msg, sizeof o->msg, "%s", s);
        }
    }
    return LASH_OK;
}

lash_status lash_reply_record(const redisReply *r, const char *queue, const char *id,
                              lash_record *rec, lash_err *e)
{
    lash_status st;
    lash_record_init(rec);
    if ((st = lash_reply_check(r, "get", e))) return st;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return lash_fail(e, LASH_EPROTO, "get: HGETALL did not return pairs");
    if (r->elements == 0) return lash_fail(e, LASH_ENOTFOUND, "process %s not found", id);
    snprintf(rec->id, sizeof rec->id, "%s", id);
    snprintf(rec->queue, sizeof rec->queue, "%s", queue);
    lash_status first = LASH_OK;
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (!is_str(f) || !is_str(v) || f->len > 32) continue;
        lash_err fe;
        /* Keep reading after a bad field so the caller sees the rest of the row. */
        if ((st = lash_record_set(rec, f->str, v->str, v->len, &fe)) && first == LASH_OK) {
            first = st;
            if (e) *e = fe;
        }
    }
    if (first) return first;
    return lash_record_check(rec, e);
}

void lash_list_page_free(lash_list_page *p)
{
    free(p->rows);
    memset(p, 0, sizeof *p);
}

lash_status lash_reply_list(const redisReply *r, lash_list_page *out, lash_err *e)
{
    lash_status st;
    memset(out, 0, sizeof *out);
    if ((st = lash_reply_check(r, "list", e))) return st;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 ||
        !copy_str(out->next, sizeof out->next, r->element[0]))
        return lash_fail(e, LASH_EPROTO, "list: reply is not {cursor, rows...}");
    size_t n = r->elements - 1;
    out->rows = calloc(n ? n : 1, sizeof *out->rows);
    if (!out->rows) return lash_fail(e, LASH_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const redisReply *x = r->element[i + 1];
        lash_list_row *o = &out->rows[i];
        int64_t attempt, score;
        if (x->type != REDIS_REPLY_ARRAY || x->elements != 5 ||
            !copy_str(o->id, sizeof o->id, x->element[0]) ||
            !copy_str(o->state, sizeof o->state, x->element[1]) ||
            !copy_str(o->kind, sizeof o->kind, x->element[2]) ||
            !get_int(x->element[3], &attempt) || !get_int(x->element[4], &score)) {
            /* A garbled row still lists, flagged, rather than hiding the page. */
            snprintf(o->state, sizeof o->state, "?");
            attempt = score = 0;
        }
        o->attempt = (int)attempt;
        o->score_ms = score;
        out->n++;
    }
    return LASH_OK;
}

lash_status lash_reply_stats(const redisReply *r, lash_stats *out, lash_err *e)
{
    lash_status st;
    memset(out, 0, sizeof *out);
    if ((st = lash_reply_check(r, "stats", e))) return st;
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return lash_fail(e, LASH_EPROTO, "stats: reply is not field/value pairs");
    static const struct {
        const char *name;
        size_t off;
    } totals[] = {
        {"total_submitted", offsetof(lash_stats, total_submitted)},
        {"total_completed", offsetof(lash_stats, total_completed)},
        {"total_failed", offsetof(lash_stats, total_failed)},
        {"total_cancelled", offsetof(lash_stats, total_cancelled)},
        {"total_abandoned", offsetof(lash_stats, total_abandoned)},
        {"total_retried", offsetof(lash_stats, total_retried)},
        {"total_lost", offsetof(lash_stats, total_lost)},
        {"due", offsetof(lash_stats, due)},
        {"done", offsetof(lash_stats, done)},
        {"oldest_due_ms", offsetof(lash_stats, oldest_due_ms)},
        {"workers", offsetof(lash_stats, workers)},
        {"now_ms", offsetof(lash_stats, now_ms)},
        {"eligible", offsetof(lash_stats, eligible)},
    };
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *f = r->element[i];
        int64_t v;
        if (!is_str(f) || !get_int(r->element[i + 1], &v)) continue;
        int s = lash_state_parse(f->str);
        if (s >= 0) {
            out->count[s] = v;
            continue;
        }
        for (size_t k = 0; k < sizeof totals / sizeof totals[0]; k++)
            if (strcmp(f->str, totals[k].name) == 0) *(int64_t *)((char *)out + totals[k].off) = v;
    }
    return LASH_OK;
}
