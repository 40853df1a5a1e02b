/* test_turn.c: the worker's sans-IO turn machine (worker/turn.h), driven by hand.
 *
 * No Redis, no processes, no clock: every event carries an explicit `now`, and
 * the test plays the shell (worker/worker.c): events in, then once per "loop
 * iteration" lash_turn_flush and a drain of lash_turn_next.
 *
 * Each promise of turn.h is pinned by a focused test. The fleet simulation (many
 * machines against an in-memory registry, with faults) is tests/sim/test_sim.c.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/record.h"
#include "worker/turn.h"

#define T0 1000000 /* a monotonic clock well past zero */

typedef struct {
    lash_action a;
    char msg[512];
} seen_act;

static lash_turn_config C;
static seen_act acts[1024];
static int nacts;
static int64_t timer_at = -1; /* the timer as the machine last armed it */

/* The reply timeout C stands for. */
static int64_t RT(void)
{
    return lash_turn_reply_timeout(&C);
}

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

static const lash_action *peek_for(int q)
{
    for (int j = 0; j < nacts; j++)
        if (acts[j].a.kind == LASH_ACT_PEEK && acts[j].a.q == q) return &acts[j].a;
    return NULL;
}

/* Answers queue q's PEEK in the last drain: a row is eligible (due) or not. */
static void peek_answer(lash_turn *t, int q, bool due, int64_t now)
{
    const lash_action *p = peek_for(q);
    cr_assert_not_null(p, "queue %d peeked", q);
    lash_turn_peeked(t, p->cmd, LASH_OK, due ? 0 : -1, NULL, now);
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
    lash_turn_claimed(t, cmd, LASH_OK, &b, NULL, now);
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
    lash_turn_replied(t, cmd, LASH_OK, st, (size_t)n, NULL, now);
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

Test(turn, a_config_past_its_bounds_builds_no_machine)
{
    cfg();
    C.concurrency = 0;
    cr_assert_null(lash_turn_new(&C, "w1"));
    cfg();
    C.reply_timeout_ms = C.lease_ms; /* over a third of the lease */
    cr_assert_null(lash_turn_new(&C, "w1"));
    cfg();
    lash_turn *t = lash_turn_new(&C, "w1");
    cr_assert_not_null(t);
    lash_turn_free(t);
}

Test(turn, start_connects_once)
{
    cfg();
    lash_turn *t = lash_turn_new(&C, "w1");
    lash_turn_start(t, T0);
    drain(t);
    cr_assert_eq(count(LASH_ACT_CONNECT), 1);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0);
    cr_assert_not(lash_turn_connected_now(t));
    cr_assert_eq(timer_at, T0 + RT(), "a connect that never answers times out");
    lash_turn_start(t, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_CONNECT), 0, "start is idempotent");
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "nothing is sent before the connection is up");
    lash_turn_tick(t, T0 + RT());
    step(t, T0 + RT());
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
    cr_assert_eq(lash_turn_counters(t)->pokes, 70);
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
    cr_assert_eq(lash_turn_counters(t)->rows_claimed, 4);
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
        C.lease_ms = 86400000; /* leases and replies are not the point */
        uint64_t rng = (uint64_t)seed * 0x9e3779b97f4a7c15ull;
        lash_turn *t = lash_turn_new(&C, "w1");
        lash_turn_start(t, T0);
        lash_turn_connected(t, T0);
        uint32_t inflight[3] = {0}, peeking[3] = {0};
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
                } else if (a->kind == LASH_ACT_PEEK) {
                    cr_assert_eq(peeking[a->q], 0, "two peeks in flight on queue %d", a->q);
                    peeking[a->q] = a->cmd;
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
                if (peeking[q]) {
                    lash_turn_peeked(t, peeking[q], LASH_OK, (rng & 1) ? 0 : -1, NULL, now);
                    peeking[q] = 0;
                }
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
        cr_assert_gt(nrows, 50, "seed %d: the walk ran rows (%d)", seed, nrows);
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
    cr_assert_eq(count(LASH_ACT_CLAIM) + count(LASH_ACT_PEEK), 0);
    lash_turn_tick(t, at);
    step(t, at);
    cr_assert_eq(count(LASH_ACT_PEEK), 2, "a poll tick looks at every queue");
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "and claims nothing before it saw a row");
    peek_answer(t, 0, true, at);
    peek_answer(t, 1, true, at);
    step(t, at);
    cr_assert_eq(count(LASH_ACT_CLAIM), 2, "a queue with an eligible row is claimed");
    cr_assert_eq(claim_for(0)->n, 2);
    cr_assert_eq(claim_for(1)->n, 2);
    give_none(t, claim_for(0)->cmd, at);
    give_none(t, claim_for(1)->cmd, at);
    step(t, at);

    /* The loop was stuck for 10 intervals: one drive, then a fresh interval. */
    int64_t late = at + 10 * C.poll_ms;
    lash_turn_tick(t, late);
    step(t, late);
    cr_assert_eq(count(LASH_ACT_PEEK), 2, "one look per queue, not one per missed tick");
    peek_answer(t, 0, false, late);
    peek_answer(t, 1, false, late);
    step(t, late);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "nothing eligible: no claim");
    for (int i = 0; i < 5; i++) {
        lash_turn_tick(t, late);
        step(t, late);
        cr_assert_eq(count(LASH_ACT_CLAIM) + count(LASH_ACT_PEEK), 0,
                     "missed ticks are not replayed");
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
        /* A look, or every LASH_TURN_BEAT_MS the heartbeat's claim. */
        cr_assert_eq(count(LASH_ACT_CLAIM) + count(LASH_ACT_PEEK), 1);
        if (claim_for(0))
            give_none(t, claim_for(0)->cmd, at);
        else
            peek_answer(t, 0, false, at);
        step(t, at);
        prev = at;
    }
    cr_assert_gt(hi - lo, C.poll_ms / 10, "the intervals are spread, not in lockstep");
    cr_assert_geq(sum / ticks, 380);
    cr_assert_leq(sum / ticks, 420);
    lash_turn_free(t);
}

