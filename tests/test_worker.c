/* test_worker.c: lash-worker end to end, against a private redis-server
 * (the fixture, tests/wfx.h, says how). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "proto/keys.h"
#include "proto/scripts.h"
#include "proto/version.h"
#include "wfx.h"

TestSuite(worker, .fini = wfx_teardown, .timeout = 90);

/* ============================================================================ tests */

/* Rows submitted while no worker runs are driven to completion by the startup
 * drive (and the drives it chains while full batches come back): the poll is a
 * minute away and every poke was sent before anyone listened. */
Test(worker, startup_drive)
{
    up(NULL);
    submit_many("a", "a", 150, "noop", "{}");
    submit_many("b", "b", 50, "noop", "[1,2]");
    lash_fx_sleep_ms(100);
    lash_stats sa = stats("a");
    cr_assert_eq(sa.count[LASH_PENDING], 150);

    long long t0 = lash_fx_ms();
    WORKER("w1", "--queue", "a", "--queue", "b", "--builtin", "noop", "--concurrency", "16",
           "--poll-ms", "60000");
    WAIT_UNTIL(stats("a").count[LASH_COMPLETED] == 150 && stats("b").count[LASH_COMPLETED] == 50,
               20000);
    lash_stats a = stats("a"), b = stats("b");
    cr_assert_eq(a.count[LASH_COMPLETED], 150, "a: %lld completed, %lld pending, %lld running",
                 (long long)a.count[LASH_COMPLETED], (long long)a.count[LASH_PENDING],
                 (long long)a.count[LASH_RUNNING]);
    cr_assert_eq(b.count[LASH_COMPLETED], 50);
    cr_assert_lt(lash_fx_ms() - t0, 20000);
    cr_assert_eq(a.total_completed, 150);
    cr_assert_eq(a.count[LASH_PENDING] + a.count[LASH_RUNNING], 0);
    for (int i = 0; i < 150; i += 7) {
        char id[16];
        snprintf(id, sizeof id, "a%d", i);
        lash_record r = get("a", id);
        cr_assert_eq(r.state, LASH_COMPLETED, "%s", id);
        cr_assert_eq(r.attempt, 1, "%s ran %d times", id, r.attempt);
        cr_assert(owned_by(&r, "w1"), "owner %s", r.owner);
        lash_record_free(&r);
    }
    cr_assert_eq(lease_keys("a") + lease_keys("b"), 0);
    /* The worker heartbeats into each queue's workers set. */
    char key[LASH_KEY_MAX];
    redisReply *rp = cmd("ZRANGE %s 0 -1", lash_key(key, "b", LASH_KEY_WORKERS));
    cr_assert(rp->elements == 1 && owner_is(rp->element[0]->str, "w1"),
              "w1 is not in lash:{b}:workers");
    freeReplyObject(rp);
}

/* A worker drains n no-op rows of queue q, counted from a reset of the server's
 * command statistics. */
static void drain_counted(const char *worker, const char *q, int n)
{
    cmd_do("CONFIG RESETSTAT");
    WORKER(worker, "--queue", q, "--builtin", "noop");
    submit_many(q, q, n, "noop", "{}");
    WAIT_UNTIL(stats(q).count[LASH_COMPLETED] == n, 20000);
    cr_assert_eq(stats(q).count[LASH_COMPLETED], n);
}

/* Where an operator loaded the library (lashctl does), a worker's calls go by
 * FCALL of this version's names (registry/argv.h); where it is absent, by
 * EVALSHA after one FCALL that found nothing. */
Test(worker, calls_go_by_fcall_where_the_library_is_loaded)
{
    up(NULL);
    lash_err e = {0};
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    drain_counted("w1", "f", 20);
    cr_expect_gt(lash_fx_calls(C, "fcall"), 2, "%lld FCALLs", lash_fx_calls(C, "fcall"));
    cr_expect_eq(lash_fx_calls(C, "evalsha") + lash_fx_calls(C, "eval"), 0, "%lld EVALSHAs",
                 lash_fx_calls(C, "evalsha"));

    cmd_do("FUNCTION FLUSH");
    drain_counted("w2", "g", 20);
    cr_expect_gt(lash_fx_calls(C, "evalsha"), 2, "%lld EVALSHAs", lash_fx_calls(C, "evalsha"));
}

/* Nor does such a worker load the scripts it would need without the library:
 * each SCRIPT LOAD compiles lib.lua and an operation (~0.3 ms of Redis CPU),
 * and a worker loaded all 17 on every connection, which a fleet reconnecting
 * after a failover paid at once. */
Test(worker, a_worker_on_the_library_loads_no_scripts)
{
    up(NULL);
    lash_err e = {0};
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    drain_counted("w1", "f", 5);
    cr_expect_eq(lash_fx_calls(C, "script|load"), 0, "%lld SCRIPT LOADs",
                 lash_fx_calls(C, "script|load"));
}

/* A submit's poke wakes an idle worker long before its one-minute poll; after
 * its subscriber connection is killed it subscribes again on its own. Without
 * any PUBLISH (rows written with raw commands), the poll still finds work. */
Test(worker, poke_and_poll)
{
    up(NULL);
    WORKER("wp", "--queue", "p", "--builtin", "noop", "--poll-ms", "60000");
    WORKER("ws", "--queue", "s", "--builtin", "noop", "--poll-ms", "200");
    WAIT_UNTIL(subscribers("p") == 1 && subscribers("s") == 1, 10000);
    cr_assert_eq(subscribers("p"), 1, "the worker did not subscribe to lash:{p}:poke");
    lash_fx_sleep_ms(300); /* past the startup drive */

    long long t0 = lash_fx_ms();
    submit("p", "p1", "noop", NULL);
    WAIT_UNTIL(row_is("p", "p1", "completed"), 2000);
    cr_assert(row_is("p", "p1", "completed"), "a poked worker did not run p1 within 2 s");
    cr_log_info("poke to completion: %lld ms", lash_fx_ms() - t0);

    /* Cut the subscriber: the worker notices, resubscribes, and pokes work again. */
    cmd_do("CLIENT KILL TYPE pubsub");
    WAIT_UNTIL(subscribers("p") == 0, 1000);
    WAIT_UNTIL(subscribers("p") == 1, 10000);
    cr_assert_eq(subscribers("p"), 1, "the worker did not resubscribe");
    lash_fx_sleep_ms(200);
    submit("p", "p2", "noop", NULL);
    WAIT_UNTIL(row_is("p", "p2", "completed"), 2000);
    cr_assert(row_is("p", "p2", "completed"), "no poke reached the resubscribed worker");

    /* No poke at all: the 200 ms poll is the only way ws can learn of s1. */
    raw_row("s", "s1",
            FV("kind", "noop", "payload", "{}", "state", "pending", "max_attempts", "3"));
    WAIT_UNTIL(row_is("s", "s1", "completed"), 5000);
    cr_assert(row_is("s", "s1", "completed"), "the poll did not pick s1 up: state %s",
              hf("s", "s1", "state"));
    /* And a poke-less row on p stays put: nothing there polls for a minute. */
    raw_row("p", "p3",
            FV("kind", "noop", "payload", "{}", "state", "pending", "max_attempts", "3"));
    lash_fx_sleep_ms(1000);
    cr_assert(row_is("p", "p3", "pending"), "p3 ran without a poke: %s", hf("p", "p3", "state"));
}

