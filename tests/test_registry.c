/* test_registry.c: the Redis-backed registry (registry/ and the Lua scripts)
 * against a private redis-server per test (tests/rfx.h). */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfx.h"
#include "proto/id.h"
#include "proto/keys.h"
#include "proto/scripts.h"
#include "registry/registry.h"

TestSuite(registry, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

/* ---- submit ------------------------------------------------------------------------ */

Test(registry, submit_single_then_get)
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

    /* Defaults are left out of the row. */
    submit_ok("q", job("p-2", "k", NULL));
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

Test(registry, submit_batch_over_a_thousand_rows)
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

Test(registry, generated_ids)
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

Test(registry, idempotent_resubmit_and_conflicts)
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
Test(registry, a_submit_without_an_answer_is_unknown)
{
    submit_ok("q", job("warm", "k", "{}")); /* the script is loaded: one call will do */
    lash_conn *c;
    lash_err e = {0};
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

Test(registry, oversized_payload_is_refused)
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

/* ---- claim ------------------------------------------------------------------------- */

Test(registry, claim_returns_the_row)
{
    lash_submission s = job("c1", "resize", "{\"w\":640}");
    s.max_attempts = 7;
    s.timeout_ms = 1234;
    s.backoff = "exp:10:100";
    submit_ok("q", s);
    long long t0 = server_ms();
    lash_claim_batch b = claim("q", "w-1", 10, 30000);
    cr_assert_eq(b.n, 1);
    cr_expect_eq(b.seen, 1);
    cr_expect_eq(b.bad, 0);
    lash_claimed *r = &b.rows[0];
    cr_expect_str_eq(r->id, "c1");
    cr_expect_str_eq(r->kind, "resize");
    cr_expect_str_eq(r->payload, "{\"w\":640}");
    cr_expect_eq(r->payload_len, 9);
    cr_expect_eq(r->attempt, 1);
    cr_expect_eq(r->max_attempts, 7);
    cr_expect_eq(r->fence, 1);
    cr_expect_eq(r->timeout_ms, 1234);
    cr_expect_str_eq(r->backoff, "exp:10:100");
    lash_claim_batch_free(&b);

    expect_state("q", "c1", "running");
    expect_field("q", "c1", "owner", "w-1");
    redisReply *lease = cmd("GET lash:{q}:lease:c1");
    cr_expect(lease->type == REDIS_REPLY_STRING && strcmp(lease->str, "w-1:1") == 0);
    freeReplyObject(lease);
    long long pttl = cmd_int("PTTL lash:{q}:lease:c1");
    cr_expect(pttl > 25000 && pttl <= 30000, "lease pttl %lld", pttl);
    long long due = zscore("q", "due", "c1");
    cr_expect(due >= t0 + 30000 && due <= server_ms() + 30000, "rescored to %lld", due);
    cr_expect_gt(zscore("q", "workers", "w-1"), 0);
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_RUNNING], 1);
    cr_expect_eq(st.count[LASH_PENDING], 0);
    cr_expect_eq(st.workers, 1);

    /* A leased row is nobody else's. */
    b = claim("q", "w-2", 10, 30000);
    cr_expect_eq(b.n, 0);
    cr_expect_eq(b.seen, 0);
    lash_claim_batch_free(&b);

    /* Renew pushes lease and score out. */
    cr_expect_eq(renew1("q", "c1", "w-1", 1, 50000), LASH_RENEW_OK);
    pttl = cmd_int("PTTL lash:{q}:lease:c1");
    cr_expect(pttl > 45000, "after renew pttl %lld", pttl);
    cr_expect(zscore("q", "due", "c1") >= t0 + 50000);
    cr_expect_eq(renew1("q", "c1", "w-2", 1, 50000), LASH_RENEW_LOST);
    cr_expect_eq(renew1("q", "c1", "w-1", 2, 50000), LASH_RENEW_LOST);

    lash_err e = {0};
    cr_expect_eq(lash_claim(C, "q", "bad owner", 1, 1000, KEEP_ALL, 0, &b, &e), LASH_EINVAL);
    cr_expect_neq(lash_claim(C, "q", "w", LASH_BATCH_MAX + 1, 1000, KEEP_ALL, 0, &b, &e), LASH_OK);
}

Test(registry, delayed_rows_wait_for_run_at)
{
    lash_submission a = job("later", "k", "{}");
    a.delay_ms = 400;
    long long t0 = server_ms();
    submit_ok("q", a);
    lash_submission b = job("at", "k", "{}");
    b.run_at_ms = t0 + 500;
    submit_ok("q", b);
    cr_expect(zscore("q", "due", "later") >= t0 + 400);
    cr_expect_eq(zscore("q", "due", "at"), t0 + 500);
    /* Both given: no sooner than either. */
    lash_submission both = job("both1", "k", "{}");
    both.delay_ms = 60000;
    both.run_at_ms = t0 + 1000;
    submit_ok("q", both);
    both = job("both2", "k", "{}");
    both.delay_ms = 1000;
    both.run_at_ms = t0 + 60000;
    submit_ok("q", both);
    cr_expect_geq(zscore("q", "due", "both1"), t0 + 60000);
    cr_expect_eq(zscore("q", "due", "both2"), t0 + 60000);

    lash_claim_batch cb = claim("q", "w", 10, TTL_LONG);
    long long tc = server_ms();
    /* Unless this machine stalled for 400 ms, nothing is due yet. */
    if (tc < t0 + 400) {
        cr_expect_eq(cb.n, 0);
        cr_expect_eq(cb.seen, 0);
    }
    lash_claim_batch_free(&cb);

    int got = 0;
    long long until = lash_fx_ms() + 5000;
    while (got < 2 && lash_fx_ms() < until) {
        cb = claim("q", "w", 10, TTL_LONG);
        long long after = server_ms();
        for (size_t i = 0; i < cb.n; i++) {
            long long want = strcmp(cb.rows[i].id, "at") == 0 ? t0 + 500 : t0 + 400;
            /* The claim ran before `after`: its time had come by then. */
            cr_expect(after >= want, "%s claimed before its time", cb.rows[i].id);
            cr_expect(strcmp(cb.rows[i].id, "both1") && strcmp(cb.rows[i].id, "both2"));
            got++;
        }
        lash_claim_batch_free(&cb);
        lash_fx_sleep_ms(20);
    }
    cr_expect_eq(got, 2);
}

