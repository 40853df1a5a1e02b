/* test_counters.c: the per-state counters of lash:{q}:stats.
 *
 * Scripts keep them as they move rows, so `stats` is O(1). Rows written or
 * deleted by hand were never counted: a counter never goes below zero because
 * of them, a junk value never fails a call, and `recount` sets them from the
 * rows themselves.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfx.h"

TestSuite(counters, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

/* Every field of the stats hash is a non-negative integer. */
static void expect_no_negative(const char *q)
{
    redisReply *r = cmd("HGETALL lash:{%s}:stats", q);
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        cr_expect(r->element[i + 1]->str[0] != '-', "%s = %s", r->element[i]->str,
                  r->element[i + 1]->str);
    freeReplyObject(r);
}

/* A pending row the scripts never counted: what a submit would write. */
static void hand_row(const char *q, const char *id)
{
    cmd_ok("HSET lash:{%s}:p:%s kind k payload {} state pending max_attempts 1", q, id);
    cmd_ok("ZADD lash:{%s}:due 0 %s", q, id);
}

/* The reviewer's case: hand-written rows drove pending to -14. */
Test(counters, never_go_below_zero_with_rows_written_by_hand)
{
    for (int i = 0; i < 14; i++) {
        char id[16];
        snprintf(id, sizeof id, "h%d", i);
        hand_row("t", id);
    }
    lash_claim_batch b = claim("t", "w1", 20, TTL_LONG);
    cr_assert_eq(b.n, 14);
    for (size_t i = 0; i < b.n; i++)
        cr_assert_eq(complete1("t", b.rows[i].id, "w1", b.rows[i].fence, LASH_OUT_OK, "", 0), 1);
    lash_claim_batch_free(&b);
    expect_no_negative("t");
    lash_stats st = stats("t");
    cr_expect_eq(st.count[LASH_PENDING], 0);
    cr_expect_eq(st.count[LASH_RUNNING], 0);
    cr_expect_eq(st.count[LASH_COMPLETED], 14);
}

/* HINCRBY on a junk value fails: it would have failed the call half way. */
Test(counters, a_junk_counter_counts_as_zero)
{
    cmd_ok("HSET lash:{t}:stats pending lots");
    submit_ok("t", job("x", "k", "{}"));
    char *v = NULL;
    redisReply *r = cmd("HGET lash:{t}:stats pending");
    v = strdup(r->str);
    freeReplyObject(r);
    cr_expect_str_eq(v, "1");
    free(v);
}

Test(counters, recount_sets_them_from_the_rows)
{
    submit_many(C, "t", "r", 10, 1);
    lash_claim_batch b = claim("t", "w1", 4, TTL_LONG);
    cr_assert_eq(b.n, 4);
    cr_assert_eq(complete1("t", b.rows[0].id, "w1", b.rows[0].fence, LASH_OUT_OK, "", 0), 1);
    cr_assert_eq(complete1("t", b.rows[1].id, "w1", b.rows[1].fence, LASH_OUT_FAIL, "", 0), 1);
    lash_claim_batch_free(&b);
    hand_row("t", "extra");
    cmd_ok("DEL lash:{t}:p:r9");
    cmd_ok("HSET lash:{t}:stats pending 999 running 0 completed 7");
    lash_stats st;
    lash_err e = {0};
    cr_assert_eq(lash_recount(C, "t", &st, &e), LASH_OK, "%s", e.msg);
    /* r4..r8 and extra pending (r9 has no row), r2 r3 running, r0 done, r1 failed */
    cr_expect_eq(st.count[LASH_PENDING], 6);
    cr_expect_eq(st.count[LASH_RUNNING], 2);
    cr_expect_eq(st.count[LASH_COMPLETED], 1);
    cr_expect_eq(st.count[LASH_FAILED], 1);
    cr_expect_eq(st.total_submitted, 10, "totals are history: left as they are");
}
