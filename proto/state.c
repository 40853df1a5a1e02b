/* state.c: the transition table (see state.h). */
#include "proto/state.h"

#include <string.h>

static const char *const state_names[LASH_STATE_COUNT] = {
    "pending", "running", "completed", "failed", "cancelled", "abandoned",
};

const char *lash_state_name(lash_state s)
{
    return (unsigned)s < LASH_STATE_COUNT ? state_names[s] : "invalid";
}

int lash_state_parse(const char *s)
{
    for (int i = 0; s && i < LASH_STATE_COUNT; i++)
        if (strcmp(s, state_names[i]) == 0) return i;
    return -1;
}

bool lash_state_terminal(lash_state s)
{
    return s >= LASH_COMPLETED && s < LASH_STATE_COUNT;
}

const char *lash_transition_name(lash_transition t)
{
    static const char *const names[LASH_T_COUNT] = {
        "claim", "succeed", "fail", "retry", "release", "cancel", "lost", "reopen",
    };
    return (unsigned)t < LASH_T_COUNT ? names[t] : "invalid";
}

/* -1 marks an illegal edge. LOST and FAIL/RETRY depend on the flags, so their
 * cells hold a marker resolved below. */
enum { X = -1, LOST_FROM_RUNNING = -2, FAIL_FROM_RUNNING = -3 };

static const int table[LASH_STATE_COUNT][LASH_T_COUNT] = {
    /*              claim        succeed         fail            retry         release       cancel
       lost               reopen */
    [LASH_PENDING] = {LASH_RUNNING, X, X, X, X, LASH_CANCELLED, X, X},
    [LASH_RUNNING] = {X, LASH_COMPLETED, LASH_FAILED, LASH_PENDING, LASH_PENDING, LASH_CANCELLED,
                      LOST_FROM_RUNNING, X},
    [LASH_COMPLETED] = {X, X, X, X, X, X, X, X},
    [LASH_FAILED] = {X, X, X, X, X, X, X, LASH_PENDING},
    [LASH_CANCELLED] = {X, X, X, X, X, X, X, LASH_PENDING},
    [LASH_ABANDONED] = {X, X, X, X, X, X, X, LASH_PENDING},
};

int lash_state_next(lash_state s, lash_transition t, bool attempts_left, bool abandon)
{
    if ((unsigned)s >= LASH_STATE_COUNT || (unsigned)t >= LASH_T_COUNT) return -1;
    int next = table[s][t];
    if (next == LOST_FROM_RUNNING) {
        /* A lost lease counts as a spent attempt either way. */
        if (abandon) return LASH_ABANDONED;
        return attempts_left ? LASH_RUNNING : LASH_FAILED;
    }
    if (t == LASH_T_RETRY && !attempts_left) return -1;
    if (t == LASH_T_FAIL && attempts_left) return -1;
    return next;
}
