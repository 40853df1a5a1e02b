/* test_inspect.c: the read-side registry operations (registry/inspect.h)
 * against a private redis-server: what they return, and that rows lash did
 * not write are skipped rather than trusted. */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fixture.h"
#include "registry/inspect.h"

static lash_fx_redis R;
static lash_conn *C;

static void up(void)
{
    lash_fx_redis_start(&R, NULL);
    C = lash_fx_connect(&R);
}

static void down(void)
{
    lash_close(C);
    lash_fx_redis_stop(&R);
}

TestSuite(inspect, .init = up, .fini = down);

static void raw(const char *fmt, const char *a, const char *b, const char *c)
{
    redisReply *r = redisCommand(lash_conn_redis(C), fmt, a, b, c);
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "%s: %s", fmt, r ? r->str : "no reply");
    freeReplyObject(r);
}

static void submit(const char *q, const char *id, int64_t delay_ms)
{
    lash_submission s = {.id = id, .kind = "k", .delay_ms = delay_ms};
    lash_submitted out;
    lash_err e = {0};
    cr_assert_eq(lash_submit(C, q, &s, 1, &out, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(out.status, LASH_SUB_CREATED);
}

Test(inspect, server_time_is_the_redis_clock)
{
    int64_t now = 0;
    lash_err e = {0};
    cr_assert_eq(lash_server_ms(C, "q", &now, &e), LASH_OK, "%s", e.msg);
    lash_stats s = lash_fx_stats(C, "q");
    cr_assert(now > 1600000000000LL && llabs(s.now_ms - now) < 5000, "%lld vs %lld", (long long)now,
              (long long)s.now_ms);
}

Test(inspect, workers_come_newest_first_and_junk_is_skipped)
{
    raw("ZADD lash:{q}:workers 1000 %s 3000 %s 2000 %s", "w-old", "w-new", "w-mid");
    /* Not a worker id (a space), and a score Redis stores as a fraction. */
    raw("ZADD lash:{q}:workers 5 %s 2500.5 %s%s", "bad id", "w-frac", "");
    lash_worker_seen *w;
    size_t n;
    int64_t now;
    lash_err e = {0};
    cr_assert_eq(lash_read_workers(C, "q", 0, &w, &n, &now, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(w[0].id, "w-new");
    cr_assert_eq(w[0].seen_ms, 3000);
    cr_assert_str_eq(w[1].id, "w-mid");
    cr_assert_str_eq(w[2].id, "w-old");
    lash_workers_free(w, n);
    cr_assert_eq(lash_read_workers(C, "q", 1, &w, &n, &now, &e), LASH_OK);
    cr_assert_eq(n, 1);
    lash_workers_free(w, n);
}

Test(inspect, events_newest_come_oldest_first)
{
    lash_fx_events_all(C, "q");
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "p%d", i);
        submit("q", id, 0);
    }
    lash_events ev;
    lash_err e = {0};
    cr_assert_eq(lash_events_newest(C, "q", 3, &ev, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(ev.n, 3);
    cr_assert_str_eq(lash_event_field(&ev.ev[0], "id"), "p2");
    cr_assert_str_eq(lash_event_field(&ev.ev[2], "id"), "p4");
    cr_assert_str_eq(lash_event_field(&ev.ev[2], "event"), "submitted");
    char after[64];
    snprintf(after, sizeof after, "%s", ev.ev[1].sid);
    lash_events_free(&ev);
    /* After p3's entry: p4 only; then nothing within 50 ms. */
    cr_assert_eq(lash_events_after(C, "q", after, 100, 0, &ev, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(ev.n, 1);
    cr_assert_str_eq(lash_event_field(&ev.ev[0], "id"), "p4");
    snprintf(after, sizeof after, "%s", ev.ev[0].sid);
    lash_events_free(&ev);
    cr_assert_eq(lash_events_after(C, "q", after, 100, 50, &ev, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(ev.n, 0);
    cr_assert_eq(lash_events_after(C, "q", "1-x", 100, 0, &ev, &e), LASH_EINVAL);
}

Test(inspect, events_of_one_process_span_pages)
{
    /* 2,500 entries for others, with x's three spread among them. */
    for (int i = 0; i < 2500; i++) {
        char id[16];
        snprintf(id, sizeof id, "o%d", i);
        raw("XADD lash:{q}:events * event %s id %s", "submitted", id, "");
        if (i == 10 || i == 1200 || i == 2400)
            raw("XADD lash:{q}:events * event %s id %s", "x-ev", "x", "");
    }
    lash_events ev;
    lash_err e = {0};
    cr_assert_eq(lash_events_of(C, "q", "x", 10, &ev, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(ev.n, 3);
    cr_assert(strcmp(ev.ev[0].sid, ev.ev[2].sid) < 0 || strlen(ev.ev[0].sid) < strlen(ev.ev[2].sid),
              "oldest first");
    lash_events_free(&ev);
    cr_assert_eq(lash_events_of(C, "q", "x", 2, &ev, &e), LASH_OK);
    cr_assert_eq(ev.n, 2, "the newest two");
    lash_events_free(&ev);
}

Test(inspect, oldest_due_is_only_an_eligible_row)
{
    char id[LASH_ID_MAX + 1];
    int64_t now, score = 0;
    lash_err e = {0};
    cr_assert_eq(lash_server_ms(C, "q", &now, &e), LASH_OK);
    submit("q", "later", 60000);
    cr_assert_eq(lash_oldest_due(C, "q", now, id, sizeof id, &score, &e), LASH_OK, "%s", e.msg);
    cr_assert_str_eq(id, "");
    submit("q", "now", 0);
    cr_assert_eq(lash_server_ms(C, "q", &now, &e), LASH_OK);
    cr_assert_eq(lash_oldest_due(C, "q", now, id, sizeof id, &score, &e), LASH_OK);
    cr_assert_str_eq(id, "now");
    cr_assert(score <= now);
    lash_stats s = lash_fx_stats(C, "q");
    cr_assert_eq(s.eligible, 1, "one of two due rows is eligible");
    cr_assert_eq(s.due, 2);
}

/* Publishes ids on lash:{q}:finished with how (PUBLISH or SPUBLISH) and
 * expects sub to hear exactly them. */
static void heard(lash_conn *sub, const char *how, const char *ids, const char *why)
{
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s lash:{q}:finished %%s", how);
    raw(fmt, ids, "", "");
    lash_err e = {0};
    char *got = NULL;
    cr_assert_eq(lash_finished_next(sub, 2000, &got, &e), LASH_OK, "%s", e.msg);
    cr_assert_str_eq(got, ids, "%s", why);
    free(got);
}

Test(inspect, finished_messages_arrive_and_silence_times_out)
{
    lash_conn *sub = lash_fx_connect(&R);
    lash_err e = {0};
    char *ids = NULL;
    cr_assert_eq(lash_finished_subscribe(sub, "q", &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(lash_finished_next(sub, 30, &ids, &e), LASH_OK);
    cr_assert_null(ids);
    heard(sub, "PUBLISH", "p-1", "one id");
    heard(sub, "PUBLISH", "p-2 p-3", "one message names every id a call ended");
    lash_close(sub);
}

Test(inspect, finished_messages_published_sharded_arrive_as_well)
{
    lash_conn *sub = lash_fx_connect(&R);
    lash_err e = {0};
    cr_assert_eq(lash_finished_subscribe(sub, "q", &e), LASH_OK, "%s", e.msg);
    heard(sub, "SPUBLISH", "p-4 p-5", "how the scripts publish");
    heard(sub, "PUBLISH", "p-7", "a hand-made PUBLISH is still heard beside them");
    lash_close(sub);
}

Test(inspect, discovery_finds_every_queue_with_stats_and_only_those)
{
    submit("alpha", "a", 0);
    submit("beta.2", "b", 0);
    raw("HSET %s pending %s%s", "lash:{bad name}:stats", "1", "");
    raw("SET lash:{gamma}:stats-not %s%s%s", "1", "", "");
    lash_queue_list l;
    lash_err e = {0};
    cr_assert_eq(lash_discover_queues(C, 0, &l, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(l.n, 2);
    cr_assert_str_eq(l.names[0], "alpha");
    cr_assert_str_eq(l.names[1], "beta.2");
    lash_queue_list_free(&l);
}

Test(inspect, due_and_done_counts_follow_the_rows)
{
    int64_t due = -1, done = -1;
    lash_err e = {0};
    cr_assert_eq(lash_due_count(C, "q", &due, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(lash_done_count(C, "q", &done, &e), LASH_OK, "%s", e.msg);
    cr_assert(due == 0 && done == 0);
    submit("q", "a", 0);
    submit("q", "b", 0);
    bool requested;
    cr_assert_eq(lash_cancel(C, "q", "b", NULL, &requested, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(lash_due_count(C, "q", &due, &e), LASH_OK);
    cr_assert_eq(lash_done_count(C, "q", &done, &e), LASH_OK);
    cr_assert(due == 1 && done == 1, "due %lld done %lld", (long long)due, (long long)done);
    /* A key of another type is named, not read as a count. */
    raw("SET lash:{bad}:due %s%s%s", "x", "", "");
    cr_assert_eq(lash_due_count(C, "bad", &due, &e), LASH_EREDIS);
    cr_assert_eq(lash_due_count(C, "no queue", &due, &e), LASH_EINVAL);
}
