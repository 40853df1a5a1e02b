/* test_priority.c: priorities in the scripts (submit, claim, complete, release,
 * cancel, list, stats) against a private redis-server (tests/rfx.h). The order
 * under a full queue with real workers is test_worker_priority.c. */
#include <stdio.h>
#include <string.h>

#include "registry/limit.h"
#include "rfx.h"

TestSuite(priority, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

static void submit_p(const char *q, const char *id, int prio, int64_t delay_ms)
{
    lash_submission s = job(id, "k", "{}");
    s.priority = prio;
    s.delay_ms = delay_ms;
    submit_ok(q, s);
}

/* The ids of a claim of n rows, space-separated, into buf. */
static const char *claim_ids(const char *q, int n, char *buf, size_t cap)
{
    lash_claim_batch b = claim(q, "w", n, TTL_LONG);
    buf[0] = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (i) strncat(buf, " ", cap - strlen(buf) - 1);
        strncat(buf, b.rows[i].id, cap - strlen(buf) - 1);
    }
    lash_claim_batch_free(&b);
    return buf;
}

/* Higher first; equal priorities by due time, not by id (ids sort the other way). */
Test(priority, claim_takes_priority_order_then_fifo)
{
    const char *ids[] = {"n9", "l9", "h9", "n1", "h1", "m1", "l1"};
    const int prios[] = {0, -5, 10, 0, 10, 5, -5};
    for (int i = 0; i < 7; i++) {
        submit_p("q", ids[i], prios[i], 0);
        lash_fx_sleep_ms(3); /* distinct due times */
    }
    char buf[256];
    cr_expect_str_eq(claim_ids("q", 3, buf, sizeof buf), "h9 h1 m1");
    cr_expect_str_eq(claim_ids("q", 10, buf, sizeof buf), "n9 n1 l9 l1");
    cr_expect_eq(cmd_int("EXISTS lash:{q}:prio:wait lash:{q}:prio:ready"), 0);
    expect_state("q", "h9", "running");
    /* A claimed row lives in due, scored by its lease, like any other. */
    cr_expect_gt(zscore("q", "due", "h9"), server_ms());
}

/* A delayed row of high priority waits in prio:wait and does not pass rows
 * that are due before its time; once due, it goes first. */
Test(priority, delayed_high_row_does_not_jump_ahead_before_due)
{
    submit_p("q", "late", 100, 600000);
    submit_p("q", "a", 0, 0);
    submit_p("q", "b", 0, 0);
    cr_expect_gt(zscore("q", "prio:wait", "late"), server_ms() + 500000);
    cr_expect_eq(zscore("q", "due", "late"), -1);
    char buf[256];
    cr_expect_str_eq(claim_ids("q", 10, buf, sizeof buf), "a b");
    expect_state("q", "late", "pending");
    /* Its time comes (moved by hand, as a clock would): it beats an older row. */
    submit_p("q", "c", 0, 0);
    cmd_ok("ZADD lash:{q}:prio:wait 1 late");
    cr_expect_str_eq(claim_ids("q", 10, buf, sizeof buf), "late c");
}

/* Aging (prio_aging_ms): a row of priority p ranks as if due p * step ms earlier. */
Test(priority, aging_lets_an_old_low_row_pass)
{
    cmd_ok("HSET lash:{q}:stats prio_aging_ms 1");
    submit_p("q", "old", 0, 0);
    lash_fx_sleep_ms(50);
    submit_p("q", "new", 10, 0); /* 10 ms of credit, 50 ms younger */
    char buf[256];
    cr_expect_str_eq(claim_ids("q", 1, buf, sizeof buf), "old");
    cr_expect_str_eq(claim_ids("q", 1, buf, sizeof buf), "new");
}

Test(priority, validation_names_the_priority)
{
    lash_submission s = job("v", "k", "{}");
    s.priority = 1001;
    lash_err e = {0};
    cr_expect_eq(lash_submission_check(&s, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "priority") != NULL, "%s", e.msg);
    /* The script checks too (redis-cli, or a client that skipped the check). */
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    redisReply *r = cmd("FCALL lash_submit 1 lash:{q} x k {} 1 priority abc");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_expect(strstr(r->element[0]->element[1]->str, "invalid: priority") != NULL, "%s",
              r->element[0]->element[1]->str);
    freeReplyObject(r);
    r = cmd("FCALL lash_submit 1 lash:{q} y k {} 1 priority -1001");
    cr_expect(strstr(r->element[0]->element[1]->str, "invalid: priority") != NULL);
    freeReplyObject(r);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:x lash:{q}:p:y"), 0);
    /* Idempotent by id: the same priority is a no-op, another a conflict. */
    submit_p("q", "z", 7, 0);
    lash_submission again = job("z", "k", "{}");
    again.priority = 7;
    cr_expect_eq(submit1("q", again).status, LASH_SUB_EXISTS);
    again.priority = 8;
    lash_submitted out = submit1("q", again);
    cr_expect_eq(out.status, LASH_SUB_CONFLICT);
    cr_expect(strstr(out.msg, "priority") != NULL, "%s", out.msg);
}

/* No priority: the row and the keys are what they were before priorities. */
Test(priority, default_priority_keeps_the_plain_path)
{
    submit_p("q", "d", 0, 0);
    cr_expect_eq(cmd_int("HEXISTS lash:{q}:p:d priority"), 0);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:prio:wait lash:{q}:prio:ready"), 0);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), 1);
}

