/* test_reliability_chaos.c: workers die with kill -9 (and freeze past their
 * lease) while they work; every process still ends completed exactly once.
 *
 * Three lash-worker daemons (lease 1500 ms; one claims 4 rows ahead with
 * --prefetch) run an exec kind whose program appends "id fence attempt" to a
 * log with one O_APPEND write, then works ~100 ms. Every 1-2 s a random worker
 * is killed with SIGKILL and started again; every third event instead freezes
 * one with SIGSTOP for twice the lease, so its lease expires while its process
 * runs and, once thawed, it tries to record with a stale fence. At the end:
 *   - every process is terminal and completed; the stats counters agree;
 *   - the row's fence is the highest fence the log shows for it (no stale
 *     completion), and that execution ran;
 *   - no id ran more often than its recorded attempts, no (id, fence) twice;
 *   - lash:{q}:due is empty and no lash:{q}:lease:* key remains.
 * Short form 2,000 processes; LASH_LONG=1: 20,000.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/reliability/rel.h"

#define Q "chaos"
#define NW 3
#define LEASE_MS 1500

typedef struct {
    int lines;         /* executions logged */
    int64_t max_fence; /* highest fence logged */
    uint64_t fences;   /* bit f set: fence f logged (f < 64) */
    int dup_fence;     /* an (id, fence) pair logged twice */
} seen;

static int64_t count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    int64_t n = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

