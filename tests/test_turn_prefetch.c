/* test_turn_prefetch.c: the turn machine's prefetch (worker/turn.h, "slots"):
 * rows claimed beyond the running ones are held, leased and renewed, and start
 * in claim order the moment a running one ends; a prefetched row that is cancelled
 * is recorded cancelled, one whose lease is lost is handed back unrun, and so
 * are prefetched rows at the shutdown. The fixture: tfx.h. */
#include <criterion/criterion.h>
#include <string.h>

#include "tfx.h"

/* A machine of one running slot and `prefetch` more, holding rows r[0..n)
 * claimed at now: r[0] runs, the rest are held. */
static lash_turn *one_and_prefetched(int prefetch, const row *r, int n, int64_t now)
{
    cfg();
    C.concurrency = 1;
    C.prefetch = prefetch;
    lash_turn *t = boot(now);
    const lash_action *c = claim_for(0);
    cr_assert_not_null(c);
    cr_assert_eq(c->n, 1 + prefetch, "a claim asks for the running slots and the prefetched ones");
    give(t, c->cmd, (size_t)n, r, n, now);
    step(t, now);
    cr_assert_eq(count(LASH_ACT_START), 1, "one runs");
    cr_assert_eq(lash_turn_running(t), 1);
    cr_assert_eq(lash_turn_prefetched(t), n - 1, "the rest wait, prefetched");
    return t;
}

/* Ticks t at now and answers what it sent: renews OK, claims (heartbeats) empty. */
static void tick_answered(lash_turn *t, int64_t now)
{
    lash_turn_tick(t, now);
    step(t, now);
    const lash_action *r = nth(LASH_ACT_RENEW, 0), *c = claim_for(0);
    uint32_t rc = r ? r->cmd : 0, cc = c ? c->cmd : 0;
    int rn = r ? r->n : 0;
    if (rc) answer(t, rc, rn, LASH_RENEW_OK, now);
    if (cc) give_none(t, cc, now);
}

/* The renew due at a third of the lease, answered: status for id, OK for the
 * rest; then a loop iteration. */
static void renew_says(lash_turn *t, const char *id, int status)
{
    int64_t now = T0 + C.lease_ms / 3;
    lash_turn_tick(t, now);
    step(t, now);
    const lash_action *a = nth(LASH_ACT_RENEW, 0);
    cr_assert_not_null(a);
    int st[LASH_BATCH_MAX];
    for (int i = 0; i < a->n; i++)
        st[i] = strcmp(a->leases[i].id, id) == 0 ? status : LASH_RENEW_OK;
    lash_turn_replied(t, a->cmd, LASH_OK, st, (size_t)a->n, NULL, now);
    step(t, now);
}

/* The id of the row the i-th START of the last drain started. */
static const char *started(const lash_turn *t, int i)
{
    return lash_turn_slot(t, nth(LASH_ACT_START, i)->slot)->id;
}

Test(prefetch, a_config_past_its_bounds_builds_no_machine)
{
    cfg();
    C.prefetch = -1;
    cr_assert_null(lash_turn_new(&C, "w1"));
    C.prefetch = LASH_TURN_CONCURRENCY_MAX + 1;
    cr_assert_null(lash_turn_new(&C, "w1"));
    lash_err e;
    cr_assert_eq(lash_turn_config_check(&C, &e), LASH_EINVAL);
    cr_assert(strstr(e.msg, "prefetch"), "the error names the setting: %s", e.msg);
}

