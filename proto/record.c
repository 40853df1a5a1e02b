/* record.c: submission checks, backoff policy, and the row decoder (see record.h). */
#include "proto/record.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"
#include "proto/keys.h"

bool lash_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out)
{
    if (!s || len == 0 || len > 20) return false;
    int64_t v = 0;
    size_t i = 0;
    bool neg = s[0] == '-';
    if (neg && len == 1) return false;
    for (i = neg ? 1 : 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        int d = s[i] - '0';
        /* Accumulate negatively so INT64_MIN parses without overflow. */
        if (v < (INT64_MIN + d) / 10) return false;
        v = v * 10 - d;
    }
    if (!neg) {
        if (v == INT64_MIN) return false;
        v = -v;
    }
    if (v < min || v > max) return false;
    *out = v;
    return true;
}

lash_status lash_backoff_parse(const char *s, lash_backoff *out, lash_err *e)
{
    lash_backoff b = {0};
    const char *p;
    int64_t a, c;
    if (!s) return lash_fail(e, LASH_EINVAL, "backoff is missing");
    if (strncmp(s, "fixed:", 6) == 0) {
        p = s + 6;
        if (!lash_parse_i64(p, strlen(p), 0, LASH_DELAY_MAX, &a))
            return lash_fail(e, LASH_EINVAL, "backoff '%.40s': fixed:MS wants 0..%lld ms", s,
                             (long long)LASH_DELAY_MAX);
        b.base_ms = b.cap_ms = a;
    } else if (strncmp(s, "exp:", 4) == 0) {
        p = s + 4;
        const char *colon = strchr(p, ':');
        if (!colon || !lash_parse_i64(p, (size_t)(colon - p), 1, LASH_DELAY_MAX, &a) ||
            !lash_parse_i64(colon + 1, strlen(colon + 1), 1, LASH_DELAY_MAX, &c) || c < a)
            return lash_fail(e, LASH_EINVAL,
                             "backoff '%.40s': exp:BASE_MS:CAP_MS wants 1 <= BASE <= CAP", s);
        b.exponential = true;
        b.base_ms = a;
        b.cap_ms = c;
    } else {
        return lash_fail(e, LASH_EINVAL, "backoff '%.40s' is neither fixed:MS nor exp:BASE:CAP", s);
    }
    if (out) *out = b;
    return LASH_OK;
}

int64_t lash_backoff_delay(const lash_backoff *b, int attempt, double rnd)
{
    if (!b->exponential) return b->base_ms;
    if (attempt < 1) attempt = 1;
    int64_t d = b->base_ms;
    for (int i = 1; i < attempt && d < b->cap_ms; i++)
        d *= 2;
    if (d > b->cap_ms) d = b->cap_ms;
    /* Written so NaN lands on 0 too: casting NaN to an integer is undefined. */
    if (!(rnd >= 0 && rnd < 1)) rnd = 0;
    /* Equal jitter: [d/2, d) (zero only when d is 1 ms), never above the cap. */
    return d / 2 + (int64_t)((double)(d - d / 2) * rnd);
}

lash_status lash_after_check(const char *after, const char *self, lash_err *e)
{
    lash_status st;
    int n = 0;
    for (const char *p = after;; n++) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == 0) return lash_fail(e, LASH_EINVAL, "after must be ID[,ID...] (an id is empty)");
        if ((st = lash_id_check(p, len, e))) return st;
        if (self && strlen(self) == len && memcmp(self, p, len) == 0)
            return lash_fail(e, LASH_EINVAL, "after names the process itself (%s)", self);
        if (n >= LASH_AFTER_MAX)
            return lash_fail(e, LASH_EINVAL, "after names more than %d ids", LASH_AFTER_MAX);
        if (!c) break;
        p = c + 1;
    }
    return LASH_OK;
}

