/* test_reliability_memory.c: Redis memory stays bounded however much work ran.
 *
 * Measures, with INFO memory used_memory deltas on a private Redis:
 *   - bytes per pending row: P rows submitted with no worker running (row hash
 *     + its due entry; the capped events stream is measured apart, MEMORY USAGE);
 *   - bytes per retained terminal row: after every row completed and retention
 *     trimmed the rest (row hash + its done entry).
 * Then checks the bound: done holds exactly keep rows, exactly keep row keys
 * exist, nothing is due or leased, and used_memory above the empty baseline is
 * within keep x 1 KB + the events stream cap's cost (README "Memory").
 * Short form: 50,000 processes, --keep 1000. LASH_LONG=1: 1,000,000 processes
 * with the default retention (10,000 newest terminal rows, 7 days).
 * Rows: ids "m<number>" (2-8 bytes), payload {"i":<number>}, kind noop.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/reliability/rel.h"

#define Q "mem"

/* Submits ids m<from..to) with payload {"i":<n>}. */
static void submit(lash_conn *c, long from, long to)
{
    enum { B = 1000 };
    static char ids[B][24], pay[B][32]; /* room for any long: -O2 checks */
    static lash_submission subs[B];
    static lash_submitted out[B];
    for (long i = from; i < to;) {
        int k = to - i < B ? (int)(to - i) : B;
        for (int j = 0; j < k; j++) {
            snprintf(ids[j], sizeof ids[j], "m%ld", i + j);
            int pl = snprintf(pay[j], sizeof pay[j], "{\"i\":%ld}", i + j);
            subs[j] = (lash_submission){
                .id = ids[j], .kind = "noop", .payload = pay[j], .payload_len = (size_t)pl};
        }
        lash_err e;
        cr_assert(lash_submit(c, Q, subs, (size_t)k, out, &e) == LASH_OK, "submit: %s", e.msg);
        for (int j = 0; j < k; j++)
            cr_assert(out[j].status == LASH_SUB_CREATED, "%s: %s", ids[j], out[j].msg);
        i += k;
    }
}

static long long key_mem(lash_conn *c, const char *key)
{
    redisReply *r = redisCommand(lash_conn_redis(c), "MEMORY USAGE %s SAMPLES 0", key);
    cr_assert(r);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return v;
}

