/* test_worker_dep.c: a fan-in of 1,000 children and one parent (--after) with
 * real lash-worker processes, against a private redis-server (tests/wfx.h).
 * The scripts' side of dependencies is test_dep.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wfx.h"

TestSuite(worker_dep, .fini = wfx_teardown, .timeout = 120);

#define FAN 1000

/* FAN children "c<i>" (child `bad` of kind fail with one attempt, or none when
 * bad < 0) in one batch, then the parent "parent" after all of them. */
static void submit_fan_in(int bad)
{
    static lash_submission s[FAN];
    static lash_submitted out[FAN];
    static char ids[FAN][16];
    static char after[FAN * 8];
    after[0] = 0;
    for (int i = 0; i < FAN; i++) {
        snprintf(ids[i], sizeof ids[i], "c%d", i);
        s[i] = (lash_submission){.id = ids[i],
                                 .kind = i == bad ? "fail" : "noop",
                                 .payload = "{}",
                                 .payload_len = 2,
                                 .max_attempts = 1};
        if (i) strcat(after, ",");
        strcat(after, ids[i]);
    }
    lash_err e = {0};
    cr_assert_eq(lash_submit(C, "q", s, FAN, out, &e), LASH_OK, "%s", e.msg);
    for (int i = 0; i < FAN; i++)
        cr_assert_eq(out[i].status, LASH_SUB_CREATED, "%s: %s", ids[i], out[i].msg);
    lash_submission p = {
        .id = "parent", .kind = "noop", .payload = "{}", .payload_len = 2, .after = after};
    cr_assert_eq(lash_submit(C, "q", &p, 1, out, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(out[0].status, LASH_SUB_CREATED, "parent: %s", out[0].msg);
}

static void two_workers(void)
{
    WORKER("w1", "--queue", "q", "--builtin", "noop", "--builtin", "fail", "--concurrency", "16");
    WORKER("w2", "--queue", "q", "--builtin", "noop", "--builtin", "fail", "--concurrency", "16");
}

/* The parent's claim comes after the completion of every child in the events
 * stream (one Redis, atomic scripts: the stream's order is the order of the
 * transitions). */
Test(worker_dep, fan_in_parent_starts_after_the_last_child)
{
    up(NULL);
    lash_fx_events_all(C, "q");
    submit_fan_in(-1);
    two_workers();
    WAIT_UNTIL(row_is("q", "parent", "completed"), 60000);
    cr_assert(row_is("q", "parent", "completed"), "parent is %s", hf("q", "parent", "state"));
    cr_expect_eq(stats("q").count[LASH_COMPLETED], FAN + 1);
    redisReply *r = cmd("XRANGE lash:{q}:events - +");
    int completed = 0, claimed_at = -1;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        const char *ev = NULL, *id = NULL;
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            if (strcmp(f->element[j]->str, "event") == 0) ev = f->element[j + 1]->str;
            if (strcmp(f->element[j]->str, "id") == 0) id = f->element[j + 1]->str;
        }
        if (!ev || !id) continue;
        if (id[0] == 'c' && strcmp(ev, "completed") == 0) completed++;
        if (strcmp(id, "parent") == 0 && strcmp(ev, "claimed") == 0) {
            claimed_at = completed;
            break;
        }
    }
    freeReplyObject(r);
    cr_expect_eq(claimed_at, FAN, "the parent was claimed after %d of %d children completed",
                 claimed_at, FAN);
}

/* One child fails for good: the parent never runs and ends cancelled, its
 * error naming that child. */
Test(worker_dep, fan_in_parent_is_cancelled_when_a_child_fails)
{
    up(NULL);
    submit_fan_in(517);
    two_workers();
    WAIT_UNTIL(stats("q").count[LASH_COMPLETED] == FAN - 1 && row_is("q", "parent", "cancelled"),
               60000);
    cr_assert(row_is("q", "parent", "cancelled"), "parent is %s", hf("q", "parent", "state"));
    cr_expect_str_eq(hf("q", "parent", "error"), "dependency c517 ended failed");
    cr_expect_str_eq(hf("q", "parent", "attempt"), "(none)"); /* it never ran */
    cr_expect_eq(stats("q").count[LASH_COMPLETED], FAN - 1);
}

/* lashctl submit --after: the row waits; a bad list is a usage error naming it. */
Test(worker_dep, lashctl_after_flag)
{
    up(NULL);
    submit("q", "a", "noop", "{}");
    char bin[512];
    snprintf(bin, sizeof bin, "%s", lash_fx_bin("lashctl"));
    cr_assert_eq(run("ok", ARGS(bin, "--redis", R.url, "--queue", "q", "submit", "noop", "--id",
                                "b", "--after", "a")),
                 0);
    cr_expect_str_eq(hf("q", "b", "deps_left"), "1");
    cr_expect_eq(run("bad", ARGS(bin, "--redis", R.url, "--queue", "q", "submit", "noop", "--id",
                                 "x", "--after", "a,,b")),
                 2);
    char err[256];
    path_in(err, sizeof err, "bad.err");
    cr_expect(file_has(err, "--after"), "the error does not name --after");
    WORKER("w1", "--queue", "q", "--builtin", "noop");
    WAIT_UNTIL(row_is("q", "b", "completed"), 20000);
    cr_expect(row_is("q", "b", "completed"));
}