/* Asks to cancel id, which must be running (the cancel script answers
 * "requested"), then waits up to 5 s for its row to say cancelled. */
static void cancel_running(const char *q, const char *id)
{
    bool requested = false;
    lash_err e = {0};
    cr_assert_eq(lash_cancel(C, q, id, NULL, &requested, &e), LASH_OK, "%s", e.msg);
    cr_assert(requested, "%s was not running", id);
    WAIT_UNTIL(row_is(q, id, "cancelled"), 5000);
}

/* The scripts publish pokes and cancels sharded (SPUBLISH: lash_publish in
 * lib.lua); an operator's plain PUBLISH must keep working. A worker that polls
 * once a minute and renews every 20 s hears both kinds on both channels. */
Test(worker, pokes_and_cancels_are_heard_sharded_and_classic)
{
    up(NULL);
    char work[256], handler[300];
    work_script(work, sizeof work);
    snprintf(handler, sizeof handler, "work=%s", work);
    WORKER("wh", "--queue", "h", "--handler", handler, "--builtin", "noop", "--poll-ms", "60000",
           "--lease-ms", "60000", "--concurrency", "4");
    WAIT_UNTIL(subscribers("h") == 1, 10000);
    cr_assert_eq(subscribers("h"), 1, "wh does not listen both ways to lash:{h}:poke");
    redisReply *r = cmd("PUBSUB SHARDNUMSUB lash:{h}:poke lash:{h}:cancel");
    cr_assert(r->elements == 4 && r->element[1]->integer == 1 && r->element[3]->integer == 1,
              "wh is not subscribed sharded to lash:{h}:poke and lash:{h}:cancel");
    freeReplyObject(r);
    lash_fx_sleep_ms(300); /* past the startup drive */

    /* A submit: the script's SPUBLISH wakes it. */
    submit("h", "s1", "noop", NULL);
    WAIT_UNTIL(row_is("h", "s1", "completed"), 2000);
    cr_assert(row_is("h", "s1", "completed"), "a submit's SPUBLISH did not wake the worker");
    /* Rows written without a poke, then one PUBLISH, then one SPUBLISH. */
    raw_row("h", "c1",
            FV("kind", "noop", "payload", "{}", "state", "pending", "max_attempts", "3"));
    lash_fx_sleep_ms(300);
    cr_assert(row_is("h", "c1", "pending"), "c1 ran without a poke");
    cmd_do("PUBLISH lash:{h}:poke 1");
    WAIT_UNTIL(row_is("h", "c1", "completed"), 2000);
    cr_assert(row_is("h", "c1", "completed"), "a classic PUBLISH did not wake the worker");
    raw_row("h", "p1",
            FV("kind", "noop", "payload", "{}", "state", "pending", "max_attempts", "3"));
    cmd_do("SPUBLISH lash:{h}:poke 1");
    WAIT_UNTIL(row_is("h", "p1", "completed"), 2000);
    cr_assert(row_is("h", "p1", "completed"), "an SPUBLISH did not wake the worker");

    /* Cancels: lashctl's (the cancel script's SPUBLISH), and an operator's
     * PUBLISH. The next renew is 20 s away: only the message can stop them. */
    submit("h", "k1", "work", "[30,30]");
    submit("h", "k2", "work", "[30,30]");
    WAIT_UNTIL(runs_of("k1", 1, NULL) == 1 && runs_of("k2", 1, NULL) == 1, 5000);
    pid_t p1, p2;
    cr_assert_eq(runs_of("k1", 1, &p1), 1);
    cr_assert_eq(runs_of("k2", 1, &p2), 1);
    cancel_running("h", "k1");
    cr_assert(row_is("h", "k1", "cancelled"), "k1 (cancel script's SPUBLISH) is %s",
              hf("h", "k1", "state"));
    cmd_do("PUBLISH lash:{h}:cancel k2");
    WAIT_UNTIL(row_is("h", "k2", "cancelled"), 5000);
    cr_assert(row_is("h", "k2", "cancelled"), "k2 (a classic PUBLISH) is %s",
              hf("h", "k2", "state"));
    WAIT_UNTIL(group_gone(p1) && group_gone(p2), 3000);
    cr_assert(group_gone(p1) && group_gone(p2), "a cancelled program is still running");
}

/* A row submitted to run 1.5 s later, on a worker that polls once a minute:
 * the poke's claim finds nothing due but says when the row is, and the
 * worker claims it then. */
Test(worker, a_delayed_row_starts_at_its_time_not_at_the_next_poll)
{
    up(NULL);
    WORKER("wd", "--queue", "d", "--builtin", "noop", "--poll-ms", "60000");
    WAIT_UNTIL(subscribers("d") == 1, 10000);
    lash_fx_sleep_ms(300); /* past the startup drive */
    lash_submission s = {.id = "later", .kind = "noop", .delay_ms = 1500};
    lash_submitted out;
    lash_err e = {0};
    long long t0 = lash_fx_ms();
    cr_assert_eq(lash_submit(C, "d", &s, 1, &out, &e), LASH_OK, "%s", e.msg);
    lash_fx_sleep_ms(1000);
    cr_assert(row_is("d", "later", "pending"), "ran before its time: %s",
              hf("d", "later", "state"));
    WAIT_UNTIL(row_is("d", "later", "completed"), 10000);
    cr_assert(row_is("d", "later", "completed"), "the delayed row waited for the poll: %s",
              hf("d", "later", "state"));
    cr_log_info("due in 1500 ms, completed after %lld ms", lash_fx_ms() - t0);
}

/* kill -9 a worker holding leases: once they expire, another worker runs each
 * row again (attempt 2, a greater fence) and records it, exactly once. */