Test(memory, bounded_by_retention, .timeout = 3600, .fini = rel_fini)
{
    const bool lng = rel_long();
    const long n = lng ? 1000000 : 50000;
    const long keep = lng ? 10000 : 1000; /* long: the default, LASH_DEFAULT_KEEP_N */
    const long p = n < 100000 ? n : 100000;
    long long t0 = lash_fx_ms();
    static lash_fx_redis r;
    lash_fx_redis_start(&r, NULL);
    rel_track_redis(&r);
    lash_conn *c = lash_fx_connect(&r);
    char dir[128], wlog[256];
    rel_mkdir(dir, sizeof dir, "memory");
    snprintf(wlog, sizeof wlog, "%s/workers.log", dir);

    /* Baseline: scripts loaded (a stats call, a throw-away queue's submit), no row. */
    lash_fx_stats(c, Q);
    lash_submission one = {.id = "x", .kind = "noop"};
    lash_submitted o1;
    lash_err e;
    cr_assert(lash_submit(c, "warmup", &one, 1, &o1, &e) == LASH_OK);
    freeReplyObject(rel_cmd(c, "FLUSHALL SYNC")); /* keys gone; the script cache stays */
    long long base = rel_info(c, "memory", "used_memory");

    /* A payload over 64 bytes turns the row hash from a listpack into a hash
     * table (Redis' hash-max-listpack-value): measured apart, on its own queue. */
    char big[257];
    memset(big, 'x', 256);
    big[0] = big[255] = '"';
    big[256] = 0;
    rel_submit_range(c, "memb", "b", 0, 10000, "noop", big, 3);
    long long big_used = rel_info(c, "memory", "used_memory");
    double per_pending_256 = (double)(big_used - base - key_mem(c, "lash:{memb}:events")) / 10000.0;
    freeReplyObject(rel_cmd(c, "FLUSHALL SYNC"));
    base = rel_info(c, "memory", "used_memory");

    /* Pending rows. */
    submit(c, 0, p);
    long long pend_used = rel_info(c, "memory", "used_memory");
    long long ev_pend = key_mem(c, "lash:{" Q "}:events");
    long long row_sample = key_mem(c, "lash:{" Q "}:p:m12345");
    double per_pending = (double)(pend_used - base - ev_pend) / (double)p;

    /* Work it all off: retention trims as the claims go. */
    char keeps[32];
    snprintf(keeps, sizeof keeps, "%ld", keep);
    const char *args_short[] = {"--queue",       Q,      "--builtin", "noop",
                                "--concurrency", "128",  "--keep",    keeps,
                                "--log-level",   "warn", NULL};
    const char *args_long[] = {"--queue",     Q,      "--builtin", "noop", "--concurrency", "128",
                               "--log-level", "warn", NULL}; /* the default retention */
    pid_t w[3];
    for (int i = 0; i < 3; i++)
        w[i] = rel_worker(r.url, wlog, lng ? args_long : args_short);
    for (long i = p; i < n; i += 50000) {
        submit(c, i, i + 50000 < n ? i + 50000 : n);
        /* Keep at most ~200k rows ahead of the workers, as a steady producer would. */
        while (rel_zcard(c, Q, LASH_KEY_DUE) > 200000)
            lash_fx_sleep_ms(100);
    }
    bool idle = rel_wait_idle(c, Q, lng ? 1800000 : 300000);
    long long work_ms = lash_fx_ms() - t0;
    long long done_at_idle = rel_zcard(c, Q, LASH_KEY_DONE), trim_t0 = lash_fx_ms();
    /* The last trims come with the polls (100 rows per claim). */
    long long until = lash_fx_ms() + 120000;
    while (rel_zcard(c, Q, LASH_KEY_DONE) > keep && lash_fx_ms() < until)
        lash_fx_sleep_ms(100);
    long long trim_ms = lash_fx_ms() - trim_t0;
    lash_fx_sleep_ms(500);

    long long done = rel_zcard(c, Q, LASH_KEY_DONE);
    long long rows = lash_fx_count_keys(c, "lash:{" Q "}:p:*");
    long long due = rel_zcard(c, Q, LASH_KEY_DUE), leases = lash_fx_lease_keys(c, Q);
    long long used_live = rel_info(c, "memory", "used_memory"); /* with the workers' clients */
    long long peak = rel_info(c, "memory", "used_memory_peak");
    lash_stats st = lash_fx_stats(c, Q);
    int bad_exit = 0;
    for (int i = 0; i < 3; i++)
        bad_exit += rel_stop(w[i], 15000) != 0;
    lash_fx_sleep_ms(200);

    /* At rest: data only. Then the retained rows' share, by deleting them. */
    long long used = rel_info(c, "memory", "used_memory");
    long long ev = key_mem(c, "lash:{" Q "}:events");
    long long ev_len = rel_int(c, "XLEN lash:{" Q "}:events");
    char last[64];
    snprintf(last, sizeof last, "lash:{" Q "}:p:m%ld", n - 1);
    long long term_sample = key_mem(c, last);
    redisContext *rc = lash_conn_redis(c);
    char cursor[32] = "0";
    do {
        redisReply *x = rel_cmd(c, "SCAN %s MATCH lash:{" Q "}:p:* COUNT 1000", cursor);
        snprintf(cursor, sizeof cursor, "%s", x->element[0]->str);
        for (size_t i = 0; i < x->element[1]->elements; i++)
            redisAppendCommand(rc, "DEL %s", x->element[1]->element[i]->str);
        for (size_t i = 0; i < x->element[1]->elements; i++) {
            void *v;
            cr_assert(redisGetReply(rc, &v) == REDIS_OK);
            freeReplyObject(v);
        }
        freeReplyObject(x);
    } while (strcmp(cursor, "0") != 0);
    freeReplyObject(rel_cmd(c, "DEL lash:{" Q "}:done"));
    long long used_norows = rel_info(c, "memory", "used_memory");
    double per_terminal = (double)(used - used_norows) / (double)(done ? done : 1);
    long long bound = keep * 1024 + 4LL * 1024 * 1024;

    rel_report("memory",
               "processes %ld, keep %ld: pending row %.0f B (MEMORY USAGE of one row hash %lld "
               "B; with a 256-byte payload %.0f B), retained terminal row %.0f B (one row hash "
               "%lld B), events stream %lld "
               "entries %lld B; used_memory empty %lld B, at rest after the run %lld B (+%lld B, "
               "bound %lld B), with 3 workers connected %lld B, peak %lld B; done %lld (at idle "
               "%lld, trimmed to keep in %.1f s), row keys %lld, completed total %lld, work "
               "runtime %.1f s",
               n, keep, per_pending, row_sample, per_pending_256, per_terminal, term_sample, ev_len,
               ev, base, used, used - base, bound, used_live, peak, done, done_at_idle,
               trim_ms / 1000.0, rows, (long long)st.total_completed, work_ms / 1000.0);

    cr_expect(idle, "the queue did not drain");
    cr_expect_eq(st.total_completed, n);
    cr_expect_eq(done, keep, "done holds %lld, keep is %ld", done, keep);
    cr_expect_eq(rows, keep, "%lld row keys remain, keep is %ld", rows, keep);
    cr_expect_eq(st.count[LASH_COMPLETED], keep, "the completed counter follows the trim");
    cr_expect_eq(due, 0);
    cr_expect_eq(leases, 0);
    cr_expect(used - base <= bound, "used_memory grew %lld B, over the bound %lld B", used - base,
              bound);
    cr_expect(per_pending > 0 && per_pending <= 1024, "a pending row costs %.0f B", per_pending);
    cr_expect(per_terminal > 0 && per_terminal <= 1024, "a terminal row costs %.0f B",
              per_terminal);
    cr_expect_eq(bad_exit, 0, "a worker did not drain and exit 0");
    lash_close(c);
    lash_fx_redis_stop(&r);
    rel_rmdir(dir);
}
