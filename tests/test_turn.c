/* test_turn.c: the worker's sans-IO turn machine (worker/turn.h), driven by hand.
 *
 * No Redis, no processes, no clock: every event carries an explicit `now`, and
 * the test plays the shell (worker/worker.c): events in, then once per "loop
 * iteration" lash_turn_flush and a drain of lash_turn_next.
 *
 * Part 1 pins each promise of turn.h with a focused test. Part 2 runs a fleet of
 * machines against an in-memory model of the registry (the rules of
 * proto/lua/{claim,renew,complete,release,cancel}.lua) with a simulated clock,
 * random process durations and injected faults, and checks that every row ends
 * terminal and none is recorded twice.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/record.h"
#include "worker/turn.h"

/* ==== part 1: focused tests ================================================== */

#define T0 1000000 /* a monotonic clock well past zero */

typedef struct {
    lash_action a;
    char msg[512];
} seen_act;

static lash_turn_config C;
static seen_act acts[1024];
static int nacts;
static int64_t timer_at = -1; /* the timer as the machine last armed it */

static void cfg(void)
{
    lash_turn_config_default(&C);
    C.concurrency = 4;
    C.nqueues = 1;
    C.seed = 42;
}

/* The shell's drain: every queued action, copied (LOG text dies on the next call). */
static void drain(lash_turn *t)
{
    lash_action a;
    nacts = 0;
    while (lash_turn_next(t, &a)) {
        cr_assert_lt(nacts, 1024, "action storm");
        seen_act *s = &acts[nacts++];
        s->a = a;
        if (a.kind == LASH_ACT_LOG) {
            snprintf(s->msg, sizeof s->msg, "%s", a.msg);
            s->a.msg = s->msg;
        }
        if (a.kind == LASH_ACT_TIMER) timer_at = a.at;
    }
}

/* End of a loop iteration: flush, then everything the iteration decided. */
static void step(lash_turn *t, int64_t now)
{
    lash_turn_flush(t, now);
    drain(t);
}

static int count(lash_action_kind k)
{
    int n = 0;
    for (int i = 0; i < nacts; i++)
        n += acts[i].a.kind == k;
    return n;
}

/* The i-th action of kind k in the last drain, or NULL. */
static const lash_action *nth(lash_action_kind k, int i)
{
    for (int j = 0; j < nacts; j++)
        if (acts[j].a.kind == k && i-- == 0) return &acts[j].a;
    return NULL;
}

static const lash_action *claim_for(int q)
{
    for (int j = 0; j < nacts; j++)
        if (acts[j].a.kind == LASH_ACT_CLAIM && acts[j].a.q == q) return &acts[j].a;
    return NULL;
}

static bool logged(const char *needle)
{
    for (int j = 0; j < nacts; j++)
        if (acts[j].a.kind == LASH_ACT_LOG && strstr(acts[j].msg, needle)) return true;
    return false;
}

typedef struct {
    const char *id;
    int64_t fence;
    int attempt, max_attempts;
    int64_t timeout_ms;
    const char *backoff;
    const char *payload;
} row;

/* Answers CLAIM cmd with rows r[0..n) (the script looked at `seen` due ids). */
static void give(lash_turn *t, uint32_t cmd, size_t seen, const row *r, int n, int64_t now)
{
    lash_claim_batch b = {.seen = seen, .n = (size_t)n};
    b.rows = calloc((size_t)(n ? n : 1), sizeof *b.rows);
    for (int i = 0; i < n; i++) {
        lash_claimed *c = &b.rows[i];
        const char *p = r[i].payload ? r[i].payload : "{}";
        snprintf(c->id, sizeof c->id, "%s", r[i].id);
        snprintf(c->kind, sizeof c->kind, "k");
        c->payload = strdup(p);
        c->payload_len = strlen(p);
        c->attempt = r[i].attempt ? r[i].attempt : 1;
        c->max_attempts = r[i].max_attempts ? r[i].max_attempts : 3;
        c->fence = r[i].fence;
        c->timeout_ms = r[i].timeout_ms;
        snprintf(c->backoff, sizeof c->backoff, "%s", r[i].backoff ? r[i].backoff : "");
    }
    lash_turn_claimed(t, cmd, LASH_OK, &b, now);
    cr_assert_eq(b.n, 0, "on LASH_OK the machine takes the rows out of the batch");
    lash_claim_batch_free(&b);
}

static void give_none(lash_turn *t, uint32_t cmd, int64_t now)
{
    give(t, cmd, 0, NULL, 0, now);
}

/* Answers a RENEW/COMPLETE/RELEASE with n copies of status. */
static void answer(lash_turn *t, uint32_t cmd, int n, int status, int64_t now)
{
    int st[LASH_BATCH_MAX];
    for (int i = 0; i < n; i++)
        st[i] = status;
    lash_turn_replied(t, cmd, LASH_OK, st, (size_t)n, now);
}

static int slot_of(const lash_turn *t, const char *id)
{
    for (int i = 0; i < C.concurrency; i++) {
        const lash_slot *s = lash_turn_slot(t, i);
        if (s->used && strcmp(s->id, id) == 0) return i;
    }
    return -1;
}

/* A connected machine after its startup drive (the CLAIMs are in acts). */
static lash_turn *boot(int64_t now)
{
    lash_turn *t = lash_turn_new(&C, "w1");
    lash_turn_start(t, now);
    drain(t);
    lash_turn_connected(t, now);
    step(t, now);
    return t;
}

/* A connected machine running rows r[0..n) on queue 0, claimed at `now`. */
static lash_turn *running(const row *r, int n, int64_t now)
{
    lash_turn *t = boot(now);
    const lash_action *c = claim_for(0);
    cr_assert_not_null(c);
    uint32_t cmd = c->cmd;
    for (int q = 1; q < C.nqueues; q++)
        give_none(t, claim_for(q)->cmd, now);
    give(t, cmd, (size_t)n, r, n, now);
    step(t, now);
    cr_assert_eq(count(LASH_ACT_START), n);
    cr_assert_eq(lash_turn_running(t), n);
    return t;
}

/* ---- connection and drives ---- */

Test(turn, start_connects_once)
{
    cfg();
    lash_turn *t = lash_turn_new(&C, "w1");
    lash_turn_start(t, T0);
    drain(t);
    cr_assert_eq(count(LASH_ACT_CONNECT), 1);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0);
    cr_assert_not(lash_turn_connected_now(t));
    cr_assert_eq(timer_at, T0 + C.reply_timeout_ms, "a connect that never answers times out");
    lash_turn_start(t, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_CONNECT), 0, "start is idempotent");
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "nothing is sent before the connection is up");
    lash_turn_tick(t, T0 + C.reply_timeout_ms);
    step(t, T0 + C.reply_timeout_ms);
    cr_assert_eq(count(LASH_ACT_DISCONNECT), 1, "connect timed out: give up on it");
    lash_turn_free(t);
}

Test(turn, startup_drive_claims_every_queue_within_free_slots)
{
    cfg();
    C.concurrency = 10;
    C.nqueues = 3;
    C.claim_max = 4;
    lash_turn *t = boot(T0);
    cr_assert(lash_turn_connected_now(t));
    cr_assert_eq(count(LASH_ACT_CLAIM), 3, "one claim per queue");
    cr_assert_eq(claim_for(0)->n, 4);
    cr_assert_eq(claim_for(1)->n, 4);
    cr_assert_eq(claim_for(2)->n, 2, "only the free slots that are left");
    step(t, T0);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "claims in flight: no second drive");
    lash_turn_free(t);

    cfg();
    C.concurrency = 6;
    C.nqueues = 2;
    t = boot(T0);
    cr_assert_eq(claim_for(0)->n, 6, "n = min(free slots, claim_max)");
    cr_assert_eq(claim_for(1)->n, 0, "no slot left: a heartbeat claim");
    lash_turn_free(t);
}

Test(turn, pokes_during_a_claim_make_exactly_one_more)
{
    cfg();
    lash_turn *t = boot(T0);
    uint32_t c1 = claim_for(0)->cmd;
    for (int i = 0; i < 50; i++) {
        lash_turn_poke(t, 0, T0 + i);
        step(t, T0 + i);
        cr_assert_eq(count(LASH_ACT_CLAIM), 0, "poke %d during a claim sent a claim", i);
    }
    give_none(t, c1, T0 + 60);
    step(t, T0 + 60);
    cr_assert_eq(count(LASH_ACT_CLAIM), 1, "the pokes coalesce into one drive");
    cr_assert_eq(claim_for(0)->n, 4);
    uint32_t c2 = claim_for(0)->cmd;
    cr_assert_neq(c2, c1);
    give_none(t, c2, T0 + 61);
    step(t, T0 + 61);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "and no more after it");

    for (int i = 0; i < 20; i++)
        lash_turn_poke(t, 0, T0 + 62);
    lash_turn_poke(t, 7, T0 + 62); /* no such queue: ignored */
    lash_turn_poke(t, -1, T0 + 62);
    step(t, T0 + 62);
    cr_assert_eq(count(LASH_ACT_CLAIM), 1, "pokes before one flush make one claim");
    cr_assert_eq(lash_turn_stats(t)->pokes, 70);
    lash_turn_free(t);
}

Test(turn, a_full_claim_drives_again_a_short_one_does_not)
{
    cfg();
    C.concurrency = 10;
    C.claim_max = 3;
    lash_turn *t = boot(T0);
    const lash_action *c = claim_for(0);
    cr_assert_eq(c->n, 3);
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 1}, {.id = "c", .fence = 1}};
    give(t, c->cmd, 3, r, 3, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_START), 3);
    c = claim_for(0);
    cr_assert_not_null(c, "seen == asked: probably more, drive again");
    cr_assert_eq(c->n, 3);
    /* The script looked at 3 due ids but they were leased elsewhere: still "maybe more". */
    give(t, c->cmd, 3, NULL, 0, T0 + 2);
    step(t, T0 + 2);
    c = claim_for(0);
    cr_assert_not_null(c);
    row d[] = {{.id = "d", .fence = 1}};
    give(t, c->cmd, 1, d, 1, T0 + 3);
    step(t, T0 + 3);
    cr_assert_eq(count(LASH_ACT_START), 1);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "a short claim: the queue is drained");
    cr_assert_eq(lash_turn_stats(t)->rows_claimed, 4);
    lash_turn_free(t);
}

Test(turn, claims_wait_for_free_slots)
{
    cfg();
    C.concurrency = 5;
    C.nqueues = 3;
    C.claim_max = 2;
    lash_turn *t = boot(T0);
    uint32_t c0 = claim_for(0)->cmd, c2 = claim_for(2)->cmd;
    cr_assert_eq(claim_for(0)->n + claim_for(1)->n + claim_for(2)->n, 5);
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 1}};
    give(t, c0, 2, r, 2, T0 + 1); /* full: queue 0 wants more */
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "2 running + 3 reserved: no slot is free");
    give_none(t, c2, T0 + 2); /* frees the 1 slot queue 2 had reserved */
    step(t, T0 + 2);
    cr_assert_eq(count(LASH_ACT_CLAIM), 1);
    cr_assert_eq(claim_for(0)->n, 1);
    lash_turn_free(t);
}

/* A long random walk of pokes, ticks, claim replies and exits: after every
 * iteration the rows asked for by claims in flight plus the processes running
 * never exceed the slots, and no queue has two claims in flight. */
