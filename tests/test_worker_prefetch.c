/* test_worker_prefetch.c: lash-worker --prefetch N against a real Redis.
 *
 * A worker claims up to concurrency + N rows; N of them wait leased (state
 * running in Redis, renewed like the running ones) and start as running ones
 * end, never more than --concurrency at once. A SIGTERM hands the prefetched rows
 * back unrun at once (no attempt spent) while the running ones get their
 * grace. Real lash-worker processes (tests/wfx.h).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "wfx.h"

TestSuite(prefetch, .fini = wfx_teardown, .timeout = 90);

/* The most processes the conc.log of conc_script saw at once, and its starts. */
static int most_at_once(const char *log, int *starts)
{
    FILE *f = fopen(log, "r");
    cr_assert(f, "no %s", log);
    char line[256];
    int cur = 0, most = 0;
    *starts = 0;
    while (fgets(line, sizeof line, f)) {
        cur += line[0] == '+' ? 1 : -1;
        *starts += line[0] == '+';
        if (cur > most) most = cur;
    }
    fclose(f);
    return most;
}

/* A handler that logs "+ id" and "- id" around a sleep of `secs`. */
static void conc_script(char *handler, size_t cap, char *log, size_t logcap, const char *secs)
{
    char body[512], prog[256];
    path_in(log, logcap, "conc.log");
    snprintf(body, sizeof body, "echo \"+ $LASH_ID\" >> %s\nsleep %s\necho \"- $LASH_ID\" >> %s\n",
             log, secs, log);
    script(prog, sizeof prog, "conc.sh", body);
    snprintf(handler, cap, "conc=%s", prog);
}

Test(prefetch, held_rows_are_leased_and_run_one_at_a_time)
{
    up(NULL);
    char handler[300], log[256];
    conc_script(handler, sizeof handler, log, sizeof log, "0.1");
    const int n = 12;
    submit_many("q", "p", n, "conc", "{}");
    WORKER("w1", "--queue", "q", "--handler", handler, "--concurrency", "1", "--prefetch", "3");
    WAIT_UNTIL(lease_keys("q") == 4, 10000);
    cr_assert_eq(lease_keys("q"), 4, "one running and three prefetched, all leased");
    cr_assert_eq(stats("q").count[LASH_RUNNING], 4);
    WAIT_UNTIL(stats("q").count[LASH_COMPLETED] == n, 30000);
    cr_assert_eq(stats("q").count[LASH_COMPLETED], n);
    int starts;
    cr_assert_eq(most_at_once(log, &starts), 1, "more than --concurrency ran at once");
    cr_assert_eq(starts, n, "%d runs for %d rows", starts, n);
    ran_once("q", "p", n);
}

Test(prefetch, a_shutdown_hands_prefetched_rows_back_unrun_and_lets_the_running_one_finish)
{
    up(NULL);
    char handler[300], log[256];
    conc_script(handler, sizeof handler, log, sizeof log, "1");
    submit_many("q", "s", 4, "conc", "{}");
    pid_t w = WORKER("w1", "--queue", "q", "--handler", handler, "--concurrency", "1", "--prefetch",
                     "3", "--grace-ms", "20000");
    WAIT_UNTIL(lease_keys("q") == 4, 10000);
    cr_assert_eq(lease_keys("q"), 4);
    kill(w, SIGTERM);
    /* The prefetched rows go back before the running one ends (it sleeps 1 s). */
    WAIT_UNTIL(stats("q").count[LASH_PENDING] == 3, 5000);
    cr_assert_eq(stats("q").count[LASH_PENDING], 3);
    cr_assert_eq(stats("q").count[LASH_RUNNING], 1);
    cr_assert_eq(wait_exit(w, 20000), 0);
    cr_assert_eq(stats("q").count[LASH_COMPLETED], 1, "the running one finished in its grace");
    int starts;
    most_at_once(log, &starts);
    cr_assert_eq(starts, 1, "a prefetched row was started during the shutdown");
    cr_assert_eq(lease_keys("q"), 0);
    for (int i = 0; i < 4; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        lash_record r = get("q", id);
        if (r.state == LASH_PENDING)
            cr_assert_eq(r.attempt, 0, "%s: a prefetched row spent an attempt", id);
        lash_record_free(&r);
    }
}

