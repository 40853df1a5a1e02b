/* argv.h (internal): building script calls as argument vectors.
 *
 * One builder serves the blocking and the async API: a call is
 *   FCALL lash_<version>_<op> 1 lash:{q} args...
 * while the library of this very version is loaded (lashctl loads it; workers
 * never do), else EVALSHA <sha> (its first two slots swapped), and EVAL <text>
 * when Redis answers NOSCRIPT. A function call costs Redis less: an EVALSHA
 * runs the whole script text, lib.lua's definitions included, on every call
 * (docs/benchmarks.md).
 * Argument bytes live in one growing arena, so a 1,000-row batch costs a handful
 * of allocations, not ten thousand.
 */
#ifndef LASH_REGISTRY_ARGV_H
#define LASH_REGISTRY_ARGV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "proto/scripts.h"
#include "registry/registry.h"

typedef struct {
    lash_op op;
    char *arena;
    size_t used, cap;
    size_t *off; /* start of each argument in arena */
    size_t *len;
    int argc, argcap;
    const char **ptrs; /* built by lash_argv_finish */
    bool oom;
} lash_argv;

/* Starts a script call for queue (leaves the EVALSHA/sha slots filled). */
void lash_argv_script(lash_argv *a, lash_op op, const char *queue);
void lash_argv_add(lash_argv *a, const char *s, size_t len);
void lash_argv_adds(lash_argv *a, const char *s);
void lash_argv_addi(lash_argv *a, int64_t v);
/* Token "<owner>:<fence>". */
void lash_argv_token(lash_argv *a, const char *owner, int64_t fence);
/* How a script call goes, best first: each falls back to the next. */
typedef enum { LASH_SEND_FCALL, LASH_SEND_EVALSHA, LASH_SEND_EVAL } lash_send;

/* A connection's first choice: FCALL, unless Redis said "Function not found"
 * within the last minute (the library is absent or of another version), so a
 * library loaded later is taken up within a minute. */
typedef struct {
    int64_t fcall_after; /* monotonic ms */
} lash_sendpref;

lash_send lash_sendpref_first(const lash_sendpref *p);
/* After r answered a call sent as *how: true when r says Redis does not know
 * the function (FCALL) or script (EVALSHA) and *how moved on: send it again. */
bool lash_send_fallback(lash_sendpref *p, lash_send *how, const redisReply *r);

/* Builds ptrs with the first two slots for how. NULL on OOM. */
const char **lash_argv_finish(lash_argv *a, lash_send how);
void lash_argv_free(lash_argv *a);

/* Encoders for each operation (shared by sync and async). */
void lash_argv_claim(lash_argv *a, const char *queue, const char *owner, int n, int64_t ttl_ms,
                     lash_retention keep, uint32_t seq, int upkeep);
void lash_argv_recover(lash_argv *a, const char *queue, const char *owner, uint32_t seq);
void lash_argv_renew(lash_argv *a, const char *queue, int64_t ttl_ms, const lash_lease *l,
                     size_t n);
void lash_argv_complete(lash_argv *a, const char *queue, const lash_completion *r, size_t n);
void lash_argv_progress(lash_argv *a, const char *queue, const lash_progress_report *r, size_t n);
void lash_argv_release(lash_argv *a, const char *queue, const lash_lease *l, const bool *ran,
                       size_t n);
/* One submit row (options that equal their defaults are not sent). */
void lash_argv_submit_row(lash_argv *a, const lash_submission *s, const char *id);

#endif
