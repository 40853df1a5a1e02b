/* limit.h: fleet-wide limits per kind of a queue (`lashctl limit`).
 *
 * A limit caps, for one kind, how many rows run at once across every worker
 * of the queue (concurrency) and how many start in any period (rate: R starts
 * per PERIOD ms, a sliding window). The claim script enforces them
 * (proto/lua/lib.lua, lash_limit_*): a row held back stays pending, unleased,
 * and is rescored in lash:{q}:due to when it may go; a freed slot wakes the
 * oldest held row. They live in Redis under the queue's keys (docs/architecture.md):
 *
 *   lash:{q}:limits            hash  '<kind>:concurrency' = N,
 *                                    '<kind>:rate' = 'R/PERIOD_MS'
 *   lash:{q}:running:<kind>    zset  id -> lease expiry ms (holding a slot)
 *   lash:{q}:starts:<kind>     zset  '<id>:<fence>' -> start ms (rate window)
 *   lash:{q}:held:<kind>       zset  id -> ms first held for a slot
 *
 * Same thread rules as registry.h.
 */
#ifndef LASH_REGISTRY_LIMIT_H
#define LASH_REGISTRY_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"

/* lash_limit_set's "leave it as it is". */
#define LASH_LIMIT_KEEP (-1)

/* Sets kind's limits. concurrency: 1..LASH_LIMIT_CONCURRENCY_MAX sets it, 0
 * removes it, LASH_LIMIT_KEEP leaves it. rate: 1..LASH_LIMIT_RATE_MAX starts
 * per period_ms (1..LASH_LIMIT_PERIOD_MAX) sets it, 0 removes it,
 * LASH_LIMIT_KEEP leaves it (period_ms then unused). At least one must
 * change. LASH_EINVAL names a bad value before anything is sent. Rows held
 * by the kind's old limit are looked at again at once. */
lash_status lash_limit_set(lash_conn *c, const char *queue, const char *kind, int64_t concurrency,
                           int64_t rate, int64_t period_ms, lash_err *e);

/* Removes both of kind's limits; *had (may be NULL) says whether it had one. */
lash_status lash_limit_rm(lash_conn *c, const char *queue, const char *kind, bool *had,
                          lash_err *e);

typedef struct {
    char kind[LASH_KIND_MAX + 1];
    int64_t concurrency;     /* 0: none; -1: the stored value is malformed (not enforced) */
    int64_t rate, period_ms; /* 0: none; -1: malformed (not enforced) */
    int64_t running;         /* rows holding a slot whose lease has not run out */
    int64_t held;            /* rows waiting for a slot */
} lash_limit;

/* Every kind with a limit, by name. *out is the caller's: free() it (NULL
 * and 0 when there are none; also after an error). */
lash_status lash_limit_list(lash_conn *c, const char *queue, lash_limit **out, size_t *n,
                            lash_err *e);

#endif