Test(prefetch, held_rows_start_in_claim_order_as_running_ones_end)
{
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 1}, {.id = "c", .fence = 1}};
    lash_turn *t = one_and_prefetched(2, r, 3, T0);
    cr_assert_str_eq(started(t, 0), "a");
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "a full claim drives again only when slots free");
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "", 0, T0 + 1);
    drain(t);
    cr_assert_eq(count(LASH_ACT_START), 1, "the next starts as the last ends, before any flush");
    cr_assert_str_eq(started(t, 0), "b");
    lash_turn_flush(t, T0 + 1);
    drain(t);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 1);
    cr_assert_eq(count(LASH_ACT_CLAIM), 1, "the freed slot is claimed again");
    cr_assert_eq(claim_for(0)->n, 1);
    lash_turn_exited(t, slot_of(t, "b"), LASH_OUT_OK, "", 0, T0 + 2);
    drain(t);
    cr_assert_str_eq(started(t, 0), "c");
    cr_assert_eq(lash_turn_running(t), 1);
    cr_assert_eq(lash_turn_prefetched(t), 0);
    lash_turn_free(t);
}

Test(prefetch, a_prefetched_row_never_starts_while_the_running_slots_are_full)
{
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 1}};
    lash_turn *t = one_and_prefetched(1, r, 2, T0);
    for (int64_t now = T0 + 1; now < T0 + 2 * C.lease_ms; now += C.lease_ms / 7) {
        tick_answered(t, now);
        cr_assert_eq(count(LASH_ACT_START), 0);
    }
    cr_assert_eq(lash_turn_running(t), 1);
    lash_turn_free(t);
}

Test(prefetch, held_rows_are_renewed_with_the_running_ones)
{
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 2}};
    lash_turn *t = one_and_prefetched(1, r, 2, T0);
    int64_t now = T0 + C.lease_ms / 3;
    lash_turn_tick(t, now);
    step(t, now);
    const lash_action *a = nth(LASH_ACT_RENEW, 0);
    cr_assert_not_null(a);
    cr_assert_eq(a->n, 2, "one renew for the running row and the prefetched one");
    uint32_t hb = claim_for(0) ? claim_for(0)->cmd : 0;
    answer(t, a->cmd, 2, LASH_RENEW_OK, now);
    if (hb) give_none(t, hb, now);
    /* Renewed, the prefetched row outlives its first lease and still starts. */
    for (now = T0 + 2 * C.lease_ms / 3; now <= T0 + 2 * C.lease_ms; now += C.lease_ms / 6)
        tick_answered(t, now);
    cr_assert_eq(lash_turn_prefetched(t), 1);
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "", 0, now);
    drain(t);
    cr_assert_str_eq(started(t, 0), "b");
    lash_turn_free(t);
}

Test(prefetch, a_prefetched_row_whose_lease_runs_out_is_handed_back_unrun)
{
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 1}};
    lash_turn *t = one_and_prefetched(1, r, 2, T0);
    lash_turn_disconnected(t, T0 + 1); /* no renew can go */
    drain(t);
    int64_t now = T0 + C.lease_ms;
    lash_turn_tick(t, now);
    drain(t);
    cr_assert_eq(lash_turn_prefetched(t), 0, "its lease is gone: someone else may run it");
    cr_assert(logged("lease ran out before the row started; handed back"));
    cr_assert_eq(count(LASH_ACT_START), 0);
    cr_assert_eq(lash_turn_counters(t)->leases_lost, 2, "a's lease ran out as well");
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "", 0, now + 1);
    drain(t);
    cr_assert_eq(count(LASH_ACT_START), 0, "b never starts");
    lash_turn_connected(t, now + 2);
    step(t, now + 2);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 0, "a's lease ran out: its outcome is not recorded");
    /* Released unrun: back to pending with its attempt unspent, unless it was
     * claimed meanwhile (then the release answers stale). */
    const lash_action *a = nth(LASH_ACT_RELEASE, 0);
    cr_assert_not_null(a);
    cr_assert_eq(a->n, 1);
    cr_assert_str_eq(a->leases[0].id, "b");
    cr_assert_not(a->ran[0]);
    lash_turn_free(t);
}

