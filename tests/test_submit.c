/* test_submit.c: submitting processes (submit.lua through registry/):
 * what a submit writes, batches over LASH_BATCH_MAX, generated ids, the same id
 * again (the same registration: a no-op; another: a conflict), a submit that
 * got no answer, and the payload bound. A private redis-server per test
 * (tests/rfx.h). */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/id.h"
#include "proto/keys.h"
#include "registry/registry.h"
#include "rfx.h"

TestSuite(submit, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

/* ---- submit ------------------------------------------------------------------------ */

Test(submit, submit_single_then_get)
{
    lash_fx_events_all(C, "q");
    lash_submission s = job("p-1", "email.send", "{\"to\":\"a@b\"}");
    s.max_attempts = 5;
    s.timeout_ms = 30000;
    s.backoff = "fixed:250";
    s.on_lost = LASH_ON_LOST_ABANDON;
    long long t0 = server_ms();
    lash_submitted o = submit1("q", s);
    long long t1 = server_ms();
    cr_assert_eq(o.status, LASH_SUB_CREATED, "%s", o.msg);
    cr_expect_str_eq(o.id, "p-1");

    lash_record r = get("q", "p-1");
    cr_expect_str_eq(r.id, "p-1");
    cr_expect_str_eq(r.queue, "q");
    cr_expect_str_eq(r.kind, "email.send");
    cr_expect_str_eq(r.payload, "{\"to\":\"a@b\"}");
    cr_expect_eq(r.state, LASH_PENDING);
    cr_expect_eq(r.attempt, 0);
    cr_expect_eq(r.max_attempts, 5);
    cr_expect_eq(r.timeout_ms, 30000);
    cr_expect_str_eq(r.backoff, "fixed:250");
    cr_expect_eq(r.on_lost, LASH_ON_LOST_ABANDON);
    cr_expect(r.created_ms >= t0 && r.created_ms <= t1);
    lash_record_free(&r);
    long long due = zscore("q", "due", "p-1");
    cr_expect(due >= t0 && due <= t1, "due at %lld, submitted in [%lld, %lld]", due, t0, t1);
    cr_expect_eq(zscore("q", "done", "p-1"), -1);

    /* Defaults are left out of the row, max_attempts too (absent reads as
     * LASH_DEFAULT_MAX_ATTEMPTS, above as 5 where it was given). */
    expect_field("q", "p-1", "max_attempts", "5");
    submit_ok("q", job("p-2", "k", NULL));
    expect_field("q", "p-2", "max_attempts", NULL);
    r = get("q", "p-2");
    cr_expect_eq(r.max_attempts, LASH_DEFAULT_MAX_ATTEMPTS);
    lash_record_free(&r);
    expect_field("q", "p-2", "payload", "null");
    expect_field("q", "p-2", "backoff", NULL);
    expect_field("q", "p-2", "on_lost", NULL);
    expect_field("q", "p-2", "timeout_ms", NULL);
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_PENDING], 2);
    cr_expect_eq(st.total_submitted, 2);
    cr_expect_eq(st.due, 2);
    cr_expect_eq(cmd_int("XLEN lash:{q}:events"), 2);

    lash_err e = {0};
    cr_expect_eq(lash_get(C, "q", "nope", &r, &e), LASH_ENOTFOUND);
    lash_record_free(&r);
    cr_expect_eq(lash_get(C, "bad queue", "p-1", &r, &e), LASH_EINVAL);
    lash_record_free(&r);
}

