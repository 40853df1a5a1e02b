/* cmd_inspect.c: the read-only commands: get, list, stats, workers, events. */
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/json.h"
#include "proto/keys.h"

/* ---- get ------------------------------------------------------------------- */

static void field(const char *name, const char *val)
{
    if (val) printf("%-13s %s\n", name, val);
}

static void field_time(const char *name, int64_t ms)
{
    char t[40];
    if (ms > 0) field(name, cli_fmt_time(ms, t, sizeof t));
}

static void print_record(const lash_record *r)
{
    char b[64];
    field("id", r->id);
    field("queue", r->queue);
    field("kind", r->kind);
    field("state", lash_state_name(r->state));
    snprintf(b, sizeof b, "%d of %d", r->attempt, r->max_attempts);
    field("attempt", b);
    snprintf(b, sizeof b, "%" PRId64, r->fence);
    field("fence", b);
    field("owner", r->owner);
    field_time("created", r->created_ms);
    field_time("updated", r->updated_ms);
    field_time("run_at", r->run_at_ms);
    field_time("finished", r->finished_ms);
    if (r->timeout_ms) snprintf(b, sizeof b, "%" PRId64 " ms", r->timeout_ms);
    field("timeout", r->timeout_ms ? b : "none");
    field("backoff", r->backoff ? r->backoff : LASH_DEFAULT_BACKOFF);
    field("on_lost", r->on_lost == LASH_ON_LOST_ABANDON ? "abandon" : "rerun");
    snprintf(b, sizeof b, "%d", r->priority);
    field("priority", b);
    if (r->after) {
        field("after", r->after);
        if (r->state == LASH_PENDING) {
            snprintf(b, sizeof b, "%d", r->deps_left);
            field("waiting for", b);
        }
    }
    if (r->cancel_requested) field("cancel", "requested");
    if (r->progress >= 0) {
        char t[40];
        snprintf(b, sizeof b, "%d%%", r->progress);
        printf("%-13s %s%s%s%s%s\n", "progress", b,
               r->progress_text && *r->progress_text ? " " : "",
               r->progress_text ? r->progress_text : "", r->progress_ms ? "  at " : "",
               r->progress_ms ? cli_fmt_time(r->progress_ms, t, sizeof t) : "");
    }
    field("payload", r->payload);
    field("result", r->result);
    field("error", r->error);
}

int cli_cmd_get(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    if (!cli_begin(ctx, "get", argc, argv, o, pos, 1, 1, &npos, &rc)) return rc;
    lash_err e = {0};
    if (lash_id_check(pos[0], strlen(pos[0]), &e)) return cli_usage("get", "ID %s", e.msg);
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    lash_record r;
    lash_status st = lash_get(c, ctx->queue, pos[0], &r, &e);
    lash_close(c);
    /* A malformed row is still shown (what parsed), then named as bad. */
    if (st == LASH_OK || (st == LASH_EINVAL && r.id[0])) {
        if (ctx->json)
            rc = cli_print_json(lash_record_to_json(&r));
        else
            print_record(&r);
    }
    lash_record_free(&r);
    if (st == LASH_EINVAL)
        return cli_error(CLI_REFUSED, "process %s: malformed row: %s", pos[0], e.msg);
    if (st) return cli_fail(st, &e);
    return rc;
}

/* ---- list ------------------------------------------------------------------ */

