/* tfx.c: the turn-machine suites' fixture (tfx.h): the test plays the shell. */
#include "tfx.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lash_turn_config C;
seen_act acts[1024];
int nacts;
int64_t timer_at = -1; /* the timer as the machine last armed it */

/* The reply timeout C stands for. */
int64_t RT(void)
{
    return lash_turn_reply_timeout(&C);
}

void cfg(void)
{
    lash_turn_config_default(&C);
    C.concurrency = 4;
    C.nqueues = 1;
    C.seed = 42;
}

/* The shell's drain: every queued action, copied (LOG text dies on the next call). */
void drain(lash_turn *t)
{
    lash_action a;
    nacts = 0;
    while (lash_turn_next(t, &a)) {
        cr_assert_lt(nacts, 1024, "action storm");
        seen_act *s = &acts[nacts++];
        s->a = a;
        if (a.kind == LASH_ACT_LOG) {
            snprintf(s->msg, sizeof s->msg, "%s", a.msg);
            s->a.msg = s->msg;
        }
        if (a.kind == LASH_ACT_TIMER) timer_at = a.at;
    }
}

/* End of a loop iteration: flush, then everything the iteration decided. */
void step(lash_turn *t, int64_t now)
{
    lash_turn_flush(t, now);
    drain(t);
}

int count(lash_action_kind k)
{
    int n = 0;
    for (int i = 0; i < nacts; i++)
        n += acts[i].a.kind == k;
    return n;
}

/* The i-th action of kind k in the last drain, or NULL. */
const lash_action *nth(lash_action_kind k, int i)
{
    for (int j = 0; j < nacts; j++)
        if (acts[j].a.kind == k && i-- == 0) return &acts[j].a;
    return NULL;
}

const lash_action *claim_for(int q)
{
    for (int j = 0; j < nacts; j++)
        if (acts[j].a.kind == LASH_ACT_CLAIM && acts[j].a.q == q) return &acts[j].a;
    return NULL;
}

const lash_action *peek_for(int q)
{
    for (int j = 0; j < nacts; j++)
        if (acts[j].a.kind == LASH_ACT_PEEK && acts[j].a.q == q) return &acts[j].a;
    return NULL;
}

/* Answers queue q's PEEK in the last drain: a row is eligible (due) or not. */
void peek_answer(lash_turn *t, int q, bool due, int64_t now)
{
    const lash_action *p = peek_for(q);
    cr_assert_not_null(p, "queue %d peeked", q);
    lash_turn_peeked(t, p->cmd, LASH_OK, due ? 0 : -1, NULL, now);
}

bool logged(const char *needle)
{
    for (int j = 0; j < nacts; j++)
        if (acts[j].a.kind == LASH_ACT_LOG && strstr(acts[j].msg, needle)) return true;
    return false;
}

/* Answers CLAIM cmd with rows r[0..n) (the script looked at `seen` due ids). */
void give(lash_turn *t, uint32_t cmd, size_t seen, const row *r, int n, int64_t now)
{
    lash_claim_batch b = {.seen = seen, .n = (size_t)n};
    b.rows = calloc((size_t)(n ? n : 1), sizeof *b.rows);
    for (int i = 0; i < n; i++) {
        lash_claimed *c = &b.rows[i];
        const char *p = r[i].payload ? r[i].payload : "{}";
        snprintf(c->id, sizeof c->id, "%s", r[i].id);
        snprintf(c->kind, sizeof c->kind, "k");
        c->payload = strdup(p);
        c->payload_len = strlen(p);
        c->attempt = r[i].attempt ? r[i].attempt : 1;
        c->max_attempts = r[i].max_attempts ? r[i].max_attempts : 3;
        c->fence = r[i].fence;
        c->timeout_ms = r[i].timeout_ms;
        snprintf(c->backoff, sizeof c->backoff, "%s", r[i].backoff ? r[i].backoff : "");
    }
    lash_turn_claimed(t, cmd, LASH_OK, &b, NULL, now);
    cr_assert_eq(b.n, 0, "on LASH_OK the machine takes the rows out of the batch");
    lash_claim_batch_free(&b);
}

void give_none(lash_turn *t, uint32_t cmd, int64_t now)
{
    give(t, cmd, 0, NULL, 0, now);
}

/* Answers a RENEW/COMPLETE/RELEASE with n copies of status. */
void answer(lash_turn *t, uint32_t cmd, int n, int status, int64_t now)
{
    int st[LASH_BATCH_MAX];
    for (int i = 0; i < n; i++)
        st[i] = status;
    lash_turn_replied(t, cmd, LASH_OK, st, (size_t)n, NULL, now);
}

int slot_of(const lash_turn *t, const char *id)
{
    for (int i = 0; i < lash_turn_slots(t); i++) {
        const lash_slot *s = lash_turn_slot(t, i);
        if (s->used && strcmp(s->id, id) == 0) return i;
    }
    return -1;
}

/* A connected machine after its startup drive (the CLAIMs are in acts). */
lash_turn *boot(int64_t now)
{
    lash_turn *t = lash_turn_new(&C, "w1");
    lash_turn_start(t, now);
    drain(t);
    lash_turn_connected(t, now);
    step(t, now);
    return t;
}

/* A connected machine running rows r[0..n) on queue 0, claimed at `now`. */
lash_turn *running(const row *r, int n, int64_t now)
{
    lash_turn *t = boot(now);
    const lash_action *c = claim_for(0);
    cr_assert_not_null(c);
    uint32_t cmd = c->cmd;
    for (int q = 1; q < C.nqueues; q++)
        give_none(t, claim_for(q)->cmd, now);
    give(t, cmd, (size_t)n, r, n, now);
    step(t, now);
    cr_assert_eq(count(LASH_ACT_START), n);
    cr_assert_eq(lash_turn_running(t), n);
    return t;
}
