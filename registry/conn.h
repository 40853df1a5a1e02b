/* conn.h (internal): the blocking connection, and where its commands go.
 *
 * A lash_conn is a connection to a deployment, not to one server:
 *   - a single Redis: one hiredis context, nothing routed, nothing retried (a
 *     broken connection is LASH_EIO at once, as it always was);
 *   - a Cluster (found out with HELLO when a redis:// URL is opened, or from
 *     the first MOVED): one context per node used, opened when first needed,
 *     commands sent to the primary owning their queue's slot, MOVED and ASK
 *     followed (route.h), the slot map read again after a MOVED or a lost node;
 *   - Sentinel (redis-sentinel:// URLs): the primary the Sentinels name, its role
 *     checked on connect, asked for again after READONLY or a lost connection.
 * In the last two, a call that meets a failover or a slot migration keeps
 * trying for up to failover_ms (pausing between attempts) before it fails.
 */
#ifndef LASH_REGISTRY_CONN_H
#define LASH_REGISTRY_CONN_H

#include <hiredis/hiredis.h>

#include "registry/argv.h"
#include "registry/registry.h"
#include "registry/route.h"

struct lash_conn {
    redisContext *ctx; /* where the last command went: what lash_conn_redis gives */
    lash_url url;
    int timeout_ms;
    int failover_ms;
    lash_topo_mode mode;
    bool borrowed;         /* a one-node view (lash_conn_each_primary): main is not ours */
    redisContext *main;    /* single: the connection; Sentinel: the primary; Cluster: the
                              seed until the map is known (NULL once lost) */
    lash_url_host main_at; /* Sentinel: the primary's address */
    int sentinel_next;     /* the Sentinel to ask first (the last that answered) */
    lash_slotmap map;      /* Cluster */
    redisContext **node;   /* Cluster: one per map node, NULL until used */
    size_t nnode;
    uint64_t dials;     /* connections opened so far: a change means a node was replaced */
    bool slots_refused; /* Cluster: CLUSTER SLOTS is not allowed; MOVED teaches the map */
    lash_sendpref send; /* script calls: FCALL or EVALSHA first (argv.h) */
};

/* Marks a connection's socket close-on-exec: hiredis opens it without, and a
 * program a worker runs must not inherit a socket it could speak to Redis on
 * with the worker's rights. */
void lash_fd_cloexec(int fd);

/* The password to use: LASH_REDIS_PASSWORD when set, else the URL's. */
const char *lash_url_password(const lash_url *u);

/* Sends one command that concerns queue (NULL: any node will do) and returns
 * its reply, the caller's to free; NULL means the connection broke (e says so,
 * naming `what`). Every registry operation that is not a script sends through
 * here, so where a command goes is decided in one place. */
redisReply *lash_conn_command(lash_conn *c, const char *queue, const char *what, int argc,
                              const char **argv, const size_t *len, lash_err *e);

/* Runs a finished script call, re-sending it as EVAL on NOSCRIPT. The reply is
 * the caller's to free; NULL means the connection broke (e says so). */
redisReply *lash_conn_script(lash_conn *c, lash_argv *a, lash_err *e);

/* ---- for callers that pipeline on one node themselves (lash_submit) ------------- */

/* The state of one call across its attempts. Zero-initialize. */
typedef struct {
    int64_t deadline; /* monotonic ms; 0 until the first setback */
    int pause_ms;
    int redirects;
} lash_attempts;

/* The context of the primary serving slot (-1: any node), connecting, reading
 * the map or asking the Sentinels as needed; NULL (e says why) when there is
 * none now. */
redisContext *lash_conn_route(lash_conn *c, int slot, lash_err *e);
/* After a setback on ctx while running a script for slot: r is the error reply,
 * or NULL when ctx broke or route gave none. Returns true when the call should
 * be sent again (the map refreshed, the Sentinels asked, paused as needed),
 * false when it must give up: a single Redis, a reply that is no redirect, or
 * failover_ms spent. */
bool lash_conn_retry(lash_conn *c, redisContext *ctx, const redisReply *r, int slot,
                     lash_attempts *t);

#endif