Test(turn, claims_never_exceed_free_slots)
{
    for (int seed = 1; seed <= 20; seed++) {
        cfg();
        C.concurrency = 1 + seed % 7;
        C.nqueues = 1 + seed % 3;
        C.claim_max = 1 + seed % 4;
        C.seed = (uint64_t)seed;
        C.lease_ms = C.reply_timeout_ms = 1LL << 40; /* leases and replies are not the point */
        uint64_t rng = (uint64_t)seed * 0x9e3779b97f4a7c15ull;
        lash_turn *t = lash_turn_new(&C, "w1");
        lash_turn_start(t, T0);
        lash_turn_connected(t, T0);
        uint32_t inflight[3] = {0};
        int asked[3] = {0}, nrows = 0;
        int64_t now = T0;
        for (int i = 0; i < 3000; i++) {
            step(t, now);
            for (int j = 0; j < nacts; j++) {
                const lash_action *a = &acts[j].a;
                if (a->kind == LASH_ACT_CLAIM) {
                    cr_assert_eq(inflight[a->q], 0, "two claims in flight on queue %d", a->q);
                    cr_assert_leq(a->n, C.claim_max);
                    inflight[a->q] = a->cmd;
                    asked[a->q] = a->n;
                } else if (a->kind == LASH_ACT_COMPLETE) {
                    answer(t, a->cmd, a->n, LASH_DONE_RECORDED, now);
                }
            }
            int reserved = 0;
            for (int q = 0; q < C.nqueues; q++)
                reserved += inflight[q] ? asked[q] : 0;
            cr_assert_leq(reserved + lash_turn_running(t), C.concurrency,
                          "seed %d: %d reserved + %d running > %d slots", seed, reserved,
                          lash_turn_running(t), C.concurrency);
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            int q = (int)((rng >> 8) % (uint64_t)C.nqueues);
            now += (int64_t)(rng >> 40) % 50;
            switch ((rng >> 20) % 4) {
            case 0:
                lash_turn_poke(t, q, now);
                break;
            case 1:
                lash_turn_tick(t, now);
                break;
            case 2:
                if (inflight[q]) {
                    row r[LASH_BATCH_MAX];
                    char ids[8][16];
                    int n = asked[q] ? (int)((rng >> 30) % (uint64_t)(asked[q] + 1)) : 0;
                    for (int k = 0; k < n; k++) {
                        snprintf(ids[k], sizeof ids[k], "r%d", nrows++);
                        r[k] = (row){.id = ids[k], .fence = 1};
                    }
                    give(t, inflight[q], (size_t)n, r, n, now);
                    inflight[q] = 0;
                }
                break;
            default:
                for (int s = 0; s < C.concurrency; s++)
                    if (lash_turn_slot(t, s)->used) {
                        lash_turn_exited(t, s, LASH_OUT_OK, "1", 1, now);
                        break;
                    }
            }
        }
        cr_assert_gt(nrows, 100, "seed %d: the walk ran rows", seed);
        lash_turn_free(t);
    }
}

/* ---- the poll ---- */

Test(turn, poll_ticks_drive_and_are_delayed_never_burst)
{
    cfg();
    C.nqueues = 2;
    C.claim_max = 2; /* 4 slots: 2 for each queue */
    lash_turn *t = boot(T0);
    give_none(t, claim_for(0)->cmd, T0);
    give_none(t, claim_for(1)->cmd, T0);
    step(t, T0);
    cr_assert_geq(timer_at, T0 + 360);
    cr_assert_leq(timer_at, T0 + 440, "the poll is armed about poll_ms ahead");
    int64_t at = timer_at;
    lash_turn_tick(t, at - 1); /* early (a spurious wake-up): no drive */
    step(t, at - 1);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0);
    lash_turn_tick(t, at);
    step(t, at);
    cr_assert_eq(count(LASH_ACT_CLAIM), 2, "a poll tick drives every queue");
    cr_assert_eq(claim_for(0)->n, 2);
    cr_assert_eq(claim_for(1)->n, 2);
    give_none(t, claim_for(0)->cmd, at);
    give_none(t, claim_for(1)->cmd, at);
    step(t, at);

    /* The loop was stuck for 10 intervals: one drive, then a fresh interval. */
    int64_t late = at + 10 * C.poll_ms;
    lash_turn_tick(t, late);
    step(t, late);
    cr_assert_eq(count(LASH_ACT_CLAIM), 2, "one drive per queue, not one per missed tick");
    give_none(t, claim_for(0)->cmd, late);
    give_none(t, claim_for(1)->cmd, late);
    step(t, late);
    for (int i = 0; i < 5; i++) {
        lash_turn_tick(t, late);
        step(t, late);
        cr_assert_eq(count(LASH_ACT_CLAIM), 0, "missed ticks are not replayed");
    }
    cr_assert_geq(timer_at, late + 360, "the next poll counts from the late tick");
    cr_assert_leq(timer_at, late + 440);
    lash_turn_free(t);
}

Test(turn, poll_jitter_keeps_intervals_within_ten_percent)
{
    cfg();
    lash_turn *t = boot(T0);
    give_none(t, claim_for(0)->cmd, T0);
    step(t, T0);
    int64_t prev = T0, lo = 1 << 30, hi = 0, sum = 0;
    int ticks = 500;
    for (int i = 0; i < ticks; i++) {
        int64_t at = timer_at;
        int64_t d = at - prev;
        cr_assert_geq(d, C.poll_ms * 9 / 10, "interval %lld", (long long)d);
        cr_assert_leq(d, C.poll_ms * 11 / 10, "interval %lld", (long long)d);
        lo = d < lo ? d : lo;
        hi = d > hi ? d : hi;
        sum += d;
        lash_turn_tick(t, at);
        step(t, at);
        cr_assert_eq(count(LASH_ACT_CLAIM), 1);
        give_none(t, claim_for(0)->cmd, at);
        step(t, at);
        prev = at;
    }
    cr_assert_gt(hi - lo, C.poll_ms / 10, "the intervals are spread, not in lockstep");
    cr_assert_geq(sum / ticks, 380);
    cr_assert_leq(sum / ticks, 420);
    lash_turn_free(t);
}

/* ---- leases ---- */

Test(turn, renew_at_a_third_of_the_lease_batched_per_queue)
{
    cfg();
    C.nqueues = 2;
    lash_turn *t = boot(T0);
    uint32_t c0 = claim_for(0)->cmd, c1 = claim_for(1)->cmd;
    cr_assert_eq(claim_for(1)->n, 0);
    row r[] = {{.id = "a", .fence = 7}, {.id = "b", .fence = 8}};
    give(t, c0, 2, r, 2, T0 + 5); /* claim sent at T0: leases count from there */
    give_none(t, c1, T0 + 5);
    lash_turn_poke(t, 1, T0 + 6);
    step(t, T0 + 6);
    cr_assert_eq(count(LASH_ACT_START), 2);
    const lash_action *c = claim_for(1);
    cr_assert_eq(c->n, 2);
    row s[] = {{.id = "c", .fence = 9}};
    give(t, c->cmd, 1, s, 1, T0 + 8);
    step(t, T0 + 8);
    cr_assert_eq(count(LASH_ACT_START), 1);
    cr_assert_leq(timer_at, T0 + C.lease_ms / 3, "woken no later than the first renew");

    step(t, T0 + 7499);
    cr_assert_eq(count(LASH_ACT_RENEW), 0, "too early");
    step(t, T0 + 7500); /* lease/3 minus lease/12: due soon enough to share the call */
    cr_assert_eq(count(LASH_ACT_RENEW), 1, "queue 0's leases in one call");
    const lash_action *a = nth(LASH_ACT_RENEW, 0);
    cr_assert_eq(a->q, 0);
    cr_assert_eq(a->n, 2);
    cr_assert_str_eq(a->leases[0].id, "a");
    cr_assert_str_eq(a->leases[0].owner, "w1");
    cr_assert_eq(a->leases[0].fence, 7);
    cr_assert_str_eq(a->leases[1].id, "b");
    cr_assert_eq(a->leases[1].fence, 8);
    uint32_t rn = a->cmd;
    step(t, T0 + 7506);
    cr_assert_eq(count(LASH_ACT_RENEW), 1);
    a = nth(LASH_ACT_RENEW, 0);
    cr_assert_eq(a->q, 1);
    cr_assert_eq(a->n, 1);
    cr_assert_str_eq(a->leases[0].id, "c");
    answer(t, rn, 2, LASH_RENEW_OK, T0 + 7510);
    answer(t, a->cmd, 1, LASH_RENEW_OK, T0 + 7510);
    step(t, T0 + 7600);
    cr_assert_eq(count(LASH_ACT_RENEW), 0, "renewed: next in a third of the lease");
    step(t, T0 + 7500 + 7500);
    cr_assert_eq(count(LASH_ACT_RENEW), 1);
    cr_assert_eq(nth(LASH_ACT_RENEW, 0)->n, 2);
    cr_assert_eq(lash_turn_stats(t)->renews_sent, 3);
    lash_turn_free(t);
}

Test(turn, renew_lost_kills_and_records_nothing)
{
    cfg();
    row r[] = {{.id = "a", .fence = 3}, {.id = "b", .fence = 4}};
    lash_turn *t = running(r, 2, T0);
    int64_t now = T0 + C.lease_ms / 3;
    step(t, now);
    const lash_action *a = nth(LASH_ACT_RENEW, 0);
    cr_assert_eq(a->n, 2);
    int st[2] = {LASH_RENEW_LOST, LASH_RENEW_OK};
    lash_turn_replied(t, a->cmd, LASH_OK, st, 2, now + 1);
    step(t, now + 1);
    int sa = slot_of(t, "a");
    cr_assert_eq(count(LASH_ACT_KILL), 1);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->slot, sa);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->sig, SIGTERM);
    cr_assert(lash_turn_slot(t, sa)->lost);
    cr_assert_eq(lash_turn_stats(t)->leases_lost, 1);

    /* It ignores SIGTERM: SIGKILL after kill_grace, and it is never renewed again. */
    lash_turn_tick(t, now + 1 + C.kill_grace_ms - 1);
    step(t, now + 1 + C.kill_grace_ms - 1);
    cr_assert_eq(count(LASH_ACT_KILL), 0);
    lash_turn_tick(t, now + 1 + C.kill_grace_ms);
    step(t, now + 1 + C.kill_grace_ms);
    cr_assert_eq(count(LASH_ACT_KILL), 1);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->sig, SIGKILL);
    now += C.lease_ms / 3;
    step(t, now);
    cr_assert_eq(count(LASH_ACT_RENEW), 1);
    cr_assert_eq(nth(LASH_ACT_RENEW, 0)->n, 1, "the lost lease is not renewed");
    cr_assert_str_eq(nth(LASH_ACT_RENEW, 0)->leases[0].id, "b");

    lash_turn_exited(t, sa, LASH_OUT_OK, "done", 4, now + 2);
    step(t, now + 2);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 0, "a lost lease records nothing");
    cr_assert(logged("lease lost"));
    cr_assert_eq(lash_turn_running(t), 1);
    lash_turn_connected(t, now + 3); /* not even after a reconnect */
    step(t, now + 3);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 0);
    cr_assert_eq(lash_turn_stats(t)->completes_sent, 0);
    lash_turn_free(t);
}

Test(turn, stale_renew_reply_spares_a_reused_slot)
{
    cfg();
    C.concurrency = 1;
    row r[] = {{.id = "a", .fence = 1}};
    lash_turn *t = running(r, 1, T0);
    int64_t now = T0 + C.lease_ms / 3;
    step(t, now);
    const lash_lease *sent = nth(LASH_ACT_RENEW, 0)->leases;
    uint32_t rn = nth(LASH_ACT_RENEW, 0)->cmd;
    lash_turn_exited(t, 0, LASH_OUT_OK, "", 0, now + 1);
    step(t, now + 1);
    answer(t, nth(LASH_ACT_COMPLETE, 0)->cmd, 1, LASH_DONE_RECORDED, now + 2);
    if (!claim_for(0)) { /* the full claim already asked for the next drive */
        lash_turn_poke(t, 0, now + 2);
        step(t, now + 2);
    }
    row s[] = {{.id = "b", .fence = 1}}; /* same fence: every row's first attempt is 1 */
    give(t, claim_for(0)->cmd, 1, s, 1, now + 3);
    step(t, now + 3);
    cr_assert_eq(count(LASH_ACT_START), 1);
    cr_assert_eq(nth(LASH_ACT_START, 0)->slot, 0, "the slot is reused");
    cr_assert_str_eq(sent[0].id, "a", "the renew in flight still names row a");
    answer(t, rn, 1, LASH_RENEW_CANCEL, now + 4); /* the old renew answers late */
    step(t, now + 4);
    cr_assert_eq(count(LASH_ACT_KILL), 0, "a reply about row a must not stop row b");
    cr_assert_not(lash_turn_slot(t, 0)->cancelled);
    lash_turn_exited(t, 0, LASH_OUT_OK, "", 0, now + 5);
    step(t, now + 5);
    cr_assert_eq(nth(LASH_ACT_COMPLETE, 0)->completions[0].outcome, LASH_OUT_OK);
    lash_turn_free(t);
}

