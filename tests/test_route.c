/* test_route.c: the routing layer without servers (registry/route.h, proto/slot.h,
 * redis-sentinel:// URLs). The slot function is also checked against a real
 * CLUSTER KEYSLOT, in test_ha_cluster.c.
 *
 * Replies are built from RESP text with hiredis' reader and lash's reply
 * functions (registry/resp.h), so each test shows the exact bytes a node or a
 * Sentinel would send.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/slot.h"
#include "proto/url.h"
#include "registry/resp.h"
#include "registry/route.h"

/* The reply RESP text `text` parses to (the test's to free). */
static redisReply *resp(const char *text)
{
    redisReader *rd = redisReaderCreateWithFunctions(lash_resp_functions());
    cr_assert(rd);
    cr_assert_eq(redisReaderFeed(rd, text, strlen(text)), REDIS_OK);
    void *r = NULL;
    cr_assert_eq(redisReaderGetReply(rd, &r), REDIS_OK, "bad RESP in test: %s", text);
    cr_assert(r, "incomplete RESP in test: %s", text);
    redisReaderFree(rd);
    return r;
}

/* ---- slots ------------------------------------------------------------------------ */

Test(slot, crc16_is_xmodem)
{
    cr_expect_eq(lash_crc16("123456789", 9), 0x31C3); /* the XMODEM check value */
    cr_expect_eq(lash_crc16("", 0), 0);
}

Test(slot, hash_tags_follow_the_cluster_rules)
{
    /* Values from the Redis Cluster specification's examples. */
    cr_expect_eq(lash_key_slot("foo", 3), 12182);
    cr_expect_eq(lash_key_slot("{user1000}.following", 20),
                 lash_key_slot("{user1000}.followers", 20));
    cr_expect_eq(lash_key_slot("{user1000}.following", 20), lash_key_slot("user1000", 8));
    /* The first {...} counts; an empty one makes the whole key count. */
    cr_expect_eq(lash_key_slot("foo{bar}{zap}", 13), lash_key_slot("bar", 3));
    cr_expect_eq(lash_key_slot("foo{{bar}}zap", 13), lash_key_slot("{bar", 4));
    cr_expect_eq(lash_key_slot("foo{}{bar}", 10), lash_crc16("foo{}{bar}", 10) & 16383);
    cr_expect_eq(lash_key_slot("foo{bar", 7), lash_crc16("foo{bar", 7) & 16383);
}

Test(slot, every_key_of_a_queue_shares_its_slot)
{
    const char *keys[] = {"lash:{q1}", "lash:{q1}:due", "lash:{q1}:p:abc", "lash:{q1}:lease:x"};
    for (size_t i = 0; i < 4; i++)
        cr_expect_eq(lash_key_slot(keys[i], strlen(keys[i])), lash_queue_slot("q1"), "%s", keys[i]);
}

/* ---- the slot map ------------------------------------------------------------------ */

/* CLUSTER SLOTS of Redis 7: {first, last, {ip, port, id, {hostname...}}, replicas...}. */
static const char slots3[] = "*3\r\n"
                             "*4\r\n:0\r\n:5460\r\n"
                             "*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$2\r\nid\r\n*0\r\n"
                             "*4\r\n$9\r\n127.0.0.1\r\n:7004\r\n$2\r\nid\r\n*0\r\n"
                             "*3\r\n:5461\r\n:10922\r\n"
                             "*3\r\n$9\r\n127.0.0.1\r\n:7002\r\n$2\r\nid\r\n"
                             "*4\r\n:10923\r\n:16383\r\n"
                             "*2\r\n$0\r\n\r\n:7003\r\n" /* a node that does not know its own IP */
                             "*2\r\n$9\r\n127.0.0.1\r\n:7006\r\n";