Test(turn, a_poll_does_not_look_without_a_free_slot)
{
    cfg();
    C.concurrency = 2;
    C.lease_ms = 600000; /* no renew in the way */
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 2}};
    lash_turn *t = running(r, 2, T0);
    for (int64_t now = T0 + C.poll_ms; now < T0 + LASH_TURN_BEAT_MS; now += C.poll_ms) {
        lash_turn_tick(t, now);
        step(t, now);
        cr_assert_eq(count(LASH_ACT_PEEK) + count(LASH_ACT_CLAIM), 0,
                     "full: nothing to look for at %lld", (long long)(now - T0));
    }
    /* A slot frees: the full startup claim's follow-up takes it, and then
     * finds nothing; from then on the poll looks again. */
    int64_t now = T0 + LASH_TURN_BEAT_MS - 1;
    lash_turn_exited(t, 0, LASH_OUT_OK, "1", 1, now);
    step(t, now);
    answer(t, nth(LASH_ACT_COMPLETE, 0)->cmd, 1, LASH_DONE_RECORDED, now);
    give_none(t, claim_for(0)->cmd, now);
    for (int i = 0; i < 3 && !peek_for(0); i++) {
        now = timer_at;
        lash_turn_tick(t, now);
        step(t, now);
        if (claim_for(0)) give_none(t, claim_for(0)->cmd, now); /* the heartbeat */
    }
    cr_assert_not_null(peek_for(0), "a slot is free: the poll looks");
    lash_turn_free(t);
}

Test(turn, an_idle_worker_claims_only_for_its_heartbeat)
{
    cfg();
    lash_turn *t = boot(T0);
    const lash_action *c = claim_for(0);
    cr_assert_gt(c->upkeep, 0, "the startup drive does the upkeep");
    give_none(t, c->cmd, T0);
    step(t, T0);
    int claims = 0, peeks = 0;
    int64_t now = T0, end = T0 + 60000;
    while ((now = timer_at) < end) {
        lash_turn_tick(t, now);
        step(t, now);
        if ((c = claim_for(0))) {
            cr_assert_gt(c->upkeep, 0, "a heartbeat claim carries the upkeep");
            claims++;
            give_none(t, c->cmd, now);
        } else {
            peek_answer(t, 0, false, now);
            peeks++;
        }
        step(t, now);
    }
    /* A beat goes with the first poll LASH_TURN_BEAT_MS after the last. */
    cr_assert_leq(claims, 60000 / LASH_TURN_BEAT_MS, "a heartbeat per %d ms (%d)",
                  LASH_TURN_BEAT_MS, claims);
    cr_assert_geq(claims, 60000 / (LASH_TURN_BEAT_MS + C.poll_ms * 11 / 10),
                  "a heartbeat per %d ms (%d)", LASH_TURN_BEAT_MS, claims);
    cr_assert_geq(peeks, 60000 / C.poll_ms * 9 / 10 - claims, "the polls between look (%d)", peeks);
    lash_turn_free(t);
}

Test(turn, a_failed_look_claims_nothing_and_is_logged)
{
    cfg();
    lash_turn *t = boot(T0);
    give_none(t, claim_for(0)->cmd, T0);
    step(t, T0);
    int64_t now = timer_at;
    lash_turn_tick(t, now);
    step(t, now);
    const lash_action *p = peek_for(0);
    cr_assert_not_null(p);
    lash_turn_peeked(t, p->cmd, LASH_EREDIS, 0, "peek: Redis said: WRONGTYPE", now);
    step(t, now);
    cr_assert(logged("peek failed"), "the failure is logged");
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "an error is not a row");
    now = timer_at;
    lash_turn_tick(t, now);
    step(t, now);
    peek_answer(t, 0, true, now);
    step(t, now);
    cr_assert_not_null(claim_for(0), "the next look that sees a row claims it");
    lash_turn_free(t);
}