typedef struct {
    const char *url;
    char owner[32];
    char (*ids)[32];
    int64_t *fences;
    size_t n, cap;
    int batch;
    int err;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    lash_conn *c;
    lash_err e = {0};
    if (lash_connect(r->url, 10000, &c, &e) != LASH_OK) {
        r->err = 1;
        return NULL;
    }
    for (;;) {
        lash_claim_batch b;
        if (lash_claim(c, "race", r->owner, r->batch, TTL_LONG, KEEP_ALL, 0, &b, &e) != LASH_OK) {
            r->err = 2;
            break;
        }
        for (size_t i = 0; i < b.n; i++) {
            if (r->n == r->cap) {
                r->cap = r->cap ? 2 * r->cap : 1024;
                r->ids = realloc(r->ids, r->cap * 32);
                r->fences = realloc(r->fences, r->cap * sizeof *r->fences);
            }
            r->fences[r->n] = b.rows[i].fence;
            snprintf(r->ids[r->n++], 32, "%.31s", b.rows[i].id);
            if (b.rows[i].attempt != 1) r->err = 3;
        }
        size_t got = b.n, seen = b.seen;
        lash_claim_batch_free(&b);
        if (got == 0 && seen == 0) break;
    }
    /* Complete everything this owner holds, in batches. */
    lash_completion *cs = calloc(LASH_BATCH_MAX, sizeof *cs);
    int *st = calloc(LASH_BATCH_MAX, sizeof *st);
    for (size_t i = 0; i < r->n && !r->err; i += LASH_BATCH_MAX) {
        size_t k = r->n - i < LASH_BATCH_MAX ? r->n - i : LASH_BATCH_MAX;
        for (size_t j = 0; j < k; j++)
            cs[j] = (lash_completion){
                {r->ids[i + j], r->owner, r->fences[i + j]}, LASH_OUT_OK, "1", 1, 0};
        if (lash_complete(c, "race", cs, k, st, &e) != LASH_OK) r->err = 4;
        for (size_t j = 0; j < k && !r->err; j++)
            if (st[j] != LASH_DONE_RECORDED) r->err = 5;
    }
    free(cs);
    free(st);
    lash_close(c);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

Test(registry, claim_race_every_row_exactly_once)
{
    enum { N = 20000, T = 8 };
    submit_many(C, "race", "r", N, 0);
    racer rs[T];
    pthread_t th[T];
    static const int batches[T] = {1, 7, 50, 100, 200, 333, 500, 1000};
    for (int i = 0; i < T; i++) {
        rs[i] = (racer){.url = R.url, .batch = batches[i]};
        snprintf(rs[i].owner, sizeof rs[i].owner, "racer-%d", i);
        cr_assert_eq(pthread_create(&th[i], NULL, race, &rs[i]), 0);
    }
    size_t total = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        cr_expect_eq(rs[i].err, 0, "racer %d failed at step %d", i, rs[i].err);
        total += rs[i].n;
    }
    cr_assert_eq(total, N, "claimed %zu rows of %d", total, N);
    char(*all)[32] = malloc(N * 32);
    bool *fence_seen = calloc(N + 1, sizeof *fence_seen);
    size_t k = 0;
    for (int i = 0; i < T; i++) {
        memcpy(all[k], rs[i].ids, rs[i].n * 32);
        k += rs[i].n;
        /* A fence names one claim in the queue: 1..N, each handed out once. */
        for (size_t j = 0; j < rs[i].n; j++) {
            cr_assert(rs[i].fences[j] >= 1 && rs[i].fences[j] <= N, "fence %lld",
                      (long long)rs[i].fences[j]);
            cr_assert_not(fence_seen[rs[i].fences[j]], "fence %lld handed out twice",
                          (long long)rs[i].fences[j]);
            fence_seen[rs[i].fences[j]] = true;
        }
        free(rs[i].ids);
        free(rs[i].fences);
    }
    free(fence_seen);
    qsort(all, N, 32, cmp_id);
    for (int i = 1; i < N; i++)
        cr_assert_neq(strcmp(all[i - 1], all[i]), 0, "%s claimed twice", all[i]);
    free(all);

    cr_expect_eq(count_keys("lash:{race}:lease:*"), 0);
    cr_expect_eq(cmd_int("ZCARD lash:{race}:due"), 0);
    cr_expect_eq(cmd_int("ZCARD lash:{race}:done"), N);
    lash_stats st = stats("race");
    cr_expect_eq(st.count[LASH_COMPLETED], N);
    cr_expect_eq(st.count[LASH_RUNNING], 0);
    cr_expect_eq(st.count[LASH_PENDING], 0);
    cr_expect_eq(st.total_completed, N);
    cr_expect_eq(st.workers, T);
    expect_state("race", "r0", "completed");
    expect_state("race", "r19999", "completed");
}

/* ---- leases: expiry, fencing, release, re-sent completes ---------------------- */

Test(registry, lease_expiry_fences_out_the_first_owner)
{
    submit_ok("q", job("L", "k", "{}"));
    int64_t fa = claim_one("q", "A", "L", 200);
    cr_assert_eq(fa, 1);
    lash_fx_sleep_ms(300);

    lash_claim_batch b = claim_within("q", "B", 10, TTL_LONG, 5000);
    cr_assert_eq(b.n, 1);
    cr_expect_str_eq(b.rows[0].id, "L");
    cr_expect_eq(b.rows[0].fence, 2);
    cr_expect_eq(b.rows[0].attempt, 2);
    lash_claim_batch_free(&b);
    expect_field("q", "L", "owner", "B");

    /* A is fenced out of everything, before and after B records. */
    cr_expect_eq(renew1("q", "L", "A", 1, 1000), LASH_RENEW_LOST);
    cr_expect_eq(complete1("q", "L", "A", 1, LASH_OUT_OK, "from A", 0), LASH_DONE_STALE);
    cr_expect_eq(release1("q", "L", "A", 1), 0);
    expect_state("q", "L", "running");
    cr_expect_eq(complete1("q", "L", "B", 2, LASH_OUT_OK, "{\"by\":\"B\"}", 0), LASH_DONE_RECORDED);
    cr_expect_eq(complete1("q", "L", "A", 1, LASH_OUT_FAIL, "from A", 0), LASH_DONE_STALE);
    cr_expect_eq(renew1("q", "L", "A", 1, 1000), LASH_RENEW_LOST);
    cr_expect_eq(release1("q", "L", "A", 1), 0);

    lash_record r = get("q", "L");
    cr_expect_eq(r.state, LASH_COMPLETED);
    cr_expect_str_eq(r.result, "{\"by\":\"B\"}");
    cr_expect_str_eq(r.owner, "B");
    cr_expect_eq(r.fence, 2);
    cr_expect_eq(r.attempt, 2);
    cr_expect(r.finished_ms > 0);
    lash_record_free(&r);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:lease:L"), 0);
    lash_stats st = stats("q");
    cr_expect_eq(st.total_lost, 1);
    cr_expect_eq(st.count[LASH_COMPLETED], 1);
    cr_expect_eq(st.count[LASH_RUNNING], 0);
}