Test(slotmap, reads_owners_primaries_and_replicas)
{
    lash_slotmap m;
    lash_slotmap_init(&m);
    redisReply *r = resp(slots3);
    lash_err e = {0};
    cr_assert_eq(lash_slotmap_parse(&m, r, "10.0.0.9", &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(lash_slotmap_owner(&m, 0)->port, 7001);
    cr_expect_eq(lash_slotmap_owner(&m, 5460)->port, 7001);
    cr_expect_eq(lash_slotmap_owner(&m, 5461)->port, 7002);
    cr_expect_eq(lash_slotmap_owner(&m, 16383)->port, 7003);
    cr_expect_str_eq(lash_slotmap_owner(&m, 16383)->host, "10.0.0.9");
    cr_expect_eq(m.nnodes, 5, "primaries and replicas are all known");
    int primaries = 0;
    for (size_t i = 0; i < m.nnodes; i++)
        primaries += m.primary[i];
    cr_expect_eq(primaries, 3);
    /* Reading the same map again keeps the node indexes and the version. */
    uint64_t v = m.version;
    int idx = m.owner[0];
    cr_assert_eq(lash_slotmap_parse(&m, r, "10.0.0.9", &e), LASH_OK);
    cr_expect_eq(m.version, v);
    cr_expect_eq(m.owner[0], idx);
    freeReplyObject(r);
    lash_slotmap_free(&m);
}

Test(slotmap, a_partial_map_leaves_unknown_slots_unknown)
{
    lash_slotmap m;
    lash_slotmap_init(&m);
    redisReply *r = resp("*1\r\n*3\r\n:100\r\n:200\r\n*2\r\n$1\r\nh\r\n:1\r\n");
    cr_assert_eq(lash_slotmap_parse(&m, r, NULL, NULL), LASH_OK);
    cr_expect_null(lash_slotmap_owner(&m, 99));
    cr_expect_not_null(lash_slotmap_owner(&m, 150));
    cr_expect_null(lash_slotmap_owner(&m, 201));
    cr_expect_null(lash_slotmap_owner(&m, -1));
    cr_expect_null(lash_slotmap_owner(&m, 16384));
    freeReplyObject(r);
    lash_slotmap_free(&m);
}

Test(slotmap, malformed_replies_are_a_clear_error_and_change_nothing)
{
    static const char *const bad[] = {
        "+OK\r\n",
        ":5\r\n",
        "*1\r\n:1\r\n",
        "*1\r\n*2\r\n:0\r\n:1\r\n",                                    /* no node */
        "*1\r\n*3\r\n:9\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",             /* first > last */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",         /* slot 16384 */
        "*1\r\n*3\r\n:-1\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",            /* slot -1 */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:0\r\n",             /* port 0 */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:70000\r\n",         /* port 70000 */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n:1\r\n:1\r\n",                  /* ip a number */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\n?\r\n:1\r\n",             /* unknown endpoint */
        "*1\r\n*3\r\n:0\r\n:5\r\n*1\r\n$1\r\nh\r\n",                   /* no port */
        "*1\r\n*3\r\n:0\r\n:5\r\n:7\r\n",                              /* node not an array */
        "*1\r\n*3\r\n$1\r\nx\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n",        /* slot not a number */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$3\r\na b\r\n:1\r\n",           /* space in address */
        "*1\r\n*3\r\n:0\r\n:5\r\n*2\r\n$0\r\n\r\n:1\r\n",              /* "" and no asked host */
        "*2\r\n*3\r\n:0\r\n:5\r\n*2\r\n$1\r\nh\r\n:1\r\n*1\r\n:1\r\n", /* second range broken */
    };
    lash_slotmap m;
    lash_slotmap_init(&m);
    redisReply *good = resp(slots3);
    cr_assert_eq(lash_slotmap_parse(&m, good, "x", NULL), LASH_OK);
    freeReplyObject(good);
    uint16_t before[LASH_SLOTS];
    memcpy(before, m.owner, sizeof before);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        redisReply *r = resp(bad[i]);
        lash_err e = {0};
        cr_expect_eq(lash_slotmap_parse(&m, r, NULL, &e), LASH_EPROTO, "case %zu accepted", i);
        cr_expect(strstr(e.msg, "CLUSTER SLOTS"), "case %zu: %s", i, e.msg);
        cr_expect_eq(memcmp(before, m.owner, sizeof before), 0, "case %zu changed the map", i);
        freeReplyObject(r);
    }
    redisReply *err = resp("-NOPERM this user has no permissions to run 'cluster|slots'\r\n");
    lash_err e = {0};
    cr_expect_eq(lash_slotmap_parse(&m, err, NULL, &e), LASH_EREDIS);
    cr_expect(strstr(e.msg, "NOPERM"), "%s", e.msg);
    freeReplyObject(err);
    cr_expect_eq(lash_slotmap_parse(&m, NULL, NULL, &e), LASH_EIO);
    lash_slotmap_free(&m);
}

Test(slotmap, the_node_table_is_bounded)
{
    lash_slotmap m;
    lash_slotmap_init(&m);
    char host[32];
    for (int i = 0; i < LASH_ROUTE_NODES_MAX; i++) {
        snprintf(host, sizeof host, "h%d", i);
        cr_assert_eq(lash_slotmap_node(&m, host, 1), i);
    }
    cr_expect_eq(lash_slotmap_node(&m, "one-more", 1), -1);
    cr_expect_eq(lash_slotmap_node(&m, "h5", 1), 5, "known nodes are still found");
    lash_slotmap_free(&m);
}

/* ---- redirects and what to do ------------------------------------------------------- */

static lash_reply_kind kind_of(const char *err, lash_redirect *d)
{
    return lash_redirect_parse(err, strlen(err), "10.1.1.1", d);
}

Test(redirect, moved_and_ask_name_slot_and_address)
{
    lash_redirect d;
    cr_expect_eq(kind_of("MOVED 3999 127.0.0.1:6381", &d), LASH_REPLY_MOVED);
    cr_expect_eq(d.slot, 3999);
    cr_expect_str_eq(d.to.host, "127.0.0.1");
    cr_expect_eq(d.to.port, 6381);
    cr_expect_eq(kind_of("ASK 15495 10.0.0.2:7000", &d), LASH_REPLY_ASK);
    cr_expect_eq(d.slot, 15495);
    cr_expect_eq(kind_of("MOVED 1 ::1:7000", &d), LASH_REPLY_MOVED); /* IPv6, unbracketed */
    cr_expect_str_eq(d.to.host, "::1");
    cr_expect_eq(kind_of("MOVED 12 :7001", &d), LASH_REPLY_MOVED); /* "the host you reached" */
    cr_expect_str_eq(d.to.host, "10.1.1.1");
    cr_expect_eq(kind_of("MOVED 12 redis-2.internal:7001", &d), LASH_REPLY_MOVED);
}

Test(redirect, unreadable_redirects_stay_plain_errors)
{
    static const char *const bad[] = {
        "MOVED",        "MOVED ",       "MOVED x 1.2.3.4:1", "MOVED 16384 h:1", "MOVED -1 h:1",
        "MOVED 1 h",    "MOVED 1 h:",   "MOVED 1 h:0",       "MOVED 1 h:99999", "ASK 1",
        "MOVED 1 h:1x", "MOVEDX 1 h:1", "MOVED 1 a b:1",     "ASKING 1 h:1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lash_redirect d;
        cr_expect_eq(kind_of(bad[i], &d), LASH_REPLY_PLAIN, "'%s' was read as a redirect", bad[i]);
    }
    lash_redirect d;
    cr_expect_eq(lash_redirect_parse("MOVED 1 :7", 10, NULL, &d), LASH_REPLY_PLAIN);
    cr_expect_eq(lash_redirect_parse(NULL, 0, NULL, &d), LASH_REPLY_PLAIN);
}

Test(redirect, the_other_kinds)
{
    lash_redirect d;
    cr_expect_eq(kind_of("TRYAGAIN Multiple keys request during rehashing of slot", &d),
                 LASH_REPLY_TRYAGAIN);
    cr_expect_eq(kind_of("CLUSTERDOWN The cluster is down", &d), LASH_REPLY_CLUSTERDOWN);
    cr_expect_eq(kind_of("READONLY You can't write against a read only replica.", &d),
                 LASH_REPLY_READONLY);
    cr_expect_eq(kind_of("LOADING Redis is loading the dataset in memory", &d), LASH_REPLY_LOADING);
    cr_expect_eq(kind_of("MASTERDOWN Link with MASTER is down", &d), LASH_REPLY_MASTERDOWN);
    cr_expect_eq(kind_of("ERR unknown command", &d), LASH_REPLY_PLAIN);
    cr_expect_eq(kind_of("NOSCRIPT No matching script", &d), LASH_REPLY_PLAIN);
}

/* One decision: reply text -> step, with the map it leaves. */
static lash_route_step decide(lash_slotmap *m, lash_topo_mode mode, const char *reply, int slot,
                              bool script, int redirects, lash_url_host *to)
{
    redisReply *r = resp(reply);
    lash_route_step s = lash_route_reply(m, mode, r, slot, script, "10.1.1.1", redirects, to);
    freeReplyObject(r);
    return s;
}

Test(route, moved_updates_the_map_and_resends)
{
    lash_slotmap m;
    lash_slotmap_init(&m);
    redisReply *r = resp(slots3);
    cr_assert_eq(lash_slotmap_parse(&m, r, "x", NULL), LASH_OK);
    freeReplyObject(r);
    uint64_t v = m.version;
    lash_url_host to;
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, "-MOVED 100 127.0.0.1:7009\r\n", 100, true, 0, &to),
                 LASH_ROUTE_RESEND);
    cr_expect_eq(lash_slotmap_owner(&m, 100)->port, 7009);
    cr_expect_eq(lash_slotmap_owner(&m, 101)->port, 7001, "only that slot is known to move");
    cr_expect_gt(m.version, v);
    cr_expect_eq(to.port, 7009);
    /* A redirect about another slot than the command's is not followed. */
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, "-MOVED 5 127.0.0.1:7009\r\n", 100, true, 0, &to),
                 LASH_ROUTE_DONE);
    cr_expect_eq(lash_slotmap_owner(&m, 5)->port, 7001);
    /* Nor one for a keyless command, nor past the redirect bound. */
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, "-MOVED 5 h:1\r\n", -1, true, 0, &to),
                 LASH_ROUTE_DONE);
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, "-MOVED 100 h:2\r\n", 100, true,
                        LASH_ROUTE_REDIRECTS_MAX, &to),
                 LASH_ROUTE_DONE);
    lash_slotmap_free(&m);
}

