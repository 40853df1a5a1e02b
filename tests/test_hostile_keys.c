/* test_hostile_keys.c: keys in a queue's space that lash did not write.
 *
 * Redis does not roll a script back: a command that fails half way leaves the
 * writes before it. So every script reads and checks the keys it was not sure
 * of before its first write. A row key or lease key of another type makes that
 * row dropped, refused or repaired by name, never an error that half-applies a
 * batch or stalls the queue; a queue-wide key of another type fails the call
 * before anything was written. Rows whose fields lash did not write (a missing
 * kind, a junk state or attempt, an id over the bound) are failed or dropped by
 * name, one row at a time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rfx.h"

TestSuite(hostile, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

/* True when some claim note names id and contains part. */
static bool noted(const lash_claim_batch *b, const char *id, const char *part)
{
    for (size_t i = 0; i < b->bad; i++)
        if (strncmp(b->notes[i], id, strlen(id)) == 0 && strstr(b->notes[i], part)) return true;
    return false;
}

/* ---- row keys ---------------------------------------------------------------------- */

/* The reviewer's case: the claim leased g1 and g2, then hit WRONGTYPE on evil
 * and failed; the worker never got g1/g2 and every later claim failed too. */
Test(hostile, claim_drops_a_row_key_of_another_type_and_claims_the_rest)
{
    submit_ok("t", job("g1", "k", "{}"));
    submit_ok("t", job("g2", "k", "{}"));
    cmd_ok("SET lash:{t}:p:evil junk");
    cmd_ok("ZADD lash:{t}:due %lld evil", zscore("t", "due", "g2") + 1);
    lash_claim_batch b = claim("t", "W", 10, TTL_LONG);
    cr_expect_eq(b.n, 2, "claimed %zu rows, want g1 and g2", b.n);
    cr_expect_eq(b.bad, 1);
    cr_expect(noted(&b, "evil", "string"), "no note names evil and its type");
    lash_claim_batch_free(&b);
    cr_expect_eq(zscore("t", "due", "evil"), -1, "evil is still due");
    redisReply *r = cmd("GET lash:{t}:p:evil");
    cr_expect(r->type == REDIS_REPLY_STRING && strcmp(r->str, "junk") == 0,
              "a key lash did not write is reported, not destroyed");
    freeReplyObject(r);
    b = claim("t", "W", 10, TTL_LONG);
    cr_expect_eq(b.n, 0);
    cr_expect_eq(b.bad, 0, "the next claim has nothing left to trip on");
    lash_claim_batch_free(&b);
}

/* The reviewer's case: a1 became a row without a due entry, "exists" on
 * resubmit, and never ran. */
