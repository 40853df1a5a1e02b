/* cmd_wait.c: `lashctl wait ID...`: block until processes end.
 *
 * No race: it subscribes to lash:{q}:finished first and only then reads each
 * row, so an ending that happens between the two is seen either in the row or
 * as a message. A message only says "look again": the row is re-read with
 * lash_get, so a process re-opened since is waited for again. When nothing has
 * been heard for a while every unfinished row is re-read anyway, as a safety net
 * for rows deleted or changed behind our back.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/json.h"
#include "proto/keys.h"

#define RECHECK_IDLE_MS 5000

typedef struct {
    const char *id;
    bool done;
    bool completed;
    char *out; /* the line to print for it (text or JSON), from the last read */
} waited;

typedef struct {
    const cli_ctx *ctx;
    lash_conn *cmd;
    waited *w;
    size_t n, left, failed;
    size_t *by_id; /* indices into w sorted by id, to find a finished id fast */
} waiter;

static char *text_line(const lash_record *r)
{
    char *s = NULL;
    /* An error is news only on a row that ended with it (a pending row may keep
     * the error of an earlier attempt). */
    bool ended_badly = lash_state_terminal(r->state) && r->state != LASH_COMPLETED;
    const char *err = ended_badly && r->error ? r->error : NULL;
    if (asprintf(&s, "%s %s%s%s", r->id, lash_state_name(r->state), err ? ": " : "",
                 err ? err : "") < 0)
        return NULL;
    return s;
}

static char *missing_line(const cli_ctx *ctx, const char *id, const char *state, const char *why)
{
    char *s = NULL;
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", id);
        cJSON_AddStringToObject(j, "state", state);
        cJSON_AddStringToObject(j, "error", why);
        s = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
    } else if (asprintf(&s, "%s %s: %s", id, state, why) < 0) {
        s = NULL;
    }
    return s;
}

/* Re-reads w[i]; marks it done when it is terminal or gone. */
static lash_status check(waiter *wt, size_t i, lash_err *e)
{
    waited *w = &wt->w[i];
    if (w->done) return LASH_OK;
    lash_record r;
    lash_err ge = {0};
    lash_status st = lash_get(wt->cmd, wt->ctx->queue, w->id, &r, &ge);
    if (st == LASH_EIO || st == LASH_ENOMEM || st == LASH_EPROTO || st == LASH_EREDIS) {
        lash_record_free(&r);
        if (e) *e = ge;
        return st;
    }
    free(w->out);
    if (st == LASH_ENOTFOUND) {
        w->out = missing_line(wt->ctx, w->id, "not-found", ge.msg);
        w->done = true;
    } else if (st == LASH_EINVAL) {
        w->out = missing_line(wt->ctx, w->id, "invalid", ge.msg);
        w->done = true;
    } else {
        w->out = wt->ctx->json ? lash_record_to_json(&r) : text_line(&r);
        w->done = lash_state_terminal(r.state);
        w->completed = r.state == LASH_COMPLETED;
    }
    lash_record_free(&r);
    if (w->done) {
        wt->left--;
        if (!w->completed) wt->failed++;
    }
    return LASH_OK;
}

static lash_status check_all(waiter *wt, cli_progress *bar, lash_err *e)
{
    char note[48];
    for (size_t i = 0; i < wt->n; i++) {
        lash_status st = check(wt, i, e);
        if (st) return st;
        snprintf(note, sizeof note, " (%zu not completed)", wt->failed);
        cli_progress_update(bar, (int64_t)(wt->n - wt->left), wt->failed ? note : NULL);
    }
    return LASH_OK;
}

static const waiter *sort_ctx;
static int by_id_cmp(const void *a, const void *b)
{
    return strcmp(sort_ctx->w[*(const size_t *)a].id, sort_ctx->w[*(const size_t *)b].id);
}