/* An idle machine whose poll has just peeked at queue 0: the peek's time. */
static int64_t first_look(lash_turn *t)
{
    give_none(t, claim_for(0)->cmd, T0);
    step(t, T0);
    int64_t now = timer_at;
    lash_turn_tick(t, now);
    step(t, now);
    cr_assert_not_null(peek_for(0), "the poll peeks");
    return now;
}

Test(turn, a_row_due_before_the_next_look_is_claimed_at_its_time)
{
    cfg();
    lash_turn *t = boot(T0);
    int64_t now = first_look(t);
    lash_turn_peeked(t, peek_for(0)->cmd, LASH_OK, 37, NULL, now);
    step(t, now);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "nothing is due yet");
    cr_assert_eq(timer_at, now + 37, "the timer is armed for the row's time");
    lash_turn_tick(t, now + 36);
    step(t, now + 36);
    cr_assert_eq(count(LASH_ACT_CLAIM) + count(LASH_ACT_PEEK), 0, "a ms early: nothing");
    lash_turn_tick(t, now + 37);
    step(t, now + 37);
    cr_assert_not_null(claim_for(0), "claimed when the row falls due, not at the next poll");
    cr_assert_eq(count(LASH_ACT_PEEK), 0, "a claim, not another look");
    lash_turn_free(t);
}

Test(turn, a_row_due_after_the_next_look_is_left_to_the_poll)
{
    cfg();
    lash_turn *t = boot(T0);
    int64_t now = first_look(t);
    lash_turn_peeked(t, peek_for(0)->cmd, LASH_OK, (int64_t)C.poll_ms * 5, NULL, now);
    step(t, now);
    int64_t until = now + (int64_t)C.poll_ms * 5;
    int claims = 0;
    while ((now = timer_at) <= until) {
        lash_turn_tick(t, now);
        step(t, now);
        const lash_action *c = claim_for(0);
        if (c && !c->upkeep) claims++; /* not the heartbeat */
        if (c) give_none(t, c->cmd, now);
        if (peek_for(0)) peek_answer(t, 0, false, now);
        step(t, now);
    }
    cr_assert_eq(claims, 0, "a far row wakes nobody; the polls on the way look for it");
    lash_turn_free(t);
}

Test(turn, a_look_that_finds_nothing_waiting_sets_no_wake)
{
    cfg();
    lash_turn *t = boot(T0);
    int64_t now = first_look(t);
    int64_t next_poll = timer_at;
    lash_turn_peeked(t, peek_for(0)->cmd, LASH_OK, -1, NULL, now);
    step(t, now);
    cr_assert_eq(timer_at, next_poll, "only the poll is armed");
    lash_turn_free(t);
}

/* Peeks an idle worker sends in `ms` after a startup claim that counted
 * `workers` polling the queue (every look finds nothing). */
static int idle_peeks(int workers, int64_t ms)
{
    cfg();
    lash_turn *t = boot(T0);
    lash_claim_batch b = {.workers = workers};
    lash_turn_claimed(t, claim_for(0)->cmd, LASH_OK, &b, NULL, T0);
    step(t, T0);
    int peeks = 0;
    int64_t now;
    while ((now = timer_at) < T0 + ms) {
        lash_turn_tick(t, now);
        step(t, now);
        if (claim_for(0)) {
            lash_claim_batch beat = {.workers = workers};
            lash_turn_claimed(t, claim_for(0)->cmd, LASH_OK, &beat, NULL, now);
        } else if (peek_for(0)) {
            peek_answer(t, 0, false, now);
            peeks++;
        }
        step(t, now);
    }
    lash_turn_free(t);
    return peeks;
}

Test(turn, the_workers_of_a_queue_share_its_poll)
{
    int alone = idle_peeks(1, 60000), four = idle_peeks(4, 60000), many = idle_peeks(40, 60000);
    cr_assert_gt(alone, 100, "alone, a worker looks every poll (%d looks)", alone);
    cr_assert_lt(four, alone * 4 / 10, "one of 4 looks about a quarter as often (%d vs %d)", four,
                 alone);
    cr_assert_gt(four, alone / 8, "but it still looks (%d vs %d)", four, alone);
    cr_assert_eq(many, 0, "one of 40: its heartbeat every %d ms is its look", LASH_TURN_BEAT_MS);
}

/* A busy worker's claims go back to back; its upkeep goes about once a second
 * and trims 100 more rows than it recorded since: trimming keeps pace. */
