/* test_worker_sched.c: recurring schedules with real Redis and real workers
 * (registry/sched.h, proto/lua/sched.lua, worker/sched.c, lashctl schedule). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/sched.h"
#include "wfx.h"

TestSuite(schedule, .fini = wfx_teardown, .timeout = 120);

static int64_t server_ms(void)
{
    redisReply *r = cmd("TIME");
    int64_t ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

static void add(const char *name, const char *spec, const char *tz)
{
    lash_sched_def d = {.spec = spec, .tz = tz, .job = {.id = name, .kind = "noop"}};
    lash_sched_added a;
    lash_err e = {0};
    cr_assert_eq(lash_sched_add(C, "default", &d, &a, &e), LASH_OK, "%s", e.msg);
}

static void verb(lash_sched_verb v, const char *name)
{
    bool found = false;
    lash_err e = {0};
    cr_assert_eq(lash_sched_do(C, "default", v, name, &found, &e), LASH_OK, "%s", e.msg);
    cr_assert(found, "%s exists", name);
}

/* The fire times of the processes schedule name created, ascending. */
static size_t firings(const char *name, int64_t *out, size_t cap)
{
    redisReply *r = cmd("KEYS lash:{default}:p:%s@*", name);
    size_t n = 0, pre = strlen("lash:{default}:p:") + strlen(name) + 1;
    for (size_t i = 0; i < r->elements && n < cap; i++)
        out[n++] = atoll(r->element[i]->str + pre);
    freeReplyObject(r);
    for (size_t i = 1; i < n; i++) /* insertion sort: a few dozen */
        for (size_t j = i; j > 0 && out[j - 1] > out[j]; j--) {
            int64_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

static long long sched_field(const char *name, const char *f)
{
    redisReply *r = cmd("HGET lash:{default}:sched:%s %s", name, f);
    long long v = r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    freeReplyObject(r);
    return v;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

Test(schedule, every_second_fires_each_firing_exactly_once_with_three_workers_one_killed)
{
    up(NULL);
    add("tick", "@every 1s", NULL);
    pid_t w[3];
    w[0] = WORKER("w1", "--builtin", "noop");
    w[1] = WORKER("w2", "--builtin", "noop");
    w[2] = WORKER("w3", "--builtin", "noop");
    lash_fx_sleep_ms(9000);
    kill9(w[1]);
    lash_fx_sleep_ms(11000);
    verb(LASH_SCHED_PAUSE, "tick");
    lash_fx_sleep_ms(300); /* a fire sent before the pause lands */
    int64_t t[64];
    size_t n = firings("tick", t, 64);
    cr_assert_geq(n, 17, "only %zu firings in ~20 s", n);
    for (size_t i = 1; i < n; i++)
        cr_assert_eq(t[i] - t[i - 1], 1000, "a firing is missing between %lld and %lld",
                     (long long)t[i - 1], (long long)t[i]);
    /* Exactly once: every firing the schedule counted is one row, run once. */
    cr_assert_eq(sched_field("tick", "fired"), (long long)n);
    int64_t created[64], finished[64];
    for (size_t i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "tick@%lld", (long long)t[i]);
        WAIT_UNTIL(row_is("default", id, "completed"), 10000);
        lash_record r = get("default", id);
        cr_assert_eq(r.state, LASH_COMPLETED, "%s: %s", id, lash_state_name(r.state));
        cr_assert_leq(r.attempt, 2, "%s ran %d times", id,
                      r.attempt); /* 2: its worker was killed */
        created[i] = r.created_ms - t[i];
        finished[i] = r.finished_ms - t[i];
        lash_record_free(&r);
    }
    /* Firing delays, for the record (not a pass/fail bound). */
    qsort(created, n, sizeof *created, cmp_i64);
    qsort(finished, n, sizeof *finished, cmp_i64);
    fprintf(stderr,
            "schedule delay over %zu firings, 3 workers (one killed): created p50 %lld ms p99 %lld "
            "ms max %lld ms; completed (noop) p50 %lld ms p99 %lld ms\n",
            n, (long long)created[n / 2], (long long)created[(n * 99) / 100],
            (long long)created[n - 1], (long long)finished[n / 2],
            (long long)finished[(n * 99) / 100]);
}

Test(schedule, fire_is_a_compare_and_set_so_two_workers_create_one_process)
{
    up(NULL);
    add("cas", "@every 1s", NULL);
    lash_sched_due d;
    lash_err e = {0};
    WAIT_UNTIL((lash_sched_peek(C, "default", &d, &e) == LASH_OK &&
                d.now_ms >= d.rows[0].next_ms + 1000 && d.n == 1),
               5000);
    cr_assert_eq(d.n, 1);
    int64_t fire = d.now_ms / 1000 * 1000;
    lash_sched_firing f = {
        .name = "cas", .expect_ms = d.rows[0].next_ms, .fire_ms = fire, .next_ms = fire + 1000};
    char **s1 = NULL, **s2 = NULL;
    cr_assert_eq(lash_sched_fire(C, "default", &f, 1, &s1, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(lash_sched_fire(C, "default", &f, 1, &s2, &e), LASH_OK, "%s", e.msg);
    cr_expect_str_eq(s1[0], "created");
    cr_expect_str_eq(s2[0], "moved");
    lash_sched_statuses_free(s1, 1);
    lash_sched_statuses_free(s2, 1);
    int64_t t[8];
    cr_assert_eq(firings("cas", t, 8), 1);
    cr_assert_eq(t[0], fire);
}

Test(schedule, pause_stops_firings_and_resume_starts_again_from_now)
{
    up(NULL);
    add("p", "@every 1s", NULL);
    WORKER("w1", "--builtin", "noop");
    int64_t t[64];
    WAIT_UNTIL(firings("p", t, 64) >= 2, 10000);
    verb(LASH_SCHED_PAUSE, "p");
    int64_t paused = server_ms();
    lash_fx_sleep_ms(300);
    size_t before = firings("p", t, 64);
    lash_fx_sleep_ms(2500);
    cr_assert_eq(firings("p", t, 64), before, "a paused schedule fired");
    int64_t resumed = server_ms();
    verb(LASH_SCHED_RESUME, "p");
    WAIT_UNTIL(firings("p", t, 64) >= before + 2, 10000);
    size_t n = firings("p", t, 64);
    cr_assert_geq(n, before + 2);
    for (size_t i = 0; i < n; i++)
        cr_assert(t[i] <= paused || t[i] >= resumed,
                  "firing %lld falls in the paused time %lld..%lld", (long long)t[i],
                  (long long)paused, (long long)resumed);
}

Test(schedule, rm_stops_firings_and_keeps_the_processes_it_created)
{
    up(NULL);
    add("r", "@every 1s", NULL);
    WORKER("w1", "--builtin", "noop");
    int64_t t[64];
    WAIT_UNTIL(firings("r", t, 64) >= 2, 10000);
    verb(LASH_SCHED_RM, "r");
    lash_fx_sleep_ms(300);
    size_t n = firings("r", t, 64);
    lash_fx_sleep_ms(2000);
    cr_assert_eq(firings("r", t, 64), n, "a removed schedule fired");
    cr_assert_geq(n, 2);
    cr_assert_eq(cmd_int("EXISTS lash:{default}:sched:r"), 0);
    cr_assert_eq(cmd_int("ZCARD lash:{default}:schedules"), 0);
    bool found = true;
    lash_err e;
    cr_assert_eq(lash_sched_do(C, "default", LASH_SCHED_RM, "r", &found, &e), LASH_OK);
    cr_assert_not(found);
}

Test(schedule, catch_up_after_downtime_runs_only_the_latest_missed_firing)
{
    up(NULL);
    add("c", "@every 1s", NULL);
    int64_t added = server_ms();
    lash_fx_sleep_ms(5200); /* no worker: five firings fall due */
    int64_t start = server_ms();
    WORKER("w1", "--builtin", "noop");
    int64_t t[64];
    WAIT_UNTIL(firings("c", t, 64) >= 3, 10000);
    size_t n = firings("c", t, 64);
    /* Of the firings that fell due while no worker ran (added .. start), only
     * the latest ran: none before start - 1 s (a second may tick over before
     * the worker's first look, which then is the latest). */
    cr_assert_geq(t[0], start - 1000, "an older missed firing ran: %lld (start %lld)",
                  (long long)t[0], (long long)start);
    cr_assert_geq(t[0], added + 4000);
    cr_assert_geq(sched_field("c", "skipped"), 3);
    for (size_t i = 1; i < n; i++)
        cr_assert_eq(t[i] - t[i - 1], 1000, "after the catch-up, every second again");
}

Test(schedule, bad_specs_zones_and_names_are_refused_with_a_clear_error)
{
    up(NULL);
    static const struct {
        const char *name, *cron, *tz, *says;
    } bad[] = {
        {"x", "61 * * * *", NULL, "cron minute: 61 is outside 0-59"},
        {"x", "* * * *", NULL, "wants 5"},
        {"x", "@every 0s", NULL, "@every"},
        {"x", "* * * * *", "Mars/Base", "unknown time zone 'Mars/Base'"},
        {"x", "* * * * *", "../../etc/passwd", "time zone"},
        {"a@b", "* * * * *", NULL, "schedule name has byte 0x40"},
        {"x", "0 0 30 2 *", NULL, "never fires"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char errp[256];
        const char *argv[16] = {lash_fx_bin("lashctl"),
                                "--redis",
                                R.url,
                                "schedule",
                                "add",
                                bad[i].name,
                                "--cron",
                                bad[i].cron};
        int k = 8;
        if (bad[i].tz) argv[k++] = "--tz", argv[k++] = bad[i].tz;
        argv[k++] = "noop";
        argv[k] = NULL;
        cr_assert_eq(run("ctl", argv), 2, "%s %s accepted", bad[i].cron,
                     bad[i].tz ? bad[i].tz : "");
        path_in(errp, sizeof errp, "ctl.err");
        cr_assert(file_has(errp, bad[i].says), "'%s': no '%s' in its error", bad[i].cron,
                  bad[i].says);
    }
    /* The script refuses what lashctl would, for a caller that skips it. */
    const char *fn[] = {lash_fx_bin("lashctl"), "--redis", R.url, "functions", NULL};
    cr_assert_eq(run("fn", fn), 0);
    redisReply *r = redisCommand(lash_conn_redis(C),
                                 "FCALL lash_sched 1 lash:{default} add %s %s %s noop null 0",
                                 "* * * * *", "", "bad:name");
    cr_assert_not_null(r);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    cr_assert_not_null(strstr(r->str, "schedule name"), "%s", r->str);
    freeReplyObject(r);
    cr_assert_eq(cmd_int("EXISTS lash:{default}:schedules"), 0);
}

Test(schedule, the_cli_adds_lists_and_removes)
{
    up(NULL);
    const char *argv[] = {lash_fx_bin("lashctl"),
                          "--redis",
                          R.url,
                          "schedule",
                          "add",
                          "nightly",
                          "--cron",
                          "30 2 * * *",
                          "--tz",
                          "Europe/Paris",
                          "noop",
                          "--payload",
                          "{\"n\":1}",
                          NULL};
    cr_assert_eq(run("add", argv), 0);
    cr_assert_eq(run("add2", argv), 0); /* the same definition again: no change */
    char p[256];
    path_in(p, sizeof p, "add2.err");
    cr_assert(file_has(p, "nightly: exists"));
    const char *ls[] = {lash_fx_bin("lashctl"), "--redis", R.url, "schedule", "list", NULL};
    cr_assert_eq(run("ls", ls), 0);
    path_in(p, sizeof p, "ls.err");
    cr_assert(file_has(p, "Europe/Paris"));
    const char *rm[] = {
        lash_fx_bin("lashctl"), "--redis", R.url, "schedule", "rm", "nightly", NULL};
    cr_assert_eq(run("rm", rm), 0);
    cr_assert_eq(run("rm2", rm), 1);
}

Test(schedule, a_stored_spec_a_worker_cannot_compute_is_recorded_not_retried_in_a_loop)
{
    up(NULL);
    const char *fn[] = {lash_fx_bin("lashctl"), "--redis", R.url, "functions", NULL};
    cr_assert_eq(run("fn", fn), 0);
    /* redis-cli skips lashctl's checks: the script takes any one-line spec. */
    redisReply *r = redisCommand(lash_conn_redis(C),
                                 "FCALL lash_sched 1 lash:{default} add %s %s broken noop null 0",
                                 "61 * * * *", "");
    cr_assert(r && r->type == REDIS_REPLY_STRING, "%s", r && r->str ? r->str : "no reply");
    freeReplyObject(r);
    int64_t added = server_ms();
    WORKER("w1", "--builtin", "noop");
    WAIT_UNTIL(sched_field("broken", "next_ms") > added, 10000);
    redisReply *err = cmd("HGET lash:{default}:sched:broken last_error");
    cr_assert_eq(err->type, REDIS_REPLY_STRING);
    cr_assert_not_null(strstr(err->str, "cron minute: 61 is outside 0-59"), "%s", err->str);
    freeReplyObject(err);
    /* Looked at again a minute later, not in a loop. */
    cr_assert_geq(sched_field("broken", "next_ms"), added + 50000);
    int64_t t[4];
    cr_assert_eq(firings("broken", t, 4), 0);
}

Test(schedule, fire_answers_a_row_whose_times_do_not_hold_and_fires_the_rows_beside_it)
{
    up(NULL);
    add("good", "@every 1s", NULL);
    add("odd", "@every 1s", NULL);
    lash_sched_due d;
    lash_err e = {0};
    WAIT_UNTIL((lash_sched_peek(C, "default", &d, &e) == LASH_OK && d.n == 2 &&
                d.now_ms >= d.rows[0].next_ms + 1000 && d.now_ms >= d.rows[1].next_ms + 1000),
               5000);
    cr_assert_eq(d.n, 2);
    int64_t fire = d.now_ms / 1000 * 1000;
    lash_sched_firing f[2];
    for (int i = 0; i < 2; i++) {
        bool odd = strcmp(d.rows[i].name, "odd") == 0;
        f[i] = (lash_sched_firing){.name = d.rows[i].name,
                                   .expect_ms = d.rows[i].next_ms,
                                   .fire_ms = fire,
                                   .next_ms = odd ? fire : fire + 1000};
    }
    char **s = NULL;
    cr_assert_eq(lash_sched_fire(C, "default", f, 2, &s, &e), LASH_OK, "%s", e.msg);
    for (int i = 0; i < 2; i++) {
        if (strcmp(f[i].name, "odd") == 0)
            cr_expect(strncmp(s[i], "invalid:", 8) == 0, "odd: %s", s[i]);
        else
            cr_expect_str_eq(s[i], "created");
    }
    lash_sched_statuses_free(s, 2);
    int64_t t[4];
    cr_assert_eq(firings("odd", t, 4), 0);
    cr_assert_eq(firings("good", t, 4), 1);
}