Test(worker, crash_recovery)
{
    up(NULL);
    lash_fx_events_all(C, "q");
    char work[256];
    work_script(work, sizeof work);
    char handler[300];
    snprintf(handler, sizeof handler, "work=%s", work);
    const char *ids[] = {"c0", "c1", "c2", "c3"};
    for (int i = 0; i < 4; i++)
        submit("q", ids[i], "work", "[30,0]");

    pid_t a = WORKER("wA", "--queue", "q", "--handler", handler, "--lease-ms", "1000",
                     "--concurrency", "4");
    WAIT_UNTIL(runs_of("c0", 1, NULL) + runs_of("c1", 1, NULL) + runs_of("c2", 1, NULL) +
                       runs_of("c3", 1, NULL) ==
                   4,
               10000);
    pid_t pg[4];
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(runs_of(ids[i], 1, &pg[i]), 1, "%s is not running under wA", ids[i]);
        cr_assert(row_is("q", ids[i], "running"));
        cr_assert(lease_exists("q", ids[i]));
    }
    /* Past the lease ttl: wA's renewals keep the rows its own. */
    lash_fx_sleep_ms(1600);
    for (int i = 0; i < 4; i++) {
        cr_assert(lease_exists("q", ids[i]), "%s's lease was not renewed", ids[i]);
        cr_assert_eq(atoll(hf("q", ids[i], "fence")), fence_of_run(ids[i], 1));
        cr_assert_eq(runs_of(ids[i], 2, NULL), 1, "%s ran twice under wA", ids[i]);
    }
    kill9(a);
    /* The orphaned programs keep running (their own process groups); stop them
     * so the test leaves nothing behind. They could not record anything anyway. */
    for (int i = 0; i < 4; i++)
        kill(-pg[i], SIGKILL);

    WORKER("wB", "--queue", "q", "--handler", handler, "--lease-ms", "1000", "--concurrency", "4");
    WAIT_UNTIL(row_is("q", "c0", "completed") && row_is("q", "c1", "completed") &&
                   row_is("q", "c2", "completed") && row_is("q", "c3", "completed"),
               15000);
    for (int i = 0; i < 4; i++) {
        lash_record r = get("q", ids[i]);
        cr_assert_eq(r.state, LASH_COMPLETED, "%s: %s", ids[i], lash_state_name(r.state));
        cr_assert_eq(r.attempt, 2, "%s attempt %d", ids[i], r.attempt);
        cr_assert_eq(runs_of(ids[i], 2, NULL), 2, "%s ran other than twice", ids[i]);
        cr_assert_eq(r.fence, fence_of_run(ids[i], 2), "%s fence %lld", ids[i], (long long)r.fence);
        cr_assert_gt(r.fence, fence_of_run(ids[i], 1), "%s: the fence went back", ids[i]);
        cr_assert(owned_by(&r, "wB"));
        expect_result(&r);
        lash_record_free(&r);
        cr_assert_eq(events("q", ids[i], "completed"), 1, "%s completed more than once", ids[i]);
        cr_assert_eq(events("q", ids[i], "lease-lost"), 1);
    }
    lash_stats s = stats("q");
    cr_assert_eq(s.total_completed, 4);
    cr_assert_eq(s.total_lost, 4);
    cr_assert_eq(lease_keys("q"), 0);
}

/* Redis is killed (-9) and restarted under running workers: they reconnect on
 * their own and finish the queue; nothing is lost, nothing recorded twice. */
Test(worker, redis_restart)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    up(aof);
    const int n = 300;
    submit_many("q", "x", n, "sleep", "{\"ms\":60}");
    pid_t w1 = WORKER("w1", "--queue", "q", "--builtin", "sleep", "--concurrency", "8",
                      "--lease-ms", "3000", "--poll-ms", "200");
    pid_t w2 = WORKER("w2", "--queue", "q", "--builtin", "sleep", "--concurrency", "8",
                      "--lease-ms", "3000", "--poll-ms", "200");
    WAIT_UNTIL(stats("q").count[LASH_COMPLETED] >= 40, 15000);
    long long before = stats("q").count[LASH_COMPLETED];
    cr_assert_geq(before, 40);
    cr_assert_lt(before, n, "the queue finished before Redis could be restarted");

    lash_fx_redis_kill9(&R);
    lash_fx_sleep_ms(400);
    lash_fx_redis_restart(&R, aof);
    reconnect();
    cr_assert(alive(w1) && alive(w2), "a worker died with Redis");
    /* Once more, a little later, while they are busy again. */
    WAIT_UNTIL(stats("q").count[LASH_COMPLETED] >= before + 40, 15000);
    lash_fx_redis_kill9(&R);
    lash_fx_sleep_ms(200);
    lash_fx_redis_restart(&R, aof);
    reconnect();

    WAIT_UNTIL(stats("q").count[LASH_COMPLETED] == n, 40000);
    lash_stats s = stats("q");
    cr_assert_eq(s.count[LASH_COMPLETED], n, "%lld of %d completed (%lld pending, %lld running)",
                 (long long)s.count[LASH_COMPLETED], n, (long long)s.count[LASH_PENDING],
                 (long long)s.count[LASH_RUNNING]);
    cr_assert_eq(s.total_completed, n, "some row was completed twice");
    cr_assert_eq(s.due, 0);
    for (int i = 0; i < n; i++) {
        char id[16];
        snprintf(id, sizeof id, "x%d", i);
        cr_assert(row_is("q", id, "completed"), "%s: %s", id, hf("q", id, "state"));
    }
    cr_assert(alive(w1) && alive(w2));
    char log[256];
    path_in(log, sizeof log, "w1.log");
    cr_assert(file_has(log, "Redis connection lost"), "w1 never noticed the restart");
}

/* Redis goes away for longer than the lease: the worker cannot renew, so it
 * stops the program when its own estimate of the lease runs out (someone else
 * may own the row by then). Back with Redis, the row runs again and completes. */
Test(worker, lease_runs_out_while_redis_away)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    up(aof);
    lash_fx_events_all(C, "q");
    char work[256], handler[300];
    work_script(work, sizeof work);
    snprintf(handler, sizeof handler, "work=%s", work);
    submit("q", "a1", "work", "[30,0]");
    pid_t w =
        WORKER("wA", "--queue", "q", "--handler", handler, "--lease-ms", "900", "--poll-ms", "100");
    WAIT_UNTIL(runs_of("a1", 1, NULL) == 1, 10000);
    pid_t pg;
    cr_assert_eq(runs_of("a1", 1, &pg), 1);
    lash_fx_sleep_ms(300);
    lash_fx_redis_kill9(&R);
    long long t0 = lash_fx_ms();
    WAIT_UNTIL(group_gone(pg), 5000);
    cr_assert(group_gone(pg), "the program outlived its lease while Redis was away");
    cr_assert_lt(lash_fx_ms() - t0, 5000);
    cr_assert(alive(w));
    lash_fx_redis_restart(&R, aof);
    reconnect();
    WAIT_UNTIL(row_is("q", "a1", "completed"), 15000);
    lash_record r = get("q", "a1");
    cr_assert_eq(r.state, LASH_COMPLETED, "a1: %s", lash_state_name(r.state));
    cr_assert_eq(runs_of("a1", 2, NULL), 2);
    cr_assert_gt(r.fence, fence_of_run("a1", 1), "a1 fence %lld", (long long)r.fence);
    expect_result(&r);
    lash_record_free(&r);
    cr_assert_eq(events("q", "a1", "completed"), 1);
    char log[256];
    path_in(log, sizeof log, "wA.log");
    cr_assert(file_has(log, "lease expired before it could be renewed"));
}

/* Cancel kills a running program and records 'cancelled'; a timeout records a
 * failure saying so. */
