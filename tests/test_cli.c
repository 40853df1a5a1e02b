/* test_cli.c: lashctl, run as a subprocess against a private redis-server.
 *
 * Each test starts its own Redis (tests/fixture.h), runs the built binary with
 * LASH_REDIS_URL pointing at it, and checks exit codes, stdout and stderr; the
 * state lashctl leaves is read back with the registry API, and a worker is
 * simulated with lash_claim + lash_complete where one is needed. The last test
 * runs the README's redis-cli recipes as written.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fixture.h"
#include "proto/keys.h"

/* ---- running lashctl --------------------------------------------------------- */

typedef struct {
    int code; /* exit status, or 128 + signal */
    char *out, *err;
} run_result;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert(s);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = 0;
    fclose(f);
    return s;
}

static int wait_exit(pid_t pid)
{
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Starts argv[0] (a path) with stdin from in_path (NULL: /dev/null), stdout and
 * stderr to files named by out_path/err_path, and LASH_REDIS_URL = url. */
static pid_t spawn(const char *url, const char *in_path, const char *out_path, const char *err_path,
                   const char *const *argv)
{
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int in = open(in_path ? in_path : "/dev/null", O_RDONLY);
        int out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (in < 0 || out < 0 || err < 0) _exit(126);
        dup2(in, 0);
        dup2(out, 1);
        dup2(err, 2);
        if (url)
            setenv("LASH_REDIS_URL", url, 1);
        else
            unsetenv("LASH_REDIS_URL");
        unsetenv("LASH_QUEUE");
        unsetenv("LASH_REDIS_PASSWORD");
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static run_result run_url(const char *dir, const char *url, const char *in_path,
                          const char *const *args)
{
    const char *argv[64];
    int n = 0;
    argv[n++] = lash_fx_bin("lashctl");
    for (int i = 0; args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    char out_path[256], err_path[256];
    snprintf(out_path, sizeof out_path, "%s/cli.out", dir);
    snprintf(err_path, sizeof err_path, "%s/cli.err", dir);
    run_result r;
    r.code = wait_exit(spawn(url, in_path, out_path, err_path, argv));
    r.out = slurp(out_path);
    r.err = slurp(err_path);
    return r;
}

static void run_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
/* LASHCTL(&redis, stdin_path_or_NULL, "cmd", "arg", ...) */
#define LASHCTL(rd, in, ...) run_url((rd)->dir, (rd)->url, in, ARGS(__VA_ARGS__))

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* An error is exactly one line starting "lashctl: ". */
static void assert_one_error_line(const run_result *r)
{
    cr_assert(strncmp(r->err, "lashctl: ", 9) == 0, "stderr: %s", r->err);
    cr_assert_eq(count_lines(r->err), 1, "stderr: %s", r->err);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(text, f);
    fclose(f);
}

static lash_record get_row(const lash_fx_redis *rd, const char *id)
{
    lash_conn *c = lash_fx_connect(rd);
    lash_record rec;
    lash_err e = {0};
    lash_status st = lash_get(c, "default", id, &rec, &e);
    cr_assert_eq(st, LASH_OK, "get %s: %s", id, e.msg);
    lash_close(c);
    return rec;
}

static cJSON *parse_json(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    cr_assert(j, "not JSON: %s", text);
    return j;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A client of its own after delay_ms, in a forked child: the parent gets NULL
 * and *pid; the child a connection (or exit 10), and ends with _exit, its exit
 * code saying how it went. */
static lash_conn *child_after(const lash_fx_redis *rdp, int delay_ms, pid_t *pid)
{
    *pid = fork();
    cr_assert(*pid >= 0);
    if (*pid != 0) return NULL;
    lash_fx_sleep_ms(delay_ms);
    lash_conn *c = NULL;
    lash_err e = {0};
    if (lash_connect(rdp->url, 5000, &c, &e)) _exit(10);
    return c;
}

/* A worker, simulated: after delay_ms, claims every due row and records the
 * outcome for each. */
static pid_t worker_after(const lash_fx_redis *rd, int delay_ms, lash_outcome outcome,
                          const char *text)
{
    pid_t pid;
    lash_conn *c = child_after(rd, delay_ms, &pid);
    if (!c) return pid;
    lash_err e = {0};
    lash_claim_batch b;
    if (lash_claim(c, "default", "w-test", 100, 30000, (lash_retention){-1, 0}, 0, -1, &b, &e))
        _exit(11);
    if (b.n == 0) _exit(12);
    lash_completion comp[100];
    int status[100];
    for (size_t i = 0; i < b.n; i++)
        comp[i] = (lash_completion){
            {b.rows[i].id, "w-test", b.rows[i].fence}, outcome, text, strlen(text), 0};
    if (lash_complete(c, "default", comp, b.n, status, &e)) _exit(13);
    for (size_t i = 0; i < b.n; i++)
        if (status[i] != LASH_DONE_RECORDED) _exit(14);
    lash_claim_batch_free(&b);
    lash_close(c);
    _exit(0);
}

static lash_fx_redis rd;

static void setup(void)
{
    lash_fx_redis_start(&rd, NULL);
}

static void teardown(void)
{
    lash_fx_redis_stop(&rd);
}

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 120);

/* Routine transitions go to the events stream only at level 'all'. */
static void events_all(void)
{
    lash_conn *c = lash_fx_connect(&rd);
    lash_fx_events_all(c, "default");
    lash_close(c);
}

/* ---- submit / get ------------------------------------------------------------ */

Test(cli, submit_get_round_trip)
{
    run_result r = LASHCTL(&rd, NULL, "submit", "echo", "--payload", "{\"x\":1}", "--id", "t-1",
                           "--max-attempts", "5", "--timeout", "2000", "--backoff", "fixed:100",
                           "--on-lost", "abandon");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "t-1\n");
    run_free(&r);

    lash_record rec = get_row(&rd, "t-1");
    cr_assert_str_eq(rec.kind, "echo");
    cr_assert_str_eq(rec.payload, "{\"x\":1}");
    cr_assert_eq(rec.state, LASH_PENDING);
    cr_assert_eq(rec.max_attempts, 5);
    cr_assert_eq(rec.timeout_ms, 2000);
    cr_assert_str_eq(rec.backoff, "fixed:100");
    cr_assert_eq(rec.on_lost, LASH_ON_LOST_ABANDON);
    lash_record_free(&rec);

    r = LASHCTL(&rd, NULL, "get", "t-1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "t-1") && strstr(r.out, "pending") && strstr(r.out, "{\"x\":1}") &&
                  strstr(r.out, "fixed:100"),
              "get said: %s", r.out);
    run_free(&r);

    /* The same id and registration again: a no-op that still prints the id. */
    r = LASHCTL(&rd, NULL, "submit", "echo", "--payload", "{\"x\":1}", "--id", "t-1",
                "--max-attempts", "5", "--timeout", "2000", "--backoff", "fixed:100", "--on-lost",
                "abandon");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "t-1\n");
    run_free(&r);
    /* Another registration under the same id: refused. */
    r = LASHCTL(&rd, NULL, "submit", "echo", "--payload", "{\"x\":2}", "--id", "t-1");
    cr_assert_eq(r.code, 1);
    assert_one_error_line(&r);
    cr_assert(strstr(r.err, "conflict"), "stderr: %s", r.err);
    run_free(&r);

    /* No --id: a generated one, printed. */
    r = LASHCTL(&rd, NULL, "submit", "echo");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_eq(strlen(r.out), 17, "out: %s", r.out);
    r.out[16] = 0;
    rec = get_row(&rd, r.out);
    cr_assert_str_eq(rec.payload, "null");
    lash_record_free(&rec);
    run_free(&r);

    cr_assert_eq(LASHCTL(&rd, NULL, "get", "no-such").code, 1);
}

Test(cli, submit_payload_sources_and_times)
{
    char path[256];
    snprintf(path, sizeof path, "%s/payload.json", rd.dir);
    write_file(path, "{\"from\":\"file\"}\n");
    run_result r = LASHCTL(&rd, NULL, "submit", "echo", "--payload-file", path, "--id", "f-1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    run_free(&r);
    r = LASHCTL(&rd, path, "submit", "echo", "-", "--id", "s-1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    run_free(&r);
    lash_record a = get_row(&rd, "f-1"), b = get_row(&rd, "s-1");
    cr_assert_str_eq(a.payload, "{\"from\":\"file\"}\n");
    cr_assert_str_eq(b.payload, "{\"from\":\"file\"}\n");
    lash_record_free(&a);
    lash_record_free(&b);

    r = LASHCTL(&rd, NULL, "submit", "echo", "--delay", "60000", "--id", "d-1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    run_free(&r);
    a = get_row(&rd, "d-1");
    cr_assert_eq(a.run_at_ms - a.created_ms, 60000);
    lash_record_free(&a);

    /* --at in three zones; each names the same instant one hour ahead. */
    int64_t secs = wall_ms() / 1000 + 3600;
    const struct {
        int off_min;
        const char *zone;
    } z[] = {{0, "Z"}, {120, "+02:00"}, {-330, "-05:30"}, {60, "+0100"}};
    for (int i = 0; i < 4; i++) {
        time_t t = (time_t)(secs + z[i].off_min * 60);
        struct tm tm;
        gmtime_r(&t, &tm);
        char at[64], id[16];
        snprintf(at, sizeof at, "%04d-%02d-%02dT%02d:%02d:%02d.250%s", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, z[i].zone);
        snprintf(id, sizeof id, "at-%d", i);
        r = LASHCTL(&rd, NULL, "submit", "echo", "--at", at, "--id", id);
        cr_assert_eq(r.code, 0, "--at %s: %s", at, r.err);
        run_free(&r);
        a = get_row(&rd, id);
        cr_assert_eq(a.run_at_ms, secs * 1000 + 250, "--at %s", at);
        lash_record_free(&a);
    }
}

/* ---- submit-bulk ------------------------------------------------------------- */

Test(cli, submit_bulk_skips_bad_lines)
{
    char path[256];
    snprintf(path, sizeof path, "%s/bulk.jsonl", rd.dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int i = 1; i <= 10000; i++) {
        if (i == 2500)
            fputs("{\"n\": 2500,\n", f); /* cut short */
        else if (i == 5000)
            fputs("not json at all\n", f);
        else if (i == 7500)
            fputs("{\"kind\":\"bad kind!\",\"payload\":1}\n", f); /* valid JSON, bad kind */
        else if (i % 3 == 0)
            fprintf(f,
                    "{\"kind\":\"other\",\"payload\":{\"n\":%d},\"id\":\"b-%d\","
                    "\"max_attempts\":7}\n",
                    i, i);
        else
            fprintf(f, "{\"n\":%d}\n", i);
    }
    fclose(f);

    run_result r = LASHCTL(&rd, path, "submit-bulk", "echo");
    cr_assert_eq(r.code, 1, "skipped lines make exit 1; stderr: %s", r.err);
    cr_assert_eq(count_lines(r.err), 3, "stderr: %s", r.err);
    cr_assert(strncmp(r.err, "line 2500: ", 11) == 0, "stderr: %s", r.err);
    cr_assert(strstr(r.err, "\nline 5000: "), "stderr: %s", r.err);
    cr_assert(strstr(r.err, "\nline 7500: "), "stderr: %s", r.err);
    cr_assert(strstr(r.out, "9997 created"), "report: %s", r.out);
    cr_assert(strstr(r.out, "3 bad"), "report: %s", r.out);
    run_free(&r);

    lash_conn *c = lash_fx_connect(&rd);
    lash_stats s;
    lash_err e = {0};
    cr_assert_eq(lash_get_stats(c, "default", &s, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(s.total_submitted, 9997);
    cr_assert_eq(s.count[LASH_PENDING], 9997);
    lash_close(c);
    lash_record rec = get_row(&rd, "b-9999");
    cr_assert_str_eq(rec.kind, "other");
    cr_assert_str_eq(rec.payload, "{\"n\":9999}");
    cr_assert_eq(rec.max_attempts, 7);
    lash_record_free(&rec);

    /* Again: every line is already there, nothing new; --json reports it. */
    r = LASHCTL(&rd, path, "--json", "submit-bulk", "echo");
    cr_assert_eq(r.code, 1);
    cJSON *j = parse_json(r.out);
    cr_assert_eq(cJSON_GetObjectItem(j, "bad")->valueint, 3);
    cr_assert_eq(cJSON_GetObjectItem(j, "lines")->valueint, 10000);
    /* Bare payloads get fresh ids (created), the ones with ids exist already. */
    cr_assert_eq(cJSON_GetObjectItem(j, "exists")->valueint, 3332); /* i % 3 == 0, but not 7500 */
    cJSON_Delete(j);
    run_free(&r);

    /* A clean file exits 0. */
    write_file(path, "1\n\n{\"a\":2}\n");
    r = LASHCTL(&rd, path, "submit-bulk", "echo");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.err, "");
    run_free(&r);
}

/* ---- --json ------------------------------------------------------------------ */

Test(cli, json_output_parses)
{
    events_all();
    run_result r =
        LASHCTL(&rd, NULL, "--json", "submit", "echo", "--payload", "{\"x\":1}", "--id", "j-1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cJSON *j = parse_json(r.out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "id")->valuestring, "j-1");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "created");
    cJSON_Delete(j);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "get", "j-1", "--json");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    j = parse_json(r.out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "state")->valuestring, "pending");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "payload"), "x")->valueint, 1);
    cJSON_Delete(j);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "--json", "list");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    j = parse_json(r.out);
    cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(j, "rows")), 1);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "next")->valuestring, "0");
    cJSON_Delete(j);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "--json", "stats");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    j = parse_json(r.out);
    cr_assert_eq(cJSON_GetObjectItem(j, "pending")->valueint, 1);
    cr_assert_eq(cJSON_GetObjectItem(j, "total_submitted")->valueint, 1);
    cJSON_Delete(j);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "--json", "cancel", "j-1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    j = parse_json(r.out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "status")->valuestring, "cancelled");
    cJSON_Delete(j);
    run_free(&r);

    /* events: one document per line. */
    r = LASHCTL(&rd, NULL, "--json", "events");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_eq(count_lines(r.out), 2, "events: %s", r.out);
    char *save = NULL, *line = strtok_r(r.out, "\n", &save);
    j = parse_json(line);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "event")->valuestring, "submitted");
    cJSON_Delete(j);
    j = parse_json(strtok_r(NULL, "\n", &save));
    cr_assert_str_eq(cJSON_GetObjectItem(j, "event")->valuestring, "cancelled");
    cr_assert_str_eq(cJSON_GetObjectItem(j, "id")->valuestring, "j-1");
    cJSON_Delete(j);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "--json", "workers");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    j = parse_json(r.out);
    cr_assert(cJSON_IsArray(cJSON_GetObjectItem(j, "workers")));
    cJSON_Delete(j);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "--json", "top", "--iterations", "1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    j = parse_json(r.out);
    cr_assert_eq(cJSON_GetObjectItem(j, "cancelled")->valueint, 1);
    cJSON_Delete(j);
    run_free(&r);
}

