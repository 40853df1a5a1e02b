/* test_states.c: the transition table (proto/state.c) is what the Lua scripts do.
 *
 * The scripts move rows; lash_state_next writes the same rules down once for C.
 * Every cell of the table is driven here through the real scripts on a real
 * Redis: a row is brought to the state (by the scripts), given the facts (lease
 * live or not, attempts left or not, on_lost, a cancel asked: raw writes, as
 * a hand or a crash could leave them), then the transition's script call is made
 * and the row's state read back. A cell the table says is an edge must end in
 * its state and write an event; a cell it says is none must leave the state as
 * it was and write nothing. A change to either side alone fails here, naming
 * the cell.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keys.h"
#include "proto/state.h"
#include "rfx.h"

TestSuite(states, .init = rfx_setup, .fini = rfx_teardown, .timeout = 120);

#define ID "x"
#define OWNER "w1"

/* Brings row ID of queue q to state s through the scripts. */
static void reach(const char *q, lash_state s)
{
    lash_fx_events_all(C, q); /* every transition logged: how an edge is told from none */
    lash_submission sub = job(ID, "k", "{}");
    sub.max_attempts = 2;
    if (s == LASH_ABANDONED) sub.on_lost = LASH_ON_LOST_ABANDON;
    submit_ok(q, sub);
    if (s == LASH_PENDING) return;
    if (s == LASH_CANCELLED) {
        bool requested;
        cr_assert_eq(lash_cancel(C, q, ID, NULL, &requested, NULL), LASH_OK);
        return;
    }
    int64_t fence = claim_one(q, OWNER, ID, TTL_LONG);
    if (s == LASH_COMPLETED)
        cr_assert_eq(complete1(q, ID, OWNER, fence, LASH_OUT_OK, "done", 0), LASH_DONE_RECORDED);
    if (s == LASH_FAILED)
        cr_assert_eq(complete1(q, ID, OWNER, fence, LASH_OUT_ABORT, "no", 0), LASH_DONE_RECORDED);
    if (s == LASH_ABANDONED) {
        lash_lease l = {ID, OWNER, fence};
        bool ran = true;
        int st;
        cr_assert_eq(lash_release(C, q, &l, &ran, 1, &st, NULL), LASH_OK);
        cr_assert_eq(st, LASH_RELEASED);
    }
    expect_state(q, ID, lash_state_name(s));
}

/* Gives the row the facts f by raw writes; returns the fence its lease names. */
static int64_t give(const char *q, unsigned f)
{
    char rk[LASH_KEY_MAX], lk[LASH_KEY_MAX];
    lash_key_row(rk, q, ID);
    lash_key_lease(lk, q, ID);
    char *fence_s = hget(q, ID, "fence");
    if (!fence_s) cmd_ok("HSET %s fence 7", rk); /* never claimed: a fence to name */
    free(fence_s);
    int64_t fence = F(q, ID);
    cmd_ok("HSET %s attempt 1 max_attempts %d", rk, f & LASH_ROW_ATTEMPTS_LEFT ? 2 : 1);
    if (f & LASH_ROW_ABANDON)
        cmd_ok("HSET %s on_lost abandon", rk);
    else
        cmd_ok("HDEL %s on_lost", rk);
    if (f & LASH_ROW_CANCEL_ASKED)
        cmd_ok("HSET %s cancel 1", rk);
    else
        cmd_ok("HDEL %s cancel", rk);
    if (f & LASH_ROW_LEASED)
        cmd_ok("SET %s %s:%lld PX %d", lk, OWNER, (long long)fence, TTL_LONG);
    else
        cmd_ok("DEL %s", lk);
    return fence;
}