Test(hostile, submit_refuses_an_id_whose_key_has_another_type)
{
    cmd_ok("SET lash:{t}:p:a2 junk");
    lash_submission s[] = {job("a1", "k", "{}"), job("a2", "k", "{}"), job("a3", "k", "{}")};
    lash_submitted out[3];
    lash_err e = {0};
    cr_assert_eq(lash_submit(C, "t", s, 3, out, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(out[0].status, LASH_SUB_CREATED);
    cr_expect_eq(out[1].status, LASH_SUB_INVALID);
    cr_expect(strstr(out[1].msg, "string"), "the refusal names the key's type: %s", out[1].msg);
    cr_expect_eq(out[2].status, LASH_SUB_CREATED);
    cr_expect_geq(zscore("t", "due", "a1"), 0, "a1 is due");
    cr_expect_geq(zscore("t", "due", "a3"), 0, "a3 is due");
    cr_expect_eq(zscore("t", "due", "a2"), -1);
    lash_claim_batch b = claim("t", "W", 10, TTL_LONG);
    cr_expect_eq(b.n, 2);
    lash_claim_batch_free(&b);
    lash_stats st = stats("t");
    cr_expect_eq(st.total_submitted, 2);
    cr_expect_eq(st.count[LASH_RUNNING], 2);
}

/* ---- lease keys ---------------------------------------------------------------------- */

/* Lash writes leases as strings with an expiry: a hash there is junk, and the
 * row behind it must not wait on it. */
Test(hostile, a_lease_key_of_another_type_is_replaced_and_reported)
{
    submit_ok("lk", job("l1", "k", "{}"));
    cmd_ok("HSET lash:{lk}:lease:l1 junk 1");
    lash_claim_batch b = claim("lk", "W", 10, TTL_LONG);
    cr_expect_eq(b.n, 1, "l1 is claimed at once");
    cr_expect(noted(&b, "l1", "lease"), "no note names l1's lease");
    lash_claim_batch_free(&b);
    redisReply *r = cmd("TYPE lash:{lk}:lease:l1");
    cr_expect_str_eq(r->str, "string");
    freeReplyObject(r);
}

/* A string lease with no expiry beside a pending row (set by hand) would hold
 * the row forever: it gets an expiry, and the claim says so by name. */
Test(hostile, a_lease_without_expiry_is_given_one_and_reported)
{
    submit_ok("lk", job("l2", "k", "{}"));
    cmd_ok("SET lash:{lk}:lease:l2 someone:7");
    lash_claim_batch b = claim("lk", "W", 10, 500);
    cr_expect_eq(b.n, 0);
    cr_expect(noted(&b, "l2", "expiry"), "no note names l2's lease without expiry");
    lash_claim_batch_free(&b);
    cr_expect_gt(cmd_int("PTTL lash:{lk}:lease:l2"), 0);
    b = claim_within("lk", "W", 10, TTL_LONG, 5000);
    cr_expect_eq(b.n, 1, "l2 runs once the lease it was given has run out");
    lash_claim_batch_free(&b);
}

/* One bad row key in a batch must not fail the other rows' renew, complete or
 * release: each row answers for itself. */
Test(hostile, renew_complete_and_release_answer_per_row_past_a_junk_row)
{
    submit_ok("t", job("x", "k", "{}"));
    submit_ok("t", job("y", "k", "{}"));
    submit_ok("t", job("z", "k", "{}"));
    lash_claim_batch b = claim("t", "W", 10, TTL_LONG);
    cr_assert_eq(b.n, 3);
    int64_t fx = 0, fy = 0, fz = 0;
    for (size_t i = 0; i < b.n; i++) {
        if (!strcmp(b.rows[i].id, "x")) fx = b.rows[i].fence;
        if (!strcmp(b.rows[i].id, "y")) fy = b.rows[i].fence;
        if (!strcmp(b.rows[i].id, "z")) fz = b.rows[i].fence;
    }
    lash_claim_batch_free(&b);
    cmd_ok("DEL lash:{t}:p:x");
    cmd_ok("RPUSH lash:{t}:p:x junk");

    lash_lease l[] = {{"x", "W", fx}, {"y", "W", fy}};
    int st[3] = {-1, -1, -1};
    lash_err e = {0};
    cr_assert_eq(lash_renew(C, "t", TTL_LONG, l, 2, st, &e), LASH_OK, "renew: %s", e.msg);
    cr_expect_eq(st[0], LASH_RENEW_LOST);
    cr_expect_eq(st[1], LASH_RENEW_OK);

    lash_completion c[] = {{{"x", "W", fx}, LASH_OUT_OK, "r", 1, 0},
                           {{"y", "W", fy}, LASH_OUT_OK, "r", 1, 0}};
    cr_assert_eq(lash_complete(C, "t", c, 2, st, &e), LASH_OK, "complete: %s", e.msg);
    cr_expect_eq(st[0], LASH_DONE_STALE);
    cr_expect_eq(st[1], LASH_DONE_RECORDED);
    expect_state("t", "y", "completed");

    lash_lease r[] = {{"x", "W", fx}, {"z", "W", fz}};
    cr_assert_eq(lash_release(C, "t", r, NULL, 2, st, &e), LASH_OK, "release: %s", e.msg);
    cr_expect_eq(st[0], 0);
    cr_expect_eq(st[1], 1);
    expect_state("t", "z", "pending");
}

/* ---- queue-wide keys -------------------------------------------------------------- */

/* Writes junk at lash:{q}:<name> on a fresh queue. */
static void junk(const char *q, const char *name)
{
    cmd_ok("SET lash:{%s}:%s junk", q, name);
}

static void expect_refused_by_name(lash_status st, const lash_err *e, const char *q,
                                   const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "lash:{%s}:%s", q, name);
    cr_expect_eq(st, LASH_EREDIS, "%s: %s", key, e->msg);
    cr_expect(strstr(e->msg, key), "the error names %s: %s", key, e->msg);
}

/* The state keys (due, done, stats) are checked before a call's first write:
 * one of another type fails the call by name, and nothing is written. */
Test(hostile, submit_with_a_queue_key_of_another_type_writes_nothing)
{
    static const char *const names[] = {"due", "done", "stats"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char q[16];
        snprintf(q, sizeof q, "s%zu", i);
        junk(q, names[i]);
        lash_submission s = job("a1", "k", "{}");
        lash_submitted out;
        lash_err e = {0};
        expect_refused_by_name(lash_submit(C, q, &s, 1, &out, &e), &e, q, names[i]);
        cr_expect_eq(cmd_int("EXISTS lash:{%s}:p:a1", q), 0, "%s: a row was written", names[i]);
        char pat[64];
        snprintf(pat, sizeof pat, "lash:{%s}:*", q);
        cr_expect_eq(count_keys(pat), 1, "%s: only the junk key exists", names[i]);
    }
}

Test(hostile, claim_with_a_queue_key_of_another_type_writes_nothing)
{
    static const char *const names[] = {"done", "stats"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char q[16];
        snprintf(q, sizeof q, "c%zu", i);
        submit_ok(q, job("a1", "k", "{}"));
        long long due = zscore(q, "due", "a1");
        junk(q, names[i]);
        lash_claim_batch b;
        lash_err e = {0};
        expect_refused_by_name(lash_claim(C, q, "W", 10, TTL_LONG, KEEP_ALL, 0, -1, &b, &e), &e, q,
                               names[i]);
        char *state = hget(q, "a1", "state");
        cr_expect_str_eq(state, "pending", "%s: the row moved", names[i]);
        free(state);
        cr_expect_eq(cmd_int("EXISTS lash:{%s}:lease:a1", q), 0, "%s: a lease was taken", names[i]);
        cr_expect_eq(zscore(q, "due", "a1"), due, "%s: the row was rescored", names[i]);
    }
}

Test(hostile, complete_with_a_queue_key_of_another_type_writes_nothing)
{
    static const char *const names[] = {"due", "done", "stats"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char q[16];
        snprintf(q, sizeof q, "d%zu", i);
        submit_ok(q, job("a1", "k", "{}"));
        int64_t f = claim_one(q, "W", "a1", TTL_LONG);
        cmd_ok("DEL lash:{%s}:%s", q, names[i]);
        junk(q, names[i]);
        lash_completion c = {{"a1", "W", f}, LASH_OUT_OK, "r", 1, 0};
        int st = -1;
        lash_err e = {0};
        expect_refused_by_name(lash_complete(C, q, &c, 1, &st, &e), &e, q, names[i]);
        char *state = hget(q, "a1", "state");
        cr_expect_str_eq(state, "running", "%s: the row moved", names[i]);
        free(state);
        cr_expect_eq(cmd_int("EXISTS lash:{%s}:lease:a1", q), 1, "%s: the lease went", names[i]);
    }
}

/* The log keys (events, workers) are written at best: one of another type
 * loses its entries, never the call; a claim names it in a note. */
Test(hostile, a_junk_events_key_loses_the_log_not_the_work)
{
    lash_fx_events_all(C, "ev");
    junk("ev", "events");
    submit_ok("ev", job("a1", "k", "{}"));
    lash_claim_batch b = claim("ev", "W", 10, TTL_LONG);
    cr_assert_eq(b.n, 1, "a1 is claimed");
    cr_expect(noted(&b, "lash:{ev}:events", "not a stream"), "no note names the events key");
    lash_completion c = {{"a1", "W", b.rows[0].fence}, LASH_OUT_OK, "r", 1, 0};
    lash_claim_batch_free(&b);
    int st = -1;
    lash_err e = {0};
    cr_assert_eq(lash_complete(C, "ev", &c, 1, &st, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(st, LASH_DONE_RECORDED);
    expect_state("ev", "a1", "completed");
    redisReply *r = cmd("GET lash:{ev}:events");
    cr_expect_str_eq(r->str, "junk", "the junk is left as it was");
    freeReplyObject(r);
}

Test(hostile, a_junk_workers_key_loses_the_heartbeat_not_the_claim)
{
    junk("wk", "workers");
    submit_ok("wk", job("a1", "k", "{}"));
    lash_claim_batch b = claim("wk", "W", 10, TTL_LONG);
    cr_expect_eq(b.n, 1, "a1 is claimed");
    cr_expect(noted(&b, "W", "lash:{wk}:workers is not a sorted set"),
              "no note names the workers key");
    lash_claim_batch_free(&b);
    redisReply *r = cmd("GET lash:{wk}:workers");
    cr_expect_str_eq(r->str, "junk", "the junk is left as it was");
    freeReplyObject(r);
}

/* ---- rows with fields lash did not write ----------------------------------------------- */

Test(hostile, injected_bad_rows_never_crash_a_call)
{
    static const char *const ids[] = {"nokind",   "badattempt", "junkstate",   "nostate",
                                      "vanished", "badbackoff", "longbackoff", "good"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        submit_ok("q", job(ids[i], "k", "{\"n\":1}"));
    cmd_ok("HDEL lash:{q}:p:nokind kind");
    cmd_ok("HSET lash:{q}:p:badattempt attempt two");
    cmd_ok("HSET lash:{q}:p:junkstate state zombie");
    cmd_ok("HDEL lash:{q}:p:nostate state");
    cmd_ok("DEL lash:{q}:p:vanished");
    cmd_ok("HSET lash:{q}:p:badbackoff backoff whenever");
    cmd_ok("HSET lash:{q}:p:longbackoff backoff exp:1000000000000000000000000000:"
           "2000000000000000000000000000000000000000000000000000000");

    /* Reads first: they report, they do not crash. */
    lash_record r;
    lash_err e = {0};
    cr_expect_eq(lash_get(C, "q", "nokind", &r, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "kind"), "%s", e.msg);
    lash_record_free(&r);
    cr_expect_eq(lash_get(C, "q", "badattempt", &r, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "attempt"), "%s", e.msg);
    lash_record_free(&r);
    cr_expect_eq(lash_get(C, "q", "junkstate", &r, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "state"), "%s", e.msg);
    lash_record_free(&r);
    cr_expect_eq(lash_get(C, "q", "vanished", &r, &e), LASH_ENOTFOUND);
    lash_record_free(&r);
    lash_list_page page;
    cr_assert_eq(lash_list(C, "q", NULL, "0", 100, &page, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(page.n, 8);
    lash_list_page_free(&page);

    lash_claim_batch b = claim("q", "W", 100, TTL_LONG);
    cr_expect_eq(b.seen, 8);
    cr_expect_eq(b.bad, 7, "bad %zu: six failed, and the vanished id dropped", b.bad);
    cr_assert_eq(b.n, 1, "claimed %zu", b.n);
    cr_expect_str_eq(b.rows[0].id, "good");
    lash_claim_batch_free(&b);

    static const char *const named[][2] = {
        {"nokind", "'kind'"},   {"badattempt", "'attempt'"}, {"junkstate", "'state'"},
        {"nostate", "'state'"}, {"badbackoff", "'backoff'"}, {"longbackoff", "'backoff'"},
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        expect_state("q", named[i][0], "failed");
        expect_field_has("q", named[i][0], "error", named[i][1]);
        cr_expect_eq(zscore("q", "due", named[i][0]), -1, "%s still due", named[i][0]);
        cr_expect(zscore("q", "done", named[i][0]) > 0, "%s not done", named[i][0]);
    }
    cr_expect_eq(zscore("q", "due", "vanished"), -1);
    cr_expect_eq(cmd_int("EXISTS lash:{q}:p:vanished"), 0);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), 1); /* only "good" */

    /* Again: nothing left to trip on. */
    b = claim("q", "W", 100, TTL_LONG);
    cr_expect_eq(b.n, 0);
    cr_expect_eq(b.bad, 0);
    lash_claim_batch_free(&b);
    cr_assert_eq(lash_list(C, "q", NULL, "0", 100, &page, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(page.n, 7);
    lash_list_page_free(&page);
    lash_stats st = stats("q");
    cr_expect_eq(st.total_failed, 6);
    cr_expect_eq(st.count[LASH_RUNNING], 1);
}

/* An id no claimer could hold (made by hand, over LASH_ID_MAX) fails that row,
 * not the whole claim. */
Test(hostile, hand_made_row_with_an_overlong_id)
{
    char id[LASH_ID_MAX + 40];
    memset(id, 'x', sizeof id - 1);
    id[sizeof id - 1] = 0;
    cmd_ok("HSET lash:{q}:p:%s kind k payload {} state pending max_attempts 3 created_ms 1", id);
    cmd_ok("ZADD lash:{q}:due 0 %s", id);
    submit_ok("q", job("good", "k", "{}"));
    lash_claim_batch b = claim("q", "W", 10, TTL_LONG);
    cr_expect_eq(b.bad, 1);
    cr_assert_eq(b.n, 1);
    cr_expect_str_eq(b.rows[0].id, "good");
    lash_claim_batch_free(&b);
    expect_state("q", id, "failed");
    expect_field_has("q", id, "error", "id");
    cr_expect_eq(zscore("q", "due", id), -1);
    lash_list_page p;
    lash_err e = {0};
    cr_expect_eq(lash_list(C, "q", NULL, "0", 10, &p, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(p.n, 2);
    lash_list_page_free(&p);
}

Test(hostile, bad_row_with_an_expired_lease_fails)
{
    submit_ok("q", job("x", "k", "{}"));
    claim_one("q", "A", "x", 150);
    cmd_ok("HSET lash:{q}:p:x fence -3");
    lash_fx_sleep_ms(250);
    lash_claim_batch b = claim("q", "B", 10, TTL_LONG);
    cr_expect_eq(b.n, 0);
    cr_expect_eq(b.bad, 1);
    lash_claim_batch_free(&b);
    expect_state("q", "x", "failed");
    expect_field_has("q", "x", "error", "'fence'");
    lash_stats st = stats("q");
    cr_expect_eq(st.count[LASH_RUNNING], 0);
    cr_expect_eq(st.count[LASH_FAILED], 1);
}

/* The holder is the token the row names; the lease key only keeps time. A
 * lease key of another type beside a held row does not take it from its
 * holder (and the next claim that meets it repairs it). */
Test(hostile, a_junk_lease_key_does_not_unseat_the_holder_the_row_names)
{
    submit_ok("t", job("x", "k", "{}"));
    int64_t f = claim_one("t", "W", "x", TTL_LONG);
    cmd_ok("DEL lash:{t}:lease:x");
    cmd_ok("HSET lash:{t}:lease:x junk 1");
    cr_expect_eq(renew1("t", "x", "W", f, TTL_LONG), LASH_RENEW_OK);
    cr_expect_eq(complete1("t", "x", "W", f, LASH_OUT_OK, "r", 0), LASH_DONE_RECORDED);
    cr_expect_eq(cmd_int("EXISTS lash:{t}:lease:x"), 0, "the finish deleted the key");
}

/* ---- leases without their row (found by the model test) ---------------------- */

/* A lease key outlives its row when a hand deletes the row; the id is then
 * submitted anew. The old holder's token must not renew, release or record
 * anything on the new row. */
Test(hostile, a_lease_left_beside_a_new_row_holds_nothing)
{
    submit_ok("t", job("x", "k", "{}"));
    int64_t f = claim_one("t", "w1", "x", TTL_LONG);
    cmd_ok("DEL lash:{t}:p:x");
    submit_ok("t", job("x", "k", "{}"));
    cr_expect_eq(renew1("t", "x", "w1", f, TTL_LONG), LASH_RENEW_LOST);
    cr_expect_eq(complete1("t", "x", "w1", f, LASH_OUT_OK, "never ran", 0), LASH_DONE_STALE);
    cr_expect_eq(release1("t", "x", "w1", f), 0);
    expect_state("t", "x", "pending");
    expect_field("t", "x", "result", NULL);
}

/* A complete for a row deleted by hand wrote a partial row (state and result
 * only) and counted a completion nothing had run into. */
Test(hostile, a_complete_for_a_deleted_row_writes_nothing)
{
    submit_ok("t", job("x", "k", "{}"));
    int64_t f = claim_one("t", "w1", "x", TTL_LONG);
    cmd_ok("DEL lash:{t}:p:x");
    cr_expect_eq(complete1("t", "x", "w1", f, LASH_OUT_OK, "r", 0), LASH_DONE_STALE);
    cr_expect_eq(cmd_int("EXISTS lash:{t}:p:x"), 0);
    cr_expect_eq(stats("t").total_completed, 0);
}

/* A lease key set by hand beside a finished row let its token rewrite the
 * record: a completed row went back to pending. */
Test(hostile, a_lease_set_beside_a_finished_row_cannot_rewrite_it)
{
    submit_ok("t", job("x", "k", "{}"));
    int64_t f = claim_one("t", "w1", "x", TTL_LONG);
    cr_assert_eq(complete1("t", "x", "w1", f, LASH_OUT_OK, "r", 0), LASH_DONE_RECORDED);
    cmd_ok("SET lash:{t}:lease:x w1:%lld PX 60000", (long long)f);
    cr_expect_eq(complete1("t", "x", "w1", f, LASH_OUT_FAIL, "again", 60000), LASH_DONE_ALREADY);
    expect_state("t", "x", "completed");
    expect_field("t", "x", "result", "r");
}

/* A running row a hand left unreadable ends failed when its lease runs out, and
 * its fence moves on: the lost owner's late complete hears "stale", not
 * "already recorded". */
Test(hostile, a_bad_row_ended_by_a_claim_moves_its_fence)
{
    submit_ok("t", job("x", "k", "{}"));
    int64_t f = claim_one("t", "w1", "x", 150);
    cmd_ok("HDEL lash:{t}:p:x payload");
    lash_fx_sleep_ms(250);
    lash_claim_batch b = claim("t", "w2", 10, TTL_LONG);
    cr_expect_eq(b.bad, 1);
    lash_claim_batch_free(&b);
    expect_state("t", "x", "failed");
    cr_expect_gt(F("t", "x"), f);
    cr_expect_eq(complete1("t", "x", "w1", f, LASH_OUT_OK, "late", 0), LASH_DONE_STALE);
}

/* Submitting an id whose row a hand stripped of its kind wrote over it and
 * kept the old run's attempt, owner and cancel flag. */
Test(hostile, a_submit_over_a_row_without_a_kind_is_refused)
{
    submit_ok("t", job("x", "k", "{}"));
    claim_one("t", "w1", "x", TTL_LONG);
    cmd_ok("HDEL lash:{t}:p:x kind");
    lash_submitted o = submit1("t", job("x", "k", "{}"));
    cr_expect_eq(o.status, LASH_SUB_INVALID, "%s", o.msg);
    cr_expect(strstr(o.msg, "not a process row"), "%s", o.msg);
}

/* Under FCALL the library keeps its state between calls: a cancel of a running
 * row must still check the events key's type itself, not trust the call before
 * it (found by the model test: it failed after writing the cancel flag). */
Test(hostile, cancel_of_a_running_row_past_a_junk_events_key)
{
    lash_err e = {0};
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    lash_fx_events_all(C, "ev");
    submit_ok("ev", job("a1", "k", "{}"));
    submit_ok("ev", job("a2", "k", "{}"));
    lash_claim_batch b = claim("ev", "W", 1, TTL_LONG);
    cr_assert_eq(b.n, 1);
    lash_claim_batch_free(&b);
    bool requested = false;
    cr_assert_eq(lash_cancel(C, "ev", "a2", NULL, &requested, &e), LASH_OK, "%s", e.msg);
    junk("ev", "events");
    cr_expect_eq(lash_cancel(C, "ev", "a1", NULL, &requested, &e), LASH_OK, "%s", e.msg);
    cr_expect(requested);
    expect_field("ev", "a1", "cancel", "1");
}