/* ---- outcomes ---- */

Test(turn, renew_cancel_kills_and_records_cancelled)
{
    cfg();
    row r[] = {{.id = "a", .fence = 3}};
    lash_turn *t = running(r, 1, T0);
    int64_t now = T0 + C.lease_ms / 3;
    step(t, now);
    answer(t, nth(LASH_ACT_RENEW, 0)->cmd, 1, LASH_RENEW_CANCEL, now);
    step(t, now);
    cr_assert_eq(count(LASH_ACT_KILL), 1);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->sig, SIGTERM);
    lash_turn_exited(t, 0, LASH_OUT_FAIL, "terminated by signal 15", 23, now + 5);
    step(t, now + 5);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 1);
    const lash_completion *c = &nth(LASH_ACT_COMPLETE, 0)->completions[0];
    cr_assert_eq(c->outcome, LASH_OUT_CANCEL);
    cr_assert_str_eq(c->lease.id, "a");
    cr_assert_str_eq(c->lease.owner, "w1");
    cr_assert_eq(c->lease.fence, 3);
    cr_assert_eq(c->retry_ms, 0);
    lash_turn_free(t);
}

Test(turn, cancel_message_kills_the_running_id)
{
    cfg();
    row r[] = {{.id = "a", .fence = 3}, {.id = "b", .fence = 5}};
    lash_turn *t = running(r, 2, T0);
    lash_turn_cancel(t, 0, "nope", T0 + 1);
    lash_turn_cancel(t, 1, "a", T0 + 1); /* another queue's id */
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_KILL), 0);
    lash_turn_cancel(t, 0, "b", T0 + 2);
    step(t, T0 + 2);
    int sb = slot_of(t, "b");
    cr_assert_eq(count(LASH_ACT_KILL), 1);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->slot, sb);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->sig, SIGTERM);
    lash_turn_cancel(t, 0, "b", T0 + 3);
    step(t, T0 + 3);
    cr_assert_eq(count(LASH_ACT_KILL), 0, "asked twice: one kill");
    lash_turn_exited(t, sb, LASH_OUT_FAIL, "terminated", 10, T0 + 4);
    step(t, T0 + 4);
    const lash_action *a = nth(LASH_ACT_COMPLETE, 0);
    cr_assert_not_null(a);
    cr_assert_eq(a->n, 1);
    cr_assert_eq(a->completions[0].outcome, LASH_OUT_CANCEL);
    cr_assert_str_eq(a->completions[0].lease.id, "b");
    cr_assert_eq(a->completions[0].lease.fence, 5);
    lash_turn_free(t);
}

Test(turn, timeout_kills_and_records_a_failure_with_backoff)
{
    cfg();
    row r[] = {
        {.id = "a", .fence = 3, .attempt = 2, .timeout_ms = 5000, .backoff = "exp:1000:60000"},
        {.id = "b", .fence = 4, .timeout_ms = 5000, .backoff = "fixed:250"}};
    lash_turn *t = running(r, 2, T0);
    cr_assert_leq(timer_at, T0 + 5000);
    lash_turn_tick(t, T0 + 4999);
    step(t, T0 + 4999);
    cr_assert_eq(count(LASH_ACT_KILL), 0);
    lash_turn_tick(t, T0 + 5000);
    step(t, T0 + 5000);
    cr_assert_eq(count(LASH_ACT_KILL), 2);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->sig, SIGTERM);
    cr_assert_leq(timer_at, T0 + 5000 + C.kill_grace_ms, "woken for the SIGKILL escalation");
    int sa = slot_of(t, "a"), sb = slot_of(t, "b");
    lash_turn_exited(t, sa, LASH_OUT_FAIL, "boom", 4, T0 + 5001);
    lash_turn_tick(t, T0 + 5000 + C.kill_grace_ms); /* b ignored SIGTERM */
    step(t, T0 + 5000 + C.kill_grace_ms);
    cr_assert_eq(count(LASH_ACT_KILL), 1);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->slot, sb);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->sig, SIGKILL);
    const lash_action *a = nth(LASH_ACT_COMPLETE, 0);
    cr_assert_eq(a->n, 1);
    const lash_completion *c = &a->completions[0];
    cr_assert_eq(c->outcome, LASH_OUT_FAIL);
    cr_assert_eq(c->text_len, strlen("timed out after 5000 ms: boom"));
    cr_assert_eq(memcmp(c->text, "timed out after 5000 ms: boom", c->text_len), 0);
    cr_assert_geq(c->retry_ms, 1000, "attempt 2 of exp:1000: [1000, 2000)");
    cr_assert_lt(c->retry_ms, 2000);
    answer(t, a->cmd, 1, LASH_DONE_RECORDED, T0 + 5000 + C.kill_grace_ms);
    lash_turn_exited(t, sb, LASH_OUT_FAIL, NULL, 0, T0 + 11000);
    step(t, T0 + 11000);
    c = &nth(LASH_ACT_COMPLETE, 0)->completions[0];
    cr_assert_eq(c->outcome, LASH_OUT_FAIL);
    cr_assert_eq(c->text_len, strlen("timed out after 5000 ms"));
    cr_assert_eq(memcmp(c->text, "timed out after 5000 ms", c->text_len), 0);
    cr_assert_eq(c->retry_ms, 250);
    lash_turn_free(t);
}

/* Runs one row on a fresh claim, ends it with outcome o, returns its completion's retry_ms. */
static int64_t retry_of(lash_turn *t, int64_t *now, const row *r, lash_outcome o)
{
    lash_turn_poke(t, 0, *now);
    step(t, *now);
    const lash_action *c = claim_for(0);
    cr_assert_not_null(c);
    give(t, c->cmd, 1, r, 1, *now);
    step(t, *now);
    cr_assert_eq(count(LASH_ACT_START), 1);
    int s = nth(LASH_ACT_START, 0)->slot;
    lash_turn_exited(t, s, o, "x", 1, *now);
    step(t, *now);
    const lash_action *a = nth(LASH_ACT_COMPLETE, 0);
    cr_assert_eq(a->n, 1);
    cr_assert_eq(a->completions[0].outcome, o);
    int64_t ms = a->completions[0].retry_ms;
    answer(t, a->cmd, 1, LASH_DONE_RECORDED, *now);
    *now += 1;
    return ms;
}

Test(turn, failure_retry_delay_within_the_backoff_jitter)
{
    cfg();
    C.concurrency = 2; /* so a one-row claim is short and asks for no more */
    lash_turn *t = boot(T0);
    give_none(t, claim_for(0)->cmd, T0);
    int64_t now = T0 + 1;
    for (int attempt = 1; attempt <= 8; attempt++) {
        int64_t d = 100LL << (attempt - 1);
        if (d > 1000) d = 1000;
        int64_t lo = 1 << 30, hi = -1;
        for (int i = 0; i < 40; i++) {
            row r = {.id = "a", .fence = i + 1, .attempt = attempt, .backoff = "exp:100:1000"};
            int64_t ms = retry_of(t, &now, &r, LASH_OUT_FAIL);
            cr_assert_geq(ms, d / 2, "attempt %d: %lld", attempt, (long long)ms);
            cr_assert_lt(ms, d, "attempt %d: %lld", attempt, (long long)ms);
            lo = ms < lo ? ms : lo;
            hi = ms > hi ? ms : hi;
        }
        cr_assert_gt(hi, lo, "attempt %d: jitter spreads the delays", attempt);
    }
    row f = {.id = "f", .fence = 1, .backoff = "fixed:250"};
    cr_assert_eq(retry_of(t, &now, &f, LASH_OUT_FAIL), 250);
    row dflt = {.id = "g", .fence = 1, .attempt = 1}; /* "": exp:1000:60000 */
    int64_t ms = retry_of(t, &now, &dflt, LASH_OUT_FAIL);
    cr_assert_geq(ms, 500);
    cr_assert_lt(ms, 1000);
    row junk = {.id = "h", .fence = 1, .attempt = 1, .backoff = "nonsense"};
    ms = retry_of(t, &now, &junk, LASH_OUT_FAIL);
    cr_assert_geq(ms, 500, "an unreadable backoff falls back to the default");
    cr_assert_lt(ms, 1000);
    cr_assert_eq(retry_of(t, &now, &f, LASH_OUT_OK), 0, "success has no retry");
    cr_assert_eq(retry_of(t, &now, &f, LASH_OUT_ABORT), 0, "abort has no retry");
    lash_turn_free(t);
}

Test(turn, a_payload_that_is_not_json_never_starts)
{
    cfg();
    lash_turn *t = boot(T0);
    row r[] = {{.id = "bad", .fence = 2, .payload = "{\"a\": tru"},
               {.id = "good", .fence = 3, .payload = "[1, 2]"}};
    give(t, claim_for(0)->cmd, 2, r, 2, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_START), 1);
    cr_assert_str_eq(lash_turn_slot(t, nth(LASH_ACT_START, 0)->slot)->id, "good");
    cr_assert_eq(lash_turn_running(t), 1, "the bad row's slot is free again");
    const lash_action *a = nth(LASH_ACT_COMPLETE, 0);
    cr_assert_not_null(a);
    cr_assert_eq(a->n, 1);
    cr_assert_str_eq(a->completions[0].lease.id, "bad");
    cr_assert_eq(a->completions[0].lease.fence, 2);
    cr_assert_eq(a->completions[0].outcome, LASH_OUT_ABORT, "no retry can fix the input");
    cr_assert_eq(strncmp(a->completions[0].text, "bad row:", 8), 0);
    lash_turn_free(t);
}

Test(turn, completions_are_batched_per_queue)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 2}, {.id = "c", .fence = 3}};
    lash_turn *t = running(r, 3, T0);
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "ra", 2, T0 + 1);
    lash_turn_exited(t, slot_of(t, "c"), LASH_OUT_FAIL, "ec", 2, T0 + 2);
    lash_turn_exited(t, slot_of(t, "b"), LASH_OUT_OK, "rb", 2, T0 + 3);
    lash_turn_exited(t, 3, LASH_OUT_OK, "", 0, T0 + 3);  /* a free slot: ignored */
    lash_turn_exited(t, 99, LASH_OUT_OK, "", 0, T0 + 3); /* no such slot */
    cr_assert_eq(lash_turn_running(t), 0);
    step(t, T0 + 3);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 1, "three exits, one call");
    const lash_action *a = nth(LASH_ACT_COMPLETE, 0);
    cr_assert_eq(a->n, 3);
    cr_assert_str_eq(a->completions[0].lease.id, "a");
    cr_assert_eq(a->completions[0].text_len, 2);
    cr_assert_eq(memcmp(a->completions[0].text, "ra", 2), 0);
    cr_assert_str_eq(a->completions[1].lease.id, "c");
    cr_assert_eq(a->completions[1].outcome, LASH_OUT_FAIL);
    cr_assert_str_eq(a->completions[2].lease.id, "b");
    cr_assert_eq(a->completions[2].lease.fence, 2);
    int st[3] = {LASH_DONE_RECORDED, LASH_DONE_ALREADY, LASH_DONE_STALE};
    lash_turn_replied(t, a->cmd, LASH_OK, st, 3, T0 + 4);
    cr_assert_eq(lash_turn_stats(t)->rows_recorded, 2);
    cr_assert_eq(lash_turn_stats(t)->rows_stale, 1);
    step(t, T0 + 5);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 0, "acknowledged: not sent again");
    lash_turn_free(t);
}

