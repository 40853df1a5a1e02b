/* sut.h: the system under test, as the model-based test drives it.
 *
 * The registry operations the test makes live here and nowhere else, so when the
 * API changes (release learns whether the process ran; a recount operation
 * appears) only this file follows. The hands that break things (keys of the
 * wrong type, deleted fields and rows, hand-set fences and leases, junk in the
 * index sets) use raw hiredis, as tests may.
 */
#ifndef LASH_TESTS_MODEL_SUT_H
#define LASH_TESTS_MODEL_SUT_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "registry/registry.h"

/* Whether lash_release can say the process ran (issue 10, item 1). Until it
 * can, the test releases only rows that did not run. */
extern const bool sut_release_knows_ran;

lash_status sut_submit(lash_conn *c, const lm_sub *s, size_t n, lash_submitted *out, lash_err *e);
lash_status sut_claim(lash_conn *c, int owner, int n, int64_t ttl_ms, lash_claim_batch *out,
                      lash_err *e);
lash_status sut_renew(lash_conn *c, int64_t ttl_ms, const lm_tok *t, size_t n, int *st,
                      lash_err *e);
lash_status sut_complete(lash_conn *c, const lm_fin *f, size_t n, int *st, lash_err *e);
lash_status sut_release(lash_conn *c, const lm_tok *t, const bool *ran, size_t n, int *st,
                        lash_err *e);
lash_status sut_cancel(lash_conn *c, int id, bool *requested, lash_err *e);
lash_status sut_retry(lash_conn *c, int id, lash_err *e);
lash_status sut_progress(lash_conn *c, const lm_tok *t, const int *pct, size_t n, int *st,
                         lash_err *e);
/* Kind k's concurrency limit (0: removed). */
lash_status sut_limit(lash_conn *c, int concurrency, lash_err *e);
lash_status sut_trim(lash_conn *c, int keep_n, int max, int64_t *removed, lash_err *e);
/* Sets the per-state counters to the rows (what `lashctl stats --recount` is
 * to do; raw until the registry has the operation). */
void sut_recount(lash_conn *c);

/* ---- time ------------------------------------------------------------------------ */

/* Time passes for id: a lease key with an expiry runs out (really: PEXPIRE 1,
 * then waits until Redis has forgotten it), its due score moves to `score`
 * (a score in the past, as text: run.c uses half milliseconds so that no hand-set
 * score ties with one a script wrote). */
void sut_advance(lash_conn *c, int id, const char *score, bool move_due);
/* Waits until the lease keys of ids that have an expiry have run out (a short
 * lease ran out by itself). */
void sut_wait_leases_gone(lash_conn *c, const int *ids, size_t n);

/* ---- hands ----------------------------------------------------------------------- */

/* Each returns the command it sent, for the step log (static buffer). */
const char *sut_hand_row_junk(lash_conn *c, int id, int variant);
const char *sut_hand_del_row(lash_conn *c, int id);
const char *sut_hand_del_field(lash_conn *c, int id, const char *field);
const char *sut_hand_set_state_junk(lash_conn *c, int id);
const char *sut_hand_set_fence(lash_conn *c, int id, int64_t fence);
const char *sut_hand_set_lease(lash_conn *c, int id, const char *token, bool ttl);
const char *sut_hand_lease_junk(lash_conn *c, int id, int variant, bool ttl);
const char *sut_hand_due(lash_conn *c, int id, const char *score);
const char *sut_hand_done(lash_conn *c, int id, const char *score);

/* A queue-wide key ("due", "done", "stats", "events", "workers") made a string
 * for the length of one operation, then put back as it was. */
typedef struct {
    char key[64];
    char *dump; /* NULL: the key did not exist */
    size_t len;
    long long pttl;
} sut_saved;
const char *sut_qfault_begin(lash_conn *c, const char *name, sut_saved *s);
void sut_qfault_end(lash_conn *c, sut_saved *s);

#endif
