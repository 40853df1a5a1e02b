/* sc_idle.c: what a worker costs when there is nothing to do, and its memory.
 *
 * A real lash-worker process at concurrency 64 first drains a batch of no-op
 * rows (so its buffers have seen work), then sits idle for the window: its CPU
 * (from /proc/<pid>/stat) as a share of one core, and the commands per second
 * Redis received meanwhile (INFO total_commands_processed, less the bench's own
 * INFO). Then VmRSS and VmHWM from /proc/<pid>/status.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bench/bench.h"

static long status_kb(int pid, const char *field)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    long v = -1;
    size_t n = strlen(field);
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':') v = strtol(line + n + 1, NULL, 10);
    if (f) fclose(f);
    return v;
}

void sc_idle(const bench_opts *o)
{
    lash_conn *c = bench_connect(o);
    long n = o->n < 20000 ? o->n : 20000;
    double window = o->quick ? 2 : 10;
    bench_flush(o, c);
    bench_note("idle: lash-worker at concurrency 64 drains %ld rows, then idles %.0f s", n, window);
    bench_submit(c, "bench-idle", "noop", "{}", n);
    const char *args[] = {
        "--redis",   o->url,       "--queue",       "bench-idle", "--builtin", "noop",
        "--id",      "bench-idle", "--concurrency", "64",         "--keep",    "-1",
        "--keep-ms", "0",          "--log-level",   "warn",       NULL};
    int pid = bench_spawn(o, "lash-worker", args);
    double t0 = bench_now();
    while (bench_done(c, "bench-idle") < n) {
        if (bench_now() - t0 > 300) bench_die("idle: the worker did not drain its rows");
        if (waitpid(pid, NULL, WNOHANG) == pid) bench_die("idle: lash-worker exited early");
        bench_sleep(0.01);
    }
    bench_verify_completed(c, "bench-idle", n, 0);
    bench_sleep(1.0); /* let the last completes and timers settle */
    bench_redis_snap s0, s1;
    bench_snap(c, &s0);
    double cpu0 = bench_pid_cpu(pid), w0 = bench_now();
    bench_sleep(window);
    double cpu1 = bench_pid_cpu(pid), w1 = bench_now();
    bench_snap(c, &s1);
    long rss = status_kb(pid, "VmRSS"), hwm = status_kb(pid, "VmHWM");
    int st = bench_stop(pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) bench_die("idle: lash-worker did not exit 0");
    if (cpu0 < 0 || cpu1 < 0 || rss < 0) bench_die("idle: cannot read /proc of the worker");
    double secs = w1 - w0;
    /* Commands the worker sent: its script calls (and pings). The commands its
     * scripts run inside Redis are counted apart. The first INFO is counted
     * after it ran, so it is inside the total's delta. */
    double cmds = (double)(bench_calls(&s0, &s1, "evalsha") + bench_calls(&s0, &s1, "eval") +
                           bench_calls(&s0, &s1, "fcall") + bench_calls(&s0, &s1, "ping")) /
                  secs;
    double all = (double)(s1.commands - s0.commands - 1) / secs;
    bench_emit("idle.cpu_pct", "idle worker: CPU, % of one core", "%", (cpu1 - cpu0) * 100 / secs,
               false);
    bench_emit("idle.redis_cmds", "idle worker: Redis commands/s it sends", "cmd/s", cmds, false);
    bench_emit("idle.redis_cmds_all", "idle worker: Redis commands/s incl. inside scripts", "cmd/s",
               all, true);
    bench_emit("idle.redis_us", "idle worker: Redis CPU, us per second", "us/s",
               (s1.cpu - s0.cpu) * 1e6 / secs, true);
    bench_emit("idle.rss_kib", "worker RSS after a drain, c=64 (VmRSS)", "KiB", (double)rss, false);
    bench_emit("idle.hwm_kib", "worker peak RSS, c=64 (VmHWM)", "KiB", (double)hwm, false);
    lash_close(c);
}
