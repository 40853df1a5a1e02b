/* argv.h (internal): building script calls as argument vectors.
 *
 * One builder serves the blocking and the async API: a call is
 *   EVALSHA <sha> 1 lash:{q} args...
 * and its first two slots are swapped for EVAL <text> when Redis answers NOSCRIPT.
 * Argument bytes live in one growing arena, so a 1,000-row batch costs a handful
 * of allocations, not ten thousand.
 */
#ifndef LASH_REGISTRY_ARGV_H
#define LASH_REGISTRY_ARGV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
/* Builds ptrs; eval puts EVAL <text> in the first slots instead of EVALSHA. NULL on OOM. */
const char **lash_argv_finish(lash_argv *a, bool eval);
void lash_argv_free(lash_argv *a);

/* Encoders for each operation (shared by sync and async). */
void lash_argv_claim(lash_argv *a, const char *queue, const char *owner, int n, int64_t ttl_ms,
                     lash_retention keep, uint32_t seq, int upkeep);
void lash_argv_recover(lash_argv *a, const char *queue, const char *owner, uint32_t seq);
void lash_argv_renew(lash_argv *a, const char *queue, int64_t ttl_ms, const lash_lease *l,
                     size_t n);
void lash_argv_complete(lash_argv *a, const char *queue, const lash_completion *r, size_t n);
void lash_argv_release(lash_argv *a, const char *queue, const lash_lease *l, const bool *ran,
                       size_t n);
/* One submit row (options that equal their defaults are not sent). */
void lash_argv_submit_row(lash_argv *a, const lash_submission *s, const char *id);

#endif