Test(turn, a_failed_command_is_retried)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 2}};
    lash_turn *t = running(r, 2, T0);
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "ra", 2, T0 + 1);
    step(t, T0 + 1);
    const lash_action *a = nth(LASH_ACT_COMPLETE, 0);
    lash_turn_replied(t, a->cmd, LASH_EIO, NULL, 0, T0 + 2);
    step(t, T0 + 2);
    a = nth(LASH_ACT_COMPLETE, 0);
    cr_assert_not_null(a, "a complete that failed goes out again");
    cr_assert_str_eq(a->completions[0].lease.id, "a");
    cr_assert_eq(memcmp(a->completions[0].text, "ra", 2), 0);
    answer(t, a->cmd, 1, LASH_DONE_RECORDED, T0 + 3);

    int64_t now = T0 + C.lease_ms / 3;
    step(t, now);
    a = nth(LASH_ACT_RENEW, 0);
    cr_assert_not_null(a);
    lash_turn_replied(t, a->cmd, LASH_EIO, NULL, 0, now + 1);
    step(t, now + 1);
    cr_assert_eq(count(LASH_ACT_RENEW), 1, "a renew that failed goes out again");

    lash_turn_poke(t, 0, now + 2);
    step(t, now + 2);
    a = claim_for(0);
    lash_claim_batch b = {0};
    lash_turn_claimed(t, a->cmd, LASH_EIO, &b, now + 3);
    step(t, now + 3);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "a failed claim waits for the next tick");
    cr_assert(logged("claim failed"));
    lash_turn_tick(t, now + 4); /* the poll (overdue by now) */
    step(t, now + 4);
    cr_assert_eq(count(LASH_ACT_CLAIM), 1);
    cr_assert_eq(claim_for(0)->n, 3, "its reserved slots came back");
    lash_turn_free(t);
}

/* ---- the connection ---- */

Test(turn, no_reply_in_time_drops_the_connection)
{
    cfg();
    lash_turn *t = boot(T0);
    cr_assert_eq(count(LASH_ACT_CLAIM), 1);
    int64_t now = T0;
    /* Poll ticks come and go while the claim is unanswered. */
    while (timer_at < T0 + C.reply_timeout_ms) {
        now = timer_at;
        lash_turn_tick(t, now);
        step(t, now);
        cr_assert_eq(count(LASH_ACT_DISCONNECT), 0);
    }
    cr_assert_eq(timer_at, T0 + C.reply_timeout_ms, "woken when the reply is overdue");
    lash_turn_tick(t, timer_at);
    step(t, timer_at);
    cr_assert_eq(count(LASH_ACT_DISCONNECT), 1);
    cr_assert(logged("no reply"));
    cr_assert_not(lash_turn_connected_now(t));
    lash_turn_free(t);
}

Test(turn, reconnect_backs_off_and_resends_what_was_in_flight)
{
    cfg();
    C.reconnect_min_ms = 100;
    C.reconnect_max_ms = 1000;
    row r[] = {{.id = "a", .fence = 11}, {.id = "b", .fence = 12}};
    lash_turn *t = running(r, 2, T0);
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "ra", 2, T0 + 1);
    lash_turn_poke(t, 0, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 1);
    cr_assert_eq(claim_for(0)->n, 3);
    uint32_t old_claim = claim_for(0)->cmd;

    int64_t now = T0 + 2;
    lash_turn_disconnected(t, now); /* the shell saw the connection drop */
    step(t, now);
    cr_assert(logged("connection lost"));
    cr_assert_eq(count(LASH_ACT_CLAIM) + count(LASH_ACT_COMPLETE) + count(LASH_ACT_RENEW), 0);
    cr_assert_eq(lash_turn_stats(t)->reconnects, 1);

    /* Failed attempts: delay in [b/2, b], b doubling from 100 and capped at 1000. */
    int64_t b = 100;
    for (int i = 0; i < 8; i++) {
        cr_assert_geq(timer_at, now + b / 2, "attempt %d: %lld", i, (long long)(timer_at - now));
        cr_assert_leq(timer_at, now + b, "attempt %d: %lld", i, (long long)(timer_at - now));
        lash_turn_tick(t, timer_at - 1);
        step(t, timer_at - 1);
        cr_assert_eq(count(LASH_ACT_CONNECT), 0);
        now = timer_at;
        lash_turn_tick(t, now);
        step(t, now);
        cr_assert_eq(count(LASH_ACT_CONNECT), 1);
        now += 3;
        lash_turn_disconnected(t, now); /* refused */
        step(t, now);
        b = b * 2 > 1000 ? 1000 : b * 2;
    }
    cr_assert_eq(b, 1000);
    now = timer_at;
    lash_turn_tick(t, now);
    step(t, now);
    cr_assert_eq(count(LASH_ACT_CONNECT), 1);
    lash_turn_connected(t, now + 1);
    step(t, now + 1);
    const lash_action *a = nth(LASH_ACT_COMPLETE, 0);
    cr_assert_not_null(a, "the unacknowledged complete goes out again");
    cr_assert_eq(a->n, 1);
    cr_assert_str_eq(a->completions[0].lease.id, "a");
    cr_assert_eq(a->completions[0].lease.fence, 11);
    cr_assert_eq(a->completions[0].outcome, LASH_OUT_OK);
    cr_assert_eq(memcmp(a->completions[0].text, "ra", 2), 0);
    cr_assert_eq(count(LASH_ACT_RENEW), 1, "leases are renewed at once after a reconnect");
    cr_assert_str_eq(nth(LASH_ACT_RENEW, 0)->leases[0].id, "b");
    cr_assert_eq(claim_for(0)->n, 3, "the lost claim's reserved slots are free again");

    /* The old claim's reply, if the shell ever delivers it, is dropped (and freed). */
    row late[] = {{.id = "z", .fence = 1}};
    give(t, old_claim, 1, late, 1, now + 2);
    step(t, now + 2);
    cr_assert_eq(count(LASH_ACT_START), 0);

    /* Connected again: the backoff starts over. */
    lash_turn_disconnected(t, now + 5);
    step(t, now + 5);
    cr_assert_leq(timer_at, now + 5 + 100);
    lash_turn_free(t);
}

Test(turn, lease_runs_out_while_disconnected)
{
    cfg();
    C.reconnect_max_ms = 2000;
    row r[] = {{.id = "a", .fence = 1}};
    lash_turn *t = running(r, 1, T0);
    int64_t until = T0 + C.lease_ms, now = T0 + 100;
    lash_turn_disconnected(t, now);
    step(t, now);
    bool killed = false;
    for (int i = 0; i < 200 && !killed; i++) {
        cr_assert_leq(timer_at, until, "woken by the lease's end at the latest");
        now = timer_at;
        lash_turn_tick(t, now);
        step(t, now);
        if (count(LASH_ACT_KILL)) {
            killed = true;
            cr_assert_eq(now, until);
            cr_assert_eq(nth(LASH_ACT_KILL, 0)->sig, SIGTERM);
        }
        if (count(LASH_ACT_CONNECT)) lash_turn_disconnected(t, now); /* Redis still away */
        if (count(LASH_ACT_DISCONNECT)) lash_turn_disconnected(t, now);
        step(t, now);
    }
    cr_assert(killed);
    cr_assert(lash_turn_slot(t, 0)->lost);
    lash_turn_exited(t, 0, LASH_OUT_OK, "r", 1, now + 1);
    lash_turn_connected(t, now + 2);
    step(t, now + 2);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 0, "someone else may own it: nothing recorded");
    cr_assert_eq(count(LASH_ACT_RENEW), 0);
    lash_turn_free(t);
}

/* ---- shutdown ---- */

Test(turn, shutdown_drains_then_releases_then_exits)
{
    cfg();
    C.concurrency = 3;
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 2}};
    lash_turn *t = running(r, 2, T0);
    int64_t now = T0 + 10;
    lash_turn_shutdown(t, now);
    step(t, now);
    cr_assert_eq(count(LASH_ACT_KILL), 0, "running processes get the grace period");
    cr_assert_eq(count(LASH_ACT_EXIT), 0);
    lash_turn_poke(t, 0, now + 1);
    lash_turn_tick(t, now + 1000);
    step(t, now + 1000);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "no more claims");
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "ra", 2, now + 2000);
    step(t, now + 2000);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 1, "finished within the grace: recorded");
    answer(t, nth(LASH_ACT_COMPLETE, 0)->cmd, 1, LASH_DONE_RECORDED, now + 2001);
    step(t, now + 2001);
    cr_assert_eq(count(LASH_ACT_EXIT), 0, "b still runs");
    cr_assert_leq(timer_at, now + C.grace_ms);

    int64_t g = now + C.grace_ms;
    lash_turn_tick(t, g);
    step(t, g);
    int sb = slot_of(t, "b");
    cr_assert_eq(count(LASH_ACT_KILL), 1);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->slot, sb);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->sig, SIGTERM);
    if (count(LASH_ACT_RENEW)) /* renews go on while draining; Redis answers them */
        answer(t, nth(LASH_ACT_RENEW, 0)->cmd, 1, LASH_RENEW_OK, g);
    cr_assert_gt(timer_at, g, "the timer moves on (no busy loop once the grace is over)");
    cr_assert_leq(timer_at, g + C.kill_grace_ms);
    for (int i = 0; i < 3 && timer_at < g + C.kill_grace_ms; i++) {
        int64_t at = timer_at;
        lash_turn_tick(t, at);
        step(t, at);
        cr_assert_gt(timer_at, at, "busy loop at %lld", (long long)at);
    }
    lash_turn_tick(t, g + C.kill_grace_ms);
    step(t, g + C.kill_grace_ms);
    cr_assert_eq(count(LASH_ACT_KILL), 1);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->sig, SIGKILL);
    lash_turn_exited(t, sb, LASH_OUT_FAIL, "killed", 6, g + C.kill_grace_ms + 1);
    step(t, g + C.kill_grace_ms + 1);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 0, "killed by shutdown: not a failure");
    cr_assert_eq(count(LASH_ACT_RELEASE), 1);
    const lash_action *a = nth(LASH_ACT_RELEASE, 0);
    cr_assert_eq(a->n, 1);
    cr_assert_str_eq(a->leases[0].id, "b");
    cr_assert_eq(a->leases[0].fence, 2);
    cr_assert_str_eq(a->leases[0].owner, "w1");
    cr_assert_eq(count(LASH_ACT_EXIT), 0, "not before the release is acknowledged");
    answer(t, a->cmd, 1, 1, g + C.kill_grace_ms + 2);
    drain(t);
    cr_assert_eq(count(LASH_ACT_EXIT), 1);
    cr_assert_eq(nth(LASH_ACT_EXIT, 0)->code, 0);
    lash_turn_poke(t, 0, g + C.kill_grace_ms + 3);
    lash_turn_tick(t, g + C.kill_grace_ms + 3);
    step(t, g + C.kill_grace_ms + 3);
    cr_assert_eq(count(LASH_ACT_EXIT) + count(LASH_ACT_CLAIM) + count(LASH_ACT_TIMER), 0);
    lash_turn_free(t);
}

Test(turn, shutdown_with_nothing_running_exits_at_once)
{
    cfg();
    lash_turn *t = boot(T0);
    give_none(t, claim_for(0)->cmd, T0);
    lash_turn_shutdown(t, T0 + 1);
    drain(t);
    cr_assert_eq(count(LASH_ACT_EXIT), 1);
    cr_assert_eq(nth(LASH_ACT_EXIT, 0)->code, 0);
    lash_turn_free(t);

    t = lash_turn_new(&C, "w1"); /* Redis never came: nothing to hand back either */
    lash_turn_start(t, T0);
    lash_turn_shutdown(t, T0 + 1);
    drain(t);
    cr_assert_eq(count(LASH_ACT_EXIT), 1);
    lash_turn_free(t);
}

Test(turn, second_shutdown_kills_at_once)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}};
    lash_turn *t = running(r, 1, T0);
    lash_turn_shutdown(t, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_KILL), 0);
    lash_turn_shutdown(t, T0 + 2); /* the operator insists: no more waiting */
    step(t, T0 + 2);
    cr_assert_eq(count(LASH_ACT_KILL), 1);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->sig, SIGKILL);
    cr_assert_gt(timer_at, T0 + 2, "no busy loop");
    lash_turn_shutdown(t, T0 + 3);
    step(t, T0 + 3);
    cr_assert_eq(count(LASH_ACT_KILL), 0, "SIGKILL is sent once");
    lash_turn_exited(t, 0, LASH_OUT_FAIL, "killed", 6, T0 + 4);
    step(t, T0 + 4);
    cr_assert_eq(count(LASH_ACT_RELEASE), 1);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 0);
    lash_turn_free(t);
}

/* Rows a claim in flight brings back after shutdown began are leased to us:
 * they must be handed back, not left to expire (each would cost an attempt). */