lash_status lash_submission_check(const lash_submission *s, lash_err *e)
{
    lash_status st;
    if (s->id && s->id[0] && (st = lash_id_check(s->id, strlen(s->id), e))) return st;
    if (!s->kind) return lash_fail(e, LASH_EINVAL, "kind is missing");
    if ((st = lash_kind_check(s->kind, strlen(s->kind), e))) return st;
    if (s->payload) {
        if (s->payload_len > LASH_PAYLOAD_MAX)
            return lash_fail(e, LASH_EINVAL, "payload is %zu bytes, over %d", s->payload_len,
                             LASH_PAYLOAD_MAX);
        if ((st = lash_json_check(s->payload, s->payload_len, "payload", e))) return st;
    }
    if (s->max_attempts < 0 || s->max_attempts > LASH_ATTEMPTS_MAX)
        return lash_fail(e, LASH_EINVAL, "max_attempts %d is outside 1..%d", s->max_attempts,
                         LASH_ATTEMPTS_MAX);
    if (s->timeout_ms < 0 || s->timeout_ms > LASH_TIMEOUT_MAX)
        return lash_fail(e, LASH_EINVAL, "timeout %lld ms is outside 0..%lld",
                         (long long)s->timeout_ms, (long long)LASH_TIMEOUT_MAX);
    if (s->delay_ms < 0 || s->delay_ms > LASH_DELAY_MAX)
        return lash_fail(e, LASH_EINVAL, "delay %lld ms is outside 0..%lld", (long long)s->delay_ms,
                         (long long)LASH_DELAY_MAX);
    if (s->run_at_ms < 0) return lash_fail(e, LASH_EINVAL, "run_at is negative");
    if (s->backoff && (st = lash_backoff_parse(s->backoff, NULL, e))) return st;
    if (s->on_lost != LASH_ON_LOST_RERUN && s->on_lost != LASH_ON_LOST_ABANDON)
        return lash_fail(e, LASH_EINVAL, "on_lost must be rerun or abandon");
    if (s->priority < -LASH_PRIO_MAX || s->priority > LASH_PRIO_MAX)
        return lash_fail(e, LASH_EINVAL, "priority %d is outside -%d..%d", s->priority,
                         LASH_PRIO_MAX, LASH_PRIO_MAX);
    if (s->after && (st = lash_after_check(s->after, s->id, e))) return st;
    return LASH_OK;
}

void lash_record_init(lash_record *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->state = (lash_state)-1;
    rec->max_attempts = LASH_DEFAULT_MAX_ATTEMPTS;
    rec->progress = -1;
}

void lash_record_free(lash_record *rec)
{
    free(rec->payload);
    free(rec->result);
    free(rec->error);
    free(rec->owner);
    free(rec->backoff);
    free(rec->progress_text);
    free(rec->after);
    rec->after = NULL;
    rec->payload = rec->result = rec->error = rec->owner = rec->backoff = NULL;
    rec->progress_text = NULL;
}

static lash_status dup_text(char **dst, const char *val, size_t len, size_t max, const char *field,
                            lash_err *e)
{
    if (len > max)
        return lash_fail(e, LASH_EINVAL, "field '%s' is %zu bytes, over %zu", field, len, max);
    if (memchr(val, 0, len))
        return lash_fail(e, LASH_EINVAL, "field '%s' contains a NUL byte", field);
    char *p = malloc(len + 1);
    if (!p) return lash_fail(e, LASH_ENOMEM, "out of memory");
    memcpy(p, val, len);
    p[len] = 0;
    free(*dst);
    *dst = p;
    return LASH_OK;
}

/* How much of a bad value an error message quotes. Values come with a length and
 * need not be NUL-terminated, so a bare '%.32s' could read past their end. */
static int quoted(size_t len)
{
    return len < 32 ? (int)len : 32;
}

static lash_status set_int(int64_t *dst, const char *val, size_t len, int64_t min, int64_t max,
                           const char *field, lash_err *e)
{
    if (!lash_parse_i64(val, len, min, max, dst))
        return lash_fail(e, LASH_EINVAL, "field '%s' is not an integer in %lld..%lld: '%.*s'",
                         field, (long long)min, (long long)max, quoted(len), val);
    return LASH_OK;
}

