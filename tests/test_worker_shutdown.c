/* test_worker_shutdown.c: SIGTERM and the promises around it.
 *
 * A drain lets running processes finish within --grace-ms, stops the rest and
 * gives their leases back. A process that finishes by itself, even on the TERM
 * that ends the grace, records its own outcome; a row that must not run twice
 * (on_lost=abandon) and was stopped half way ends abandoned instead of being
 * handed to another worker. Real lash-worker processes (tests/wfx.h).
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "wfx.h"

TestSuite(shutdown, .fini = wfx_teardown, .timeout = 90);

/* The reviewer's case: on_lost=abandon, max_attempts 1, a handler that traps
 * TERM and exits 0: on SIGTERM the row went back to pending with its result
 * discarded, and a second worker ran it again. */
Test(shutdown, a_handler_that_finishes_on_term_records_its_result_and_runs_once)
{
    up(NULL);
    lash_fx_events_all(C, "q");
    char prog[512], handler[600], log[256], body[512];
    path_in(log, sizeof log, "runs.log");
    snprintf(body, sizeof body,
             "echo \"$LASH_FENCE\" >> %s\n"
             "trap 'echo finished on term; exit 0' TERM\n"
             "sleep 30 & wait $!\n",
             log);
    script(prog, sizeof prog, "polite.sh", body);
    snprintf(handler, sizeof handler, "polite=%s", prog);
    submit_o("q", "a", "polite", "{}", (opts){.max_attempts = 1, .abandon = true});
    pid_t w = WORKER("w1", "--queue", "q", "--handler", handler, "--grace-ms", "300");
    WAIT_UNTIL(file_has(log, "1") || file_has(log, "2"), 10000);
    WAIT_UNTIL(row_is("q", "a", "running"), 5000);
    kill(w, SIGTERM);
    cr_assert_eq(wait_exit(w, 10000), 0);
    lash_record r = get("q", "a");
    cr_expect_eq(r.state, LASH_COMPLETED, "a: %s (%s)", lash_state_name(r.state),
                 r.error ? r.error : "");
    cr_expect_str_eq(r.result ? r.result : "", "finished on term\n");
    lash_record_free(&r);
    WORKER("w2", "--queue", "q", "--handler", handler);
    lash_fx_sleep_ms(1000);
    cr_expect_eq(events("q", "a", "claimed"), 1, "a second worker ran it again");
    cr_expect_eq(lease_keys("q"), 0);
}

/* At most once: a row that must not run twice, stopped half way by the end
 * of the grace, is abandoned, never handed to the next worker. */
Test(shutdown, a_stopped_row_that_must_not_run_twice_is_abandoned)
{
    up(NULL);
    lash_fx_events_all(C, "q");
    char prog[512], handler[600], log[256], body[512];
    path_in(log, sizeof log, "started.log");
    snprintf(body, sizeof body, "echo started >> %s\nexec sleep 30\n", log);
    script(prog, sizeof prog, "slow.sh", body);
    snprintf(handler, sizeof handler, "slow=%s", prog);
    submit_o("q", "a", "slow", "{}", (opts){.max_attempts = 1, .abandon = true});
    pid_t w = WORKER("w1", "--queue", "q", "--handler", handler, "--grace-ms", "300");
    /* The program runs (a row is 'running' from its claim, before its start:
     * a row stopped before it started is handed back, not abandoned). */
    WAIT_UNTIL(file_has(log, "started"), 10000);
    kill(w, SIGTERM);
    cr_assert_eq(wait_exit(w, 10000), 0);
    cr_expect(row_is("q", "a", "abandoned"), "a: %s", hf("q", "a", "state"));
    cr_expect(strstr(hf("q", "a", "error"), "on_lost=abandon"), "%s", hf("q", "a", "error"));
    WORKER("w2", "--queue", "q", "--handler", handler);
    lash_fx_sleep_ms(1000);
    cr_expect_eq(events("q", "a", "claimed"), 1, "a second worker ran it again");
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_ABANDONED], 1);
    cr_expect_eq(st.count[LASH_RUNNING] + st.count[LASH_PENDING], 0);
}

/* SIGTERM with a long grace: running processes finish and are recorded, the
 * worker claims nothing more, leaves no lease, and exits 0. */
Test(shutdown, sigterm_drains)
{
    up(NULL);
    char work[256], handler[300];
    work_script(work, sizeof work);
    snprintf(handler, sizeof handler, "work=%s", work);
    const char *ids[] = {"d0", "d1", "d2", "d3"};
    for (int i = 0; i < 4; i++)
        submit("q", ids[i], "work", "[1,1]");
    pid_t w = WORKER("wD", "--queue", "q", "--handler", handler, "--concurrency", "8", "--grace-ms",
                     "20000");
    WAIT_UNTIL(runs_of("d0", 1, NULL) + runs_of("d1", 1, NULL) + runs_of("d2", 1, NULL) +
                       runs_of("d3", 1, NULL) ==
                   4,
               10000);
    long long t0 = lash_fx_ms();
    kill(w, SIGTERM);
    lash_fx_sleep_ms(100);
    submit("q", "late", "work", "[0,0]"); /* a draining worker must not take this */
    int code = wait_exit(w, 15000);
    cr_assert_eq(code, 0, "drained worker exit %d", code);
    cr_assert_lt(lash_fx_ms() - t0, 15000);
    for (int i = 0; i < 4; i++) {
        lash_record r = get("q", ids[i]);
        cr_assert_eq(r.state, LASH_COMPLETED, "%s: %s (%s)", ids[i], lash_state_name(r.state),
                     r.error ? r.error : "");
        cr_assert_eq(r.attempt, 1);
        lash_record_free(&r);
    }
    cr_assert(row_is("q", "late", "pending"), "late: %s", hf("q", "late", "state"));
    cr_assert_str_eq(hf("q", "late", "attempt"), "(none)");
    cr_assert_eq(lease_keys("q"), 0);
    char log[256];
    path_in(log, sizeof log, "wD.log");
    cr_assert(file_has(log, "stopped (exit 0)"));
}