/* conn.c re-reads the map on MOVED, maybe from a replica that has not heard of
 * the migration, then applies the MOVED again: the MOVED wins over the map. */
Test(route, a_moved_outlives_a_stale_map_read_after_it)
{
    lash_slotmap m;
    lash_slotmap_init(&m);
    redisReply *r = resp(slots3);
    cr_assert_eq(lash_slotmap_parse(&m, r, "x", NULL), LASH_OK);
    lash_url_host to = {"127.0.0.1", 7002};
    cr_assert(lash_slotmap_moved(&m, 100, &to));
    cr_assert_eq(lash_slotmap_parse(&m, r, "x", NULL), LASH_OK); /* the stale map */
    cr_expect_eq(lash_slotmap_owner(&m, 100)->port, 7001, "a map read replaces the owners");
    uint64_t v = m.version;
    cr_assert(lash_slotmap_moved(&m, 100, &to));
    cr_expect_eq(lash_slotmap_owner(&m, 100)->port, 7002);
    cr_expect_eq(lash_slotmap_owner(&m, 99)->port, 7001, "only the slot the MOVED named");
    cr_expect_gt(m.version, v);
    cr_expect_not(lash_slotmap_moved(&m, LASH_SLOTS, &to), "a slot out of range is refused");
    freeReplyObject(r);
    lash_slotmap_free(&m);
}

