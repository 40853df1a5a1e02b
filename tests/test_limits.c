/* test_limits.c: fleet-wide limits per kind (`lashctl limit`, registry/limit.h),
 * enforced by the claim script.
 *
 * The claim-level tests drive the scripts through the registry API (what a
 * held row looks like in Redis, what frees a slot); the fleet tests run real
 * lash-worker processes (tests/wfx.h) whose exec handlers log their own start
 * and end times, and sample the queue's counters from Redis while they run.
 * Timings are liveness bounds, and the rate test's measured bound (10 %) is the
 * issue's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/limit.h"
#include "wfx.h"

TestSuite(limits, .fini = wfx_teardown, .timeout = 120);

static void set_limit(const char *q, const char *kind, int64_t conc, int64_t rate, int64_t period)
{
    lash_err e = {0};
    cr_assert_eq(lash_limit_set(C, q, kind, conc, rate, period, &e), LASH_OK, "limit set: %s",
                 e.msg);
}

static lash_claim_batch claim_n(const char *q, const char *owner, int n, int64_t ttl)
{
    lash_claim_batch b = {0};
    lash_err e = {0};
    cr_assert_eq(lash_claim(C, q, owner, n, ttl, (lash_retention){-1, 0}, 0, 0, &b, &e), LASH_OK,
                 "claim: %s", e.msg);
    return b;
}

static long long server_now(void)
{
    redisReply *r = cmd("TIME");
    long long ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

static long long due_score(const char *q, const char *id)
{
    redisReply *r = cmd("ZSCORE lash:{%s}:due %s", q, id);
    long long s = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return s;
}

static int complete_ok(const char *q, const lash_claimed *row, const char *owner)
{
    lash_completion d = {.lease = {.id = row->id, .owner = owner, .fence = row->fence},
                         .outcome = LASH_OUT_OK,
                         .text = "ok",
                         .text_len = 2};
    int st = -1;
    lash_err e = {0};
    cr_assert_eq(lash_complete(C, q, &d, 1, &st, &e), LASH_OK, "complete: %s", e.msg);
    return st;
}

/* ---- the claim ------------------------------------------------------------------- */

Test(limits, a_row_over_the_concurrency_limit_stays_pending_unleased_and_waits)
{
    up(NULL);
    set_limit("q", "k", 1, LASH_LIMIT_KEEP, 0);
    submit("q", "a", "k", "{}");
    submit("q", "b", "k", "{}");
    lash_claim_batch got = claim_n("q", "w", 2, 30000);
    cr_assert_eq(got.n, 1, "one slot: one row claimed, got %zu", got.n);
    const char *held = strcmp(got.rows[0].id, "a") == 0 ? "b" : "a";
    cr_expect(row_is("q", held, "pending"));
    cr_expect(!lease_exists("q", held), "a held row is not leased");
    /* Not busy: it is due again only when a slot could free (the running
     * row's lease expiry), not at the next poll. */
    cr_expect_gt(due_score("q", held), server_now() + 20000);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:held:k"), 1);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:running:k"), 1);
    lash_claim_batch again = claim_n("q", "w", 2, 30000);
    cr_expect_eq(again.n, 0, "the held row is not eligible while the slot is taken");
    lash_claim_batch_free(&again);
    /* A complete frees the slot and wakes the held row: due now. */
    cr_assert_eq(complete_ok("q", &got.rows[0], "w"), 1);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:running:k"), 0);
    cr_expect_leq(due_score("q", held), server_now());
    lash_claim_batch next = claim_n("q", "w", 2, 30000);
    cr_assert_eq(next.n, 1);
    cr_expect_str_eq(next.rows[0].id, held);
    lash_claim_batch_free(&next);
    lash_claim_batch_free(&got);
}