Test(prefetch, a_prefetched_row_a_renew_says_is_lost_is_handed_back_unrun)
{
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 1}};
    lash_turn *t = one_and_prefetched(1, r, 2, T0);
    renew_says(t, "b", LASH_RENEW_LOST);
    cr_assert_eq(count(LASH_ACT_KILL), 0, "a prefetched row has no process to stop");
    cr_assert_eq(lash_turn_prefetched(t), 0);
    cr_assert_eq(count(LASH_ACT_RELEASE), 1);
    cr_assert_str_eq(nth(LASH_ACT_RELEASE, 0)->leases[0].id, "b");
    cr_assert_not(nth(LASH_ACT_RELEASE, 0)->ran[0]);
    cr_assert_eq(lash_turn_running(t), 1, "the running row goes on");
    lash_turn_free(t);
}

Test(prefetch, a_prefetched_row_cancelled_is_recorded_cancelled_without_starting)
{
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 4}, {.id = "c", .fence = 1}};
    lash_turn *t = one_and_prefetched(2, r, 3, T0);
    lash_turn_cancel(t, 0, "b", T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_KILL), 0);
    cr_assert_eq(count(LASH_ACT_START), 0);
    const lash_action *a = nth(LASH_ACT_COMPLETE, 0);
    cr_assert_not_null(a);
    cr_assert_eq(a->n, 1);
    cr_assert_str_eq(a->completions[0].lease.id, "b");
    cr_assert_eq(a->completions[0].lease.fence, 4);
    cr_assert_eq(a->completions[0].outcome, LASH_OUT_CANCEL);
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "", 0, T0 + 2);
    drain(t);
    cr_assert_str_eq(started(t, 0), "c", "the cancelled row is skipped");
    lash_turn_free(t);
}

Test(prefetch, a_renew_that_says_cancel_ends_a_prefetched_row_cancelled)
{
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 1}};
    lash_turn *t = one_and_prefetched(1, r, 2, T0);
    renew_says(t, "b", LASH_RENEW_CANCEL);
    cr_assert_eq(count(LASH_ACT_KILL), 0);
    cr_assert_eq(count(LASH_ACT_COMPLETE), 1);
    cr_assert_eq(nth(LASH_ACT_COMPLETE, 0)->completions[0].outcome, LASH_OUT_CANCEL);
    cr_assert_eq(lash_turn_prefetched(t), 0);
    lash_turn_free(t);
}

Test(prefetch, the_shutdown_hands_prefetched_rows_back_unrun_at_once)
{
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 2}, {.id = "c", .fence = 3}};
    lash_turn *t = one_and_prefetched(2, r, 3, T0);
    lash_turn_shutdown(t, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_KILL), 0, "the running one gets its grace");
    const lash_action *a = nth(LASH_ACT_RELEASE, 0);
    cr_assert_not_null(a, "prefetched rows go back before the grace, not after it");
    cr_assert_eq(a->n, 2);
    for (int i = 0; i < 2; i++)
        cr_assert_not(a->ran[i], "a prefetched row never ran: the release costs it no attempt");
    cr_assert_eq(lash_turn_prefetched(t), 0);
    cr_assert(logged("shutting down: 1 running, grace"), "the drain line keeps its words");
    cr_assert(logged("handing back 2 prefetched row(s) unrun"));
    answer(t, a->cmd, 2, 1, T0 + 2);
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "", 0, T0 + 3);
    step(t, T0 + 3);
    cr_assert_eq(count(LASH_ACT_START), 0, "nothing starts once shutting down");
    cr_assert_eq(count(LASH_ACT_COMPLETE), 1);
    answer(t, nth(LASH_ACT_COMPLETE, 0)->cmd, 1, LASH_DONE_RECORDED, T0 + 4);
    drain(t);
    cr_assert_eq(count(LASH_ACT_EXIT), 1);
    lash_turn_free(t);
}

