/* keys.h: Redis key and channel names, and validation of the names inside them.
 *
 * Every key of queue q carries the hash tag {q}, so one script touches one slot
 * (Redis Cluster shards queues across nodes). The names are part of the operator
 * interface: README's redis-cli recipes depend on them, so they never change.
 *
 *   lash:{q}                 base: passed as KEYS[1] to every script and function
 *   lash:{q}:p:<id>          hash   the row
 *   lash:{q}:due             zset   non-terminal ids, score = next eligible ms
 *   lash:{q}:lease:<id>      string "<worker-id>:<fence>", SET NX PX
 *   lash:{q}:done            zset   terminal ids by finish ms
 *   lash:{q}:events          stream capped transition log
 *   lash:{q}:stats           hash   rows per state and running totals
 *   lash:{q}:workers         zset   worker id by last heartbeat ms
 *   lash:{q}:limits          hash   '<kind>:concurrency' = N, '<kind>:rate' = 'R/PERIOD_MS'
 *   lash:{q}:running:<kind>  zset   ids holding a slot of kind's limit, by lease expiry ms
 *   lash:{q}:held:<kind>     zset   ids waiting for a slot, by ms first held
 *   lash:{q}:starts:<kind>   zset   '<id>:<fence>' by start ms: kind's rate window
 *                                   (the limit keys: registry/limit.h, proto/lua/lib.lua)
 *   lash:{q}:poke            channel  any message wakes every worker of q
 *   lash:{q}:cancel          channel  a process id whose cancellation was asked
 *   lash:{q}:finished        channel  a process id that just became terminal
 *   lash:{q}:progress        channel  "<id> <percent> <text>": a running process's progress
 *   lash:{q}:schedules       zset   recurring schedule names by next firing check
 *   lash:{q}:sched:<name>    hash   one recurring schedule (registry/sched.h)
 */
#ifndef LASH_PROTO_KEYS_H
#define LASH_PROTO_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/err.h"
#include "proto/limits.h"

/* Longest name below: "lash:{" q "}:lease:" id. */
#define LASH_KEY_MAX (16 + LASH_QUEUE_MAX + LASH_ID_MAX)

typedef enum {
    LASH_KEY_BASE,
    LASH_KEY_DUE,
    LASH_KEY_DONE,
    LASH_KEY_EVENTS,
    LASH_KEY_STATS,
    LASH_KEY_WORKERS,
    LASH_CHAN_POKE,
    LASH_CHAN_CANCEL,
    LASH_CHAN_FINISHED,
    LASH_CHAN_PROGRESS,
} lash_key_kind;

/* Writes the queue-wide name into buf (LASH_KEY_MAX bytes); returns buf. */
char *lash_key(char *buf, const char *queue, lash_key_kind k);
/* lash:{q}:p:<id> and lash:{q}:lease:<id>. */
char *lash_key_row(char *buf, const char *queue, const char *id);
char *lash_key_lease(char *buf, const char *queue, const char *id);

/* Name checks; each fills e with a sentence naming the problem. */
lash_status lash_queue_check(const char *q, lash_err *e);
lash_status lash_id_check(const char *id, size_t len, lash_err *e);
lash_status lash_kind_check(const char *kind, size_t len, lash_err *e);
lash_status lash_worker_id_check(const char *w, lash_err *e);

#endif
