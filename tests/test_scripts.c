/* test_scripts.c: how the scripts reach Redis (proto/scripts.h, registry/):
 * the Functions library (FCALL), and the EVAL fallback when Redis has lost a
 * script (NOSCRIPT after SCRIPT FLUSH), also in the middle of a pipelined
 * submit, and a connection that stays usable after a failed chunk. A private
 * redis-server per test (tests/rfx.h). */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keys.h"
#include "proto/scripts.h"
#include "registry/registry.h"
#include "rfx.h"

TestSuite(scripts, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

/* ---- the Functions library, NOSCRIPT ------------------------------------------------ */

Test(scripts, functions_library)
{
    lash_err e = {0};
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    redisReply *r = cmd("FCALL lash_version 0");
    cr_expect(r->type == REDIS_REPLY_STRING && strcmp(r->str, lash_function_version()) == 0);
    freeReplyObject(r);

    r = cmd("FCALL lash_submit 1 lash:{fq} f1 k {\"x\":1} 0");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 1, "%s",
              r->type == REDIS_REPLY_ERROR ? r->str : "?");
    cr_expect_str_eq(r->element[0]->element[0]->str, "f1");
    cr_expect_str_eq(r->element[0]->element[1]->str, "created");
    freeReplyObject(r);
    /* id '' takes a number; the script refuses what the C checks would. */
    r = cmd("FCALL lash_submit 1 lash:{fq} %s k null 2 max_attempts 2 backoff fixed:5 "
            "x bad-kind! null 0 y k {oops 0 z k null 1 backoff exp:10:5 "
            "w k null 1 colour red",
            "");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 5, "%s",
              r->type == REDIS_REPLY_ERROR ? r->str : "?");
    cr_expect_str_eq(r->element[0]->element[0]->str, "1");
    cr_expect_str_eq(r->element[0]->element[1]->str, "created");
    for (int i = 1; i < 5; i++)
        cr_expect(strncmp(r->element[i]->element[1]->str, "invalid:", 8) == 0, "row %d: %s", i,
                  r->element[i]->element[1]->str);
    freeReplyObject(r);
    expect_field("fq", "1", "backoff", "fixed:5");

    lash_claim_batch b = claim("fq", "W", 10, TTL_LONG);
    cr_assert_eq(b.n, 2);
    int f1 = strcmp(b.rows[0].id, "f1") == 0 ? 0 : 1;
    cr_expect_str_eq(b.rows[f1].id, "f1");
    cr_expect_str_eq(b.rows[f1].payload, "{\"x\":1}");
    cr_expect_eq(b.rows[f1].attempt, 1);
    cr_expect_eq(b.rows[1 - f1].max_attempts, 2);
    cr_expect_str_eq(b.rows[1 - f1].backoff, "fixed:5");
    lash_claim_batch_free(&b);

    r = cmd("FCALL lash_stats 1 lash:{fq}");
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements % 2 == 0);
    long long running = -1;
    for (size_t i = 0; i < r->elements; i += 2)
        if (strcmp(r->element[i]->str, "running") == 0)
            running = r->element[i + 1]->type == REDIS_REPLY_INTEGER
                          ? r->element[i + 1]->integer
                          : atoll(r->element[i + 1]->str);
    cr_expect_eq(running, 2);
    freeReplyObject(r);
    r = cmd("FCALL_RO lash_stats 1 lash:{fq}");
    cr_expect(r->type == REDIS_REPLY_ARRAY, "stats is read-only");
    freeReplyObject(r);

    r = cmd("FCALL lash_cancel 1 lash:{fq} f1 because");
    cr_expect(r->type == REDIS_REPLY_STRING && strcmp(r->str, "requested") == 0);
    freeReplyObject(r);
    r = cmd("FCALL lash_submit 1 lash:{fq} f2 k null 0");
    freeReplyObject(r);
    r = cmd("FCALL lash_cancel 1 lash:{fq} f2");
    cr_expect(r->type == REDIS_REPLY_STRING && strcmp(r->str, "cancelled") == 0);
    freeReplyObject(r);
    r = cmd("FCALL lash_cancel 1 lash:{fq} nobody");
    cr_expect(r->type == REDIS_REPLY_STRING && strcmp(r->str, "not-found") == 0);
    freeReplyObject(r);
    r = cmd("FCALL lash_submit 1 wrong-key f3 k null 0");
    cr_expect_eq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);

    /* An outdated library is replaced. */
    cmd_ok("FUNCTION DELETE lash");
    cmd_ok("FUNCTION LOAD %s", "#!lua name=lash\nredis.register_function('lash_version', "
                               "function() return 'old' end)");
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    r = cmd("FCALL lash_version 0");
    cr_expect_str_eq(r->str, lash_function_version());
    freeReplyObject(r);
}

