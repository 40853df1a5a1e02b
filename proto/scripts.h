/* scripts.h: the Lua sources, compiled into the library from proto/lua/NAME.lua.
 *
 * Each operation is one file defining `local function lash_<op>(KEYS, ARGV)`;
 * lib.lua holds what they share. Two texts are assembled from them:
 *   - per operation, for EVAL/EVALSHA: lib + op + "return lash_<op>(KEYS, ARGV)";
 *   - one Redis Functions library "lash" (FUNCTION LOAD) registering every op as
 *     lash_<op>, so redis-cli users can `FCALL lash_submit 1 lash:{q} ...`, and
 *     again as lash_<version>_<op>: lash's own clients call that name, so an
 *     FCALL runs exactly their version's code or fails "Function not found".
 * Calling convention for both: KEYS[1] = "lash:{<queue>}" (the base; every key
 * the script touches is derived from it, all in one hash slot).
 */
#ifndef LASH_PROTO_SCRIPTS_H
#define LASH_PROTO_SCRIPTS_H

#include <stddef.h>

typedef struct {
    const char *name; /* "lib", "submit", ... */
    const char *text;
    size_t len;
} lash_lua_source;

/* Generated table, terminated by a zero row. */
extern const lash_lua_source lash_lua_sources[];

typedef enum {
    LASH_OP_SUBMIT = 0,
    LASH_OP_CLAIM,
    LASH_OP_RENEW,
    LASH_OP_COMPLETE,
    LASH_OP_RELEASE,
    LASH_OP_CANCEL,
    LASH_OP_RETRY,
    LASH_OP_LIST,
    LASH_OP_STATS,
    LASH_OP_TRIM,
    LASH_OP_RECOVER,
    LASH_OP_RECOUNT,
    LASH_OP_PEEK,
    LASH_OP_PROGRESS,
    LASH_OP_LIMIT,
    LASH_OP_SCHED,     /* recurring schedules: add, rm, pause, resume, list, fire */
    LASH_OP_SCHEDPEEK, /* which schedules are due (the workers' schedule poll) */
    LASH_OP_COUNT
} lash_op;

const char *lash_op_name(lash_op op);

/* The EVAL text of op (static storage, built on first use; thread-safe). */
const char *lash_script_text(lash_op op, size_t *len);
/* The SHA1 (40 hex chars) of that text, as EVALSHA wants it. */
const char *lash_script_sha(lash_op op);
/* The whole Functions library text; its version is lash_function_version(). */
const char *lash_function_library(size_t *len);
/* lash_<version>_<op>: the name lash's own clients FCALL. */
const char *lash_function_name(lash_op op);
/* A short hash of the Lua sources, returned by FCALL lash_version. */
const char *lash_function_version(void);

#endif