Test(route, ask_is_followed_by_plain_commands_and_waited_out_by_scripts)
{
    lash_slotmap m;
    lash_slotmap_init(&m);
    lash_url_host to;
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, "-ASK 77 127.0.0.1:7002\r\n", 77, false, 0, &to),
                 LASH_ROUTE_ASKING);
    cr_expect_eq(to.port, 7002);
    cr_expect_null(lash_slotmap_owner(&m, 77), "ASK does not change the map");
    /* A script's key is only the queue's anchor: on the importing node it would
     * see half a queue (route.h). It waits for MOVED instead. */
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, "-ASK 77 127.0.0.1:7002\r\n", 77, true, 0, &to),
                 LASH_ROUTE_WAIT);
    cr_expect_null(lash_slotmap_owner(&m, 77));
    lash_slotmap_free(&m);
}

Test(route, waits_and_refreshes_only_where_a_failover_can_help)
{
    lash_slotmap m;
    lash_slotmap_init(&m);
    lash_url_host to;
    const char *tryagain = "-TRYAGAIN x\r\n", *down = "-CLUSTERDOWN x\r\n", *ro = "-READONLY x\r\n",
               *loading = "-LOADING x\r\n";
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, tryagain, 1, true, 0, &to), LASH_ROUTE_WAIT);
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, down, 1, true, 0, &to), LASH_ROUTE_REFRESH);
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, loading, 1, true, 0, &to), LASH_ROUTE_WAIT);
    cr_expect_eq(decide(&m, LASH_TOPO_SENTINEL, ro, 1, true, 0, &to), LASH_ROUTE_REFRESH);
    cr_expect_eq(decide(&m, LASH_TOPO_SENTINEL, "-MASTERDOWN x\r\n", 1, true, 0, &to),
                 LASH_ROUTE_REFRESH);
    /* A single Redis answers at once, as it always did. */
    cr_expect_eq(decide(&m, LASH_TOPO_SINGLE, ro, 1, true, 0, &to), LASH_ROUTE_DONE);
    cr_expect_eq(decide(&m, LASH_TOPO_SINGLE, loading, 1, true, 0, &to), LASH_ROUTE_DONE);
    cr_expect_eq(decide(&m, LASH_TOPO_SINGLE, tryagain, 1, true, 0, &to), LASH_ROUTE_DONE);
    /* Anything else is the caller's. */
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, "-ERR wrong\r\n", 1, true, 0, &to), LASH_ROUTE_DONE);
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, "-MOVED garbage\r\n", 1, true, 0, &to),
                 LASH_ROUTE_DONE);
    cr_expect_eq(decide(&m, LASH_TOPO_CLUSTER, "+OK\r\n", 1, true, 0, &to), LASH_ROUTE_DONE);
    cr_expect_eq(lash_route_reply(&m, LASH_TOPO_CLUSTER, NULL, 1, true, "h", 0, &to),
                 LASH_ROUTE_DONE);
    lash_slotmap_free(&m);
}