Test(registry, release_hands_the_attempt_back)
{
    submit_ok("q", job("r", "k", "{}"));
    int64_t f = claim_one("q", "A", "r", TTL_LONG);
    cr_expect_eq(release1("q", "r", "A", f + 1), 0); /* wrong fence: stale */
    cr_expect_eq(release1("q", "r", "B", f), 0);
    long long t0 = server_ms();
    cr_expect_eq(release1("q", "r", "A", f), 1);
    expect_state("q", "r", "pending");
    expect_field("q", "r", "attempt", "0");
    cr_expect_eq(cmd_int("EXISTS lash:{q}:lease:r"), 0);
    long long due = zscore("q", "due", "r");
    cr_expect(due >= t0 && due <= server_ms(), "due %lld", due);
    cr_expect_eq(release1("q", "r", "A", f), 0); /* twice: stale */
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_PENDING], 1);
    cr_expect_eq(st.count[LASH_RUNNING], 0);

    lash_claim_batch b = claim("q", "B", 10, TTL_LONG);
    cr_assert_eq(b.n, 1);
    cr_expect_eq(b.rows[0].attempt, 1);
    cr_expect_eq(b.rows[0].fence, f + 1);
    lash_claim_batch_free(&b);
}

Test(registry, resent_complete_answers_already)
{
    submit_ok("q", job("a", "k", "{}"));
    lash_submission s = job("b", "k", "{}");
    s.max_attempts = 2;
    submit_ok("q", s);
    lash_claim_batch cb = claim("q", "W", 10, TTL_LONG);
    cr_assert_eq(cb.n, 2);
    lash_claim_batch_free(&cb);
    cr_expect_eq(complete1("q", "a", "W", F("q", "a"), LASH_OUT_OK, "r", 0), LASH_DONE_RECORDED);
    cr_expect_eq(complete1("q", "a", "W", F("q", "a"), LASH_OUT_OK, "r", 0), LASH_DONE_ALREADY);
    cr_expect_eq(complete1("q", "a", "X", F("q", "a"), LASH_OUT_OK, "r", 0), LASH_DONE_STALE);
    cr_expect_eq(complete1("q", "a", "W", F("q", "a") + 1, LASH_OUT_OK, "r", 0), LASH_DONE_STALE);
    /* A failure that scheduled a retry, re-sent: already, and not retried twice. */
    int64_t fb = F("q", "b");
    cr_expect_eq(complete1("q", "b", "W", fb, LASH_OUT_FAIL, "e", 60000), LASH_DONE_RECORDED);
    cr_expect_eq(complete1("q", "b", "W", fb, LASH_OUT_FAIL, "e", 60000), LASH_DONE_ALREADY);
    expect_state("q", "b", "pending");
    expect_field("q", "b", "attempt", "1");
    lash_stats st = stats("q");
    cr_expect_eq(st.total_completed, 1);
    cr_expect_eq(st.total_retried, 1);
    cr_expect_eq(st.count[LASH_PENDING], 1);
    cr_expect_eq(st.count[LASH_COMPLETED], 1);
    cr_expect_eq(st.count[LASH_RUNNING], 0);
}

Test(registry, batched_complete_mixes_outcomes)
{
    submit_many(C, "q", "m", 4, 1);
    lash_claim_batch b = claim("q", "W", 10, TTL_LONG);
    cr_assert_eq(b.n, 4);
    lash_claim_batch_free(&b);
    char *big = malloc(LASH_RESULT_MAX + 2);
    memset(big, 'r', LASH_RESULT_MAX + 1);
    big[LASH_RESULT_MAX + 1] = 0;
    lash_completion cs[5] = {
        {{"m0", "W", F("q", "m0")}, LASH_OUT_OK, "42", 2, 0},
        {{"m1", "W", F("q", "m1")}, LASH_OUT_FAIL, "boom", 4, 0},
        {{"m2", "W", F("q", "m2")}, LASH_OUT_CANCEL, "stopped", 7, 0},
        {{"m3", "W", F("q", "m3")}, LASH_OUT_OK, big, LASH_RESULT_MAX + 1, 0},
        {{"m0", "X", 9}, LASH_OUT_OK, "stale", 5, 0},
    };
    int st[5];
    lash_err e = {0};
    cr_assert_eq(lash_complete(C, "q", cs, 5, st, &e), LASH_OK, "%s", e.msg);
    cr_expect(st[0] == 1 && st[1] == 1 && st[2] == 1 && st[3] == 1 && st[4] == 0);
    expect_state("q", "m0", "completed");
    expect_field("q", "m0", "result", "42");
    expect_state("q", "m1", "failed");
    expect_field("q", "m1", "error", "boom");
    expect_state("q", "m2", "cancelled");
    /* An over-long result is the worker's bug: recorded as a failure saying so. */
    expect_state("q", "m3", "failed");
    expect_field_has("q", "m3", "error", "over");
    expect_field("q", "m3", "result", NULL);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), 0);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:done"), 4);
    free(big);
}

/* ---- retry, lost leases -------------------------------------------------------------- */

