/* route.h (internal): where a command goes, decided without I/O.
 *
 * hiredis 0.14 (Debian's) knows nothing of Redis Cluster or Sentinel, so lash
 * routes by itself. Everything the blocking (conn.c) and the libev (async.c)
 * connections decide is here, as functions of replies and of the slot map, so
 * that it is tested without servers (tests/test_route.c feeds them RESP text):
 *
 *   - a Cluster's slot map, read from CLUSTER SLOTS: which primary owns each of
 *     the 16384 slots (proto/slot.h), and every node address seen, replicas
 *     included, so that the map can be read again from any of them;
 *   - what to do with a reply: hand it to the caller, or follow a redirect
 *     (MOVED: the slot has a new owner; ASK: the slot is being migrated), wait
 *     (TRYAGAIN, LOADING), or re-read the topology (CLUSTERDOWN, and READONLY
 *     from a primary that was demoted);
 *   - what HELLO (mode and role), ROLE, SENTINEL get-master-addr-by-name and a
 *     Sentinel's failover events say.
 *
 * Every parser treats its reply as untrusted: a wrong type, a slot or port out
 * of range, a missing element is LASH_EPROTO with a sentence, never a crash.
 */
#ifndef LASH_REGISTRY_ROUTE_H
#define LASH_REGISTRY_ROUTE_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdint.h>

#include "proto/err.h"
#include "proto/slot.h"
#include "proto/url.h"

/* How the Redis behind a URL is deployed. */
typedef enum {
    LASH_TOPO_SINGLE = 0, /* one Redis (maybe with replicas nobody fails over to) */
    LASH_TOPO_CLUSTER,    /* Redis Cluster: route by slot */
    LASH_TOPO_SENTINEL,   /* a primary the Sentinels of a redis-sentinel:// URL name */
} lash_topo_mode;

/* Bounds: a map names at most this many node addresses; a command follows at
 * most this many redirects before its last error reply is the answer. */
#define LASH_ROUTE_NODES_MAX 1024
#define LASH_ROUTE_REDIRECTS_MAX 16
#define LASH_NO_NODE 0xffff

typedef struct {
    lash_url_host *nodes; /* every address seen; indexes are stable until freed */
    bool *primary;        /* nodes[i] owned a slot in the last map read */
    size_t nnodes, cap;
    uint16_t owner[LASH_SLOTS]; /* index into nodes, or LASH_NO_NODE */
    uint64_t version;           /* bumped whenever an owner changes */
} lash_slotmap;

void lash_slotmap_init(lash_slotmap *m);
void lash_slotmap_free(lash_slotmap *m);
/* The index of host:port, added when new; -1 when the table is full or out of
 * memory. */
int lash_slotmap_node(lash_slotmap *m, const char *host, int port);
/* The primary owning slot, or NULL when unknown. */
const lash_url_host *lash_slotmap_owner(const lash_slotmap *m, int slot);
/* A MOVED said slot is owned by `to`: so it is in m (false when the node table
 * is full). It is the newest word on that slot: a map read a moment later from
 * a replica may not know it yet (a replica learns of a migration by gossip). */
bool lash_slotmap_moved(lash_slotmap *m, int slot, const lash_url_host *to);
/* Replaces the owners with a CLUSTER SLOTS reply. asked_host stands in for the
 * empty address a node gives for itself when it does not know its own IP. On
 * any error m is left as it was. */
lash_status lash_slotmap_parse(lash_slotmap *m, const redisReply *r, const char *asked_host,
                               lash_err *e);

/* ---- replies -------------------------------------------------------------------- */

typedef enum {
    LASH_REPLY_PLAIN = 0,   /* a reply for the caller (an error lash does not route around) */
    LASH_REPLY_MOVED,       /* the slot has moved to `to` for good */
    LASH_REPLY_ASK,         /* the slot is migrating to `to`; this key is there already */
    LASH_REPLY_TRYAGAIN,    /* keys of the slot are split mid-migration: retry soon */
    LASH_REPLY_CLUSTERDOWN, /* the Cluster cannot serve the slot now */
    LASH_REPLY_READONLY,    /* a replica was asked to write: the primary has moved */
    LASH_REPLY_LOADING,     /* the node is loading its data set */
    LASH_REPLY_MASTERDOWN,  /* a replica that lost its primary */
} lash_reply_kind;