Test(turn, shutdown_releases_what_a_claim_in_flight_brings)
{
    cfg();
    lash_turn *t = boot(T0);
    uint32_t c = claim_for(0)->cmd;
    lash_turn_shutdown(t, T0 + 1);
    drain(t);
    cr_assert_eq(count(LASH_ACT_EXIT), 0, "a claim in flight may hold leases");
    row r[] = {{.id = "a", .fence = 4}, {.id = "b", .fence = 5}};
    give(t, c, 2, r, 2, T0 + 2);
    step(t, T0 + 2);
    cr_assert_eq(count(LASH_ACT_START), 0);
    const lash_action *a = nth(LASH_ACT_RELEASE, 0);
    cr_assert_not_null(a);
    cr_assert_eq(a->n, 2);
    cr_assert_str_eq(a->leases[1].id, "b");
    cr_assert_eq(a->leases[1].fence, 5);
    cr_assert_eq(count(LASH_ACT_EXIT), 0);
    answer(t, a->cmd, 2, 1, T0 + 3);
    drain(t);
    cr_assert_eq(count(LASH_ACT_EXIT), 1);
    lash_turn_free(t);

    /* ...but a heartbeat claim (no rows asked) is not waited for. */
    cfg();
    C.concurrency = 1;
    row s[] = {{.id = "a", .fence = 4}};
    t = running(s, 1, T0);
    lash_turn_tick(t, timer_at);
    step(t, timer_at);
    cr_assert_eq(claim_for(0)->n, 0);
    lash_turn_exited(t, 0, LASH_OUT_OK, "", 0, timer_at);
    step(t, timer_at);
    answer(t, nth(LASH_ACT_COMPLETE, 0)->cmd, 1, 1, timer_at);
    lash_turn_shutdown(t, timer_at);
    drain(t);
    cr_assert_eq(count(LASH_ACT_EXIT), 1);
    lash_turn_free(t);
}

Test(turn, shutdown_gives_up_at_the_hard_deadline)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}};
    lash_turn *t = running(r, 1, T0);
    lash_turn_shutdown(t, T0);
    lash_turn_exited(t, 0, LASH_OUT_OK, "", 0, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 1);
    lash_turn_disconnected(t, T0 + 2); /* and Redis never comes back */
    step(t, T0 + 2);
    int64_t now = T0 + 2;
    int i;
    for (i = 0; i < 1000 && !count(LASH_ACT_EXIT); i++) {
        cr_assert_gt(timer_at, now, "busy loop at %lld", (long long)now);
        now = timer_at;
        lash_turn_tick(t, now);
        step(t, now);
        if (count(LASH_ACT_CONNECT)) {
            lash_turn_disconnected(t, now);
            step(t, now);
        }
    }
    cr_assert_eq(count(LASH_ACT_EXIT), 1);
    cr_assert(logged("shutdown deadline"));
    cr_assert_eq(now, T0 + C.grace_ms + C.kill_grace_ms + 2 * C.reply_timeout_ms);
    lash_turn_free(t);
}

/* ==== part 2: a fleet against an in-memory registry ========================== */

/* The model keeps each row as the Lua scripts do (state, attempt, fence, owner,
 * the lease key with its expiry, the due score, the cancel flag) and applies
 * claim, renew, complete, release and cancel with the same rules, on the
 * simulated clock. Around it, the harness plays each machine's shell: commands
 * travel with latency, processes run for random durations, and faults are
 * injected from a seeded PRNG. Every rule a machine must keep is checked where
 * it acts (a START, KILL, CLAIM, COMPLETE or RELEASE); every rule of the whole
 * is checked at the end. */

#define SIM_Q 2
#define SIM_M 4
#define SIM_SLOTS 8
#define SIM_FENCES 128
#define SIM_LEASE 3000

typedef enum {
    M_UNSUBMITTED,
    M_PENDING,
    M_RUNNING,
    M_COMPLETED,
    M_FAILED,
    M_CANCELLED,
    M_ABANDONED
} mstate;

typedef struct {
    char id[16];
    int q;
    mstate state;
    int attempt, max_attempts;
    int64_t fence;
    char owner[32];
    bool leased; /* lash:{q}:lease:<id>, live while lexp > now */
    char lowner[32];
    int64_t lfence, lexp;
    bool in_due;
    int64_t due;
    bool cancel, abandon, bad_payload;
    int64_t timeout_ms, delay_ms;
    const char *backoff;
    /* the audit */
    int terminal;                   /* times the row became terminal */
    int ok_records;                 /* accepted completes that recorded 'completed' */
    int64_t last_accepted;          /* fence of the last accepted complete or release */
    int started_by[SIM_FENCES];     /* machine instance that started fence f */
    int delivered_to[SIM_FENCES];   /* instance a claim reply granting f reached */
    signed char exited[SIM_FENCES]; /* 1 + the process' own outcome */
    bool lost[SIM_FENCES];          /* a renew said "lost" while its process ran */
    bool gaveup[SIM_FENCES];        /* its machine gave the lease up (lost) */
} mrow;

typedef enum { F_NONE, F_ERROR, F_LOST_REQUEST, F_LOST_REPLY } cmd_fault;

typedef struct {
    int m, gen;
    uint64_t conn;
    lash_action_kind kind;
    uint32_t id;
    int q, n;
    const lash_lease *leases; /* the machine's memory, valid while open */
    const lash_completion *comps;
    cmd_fault fault;
    bool open, arrived;
    lash_claim_batch batch;
    int *status;
} scmd;

typedef struct {
    bool running, ignore_term;
    int row;
    int64_t fence, exit_at;
    uint64_t seq;
    lash_outcome out;
    const char *text;
} sproc;

typedef struct {
    lash_turn *t;
    lash_turn_config c;
    int gen, inst;
    char owner[32];
    bool alive, up, exiting, draining, hard_exit;
    int64_t frozen_until; /* stopped (SIGSTOP, a swap storm): events wait till then */
    uint64_t conn, timer_seq;
    int64_t timer_at, last_tick;
    int same_tick;
    sproc p[SIM_SLOTS];
    int running, claim_out;
    uint32_t claim_q[SIM_Q];
    int claim_n[SIM_Q];
    uint64_t starts;
} smach;

typedef enum {
    EV_SUBMIT,
    EV_TIMER,
    EV_CONNECT,
    EV_ARRIVE,
    EV_REPLY,
    EV_EXIT,
    EV_POKE,
    EV_CANCELMSG,
    EV_FAULT,
    EV_SHUTDOWN,
    EV_RESTART,
    EV_REDIS_UP,
} evkind;

typedef struct {
    int64_t at;
    uint64_t seq;
    evkind kind;
    int m, gen, a;
    uint64_t tag;
    scmd *cmd;
} event;

typedef struct {
    /* the fault profile */
    double poke_drop, cmd_error, renew_error, lost_request, lost_reply, conn_fail, conn_hang;
    double p_disconnect, p_crash, p_shutdown, p_outage, p_cancel, p_freeze, p_steal;
    int nrows, nqueues;
} profile;

typedef struct {
    uint64_t pokes, pokes_dropped, errors, lost_requests, lost_replies, conn_fails, conn_hangs;
    uint64_t disconnects, reply_timeouts, crashes, shutdowns, second_shutdowns, graceful_exits,
        hard_exits, outages, op_cancels, cancel_msgs, starts, kills, claims, renews, completes,
        releases, freezes, postponed, steals, cancel_reruns;
    uint64_t accepted, stale, already, released, renew_lost, leases_expired, timed_out;
    uint64_t ended[M_ABANDONED + 1];
} scount;

static struct {
    profile p;
    uint64_t rng;
    int64_t now;
    event *heap;
    size_t nheap, capheap;
    uint64_t seq, steps;
    mrow *rows;
    int nrows, terminal;
    smach m[SIM_M];
    scmd **cmds;
    size_t ncmds, capcmds;
    bool redis_up;
    int insts;
    scount k;
} S;

