/* test_operator.c: what an operator does to a queue (cancel.lua, retry.lua,
 * trim.lua and the retention every claim applies, through registry/): cancel
 * of a pending and of a running row, the retry of terminal failures, and
 * retention by count and by age. A private redis-server per test
 * (tests/rfx.h). */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keys.h"
#include "registry/registry.h"
#include "rfx.h"

TestSuite(operator, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

/* ---- cancel ---------------------------------------------------------------------------- */

Test(operator, cancel_pending_is_immediate)
{
    submit_ok("q", job("cp", "k", "{}"));
    lash_submission later = job("cl", "k", "{}");
    later.delay_ms = 60000;
    submit_ok("q", later);
    redisContext *fin = subscriber("SSUBSCRIBE", "lash:{q}:finished");
    bool requested = true;
    lash_err e = {0};
    cr_assert_eq(lash_cancel(C, "q", "cp", "no longer needed", &requested, &e), LASH_OK, "%s",
                 e.msg);
    cr_expect_not(requested);
    expect_message(fin, "smessage", "lash:{q}:finished", "cp");
    cr_assert_eq(lash_cancel(C, "q", "cl", NULL, &requested, &e), LASH_OK, "%s", e.msg);
    cr_expect_not(requested);
    redisFree(fin);
    expect_state("q", "cp", "cancelled");
    expect_field("q", "cp", "error", "no longer needed");
    expect_state("q", "cl", "cancelled");
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), 0);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:done"), 2);
    lash_claim_batch b = claim("q", "W", 10, TTL_LONG);
    cr_expect_eq(b.n, 0);
    lash_claim_batch_free(&b);
    cr_expect_eq(lash_cancel(C, "q", "cp", NULL, &requested, &e), LASH_EREFUSED);
    cr_expect(strstr(e.msg, "cancelled"), "%s", e.msg);
    cr_expect_eq(lash_cancel(C, "q", "ghost", NULL, &requested, &e), LASH_ENOTFOUND);
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_CANCELLED], 2);
    cr_expect_eq(st.count[LASH_PENDING], 0);
    cr_expect_eq(st.total_cancelled, 2);
}

Test(operator, cancel_running_asks_the_owner)
{
    submit_ok("q", job("cr", "k", "{}"));
    submit_ok("q", job("cf", "k", "{}"));
    lash_claim_batch b = claim("q", "W", 10, TTL_LONG);
    cr_assert_eq(b.n, 2);
    lash_claim_batch_free(&b);
    /* The cancel is published sharded (SPUBLISH): a classic subscriber would
     * not hear it. */
    redisContext *sub = subscriber("SSUBSCRIBE", "lash:{q}:cancel");
    bool requested = false;
    lash_err e = {0};
    cr_assert_eq(lash_cancel(C, "q", "cr", "operator said so", &requested, &e), LASH_OK, "%s",
                 e.msg);
    cr_expect(requested);
    expect_message(sub, "smessage", "lash:{q}:cancel", "cr");
    cr_assert_eq(lash_cancel(C, "q", "cf", NULL, &requested, &e), LASH_OK);
    cr_expect(requested);
    expect_message(sub, "smessage", "lash:{q}:cancel", "cf");
    redisFree(sub);
    expect_state("q", "cr", "running"); /* until its owner stops it */
    expect_field("q", "cr", "cancel", "1");

    cr_expect_eq(renew1("q", "cr", "W", F("q", "cr"), TTL_LONG), LASH_RENEW_CANCEL);
    cr_expect_eq(complete1("q", "cr", "W", F("q", "cr"), LASH_OUT_CANCEL, "killed on request", 0),
                 1);
    expect_state("q", "cr", "cancelled");
    expect_field("q", "cr", "error", "killed on request");
    /* The owner reporting a plain failure of a cancelled row: cancelled, not retried. */
    cr_expect_eq(complete1("q", "cf", "W", F("q", "cf"), LASH_OUT_FAIL, "SIGTERM", 1000), 1);
    expect_state("q", "cf", "cancelled");
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), 0);
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_CANCELLED], 2);
    cr_expect_eq(st.count[LASH_RUNNING], 0);
}

