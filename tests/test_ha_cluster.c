/* test_ha_cluster.c: lash on a real Redis Cluster (issue 11).
 *
 *   - drain: 3 primaries + 3 replicas; 6 queues, two per primary; workers and
 *     lashctl know only one replica's address (a node that owns none of the
 *     queues). 3,000 processes drain while one queue's slot migrates to another
 *     primary, a third primary is failed over by hand (CLUSTER FAILOVER), and the
 *     primary that took over is then killed with -9. Every process ends
 *     completed, nothing is left due or leased, no (id, fence) ran twice; how
 *     long work stalled after each event is reported.
 *   - routing: on 3 primaries: lashctl functions loads every primary; a plain
 *     command follows ASK mid-migration while a script waits for the migration
 *     to end (and then sees the whole queue); pokes, cancels and finished
 *     messages published on any node reach a worker and lashctl connected to
 *     another; every primary is visited for SCAN.
 *   - sharded: 3 primaries + 3 replicas; the scripts' SPUBLISHed pokes and
 *     cancels (lashctl submit, cancel) reach a worker that polls once a minute,
 *     through one subscriber per queue on its primary, also after the queue's
 *     slot migrates, its primary fails over by hand and is then killed.
 * Needs redis-server and redis-cli (skipped, saying so, without them).
 */
#include <pthread.h>

#include "tests/ha.h"

#include "proto/slot.h"
#include "registry/inspect.h"

#define NQ 6
#define PER_QUEUE 500

static char root[128];
static lash_conn *rc; /* the test's own connection to the Cluster */

static void fini(void)
{
    rel_fini();
    if (root[0]) rel_rmdir(root);
}

static void need_binaries(void)
{
    if (!ha_have("redis-server") || !ha_have("redis-cli"))
        cr_skip_test("redis-server or redis-cli is not installed");
}

/* Starts n cluster-enabled nodes on consecutive ports and joins them with
 * redis-cli --cluster create (replicas per primary). */
static void cluster_start(ha_node *nodes, int n, int replicas)
{
    int base = ha_ports(n, true);
    static const char *const extra[] = {"--cluster-enabled",
                                        "yes",
                                        "--cluster-config-file",
                                        "nodes.conf",
                                        "--cluster-node-timeout",
                                        "1000",
                                        NULL};
    for (int i = 0; i < n; i++)
        ha_start(&nodes[i], root, base + i, extra);
    const char *argv[32] = {"redis-cli", "--cluster", "create"};
    char addr[16][32], reps[8];
    int k = 3;
    for (int i = 0; i < n; i++) {
        snprintf(addr[i], sizeof addr[i], "127.0.0.1:%d", base + i);
        argv[k++] = addr[i];
    }
    snprintf(reps, sizeof reps, "%d", replicas);
    argv[k++] = "--cluster-replicas";
    argv[k++] = reps;
    argv[k++] = "--cluster-yes";
    argv[k] = NULL;
    char log[200];
    snprintf(log, sizeof log, "%s/create.log", root);
    cr_assert_eq(ha_run(argv, NULL, log, true), 0, "redis-cli --cluster create failed (%s)", log);
    /* Every node sees the whole map, and every replica has synced. */
    long long until = lash_fx_ms() + 15000;
    for (int i = 0; i < n; i++) {
        for (;;) {
            redisReply *r = ha_cmd(nodes[i].port, "CLUSTER INFO");
            bool ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "cluster_state:ok") &&
                      strstr(r->str, "cluster_slots_ok:16384");
            freeReplyObject(r);
            int mp;
            if (ok && strcmp(ha_role(nodes[i].port, &mp), "slave") == 0) {
                r = ha_cmd(nodes[i].port, "INFO replication");
                ok = r && r->type == REDIS_REPLY_STRING && strstr(r->str, "master_link_status:up");
                freeReplyObject(r);
            }
            if (ok) break;
            cr_assert(lash_fx_ms() < until, "node %d did not join the cluster", nodes[i].port);
            lash_fx_sleep_ms(50);
        }
    }
}

/* The port of the primary that owns slot, asked of any node. */
static int owner_of(const ha_node *nodes, int n, int slot)
{
    for (int i = 0; i < n; i++) {
        redisReply *r = ha_cmd(nodes[i].port, "CLUSTER SLOTS");
        if (!r || r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            continue;
        }
        int port = 0;
        for (size_t k = 0; k < r->elements; k++) {
            redisReply *x = r->element[k];
            if (x->elements >= 3 && slot >= x->element[0]->integer &&
                slot <= x->element[1]->integer)
                port = (int)x->element[2]->element[1]->integer;
        }
        freeReplyObject(r);
        if (port) return port;
    }
    return 0;
}

static char *node_id(int port)
{
    static __thread char id[64];
    redisReply *r = ha_cmd(port, "CLUSTER MYID");
    cr_assert(r && r->type == REDIS_REPLY_STRING, "CLUSTER MYID on %d", port);
    snprintf(id, sizeof id, "%s", r->str);
    freeReplyObject(r);
    return id;
}

static void expect_ok(redisReply *r, const char *what)
{
    cr_assert(r, "%s: no reply", what);
    cr_assert(r->type != REDIS_REPLY_ERROR, "%s: %s", what, r->str);
    freeReplyObject(r);
}

/* Starts moving slot from src to dst: IMPORTING/MIGRATING and up to `keys`
 * keys moved (all of them when keys < 0). */
