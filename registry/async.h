/* async.h: the registry on a libev loop (hiredis async + its libev adapter).
 *
 * What the worker uses: claim, renew, complete and release without blocking, and
 * a subscriber for the poke and cancel channels. A lash_aconn is one logical
 * connection to the deployment a URL names (registry.h); the worker keeps two
 * (commands, pipelined; and subscriptions):
 *   - a single Redis: one hiredis connection, as always;
 *   - a Redis Cluster: a command connection holds one hiredis connection per
 *     primary its queues live on, opened when first needed; each command goes
 *     to the primary owning its queue's slot; MOVED re-reads the slot map and
 *     re-sends; a script meeting ASK, TRYAGAIN, CLUSTERDOWN or a lost node waits
 *     (parked: up to 4 s, a claim 1 s, never beyond failover_ms) and is sent
 *     again once the map names a primary that answers. Losing one node fails
 *     only the commands that were in flight on it (LASH_EIO, which the caller
 *     re-sends); the connection stays up. A subscriber is one hiredis
 *     connection: pinned to a queue (lash_aconn_open_pinned), on the primary
 *     that owns the queue's slot, where its sharded messages are; otherwise on
 *     any one node (classic pub/sub reaches every node);
 *   - Sentinel: the primary the Sentinels name, its role checked (HELLO) before
 *     on_up. Every Sentinel is listened to: when the one leading a failover
 *     starts promoting a replica (or any announces +switch-master), or a demoted
 *     primary answers READONLY, the connection drops, and new ones go straight
 *     to the replica being promoted (the other Sentinels still name the old
 *     primary for a while), its role checked until it says primary.
 * While a connection is coming up in a Cluster or under Sentinel it keeps
 * trying (other nodes; the Sentinels again every 100 ms) for up to failover_ms
 * before on_down.
 *
 * Every callback runs on the loop. When the connection breaks or is closed,
 * each command still waiting gets its callback with LASH_EIO, then on_down runs
 * once; after that the lash_aconn is inert until lash_aconn_close frees it.
 * hiredis 0.14 has no async timeouts: bounding how long a reply may take is the
 * caller's job (the worker's turn machine does it); connecting and setting up a
 * connection is bounded here (5 s; 2 s for a Sentinel).
 */
#ifndef LASH_REGISTRY_ASYNC_H
#define LASH_REGISTRY_ASYNC_H

#include <stdbool.h>
#include <stddef.h>

#include "registry/registry.h"

struct ev_loop;
typedef struct lash_aconn lash_aconn;

/* What the connections of one program learn about a deployment (its mode, the
 * Cluster's slot map and nodes, the node that worked last), so that a new
 * connection starts from it: a worker whose seed node died reconnects through
 * the others. failover_ms as in lash_conn_opts (0: $LASH_FAILOVER_MS, else
 * 30000). Free it after every connection opened on it is closed. */
typedef struct lash_atopo lash_atopo;
lash_status lash_atopo_new(struct ev_loop *loop, const lash_url *u, int failover_ms,
                           lash_atopo **out, lash_err *e);
void lash_atopo_free(lash_atopo *t);

/* on_up: connected, authenticated, database selected (Sentinel: the primary
 * confirmed; Cluster: the slot map read). on_down: failed to come up, or lost
 * afterwards; e says why. */
typedef struct {
    void (*on_up)(lash_aconn *c, void *ud);
    void (*on_down)(lash_aconn *c, const lash_err *e, void *ud);
    /* Subscriber connections only: a message on a subscribed channel. */
    void (*on_message)(lash_aconn *c, const char *channel, const char *msg, size_t len, void *ud);
} lash_aconn_cbs;

lash_status lash_aconn_open(lash_atopo *t, const lash_aconn_cbs *cbs, void *ud, lash_aconn **out,
                            lash_err *e);
/* A subscriber for the channels of one queue (cbs->on_message set): in a
 * Cluster it comes up on the primary that owns the queue's slot (the slot map
 * is read on the node itself before on_up; a node the map does not name owner
 * is left for the one it names), where SSUBSCRIBE of that queue's channels is
 * served. Elsewhere it is lash_aconn_open. */
lash_status lash_aconn_open_pinned(lash_atopo *t, const char *queue, const lash_aconn_cbs *cbs,
                                   void *ud, lash_aconn **out, lash_err *e);