/* ---- wait -------------------------------------------------------------------- */

Test(cli, wait_exits_0_when_completed)
{
    run_result r = LASHCTL(&rd, NULL, "submit", "echo", "--id", "w-1");
    cr_assert_eq(r.code, 0);
    run_free(&r);
    r = LASHCTL(&rd, NULL, "submit", "echo", "--id", "w-2");
    run_free(&r);
    /* The worker acts after wait has subscribed and read the rows as pending. */
    pid_t worker = worker_after(&rd, 500, LASH_OUT_OK, "{\"ok\":true}");
    r = LASHCTL(&rd, NULL, "wait", "w-1", "w-2", "--timeout", "30000");
    cr_assert_eq(wait_exit(worker), 0, "simulated worker failed");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "w-1 completed\nw-2 completed\n");
    run_free(&r);
    /* Already finished: answers at once from the re-check. */
    r = LASHCTL(&rd, NULL, "--json", "wait", "w-2");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cJSON *j = parse_json(r.out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "state")->valuestring, "completed");
    cr_assert(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "ok")));
    cJSON_Delete(j);
    run_free(&r);
}

Test(cli, wait_exits_1_when_failed)
{
    run_result r = LASHCTL(&rd, NULL, "submit", "echo", "--id", "f-1", "--max-attempts", "1");
    cr_assert_eq(r.code, 0);
    run_free(&r);
    pid_t worker = worker_after(&rd, 500, LASH_OUT_FAIL, "exit status 3");
    r = LASHCTL(&rd, NULL, "wait", "f-1", "--timeout", "30000");
    cr_assert_eq(wait_exit(worker), 0, "simulated worker failed");
    cr_assert_eq(r.code, 1, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "f-1 failed: exit status 3\n");
    assert_one_error_line(&r);
    run_free(&r);

    /* A missing id is not completed either. */
    r = LASHCTL(&rd, NULL, "wait", "nobody");
    cr_assert_eq(r.code, 1);
    run_free(&r);
}