Test(registry, retry_with_backoff_then_failed)
{
    lash_submission s = job("rt", "k", "{}");
    s.max_attempts = 3;
    submit_ok("q", s);
    for (int attempt = 1; attempt <= 3; attempt++) {
        lash_claim_batch b = claim_within("q", "W", 10, TTL_LONG, 5000);
        cr_assert_eq(b.n, 1, "attempt %d never became claimable", attempt);
        cr_expect_eq(b.rows[0].attempt, attempt);
        cr_expect_eq(b.rows[0].fence, attempt);
        int64_t fence = b.rows[0].fence;
        lash_claim_batch_free(&b);
        char err[32];
        snprintf(err, sizeof err, "failure %d", attempt);
        long long t0 = server_ms();
        cr_assert_eq(complete1("q", "rt", "W", fence, LASH_OUT_FAIL, err, 400), 1);
        long long t1 = server_ms();
        expect_field("q", "rt", "error", err);
        expect_field("q", "rt", "attempt", attempt == 1 ? "1" : attempt == 2 ? "2" : "3");
        if (attempt < 3) {
            expect_state("q", "rt", "pending");
            long long due = zscore("q", "due", "rt");
            cr_expect(due >= t0 + 400 && due <= t1 + 400, "due %lld, want now+400 in [%lld,%lld]",
                      due, t0 + 400, t1 + 400);
            cr_expect_eq(cmd_int("EXISTS lash:{q}:lease:rt"), 0);
            /* Not claimable before its backoff has passed. */
            b = claim("q", "W", 10, TTL_LONG);
            if (server_ms() < due) cr_expect_eq(b.n, 0, "claimed before its retry time");
            lash_claim_batch_free(&b);
        }
    }
    lash_record r = get("q", "rt");
    cr_expect_eq(r.state, LASH_FAILED);
    cr_expect_eq(r.attempt, 3);
    cr_expect_str_eq(r.error, "failure 3");
    lash_record_free(&r);
    cr_expect_eq(zscore("q", "due", "rt"), -1);
    cr_expect(zscore("q", "done", "rt") > 0);
    lash_stats st = stats("q");
    cr_expect_eq(st.total_retried, 2);
    cr_expect_eq(st.total_failed, 1);
    cr_expect_eq(st.count[LASH_FAILED], 1);
    cr_expect_eq(st.count[LASH_PENDING], 0);
    cr_expect_eq(st.count[LASH_RUNNING], 0);
}

Test(registry, lost_lease_with_abandon_is_abandoned)
{
    lash_submission s = job("ab", "k", "{}");
    s.on_lost = LASH_ON_LOST_ABANDON;
    s.max_attempts = 5;
    submit_ok("q", s);
    cr_assert_eq(claim_one("q", "A", "ab", 200), 1);
    submit_ok("q", job("other", "k", "{}"));
    lash_fx_sleep_ms(300);
    lash_claim_batch b = claim("q", "B", 10, TTL_LONG);
    cr_assert_eq(b.n, 1);
    cr_expect_str_eq(b.rows[0].id, "other");
    lash_claim_batch_free(&b);
    expect_state("q", "ab", "abandoned");
    expect_field_has("q", "ab", "error", "abandon");
    cr_expect_eq(zscore("q", "due", "ab"), -1);
    cr_expect(zscore("q", "done", "ab") > 0);
    /* A recorded nothing: its late complete is stale, not "already". */
    cr_expect_eq(complete1("q", "ab", "A", 1, LASH_OUT_OK, "late", 0), LASH_DONE_STALE);
    expect_state("q", "ab", "abandoned");
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_ABANDONED], 1);
    cr_expect_eq(st.total_abandoned, 1);
    cr_expect_eq(st.total_lost, 1);
    cr_expect_eq(st.count[LASH_RUNNING], 1);
}

Test(registry, lost_lease_on_last_attempt_fails)
{
    lash_submission s = job("last", "k", "{}");
    s.max_attempts = 1;
    submit_ok("q", s);
    claim_one("q", "A", "last", 150);
    lash_fx_sleep_ms(250);
    lash_claim_batch b = claim("q", "B", 10, TTL_LONG);
    cr_expect_eq(b.n, 0);
    lash_claim_batch_free(&b);
    expect_state("q", "last", "failed");
    expect_field_has("q", "last", "error", "lease lost on attempt 1 of 1");
    cr_expect_eq(complete1("q", "last", "A", 1, LASH_OUT_OK, "late", 0), LASH_DONE_STALE);
    expect_state("q", "last", "failed");
    cr_expect_eq(zscore("q", "due", "last"), -1);
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_FAILED], 1);
    cr_expect_eq(st.count[LASH_RUNNING], 0);
    cr_expect_eq(st.total_lost, 1);
}

/* A lease key with no expiry (an operator's SET by hand) must neither wedge the
 * row nor make every drive count it lost again. */
Test(registry, lease_without_expiry_is_not_counted_lost_forever)
{
    submit_ok("q", job("h", "k", "{}"));
    claim_one("q", "A", "h", 150);
    cmd_ok("SET lash:{q}:lease:h hand-made");
    lash_fx_sleep_ms(250);
    for (int i = 0; i < 5; i++) {
        lash_claim_batch b = claim("q", "B", 10, TTL_LONG);
        cr_expect_eq(b.n, 0);
        lash_claim_batch_free(&b);
    }
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_RUNNING], 1, "running %lld", (long long)st.count[LASH_RUNNING]);
    cr_expect_eq(st.count[LASH_PENDING], 0, "pending %lld", (long long)st.count[LASH_PENDING]);
    cr_expect_leq(st.total_lost, 1);
    /* ...and the row is not due again within the next few ms, every drive. */
    cr_expect_gt(zscore("q", "due", "h"), server_ms() + 50);
}

/* ---- cancel ---------------------------------------------------------------------------- */

static redisContext *subscriber(const char *chan)
{
    redisContext *s = redisConnectUnix(R.sock);
    cr_assert(s && !s->err);
    struct timeval tv = {5, 0};
    redisSetTimeout(s, tv);
    redisReply *r = redisCommand(s, "SUBSCRIBE %s", chan);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    return s;
}

static void expect_message(redisContext *s, const char *chan, const char *msg)
{
    void *rv = NULL;
    cr_assert_eq(redisGetReply(s, &rv), REDIS_OK, "no message on %s", chan);
    redisReply *r = rv;
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    cr_expect_str_eq(r->element[0]->str, "message");
    cr_expect_str_eq(r->element[1]->str, chan);
    cr_expect_str_eq(r->element[2]->str, msg);
    freeReplyObject(r);
}

