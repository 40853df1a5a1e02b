/* state.h: the states of a process, and the one table of how rows move.
 *
 *   pending --claim--> running
 *   pending --cancel--> cancelled
 *   running --complete ok--> completed
 *   running --complete fail--> pending while attempts are left, else failed
 *   running --complete abort--> failed;  --complete cancel--> cancelled
 *   running --release--> pending (a stopped on_lost=abandon row: abandoned)
 *   running, its lease run out --claim--> running again (a new attempt) while
 *           attempts are left, else failed; on_lost=abandon: abandoned
 *   failed | cancelled | abandoned --reopen (an operator's retry)--> pending
 *   A cancel asked of a running row turns every end but completed into cancelled.
 *
 * pending and running are non-terminal (the row is in the due set: it is
 * work); the other four are terminal and final unless an operator reopens one.
 *
 * The Lua scripts (proto/lua/) are what moves rows; lash_state_next is the same
 * rules written down once as a table, for C code that must know them (the fleet
 * simulator's model registry, lash-web's actions) and for readers. A test
 * (tests/test_states.c) drives every cell of the table through the real scripts
 * on a real Redis and fails on any difference, so a change to one that is not
 * made to the other does not go unnoticed.
 */
#ifndef LASH_PROTO_STATE_H
#define LASH_PROTO_STATE_H

#include <stdbool.h>

typedef enum {
    LASH_PENDING = 0,
    LASH_RUNNING,
    LASH_COMPLETED,
    LASH_FAILED,
    LASH_CANCELLED,
    LASH_ABANDONED,
    LASH_STATE_COUNT
} lash_state;

/* What is done to a row: each is one script call on it. */
typedef enum {
    LASH_T_CLAIM = 0,       /* claim.lua finds the row due (a running one: its lease
                               ran out unless LASH_ROW_LEASED) */
    LASH_T_CANCEL,          /* cancel.lua: an operator cancels (a running row is only
                               flagged: its owner stops it and records that) */
    LASH_T_COMPLETE_OK,     /* complete.lua, outcome ok */
    LASH_T_COMPLETE_FAIL,   /* complete.lua, outcome fail */
    LASH_T_COMPLETE_CANCEL, /* complete.lua, outcome cancel */
    LASH_T_COMPLETE_ABORT,  /* complete.lua, outcome abort */
    LASH_T_RELEASE_UNRUN,   /* release.lua, ran 0: the process never started */
    LASH_T_RELEASE_RAN,     /* release.lua, ran 1: it started and was stopped */
    LASH_T_REOPEN,          /* retry.lua: an operator reopens a terminal row */
    LASH_T_COUNT
} lash_transition;

/* What the scripts look at in a row, besides its state: the facts that choose
 * between an edge's ends. A set of them is a bit mask. */
typedef enum {
    LASH_ROW_LEASED = 1 << 0,        /* its lease key is live (a claim skips the row);
                                        complete and release ask the row instead,
                                        which names its holder (owner:fence) */
    LASH_ROW_ATTEMPTS_LEFT = 1 << 1, /* attempt < max_attempts */
    LASH_ROW_ABANDON = 1 << 2,       /* on_lost=abandon */
    LASH_ROW_CANCEL_ASKED = 1 << 3,  /* cancel=1: an operator asked while it ran */
    LASH_ROW_FACTS = 1 << 4,         /* every set of facts is below this */
} lash_row_fact;

const char *lash_state_name(lash_state s);
/* Parses a state name; returns -1 when it is not one. */
int lash_state_parse(const char *s);
bool lash_state_terminal(lash_state s);
const char *lash_transition_name(lash_transition t);
/* The state a row in state s with the given facts (lash_row_fact bits) is in
 * after t, or -1 when t changes nothing (the script refuses, answers stale or
 * skips the row). Out-of-range arguments are -1 too. A row whose fields the
 * scripts cannot read is another matter: claim.lua fails it ('bad row'),
 * whatever this table says. */
int lash_state_next(lash_state s, lash_transition t, unsigned facts);

#endif