Test(cli, wait_times_out)
{
    run_result r = LASHCTL(&rd, NULL, "submit", "echo", "--id", "slow");
    run_free(&r);
    r = LASHCTL(&rd, NULL, "wait", "slow", "--timeout", "300");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.err, "timed out"), "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "slow pending\n");
    run_free(&r);
}

/* ---- cancel / retry ---------------------------------------------------------- */

Test(cli, cancel_and_retry_follow_the_registry)
{
    run_result r = LASHCTL(&rd, NULL, "submit", "echo", "--id", "c-1");
    run_free(&r);
    r = LASHCTL(&rd, NULL, "cancel", "c-1", "--reason", "not needed");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    run_free(&r);
    lash_record rec = get_row(&rd, "c-1");
    cr_assert_eq(rec.state, LASH_CANCELLED);
    cr_assert_str_eq(rec.error, "not needed");
    lash_record_free(&rec);
    /* Terminal: a second cancel is refused. */
    r = LASHCTL(&rd, NULL, "cancel", "c-1");
    cr_assert_eq(r.code, 1);
    assert_one_error_line(&r);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "retry", "c-1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    run_free(&r);
    rec = get_row(&rd, "c-1");
    cr_assert_eq(rec.state, LASH_PENDING);
    cr_assert_eq(rec.attempt, 0);
    lash_record_free(&rec);
    /* Pending: nothing to retry. */
    r = LASHCTL(&rd, NULL, "retry", "c-1");
    cr_assert_eq(r.code, 1);
    assert_one_error_line(&r);
    run_free(&r);

    /* A running row: cancel is a request to its owner. */
    lash_conn *c = lash_fx_connect(&rd);
    lash_claim_batch b;
    lash_err e = {0};
    cr_assert_eq(lash_claim(c, "default", "w-x", 10, 30000, (lash_retention){-1, 0}, 0, -1, &b, &e),
                 LASH_OK);
    cr_assert_eq(b.n, 1);
    lash_claim_batch_free(&b);
    lash_close(c);
    r = LASHCTL(&rd, NULL, "cancel", "c-1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "requested"), "out: %s", r.out);
    run_free(&r);
    rec = get_row(&rd, "c-1");
    cr_assert_eq(rec.state, LASH_RUNNING);
    cr_assert(rec.cancel_requested);
    lash_record_free(&rec);

    cr_assert_eq(LASHCTL(&rd, NULL, "cancel", "ghost").code, 1);
    cr_assert_eq(LASHCTL(&rd, NULL, "retry", "ghost").code, 1);
}

Test(cli, malformed_row_is_shown_and_refused)
{
    lash_conn *c = lash_fx_connect(&rd);
    redisReply *rep = redisCommand(
        lash_conn_redis(c), "HSET lash:{default}:p:bad-1 kind echo payload {} state sleeping "
                            "max_attempts 3 created_ms 1");
    cr_assert(rep && rep->type == REDIS_REPLY_INTEGER);
    freeReplyObject(rep);
    lash_close(c);
    run_result r = LASHCTL(&rd, NULL, "get", "bad-1");
    cr_assert_eq(r.code, 1);
    cr_assert(strstr(r.out, "bad-1") && strstr(r.out, "echo"), "what parsed is shown: %s", r.out);
    assert_one_error_line(&r);
    cr_assert(strstr(r.err, "state"), "the bad field is named: %s", r.err);
    run_free(&r);
}

/* ---- exit codes 2 and 3 -------------------------------------------------------- */

Test(cli, usage_errors_exit_2)
{
    static const char *const cases[][8] = {
        {NULL},
        {"frobnicate"},
        {"--bogus", "stats"},
        {"submit"},
        {"submit", "echo", "--max-attempts", "0"},
        {"submit", "echo", "--max-attempts", "abc"},
        {"submit", "echo", "--max-attempts", "1001"},
        {"submit", "echo", "--timeout", "-1"},
        {"submit", "echo", "--delay", "-5"},
        {"submit", "echo", "--at", "2030-13-01T00:00:00Z"},
        {"submit", "echo", "--at", "2030-02-30T00:00:00Z"},
        {"submit", "echo", "--at", "2030-01-01T00:00:00"},
        {"submit", "echo", "--at", "2030-01-01T25:00:00Z"},
        {"submit", "echo", "--at", "2030-01-01T00:00:00+2"},
        {"submit", "echo", "--delay", "5", "--at", "2030-01-01T00:00:00Z"},
        {"submit", "echo", "--backoff", "linear:5"},
        {"submit", "echo", "--on-lost", "maybe"},
        {"submit", "echo", "--payload", "{bad"},
        {"submit", "echo", "--payload", "1", "-"},
        {"submit", "bad kind!"},
        {"submit", "echo", "--id", "has space"},
        {"submit", "echo", "--payload"},
        {"get"},
        {"get", "a", "b"},
        {"list", "--state", "sleeping"},
        {"list", "--limit", "0"},
        {"list", "--cursor", "x9"},
        {"events", "--count", "0"},
        {"top", "--iterations", "0"},
        {"wait"},
        {"wait", "x", "--timeout", "0"},
        {"trim", "--older-than", "5"},
        {"trim", "--older-than", "5x"},
        {"trim", "--keep", "-2"},
        {"--queue", "bad queue", "stats"},
        {"--redis", "http://x", "stats"},
        {"stats", "extra"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *argv[9] = {0};
        for (int k = 0; k < 8 && cases[i][k]; k++)
            argv[k] = cases[i][k];
        run_result r = run_url(rd.dir, rd.url, NULL, argv);
        cr_assert_eq(r.code, 2, "case %zu (%s %s ...) exit %d, stderr: %s", i,
                     argv[0] ? argv[0] : "", argv[1] ? argv[1] : "", r.code, r.err);
        assert_one_error_line(&r);
        run_free(&r);
    }
    /* Nothing reached Redis. */
    lash_conn *c = lash_fx_connect(&rd);
    redisReply *rep = redisCommand(lash_conn_redis(c), "DBSIZE");
    cr_assert_eq(rep->integer, 0);
    freeReplyObject(rep);
    lash_close(c);

    run_result r = LASHCTL(&rd, NULL, "--help");
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "submit-bulk") && strstr(r.out, "Exit codes"));
    run_free(&r);
    r = LASHCTL(&rd, NULL, "submit", "--help");
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "--backoff") && strstr(r.out, "--on-lost"));
    run_free(&r);
}

