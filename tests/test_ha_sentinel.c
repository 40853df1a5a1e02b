/* test_ha_sentinel.c: lash under Redis Sentinel (issue 11).
 *
 *   - kill -9 of the primary in the middle of a 3,000-process drain: 1 primary,
 *     1 replica, 3 Sentinels (down-after 1 s); workers and lashctl know only the
 *     redis-sentinel:// URL. Every process that exists after the failover ends
 *     terminal, nothing is left due or leased, the same worker processes resume
 *     on the new primary (bounded: 15 s after the switch is announced; the time
 *     is reported against the 5 s target). Two submitters run throughout, one
 *     plain and one with WAIT 1: acknowledged submits missing on the new primary
 *     are counted; with WAIT the count must be 0.
 *   - a graceful SENTINEL FAILOVER (the old primary lives on as a replica): the
 *     worker leaves it as soon as the Sentinel leading the failover announces
 *     the promotion, finishes on the new one, and nothing runs twice.
 * Needs redis-server and redis-sentinel (skipped, saying so, without them).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "tests/ha.h"

static char root[128];

static void fini(void)
{
    rel_fini();
    if (root[0]) rel_rmdir(root);
}

typedef struct {
    ha_node primary, replica, sentinel[3];
    char url[256];
} deployment;

static bool sentinels_ready(void *p)
{
    deployment *d = p;
    for (int i = 0; i < 3; i++) {
        redisReply *r = ha_cmd(d->sentinel[i].port, "SENTINEL MASTER mymaster");
        bool ok = false;
        if (r && r->type == REDIS_REPLY_ARRAY)
            for (size_t k = 0; k + 1 < r->elements; k += 2) {
                if (strcmp(r->element[k]->str, "num-other-sentinels") == 0)
                    ok = atoi(r->element[k + 1]->str) == 2;
                if (ok && strcmp(r->element[k]->str, "num-slaves") == 0)
                    ok = atoi(r->element[k + 1]->str) == 1;
            }
        freeReplyObject(r);
        if (!ok) return false;
    }
    return true;
}

static bool replica_synced(void *p)
{
    redisReply *r = ha_cmd(*(int *)p, "INFO replication");
    bool ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up");
    freeReplyObject(r);
    return ok;
}

static void deploy(deployment *d)
{
    if (!ha_have("redis-server") || !ha_have("redis-sentinel"))
        cr_skip_test("redis-server or redis-sentinel is not installed");
    int base = ha_ports(5, false);
    ha_start(&d->primary, root, base, NULL);
    char rof[16];
    snprintf(rof, sizeof rof, "%d", base);
    ha_start(&d->replica, root, base + 1,
             (const char *const[]){"--replicaof", "127.0.0.1", rof, NULL});
    cr_assert(ha_until(replica_synced, &d->replica.port, 15000), "the replica did not sync");
    for (int i = 0; i < 3; i++)
        ha_start_sentinel(&d->sentinel[i], root, base + 2 + i, base, "mymaster");
    cr_assert(ha_until(sentinels_ready, d, 30000), "the Sentinels did not find each other");
    snprintf(d->url, sizeof d->url,
             "redis-sentinel://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d#mymaster", base + 2, base + 3,
             base + 4);
}

/* ---- +switch-master, as an operator would watch it ----------------------------------- */

typedef struct {
    int port;
    _Atomic long long at; /* wall ms of the first +switch-master, 0 before */
    atomic_bool stop;
} watcher;

static void *watch_thread(void *p)
{
    watcher *w = p;
    redisContext *c = ha_ctx(w->port);
    if (!c) return NULL;
    struct timeval tv = {0, 200000};
    redisSetTimeout(c, tv);
    freeReplyObject(redisCommand(c, "SUBSCRIBE +switch-master"));
    while (!atomic_load(&w->stop)) {
        void *r = NULL;
        if (redisGetReply(c, &r) == REDIS_OK && r) {
            if (!atomic_load(&w->at)) atomic_store(&w->at, ha_wall_ms());
            freeReplyObject(r);
        } else if (c->err) {
            /* a read timeout: clear it and listen on */
            c->err = 0;
            c->errstr[0] = 0;
        }
    }
    redisFree(c);
    return NULL;
}

/* ---- submitters: what was acknowledged, and is it still there? ----------------------- */

typedef struct {
    const char *url;
    const char *queue;
    int wait_replicas;
    atomic_bool stop;
    long acked, refused;
    char (*ids)[24]; /* acknowledged ids */
    size_t cap;
} submitter;

