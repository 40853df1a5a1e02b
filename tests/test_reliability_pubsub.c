/* test_reliability_pubsub.c: every poke is lost; the poll still finishes the work.
 *
 * Three lash-worker daemons (built-in noop, --poll-ms 300) work a queue while a
 * thread runs CLIENT KILL TYPE pubsub every 50 ms, so a worker's subscriber
 * lives at most ~50 ms of each ~1 s reconnect cycle and nearly every poke of
 * the submits finds nobody listening. Rows are submitted in waves (each wave
 * one submit, one poke). All of them must complete, the workers must stay up,
 * and the kills must really have happened. The time from a wave's submit to its
 * last completion is reported (a poll-driven queue answers within about one
 * poll interval); it is a figure, not a pass/fail bound.
 * Short form 20 waves of 100; LASH_LONG=1: 200 waves of 500.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/reliability/rel.h"

#define Q "ps"

typedef struct {
    const char *url;
    atomic_int stop;
    long rounds, killed;
} killer;

static void *kill_loop(void *arg)
{
    killer *k = arg;
    lash_conn *c = NULL;
    lash_err e;
    if (lash_connect(k->url, 2000, &c, &e) != LASH_OK) return NULL;
    while (!atomic_load(&k->stop)) {
        redisReply *r = redisCommand(lash_conn_redis(c), "CLIENT KILL TYPE pubsub");
        if (!r) break;
        if (r->type == REDIS_REPLY_INTEGER) k->killed += r->integer;
        freeReplyObject(r);
        k->rounds++;
        lash_fx_sleep_ms(50);
    }
    lash_close(c);
    return NULL;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

Test(pubsub, work_completes_through_the_poll_when_every_poke_is_lost, .timeout = 900,
     .fini = rel_fini)
{
    const int waves = rel_long() ? 200 : 20, per = rel_long() ? 500 : 100;
    long long t0 = lash_fx_ms();
    static lash_fx_redis r;
    lash_fx_redis_start(&r, NULL);
    rel_track_redis(&r);
    lash_conn *c = lash_fx_connect(&r);
    char dir[128], wlog[256];
    rel_mkdir(dir, sizeof dir, "pubsub");
    snprintf(wlog, sizeof wlog, "%s/workers.log", dir);
    const char *args[] = {"--queue", Q,    "--builtin", "noop", "--poll-ms", "300",
                          "--keep",  "-1", "--keep-ms", "0",    NULL};
    pid_t w[3];
    for (int i = 0; i < 3; i++)
        w[i] = rel_worker(r.url, wlog, args);
    lash_fx_sleep_ms(300); /* let them subscribe once, so the killer has work */

    killer k = {.url = r.url};
    pthread_t th;
    cr_assert(pthread_create(&th, NULL, kill_loop, &k) == 0);
    lash_fx_sleep_ms(200);

    long long *lat = calloc((size_t)waves, sizeof *lat);
    cr_assert(lat);
    int listened = 0; /* waves submitted while some subscriber was on the poke channel */
    for (int v = 0; v < waves; v++) {
        redisReply *ns = rel_cmd(c, "PUBSUB NUMSUB lash:{" Q "}:poke");
        if (ns->elements == 2 && ns->element[1]->integer > 0) listened++;
        freeReplyObject(ns);
        char prefix[32];
        snprintf(prefix, sizeof prefix, "w%d-", v);
        long long sent = lash_fx_ms();
        rel_submit_range(c, Q, prefix, 0, per, "noop", NULL, 3);
        long long want = (long long)(v + 1) * per;
        while (lash_fx_stats(c, Q).total_completed < want && lash_fx_ms() - sent < 60000)
            lash_fx_sleep_ms(10);
        lat[v] = lash_fx_ms() - sent;
    }
    bool idle = rel_wait_idle(c, Q, 60000);
    atomic_store(&k.stop, 1);
    pthread_join(th, NULL);

    lash_stats st = lash_fx_stats(c, Q);
    int alive = 0;
    for (int i = 0; i < 3; i++)
        alive += rel_alive(w[i]);
    qsort(lat, (size_t)waves, sizeof *lat, cmp_ll);
    rel_report("pubsub",
               "processes %d in %d waves, subscriber kills %ld (in %ld CLIENT KILL rounds), "
               "waves submitted while a subscriber listened %d/%d, completed %lld, lost %lld, "
               "wave latency median %lld ms / max %lld ms (poll 300 ms), runtime %.1f s",
               waves * per, waves, k.killed, k.rounds, listened, waves,
               (long long)st.count[LASH_COMPLETED],
               (long long)(waves * per - st.count[LASH_COMPLETED]), lat[waves / 2], lat[waves - 1],
               (lash_fx_ms() - t0) / 1000.0);

    cr_expect(idle, "work did not finish with pub/sub cut");
    cr_expect_eq(st.count[LASH_COMPLETED], waves * per);
    cr_expect_eq(st.total_completed, waves * per);
    cr_expect_eq(rel_zcard(c, Q, LASH_KEY_DUE), 0);
    cr_expect_eq(lash_fx_lease_keys(c, Q), 0);
    cr_expect_eq(alive, 3, "a worker died while its subscriber was being killed");
    /* The subscribers must really have been cut, again and again. */
    cr_expect(k.killed >= 6, "only %ld subscriber kills", k.killed);
    /* The premise: pokes found nobody listening. A subscriber retried at once
     * instead of after 1 s would be back for most waves (a bug this caught). */
    cr_expect(listened <= waves / 2, "%d of %d waves had a subscriber: pokes were not lost",
              listened, waves);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(rel_stop(w[i], 15000), 0);
    free(lat);
    lash_close(c);
    lash_fx_redis_stop(&r);
    rel_rmdir(dir);
}
