/* test_worker_priority.c: priorities with real lash-worker processes and
 * lashctl, against a private redis-server (tests/wfx.h). The scripts' side of
 * priorities is test_priority.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wfx.h"

TestSuite(worker_priority, .fini = wfx_teardown, .timeout = 90);

static void submit_p(const char *q, const char *id, const char *payload, int prio, int64_t delay)
{
    lash_submission s = {.id = id,
                         .kind = "work",
                         .payload = payload,
                         .payload_len = strlen(payload),
                         .priority = prio,
                         .delay_ms = delay};
    lash_submitted out;
    lash_err e = {0};
    cr_assert_eq(lash_submit(C, q, &s, 1, &out, &e), LASH_OK, "submit %s: %s", id, e.msg);
    cr_assert_eq(out.status, LASH_SUB_CREATED, "submit %s: %s", id, out.msg);
}

/* The ids of exec.log, in the order their runs started, space-separated. */
static const char *started(char *buf, size_t cap)
{
    char log[256], line[512], id[200];
    path_in(log, sizeof log, "exec.log");
    buf[0] = 0;
    FILE *f = fopen(log, "r");
    if (!f) return buf;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "%199s", id) != 1) continue;
        if (buf[0]) strncat(buf, " ", cap - strlen(buf) - 1);
        strncat(buf, id, cap - strlen(buf) - 1);
    }
    fclose(f);
    return buf;
}

static pid_t one_slot_worker(void)
{
    static char work[256], handler[300];
    work_script(work, sizeof work);
    snprintf(handler, sizeof handler, "work=%s", work);
    return WORKER("w1", "--queue", "q", "--handler", handler, "--concurrency", "1");
}

/* One worker, one slot, busy: rows of mixed priorities submitted meanwhile
 * start in priority order, equal ones in the order they were submitted (their
 * ids sort the other way, so the order is the due time's, not the id's). */
Test(worker_priority, full_queue_starts_in_priority_then_fifo)
{
    up(NULL);
    one_slot_worker();
    submit_p("q", "busy", "[2,0]", 0, 0);
    WAIT_UNTIL(runs_of("busy", 1, NULL) == 1, 20000);
    cr_assert_eq(runs_of("busy", 1, NULL), 1, "the busy row never started");
    const char *ids[] = {"n9", "l9", "h9", "n1", "h1", "m1", "l1", "n0"};
    const int prios[] = {0, -5, 10, 0, 10, 5, -5, 0};
    for (int i = 0; i < 8; i++) {
        submit_p("q", ids[i], "[0,0]", prios[i], 0);
        lash_fx_sleep_ms(3); /* distinct due times */
    }
    cr_assert(row_is("q", "busy", "running"), "submitted too late: the worker was idle");
    WAIT_UNTIL(stats("q").count[LASH_COMPLETED] == 9, 30000);
    cr_assert_eq(stats("q").count[LASH_COMPLETED], 9);
    char buf[512];
    cr_expect_str_eq(started(buf, sizeof buf), "busy h9 h1 m1 n9 n1 n0 l9 l1");
}

/* A delayed row of the highest priority waits for its time while plain rows
 * run; once due (its due time moved by hand, as a clock would), it starts
 * before plain rows that were due earlier. */
Test(worker_priority, delayed_high_row_waits_for_its_time)
{
    up(NULL);
    one_slot_worker();
    submit_p("q", "busy", "[2,0]", 0, 0);
    WAIT_UNTIL(runs_of("busy", 1, NULL) == 1, 20000);
    submit_p("q", "late", "[0,0]", 1000, 600000);
    submit_p("q", "a", "[0,0]", 0, 0);
    submit_p("q", "b", "[0,0]", 0, 0);
    WAIT_UNTIL(stats("q").count[LASH_COMPLETED] == 3, 30000);
    char buf[512];
    cr_expect_str_eq(started(buf, sizeof buf), "busy a b");
    cr_expect(row_is("q", "late", "pending"));
    submit_p("q", "busy2", "[2,0]", 0, 0);
    WAIT_UNTIL(runs_of("busy2", 1, NULL) == 1, 20000);
    submit_p("q", "c", "[0,0]", 0, 0);
    cmd_do("ZADD lash:{q}:prio:wait 1 late");
    WAIT_UNTIL(stats("q").count[LASH_COMPLETED] == 6, 30000);
    cr_expect_str_eq(started(buf, sizeof buf), "busy a b busy2 late c");
}

/* lashctl submit --priority: the row carries it; out of range is a usage error
 * that names the flag and writes nothing. */
Test(worker_priority, lashctl_priority_flag)
{
    up(NULL);
    char bin[512];
    snprintf(bin, sizeof bin, "%s", lash_fx_bin("lashctl"));
    cr_assert_eq(run("ok", ARGS(bin, "--redis", R.url, "--queue", "q", "submit", "k", "--id", "p1",
                                "--priority", "-7")),
                 0);
    cr_expect_str_eq(hf("q", "p1", "priority"), "-7");
    cr_expect_eq(cmd_int("ZCARD lash:{q}:prio:ready"), 1);
    cr_expect_eq(run("big", ARGS(bin, "--redis", R.url, "--queue", "q", "submit", "k", "--id", "p2",
                                 "--priority", "1001")),
                 2);
    char err[256];
    path_in(err, sizeof err, "big.err");
    cr_expect(file_has(err, "--priority"), "the error does not name --priority");
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:p2"), 0);
}