static void *submit_thread(void *p)
{
    submitter *s = p;
    lash_conn *c = NULL;
    lash_conn_opts o = {.timeout_ms = 3000, .failover_ms = 20000};
    lash_err e;
    if (lash_connect_opts(s->url, &o, &c, &e)) return NULL;
    for (long seq = 0; !atomic_load(&s->stop) && (size_t)s->acked + 10 <= s->cap;) {
        char ids[10][24];
        lash_submission subs[10];
        lash_submitted out[10];
        for (int i = 0; i < 10; i++, seq++) {
            snprintf(ids[i], sizeof ids[i], "a%ld", seq);
            subs[i] = (lash_submission){.id = ids[i], .kind = "noop"};
        }
        lash_status st =
            lash_submit_wait(c, s->queue, subs, 10, (lash_wait){s->wait_replicas, 500}, out, &e);
        for (int i = 0; i < 10; i++) {
            bool ok = st == LASH_OK &&
                      (out[i].status == LASH_SUB_CREATED || out[i].status == LASH_SUB_EXISTS);
            if (ok)
                memcpy(s->ids[s->acked++], ids[i], sizeof ids[i]);
            else
                s->refused++;
        }
        /* Paced, so that checking every acknowledged id afterwards stays quick. */
        lash_fx_sleep_ms(st ? 20 : 2);
    }
    lash_close(c);
    return NULL;
}

static long lost(lash_conn *c, const submitter *s)
{
    long n = 0;
    for (long i = 0; i < s->acked; i++) {
        lash_record r;
        lash_err e;
        lash_status st = lash_get(c, s->queue, s->ids[i], &r, &e);
        cr_assert(st == LASH_OK || st == LASH_ENOTFOUND, "get %s: %s", s->ids[i], e.msg);
        n += st == LASH_ENOTFOUND;
        lash_record_free(&r);
    }
    return n;
}

/* A worker of queue "work" with the built-in sleep (no fork per process); its
 * debug log lists every execution it started. */
static pid_t start_worker(deployment *d, const char *log)
{
    const char *args[] = {"--builtin",   "sleep",      "--queue", "work",      "--concurrency",
                          "8",           "--lease-ms", "3000",    "--poll-ms", "200",
                          "--log-level", "debug",      NULL};
    return rel_worker(d->url, log, args);
}

static long completed(lash_conn *c)
{
    lash_stats s;
    lash_err e;
    return lash_get_stats(c, "work", &s, &e) == LASH_OK ? (long)s.count[LASH_COMPLETED] : -1;
}

static void submit_work(lash_conn *c, long n)
{
    rel_submit_range(c, "work", "w", 0, n, "sleep", "{\"ms\":40}", 3);
}

/* The drain ended: every row there is terminal, none due, no lease. */
static lash_stats drained(lash_conn *c, long want, int ms)
{
    long long until = lash_fx_ms() + ms;
    lash_stats s;
    for (;;) {
        s = lash_fx_stats(c, "work");
        long live = (long)(s.count[LASH_PENDING] + s.count[LASH_RUNNING]);
        if ((live == 0 && s.due == 0 && s.count[LASH_COMPLETED] > 0) ||
            s.count[LASH_COMPLETED] >= want || lash_fx_ms() > until)
            break;
        lash_fx_sleep_ms(100);
    }
    return s;
}