Test(chaos, kill9_and_freeze_workers_while_they_work, .timeout = 1800, .fini = rel_fini)
{
    const long n = rel_long() ? 20000 : 2000;
    long long t0 = lash_fx_ms();
    static lash_fx_redis r;
    lash_fx_redis_start(&r, NULL);
    rel_track_redis(&r);
    lash_conn *c = lash_fx_connect(&r);
    char dir[128], prog[256], log[256], wlog[256], handler[300];
    rel_mkdir(dir, sizeof dir, "chaos");
    snprintf(prog, sizeof prog, "%s/job.sh", dir);
    snprintf(log, sizeof log, "%s/exec.log", dir);
    snprintf(wlog, sizeof wlog, "%s/workers.log", dir);
    snprintf(handler, sizeof handler, "job=%s", prog);
    char body[512];
    /* printf is a builtin: one line, one write(2) on an O_APPEND fd, so lines
     * from concurrent processes never interleave. */
    snprintf(body, sizeof body,
             "cat >/dev/null\n"
             "printf '%%s %%s %%s\\n' \"$LASH_ID\" \"$LASH_FENCE\" \"$LASH_ATTEMPT\" >> '%s'\n"
             "sleep 0.1\n"
             "echo done\n",
             log);
    rel_script(prog, body);

    /* Attempts are not what this suite is about: give each row plenty, so a
     * row caught by several kills is re-run, not failed. */
    rel_submit_range(c, Q, "c", 0, n, "job", "{\"work\":1}", 1000);

    const char *args[] = {"--queue",   Q,     "--concurrency", "8",     "--lease-ms", "1500",
                          "--poll-ms", "200", "--handler",     handler, "--keep",     "-1",
                          "--keep-ms", "0",   "--log-level",   "warn",  NULL,         NULL,
                          NULL};
    /* Worker 0 claims 4 rows ahead (--prefetch): its prefetched rows meet the
     * kills and freezes too, and every promise below holds for them. */
    const char *args_pf[sizeof args / sizeof args[0]];
    memcpy(args_pf, args, sizeof args);
    args_pf[14] = "--prefetch";
    args_pf[15] = "4";
    pid_t w[NW];
    for (int i = 0; i < NW; i++)
        w[i] = rel_worker(r.url, wlog, i == 0 ? args_pf : args);

    srand((unsigned)lash_fx_ms());
    int kills = 0, restarts = 0, freezes = 0, events = 0;
    int frozen = -1;
    long long thaw_at = 0;
    long long deadline = lash_fx_ms() + (rel_long() ? 1500000 : 600000);
    long long next_event = lash_fx_ms() + 1000 + rand() % 1000;
    long long next_check = 0;
    bool idle = false;
    while (!idle && lash_fx_ms() < deadline) {
        lash_fx_sleep_ms(50);
        long long now = lash_fx_ms();
        if (frozen >= 0 && now >= thaw_at) {
            kill(w[frozen], SIGCONT);
            frozen = -1;
        }
        if (now >= next_event) {
            int k = rand() % NW;
            if (++events % 3 == 0 && frozen < 0) {
                kill(w[k], SIGSTOP); /* its lease runs out while its process runs */
                frozen = k;
                thaw_at = now + 2 * LEASE_MS;
                freezes++;
            } else {
                if (k == frozen) frozen = -1;
                rel_kill9(w[k]);
                kills++;
                w[k] = rel_worker(r.url, wlog, k == 0 ? args_pf : args);
                restarts++;
            }
            next_event = now + 1000 + rand() % 1000;
        }
        if (now >= next_check) {
            next_check = now + 500;
            lash_stats s = lash_fx_stats(c, Q);
            idle = s.due == 0 && s.count[LASH_PENDING] == 0 && s.count[LASH_RUNNING] == 0;
        }
    }
    if (frozen >= 0) kill(w[frozen], SIGCONT);
    long long run_ms = lash_fx_ms() - t0;
    cr_expect(idle, "the queue did not drain within the bound");
    int bad_exit = 0;
    for (int i = 0; i < NW; i++)
        if (rel_stop(w[i], 15000) != 0) bad_exit++;
    cr_expect_eq(bad_exit, 0, "%d worker(s) did not drain and exit 0 on SIGTERM", bad_exit);
    lash_fx_sleep_ms(300); /* orphans of killed workers log before they sleep; be sure */

    /* The log: executions per id. */
    seen *sn = calloc((size_t)n, sizeof *sn);
    cr_assert(sn);
    FILE *f = fopen(log, "r");
    cr_assert(f, "no execution log");
    char id[160];
    long long fence, attempt, lines = 0, garbled = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        long idx;
        if (sscanf(line, "%150s %lld %lld", id, &fence, &attempt) != 3 || id[0] != 'c' ||
            sscanf(id + 1, "%ld", &idx) != 1 || idx < 0 || idx >= n) {
            garbled++;
            continue;
        }
        lines++;
        seen *s = &sn[idx];
        s->lines++;
        if (fence > s->max_fence) s->max_fence = fence;
        if (fence >= 0 && fence < 64) {
            if (s->fences & (1ull << fence)) s->dup_fence++;
            s->fences |= 1ull << fence;
        }
    }
    fclose(f);

    /* The rows, pipelined. */
    redisContext *rc = lash_conn_redis(c);
    long lost = 0, stale = 0, over_attempts = 0, dup_fence = 0, never_ran = 0, reruns = 0;
    for (long i = 0; i < n; i += 1000) {
        long k = n - i < 1000 ? n - i : 1000;
        for (long j = 0; j < k; j++)
            redisAppendCommand(rc, "HMGET lash:{" Q "}:p:c%ld state fence attempt", i + j);
        for (long j = 0; j < k; j++) {
            void *v = NULL;
            cr_assert(redisGetReply(rc, &v) == REDIS_OK);
            redisReply *x = v;
            seen *s = &sn[i + j];
            cr_assert(x->type == REDIS_REPLY_ARRAY && x->elements == 3);
            if (x->element[0]->type != REDIS_REPLY_STRING ||
                strcmp(x->element[0]->str, "completed") != 0) {
                if (lost < 5)
                    cr_log_error("c%ld: state %s", i + j,
                                 x->element[0]->type == REDIS_REPLY_STRING ? x->element[0]->str
                                                                           : "(missing)");
                lost++;
            } else {
                long long rf = atoll(x->element[1]->str), ra = atoll(x->element[2]->str);
                if (s->lines == 0) never_ran++;
                if (rf != s->max_fence) {
                    if (stale < 5)
                        cr_log_error("c%ld: completed with fence %lld, log's last fence %lld",
                                     i + j, rf, (long long)s->max_fence);
                    stale++;
                }
                if (s->lines > ra) over_attempts++;
                if (s->lines > 1) reruns += s->lines - 1;
                if (s->dup_fence) dup_fence++;
            }
            freeReplyObject(x);
        }
    }
    lash_stats st = lash_fx_stats(c, Q);
    long long due = rel_zcard(c, Q, LASH_KEY_DUE), done = rel_zcard(c, Q, LASH_KEY_DONE);
    long long leases = lash_fx_lease_keys(c, Q);
    int64_t stale_refused = count_in_file(wlog, "refused: stale lease");
    int64_t discarded = count_in_file(wlog, "lease lost, outcome discarded");

    rel_report("chaos",
               "processes %ld, workers %d, kills %d, restarts %d, freezes %d, executions %lld, "
               "duplicate executions %ld, duplicate completions %lld, lost %ld, stale-fence "
               "completions %ld, leases lost (stats) %lld, stale completes refused %lld, outcomes "
               "discarded %lld, runtime %.1f s",
               n, NW, kills, restarts, freezes, lines, reruns,
               (long long)(st.total_completed - (n - lost)), lost, stale, (long long)st.total_lost,
               (long long)stale_refused, (long long)discarded, run_ms / 1000.0);

    cr_expect_eq(garbled, 0, "%lld garbled log lines (non-atomic appends?)", garbled);
    cr_expect_eq(lost, 0, "%ld processes not completed", lost);
    cr_expect_eq(stale, 0, "%ld processes completed by a stale fence", stale);
    cr_expect_eq(never_ran, 0, "%ld completed processes never ran", never_ran);
    cr_expect_eq(over_attempts, 0, "%ld ids ran more often than their attempts", over_attempts);
    cr_expect_eq(dup_fence, 0, "%ld ids ran twice under one fence", dup_fence);
    cr_expect_eq(st.total_completed, n, "total_completed %lld, want %ld",
                 (long long)st.total_completed, n);
    cr_expect_eq(st.count[LASH_COMPLETED], n);
    cr_expect_eq(st.count[LASH_PENDING], 0);
    cr_expect_eq(st.count[LASH_RUNNING], 0);
    cr_expect_eq(st.count[LASH_FAILED], 0);
    cr_expect_eq(st.total_failed, 0);
    cr_expect_eq(due, 0, "due holds %lld ids", due);
    cr_expect_eq(done, n, "done holds %lld ids", done);
    cr_expect_eq(leases, 0, "%lld lease keys remain", leases);
    /* A re-execution needs a lease that ran out: never more of them than leases lost. */
    cr_expect(reruns <= st.total_lost, "%ld re-executions but only %lld leases lost", reruns,
              (long long)st.total_lost);
    cr_expect(kills >= 1, "the run ended before any kill: nothing was tested");

    free(sn);
    lash_close(c);
    lash_fx_redis_stop(&r);
    bool ok = garbled == 0 && lost == 0 && stale == 0 && never_ran == 0 && over_attempts == 0 &&
              dup_fence == 0 && st.total_completed == n && due == 0 && leases == 0 &&
              reruns <= st.total_lost;
    if (ok)
        rel_rmdir(dir);
    else
        cr_log_error("evidence kept in %s", dir);
}
