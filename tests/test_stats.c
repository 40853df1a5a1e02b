/* test_stats.c: reading a queue (stats.lua, list.lua through registry/): the
 * counters match the rows after a mixed workload, and list pages through every
 * row once. A private redis-server per test (tests/rfx.h). */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keys.h"
#include "registry/registry.h"
#include "rfx.h"

TestSuite(stats, .init = rfx_setup, .fini = rfx_teardown, .timeout = 60);

/* ---- stats and list ------------------------------------------------------------------------ */

Test(stats, stats_match_the_rows_after_a_mixed_workload)
{
    /* Two rows whose owner will vanish: one abandons, one reruns. */
    lash_submission ab = job("ab", "k", "{}");
    ab.on_lost = LASH_ON_LOST_ABANDON;
    submit_ok("q", ab);
    submit_ok("q", job("lost", "k", "{}"));
    lash_claim_batch b = claim("q", "W0", 10, TTL_LONG);
    cr_assert_eq(b.n, 2);
    lash_claim_batch_free(&b);
    submit_many(C, "q", "s", 150, 1); /* a failure is final */
    submit_many(C, "q", "t", 150, 2); /* a failure is retried */
    lash_err e = {0};
    bool req;
    for (int i = 140; i < 150; i++) { /* cancelled while pending */
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        cr_assert_eq(lash_cancel(C, "q", id, NULL, &req, &e), LASH_OK);
    }
    b = claim("q", "W", 200, TTL_LONG);
    cr_assert_eq(b.n, 200);
    lash_completion cs[200];
    lash_lease rel[200];
    int st[200];
    size_t nc = 0, nrel = 0;
    const char *failed_one = NULL;
    for (size_t i = 0; i < b.n; i++) {
        lash_lease l = {b.rows[i].id, "W", b.rows[i].fence};
        switch (i % 6) {
        case 0:
        case 1:
            cs[nc++] = (lash_completion){l, LASH_OUT_OK, "ok", 2, 0};
            break;
        case 2:
            cs[nc++] = (lash_completion){l, LASH_OUT_FAIL, "e", 1, 60000};
            if (!failed_one && l.id[0] == 's') failed_one = l.id;
            break;
        case 3:
            cs[nc++] = (lash_completion){l, LASH_OUT_CANCEL, "c", 1, 0};
            break;
        case 4:
            rel[nrel++] = l;
            break;
        default: /* stays running; every other one is asked to cancel */
            if (i % 12 == 5) cr_assert_eq(lash_cancel(C, "q", l.id, NULL, &req, &e), LASH_OK);
            break;
        }
    }
    cr_assert_eq(lash_complete(C, "q", cs, nc, st, &e), LASH_OK, "%s", e.msg);
    for (size_t i = 0; i < nc; i++)
        cr_assert_eq(st[i], 1, "%s", cs[i].lease.id);
    cr_assert_eq(lash_release(C, "q", rel, NULL, nrel, st, &e), LASH_OK, "%s", e.msg);
    cr_assert(failed_one);
    cr_assert_eq(lash_retry(C, "q", failed_one, &e), LASH_OK, "%s", e.msg);
    lash_claim_batch_free(&b);
    /* W0 vanished: its leases run out (by hand), and a drive finds them first. */
    cmd_ok("DEL lash:{q}:lease:ab lash:{q}:lease:lost");
    cmd_ok("ZADD lash:{q}:due 0 ab 0 lost");
    b = claim("q", "W3", 2, TTL_LONG);
    cr_assert_eq(b.n, 1);
    cr_expect_str_eq(b.rows[0].id, "lost");
    cr_expect_eq(b.rows[0].attempt, 2);
    lash_claim_batch_free(&b);

    /* Count the rows themselves. */
    long long want[LASH_STATE_COUNT] = {0};
    redisReply *keys = cmd("KEYS lash:{q}:p:*");
    for (size_t i = 0; i < keys->elements; i++) {
        redisReply *s = cmd("HGET %s state", keys->element[i]->str);
        int k = s->type == REDIS_REPLY_STRING ? lash_state_parse(s->str) : -1;
        cr_assert(k >= 0, "%s has no good state", keys->element[i]->str);
        want[k]++;
        freeReplyObject(s);
    }
    cr_expect_eq(keys->elements, 302);
    freeReplyObject(keys);
    lash_stats s = stats("q");
    for (int k = 0; k < LASH_STATE_COUNT; k++)
        cr_expect_eq(s.count[k], want[k], "%s: stats say %lld, rows %lld",
                     lash_state_name((lash_state)k), (long long)s.count[k], want[k]);
    cr_expect_eq(s.due, want[LASH_PENDING] + want[LASH_RUNNING]);
    cr_expect_eq(s.done, want[LASH_COMPLETED] + want[LASH_FAILED] + want[LASH_CANCELLED] +
                             want[LASH_ABANDONED]);
    cr_expect_eq(cmd_int("ZCARD lash:{q}:due"), s.due);
    cr_expect_eq(s.total_submitted, 302);
    cr_expect_eq(s.total_abandoned, 1);
    cr_expect_eq(s.total_lost, 2);
    cr_expect_eq(s.total_completed, want[LASH_COMPLETED]);
    cr_expect(want[LASH_PENDING] > 0 && want[LASH_RUNNING] > 0 && want[LASH_COMPLETED] > 0 &&
                  want[LASH_FAILED] > 0 && want[LASH_CANCELLED] > 0 && want[LASH_ABANDONED] == 1,
              "the workload should reach every state");
}