lash_status lash_record_set(lash_record *r, const char *f, const char *v, size_t n, lash_err *e)
{
    int64_t x;
    lash_status st;
    if (strcmp(f, "kind") == 0) {
        if ((st = lash_kind_check(v, n, e))) return st;
        memcpy(r->kind, v, n);
        r->kind[n] = 0;
    } else if (strcmp(f, "payload") == 0) {
        if ((st = dup_text(&r->payload, v, n, LASH_PAYLOAD_MAX, f, e))) return st;
        return lash_json_check(v, n, "field 'payload'", e);
    } else if (strcmp(f, "state") == 0) {
        char buf[16];
        int s = -1;
        if (n < sizeof buf && !memchr(v, 0, n)) { /* "pending\0junk" is not a state */
            memcpy(buf, v, n);
            buf[n] = 0;
            s = lash_state_parse(buf);
        }
        if (s < 0)
            return lash_fail(e, LASH_EINVAL, "field 'state' is not a state: '%.*s'", quoted(n), v);
        r->state = (lash_state)s;
    } else if (strcmp(f, "attempt") == 0) {
        if ((st = set_int(&x, v, n, 0, LASH_ATTEMPTS_MAX, f, e))) return st;
        r->attempt = (int)x;
    } else if (strcmp(f, "max_attempts") == 0) {
        if ((st = set_int(&x, v, n, 1, LASH_ATTEMPTS_MAX, f, e))) return st;
        r->max_attempts = (int)x;
    } else if (strcmp(f, "fence") == 0) {
        return set_int(&r->fence, v, n, 0, INT64_MAX, f, e);
    } else if (strcmp(f, "created_ms") == 0) {
        return set_int(&r->created_ms, v, n, 0, INT64_MAX, f, e);
    } else if (strcmp(f, "updated_ms") == 0) {
        return set_int(&r->updated_ms, v, n, 0, INT64_MAX, f, e);
    } else if (strcmp(f, "finished_ms") == 0) {
        return set_int(&r->finished_ms, v, n, 0, INT64_MAX, f, e);
    } else if (strcmp(f, "run_at") == 0) {
        return set_int(&r->run_at_ms, v, n, 0, INT64_MAX, f, e);
    } else if (strcmp(f, "timeout_ms") == 0) {
        return set_int(&r->timeout_ms, v, n, 0, LASH_TIMEOUT_MAX, f, e);
    } else if (strcmp(f, "backoff") == 0) {
        if ((st = dup_text(&r->backoff, v, n, 64, f, e))) return st;
        return lash_backoff_parse(r->backoff, NULL, e);
    } else if (strcmp(f, "on_lost") == 0) {
        if (n == 5 && memcmp(v, "rerun", 5) == 0)
            r->on_lost = LASH_ON_LOST_RERUN;
        else if (n == 7 && memcmp(v, "abandon", 7) == 0)
            r->on_lost = LASH_ON_LOST_ABANDON;
        else
            return lash_fail(e, LASH_EINVAL, "field 'on_lost' is not rerun|abandon: '%.*s'",
                             quoted(n), v);
    } else if (strcmp(f, "priority") == 0) {
        if ((st = set_int(&x, v, n, -LASH_PRIO_MAX, LASH_PRIO_MAX, f, e))) return st;
        r->priority = (int)x;
    } else if (strcmp(f, "after") == 0) {
        return dup_text(&r->after, v, n, (size_t)LASH_AFTER_MAX * (LASH_ID_MAX + 1), f, e);
    } else if (strcmp(f, "deps_left") == 0) {
        if ((st = set_int(&x, v, n, 0, LASH_AFTER_MAX, f, e))) return st;
        r->deps_left = (int)x;
    } else if (strcmp(f, "cancel") == 0) {
        r->cancel_requested = n > 0 && v[0] == '1';
    } else if (strcmp(f, "owner") == 0) {
        return dup_text(&r->owner, v, n, LASH_WORKER_ID_MAX, f, e);
    } else if (strcmp(f, "result") == 0) {
        return dup_text(&r->result, v, n, LASH_RESULT_MAX, f, e);
    } else if (strcmp(f, "error") == 0) {
        return dup_text(&r->error, v, n, LASH_ERROR_MAX, f, e);
    } else if (strcmp(f, "progress") == 0) {
        if ((st = set_int(&x, v, n, 0, 100, f, e))) return st;
        r->progress = (int)x;
    } else if (strcmp(f, "progress_text") == 0) {
        return dup_text(&r->progress_text, v, n, LASH_PROGRESS_TEXT_MAX, f, e);
    } else if (strcmp(f, "progress_ms") == 0) {
        return set_int(&r->progress_ms, v, n, 0, INT64_MAX, f, e);
    }
    return LASH_OK;
}

lash_status lash_record_check(lash_record *r, lash_err *e)
{
    if (!r->kind[0]) return lash_fail(e, LASH_EINVAL, "field 'kind' is missing");
    if ((int)r->state < 0) return lash_fail(e, LASH_EINVAL, "field 'state' is missing");
    if (!r->payload) return lash_fail(e, LASH_EINVAL, "field 'payload' is missing");
    if (r->created_ms == 0) return lash_fail(e, LASH_EINVAL, "field 'created_ms' is missing");
    if (!r->finished_ms && lash_state_terminal(r->state)) r->finished_ms = r->updated_ms;
    return LASH_OK;
}
