/* test_worker_progress.c: progress reports end to end: an exec handler writes
 * lines to fd 3 ($LASH_PROGRESS_FD), a real lash-worker checks them, holds
 * them to a few writes a second and records the good ones on the row, where
 * redis-cli (HGET) and lashctl get see them while the handler still runs. */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keys.h"
#include "wfx.h"
#include "worker/worker.h"

TestSuite(worker_progress, .fini = wfx_teardown, .timeout = 90);

/* The stdout of `argv` run as <name> (its .err file), whole. */
static char *output(const char *name, const char *const *argv)
{
    cr_assert_eq(run(name, argv), 0, "%s failed", name);
    char path[256];
    path_in(path, sizeof path, name);
    strcat(path, ".err");
    FILE *f = fopen(path, "rb");
    cr_assert(f);
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return buf;
}

static int count_in(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* A handler that reports, waits for <dir>/go, then ends. */
static void reporter(char *handler, size_t cap, const char *lines)
{
    char go[256], path[256], body[2048];
    path_in(go, sizeof go, "go");
    snprintf(body, sizeof body,
             "cat >/dev/null\n"
             "[ \"$LASH_PROGRESS_FD\" = 3 ] || { echo no LASH_PROGRESS_FD >&2; exit 3; }\n"
             "%s"
             "while [ ! -e %s ]; do sleep 0.05; done\n"
             "echo done\n",
             lines, go);
    script(path, sizeof path, "reporter.sh", body);
    snprintf(handler, cap, "rep=%s", path);
}

Test(worker_progress, an_exec_handler_reports_and_redis_cli_and_lashctl_see_it_while_it_runs)
{
    up(NULL);
    char handler[300];
    reporter(handler, sizeof handler,
             "echo '10 starting' >&3\n"
             "echo '55 half way there' >&$LASH_PROGRESS_FD\n");
    WORKER("w1", "--queue", "q", "--handler", handler);
    submit("q", "a", "rep", "{}");
    WAIT_UNTIL(strcmp(hf("q", "a", "progress"), "55") == 0, 20000);
    cr_assert_str_eq(hf("q", "a", "progress"), "55", "progress %s, state %s",
                     hf("q", "a", "progress"), hf("q", "a", "state"));
    cr_assert_str_eq(hf("q", "a", "state"), "running");

    char key[LASH_KEY_MAX];
    lash_key_row(key, "q", "a");
    char *out =
        output("redis-cli", ARGS("/usr/bin/redis-cli", "-s", R.sock, "HGET", key, "progress_text"));
    cr_assert(strstr(out, "half way there"), "redis-cli said %s", out);

    out = output("lashctl",
                 ARGS(lash_fx_bin("lashctl"), "--redis", R.url, "--queue", "q", "get", "a"));
    cr_assert(strstr(out, "progress") && strstr(out, "55% half way there"), "lashctl get: %s", out);
    out = output("lashctl-json", ARGS(lash_fx_bin("lashctl"), "--redis", R.url, "--queue", "q",
                                      "--json", "get", "a"));
    cr_assert(strstr(out, "\"progress\":55") && strstr(out, "\"progress_text\":\"half way there\""),
              "lashctl --json get: %s", out);
    out = output("lashctl-top", ARGS(lash_fx_bin("lashctl"), "--redis", R.url, "--queue", "q",
                                     "top", "--iterations", "1"));
    cr_assert(strstr(out, "a") && strstr(out, "55%") && strstr(out, "half way there"),
              "lashctl top: %s", out);

    char go[256];
    path_in(go, sizeof go, "go");
    fclose(fopen(go, "w"));
    WAIT_UNTIL(row_is("q", "a", "completed"), 20000);
    cr_assert(row_is("q", "a", "completed"), "state %s: %s", hf("q", "a", "state"),
              hf("q", "a", "error"));
    cr_assert_str_eq(hf("q", "a", "progress"), "55", "the last report stays on the row");
}

/* Bad lines are ignored: the first is logged with why, the rest counted; the
 * good ones around them still go, and the handler's run is not disturbed. */
Test(worker_progress, bad_lines_are_logged_once_and_ignored)
{
    up(NULL);
    char handler[300];
    reporter(handler, sizeof handler,
             "echo 'not a number' >&3\n"
             "echo '101 too far' >&3\n"
             "printf '20\\tx\\n' >&3\n"
             "head -c 5000 /dev/zero | tr '\\\\0' 7 >&3; echo >&3\n"
             "printf '30 bad \\377 utf8\\n' >&3\n"
             "echo '42 good' >&3\n");
    WORKER("w1", "--queue", "q", "--handler", handler);
    submit("q", "a", "rep", "{}");
    WAIT_UNTIL(strcmp(hf("q", "a", "progress"), "42") == 0, 20000);
    cr_assert_str_eq(hf("q", "a", "progress"), "42");
    cr_assert_str_eq(hf("q", "a", "progress_text"), "good");
    char go[256], log[256];
    path_in(go, sizeof go, "go");
    fclose(fopen(go, "w"));
    WAIT_UNTIL(row_is("q", "a", "completed"), 20000);
    cr_assert(row_is("q", "a", "completed"), "state %s", hf("q", "a", "state"));
    path_in(log, sizeof log, "w1.log");
    WAIT_UNTIL(count_in(log, "in all") == 1, 5000);
    cr_assert_eq(count_in(log, "bad progress line ignored"), 1, "logged once");
    cr_assert_eq(count_in(log, "does not start with a number"), 1, "with the first one's reason");
    cr_assert_eq(count_in(log, "5 bad progress line(s) ignored in all"), 1);
    cr_assert(alive(W[0].pid));
}

/* ---- in-process handlers: lash_job_progress ---- */

static struct {
    lash_worker *w;
    lash_job *job;
    lash_status bad, good;
    char bad_msg[256];
    bool seen_60, done, gave_up;
    ev_timer check, limit;
} E;

/* Reports a bad value, then 30..60 in a burst (only the latest need go). */
static void embedded(lash_job *j, void *ud)
{
    (void)ud;
    lash_err e = {0};
    E.job = j;
    E.bad = lash_job_progress(j, 101, "too far", &e);
    snprintf(E.bad_msg, sizeof E.bad_msg, "%s", e.msg);
    E.good = LASH_OK;
    for (int p = 30; p <= 60 && !E.good; p++)
        E.good = lash_job_progress(j, p, p == 60 ? "embedded sixty" : "burst", &e);
}

/* Watches the row from the loop's thread (blocking reads, short): once the
 * report shows on the row the job ends; once the row is completed, the worker. */
static void on_check(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    if (E.job && !E.seen_60 && strcmp(hf("q", "e", "progress"), "60") == 0) {
        E.seen_60 = strcmp(hf("q", "e", "progress_text"), "embedded sixty") == 0 &&
                    row_is("q", "e", "running");
        lash_job_done(E.job, LASH_OUT_OK, "ok", 2);
        E.job = NULL;
    }
    if (!E.done && row_is("q", "e", "completed")) {
        E.done = true;
        lash_worker_shutdown(E.w);
    }
}

static void on_limit(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)t;
    (void)revents;
    E.gave_up = true;
    if (E.job) lash_job_done(E.job, LASH_OUT_FAIL, "test gave up", 12);
    E.job = NULL;
    lash_worker_shutdown(E.w);
}

