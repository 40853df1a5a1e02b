/* test_dep.c: dependencies (--after) in the scripts against a private
 * redis-server (tests/rfx.h). The fan-in of 1,000 with real workers is
 * test_worker_dep.c. */
#include <stdio.h>
#include <string.h>

#include "rfx.h"

TestSuite(dep, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

static lash_submitted submit_after(const char *q, const char *id, const char *after, int prio)
{
    lash_submission s = job(id, "k", "{}");
    s.after = after;
    s.priority = prio;
    return submit1(q, s);
}

static int64_t take(const char *q, const char *id)
{
    lash_claim_batch b = claim(q, "w", 1, TTL_LONG);
    cr_assert_eq(b.n, 1, "nothing to claim, wanted %s", id);
    cr_assert_str_eq(b.rows[0].id, id);
    int64_t f = b.rows[0].fence;
    lash_claim_batch_free(&b);
    return f;
}

static size_t claimable(const char *q)
{
    lash_claim_batch b = claim(q, "w", 10, TTL_LONG);
    size_t n = b.n;
    lash_claim_batch_free(&b);
    return n;
}

Test(dep, parent_waits_until_every_child_completed)
{
    submit_ok("q", job("c1", "k", "{}"));
    submit_ok("q", job("c2", "k", "{}"));
    cr_assert_eq(submit_after("q", "p", "c1,c2,c1", 0).status, LASH_SUB_CREATED);
    expect_state("q", "p", "pending");
    expect_field("q", "p", "after", "c1,c2");
    expect_field("q", "p", "deps_left", "2");
    int64_t f1 = take("q", "c1");
    int64_t f2 = take("q", "c2");
    cr_expect_eq(claimable("q"), 0); /* p is parked */
    cr_assert_eq(complete1("q", "c1", "w", f1, LASH_OUT_OK, "r", 0), 1);
    expect_field("q", "p", "deps_left", "1");
    cr_expect_eq(claimable("q"), 0);
    cr_assert_eq(complete1("q", "c2", "w", f2, LASH_OUT_OK, "r", 0), 1);
    expect_field("q", "p", "deps_left", "0");
    take("q", "p");
    cr_expect_eq(cmd_int("EXISTS lash:{q}:deps lash:{q}:dep:c1 lash:{q}:dep:c2"), 0);
}

/* A child that fails for good ends the parent (and its own waiters) cancelled,
 * the error naming the child; a retry with attempts left does not. */
Test(dep, failed_child_cancels_the_chain_naming_it)
{
    lash_submission c = job("c", "k", "{}");
    c.max_attempts = 2;
    submit_ok("q", c);
    cr_assert_eq(submit_after("q", "p", "c", 0).status, LASH_SUB_CREATED);
    cr_assert_eq(submit_after("q", "gp", "p", 0).status, LASH_SUB_CREATED);
    int64_t f = take("q", "c");
    cr_assert_eq(complete1("q", "c", "w", f, LASH_OUT_FAIL, "boom", 0), 1);
    expect_state("q", "p", "pending");
    f = take("q", "c");
    cr_assert_eq(complete1("q", "c", "w", f, LASH_OUT_FAIL, "boom", 0), 1);
    expect_state("q", "c", "failed");
    expect_state("q", "p", "cancelled");
    expect_field("q", "p", "error", "dependency c ended failed");
    expect_state("q", "gp", "cancelled");
    expect_field("q", "gp", "error", "dependency p ended cancelled");
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_CANCELLED], 2);
    cr_expect_eq(st.count[LASH_PENDING], 0);
    cr_expect_eq(st.due, 0);
}

Test(dep, cancelled_child_cancels_the_parent)
{
    submit_ok("q", job("c", "k", "{}"));
    cr_assert_eq(submit_after("q", "p", "c", 0).status, LASH_SUB_CREATED);
    bool requested = true;
    lash_err e = {0};
    cr_assert_eq(lash_cancel(C, "q", "c", NULL, &requested, &e), LASH_OK, "%s", e.msg);
    expect_state("q", "p", "cancelled");
    expect_field("q", "p", "error", "dependency c ended cancelled");
}

/* At submit: a completed dependency counts as done, a failed one cancels the
 * row at once, an unknown id refuses it. */
Test(dep, submit_settles_dependencies_that_already_ended)
{
    submit_ok("q", job("ok", "k", "{}"));
    cr_assert_eq(complete1("q", "ok", "w", take("q", "ok"), LASH_OUT_OK, "r", 0), 1);
    submit_ok("q", job("bad", "k", "{}"));
    cr_assert_eq(complete1("q", "bad", "w", take("q", "bad"), LASH_OUT_ABORT, "no", 0), 1);
    cr_assert_eq(submit_after("q", "p1", "ok", 0).status, LASH_SUB_CREATED);
    take("q", "p1");
    cr_assert_eq(submit_after("q", "p2", "ok,bad", 0).status, LASH_SUB_CREATED);
    expect_state("q", "p2", "cancelled");
    expect_field("q", "p2", "error", "dependency bad ended failed");
    lash_submitted out = submit_after("q", "p3", "ok,nope", 0);
    cr_expect_eq(out.status, LASH_SUB_INVALID);
    cr_expect(strstr(out.msg, "nope") != NULL, "%s", out.msg);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:p3"), 0);
    /* Idempotent by id: the same list is a no-op, another a conflict. */
    cr_expect_eq(submit_after("q", "p1", "ok", 0).status, LASH_SUB_EXISTS);
    cr_expect_eq(submit_after("q", "p1", "ok,bad", 0).status, LASH_SUB_CONFLICT);
}