Test(sentinel, workers_follow_a_kill9_of_the_primary, .fini = fini, .timeout = 400)
{
    rel_mkdir(root, sizeof root, "sentinel");
    deployment d;
    deploy(&d);
    char out[200], wlog[200];
    snprintf(out, sizeof out, "%s/lashctl.log", root);
    snprintf(wlog, sizeof wlog, "%s/workers.log", root);
    const char *fn[] = {"--redis", d.url, "functions", NULL};
    cr_assert_eq(ha_lashctl(fn, NULL, out), 0, "lashctl functions via Sentinel (%s)", out);

    lash_conn *c = NULL;
    lash_err e = {0};
    lash_conn_opts o = {.timeout_ms = 3000, .failover_ms = 30000};
    cr_assert_eq(lash_connect_opts(d.url, &o, &c, &e), LASH_OK, "%s", e.msg);
    const long N = 3000;
    submit_work(c, N);
    char wlog2[200]; /* one log each: a log line is several writes */
    snprintf(wlog2, sizeof wlog2, "%s/worker2.log", root);
    pid_t w[2] = {start_worker(&d, wlog), start_worker(&d, wlog2)};

    watcher wt = {.port = d.sentinel[1].port};
    pthread_t wth, sth[2];
    pthread_create(&wth, NULL, watch_thread, &wt);
    submitter subs[2] = {{.url = d.url, .queue = "acks-plain", .wait_replicas = 0},
                         {.url = d.url, .queue = "acks-wait", .wait_replicas = 1}};
    for (int i = 0; i < 2; i++) {
        subs[i].cap = 400000;
        subs[i].ids = calloc(subs[i].cap, sizeof *subs[i].ids);
        pthread_create(&sth[i], NULL, submit_thread, &subs[i]);
    }

    /* lashctl's durable submit: confirmed by the replica while there is one. */
    const char *durable[] = {
        "--redis",         d.url, "--queue",        "acks-cli", "submit", "noop",
        "--wait-replicas", "1",   "--wait-timeout", "200",      NULL};
    cr_expect_eq(ha_lashctl(durable, NULL, out), 0, "lashctl submit --wait-replicas 1 (%s)", out);
    long long until = lash_fx_ms() + 120000;
    while (completed(c) < N * 2 / 5)
        cr_assert(lash_fx_ms() < until, "the drain did not get going");
    long long k0 = ha_wall_ms();
    ha_kill9(&d.primary);
    lash_stats s = drained(c, N, 180000);
    long long switched = atomic_load(&wt.at);
    for (int i = 0; i < 2; i++) {
        atomic_store(&subs[i].stop, true);
        pthread_join(sth[i], NULL);
    }
    atomic_store(&wt.stop, true);
    pthread_join(wth, NULL);

    cr_expect_eq(strcmp(ha_role(d.replica.port, NULL), "master"), 0, "the replica was promoted");
    cr_expect_eq(s.count[LASH_PENDING] + s.count[LASH_RUNNING], 0, "rows left unfinished");
    cr_expect_eq(s.due, 0);
    cr_expect_eq(s.count[LASH_COMPLETED], N, "%lld of %ld completed",
                 (long long)s.count[LASH_COMPLETED], N);
    cr_expect_eq(ha_count_keys(c, "lash:{work}:lease:*"), 0, "lease keys left");
    for (int i = 0; i < 2; i++)
        cr_expect(rel_alive(w[i]), "worker %d exited: it must follow without a restart", i);
    long long *t;
    size_t nt = ha_done_times(c, "work", &t);
    long long first = ha_first_after(t, nt, k0);
    free(t);
    cr_expect_geq(switched, k0, "no +switch-master was announced");
    cr_expect(first >= 0 && k0 + first - switched < 15000,
              "work resumed %lld ms after the switch was announced", k0 + first - switched);
    long lost_plain = lost(c, &subs[0]), lost_wait = lost(c, &subs[1]);
    cr_expect_eq(lost_wait, 0, "%ld submits acknowledged after WAIT 1 were lost", lost_wait);
    long lines, ids, dups;
    ha_runs((const char *const[]){wlog, wlog2, NULL}, &lines, &ids, &dups);

    /* The new primary has no replica: a durable submit is not confirmed (exit 1). */
    char dout[200];
    snprintf(dout, sizeof dout, "%s/durable.log", root);
    cr_expect_eq(ha_lashctl(durable, NULL, dout), 1,
                 "lashctl submit --wait-replicas 1 with no "
                 "replica left");
    char dl[1024] = "";
    FILE *df = fopen(dout, "r");
    if (df) {
        size_t k = fread(dl, 1, sizeof dl - 1, df);
        dl[k] = 0;
        fclose(df);
    }
    cr_expect(strstr(dl, "0 of 1 replica(s) confirmed"), "said: %s", dl);

    /* lashctl through the Sentinels, after the failover; and a name they do not know. */
    const char *st[] = {"--redis", d.url, "--queue", "work", "stats", NULL};
    cr_expect_eq(ha_lashctl(st, NULL, out), 0, "lashctl stats after the failover (%s)", out);
    char bad[300];
    snprintf(bad, sizeof bad, "%.*snosuch", (int)(strchr(d.url, '#') + 1 - d.url), d.url);
    const char *unknown[] = {"--redis", bad, "stats", NULL};
    char bout[200];
    snprintf(bout, sizeof bout, "%s/unknown.log", root);
    cr_expect_neq(ha_lashctl(unknown, NULL, bout), 0);
    FILE *f = fopen(bout, "r");
    char line[512] = "";
    if (f) {
        if (!fgets(line, sizeof line, f)) line[0] = 0;
        fclose(f);
    }
    cr_expect(strstr(line, "no Sentinel knows a primary named 'nosuch'"), "said: %s", line);

    for (int i = 0; i < 2; i++)
        cr_expect_eq(rel_stop(w[i], 20000), 0);
    rel_report("sentinel",
               "%ld processes, 2 workers x 8 via the Sentinels: %lld completed (%ld executions, "
               "%ld ids, %ld (id, fence) ran twice), 0 due, 0 leases; workers never restarted",
               N, (long long)s.count[LASH_COMPLETED], lines, ids, dups);
    rel_report("sentinel",
               "kill -9 of the primary: +switch-master %lld ms after the kill; first completion on "
               "the new primary %lld ms after the kill, %lld ms after the switch",
               switched - k0, first, k0 + first - switched);
    rel_report("sentinel",
               "acknowledged submits lost by async replication: plain %ld of %ld, with WAIT 1 %ld "
               "of %ld (refused or unconfirmed: %ld plain, %ld WAIT)",
               lost_plain, subs[0].acked, lost_wait, subs[1].acked, subs[0].refused,
               subs[1].refused);
    for (int i = 0; i < 2; i++)
        free(subs[i].ids);
    lash_close(c);
}

