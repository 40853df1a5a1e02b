/* test_fences.c: fences and tokens.
 *
 * A handler that fences its writes refuses any fence lower than one it has
 * seen, so the fences of an id must grow over its whole life in the queue:
 * across retries and lost leases, and across trims, resubmits and rows deleted
 * by hand. Tokens ("<owner>:<fence>") must match byte for byte between the
 * scripts and the worker at every size a fence can take.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfx.h"

TestSuite(fences, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

#define FENCE_MAX 9007199254740991LL /* 2^53 - 1 */

/* Runs id once to completion under owner; returns the fence it ran with. */
static int64_t run_once(const char *q, const char *id, const char *owner)
{
    int64_t f = claim_one(q, owner, id, TTL_LONG);
    cr_assert_eq(complete1(q, id, owner, f, LASH_OUT_OK, "ok", 0), LASH_DONE_RECORDED);
    return f;
}

/* The reviewer's case: x ran to fence 2, was trimmed and resubmitted; the
 * claim handed out fence 1 and token w1:1 again. */
Test(fences, grow_across_trim_and_resubmit)
{
    submit_ok("t", job("x", "k", "{}"));
    int64_t f1 = claim_one("t", "w1", "x", 150);
    lash_fx_sleep_ms(250); /* the lease runs out: the next claim reruns it */
    int64_t f2 = claim_one("t", "w1", "x", TTL_LONG);
    cr_assert_gt(f2, f1);
    cr_assert_eq(complete1("t", "x", "w1", f2, LASH_OUT_OK, "ok", 0), LASH_DONE_RECORDED);
    int64_t removed = 0;
    lash_err e = {0};
    cr_assert_eq(lash_trim(C, "t", (lash_retention){0, 0}, 100, &removed, &e), LASH_OK);
    cr_assert_eq(removed, 1);
    cr_assert_eq(cmd_int("EXISTS lash:{t}:p:x"), 0);
    submit_ok("t", job("x", "k", "{}"));
    int64_t f3 = claim_one("t", "w1", "x", TTL_LONG);
    cr_expect_gt(f3, f2, "fence %lld after %lld: it went back", (long long)f3, (long long)f2);
    redisReply *r = cmd("GET lash:{t}:lease:x");
    char old[64];
    snprintf(old, sizeof old, "w1:%lld", (long long)f2);
    cr_expect_str_neq(r->str, old, "the old token came back");
    freeReplyObject(r);
}

Test(fences, grow_after_the_row_was_deleted_by_hand)
{
    submit_ok("t", job("x", "k", "{}"));
    int64_t f1 = run_once("t", "x", "w1");
    cmd_ok("DEL lash:{t}:p:x");
    submit_ok("t", job("x", "k", "{}"));
    int64_t f2 = claim_one("t", "w1", "x", TTL_LONG);
    cr_expect_gt(f2, f1);
}

Test(fences, a_fence_names_one_claim_in_the_queue)
{
    submit_many(C, "t", "r", 50, 0);
    lash_claim_batch b = claim("t", "w1", 50, TTL_LONG);
    cr_assert_eq(b.n, 50);
    for (size_t i = 0; i < b.n; i++)
        for (size_t j = 0; j < i; j++)
            cr_assert_neq(b.rows[i].fence, b.rows[j].fence, "%s and %s share fence %lld",
                          b.rows[i].id, b.rows[j].id, (long long)b.rows[i].fence);
    lash_claim_batch_free(&b);
}

/* A row's own fence, set higher by hand, still only grows. */
Test(fences, a_hand_set_fence_is_never_undercut)
{
    submit_ok("t", job("x", "k", "{}"));
    cmd_ok("HSET lash:{t}:p:x fence 5000");
    cr_expect_eq(claim_one("t", "w1", "x", TTL_LONG), 5001);
}

/* ---- tokens at every size ------------------------------------------------------ */

/* Lua formats numbers with %.14g: 10^14 became "1e+14" in the token, and every
 * renew and complete of that row was refused. */
static void token_round_trip(int64_t start)
{
    submit_ok("t", job("x", "k", "{}"));
    cmd_ok("HSET lash:{t}:p:x fence %lld", (long long)start);
    int64_t f = claim_one("t", "w1", "x", TTL_LONG);
    cr_assert_eq(f, start + 1);
    redisReply *r = cmd("GET lash:{t}:lease:x");
    char want[64];
    snprintf(want, sizeof want, "w1:%lld", (long long)f);
    cr_expect_str_eq(r->str, want);
    freeReplyObject(r);
    cr_expect_eq(renew1("t", "x", "w1", f, TTL_LONG), LASH_RENEW_OK);
    cr_expect_eq(complete1("t", "x", "w1", f, LASH_OUT_OK, "ok", 0), LASH_DONE_RECORDED);
    cr_expect_eq(complete1("t", "x", "w1", f, LASH_OUT_OK, "ok", 0), LASH_DONE_ALREADY);
    expect_state("t", "x", "completed");
    char *v = hget("t", "x", "fence");
    cr_expect_str_eq(v, want + 3);
    free(v);
}

Test(fences, tokens_hold_at_ten_to_the_fourteenth)
{
    token_round_trip(99999999999999LL);
}

Test(fences, tokens_hold_at_two_to_the_fifty_third_minus_one)
{
    token_round_trip(FENCE_MAX - 1);
}