static void migrate_begin(int slot, int src, int dst, int keys)
{
    char sid[64], did[64];
    snprintf(sid, sizeof sid, "%s", node_id(src));
    snprintf(did, sizeof did, "%s", node_id(dst));
    expect_ok(ha_cmd(dst, "CLUSTER SETSLOT %d IMPORTING %s", slot, sid), "IMPORTING");
    expect_ok(ha_cmd(src, "CLUSTER SETSLOT %d MIGRATING %s", slot, did), "MIGRATING");
    int moved = 0;
    while (keys != 0 && (keys < 0 || moved < keys)) {
        int batch = keys < 0 || keys - moved > 100 ? 100 : keys - moved;
        redisReply *r = ha_cmd(src, "CLUSTER GETKEYSINSLOT %d %d", slot, batch);
        cr_assert(r && r->type == REDIS_REPLY_ARRAY);
        if (r->elements == 0) {
            freeReplyObject(r);
            break;
        }
        const char *argv[8 + 100];
        char port[16];
        snprintf(port, sizeof port, "%d", dst);
        int k = 0;
        argv[k++] = "MIGRATE";
        argv[k++] = "127.0.0.1";
        argv[k++] = port;
        argv[k++] = "";
        argv[k++] = "0";
        argv[k++] = "5000";
        argv[k++] = "KEYS";
        for (size_t i = 0; i < r->elements; i++)
            argv[k++] = r->element[i]->str;
        expect_ok(ha_cmdv(src, k, argv), "MIGRATE");
        moved += (int)r->elements;
        freeReplyObject(r);
    }
}

/* Ends the move: the slot belongs to dst, told to both and to every primary. */
static void migrate_end(int slot, int src, int dst, const ha_node *nodes, int n)
{
    char did[64];
    snprintf(did, sizeof did, "%s", node_id(dst));
    expect_ok(ha_cmd(dst, "CLUSTER SETSLOT %d NODE %s", slot, did), "SETSLOT NODE dst");
    expect_ok(ha_cmd(src, "CLUSTER SETSLOT %d NODE %s", slot, did), "SETSLOT NODE src");
    for (int i = 0; i < n; i++)
        if (strcmp(ha_role(nodes[i].port, NULL), "master") == 0 && nodes[i].port != src &&
            nodes[i].port != dst)
            freeReplyObject(ha_cmd(nodes[i].port, "CLUSTER SETSLOT %d NODE %s", slot, did));
}

/* Queue names, two per primary (ports prim[0..2]), found by their slots. */
static void pick_queues(const ha_node *nodes, int n, const int prim[3], char q[NQ][16],
                        int qport[NQ])
{
    int have[3] = {0};
    int k = 0;
    for (int i = 0; k < NQ && i < 1000; i++) {
        char name[16];
        snprintf(name, sizeof name, "q%d", i);
        int port = owner_of(nodes, n, lash_queue_slot(name));
        for (int p = 0; p < 3; p++)
            if (port == prim[p] && have[p] < 2) {
                have[p]++;
                snprintf(q[k], sizeof q[k], "%s", name);
                qport[k++] = port;
            }
    }
    cr_assert_eq(k, NQ);
}

/* The state of row id once it is want, or the last one seen when ms ran out
 * first (read through the test's connection, rc, every 10 ms). */
static lash_state state_within(const char *queue, const char *id, lash_state want, int ms)
{
    long long until = lash_fx_ms() + ms;
    for (;;) {
        lash_record r = lash_fx_get(rc, queue, id);
        lash_state st = r.state;
        lash_record_free(&r);
        if (st == want || lash_fx_ms() > until) return st;
        lash_fx_sleep_ms(10);
    }
}

static bool is_master(void *p)
{
    return strcmp(ha_role(*(int *)p, NULL), "master") == 0;
}

typedef struct {
    lash_conn *c;
    char (*q)[16];
} progress_arg;

static long completed(lash_conn *c, char q[NQ][16])
{
    long n = 0;
    for (int i = 0; i < NQ; i++) {
        lash_stats s;
        lash_err e;
        if (lash_get_stats(c, q[i], &s, &e) == LASH_OK) n += (long)s.count[LASH_COMPLETED];
    }
    return n;
}

/* Who is who in a 3+3 Cluster: the primaries, and the replica of each. */
static void roles(const ha_node *nodes, int prim[3], int rep[3])
{
    int np = 0;
    for (int i = 0; i < 6; i++)
        if (strcmp(ha_role(nodes[i].port, NULL), "master") == 0) {
            if (np < 3) prim[np] = nodes[i].port;
            np++;
        }
    cr_assert_eq(np, 3);
    for (int i = 0; i < 6; i++) {
        int mp;
        if (strcmp(ha_role(nodes[i].port, &mp), "slave") != 0) continue;
        for (int p = 0; p < 3; p++)
            if (prim[p] == mp) rep[p] = nodes[i].port;
    }
}

/* A 3+3 Cluster in a directory of its own under the test root: its nodes,
 * the primaries, and the replica of each. */
static void cluster_up(const char *dir, ha_node nodes[6], int prim[3], int rep[3])
{
    need_binaries();
    rel_mkdir(root, sizeof root, dir);
    cluster_start(nodes, 6, 1);
    roles(nodes, prim, rep);
}

/* The first queue name prefix<N> whose slot the node at port owns. */
static void queue_on(const ha_node *nodes, int port, const char *prefix, char q[16])
{
    q[0] = 0;
    for (int i = 0; !q[0] && i < 1000; i++) {
        char name[16];
        snprintf(name, sizeof name, "%s%d", prefix, i);
        if (owner_of(nodes, 6, lash_queue_slot(name)) == port) snprintf(q, 16, "%s", name);
    }
    cr_assert(q[0], "no queue name on node %d", port);
}

static void wait_completed(lash_conn *c, char q[NQ][16], long n, int ms)
{
    long long until = lash_fx_ms() + ms;
    while (completed(c, q) < n) {
        cr_assert(lash_fx_ms() < until, "only %ld of %ld completed after %d ms", completed(c, q), n,
                  ms);
        lash_fx_sleep_ms(50);
    }
}