/* ---- what nodes and Sentinels say ---------------------------------------------------- */

Test(node, hello_gives_mode_and_role)
{
    lash_node_info i;
    redisReply *r = resp("*14\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n"
                         "$5\r\nproto\r\n:2\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$7\r\ncluster\r\n"
                         "$4\r\nrole\r\n$7\r\nreplica\r\n$7\r\nmodules\r\n*0\r\n");
    cr_assert_eq(lash_hello_parse(r, &i, NULL), LASH_OK);
    cr_expect_eq(i.mode, LASH_TOPO_CLUSTER);
    cr_expect_not(i.primary);
    cr_expect_not(i.sentinel);
    freeReplyObject(r);
    r = resp("*4\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n");
    cr_assert_eq(lash_hello_parse(r, &i, NULL), LASH_OK);
    cr_expect_eq(i.mode, LASH_TOPO_SINGLE);
    cr_expect(i.primary);
    freeReplyObject(r);
    r = resp("*4\r\n$4\r\nmode\r\n$8\r\nsentinel\r\n$4\r\nrole\r\n$6\r\nmaster\r\n");
    cr_assert_eq(lash_hello_parse(r, &i, NULL), LASH_OK);
    cr_expect(i.sentinel);
    freeReplyObject(r);
}

Test(node, malformed_hello_role_and_sentinel_replies)
{
    static const char *const hello[] = {
        "*3\r\n$4\r\nmode\r\n$7\r\ncluster\r\n$4\r\nrole\r\n",               /* odd */
        "*2\r\n$4\r\nmode\r\n$7\r\ncluster\r\n",                             /* no role */
        "*4\r\n$4\r\nmode\r\n$5\r\nweird\r\n$4\r\nrole\r\n$6\r\nmaster\r\n", /* unknown mode */
        "+OK\r\n",
        "-ERR unknown command 'HELLO'\r\n",
    };
    for (size_t i = 0; i < sizeof hello / sizeof hello[0]; i++) {
        redisReply *r = resp(hello[i]);
        lash_node_info info;
        lash_err e = {0};
        cr_expect_neq(lash_hello_parse(r, &info, &e), LASH_OK, "hello case %zu", i);
        cr_expect(strstr(e.msg, "HELLO"), "%s", e.msg);
        freeReplyObject(r);
    }
    bool p;
    redisReply *r = resp("*3\r\n$6\r\nmaster\r\n:0\r\n*0\r\n");
    cr_expect_eq(lash_role_parse(r, &p, NULL), LASH_OK);
    cr_expect(p);
    freeReplyObject(r);
    r = resp("*5\r\n$5\r\nslave\r\n$1\r\nh\r\n:1\r\n$9\r\nconnected\r\n:1\r\n");
    cr_expect_eq(lash_role_parse(r, &p, NULL), LASH_OK);
    cr_expect_not(p);
    freeReplyObject(r);
    static const char *const role[] = {"*0\r\n", ":1\r\n", "*1\r\n$4\r\nboss\r\n", "*1\r\n:1\r\n"};
    for (size_t i = 0; i < sizeof role / sizeof role[0]; i++) {
        r = resp(role[i]);
        cr_expect_eq(lash_role_parse(r, &p, NULL), LASH_EPROTO, "role case %zu", i);
        freeReplyObject(r);
    }
    cr_expect_eq(lash_role_parse(NULL, &p, NULL), LASH_EIO);
}