Test(sentinel, workers_leave_a_demoted_primary, .fini = fini, .timeout = 300)
{
    rel_mkdir(root, sizeof root, "sentinel-graceful");
    deployment d;
    deploy(&d);
    char wlog[200];
    snprintf(wlog, sizeof wlog, "%s/workers.log", root);
    lash_conn *c = NULL;
    lash_err e = {0};
    lash_conn_opts o = {.timeout_ms = 3000, .failover_ms = 30000};
    cr_assert_eq(lash_connect_opts(d.url, &o, &c, &e), LASH_OK, "%s", e.msg);
    const long N = 1000;
    submit_work(c, N);
    pid_t w = start_worker(&d, wlog);
    watcher wt = {.port = d.sentinel[2].port};
    pthread_t wth;
    pthread_create(&wth, NULL, watch_thread, &wt);
    long long until = lash_fx_ms() + 120000;
    while (completed(c) < N / 3)
        cr_assert(lash_fx_ms() < until, "the drain did not get going");
    long long f0 = ha_wall_ms();
    redisReply *r = ha_cmd(d.sentinel[0].port, "SENTINEL FAILOVER mymaster");
    cr_assert(r && r->type != REDIS_REPLY_ERROR, "SENTINEL FAILOVER: %s", r ? r->str : "-");
    freeReplyObject(r);
    lash_stats s = drained(c, N, 120000);
    atomic_store(&wt.stop, true);
    pthread_join(wth, NULL);
    long long switched = atomic_load(&wt.at);
    cr_expect_geq(switched, f0, "no +switch-master was announced");
    cr_expect_eq(s.count[LASH_COMPLETED], N, "%lld of %ld completed",
                 (long long)s.count[LASH_COMPLETED], N);
    cr_expect_eq(s.due, 0);
    cr_expect_eq(strcmp(ha_role(d.primary.port, NULL), "slave"), 0,
                 "the old primary lives on as a replica");
    cr_expect(rel_alive(w), "the worker exited");
    long long *t;
    size_t nt = ha_done_times(c, "work", &t);
    long lines, ids, dups;
    ha_runs((const char *const[]){wlog, NULL}, &lines, &ids, &dups);
    /* The worker left the old primary when the promotion began, not a second
     * later at +switch-master: no claim of its was lost with the old primary's
     * last writes, so nothing ran twice under the same fence. */
    cr_expect_eq(dups, 0, "%ld (id, fence) ran twice", dups);
    rel_report("sentinel",
               "SENTINEL FAILOVER: +switch-master %lld ms after the command; longest pause in "
               "the 15 s after it %lld ms; first completion %lld ms after the switch; %ld "
               "executions of %ld processes, %ld (id, fence) twice",
               switched - f0, ha_max_gap(t, nt, f0, f0 + 15000), ha_first_after(t, nt, switched),
               lines, ids, dups);
    free(t);
    cr_expect_eq(rel_stop(w, 20000), 0);
    lash_close(c);
}