/* Orders 32-byte id slots, for qsort. */
static int cmp_id(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Reads every page of a listing; checks each id appears once and matches state. */
static size_t list_all(const char *q, const char *state, int limit, char (*seen)[32], size_t cap)
{
    char cursor[32] = "0";
    size_t n = 0;
    int pages = 0;
    do {
        lash_list_page p;
        lash_err e = {0};
        cr_assert_eq(lash_list(C, q, state, cursor, limit, &p, &e), LASH_OK, "%s", e.msg);
        cr_assert_leq(p.n, (size_t)limit);
        for (size_t i = 0; i < p.n; i++) {
            if (state) cr_expect_str_eq(p.rows[i].state, state);
            cr_assert_lt(n, cap, "more rows listed than exist");
            snprintf(seen[n++], 32, "%.31s", p.rows[i].id);
        }
        snprintf(cursor, sizeof cursor, "%s", p.next);
        lash_list_page_free(&p);
        cr_assert_lt(++pages, 10000, "listing never ends");
    } while (strcmp(cursor, "0") != 0);
    qsort(seen, n, 32, cmp_id);
    for (size_t i = 1; i < n; i++)
        cr_expect_neq(strcmp(seen[i - 1], seen[i]), 0, "%s listed twice", seen[i]);
    return n;
}

Test(stats, list_pages_through_every_row_once)
{
    enum { N = 330 };
    submit_many(C, "q", "l", N, 1);
    /* 80 running, 70 completed, 50 failed, 20 cancelled, the rest pending. */
    lash_claim_batch b = claim("q", "W", 220, TTL_LONG);
    cr_assert_eq(b.n, 220);
    lash_completion cs[140];
    for (int i = 0; i < 140; i++)
        cs[i] = (lash_completion){{b.rows[i].id, "W", b.rows[i].fence},
                                  i < 70    ? LASH_OUT_OK
                                  : i < 120 ? LASH_OUT_FAIL
                                            : LASH_OUT_CANCEL,
                                  "",
                                  0,
                                  0};
    int st[140];
    lash_err e = {0};
    cr_assert_eq(lash_complete(C, "q", cs, 140, st, &e), LASH_OK);
    lash_claim_batch_free(&b);
    static const struct {
        const char *state;
        size_t n;
    } want[] = {{NULL, N},      {"pending", 110},  {"running", 80}, {"completed", 70},
                {"failed", 50}, {"cancelled", 20}, {"abandoned", 0}};
    char(*seen)[32] = malloc(2 * N * 32);
    static const int limits[] = {1, 7, 100, 1000};
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++)
        for (size_t l = 0; l < sizeof limits / sizeof limits[0]; l++) {
            if (limits[l] == 1 && want[w].state && strcmp(want[w].state, "running") != 0)
                continue; /* keep the test quick: limit 1 once per set */
            size_t n = list_all("q", want[w].state, limits[l], seen, 2 * N);
            cr_expect_eq(n, want[w].n, "state %s limit %d: %zu rows",
                         want[w].state ? want[w].state : "(any)", limits[l], n);
        }
    free(seen);
    lash_list_page p;
    cr_expect_eq(lash_list(C, "q", "zombie", "0", 10, &p, &e), LASH_EINVAL);
    cr_expect_neq(lash_list(C, "q", NULL, "x12", 10, &p, &e), LASH_OK);
}