Test(registry, cancel_pending_is_immediate)
{
    submit_ok("q", job("cp", "k", "{}"));
    lash_submission later = job("cl", "k", "{}");
    later.delay_ms = 60000;
    submit_ok("q", later);
    redisContext *fin = subscriber("lash:{q}:finished");
    bool requested = true;
    lash_err e = {0};
    cr_assert_eq(lash_cancel(C, "q", "cp", "no longer needed", &requested, &e), LASH_OK, "%s",
                 e.msg);
    cr_expect_not(requested);
    expect_message(fin, "lash:{q}:finished", "cp");
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

Test(registry, cancel_running_asks_the_owner)
{
    submit_ok("q", job("cr", "k", "{}"));
    submit_ok("q", job("cf", "k", "{}"));
    lash_claim_batch b = claim("q", "W", 10, TTL_LONG);
    cr_assert_eq(b.n, 2);
    lash_claim_batch_free(&b);
    redisContext *sub = subscriber("lash:{q}:cancel");
    bool requested = false;
    lash_err e = {0};
    cr_assert_eq(lash_cancel(C, "q", "cr", "operator said so", &requested, &e), LASH_OK, "%s",
                 e.msg);
    cr_expect(requested);
    expect_message(sub, "lash:{q}:cancel", "cr");
    cr_assert_eq(lash_cancel(C, "q", "cf", NULL, &requested, &e), LASH_OK);
    cr_expect(requested);
    expect_message(sub, "lash:{q}:cancel", "cf");
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

Test(registry, operator_retry_reopens_terminal_failures_only)
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

Test(registry, trim_keeps_the_newest_n)
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

Test(registry, trim_by_age)
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

Test(registry, trim_many_rows_in_one_call)
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

Test(registry, claim_applies_retention)
{
    submit_many(C, "q", "k", 20, 0);
    cr_assert_eq(finish_all("q", 0), 20);
    lash_claim_batch b;
    lash_err e = {0};
    cr_assert_eq(lash_claim(C, "q", "W", 1, 1000, (lash_retention){5, 0}, 0, &b, &e), LASH_OK);
    lash_claim_batch_free(&b);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:done"), 5);
    cr_expect_eq(count_keys("lash:{q}:p:*"), 5);
    cr_expect_eq(stats("q").count[LASH_COMPLETED], 5);
}

/* ---- bad rows ------------------------------------------------------------------------- */

Test(registry, injected_bad_rows_never_crash_a_call)
{
    static const char *const ids[] = {"nokind",   "badattempt", "junkstate",   "nostate",
                                      "vanished", "badbackoff", "longbackoff", "good"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        submit_ok("q", job(ids[i], "k", "{\"n\":1}"));
    cmd_ok("HDEL lash:{q}:p:nokind kind");
    cmd_ok("HSET lash:{q}:p:badattempt attempt two");
    cmd_ok("HSET lash:{q}:p:junkstate state zombie");
    cmd_ok("HDEL lash:{q}:p:nostate state");
    cmd_ok("DEL lash:{q}:p:vanished");
    cmd_ok("HSET lash:{q}:p:badbackoff backoff whenever");
    cmd_ok("HSET lash:{q}:p:longbackoff backoff exp:1000000000000000000000000000:"
           "2000000000000000000000000000000000000000000000000000000");

    /* Reads first: they report, they do not crash. */
    lash_record r;
    lash_err e = {0};
    cr_expect_eq(lash_get(C, "q", "nokind", &r, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "kind"), "%s", e.msg);
    lash_record_free(&r);
    cr_expect_eq(lash_get(C, "q", "badattempt", &r, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "attempt"), "%s", e.msg);
    lash_record_free(&r);
    cr_expect_eq(lash_get(C, "q", "junkstate", &r, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "state"), "%s", e.msg);
    lash_record_free(&r);
    cr_expect_eq(lash_get(C, "q", "vanished", &r, &e), LASH_ENOTFOUND);
    lash_record_free(&r);
    lash_list_page page;
    cr_assert_eq(lash_list(C, "q", NULL, "0", 100, &page, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(page.n, 8);
    lash_list_page_free(&page);

    lash_claim_batch b = claim("q", "W", 100, TTL_LONG);
    cr_expect_eq(b.seen, 8);
    cr_expect_eq(b.bad, 7, "bad %zu: six failed, and the vanished id dropped", b.bad);
    cr_assert_eq(b.n, 1, "claimed %zu", b.n);
    cr_expect_str_eq(b.rows[0].id, "good");
    lash_claim_batch_free(&b);

    static const char *const named[][2] = {
        {"nokind", "'kind'"},   {"badattempt", "'attempt'"}, {"junkstate", "'state'"},
        {"nostate", "'state'"}, {"badbackoff", "'backoff'"}, {"longbackoff", "'backoff'"},
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        expect_state("q", named[i][0], "failed");
        expect_field_has("q", named[i][0], "error", named[i][1]);
        cr_expect_eq(zscore("q", "due", named[i][0]), -1, "%s still due", named[i][0]);
        cr_expect(zscore("q", "done", named[i][0]) > 0, "%s not done", named[i][0]);
    }
    cr_expect_eq(zscore("q", "due", "vanished"), -1);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:vanished"), 0);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), 1); /* only "good" */

    /* Again: nothing left to trip on. */
    b = claim("q", "W", 100, TTL_LONG);
    cr_expect_eq(b.n, 0);
    cr_expect_eq(b.bad, 0);
    lash_claim_batch_free(&b);
    cr_assert_eq(lash_list(C, "q", NULL, "0", 100, &page, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(page.n, 7);
    lash_list_page_free(&page);
    lash_stats st = stats("q");
    cr_expect_eq(st.total_failed, 6);
    cr_expect_eq(st.count[LASH_RUNNING], 1);
}

/* An id no claimer could hold (made by hand, over LASH_ID_MAX) fails that row,
 * not the whole claim. */
Test(registry, hand_made_row_with_an_overlong_id)
{
    char id[LASH_ID_MAX + 40];
    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = 0;
    cmd_ok("HSET lash:{q}:p:%s kind k payload {} state pending max_attempts 3 created_ms 1", id);
    cmd_ok("ZADD lash:{q}:due 0 %s", id);
    submit_ok("q", job("good", "k", "{}"));
    lash_claim_batch b = claim("q", "W", 10, TTL_LONG);
    cr_expect_eq(b.bad, 1);
    cr_assert_eq(b.n, 1);
    cr_expect_str_eq(b.rows[0].id, "good");
    lash_claim_batch_free(&b);
    expect_state("q", id, "failed");
    expect_field_has("q", id, "error", "id");
    cr_expect_eq(zscore("q", "due", id), -1);
    lash_list_page p;
    lash_err e = {0};
    cr_expect_eq(lash_list(C, "q", NULL, "0", 10, &p, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(p.n, 2);
    lash_list_page_free(&p);
}

Test(registry, bad_row_with_an_expired_lease_fails)
{
    submit_ok("q", job("x", "k", "{}"));
    claim_one("q", "A", "x", 150);
    cmd_ok("HSET lash:{q}:p:x fence -3");
    lash_fx_sleep_ms(250);
    lash_claim_batch b = claim("q", "B", 10, TTL_LONG);
    cr_expect_eq(b.n, 0);
    cr_expect_eq(b.bad, 1);
    lash_claim_batch_free(&b);
    expect_state("q", "x", "failed");
    expect_field_has("q", "x", "error", "'fence'");
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_RUNNING], 0);
    cr_expect_eq(st.count[LASH_FAILED], 1);
}

/* ---- stats and list ------------------------------------------------------------------------ */

static const char *const state_names[] = {"pending", "running",   "completed",
                                          "failed",  "cancelled", "abandoned"};

Test(registry, stats_match_the_rows_after_a_mixed_workload)
{
    /* Two rows whose owner will vanish: one abandons, one reruns. */
    lash_submission ab = job("ab", "k", "{}");
    ab.on_lost = LASH_ON_LOST_ABANDON;
    submit_ok("q", ab);
    submit_ok("q", job("lost", "k", "{}"));
    lash_claim_batch b = claim("q", "W0", 10, TTL_LONG);
    cr_assert_eq(b.n, 2);
    lash_claim_batch_free(&b);
    submit_many(C, "q", "s", 150, 1); /* a failure is final */
    submit_many(C, "q", "t", 150, 2); /* a failure is retried */
    lash_err e = {0};
    bool req;
    for (int i = 140; i < 150; i++) { /* cancelled while pending */
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        cr_assert_eq(lash_cancel(C, "q", id, NULL, &req, &e), LASH_OK);
    }
    b = claim("q", "W", 200, TTL_LONG);
    cr_assert_eq(b.n, 200);
    lash_completion cs[200];
    lash_lease rel[200];
    int st[200];
    size_t nc = 0, nrel = 0;
    const char *failed_one = NULL;
    for (size_t i = 0; i < b.n; i++) {
        lash_lease l = {b.rows[i].id, "W", b.rows[i].fence};
        switch (i % 6) {
        case 0:
        case 1:
            cs[nc++] = (lash_completion){l, LASH_OUT_OK, "ok", 2, 0};
            break;
        case 2:
            cs[nc++] = (lash_completion){l, LASH_OUT_FAIL, "e", 1, 60000};
            if (!failed_one && l.id[0] == 's') failed_one = l.id;
            break;
        case 3:
            cs[nc++] = (lash_completion){l, LASH_OUT_CANCEL, "c", 1, 0};
            break;
        case 4:
            rel[nrel++] = l;
            break;
        default: /* stays running; every other one is asked to cancel */
            if (i % 12 == 5) cr_assert_eq(lash_cancel(C, "q", l.id, NULL, &req, &e), LASH_OK);
            break;
        }
    }
    cr_assert_eq(lash_complete(C, "q", cs, nc, st, &e), LASH_OK, "%s", e.msg);
    for (size_t i = 0; i < nc; i++)
        cr_assert_eq(st[i], 1, "%s", cs[i].lease.id);
    cr_assert_eq(lash_release(C, "q", rel, NULL, nrel, st, &e), LASH_OK, "%s", e.msg);
    cr_assert(failed_one);
    cr_assert_eq(lash_retry(C, "q", failed_one, &e), LASH_OK, "%s", e.msg);
    lash_claim_batch_free(&b);
    /* W0 vanished: its leases run out (by hand), and a drive finds them first. */
    cmd_ok("DEL lash:{q}:lease:ab lash:{q}:lease:lost");
    cmd_ok("ZADD lash:{q}:due 0 ab 0 lost");
    b = claim("q", "W3", 2, TTL_LONG);
    cr_assert_eq(b.n, 1);
    cr_expect_str_eq(b.rows[0].id, "lost");
    cr_expect_eq(b.rows[0].attempt, 2);
    lash_claim_batch_free(&b);

    /* Count the rows themselves. */
    long long want[LASH_STATE_COUNT] = {0};
    redisReply *keys = cmd("KEYS lash:{q}:p:*");
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *s = cmd("HGET %s state", keys->element[i]->str);
        int k = s->type == REDIS_REPLY_STRING ? lash_state_parse(s->str) : -1;
        cr_assert(k >= 0, "%s has no good state", keys->element[i]->str);
        want[k]++;
        freeReplyObject(s);
    }
    cr_expect_eq(keys->elements, 302);
    freeReplyObject(keys);
    lash_stats s = stats("q");
    for (int k = 0; k < LASH_STATE_COUNT; k++)
        cr_expect_eq(s.count[k], want[k], "%s: stats say %lld, rows %lld", state_names[k],
                     (long long)s.count[k], want[k]);
    cr_expect_eq(s.due, want[LASH_PENDING] + want[LASH_RUNNING]);
    cr_expect_eq(s.done, want[LASH_COMPLETED] + want[LASH_FAILED] + want[LASH_CANCELLED] +
                             want[LASH_ABANDONED]);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), s.due);
    cr_expect_eq(s.total_submitted, 302);
    cr_expect_eq(s.total_abandoned, 1);
    cr_expect_eq(s.total_lost, 2);
    cr_expect_eq(s.total_completed, want[LASH_COMPLETED]);
    cr_expect(want[LASH_PENDING] > 0 && want[LASH_RUNNING] > 0 && want[LASH_COMPLETED] > 0 &&
                  want[LASH_FAILED] > 0 && want[LASH_CANCELLED] > 0 && want[LASH_ABANDONED] == 1,
              "the workload should reach every state");
}

/* Reads every page of a listing; checks each id appears once and matches state. */
static size_t list_all(const char *q, const char *state, int limit, char (*seen)[32], size_t cap)
{
    char cursor[32] = "0";
    size_t n = 0;
    int pages = 0;
    do {
        lash_list_page p;
        lash_err e = {0};
        cr_assert_eq(lash_list(C, q, state, cursor, limit, &p, &e), LASH_OK, "%s", e.msg);
        cr_assert_leq(p.n, (size_t)limit);
        for (size_t i = 0; i < p.n; i++) {
            if (state) cr_expect_str_eq(p.rows[i].state, state);
            cr_assert_lt(n, cap, "more rows listed than exist");
            snprintf(seen[n++], 32, "%.31s", p.rows[i].id);
        }
        snprintf(cursor, sizeof cursor, "%s", p.next);
        lash_list_page_free(&p);
        cr_assert_lt(++pages, 10000, "listing never ends");
    } while (strcmp(cursor, "0") != 0);
    qsort(seen, n, 32, cmp_id);
    for (size_t i = 1; i < n; i++)
        cr_expect_neq(strcmp(seen[i - 1], seen[i]), 0, "%s listed twice", seen[i]);
    return n;
}

Test(registry, list_pages_through_every_row_once)
{
    enum { N = 330 };
    submit_many(C, "q", "l", N, 1);
    /* 80 running, 70 completed, 50 failed, 20 cancelled, the rest pending. */
    lash_claim_batch b = claim("q", "W", 220, TTL_LONG);
    cr_assert_eq(b.n, 220);
    lash_completion cs[140];
    for (int i = 0; i < 140; i++)
        cs[i] = (lash_completion){{b.rows[i].id, "W", b.rows[i].fence},
                                  i < 70    ? LASH_OUT_OK
                                  : i < 120 ? LASH_OUT_FAIL
                                            : LASH_OUT_CANCEL,
                                  "",
                                  0,
                                  0};
    int st[140];
    lash_err e = {0};
    cr_assert_eq(lash_complete(C, "q", cs, 140, st, &e), LASH_OK);
    lash_claim_batch_free(&b);
    static const struct {
        const char *state;
        size_t n;
    } want[] = {{NULL, N},      {"pending", 110},  {"running", 80}, {"completed", 70},
                {"failed", 50}, {"cancelled", 20}, {"abandoned", 0}};
    char(*seen)[32] = malloc(2 * N * 32);
    static const int limits[] = {1, 7, 100, 1000};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++)
        for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
            if (limits[l] == 1 && want[w].state && strcmp(want[w].state, "running") != 0)
                continue; /* keep the test quick: limit 1 once per set */
            size_t n = list_all("q", want[w].state, limits[l], seen, 2 * N);
            cr_expect_eq(n, want[w].n, "state %s limit %d: %zu rows",
                         want[w].state ? want[w].state : "(any)", limits[l], n);
        }
    free(seen);
    lash_list_page p;
    cr_expect_eq(lash_list(C, "q", "zombie", "0", 10, &p, &e), LASH_EINVAL);
    cr_expect_neq(lash_list(C, "q", NULL, "x12", 10, &p, &e), LASH_OK);
}

/* ---- the Functions library, NOSCRIPT ------------------------------------------------ */

Test(registry, functions_library)
{
    lash_err e = {0};
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    redisReply *r = cmd("FCALL lash_version 0");
    cr_expect(r->type == REDIS_REPLY_STRING && strcmp(r->str, lash_function_version()) == 0);
    freeReplyObject(r);

    r = cmd("FCALL lash_submit 1 lash:{fq} f1 k {\"x\":1} 0");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 1, "%s",
              r->type == REDIS_REPLY_ERROR ? r->str : "?");
    cr_expect_str_eq(r->element[0]->element[0]->str, "f1");
    cr_expect_str_eq(r->element[0]->element[1]->str, "created");
    freeReplyObject(r);
    /* id '' takes a number; the script refuses what the C checks would. */
    r = cmd("FCALL lash_submit 1 lash:{fq} %s k null 2 max_attempts 2 backoff fixed:5 "
            "x bad-kind! null 0 y k {oops 0 z k null 1 backoff exp:10:5 "
            "w k null 1 colour red",
            "");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 5, "%s",
              r->type == REDIS_REPLY_ERROR ? r->str : "?");
    cr_expect_str_eq(r->element[0]->element[0]->str, "1");
    cr_expect_str_eq(r->element[0]->element[1]->str, "created");
    for (int i = 1; i < 5; i++)
        cr_expect(strncmp(r->element[i]->element[1]->str, "invalid:", 8) == 0, "row %d: %s", i,
                  r->element[i]->element[1]->str);
    freeReplyObject(r);
    expect_field("fq", "1", "backoff", "fixed:5");

    lash_claim_batch b = claim("fq", "W", 10, TTL_LONG);
    cr_assert_eq(b.n, 2);
    int f1 = strcmp(b.rows[0].id, "f1") == 0 ? 0 : 1;
    cr_expect_str_eq(b.rows[f1].id, "f1");
    cr_expect_str_eq(b.rows[f1].payload, "{\"x\":1}");
    cr_expect_eq(b.rows[f1].attempt, 1);
    cr_expect_eq(b.rows[1 - f1].max_attempts, 2);
    cr_expect_str_eq(b.rows[1 - f1].backoff, "fixed:5");
    lash_claim_batch_free(&b);

    r = cmd("FCALL lash_stats 1 lash:{fq}");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0);
    long long running = -1;
    for (size_t i = 0; i < r->elements; i += 2)
        if (strcmp(r->element[i]->str, "running") == 0)
            running = r->element[i + 1]->type == REDIS_REPLY_INTEGER
                          ? r->element[i + 1]->integer
                          : atoll(r->element[i + 1]->str);
    cr_expect_eq(running, 2);
    freeReplyObject(r);
    r = cmd("FCALL_RO lash_stats 1 lash:{fq}");
    cr_expect(r->type == REDIS_REPLY_ARRAY, "stats is read-only");
    freeReplyObject(r);

    r = cmd("FCALL lash_cancel 1 lash:{fq} f1 because");
    cr_expect(r->type == REDIS_REPLY_STRING && strcmp(r->str, "requested") == 0);
    freeReplyObject(r);
    r = cmd("FCALL lash_submit 1 lash:{fq} f2 k null 0");
    freeReplyObject(r);
    r = cmd("FCALL lash_cancel 1 lash:{fq} f2");
    cr_expect(r->type == REDIS_REPLY_STRING && strcmp(r->str, "cancelled") == 0);
    freeReplyObject(r);
    r = cmd("FCALL lash_cancel 1 lash:{fq} nobody");
    cr_expect(r->type == REDIS_REPLY_STRING && strcmp(r->str, "not-found") == 0);
    freeReplyObject(r);
    r = cmd("FCALL lash_submit 1 wrong-key f3 k null 0");
    cr_expect_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);

    /* An outdated library is replaced. */
    cmd_ok("FUNCTION DELETE lash");
    cmd_ok("FUNCTION LOAD %s", "#!lua name=lash\nredis.register_function('lash_version', "
                               "function() return 'old' end)");
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    r = cmd("FCALL lash_version 0");
    cr_expect_str_eq(r->str, lash_function_version());
    freeReplyObject(r);
}