Test(worker, cancel_and_timeout)
{
    up(NULL);
    char work[256], handler[300];
    work_script(work, sizeof work);
    snprintf(handler, sizeof handler, "work=%s", work);
    submit("q", "k1", "work", "[30,30]");
    submit_o("q", "t1", "work", "[30,30]", (opts){.max_attempts = 1, .timeout_ms = 500});
    /* One that ignores SIGTERM (and so does its sleep): SIGKILL follows. */
    char stubborn[256], h2[300], body[512], elog[256];
    path_in(elog, sizeof elog, "exec.log");
    snprintf(body, sizeof body,
             "trap '' TERM\necho \"$LASH_ID $LASH_FENCE $LASH_ATTEMPT $$\" >> %s\nsleep 30\n",
             elog);
    script(stubborn, sizeof stubborn, "stubborn.sh", body);
    snprintf(h2, sizeof h2, "stubborn=%s", stubborn);
    submit_o("q", "t2", "stubborn", NULL, (opts){.max_attempts = 1, .timeout_ms = 300});
    WORKER("wC", "--queue", "q", "--handler", handler, "--handler", h2, "--concurrency", "4");
    WAIT_UNTIL(runs_of("k1", 1, NULL) == 1 && runs_of("t1", 1, NULL) == 1, 10000);
    pid_t pk, pt;
    cr_assert_eq(runs_of("k1", 1, &pk), 1);
    cr_assert_eq(runs_of("t1", 1, &pt), 1);

    cancel_running("q", "k1");
    lash_record r = get("q", "k1");
    cr_assert_eq(r.state, LASH_CANCELLED, "k1: %s", lash_state_name(r.state));
    cr_assert(r.error && strstr(r.error, "cancel"), "k1 error: %s", r.error ? r.error : "");
    cr_assert_eq(r.attempt, 1);
    lash_record_free(&r);
    WAIT_UNTIL(group_gone(pk), 3000);
    cr_assert(group_gone(pk), "the cancelled program is still running");

    WAIT_UNTIL(row_is("q", "t1", "failed"), 8000);
    r = get("q", "t1");
    cr_assert_eq(r.state, LASH_FAILED, "t1: %s", lash_state_name(r.state));
    cr_assert(r.error && strstr(r.error, "timed out"), "t1 error: %s", r.error ? r.error : "");
    cr_assert_eq(r.attempt, 1);
    lash_record_free(&r);
    WAIT_UNTIL(group_gone(pt), 3000);
    cr_assert(group_gone(pt), "the timed-out program is still running");
    cr_assert_eq(runs_of("t1", 1, NULL), 1, "t1 ran again despite max_attempts 1");

    pid_t p2;
    cr_assert_eq(runs_of("t2", 1, &p2), 1);
    WAIT_UNTIL(row_is("q", "t2", "failed"), 15000);
    r = get("q", "t2");
    cr_assert_eq(r.state, LASH_FAILED, "t2: %s", lash_state_name(r.state));
    cr_assert(r.error && strstr(r.error, "timed out"), "t2 error: %s", r.error ? r.error : "");
    lash_record_free(&r);
    WAIT_UNTIL(group_gone(p2), 3000);
    cr_assert(group_gone(p2), "the program that ignored SIGTERM is still running");
    cr_assert_eq(lease_keys("q"), 0);
}

/* A lease taken away under a running program (deleted, or overwritten by
 * another token): the program is killed and the stale owner records nothing;
 * once it is gone, a claim by another worker completes the row. Until then the
 * rows are kept from every drive (l1 due far in the future, l2 held by the
 * intruder's lease), so no claim by the first worker can muddy the picture. */
Test(worker, lease_loss)
{
    up(NULL);
    lash_fx_events_all(C, "q");
    char work[256], handler[300];
    work_script(work, sizeof work);
    snprintf(handler, sizeof handler, "work=%s", work);
    submit("q", "l1", "work", "[30,0]");
    submit("q", "l2", "work", "[30,0]");
    pid_t a = WORKER("wL", "--queue", "q", "--handler", handler, "--lease-ms", "900",
                     "--concurrency", "2", "--poll-ms", "100");
    WAIT_UNTIL(runs_of("l1", 1, NULL) == 1 && runs_of("l2", 1, NULL) == 1, 10000);
    pid_t p1, p2;
    cr_assert_eq(runs_of("l1", 1, &p1), 1);
    cr_assert_eq(runs_of("l2", 1, &p2), 1);

    char k1[LASH_KEY_MAX], k2[LASH_KEY_MAX], due[LASH_KEY_MAX];
    lash_key(due, "q", LASH_KEY_DUE);
    cmd_do("MULTI");
    cmd_do("DEL %s", lash_key_lease(k1, "q", "l1"));
    cmd_do("ZADD %s 99999999999999 l1", due);
    cmd_do("EXEC");
    /* l2 taken over, as a claim would: the row names another holder. */
    long long f2 = atoll(hf("q", "l2", "fence")) + 100;
    cmd_do("MULTI");
    cmd_do("HSET lash:{q}:p:l2 owner intruder fence %lld", f2);
    cmd_do("SET %s intruder:%lld PX 60000", lash_key_lease(k2, "q", "l2"), f2);
    cmd_do("EXEC");
    WAIT_UNTIL(group_gone(p1) && group_gone(p2), 5000);
    cr_assert(group_gone(p1), "l1's program survived the loss of its lease");
    cr_assert(group_gone(p2), "l2's program survived the loss of its lease");
    lash_fx_sleep_ms(500); /* time for a (wrong) completion to land */
    for (int i = 0; i < 2; i++) {
        const char *id = i ? "l2" : "l1";
        cr_assert(row_is("q", id, "running"), "%s: %s", id, hf("q", id, "state"));
        if (i) { /* still the intruder's */
            cr_assert_str_eq(hf("q", id, "owner"), "intruder");
            cr_assert_eq(atoll(hf("q", id, "fence")), f2);
        } else {
            cr_assert(owner_is(hf("q", id, "owner"), "wL"));
            cr_assert_eq(atoll(hf("q", id, "fence")), fence_of_run(id, 1));
        }
        cr_assert_str_eq(hf("q", id, "result"), "(none)", "%s: the stale owner recorded", id);
        cr_assert_str_eq(hf("q", id, "error"), "(none)", "%s: the stale owner recorded", id);
        cr_assert_eq(runs_of(id, 2, NULL), 1, "%s ran again", id);
    }
    cr_assert_eq(stats("q").total_completed + stats("q").total_failed + stats("q").total_retried,
                 0);
    char log[256];
    path_in(log, sizeof log, "wL.log");
    cr_assert(file_has(log, "lease lost"));
    cr_assert(file_has(log, "outcome discarded"));
    cr_assert(alive(a));
    kill(a, SIGTERM);
    cr_assert_eq(wait_exit(a, 5000), 0);

    /* Give the rows back to the world: the intruder's lease gone, both due now
     * (a drive that met the intruder's lease rescored l2 to its expiry). */
    cmd_do("DEL %s", k2);
    cmd_do("ZADD %s 0 l1 0 l2", due);
    WORKER("wM", "--queue", "q", "--handler", handler, "--lease-ms", "900", "--poll-ms", "100");
    WAIT_UNTIL(row_is("q", "l1", "completed") && row_is("q", "l2", "completed"), 10000);
    for (int i = 0; i < 2; i++) {
        const char *id = i ? "l2" : "l1";
        lash_record r = get("q", id);
        cr_assert_eq(r.state, LASH_COMPLETED, "%s: %s", id, lash_state_name(r.state));
        cr_assert_gt(r.fence, fence_of_run(id, 1));
        cr_assert_eq(r.attempt, 2);
        cr_assert(owned_by(&r, "wM"));
        expect_result(&r);
        lash_record_free(&r);
        cr_assert_eq(events("q", id, "completed"), 1);
        cr_assert_eq(events("q", id, "lease-lost"), 1);
        cr_assert_eq(runs_of(id, 2, NULL), 2);
    }
}

/* What an exec program's exit and output become. The worker logs JSON here,
 * and every line of it must parse (stderr tails full of newlines and control
 * bytes go into those lines). */
