/* exec.h: running one configured program for one process (the exec handler).
 *
 * The program is the worker's configuration, never the row's: a row supplies
 * only the payload, written to the program's stdin. The program gets LASH_ID,
 * LASH_QUEUE, LASH_KIND, LASH_ATTEMPT and LASH_FENCE in its environment, runs in
 * a process group of its own (so a kill reaches its children too), with default
 * signal dispositions and an empty signal mask.
 *
 * Outcome: exit 0 is success and stdout is the result, if it is valid UTF-8 text
 * within result_max bytes; any other exit, a signal, or bad output is a failure
 * whose text says why and ends with the tail of stderr. A program whose stdout
 * passes result_max is stopped there (it can only fail); stderr beyond the tail
 * is read and dropped, so a chatty program can never block or bloat the worker.
 * When the outcome is known, the whole process group is killed: nothing the
 * program started outlives it. The program also dies with the worker (a
 * parent-death signal), and sees only fds 0, 1 and 2.
 * Needs libev's default loop (child watchers live only there).
 */
#ifndef LASH_WORKER_EXEC_H
#define LASH_WORKER_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"
#include "registry/registry.h"

struct ev_loop;
typedef struct lash_exec lash_exec;

typedef struct {
    const char *program;
    const char *queue, *id, *kind;
    int attempt;
    int64_t fence;
    const char *payload;
    size_t payload_len;
    size_t result_max; /* stdout cap (<= LASH_RESULT_MAX) */
    size_t tail_max;   /* stderr tail kept for the error (<= LASH_ERROR_MAX / 2) */
} lash_exec_spec;

/* Called once when the program has exited and its output is read. text is
 * valid only during the call. The lash_exec frees itself right after. */
typedef void lash_exec_done_fn(void *ud, lash_outcome o, const char *text, size_t len);

lash_status lash_exec_start(struct ev_loop *loop, const lash_exec_spec *spec,
                            lash_exec_done_fn *done, void *ud, lash_exec **out, lash_err *e);
/* Signals the program's process group. */
void lash_exec_kill(lash_exec *x, int sig);
/* Checks that a program path is usable: absolute or found in PATH, executable. */
lash_status lash_exec_program_check(const char *program, lash_err *e);

#endif