Test(cli, unreachable_redis_exits_3)
{
    char url[256];
    snprintf(url, sizeof url, "unix://%s/nothing-here.sock", rd.dir);
    run_result r = run_url(rd.dir, url, NULL, ARGS("get", "x"));
    cr_assert_eq(r.code, 3, "stderr: %s", r.err);
    assert_one_error_line(&r);
    run_free(&r);
    r = run_url(rd.dir, "redis://127.0.0.1:1", NULL, ARGS("stats"));
    cr_assert_eq(r.code, 3, "stderr: %s", r.err);
    run_free(&r);
    r = run_url(rd.dir, url, NULL, ARGS("wait", "x"));
    cr_assert_eq(r.code, 3, "stderr: %s", r.err);
    assert_one_error_line(&r);
    run_free(&r);
    char path[256];
    snprintf(path, sizeof path, "%s/one.jsonl", rd.dir);
    write_file(path, "{}\n");
    r = run_url(rd.dir, url, path, ARGS("submit-bulk", "echo"));
    cr_assert_eq(r.code, 3, "stderr: %s", r.err);
    assert_one_error_line(&r);
    run_free(&r);
    /* --redis, with no LASH_REDIS_URL at all. */
    r = run_url(rd.dir, NULL, NULL, ARGS("--redis", url, "poke"));
    cr_assert_eq(r.code, 3, "stderr: %s", r.err);
    run_free(&r);

    lash_fx_redis_kill9(&rd);
    r = LASHCTL(&rd, NULL, "submit", "echo");
    cr_assert_eq(r.code, 3, "stderr: %s", r.err);
    assert_one_error_line(&r);
    run_free(&r);
}

