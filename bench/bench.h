/* bench.h: what lash-bench's scenarios share.
 *
 * Each scenario (sc_*.c) runs once against the Redis given by --redis and emits
 * its measurements as JSON lines on stdout, one object per number:
 *
 *   {"key":"drain.c10.rate","label":"drain, 1 worker, c=10","unit":"jobs/s","value":31000}
 *
 * bench/run.sh repeats the scenarios, collects the lines and hands them to
 * `lash-bench report`, which prints medians with min/max and writes the JSON.
 * A scenario reports a rate only after it has checked that every process it
 * made really reached `completed` (worker counters, stats counters, and the due
 * set empty / done count); otherwise it fails and emits nothing.
 *
 * Redis CPU is read from INFO cpu (used_cpu_sys + used_cpu_user of the server,
 * all threads), so the bench must be the only client of that Redis: run.sh
 * starts a private one.
 */
#ifndef LASH_BENCH_H
#define LASH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"

typedef struct {
    const char *url; /* --redis */
    long n;          /* processes per scenario (--n) */
    bool quick;      /* tiny windows: CI proves it works, nothing more */
    bool flush;      /* --flush: the Redis is ours, FLUSHALL between scenarios */
    char bin_dir[512];
} bench_opts;

/* ---- output --------------------------------------------------------------- */

/* One measurement line on stdout. detail: listed in the JSON, not the table. */
void bench_emit(const char *key, const char *label, const char *unit, double value, bool detail);
/* Progress and diagnostics go to stderr. */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints why and exits 1: a scenario that cannot verify its result reports nothing. */
_Noreturn void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- time and CPU ------------------------------------------------------------ */

double bench_now(void);          /* CLOCK_MONOTONIC, seconds */
int64_t bench_wall_ns(void);     /* CLOCK_REALTIME, ns (comparable across processes) */
double bench_self_cpu(void);     /* user+sys of this process, seconds */
double bench_children_cpu(void); /* user+sys of waited-for children, seconds */
double bench_pid_cpu(int pid);   /* user+sys of a live process from /proc, seconds */
void bench_sleep(double secs);

/* Runs "$LASH_BENCH_MARK <phase>" when that is set (e.g. `callgrind_control -d`
 * to dump a profile of the Redis server between phases); a no-op otherwise. */
void bench_mark(const char *phase);

/* ---- Redis --------------------------------------------------------------- */

lash_conn *bench_connect(const bench_opts *o);
/* FLUSHALL when --flush was given, so each scenario starts on an empty Redis. */
void bench_flush(const bench_opts *o, lash_conn *c);

/* A snapshot of the server counters the scenarios compare. */
#define BENCH_MAX_CMDS 64
typedef struct {
    double cpu; /* used_cpu_sys + used_cpu_user */
    long long commands;
    long long used_memory;
    int ncmds;
    struct {
        char name[40];
        long long calls;
        long long usec;
    } cmd[BENCH_MAX_CMDS];
} bench_redis_snap;

void bench_snap(lash_conn *c, bench_redis_snap *s);
/* calls/usec of a command between two snapshots (0 when absent). */
long long bench_calls(const bench_redis_snap *a, const bench_redis_snap *b, const char *name);
long long bench_usec(const bench_redis_snap *a, const bench_redis_snap *b, const char *name);
/* Emits, as details, per-row call counts of every command that ran between the
 * snapshots, and the script usec per row: what a phase costs Redis. */
void bench_emit_cmdstats(const char *key, const char *label, const bench_redis_snap *a,
                         const bench_redis_snap *b, long rows);

/* Submits n rows of kind with payload (NULL: "{}") to queue, in chunks. */
void bench_submit(lash_conn *c, const char *queue, const char *kind, const char *payload, long n);
/* Rows in queue's due set (non-terminal) and done set (terminal, retained). */
long long bench_due(lash_conn *c, const char *queue);
long long bench_done(lash_conn *c, const char *queue);
/* Checks that exactly n rows of queue are completed: the stats counters
 * (completed, total_completed, no pending/running/failed) and the keys (due
 * empty, done holding n). Dies with what is wrong otherwise. */
void bench_verify_completed(lash_conn *c, const char *queue, long n, long total_before);

/* ---- processes --------------------------------------------------------------- */

/* Starts build/bin/<prog> with args (NULL-terminated); stdout/stderr to /dev/null
 * unless LASH_BENCH_VERBOSE is set. Returns its pid. */
int bench_spawn(const bench_opts *o, const char *prog, const char *const *args);
/* SIGTERM, then waits (SIGKILL after 10 s). Returns the exit status. */
int bench_stop(int pid);

/* ---- scenarios ----------------------------------------------------------------- */

/* Runs one embedded worker (built-in noop, or exec_prog for exec_kind) on queue
 * until n rows are recorded, then shuts it down; returns the seconds it took. */
double bench_run_worker(const bench_opts *o, const char *queue, int conc, int prefetch, long n,
                        const char *exec_kind, const char *exec_prog);

void sc_registry(const bench_opts *o);
void sc_drain(const bench_opts *o, const int *conc, int nconc);
void sc_fleet(const bench_opts *o, const int *workers, int nworkers);
void sc_submit(const bench_opts *o);
void sc_latency(const bench_opts *o);
void sc_exec(const bench_opts *o);
void sc_idle(const bench_opts *o);
void sc_idlefleet(const bench_opts *o);
void sc_memory(const bench_opts *o);

int bench_report(int argc, char **argv);
/* `lash-bench beanstalkd --addr HOST:PORT --pid PID`: the beanstalkd peer (beanstalk.c). */
int bench_beanstalkd(int argc, char **argv);

#endif
