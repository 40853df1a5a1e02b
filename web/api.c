/* api.c: lash-web's handlers: the JSON API, the actions, the page (see app.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/json.h"
#include "proto/scripts.h"
#include "proto/version.h"
#include "proto/state.h"
#include "web/app.h"

int64_t web_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void web_app_init(web_app *a, const web_config *c)
{
    memset(a, 0, sizeof *a);
    a->c = *c;
    if (a->c.discover_ms <= 0) a->c.discover_ms = 30000;
    if (a->c.redis_timeout_ms <= 0) a->c.redis_timeout_ms = 3000;
}

void web_app_free(web_app *a)
{
    lash_close(a->conn);
    lash_queue_list_free(&a->found);
    free(a->found_ptrs);
    memset(a, 0, sizeof *a);
}

void web_reply_free(web_reply *r)
{
    if (!r->is_static) free(r->body);
    r->body = NULL;
}

lash_status web_conn(web_app *a, lash_err *e)
{
    if (a->conn) return LASH_OK;
    return lash_connect(a->c.redis_url, a->c.redis_timeout_ms, &a->conn, e);
}

void web_conn_failed(web_app *a, lash_status st)
{
    /* A broken connection (or one out of step after a protocol error) is
     * dropped; the next request connects again. */
    if (st == LASH_EIO || st == LASH_EPROTO) {
        lash_close(a->conn);
        a->conn = NULL;
    }
}

lash_status web_queues(web_app *a, const char *const **names, size_t *n, lash_err *e)
{
    if (a->c.nqueues) {
        *names = a->c.queues;
        *n = a->c.nqueues;
        return LASH_OK;
    }
    int64_t now = web_mono_ms();
    if (!a->found_at_ms || now - a->found_at_ms >= a->c.discover_ms) {
        lash_queue_list l;
        lash_status st = web_conn(a, e);
        if (!st) st = lash_discover_queues(a->conn, WEB_MAX_QUEUES, &l, e);
        if (st) {
            web_conn_failed(a, st);
            return st;
        }
        const char **p = calloc(l.n + 1, sizeof *p);
        if (!p) {
            lash_queue_list_free(&l);
            return lash_fail(e, LASH_ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < l.n; i++)
            p[i] = l.names[i];
        lash_queue_list_free(&a->found);
        free(a->found_ptrs);
        a->found = l;
        a->found_ptrs = p;
        a->found_at_ms = now;
    }
    *names = a->found_ptrs;
    *n = a->found.n;
    return LASH_OK;
}

/* ---- replies ---------------------------------------------------------------- */

static void reply_text(web_reply *out, int status, const char *type, char *body)
{
    out->status = body ? status : 500;
    out->type = body ? type : "text/plain; charset=utf-8";
    out->body = body ? body : (char *)"out of memory\n";
    out->is_static = !body;
    out->len = strlen(out->body);
}

static void reply_json(web_reply *out, int status, cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    reply_text(out, status, "application/json", s);
}

static void reply_error(web_reply *out, int status, const char *msg)
{
    cJSON *j = cJSON_CreateObject();
    if (j) cJSON_AddStringToObject(j, "error", msg);
    reply_json(out, status, j);
}

/* The HTTP status for a registry error. */
static int status_of(lash_status st)
{
    switch (st) {
    case LASH_EINVAL:
        return 400;
    case LASH_ENOTFOUND:
        return 404;
    case LASH_EREFUSED:
    case LASH_ECONFLICT:
    case LASH_ESTALE:
        return 409;
    case LASH_EIO:
        return 503;
    default:
        return 502; /* Redis answered an error, or something lash cannot read */
    }
}

static void reply_failed(web_app *a, web_reply *out, lash_status st, const lash_err *e)
{
    web_conn_failed(a, st);
    char msg[300];
    snprintf(msg, sizeof msg, "%s%s", st == LASH_EIO ? "redis unreachable: " : "",
             e->msg[0] ? e->msg : lash_status_name(st));
    reply_error(out, status_of(st), msg);
}

/* With a fixed queue list, other queues do not exist for this server. */
static bool queue_served(web_app *a, const char *q)
{
    if (!a->c.nqueues) return true;
    for (size_t i = 0; i < a->c.nqueues; i++)
        if (strcmp(a->c.queues[i], q) == 0) return true;
    return false;
}

/* ---- reads ------------------------------------------------------------------ */

static cJSON *stats_json(const char *q, const lash_stats *s)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "queue", q);
    cJSON *c = cJSON_AddObjectToObject(j, "count");
    for (int i = 0; i < LASH_STATE_COUNT; i++)
        cJSON_AddNumberToObject(c, lash_state_name((lash_state)i), (double)s->count[i]);
    const struct {
        const char *name;
        int64_t v;
    } f[] = {{"total_submitted", s->total_submitted},
             {"total_completed", s->total_completed},
             {"total_failed", s->total_failed},
             {"total_cancelled", s->total_cancelled},
             {"total_abandoned", s->total_abandoned},
             {"total_retried", s->total_retried},
             {"total_lost", s->total_lost},
             {"due", s->due},
             {"done", s->done},
             {"eligible", s->eligible},
             {"oldest_due_ms", s->oldest_due_ms},
             {"workers", s->workers},
             {"now_ms", s->now_ms}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        cJSON_AddNumberToObject(j, f[i].name, (double)f[i].v);
    return j;
}

