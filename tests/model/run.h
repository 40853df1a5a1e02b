/* run.h: random step sequences against a real Redis, checked after every step.
 *
 * A step is small and self-contained (its kind, an id, an owner, a count and a
 * salt for every other choice), and is resolved against the model when it runs:
 * "owner w2 completes some of what it holds" picks from what w2 holds then. So
 * any subsequence of a run is itself a run, which is what shrinking needs: a
 * failing sequence of thousands of steps is cut down to the few that matter.
 *
 * Steps: the registry operations (submit, with random priority and `after`;
 * claim, renew, complete, release, cancel, retry, trim; progress, by the
 * holder and by stale tokens; limit, kind k's concurrency set to 1..3 or
 * removed: issue 15), time (advance: one id's lease runs out and its due score
 * passes; short-lease: a real 150 ms lease runs out), an operator's recount, a
 * drain (every id's time passes; claims and completes until nothing is live:
 * every live row must be reachable), and hands that break things (keys of the
 * wrong type, deleted fields and rows, hand-set fences and leases, junk in due
 * and done, a queue-wide key of the wrong type for the length of one call).
 */
#ifndef LASH_TESTS_MODEL_RUN_H
#define LASH_TESTS_MODEL_RUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "registry/registry.h"

typedef enum {
    LR_SUBMIT,
    LR_CLAIM,
    LR_RENEW,
    LR_COMPLETE,
    LR_RELEASE,
    LR_CANCEL,
    LR_RETRY,
    LR_TRIM,
    LR_ADVANCE,
    LR_SHORT_LEASE,
    LR_RECOUNT,
    LR_DRAIN,
    LR_LIMIT,
    LR_PROGRESS,
    LR_ROW_JUNK,
    LR_DEL_ROW,
    LR_DEL_FIELD,
    LR_STATE_JUNK,
    LR_SET_FENCE,
    LR_SET_LEASE,
    LR_LEASE_JUNK,
    LR_DUE_JUNK,
    LR_DONE_JUNK,
    LR_QUEUE_KEY_JUNK,
    LR_KINDS
} lr_kind;

typedef struct {
    uint8_t kind, id, owner, n;
    uint8_t inner; /* LR_QUEUE_KEY_JUNK: the operation run meanwhile */
    uint32_t salt;
} lr_step;

typedef struct {
    char code[128];
    char msg[640];
    size_t step;
} lr_viol;

typedef struct {
    lash_conn *c;
    bool keep_going;       /* after a violation, adopt what Redis holds and go on */
    FILE *trace;           /* every step as it runs, or NULL */
    const char *stop_code; /* stop after the step that shows this violation */
    const char *ignore;    /* comma-separated: violations whose code contains one of
                            * these are not counted (known ones, while exploring) */
    lr_viol *viol;
    size_t nviol;
    char **log; /* one line per step (drains add indented lines) */
    size_t nlog;
    size_t first_bad; /* the first step with a violation; SIZE_MAX when none */
} lr_run;

const char *lr_kind_name(int kind);
int lr_kind_parse(const char *name);
/* n steps from seed; kinds with skip[kind] set are left out. */
void lr_generate(uint64_t seed, const bool *skip, lr_step *out, size_t n);
/* Plays steps on an emptied Redis (FLUSHALL). Stops after the first step that
 * shows a violation, unless keep_going. Returns the number of violations. */
size_t lr_play(lr_run *r, const lr_step *steps, size_t n);
void lr_run_free(lr_run *r);
/* Cuts steps[0..*n) down while playing them still shows a violation `code`,
 * for at most budget_s seconds. */
void lr_shrink(lash_conn *c, lr_step *steps, size_t *n, const char *code, double budget_s);
/* Steps as words "kind:id:owner:n:inner:salt", and back (returns the count). */
void lr_encode(FILE *f, const lr_step *s, size_t n);
size_t lr_decode(const char *text, lr_step *out, size_t cap);

#endif
