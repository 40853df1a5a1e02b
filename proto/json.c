/* json.c: the JSON codec (see json.h). */
#include "proto/json.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static bool only_space(const char *p, const char *end)
{
    for (; p < end; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') return false;
    return true;
}

lash_status lash_json_check(const char *text, size_t len, const char *what, lash_err *e)
{
    const char *end = NULL;
    if (len == 0) return lash_fail(e, LASH_EINVAL, "%s is empty, not JSON", what);
    if (memchr(text, 0, len)) return lash_fail(e, LASH_EINVAL, "%s contains a NUL byte", what);
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!v) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        if (!end) {
            const char *ep = cJSON_GetErrorPtr();
            at = ep && ep >= text && ep <= text + len ? (size_t)(ep - text) : 0;
        }
        return lash_fail(e, LASH_EINVAL, "%s is not valid JSON (error near byte %zu)", what, at);
    }
    cJSON_Delete(v);
    if (!only_space(end, text + len))
        return lash_fail(e, LASH_EINVAL, "%s has bytes after its JSON value at byte %zu", what,
                         (size_t)(end - text));
    return LASH_OK;
}

static void add_text_or_json(cJSON *o, const char *name, const char *text)
{
    if (!text) return;
    /* Require the whole text to be the value: "1 abc" is text, not the number 1. */
    cJSON *v = cJSON_ParseWithOpts(text, NULL, 1);
    if (v)
        cJSON_AddItemToObject(o, name, v);
    else
        cJSON_AddStringToObject(o, name, text);
}

char *lash_record_to_json(const lash_record *r)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "id", r->id);
    if (r->queue[0]) cJSON_AddStringToObject(o, "queue", r->queue);
    cJSON_AddStringToObject(o, "kind", r->kind);
    cJSON_AddStringToObject(o, "state", lash_state_name(r->state));
    add_text_or_json(o, "payload", r->payload);
    cJSON_AddNumberToObject(o, "attempt", r->attempt);
    cJSON_AddNumberToObject(o, "max_attempts", r->max_attempts);
    cJSON_AddNumberToObject(o, "fence", (double)r->fence);
    if (r->owner) cJSON_AddStringToObject(o, "owner", r->owner);
    cJSON_AddNumberToObject(o, "created_ms", (double)r->created_ms);
    if (r->updated_ms) cJSON_AddNumberToObject(o, "updated_ms", (double)r->updated_ms);
    if (r->finished_ms) cJSON_AddNumberToObject(o, "finished_ms", (double)r->finished_ms);
    if (r->run_at_ms) cJSON_AddNumberToObject(o, "run_at", (double)r->run_at_ms);
    if (r->timeout_ms) cJSON_AddNumberToObject(o, "timeout_ms", (double)r->timeout_ms);
    cJSON_AddStringToObject(o, "backoff", r->backoff ? r->backoff : LASH_DEFAULT_BACKOFF);
    cJSON_AddStringToObject(o, "on_lost", r->on_lost == LASH_ON_LOST_ABANDON ? "abandon" : "rerun");
    if (r->priority) cJSON_AddNumberToObject(o, "priority", r->priority);
    if (r->after) {
        cJSON_AddStringToObject(o, "after", r->after);
        cJSON_AddNumberToObject(o, "deps_left", r->deps_left);
    }
    if (r->cancel_requested) cJSON_AddTrueToObject(o, "cancel_requested");
    add_text_or_json(o, "result", r->result);
    if (r->error) cJSON_AddStringToObject(o, "error", r->error);
    if (r->progress >= 0) {
        cJSON_AddNumberToObject(o, "progress", r->progress);
        cJSON_AddStringToObject(o, "progress_text", r->progress_text ? r->progress_text : "");
        if (r->progress_ms) cJSON_AddNumberToObject(o, "progress_ms", (double)r->progress_ms);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

void lash_json_free(void *holder)
{
    cJSON_Delete(holder);
}

static lash_status get_int(const cJSON *o, const char *name, int64_t min, int64_t max, int64_t *out,
                           lash_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) return LASH_OK;
    double d = v->valuedouble;
    /* The range first: converting a double outside int64's range (1e300) is
     * undefined behaviour, so the integer test must only see numbers in range. */
    if (!cJSON_IsNumber(v) || !(d >= (double)min && d <= (double)max && d < 0x1p63) ||
        d != (double)(int64_t)d)
        return lash_fail(e, LASH_EINVAL, "\"%s\" must be an integer in %lld..%lld", name,
                         (long long)min, (long long)max);
    *out = (int64_t)v->valuedouble;
    return LASH_OK;
}