static void api_config(web_app *a, web_reply *out)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", lash_version());
    cJSON_AddStringToObject(j, "lua_library", lash_function_version());
    cJSON_AddBoolToObject(j, "actions", a->c.policy.token && a->c.policy.token[0]);
    reply_json(out, 200, j);
}

static void api_queues(web_app *a, web_reply *out)
{
    const char *const *qs;
    size_t n;
    lash_err e = {0};
    lash_status st = web_queues(a, &qs, &n, &e);
    if (!st) st = web_conn(a, &e);
    if (st) return reply_failed(a, out, st, &e);
    cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "queues");
    for (size_t i = 0; i < n; i++) {
        lash_stats s;
        if ((st = lash_get_stats(a->conn, qs[i], &s, &e))) {
            cJSON_Delete(j);
            return reply_failed(a, out, st, &e);
        }
        cJSON_AddItemToArray(arr, stats_json(qs[i], &s));
    }
    reply_json(out, 200, j);
}

static void api_workers(web_app *a, const web_route *r, web_reply *out)
{
    lash_worker_seen *w = NULL;
    size_t n = 0;
    int64_t now = 0;
    lash_err e = {0};
    lash_status st = web_conn(a, &e);
    if (!st) st = lash_read_workers(a->conn, r->queue, 1000, &w, &n, &now, &e);
    if (st) {
        lash_workers_free(w, n);
        return reply_failed(a, out, st, &e);
    }
    cJSON *j = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(j, "workers");
    cJSON_AddNumberToObject(j, "now_ms", (double)now);
    for (size_t i = 0; i < n; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "id", w[i].id);
        cJSON_AddNumberToObject(x, "last_seen_ms", (double)w[i].seen_ms);
        cJSON_AddNumberToObject(x, "seconds_ago", (double)(now - w[i].seen_ms) / 1000.0);
        cJSON_AddItemToArray(arr, x);
    }
    lash_workers_free(w, n);
    reply_json(out, 200, j);
}

static void api_processes(web_app *a, const web_route *r, web_reply *out)
{
    lash_list_page p;
    lash_err e = {0};
    lash_status st = web_conn(a, &e);
    if (!st)
        st = lash_list(a->conn, r->queue, r->state[0] ? r->state : NULL, r->cursor, r->limit, &p,
                       &e);
    if (st) return reply_failed(a, out, st, &e);
    cJSON *j = cJSON_CreateObject(), *rows = cJSON_AddArrayToObject(j, "rows");
    for (size_t i = 0; i < p.n; i++) {
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "id", p.rows[i].id);
        cJSON_AddStringToObject(x, "state", p.rows[i].state);
        cJSON_AddStringToObject(x, "kind", p.rows[i].kind);
        cJSON_AddNumberToObject(x, "attempt", p.rows[i].attempt);
        cJSON_AddNumberToObject(x, "score_ms", (double)p.rows[i].score_ms);
        cJSON_AddItemToArray(rows, x);
    }
    cJSON_AddStringToObject(j, "next", p.next);
    lash_list_page_free(&p);
    reply_json(out, 200, j);
}

