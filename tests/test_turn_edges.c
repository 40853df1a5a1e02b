/* test_turn_edges.c: the turn machine (worker/turn.h) at its edges: the
 * connection lost and found again, shutdown, faults (error replies, lost
 * claims, slow replies) and progress reports. Driven by hand like
 * test_turn.c, with the same fixture (tfx.h).
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tfx.h"

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
    cr_assert_eq(count(LASH_ACT_RELEASE), 0,
                 "nor handed back: the claim that takes it again counts the attempt");
    lash_turn_free(t);
}

/* A worker paused past its lease (a freeze, a stopped VM): its loop may flush
 * before the tick that finds the lease lost. No renew goes for it: Redis may
 * still hold the key (its clock started later) and would extend, for a whole
 * lease, a row this worker is about to give up (the simulation, seed 203693). */
Test(turn, a_lease_that_ran_out_during_a_pause_is_not_renewed)
{
    cfg();
    row r[] = {{.id = "a", .fence = 1}};
    lash_turn *t = running(r, 1, T0);
    int64_t now = T0 + C.lease_ms + 50; /* the first moment after the pause */
    step(t, now);                       /* a flush, no tick yet */
    cr_assert_eq(count(LASH_ACT_RENEW), 0, "a lease run out by our clock is not renewed");
    lash_turn_tick(t, now);
    step(t, now);
    cr_assert(lash_turn_slot(t, slot_of(t, "a"))->lost);
    cr_assert_eq(count(LASH_ACT_KILL), 1);
    cr_assert_eq(count(LASH_ACT_RENEW), 0);
    lash_turn_free(t);
}

/* The race the fleet simulation found: a drain whose grace ends while Redis is
 * away; Redis comes back just before the lease runs out by the worker's clock,
 * and the renew sent then is answered after it ran out. The answer says the
 * lease is still this worker's, so the exit hands it back before exiting
 * ("SIGTERM drains: no lease left"), rather than leaving it for a lease's
 * length. */
Test(turn, shutdown_hands_back_a_lease_its_clock_gave_up)
{
    cfg();
    C.grace_ms = C.lease_ms / 2;
    row r[] = {{.id = "a", .fence = 1}};
    lash_turn *t = running(r, 1, T0);
    int sa = slot_of(t, "a");
    int64_t until = lash_turn_slot(t, sa)->lease_until;
    lash_turn_disconnected(t, T0 + 1);
    lash_turn_shutdown(t, T0 + 2);
    step(t, T0 + 2);
    int64_t now = T0 + 2;
    while (timer_at < until - 5) { /* Redis away: every reconnect refused */
        now = timer_at;
        lash_turn_tick(t, now);
        step(t, now);
        if (count(LASH_ACT_CONNECT)) lash_turn_disconnected(t, now);
    }
    cr_assert(lash_turn_slot(t, sa)->releasing, "the grace is over: it is being stopped");
    now = until - 5;
    lash_turn_tick(t, now);
    step(t, now);
    if (count(LASH_ACT_CONNECT) == 0) { /* the backoff has not come round yet */
        lash_turn_disconnected(t, now);
        step(t, now);
    }
    lash_turn_connected(t, now);
    step(t, now);
    const lash_action *rn = nth(LASH_ACT_RENEW, 0);
    cr_assert_not_null(rn, "a lease is renewed at once after a reconnect");
    uint32_t renew = rn->cmd;
    lash_turn_tick(t, until);
    step(t, until);
    cr_assert(lash_turn_slot(t, sa)->lost, "its clock says the lease ran out");
    answer(t, renew, 1, LASH_RENEW_OK, until);
    step(t, until);
    lash_turn_exited(t, sa, LASH_OUT_FAIL, "killed", 6, until + 5);
    step(t, until + 5);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 0);
    cr_assert_eq(count(LASH_ACT_RELEASE), 1, "exits holding a lease Redis just renewed");
    const lash_action *a = nth(LASH_ACT_RELEASE, 0);
    cr_assert_str_eq(a->leases[0].id, "a");
    cr_assert(a->ran[0]);
    cr_assert_eq(count(LASH_ACT_EXIT), 0, "not before the release is acknowledged");
    answer(t, a->cmd, 1, 1, until + 6);
    drain(t);
    cr_assert_eq(count(LASH_ACT_EXIT), 1);
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