/* Submit, claim and complete one row on a fresh connection. */
static void one_life(const char *q, const char *id)
{
    lash_conn *c = lash_fx_connect(&R);
    lash_err e = {0};
    lash_submission s = job(id, "k", "{}");
    lash_submitted out;
    cr_assert_eq(lash_submit(c, q, &s, 1, &out, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(out.status, LASH_SUB_CREATED, "%s", out.msg);
    lash_claim_batch b;
    cr_assert_eq(lash_claim(c, q, "W", 1, TTL_LONG, KEEP_ALL, 0, -1, &b, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(b.n, 1);
    lash_completion done = {{id, "W", b.rows[0].fence}, LASH_OUT_OK, "r", 1, 0};
    int st = -1;
    cr_assert_eq(lash_complete(c, q, &done, 1, &st, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(st, LASH_DONE_RECORDED);
    lash_claim_batch_free(&b);
    lash_close(c);
}

Test(scripts, calls_go_by_fcall_when_this_version_is_loaded)
{
    lash_err e = {0};
    cr_assert_eq(lash_functions_ensure(C, &e), LASH_OK, "%s", e.msg);
    cmd_ok("CONFIG RESETSTAT");
    one_life("q", "a");
    cr_expect_eq(lash_fx_calls(C, "fcall"), 3, "submit, claim, complete: %lld FCALLs",
                 lash_fx_calls(C, "fcall"));
    cr_expect_eq(lash_fx_calls(C, "evalsha") + lash_fx_calls(C, "eval"), 0);
}

/* Another version's library (a rolling upgrade, an older lashctl) is never
 * run by this one: its versioned names are not there, and the calls go by
 * EVALSHA, each script's own text. */
Test(scripts, calls_go_by_evalsha_when_another_version_is_loaded)
{
    cmd_ok("FUNCTION LOAD REPLACE %s",
           "#!lua name=lash\n"
           "redis.register_function('lash_submit', function() return 'an older lash' end)");
    cmd_ok("CONFIG RESETSTAT");
    one_life("q", "a");
    cr_expect_eq(lash_fx_calls(C, "fcall"), 1, "one FCALL found no function, then none was tried");
    cr_expect_geq(lash_fx_calls(C, "evalsha"), 3);
    expect_state("q", "a", "completed");
    cmd_ok("FUNCTION FLUSH");
    cmd_ok("CONFIG RESETSTAT");
    one_life("q", "b");
    cr_expect_eq(lash_fx_calls(C, "fcall"), 1, "absent: the same");
    expect_state("q", "b", "completed");
}

Test(scripts, noscript_fallback_after_script_flush)
{
    submit_ok("q", job("a", "k", "{}"));
    submit_ok("q", job("b", "k", "{}"));
    cmd_ok("SCRIPT FLUSH");
    submit_ok("q", job("c", "k", "{}"));
    cmd_ok("SCRIPT FLUSH");
    lash_claim_batch b = claim("q", "W", 10, TTL_LONG);
    cr_assert_eq(b.n, 3);
    lash_claim_batch_free(&b);
    cmd_ok("SCRIPT FLUSH");
    cr_expect_eq(renew1("q", "a", "W", F("q", "a"), TTL_LONG), 1);
    cmd_ok("SCRIPT FLUSH");
    cr_expect_eq(complete1("q", "a", "W", F("q", "a"), LASH_OUT_OK, "", 0), 1);
    cmd_ok("SCRIPT FLUSH");
    cr_expect_eq(release1("q", "b", "W", F("q", "b")), 1);
    cmd_ok("SCRIPT FLUSH");
    bool req;
    lash_err e = {0};
    cr_expect_eq(lash_cancel(C, "q", "c", NULL, &req, &e), LASH_OK, "%s", e.msg);
    cmd_ok("SCRIPT FLUSH");
    cr_expect_eq(lash_retry(C, "q", "a", &e), LASH_EREFUSED, "%s", e.msg);
    cmd_ok("SCRIPT FLUSH");
    lash_list_page p;
    cr_expect_eq(lash_list(C, "q", NULL, "0", 10, &p, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(p.n, 3, "n=%zu next=%s r0=%s %s", p.n, p.next, p.n ? p.rows[0].id : "",
                 p.n ? p.rows[0].state : "");
    lash_list_page_free(&p);
    cmd_ok("SCRIPT FLUSH");
    cr_expect_eq(stats("q").count[LASH_PENDING], 1);
    cmd_ok("SCRIPT FLUSH");
    int64_t removed;
    cr_expect_eq(lash_trim(C, "q", (lash_retention){0, 0}, 10, &removed, &e), LASH_OK);
    cr_expect_eq(removed, 1);
}

typedef struct {
    const char *sock;
    volatile int stop;
    int flushes;
} flusher;

static void *flush_loop(void *arg)
{
    flusher *f = arg;
    redisContext *c = redisConnectUnix(f->sock);
    if (!c || c->err) return NULL;
    while (!f->stop) {
        redisReply *r = redisCommand(c, "SCRIPT FLUSH");
        if (!r) break;
        freeReplyObject(r);
        f->flushes++;
        lash_fx_sleep_ms(1);
    }
    redisFree(c);
    return NULL;
}

/* A flush between the pipelined calls of one batch submit: every row is still
 * answered for, and the connection is still in step afterwards. */
Test(scripts, noscript_in_the_middle_of_a_pipelined_submit)
{
    flusher f = {.sock = R.sock};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, flush_loop, &f), 0);
    for (int round = 0; round < 6; round++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "r%d-", round);
        submit_many(C, "q", prefix, 4000, 0);
        cr_expect_eq(stats("q").total_submitted, (round + 1) * 4000);
    }
    f.stop = 1;
    pthread_join(th, NULL);
    cr_expect_gt(f.flushes, 0);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), 6 * 4000);
}

/* A batch whose later calls fail (here: out of memory) still answers every row
 * and leaves the connection in step for the next command. */
Test(scripts, failed_chunk_leaves_the_connection_usable)
{
    enum { N = 4000 };
    redisReply *r = cmd("INFO memory");
    const char *p = strstr(r->str, "used_memory:");
    cr_assert(p);
    long long used = atoll(p + strlen("used_memory:"));
    freeReplyObject(r);
    cmd_ok("CONFIG SET maxmemory %lld", used + 2 * 1024 * 1024);
    char *payload = malloc(4096);
    memset(payload, 'x', 4095);
    payload[0] = payload[4094] = '"';
    payload[4095] = 0;
    lash_submission *s = calloc(N, sizeof *s);
    lash_submitted *out = calloc(N, sizeof *out);
    char(*ids)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], 16, "m%d", i);
        s[i] = job(ids[i], "k", payload);
    }
    lash_err e = {0};
    lash_status st = lash_submit(C, "q", s, N, out, &e);
    cr_expect_eq(st, LASH_EREDIS, "status %d: %s", st, e.msg);
    cr_expect(strstr(e.msg, "OOM") || strstr(e.msg, "maxmemory"), "%s", e.msg);
    /* The next replies are the next commands' own. */
    r = cmd("CONFIG SET maxmemory 0");
    cr_expect(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0,
              "out of step: got type %d '%s'", r->type, r->str ? r->str : "");
    freeReplyObject(r);
    r = cmd("PING");
    cr_expect(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0);
    freeReplyObject(r);
    /* Every row says what became of it: created ones exist, the rest are not. */
    long long created = 0;
    for (int i = 0; i < N; i++) {
        long long exists = cmd_int("EXISTS lash:{q}:p:%s", ids[i]);
        if (out[i].status == LASH_SUB_CREATED) {
            created++;
            cr_expect_eq(exists, 1, "%s said created", ids[i]);
        } else {
            cr_expect_eq(exists, 0, "%s said %d (%s) yet exists", ids[i], out[i].status,
                         out[i].msg);
            cr_expect(out[i].msg[0], "%s has no reason", ids[i]);
        }
    }
    cr_expect(created > 0 && created < N, "created %lld", created);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), created);
    lash_stats ss = stats("q");
    cr_expect_eq(ss.total_submitted, created);
    free(payload);
    free(s);
    free(out);
    free(ids);
}
