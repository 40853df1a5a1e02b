/* rel.h: what the reliability suites (tests/test_reliability_*.c) share.
 *
 * Header-only on purpose: tests/CMakeLists.txt builds each test_*.c on its own,
 * so shared helpers live here as static inline functions (unused ones cost
 * nothing and raise no warning).
 *
 * Each suite has a short form (CI: seconds to a couple of minutes) and a long
 * form selected by LASH_LONG=1 (tests/reliability/run.sh --long sets it). Suites
 * print their figures as lines starting "REPORT " on stderr; run.sh collects them.
 *
 * Workers are the real daemon (build/bin/lash-worker) run as child processes, so
 * kill -9 hits exactly what an operator's kill -9 hits. Redis is the private
 * server of tests/fixture.h. Submits and checks go through the registry's C API
 * and raw hiredis, never through lashctl.
 */
#ifndef LASH_TESTS_RELIABILITY_REL_H
#define LASH_TESTS_RELIABILITY_REL_H

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/fixture.h"
#include "proto/keys.h"
#include "registry/registry.h"

static inline bool rel_long(void)
{
    const char *v = getenv("LASH_LONG");
    return v && *v && strcmp(v, "0") != 0;
}

/* A figure for the report: one line on stderr, "REPORT <suite>: ...". */
static inline void rel_report(const char *suite, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void rel_report(const char *suite, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "REPORT %s%s: %s\n", suite, rel_long() ? " (long)" : "", buf);
    fflush(stderr);
}

/* A scratch directory for logs and programs; removed by rel_rmdir. */
static inline void rel_mkdir(char *dir, size_t cap, const char *tag)
{
    snprintf(dir, cap, "/tmp/lash-rel-%s-XXXXXX", tag);
    cr_assert(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
}

static inline void rel_rmdir(const char *dir)
{
    char cmd[512];
    if (getenv("LASH_REL_KEEP")) return; /* for post-mortems */
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "rel: could not remove %s\n", dir);
}

/* Writes an executable shell script (the handler programs of the suites). */
static inline void rel_script(const char *path, const char *body)
{
    FILE *f = fopen(path, "w");
    cr_assert(f, "create %s: %s", path, strerror(errno));
    fprintf(f, "#!/bin/sh\n%s", body);
    fclose(f);
    cr_assert(chmod(path, 0755) == 0);
}

/* ---- clean-up ------------------------------------------------------------------ */

/* What a test started, so that a failed assertion (which ends the test function
 * early) leaves no redis-server or worker behind: tests pass .fini = rel_fini. */
static lash_fx_redis *rel_redis_started;
static pid_t rel_pids[64];

static inline void rel_track_redis(lash_fx_redis *r)
{
    rel_redis_started = r;
}

static inline void rel_fini(void)
{
    for (int i = 0; i < 64; i++)
        if (rel_pids[i] > 0) {
            int status;
            kill(rel_pids[i], SIGKILL);
            waitpid(rel_pids[i], &status, 0);
            rel_pids[i] = 0;
        }
    if (rel_redis_started) lash_fx_redis_stop(rel_redis_started);
    rel_redis_started = NULL;
}

static inline void rel_forget(pid_t pid)
{
    for (int i = 0; i < 64; i++)
        if (rel_pids[i] == pid) rel_pids[i] = 0;
}

/* ---- workers ---------------------------------------------------------------- */

/* Starts build/bin/lash-worker with --redis url and args (NULL-terminated),
 * its stdout and stderr appended to log. */
static inline pid_t rel_worker(const char *url, const char *log, const char *const *args)
{
    const char *argv[64] = {lash_fx_bin("lash-worker"), "--redis", url};
    int n = 3;
    for (int i = 0; args && args[i] && n < 62; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char bin[512];
    snprintf(bin, sizeof bin, "%s", argv[0]);
    argv[0] = bin;
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* a test killed on timeout takes it along */
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 64; i++)
        if (rel_pids[i] <= 0) {
            rel_pids[i] = pid;
            break;
        }
    return pid;
}

static inline bool rel_alive(pid_t pid)
{
    int status;
    return pid > 0 && waitpid(pid, &status, WNOHANG) == 0;
}

static inline void rel_kill9(pid_t pid)
{
    int status;
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    rel_forget(pid);
}

/* SIGTERM, then wait up to ms for the drain; SIGKILL after that. Returns the
 * exit status (or -1 when it had to be killed). */