Test(turn, a_busy_worker_does_its_upkeep_about_once_a_second)
{
    cfg();
    C.concurrency = 8;
    C.claim_max = 8;
    C.lease_ms = 600000;
    lash_turn *t = boot(T0);
    int64_t now = T0, last_upkeep = -1;
    int recorded = 0, upkeeps = 0, n = 0;
    char ids[8][16];
    lash_action c = *claim_for(0); /* the claim in flight */
    for (; now < T0 + 10000; now += 10) {
        if (c.upkeep > 0) {
            if (last_upkeep >= 0) {
                cr_assert_geq(now - last_upkeep, 1000, "upkeep %lld ms after the last",
                              (long long)(now - last_upkeep));
                /* The claim went out with the last batch's completions. */
                cr_assert_leq(c.upkeep, 100 + recorded);
                cr_assert_geq(c.upkeep, 100 + recorded - C.claim_max);
            }
            last_upkeep = now;
            recorded = 100 + recorded - c.upkeep; /* those go with the next */
            upkeeps++;
        }
        row r[8];
        for (int k = 0; k < c.n; k++) {
            snprintf(ids[k], sizeof ids[k], "r%d", n++);
            r[k] = (row){.id = ids[k], .fence = n};
        }
        give(t, c.cmd, (size_t)c.n, r, c.n, now); /* full: the next claim goes at once */
        for (int s = 0; s < C.concurrency; s++)
            if (lash_turn_slot(t, s)->used) lash_turn_exited(t, s, LASH_OUT_OK, "1", 1, now);
        step(t, now);
        const lash_action *d = nth(LASH_ACT_COMPLETE, 0);
        cr_assert_not_null(d);
        answer(t, d->cmd, d->n, LASH_DONE_RECORDED, now);
        recorded += d->n;
        if (!claim_for(0)) step(t, now);
        cr_assert_not_null(claim_for(0), "a busy worker claims back to back");
        c = *claim_for(0);
    }
    cr_assert_gt(n, 5000, "the walk ran rows back to back (%d)", n);
    cr_assert_geq(upkeeps, 9, "about once a second (%d in 10 s)", upkeeps);
    cr_assert_leq(upkeeps, 11, "about once a second (%d in 10 s)", upkeeps);
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
    cr_assert_eq(lash_turn_counters(t)->renews_sent, 3);
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
    lash_turn_replied(t, a->cmd, LASH_OK, st, 2, NULL, now + 1);
    step(t, now + 1);
    int sa = slot_of(t, "a");
    cr_assert_eq(count(LASH_ACT_KILL), 1);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->slot, sa);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->sig, SIGTERM);
    cr_assert(lash_turn_slot(t, sa)->lost);
    cr_assert_eq(lash_turn_counters(t)->leases_lost, 1);

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
    cr_assert_eq(lash_turn_counters(t)->completes_sent, 0);
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
    lash_turn_replied(t, a->cmd, LASH_OK, st, 3, NULL, T0 + 4);
    cr_assert_eq(lash_turn_counters(t)->rows_recorded, 2);
    cr_assert_eq(lash_turn_counters(t)->rows_stale, 1);
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
    lash_turn_replied(t, a->cmd, LASH_EIO, NULL, 0, NULL, T0 + 2);
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
    lash_turn_replied(t, a->cmd, LASH_EIO, NULL, 0, NULL, now + 1);
    step(t, now + 1);
    cr_assert_eq(count(LASH_ACT_RENEW), 1, "a renew that failed goes out again");

    lash_turn_poke(t, 0, now + 2);
    step(t, now + 2);
    a = claim_for(0);
    lash_claim_batch b = {0};
    lash_turn_claimed(t, a->cmd, LASH_EREDIS, &b, "claim: Redis said: BUSY", now + 3);
    step(t, now + 3);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "a failed claim waits for the next tick");
    cr_assert(logged("claim failed: claim: Redis said: BUSY"));
    cr_assert_eq(count(LASH_ACT_RECOVER), 0, "an error reply leased nothing: nothing to recover");
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
    while (timer_at < T0 + RT()) {
        now = timer_at;
        lash_turn_tick(t, now);
        step(t, now);
        cr_assert_eq(count(LASH_ACT_DISCONNECT), 0);
    }
    cr_assert_eq(timer_at, T0 + RT(), "woken when the reply is overdue");
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
    cr_assert_eq(lash_turn_counters(t)->reconnects, 1);

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
    /* The lost claim may have leased rows: they are asked for before any new claim. */
    cr_assert_null(claim_for(0));
    a = nth(LASH_ACT_RECOVER, 0);
    cr_assert_not_null(a, "the lost claim's rows are asked for");
    cr_assert_eq(a->seq, old_claim);
    lash_turn_recovered(t, a->cmd, LASH_OK, &(lash_recovered){0}, NULL, now + 1);
    step(t, now + 1);
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
    C.lease_ms = 600000; /* no renew in the way */
    row s[] = {{.id = "a", .fence = 4}};
    t = running(s, 1, T0);
    int64_t beat = T0 + LASH_TURN_BEAT_MS;
    lash_turn_tick(t, beat);
    step(t, beat);
    cr_assert_eq(claim_for(0)->n, 0);
    lash_turn_exited(t, 0, LASH_OUT_OK, "", 0, beat);
    step(t, beat);
    answer(t, nth(LASH_ACT_COMPLETE, 0)->cmd, 1, 1, beat);
    lash_turn_shutdown(t, beat);
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
    cr_assert_eq(now, T0 + C.grace_ms + C.kill_grace_ms + 2 * RT());
    lash_turn_free(t);
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