/* SIGTERM with a grace shorter than the work: the rest are killed, their
 * leases released (pending again, attempt handed back), the worker exits 0, and
 * a second worker takes them over. */
Test(shutdown, sigterm_releases)
{
    up(NULL);
    lash_fx_events_all(C, "q");
    char work[256], handler[300];
    work_script(work, sizeof work);
    snprintf(handler, sizeof handler, "work=%s", work);
    const char *ids[] = {"r0", "r1", "r2"};
    for (int i = 0; i < 3; i++)
        submit("q", ids[i], "work", "[30,0]");
    pid_t w = WORKER("wR", "--queue", "q", "--handler", handler, "--concurrency", "4", "--grace-ms",
                     "300");
    WAIT_UNTIL(runs_of("r0", 1, NULL) + runs_of("r1", 1, NULL) + runs_of("r2", 1, NULL) == 3,
               10000);
    pid_t pg[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(runs_of(ids[i], 1, &pg[i]), 1);
    long long t0 = lash_fx_ms();
    kill(w, SIGTERM);
    int code = wait_exit(w, 10000);
    cr_assert_eq(code, 0, "exit %d", code);
    cr_assert_lt(lash_fx_ms() - t0, 10000);
    for (int i = 0; i < 3; i++) {
        WAIT_UNTIL(group_gone(pg[i]), 3000);
        cr_assert(group_gone(pg[i]), "%s's program outlived the worker", ids[i]);
        lash_record r = get("q", ids[i]);
        cr_assert_eq(r.state, LASH_PENDING, "%s: %s", ids[i], lash_state_name(r.state));
        cr_assert_eq(r.attempt, 0, "%s: the attempt was not handed back", ids[i]);
        cr_assert_eq(r.fence, fence_of_run(ids[i], 1));
        lash_record_free(&r);
        cr_assert_eq(events("q", ids[i], "released"), 1);
    }
    cr_assert_eq(lease_keys("q"), 0);

    WORKER("wT", "--queue", "q", "--handler", handler, "--concurrency", "4");
    WAIT_UNTIL(row_is("q", "r0", "completed") && row_is("q", "r1", "completed") &&
                   row_is("q", "r2", "completed"),
               10000);
    for (int i = 0; i < 3; i++) {
        lash_record r = get("q", ids[i]);
        cr_assert_eq(r.state, LASH_COMPLETED, "%s: %s", ids[i], lash_state_name(r.state));
        cr_assert_eq(r.attempt, 1);
        cr_assert_gt(r.fence, fence_of_run(ids[i], 1));
        cr_assert(owned_by(&r, "wT"));
        expect_result(&r);
        lash_record_free(&r);
    }
}

/* A second SIGTERM does not wait out the grace period: it stops the
 * processes at once and releases their leases. */
Test(shutdown, second_sigterm)
{
    up(NULL);
    char work[256], handler[300];
    work_script(work, sizeof work);
    snprintf(handler, sizeof handler, "work=%s", work);
    submit("q", "s0", "work", "[30,0]");
    submit("q", "s1", "work", "[30,0]");
    pid_t w = WORKER("wS", "--queue", "q", "--handler", handler, "--grace-ms", "60000");
    WAIT_UNTIL(runs_of("s0", 1, NULL) + runs_of("s1", 1, NULL) == 2, 10000);
    pid_t pg[2];
    cr_assert_eq(runs_of("s0", 1, &pg[0]), 1);
    cr_assert_eq(runs_of("s1", 1, &pg[1]), 1);
    kill(w, SIGTERM);
    lash_fx_sleep_ms(500);
    cr_assert(alive(w), "exited during the grace period with work running");
    cr_assert(!group_gone(pg[0]) && !group_gone(pg[1]), "killed during the grace period");
    long long t0 = lash_fx_ms();
    kill(w, SIGTERM);
    int code = wait_exit(w, 10000);
    cr_assert_eq(code, 0, "exit %d", code);
    cr_assert_lt(lash_fx_ms() - t0, 10000);
    for (int i = 0; i < 2; i++) {
        const char *id = i ? "s1" : "s0";
        WAIT_UNTIL(group_gone(pg[i]), 3000);
        cr_assert(group_gone(pg[i]), "%s's program outlived the worker", id);
        cr_assert(row_is("q", id, "pending"), "%s: %s", id, hf("q", id, "state"));
        cr_assert_str_eq(hf("q", id, "attempt"), "0");
    }
    cr_assert_eq(lease_keys("q"), 0);
}