Test(submit, submit_batch_over_a_thousand_rows)
{
    enum { N = 2600 };
    lash_submission *s = calloc(N, sizeof *s);
    lash_submitted *out = calloc(N, sizeof *out);
    char(*ids)[32] = calloc(N, 32);
    int invalid = 0;
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 32, "b-%d", i);
        s[i] = job(ids[i], i % 500 == 7 ? "bad kind" : "k", "[1,2,3]");
        invalid += i % 500 == 7;
    }
    lash_err e = {0};
    cr_assert_eq(lash_submit(C, "q", s, N, out, &e), LASH_OK, "%s", e.msg);
    for (int i = 0; i < N; i++) {
        cr_assert_str_eq(out[i].id, ids[i], "row %d answered as %s", i, out[i].id);
        if (i % 500 == 7) {
            cr_expect_eq(out[i].status, LASH_SUB_INVALID);
            cr_expect(strstr(out[i].msg, "kind"), "%s", out[i].msg);
        } else {
            cr_expect_eq(out[i].status, LASH_SUB_CREATED, "%d: %s", i, out[i].msg);
        }
    }
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), N - invalid);
    cr_expect_eq(stats("q").total_submitted, N - invalid);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:b-7"), 0);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:b-2599"), 1);

    /* The same batch again: every row exists, nothing changes. */
    cr_assert_eq(lash_submit(C, "q", s, N, out, &e), LASH_OK, "%s", e.msg);
    for (int i = 0; i < N; i++)
        if (i % 500 != 7) cr_expect_eq(out[i].status, LASH_SUB_EXISTS, "%d: %s", i, out[i].msg);
    cr_expect_eq(stats("q").total_submitted, N - invalid);
    free(s);
    free(out);
    free(ids);
}

Test(submit, generated_ids)
{
    enum { N = 3000 };
    lash_submission *s = calloc(N, sizeof *s);
    lash_submitted *out = calloc(N, sizeof *out);
    for (int i = 0; i < N; i++)
        s[i] = job(i % 2 ? NULL : "", "k", "{}");
    lash_err e = {0};
    cr_assert_eq(lash_submit(C, "q", s, N, out, &e), LASH_OK, "%s", e.msg);
    for (int i = 0; i < N; i++) {
        cr_assert_eq(out[i].status, LASH_SUB_CREATED, "%d: %s", i, out[i].msg);
        cr_assert_eq(strlen(out[i].id), LASH_GEN_ID_LEN, "%s", out[i].id);
    }
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), N); /* so all distinct */
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:%s", out[N - 1].id), 1);
    free(s);
    free(out);
}

Test(submit, idempotent_resubmit_and_conflicts)
{
    lash_submission s = job("x", "k", "{\"a\":1}");
    submit_ok("q", s);
    cr_expect_eq(submit1("q", s).status, LASH_SUB_EXISTS);
    /* Options spelled out at their defaults are the same registration. */
    lash_submission same = s;
    same.max_attempts = LASH_DEFAULT_MAX_ATTEMPTS;
    same.backoff = LASH_DEFAULT_BACKOFF;
    same.on_lost = LASH_ON_LOST_RERUN;
    same.delay_ms = 5000; /* when to run is not part of the registration */
    cr_expect_eq(submit1("q", same).status, LASH_SUB_EXISTS, "%s", submit1("q", same).msg);
    /* A row written before the default was left out (or by hand) holds it: the
     * same registration still. */
    cmd_ok("HSET lash:{q}:p:x max_attempts 3");
    cr_expect_eq(submit1("q", s).status, LASH_SUB_EXISTS, "%s", submit1("q", s).msg);

    lash_submission other[5] = {s, s, s, s, s};
    other[0].payload = "{\"a\":2}";
    other[1].kind = "k2";
    other[2].max_attempts = 4;
    other[3].backoff = "fixed:1";
    other[4].on_lost = LASH_ON_LOST_ABANDON;
    for (int i = 0; i < 5; i++) {
        lash_submitted o = submit1("q", other[i]);
        cr_expect_eq(o.status, LASH_SUB_CONFLICT, "variant %d: %d %s", i, o.status, o.msg);
        cr_expect(strstr(o.msg, "conflict"), "%s", o.msg);
    }
    expect_field("q", "x", "payload", "{\"a\":1}");
    expect_field("q", "x", "kind", "k");

    /* Within one batch: the second copy finds the first. */
    lash_submission two[2] = {job("y", "k", "1"), job("y", "k", "1")};
    lash_submitted out[2];
    lash_err e = {0};
    cr_assert_eq(lash_submit(C, "q", two, 2, out, &e), LASH_OK);
    cr_expect_eq(out[0].status, LASH_SUB_CREATED);
    cr_expect_eq(out[1].status, LASH_SUB_EXISTS);

    /* A finished row still answers exists, and stays finished. */
    lash_claim_batch b = claim("q", "w1", 10, TTL_LONG);
    cr_assert_eq(b.n, 2);
    lash_claim_batch_free(&b);
    cr_assert_eq(complete1("q", "x", "w1", 1, LASH_OUT_OK, "done", 0), LASH_DONE_RECORDED);
    cr_expect_eq(submit1("q", s).status, LASH_SUB_EXISTS);
    expect_state("q", "x", "completed");
    cr_expect_eq(stats("q").total_submitted, 2);

    /* Client-side refusals never reach Redis. */
    lash_submitted o = submit1("q", job("has space", "k", "{}"));
    cr_expect_eq(o.status, LASH_SUB_INVALID);
    cr_expect(strstr(o.msg, "process id"), "%s", o.msg);
    o = submit1("q", job("z", "k", "{oops"));
    cr_expect_eq(o.status, LASH_SUB_INVALID);
    cr_expect(strstr(o.msg, "payload"), "%s", o.msg);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:z"), 0);
    cr_expect_eq(lash_submit(C, "bad{q}", &s, 1, &o, &e), LASH_EINVAL);
}

