/* record.h: the process record, as a row hash holds it and as submitters give it.
 *
 * A row is a Redis hash; fields hold decimal integers and text. Options equal to
 * their defaults are left out of the row to keep it small (a pending row costs a
 * few hundred bytes of Redis memory, see README "Memory"):
 *
 *   kind payload state attempt max_attempts fence owner created_ms updated_ms
 *   run_at timeout_ms backoff on_lost priority after deps_left cancel
 *   result error
 *   progress progress_text progress_ms   (the last progress report of a run)
 *
 * A terminal row is final (only `lashctl retry` re-opens it, as a new pending
 * row), so its updated_ms is when it finished: lash_record_check gives that as
 * finished_ms. Rows finished by versions before this one also hold a
 * finished_ms field, which is read as it is.
 *
 * The registration of a process is (kind, payload, max_attempts, timeout_ms,
 * backoff, on_lost, priority, after): the submit script compares it field by field with the stored
 * row, so re-submitting the same id with the same registration is a no-op and with
 * a different one a conflict. (Comparing the fields, rather than a stored hash of
 * them, is exact, costs no hashing, and saves a field per row.)
 */
#ifndef LASH_PROTO_RECORD_H
#define LASH_PROTO_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"
#include "proto/limits.h"
#include "proto/state.h"

typedef enum { LASH_ON_LOST_RERUN = 0, LASH_ON_LOST_ABANDON } lash_on_lost;

/* Retry delay policy: fixed:MS, or exp:BASE_MS:CAP_MS (doubling, capped, with
 * "equal jitter": half the delay fixed, half random, so a fleet of failures spreads). */
typedef struct {
    bool exponential;
    int64_t base_ms;
    int64_t cap_ms;
} lash_backoff;

/* What a submitter hands lash. Strings are borrowed. */
typedef struct {
    const char *id; /* NULL or "": lash makes one (lash_id_new) */
    const char *kind;
    const char *payload; /* JSON text; NULL means "null" */
    size_t payload_len;
    int max_attempts;    /* 0: LASH_DEFAULT_MAX_ATTEMPTS */
    int64_t timeout_ms;  /* 0: none */
    int64_t delay_ms;    /* run no sooner than now + delay; or */
    int64_t run_at_ms;   /* absolute (server clock), when > 0 */
    const char *backoff; /* NULL: LASH_DEFAULT_BACKOFF */
    lash_on_lost on_lost;
    int priority;      /* -LASH_PRIO_MAX..LASH_PRIO_MAX, higher runs first among eligible
                        * rows; 0 (the default) keeps the row on the plain path */
    const char *after; /* NULL, or "ID[,ID...]" (at most LASH_AFTER_MAX ids of the same
                        * queue): runs once all of them completed; one that ends
                        * otherwise ends this one 'cancelled' (README "Dependencies") */
} lash_submission;

/* A row read back from Redis. Strings are owned (lash_record_free). */
typedef struct {
    char id[LASH_ID_MAX + 1];
    char queue[LASH_QUEUE_MAX + 1];
    char kind[LASH_KIND_MAX + 1];
    char *payload;
    char *result;
    char *error;
    char *owner;
    char *backoff;
    lash_state state;
    int attempt;
    int max_attempts;
    int64_t fence;
    int64_t created_ms, updated_ms, finished_ms, run_at_ms, timeout_ms;
    lash_on_lost on_lost;
    int priority;
    char *after;   /* NULL, or the ids it waits for, comma-separated */
    int deps_left; /* how many of them have not completed yet (while pending) */
    bool cancel_requested;
    /* The last progress report (progress.lua): percent -1 when none was made.
     * Kept after the run ends; a later attempt's first report replaces it. */
    int progress;
    char *progress_text;
    int64_t progress_ms;
} lash_record;

/* Checks a submission the way the submit script will (so errors come early and
 * clearly). The payload must be valid JSON within LASH_PAYLOAD_MAX bytes. */
lash_status lash_submission_check(const lash_submission *s, lash_err *e);

/* Checks an `after` list "ID[,ID...]": valid ids, at most LASH_AFTER_MAX, none
 * equal to self (the submission's id; may be NULL). Duplicates are allowed. */
lash_status lash_after_check(const char *after, const char *self, lash_err *e);

/* Parses "fixed:MS" or "exp:BASE:CAP". */
lash_status lash_backoff_parse(const char *s, lash_backoff *out, lash_err *e);
/* The delay before retry number `attempt` (1 = after the first failure). rnd is a
 * uniform value in [0,1) supplied by the caller, so this stays pure. */
int64_t lash_backoff_delay(const lash_backoff *b, int attempt, double rnd);

/* Builds a record from a row hash's field/value pairs (HGETALL order). Every
 * field is validated; the first bad one is named in e and LASH_EINVAL returned,
 * with rec still holding what was read. Unknown fields are ignored. */
void lash_record_init(lash_record *rec);
lash_status lash_record_set(lash_record *rec, const char *field, const char *val, size_t len,
                            lash_err *e);
/* After all fields: checks the required ones are there, and fills finished_ms
 * of a terminal row that does not hold one. */
lash_status lash_record_check(lash_record *rec, lash_err *e);
void lash_record_free(lash_record *rec);

/* Parses a decimal int64 in [min, max]; false on anything else. */
bool lash_parse_i64(const char *s, size_t len, int64_t min, int64_t max, int64_t *out);

#endif
