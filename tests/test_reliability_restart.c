/* test_reliability_restart.c: redis-server dies with kill -9 mid-run and comes
 * back on the same data.
 *
 * A submitter thread submits continuously (20 rows per call) and records an id
 * as acknowledged only when its call returned OK; a failed call is retried with
 * the same ids after reconnecting (submit is idempotent by id). Two lash-worker
 * daemons (built-in noop) work the queue meanwhile. The main thread kills Redis
 * with SIGKILL, waits 300 ms, and starts it again on the same directory, once in
 * the short form and five times in the long form (LASH_LONG=1). Then:
 *   - appendfsync always: every acknowledged id is a row, and completed;
 *   - appendfsync everysec: whatever is missing is counted and reported (the
 *     README "Guarantees" section quotes the figures), and the rest completes;
 *   - in both: the same worker processes are still running (they reconnected on
 *     their own), nothing is left due or leased, the counters agree with the rows.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/reliability/rel.h"

#define Q "rs"
#define BATCH 20
#define MAXIDS 4000000

typedef struct {
    const char *url;
    atomic_int stop;
    atomic_long next; /* ids below next have been acknowledged */
    long errors;      /* failed submit calls */
    long reconnects;
} submitter;

static void *submit_loop(void *arg)
{
    submitter *s = arg;
    lash_conn *c = NULL;
    char ids[BATCH][32];
    lash_submission subs[BATCH];
    lash_submitted out[BATCH];
    long next = 0;
    while (!atomic_load(&s->stop) && next + BATCH <= MAXIDS) {
        lash_err e;
        if (!c) {
            if (lash_connect(s->url, 1000, &c, &e) != LASH_OK) {
                c = NULL;
                lash_fx_sleep_ms(20);
                continue;
            }
            s->reconnects++;
        }
        for (int i = 0; i < BATCH; i++) {
            snprintf(ids[i], sizeof ids[i], "s%ld", next + i);
            subs[i] = (lash_submission){.id = ids[i], .kind = "noop", .max_attempts = 10};
        }
        lash_status st = lash_submit(c, Q, subs, BATCH, out, &e);
        bool ok = st == LASH_OK;
        for (int i = 0; ok && i < BATCH; i++)
            ok = out[i].status == LASH_SUB_CREATED || out[i].status == LASH_SUB_EXISTS;
        if (!ok) { /* not acknowledged: reconnect and send the same ids again */
            s->errors++;
            lash_close(c);
            c = NULL;
            continue;
        }
        next += BATCH;
        atomic_store(&s->next, next);
    }
    lash_close(c);
    return NULL;
}

static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[2048];
    int n = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

