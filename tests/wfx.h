/* wfx.h: the fixture of the suites that run real lash-worker processes.
 *
 * Each test starts its own Redis (up(), tests/fixture.h) and real lash-worker
 * processes (fork/exec of the built binary), submits rows with the registry
 * API or raw commands, and reads the outcome back from Redis. Exec handlers are
 * small shell scripts written into the test's temp dir; the "work" script logs
 * one line per run ("<id> <fence> <attempt> <pid>") to exec.log, so a test can
 * count executions and find (and signal) the process group of a run.
 *
 * Timings are liveness bounds only, generous enough for a sanitizer build on a
 * busy 2-core machine. Workers still running at the end are asked to drain
 * (SIGTERM) by wfx_teardown, which checks they exit 0 and that no sanitizer
 * report reached their stderr. A suite declares
 *
 *   TestSuite(name, .fini = wfx_teardown, .timeout = 90);
 *
 * LASH_TEST_VERBOSE=1 dumps every worker's stderr and log at the end of each
 * test (the temp dir is removed with the Redis fixture).
 */
#ifndef LASH_TESTS_WFX_H
#define LASH_TESTS_WFX_H

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "fixture.h"
#include "registry/registry.h"

/* ---- the private Redis and a connection to it ----------------------------------- */

extern lash_fx_redis R;
extern lash_conn *C;

void up(const char *const *extra);
void reconnect(void);

/* Raw commands on C; each asserts the command was answered without an error. */
redisReply *vcmd(const char *fmt, va_list ap);
redisReply *cmd(const char *fmt, ...);
void cmd_do(const char *fmt, ...);
long long cmd_int(const char *fmt, ...);

/* A field of row id of queue q (NULL when missing); into buf. */
const char *hget(const char *q, const char *id, const char *field, char *buf, size_t cap);
/* The same into one of four rotating static buffers; "(none)" when missing. */
const char *hf(const char *q, const char *id, const char *field);
bool row_is(const char *q, const char *id, const char *state);
bool lease_exists(const char *q, const char *id);
long long lease_keys(const char *q);
lash_stats stats(const char *q);
lash_record get(const char *q, const char *id);
/* Whether owner (a row's or a lease's) is worker `name`: lash-worker --id
 * name owns rows as "name#<boot nonce>", so two runs of a worker of the same
 * name never hold the same token. */
bool owner_is(const char *owner, const char *name);
bool owned_by(const lash_record *r, const char *name);
/* The work script's result is "fence <N>\n" with the row's own fence. */
void expect_result(const lash_record *r);
/* The events of kind ev recorded for id in the queue's stream. */
int events(const char *q, const char *id, const char *ev);
/* Workers listening to lash:{q}:poke both ways: classic (an operator's
 * PUBLISH) and sharded (the scripts' SPUBLISH); the fewer of the two counts. */
long long subscribers(const char *q);

/* ---- submitting ------------------------------------------------------------------ */

typedef struct {
    int max_attempts;
    int64_t timeout_ms;
    bool abandon; /* on_lost=abandon */
} opts;

void submit_o(const char *q, const char *id, const char *kind, const char *payload, opts o);
void submit(const char *q, const char *id, const char *kind, const char *payload);
/* n rows "<prefix><i>" of one kind and payload, in one batch. */
void submit_many(const char *q, const char *prefix, int n, const char *kind, const char *payload);
/* Each of those rows is on its first attempt (it ran once). */
void ran_once(const char *q, const char *prefix, int n);
/* A pending row written with raw commands, no PUBLISH: what a submit would
 * write, as field/value pairs (NULL-terminated), due at once. */
void raw_row(const char *q, const char *id, const char *const *fv);

#define FV(...) ((const char *const[]){__VA_ARGS__, NULL})

/* ---- waiting --------------------------------------------------------------------- */

/* Polls cond every 20 ms until it holds or ms have passed; the caller asserts. */
#define WAIT_UNTIL(cond, ms)                                                                       \
    do {                                                                                           \
        long long wait_end_ = lash_fx_ms() + (ms);                                                 \
        while (!(cond) && lash_fx_ms() < wait_end_)                                                \
            lash_fx_sleep_ms(20);                                                                  \
    } while (0)

bool group_gone(pid_t pgid);
bool file_has(const char *path, const char *needle);

/* ---- workers and other programs ---------------------------------------------------- */

#define MAXW 8
typedef struct {
    pid_t pid;
    char name[32];
} wproc;
extern wproc W[MAXW];

/* <test dir>/name */
void path_in(char *buf, size_t cap, const char *name);
/* Starts a program with stdout/stderr to <dir>/<name>.err, stdin from
 * /dev/null, no LASH_* variable of the test's environment but env's
 * ("NAME=value", NULL-terminated, may be NULL), default signal handling. */
pid_t spawn(const char *name, const char *const *env, const char *const *argv);
wproc *track(const char *name, pid_t pid);
/* Starts lash-worker --id name with a log file <dir>/<name>.log (debug level)
 * and a short default grace; args (NULL-terminated) come after and win. */
pid_t worker_env(const char *name, const char *const *env, const char *const *args);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define WORKER(name, ...) worker_env(name, NULL, ARGS(__VA_ARGS__))

wproc *find(pid_t pid);
/* Waits up to ms for pid to exit: its exit status, 128 + signal, or -1 when it
 * is still running. */
int wait_exit(pid_t pid, int ms);
bool alive(pid_t pid);
void kill9(pid_t pid);
/* Runs a program to completion (stdout/stderr to <dir>/<name>.err): its exit code. */
int run(const char *name, const char *const *argv);
void dump(const char *path);
void wfx_teardown(void);

/* ---- exec handler scripts ---------------------------------------------------------- */

/* Writes an executable /bin/sh script <dir>/<name>; its path goes into path. */
void script(char *path, size_t cap, const char *name, const char *body);
/* The "work" script: payload "[A,B]" means sleep A seconds on the id's first
 * run and B seconds on later runs; logs "<id> <fence> <attempt> <pid>" to
 * exec.log first, prints "fence <N>" last. */
void work_script(char *path, size_t cap);
/* How often id ran according to exec.log, and the pid (process group) of its
 * run-th run, 1-based (0 if none). */
int runs_of(const char *id, int run, pid_t *pid);
/* The fence of id's run-th run (0 if none). Fences come from a queue-wide
 * counter: a test compares them, it does not guess them. */
int64_t fence_of_run(const char *id, int run);

#endif
