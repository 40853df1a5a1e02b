/* test_turn.c: the worker's sans-IO turn machine (worker/turn.h), driven by hand:
 * connecting and drives, the poll, leases and outcomes. Reconnects, shutdown,
 * faults at the edges and progress: test_turn_edges.c. The fixture: tfx.h.
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

#include "tfx.h"

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

Test(turn, a_short_claim_that_says_when_the_next_row_is_due_wakes_the_worker_then)
{
    cfg();
    lash_turn *t = boot(T0);
    lash_claim_batch b = {.seen = 0, .wait_ms = 25}; /* a poke's claim: the row is 25 ms out */
    lash_turn_claimed(t, claim_for(0)->cmd, LASH_OK, &b, NULL, T0);
    step(t, T0);
    cr_assert_eq(timer_at, T0 + 25, "armed for the row's time");
    lash_turn_tick(t, T0 + 25);
    step(t, T0 + 25);
    cr_assert_not_null(claim_for(0), "claimed at the row's time");
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