int cli_cmd_list(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {
        {"state", true, NULL}, {"limit", true, NULL}, {"cursor", true, NULL}, {NULL, false, NULL}};
    const char *pos[1], *state, *cursor;
    int npos, rc;
    int64_t limit = 100;
    if (!cli_begin(ctx, "list", argc, argv, o, pos, 0, 0, &npos, &rc)) return rc;
    if ((state = cli_opt_val(o, "state")) && lash_state_parse(state) < 0)
        return cli_error(CLI_USAGE,
                         "--state: '%s' is not one of pending, running, completed, "
                         "failed, cancelled, abandoned",
                         state);
    const char *v = cli_opt_val(o, "limit");
    if (v && (rc = cli_parse_int("--limit", v, 1, 10000, &limit))) return rc;
    cursor = cli_opt_val(o, "cursor");
    if (!cursor) cursor = "0";
    /* Cursors are 0, d<n> or t<n> (see proto/lua/list.lua). */
    int64_t at;
    if (strcmp(cursor, "0") != 0 &&
        ((cursor[0] != 'd' && cursor[0] != 't') ||
         !lash_parse_i64(cursor + 1, strlen(cursor + 1), 0, 1000000000000LL, &at)))
        return cli_error(CLI_USAGE, "--cursor: '%s' is not a cursor from a previous page", cursor);
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    lash_list_page p;
    lash_err e = {0};
    lash_status st = lash_list(c, ctx->queue, state, cursor, (int)limit, &p, &e);
    lash_close(c);
    if (st) return cli_fail(st, &e);
    char t[40];
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject(), *rows = cJSON_AddArrayToObject(j, "rows");
        for (size_t i = 0; i < p.n; i++) {
            cJSON *r = cJSON_CreateObject();
            cJSON_AddStringToObject(r, "id", p.rows[i].id);
            cJSON_AddStringToObject(r, "state", p.rows[i].state);
            cJSON_AddStringToObject(r, "kind", p.rows[i].kind);
            cJSON_AddNumberToObject(r, "attempt", p.rows[i].attempt);
            cJSON_AddNumberToObject(r, "score_ms", (double)p.rows[i].score_ms);
            cJSON_AddItemToArray(rows, r);
        }
        cJSON_AddStringToObject(j, "next", p.next);
        char *text = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        rc = cli_print_json(text);
    } else {
        printf("%-24s %-10s %-16s %7s  %s\n", "ID", "STATE", "KIND", "ATTEMPT", "DUE/FINISHED");
        for (size_t i = 0; i < p.n; i++)
            printf("%-24s %-10s %-16s %7d  %s\n", p.rows[i].id, p.rows[i].state, p.rows[i].kind,
                   p.rows[i].attempt, cli_fmt_time(p.rows[i].score_ms, t, sizeof t));
        if (strcmp(p.next, "0") != 0)
            fprintf(stderr, "lashctl: more rows: lashctl list --cursor %s\n", p.next);
    }
    lash_list_page_free(&p);
    return rc;
}

/* ---- stats ----------------------------------------------------------------- */

struct cJSON *cli_stats_json(const lash_stats *s, const char *queue)
{
    cJSON *j = cJSON_CreateObject();
    if (!j) return NULL;
    cJSON_AddStringToObject(j, "queue", queue);
    for (int i = 0; i < LASH_STATE_COUNT; i++)
        cJSON_AddNumberToObject(j, lash_state_name((lash_state)i), (double)s->count[i]);
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
             {"oldest_due_ms", s->oldest_due_ms},
             {"eligible", s->eligible},
             {"workers", s->workers},
             {"now_ms", s->now_ms}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        cJSON_AddNumberToObject(j, f[i].name, (double)f[i].v);
    return j;
}

int cli_cmd_stats(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{"recount", false, NULL}, {NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    if (!cli_begin(ctx, "stats", argc, argv, o, pos, 0, 0, &npos, &rc)) return rc;
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    lash_stats s;
    lash_err e = {0};
    lash_status st = cli_opt_val(o, "recount") ? lash_recount(c, ctx->queue, &s, &e)
                                               : lash_get_stats(c, ctx->queue, &s, &e);
    lash_close(c);
    if (st) return cli_fail(st, &e);
    if (ctx->json) {
        cJSON *j = cli_stats_json(&s, ctx->queue);
        char *text = j ? cJSON_PrintUnformatted(j) : NULL;
        cJSON_Delete(j);
        return cli_print_json(text);
    }
    char age[32];
    printf("%-12s %s\n", "queue", ctx->queue);
    for (int i = 0; i < LASH_STATE_COUNT; i++)
        printf("%-12s %" PRId64 "\n", lash_state_name((lash_state)i), s.count[i]);
    printf("%-12s %s\n", "oldest due",
           s.oldest_due_ms > 0 ? cli_fmt_age(s.oldest_due_ms, age, sizeof age) : "-");
    printf("%-12s %" PRId64 " alive\n", "workers", s.workers);
    printf("%-12s submitted %" PRId64 ", completed %" PRId64 ", failed %" PRId64
           ", cancelled %" PRId64 ", abandoned %" PRId64 ", retried %" PRId64 ", lost %" PRId64
           "\n",
           "totals", s.total_submitted, s.total_completed, s.total_failed, s.total_cancelled,
           s.total_abandoned, s.total_retried, s.total_lost);
    return CLI_OK;
}

/* ---- queues ---------------------------------------------------------------- */

/* Every queue Redis holds (on a Cluster, every primary's), with its counts:
 * the one view that does not need --queue. */
int cli_cmd_queues(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    if (!cli_begin(ctx, "queues", argc, argv, o, pos, 0, 0, &npos, &rc)) return rc;
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    lash_queue_list l = {0};
    lash_err e = {0};
    lash_status st = lash_discover_queues(c, 0, &l, &e);
    cJSON *arr = ctx->json ? cJSON_CreateArray() : NULL;
    if (!st && !ctx->json) {
        printf("%-24s", "queue");
        for (int k = 0; k < LASH_STATE_COUNT; k++)
            printf(" %10s", lash_state_name((lash_state)k));
        printf(" %8s\n", "workers");
    }
    for (size_t i = 0; !st && i < l.n; i++) {
        lash_stats s;
        if ((st = lash_get_stats(c, l.names[i], &s, &e))) break;
        if (arr) {
            cJSON_AddItemToArray(arr, cli_stats_json(&s, l.names[i]));
            continue;
        }
        printf("%-24s", l.names[i]);
        for (int k = 0; k < LASH_STATE_COUNT; k++)
            printf(" %10" PRId64, s.count[k]);
        printf(" %8" PRId64 "\n", s.workers);
    }
    lash_close(c);
    lash_queue_list_free(&l);
    if (st) {
        cJSON_Delete(arr);
        return cli_fail(st, &e);
    }
    if (!arr) return CLI_OK;
    char *text = cJSON_PrintUnformatted(arr);
    cJSON_Delete(arr);
    return cli_print_json(text);
}

/* ---- workers --------------------------------------------------------------- */

int cli_cmd_workers(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    if (!cli_begin(ctx, "workers", argc, argv, o, pos, 0, 0, &npos, &rc)) return rc;
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    lash_worker_seen *w;
    size_t n;
    int64_t now;
    lash_err e = {0};
    lash_status st = lash_read_workers(c, ctx->queue, 0, &w, &n, &now, &e);
    lash_close(c);
    if (st) {
        lash_workers_free(w, n);
        return cli_fail(st, &e);
    }
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(j, "workers");
        cJSON_AddNumberToObject(j, "now_ms", (double)now);
        for (size_t i = 0; i < n; i++) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "id", w[i].id);
            cJSON_AddNumberToObject(x, "last_seen_ms", (double)w[i].seen_ms);
            cJSON_AddNumberToObject(x, "seconds_ago", (double)(now - w[i].seen_ms) / 1000.0);
            cJSON_AddItemToArray(a, x);
        }
        char *text = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        rc = cli_print_json(text);
    } else {
        printf("%-40s %s\n", "WORKER", "SECONDS SINCE HEARTBEAT");
        for (size_t i = 0; i < n; i++)
            printf("%-40s %.1f\n", w[i].id, (double)(now - w[i].seen_ms) / 1000.0);
    }
    lash_workers_free(w, n);
    return rc;
}

