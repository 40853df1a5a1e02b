/* sc_exec.c: exec processes, fork+exec of a trivial program per process.
 *
 * One embedded worker runs kind "true" as /bin/true (payload on stdin, exit 0,
 * empty stdout) at concurrency EXEC_CONC; N/10 rows (the spawn dominates, so
 * fewer rows measure it as well). Verified completed like every drain.
 */
#include <spawn.h>
#include <stdio.h>
#include <sys/wait.h>

#include "bench/bench.h"

extern char **environ;

/* The machine's own bound: posix_spawn + waitpid of /bin/true, one at a time. */
static double bare_spawn_rate(long n)
{
    char *argv[] = {"/bin/true", NULL};
    double t0 = bench_now();
    for (long i = 0; i < n; i++) {
        pid_t pid;
        if (posix_spawn(&pid, "/bin/true", NULL, NULL, argv, environ) != 0)
            bench_die("posix_spawn /bin/true failed");
        waitpid(pid, NULL, 0);
    }
    return (double)n / (bench_now() - t0);
}

#define EXEC_CONC 32

void sc_exec(const bench_opts *o)
{
    lash_conn *c = bench_connect(o);
    long n = o->n / 10 > 0 ? o->n / 10 : 1;
    bench_flush(o, c);
    bench_note("exec: %ld rows of /bin/true, one embedded worker, concurrency %d", n, EXEC_CONC);
    bench_submit(c, "bench-exec", "true", "{}", n);
    bench_redis_snap s1, s2;
    bench_snap(c, &s1);
    double cpu0 = bench_self_cpu(), ccpu0 = bench_children_cpu();
    double secs = bench_run_worker(o, "bench-exec", EXEC_CONC, 0, n, "true", "/bin/true");
    double cpu = bench_self_cpu() - cpu0, ccpu = bench_children_cpu() - ccpu0;
    bench_snap(c, &s2);
    bench_verify_completed(c, "bench-exec", n, 0);
    bench_emit("exec.c32.rate", "exec /bin/true, 1 worker, c=32", "procs/s", (double)n / secs,
               false);
    bench_emit("exec.bare.rate", "reference: bare posix_spawn+wait of /bin/true, serial", "procs/s",
               bare_spawn_rate(n < 2000 ? n : 2000), false);
    bench_emit("exec.c32.worker_us", "exec c=32: worker CPU per process (w/o child)", "us",
               cpu * 1e6 / (double)n, false);
    bench_emit("exec.c32.child_us", "exec c=32: child CPU per process", "us",
               ccpu * 1e6 / (double)n, true);
    bench_emit("exec.c32.redis_us", "exec c=32: Redis CPU per process", "us",
               (s2.cpu - s1.cpu) * 1e6 / (double)n, true);
    lash_close(c);
}