static lash_status get_str(const cJSON *o, const char *name, const char **out, lash_err *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!v) return LASH_OK;
    if (!cJSON_IsString(v)) return lash_fail(e, LASH_EINVAL, "\"%s\" must be a string", name);
    *out = v->valuestring;
    return LASH_OK;
}

lash_status lash_submission_from_json(const char *line, size_t len, const char *default_kind,
                                      lash_submission *out, void **holder, char **payload_text,
                                      lash_err *e)
{
    lash_status st;
    *holder = NULL;
    *payload_text = NULL;
    memset(out, 0, sizeof *out);
    if ((st = lash_json_check(line, len, "line", e))) return st;
    cJSON *root = cJSON_ParseWithLength(line, len);
    if (!root) return lash_fail(e, LASH_ENOMEM, "out of memory");
    *holder = root;
    bool full = cJSON_IsObject(root) && (cJSON_GetObjectItemCaseSensitive(root, "kind") ||
                                         cJSON_GetObjectItemCaseSensitive(root, "payload"));
    out->kind = default_kind;
    if (!full) {
        out->payload = line;
        out->payload_len = len;
        return lash_submission_check(out, e);
    }
    int64_t n;
    if ((st = get_str(root, "kind", &out->kind, e)) || (st = get_str(root, "id", &out->id, e)) ||
        (st = get_str(root, "backoff", &out->backoff, e)) ||
        (st = get_str(root, "after", &out->after, e)))
        return st;
    const char *on_lost = NULL;
    if ((st = get_str(root, "on_lost", &on_lost, e))) return st;
    if (on_lost && strcmp(on_lost, "abandon") == 0)
        out->on_lost = LASH_ON_LOST_ABANDON;
    else if (on_lost && strcmp(on_lost, "rerun") != 0)
        return lash_fail(e, LASH_EINVAL, "\"on_lost\" must be \"rerun\" or \"abandon\"");
    n = 0;
    if ((st = get_int(root, "max_attempts", 1, LASH_ATTEMPTS_MAX, &n, e))) return st;
    out->max_attempts = (int)n;
    n = 0;
    if ((st = get_int(root, "priority", -LASH_PRIO_MAX, LASH_PRIO_MAX, &n, e))) return st;
    out->priority = (int)n;
    if ((st = get_int(root, "timeout_ms", 0, LASH_TIMEOUT_MAX, &out->timeout_ms, e)) ||
        (st = get_int(root, "delay_ms", 0, LASH_DELAY_MAX, &out->delay_ms, e)) ||
        (st = get_int(root, "run_at", 0, INT64_MAX / 2, &out->run_at_ms, e)))
        return st;
    if (!out->kind) return lash_fail(e, LASH_EINVAL, "no \"kind\" in the line and no default kind");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "payload");
    if (p) {
        *payload_text = cJSON_PrintUnformatted(p);
        if (!*payload_text) return lash_fail(e, LASH_ENOMEM, "out of memory");
        out->payload = *payload_text;
        out->payload_len = strlen(*payload_text);
    }
    return lash_submission_check(out, e);
}

char *lash_event_to_json(const char *stream_id, const char *const *fields, const size_t *lens,
                         size_t nfields)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "stream_id", stream_id);
    for (size_t i = 0; i + 1 < nfields; i += 2) {
        char name[64], *val = malloc(lens[i + 1] + 1);
        size_t nl = lens[i] < sizeof name - 1 ? lens[i] : sizeof name - 1;
        if (!val) break;
        memcpy(name, fields[i], nl);
        name[nl] = 0;
        memcpy(val, fields[i + 1], lens[i + 1]);
        val[lens[i + 1]] = 0;
        cJSON_AddStringToObject(o, name, val);
        free(val);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}