/* Every entry waiting for id (the same id may be given twice). */
static lash_status on_finished(waiter *wt, const char *id, lash_err *e)
{
    size_t lo = 0, hi = wt->n;
    while (lo < hi) { /* the first index whose id is >= id */
        size_t mid = (lo + hi) / 2;
        if (strcmp(wt->w[wt->by_id[mid]].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < wt->n && strcmp(wt->w[wt->by_id[lo]].id, id) == 0; lo++) {
        lash_status st = check(wt, wt->by_id[lo], e);
        if (st) return st;
    }
    return LASH_OK;
}

/* Waits until all are done or the deadline (-1: none) passes. */
static lash_status wait_loop(waiter *wt, lash_conn *sub, int64_t deadline, cli_progress *bar,
                             lash_err *e)
{
    int64_t last_heard = cli_mono_ms();
    char note[48];
    while (wt->left > 0) {
        int64_t now = cli_mono_ms();
        if (deadline >= 0 && now >= deadline) return LASH_OK;
        int64_t slice = last_heard + RECHECK_IDLE_MS - now;
        if (deadline >= 0 && deadline - now < slice) slice = deadline - now;
        if (slice < 0) slice = 0;
        char *ids = NULL;
        lash_status st = lash_finished_next(sub, (int)slice, &ids, e);
        if (st) return st;
        if (ids) {
            /* Ids as published: on_finished only compares each with ours. */
            char *save = NULL;
            for (char *id = strtok_r(ids, " ", &save); id && !st; id = strtok_r(NULL, " ", &save))
                st = on_finished(wt, id, e);
            free(ids);
            if (st) return st;
            last_heard = cli_mono_ms();
            snprintf(note, sizeof note, " (%zu not completed)", wt->failed);
            cli_progress_update(bar, (int64_t)(wt->n - wt->left), wt->failed ? note : NULL);
        } else if (cli_mono_ms() - last_heard >= RECHECK_IDLE_MS) {
            if ((st = check_all(wt, bar, e))) return st;
            last_heard = cli_mono_ms();
        }
    }
    return LASH_OK;
}

static int subscribe(const cli_ctx *ctx, lash_conn **sub)
{
    lash_err e = {0};
    lash_status st = lash_connect(ctx->redis_url, 5000, sub, &e);
    if (!st) st = lash_finished_subscribe(*sub, ctx->queue, &e);
    return st ? cli_fail(st, &e) : CLI_OK;
}

int cli_cmd_wait(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{"timeout", true, NULL}, {NULL, false, NULL}};
    const char **pos = calloc((size_t)argc + 1, sizeof *pos);
    int npos, rc;
    if (!pos) return cli_error(CLI_REFUSED, "out of memory");
    if (!cli_begin(ctx, "wait", argc, argv, o, pos, 1, argc, &npos, &rc)) {
        free(pos);
        return rc;
    }
    int64_t timeout = -1;
    const char *v = cli_opt_val(o, "timeout");
    lash_err e = {0};
    if (v) rc = cli_parse_int("--timeout", v, 1, LASH_TIMEOUT_MAX, &timeout);
    for (int i = 0; !rc && i < npos; i++)
        if (lash_id_check(pos[i], strlen(pos[i]), &e)) rc = cli_usage("wait", "ID %s", e.msg);
    waiter wt = {.ctx = ctx, .n = (size_t)npos, .left = (size_t)npos};
    lash_conn *sub = NULL;
    if (!rc) {
        wt.w = calloc(wt.n, sizeof *wt.w);
        wt.by_id = calloc(wt.n, sizeof *wt.by_id);
        if (!wt.w || !wt.by_id) rc = cli_error(CLI_REFUSED, "out of memory");
    }
    int64_t deadline = timeout > 0 ? cli_mono_ms() + timeout : -1;
    /* Subscribe first, then read the rows: the order that makes it race-free. */
    if (!rc) rc = subscribe(ctx, &sub);
    if (!rc) rc = cli_connect(ctx, &wt.cmd);
    if (!rc) {
        for (size_t i = 0; i < wt.n; i++) {
            wt.w[i].id = pos[i];
            wt.by_id[i] = i;
        }
        sort_ctx = &wt;
        qsort(wt.by_id, wt.n, sizeof *wt.by_id, by_id_cmp);
        cli_progress bar;
        cli_progress_start(&bar, "waiting", (int64_t)wt.n);
        if (wt.n < 2) bar.on = false; /* one id needs no bar */
        lash_status st = check_all(&wt, &bar, &e);
        if (!st) st = wait_loop(&wt, sub, deadline, &bar, &e);
        cli_progress_end(&bar);
        if (st) rc = cli_fail(st, &e);
    }
    if (!rc) {
        for (size_t i = 0; i < wt.n; i++)
            if (wt.w[i].out) printf("%s\n", wt.w[i].out);
        if (wt.left)
            rc = cli_error(CLI_REFUSED, "wait: timed out after %lld ms; %zu of %zu not finished",
                           (long long)timeout, wt.left, wt.n);
        else if (wt.failed)
            rc = cli_error(CLI_REFUSED, "wait: %zu of %zu did not complete", wt.failed, wt.n);
    }
    for (size_t i = 0; wt.w && i < wt.n; i++)
        free(wt.w[i].out);
    free(wt.w);
    free(wt.by_id);
    free(pos);
    lash_close(wt.cmd);
    lash_close(sub);
    return rc;
}