/* ---- events ---------------------------------------------------------------- */

/* Prints one stream entry. */
static void print_event(const cli_ctx *ctx, const lash_event *ev)
{
    if (ctx->json) {
        cli_print_json(lash_event_to_json(ev->sid, (const char *const *)ev->f, ev->lens, ev->nf));
        return;
    }
    char t[40];
    const char *event = lash_event_field(ev, "event"), *id = lash_event_field(ev, "id");
    printf("%s  %-16s %s", cli_fmt_time(strtoll(ev->sid, NULL, 10), t, sizeof t),
           event ? event : "?", id ? id : "?");
    for (size_t i = 0; i + 1 < ev->nf; i += 2)
        if (strcmp(ev->f[i], "event") != 0 && strcmp(ev->f[i], "id") != 0)
            printf("  %s=%.*s", ev->f[i], (int)ev->lens[i + 1], ev->f[i + 1]);
    printf("\n");
}

int cli_cmd_events(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{"follow", false, NULL}, {"count", true, NULL}, {NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    int64_t count = 20;
    if (!cli_begin(ctx, "events", argc, argv, o, pos, 0, 0, &npos, &rc)) return rc;
    const char *v = cli_opt_val(o, "count");
    if (v && (rc = cli_parse_int("--count", v, 1, 100000, &count))) return rc;
    bool follow = cli_opt_val(o, "follow") != NULL;
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    char last[64] = "0-0";
    lash_events evs;
    lash_err e = {0};
    lash_status st = lash_events_newest(c, ctx->queue, (int)count, &evs, &e);
    for (size_t i = 0; !st && i < evs.n; i++) {
        print_event(ctx, &evs.ev[i]);
        snprintf(last, sizeof last, "%s", evs.ev[i].sid);
    }
    lash_events_free(&evs);
    fflush(stdout);
    while (!st && follow) {
        /* BLOCK well under the connection's 5 s reply timeout. */
        st = lash_events_after(c, ctx->queue, last, 1000, 1000, &evs, &e);
        for (size_t i = 0; !st && i < evs.n; i++) {
            print_event(ctx, &evs.ev[i]);
            snprintf(last, sizeof last, "%s", evs.ev[i].sid);
        }
        lash_events_free(&evs);
        if (fflush(stdout) != 0) break; /* the reader went away */
    }
    lash_close(c);
    if (st) return cli_fail(st, &e);
    return rc;
}