Test(registry, noscript_fallback_after_script_flush)
{
    submit_ok("q", job("a", "k", "{}"));
    submit_ok("q", job("b", "k", "{}"));
    cmd_ok("SCRIPT FLUSH");
    submit_ok("q", job("c", "k", "{}"));
    cmd_ok("SCRIPT FLUSH");
    lash_claim_batch b = claim("q", "W", 10, TTL_LONG);
    cr_assert_eq(b.n, 3);
    lash_claim_batch_free(&b);
    cmd_ok("SCRIPT FLUSH");
    cr_expect_eq(renew1("q", "a", "W", F("q", "a"), TTL_LONG), 1);
    cmd_ok("SCRIPT FLUSH");
    cr_expect_eq(complete1("q", "a", "W", F("q", "a"), LASH_OUT_OK, "", 0), 1);
    cmd_ok("SCRIPT FLUSH");
    cr_expect_eq(release1("q", "b", "W", F("q", "b")), 1);
    cmd_ok("SCRIPT FLUSH");
    bool req;
    lash_err e = {0};
    cr_expect_eq(lash_cancel(C, "q", "c", NULL, &req, &e), LASH_OK, "%s", e.msg);
    cmd_ok("SCRIPT FLUSH");
    cr_expect_eq(lash_retry(C, "q", "a", &e), LASH_EREFUSED, "%s", e.msg);
    cmd_ok("SCRIPT FLUSH");
    lash_list_page p;
    cr_expect_eq(lash_list(C, "q", NULL, "0", 10, &p, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(p.n, 3, "n=%zu next=%s r0=%s %s", p.n, p.next, p.n ? p.rows[0].id : "",
                 p.n ? p.rows[0].state : "");
    lash_list_page_free(&p);
    cmd_ok("SCRIPT FLUSH");
    cr_expect_eq(stats("q").count[LASH_PENDING], 1);
    cmd_ok("SCRIPT FLUSH");
    int64_t removed;
    cr_expect_eq(lash_trim(C, "q", (lash_retention){0, 0}, 10, &removed, &e), LASH_OK);
    cr_expect_eq(removed, 1);
}

typedef struct {
    const char *sock;
    volatile int stop;
    int flushes;
} flusher;

static void *flush_loop(void *arg)
{
    flusher *f = arg;
    redisContext *c = redisConnectUnix(f->sock);
    if (!c || c->err) return NULL;
    while (!f->stop) {
        redisReply *r = redisCommand(c, "SCRIPT FLUSH");
        if (!r) break;
        freeReplyObject(r);
        f->flushes++;
        lash_fx_sleep_ms(1);
    }
    redisFree(c);
    return NULL;
}

/* A flush between the pipelined calls of one batch submit: every row is still
 * answered for, and the connection is still in step afterwards. */
Test(registry, noscript_in_the_middle_of_a_pipelined_submit)
{
    flusher f = {.sock = R.sock};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, flush_loop, &f), 0);
    for (int round = 0; round < 6; round++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "r%d-", round);
        submit_many(C, "q", prefix, 4000, 0);
        cr_expect_eq(stats("q").total_submitted, (round + 1) * 4000);
    }
    f.stop = 1;
    pthread_join(th, NULL);
    cr_expect_gt(f.flushes, 0);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), 6 * 4000);
}