/* The reviewer's case: with requirepass set and no password given, stats said
 * "Connection reset by peer" and exited 3, functions a protocol error, wait
 * NOAUTH. Every command says the one thing that is wrong, and exits 1. */
Test(cli, a_missing_or_wrong_password_is_one_clear_line)
{
    static const char *const pass[] = {"--requirepass", "s3cret", NULL};
    lash_fx_redis locked;
    lash_fx_redis_start(&locked, pass);
    char path[256];
    snprintf(path, sizeof path, "%s/one.jsonl", rd.dir);
    write_file(path, "{}\n");
    static const char *const cmds[][4] = {
        {"stats"},
        {"functions"},
        {"wait", "x", "--timeout", "1000"},
        {"submit", "k"},
        {"get", "x"},
        {"workers"},
        {"poke"},
        {"list"},
        {"events", "--count", "1"},
        {"cancel", "x"},
        {"submit-bulk", "k"},
    };
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        const char *args[6] = {cmds[i][0], cmds[i][1], cmds[i][2], cmds[i][3], NULL};
        bool bulk = strcmp(cmds[i][0], "submit-bulk") == 0;
        run_result r = run_url(rd.dir, locked.url, bulk ? path : NULL, args);
        cr_expect_eq(r.code, 1, "%s: exit %d: %s", cmds[i][0], r.code, r.err);
        cr_expect(strstr(r.err, "authentication required"), "%s: %s", cmds[i][0], r.err);
        if (!bulk) assert_one_error_line(&r); /* submit-bulk also prints its report */
        run_free(&r);
    }
    char url[300];
    snprintf(url, sizeof url, "unix://:wrong@%s", locked.sock);
    run_result r = run_url(rd.dir, url, NULL, ARGS("stats"));
    cr_expect_eq(r.code, 1, "exit %d: %s", r.code, r.err);
    cr_expect(strstr(r.err, "WRONGPASS"), "%s", r.err);
    assert_one_error_line(&r);
    run_free(&r);
    snprintf(url, sizeof url, "unix://:s3cret@%s", locked.sock);
    r = run_url(rd.dir, url, NULL, ARGS("stats"));
    cr_expect_eq(r.code, 0, "the right password works: %s", r.err);
    run_free(&r);
    lash_fx_redis_stop(&locked);
}

/* The reviewer's case: at Redis's memory limit submit-bulk reported "20000
 * submitted" while more rows existed, and --json printed nothing. The counts
 * are what Redis acknowledged, and the document is printed on every ending. */
Test(cli, submit_bulk_at_the_memory_limit_counts_what_redis_acknowledged)
{
    static const char *const small[] = {"--maxmemory", "3mb", "--maxmemory-policy", "noeviction",
                                        NULL};
    lash_fx_redis full;
    lash_fx_redis_start(&full, small);
    char path[256];
    snprintf(path, sizeof path, "%s/many.jsonl", rd.dir);
    FILE *f = fopen(path, "w");
    cr_assert(f);
    for (int i = 0; i < 40000; i++)
        fprintf(f, "{\"i\":%d,\"pad\":\"%080d\"}\n", i, i);
    fclose(f);
    run_result r = run_url(rd.dir, full.url, path, ARGS("--json", "submit-bulk", "k"));
    cr_expect_eq(r.code, 1, "exit %d: %s", r.code, r.err);
    cr_expect(strstr(r.err, "OOM"), "the error says why: %s", r.err);
    cJSON *j = parse_json(r.out);
    double created = cJSON_GetObjectItem(j, "created")->valuedouble;
    lash_conn *c = lash_fx_connect(&full);
    lash_stats st = lash_fx_stats(c, "default");
    lash_close(c);
    cr_expect_gt(created, 0);
    cr_expect_lt(created, 40000, "the limit was not reached: make the rows bigger");
    cr_expect_eq((long long)created, (long long)st.due, "reported %.0f, Redis holds %lld", created,
                 (long long)st.due);
    cr_expect_eq(cJSON_GetObjectItem(j, "unknown")->valuedouble, 0);
    cJSON_Delete(j);
    run_free(&r);
    lash_fx_redis_stop(&full);
}