/* A process that finishes its work when the shutdown's TERM reaches it (it
 * traps TERM and exits 0) records its own outcome: releasing it would throw
 * the result away and run it again elsewhere. One that dies of the TERM is
 * released, marked as having run (release.lua abandons an on_lost=abandon row). */
Test(turn, a_process_that_exits_0_on_the_shutdown_term_records_its_result)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 2}};
    lash_turn *t = running(r, 2, T0);
    lash_turn_shutdown(t, T0 + 1);
    int64_t g = T0 + 1 + C.grace_ms;
    lash_turn_tick(t, g);
    step(t, g);
    cr_assert_eq(count(LASH_ACT_KILL), 2);
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "done", 4, g + 1);
    lash_turn_exited(t, slot_of(t, "b"), LASH_OUT_FAIL, "killed by signal 15", 19, g + 1);
    step(t, g + 1);
    const lash_action *c = nth(LASH_ACT_COMPLETE, 0), *l = nth(LASH_ACT_RELEASE, 0);
    cr_assert_not_null(c);
    cr_assert_eq(c->n, 1);
    cr_assert_str_eq(c->completions[0].lease.id, "a");
    cr_assert_eq(c->completions[0].outcome, LASH_OUT_OK);
    cr_assert_eq(memcmp(c->completions[0].text, "done", 4), 0);
    cr_assert_not_null(l);
    cr_assert_eq(l->n, 1);
    cr_assert_str_eq(l->leases[0].id, "b");
    cr_assert(l->ran[0], "b ran: its release says so");
    lash_turn_free(t);
}

/* ---- faults at the edges ---- */

/* The reviewer's case: lease 30 s, poll 60 s, an error reply: every command,
 * renews included, was held for the poll interval and no timer was armed for
 * the lease's end; the lease ran out in Redis while the process ran on. */
Test(turn, an_error_reply_holds_renews_for_a_fraction_of_the_lease_only)
{
    cfg();
    C.lease_ms = 30000;
    C.poll_ms = 60000;
    row r[] = {{.id = "a", .fence = 1}};
    lash_turn *t = running(r, 1, T0);
    int64_t now = T0 + C.lease_ms / 3;
    lash_turn_tick(t, now);
    step(t, now);
    const lash_action *a = nth(LASH_ACT_RENEW, 0);
    cr_assert_not_null(a);
    lash_turn_replied(t, a->cmd, LASH_EREDIS, NULL, 0, "renew: Redis said: LOADING", now + 1);
    step(t, now + 1);
    cr_assert_leq(timer_at, now + 1 + C.lease_ms / 6, "the retry is armed within lease/6");
    int64_t retry = timer_at;
    lash_turn_tick(t, retry);
    step(t, retry);
    cr_assert_eq(count(LASH_ACT_RENEW), 1, "the renew goes out again at %lld ms",
                 (long long)(retry - now));
    /* And should every renew fail, the lease's own end is armed: the process
     * is stopped when it runs out, not a poll interval later. */
    int64_t until = T0 + C.lease_ms;
    for (int i = 0; i < 20 && timer_at < until; i++) {
        a = nth(LASH_ACT_RENEW, 0);
        if (a) lash_turn_replied(t, a->cmd, LASH_EREDIS, NULL, 0, "LOADING", timer_at);
        int64_t at = timer_at;
        lash_turn_tick(t, at);
        step(t, at);
    }
    cr_assert_eq(timer_at, until, "the lease's end is armed");
    lash_turn_tick(t, until);
    step(t, until);
    cr_assert_eq(count(LASH_ACT_KILL), 1, "stopped when the lease ran out");
    lash_turn_free(t);
}

/* The reviewer's case: lease 1 s, the claim's reply at +5 s started the
 * process, and it was killed at the next tick. It is handed back unrun. */