static inline int rel_stop(pid_t pid, int ms)
{
    int status;
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    for (int t = 0; t < ms; t += 10) {
        if (waitpid(pid, &status, WNOHANG) == pid) {
            rel_forget(pid);
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        lash_fx_sleep_ms(10);
    }
    rel_kill9(pid);
    return -1;
}

/* A memory figure of a process in kB from /proc/<pid>/status ("VmRSS": resident
 * now, "VmHWM": peak resident), or -1. */
static inline long rel_proc_kb(pid_t pid, const char *field)
{
    char path[64], line[256], key[32];
    long kb = -1;
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    snprintf(key, sizeof key, "%s:", field);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) {
            kb = atol(line + strlen(key));
            break;
        }
    fclose(f);
    return kb;
}

/* ---- Redis ------------------------------------------------------------------ */

static inline redisReply *rel_cmd(lash_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(lash_conn_redis(c), fmt, ap);
    va_end(ap);
    cr_assert(r, "redis command %s: connection lost", fmt);
    cr_assert(r->type != REDIS_REPLY_ERROR, "redis command %s: %s", fmt, r->str);
    return r;
}

static inline long long rel_int(lash_conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(lash_conn_redis(c), fmt, ap);
    va_end(ap);
    cr_assert(r, "redis command %s: connection lost", fmt);
    cr_assert(r->type == REDIS_REPLY_INTEGER, "redis command %s: not an integer (%s)", fmt,
              r->type == REDIS_REPLY_ERROR ? r->str : "?");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* One field of INFO (e.g. "used_memory"), as a number. */
static inline long long rel_info(lash_conn *c, const char *section, const char *field)
{
    redisReply *r = rel_cmd(c, "INFO %s", section);
    char key[64];
    snprintf(key, sizeof key, "\n%s:", field);
    const char *p = strstr(r->str, key);
    cr_assert(p, "INFO %s has no %s", section, field);
    long long v = atoll(p + strlen(key));
    freeReplyObject(r);
    return v;
}

/* Keys matching pattern, by SCAN (never KEYS: it works on a million keys). */
/* Waits until queue has no pending or running row (and nothing due), or
 * timeout_ms passed. Returns whether it drained. */
static inline bool rel_wait_idle(lash_conn *c, const char *queue, long long timeout_ms)
{
    long long until = lash_fx_ms() + timeout_ms;
    do {
        lash_stats s = lash_fx_stats(c, queue);
        if (s.due == 0 && s.count[LASH_PENDING] == 0 && s.count[LASH_RUNNING] == 0) return true;
        lash_fx_sleep_ms(100);
    } while (lash_fx_ms() < until);
    lash_stats s = lash_fx_stats(c, queue); /* say why, for the post-mortem */
    fprintf(stderr, "rel_wait_idle(%s): due %lld pending %lld running %lld completed %lld\n", queue,
            (long long)s.due, (long long)s.count[LASH_PENDING], (long long)s.count[LASH_RUNNING],
            (long long)s.count[LASH_COMPLETED]);
    return false;
}

/* Submits ids <prefix><from..from+n) of kind with payload, in calls of batch
 * rows; asserts every one was created. */
static inline void rel_submit_range(lash_conn *c, const char *queue, const char *prefix, long from,
                                    long n, const char *kind, const char *payload, int max_attempts)
{
    enum { B = 1000 };
    static char ids[B][LASH_ID_MAX + 1];
    static lash_submission subs[B];
    static lash_submitted out[B];
    for (long done = 0; done < n;) {
        int k = n - done < B ? (int)(n - done) : B;
        for (int i = 0; i < k; i++) {
            snprintf(ids[i], sizeof ids[i], "%s%ld", prefix, from + done + i);
            subs[i] = (lash_submission){.id = ids[i],
                                        .kind = kind,
                                        .payload = payload,
                                        .payload_len = payload ? strlen(payload) : 0,
                                        .max_attempts = max_attempts};
        }
        lash_err e;
        cr_assert(lash_submit(c, queue, subs, (size_t)k, out, &e) == LASH_OK, "submit: %s", e.msg);
        for (int i = 0; i < k; i++)
            cr_assert(out[i].status == LASH_SUB_CREATED, "submit %s: %d %s", ids[i], out[i].status,
                      out[i].msg);
        done += k;
    }
}

/* No lease key of queue is left. */
static inline long long rel_zcard(lash_conn *c, const char *queue, lash_key_kind k)
{
    char key[LASH_KEY_MAX];
    lash_key(key, queue, k);
    return rel_int(c, "ZCARD %s", key);
}

#endif