/* A failed attempt with attempts left, a release and a cancel keep the sets right. */
Test(priority, retry_release_and_cancel_keep_the_priority)
{
    submit_p("q", "r", 50, 0);
    submit_p("q", "n", 0, 0);
    lash_claim_batch b = claim("q", "w", 1, TTL_LONG);
    cr_assert_eq(b.n, 1);
    cr_assert_str_eq(b.rows[0].id, "r");
    int64_t f = b.rows[0].fence;
    lash_claim_batch_free(&b);
    cr_assert_eq(complete1("q", "r", "w", f, LASH_OUT_FAIL, "boom", 0), 1);
    cr_expect_eq(zscore("q", "due", "r"), -1);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:prio:ready"), 1);
    char buf[256];
    cr_expect_str_eq(claim_ids("q", 1, buf, sizeof buf), "r"); /* still before n */
    cr_assert_eq(release1("q", "r", "w", F("q", "r")), 1);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:prio:ready"), 1);
    cr_expect_str_eq(claim_ids("q", 1, buf, sizeof buf), "r");
    submit_p("q", "c", 3, 600000);
    lash_err e = {0};
    bool requested = true;
    cr_assert_eq(lash_cancel(C, "q", "c", NULL, &requested, &e), LASH_OK, "%s", e.msg);
    cr_expect(!requested);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:prio:wait"), 0);
}

/* list and stats see pending prioritized rows; list gives their due time. */
Test(priority, list_and_stats_see_prioritized_rows)
{
    long long t0 = server_ms();
    submit_p("q", "p1", 5, 0);
    submit_p("q", "p2", -5, 600000);
    submit_p("q", "n", 0, 0);
    lash_list_page pg;
    lash_err e = {0};
    cr_assert_eq(lash_list(C, "q", "pending", "0", 10, &pg, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(pg.n, 3);
    cr_expect_str_eq(pg.rows[0].id, "n");
    cr_expect_str_eq(pg.rows[1].id, "p1");
    cr_expect_geq(pg.rows[1].score_ms, t0);
    cr_expect_leq(pg.rows[1].score_ms, server_ms());
    cr_expect_str_eq(pg.rows[2].id, "p2");
    lash_list_page_free(&pg);
    lash_stats st = stats("q");
    cr_expect_eq(st.due, 3);
    cr_expect_eq(st.eligible, 2);
}

/* A priority set written by hand as another type: prioritized submits are
 * refused by name, the claim still takes the plain rows and says why. */
Test(priority, broken_priority_set_is_named_and_plain_rows_still_run)
{
    submit_p("q", "n", 0, 0);
    cmd_ok("SET lash:{q}:prio:ready junk");
    lash_submission s = job("p", "k", "{}");
    s.priority = 1;
    lash_submitted out = submit1("q", s);
    cr_expect_eq(out.status, LASH_SUB_INVALID);
    cr_expect(strstr(out.msg, "lash:{q}:prio:ready") != NULL, "%s", out.msg);
    lash_claim_batch b = claim("q", "w", 5, TTL_LONG);
    cr_expect_eq(b.n, 1);
    cr_expect_eq(b.bad, 1);
    if (b.bad) cr_expect(strstr(b.notes[0], "prio:ready") != NULL, "%s", b.notes[0]);
    lash_claim_batch_free(&b);
}

/* A new row of an id whose old prioritized row was deleted by hand (found by
 * the model test): it waits in one place only, not also where the old one, or
 * a hand, left the id. */
Test(priority, a_new_row_leaves_no_stale_entry_of_an_old_one)
{
    submit_p("q", "x", 5, 600000);
    cr_assert_gt(zscore("q", "prio:wait", "x"), 0);
    cmd_ok("DEL lash:{q}:p:x");
    cmd_ok("ZADD lash:{q}:due 9999999999999 x");
    submit_p("q", "x", 5, 0);
    cr_expect_eq(zscore("q", "prio:wait", "x"), -1, "the old row's entry stays in prio:wait");
    cr_expect_eq(zscore("q", "due", "x"), -1, "the hand's entry stays in due");
    cr_expect_gt(zscore("q", "prio:ready", "x"), 0);
}

/* Rows a concurrency limit holds back keep their priority: woken, the high
 * one goes first although the low one's id sorts first and both were held
 * at the same time (the model test found them demoted to priority 0). */
Test(priority, rows_held_by_a_limit_keep_their_priority)
{
    lash_err e = {0};
    cr_assert_eq(lash_limit_set(C, "q", "k", 1, LASH_LIMIT_KEEP, 0, &e), LASH_OK, "%s", e.msg);
    submit_p("q", "busy", 0, 0);
    char buf[64];
    cr_assert_str_eq(claim_ids("q", 1, buf, sizeof buf), "busy");
    submit_p("q", "a-low", 1, 0);
    submit_p("q", "b-high", 5, 0);
    cr_assert_str_eq(claim_ids("q", 2, buf, sizeof buf), "", "the slot is taken: both held");
    cr_expect_eq(zscore("q", "due", "a-low"), -1, "a held prioritized row waits in its sets");
    cr_assert_eq(lash_limit_rm(C, "q", "k", NULL, &e), LASH_OK, "%s", e.msg);
    cr_expect_str_eq(claim_ids("q", 1, buf, sizeof buf), "b-high");
    cr_expect_str_eq(claim_ids("q", 1, buf, sizeof buf), "a-low");
}