Test(limits, a_row_over_the_rate_waits_until_its_window_reopens)
{
    up(NULL);
    set_limit("q", "k", LASH_LIMIT_KEEP, 2, 3600000);
    submit_many("q", "r", 3, "k", "{}");
    long long t0 = server_now();
    lash_claim_batch got = claim_n("q", "w", 3, 30000);
    cr_assert_eq(got.n, 2, "2 starts per hour: got %zu", got.n);
    const char *held = "r2";
    for (size_t i = 0; i < got.n; i++)
        if (strcmp(got.rows[i].id, "r2") == 0) held = "r0"; /* whichever was left */
    cr_expect(row_is("q", held, "pending"));
    cr_expect(!lease_exists("q", held));
    /* Due when the oldest start leaves the window: an hour on. */
    cr_expect_geq(due_score("q", held), t0 + 3600000);
    cr_expect_leq(due_score("q", held), server_now() + 3600001);
    /* The rate counts starts, not running rows: completing does not free it. */
    cr_assert_eq(complete_ok("q", &got.rows[0], "w"), 1);
    lash_claim_batch none = claim_n("q", "w", 3, 30000);
    cr_expect_eq(none.n, 0);
    lash_claim_batch_free(&none);
    lash_claim_batch_free(&got);
}

Test(limits, a_lost_lease_frees_its_slot_when_it_expires)
{
    up(NULL);
    set_limit("q", "k", 1, LASH_LIMIT_KEEP, 0);
    submit_o("q", "a", "k", "{}", (opts){.max_attempts = 1});
    lash_claim_batch got = claim_n("q", "dead", 1, 300); /* never renewed */
    cr_assert_eq(got.n, 1);
    lash_claim_batch_free(&got);
    submit("q", "b", "k", "{}");
    lash_claim_batch held = claim_n("q", "w", 1, 30000);
    cr_expect_eq(held.n, 0, "a's lease still holds the slot");
    lash_claim_batch_free(&held);
    lash_fx_sleep_ms(400);
    lash_claim_batch next = claim_n("q", "w", 2, 30000);
    cr_assert_eq(next.n, 1, "a's lease ran out: its slot is free");
    cr_expect_str_eq(next.rows[0].id, "b");
    cr_expect(row_is("q", "a", "failed"));
    lash_claim_batch_free(&next);
}

Test(limits, a_renew_keeps_the_slot_past_the_first_lease)
{
    up(NULL);
    set_limit("q", "k", 1, LASH_LIMIT_KEEP, 0);
    submit("q", "a", "k", "{}");
    lash_claim_batch got = claim_n("q", "w", 1, 300);
    cr_assert_eq(got.n, 1);
    submit("q", "b", "k", "{}");
    for (int i = 0; i < 4; i++) { /* 800 ms in all, renewed every 200 */
        lash_fx_sleep_ms(200);
        lash_lease l = {.id = "a", .owner = "w", .fence = got.rows[0].fence};
        int st = -1;
        lash_err e = {0};
        cr_assert_eq(lash_renew(C, "q", 300, &l, 1, &st, &e), LASH_OK, "%s", e.msg);
        cr_assert_eq(st, LASH_RENEW_OK);
        lash_claim_batch none = claim_n("q", "w2", 1, 30000);
        cr_expect_eq(none.n, 0, "b ran while a held the only slot (round %d)", i);
        lash_claim_batch_free(&none);
    }
    lash_claim_batch_free(&got);
}

