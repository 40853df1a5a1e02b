/* limits.h: every bound lash enforces on data, in one place.
 *
 * The Lua scripts enforce the same numbers (proto/lua/lib.lua); tests/test_proto.c
 * checks that the two agree, so a change here that is not made there fails a test.
 */
#ifndef LASH_PROTO_LIMITS_H
#define LASH_PROTO_LIMITS_H

#define LASH_ID_MAX 128                /* process id: [A-Za-z0-9._:-], 1..128 */
#define LASH_QUEUE_MAX 64              /* queue name: [A-Za-z0-9._-], 1..64 */
#define LASH_KIND_MAX 64               /* kind: [A-Za-z0-9._-], 1..64 */
#define LASH_WORKER_ID_MAX 128         /* worker id: printable ASCII, no space (host:pid ok) */
#define LASH_PAYLOAD_MAX (1024 * 1024) /* payload JSON text, bytes */
#define LASH_RESULT_MAX (64 * 1024)    /* result text recorded on completion */
#define LASH_ERROR_MAX 2048            /* error text recorded on failure */
#define LASH_ATTEMPTS_MAX 1000
#define LASH_TIMEOUT_MAX (7LL * 24 * 3600 * 1000) /* a week, in ms */
#define LASH_DELAY_MAX (365LL * 24 * 3600 * 1000) /* a year, in ms */
#define LASH_BATCH_MAX 1000                       /* rows per submit/claim/complete call */
#define LASH_WAIT_MAX 86400000 /* ms a peek or a claim says until the next row is due, at most */
#define LASH_PROGRESS_TEXT_MAX 200 /* a progress report's text, bytes (proto/progress.h) */

/* Fleet-wide limits per kind (lashctl limit, registry/limit.h). */
#define LASH_LIMIT_CONCURRENCY_MAX 1000000 /* rows of a kind running at once */
#define LASH_LIMIT_RATE_MAX 100000         /* starts per period (a zset entry each) */
#define LASH_LIMIT_PERIOD_MAX 86400000LL   /* a day, in ms */
#define LASH_AFTER_MAX 1000                /* ids one process may wait for (--after) */
#define LASH_PRIO_MAX 1000 /* priority: -LASH_PRIO_MAX..LASH_PRIO_MAX, higher runs first */

/* A row leaves these out (proto/record.h), so they are part of the stored
 * format: changing one changes what every row already written means. */
#define LASH_DEFAULT_MAX_ATTEMPTS 3
#define LASH_DEFAULT_BACKOFF "exp:1000:60000"

#endif