Test(fences, a_fence_that_cannot_grow_fails_its_row_by_name)
{
    submit_ok("t", job("x", "k", "{}"));
    submit_ok("t", job("y", "k", "{}"));
    cmd_ok("HSET lash:{t}:p:x fence %lld", FENCE_MAX);
    lash_claim_batch b = claim("t", "w1", 10, TTL_LONG);
    cr_expect_eq(b.n, 1);
    cr_expect_eq(b.bad, 1);
    lash_claim_batch_free(&b);
    expect_state("t", "x", "failed");
    expect_field_has("t", "x", "error", "'fence'");
}

/* ---- trim and resubmit ------------------------------------------------------------ */

/* The reviewer's case: x completed, its row deleted by hand, x resubmitted
 * ("created"); the trim then deleted the live row. */
Test(fences, trim_never_deletes_a_live_row)
{
    submit_ok("t", job("x", "k", "{}"));
    run_once("t", "x", "w1");
    cmd_ok("DEL lash:{t}:p:x");
    submit_ok("t", job("x", "k", "{}"));
    /* Whatever the submit did with done, a live id left there must survive. */
    cmd_ok("ZADD lash:{t}:done 1 x");
    int64_t removed = 0;
    lash_err e = {0};
    cr_assert_eq(lash_trim(C, "t", (lash_retention){0, 0}, 100, &removed, &e), LASH_OK);
    expect_state("t", "x", "pending");
    cr_expect_eq(zscore("t", "done", "x"), -1, "the live id is out of done");
    cr_expect_geq(zscore("t", "due", "x"), 0, "and still due");
    lash_claim_batch b = claim("t", "w1", 10, TTL_LONG);
    cr_expect_eq(b.n, 1);
    cr_expect_eq(b.bad, 0);
    lash_claim_batch_free(&b);
}

Test(fences, a_resubmitted_id_leaves_done)
{
    submit_ok("t", job("x", "k", "{}"));
    run_once("t", "x", "w1");
    cr_assert_gt(zscore("t", "done", "x"), 0);
    cmd_ok("DEL lash:{t}:p:x");
    submit_ok("t", job("x", "k", "{}"));
    cr_expect_eq(zscore("t", "done", "x"), -1);
}

/* ---- release and recover -------------------------------------------------------------- */

static int release_ran(const char *q, const char *id, const char *owner, int64_t fence, bool ran)
{
    lash_lease l = {id, owner, fence};
    int st = -1;
    lash_err e = {0};
    cr_assert_eq(lash_release(C, q, &l, &ran, 1, &st, &e), LASH_OK, "release: %s", e.msg);
    return st;
}

/* At-most-once: a row that must not run twice and was stopped half way by a
 * shutdown is not handed to another worker. */
Test(fences, a_release_of_an_abandon_row_that_ran_abandons_it)
{
    lash_submission s = job("x", "k", "{}");
    s.on_lost = LASH_ON_LOST_ABANDON;
    s.max_attempts = 1;
    submit_ok("t", s);
    int64_t f = claim_one("t", "w1", "x", TTL_LONG);
    cr_expect_eq(release_ran("t", "x", "w1", f, true), 1);
    expect_state("t", "x", "abandoned");
    cr_expect_eq(zscore("t", "due", "x"), -1);
    lash_stats st = stats("t");
    cr_expect_eq(st.count[LASH_ABANDONED], 1);
    cr_expect_eq(st.count[LASH_RUNNING], 0);
}

Test(fences, a_release_of_a_row_that_never_ran_costs_nothing)
{
    lash_submission s = job("x", "k", "{}");
    s.on_lost = LASH_ON_LOST_ABANDON;
    s.max_attempts = 1;
    submit_ok("t", s);
    int64_t f = claim_one("t", "w1", "x", TTL_LONG);
    cr_expect_eq(release_ran("t", "x", "w1", f, false), 1);
    expect_state("t", "x", "pending");
    expect_field("t", "x", "attempt", "0");
    cr_expect_gt(claim_one("t", "w2", "x", TTL_LONG), f);
}

/* A claim whose reply was lost: its rows are found by seq, still leased to
 * their owner, and handed back unrun instead of running out (which would end
 * x abandoned without it ever having run). */
Test(fences, recover_finds_the_rows_of_a_lost_claim)
{
    lash_submission s = job("x", "k", "{}");
    s.on_lost = LASH_ON_LOST_ABANDON;
    submit_ok("t", s);
    submit_ok("t", job("y", "k", "{}"));
    lash_claim_batch b;
    lash_err e = {0};
    cr_assert_eq(lash_claim(C, "t", "w1#n1", 10, TTL_LONG, KEEP_ALL, 17, -1, &b, &e), LASH_OK);
    cr_assert_eq(b.n, 2);
    lash_claim_batch_free(&b); /* the reply that "never came" */

    lash_recovered r;
    cr_assert_eq(lash_recover(C, "t", "w1#n1", 16, &r, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(r.n, 0, "another claim's seq finds nothing");
    lash_recovered_free(&r);
    cr_assert_eq(lash_recover(C, "t", "w1#n2", 17, &r, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(r.n, 0, "another owner finds nothing");
    lash_recovered_free(&r);

    cr_assert_eq(lash_recover(C, "t", "w1#n1", 17, &r, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(r.n, 2);
    bool ran[2] = {false, false};
    int st[2];
    cr_assert_eq(lash_release(C, "t", r.leases, ran, r.n, st, &e), LASH_OK, "%s", e.msg);
    cr_expect(st[0] == 1 && st[1] == 1);
    lash_recovered_free(&r);
    expect_state("t", "x", "pending");
    expect_field("t", "x", "attempt", "0");
    expect_state("t", "y", "pending");

    /* Once handed back, there is nothing left to recover. */
    cr_assert_eq(lash_recover(C, "t", "w1#n1", 17, &r, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(r.n, 0);
    lash_recovered_free(&r);
}
