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
        "claim",          "cancel",        "complete ok", "complete fail", "complete cancel",
        "complete abort", "release unrun", "release ran", "reopen",
    };
    return (unsigned)t < LASH_T_COUNT ? names[t] : "invalid";
}

/* A cell of the table is a list of rules tried in order: the first whose facts
 * are all in the row's gives the next state (NO: nothing changes). A rule
 * without facts always applies; a cell without rules is no edge at all. The
 * order is the scripts' order of checks: a live lease first, then a cancel
 * asked, then on_lost, then attempts. */
typedef struct {
    unsigned char when;
    signed char to;
} rule;

typedef struct {
    unsigned char n;
    rule r[5];
} cell;

/* clang-format off */
#define RULES(...) {sizeof((rule[]){__VA_ARGS__}) / sizeof(rule), {__VA_ARGS__}}
/* clang-format on */

enum {
    NO = -1,
    LEASED = LASH_ROW_LEASED,
    LEFT = LASH_ROW_ATTEMPTS_LEFT,
    ABANDON = LASH_ROW_ABANDON,
    ASKED = LASH_ROW_CANCEL_ASKED,
};

static const cell table[LASH_STATE_COUNT][LASH_T_COUNT] = {
    [LASH_PENDING] =
        {
            /* A live lease on a pending row (written by hand) hides it like any lease. */
            [LASH_T_CLAIM] = RULES({LEASED, NO}, {0, LASH_RUNNING}),
            [LASH_T_CANCEL] = RULES({0, LASH_CANCELLED}),
        },
    [LASH_RUNNING] =
        {
            /* A live lease: the score lagged a renew (rescored, skipped). Run out:
             * whoever held it is gone or cut off. */
            [LASH_T_CLAIM] = RULES({LEASED, NO}, {ASKED, LASH_CANCELLED}, {ABANDON, LASH_ABANDONED},
                                   {LEFT, LASH_RUNNING}, {0, LASH_FAILED}),
            /* Flagged and announced; the owner stops it and records 'cancelled'. */
            [LASH_T_CANCEL] = RULES({0, LASH_RUNNING}),
            /* Only the holder the row names (owner:fence) records; anyone else is
             * stale. Its lease key may have run out meanwhile: until a claim
             * takes the row over, the row still names it. Success wins over a
             * cancel asked: the work was done. */
            [LASH_T_COMPLETE_OK] = RULES({0, LASH_COMPLETED}),
            [LASH_T_COMPLETE_FAIL] =
                RULES({ASKED, LASH_CANCELLED}, {LEFT, LASH_PENDING}, {0, LASH_FAILED}),
            [LASH_T_COMPLETE_CANCEL] = RULES({0, LASH_CANCELLED}),
            [LASH_T_COMPLETE_ABORT] = RULES({ASKED, LASH_CANCELLED}, {0, LASH_FAILED}),
            /* The attempt is handed back; a row that ran under on_lost=abandon
             * may have done part of its work, so it never runs again. */
            [LASH_T_RELEASE_UNRUN] = RULES({ASKED, LASH_CANCELLED}, {0, LASH_PENDING}),
            [LASH_T_RELEASE_RAN] =
                RULES({ASKED, LASH_CANCELLED}, {ABANDON, LASH_ABANDONED}, {0, LASH_PENDING}),
        },
    /* completed is final: not even an operator reopens a success. */
    [LASH_FAILED] = {[LASH_T_REOPEN] = RULES({0, LASH_PENDING})},
    [LASH_CANCELLED] = {[LASH_T_REOPEN] = RULES({0, LASH_PENDING})},
    [LASH_ABANDONED] = {[LASH_T_REOPEN] = RULES({0, LASH_PENDING})},
};

int lash_state_next(lash_state s, lash_transition t, unsigned facts)
{
    if ((unsigned)s >= LASH_STATE_COUNT || (unsigned)t >= LASH_T_COUNT || facts >= LASH_ROW_FACTS)
        return -1;
    const cell *c = &table[s][t];
    for (unsigned i = 0; i < c->n; i++)
        if ((c->r[i].when & facts) == c->r[i].when) return c->r[i].to;
    return -1;
}
