/* model.h: an executable model of one lash queue: the specification the
 * model-based test (tests/test_model.c) holds the real Lua scripts to.
 *
 * The model knows, for each id of a small universe, what the scripts should have
 * left in Redis: the row (absent, a hash, or a key of the wrong type put there by
 * hand), its state and the fields that decide its next transition, its lease key,
 * and whether the id is in `due` and in `done`. One function per operation
 * applies the operation as the spec says and reports every way the observed reply
 * differs from it. Where the spec allows more than one outcome (the fence a claim
 * hands out need only be larger than every earlier one; a key of the wrong type
 * may be left alone or removed), the model checks the observed outcome is one of
 * them and takes it.
 *
 * The spec is the README's Guarantees plus issue 10's intended semantics:
 *   - fences of an id strictly grow for its whole life in the queue, through
 *     trim, resubmit and deletion by hand (a claim's fence exceeds every fence
 *     any earlier claim of the id gave, and the row's own fence field);
 *   - an id is in `due` iff its row is live (pending, running), in `done` iff
 *     it is terminal; every live row is reachable by a claim;
 *   - trim deletes only terminal rows (a live id found in `done` only leaves
 *     `done`); a submit that creates a row takes the id out of `done` and leaves
 *     no field of an earlier row behind (attempt, owner, cancel, result...);
 *   - a release says whether the process ran: an on_lost=abandon row that ran
 *     ends `abandoned`, never pending again;
 *   - a per-row key of the wrong type (row, lease) makes that row dropped or
 *     refused by name, never a script error; a queue-wide state key of the
 *     wrong type (due, done, stats) fails the script before any write; a log
 *     key of the wrong type (events, workers) fails nothing (a claim notes it);
 *   - only the lease holder (the lease key holds its token and the row is
 *     running) records, renews or releases; a terminal record is written once;
 *   - counters equal the rows per state and are never negative (after a hand
 *     changed rows, until a recount, only "never negative" can hold);
 *   - issue 15: a claim looks at eligible rows by priority (higher first),
 *     then due time; a row submitted `after` others runs only once all of them
 *     completed, and ends cancelled when one ends otherwise; a concurrency
 *     limit holds rows back rather than run more; only the holder reports
 *     progress. Where the scripts knowingly differ, a switch below says so.
 *
 * No I/O here: sut.c runs the operations, observe.c reads Redis, check.c
 * compares what it read with the model, run.c makes the random steps.
 */
#ifndef LASH_TESTS_MODEL_H
#define LASH_TESTS_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"

/* The universe: ids "a0".."a7" are submitted and worked; the last, "zz", never
 * gets a row: a hand puts it in due or done, as junk. */
#define LM_NIDS 9
#define LM_GHOST (LM_NIDS - 1)
#define LM_NOWNERS 3 /* "w1" "w2" "w3"; the drain's owner is "wd" */
#define LM_NREGS 4
#define LM_HIST 8
#define LM_HELD 64
#define LM_TOKEN_MAX 48

/* Lease lengths: long enough never to run out during a run on their own. Time
 * passes only when a step says so (run.c: advance, short leases). */
#define LM_TTL_LONG 600000
#define LM_DELAY_LONG 3600000
#define LM_QUEUE "m"

/* Whether a prioritized pending row that a claim passes over because its lease
 * key is held, or that a limit holds back, keeps its priority. It does: both
 * wait in the priority's sets (lash_claim_wait, lash_limit_hold), and a freed
 * slot wakes them there (lash_limit_wake). 0 models the older scripts, which
 * rescored them in due (prio_demoted). */
#define LM_PRIO_SURVIVES_WAIT 1
/* Whether a submit that creates a row of priority 0 takes the id out of the
 * priority sets, where an older row deleted by hand may have left it. It does
 * not yet (submit.lua touches those sets only for a prioritized row, to keep
 * the plain path's cost): until it does, run.c gives such a resubmit a
 * priority. Set to 1 to see the violation (prio-index). */
#define LM_SUBMIT_CLEARS_PRIO 0
/* Whether a row that is gone (trimmed, or deleted by hand) stops waiting for
 * its dependencies, so that a new row of the same id is not settled by them.
 * It does: a settle touches only a row that still waits (deps_left) and names
 * the dependency in its `after` (lash_dep_settle); a retried waiter no longer
 * waits. 0 models the old scripts, where the new row inherited them. */
#define LM_DEPS_FORGET_DELETED 1
/* Whether a dependency whose row a claim drops (deleted, or a key of another
 * type: by hand) settles its waiters (cancelled, "dependency D ended and was
 * deleted"). It does not yet: they wait until a new row of that id ends. When
 * 0, the drain does not call such a waiter stranded; 1 shows it
 * (drain/dep-stranded). */