Test(node, sentinel_names_the_primary)
{
    lash_url_host h;
    lash_err e = {0};
    redisReply *r = resp("*2\r\n$9\r\n127.0.0.1\r\n$4\r\n6380\r\n");
    cr_assert_eq(lash_sentinel_master_parse(r, &h, &e), LASH_OK, "%s", e.msg);
    cr_expect_str_eq(h.host, "127.0.0.1");
    cr_expect_eq(h.port, 6380);
    freeReplyObject(r);
    r = resp("*-1\r\n");
    cr_expect_eq(lash_sentinel_master_parse(r, &h, &e), LASH_ENOTFOUND);
    freeReplyObject(r);
    r = resp("$-1\r\n");
    cr_expect_eq(lash_sentinel_master_parse(r, &h, &e), LASH_ENOTFOUND);
    freeReplyObject(r);
    r = resp("-ERR No such master with that name\r\n");
    cr_expect_eq(lash_sentinel_master_parse(r, &h, &e), LASH_EREDIS);
    freeReplyObject(r);
    static const char *const bad[] = {
        "*1\r\n$1\r\nh\r\n",
        "*2\r\n$1\r\nh\r\n$1\r\n0\r\n",
        "*2\r\n$1\r\nh\r\n$5\r\n65536\r\n",
        "*2\r\n$0\r\n\r\n$2\r\n10\r\n",
        "*2\r\n:1\r\n$2\r\n10\r\n",
        "*2\r\n$1\r\nh\r\n$2\r\nab\r\n",
        "*3\r\n$1\r\nh\r\n$2\r\n10\r\n$1\r\nx\r\n",
        "*2\r\n$3\r\na\nb\r\n$2\r\n10\r\n",
        "+OK\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = resp(bad[i]);
        cr_expect_eq(lash_sentinel_master_parse(r, &h, &e), LASH_EPROTO, "case %zu", i);
        freeReplyObject(r);
    }
}

Test(node, sentinel_events_that_move_the_primary)
{
    lash_url_host h;
    const char *sw = "mymaster 127.0.0.1 6379 127.0.0.1 6380";
    cr_assert(lash_sentinel_event_parse("+switch-master", sw, strlen(sw), "mymaster", &h));
    cr_expect_str_eq(h.host, "127.0.0.1");
    cr_expect_eq(h.port, 6380);
    cr_expect_not(lash_sentinel_event_parse("+switch-master", sw, strlen(sw), "other", &h));
    cr_expect_not(lash_sentinel_event_parse("+switch-master", sw, strlen(sw), "mymaste", &h));
    const char *pr = "slave 10.0.0.2:6381 10.0.0.2 6381 @ mymaster 10.0.0.1 6379";
    cr_assert(lash_sentinel_event_parse(LASH_SENTINEL_PROMOTING, pr, strlen(pr), "mymaster", &h));
    cr_expect_str_eq(h.host, "10.0.0.2");
    cr_expect_eq(h.port, 6381);
    cr_expect_not(lash_sentinel_event_parse(LASH_SENTINEL_PROMOTING, pr, strlen(pr), "x", &h));
    /* The same text on another channel says nothing. */
    cr_expect_not(lash_sentinel_event_parse("+sdown", pr, strlen(pr), "mymaster", &h));
    cr_expect_not(lash_sentinel_event_parse(NULL, pr, strlen(pr), "mymaster", &h));
    static const char *const bad_switch[] = {
        "",
        "mymaster",
        "mymaster 1 2 3",
        "mymaster 1 2 3 4 5",
        "mymaster  1 2 3 4",
        "mymaster 1 2 3 4 ",
        "mymaster 1 2 h 0",
        "mymaster 1 2 h 65536",
        "mymaster 1 2 h x",
        "mymaster 1 2 h\x01 5",
    };
    for (size_t i = 0; i < sizeof bad_switch / sizeof bad_switch[0]; i++)
        cr_expect_not(lash_sentinel_event_parse("+switch-master", bad_switch[i],
                                                strlen(bad_switch[i]), "mymaster", &h),
                      "'%s'", bad_switch[i]);
    static const char *const bad_promo[] = {
        "master 1:2 1 2 @ mymaster 1 2",  "slave 1:2 1 2 # mymaster 1 2",
        "slave 1:2 1 2 @ mymaster 1",     "slave 1:2 1 0 @ mymaster 1 2",
        "slave 1:2 1 2 @ mymaster 1 2 3",
    };
    for (size_t i = 0; i < sizeof bad_promo / sizeof bad_promo[0]; i++)
        cr_expect_not(lash_sentinel_event_parse(LASH_SENTINEL_PROMOTING, bad_promo[i],
                                                strlen(bad_promo[i]), "mymaster", &h),
                      "'%s'", bad_promo[i]);
}