/* ---- operator retry ----------------------------------------------------------------- */

Test(operator, operator_retry_reopens_terminal_failures_only)
{
    lash_submission one = job("f", "k", "{}");
    one.max_attempts = 1;
    submit_ok("q", one);
    lash_submission ab = job("a", "k", "{}");
    ab.on_lost = LASH_ON_LOST_ABANDON;
    submit_ok("q", ab);
    submit_ok("q", job("c", "k", "{}"));
    submit_ok("q", job("ok", "k", "{}"));
    lash_err e = {0};
    bool req;
    cr_assert_eq(lash_cancel(C, "q", "c", NULL, &req, &e), LASH_OK);
    lash_claim_batch b = claim("q", "W", 10, 150);
    cr_assert_eq(b.n, 3);
    lash_claim_batch_free(&b);
    cr_assert_eq(complete1("q", "f", "W", F("q", "f"), LASH_OUT_FAIL, "bad", 0), 1);
    cr_assert_eq(complete1("q", "ok", "W", F("q", "ok"), LASH_OUT_OK, "fine", 0), 1);
    lash_fx_sleep_ms(250); /* "a" loses its lease */
    b = claim("q", "W", 10, TTL_LONG);
    lash_claim_batch_free(&b);
    expect_state("q", "f", "failed");
    expect_state("q", "a", "abandoned");
    expect_state("q", "c", "cancelled");
    expect_state("q", "ok", "completed");
    submit_ok("q", job("p", "k", "{}"));
    int64_t last_fence = F("q", "a"); /* the abandon moved a's fence on: the last one */

    cr_expect_eq(lash_retry(C, "q", "ok", &e), LASH_EREFUSED);
    cr_expect(strstr(e.msg, "completed"), "%s", e.msg);
    cr_expect_eq(lash_retry(C, "q", "p", &e), LASH_EREFUSED);
    cr_expect_eq(lash_retry(C, "q", "ghost", &e), LASH_ENOTFOUND);

    static const char *const reopen[] = {"f", "a", "c"};
    for (int i = 0; i < 3; i++) {
        long long t0 = server_ms();
        cr_assert_eq(lash_retry(C, "q", reopen[i], &e), LASH_OK, "%s: %s", reopen[i], e.msg);
        expect_state("q", reopen[i], "pending");
        expect_field("q", reopen[i], "attempt", "0");
        expect_field("q", reopen[i], "finished_ms", NULL);
        cr_expect_eq(zscore("q", "done", reopen[i]), -1);
        cr_expect_geq(zscore("q", "due", reopen[i]), t0);
        cr_expect_eq(lash_retry(C, "q", reopen[i], &e), LASH_EREFUSED); /* now pending */
    }
    b = claim("q", "W2", 10, TTL_LONG);
    cr_expect_eq(b.n, 4); /* f, a, c and p */
    for (size_t i = 0; i < b.n; i++) {
        cr_expect_eq(b.rows[i].attempt, 1, "%s", b.rows[i].id);
        /* Fences go on from the queue's last one: never back to a row's old fence. */
        cr_expect_gt(b.rows[i].fence, last_fence, "%s", b.rows[i].id);
    }
    lash_claim_batch_free(&b);
    cr_expect_eq(lash_retry(C, "q", "f", &e), LASH_EREFUSED); /* running */
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_RUNNING], 4);
    cr_expect_eq(st.count[LASH_COMPLETED], 1);
    cr_expect_eq(st.count[LASH_FAILED], 0);
    cr_expect_eq(st.count[LASH_ABANDONED], 0);
    cr_expect_eq(st.count[LASH_CANCELLED], 0);
}

/* ---- retention ----------------------------------------------------------------------- */