Test(cli, password_on_command_line_warns)
{
    char url[256];
    snprintf(url, sizeof url, "unix://:hunter2@%s", rd.sock);
    run_result r = run_url(rd.dir, rd.url, NULL, ARGS("--redis", url, "stats"));
    cr_assert(strstr(r.err, "lashctl: warning:"), "stderr: %s", r.err);
    cr_assert_null(strstr(r.err, "hunter2"), "the password leaked: %s", r.err);
    run_free(&r);
    /* Not from the environment. */
    r = run_url(rd.dir, url, NULL, ARGS("stats"));
    cr_assert_null(strstr(r.err, "warning"), "stderr: %s", r.err);
    run_free(&r);
}

/* ---- FCALL, list, stats, workers, events, top, trim ---------------------------- */

Test(cli, fcall_submission_is_seen)
{
    run_result r = LASHCTL(&rd, NULL, "functions");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    run_free(&r);
    lash_conn *c = lash_fx_connect(&rd);
    redisReply *rep =
        redisCommand(lash_conn_redis(c), "FCALL lash_submit 1 lash:{default} %s %s %s 0", "fc-1",
                     "echo", "{\"y\":2}");
    cr_assert(rep && rep->type == REDIS_REPLY_ARRAY, "FCALL: %s", rep ? rep->str : "no reply");
    freeReplyObject(rep);
    lash_close(c);
    r = LASHCTL(&rd, NULL, "--json", "get", "fc-1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cJSON *j = parse_json(r.out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "state")->valuestring, "pending");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "payload"), "y")->valueint, 2);
    cJSON_Delete(j);
    run_free(&r);
    /* And a worker picks it up. */
    pid_t worker = worker_after(&rd, 0, LASH_OUT_OK, "done");
    cr_assert_eq(wait_exit(worker), 0);
    r = LASHCTL(&rd, NULL, "wait", "fc-1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    run_free(&r);
}

Test(cli, list_stats_workers_events_top_trim)
{
    events_all();
    for (int i = 0; i < 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "l-%d", i);
        run_result r = LASHCTL(&rd, NULL, "submit", "echo", "--id", id);
        cr_assert_eq(r.code, 0);
        run_free(&r);
    }
    run_result r = LASHCTL(&rd, NULL, "cancel", "l-0");
    run_free(&r);
    r = LASHCTL(&rd, NULL, "cancel", "l-1");
    run_free(&r);

    r = LASHCTL(&rd, NULL, "list", "--state", "cancelled");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_eq(count_lines(r.out), 3, "list: %s", r.out); /* header + 2 */
    cr_assert(strstr(r.out, "l-0") && strstr(r.out, "l-1") && !strstr(r.out, "l-2"));
    run_free(&r);
    r = LASHCTL(&rd, NULL, "list", "--limit", "2");
    cr_assert_eq(r.code, 0);
    cr_assert_eq(count_lines(r.out), 3);
    cr_assert(strstr(r.err, "--cursor"), "stderr: %s", r.err);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "stats");
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "pending      3") && strstr(r.out, "cancelled    2"), "%s", r.out);
    run_free(&r);

    /* A claim is a worker's heartbeat. */
    lash_conn *c = lash_fx_connect(&rd);
    lash_claim_batch b;
    lash_err e = {0};
    cr_assert_eq(
        lash_claim(c, "default", "host-a.1", 1, 30000, (lash_retention){-1, 0}, 0, -1, &b, &e),
        LASH_OK);
    lash_claim_batch_free(&b);
    r = LASHCTL(&rd, NULL, "workers");
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "host-a.1"), "workers: %s", r.out);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "events");
    cr_assert_eq(r.code, 0);
    cr_assert(strstr(r.out, "submitted") && strstr(r.out, "cancelled") && strstr(r.out, "claimed"),
              "events: %s", r.out);
    run_free(&r);
    r = LASHCTL(&rd, NULL, "events", "--count", "1");
    cr_assert_eq(count_lines(r.out), 1, "events: %s", r.out);
    cr_assert(strstr(r.out, "claimed"), "events: %s", r.out);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "top", "--iterations", "2");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    char *second = strstr(r.out, "lash top");
    cr_assert(second && strstr(second + 1, "lash top"), "two frames: %s", r.out);
    cr_assert(strstr(r.out, "states") && strstr(r.out, "running 1") && strstr(r.out, "host-a.1") &&
                  strstr(r.out, "rates/s"),
              "top: %s", r.out);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "trim", "--keep", "1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.out, "removed 1 finished rows\n");
    run_free(&r);
    r = LASHCTL(&rd, NULL, "trim", "--older-than", "1h");
    cr_assert_str_eq(r.out, "removed 0 finished rows\n");
    run_free(&r);
    lash_stats s;
    cr_assert_eq(lash_get_stats(c, "default", &s, &e), LASH_OK);
    cr_assert_eq(s.done, 1);
    lash_close(c);

    const char *const durations[] = {"500ms", "30s", "15m", "2h", "7d", "1w"};
    for (int i = 0; i < 6; i++) {
        r = LASHCTL(&rd, NULL, "trim", "--older-than", durations[i]);
        cr_assert_eq(r.code, 0, "--older-than %s: %s", durations[i], r.err);
        run_free(&r);
    }

    r = LASHCTL(&rd, NULL, "poke");
    cr_assert_eq(r.code, 0);
    run_free(&r);
}

Test(cli, events_follow_sees_new_entries)
{
    events_all();
    char out_path[256], err_path[256];
    snprintf(out_path, sizeof out_path, "%s/follow.out", rd.dir);
    snprintf(err_path, sizeof err_path, "%s/follow.err", rd.dir);
    pid_t pid =
        spawn(rd.url, NULL, out_path, err_path, ARGS(lash_fx_bin("lashctl"), "events", "--follow"));
    lash_fx_sleep_ms(300);
    run_result r = LASHCTL(&rd, NULL, "submit", "echo", "--id", "late-1");
    cr_assert_eq(r.code, 0);
    run_free(&r);
    bool seen = false;
    for (long long end = lash_fx_ms() + 10000; !seen && lash_fx_ms() < end;) {
        char *s = slurp(out_path);
        seen = strstr(s, "late-1") != NULL;
        free(s);
        if (!seen) lash_fx_sleep_ms(50);
    }
    kill(pid, SIGTERM);
    wait_exit(pid);
    cr_assert(seen, "events --follow never printed the new submission");
}