/* Makes transition t's script call on the row. */
static void drive(const char *q, lash_transition t, int64_t fence)
{
    char due[LASH_KEY_MAX];
    lash_lease l = {ID, OWNER, fence};
    lash_completion c = {.lease = l, .text = "t", .text_len = 1};
    bool ran = t == LASH_T_RELEASE_RAN, requested;
    int st;
    lash_claim_batch b;
    switch (t) {
    case LASH_T_CLAIM:
        cmd_ok("ZADD %s 0 %s", lash_key(due, q, LASH_KEY_DUE), ID); /* due now */
        cr_assert_eq(lash_claim(C, q, "w2", 1, TTL_LONG, KEEP_ALL, 0, -1, &b, NULL), LASH_OK);
        lash_claim_batch_free(&b);
        break;
    case LASH_T_CANCEL:
        lash_cancel(C, q, ID, NULL, &requested, NULL); /* refused on a terminal row */
        break;
    case LASH_T_COMPLETE_OK:
    case LASH_T_COMPLETE_FAIL:
    case LASH_T_COMPLETE_CANCEL:
    case LASH_T_COMPLETE_ABORT:
        c.outcome = t == LASH_T_COMPLETE_OK       ? LASH_OUT_OK
                    : t == LASH_T_COMPLETE_FAIL   ? LASH_OUT_FAIL
                    : t == LASH_T_COMPLETE_CANCEL ? LASH_OUT_CANCEL
                                                  : LASH_OUT_ABORT;
        cr_assert_eq(lash_complete(C, q, &c, 1, &st, NULL), LASH_OK);
        break;
    case LASH_T_RELEASE_UNRUN:
    case LASH_T_RELEASE_RAN:
        cr_assert_eq(lash_release(C, q, &l, &ran, 1, &st, NULL), LASH_OK);
        break;
    case LASH_T_REOPEN:
        lash_retry(C, q, ID, NULL); /* refused unless failed, cancelled or abandoned */
        break;
    default:
        cr_assert_fail("no driver for transition %d", t);
    }
}

static const char *facts_text(unsigned f, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s%s%s%s", f & LASH_ROW_LEASED ? "leased " : "not-leased ",
             f & LASH_ROW_ATTEMPTS_LEFT ? "attempts-left " : "no-attempts-left ",
             f & LASH_ROW_ABANDON ? "abandon " : "rerun ",
             f & LASH_ROW_CANCEL_ASKED ? "cancel-asked" : "no-cancel");
    return buf;
}

/* Every transition and every set of facts from state s. */
static void check_from(lash_state s)
{
    int cells = 0, edges = 0;
    for (int t = 0; t < LASH_T_COUNT; t++) {
        for (unsigned f = 0; f < LASH_ROW_FACTS; f++) {
            char q[32], events[LASH_KEY_MAX], facts[96];
            snprintf(q, sizeof q, "t%df%u", t, f);
            reach(q, s);
            int64_t fence = give(q, f);
            lash_key(events, q, LASH_KEY_EVENTS);
            long long before = cmd_int("XLEN %s", events);
            drive(q, (lash_transition)t, fence);
            long long after = cmd_int("XLEN %s", events);
            char *now = hget(q, ID, "state");
            int got = now ? lash_state_parse(now) : -1;
            int want = lash_state_next(s, (lash_transition)t, f);
            facts_text(f, facts, sizeof facts);
            if (want < 0) {
                cr_expect(got == (int)s && after == before,
                          "%s --%s--> [%s]: the table has no edge, but the scripts moved the row "
                          "to %s (%lld event(s))",
                          lash_state_name(s), lash_transition_name((lash_transition)t), facts,
                          now ? now : "(gone)", after - before);
            } else {
                cr_expect(got == want && after > before,
                          "%s --%s--> [%s]: the table says %s, the scripts left it %s "
                          "(%lld event(s))",
                          lash_state_name(s), lash_transition_name((lash_transition)t), facts,
                          lash_state_name((lash_state)want), now ? now : "(gone)", after - before);
                edges++;
            }
            free(now);
            cells++;
        }
    }
    cr_expect_eq(cells, LASH_T_COUNT * LASH_ROW_FACTS);
    /* Every state but completed has a way out. */
    if (s != LASH_COMPLETED) cr_expect_gt(edges, 0, "%s has no edge", lash_state_name(s));
}

Test(states, pending_rows_move_as_the_table_says)
{
    check_from(LASH_PENDING);
}

Test(states, running_rows_move_as_the_table_says)
{
    check_from(LASH_RUNNING);
}

Test(states, completed_rows_never_move)
{
    check_from(LASH_COMPLETED);
}

Test(states, failed_rows_move_as_the_table_says)
{
    check_from(LASH_FAILED);
}

Test(states, cancelled_rows_move_as_the_table_says)
{
    check_from(LASH_CANCELLED);
}

Test(states, abandoned_rows_move_as_the_table_says)
{
    check_from(LASH_ABANDONED);
}