/* ---- redis-sentinel:// URLs ----------------------------------------------------------- */

Test(sentinel_url, accepted_forms)
{
    lash_url u;
    lash_err e = {0};
    cr_assert_eq(
        lash_url_parse("redis-sentinel://h1:26379,h2:26380,[::1]:26381/3#mymaster", &u, &e),
        LASH_OK, "%s", e.msg);
    cr_expect_eq(u.nsentinels, 3);
    cr_expect_str_eq(u.sentinels[1].host, "h2");
    cr_expect_eq(u.sentinels[1].port, 26380);
    cr_expect_str_eq(u.sentinels[2].host, "::1");
    cr_expect_eq(u.db, 3);
    cr_expect_str_eq(u.master, "mymaster");
    cr_expect_str_eq(u.host, "");
    cr_assert_eq(lash_url_parse("redis-sentinel://lash-worker@s1,s2#prod.q%2D1", &u, &e), LASH_OK,
                 "%s", e.msg);
    cr_expect_eq(u.sentinels[0].port, LASH_SENTINEL_PORT);
    cr_expect_str_eq(u.user, "lash-worker");
    cr_expect_str_eq(u.master, "prod.q-1");
    cr_assert_eq(lash_url_parse("redis-sentinel://:pw@s1#m", &u, &e), LASH_OK);
    cr_expect_str_eq(u.password, "pw");
}

Test(sentinel_url, rejections)
{
    static const char *const bad[] = {
        "redis-sentinel://h1:26379",  /* no master */
        "redis-sentinel://h1:26379#", /* empty master */
        "redis-sentinel://#m",        /* no Sentinel */
        "redis-sentinel://h1,#m",     /* an empty one */
        "redis-sentinel://h1,,h2#m",
        "redis-sentinel://h1:0#m",
        "redis-sentinel://h1:x#m",
        "redis-sentinel://h1/x#m",
        "redis-sentinel://h1#m%00",
        "redis-sentinel://h1#a%20b",
        "redis-sentinel://a,b,c,d,e,f,g,h,i#m", /* more than 8 */
        "sentinel://h1#m",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lash_url u;
        lash_err e = {0};
        cr_expect_eq(lash_url_parse(bad[i], &u, &e), LASH_EINVAL, "'%s' accepted", bad[i]);
        cr_expect(strstr(e.msg, "URL"), "'%s': %s", bad[i], e.msg);
    }
}

Test(sentinel_url, describe_names_every_sentinel_and_hides_the_password)
{
    lash_url u;
    char buf[512];
    cr_assert_eq(lash_url_parse("redis-sentinel://app:hunter2@s1:26379,s2:1/2#mymaster", &u, NULL),
                 LASH_OK);
    lash_url_describe(&u, buf, sizeof buf);
    cr_expect_null(strstr(buf, "hunter2"), "%s", buf);
    cr_expect_str_eq(buf, "redis-sentinel://app:***@s1:26379,s2:1/2#mymaster");
}
