/* fixture.c: a private redis-server per test (see fixture.h). */
#include "fixture.h"

#include "proto/keys.h"
#include "registry/server.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

long long lash_fx_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lash_fx_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static void spawn(lash_fx_redis *r, const char *const *extra)
{
    const char *bin = getenv("LASH_REDIS_SERVER");
    if (!bin || !*bin) bin = "redis-server";
    const char *argv[64] = {bin,       "--port",           "0",        "--unixsocket",
                            r->sock,   "--unixsocketperm", "700",      "--dir",
                            r->dir,    "--save",           "",         "--appendonly",
                            "no",      "--daemonize",      "no",       "--loglevel",
                            "warning", "--logfile",        "redis.log"};
    int n = 0;
    while (argv[n])
        n++;
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork failed");
    if (pid == 0) {
        if (chdir(r->dir) != 0) _exit(127);
        execvp(bin, (char *const *)argv);
        _exit(127);
    }
    r->pid = pid;
    for (int i = 0; i < 500; i++) {
        redisContext *c = redisConnectUnix(r->sock);
        if (c && !c->err) {
            redisReply *rep = redisCommand(c, "PING");
            /* A server with requirepass answers NOAUTH: up all the same. */
            int ok =
                rep && (rep->type == REDIS_REPLY_STATUS ||
                        (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOAUTH", 6) == 0));
            freeReplyObject(rep);
            redisFree(c);
            if (ok) return;
        } else if (c) {
            redisFree(c);
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            r->pid = 0;
            cr_assert_fail("redis-server exited at start (is it installed?); see %s/redis.log",
                           r->dir);
        }
        lash_fx_sleep_ms(10);
    }
    cr_assert_fail("redis-server did not answer within 5 s");
}

void lash_fx_redis_start(lash_fx_redis *r, const char *const *extra)
{
    /* Tests kill the servers they talk to: a write to a dead socket must be an
     * error hiredis reports, not a SIGPIPE that kills the test process. */
    signal(SIGPIPE, SIG_IGN);
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "/tmp/lash-test-XXXXXX");
    cr_assert(mkdtemp(r->dir), "mkdtemp failed");
    snprintf(r->sock, sizeof r->sock, "%s/redis.sock", r->dir);
    snprintf(r->url, sizeof r->url, "unix://%s", r->sock);
    spawn(r, extra);
}

static void reap(lash_fx_redis *r, int sig)
{
    if (r->pid <= 0) return;
    kill(r->pid, sig);
    int status;
    for (int i = 0; i < 300; i++) {
        if (waitpid(r->pid, &status, WNOHANG) == r->pid) {
            r->pid = 0;
            return;
        }
        lash_fx_sleep_ms(10);
    }
    kill(r->pid, SIGKILL);
    waitpid(r->pid, &status, 0);
    r->pid = 0;
}

void lash_fx_redis_kill9(lash_fx_redis *r)
{
    reap(r, SIGKILL);
}

void lash_fx_redis_restart(lash_fx_redis *r, const char *const *extra)
{
    reap(r, SIGKILL);
    unlink(r->sock);
    spawn(r, extra);
}

void lash_fx_redis_stop(lash_fx_redis *r)
{
    reap(r, SIGTERM);
    if (r->dir[0]) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", r->dir);
        if (system(cmd) != 0) fprintf(stderr, "fixture: could not remove %s\n", r->dir);
        r->dir[0] = 0;
    }
}

lash_conn *lash_fx_connect(const lash_fx_redis *r)
{
    lash_conn *c = NULL;
    lash_err e = {0};
    lash_status st = lash_connect(r->url, 5000, &c, &e);
    cr_assert(st == LASH_OK, "connect to test redis: %s", e.msg);
    return c;
}

const char *lash_fx_bin(const char *name)
{
    static __thread char path[512];
    snprintf(path, sizeof path, "%s/%s", LASH_BIN_DIR, name);
    return path;
}

lash_stats lash_fx_stats(lash_conn *c, const char *queue)
{
    lash_stats s;
    lash_err e = {0};
    cr_assert_eq(lash_get_stats(c, queue, &s, &e), LASH_OK, "stats: %s", e.msg);
    return s;
}

lash_record lash_fx_get(lash_conn *c, const char *queue, const char *id)
{
    lash_record r;
    lash_err e = {0};
    cr_assert_eq(lash_get(c, queue, id, &r, &e), LASH_OK, "get %s: %s", id, e.msg);
    return r;
}

long long lash_fx_calls(lash_conn *c, const char *command)
{
    char *text = NULL, key[64];
    lash_err e = {0};
    cr_assert_eq(lash_server_info(c, "commandstats", &text, &e), LASH_OK, "INFO: %s", e.msg);
    snprintf(key, sizeof key, "cmdstat_%s:calls=", command);
    const char *at = strstr(text, key);
    long long n = at ? atoll(at + strlen(key)) : 0;
    free(text);
    return n;
}

long long lash_fx_count_keys(lash_conn *c, const char *pattern)
{
    long long n = 0;
    char cursor[32] = "0";
    do {
        redisReply *r =
            redisCommand(lash_conn_redis(c), "SCAN %s MATCH %s COUNT 10000", cursor, pattern);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "SCAN failed");
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        n += (long long)r->element[1]->elements;
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return n;
}

long long lash_fx_lease_keys(lash_conn *c, const char *queue)
{
    char pat[LASH_KEY_MAX + 8];
    snprintf(pat, sizeof pat, "lash:{%s}:lease:*", queue);
    return lash_fx_count_keys(c, pat);
}

void lash_fx_events_all(lash_conn *c, const char *queue)
{
    redisReply *r = redisCommand(lash_conn_redis(c), "HSET lash:{%s}:stats events all", queue);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "HSET events all failed");
    freeReplyObject(r);
}
