/* test_claim.c: claiming rows and holding them (claim.lua, renew.lua,
 * complete.lua, release.lua through registry/): what a claim hands out, rows
 * that wait for run_at, many claimers at once, lease expiry and fencing,
 * release, re-sent completes, batched outcomes, retries with backoff and lost
 * leases. A private redis-server per test (tests/rfx.h). */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keys.h"
#include "registry/registry.h"
#include "rfx.h"

TestSuite(claim, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

/* ---- claim ------------------------------------------------------------------------- */

Test(claim, claim_returns_the_row)
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
    cr_expect_eq(lash_claim(C, "q", "bad owner", 1, 1000, KEEP_ALL, 0, -1, &b, &e), LASH_EINVAL);
    cr_expect_neq(lash_claim(C, "q", "w", LASH_BATCH_MAX + 1, 1000, KEEP_ALL, 0, -1, &b, &e),
                  LASH_OK);
}

Test(claim, delayed_rows_wait_for_run_at)
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
        if (lash_claim(c, "race", r->owner, r->batch, TTL_LONG, KEEP_ALL, 0, -1, &b, &e) !=
            LASH_OK) {
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

/* peek.lua through lash_peek: the ms until the first row of the due set. */
static int64_t peek_wait(const char *q)
{
    int64_t wait = -2;
    lash_err e = {0};
    cr_assert_eq(lash_peek(C, q, &wait, &e), LASH_OK, "%s", e.msg);
    return wait;
}

Test(claim, a_peek_says_how_long_until_the_first_row_is_due)
{
    cr_expect_eq(peek_wait("q"), -1, "nothing waiting");
    long long t0 = server_ms();
    lash_submission far = job("far", "k", "{}");
    far.run_at_ms = t0 + 300LL * 86400000; /* within the year a run_at may be */
    submit_ok("q", far);
    cr_expect_eq(peek_wait("q"), 86400000, "capped at a day");
    lash_submission soon = job("soon", "k", "{}");
    soon.run_at_ms = t0 + 5000;
    submit_ok("q", soon);
    int64_t w = peek_wait("q");
    cr_expect(w > 0 && w <= 5000, "the first row's wait: %lld", (long long)w);
    submit_ok("q", job("now", "k", "{}"));
    cr_expect_eq(peek_wait("q"), 0, "a row is due");
    /* Claimed, it is rescored to its lease's end: the next wait is the
     * delayed row's again, not the lease's. */
    lash_claim_batch b = claim("q", "w", 10, TTL_LONG);
    cr_assert_eq(b.n, 1);
    lash_claim_batch_free(&b);
    w = peek_wait("q");
    cr_expect(w > 0 && w <= 5000, "after the claim: %lld", (long long)w);
}

Test(claim, a_short_claim_says_when_the_next_row_falls_due)
{
    long long t0 = server_ms();
    lash_submission s = job("d1", "k", "{}");
    s.run_at_ms = t0 + 5000;
    submit_ok("q", s);
    submit_ok("q", job("n1", "k", "{}"));
    lash_claim_batch b = claim("q", "w", 10, TTL_LONG);
    cr_assert_eq(b.n, 1);
    cr_expect(b.wait_ms > 0 && b.wait_ms <= 5000, "the delayed row's wait: %lld",
              (long long)b.wait_ms);
    lash_claim_batch_free(&b);
    b = claim("q", "w", 1, TTL_LONG);
    cr_expect_eq(b.n, 0);
    cr_expect(b.wait_ms > 0 && b.wait_ms <= 5000, "asked 1, saw 0: %lld", (long long)b.wait_ms);
    lash_claim_batch_free(&b);
    submit_ok("q", job("n2", "k", "{}"));
    b = claim("q", "w", 1, TTL_LONG);
    cr_expect_eq(b.n, 1);
    cr_expect_eq(b.wait_ms, -1, "a full claim does not look further");
    lash_claim_batch_free(&b);
}

Test(claim, claim_race_every_row_exactly_once)
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

Test(claim, lease_expiry_fences_out_the_first_owner)
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

Test(claim, release_hands_the_attempt_back)
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

Test(claim, resent_complete_answers_already)
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

/* A terminal row is final: its updated_ms is when it finished, and no
 * finished_ms is stored (proto/record.h); a reader gets it all the same. */
Test(claim, a_finished_row_keeps_its_finish_time_in_updated_ms)
{
    submit_ok("q", job("a", "k", "{}"));
    lash_claim_batch cb = claim("q", "W", 1, TTL_LONG);
    cr_assert_eq(cb.n, 1);
    lash_claim_batch_free(&cb);
    cr_assert_eq(complete1("q", "a", "W", F("q", "a"), LASH_OUT_OK, "r", 0), LASH_DONE_RECORDED);
    expect_field("q", "a", "finished_ms", NULL);
    lash_record r = get("q", "a");
    cr_expect_eq(r.state, LASH_COMPLETED);
    cr_expect_gt(r.updated_ms, 0);
    cr_expect_eq(r.finished_ms, r.updated_ms);
    lash_record_free(&r);
}

Test(claim, batched_complete_mixes_outcomes)
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

Test(claim, retry_with_backoff_then_failed)
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

Test(claim, lost_lease_with_abandon_is_abandoned)
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

Test(claim, lost_lease_on_last_attempt_fails)
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
Test(claim, lease_without_expiry_is_not_counted_lost_forever)
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
