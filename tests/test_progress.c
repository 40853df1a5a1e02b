/* test_progress.c: progress.lua through the registry (lash_report_progress):
 * who may report, what a report writes (row fields, the events stream, the
 * progress channel), and what the script refuses before its first write. The
 * worker's side (fd 3, rate limits) is tests/test_worker_progress.c and
 * tests/test_turn.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keys.h"
#include "registry/inspect.h"
#include "rfx.h"

TestSuite(progress, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

static int report(const char *q, const char *id, const char *owner, int64_t fence, int percent,
                  const char *text)
{
    lash_progress_report r = {{id, owner, fence}, percent, text, strlen(text)};
    int st = -1;
    lash_err e = {0};
    cr_assert_eq(lash_report_progress(C, q, &r, 1, &st, &e), LASH_OK, "%s", e.msg);
    return st;
}

Test(progress, the_holder_of_a_running_row_records_it_on_the_row)
{
    submit_ok("q", job("a", "k", "{}"));
    int64_t f = claim_one("q", "w1", "a", TTL_LONG);
    long long before = server_ms();
    cr_assert_eq(report("q", "a", "w1", f, 40, "resized 4 of 10"), LASH_PROGRESS_RECORDED);
    expect_field("q", "a", "progress", "40");
    expect_field("q", "a", "progress_text", "resized 4 of 10");
    char *ms = hget("q", "a", "progress_ms");
    cr_assert_not_null(ms);
    cr_assert_geq(atoll(ms), before);
    free(ms);
    lash_record r = get("q", "a");
    cr_assert_eq(r.progress, 40);
    cr_assert_str_eq(r.progress_text, "resized 4 of 10");
    cr_assert_gt(r.progress_ms, 0);
    lash_record_free(&r);
    /* The next report replaces it; the row is still running, its lease untouched. */
    cr_assert_eq(report("q", "a", "w1", f, 100, ""), LASH_PROGRESS_RECORDED);
    expect_field("q", "a", "progress", "100");
    expect_field("q", "a", "progress_text", "");
    expect_state("q", "a", "running");
}

/* A stale owner's progress is refused like its completion: a lease that ran
 * out and was claimed again, a wrong owner, a row that ended. */
Test(progress, a_stale_owner_is_refused_and_changes_nothing)
{
    submit_ok("q", job("a", "k", "{}"));
    int64_t f1 = claim_one("q", "w1", "a", 150);
    cr_assert_eq(report("q", "a", "w1", f1, 10, "first"), LASH_PROGRESS_RECORDED);
    lash_fx_sleep_ms(250); /* the lease runs out: w2 claims it again */
    int64_t f2 = claim_one("q", "w2", "a", TTL_LONG);
    cr_assert_gt(f2, f1);
    cr_assert_eq(report("q", "a", "w1", f1, 90, "stale"), LASH_PROGRESS_STALE);
    cr_assert_eq(report("q", "a", "w2", f1, 90, "old fence"), LASH_PROGRESS_STALE);
    cr_assert_eq(report("q", "a", "w1", f2, 90, "wrong owner"), LASH_PROGRESS_STALE);
    expect_field("q", "a", "progress", "10");
    expect_field("q", "a", "progress_text", "first");
    cr_assert_eq(report("q", "a", "w2", f2, 50, "w2"), LASH_PROGRESS_RECORDED);
    cr_assert_eq(complete1("q", "a", "w2", f2, LASH_OUT_OK, "ok", 0), LASH_DONE_RECORDED);
    cr_assert_eq(report("q", "a", "w2", f2, 99, "after the end"), LASH_PROGRESS_STALE);
    expect_field("q", "a", "progress", "50");
    expect_state("q", "a", "completed");
    /* No row at all, and a pending one, are stale too. */
    cr_assert_eq(report("q", "nope", "w2", f2, 1, ""), LASH_PROGRESS_STALE);
    submit_ok("q", job("p", "k", "{}"));
    cr_assert_eq(report("q", "p", "w2", 1, 1, ""), LASH_PROGRESS_STALE);
    char *v = hget("q", "p", "progress");
    cr_assert_null(v);
}

