/* ops.h: the words of the worker's protocol with the registry.
 *
 * What a worker and the registry say to each other about leased rows, as plain
 * values: the rows a claim hands out, the leases that name them, the outcomes a
 * worker records, the per-row answers of renew, complete and release, the
 * leases a lost claim left behind, and the retention a claim applies. The
 * registry (registry/registry.h, registry/async.h) sends and parses them; the
 * turn machine (worker/turn.h) decides with them. Keeping them here, below
 * both, is what lets the turn machine build and link without the Redis layer.
 *
 * Ownership: a lash_claim_batch and a lash_recovered own their strings and
 * arrays (free them with their free function); a lash_lease and a
 * lash_completion only point at strings the caller keeps alive for the call.
 */
#ifndef LASH_PROTO_OPS_H
#define LASH_PROTO_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/limits.h"

/* ---- claim -------------------------------------------------------------------- */

/* One row a claim leased to the caller (claim.lua's row). */
typedef struct {
    char id[LASH_ID_MAX + 1];
    char kind[LASH_KIND_MAX + 1];
    char *payload; /* NUL-terminated JSON text as stored (not yet re-validated) */
    size_t payload_len;
    int attempt, max_attempts;
    int64_t fence, timeout_ms;
    char backoff[48]; /* "" for the default */
} lash_claimed;

/* A claim's answer. Owns its rows' payloads and its notes. */
typedef struct {
    size_t seen;     /* due ids the script looked at: seen == asked means maybe more */
    size_t bad;      /* ids the script failed, dropped or repaired for bad data */
    int workers;     /* workers polling the queue (beat within 10 s), counted by an
                        upkeep; 0: not counted (no upkeep this time) */
    int64_t wait_ms; /* seen < asked: ms until the next row falls due (0 now, at
                        most a day); -1 none waits, or not told */
    char **notes;    /* bad of them: "<id>: what was wrong and what was done" */
    size_t n;
    lash_claimed *rows;
} lash_claim_batch;

/* Frees what b owns and leaves it empty (safe on an empty batch). */
void lash_claim_batch_free(lash_claim_batch *b);

/* Retention applied by each claim: keep the newest keep_n terminal rows (-1: no
 * bound) and none older than keep_ms (0: no bound). */
typedef struct {
    int64_t keep_n;
    int64_t keep_ms;
} lash_retention;

#define LASH_DEFAULT_KEEP_N 10000
#define LASH_DEFAULT_KEEP_MS (7LL * 24 * 3600 * 1000)

/* ---- leases ------------------------------------------------------------------- */

/* A lease as the owner knows it: the token is "<owner>:<fence>". Borrowed strings. */
typedef struct {
    const char *id;
    const char *owner;
    int64_t fence;
} lash_lease;

/* Renew's answer per lease (renew.lua). */
typedef enum {
    LASH_RENEW_LOST = 0,   /* not the caller's any more: stop the process, record nothing */
    LASH_RENEW_OK = 1,     /* renewed */
    LASH_RENEW_CANCEL = 2, /* renewed, and cancellation was asked */
} lash_renew_status;

/* ---- outcomes ----------------------------------------------------------------- */

/* FAIL retries while attempts remain; ABORT fails for good (input no retry can
 * fix: a malformed payload, an unknown kind); CANCEL records cancellation. */
typedef enum { LASH_OUT_OK = 0, LASH_OUT_FAIL, LASH_OUT_CANCEL, LASH_OUT_ABORT } lash_outcome;

/* One outcome to record under a lease. */
typedef struct {
    lash_lease lease;
    lash_outcome outcome;
    const char *text; /* result (OK) or error; may be NULL */
    size_t text_len;
    int64_t retry_ms; /* delay before a retry, when the row has attempts left */
} lash_completion;

/* Complete's answer per row (complete.lua). */
typedef enum {
    LASH_DONE_STALE = 0,    /* the caller does not hold the lease: nothing changed */
    LASH_DONE_RECORDED = 1, /* recorded */
    LASH_DONE_ALREADY = 2,  /* this token recorded it before (a re-sent complete) */
} lash_done_status;

/* Release's answer per lease (release.lua). */
typedef enum {
    LASH_RELEASE_STALE = 0, /* the caller does not hold the lease: nothing changed */
    LASH_RELEASED = 1,      /* given back */
} lash_release_status;

/* ---- progress ----------------------------------------------------------------- */

/* A running process's progress, reported under its lease (progress.lua). The
 * text is borrowed, checked by lash_progress_check (proto/progress.h). */
typedef struct {
    lash_lease lease;
    int percent; /* 0..100 */
    const char *text;
    size_t text_len;
} lash_progress_report;

/* Progress's answer per row (progress.lua). */
typedef enum {
    LASH_PROGRESS_STALE = 0,    /* the caller does not hold the row: nothing changed */
    LASH_PROGRESS_RECORDED = 1, /* recorded, announced and logged */
} lash_progress_status;

/* ---- recovery ----------------------------------------------------------------- */

/* The leases a claim whose reply was lost left its owner (recover.lua). Owns its
 * id strings; owner points at the caller's. */
typedef struct {
    size_t n;
    lash_lease *leases;
} lash_recovered;

/* Frees what r owns and leaves it empty (safe on an empty one). */
void lash_recovered_free(lash_recovered *r);

#endif