static void restart_run(const char *fsync_mode)
{
    const int cycles = rel_long() ? 5 : 1;
    const int phase_ms = rel_long() ? 3000 : 1500;
    const char *extra[] = {"--appendonly", "yes", "--appendfsync", fsync_mode, NULL};
    long long t0 = lash_fx_ms();
    static lash_fx_redis r;
    lash_fx_redis_start(&r, extra);
    rel_track_redis(&r);
    char dir[128], wlog[2][256];
    rel_mkdir(dir, sizeof dir, "restart");
    const char *args[] = {"--queue",    Q,      "--builtin", "noop", "--concurrency", "32",
                          "--lease-ms", "2000", "--poll-ms", "200",  "--keep",        "-1",
                          "--keep-ms",  "0",    NULL};
    pid_t w[2];
    for (int i = 0; i < 2; i++) {
        snprintf(wlog[i], sizeof wlog[i], "%s/worker%d.log", dir, i);
        w[i] = rel_worker(r.url, wlog[i], args);
    }

    submitter sub = {.url = r.url};
    pthread_t th;
    cr_assert(pthread_create(&th, NULL, submit_loop, &sub) == 0);
    long acked_at_kill[8] = {0};
    for (int k = 0; k < cycles; k++) {
        lash_fx_sleep_ms(phase_ms);
        acked_at_kill[k] = atomic_load(&sub.next);
        lash_fx_redis_kill9(&r);
        lash_fx_sleep_ms(300);
        lash_fx_redis_restart(&r, extra);
    }
    lash_fx_sleep_ms(phase_ms);
    atomic_store(&sub.stop, 1);
    pthread_join(th, NULL);
    long acked = atomic_load(&sub.next);

    lash_conn *c = lash_fx_connect(&r);
    bool idle = rel_wait_idle(c, Q, 120000);
    long long drain_ms = lash_fx_ms() - t0;

    /* Every acknowledged id: present and completed? */
    redisContext *rc = lash_conn_redis(c);
    long missing = 0, not_done = 0, first_missing = -1;
    for (long i = 0; i < acked; i += 1000) {
        long k = acked - i < 1000 ? acked - i : 1000;
        for (long j = 0; j < k; j++)
            redisAppendCommand(rc, "HGET lash:{" Q "}:p:s%ld state", i + j);
        for (long j = 0; j < k; j++) {
            void *v = NULL;
            cr_assert(redisGetReply(rc, &v) == REDIS_OK);
            redisReply *x = v;
            if (x->type == REDIS_REPLY_NIL) {
                if (first_missing < 0) first_missing = i + j;
                missing++;
            } else if (x->type != REDIS_REPLY_STRING || strcmp(x->str, "completed") != 0) {
                not_done++;
            }
            freeReplyObject(x);
        }
    }
    long long rows = lash_fx_count_keys(c, "lash:{" Q "}:p:*");
    lash_stats st = lash_fx_stats(c, Q);
    long long due = rel_zcard(c, Q, LASH_KEY_DUE), leases = lash_fx_lease_keys(c, Q);
    int alive = 0, reconnected = 0;
    for (int i = 0; i < 2; i++) {
        alive += rel_alive(w[i]);
        /* "connected" is logged on every (re)connect: one per start + one per restart */
        reconnected += count_lines(wlog[i], " connected\n") > cycles;
    }
    rel_report("restart",
               "appendfsync %s: kills %d (acked before each: %ld...), acknowledged %ld, "
               "submit calls failed %ld, submitter reconnects %ld, rows %lld, completed %lld, "
               "acknowledged-but-missing %ld (first s%ld), acked-not-completed %ld, worker "
               "processes alive %d/2, reconnected on their own %d/2, runtime %.1f s",
               fsync_mode, cycles, acked_at_kill[0], acked, sub.errors, sub.reconnects - 1, rows,
               (long long)st.count[LASH_COMPLETED], missing, first_missing, not_done, alive,
               reconnected, drain_ms / 1000.0);

    cr_expect(idle, "the queue did not drain after the restart(s)");
    if (strcmp(fsync_mode, "always") == 0)
        cr_expect_eq(missing, 0, "%ld acknowledged submits lost with appendfsync always", missing);
    cr_expect_eq(not_done, 0, "%ld acknowledged rows present but not completed", not_done);
    cr_expect_eq(st.count[LASH_COMPLETED], rows, "completed count %lld, rows %lld",
                 (long long)st.count[LASH_COMPLETED], rows);
    cr_expect_eq(st.count[LASH_PENDING] + st.count[LASH_RUNNING], 0);
    cr_expect_eq(due, 0);
    cr_expect_eq(leases, 0);
    cr_expect_eq(alive, 2, "a worker died across the Redis restart");
    cr_expect_eq(reconnected, 2, "a worker did not log a reconnect");
    cr_expect(acked > acked_at_kill[0] && acked_at_kill[0] > 0,
              "submits must be acknowledged before and after the restart");
    for (int i = 0; i < 2; i++)
        cr_expect_eq(rel_stop(w[i], 15000), 0, "worker %d did not exit 0 on SIGTERM", i);
    lash_close(c);
    lash_fx_redis_stop(&r);
    rel_rmdir(dir);
}

Test(restart, appendfsync_always_loses_no_acknowledged_submit, .timeout = 900, .fini = rel_fini)
{
    restart_run("always");
}

Test(restart, appendfsync_everysec_reports_what_it_lost, .timeout = 900, .fini = rel_fini)
{
    restart_run("everysec");
}