/* ---- the README's redis-cli recipes, as written ------------------------------- */

Test(cli, readme_redis_cli_recipes_run)
{
    char *readme = slurp(LASH_SOURCE_DIR "/README.md");
    char *begin = strstr(readme, "<!-- section:redis-cli -->");
    char *end = begin ? strstr(begin, "<!-- /section:redis-cli -->") : NULL;
    cr_assert(begin && end, "README has no redis-cli section");
    *end = 0;

    /* The README says: load the functions first (any lashctl command does). */
    run_result r = LASHCTL(&rd, NULL, "functions");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    run_free(&r);

    int n = 0;
    char out_path[256], cmd[4096];
    snprintf(out_path, sizeof out_path, "%s/recipe.out", rd.dir);
    for (char *line = begin; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = 0;
        if (strncmp(line, "redis-cli ", 10) == 0) {
            snprintf(cmd, sizeof cmd, "redis-cli -s '%s' %s > '%s' 2>&1", rd.sock, line + 10,
                     out_path);
            int st = system(cmd);
            char *out = slurp(out_path);
            cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "`%s` failed: %s", line, out);
            /* redis-cli exits 0 on an error reply, so the text is what tells; a lash
             * function refusing a row answers a status text, not an error. */
            cr_assert(!strstr(out, "(error)") && !strstr(out, "ERR") && !strstr(out, "invalid:") &&
                          !strstr(out, "conflict:") && !strstr(out, "refused") &&
                          !strstr(out, "not-found"),
                      "`%s` said: %s", line, out);
            free(out);
            n++;
        }
        line = nl ? nl + 1 : NULL;
    }
    cr_assert_geq(n, 10, "only %d redis-cli recipes found in the README section", n);

    /* The recipes submitted demo-1 through FCALL, and lashctl sees it. */
    r = LASHCTL(&rd, NULL, "get", "demo-1");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    run_free(&r);
    free(readme);
}

/* ---- with a real lash-worker --------------------------------------------------- */

/* Starts lash-worker on the fixture's Redis with an exec handler "sh-echo"
 * (cat) and "slow" (sleep 30), the built-in fail, and a 200 ms poll. */
static pid_t real_worker(const lash_fx_redis *r)
{
    char echo[256], slow[256], handler1[300], handler2[300], log[256];
    snprintf(echo, sizeof echo, "%s/echo.sh", r->dir);
    snprintf(slow, sizeof slow, "%s/slow.sh", r->dir);
    write_file(echo, "#!/bin/sh\ncat\n");
    write_file(slow, "#!/bin/sh\nsleep 30\n");
    cr_assert_eq(chmod(echo, 0755), 0);
    cr_assert_eq(chmod(slow, 0755), 0);
    snprintf(handler1, sizeof handler1, "sh-echo=%s", echo);
    snprintf(handler2, sizeof handler2, "slow=%s", slow);
    snprintf(log, sizeof log, "%s/worker.log", r->dir);
    const char *argv[] = {lash_fx_bin("lash-worker"),
                          "--handler",
                          handler1,
                          "--handler",
                          handler2,
                          "--builtin",
                          "fail",
                          "--poll-ms",
                          "200",
                          "--grace-ms",
                          "2000",
                          NULL};
    char out[300];
    snprintf(out, sizeof out, "%s/worker.out", r->dir);
    return spawn(r->url, NULL, out, log, argv);
}

Test(cli, with_a_real_worker)
{
    pid_t worker = real_worker(&rd);

    /* submit + wait: completed, the program's stdout is the result */
    run_result r =
        LASHCTL(&rd, NULL, "submit", "sh-echo", "--id", "rw-1", "--payload", "{\"n\":7}");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    run_free(&r);
    r = LASHCTL(&rd, NULL, "--json", "wait", "rw-1", "--timeout", "20000");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cJSON *j = parse_json(r.out);
    cr_assert_str_eq(cJSON_GetObjectItem(j, "state")->valuestring, "completed");
    cr_assert_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "result"), "n")->valueint, 7);
    cJSON_Delete(j);
    run_free(&r);

    /* a process that fails: wait exits 1 */
    r = LASHCTL(&rd, NULL, "submit", "fail", "--id", "rw-2", "--max-attempts", "1", "--payload",
                "{\"error\":\"no luck\"}");
    run_free(&r);
    r = LASHCTL(&rd, NULL, "wait", "rw-2", "--timeout", "20000");
    cr_assert_eq(r.code, 1, "stdout: %s stderr: %s", r.out, r.err);
    cr_assert(strstr(r.out, "failed: no luck"), "stdout: %s", r.out);
    run_free(&r);

    /* FCALL from redis-cli's point of view: picked up by the worker */
    r = LASHCTL(&rd, NULL, "functions");
    run_free(&r);
    lash_conn *c = lash_fx_connect(&rd);
    redisReply *rep =
        redisCommand(lash_conn_redis(c), "FCALL lash_submit 1 lash:{default} %s %s %s 0", "rw-3",
                     "sh-echo", "[1,2,3]");
    cr_assert(rep && rep->type == REDIS_REPLY_ARRAY, "FCALL: %s", rep ? rep->str : "no reply");
    freeReplyObject(rep);
    lash_close(c);
    r = LASHCTL(&rd, NULL, "wait", "rw-3", "--timeout", "20000");
    cr_assert_eq(r.code, 0, "stdout: %s stderr: %s", r.out, r.err);
    run_free(&r);

    /* cancel of a running process: the worker kills it and records 'cancelled' */
    r = LASHCTL(&rd, NULL, "submit", "slow", "--id", "rw-4");
    run_free(&r);
    long long until = lash_fx_ms() + 20000;
    for (;;) {
        lash_record rec = get_row(&rd, "rw-4");
        lash_state st = rec.state;
        lash_record_free(&rec);
        if (st == LASH_RUNNING) break;
        cr_assert(lash_fx_ms() < until, "rw-4 never started");
        lash_fx_sleep_ms(50);
    }
    r = LASHCTL(&rd, NULL, "cancel", "rw-4");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    run_free(&r);
    r = LASHCTL(&rd, NULL, "wait", "rw-4", "--timeout", "20000");
    cr_assert_eq(r.code, 1, "a cancelled process is not completed; stdout: %s", r.out);
    cr_assert(strstr(r.out, "rw-4 cancelled"), "stdout: %s", r.out);
    run_free(&r);

    /* the worker shows up in `workers`, and leaves cleanly on SIGTERM */
    r = LASHCTL(&rd, NULL, "workers");
    cr_assert_eq(r.code, 0, "stderr: %s", r.err);
    cr_assert(strlen(r.out) > 0, "no worker listed");
    run_free(&r);
    kill(worker, SIGTERM);
    cr_assert_eq(wait_exit(worker), 0, "lash-worker did not exit 0 on SIGTERM");
}