static uint64_t rnd64(void)
{
    /* splitmix64: every seed gives a different, reproducible run */
    uint64_t z = (S.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unif(void)
{
    return (double)(rnd64() >> 11) / 9007199254740992.0;
}

static bool chance(double p)
{
    return unif() < p;
}

static int64_t between(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd64() % (uint64_t)(hi - lo + 1));
}

/* ---- the event queue (a binary heap on time, then insertion order) ---- */

static bool ev_before(const event *a, const event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void ev_push(event e)
{
    if (S.nheap == S.capheap) {
        S.capheap = S.capheap ? S.capheap * 2 : 1024;
        S.heap = realloc(S.heap, S.capheap * sizeof *S.heap);
        cr_assert_not_null(S.heap);
    }
    e.seq = S.seq++;
    if (e.at < S.now) e.at = S.now;
    size_t i = S.nheap++;
    while (i > 0 && ev_before(&e, &S.heap[(i - 1) / 2])) {
        S.heap[i] = S.heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    S.heap[i] = e;
}

static event ev_pop(void)
{
    event top = S.heap[0], last = S.heap[--S.nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= S.nheap) break;
        if (c + 1 < S.nheap && ev_before(&S.heap[c + 1], &S.heap[c])) c++;
        if (!ev_before(&S.heap[c], &last)) break;
        S.heap[i] = S.heap[c];
        i = c;
    }
    if (S.nheap) S.heap[i] = last;
    return top;
}

static void at(int64_t when, evkind kind, int m, int gen, int a, uint64_t tag, scmd *cmd)
{
    ev_push((event){.at = when, .kind = kind, .m = m, .gen = gen, .a = a, .tag = tag, .cmd = cmd});
}

/* ---- the model: the Lua scripts' rules ---- */

static mrow *row_by_id(const char *id)
{
    cr_assert_eq(id[0], 'r', "unknown id %s", id);
    int i = atoi(id + 1);
    cr_assert(i >= 0 && i < S.nrows, "unknown id %s", id);
    return &S.rows[i];
}

static bool live_lease(const mrow *r)
{
    return r->leased && r->lexp > S.now;
}

static bool holds(const mrow *r, const char *owner, int64_t fence)
{
    return live_lease(r) && r->lfence == fence && strcmp(r->lowner, owner) == 0;
}

static void m_finish(mrow *r, mstate st)
{
    cr_assert(r->state == M_PENDING || r->state == M_RUNNING, "%s: terminal twice", r->id);
    r->state = st;
    r->in_due = false;
    r->leased = false;
    r->terminal++;
    S.terminal++;
    S.k.ended[st]++;
}

static void publish_poke(int q);
static void publish_cancel(int row);

static void m_claim(int q, const char *owner, int n, int64_t ttl, lash_claim_batch *b)
{
    memset(b, 0, sizeof *b);
    b->rows = calloc((size_t)(n > 0 ? n : 1), sizeof *b->rows);
    cr_assert_not_null(b->rows);
    if (n <= 0) return;
    /* ZRANGEBYSCORE due -inf now LIMIT 0 n: the n smallest (score, id) that are due */
    int pick[SIM_SLOTS * 2], np = 0;
    cr_assert_leq(n, SIM_SLOTS);
    for (int i = 0; i < S.nrows; i++) {
        const mrow *r = &S.rows[i];
        if (r->q != q || !r->in_due || r->due > S.now) continue;
        int j = np < n ? np++ : n;
        if (j == n && !(r->due < S.rows[pick[n - 1]].due)) continue;
        if (j == n) j = n - 1;
        while (j > 0 && r->due < S.rows[pick[j - 1]].due) {
            pick[j] = pick[j - 1];
            j--;
        }
        pick[j] = i;
    }
    b->seen = (size_t)np;
    for (int k = 0; k < np; k++) {
        mrow *r = &S.rows[pick[k]];
        if (r->state == M_RUNNING) {
            if (live_lease(r)) { /* the score lagged a renew: rescored, skipped */
                r->due = r->lexp;
                continue;
            }
            /* the lease ran out: whoever held it is gone or cut off */
            S.k.leases_expired++;
            if (r->cancel || r->abandon || r->attempt >= r->max_attempts) {
                r->fence++; /* the lost owner's late complete hears "stale" */
                m_finish(r, r->cancel ? M_CANCELLED : r->abandon ? M_ABANDONED : M_FAILED);
                continue;
            }
        } else {
            cr_assert_eq(r->state, M_PENDING);
            cr_assert_not(live_lease(r), "%s: pending with a live lease", r->id);
        }
        r->fence++;
        r->attempt++;
        r->state = M_RUNNING;
        r->leased = true;
        snprintf(r->lowner, sizeof r->lowner, "%s", owner);
        snprintf(r->owner, sizeof r->owner, "%s", owner);
        r->lfence = r->fence;
        r->lexp = S.now + ttl;
        r->due = S.now + ttl;
        cr_assert_lt(r->fence, SIM_FENCES, "%s: too many fences", r->id);
        lash_claimed *c = &b->rows[b->n++];
        snprintf(c->id, sizeof c->id, "%s", r->id);
        snprintf(c->kind, sizeof c->kind, "k");
        c->payload = strdup(r->bad_payload ? "{\"i\": " : "{\"i\": 1}");
        c->payload_len = strlen(c->payload);
        c->attempt = r->attempt;
        c->max_attempts = r->max_attempts;
        c->fence = r->fence;
        c->timeout_ms = r->timeout_ms;
        snprintf(c->backoff, sizeof c->backoff, "%s", r->backoff);
    }
}

static void m_renew(const lash_lease *l, int n, int64_t ttl, int *status)
{
    for (int i = 0; i < n; i++) {
        mrow *r = row_by_id(l[i].id);
        if (holds(r, l[i].owner, l[i].fence)) {
            r->lexp = S.now + ttl;
            if (r->in_due) r->due = S.now + ttl;
            status[i] = r->cancel ? LASH_RENEW_CANCEL : LASH_RENEW_OK;
        } else {
            status[i] = LASH_RENEW_LOST;
            S.k.renew_lost++;
        }
    }
}

static void accept(mrow *r, int64_t fence)
{
    cr_assert_eq(fence, r->fence, "%s: a stale fence %lld was accepted (row at %lld)", r->id,
                 (long long)fence, (long long)r->fence);
    cr_assert_gt(fence, r->last_accepted, "%s: fence %lld recorded twice", r->id, (long long)fence);
    r->last_accepted = fence;
}

static int already(const mrow *r, const char *owner, int64_t fence)
{
    return r->state != M_RUNNING && strcmp(r->owner, owner) == 0 && r->fence == fence
               ? LASH_DONE_ALREADY
               : LASH_DONE_STALE;
}

static void m_complete(const lash_completion *c, int n, int *status)
{
    for (int i = 0; i < n; i++) {
        mrow *r = row_by_id(c[i].lease.id);
        if (!holds(r, c[i].lease.owner, c[i].lease.fence)) {
            status[i] = already(r, c[i].lease.owner, c[i].lease.fence);
            S.k.stale += status[i] == LASH_DONE_STALE;
            S.k.already += status[i] == LASH_DONE_ALREADY;
            continue;
        }
        accept(r, c[i].lease.fence);
        S.k.accepted++;
        status[i] = LASH_DONE_RECORDED;
        if (c[i].outcome == LASH_OUT_FAIL && c[i].text_len >= 9 &&
            memcmp(c[i].text, "timed out", 9) == 0)
            S.k.timed_out++;
        if (c[i].outcome == LASH_OUT_OK) {
            r->ok_records++;
            m_finish(r, M_COMPLETED);
        } else if (c[i].outcome == LASH_OUT_CANCEL || r->cancel) {
            m_finish(r, M_CANCELLED);
        } else if (c[i].outcome == LASH_OUT_FAIL && r->attempt < r->max_attempts) {
            r->state = M_PENDING;
            r->leased = false;
            r->due = S.now + c[i].retry_ms;
        } else {
            m_finish(r, M_FAILED);
        }
    }
}

static void m_release(const lash_lease *l, int n, int *status)
{
    bool poke[SIM_Q] = {false};
    for (int i = 0; i < n; i++) {
        mrow *r = row_by_id(l[i].id);
        if (!holds(r, l[i].owner, l[i].fence)) {
            status[i] = 0;
            continue;
        }
        accept(r, l[i].fence);
        S.k.released++;
        r->leased = false;
        r->state = M_PENDING;
        r->attempt--; /* handed back, not spent */
        r->due = S.now;
        poke[r->q] = true;
        status[i] = 1;
    }
    for (int q = 0; q < SIM_Q; q++)
        if (poke[q]) publish_poke(q);
}

static void m_cancel(mrow *r)
{
    if (r->state == M_PENDING) {
        m_finish(r, M_CANCELLED);
    } else if (r->state == M_RUNNING) {
        r->cancel = true;
        publish_cancel((int)(r - S.rows));
    }
}

/* ---- the shells ---- */

static void act(int mi, const lash_action *a);

static void drain_m(int mi);

/* One loop iteration of machine mi: flush, then carry out every action. */
static void iterate(int mi)
{
    smach *M = &S.m[mi];
    if (!M->alive) return;
    lash_turn_flush(M->t, S.now);
    drain_m(mi);
    if (M->alive) /* no process forgotten, none imagined */
        cr_assert_eq(lash_turn_running(M->t), M->running, "%s: %d slots used, %d running", M->owner,
                     lash_turn_running(M->t), M->running);
}

static void restart_later(int mi)
{
    at(S.now + between(50, 1000), EV_RESTART, mi, S.m[mi].gen, 0, 0, NULL);
}

/* The instance is gone: a crash (graceful false) or its EXIT. */
static void end_instance(int mi, bool graceful)
{
    smach *M = &S.m[mi];
    if (graceful && !M->hard_exit) {
        S.k.graceful_exits++;
        cr_assert_eq(M->running, 0, "%s exited with processes running", M->owner);
        /* "SIGTERM drains: no lease left": every lease it was told about is
         * recorded or released (a lease it gave up as lost may outlive its
         * estimate by the one-way latency; one it never heard of just expires). */
        for (int i = 0; i < S.nrows; i++) {
            const mrow *r = &S.rows[i];
            if (r->leased && r->lexp > S.now + 5 && strcmp(r->lowner, M->owner) == 0 &&
                r->delivered_to[r->lfence] == M->inst && !r->gaveup[r->lfence])
                cr_assert_fail("%s exited holding the lease of %s fence %lld", M->owner, r->id,
                               (long long)r->lfence);
        }
    }
    S.k.hard_exits += graceful && M->hard_exit;
    lash_turn_free(M->t);
    M->t = NULL;
    M->alive = false;
    M->up = false;
    M->running = 0;
    memset(M->p, 0, sizeof M->p);
    restart_later(mi);
}

static void drain_m(int mi)
{
    smach *M = &S.m[mi];
    lash_action a;
    while (M->alive && !M->exiting && lash_turn_next(M->t, &a))
        act(mi, &a);
    if (M->alive && M->exiting) end_instance(mi, true);
}

static void start_instance(int mi)
{
    smach *M = &S.m[mi];
    M->gen++;
    M->inst = ++S.insts;
    snprintf(M->owner, sizeof M->owner, "w%d-%d", mi, M->gen);
    M->c.seed = rnd64() | 1;
    M->t = lash_turn_new(&M->c, M->owner);
    M->alive = true;
    M->up = M->exiting = M->draining = M->hard_exit = false;
    M->conn++;
    M->timer_seq++;
    M->running = M->claim_out = 0;
    memset(M->claim_q, 0, sizeof M->claim_q);
    memset(M->p, 0, sizeof M->p);
    lash_turn_start(M->t, S.now);
    iterate(mi);
}

static bool same(const smach *M, int gen, uint64_t conn)
{
    return M->alive && M->gen == gen && M->conn == conn;
}

static void execute(scmd *c)
{
    smach *M = &S.m[c->m];
    c->arrived = true;
    switch (c->kind) {
    case LASH_ACT_CLAIM:
        m_claim(c->q, M->owner, c->n, M->c.lease_ms, &c->batch);
        break;
    case LASH_ACT_RENEW:
        c->status = calloc((size_t)c->n, sizeof *c->status);
        m_renew(c->leases, c->n, M->c.lease_ms, c->status);
        break;
    case LASH_ACT_COMPLETE:
        c->status = calloc((size_t)c->n, sizeof *c->status);
        m_complete(c->comps, c->n, c->status);
        break;
    default:
        c->status = calloc((size_t)c->n, sizeof *c->status);
        m_release(c->leases, c->n, c->status);
        break;
    }
}

/* The connection of machine mi breaks: commands not yet at the server may or
 * may not have run there; waiting callbacks may fire with an error (hiredis
 * does on a close) or not at all. The shell then tells the machine. */
static void drop_conn(int mi)
{
    smach *M = &S.m[mi];
    for (size_t i = 0; i < S.ncmds; i++) {
        scmd *c = S.cmds[i];
        if (!c->open || !same(M, c->gen, c->conn)) continue;
        if (!c->arrived && c->fault == F_NONE && chance(0.5)) execute(c);
        c->open = false;
        if (chance(0.5)) {
            if (c->kind == LASH_ACT_CLAIM) {
                lash_claim_batch none = {0};
                lash_turn_claimed(M->t, c->id, LASH_EIO, &none, S.now);
            } else {
                lash_turn_replied(M->t, c->id, LASH_EIO, NULL, 0, S.now);
            }
        }
    }
    M->conn++;
    M->up = false;
    M->claim_out = 0;
    memset(M->claim_q, 0, sizeof M->claim_q);
}

static void send_cmd(int mi, const lash_action *a)
{
    smach *M = &S.m[mi];
    cr_assert(M->up, "%s sent a command while not connected", M->owner);
    scmd *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    *c = (scmd){.m = mi,
                .gen = M->gen,
                .conn = M->conn,
                .kind = a->kind,
                .id = a->cmd,
                .q = a->q,
                .n = a->n,
                .leases = a->leases,
                .comps = a->completions,
                .open = true};
    double u = unif(), err = a->kind == LASH_ACT_RENEW ? S.p.renew_error : S.p.cmd_error;
    if (u < err)
        c->fault = F_ERROR;
    else if (u < err + S.p.lost_request)
        c->fault = F_LOST_REQUEST;
    else if (u < err + S.p.lost_request + S.p.lost_reply)
        c->fault = F_LOST_REPLY;
    if (S.ncmds == S.capcmds) {
        S.capcmds = S.capcmds ? S.capcmds * 2 : 4096;
        S.cmds = realloc(S.cmds, S.capcmds * sizeof *S.cmds);
        cr_assert_not_null(S.cmds);
    }
    S.cmds[S.ncmds++] = c;
    at(S.now + between(0, 3), EV_ARRIVE, mi, M->gen, 0, 0, c);
}

/* What a machine may send, checked as it sends it. */
static void audit_send(int mi, const lash_action *a)
{
    smach *M = &S.m[mi];
    cr_assert(a->q >= 0 && a->q < S.p.nqueues);
    switch (a->kind) {
    case LASH_ACT_CLAIM:
        S.k.claims++;
        cr_assert(a->n >= 0 && a->n <= M->c.claim_max);
        cr_assert_eq(M->claim_q[a->q], 0, "%s: two claims in flight on queue %d", M->owner, a->q);
        cr_assert_leq(M->claim_out + a->n + M->running, M->c.concurrency,
                      "%s: claims %d more with %d asked and %d running, %d slots", M->owner, a->n,
                      M->claim_out, M->running, M->c.concurrency);
        M->claim_out += a->n;
        M->claim_q[a->q] = a->cmd;
        M->claim_n[a->q] = a->n;
        break;
    case LASH_ACT_RENEW:
        S.k.renews++;
        for (int i = 0; i < a->n; i++)
            cr_assert_str_eq(a->leases[i].owner, M->owner);
        break;
    case LASH_ACT_COMPLETE:
        S.k.completes++;
        for (int i = 0; i < a->n; i++) {
            const lash_completion *c = &a->completions[i];
            mrow *r = row_by_id(c->lease.id);
            int64_t f = c->lease.fence;
            cr_assert_str_eq(c->lease.owner, M->owner);
            cr_assert(f > 0 && f < SIM_FENCES);
            if (c->outcome == LASH_OUT_ABORT && c->text_len >= 7 &&
                memcmp(c->text, "bad row", 7) == 0) {
                cr_assert(r->bad_payload, "%s: a good row was refused", r->id);
                cr_assert_eq(r->started_by[f], 0, "%s: a bad row was started", r->id);
                cr_assert_eq(r->delivered_to[f], M->inst);
                continue;
            }
            cr_assert_eq(r->started_by[f], M->inst, "%s fence %lld: %s records what it did not run",
                         r->id, (long long)f, M->owner);
            cr_assert_neq(r->exited[f], 0, "%s fence %lld: recorded before its process ended",
                          r->id, (long long)f);
            cr_assert_not(r->lost[f], "%s fence %lld: recorded after a renew said lost", r->id,
                          (long long)f);
            cr_assert_not(r->gaveup[f], "%s fence %lld: recorded after the lease was given up",
                          r->id, (long long)f);
            if (c->outcome == LASH_OUT_OK)
                cr_assert_eq(r->exited[f] - 1, LASH_OUT_OK, "%s: a failure recorded as success",
                             r->id);
            if (c->outcome == LASH_OUT_CANCEL) cr_assert(r->cancel, "%s: cancelled unasked", r->id);
            if (c->outcome == LASH_OUT_FAIL && c->text_len >= 9 && !memcmp(c->text, "timed out", 9))
                cr_assert_gt(r->timeout_ms, 0, "%s: timed out without a timeout", r->id);
        }
        break;
    default: /* RELEASE */
        S.k.releases++;
        cr_assert(M->draining, "%s released outside a shutdown", M->owner);
        for (int i = 0; i < a->n; i++) {
            mrow *r = row_by_id(a->leases[i].id);
            int64_t f = a->leases[i].fence;
            cr_assert_str_eq(a->leases[i].owner, M->owner);
            cr_assert(r->started_by[f] == M->inst ||
                      (r->started_by[f] == 0 && r->delivered_to[f] == M->inst));
            cr_assert_not(r->lost[f] || r->gaveup[f], "%s: released a lost lease", r->id);
        }
    }
}

static void act(int mi, const lash_action *a)
{
    smach *M = &S.m[mi];
    switch (a->kind) {
    case LASH_ACT_CONNECT:
        M->conn++;
        M->up = false;
        if (chance(S.p.conn_hang)) {
            S.k.conn_hangs++; /* never answers: the machine's connect timeout must fire */
            break;
        }
        at(S.now + between(1, 20), EV_CONNECT, mi, M->gen, 0, M->conn, NULL);
        break;
    case LASH_ACT_DISCONNECT:
        S.k.reply_timeouts++;
        drop_conn(mi);
        lash_turn_disconnected(M->t, S.now);
        break;
    case LASH_ACT_START: {
        const lash_slot *s = lash_turn_slot(M->t, a->slot);
        cr_assert(s && s->used);
        sproc *p = &M->p[a->slot];
        cr_assert_not(p->running, "%s: slot %d reused while its process runs", M->owner, a->slot);
        cr_assert_lt(M->running, M->c.concurrency, "%s: more running than its slots", M->owner);
        mrow *r = row_by_id(s->id);
        int64_t f = s->fence;
        cr_assert(f > 0 && f < SIM_FENCES);
        cr_assert_not(r->bad_payload, "%s: a payload that is not JSON was started", r->id);
        cr_assert_eq(r->started_by[f], 0, "%s fence %lld started twice", r->id, (long long)f);
        cr_assert(holds(r, M->owner, f), "%s: started fence %lld without its lease", r->id,
                  (long long)f);
        r->started_by[f] = M->inst;
        S.k.cancel_reruns += r->cancel; /* released with its cancel asked: see release.lua */
        double u = unif();
        int64_t d = u < 0.85   ? between(5, 200)
                    : u < 0.97 ? between(200, 2000)
                               : between(2000, 7000);
        *p = (sproc){.running = true,
                     .row = (int)(r - S.rows),
                     .fence = f,
                     .seq = p->seq + 1,
                     .exit_at = S.now + d,
                     .out = chance(0.8) ? LASH_OUT_OK : LASH_OUT_FAIL,
                     .ignore_term = chance(0.1)};
        p->text = p->out == LASH_OUT_OK ? "{\"ok\": true}" : "exit status 1";
        M->running++;
        M->starts++;
        S.k.starts++;
        cr_assert_leq(lash_turn_running(M->t), M->c.concurrency);
        at(p->exit_at, EV_EXIT, mi, M->gen, a->slot, p->seq, NULL);
        break;
    }
    case LASH_ACT_KILL: {
        sproc *p = &M->p[a->slot];
        const lash_slot *s = lash_turn_slot(M->t, a->slot);
        cr_assert(p->running && s->used, "%s: KILL of slot %d, nothing runs there", M->owner,
                  a->slot);
        cr_assert_eq(s->fence, p->fence);
        S.k.kills++;
        if (s->lost) S.rows[p->row].gaveup[p->fence] = true;
        if (a->sig == SIGTERM && p->ignore_term) break;
        int64_t when = S.now + (a->sig == SIGKILL ? between(0, 2) : between(0, 30));
        if (when < p->exit_at) {
            p->exit_at = when;
            p->seq++;
            p->out = LASH_OUT_FAIL;
            p->text = a->sig == SIGKILL ? "killed by signal 9" : "killed by signal 15";
            at(when, EV_EXIT, mi, M->gen, a->slot, p->seq, NULL);
        }
        break;
    }
    case LASH_ACT_CLAIM:
    case LASH_ACT_RENEW:
    case LASH_ACT_COMPLETE:
    case LASH_ACT_RELEASE:
        audit_send(mi, a);
        send_cmd(mi, a);
        break;
    case LASH_ACT_TIMER:
        M->timer_at = a->at;
        at(a->at, EV_TIMER, mi, M->gen, 0, ++M->timer_seq, NULL);
        break;
    case LASH_ACT_LOG:
        if (strstr(a->msg, "shutdown deadline")) M->hard_exit = true;
        break;
    case LASH_ACT_EXIT:
        cr_assert_eq(a->code, 0);
        cr_assert(M->draining, "%s exited unasked", M->owner);
        M->exiting = true;
        break;
    }
}

/* ---- events ---- */

static void publish_poke(int q)
{
    for (int mi = 0; mi < SIM_M; mi++) {
        smach *M = &S.m[mi];
        if (!M->alive || !M->up) continue;
        S.k.pokes++;
        if (chance(S.p.poke_drop)) {
            S.k.pokes_dropped++;
            continue;
        }
        at(S.now + between(0, 2), EV_POKE, mi, M->gen, q, M->conn, NULL);
    }
}

static void publish_cancel(int row)
{
    for (int mi = 0; mi < SIM_M; mi++) {
        smach *M = &S.m[mi];
        if (!M->alive || !M->up || chance(S.p.poke_drop)) continue;
        at(S.now + between(0, 2), EV_CANCELMSG, mi, M->gen, row, M->conn, NULL);
    }
}

static void on_arrive(scmd *c)
{
    smach *M = &S.m[c->m];
    if (!c->open || !same(M, c->gen, c->conn)) {
        c->open = false;
        return;
    }
    switch (c->fault) {
    case F_LOST_REQUEST: /* the connection swallowed it: no reply, ever */
        S.k.lost_requests++;
        c->arrived = true;
        return;
    case F_ERROR: /* Redis answered with an error, nothing ran */
        S.k.errors++;
        c->arrived = true;
        at(S.now + between(0, 3), EV_REPLY, c->m, c->gen, 0, 0, c);
        return;
    case F_LOST_REPLY: /* it ran; the answer is lost */
        S.k.lost_replies++;
        execute(c);
        return;
    case F_NONE:
        execute(c);
        at(S.now + between(0, 3), EV_REPLY, c->m, c->gen, 0, 0, c);
        return;
    }
}

static void on_reply(scmd *c)
{
    smach *M = &S.m[c->m];
    if (!c->open || !same(M, c->gen, c->conn)) {
        c->open = false;
        return;
    }
    c->open = false;
    if (c->kind == LASH_ACT_CLAIM) {
        M->claim_out -= M->claim_n[c->q];
        M->claim_q[c->q] = 0;
        if (c->fault == F_ERROR) {
            lash_claim_batch none = {0};
            lash_turn_claimed(M->t, c->id, LASH_EREDIS, &none, S.now);
        } else {
            for (size_t i = 0; i < c->batch.n; i++)
                row_by_id(c->batch.rows[i].id)->delivered_to[c->batch.rows[i].fence] = M->inst;
            lash_turn_claimed(M->t, c->id, LASH_OK, &c->batch, S.now);
            cr_assert_eq(c->batch.n, 0, "the machine takes the rows");
        }
    } else if (c->fault == F_ERROR) {
        lash_turn_replied(M->t, c->id, LASH_EREDIS, NULL, 0, S.now);
    } else {
        if (c->kind == LASH_ACT_RENEW) {
            for (int i = 0; i < c->n; i++) {
                if (c->status[i] != LASH_RENEW_LOST) continue;
                mrow *r = row_by_id(c->leases[i].id);
                for (int s = 0; s < M->c.concurrency; s++)
                    if (M->p[s].running && M->p[s].row == (int)(r - S.rows) &&
                        M->p[s].fence == c->leases[i].fence)
                        r->lost[c->leases[i].fence] = true;
            }
        }
        lash_turn_replied(M->t, c->id, LASH_OK, c->status, (size_t)c->n, S.now);
    }
    free(c->status);
    c->status = NULL;
    iterate(c->m);
}

static void fault(void)
{
    int mi = (int)between(0, SIM_M - 1);
    smach *M = &S.m[mi];
    double u = unif(), p = 0;
    if (u < (p += S.p.p_disconnect)) {
        if (M->alive && M->up) {
            S.k.disconnects++;
            drop_conn(mi);
            lash_turn_disconnected(M->t, S.now);
            iterate(mi);
        }
    } else if (u < (p += S.p.p_crash)) {
        if (M->alive) {
            S.k.crashes++;
            end_instance(mi, false);
        }
    } else if (u < (p += S.p.p_shutdown)) {
        if (M->alive && !M->draining) {
            S.k.shutdowns++;
            M->draining = true;
            lash_turn_shutdown(M->t, S.now);
            drain_m(mi);
            if (chance(0.25)) at(S.now + between(10, 1000), EV_SHUTDOWN, mi, M->gen, 0, 0, NULL);
        }
    } else if (u < (p += S.p.p_outage)) {
        if (S.redis_up) {
            S.k.outages++;
            S.redis_up = false;
            for (int j = 0; j < SIM_M; j++) {
                if (!S.m[j].alive || !S.m[j].up) continue;
                drop_conn(j);
                lash_turn_disconnected(S.m[j].t, S.now);
                iterate(j);
            }
            at(S.now + between(200, 4000), EV_REDIS_UP, 0, 0, 0, 0, NULL);
        }
    } else if (u < (p += S.p.p_cancel)) {
        /* Mostly running rows: those are the ones a machine has to stop. */
        int i0 = (int)between(0, S.nrows - 1);
        bool any = chance(0.3);
        for (int k = 0; k < S.nrows; k++) {
            mrow *r = &S.rows[(i0 + k) % S.nrows];
            if (r->state == M_RUNNING || (any && r->state == M_PENDING)) {
                S.k.op_cancels++;
                m_cancel(r);
                break;
            }
        }
    } else if (u < (p += S.p.p_freeze)) {
        /* The whole worker stops for a while, sometimes past its leases: on
         * waking, its late renews and completes must be told stale. */
        if (M->alive && M->frozen_until <= S.now) {
            S.k.freezes++;
            M->frozen_until = S.now + between(200, 2 * SIM_LEASE);
        }
    } else if (u < (p += S.p.p_steal)) {
        /* A lease key vanishes (a fail-over lost the write): its owner's next
         * renew hears "lost", and the row runs again elsewhere. */
        int i0 = (int)between(0, S.nrows - 1);
        for (int k = 0; k < S.nrows; k++) {
            mrow *r = &S.rows[(i0 + k) % S.nrows];
            if (r->state == M_RUNNING && live_lease(r)) {
                S.k.steals++;
                r->leased = false;
                break;
            }
        }
    }
}

static void dispatch(const event *e)
{
    smach *M = e->m >= 0 && e->m < SIM_M ? &S.m[e->m] : NULL;
    if (M && e->kind != EV_FAULT && e->kind != EV_REDIS_UP && M->frozen_until > S.now) {
        /* A stopped worker sees nothing; its events wait, in order. (Arrivals
         * at Redis are not the worker's: they go on.) */
        if (e->kind != EV_ARRIVE) {
            S.k.postponed++;
            event later = *e;
            later.at = M->frozen_until;
            ev_push(later);
            return;
        }
    }
    switch (e->kind) {
    case EV_SUBMIT: {
        mrow *r = &S.rows[e->a];
        r->state = M_PENDING;
        r->in_due = true;
        r->due = S.now + r->delay_ms;
        publish_poke(r->q);
        break;
    }
    case EV_TIMER:
        if (!M->alive || M->gen != e->gen || M->timer_seq != e->tag) break;
        if (S.now == M->last_tick) {
            cr_assert_lt(++M->same_tick, 50, "%s: its timer spins at %lld", M->owner,
                         (long long)S.now);
        } else {
            M->same_tick = 0;
            M->last_tick = S.now;
        }
        lash_turn_tick(M->t, S.now);
        iterate(e->m);
        break;
    case EV_CONNECT:
        if (!same(M, e->gen, e->tag)) break;
        if (S.redis_up && !chance(S.p.conn_fail)) {
            M->up = true;
            lash_turn_connected(M->t, S.now);
        } else {
            S.k.conn_fails++;
            M->conn++;
            lash_turn_disconnected(M->t, S.now);
        }
        iterate(e->m);
        break;
    case EV_ARRIVE:
        on_arrive(e->cmd);
        break;
    case EV_REPLY:
        on_reply(e->cmd);
        break;
    case EV_EXIT: {
        if (!M->alive || M->gen != e->gen) break;
        sproc *p = &M->p[e->a];
        if (!p->running || p->seq != e->tag) break;
        p->running = false;
        M->running--;
        mrow *r = &S.rows[p->row];
        r->exited[p->fence] = (signed char)(1 + p->out);
        lash_turn_exited(M->t, e->a, p->out, p->text, strlen(p->text), S.now);
        iterate(e->m);
        break;
    }
    case EV_POKE:
        if (!same(M, e->gen, e->tag) || !M->up) break;
        lash_turn_poke(M->t, e->a, S.now);
        iterate(e->m);
        break;
    case EV_CANCELMSG:
        if (!same(M, e->gen, e->tag) || !M->up) break;
        S.k.cancel_msgs++;
        lash_turn_cancel(M->t, S.rows[e->a].q, S.rows[e->a].id, S.now);
        iterate(e->m);
        break;
    case EV_FAULT:
        fault();
        at(S.now + between(20, 80), EV_FAULT, 0, 0, 0, 0, NULL);
        break;
    case EV_SHUTDOWN: /* asked again: kill at once */
        if (!M->alive || M->gen != e->gen) break;
        S.k.second_shutdowns++;
        lash_turn_shutdown(M->t, S.now);
        iterate(e->m);
        break;
    case EV_RESTART:
        if (M->alive || M->gen != e->gen) break;
        start_instance(e->m);
        break;
    case EV_REDIS_UP:
        S.redis_up = true;
        break;
    }
}

static void sim_run(uint64_t seed, const profile *p)
{
    memset(&S, 0, sizeof S);
    S.p = *p;
    S.rng = seed * 0x2545f4914f6cdd1dull + 1;
    S.redis_up = true;
    S.nrows = p->nrows;
    S.rows = calloc((size_t)S.nrows, sizeof *S.rows);
    cr_assert_not_null(S.rows);
    static const char *const backoffs[] = {"fixed:50", "exp:20:400", ""};
    for (int i = 0; i < S.nrows; i++) {
        mrow *r = &S.rows[i];
        snprintf(r->id, sizeof r->id, "r%d", i);
        r->q = i % p->nqueues;
        r->max_attempts = (int)between(1, 4);
        r->timeout_ms = chance(0.15) ? between(300, 1500) : 0;
        r->backoff = backoffs[between(0, 2)];
        r->bad_payload = chance(0.01);
        r->abandon = chance(0.05);
        r->delay_ms = chance(0.1) ? between(0, 5000) : 0;
        at(between(0, 20000), EV_SUBMIT, -1, 0, i, 0, NULL);
    }
    for (int mi = 0; mi < SIM_M; mi++) {
        smach *M = &S.m[mi];
        lash_turn_config_default(&M->c);
        M->c.concurrency = (int)between(3, SIM_SLOTS);
        M->c.nqueues = p->nqueues;
        static const int claim_max[] = {1, 2, 3, 256};
        M->c.claim_max = claim_max[between(0, 3)];
        M->c.lease_ms = SIM_LEASE;
        M->c.poll_ms = 400;
        M->c.grace_ms = 1500;
        M->c.kill_grace_ms = 300;
        M->c.reply_timeout_ms = 800;
        M->c.reconnect_min_ms = 50;
        M->c.reconnect_max_ms = 1000;
        M->last_tick = -1;
        start_instance(mi);
    }
    at(100, EV_FAULT, 0, 0, 0, 0, NULL);

    while (S.terminal < S.nrows) {
        cr_assert_gt(S.nheap, 0, "the simulation ran dry with %d rows live", S.nrows - S.terminal);
        cr_assert_lt(++S.steps, 20000000, "the simulation did not end");
        event e = ev_pop();
        cr_assert_geq(e.at, S.now);
        S.now = e.at;
        cr_assert_lt(S.now, 3600 * 1000, "an hour of simulated time and %d rows live",
                     S.nrows - S.terminal);
        dispatch(&e);
    }

    int completed = 0;
    for (int i = 0; i < S.nrows; i++) {
        const mrow *r = &S.rows[i];
        cr_assert(r->state >= M_COMPLETED, "%s never ended", r->id);
        cr_assert_eq(r->terminal, 1, "%s ended %d times", r->id, r->terminal);
        if (r->state == M_COMPLETED) {
            completed++;
            cr_assert_eq(r->ok_records, 1, "%s completed %d times", r->id, r->ok_records);
        } else {
            cr_assert_eq(r->ok_records, 0);
        }
        if (r->bad_payload) /* failed, unless cancelled or abandoned first */
            cr_assert_neq(r->state, M_COMPLETED, "%s: a bad row never runs", r->id);
    }
    for (int mi = 0; mi < SIM_M; mi++)
        cr_assert_gt(S.m[mi].starts, 0, "machine %d never ran anything", mi);
    cr_assert_gt(completed, S.nrows / 2, "most rows succeed");

    cr_log_info("seed %llu: %d rows in %.1f s simulated, %llu steps; ended completed %llu "
                "failed %llu cancelled %llu abandoned %llu; %llu starts, %llu kills, %llu "
                "timed out, %llu leases expired, %llu renews said lost, %llu released; "
                "completes accepted %llu stale %llu already %llu",
                (unsigned long long)seed, S.nrows, (double)S.now / 1000,
                (unsigned long long)S.steps, (unsigned long long)S.k.ended[M_COMPLETED],
                (unsigned long long)S.k.ended[M_FAILED], (unsigned long long)S.k.ended[M_CANCELLED],
                (unsigned long long)S.k.ended[M_ABANDONED], (unsigned long long)S.k.starts,
                (unsigned long long)S.k.kills, (unsigned long long)S.k.timed_out,
                (unsigned long long)S.k.leases_expired, (unsigned long long)S.k.renew_lost,
                (unsigned long long)S.k.released, (unsigned long long)S.k.accepted,
                (unsigned long long)S.k.stale, (unsigned long long)S.k.already);
    cr_log_info("seed %llu faults: pokes dropped %llu of %llu, error replies %llu, lost "
                "requests %llu, lost replies %llu, reply timeouts %llu, disconnects %llu, "
                "outages %llu, connect fails %llu, connect hangs %llu, crashes %llu, "
                "shutdowns %llu (again %llu, graceful exits %llu, at the deadline %llu), "
                "cancels %llu (messages %llu), freezes %llu (events postponed %llu), leases "
                "stolen %llu; cancel-asked rows started again %llu",
                (unsigned long long)seed, (unsigned long long)S.k.pokes_dropped,
                (unsigned long long)S.k.pokes, (unsigned long long)S.k.errors,
                (unsigned long long)S.k.lost_requests, (unsigned long long)S.k.lost_replies,
                (unsigned long long)S.k.reply_timeouts, (unsigned long long)S.k.disconnects,
                (unsigned long long)S.k.outages, (unsigned long long)S.k.conn_fails,
                (unsigned long long)S.k.conn_hangs, (unsigned long long)S.k.crashes,
                (unsigned long long)S.k.shutdowns, (unsigned long long)S.k.second_shutdowns,
                (unsigned long long)S.k.graceful_exits, (unsigned long long)S.k.hard_exits,
                (unsigned long long)S.k.op_cancels, (unsigned long long)S.k.cancel_msgs,
                (unsigned long long)S.k.freezes, (unsigned long long)S.k.postponed,
                (unsigned long long)S.k.steals, (unsigned long long)S.k.cancel_reruns);

    for (int mi = 0; mi < SIM_M; mi++)
        if (S.m[mi].alive) lash_turn_free(S.m[mi].t);
    for (size_t i = 0; i < S.ncmds; i++) {
        lash_claim_batch_free(&S.cmds[i]->batch);
        free(S.cmds[i]->status);
        free(S.cmds[i]);
    }
    free(S.cmds);
    free(S.heap);
    free(S.rows);
}

static const profile sim_default = {
    .poke_drop = 0.2,
    .cmd_error = 0.005,
    .renew_error = 0.03,
    .lost_request = 0.002,
    .lost_reply = 0.003,
    .conn_fail = 0.1,
    .conn_hang = 0.02,
    .p_disconnect = 0.03,
    .p_crash = 0.008,
    .p_shutdown = 0.008,
    .p_outage = 0.002,
    .p_cancel = 0.03,
    .p_freeze = 0.008,
    .p_steal = 0.008,
    .nrows = 2000,
    .nqueues = 2,
};

#define SIM_SEED(n)                                                                                \
    Test(sim, seed_##n, .timeout = 120)                                                            \
    {                                                                                              \
        sim_run(n, &sim_default);                                                                  \
    }

SIM_SEED(1)
SIM_SEED(2)
SIM_SEED(3)
SIM_SEED(4)
SIM_SEED(5)
SIM_SEED(6)
SIM_SEED(7)
SIM_SEED(8)

/* Harsher: a lossy network and a fleet that keeps falling over, on one queue. */
Test(sim, harsh, .timeout = 120)
{
    profile p = sim_default;
    p.poke_drop = 0.6;
    p.renew_error = 0.1;
    p.lost_request = 0.01;
    p.lost_reply = 0.01;
    p.conn_fail = 0.3;
    p.p_disconnect = 0.06;
    p.p_crash = 0.02;
    p.p_shutdown = 0.02;
    p.p_outage = 0.004;
    p.p_freeze = 0.02;
    p.p_steal = 0.02;
    p.nqueues = 1;
    p.nrows = 1000;
    sim_run(99, &p);
}

/* Cancel asked while the shutdown is stopping it: recorded as cancelled. A
 * release would make the row pending and the next worker would run it again. */
Test(turn, cancel_wins_over_the_shutdown_release)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 2}};
    lash_turn *t = running(r, 2, T0);
    lash_turn_shutdown(t, T0 + 1);
    lash_turn_tick(t, T0 + 1 + C.grace_ms);
    step(t, T0 + 1 + C.grace_ms);
    cr_assert_eq(count(LASH_ACT_KILL), 2);
    lash_turn_cancel(t, 0, "a", T0 + 2 + C.grace_ms);
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_FAIL, "terminated", 10, T0 + 3 + C.grace_ms);
    lash_turn_exited(t, slot_of(t, "b"), LASH_OUT_FAIL, "terminated", 10, T0 + 3 + C.grace_ms);
    step(t, T0 + 3 + C.grace_ms);
    const lash_action *c = nth(LASH_ACT_COMPLETE, 0), *l = nth(LASH_ACT_RELEASE, 0);
    cr_assert_not_null(c);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->completions[0].lease.id, "a");
    cr_assert_eq(c->completions[0].outcome, LASH_OUT_CANCEL);
    cr_assert_not_null(l);
    cr_assert_eq(l->n, 1);
    cr_assert_str_eq(l->leases[0].id, "b");
    lash_turn_free(t);
}
