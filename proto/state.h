/* state.h: the states of a process and the only transitions between them.
 *
 *   pending --claim--> running --complete ok--> completed
 *      ^                  |  \--fail, attempts left--> pending (retry after backoff)
 *      |                  |  \--fail, none left / cancelled / lost+abandon-->
 * failed|cancelled|abandoned
 *      +--release---------+
 *   pending --cancel--> cancelled;  failed|cancelled|abandoned --operator retry--> pending
 *
 * pending and running are non-terminal (the row is in the due set: it is work);
 * the other four are terminal and final unless an operator explicitly retries.
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

/* Why a row moves; each edge of the table is one of these. */
typedef enum {
    LASH_T_CLAIM = 0, /* a worker takes the lease */
    LASH_T_SUCCEED,   /* the owner records success */
    LASH_T_FAIL,      /* the owner records a failure with no attempts left */
    LASH_T_RETRY,     /* the owner records a failure, attempts remain */
    LASH_T_RELEASE,   /* the owner gives the row back (shutdown) */
    LASH_T_CANCEL,    /* cancel of a pending row, or the owner records cancellation */
    LASH_T_LOST,      /* a drive finds the lease expired: rerun or abandon */
    LASH_T_REOPEN,    /* an operator retries a terminal row */
    LASH_T_COUNT
} lash_transition;

const char *lash_state_name(lash_state s);
/* Parses a state name; returns -1 when it is not one. */
int lash_state_parse(const char *s);
bool lash_state_terminal(lash_state s);
/* The state the row is in after t, or -1 when t is illegal from s. */
int lash_state_next(lash_state s, lash_transition t, bool attempts_left, bool abandon);
const char *lash_transition_name(lash_transition t);

#endif