Test(cli, queues_lists_every_queue_with_its_counts_without_a_queue_flag)
{
    run_result r;
    static const char *const qs[] = {"qa", "qb", "qc"};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k <= i; k++) {
            r = LASHCTL(&rd, NULL, "--queue", qs[i], "submit", "echo");
            cr_assert_eq(r.code, 0, "%s", r.err);
            run_free(&r);
        }
    r = LASHCTL(&rd, NULL, "queues");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_assert(strstr(r.out, "pending") && strstr(r.out, "workers"), "%s", r.out);
    for (int i = 0; i < 3; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n%-24s %10d ", qs[i], i + 1);
        cr_assert(strstr(r.out, line), "no line '%s' in:\n%s", line + 1, r.out);
    }
    run_free(&r);

    r = LASHCTL(&rd, NULL, "--json", "queues");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert(cJSON_IsArray(j), "%s", r.out);
    int seen = 0;
    cJSON *x;
    cJSON_ArrayForEach(x, j)
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(x, "queue"));
        for (int i = 0; name && i < 3; i++)
            if (!strcmp(name, qs[i])) {
                cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(x, "pending")), i + 1);
                seen++;
            }
    }
    cr_assert_eq(seen, 3, "%s", r.out);
    cJSON_Delete(j);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "queues", "extra");
    cr_assert_eq(r.code, 2);
    run_free(&r);
}

/* A submitter, simulated: after delay_ms, submits n rows to queue q. */
static pid_t submit_after(const lash_fx_redis *rdp, int delay_ms, const char *q, int n)
{
    pid_t pid;
    lash_conn *c = child_after(rdp, delay_ms, &pid);
    if (!c) return pid;
    lash_err e = {0};
    for (int i = 0; i < n; i++) {
        lash_submission s = {.kind = "echo"};
        lash_submitted out;
        if (lash_submit(c, q, &s, 1, &out, &e)) _exit(11);
    }
    lash_close(c);
    _exit(0);
}

Test(cli, top_all_shows_every_queue_a_line_each_with_its_rates)
{
    run_result r = LASHCTL(&rd, NULL, "--queue", "qa", "submit", "echo");
    cr_assert_eq(r.code, 0, "%s", r.err);
    run_free(&r);
    r = LASHCTL(&rd, NULL, "--queue", "qb", "submit", "echo");
    cr_assert_eq(r.code, 0, "%s", r.err);
    run_free(&r);
    /* Frames about a second apart from 0 s; 5 submits to qb at 1.3 s. */
    pid_t sub = submit_after(&rd, 1300, "qb", 5);
    r = LASHCTL(&rd, NULL, "--json", "top", "--all", "--iterations", "6");
    cr_assert_eq(wait_exit(sub), 0, "the submitter failed");
    cr_assert_eq(r.code, 0, "%s", r.err);
    double rate_sum = 0;
    int frames = 0, last_pending = -1;
    char *save = NULL;
    for (char *line = strtok_r(r.out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        cr_assert(cJSON_IsArray(j) && cJSON_GetArraySize(j) == 2, "frame %d: %s", frames, line);
        cJSON *x;
        cJSON_ArrayForEach(x, j)
        {
            const char *name = cJSON_GetStringValue(cJSON_GetObjectItem(x, "queue"));
            cr_assert(name && (!strcmp(name, "qa") || !strcmp(name, "qb")), "%s", line);
            cJSON *rates = cJSON_GetObjectItem(x, "rates");
            cr_assert_eq(rates != NULL, frames > 0, "rates from the second frame on: %s", line);
            if (strcmp(name, "qb") != 0) continue;
            last_pending = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(x, "pending"));
            if (rates) rate_sum += cJSON_GetNumberValue(cJSON_GetObjectItem(rates, "submitted"));
        }
        cJSON_Delete(j);
        frames++;
    }
    cr_assert_eq(frames, 6, "%s", r.out);
    cr_expect_eq(last_pending, 6);
    /* 5 submits between frames a second apart (more on a busy machine): their
     * rates add up to 5 at most, and not much less. */
    cr_expect(rate_sum > 2.5 && rate_sum < 5.5, "submitted/s over the frames: %.2f", rate_sum);
    run_free(&r);

    r = LASHCTL(&rd, NULL, "top", "--all", "--iterations", "1");
    cr_assert_eq(r.code, 0, "%s", r.err);
    cr_expect(strstr(r.out, "2 queues") && strstr(r.out, "\nqa ") && strstr(r.out, "\nqb "), "%s",
              r.out);
    run_free(&r);
}
