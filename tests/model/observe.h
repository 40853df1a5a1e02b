/* observe.h: what Redis holds for the model's queue, read with raw hiredis.
 *
 * Two readings: a view (per id of the universe: the row, its lease key, its
 * place in due and done; the index sets in order; the counters), read after
 * every step and compared with the model; and a snapshot of every key of the
 * queue (type, serialized value, expiry), taken around a script call so that a
 * call that failed can be shown to have changed nothing.
 * Each reading is one pipelined round trip (a few for the snapshot).
 */
#ifndef LASH_TESTS_MODEL_OBSERVE_H
#define LASH_TESTS_MODEL_OBSERVE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "model.h"

typedef enum { LO_NONE, LO_STRING, LO_HASH, LO_OTHER } lo_type;

#define LO_FIELDS 48
#define LO_SET_MAX 64

typedef struct {
    lo_type type;
    /* A hash row: its fields, and the same as canonical text (sorted
     * "field=value" lines) to tell whether it changed. */
    int nf;
    char *f[LO_FIELDS], *v[LO_FIELDS];
    char *canon;
    lo_type lease_type;
    char lease[96]; /* a string lease's value (cut at 95 bytes) */
    long long lease_pttl;
    bool in_due, in_done;
    long long due_score, done_score;
    /* Priorities (issue 15): a pending row of priority p != 0 waits in
     * lash:{q}:prio:wait (scored by its due time) or prio:ready (scored by rank
     * LASH_PRIO_K0 + due time - p * 2^42; aging is off), never in due. in_due
     * and due_score above count these too: the id waits in one of the three,
     * due when due_score says (from a rank: the due time it was ranked by, with
     * the row's own priority field). in_due_set: in due itself. */
    bool in_due_set, in_pwait, in_pready;
    double pwait_at;                               /* pwait_score, exact (half ms) */
    long long pwait_score, pready_rank, pready_at; /* pready_at: 0 when the row has no
                                                    * priority field to tell it by */
    int nindex;                                    /* in how many of due, prio:wait, prio:ready */
} lo_id;

#define LO_PRIO_STRICT 4398046511104LL /* 2^42, lib.lua LASH_PRIO_STRICT */
#define LO_PRIO_K0 (1000 * LO_PRIO_STRICT)
#define LO_PARKED 9007199254740991LL /* lib.lua LASH_DEP_PARKED: waits for dependencies */

typedef struct {
    long long now; /* server ms, read first */
    lo_id id[LM_NIDS];
    /* due and done in score order, as universe indexes; members that are not
     * in the universe are counted, not listed. */
    int due[LO_SET_MAX], done[LO_SET_MAX];
    long long due_score[LO_SET_MAX];
    double due_at[LO_SET_MAX]; /* the same, exact: hand-set scores are half ms */
    size_t ndue, ndone, due_foreign, done_foreign;
    /* The counters hash: rows per state, totals; a field that is not an integer
     * or the key of another type is named in stats_bad. */
    long long count[6];
    lm_totals tot;
    char stats_bad[128];
    char negative[128]; /* the counters below zero, named */
} lo_view;

/* Reads the view (asserts the reads themselves work). */
void lo_read(redisContext *c, lo_view *v);
void lo_free(lo_view *v);
/* A field of a hash row, or NULL. */
const char *lo_field(const lo_id *x, const char *name);

typedef struct {
    char *key;
    char *val; /* type + DUMP (a stream: its length and last entry id) */
    size_t len;
    long long pttl;
} lo_key;

typedef struct {
    lo_key *k;
    size_t n;
    long long ms; /* monotonic, when taken */
} lo_snap;

void lo_snap_take(redisContext *c, lo_snap *s);
/* The first difference between a (before) and b (after), described in why;
 * false when none. Expiries may have shrunk by the time between the two. */
bool lo_snap_diff(const lo_snap *a, const lo_snap *b, char *why, size_t cap);
void lo_snap_free(lo_snap *s);

#endif