/* Claims and completes every due row of q, one call per LASH_BATCH_MAX rows. */
static size_t finish_all(const char *q, int spacing_ms)
{
    size_t total = 0;
    for (;;) {
        lash_claim_batch b = claim(q, "W", spacing_ms ? 1 : LASH_BATCH_MAX, TTL_LONG);
        if (b.n == 0) {
            lash_claim_batch_free(&b);
            return total;
        }
        lash_completion *cs = calloc(b.n, sizeof *cs);
        int *st = calloc(b.n, sizeof *st);
        for (size_t i = 0; i < b.n; i++)
            cs[i] = (lash_completion){{b.rows[i].id, "W", b.rows[i].fence}, LASH_OUT_OK, "", 0, 0};
        lash_err e = {0};
        cr_assert_eq(lash_complete(C, q, cs, b.n, st, &e), LASH_OK, "%s", e.msg);
        total += b.n;
        free(cs);
        free(st);
        lash_claim_batch_free(&b);
        if (spacing_ms) lash_fx_sleep_ms(spacing_ms);
    }
}

Test(operator, trim_keeps_the_newest_n)
{
    submit_many(C, "q", "t", 10, 0);
    cr_assert_eq(finish_all("q", 3), 10); /* finish times 3 ms apart, t0 first */
    int64_t removed = -1;
    lash_err e = {0};
    cr_assert_eq(lash_trim(C, "q", (lash_retention){4, 0}, 1000, &removed, &e), LASH_OK, "%s",
                 e.msg);
    cr_expect_eq(removed, 6);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:done"), 4);
    for (int i = 0; i < 10; i++)
        cr_expect_eq(cmd_int("EXISTS lash:{q}:p:t%d", i), i >= 6, "t%d", i);
    cr_expect_eq(stats("q").count[LASH_COMPLETED], 4);
    cr_assert_eq(lash_trim(C, "q", (lash_retention){4, 0}, 1000, &removed, &e), LASH_OK);
    cr_expect_eq(removed, 0);
    /* max bounds one call. */
    cr_assert_eq(lash_trim(C, "q", (lash_retention){0, 0}, 3, &removed, &e), LASH_OK);
    cr_expect_eq(removed, 3);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:t9"), 1);
}

Test(operator, trim_by_age)
{
    submit_many(C, "q", "old", 3, 0);
    cr_assert_eq(finish_all("q", 0), 3);
    lash_fx_sleep_ms(400);
    submit_many(C, "q", "new", 3, 0);
    cr_assert_eq(finish_all("q", 0), 3);
    submit_ok("q", job("live", "k", "{}"));
    int64_t removed = -1;
    lash_err e = {0};
    cr_assert_eq(lash_trim(C, "q", (lash_retention){-1, 300}, 1000, &removed, &e), LASH_OK, "%s",
                 e.msg);
    cr_expect_eq(removed, 3);
    for (int i = 0; i < 3; i++) {
        cr_expect_eq(cmd_int("EXISTS lash:{q}:p:old%d", i), 0);
        cr_expect_eq(cmd_int("EXISTS lash:{q}:p:new%d", i), 1);
    }
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:live"), 1); /* live rows are never trimmed */
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_COMPLETED], 3);
    cr_expect_eq(st.count[LASH_PENDING], 1);
}

Test(operator, trim_many_rows_in_one_call)
{
    enum { N = 9000 };
    submit_many(C, "q", "m", N, 0);
    cr_assert_eq(finish_all("q", 0), N);
    int64_t removed = -1;
    lash_err e = {0};
    cr_assert_eq(lash_trim(C, "q", (lash_retention){0, 0}, 10000, &removed, &e), LASH_OK, "%s",
                 e.msg);
    cr_expect_eq(removed, N);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:done"), 0);
    cr_expect_eq(count_keys("lash:{q}:p:*"), 0);
    cr_expect_eq(stats("q").count[LASH_COMPLETED], 0);
}

Test(operator, claim_applies_retention)
{
    submit_many(C, "q", "k", 20, 0);
    cr_assert_eq(finish_all("q", 0), 20);
    lash_claim_batch b;
    lash_err e = {0};
    cr_assert_eq(lash_claim(C, "q", "W", 1, 1000, (lash_retention){5, 0}, 0, -1, &b, &e), LASH_OK);
    lash_claim_batch_free(&b);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:done"), 5);
    cr_expect_eq(count_keys("lash:{q}:p:*"), 5);
    cr_expect_eq(stats("q").count[LASH_COMPLETED], 5);
}