Test(prefetch, a_prefetch_past_its_bound_is_refused_by_name)
{
    up(NULL);
    char bin[512], err[256];
    snprintf(bin, sizeof bin, "%s", lash_fx_bin("lash-worker"));
    path_in(err, sizeof err, "pf.err");
    cr_assert_eq(run("pf", ARGS(bin, "--prefetch", "5000", "--builtin", "noop", "--redis", R.url)),
                 2);
    cr_assert(file_has(err, "prefetch must be 0..4096, got 5000"));
    cr_assert_eq(run("pf", ARGS(bin, "--prefetch", "-1", "--builtin", "noop", "--redis", R.url)),
                 2);
    cr_assert(file_has(err, "prefetch must be 0..4096, got -1"));
}

/* In-process handlers that end at once: a prefetched row starts as the last ends,
 * within the same loop iteration, and their outcomes leave together. Without
 * prefetch every row costs a complete and a claim call. */
Test(prefetch, a_run_of_short_processes_costs_fewer_calls_than_rows)
{
    up(NULL);
    const int n = 400;
    submit_many("q", "n", n, "noop", "{}");
    cmd_do("CONFIG RESETSTAT");
    WORKER("w1", "--queue", "q", "--builtin", "noop", "--concurrency", "1", "--prefetch", "15");
    WAIT_UNTIL(stats("q").count[LASH_COMPLETED] == n, 30000);
    cr_assert_eq(stats("q").count[LASH_COMPLETED], n);
    long long calls = lash_fx_calls(C, "fcall") + lash_fx_calls(C, "evalsha");
    cr_assert_lt(calls, n / 2, "%lld script calls for %d rows", calls, n);
}

/* A prefetched row's lease ran out while Redis was away: it never started, so it
 * is handed back (released unrun) when Redis returns rather than left for a
 * claim to count its lease lost, which would end an on_lost=abandon row
 * `abandoned` though it never ran. */
Test(prefetch, a_prefetched_row_whose_lease_ran_out_while_redis_was_away_is_handed_back)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    up(aof);
    char work[256], handler[300];
    work_script(work, sizeof work);
    snprintf(handler, sizeof handler, "work=%s", work);
    submit("q", "a1", "work", "[30,0]");
    submit_o("q", "h1", "work", "[0,0]", (opts){.max_attempts = 1, .abandon = true});
    WORKER("wA", "--queue", "q", "--handler", handler, "--concurrency", "1", "--prefetch", "1",
           "--lease-ms", "900", "--poll-ms", "100");
    WAIT_UNTIL(runs_of("a1", 1, NULL) == 1 && lease_keys("q") == 2, 10000);
    cr_assert_eq(lease_keys("q"), 2, "a1 runs, h1 is prefetched");
    cr_assert_eq(runs_of("h1", 1, NULL), 0);
    lash_fx_redis_kill9(&R);
    lash_fx_sleep_ms(2000); /* past every lease */
    lash_fx_redis_restart(&R, aof);
    reconnect();
    WAIT_UNTIL(row_is("q", "h1", "completed"), 15000);
    lash_record r = get("q", "h1");
    cr_assert_eq(r.state, LASH_COMPLETED, "h1: %s (%s)", lash_state_name(r.state),
                 r.error ? r.error : "");
    cr_assert_eq(r.attempt, 1, "h1 ran on its one attempt");
    cr_assert_eq(runs_of("h1", 2, NULL), 1, "h1 ran once");
    lash_record_free(&r);
    char log[256];
    path_in(log, sizeof log, "wA.log");
    cr_assert(file_has(log, "before the row started; handed back"));
}