Test(limits, a_release_frees_the_slot)
{
    up(NULL);
    set_limit("q", "k", 1, LASH_LIMIT_KEEP, 0);
    submit("q", "a", "k", "{}");
    submit("q", "b", "k", "{}");
    lash_claim_batch got = claim_n("q", "w", 2, 30000);
    cr_assert_eq(got.n, 1);
    lash_lease l = {.id = got.rows[0].id, .owner = "w", .fence = got.rows[0].fence};
    int st = -1;
    lash_err e = {0};
    cr_assert_eq(lash_release(C, "q", &l, NULL, 1, &st, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:running:k"), 0);
    lash_claim_batch next = claim_n("q", "w", 2, 30000);
    cr_expect_eq(next.n, 1, "the slot is free again");
    lash_claim_batch_free(&next);
    lash_claim_batch_free(&got);
}

Test(limits, other_kinds_are_not_held)
{
    up(NULL);
    set_limit("q", "k", 1, LASH_LIMIT_KEEP, 0);
    submit_many("q", "k", 3, "k", "{}");
    submit_many("q", "f", 3, "free", "{}");
    lash_claim_batch got = claim_n("q", "w", 10, 30000);
    cr_expect_eq(got.n, 4, "1 of k, 3 of free: got %zu", got.n);
    lash_claim_batch_free(&got);
}

Test(limits, removing_a_limit_wakes_its_held_rows)
{
    up(NULL);
    set_limit("q", "k", 1, LASH_LIMIT_KEEP, 0);
    submit_many("q", "r", 3, "k", "{}");
    lash_claim_batch got = claim_n("q", "w", 3, 30000);
    cr_assert_eq(got.n, 1);
    lash_claim_batch_free(&got);
    bool had = false;
    lash_err e = {0};
    cr_assert_eq(lash_limit_rm(C, "q", "k", &had, &e), LASH_OK, "%s", e.msg);
    cr_expect(had);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:limits"), 0);
    lash_claim_batch rest = claim_n("q", "w", 3, 30000);
    cr_expect_eq(rest.n, 2, "no limit: the held rows run now");
    lash_claim_batch_free(&rest);
}

/* ---- validation ------------------------------------------------------------------- */

Test(limits, bad_limits_are_refused_and_change_nothing)
{
    up(NULL);
    lash_err e = {0};
    cr_expect_eq(lash_limit_set(C, "q", "k", -5, LASH_LIMIT_KEEP, 0, &e), LASH_EINVAL);
    cr_expect_eq(
        lash_limit_set(C, "q", "k", LASH_LIMIT_CONCURRENCY_MAX + 1, LASH_LIMIT_KEEP, 0, &e),
        LASH_EINVAL);
    cr_expect_eq(lash_limit_set(C, "q", "k", LASH_LIMIT_KEEP, 10, 0, &e), LASH_EINVAL);
    cr_expect_eq(lash_limit_set(C, "q", "k", LASH_LIMIT_KEEP, LASH_LIMIT_RATE_MAX + 1, 1000, &e),
                 LASH_EINVAL);
    cr_expect_eq(lash_limit_set(C, "q", "k", LASH_LIMIT_KEEP, LASH_LIMIT_KEEP, 0, &e), LASH_EINVAL);
    cr_expect_eq(lash_limit_set(C, "q", "b@d", 3, LASH_LIMIT_KEEP, 0, &e), LASH_EINVAL);
    /* The script refuses what it is sent raw (redis-cli), by name. */
    static const char *const bad[][2] = {{"0", ""},    {"x", ""},   {"", "5"},
                                         {"", "0/1"},  {"", "1/0"}, {"", "5/100000000"},
                                         {"", "-1/5"}, {"", ""}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        redisReply *r = redisCommand(lash_conn_redis(C), "FCALL lash_limit 1 lash:{q} set k %s %s",
                                     bad[i][0], bad[i][1]);
        cr_assert(r);
        cr_expect_eq(r->type, REDIS_REPLY_ERROR, "set k '%s' '%s' was taken", bad[i][0], bad[i][1]);
        freeReplyObject(r);
    }
    cr_expect_eq(cmd_int("EXISTS lash:{q}:limits"), 0, "a refused set wrote something");
    /* lashctl: a usage error, exit 2. */
    const char *url = R.url;
    cr_expect_eq(run("l1", ARGS(lash_fx_bin("lashctl"), "--redis", url, "--queue", "q", "limit",
                                "set", "k", "--rate", "5")),
                 2);
    cr_expect_eq(run("l2", ARGS(lash_fx_bin("lashctl"), "--redis", url, "--queue", "q", "limit",
                                "set", "k", "--concurrency", "0")),
                 2);
    cr_expect_eq(run("l3", ARGS(lash_fx_bin("lashctl"), "--redis", url, "--queue", "q", "limit",
                                "set", "k", "--rate", "5/1y")),
                 2);
    cr_expect_eq(run("l4", ARGS(lash_fx_bin("lashctl"), "--redis", url, "--queue", "q", "limit",
                                "set", "k", "--rate", "50/1s", "--concurrency", "3")),
                 0);
    cr_expect_eq(
        run("l5", ARGS(lash_fx_bin("lashctl"), "--redis", url, "--queue", "q", "limit", "list")),
        0);
    char out[256];
    path_in(out, sizeof out, "l5.err");
    cr_expect(file_has(out, "50/1s"), "lashctl limit list shows the rate as given");
    lash_limit *l = NULL;
    size_t n = 0;
    cr_assert_eq(lash_limit_list(C, "q", &l, &n, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(n, 1);
    cr_expect_str_eq(l[0].kind, "k");
    cr_expect_eq(l[0].concurrency, 3);
    cr_expect_eq(l[0].rate, 50);
    cr_expect_eq(l[0].period_ms, 1000);
    free(l);
}

Test(limits, a_malformed_limit_written_by_hand_is_noted_and_not_enforced)
{
    up(NULL);
    cmd_do("HSET lash:{q}:limits k:concurrency lots");
    submit_many("q", "r", 3, "k", "{}");
    lash_claim_batch got = claim_n("q", "w", 3, 30000);
    cr_expect_eq(got.n, 3, "a bad limit strands no row");
    cr_assert_geq(got.bad, 1);
    cr_expect(strstr(got.notes[0], "k:") || strstr(got.notes[0], "concurrency"), "note: %s",
              got.notes[0]);
    lash_claim_batch_free(&got);
}

Test(limits, limit_keys_of_another_type_are_noted_and_never_fail_a_call)
{
    up(NULL);
    /* The limits hash itself: the claim notes it and runs the rows; set refuses. */
    cmd_do("SET lash:{q}:limits junk");
    submit("q", "a", "k", "{}");
    lash_claim_batch got = claim_n("q", "w", 1, 30000);
    cr_expect_eq(got.n, 1);
    cr_expect_geq(got.bad, 1);
    lash_claim_batch_free(&got);
    lash_err e = {0};
    cr_expect_eq(lash_limit_set(C, "q", "k", 1, LASH_LIMIT_KEEP, 0, &e), LASH_EREDIS);
    cr_expect(strstr(e.msg, "lash:{q}:limits"), "names the key: %s", e.msg);
    cmd_do("DEL lash:{q}:limits");
    /* The running set: the limit is not enforced (noted), a complete still records. */
    set_limit("q", "k", 1, LASH_LIMIT_KEEP, 0);
    submit("q", "b", "k", "{}");
    lash_claim_batch b = claim_n("q", "w", 1, 30000);
    cr_assert_eq(b.n, 1);
    cmd_do("DEL lash:{q}:running:k");
    cmd_do("SET lash:{q}:running:k junk");
    cmd_do("SET lash:{q}:held:k junk");
    cr_expect_eq(complete_ok("q", &b.rows[0], "w"), 1, "a junk running set fails no complete");
    cr_expect(row_is("q", "b", "completed"));
    submit_many("q", "r", 2, "k", "{}");
    lash_claim_batch c = claim_n("q", "w", 2, 30000);
    cr_expect_eq(c.n, 2, "not enforceable: the rows run, none is stranded");
    cr_expect_geq(c.bad, 1);
    lash_claim_batch_free(&c);
    lash_claim_batch_free(&b);
}

/* ---- the fleet -------------------------------------------------------------------- */

typedef struct {
    long long start, end;
} span;

/* The "<start ms> <end ms>" lines a handler appended to name. */
static size_t read_spans(const char *name, span *out, size_t cap)
{
    char path[256];
    path_in(path, sizeof path, name);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t n = 0;
    while (n < cap && fscanf(f, "%lld %lld", &out[n].start, &out[n].end) == 2)
        n++;
    fclose(f);
    return n;
}

static size_t lines_of(const char *name)
{
    span s[2048];
    return read_spans(name, s, 2048);
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

/* The most spans open at one instant (a start at the instant another ends
 * counts both: the handler's own times are the loosest bound). */
static int max_overlap(const span *s, size_t n)
{
    long long *ev = calloc(2 * n, sizeof *ev);
    cr_assert(ev);
    for (size_t i = 0; i < n; i++) {
        ev[2 * i] = s[i].start * 2 + 0; /* starts sort before ends of the same ms */
        ev[2 * i + 1] = s[i].end * 2 + 1;
    }
    qsort(ev, 2 * n, sizeof *ev, cmp_ll);
    int open = 0, best = 0;
    for (size_t i = 0; i < 2 * n; i++) {
        open += (ev[i] & 1) ? -1 : 1;
        if (open > best) best = open;
    }
    free(ev);
    return best;
}

Test(limits, concurrency_3_across_4_workers_of_8_slots_never_runs_more_than_3)
{
    up(NULL);
    char log[256], prog[600], handler[320], hv[400];
    path_in(log, sizeof log, "spans.log");
    snprintf(prog, sizeof prog,
             "s=$(date +%%s%%3N); sleep 0.2; e=$(date +%%s%%3N); echo \"$s $e\" >> %s\n", log);
    script(handler, sizeof handler, "span.sh", prog);
    snprintf(hv, sizeof hv, "lim=%s", handler);
    set_limit("q", "lim", 3, LASH_LIMIT_KEEP, 0);
    enum { N = 60 };
    submit_many("q", "r", N, "lim", "{}");
    for (int i = 0; i < 4; i++) {
        char name[8];
        snprintf(name, sizeof name, "w%d", i);
        WORKER(name, "--queue", "q", "--handler", hv, "--concurrency", "8");
    }
    /* Sample Redis while they run: rows running by the queue's own counters. */
    long long running_max = 0, end = lash_fx_ms() + 60000;
    long samples = 0;
    while (lash_fx_ms() < end) {
        redisReply *r = cmd("HMGET lash:{q}:stats running completed");
        long long running = r->element[0]->str ? atoll(r->element[0]->str) : 0;
        long long done = r->element[1]->str ? atoll(r->element[1]->str) : 0;
        freeReplyObject(r);
        if (running > running_max) running_max = running;
        samples++;
        if (done == N) break;
        lash_fx_sleep_ms(5);
    }
    lash_stats s = stats("q");
    cr_assert_eq(s.count[LASH_COMPLETED], N, "all %d completed (got %lld)", N,
                 (long long)s.count[LASH_COMPLETED]);
    span sp[N];
    size_t n = read_spans("spans.log", sp, N);
    cr_assert_eq(n, N, "every run logged its span (%zu)", n);
    int overlap = max_overlap(sp, n);
    cr_log_info("concurrency: %ld Redis samples, max running %lld; handlers' max overlap %d",
                samples, running_max, overlap);
    cr_expect_leq(running_max, 3, "Redis saw %lld running", running_max);
    cr_expect_leq(overlap, 3, "the handlers' own log shows %d at once", overlap);
    /* The limit is a cap, not a throttle to one: the fleet did use its 3 slots. */
    cr_expect_geq(overlap, 2, "never more than %d ran at once", overlap);
}

Test(limits, a_rate_of_50_per_second_holds_within_10_percent_over_10_seconds)
{
    up(NULL);
    char log[256], prog[600], handler[320], hv[400];
    path_in(log, sizeof log, "spans.log");
    snprintf(prog, sizeof prog, "s=$(date +%%s%%3N); echo \"$s $s\" >> %s\n", log);
    script(handler, sizeof handler, "stamp.sh", prog);
    snprintf(hv, sizeof hv, "rated=%s", handler);
    set_limit("q", "rated", LASH_LIMIT_KEEP, 50, 1000);
    cmd_do("HSET lash:{q}:stats events all"); /* the claims' own times, below */
    enum { N = 700 };
    submit_many("q", "r", N, "rated", "{}");
    /* Rows held by the rate are due exactly when the window reopens, and the
     * claim that held them says when: a worker claims them then. */
    for (int i = 0; i < 2; i++) {
        char name[8];
        snprintf(name, sizeof name, "w%d", i);
        WORKER(name, "--queue", "q", "--handler", hv, "--concurrency", "8", "--poll-ms", "50");
    }
    WAIT_UNTIL(lines_of("spans.log") >= 600, 60000);
    static span sp[N];
    size_t n = read_spans("spans.log", sp, N);
    cr_assert_geq(n, 600, "only %zu started in 60 s", n);
    long long *t = calloc(n, sizeof *t);
    cr_assert(t);
    for (size_t i = 0; i < n; i++)
        t[i] = sp[i].start;
    qsort(t, n, sizeof *t, cmp_ll);
    size_t in10 = 0, worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < t[0] + 10000) in10++;
        size_t j = i;
        while (j < n && t[j] < t[i] + 1000)
            j++;
        if (j - i > worst) worst = j - i;
    }
    free(t);
    /* The claims themselves, by the server's clock: the 'claimed' events. */
    redisReply *r = cmd("XRANGE lash:{q}:events - +");
    long long *c = calloc(r->elements + 1, sizeof *c); /* stream order: ascending */
    cr_assert(c);
    size_t nc = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *ent = r->element[i], *f = ent->element[1];
        if (f->elements >= 2 && strcmp(f->element[1]->str, "claimed") == 0)
            c[nc++] = atoll(ent->element[0]->str); /* "<ms>-<seq>" */
    }
    freeReplyObject(r);
    /* An event's id is stamped when its XADD runs, up to the claim script's
     * duration after the TIME the script counted the start at (a few ms, tens
     * on a busy 2-core machine), and a worker claims held rows the moment the
     * window reopens: 900 ms of event ids lie within 1000 ms of script time. */
    size_t cworst = 0, craw = 0;
    for (size_t i = 0; i < nc; i++) {
        size_t j = i, k = i;
        while (j < nc && c[j] < c[i] + 900)
            j++;
        while (k < nc && c[k] < c[i] + 1000)
            k++;
        if (j - i > cworst) cworst = j - i;
        if (k - i > craw) craw = k - i;
    }
    free(c);
    cr_log_info(
        "rate: %zu handler starts in the first 10 s (at most %zu in any 1 s of the "
        "handlers' clock); %zu claims, at most %zu in any 900 ms of their events (%zu in 1 s)",
        in10, worst, nc, cworst, craw);
    cr_expect(in10 >= 450 && in10 <= 550, "%zu starts in 10 s, not 500 +- 10%%", in10);
    cr_expect_geq(nc, n);
    cr_expect_leq(cworst, 50, "%zu claims within 900 ms", cworst);
}

Test(limits, a_killed_workers_slot_frees_after_its_lease_expires)
{
    up(NULL);
    char work[256];
    work_script(work, sizeof work);
    char handler[300];
    snprintf(handler, sizeof handler, "k=%s", work);
    set_limit("q", "k", 1, LASH_LIMIT_KEEP, 0);
    submit_o("q", "a", "k", "[60,0]", (opts){.max_attempts = 1});
    pid_t w1 = WORKER("w1", "--queue", "q", "--handler", handler, "--lease-ms", "2000");
    WAIT_UNTIL(runs_of("a", 1, NULL) == 1, 10000);
    cr_assert_eq(runs_of("a", 1, NULL), 1, "a never started");
    submit("q", "b", "k", "[0,0]");
    WORKER("w2", "--queue", "q", "--handler", handler, "--lease-ms", "2000");
    kill9(w1);
    /* While a's lease lives, its slot is taken: b waits, pending and unleased. */
    if (lease_exists("q", "a")) {
        cr_expect(row_is("q", "b", "pending"));
        cr_expect(!lease_exists("q", "b"));
    }
    WAIT_UNTIL(row_is("q", "b", "completed"), 20000);
    cr_expect(row_is("q", "b", "completed"), "b never ran after a's lease ran out");
    cr_expect(row_is("q", "a", "failed"), "a: %s", hf("q", "a", "state"));
    cr_expect_eq(cmd_int("ZCARD lash:{q}:running:k"), 0, "b's slot was not given back");
}
