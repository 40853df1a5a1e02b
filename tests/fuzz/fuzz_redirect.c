/* fuzz_redirect: every parser of the routing layer (registry/route.h) on replies
 * built from arbitrary RESP bytes: CLUSTER SLOTS, HELLO, ROLE, SENTINEL
 * get-master-addr-by-name, redirects and the routing decision, and Sentinel
 * events. Each must answer (LASH_OK or a status with a message), never crash,
 * and keep the slot map consistent. */
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/resp.h"
#include "registry/route.h"

static void check_map(const lash_slotmap *m)
{
    for (int s = 0; s < LASH_SLOTS; s++)
        if (m->owner[s] != LASH_NO_NODE && m->owner[s] >= m->nnodes) abort();
    for (size_t i = 0; i < m->nnodes; i++)
        if (!memchr(m->nodes[i].host, 0, sizeof m->nodes[i].host) || m->nodes[i].port < 1 ||
            m->nodes[i].port > 65535)
            abort();
}

static void one(const redisReply *r, lash_slotmap *m)
{
    lash_err e = {0};
    lash_status st = lash_slotmap_parse(m, r, "10.0.0.1", &e);
    if (st && !e.msg[0]) abort();
    check_map(m);
    lash_node_info info;
    e.msg[0] = 0;
    if ((st = lash_hello_parse(r, &info, &e)) && !e.msg[0]) abort();
    bool primary;
    e.msg[0] = 0;
    if ((st = lash_role_parse(r, &primary, &e)) && !e.msg[0]) abort();
    lash_url_host h;
    e.msg[0] = 0;
    if ((st = lash_sentinel_master_parse(r, &h, &e)) && !e.msg[0]) abort();
    if (!st && (!h.host[0] || h.port < 1 || h.port > 65535)) abort();
    for (int mode = 0; mode < 3; mode++)
        for (int script = 0; script < 2; script++) {
            lash_url_host to;
            lash_route_step s =
                lash_route_reply(m, (lash_topo_mode)mode, r, 77, script, "h", 0, &to);
            if (s > LASH_ROUTE_REFRESH) abort();
            if ((s == LASH_ROUTE_RESEND || s == LASH_ROUTE_ASKING) && (to.port < 1 || !to.host[0]))
                abort();
        }
    check_map(m);
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_ERROR ||
        r->type == REDIS_REPLY_STATUS) {
        lash_redirect d;
        lash_redirect_parse(r->str, r->len, "h", &d);
        lash_url_host to;
        if (lash_sentinel_event_parse("+switch-master", r->str, r->len, "mymaster", &to) &&
            (to.port < 1 || to.port > 65535))
            abort();
        if (lash_sentinel_event_parse(LASH_SENTINEL_PROMOTING, r->str, r->len, "mymaster", &to) &&
            (to.port < 1 || to.port > 65535))
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    redisReader *rd = redisReaderCreateWithFunctions(lash_resp_functions());
    if (!rd) abort();
    static lash_slotmap m;
    static int init;
    if (!init) {
        lash_slotmap_init(&m);
        init = 1;
    }
    if (redisReaderFeed(rd, (const char *)data, size) == REDIS_OK) {
        void *r = NULL;
        for (int k = 0; k < 64 && redisReaderGetReply(rd, &r) == REDIS_OK && r; k++) {
            one(r, &m);
            freeReplyObject(r);
            r = NULL;
        }
    }
    redisReaderFree(rd);
    return 0;
}