Test(worker, exec_results)
{
    up(NULL);
    static const struct {
        const char *kind, *body;
    } progs[] = {
        {"cat", "exec cat\n"},
        {"exit3", "echo 'some early line' >&2\necho 'disk on fire: cannot go on' >&2\nexit 3\n"},
        {"big", "head -c 70000 /dev/zero | tr '\\0' a\n"},
        {"utf", "printf 'ok \\377\\376 bad'\n"},
        {"nul", "printf 'a\\000b'\n"},
        {"env", "printf '%s|%s|%s|%s|%s|%s' \"$LASH_ID\" \"$LASH_QUEUE\" \"$LASH_ATTEMPT\" "
                "\"$LASH_FENCE\" \"$LASH_KIND\" \"${LASH_SECRET:-unset}\"\n"},
        {"noisy", "i=0; while [ $i -lt 400 ]; do echo \"noise line $i\" >&2; i=$((i+1)); done\n"
                  "printf 'the last words\\033[2J\\001' >&2\nexit 1\n"},
        {"signal", "echo 'about to die' >&2\nkill -9 $$\n"},
        {"bg", "sleep 3 &\necho hi\n"},
        {"noread", "echo ignored the input\n"},
        {"gone", "echo never\n"},
    };
    const size_t nprogs = sizeof progs / sizeof progs[0];
    char args[2 * 16 + 8][300];
    const char *argv[2 * 16 + 8];
    int n = 0;
    argv[n++] = "--queue";
    argv[n++] = "q";
    argv[n++] = "--log-format";
    argv[n++] = "json";
    argv[n++] = "--concurrency";
    argv[n++] = "16";
    for (size_t i = 0; i < nprogs; i++) {
        char path[256], name[64];
        snprintf(name, sizeof name, "%s.sh", progs[i].kind);
        script(path, sizeof path, name, progs[i].body);
        snprintf(args[i], sizeof args[i], "%s=%s", progs[i].kind, path);
        argv[n++] = "--handler";
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    /* The worker's own LASH_* settings are not the program's business. */
    worker_env("wE", ARGS("LASH_SECRET=hunter2"), argv);
    WAIT_UNTIL(subscribers("q") == 1, 10000); /* up, its handlers checked */
    cr_assert_eq(subscribers("q"), 1);
    char gone[256];
    path_in(gone, sizeof gone, "gone.sh");
    cr_assert_eq(unlink(gone), 0); /* the program disappears after start-up */

    /* A payload near the 1 MiB cap, echoed: both pipes full at once. */
    size_t bn = 1000 * 1000;
    char *bigp = malloc(bn + 1);
    cr_assert(bigp);
    bigp[0] = '"';
    for (size_t i = 1; i < bn - 1; i++)
        bigp[i] = (char)('a' + i % 26);
    bigp[bn - 1] = '"';
    bigp[bn] = 0;

    static const char cat_in[] = "{\"name\":\"caf\xc3\xa9\",\"n\":[1,2,3]}";
    const struct {
        const char *id, *kind, *payload;
        lash_state state;
        const char *result; /* exact, for completed */
        const char *error1, *error2;
    } rows[] = {
        {"e-cat", "cat", cat_in, LASH_COMPLETED, cat_in, NULL, NULL},
        {"e-exit3", "exit3", NULL, LASH_FAILED, NULL, "exit status 3",
         "disk on fire: cannot go on"},
        {"e-big", "big", NULL, LASH_FAILED, NULL, "result is over 65536 bytes", NULL},
        {"e-bigin", "cat", bigp, LASH_FAILED, NULL, "result is over 65536 bytes", NULL},
        {"e-utf", "utf", NULL, LASH_FAILED, NULL, "not valid UTF-8", NULL},
        {"e-nul", "nul", NULL, LASH_FAILED, NULL, "NUL byte", NULL},
        {"e-env", "env", NULL, LASH_COMPLETED, NULL, NULL, NULL}, /* checked below */
        {"e-noisy", "noisy", NULL, LASH_FAILED, NULL, "exit status 1", "the last words"},
        {"e-signal", "signal", NULL, LASH_FAILED, NULL, "killed by signal 9", "about to die"},
        {"e-bg", "bg", NULL, LASH_COMPLETED, "hi\n", NULL, NULL},
        {"e-noread", "noread", bigp, LASH_COMPLETED, "ignored the input\n", NULL, NULL},
        {"e-gone", "gone", NULL, LASH_FAILED, NULL, "cannot start", gone},
    };
    const size_t nrows = sizeof rows / sizeof rows[0];
    long long t0 = lash_fx_ms();
    for (size_t i = 0; i < nrows; i++)
        submit_o("q", rows[i].id, rows[i].kind, rows[i].payload, (opts){.max_attempts = 1});
    free(bigp);
    for (size_t i = 0; i < nrows; i++) {
        const char *id = rows[i].id;
        WAIT_UNTIL(row_is("q", id, "completed") || row_is("q", id, "failed"), 10000);
        lash_record r = get("q", id);
        cr_assert_eq(r.state, rows[i].state, "%s: %s, error %s", id, lash_state_name(r.state),
                     r.error ? r.error : "");
        cr_assert_eq(r.attempt, 1);
        if (rows[i].result) cr_assert_str_eq(r.result, rows[i].result, "%s", id);
        if (strcmp(id, "e-env") == 0) { /* the program saw the row's own attempt and fence */
            char want[128];
            snprintf(want, sizeof want, "e-env|q|1|%lld|env|unset", (long long)r.fence);
            cr_assert_str_eq(r.result, want);
        }
        if (rows[i].state == LASH_FAILED) cr_assert(!r.result || !*r.result, "%s", id);
        const char *err = r.error ? r.error : "";
        if (rows[i].error1)
            cr_assert(strstr(err, rows[i].error1), "%s: '%s' does not say '%s'", id, err,
                      rows[i].error1);
        if (rows[i].error2)
            cr_assert(strstr(err, rows[i].error2), "%s: '%s' does not say '%s'", id, err,
                      rows[i].error2);
        cr_assert_leq(strlen(err), LASH_ERROR_MAX);
        lash_record_free(&r);
    }
    /* A background child holding stdout does not hold the result for long. */
    cr_assert_lt(lash_fx_ms() - t0, 2900, "e-bg waited for its background child");

    lash_record r = get("q", "e-noisy");
    cr_assert(!strstr(r.error, "noise line 0\n"), "more than a tail was kept");
    cr_assert(!strchr(r.error, '\033'), "a terminal escape reached the error text");
    lash_record_free(&r);

    char log[256], line[8192];
    path_in(log, sizeof log, "wE.log");
    FILE *f = fopen(log, "r");
    cr_assert(f);
    int lines = 0;
    while (fgets(line, sizeof line, f)) {
        cJSON *j = cJSON_Parse(line);
        cr_assert(cJSON_IsObject(j), "not a JSON log line: %s", line);
        cr_assert(cJSON_IsString(cJSON_GetObjectItem(j, "msg")), "%s", line);
        cr_assert(owner_is(cJSON_GetObjectItem(j, "worker")->valuestring, "wE"));
        cJSON_Delete(j);
        lines++;
    }
    fclose(f);
    cr_assert_gt(lines, (int)nrows);
}

/* Untrusted data: broken rows, unknown kinds, bad payloads and garbage on the
 * channels. The worker keeps going, and each named row ends 'failed' saying why. */
Test(worker, bad_input)
{
    up(NULL);
    pid_t w = WORKER("wX", "--queue", "q", "--builtin", "noop", "--poll-ms", "200");
    WAIT_UNTIL(subscribers("q") == 1, 10000);
    cr_assert_eq(subscribers("q"), 1);

    /* Garbage on the channels first: the worker must survive it. */
    char poke[LASH_KEY_MAX], cancel[LASH_KEY_MAX];
    lash_key(poke, "q", LASH_CHAN_POKE);
    lash_key(cancel, "q", LASH_CHAN_CANCEL);
    static const char junk[] = "\x00\xff\xfe\x01\x80garbage\x00\n\r\x1b[2J";
    size_t hn = 4 * 1024 * 1024;
    char *huge = malloc(hn);
    cr_assert(huge);
    for (size_t i = 0; i < hn; i++)
        huge[i] = (char)(i * 131 + 7);
    cmd_do("PUBLISH %s %b", poke, junk, sizeof junk - 1);
    cmd_do("PUBLISH %s %b", poke, huge, hn);
    cmd_do("PUBLISH %s %s", poke, "");
    cmd_do("PUBLISH %s %b", cancel, junk, sizeof junk - 1);
    cmd_do("PUBLISH %s %b", cancel, huge, hn);
    memset(huge, 'a', 300);
    cmd_do("PUBLISH %s %b", cancel, huge, (size_t)300); /* an id over 128 bytes */
    cmd_do("PUBLISH %s %s", cancel, "");
    cmd_do("PUBLISH %s %s", cancel, "bad id!");
    cmd_do("PUBLISH %s %b", cancel, "ok\0tail", (size_t)7);
    cmd_do("PUBLISH %s %s", cancel, "no-such-row");
    free(huge);

    /* Rows with broken fields, written raw. */
    raw_row("q", "b-nopayload", FV("kind", "noop", "state", "pending", "max_attempts", "3"));
    raw_row("q", "b-attempt",
            FV("kind", "noop", "payload", "{}", "state", "pending", "attempt", "abc"));
    raw_row("q", "b-max",
            FV("kind", "noop", "payload", "{}", "state", "pending", "max_attempts", "-4"));
    raw_row("q", "b-fence",
            FV("kind", "noop", "payload", "{}", "state", "pending", "fence", "1e9"));
    raw_row("q", "b-timeout",
            FV("kind", "noop", "payload", "{}", "state", "pending", "timeout_ms", "x"));
    raw_row("q", "b-onlost",
            FV("kind", "noop", "payload", "{}", "state", "pending", "on_lost", "maybe"));
    raw_row("q", "b-nostate", FV("kind", "noop", "payload", "{}"));
    raw_row("q", "b-state", FV("kind", "noop", "payload", "{}", "state", "bogus"));
    raw_row("q", "b-kind", FV("kind", "no op!", "payload", "{}", "state", "pending"));
    raw_row("q", "b-nokind", FV("payload", "{}", "state", "pending"));
    raw_row("q", "b-notjson", FV("kind", "noop", "payload", "{not json", "state", "pending"));
    raw_row("q", "b-trailing", FV("kind", "noop", "payload", "{} {}", "state", "pending"));
    raw_row("q", "b-empty", FV("kind", "noop", "payload", "", "state", "pending"));
    /* A row whose backoff is too long for the claim reply. */
    raw_row("q", "b-backoff",
            FV("kind", "noop", "payload", "{}", "state", "pending", "backoff",
               "exp:1000:600000000000000000000000000000000000000000000000000000000"));
    char key[LASH_KEY_MAX + 64], due[LASH_KEY_MAX];
    lash_key(due, "q", LASH_KEY_DUE);
    /* Binary payload with a NUL and invalid UTF-8. */
    snprintf(key, sizeof key, "lash:{q}:p:%s", "b-binary");
    cmd_do("HSET %s kind noop state pending payload %b", key, "\"\xff\x00\xfe\"", (size_t)5);
    cmd_do("ZADD %s 0 b-binary", due);
    /* A payload over 1 MiB. */
    size_t bn = 1024 * 1024 + 1;
    char *big = malloc(bn);
    cr_assert(big);
    big[0] = '"';
    memset(big + 1, 'x', bn - 2);
    big[bn - 1] = '"';
    snprintf(key, sizeof key, "lash:{q}:p:%s", "b-big");
    cmd_do("HSET %s kind noop state pending payload %b", key, big, bn);
    cmd_do("ZADD %s 0 b-big", due);
    free(big);
    /* A due id without a row, and a row under an id no one could submit. */
    cmd_do("ZADD %s 0 ghost", due);
    static const char bad_id[] = "bad id\nwith junk";
    snprintf(key, sizeof key, "lash:{q}:p:%s", bad_id);
    cmd_do("HSET %s kind noop state pending payload {}", key);
    cmd_do("ZADD %s 0 %s", due, bad_id);
    char long_id[200];
    memset(long_id, 'L', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = 0;
    snprintf(key, sizeof key, "lash:{q}:p:%s", long_id);
    cmd_do("HSET %s kind noop state pending payload {}", key);
    cmd_do("ZADD %s 0 %s", due, long_id);
    /* An unknown kind, submitted the normal way, and a good row after it all. */
    submit("q", "b-unknown", "nosuchkind", "{}");
    cmd_do("PUBLISH %s %b", poke, junk, sizeof junk - 1);

    const struct {
        const char *id, *why;
    } bad[] = {
        {"b-nopayload", "field 'payload' is missing"},
        {"b-attempt", "field 'attempt'"},
        {"b-max", "field 'max_attempts'"},
        {"b-fence", "field 'fence'"},
        {"b-timeout", "field 'timeout_ms'"},
        {"b-onlost", "field 'on_lost'"},
        {"b-nostate", "field 'state' is missing"},
        {"b-state", "field 'state' is not a state"},
        {"b-kind", "field 'kind'"},
        {"b-nokind", "field 'kind'"},
        {"b-notjson", "payload is not valid JSON"},
        {"b-trailing", "payload has bytes after"},
        {"b-empty", "payload is empty"},
        {"b-backoff", "backoff"},
        {"b-binary", "payload contains a NUL byte"},
        {"b-big", "field 'payload' is over 1048576 bytes"},
        {"b-unknown", "unknown kind 'nosuchkind'"},
        {bad_id, "bad row: id has a byte outside"},
        {long_id, "bad row: id is 199 bytes, over 128"},
    };
    const size_t nbad = sizeof bad / sizeof bad[0];
    for (size_t i = 0; i < nbad; i++) {
        WAIT_UNTIL(row_is("q", bad[i].id, "failed"), 10000);
        cr_assert(row_is("q", bad[i].id, "failed"), "%s: state %s, error %s", bad[i].id,
                  hf("q", bad[i].id, "state"), hf("q", bad[i].id, "error"));
        const char *err = hf("q", bad[i].id, "error");
        cr_assert(strstr(err, bad[i].why), "%s: error '%s' does not say '%s'", bad[i].id, err,
                  bad[i].why);
        /* Failed for good on the first look: bad data is not retried. */
        cr_assert(strcmp(hf("q", bad[i].id, "attempt"), "(none)") == 0 ||
                      strcmp(hf("q", bad[i].id, "attempt"), "0") == 0 ||
                      strcmp(hf("q", bad[i].id, "attempt"), "1") == 0 ||
                      strcmp(hf("q", bad[i].id, "attempt"), "abc") == 0,
                  "%s: attempt %s", bad[i].id, hf("q", bad[i].id, "attempt"));
    }
    redisReply *g = cmd("ZSCORE %s ghost", due);
    cr_assert_eq(g->type, REDIS_REPLY_NIL, "a due id without a row was left in due");
    freeReplyObject(g);
    cr_assert_eq(cmd_int("ZCARD %s", due), 0, "work left in due");
    cr_assert_eq(lease_keys("q"), 0);

    submit("q", "good", "noop", "{}");
    WAIT_UNTIL(row_is("q", "good", "completed"), 5000);
    cr_assert(row_is("q", "good", "completed"), "good: %s", hf("q", "good", "state"));
    cr_assert(alive(w), "the worker died on bad input");
    char log[256];
    path_in(log, sizeof log, "wX.log");
    cr_assert(file_has(log, "garbage on the cancel channel"));
    /* The log names the bad row itself, not whichever row took its slot next. */
    char line[128];
    snprintf(line, sizeof line, "id b-notjson fence %s: bad row: payload is not valid JSON",
             hf("q", "b-notjson", "fence"));
    cr_assert(file_has(log, line), "no line '%s'", line);
}

/* The reviewer's case: pointed at an address that accepts connections but
 * never answers, the worker printed only "starting" for 40 s. The first
 * connection has the same reply timeout as any command, and says so. */
Test(worker, a_redis_that_never_answers_is_named_in_the_log)
{
    up(NULL);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    cr_assert(s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) == 0 && listen(s, 8) == 0 &&
              getsockname(s, (struct sockaddr *)&a, &len) == 0);
    char url[64], log[256];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", ntohs(a.sin_port));
    path_in(log, sizeof log, "wS.log");
    /* lease 900 ms: the reply timeout follows it, 300 ms */
    WORKER("wS", "--redis", url, "--lease-ms", "900", "--builtin", "noop");
    WAIT_UNTIL(file_has(log, "no answer from Redis within 300 ms"), 10000);
    cr_assert(file_has(log, "no answer from Redis within 300 ms"), "nothing in the log");
    close(s);
}

/* lash-worker --check reads the health file; bad flags exit 2. */
Test(worker, check_and_flags)
{
    up(NULL);
    char health[256];
    path_in(health, sizeof health, "health");
    const char *bin = lash_fx_bin("lash-worker");
    char binp[512];
    snprintf(binp, sizeof binp, "%s", bin);

    cr_assert_eq(run("chk0", ARGS(binp, "--check", "--health-file", health)), 1,
                 "missing health file passed --check");
    cr_assert_eq(run("chk0", ARGS(binp, "--check")), 2, "--check without a file");

    pid_t wh = WORKER("wH", "--builtin", "noop", "--health-file", health, "--poll-ms", "100");
    struct stat sb;
    WAIT_UNTIL(stat(health, &sb) == 0, 10000);
    cr_assert_eq(stat(health, &sb), 0, "the worker never wrote its health file");
    lash_fx_sleep_ms(1500); /* it must keep touching it, not just create it */
    cr_assert_eq(
        run("chk1", ARGS(binp, "--check", "--health-file", health, "--max-age-ms", "1500")), 0);

    /* SIGHUP reopens the log file (after a rotation, say). */
    char logp[256], rotated[256];
    path_in(logp, sizeof logp, "wH.log");
    path_in(rotated, sizeof rotated, "wH.log.1");
    cr_assert_eq(rename(logp, rotated), 0);
    kill(wh, SIGHUP);
    WAIT_UNTIL(access(logp, F_OK) == 0, 5000);
    submit("default", "h1", "noop", NULL);
    WAIT_UNTIL(row_is("default", "h1", "completed") && file_has(logp, "id=h1"), 5000);
    cr_assert(file_has(logp, "id=h1"), "nothing logged to the reopened file");
    cr_assert(!file_has(rotated, "id=h1"), "still logging to the rotated file");

    /* Redis gone: the file goes stale. */
    lash_fx_redis_kill9(&R);
    lash_fx_sleep_ms(2200);
    cr_assert_eq(
        run("chk2", ARGS(binp, "--check", "--health-file", health, "--max-age-ms", "1500")), 1,
        "healthy while Redis is down");
    lash_fx_redis_restart(&R, NULL);
    reconnect();
    lash_fx_sleep_ms(1500);
    WAIT_UNTIL(
        run("chk3", ARGS(binp, "--check", "--health-file", health, "--max-age-ms", "1500")) == 0,
        10000);
    cr_assert_eq(
        run("chk3", ARGS(binp, "--check", "--health-file", health, "--max-age-ms", "1500")), 0,
        "not healthy again after Redis came back");

    /* An old file. */
    struct timeval old[2] = {{1000000000, 0}, {1000000000, 0}};
    char stale[256];
    path_in(stale, sizeof stale, "stale");
    FILE *f = fopen(stale, "w");
    cr_assert(f);
    fclose(f);
    cr_assert_eq(utimes(stale, old), 0);
    cr_assert_eq(run("chk4", ARGS(binp, "--check", "--health-file", stale)), 1);

    /* Bad flags. */
    static const char *const bad[][4] = {
        {"--concurrency", "0", NULL},
        {"--concurrency", "lots", NULL},
        {"--lease-ms", "5", NULL},
        {"--poll-ms", "1e3", NULL},
        {"--grace-ms", "-1", NULL},
        {"--bogus", NULL},
        {"--log-format", "xml", NULL},
        {"--log-level", "loud", NULL},
        {"--handler", "noequals", NULL},
        {"--handler", "k=/nonexistent/prog", NULL},
        {"--handler", "bad kind!=/bin/true", NULL},
        {"--builtin", "nosuch", NULL},
        {"--queue", "bad{queue}", NULL},
        {"--redis", "http://nope", NULL},
        {"extra-arg", NULL},
        {"--concurrency", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *argv[8] = {binp};
        int n = 1;
        for (int k = 0; bad[i][k]; k++)
            argv[n++] = bad[i][k];
        argv[n++] = "--redis";
        argv[n++] = R.url;
        argv[n] = NULL;
        if (strcmp(bad[i][0], "--redis") == 0) argv[n - 2] = NULL; /* keep the bad URL */
        int code = run("bad", argv);
        cr_assert_eq(code, 2, "lash-worker %s %s: exit %d, want 2", bad[i][0],
                     bad[i][1] ? bad[i][1] : "", code);
    }
    char out[256];
    path_in(out, sizeof out, "help.err");
    cr_assert_eq(run("help", ARGS(binp, "--help")), 0);
    cr_assert(file_has(out, "--grace-ms"));
    cr_assert(file_has(out, "--health-file"));
}

/* A worker runs at most --concurrency processes at once, and two workers
 * sharing a queue run each row once. Each worker's program logs "+" when it
 * starts and "-" just before it exits; a slot is reused only after its process
 * has exited, so replaying the log gives each worker's true process count.
 * (Redis's running count is not used: it may briefly run ahead when a
 * complete's EVALSHA meets NOSCRIPT and is re-sent after the next claim.) */
Test(worker, concurrency_bound)
{
    up(NULL);
    char log[256], body[1024], p1[256], p2[256], h1[300], h2[300];
    path_in(log, sizeof log, "conc.log");
    for (int k = 1; k <= 2; k++) {
        snprintf(body, sizeof body,
                 "echo \"+ w%d $LASH_ID\" >> %s\nsleep 0.25\necho \"- w%d $LASH_ID\" >> %s\n", k,
                 log, k, log);
        script(k == 1 ? p1 : p2, sizeof p1, k == 1 ? "conc1.sh" : "conc2.sh", body);
    }
    snprintf(h1, sizeof h1, "conc=%s", p1);
    snprintf(h2, sizeof h2, "conc=%s", p2);
    WORKER("w1", "--queue", "q", "--handler", h1, "--concurrency", "3");
    WORKER("w2", "--queue", "q", "--handler", h2, "--concurrency", "2");
    WAIT_UNTIL(subscribers("q") == 2, 10000); /* both listening: both get the poke */
    cr_assert_eq(subscribers("q"), 2);
    const int n = 24;
    submit_many("q", "c", n, "conc", "{}");
    WAIT_UNTIL(stats("q").count[LASH_COMPLETED] == n, 20000);
    lash_stats s = stats("q");
    cr_assert_eq(s.count[LASH_COMPLETED], n);
    cr_assert_eq(s.total_completed, n);

    FILE *f = fopen(log, "r");
    cr_assert(f);
    char line[256];
    int cur[3] = {0}, most[3] = {0}, starts[3] = {0};
    while (fgets(line, sizeof line, f)) {
        char sign;
        int k;
        cr_assert_eq(sscanf(line, "%c w%d", &sign, &k), 2, "%s", line);
        cr_assert(k == 1 || k == 2);
        cur[k] += sign == '+' ? 1 : -1;
        starts[k] += sign == '+';
        if (cur[k] > most[k]) most[k] = cur[k];
    }
    fclose(f);
    cr_assert_leq(most[1], 3, "w1 ran %d at once with 3 slots", most[1]);
    cr_assert_leq(most[2], 2, "w2 ran %d at once with 2 slots", most[2]);
    cr_assert_eq(most[1], 3, "w1 never filled its slots");
    cr_assert_eq(starts[1] + starts[2], n, "%d runs for %d rows", starts[1] + starts[2], n);
    cr_assert(starts[1] > 0 && starts[2] > 0, "one worker did everything");
    ran_once("q", "c", n);
}

/* The embedding example runs an in-process handler: kind "upper". */
Test(worker, embed_example)
{
    up(NULL);
    const char *bin = lash_fx_bin("lash-example-embed");
    char binp[512];
    snprintf(binp, sizeof binp, "%s", bin);
    pid_t pid = track("embed", spawn("embed", NULL, ARGS(binp, R.url)))->pid;
    submit("default", "u1", "upper", "\"hello, lash\"");
    submit("default", "u2", "upper", "{\"not\":\"a string\"}");
    WAIT_UNTIL(row_is("default", "u1", "completed") && row_is("default", "u2", "failed"), 10000);
    lash_record r = get("default", "u1");
    cr_assert_eq(r.state, LASH_COMPLETED, "u1: %s %s", lash_state_name(r.state),
                 r.error ? r.error : "");
    cr_assert_str_eq(r.result, "\"HELLO, LASH\"");
    lash_record_free(&r);
    r = get("default", "u2");
    cr_assert_eq(r.state, LASH_FAILED);
    cr_assert(r.error && strstr(r.error, "JSON string"), "%s", r.error ? r.error : "");
    cr_assert_eq(r.attempt, 1);
    lash_record_free(&r);
    kill(pid, SIGTERM);
    cr_assert_eq(wait_exit(pid, 5000), 0);
}

/* ---- what a service manager and an operator see ---------------------------- */

/* A datagram socket at <test dir>/name standing in for systemd's NOTIFY_SOCKET. */
static int notify_socket(const char *name, char *path, size_t cap)
{
    path_in(path, cap, name);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    cr_assert(strlen(path) < sizeof a.sun_path, "test dir too deep for a socket path");
    strcpy(a.sun_path, path);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0, "bind %s: %s", path,
                 strerror(errno));
    return fd;
}

/* The next datagram within ms, or "" when none came. */
static void notify_recv(int fd, int ms, char *buf, size_t cap)
{
    buf[0] = 0;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, ms) != 1) return;
    ssize_t n = recv(fd, buf, cap - 1, 0);
    buf[n > 0 ? n : 0] = 0;
}