Test(worker_progress, an_in_process_handler_reports_with_a_call_on_the_job)
{
    up(NULL);
    memset(&E, 0, sizeof E);
    struct ev_loop *loop = ev_loop_new(0);
    lash_worker_config c;
    lash_worker_config_default(&c);
    const char *qs[] = {"q"};
    c.redis_url = R.url;
    c.queues = qs;
    c.nqueues = 1;
    c.log.level = LASH_LOG_WARN;
    lash_err e = {0};
    cr_assert_eq(lash_worker_new(loop, &c, &E.w, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(lash_worker_handle(E.w, "emb", embedded, NULL, NULL, &e), LASH_OK, "%s", e.msg);
    submit("q", "e", "emb", "{}");
    ev_timer_init(&E.check, on_check, 0.05, 0.05);
    ev_timer_init(&E.limit, on_limit, 20, 0);
    ev_timer_start(loop, &E.check);
    ev_timer_start(loop, &E.limit);
    lash_worker_start(E.w);
    ev_run(loop, 0);
    ev_timer_stop(loop, &E.check);
    ev_timer_stop(loop, &E.limit);
    lash_worker_free(E.w);
    ev_loop_destroy(loop);
    cr_assert_eq(E.bad, LASH_EINVAL);
    cr_assert(strstr(E.bad_msg, "0..100"), "%s", E.bad_msg);
    cr_assert_eq(E.good, LASH_OK);
    cr_assert_not(E.gave_up, "progress 60 never reached the row (it holds %s)",
                  hf("q", "e", "progress"));
    cr_assert(E.seen_60, "the latest report, on a running row");
    cr_assert(row_is("q", "e", "completed"));
}