#define LM_DEPS_SETTLE_DROPPED 0

typedef enum { LM_ABSENT, LM_HASH, LM_JUNK } lm_form;

/* The six states of proto/state.h, then the two a hand can make. */
typedef enum {
    LM_PENDING,
    LM_RUNNING,
    LM_COMPLETED,
    LM_FAILED,
    LM_CANCELLED,
    LM_ABANDONED,
    LM_NOSTATE, /* the field was deleted */
    LM_BADSTATE /* the field holds "zombie" */
} lm_state;

typedef enum { LM_NOLEASE, LM_TOKEN, LM_JUNKLEASE } lm_lease;

/* A registration (kind is always "k"): what decides created/exists/conflict. */
typedef struct {
    const char *payload;
    int max_attempts;
    bool abandon;
} lm_reg;
extern const lm_reg lm_regs[LM_NREGS];

typedef struct {
    lm_form form;
    /* LM_HASH: the fields that decide transitions. */
    lm_state state;
    char payload[16]; /* the registration (kind is "k") */
    int max_attempts;
    bool abandon;
    int prio; /* field priority (0: none; part of the registration) */
    /* Dependencies (issue 15): after, the ids of its `after` option (bits of
     * the universe; part of the registration); waiting, those it still waits
     * for (parked in due while any: never eligible); run_later, submitted with
     * a delay (a row whose last dependency completes is due at its run_at). */
    unsigned after, waiting;
    bool run_later;
    bool parked;   /* in due at 2^53 - 1 until deps_left reaches 0 */
    int deps_left; /* field deps_left: the dependencies still to complete */
    /* Limits (issue 15): slot, claimed under a concurrency limit of kind k
     * (field slot); held, held back by it (in lash:{q}:held:k); due_open, a
     * script rescored it in due to a time the spec leaves open (a held row
     * waits for a slot; a freed slot or a changed limit wakes it). */
    bool slot, held, due_open;
    int progress;                     /* Progress (issue 15): field progress, the last percent its
                                       * holder reported (-1: none) */
    bool no_kind, no_payload, no_max; /* deleted by hand (no_max: or the default, left out) */
    bool has_attempt, has_fence;
    int attempt;
    int64_t fence;
    char owner[16]; /* "" when absent */
    bool cancel;
    /* The indexes. due_ready: its score has passed (a claim would look at it). */
    bool in_due, due_ready, in_done;
    /* Priorities: a pending row of priority != 0 waits in a priority set, never
     * in due, unless a hand put it there (hand_due) or a claim passed it over
     * (prio_demoted; see LM_PRIO_SURVIVES_WAIT). Both last until a script
     * queues the row again. */
    bool hand_due, prio_demoted;
    /* The lease key: a string (LM_TOKEN, whatever it says) or another type. */
    lm_lease lease;
    char token[LM_TOKEN_MAX];
    bool lease_ttl;
    /* Left open by the spec, settled by the check from what Redis holds: */
    bool fence_open; /* a script ended the row and moved its fence past fence_min */
    int64_t fence_min;
    bool may_vanish;       /* a junk or broken row a script may delete or leave */
    bool lease_may_vanish; /* a lease key beside a row that is not running, which a
                            * script that met it may delete or leave */
    bool fresh;            /* just created: no field of an earlier row may be left */
    /* History, never forgotten: the highest fence any claim gave this id, and
     * the last tokens claims gave (for stale calls). */
    int64_t top_fence;
    char hist[LM_HIST][LM_TOKEN_MAX];
    int nhist;
    unsigned version; /* bumped by every change the spec makes to the row hash */
} lm_row;

typedef struct {
    int64_t submitted, completed, failed, cancelled, abandoned, retried, lost;
} lm_totals;

/* What a worker believes it holds: it renews, completes, releases these. */
typedef struct {
    int id;
    char token[LM_TOKEN_MAX];
} lm_held;

/* Reports a violation: code "<op>/<what>", and a sentence. */
typedef void lm_report_fn(void *ctx, const char *code, const char *msg);

typedef struct {
    lm_row row[LM_NIDS];
    lm_totals tot;
    bool counts_exact;  /* no hand changed a row's state since the last recount */
    const char *qfault; /* a queue-wide key holds the wrong type: errors allowed */
    int limit;          /* kind k's concurrency limit (0: none) */
    lm_held held[LM_NOWNERS + 1][LM_HELD]; /* [LM_NOWNERS] is the drain's owner */
    int nheld[LM_NOWNERS + 1];
    int ended[4 * LM_NIDS]; /* rows ended by the call so far: their waiters settle
                             * at its end (lash_flush_counts, lash_dep_settle) */
    int nended;
    const char *op; /* the operation being applied, for codes */
    lm_report_fn *report;
    void *ctx;
    int nviol;
} lm;