/* A submit that was sent but never answered may have landed: it says
 * "unknown", not "not submitted", and a retry with the same id finds it. */
Test(submit, a_submit_without_an_answer_is_unknown)
{
    lash_conn *c;
    lash_err e = {0};
    /* The library is loaded: one call (an FCALL) will do. */
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(lash_connect(R.url, 300, &c, &e), LASH_OK, "%s", e.msg);
    kill(R.pid, SIGSTOP);
    lash_submission s = job("u1", "k", "{}");
    lash_submitted out;
    lash_status st = lash_submit(c, "q", &s, 1, &out, &e);
    kill(R.pid, SIGCONT);
    lash_close(c);
    cr_expect_eq(st, LASH_EIO, "%s", e.msg);
    cr_expect_eq(out.status, LASH_SUB_UNKNOWN, "%d: %s", out.status, out.msg);
    cr_expect(strstr(out.msg, "unknown"), "%s", out.msg);
    /* Redis, running again, reads what was sent: it had landed after all. */
    for (int i = 0; i < 200 && !cmd_int("EXISTS lash:{q}:p:u1"); i++)
        lash_fx_sleep_ms(10);
    lash_submitted again = submit1("q", job("u1", "k", "{}"));
    cr_expect_eq(again.status, LASH_SUB_EXISTS, "it had landed: the same submission exists");
}

Test(submit, oversized_payload_is_refused)
{
    char *p = malloc(LASH_PAYLOAD_MAX + 2);
    memset(p, 'x', LASH_PAYLOAD_MAX + 1);
    p[0] = '"';
    p[LASH_PAYLOAD_MAX] = '"';
    p[LASH_PAYLOAD_MAX + 1] = 0;
    lash_submitted o = submit1("q", job("big", "k", p));
    cr_expect_eq(o.status, LASH_SUB_INVALID);
    cr_expect(strstr(o.msg, "payload"), "%s", o.msg);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:big"), 0);
    /* Exactly the limit is fine. */
    p[LASH_PAYLOAD_MAX - 1] = '"';
    p[LASH_PAYLOAD_MAX] = 0;
    o = submit1("q", job("big", "k", p));
    cr_expect_eq(o.status, LASH_SUB_CREATED, "%s", o.msg);
    lash_claim_batch b = claim("q", "w", 1, TTL_LONG);
    cr_assert_eq(b.n, 1);
    cr_expect_eq(b.rows[0].payload_len, LASH_PAYLOAD_MAX);
    lash_claim_batch_free(&b);
    free(p);
}
