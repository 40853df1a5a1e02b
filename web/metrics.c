/* metrics.c: GET /metrics, the Prometheus text format (see app.h).
 *
 * Per queue, two Redis commands: the stats script (rows per state, running
 * totals, eligible rows, the oldest wait, the server clock) and the workers
 * zset. So a scrape costs 2 x queues round trips, plus SCAN pages when the
 * discovered queue list is older than --discover-ms, and never anything that
 * grows with the number of rows.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/prom.h"
#include "proto/scripts.h"
#include "proto/version.h"
#include "web/app.h"

/* Heartbeat series per queue, at most: a label per worker is cardinality. */
#define MAX_WORKER_SERIES 500

typedef struct {
    const char *q;
    lash_stats s;
    lash_worker_seen *w;
    size_t nw;
} queue_read;

static const struct {
    const char *name;
    size_t off;
    const char *help;
} totals[] = {
    {"lash_submitted_total", offsetof(lash_stats, total_submitted),
     "Processes submitted since the queue began."},
    {"lash_completed_total", offsetof(lash_stats, total_completed), "Processes completed."},
    {"lash_failed_total", offsetof(lash_stats, total_failed),
     "Processes failed for good (no attempts left, or aborted)."},
    {"lash_retried_total", offsetof(lash_stats, total_retried),
     "Failed attempts that were scheduled to run again."},
    {"lash_lost_leases_total", offsetof(lash_stats, total_lost),
     "Leases that ran out before their worker recorded an outcome."},
    {"lash_cancelled_total", offsetof(lash_stats, total_cancelled), "Processes cancelled."},
    {"lash_abandoned_total", offsetof(lash_stats, total_abandoned),
     "Processes abandoned after a lost lease (on_lost=abandon)."},
};

static int64_t field(const lash_stats *s, size_t off)
{
    return *(const int64_t *)((const char *)s + off);
}

void web_metrics(web_app *a, web_reply *out)
{
    int64_t t0 = web_mono_ms();
    lash_prom_buf b = {0};
    const char *const *qs = NULL;
    size_t nq = 0;
    uint64_t commands = 0;
    lash_err e = {0};
    lash_status st = web_queues(a, &qs, &nq, &e);
    if (!st) st = web_conn(a, &e);
    queue_read *rd = st ? NULL : calloc(nq + 1, sizeof *rd);
    if (!st && !rd) st = LASH_ENOMEM;
    size_t ok = 0;
    for (size_t i = 0; !st && i < nq; i++) {
        rd[i].q = qs[i];
        st = lash_get_stats(a->conn, qs[i], &rd[i].s, &e);
        if (!st)
            st =
                lash_read_workers(a->conn, qs[i], MAX_WORKER_SERIES, &rd[i].w, &rd[i].nw, NULL, &e);
        commands += 2;
        if (!st) ok = i + 1;
    }
    if (st) web_conn_failed(a, st);
    a->commands = commands;

    lash_prom_family(&b, "lash_up", "gauge", "1 when Redis answered this scrape, else 0.");
    lash_prom_sample(&b, "lash_up", st ? 0 : 1, NULL);
    lash_prom_family(&b, "lash_build_info", "gauge",
                     "lash-web's version and the Lua library version it expects.");
    lash_prom_sample(&b, "lash_build_info", 1, "version", lash_version(), "lua_library",
                     lash_function_version(), NULL);
    if (!st) {
        lash_prom_family(&b, "lash_queues", "gauge", "Queues this scrape reports.");
        lash_prom_sample(&b, "lash_queues", (double)ok, NULL);
        lash_prom_family(&b, "lash_processes", "gauge", "Rows in each state now.");
        for (size_t i = 0; i < ok; i++)
            for (int k = 0; k < LASH_STATE_COUNT; k++)
                lash_prom_sample(&b, "lash_processes", (double)rd[i].s.count[k], "queue", rd[i].q,
                                 "state", lash_state_name((lash_state)k), NULL);
        for (size_t t = 0; t < sizeof totals / sizeof totals[0]; t++) {
            lash_prom_family(&b, totals[t].name, "counter", totals[t].help);
            for (size_t i = 0; i < ok; i++)
                lash_prom_sample(&b, totals[t].name, (double)field(&rd[i].s, totals[t].off),
                                 "queue", rd[i].q, NULL);
        }
        lash_prom_family(&b, "lash_eligible_processes", "gauge",
                         "Due rows eligible to run now: pending and due, or running with an "
                         "expired lease.");
        for (size_t i = 0; i < ok; i++)
            lash_prom_sample(&b, "lash_eligible_processes", (double)rd[i].s.eligible, "queue",
                             rd[i].q, NULL);
        lash_prom_family(&b, "lash_due_processes", "gauge",
                         "Rows not yet finished (the due set), eligible or not.");
        for (size_t i = 0; i < ok; i++)
            lash_prom_sample(&b, "lash_due_processes", (double)rd[i].s.due, "queue", rd[i].q, NULL);
        lash_prom_family(&b, "lash_retained_processes", "gauge",
                         "Finished rows kept by retention (the done set).");
        for (size_t i = 0; i < ok; i++)
            lash_prom_sample(&b, "lash_retained_processes", (double)rd[i].s.done, "queue", rd[i].q,
                             NULL);
        lash_prom_family(&b, "lash_oldest_eligible_age_seconds", "gauge",
                         "How long the longest-waiting eligible row has waited (0: none).");
        for (size_t i = 0; i < ok; i++)
            lash_prom_sample(&b, "lash_oldest_eligible_age_seconds",
                             (double)rd[i].s.oldest_due_ms / 1000.0, "queue", rd[i].q, NULL);
        lash_prom_family(&b, "lash_workers_alive", "gauge",
                         "Workers whose heartbeat is less than a minute old.");
        for (size_t i = 0; i < ok; i++)
            lash_prom_sample(&b, "lash_workers_alive", (double)rd[i].s.workers, "queue", rd[i].q,
                             NULL);
        lash_prom_family(&b, "lash_worker_heartbeat_age_seconds", "gauge",
                         "Seconds since each worker's last heartbeat (Redis clock).");
        for (size_t i = 0; i < ok; i++)
            for (size_t k = 0; k < rd[i].nw; k++)
                lash_prom_sample(&b, "lash_worker_heartbeat_age_seconds",
                                 (double)(rd[i].s.now_ms - rd[i].w[k].seen_ms) / 1000.0, "queue",
                                 rd[i].q, "worker", rd[i].w[k].id, NULL);
    }
    lash_prom_family(&b, "lash_scrape_redis_commands", "gauge",
                     "Redis commands this scrape sent (queue discovery not counted).");
    lash_prom_sample(&b, "lash_scrape_redis_commands", (double)commands, NULL);
    lash_prom_family(&b, "lash_scrape_duration_seconds", "gauge", "How long this scrape took.");
    lash_prom_sample(&b, "lash_scrape_duration_seconds", (double)(web_mono_ms() - t0) / 1000.0,
                     NULL);
    for (size_t i = 0; rd && i < nq; i++)
        lash_workers_free(rd[i].w, rd[i].nw);
    free(rd);
    if (b.oom) {
        lash_prom_buf_free(&b);
        out->status = 500;
        out->type = "text/plain; charset=utf-8";
        out->body = (char *)"out of memory\n";
        out->len = strlen(out->body);
        out->is_static = true;
        return;
    }
    out->status = 200;
    out->type = "text/plain; version=0.0.4; charset=utf-8";
    out->body = b.s ? b.s : strdup("");
    out->len = b.len;
}