/* Closes and frees; safe inside any callback of this connection. Callbacks of
 * commands still waiting run with LASH_EIO; on_down does not run. */
void lash_aconn_close(lash_aconn *c);
/* After on_down of a subscriber: true when it went down because a channel's
 * slot left its node (Redis sent sunsubscribe when the slot migrated, or
 * answered SSUBSCRIBE with MOVED): opening it again at once finds the owner. */
bool lash_aconn_moved(const lash_aconn *c);
/* Whether the deployment is known to be a Cluster (HELLO or a MOVED said so;
 * a redis:// URL is not known to be one before its first connection is up). */
bool lash_atopo_cluster(const lash_atopo *t);

/* Listens to the channels (on a connection used for nothing else) both ways:
 * SUBSCRIBE (classic: what an operator's `redis-cli PUBLISH` sends, carried to
 * every node of a Cluster) and SSUBSCRIBE (sharded: what the scripts send,
 * kept within the queue's shard), one SSUBSCRIBE per slot (Redis refuses one
 * that spans slots: CROSSSLOT). on_message hears both kinds alike. In a
 * Cluster every channel's slot must be owned by the connection's node (a
 * pinned subscriber, for its queue's channels): otherwise Redis answers MOVED
 * and the connection goes down (lash_aconn_moved), as it does when a slot
 * moves away later. Redis 7 or later: older servers refuse SSUBSCRIBE, and the
 * connection goes down with their error.
 *
 * hiredis 0.14 knows only SUBSCRIBE and PSUBSCRIBE: it hands every array reply
 * in subscribed mode to the callback it keeps under the channel's name (so the
 * SUBSCRIBE must come first, with the same names and callback: ssubscribe,
 * smessage and sunsubscribe then reach on_message in async.c), and it drops a
 * connection that gets an error reply there (MOVED, NOPERM) with the error as
 * the reason. Each SSUBSCRIBE leaves one unused callback in hiredis' list for
 * commands it does not know, until the connection is freed. */
lash_status lash_asubscribe(lash_aconn *c, const char *const *channels, size_t n, lash_err *e);

/* A claim reply: on LASH_OK the callee owns b's rows (lash_claim_batch_free). */
typedef void lash_aclaim_cb(lash_status st, lash_claim_batch *b, const lash_err *e, void *ud);
/* Per-row statuses (renew, complete, release, progress): n entries on LASH_OK. */
typedef void lash_astatus_cb(lash_status st, const int *status, size_t n, const lash_err *e,
                             void *ud);

/* A recover reply: on LASH_OK, r (the callee's for the call only) lists the leases. */
typedef void lash_arecover_cb(lash_status st, const lash_recovered *r, const lash_err *e, void *ud);

/* Each returns LASH_OK when the command is on its way (its callback will run),
 * an error (and no callback) when it could not be sent. */
lash_status lash_aclaim(lash_aconn *c, const char *queue, const char *owner, int n, int64_t ttl_ms,
                        lash_retention keep, uint32_t seq, int upkeep, lash_aclaim_cb *cb,
                        void *ud);
lash_status lash_arecover(lash_aconn *c, const char *queue, const char *owner, uint32_t seq,
                          lash_arecover_cb *cb, void *ud);
/* A peek reply: wait_ms until a row of the queue is eligible (lash_peek). */
typedef void lash_apeek_cb(lash_status st, int64_t wait_ms, const lash_err *e, void *ud);
lash_status lash_apeek(lash_aconn *c, const char *queue, lash_apeek_cb *cb, void *ud);
lash_status lash_arenew(lash_aconn *c, const char *queue, int64_t ttl_ms, const lash_lease *l,
                        size_t n, lash_astatus_cb *cb, void *ud);
lash_status lash_acomplete(lash_aconn *c, const char *queue, const lash_completion *r, size_t n,
                           lash_astatus_cb *cb, void *ud);
lash_status lash_arelease(lash_aconn *c, const char *queue, const lash_lease *l, const bool *ran,
                          size_t n, lash_astatus_cb *cb, void *ud);
/* Progress reports of running processes: status[i] is a lash_progress_status. */
lash_status lash_aprogress(lash_aconn *c, const char *queue, const lash_progress_report *r,
                           size_t n, lash_astatus_cb *cb, void *ud);

#endif