Test(worker, tells_systemd_and_its_health_file_it_is_ready_only_after_its_first_drive)
{
    up(NULL);
    char sock[256], health[256], env[300], got[64];
    int fd = notify_socket("notify", sock, sizeof sock);
    path_in(health, sizeof health, "health");
    snprintf(env, sizeof env, "NOTIFY_SOCKET=%s", sock);

    lash_fx_redis_kill9(&R);
    worker_env("wN", ARGS(env), ARGS("--builtin", "noop", "--health-file", health));
    notify_recv(fd, 2000, got, sizeof got);
    cr_assert_str_empty(got, "said '%s' while Redis was down", got);
    cr_assert_neq(access(health, F_OK), 0, "health file written before any drive");

    lash_fx_redis_restart(&R, NULL);
    reconnect();
    notify_recv(fd, 20000, got, sizeof got);
    cr_assert_str_eq(got, "READY=1", "no readiness once Redis answered");
    WAIT_UNTIL(access(health, F_OK) == 0, 5000);
    cr_assert_eq(access(health, F_OK), 0, "no health file once ready");
    close(fd);
}

Test(worker, two_processes_with_the_same_id_have_different_owners)
{
    up(NULL);
    pid_t a = WORKER("same", "--builtin", "noop");
    submit("default", "n1", "noop", NULL);
    WAIT_UNTIL(row_is("default", "n1", "completed"), 10000);
    kill(a, SIGTERM);
    cr_assert_eq(wait_exit(a, 10000), 0);
    WORKER("same", "--builtin", "noop");
    submit("default", "n2", "noop", NULL);
    WAIT_UNTIL(row_is("default", "n2", "completed"), 10000);

    lash_record r1 = get("default", "n1"), r2 = get("default", "n2");
    cr_assert(owned_by(&r1, "same") && owned_by(&r2, "same"), "owners %s, %s", r1.owner, r2.owner);
    /* Fences never repeat in a queue; the owner is what keeps two processes'
     * tokens apart should Redis lose the write that moved the fence. */
    cr_assert_str_neq(r1.owner, r2.owner, "a restarted worker reused its owner");
    lash_record_free(&r1);
    lash_record_free(&r2);
}

Test(worker, every_program_prints_its_version_and_the_lua_library_it_carries)
{
    static const char *const progs[] = {"lash-worker", "lashctl", "lash-web"};
    for (size_t i = 0; i < sizeof progs / sizeof *progs; i++) {
        char bin[512], want[128], out[256];
        snprintf(bin, sizeof bin, "%s", lash_fx_bin(progs[i]));
        cr_assert_eq(run(progs[i], ARGS(bin, "--version")), 0, "%s --version", progs[i]);
        snprintf(want, sizeof want, "%s %s (lua library %s)\n", progs[i], lash_version(),
                 lash_function_version());
        path_in(out, sizeof out, progs[i]);
        strcat(out, ".err");
        cr_assert(file_has(out, want), "%s --version did not print '%s'", progs[i], want);
    }
}