void lm_init(lm *m, lm_report_fn *report, void *ctx);
/* "a0".."a7", "zz"; and back (-1 when not one of them). */
const char *lm_id(int i);
int lm_id_index(const char *s, size_t len);
const char *lm_owner(int o); /* o == LM_NOWNERS: "wd" */
const char *lm_state_name(lm_state s);
bool lm_live(const lm_row *r);
bool lm_terminal(const lm_row *r);
/* Reports through m->report as "<m->op>/<what>". */
void lm_viol(lm *m, const char *what, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- the operations: each applies the spec to m and checks the reply --------
 * failed: the call returned an error (what it said is in err). */

typedef struct {
    int id, reg;
    int prio;       /* the priority option (0: not sent) */
    unsigned after; /* the after option: bits of the universe (0: not sent) */
    bool delay;     /* run_at an hour ahead */
} lm_sub;
void lm_submit(lm *m, const lm_sub *s, size_t n, const lash_submitted *got, bool failed,
               const char *err);

/* Priorities (issue 15): an eligible row, as a claim may look at it. A pending
 * row of priority p != 0 waits in lash:{q}:prio:wait or prio:ready, every other
 * one (priority 0, running, parked) in due, where a claim ranks it as
 * priority 0. at: when it became due (server ms). */
typedef struct {
    int id, prio;
    double at; /* hand-set scores are half ms */
} lm_cand;
/* The ids a claim looks at, n at most, in the order the spec says: priority
 * descending, then due time, then id; an id listed twice counts once, at its
 * best place. Sorts cand; returns the count written to out. */
size_t lm_claim_order(lm_cand *cand, size_t ncand, size_t n, int *out);

/* looked: the ids the claim looks at, in order: the first n of `due` whose
 * score has passed (read just before; see run.c). */
void lm_claim(lm *m, int owner, const int *looked, size_t nlooked, const lash_claim_batch *got,
              bool failed, const char *err);

typedef struct {
    int id;
    char token[LM_TOKEN_MAX];
} lm_tok;
void lm_renew(lm *m, int owner, const lm_tok *t, size_t n, const int *st, bool failed,
              const char *err);

typedef struct {
    lm_tok t;
    lash_outcome outcome;
    bool later; /* a retry waits an hour (else it is due at once) */
} lm_fin;
void lm_complete(lm *m, int owner, const lm_fin *f, size_t n, const int *st, bool failed,
                 const char *err);
void lm_release(lm *m, int owner, const lm_tok *t, const bool *ran, size_t n, const int *st,
                bool failed, const char *err);
void lm_cancel(lm *m, int id, lash_status got, bool requested, const char *err);
void lm_retry(lm *m, int id, lash_status got, const char *err);
/* done_order: the ids of `done` in score order, read just before. */
void lm_trim(lm *m, int keep_n, int max, const int *done_order, size_t ndone, int64_t removed,
             bool failed, const char *err);

/* Progress reports (issue 15): pct[i] for t[i]; st, the statuses (1 recorded,
 * 0 stale: the row unchanged). Only the holder the row names may report. */
void lm_progress(lm *m, const lm_tok *t, const int *pct, size_t n, const int *st, bool failed,
                 const char *err);

/* An operator sets kind k's concurrency limit (0: removes it): its held rows
 * wake. */
void lm_limit(lm *m, int concurrency);

/* ---- time and hands ---------------------------------------------------------- */

/* Time passes for id: a lease with an expiry runs out, its due score passes
 * (a row parked for its dependencies stays parked: never is never reached). */
void lm_advance(lm *m, int id);
/* Parked: pending, waiting for dependencies (in due at 2^53 - 1). */
bool lm_parked(const lm_row *r);
void lm_hand_row_junk(lm *m, int id);
void lm_hand_del_row(lm *m, int id);
/* field: state kind payload fence attempt owner max_attempts */
void lm_hand_del_field(lm *m, int id, const char *field);
void lm_hand_set_state_junk(lm *m, int id);
void lm_hand_set_fence(lm *m, int id, int64_t fence);
void lm_hand_set_lease(lm *m, int id, const char *token, bool ttl);
void lm_hand_lease_junk(lm *m, int id, bool ttl);
void lm_hand_due(lm *m, int id, bool ready);
void lm_hand_done(lm *m, int id);
void lm_recount(lm *m);

/* The owner's belief: forget a token (it lost the lease, or recorded). */
void lm_forget(lm *m, int owner, int id, const char *token);

#endif