Test(prefetch, a_timeout_counts_from_the_start_not_the_claim)
{
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 1, .timeout_ms = 1000}};
    lash_turn *t = one_and_prefetched(1, r, 2, T0);
    int64_t now = T0 + 5000; /* b waited longer than its timeout: it has not run yet */
    lash_turn_tick(t, now);
    step(t, now);
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "", 0, now);
    drain(t);
    cr_assert_str_eq(started(t, 0), "b");
    int sb = slot_of(t, "b");
    lash_turn_tick(t, now + 999);
    step(t, now + 999);
    cr_assert_eq(count(LASH_ACT_KILL), 0);
    lash_turn_tick(t, now + 1000);
    step(t, now + 1000);
    cr_assert_eq(count(LASH_ACT_KILL), 1);
    cr_assert_eq(nth(LASH_ACT_KILL, 0)->slot, sb, "b's own timeout stops it");
    lash_turn_free(t);
}

Test(prefetch, a_prefetched_row_with_too_little_lease_left_waits_for_its_renew)
{
    row r[] = {{.id = "a", .fence = 1}, {.id = "b", .fence = 1}};
    lash_turn *t = one_and_prefetched(1, r, 2, T0);
    lash_turn_disconnected(t, T0 + 1); /* renews cannot go */
    drain(t);
    int64_t now = T0 + 3 * C.lease_ms / 4; /* a quarter of b's lease left */
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "", 0, now);
    drain(t);
    cr_assert_eq(count(LASH_ACT_START), 0, "b could lose its lease before a renew comes back");
    cr_assert_eq(lash_turn_prefetched(t), 1);
    lash_turn_connected(t, now + 1);
    step(t, now + 1);
    const lash_action *a = nth(LASH_ACT_RENEW, 0);
    cr_assert_not_null(a, "the reconnect renews at once");
    cr_assert_str_eq(a->leases[0].id, "b");
    answer(t, a->cmd, 1, LASH_RENEW_OK, now + 2);
    drain(t);
    cr_assert_eq(count(LASH_ACT_START), 1, "renewed, it starts");
    cr_assert_str_eq(started(t, 0), "b");
    lash_turn_free(t);
}

Test(prefetch, held_rows_are_refilled_in_batches_once_half_the_prefetch_is_free)
{
    row r[] = {{.id = "a", .fence = 1},
               {.id = "b", .fence = 1},
               {.id = "c", .fence = 1},
               {.id = "d", .fence = 1},
               {.id = "e", .fence = 1}};
    lash_turn *t = one_and_prefetched(4, r, 5, T0);
    lash_turn_exited(t, slot_of(t, "a"), LASH_OUT_OK, "", 0, T0 + 1);
    step(t, T0 + 1);
    cr_assert_eq(count(LASH_ACT_CLAIM), 0, "one free slot of four held: not yet");
    lash_turn_exited(t, slot_of(t, "b"), LASH_OUT_OK, "", 0, T0 + 2);
    step(t, T0 + 2);
    cr_assert_eq(count(LASH_ACT_CLAIM), 1, "half the prefetch free: claim");
    cr_assert_eq(claim_for(0)->n, 2);
    row more[] = {{.id = "f", .fence = 1}};
    give(t, claim_for(0)->cmd, 1, more, 1, T0 + 3); /* short: the queue ran dry */
    step(t, T0 + 3);
    static const char *const rest[] = {"c", "d", "e", "f"};
    for (int i = 0; i < 4; i++) {
        cr_assert_geq(slot_of(t, rest[i]), 0, "%s is prefetched or running", rest[i]);
        lash_turn_exited(t, slot_of(t, rest[i]), LASH_OUT_OK, "", 0, T0 + 4);
    }
    step(t, T0 + 4);
    cr_assert_eq(nth(LASH_ACT_COMPLETE, 0)->n, 4, "their outcomes leave in one call");
    cr_assert_eq(lash_turn_running(t) + lash_turn_prefetched(t), 0, "every prefetched row ran");
    lash_turn_free(t);
}
