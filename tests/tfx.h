/* tfx.h: the fixture of the turn machine's suites (test_turn.c,
 * test_turn_edges.c). No Redis, no processes, no clock: every event carries
 * an explicit `now`, and the test plays the shell (worker/worker.c): events
 * in, then once per "loop iteration" lash_turn_flush and a drain of
 * lash_turn_next. Links with lash_turn alone (tests/core.sh checks). */
#ifndef LASH_TESTS_TFX_H
#define LASH_TESTS_TFX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/record.h"
#include "worker/turn.h"

#define T0 1000000 /* a monotonic clock well past zero */

/* An action the machine queued, with a copy of a LOG's text. */
typedef struct {
    lash_action a;
    char msg[512];
} seen_act;

/* A row a claim hands out (zero fields take the defaults of give()). */
typedef struct {
    const char *id;
    int64_t fence;
    int attempt, max_attempts;
    int64_t timeout_ms;
    const char *backoff;
    const char *payload;
} row;

extern lash_turn_config C;  /* the config the next boot() uses (cfg() resets it) */
extern seen_act acts[1024]; /* the last drain's actions */
extern int nacts;
extern int64_t timer_at; /* the timer as the machine last armed it */

/* The reply timeout C stands for. */
int64_t RT(void);
/* C: the defaults, 4 slots, one queue, a fixed seed. */
void cfg(void);
/* The shell's drain: every queued action, copied (LOG text dies on the next call). */
void drain(lash_turn *t);
/* End of a loop iteration: flush, then everything the iteration decided. */
void step(lash_turn *t, int64_t now);
/* Actions of kind k in the last drain. */
int count(lash_action_kind k);
/* The i-th action of kind k in the last drain, or NULL. */
const lash_action *nth(lash_action_kind k, int i);
const lash_action *claim_for(int q);
const lash_action *peek_for(int q);
/* Answers queue q's PEEK in the last drain: a row is eligible (due) or none waits. */
void peek_answer(lash_turn *t, int q, bool due, int64_t now);
/* Whether a LOG of the last drain holds needle. */
bool logged(const char *needle);
/* Answers CLAIM cmd with rows r[0..n) (the script looked at `seen` due ids). */
void give(lash_turn *t, uint32_t cmd, size_t seen, const row *r, int n, int64_t now);
void give_none(lash_turn *t, uint32_t cmd, int64_t now);
/* Answers a RENEW/COMPLETE/RELEASE with n copies of status. */
void answer(lash_turn *t, uint32_t cmd, int n, int status, int64_t now);
/* The slot running id, or -1. */
int slot_of(const lash_turn *t, const char *id);
/* A connected machine after its startup drive (the CLAIMs are in acts). */
lash_turn *boot(int64_t now);
/* A connected machine running rows r[0..n) on queue 0, claimed at `now`. */
lash_turn *running(const row *r, int n, int64_t now);

#endif