/* A batch whose later calls fail (here: out of memory) still answers every row
 * and leaves the connection in step for the next command. */
Test(registry, failed_chunk_leaves_the_connection_usable)
{
    enum { N = 4000 };
    redisReply *r = cmd("INFO memory");
    const char *p = strstr(r->str, "used_memory:");
    cr_assert(p);
    long long used = atoll(p + strlen("used_memory:"));
    freeReplyObject(r);
    cmd_ok("CONFIG SET maxmemory %lld", used + 2 * 1024 * 1024);
    char *payload = malloc(4096);
    memset(payload, 'x', 4095);
    payload[0] = payload[4094] = '"';
    payload[4095] = 0;
    lash_submission *s = calloc(N, sizeof *s);
    lash_submitted *out = calloc(N, sizeof *out);
    char(*ids)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "m%d", i);
        s[i] = job(ids[i], "k", payload);
    }
    lash_err e = {0};
    lash_status st = lash_submit(C, "q", s, N, out, &e);
    cr_expect_eq(st, LASH_EREDIS, "status %d: %s", st, e.msg);
    cr_expect(strstr(e.msg, "OOM") || strstr(e.msg, "maxmemory"), "%s", e.msg);
    /* The next replies are the next commands' own. */
    r = cmd("CONFIG SET maxmemory 0");
    cr_expect(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0,
              "out of step: got type %d '%s'", r->type, r->str ? r->str : "");
    freeReplyObject(r);
    r = cmd("PING");
    cr_expect(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0);
    freeReplyObject(r);
    /* Every row says what became of it: created ones exist, the rest are not. */
    long long created = 0;
    for (int i = 0; i < N; i++) {
        long long exists = cmd_int("EXISTS lash:{q}:p:%s", ids[i]);
        if (out[i].status == LASH_SUB_CREATED) {
            created++;
            cr_expect_eq(exists, 1, "%s said created", ids[i]);
        } else {
            cr_expect_eq(exists, 0, "%s said %d (%s) yet exists", ids[i], out[i].status,
                         out[i].msg);
            cr_expect(out[i].msg[0], "%s has no reason", ids[i]);
        }
    }
    cr_expect(created > 0 && created < N, "created %lld", created);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), created);
    lash_stats ss = stats("q");
    cr_expect_eq(ss.total_submitted, created);
    free(payload);
    free(s);
    free(out);
    free(ids);
}
