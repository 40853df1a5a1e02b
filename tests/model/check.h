/* check.h: after every step, Redis against the model and the invariants.
 *
 * The invariants (issue 10) hold whatever the model says, except where a hand
 * broke one and no script has had the chance to repair it yet (the model knows
 * which: it expects the same inconsistency):
 *   due-iff-live       an id is in due iff its row is pending or running;
 *   done-iff-terminal  an id is in done iff its row is terminal;
 *   unreachable        every live row is in due with a score that will pass
 *                      (at most the longest lease or delay ahead);
 *   counters           never below zero; equal to the rows per state while no
 *                      hand changed a row's state since the last recount; the
 *                      totals equal what the model counted;
 *   row-changed        a row changes only when the spec changes it; a terminal
 *                      row never does (terminal-rewritten): its record is
 *                      written once (a stale progress report changes nothing);
 *   prio-in-due        a pending row of priority != 0 waits in prio:wait or
 *                      prio:ready, not in due (unless a hand put it there, or
 *                      it is parked for its dependencies: LM_PRIO_SURVIVES_WAIT);
 *   prio-index         an id waits in at most one of due, prio:wait, prio:ready;
 *   limit-exceeded     rows running with a slot under a live lease never
 *                      outnumber kind k's concurrency limit.
 * Claim order (model.c lm_claim_order): eligible rows by priority desc, then
 * due time, then id; a row of due ranks as priority 0.
 * Then the model itself: each row's form, state, attempt, fence, owner, cancel
 * flag and registration, its lease key, its place in due and done; a row just
 * created carries nothing of an earlier one (leftover-field).
 */
#ifndef LASH_TESTS_MODEL_CHECK_H
#define LASH_TESTS_MODEL_CHECK_H

#include "model.h"
#include "observe.h"

/* The rows as last seen, to tell one that changed without the spec's say. */
typedef struct {
    char *canon[LM_NIDS];
    unsigned version[LM_NIDS];
    char negative[128];         /* the counters below zero at the last check */
    char badfence[LM_NIDS][32]; /* a fence field that was not an integer, as last seen */
    int slots;                  /* rows running with a slot and a live lease, last seen */
} lc_memory;

/* Reports every difference through the model's report (code "<m->op>/<what>")
 * and settles what the spec left open (a moved fence, a junk key that went). */
void lc_check(lm *m, const lo_view *v, lc_memory *mem);
/* After a violation, to go on: the model takes what Redis holds. */
void lc_adopt(lm *m, const lo_view *v, lc_memory *mem);
void lc_memory_free(lc_memory *mem);

#endif