typedef struct {
    lash_reply_kind kind;
    int slot;         /* MOVED, ASK */
    lash_url_host to; /* MOVED, ASK */
} lash_redirect;

/* Classifies an error reply's text. A MOVED or ASK that cannot be read is
 * PLAIN, so that it reaches the caller as the error it is. from_host stands in
 * for an empty host ("MOVED 12 :7001"). */
lash_reply_kind lash_redirect_parse(const char *err, size_t len, const char *from_host,
                                    lash_redirect *out);

typedef enum {
    LASH_ROUTE_DONE = 0, /* hand the reply to the caller */
    LASH_ROUTE_RESEND,   /* the map now names the new owner: send there at once */
    LASH_ROUTE_ASKING,   /* send ASKING and the command to *to, this once (map unchanged) */
    LASH_ROUTE_WAIT,     /* send to the owner again after a short pause */
    LASH_ROUTE_REFRESH,  /* re-read the topology (slot map or Sentinels), then send again */
} lash_route_step;

/* What to do with reply r to a command for slot (-1: a keyless command, which
 * no redirect concerns), on a deployment of the given mode, after `redirects`
 * redirects already followed. Updates m on MOVED.
 *
 * A script is never sent to the importing node of an ASK: its one declared key
 * is the queue's base lash:{q}, which names the slot but holds nothing, so the
 * migrating node answers ASK as soon as the migration starts, and on the
 * importing node the script would run against the keys moved so far and miss
 * the rest (a claim seeing half a queue, a submit creating a second `due` set
 * that MIGRATE then refuses to overwrite). It waits instead, and is sent again
 * to the owner until the migration ends in MOVED. A plain command (one key
 * that really exists or not) follows ASK as Redis intends. */
lash_route_step lash_route_reply(lash_slotmap *m, lash_topo_mode mode, const redisReply *r,
                                 int slot, bool script, const char *from_host, int redirects,
                                 lash_url_host *to);

/* ---- what a node or a Sentinel says ----------------------------------------------- */

typedef struct {
    lash_topo_mode mode; /* SINGLE for "standalone" */
    bool sentinel;       /* the node is a Sentinel, not a Redis server */
    bool primary;        /* role master */
} lash_node_info;

/* HELLO's reply (RESP2: a flat field/value list with "mode" and "role"). */
lash_status lash_hello_parse(const redisReply *r, lash_node_info *out, lash_err *e);
/* ROLE's reply: *primary is true for "master". */
lash_status lash_role_parse(const redisReply *r, bool *primary, lash_err *e);
/* SENTINEL get-master-addr-by-name: {ip, port}. A nil reply (no primary by
 * that name) is LASH_ENOTFOUND. */
lash_status lash_sentinel_master_parse(const redisReply *r, lash_url_host *out, lash_err *e);
/* What a Sentinel publishes that moves the primary of master `name`: true,
 * with the address it moves to, for a well-formed message on
 *   +switch-master            "<name> <old-ip> <old-port> <new-ip> <new-port>"
 *                             (the failover is over), or on
 *   LASH_SENTINEL_PROMOTING   "slave <ip:port> <ip> <port> @ <name> <ip> <port>"
 *                             (a replica was chosen and is told to become the
 *                             primary: from now on, writes the old primary
 *                             takes are lost when it is turned into a replica;
 *                             a client that waits for +switch-master keeps
 *                             writing there for a second or more). */
#define LASH_SENTINEL_PROMOTING "+failover-state-send-slaveof-noone"
bool lash_sentinel_event_parse(const char *channel, const char *msg, size_t len, const char *name,
                               lash_url_host *to);

#endif