Test(cluster, drains_3000_through_a_migration_and_two_failovers, .fini = fini, .timeout = 400)
{
    ha_node nodes[6];
    int prim[3], rep[3];
    cluster_up("cluster", nodes, prim, rep);
    char q[NQ][16];
    int qport[NQ];
    pick_queues(nodes, 6, prim, q, qport);
    /* Roles: queues of prim[0] migrate to prim[1] (one of them); prim[2] fails
     * over twice. Everyone is given the address of rep[0] alone. */
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", rep[0]);
    int migq = -1;
    for (int i = 0; i < NQ && migq < 0; i++)
        if (qport[i] == prim[0]) migq = i;

    char out[200], in[200];
    snprintf(out, sizeof out, "%s/lashctl.log", root);
    const char *fn[] = {"--redis", url, "functions", NULL};
    cr_assert_eq(ha_lashctl(fn, NULL, out), 0, "lashctl functions (%s)", out);
    for (int p = 0; p < 3; p++) {
        redisReply *r = ha_cmd(prim[p], "FUNCTION LIST LIBRARYNAME lash");
        cr_expect(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1,
                  "primary %d has no lash library", prim[p]);
        freeReplyObject(r);
    }
    snprintf(in, sizeof in, "%s/jobs.jsonl", root);
    FILE *f = fopen(in, "w");
    for (int i = 0; i < PER_QUEUE; i++)
        fprintf(f, "{\"ms\":50,\"i\":%d}\n", i);
    fclose(f);
    for (int i = 0; i < NQ; i++) {
        const char *sub[] = {"--redis", url, "--queue", q[i], "submit-bulk", "sleep", NULL};
        cr_assert_eq(ha_lashctl(sub, in, out), 0, "submit-bulk to %s (%s)", q[i], out);
    }

    /* Built-in sleep (50 ms each): the drain lasts long enough for the events,
     * and costs no fork. Every start is in the workers' debug log. */
    const char *wargs[32] = {"--builtin", "sleep",     "--concurrency", "5",           "--lease-ms",
                             "3000",      "--poll-ms", "200",           "--log-level", "debug"};
    int wn = 10;
    for (int i = 0; i < NQ; i++) {
        wargs[wn++] = "--queue";
        wargs[wn++] = q[i];
    }
    wargs[wn] = NULL;
    pid_t workers[3];
    char wlog[3][200]; /* one each: a log line is several writes */
    for (int i = 0; i < 3; i++) {
        snprintf(wlog[i], sizeof wlog[i], "%s/worker%d.log", root, i);
        workers[i] = rel_worker(url, wlog[i], wargs);
    }

    lash_conn *c = NULL;
    lash_err e = {0};
    lash_conn_opts o = {.timeout_ms = 5000, .failover_ms = 30000};
    cr_assert_eq(lash_connect_opts(url, &o, &c, &e), LASH_OK, "%s", e.msg);
    /* The queues live on three primaries; discovery (lash-web, stats) sees all. */
    lash_queue_list ql;
    cr_assert_eq(lash_discover_queues(c, 0, &ql, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(ql.n, NQ, "queue discovery saw %zu of %d queues", ql.n, NQ);
    lash_queue_list_free(&ql);
    long total = (long)NQ * PER_QUEUE;
    long long t0 = ha_wall_ms();

    /* 1. A queue's slot moves from prim[0] to prim[1] (keys in batches). */
    wait_completed(c, q, total / 5, 120000);
    int slot = lash_queue_slot(q[migq]);
    long long m0 = ha_wall_ms();
    migrate_begin(slot, prim[0], prim[1], -1);
    migrate_end(slot, prim[0], prim[1], nodes, 6);
    long long m1 = ha_wall_ms();
    cr_expect_eq(owner_of(nodes, 6, slot), prim[1]);

    /* 2. prim[2] is failed over by hand: its replica takes over. */
    wait_completed(c, q, total * 2 / 5, 120000);
    long long f0 = ha_wall_ms();
    expect_ok(ha_cmd(rep[2], "CLUSTER FAILOVER"), "CLUSTER FAILOVER");
    cr_assert(ha_until(is_master, &rep[2], 15000), "replica %d did not take over", rep[2]);
    long long f1 = ha_wall_ms();

    /* 3. The new primary is killed: the old one (its replica now) takes over. */
    wait_completed(c, q, total * 3 / 5, 120000);
    int killed = rep[2];
    ha_node *kn = NULL;
    for (int i = 0; i < 6; i++)
        if (nodes[i].port == killed) kn = &nodes[i];
    long long k0 = ha_wall_ms();
    ha_kill9(kn);
    cr_assert(ha_until(is_master, &prim[2], 30000), "%d was not promoted after the kill", prim[2]);
    long long k1 = ha_wall_ms();

    wait_completed(c, q, total, 180000);
    for (int i = 0; i < 3; i++)
        cr_expect_eq(rel_stop(workers[i], 20000), 0, "worker %d did not drain cleanly", i);

    /* Every process completed once; nothing due; no lease left. */
    for (int i = 0; i < NQ; i++) {
        lash_stats s = lash_fx_stats(c, q[i]);
        cr_expect_eq(s.count[LASH_COMPLETED], PER_QUEUE, "queue %s: %lld completed", q[i],
                     (long long)s.count[LASH_COMPLETED]);
        cr_expect_eq(s.due, 0, "queue %s: %lld still due", q[i], (long long)s.due);
        cr_expect_eq(s.count[LASH_PENDING] + s.count[LASH_RUNNING], 0);
    }
    cr_expect_eq(ha_count_keys(c, "lash:{*}:lease:*"), 0, "lease keys left");
    long lines, ids, dups;
    ha_runs((const char *const[]){wlog[0], wlog[1], wlog[2], NULL}, &lines, &ids, &dups);
    cr_expect_eq(dups, 0, "%ld (id, fence) pairs ran twice", dups);
    cr_expect_eq(ids, total, "%ld distinct processes ran", ids);

    /* How long work stalled after each event (completion times, Redis clock). */
    long long *t[NQ];
    size_t nt[NQ];
    for (int i = 0; i < NQ; i++)
        nt[i] = ha_done_times(c, q[i], &t[i]);
    /* Pause: the longest stretch without a completion on the queues an event
     * touched, from its start to the next event's (the kill: 15 s). With 6
     * queues sharing 5 slots per worker, queues pause now and then anyway: the
     * baseline is the same figure before the first event. */
    long long mig_gap = ha_max_gap(t[migq], nt[migq], m0, f0);
    long long base_gap = 0, man_gap = 0, kill_gap = 0, kill_first = -1, other_gap = 0;
    for (int i = 0; i < NQ; i++) {
        long long g = ha_max_gap(t[i], nt[i], t0 + 1000, m0);
        if (g > base_gap) base_gap = g;
        if (qport[i] == prim[2]) {
            g = ha_max_gap(t[i], nt[i], f0, k0);
            if (g > man_gap) man_gap = g;
            g = ha_max_gap(t[i], nt[i], k0, k0 + 15000);
            if (g > kill_gap) kill_gap = g;
            long long ff = ha_first_after(t[i], nt[i], k0);
            if (ff >= 0 && (kill_first < 0 || ff < kill_first)) kill_first = ff;
        } else if (i != migq) {
            g = ha_max_gap(t[i], nt[i], k0, k0 + 15000);
            if (g > other_gap) other_gap = g;
        }
    }
    rel_report("cluster",
               "3 primaries + 3 replicas, %d queues x %d, 3 workers x 5 via one replica's "
               "address: all %ld completed (%ld executions, %ld re-runs, %ld (id, fence) twice), "
               "0 due, 0 leases",
               NQ, PER_QUEUE, total, lines, lines - ids, dups);
    rel_report("cluster", "longest pause of any queue before the first event: %lld ms", base_gap);
    rel_report("cluster", "slot migration (%lld ms): longest pause of the moved queue %lld ms",
               m1 - m0, mig_gap);
    rel_report("cluster", "CLUSTER FAILOVER (%lld ms): longest pause of its queues %lld ms",
               f1 - f0, man_gap);
    rel_report("cluster",
               "kill -9 of a primary (replica promoted after %lld ms): its queues paused %lld ms, "
               "first completion on the new primary %lld ms after the kill; other queues' "
               "longest pause %lld ms",
               k1 - k0, kill_gap, kill_first, other_gap);
    for (int i = 0; i < NQ; i++)
        free(t[i]);
    lash_close(c);
    for (int i = 0; i < 6; i++)
        ha_kill9(&nodes[i]);
}

Test(cluster, slot_function_agrees_with_cluster_keyslot)
{
    need_binaries();
    lash_fx_redis r;
    lash_fx_redis_start(&r, (const char *const[]){"--cluster-enabled", "yes", NULL});
    redisContext *c = redisConnectUnix(r.sock);
    cr_assert(c && !c->err);
    /* Random keys over an alphabet rich in braces, pipelined. */
    enum { N = 4000 };
    static char keys[N][24];
    static const char alpha[] = "ab{}{}:x\xff\x01Z9";
    srand(7);
    for (int i = 0; i < N; i++) {
        int len = 1 + rand() % 20;
        for (int k = 0; k < len; k++)
            keys[i][k] = alpha[rand() % (sizeof alpha - 1)];
        keys[i][len] = 0;
        redisAppendCommand(c, "CLUSTER KEYSLOT %b", keys[i], (size_t)len);
    }
    for (int i = 0; i < N; i++) {
        void *v;
        cr_assert_eq(redisGetReply(c, &v), REDIS_OK);
        redisReply *rep = v;
        cr_assert_eq(rep->type, REDIS_REPLY_INTEGER);
        cr_expect_eq(lash_key_slot(keys[i], strlen(keys[i])), rep->integer, "key %d", i);
        freeReplyObject(rep);
    }
    redisFree(c);
    lash_fx_redis_stop(&r);
}

/* ---- routing on three primaries ----------------------------------------------------- */

static ha_node rnodes[3];

typedef struct {
    lash_conn *c;
    const char *queue;
    lash_stats s;
    lash_status st;
    long long took;
} stats_call;

static void *stats_thread(void *p)
{
    stats_call *sc = p;
    lash_err e;
    long long t0 = lash_fx_ms();
    sc->st = lash_get_stats(sc->c, sc->queue, &sc->s, &e);
    sc->took = lash_fx_ms() - t0;
    return NULL;
}

Test(cluster, ask_is_followed_by_reads_and_waited_out_by_scripts, .fini = fini, .timeout = 120)
{
    need_binaries();
    rel_mkdir(root, sizeof root, "route");
    cluster_start(rnodes, 3, 0);
    /* A queue on some primary, and another primary to move it to. */
    const char *queue = "moving";
    int slot = lash_queue_slot(queue);
    int src = owner_of(rnodes, 3, slot), dst = 0;
    for (int i = 0; i < 3; i++)
        if (rnodes[i].port != src) dst = rnodes[i].port;
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", dst);
    lash_conn_opts o = {.timeout_ms = 5000, .failover_ms = 20000};
    lash_err e = {0};
    cr_assert_eq(lash_connect_opts(url, &o, &rc, &e), LASH_OK, "%s", e.msg);
    rel_submit_range(rc, queue, "m", 0, 300, "noop", NULL, 3);

    /* The slot MIGRATING on src, IMPORTING on dst; half the rows and the stats
     * hash moved, the due set not yet. */
    migrate_begin(slot, src, dst, 0);
    for (int i = 0; i <= 150; i++) {
        char key[64];
        if (i < 150)
            snprintf(key, sizeof key, "lash:{%s}:p:m%d", queue, i);
        else
            snprintf(key, sizeof key, "lash:{%s}:stats", queue);
        expect_ok(ha_cmd(src, "MIGRATE 127.0.0.1 %d %s 0 5000", dst, key), "MIGRATE");
    }
    /* A read of one row follows ASK wherever the row is now. */
    for (int i = 0; i < 300; i += 7) {
        char id[16];
        snprintf(id, sizeof id, "m%d", i);
        lash_record r = lash_fx_get(rc, queue, id);
        cr_expect_eq(r.state, LASH_PENDING, "%s", id);
        lash_record_free(&r);
    }
    /* A script waits: on the importing node it would count half a queue. */
    stats_call sc = {.c = NULL, .queue = queue};
    cr_assert_eq(lash_connect_opts(url, &o, &sc.c, &e), LASH_OK);
    pthread_t th;
    pthread_create(&th, NULL, stats_thread, &sc);
    lash_fx_sleep_ms(500);
    migrate_begin(slot, src, dst, -1); /* the rest (IMPORTING/MIGRATING again is harmless) */
    migrate_end(slot, src, dst, rnodes, 3);
    pthread_join(th, NULL);
    cr_assert_eq(sc.st, LASH_OK);
    cr_expect_eq(sc.s.count[LASH_PENDING], 300, "the script saw %lld of 300 rows",
                 (long long)sc.s.count[LASH_PENDING]);
    cr_expect_eq(sc.s.due, 300, "the script saw %lld of 300 due (half a queue)",
                 (long long)sc.s.due);
    cr_expect_geq(sc.took, 400, "the script answered in %lld ms, during the migration", sc.took);
    lash_close(sc.c);
    /* Afterwards everything goes to the new owner. */
    lash_stats s = lash_fx_stats(rc, queue);
    cr_expect_eq(s.count[LASH_PENDING], 300);
    lash_close(rc);
}

/* Whether the file at path holds needle (a log the commands appended to). */
static bool log_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) return false;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

Test(cluster, functions_scan_and_pubsub_reach_every_node, .fini = fini, .timeout = 120)
{
    need_binaries();
    rel_mkdir(root, sizeof root, "pubsub");
    cluster_start(rnodes, 3, 0);
    /* Three queues, on three different primaries if the names allow. */
    char q[3][16];
    int qport[3], k = 0;
    for (int i = 0; k < 3 && i < 1000; i++) {
        char name[16];
        snprintf(name, sizeof name, "p%d", i);
        int port = owner_of(rnodes, 3, lash_queue_slot(name));
        bool taken = false;
        for (int j = 0; j < k; j++)
            taken |= qport[j] == port;
        if (taken) continue;
        snprintf(q[k], sizeof q[k], "%s", name);
        qport[k++] = port;
    }
    cr_assert_eq(k, 3);
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", rnodes[0].port);
    char out[200];
    snprintf(out, sizeof out, "%s/lashctl.log", root);
    const char *fn[] = {"--redis", url, "functions", NULL};
    cr_assert_eq(ha_lashctl(fn, NULL, out), 0);
    for (int i = 0; i < 3; i++) {
        redisReply *r = ha_cmd(rnodes[i].port, "FUNCTION LIST LIBRARYNAME lash");
        cr_expect(r && r->type == REDIS_REPLY_ARRAY && r->elements == 1, "node %d", rnodes[i].port);
        freeReplyObject(r);
    }
    lash_err e = {0};
    cr_assert_eq(lash_connect(url, 5000, &rc, &e), LASH_OK, "%s", e.msg);
    for (int i = 0; i < 3; i++)
        rel_submit_range(rc, q[i], "s", 0, 10, "noop", NULL, 3);
    cr_expect_eq(ha_count_keys(rc, "lash:{p*}:p:*"), 30, "SCAN over every primary");
    const char *qv[] = {"--redis", url, "queues", NULL};
    cr_assert_eq(ha_lashctl(qv, NULL, out), 0);
    for (int i = 0; i < 3; i++) {
        char line[64];
        snprintf(line, sizeof line, "%-24s %10d ", q[i], 10);
        cr_expect(log_has(out, line), "lashctl queues lacks '%s' (%s)", line, out);
    }
    const char *tv[] = {"--redis", url, "top", "--all", "--iterations", "1", NULL};
    cr_assert_eq(ha_lashctl(tv, NULL, out), 0);
    for (int i = 0; i < 3; i++) {
        char line[64];
        snprintf(line, sizeof line, "\n%-24s ", q[i]);
        cr_expect(log_has(out, line), "lashctl top --all lacks queue %s (%s)", q[i], out);
    }

    /* A worker that polls once a minute: only pokes can wake it. */
    char handler[200], body[300], hspec[260], wlog[200];
    snprintf(handler, sizeof handler, "%s/slow.sh", root);
    snprintf(body, sizeof body, "exec sleep 30\n");
    rel_script(handler, body);
    snprintf(hspec, sizeof hspec, "slow=%s", handler);
    snprintf(wlog, sizeof wlog, "%s/worker.log", root);
    const char *wargs[] = {"--builtin", "noop",    "--handler", hspec,     "--poll-ms",
                           "60000",     "--queue", q[0],        "--queue", q[1],
                           "--queue",   q[2],      NULL};
    pid_t w = rel_worker(url, wlog, wargs);
    for (int i = 0; i < 3; i++)
        cr_assert(rel_wait_idle(rc, q[i], 20000), "startup drive of %s", q[i]);
    lash_fx_sleep_ms(300);

    /* A row due in 300 ms: no poke when it falls due. A plain PUBLISH on a node
     * that owns neither the queue nor the worker's connection wakes it. */
    for (int i = 0; i < 3; i++) {
        lash_submission sub = {.id = "later", .kind = "noop", .delay_ms = 300};
        lash_submitted so;
        cr_assert_eq(lash_submit(rc, q[i], &sub, 1, &so, &e), LASH_OK);
        lash_fx_sleep_ms(400);
        int other = rnodes[(i + 2) % 3].port == qport[i] ? rnodes[(i + 1) % 3].port
                                                         : rnodes[(i + 2) % 3].port;
        char chan[64];
        snprintf(chan, sizeof chan, "lash:{%s}:poke", q[i]);
        long long t0 = lash_fx_ms();
        freeReplyObject(ha_cmd(other, "PUBLISH %s 1", chan));
        cr_expect_eq(state_within(q[i], "later", LASH_COMPLETED, 10000), LASH_COMPLETED,
                     "queue %s: a PUBLISH on node %d did not wake the "
                     "worker (poll is 60 s)",
                     q[i], other);
        rel_report("cluster", "poke PUBLISHed on another node: %s completed %lld ms later", q[i],
                   lash_fx_ms() - t0);
    }

    /* Cancel: a running process, stopped by a PUBLISH on another node. */
    lash_submission slow = {.id = "slow", .kind = "slow"};
    lash_submitted so;
    cr_assert_eq(lash_submit(rc, q[1], &slow, 1, &so, &e), LASH_OK);
    cr_assert_eq(state_within(q[1], "slow", LASH_RUNNING, 10000), LASH_RUNNING);
    char chan[64];
    snprintf(chan, sizeof chan, "lash:{%s}:cancel", q[1]);
    int other = qport[1] == rnodes[2].port ? rnodes[0].port : rnodes[2].port;
    freeReplyObject(ha_cmd(other, "PUBLISH %s slow", chan));
    cr_expect_eq(state_within(q[1], "slow", LASH_CANCELLED, 10000), LASH_CANCELLED,
                 "a cancel PUBLISHed on node %d did not stop it", other);

    /* finished: lashctl wait, connected to one node, hears a row finish on another. */
    lash_submission later = {.id = "waited", .kind = "noop", .delay_ms = 1500};
    cr_assert_eq(lash_submit(rc, q[2], &later, 1, &so, &e), LASH_OK);
    char wurl[64];
    int wnode = qport[2] == rnodes[1].port ? rnodes[2].port : rnodes[1].port;
    snprintf(wurl, sizeof wurl, "redis://127.0.0.1:%d", wnode);
    /* The worker polls once a minute: a poke after the delay makes it run. */
    pid_t poker = fork();
    if (poker == 0) {
        lash_fx_sleep_ms(1700);
        char pc[64];
        snprintf(pc, sizeof pc, "lash:{%s}:poke", q[2]);
        freeReplyObject(ha_cmd(wnode, "PUBLISH %s 1", pc));
        _exit(0);
    }
    const char *wt[] = {"--redis", wurl,        "--queue", q[2], "wait",
                        "waited",  "--timeout", "15000",   NULL};
    long long t0 = lash_fx_ms();
    cr_expect_eq(ha_lashctl(wt, NULL, out), 0, "lashctl wait did not hear 'finished' (%s)", out);
    /* Heard, not found by its re-read of the rows, which comes 5 s after it
     * started: the row ends ~1.7 s in. (A generous liveness bound.) */
    long long took = lash_fx_ms() - t0;
    cr_expect_lt(took, 4500, "lashctl wait took %lld ms: it missed the finished message", took);
    int status;
    waitpid(poker, &status, 0);
    cr_expect_eq(rel_stop(w, 15000), 0);
    lash_close(rc);
}

Test(cluster, a_user_without_cluster_slots_routes_by_moved, .fini = fini, .timeout = 120)
{
    need_binaries();
    rel_mkdir(root, sizeof root, "noperm");
    cluster_start(rnodes, 3, 0);
    for (int i = 0; i < 3; i++)
        expect_ok(ha_cmd(rnodes[i].port, "ACL SETUSER app on >app-pw ~* &* +@all -cluster"),
                  "ACL SETUSER");
    setenv("LASH_REDIS_PASSWORD", "app-pw", 1);
    char url[64];
    snprintf(url, sizeof url, "redis://app@127.0.0.1:%d", rnodes[0].port);
    /* A queue on every primary; the connection is to one of them. */
    char q[3][16];
    int k = 0;
    bool seen[3] = {0};
    for (int i = 0; k < 3 && i < 1000; i++) {
        char name[16];
        snprintf(name, sizeof name, "u%d", i);
        int port = owner_of(rnodes, 3, lash_queue_slot(name));
        for (int j = 0; j < 3; j++)
            if (rnodes[j].port == port && !seen[j]) {
                seen[j] = true;
                snprintf(q[k++], sizeof q[0], "%s", name);
            }
    }
    cr_assert_eq(k, 3);
    lash_err e = {0};
    cr_assert_eq(lash_connect(url, 5000, &rc, &e), LASH_OK, "%s", e.msg);
    for (int i = 0; i < 3; i++)
        rel_submit_range(rc, q[i], "x", 0, 20, "noop", NULL, 3);
    char wlog[200];
    snprintf(wlog, sizeof wlog, "%s/worker.log", root);
    const char *wargs[] = {"--builtin", "noop",    "--queue", q[0], "--queue",
                           q[1],        "--queue", q[2],      NULL};
    pid_t w = rel_worker(url, wlog, wargs);
    for (int i = 0; i < 3; i++) {
        cr_expect(rel_wait_idle(rc, q[i], 20000), "queue %s did not drain", q[i]);
        cr_expect_eq(lash_fx_stats(rc, q[i]).count[LASH_COMPLETED], 20);
    }
    cr_expect_eq(rel_stop(w, 15000), 0);
    /* Refused once per connection that asked, not on every MOVED or poll. */
    for (int i = 0; i < 3; i++) {
        redisReply *r = ha_cmd(rnodes[i].port, "ACL LOG");
        cr_assert(r && r->type == REDIS_REPLY_ARRAY);
        long long denied = 0;
        for (size_t j = 0; j < r->elements; j++) {
            redisReply *ent = r->element[j];
            for (size_t f = 0; f + 1 < ent->elements; f += 2)
                if (strcmp(ent->element[f]->str, "count") == 0)
                    denied += ent->element[f + 1]->integer;
        }
        freeReplyObject(r);
        cr_expect_leq(denied, 4, "node %d refused %lld commands: lash kept asking", rnodes[i].port,
                      denied);
    }
    lash_close(rc);
}

/* ---- sharded pokes and cancels --------------------------------------------------- */

/* Sharded subscribers of chan on the node at port (-1: no answer). */
static long long shard_subs(int port, const char *chan)
{
    redisReply *r = ha_cmd(port, "PUBSUB SHARDNUMSUB %s", chan);
    long long n = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                          r->element[1]->type == REDIS_REPLY_INTEGER
                      ? r->element[1]->integer
                      : -1;
    freeReplyObject(r);
    return n;
}

/* Until the owner of queue's slot has one sharded subscriber on both of its
 * channels (the worker's, pinned there), within ms. */
static bool pinned_on_owner(const ha_node *nodes, int n, const char *queue, int ms)
{
    char poke[64], cancel[64];
    snprintf(poke, sizeof poke, "lash:{%s}:poke", queue);
    snprintf(cancel, sizeof cancel, "lash:{%s}:cancel", queue);
    long long until = lash_fx_ms() + ms;
    for (;;) {
        int port = owner_of(nodes, n, lash_queue_slot(queue));
        if (port && shard_subs(port, poke) == 1 && shard_subs(port, cancel) == 1) return true;
        if (lash_fx_ms() > until) return false;
        lash_fx_sleep_ms(20);
    }
}

/* lashctl submit of a noop to queue (its script SPUBLISHes the poke on the
 * queue's primary), then how long until the worker, which polls once a minute,
 * has completed it; -1 after 10 s. */
static long long submit_until_done(const char *url, const char *queue, const char *id,
                                   const char *out)
{
    const char *sub[] = {"--redis", url, "--queue", queue, "submit", "noop", "--id", id, NULL};
    long long t0 = lash_fx_ms();
    int code = ha_lashctl(sub, NULL, out);
    cr_assert_eq(code, 0, "lashctl submit to %s: exit %d: %s", queue, code, ha_tail(out));
    int left = (int)(10000 - (lash_fx_ms() - t0));
    if (state_within(queue, id, LASH_COMPLETED, left > 0 ? left : 0) != LASH_COMPLETED) return -1;
    return lash_fx_ms() - t0;
}

/* The scripts publish pokes and cancels sharded (SPUBLISH stays on the queue's
 * primary); the worker holds one subscriber per queue on that primary, and
 * follows it when the slot migrates, the primary fails over, or it is killed. The worker is
 * given a replica's address and polls once a minute; its leases are renewed
 * every 20 s: within those bounds only the sharded messages can move work. */
Test(cluster, sharded_pokes_and_cancels_follow_migration_and_failover, .fini = fini, .timeout = 240)
{
    ha_node nodes[6];
    int prim[3], rep[3];
    cluster_up("sharded", nodes, prim, rep);
    char q[3][16]; /* one queue per primary */
    for (int p = 0; p < 3; p++)
        queue_on(nodes, prim[p], "z", q[p]);
    char url[64], out[200], wlog[200], handler[200], hspec[260];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", rep[0]);
    snprintf(out, sizeof out, "%s/lashctl.log", root);
    snprintf(wlog, sizeof wlog, "%s/worker.log", root);
    snprintf(handler, sizeof handler, "%s/slow.sh", root);
    rel_script(handler, "exec sleep 30\n");
    snprintf(hspec, sizeof hspec, "slow=%s", handler);
    lash_err e = {0};
    lash_conn_opts o = {.timeout_ms = 5000, .failover_ms = 30000};
    cr_assert_eq(lash_connect_opts(url, &o, &rc, &e), LASH_OK, "%s", e.msg);
    const char *wargs[] = {"--builtin",  "noop",  "--handler",   hspec,   "--poll-ms", "60000",
                           "--lease-ms", "60000", "--log-level", "debug", "--queue",   q[0],
                           "--queue",    q[1],    "--queue",     q[2],    NULL};
    pid_t w = rel_worker(url, wlog, wargs);
    for (int p = 0; p < 3; p++)
        cr_assert(pinned_on_owner(nodes, 6, q[p], 10000),
                  "no sharded subscriber of queue %s on its primary (%s)", q[p], wlog);
    lash_fx_sleep_ms(300); /* past the startup drive */

    /* 1. A submit on each primary wakes the worker through its own shard. */
    for (int p = 0; p < 3; p++) {
        long long took = submit_until_done(url, q[p], "first", out);
        cr_expect(took >= 0 && took < 5000, "queue %s: submit to completion %lld ms (poll 60 s)",
                  q[p], took);
        rel_report("cluster", "sharded poke: %s submitted to completed in %lld ms", q[p], took);
    }

    /* 2. lashctl cancel of a running process: the cancel script's SPUBLISH. */
    const char *slow[] = {"--redis", url, "--queue", q[1], "submit", "slow", "--id", "slow", NULL};
    cr_assert_eq(ha_lashctl(slow, NULL, out), 0, "(%s)", out);
    cr_assert_eq(state_within(q[1], "slow", LASH_RUNNING, 10000), LASH_RUNNING,
                 "slow did not start");
    long long t0 = lash_fx_ms();
    const char *cancel[] = {"--redis", url, "--queue", q[1], "cancel", "slow", NULL};
    cr_assert_eq(ha_lashctl(cancel, NULL, out), 0, "lashctl cancel (%s)", out);
    cr_expect_eq(state_within(q[1], "slow", LASH_CANCELLED, 10000), LASH_CANCELLED,
                 "lashctl cancel did not stop the running process");
    rel_report("cluster", "sharded cancel: stopped %lld ms after lashctl cancel",
               lash_fx_ms() - t0);

    /* 3. q[0]'s slot migrates to prim[1]: Redis drops the sharded channels on
     * the old owner (sunsubscribe), and the subscriber follows to the new one. */
    int slot = lash_queue_slot(q[0]);
    migrate_begin(slot, prim[0], prim[1], -1);
    migrate_end(slot, prim[0], prim[1], nodes, 6);
    cr_assert_eq(owner_of(nodes, 6, slot), prim[1]);
    cr_expect(pinned_on_owner(nodes, 6, q[0], 10000),
              "the subscriber of %s did not follow its slot to %d (%s)", q[0], prim[1], wlog);
    long long took = submit_until_done(url, q[0], "migrated", out);
    cr_expect(took >= 0 && took < 5000, "after the migration: submit to completion %lld ms", took);
    rel_report("cluster", "sharded poke after the slot migration: %lld ms", took);

    /* 4. prim[2] is failed over by hand: its replica takes over the shard. */
    expect_ok(ha_cmd(rep[2], "CLUSTER FAILOVER"), "CLUSTER FAILOVER");
    cr_assert(ha_until(is_master, &rep[2], 15000), "replica %d did not take over", rep[2]);
    cr_expect(pinned_on_owner(nodes, 6, q[2], 15000),
              "the subscriber of %s did not follow the failover to %d (%s)", q[2], rep[2], wlog);
    took = submit_until_done(url, q[2], "failedover", out);
    cr_expect(took >= 0 && took < 5000, "after the failover: submit to completion %lld ms", took);
    rel_report("cluster", "sharded poke after CLUSTER FAILOVER: %lld ms", took);

    /* 5. That new primary is killed: its subscriber's connection drops, and it
     * is opened again on whichever node the map names once prim[2] is promoted. */
    ha_node *kn = NULL;
    for (int i = 0; i < 6; i++)
        if (nodes[i].port == rep[2]) kn = &nodes[i];
    ha_kill9(kn);
    cr_assert(ha_until(is_master, &prim[2], 30000), "%d was not promoted after the kill", prim[2]);
    cr_expect(pinned_on_owner(nodes, 6, q[2], 15000),
              "the subscriber of %s did not follow the kill to %d (%s)", q[2], prim[2], wlog);
    took = submit_until_done(url, q[2], "killed", out);
    cr_expect(took >= 0 && took < 5000, "after the kill: submit to completion %lld ms", took);
    rel_report("cluster", "sharded poke after kill -9 of the primary: %lld ms", took);

    cr_expect_eq(rel_stop(w, 15000), 0);
    lash_close(rc);
    for (int i = 0; i < 6; i++)
        ha_kill9(&nodes[i]);
}

/* ---- lashctl while a primary is gone ----------------------------------------- */

/* A primary is killed and lashctl starts at once, through a replica that still
 * names the dead node as the owner of its slots: lashctl waits the failover
 * out (--failover-ms) and submits to the promoted replica. It used to stop at
 * once with "cannot reach Redis at <the dead node>": loading the Functions
 * library visits every primary the map names, and gave up on the first that
 * did not answer. */
Test(cluster, lashctl_started_during_a_failover_waits_for_it, .fini = fini, .timeout = 120)
{
    ha_node nodes[6];
    int prim[3], rep[3];
    cluster_up("midfail", nodes, prim, rep);
    char q[16];
    queue_on(nodes, prim[1], "f", q);
    char url[64], out[200];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", rep[0]);
    snprintf(out, sizeof out, "%s/lashctl.log", root);
    const char *first[] = {"--redis", url, "--queue", q, "submit", "noop", "--id", "before", NULL};
    cr_assert_eq(ha_lashctl(first, NULL, out), 0, "lashctl submit: %s", ha_tail(out));
    for (int i = 0; i < 6; i++)
        if (nodes[i].port == prim[1]) ha_kill9(&nodes[i]);
    long long t0 = lash_fx_ms();
    const char *during[] = {"--redis", url,    "--queue", q,   "--failover-ms", "30000", "submit",
                            "noop",    "--id", "during",  NULL};
    int code = ha_lashctl(during, NULL, out);
    long long took = lash_fx_ms() - t0;
    cr_expect_eq(code, 0, "lashctl submit during the failover: exit %d after %lld ms: %s", code,
                 took, ha_tail(out));
    cr_expect(is_master(&rep[1]), "the submit returned before %d was promoted", rep[1]);
    lash_conn *c;
    lash_err e = {0};
    cr_assert_eq(lash_connect(url, 5000, &c, &e), LASH_OK, "%s", e.msg);
    lash_record r = lash_fx_get(c, q, "during");
    cr_expect_eq(r.state, LASH_PENDING, "the row submitted during the failover is not there");
    lash_record_free(&r);
    lash_close(c);
    rel_report("cluster",
               "lashctl started right after kill -9 of a primary: submitted after %lld ms", took);
    for (int i = 0; i < 6; i++)
        ha_kill9(&nodes[i]);
}