Test(turn, a_claim_answered_after_half_the_lease_starts_nothing)
{
    cfg();
    C.lease_ms = 1000;
    lash_turn *t = boot(T0);
    const lash_action *c = claim_for(0);
    cr_assert_not_null(c);
    row r[] = {{.id = "a", .fence = 7}};
    give(t, c->cmd, 1, r, 1, T0 + 600);
    step(t, T0 + 600);
    cr_assert_eq(count(LASH_ACT_START), 0);
    const lash_action *l = nth(LASH_ACT_RELEASE, 0);
    cr_assert_not_null(l, "handed back at once");
    cr_assert_str_eq(l->leases[0].id, "a");
    cr_assert_eq(l->leases[0].fence, 7);
    cr_assert_not(l->ran[0], "it never ran: the release costs it nothing");
    cr_assert(logged("handed back unrun"));
    lash_turn_free(t);
}

Test(turn, the_reply_timeout_follows_the_lease)
{
    cfg();
    C.lease_ms = 600;
    cr_assert_eq(RT(), 200);
    C.lease_ms = 300000;
    cr_assert_eq(RT(), 10000);
    C.reply_timeout_ms = 150;
    C.lease_ms = 300;
    lash_err e;
    cr_assert_eq(lash_turn_config_check(&C, &e), LASH_EINVAL, "150 ms is over a third of 300");
    cr_assert(strstr(e.msg, "reply_timeout_ms"), "%s", e.msg);
}

/* A claim whose reply is lost with the connection may have leased rows: they
 * are asked for (RECOVER, with the claim's seq) before any new claim of the
 * queue, and handed back unrun, so none costs an attempt. */
Test(turn, the_rows_of_a_lost_claim_are_recovered_and_handed_back)
{
    cfg();
    lash_turn *t = boot(T0);
    uint32_t lost = claim_for(0)->cmd;
    lash_turn_disconnected(t, T0 + 5);
    step(t, T0 + 5);
    lash_turn_tick(t, timer_at);
    step(t, timer_at);
    cr_assert_eq(count(LASH_ACT_CONNECT), 1);
    int64_t now = timer_at + 1;
    lash_turn_connected(t, now);
    step(t, now);
    cr_assert_null(claim_for(0), "no claim before the lost one's rows are known");
    const lash_action *a = nth(LASH_ACT_RECOVER, 0);
    cr_assert_not_null(a);
    cr_assert_eq(a->seq, lost);
    lash_lease got[] = {{"x", "w1", 41}, {"y", "w1", 42}};
    lash_recovered rec = {2, got};
    lash_turn_recovered(t, a->cmd, LASH_OK, &rec, NULL, now + 1);
    step(t, now + 1);
    const lash_action *l = nth(LASH_ACT_RELEASE, 0);
    cr_assert_not_null(l);
    cr_assert_eq(l->n, 2);
    cr_assert(!l->ran[0] && !l->ran[1]);
    cr_assert_eq(lash_turn_counters(t)->rows_recovered, 2);
    cr_assert_not_null(claim_for(0), "then the queue is claimed again");
    lash_turn_free(t);
}

/* An error reply means the script wrote nothing (scripts check before their
 * first write): nothing to recover. */
Test(turn, a_claim_refused_by_redis_needs_no_recovery)
{
    cfg();
    lash_turn *t = boot(T0);
    lash_claim_batch none = {0};
    lash_turn_claimed(t, claim_for(0)->cmd, LASH_EREDIS, &none, "claim: OOM", T0 + 1);
    int64_t now = T0 + C.poll_ms * 2;
    lash_turn_tick(t, now);
    step(t, now);
    cr_assert_eq(count(LASH_ACT_RECOVER), 0);
    peek_answer(t, 0, true, now);
    step(t, now);
    cr_assert_eq(count(LASH_ACT_CLAIM), 1);
    lash_turn_free(t);
}

/* A persistent fault (WRONGTYPE, OOM, READONLY, MOVED) fails every claim: it
 * is logged once, then summed up at a slowing rate, and its end is logged. */
Test(turn, a_persistent_fault_is_logged_once_then_summed_up)
{
    cfg();
    C.poll_ms = 100;
    lash_turn *t = boot(T0);
    int lines = 0, summaries = 0;
    int64_t now = T0;
    const char *why = "claim: Redis said: WRONGTYPE Operation against a key";
    for (int i = 0; i < 600; i++) { /* a minute of failing polls */
        /* Every look finds rows (they are there); every claim fails. */
        while (claim_for(0) || peek_for(0)) {
            const lash_action *c = claim_for(0);
            lash_claim_batch none = {0};
            if (c) lash_turn_claimed(t, c->cmd, LASH_EREDIS, &none, why, now);
            if (peek_for(0)) peek_answer(t, 0, true, now);
            step(t, now);
            lines += logged("claim failed");
            summaries += logged("claim still failing");
        }
        now += C.poll_ms;
        lash_turn_tick(t, now);
        step(t, now);
    }
    cr_assert_eq(lines, 1, "the first failure is logged once");
    cr_assert_geq(summaries, 4, "then summed up (%d lines)", summaries);
    cr_assert_leq(summaries, 8, "at a slowing rate, not per poll (%d lines)", summaries);
    while (!claim_for(0)) {
        now += C.poll_ms;
        lash_turn_tick(t, now);
        step(t, now);
        if (peek_for(0)) peek_answer(t, 0, true, now), step(t, now);
    }
    lash_claim_batch none = {0};
    lash_turn_claimed(t, claim_for(0)->cmd, LASH_OK, &none, NULL, now);
    drain(t);
    cr_assert(logged("claim works again after"), "the fault's end is logged");
    lash_turn_free(t);
}

