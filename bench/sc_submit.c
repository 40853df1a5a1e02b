/* sc_submit.c: bulk submit, through the C API and through `lashctl submit-bulk`.
 *
 * C API: lash_submit over 10,000-row arrays (the registry pipelines them in
 * script calls of SUBMIT_CHUNK rows). lashctl: one process reading N JSON Lines
 * from a file; the clock includes its start, parsing and exit, so it is what an
 * operator sees. Both check afterwards that every row is there and pending.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"

static void verify_pending(lash_conn *c, const char *q, long n)
{
    lash_stats s;
    lash_err e;
    if (lash_get_stats(c, q, &s, &e)) bench_die("stats: %s", e.msg);
    long long ndue = bench_due(c, q);
    if (s.count[LASH_PENDING] != n || s.total_submitted != n || ndue != n)
        bench_die("queue %s: expected %ld pending rows, found pending=%lld submitted=%lld due=%lld",
                  q, n, (long long)s.count[LASH_PENDING], (long long)s.total_submitted, ndue);
}

/* Runs lashctl with stdin from path; returns seconds, or -1 when it is missing. */
static double run_lashctl(const bench_opts *o, const char *q, const char *path)
{
    char prog[600];
    snprintf(prog, sizeof prog, "%s/lashctl", o->bin_dir);
    if (access(prog, X_OK) != 0) return -1;
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid < 0) bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        int in = open(path, O_RDONLY), out = open("/dev/null", O_WRONLY);
        if (in < 0 || out < 0) _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        execl(prog, prog, "--redis", o->url, "--queue", q, "submit-bulk", "noop", (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    double secs = bench_now() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        bench_die("lashctl submit-bulk failed (status %d)", st);
    return secs;
}

void sc_submit(const bench_opts *o)
{
    lash_conn *c = bench_connect(o);
    long n = o->n;

    bench_flush(o, c);
    bench_note("submit: %ld rows through lash_submit", n);
    bench_redis_snap s0, s1;
    bench_snap(c, &s0);
    double t0 = bench_now();
    bench_submit(c, "bench-submit", "noop", "{}", n);
    double secs = bench_now() - t0;
    bench_snap(c, &s1);
    verify_pending(c, "bench-submit", n);
    bench_emit("submit.capi.rate", "bulk submit, C API lash_submit", "rows/s", (double)n / secs,
               false);
    bench_emit("submit.capi.redis_us", "bulk submit C API: Redis CPU per row", "us",
               (s1.cpu - s0.cpu) * 1e6 / (double)n, false);

    char path[] = "/tmp/lash-bench-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) bench_die("mkstemp: %s", strerror(errno));
    FILE *f = fdopen(fd, "w");
    for (long i = 0; i < n; i++)
        fputs("{}\n", f);
    fclose(f);
    bench_flush(o, c);
    bench_note("submit: %ld lines through lashctl submit-bulk", n);
    double lsecs = run_lashctl(o, "bench-bulk", path);
    unlink(path);
    if (lsecs < 0) {
        bench_note("submit: lashctl not built, skipped");
    } else {
        verify_pending(c, "bench-bulk", n);
        bench_emit("submit.lashctl.rate", "bulk submit, lashctl submit-bulk (whole run)", "rows/s",
                   (double)n / lsecs, false);
    }
    lash_close(c);
}