Test(progress, a_report_is_announced_on_the_progress_channel)
{
    submit_ok("q", job("a", "k", "{}"));
    int64_t f = claim_one("q", "w1", "a", TTL_LONG);
    char chan[LASH_KEY_MAX];
    redisContext *s = subscriber("SSUBSCRIBE", lash_key(chan, "q", LASH_CHAN_PROGRESS));
    cr_assert_eq(report("q", "a", "w1", f, 7, "seven of many"), LASH_PROGRESS_RECORDED);
    cr_assert_eq(report("q", "a", "w9", f, 8, "stale: never announced"), LASH_PROGRESS_STALE);
    cr_assert_eq(report("q", "a", "w1", f, 9, ""), LASH_PROGRESS_RECORDED);
    const char *want[] = {"a 7 seven of many", "a 9 "};
    for (int i = 0; i < 2; i++)
        expect_message(s, "smessage", chan, want[i]);
    redisFree(s);
}

/* Progress events are routine: logged at the event level `all` only. */
Test(progress, a_report_is_an_event_at_level_all)
{
    submit_ok("q", job("a", "k", "{}"));
    int64_t f = claim_one("q", "w1", "a", TTL_LONG);
    cr_assert_eq(report("q", "a", "w1", f, 5, "quiet"), LASH_PROGRESS_RECORDED);
    lash_events ev = {0};
    lash_err e = {0};
    cr_assert_eq(lash_events_of(C, "q", "a", 100, &ev, &e), LASH_OK, "%s", e.msg);
    for (size_t i = 0; i < ev.n; i++)
        cr_assert_str_neq(lash_event_field(&ev.ev[i], "event"), "progress",
                          "logged at the default level");
    lash_events_free(&ev);
    lash_fx_events_all(C, "q");
    cr_assert_eq(report("q", "a", "w1", f, 6, "loud"), LASH_PROGRESS_RECORDED);
    cr_assert_eq(lash_events_of(C, "q", "a", 100, &ev, &e), LASH_OK, "%s", e.msg);
    int n = 0;
    for (size_t i = 0; i < ev.n; i++)
        if (strcmp(lash_event_field(&ev.ev[i], "event"), "progress") == 0) {
            n++;
            cr_expect_str_eq(lash_event_field(&ev.ev[i], "progress"), "6");
            cr_expect_str_eq(lash_event_field(&ev.ev[i], "text"), "loud");
        }
    cr_assert_eq(n, 1);
    lash_events_free(&ev);
}

/* Bad arguments (from redis-cli, say) fail the whole call before any write. */
Test(progress, bad_arguments_are_refused_before_any_write)
{
    submit_ok("q", job("a", "k", "{}"));
    int64_t f = claim_one("q", "w1", "a", TTL_LONG);
    char tok[64];
    snprintf(tok, sizeof tok, "w1:%lld", (long long)f);
    const char *fn = "lash_progress";
    lash_err fe = {0};
    cr_assert_eq(lash_functions_ensure(C, &fe), LASH_OK, "%s", fe.msg); /* lashctl functions */
    redisReply *r = cmd("FCALL %s 1 lash:{q} a %s 101 x", fn, tok);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    cr_expect(strstr(r->str, "0..100"), "%s", r->str);
    freeReplyObject(r);
    r = cmd("FCALL %s 1 lash:{q} a %s 5 %b", fn, tok, "bell\a", (size_t)5);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    cr_expect(strstr(r->str, "control"), "%s", r->str);
    freeReplyObject(r);
    char big[LASH_PROGRESS_TEXT_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    /* A good row first, then a bad one: neither is written. */
    r = cmd("FCALL %s 1 lash:{q} a %s 5 ok a %s 6 %s", fn, tok, tok, big);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    cr_expect(strstr(r->str, "bytes"), "%s", r->str);
    freeReplyObject(r);
    r = cmd("FCALL %s 1 lash:{q} a %s 5", fn, tok);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    char *v = hget("q", "a", "progress");
    cr_assert_null(v, "half applied: progress %s", v);
    /* And the C API names a bad report before sending anything. */
    lash_progress_report bad = {{"a", "w1", f}, 5, "tab\there", 8};
    int st = -1;
    lash_err e = {0};
    cr_assert_eq(lash_report_progress(C, "q", &bad, 1, &st, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "control"), "%s", e.msg);
    /* redis-cli's recipe works. */
    r = cmd("FCALL %s 1 lash:{q} a %s 33 %s", fn, tok, "from-redis-cli");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->element[0]->integer, 1);
    freeReplyObject(r);
    expect_field("q", "a", "progress", "33");
}