/* ---- progress ---- */

/* The first report of a process goes with the next flush; those that follow
 * within LASH_TURN_PROGRESS_MS wait, and only the latest of them goes, when
 * the interval is over (the timer is armed for it). */
Test(turn, progress_goes_at_once_then_the_latest_once_an_interval)
{
    cfg();
    row r[] = {{.id = "a", .fence = 7}};
    lash_turn *t = running(r, 1, T0);
    int s = slot_of(t, "a");
    lash_turn_progress(t, s, 10, "ten", 3, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_PROGRESS), 1);
    const lash_action *a = nth(LASH_ACT_PROGRESS, 0);
    cr_assert_eq(a->n, 1);
    cr_assert_str_eq(a->progress[0].lease.id, "a");
    cr_assert_str_eq(a->progress[0].lease.owner, "w1");
    cr_assert_eq(a->progress[0].lease.fence, 7);
    cr_assert_eq(a->progress[0].percent, 10);
    cr_assert_eq(a->progress[0].text_len, 3);
    cr_assert_eq(memcmp(a->progress[0].text, "ten", 3), 0);
    answer(t, a->cmd, 1, LASH_PROGRESS_RECORDED, T0 + 2);
    for (int p = 20; p <= 40; p += 10) {
        lash_turn_progress(t, s, p, "later", 5, T0 + 2 + p);
        step(t, T0 + 2 + p);
        cr_assert_eq(count(LASH_ACT_PROGRESS), 0, "within the interval: held");
    }
    cr_assert_leq(timer_at, T0 + 1 + LASH_TURN_PROGRESS_MS, "the timer wakes for the held one");
    lash_turn_tick(t, T0 + 1 + LASH_TURN_PROGRESS_MS);
    step(t, T0 + 1 + LASH_TURN_PROGRESS_MS);
    cr_assert_eq(count(LASH_ACT_PROGRESS), 1);
    a = nth(LASH_ACT_PROGRESS, 0);
    cr_assert_eq(a->n, 1);
    cr_assert_eq(a->progress[0].percent, 40, "the latest wins");
    cr_assert_eq(lash_turn_counters(t)->progress_sent, 2);
    lash_turn_free(t);
}

/* A handler reporting every 10 ms for 10 s costs Redis one write per interval. */
Test(turn, a_flood_of_reports_is_held_to_one_write_an_interval)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}};
    lash_turn *t = running(r, 1, T0);
    int s = slot_of(t, "a"), writes = 0, last = -1;
    int64_t prev = -1;
    const lash_action *a;
    for (int64_t now = T0 + 1; now <= T0 + 10000; now += 10) {
        lash_turn_progress(t, s, (int)((now - T0) / 100), "x", 1, now);
        if (timer_at >= 0 && now >= timer_at) lash_turn_tick(t, now);
        step(t, now);
        for (int i = 0; (a = nth(LASH_ACT_PROGRESS, i)); i++) {
            writes++;
            cr_assert(prev < 0 || now - prev >= LASH_TURN_PROGRESS_MS, "writes %lld ms apart",
                      (long long)(now - prev));
            prev = now;
            last = a->progress[0].percent;
            answer(t, a->cmd, 1, LASH_PROGRESS_RECORDED, now);
        }
        for (int i = 0; (a = nth(LASH_ACT_RENEW, i)); i++)
            answer(t, a->cmd, a->n, LASH_RENEW_OK, now);
    }
    cr_assert_leq(writes, 10000 / LASH_TURN_PROGRESS_MS + 1, "%d writes", writes);
    cr_assert_geq(writes, 10000 / LASH_TURN_PROGRESS_MS - 1, "%d writes", writes);
    cr_assert_geq(last, 95, "the latest values go, not the first ones");
    lash_turn_free(t);
}

/* The reports of one queue's processes whose turn has come share one call. */
Test(turn, progress_is_batched_per_queue)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 2}, {.id = "c", .fence = 3}};
    lash_turn *t = running(r, 3, T0);
    lash_turn_progress(t, slot_of(t, "a"), 1, "", 0, T0 + 1);
    lash_turn_progress(t, slot_of(t, "c"), 3, "c", 1, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_PROGRESS), 1);
    const lash_action *a = nth(LASH_ACT_PROGRESS, 0);
    cr_assert_eq(a->n, 2);
    cr_assert_eq(a->progress[0].percent + a->progress[1].percent, 4);
    lash_turn_free(t);
}

