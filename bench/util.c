/* util.c: output, clocks, Redis counters, submitting and verifying (see bench.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "proto/keys.h"
#include "registry/inspect.h"
#include "registry/server.h"

/* ---- output ------------------------------------------------------------------ */

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

void bench_emit(const char *key, const char *label, const char *unit, double value, bool detail)
{
    fputs("{\"key\":", stdout);
    json_str(stdout, key);
    fputs(",\"label\":", stdout);
    json_str(stdout, label);
    fputs(",\"unit\":", stdout);
    json_str(stdout, unit);
    printf(",\"value\":%.6g%s}\n", value, detail ? ",\"detail\":true" : "");
    fflush(stdout);
    if (!detail) bench_note("  %-44s %14.6g %s", label, value, unit);
}

void bench_note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

_Noreturn void bench_die(const char *fmt, ...)
{
    va_list ap;
    fputs("lash-bench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}

/* ---- time and CPU ---------------------------------------------------------------- */

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t bench_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double tv(struct timeval t)
{
    return (double)t.tv_sec + (double)t.tv_usec / 1e6;
}

double bench_self_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return tv(ru.ru_utime) + tv(ru.ru_stime);
}

double bench_children_cpu(void)
{
    struct rusage ru;
    getrusage(RUSAGE_CHILDREN, &ru);
    return tv(ru.ru_utime) + tv(ru.ru_stime);
}

double bench_pid_cpu(int pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* Fields after the ")" that ends the command name: state is field 3,
     * utime 14 and stime 15. */
    char *p = strrchr(buf, ')');
    if (!p) return -1;
    unsigned long long ut = 0, st = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

void bench_sleep(double secs)
{
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

void bench_mark(const char *phase)
{
    const char *cmd = getenv("LASH_BENCH_MARK");
    if (!cmd || !*cmd) return;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s %s", cmd, phase);
    if (system(buf) != 0) bench_note("LASH_BENCH_MARK %s failed", phase);
}

/* ---- Redis ------------------------------------------------------------------------ */

lash_conn *bench_connect(const bench_opts *o)
{
    lash_conn *c;
    lash_err e;
    if (lash_connect(o->url, 60000, &c, &e)) bench_die("%s", e.msg);
    /* As lashctl does: the library of this version, so lash's calls go by
     * FCALL (registry/argv.h), as they do where an operator runs lashctl. */
    if (lash_functions_ensure(c, &e)) bench_die("functions: %s", e.msg);
    return c;
}

void bench_flush(const bench_opts *o, lash_conn *c)
{
    lash_err e;
    if (o->flush && lash_server_flush(c, &e)) bench_die("%s", e.msg);
}

static const char *field(const char *info, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = info; (p = strstr(p, name)); p += n)
        if ((p == info || p[-1] == '\n') && p[n] == ':') return p + n + 1;
    return NULL;
}

void bench_snap(lash_conn *c, bench_redis_snap *s)
{
    memset(s, 0, sizeof *s);
    char *info;
    lash_err e;
    if (lash_server_info(c, "cpu stats memory commandstats", &info, &e)) bench_die("%s", e.msg);
    const char *v;
    if ((v = field(info, "used_cpu_sys"))) s->cpu += strtod(v, NULL);
    if ((v = field(info, "used_cpu_user"))) s->cpu += strtod(v, NULL);
    if ((v = field(info, "total_commands_processed"))) s->commands = strtoll(v, NULL, 10);
    if ((v = field(info, "used_memory"))) s->used_memory = strtoll(v, NULL, 10);
    for (const char *p = info; (p = strstr(p, "cmdstat_")) && s->ncmds < BENCH_MAX_CMDS; p++) {
        char name[40];
        long long calls, usec;
        if (sscanf(p, "cmdstat_%39[^:]:calls=%lld,usec=%lld", name, &calls, &usec) != 3) continue;
        snprintf(s->cmd[s->ncmds].name, sizeof s->cmd[s->ncmds].name, "%s", name);
        s->cmd[s->ncmds].calls = calls;
        s->cmd[s->ncmds].usec = usec;
        s->ncmds++;
    }
    free(info);
}

static int find_cmd(const bench_redis_snap *s, const char *name)
{
    for (int i = 0; i < s->ncmds; i++)
        if (strcmp(s->cmd[i].name, name) == 0) return i;
    return -1;
}

long long bench_calls(const bench_redis_snap *a, const bench_redis_snap *b, const char *name)
{
    int i = find_cmd(a, name), j = find_cmd(b, name);
    return (j >= 0 ? b->cmd[j].calls : 0) - (i >= 0 ? a->cmd[i].calls : 0);
}

long long bench_usec(const bench_redis_snap *a, const bench_redis_snap *b, const char *name)
{
    int i = find_cmd(a, name), j = find_cmd(b, name);
    return (j >= 0 ? b->cmd[j].usec : 0) - (i >= 0 ? a->cmd[i].usec : 0);
}

void bench_emit_cmdstats(const char *key, const char *label, const bench_redis_snap *a,
                         const bench_redis_snap *b, long rows)
{
    char k[160], l[200];
    long long inner = 0;
    for (int j = 0; j < b->ncmds; j++) {
        const char *name = b->cmd[j].name;
        long long calls = bench_calls(a, b, name);
        if (calls <= 0 || strcmp(name, "info") == 0) continue;
        if (strcmp(name, "evalsha") != 0 && strcmp(name, "eval") != 0) inner += calls;
        snprintf(k, sizeof k, "%s.cmd.%s", key, name);
        snprintf(l, sizeof l, "%s: %s calls per row", label, name);
        bench_emit(k, l, "calls/row", (double)calls / (double)rows, true);
    }
    snprintf(k, sizeof k, "%s.script_us", key);
    snprintf(l, sizeof l, "%s: script time per row (commandstats)", label);
    bench_emit(k, l, "us/row", (double)bench_usec(a, b, "evalsha") / (double)rows, true);
    snprintf(k, sizeof k, "%s.redis_calls", key);
    snprintf(l, sizeof l, "%s: redis.call()s per row", label);
    bench_emit(k, l, "calls/row", (double)inner / (double)rows, true);
}

long long bench_due(lash_conn *c, const char *queue)
{
    int64_t n;
    lash_err e;
    if (lash_due_count(c, queue, &n, &e)) bench_die("%s", e.msg);
    return n;
}

long long bench_done(lash_conn *c, const char *queue)
{
    int64_t n;
    lash_err e;
    if (lash_done_count(c, queue, &n, &e)) bench_die("%s", e.msg);
    return n;
}

#define CHUNK 10000

void bench_submit(lash_conn *c, const char *queue, const char *kind, const char *payload, long n)
{
    lash_submission *subs = calloc(CHUNK, sizeof *subs);
    lash_submitted *out = calloc(CHUNK, sizeof *out);
    if (!subs || !out) bench_die("out of memory");
    const char *p = payload ? payload : "{}";
    for (long done = 0; done < n;) {
        size_t k = (size_t)(n - done < CHUNK ? n - done : CHUNK);
        for (size_t i = 0; i < k; i++)
            subs[i] = (lash_submission){.kind = kind, .payload = p, .payload_len = strlen(p)};
        lash_err e;
        if (lash_submit(c, queue, subs, k, out, &e)) bench_die("submit: %s", e.msg);
        for (size_t i = 0; i < k; i++)
            if (out[i].status != LASH_SUB_CREATED)
                bench_die("submit: row %zu was not created: %s", i, out[i].msg);
        done += (long)k;
    }
    free(subs);
    free(out);
}

void bench_verify_completed(lash_conn *c, const char *queue, long n, long total_before)
{
    lash_stats s;
    lash_err e;
    if (lash_get_stats(c, queue, &s, &e)) bench_die("stats: %s", e.msg);
    long long ndue = bench_due(c, queue), ndone = bench_done(c, queue);
    if (s.count[LASH_COMPLETED] != n || s.count[LASH_PENDING] != 0 || s.count[LASH_RUNNING] != 0 ||
        s.count[LASH_FAILED] != 0 || s.total_completed - total_before != n || ndue != 0 ||
        ndone != n)
        bench_die("queue %s: expected %ld completed, found completed=%lld pending=%lld "
                  "running=%lld failed=%lld total_completed=%lld due=%lld done=%lld",
                  queue, n, (long long)s.count[LASH_COMPLETED], (long long)s.count[LASH_PENDING],
                  (long long)s.count[LASH_RUNNING], (long long)s.count[LASH_FAILED],
                  (long long)(s.total_completed - total_before), ndue, ndone);
}

/* ---- processes --------------------------------------------------------------------- */

int bench_spawn(const bench_opts *o, const char *prog, const char *const *args)
{
    char path[600];
    const char *argv[64];
    int n = 0;
    snprintf(path, sizeof path, "%s/%s", o->bin_dir, prog);
    argv[n++] = path;
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0) bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        if (!getenv("LASH_BENCH_VERBOSE")) {
            int fd = open("/dev/null", O_WRONLY);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
                close(fd);
            }
        }
        execv(path, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int bench_stop(int pid)
{
    int status = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < 1000; i++) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0) return -1;
        bench_sleep(0.01);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}