Test(dep, validation_names_the_bad_id)
{
    lash_err e = {0};
    lash_submission s = job("self", "k", "{}");
    s.after = "a,self";
    cr_expect_eq(lash_submission_check(&s, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "self") != NULL, "%s", e.msg);
    s.after = "a,,b";
    cr_expect_eq(lash_submission_check(&s, &e), LASH_EINVAL);
    s.after = "a,b c";
    cr_expect_eq(lash_submission_check(&s, &e), LASH_EINVAL);
    /* The script checks too (redis-cli). */
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    redisReply *r = cmd("FCALL lash_submit 1 lash:{q} x k {} 1 after a,,b");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_expect(strstr(r->element[0]->element[1]->str, "invalid: after") != NULL, "%s",
              r->element[0]->element[1]->str);
    freeReplyObject(r);
}

/* A released dependent keeps its priority and its run_at. */
Test(dep, released_dependent_keeps_its_priority)
{
    submit_ok("q", job("c", "k", "{}"));
    submit_ok("q", job("n", "k", "{}"));
    cr_assert_eq(submit_after("q", "p", "c", 9).status, LASH_SUB_CREATED);
    cr_assert_eq(complete1("q", "c", "w", take("q", "c"), LASH_OUT_OK, "r", 0), 1);
    take("q", "p"); /* before n, which was due earlier */
}

/* No `after`: no dependency key is written, and a completion pays one EXISTS. */
Test(dep, unused_feature_writes_nothing)
{
    submit_ok("q", job("a", "k", "{}"));
    cr_assert_eq(complete1("q", "a", "w", take("q", "a"), LASH_OUT_OK, "r", 0), 1);
    cr_expect_eq(count_keys("lash:{q}:dep*"), 0);
    cr_expect_eq(cmd_int("HEXISTS lash:{q}:p:a after"), 0);
}

/* A dependency key written by hand as another type: the submit is refused by
 * name, nothing is written. */
Test(dep, broken_dependency_key_is_named)
{
    submit_ok("q", job("c", "k", "{}"));
    cmd_ok("SET lash:{q}:dep:c junk");
    lash_submitted out = submit_after("q", "p", "c", 0);
    cr_expect_eq(out.status, LASH_SUB_INVALID);
    cr_expect(strstr(out.msg, "lash:{q}:dep:c") != NULL, "%s", out.msg);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:p lash:{q}:deps"), 0);
    cmd_ok("SET lash:{q}:deps junk");
    out = submit_after("q", "p", "c", 0);
    cr_expect(strstr(out.msg, "lash:{q}:deps") != NULL, "%s", out.msg);
}

/* A waiter retried after it was cancelled runs without waiting again (README
 * "Dependencies"): its dependency ending later leaves it alone, pending in the
 * priority set it was retried into (the model test found it cancelled, and
 * left in prio:ready, while the registration outlived the waiting). */
Test(dep, a_retried_waiter_runs_without_waiting_again)
{
    submit_ok("q", job("c", "k", "{}"));
    cr_assert_eq(submit_after("q", "p", "c", 3).status, LASH_SUB_CREATED);
    bool requested = true;
    lash_err e = {0};
    cr_assert_eq(lash_cancel(C, "q", "p", NULL, &requested, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(lash_retry(C, "q", "p", &e), LASH_OK, "%s", e.msg);
    cr_assert_gt(zscore("q", "prio:ready", "p"), 0);
    cr_assert_eq(lash_cancel(C, "q", "c", NULL, &requested, &e), LASH_OK, "%s", e.msg);
    expect_state("q", "p", "pending");
    cr_expect_gt(zscore("q", "prio:ready", "p"), 0, "still ready to run");
}

/* A row trimmed (or deleted) while it waited leaves its registration behind;
 * a new row of the same id that waits for nothing is not settled by it. */
Test(dep, a_new_row_of_a_gone_waiters_id_inherits_nothing)
{
    submit_ok("q", job("a0", "k", "{}"));
    cr_assert_eq(submit_after("q", "a1", "a0", 0).status, LASH_SUB_CREATED);
    bool requested = true;
    lash_err e = {0};
    cr_assert_eq(lash_cancel(C, "q", "a1", NULL, &requested, &e), LASH_OK, "%s", e.msg);
    cmd_ok("DEL lash:{q}:p:a1");
    cmd_ok("ZREM lash:{q}:done a1");
    submit_ok("q", job("a1", "k", "{}"));
    cr_assert_eq(lash_cancel(C, "q", "a0", NULL, &requested, &e), LASH_OK, "%s", e.msg);
    expect_state("q", "a1", "pending");
}
