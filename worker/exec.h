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
 * parent-death signal), and sees only fds 0, 1, 2 and 3.
 *
 * Progress: fd 3 (also named by $LASH_PROGRESS_FD) is the write end of a pipe
 * the worker reads while the program runs. Each line written there is handed
 * to the progress callback as it comes (format: proto/progress.h); a line
 * longer than LASH_PROGRESS_LINE_MAX is not kept, only its length is told. A
 * program that never writes there changes nothing; the pipe is closed, unread,
 * once the outcome is known.
 * Needs libev's default loop (child watchers live only there).
 */
#ifndef LASH_WORKER_EXEC_H
#define LASH_WORKER_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"
#include "proto/progress.h"
#include "registry/registry.h"

struct ev_loop;
typedef struct lash_exec lash_exec;

/* The descriptor a program writes its progress to ($LASH_PROGRESS_FD). */
#define LASH_EXEC_PROGRESS_FD 3

/* Called for each line the program writes to fd 3, without its '\n': line
 * (valid only during the call) and its length, or line NULL and len the
 * length of a line too long to keep. Not called after done. */
typedef void lash_exec_progress_fn(void *ud, const char *line, size_t len);

typedef struct {
    const char *program;
    const char *queue, *id, *kind;
    int attempt;
    int64_t fence;
    const char *payload;
    size_t payload_len;
    size_t result_max;               /* stdout cap (<= LASH_RESULT_MAX) */
    size_t tail_max;                 /* stderr tail kept for the error (<= LASH_ERROR_MAX / 2) */
    lash_exec_progress_fn *progress; /* NULL: fd 3's lines are read and dropped */
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
