/* async.h: the registry on a libev loop (hiredis async + its libev adapter).
 *
 * What the worker uses: claim, renew, complete and release without blocking, and
 * a subscriber for the poke and cancel channels. A lash_aconn is one Redis
 * connection; the worker keeps two (commands, pipelined; and subscriptions).
 *
 * Every callback runs on the loop. When the connection breaks or is closed,
 * each command still waiting gets its callback with LASH_EIO, then on_down runs
 * once; after that the lash_aconn is inert until lash_aconn_close frees it.
 * hiredis 0.14 has no async timeouts: bounding how long a reply may take is the
 * caller's job (the worker's turn machine does it).
 */
#ifndef LASH_REGISTRY_ASYNC_H
#define LASH_REGISTRY_ASYNC_H

#include <stddef.h>

#include "registry/registry.h"

struct ev_loop;
typedef struct lash_aconn lash_aconn;

/* on_up: connected, authenticated, database selected. on_down: failed to come
 * up, or lost afterwards; e says why. */
typedef struct {
    void (*on_up)(lash_aconn *c, void *ud);
    void (*on_down)(lash_aconn *c, const lash_err *e, void *ud);
    /* Subscriber connections only: a message on a subscribed channel. */
    void (*on_message)(lash_aconn *c, const char *channel, const char *msg, size_t len, void *ud);
} lash_aconn_cbs;

lash_status lash_aconn_open(struct ev_loop *loop, const lash_url *u, const lash_aconn_cbs *cbs,
                            void *ud, lash_aconn **out, lash_err *e);
/* Closes and frees; safe inside any callback of this connection. Callbacks of
 * commands still waiting run with LASH_EIO; on_down does not run. */
void lash_aconn_close(lash_aconn *c);

/* SUBSCRIBE to the channels (on a connection used for nothing else). */
lash_status lash_asubscribe(lash_aconn *c, const char *const *channels, size_t n, lash_err *e);

/* A claim reply: on LASH_OK the callee owns b's rows (lash_claim_batch_free). */
typedef void lash_aclaim_cb(lash_status st, lash_claim_batch *b, const lash_err *e, void *ud);
/* Per-row statuses (renew, complete, release): n entries on LASH_OK. */
typedef void lash_astatus_cb(lash_status st, const int *status, size_t n, const lash_err *e,
                             void *ud);

/* A recover reply: on LASH_OK, r (the callee's for the call only) lists the leases. */
typedef void lash_arecover_cb(lash_status st, const lash_recovered *r, const lash_err *e, void *ud);

lash_status lash_aclaim(lash_aconn *c, const char *queue, const char *owner, int n, int64_t ttl_ms,
                        lash_retention keep, uint32_t seq, lash_aclaim_cb *cb, void *ud);
lash_status lash_arecover(lash_aconn *c, const char *queue, const char *owner, uint32_t seq,
                          lash_arecover_cb *cb, void *ud);
lash_status lash_arenew(lash_aconn *c, const char *queue, int64_t ttl_ms, const lash_lease *l,
                        size_t n, lash_astatus_cb *cb, void *ud);
lash_status lash_acomplete(lash_aconn *c, const char *queue, const lash_completion *r, size_t n,
                           lash_astatus_cb *cb, void *ud);
lash_status lash_arelease(lash_aconn *c, const char *queue, const lash_lease *l, const bool *ran,
                          size_t n, lash_astatus_cb *cb, void *ud);

#endif