/* Handlers that report nothing cost nothing: no progress command, ever. */
Test(turn, no_report_no_progress_command)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 2}};
    lash_turn *t = running(r, 2, T0);
    const lash_action *a;
    for (int64_t now = T0 + 100; now <= T0 + 60000; now += 100) {
        if (timer_at >= 0 && now >= timer_at) lash_turn_tick(t, now);
        step(t, now);
        cr_assert_eq(count(LASH_ACT_PROGRESS), 0);
        for (int i = 0; (a = nth(LASH_ACT_RENEW, i)); i++)
            answer(t, a->cmd, a->n, LASH_RENEW_OK, now);
        for (int i = 0; (a = nth(LASH_ACT_CLAIM, i)); i++)
            give_none(t, a->cmd, now);
        for (int i = 0; (a = nth(LASH_ACT_PEEK, i)); i++)
            lash_turn_peeked(t, a->cmd, LASH_OK, -1, NULL, now);
    }
    cr_assert_eq(lash_turn_counters(t)->progress_sent, 0);
    lash_turn_free(t);
}

/* A report still held when its process ends is dropped: the outcome says more. */
Test(turn, a_held_report_is_dropped_when_the_process_ends)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}};
    lash_turn *t = running(r, 1, T0);
    int s = slot_of(t, "a");
    lash_turn_progress(t, s, 10, "", 0, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_PROGRESS), 1);
    lash_turn_progress(t, s, 90, "", 0, T0 + 2);
    lash_turn_exited(t, s, LASH_OUT_OK, "", 0, T0 + 3);
    step(t, T0 + 3);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 1);
    lash_turn_tick(t, T0 + 1000);
    step(t, T0 + 1000);
    cr_assert_eq(count(LASH_ACT_PROGRESS), 0);
    lash_turn_free(t);
}

/* Reports out of bounds, for a free slot or from a process whose lease is lost
 * never reach Redis. */
Test(turn, bad_reports_and_lost_leases_send_nothing)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 2}};
    lash_turn *t = running(r, 2, T0);
    int a = slot_of(t, "a"), b = slot_of(t, "b");
    lash_turn_progress(t, a, 101, "", 0, T0 + 1);
    lash_turn_progress(t, a, -1, "", 0, T0 + 1);
    lash_turn_progress(t, a, 5, "bell\a", 5, T0 + 1);
    lash_turn_progress(t, a, 5, "\xff", 1, T0 + 1);
    char big[LASH_PROGRESS_TEXT_MAX + 2];
    memset(big, 'x', sizeof big);
    lash_turn_progress(t, a, 5, big, sizeof big, T0 + 1);
    lash_turn_progress(t, 3, 5, "", 0, T0 + 1);  /* a free slot */
    lash_turn_progress(t, 99, 5, "", 0, T0 + 1); /* no such slot */
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_PROGRESS), 0);
    /* b's lease is lost: its reports go nowhere. */
    lash_turn_tick(t, T0 + C.lease_ms / 3);
    step(t, T0 + C.lease_ms / 3);
    const lash_action *rn = nth(LASH_ACT_RENEW, 0);
    cr_assert_not_null(rn);
    int st[2];
    for (int i = 0; i < rn->n; i++)
        st[i] = strcmp(rn->leases[i].id, "b") == 0 ? LASH_RENEW_LOST : LASH_RENEW_OK;
    lash_turn_replied(t, rn->cmd, LASH_OK, st, (size_t)rn->n, NULL, T0 + C.lease_ms / 3 + 1);
    drain(t);
    lash_turn_progress(t, b, 50, "", 0, T0 + C.lease_ms / 3 + 2);
    step(t, T0 + C.lease_ms / 3 + 2);
    cr_assert_eq(count(LASH_ACT_PROGRESS), 0);
    lash_turn_free(t);
}

/* A stale answer is counted, and changes nothing else: the renew finds a lost
 * lease, not the progress. */
Test(turn, a_stale_progress_answer_is_counted_only)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}};
    lash_turn *t = running(r, 1, T0);
    lash_turn_progress(t, slot_of(t, "a"), 10, "", 0, T0 + 1);
    step(t, T0 + 1);
    answer(t, nth(LASH_ACT_PROGRESS, 0)->cmd, 1, LASH_PROGRESS_STALE, T0 + 2);
    drain(t);
    cr_assert_eq(count(LASH_ACT_KILL), 0);
    cr_assert_eq(lash_turn_counters(t)->progress_stale, 1);
    cr_assert_eq(lash_turn_running(t), 1);
    lash_turn_free(t);
}
