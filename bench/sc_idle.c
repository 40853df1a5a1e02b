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

/* idlefleet: what K idle workers cost Redis. K real lash-worker processes
 * (default poll, 400 ms) on an empty queue: Redis CPU (INFO cpu) over the
 * window, less Redis's own idle CPU measured first in the same run, per worker
 * as a share of one core; and the script calls each worker sends per second. */
static void idle_fleet(const bench_opts *o, lash_conn *c, int k, double window, double base)
{
    const char *q = "bench-idlefleet";
    int *pids = calloc((size_t)k, sizeof *pids);
    if (!pids) bench_die("out of memory");
    for (int i = 0; i < k; i++) {
        char id[32];
        snprintf(id, sizeof id, "idle-%d", i);
        const char *args[] = {"--redis", o->url, "--queue",     q,      "--builtin", "noop",
                              "--id",    id,     "--log-level", "warn", NULL};
        pids[i] = bench_spawn(o, "lash-worker", args);
    }
    lash_stats st = {0};
    lash_err e;
    double t0 = bench_now();
    do {
        bench_sleep(0.2);
        if (lash_get_stats(c, q, &st, &e)) bench_die("idlefleet: %s", e.msg);
        if (bench_now() - t0 > 60)
            bench_die("idlefleet: %lld of %d workers up", (long long)st.workers, k);
    } while (st.workers < k);
    bench_sleep(2); /* past every startup drive */
    bench_redis_snap s0, s1;
    bench_snap(c, &s0);
    double w0 = bench_now();
    bench_sleep(window);
    double secs = bench_now() - w0;
    bench_snap(c, &s1);
    for (int i = 0; i < k; i++)
        kill(pids[i], SIGTERM);
    for (int i = 0; i < k; i++) {
        int status;
        if (waitpid(pids[i], &status, 0) != pids[i] || !WIFEXITED(status) || WEXITSTATUS(status))
            bench_die("idlefleet: a worker did not exit 0");
    }
    free(pids);
    double us = (s1.cpu - s0.cpu) * 1e6 / secs - base;
    long long calls = bench_calls(&s0, &s1, "fcall") + bench_calls(&s0, &s1, "evalsha") +
                      bench_calls(&s0, &s1, "eval");
    char key[64], label[96];
    snprintf(key, sizeof key, "idlefleet.w%d.pct_each", k);
    snprintf(label, sizeof label, "%d idle workers: Redis CPU each, %% of a core", k);
    bench_emit(key, label, "%", us / 1e6 * 100 / k, false);
    snprintf(key, sizeof key, "idlefleet.w%d.calls_each", k);
    snprintf(label, sizeof label, "%d idle workers: script calls/s each", k);
    bench_emit(key, label, "calls/s", (double)calls / secs / k, false);
    snprintf(key, sizeof key, "idlefleet.w%d.us_per_call", k);
    snprintf(label, sizeof label, "%d idle workers: Redis CPU per call", k);
    bench_emit(key, label, "us", calls ? us * secs / (double)calls : 0, true);
}

void sc_idlefleet(const bench_opts *o)
{
    lash_conn *c = bench_connect(o);
    bench_flush(o, c);
    double window = o->quick ? 3 : 15;
    bench_note("idlefleet: Redis alone, then 20 and 100 idle lash-workers, %.0f s each", window);
    bench_redis_snap s0, s1;
    bench_snap(c, &s0);
    double w0 = bench_now();
    bench_sleep(window);
    double secs = bench_now() - w0;
    bench_snap(c, &s1);
    double base = (s1.cpu - s0.cpu) * 1e6 / secs;
    bench_emit("idlefleet.base_us", "Redis alone: CPU us per second", "us/s", base, true);
    idle_fleet(o, c, 20, window, base);
    if (!o->quick) idle_fleet(o, c, 100, window, base);
    lash_close(c);
}