static void api_process(web_app *a, const web_route *r, web_reply *out)
{
    lash_record rec;
    lash_err e = {0}, ge = {0};
    lash_status st = web_conn(a, &e);
    if (st) return reply_failed(a, out, st, &e);
    st = lash_get(a->conn, r->queue, r->id, &rec, &ge);
    /* A malformed row is still shown (what parsed), with the bad field named. */
    if (st && !(st == LASH_EINVAL && rec.id[0])) {
        lash_record_free(&rec);
        return reply_failed(a, out, st, &ge);
    }
    cJSON *j = cJSON_CreateObject();
    char *text = lash_record_to_json(&rec);
    lash_record_free(&rec);
    cJSON *raw = text ? cJSON_Parse(text) : NULL;
    free(text);
    /* Which operator actions apply, from the transition table (proto/state.h):
     * the page offers those, and keeps no list of states of its own. */
    const cJSON *state = raw ? cJSON_GetObjectItemCaseSensitive(raw, "state") : NULL;
    int s = cJSON_IsString(state) ? lash_state_parse(state->valuestring) : -1;
    cJSON *acts = cJSON_AddObjectToObject(j, "actions");
    cJSON_AddBoolToObject(acts, "retry",
                          s >= 0 && lash_state_next((lash_state)s, LASH_T_REOPEN, 0) >= 0);
    cJSON_AddBoolToObject(acts, "cancel",
                          s >= 0 && lash_state_next((lash_state)s, LASH_T_CANCEL, 0) >= 0);
    cJSON_AddItemToObject(j, "record", raw ? raw : cJSON_CreateNull());
    if (st) cJSON_AddStringToObject(j, "malformed", ge.msg);
    lash_events ev;
    lash_status est = lash_events_of(a->conn, r->queue, r->id, 200, &ev, &e);
    if (est) {
        cJSON_Delete(j);
        return reply_failed(a, out, est, &e);
    }
    cJSON *arr = cJSON_AddArrayToObject(j, "events");
    for (size_t i = 0; i < ev.n; i++) {
        char *t = lash_event_to_json(ev.ev[i].sid, (const char *const *)ev.ev[i].f, ev.ev[i].lens,
                                     ev.ev[i].nf);
        cJSON *x = t ? cJSON_Parse(t) : NULL;
        free(t);
        if (x) cJSON_AddItemToArray(arr, x);
    }
    lash_events_free(&ev);
    reply_json(out, 200, j);
}

/* ---- actions ---------------------------------------------------------------- */

static void api_action(web_app *a, const web_route *r, web_reply *out)
{
    lash_err e = {0};
    lash_status st = web_conn(a, &e);
    const char *status = "";
    bool requested = false;
    if (!st) {
        switch (r->kind) {
        case WEB_R_RETRY:
            st = lash_retry(a->conn, r->queue, r->id, &e);
            status = "reopened";
            break;
        case WEB_R_CANCEL:
            st = lash_cancel(a->conn, r->queue, r->id,
                             r->reason[0] ? r->reason : "cancelled from lash-web", &requested, &e);
            status = requested ? "requested" : "cancelled";
            break;
        default:
            st = lash_poke(a->conn, r->queue, &e);
            status = "poked";
            break;
        }
    }
    if (st) return reply_failed(a, out, st, &e);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "queue", r->queue);
    if (r->id[0]) cJSON_AddStringToObject(j, "id", r->id);
    cJSON_AddStringToObject(j, "status", status);
    reply_json(out, 200, j);
}

/* ---- dispatch ----------------------------------------------------------------- */

static void static_reply(web_reply *out, const char *name)
{
    const web_asset *as = web_asset_find(name);
    if (!as) return reply_error(out, 404, "no such file");
    out->status = 200;
    out->type = as->type;
    out->body = (char *)as->data;
    out->len = as->len;
    out->is_static = true;
    out->cacheable = strcmp(name, "index.html") != 0;
}

void web_handle(web_app *a, const web_route *r, web_reply *out)
{
    memset(out, 0, sizeof *out);
    a->requests++;
    if (r->kind == WEB_R_ERROR) return reply_error(out, r->status, r->error);
    if (r->queue[0] && !queue_served(a, r->queue))
        return reply_error(out, 404, "this server does not serve that queue");
    switch (r->kind) {
    case WEB_R_PAGE:
        return static_reply(out, "index.html");
    case WEB_R_ASSET:
        return static_reply(out, r->asset);
    case WEB_R_HEALTH:
        out->status = 200;
        out->type = "text/plain; charset=utf-8";
        out->body = (char *)"ok\n";
        out->len = 3;
        out->is_static = true;
        return;
    case WEB_R_METRICS:
        return web_metrics(a, out);
    case WEB_R_CONFIG:
        return api_config(a, out);
    case WEB_R_QUEUES:
        return api_queues(a, out);
    case WEB_R_WORKERS:
        return api_workers(a, r, out);
    case WEB_R_PROCESSES:
        return api_processes(a, r, out);
    case WEB_R_PROCESS:
        return api_process(a, r, out);
    case WEB_R_RETRY:
    case WEB_R_CANCEL:
    case WEB_R_POKE:
        return api_action(a, r, out);
    default:
        return reply_error(out, 404, "no such page");
    }
}
