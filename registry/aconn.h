/* aconn.h (internal): the parts of a lash_aconn (async.h), shared by the three
 * files that make one:
 *   async.c   the API: commands, where each goes (route.h), parking, replies;
 *   anode.c   the hiredis connections a lash_aconn owns ("nodes"): Redis
 *             servers it sends to and, under Sentinel, the Sentinels it asks
 *             and listens to; their setup (AUTH, SELECT, HELLO, SCRIPT LOAD);
 *   aopen.c   finding the way: coming up (the URL, the Cluster's other nodes,
 *             the Sentinels), reading the slot map, the Sentinels' failover
 *             events, going down; all taken in one timer callback, the tick.
 *
 * hiredis calls back with the node (ac->data). A node struct outlives its
 * hiredis context (it stays as a tombstone until the tick reaps it or the
 * lash_aconn is closed), so a callback never meets freed memory. Decisions
 * that need the whole picture are taken in the tick, never inside hiredis.
 */
#ifndef LASH_REGISTRY_ACONN_H
#define LASH_REGISTRY_ACONN_H

#include <ev.h>
#include <hiredis/async.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "registry/argv.h"
#include "registry/async.h"
#include "registry/route.h"

#define LASH_ASETUP_MS 5000          /* connect + AUTH + SELECT + HELLO + SCRIPT LOAD */
#define LASH_ASENTINEL_SETUP_MS 2000 /* a Sentinel that does not answer soon: ask the next */
#define LASH_ARETRY_MS 100           /* between rounds of candidates / Sentinels; redials */
/* After a failover event, how long new connections go straight to the replica
 * it names: Sentinels that did not lead the failover (and after the switch,
 * those slow to hear of it) still name the old primary for a while. */
#define LASH_APROMOTING_MS 5000
#define LASH_AREFRESH_MS 100 /* at most one CLUSTER SLOTS per this, while needed */
#define LASH_APARK_MIN_MS 10 /* a parked command waits this long first, then doubles */
#define LASH_APARK_MAX_MS 250
/* A parked command gives up (LASH_EIO) after at most this long, even when
 * failover_ms is longer: well inside any reply timeout of the caller's (the
 * worker's is 10 s), so the caller sees one command fail and sends it again,
 * rather than a silent connection it would tear down as a whole. */
#define LASH_APARK_BOUND_MS 4000
/* A claim gives up sooner: while it waits it holds the worker's free slots
 * (a claim never asks for more rows than there are), so queues on healthy
 * primaries would get none; the worker's next poll claims again. */
#define LASH_APARK_CLAIM_MS 1000

struct lash_atopo {
    struct ev_loop *loop;
    lash_url url;
    int failover_ms;     /* how long a connection keeps trying to come up */
    int park_ms;         /* how long a command waits for a route */
    lash_topo_mode mode; /* SINGLE until HELLO (or a MOVED) says otherwise */
    lash_slotmap map;
    bool slots_refused; /* CLUSTER SLOTS is not allowed: learn from MOVED only */
    int sentinel_next;  /* the Sentinel that answered last */
    /* Sentinel: where a failover under way is moving the primary (only the
     * Sentinel leading it knows yet: asking another would name the old one). */
    lash_url_host promoting;
    int64_t promoting_until;
    int hint; /* map node that last came up (-1: none): tried first */
};

typedef enum { LASH_NODE_DATA, LASH_NODE_ASK, LASH_NODE_WATCH } lash_anode_kind;
typedef enum { LASH_NODE_SETUP, LASH_NODE_UP, LASH_NODE_GONE } lash_anode_state;

typedef struct lash_anode {
    struct lash_aconn *c; /* owner */
    redisAsyncContext *ac;
    lash_anode_kind kind;
    lash_anode_state state;
    bool connected;    /* the socket connected: what it was given may have run */
    bool setup_failed; /* c->last says why */
    bool seed;         /* dialed from the URL itself (maybe a unix socket) */
    bool check_role;
    int idx; /* Sentinel index (LASH_NODE_ASK, LASH_NODE_WATCH) */
    int setup_left;
    int64_t retry_at; /* GONE: do not dial this address again before */
    lash_url_host at;
    ev_timer tmo;
    struct lash_anode *next;
} lash_anode;

/* A reply handed as is (NULL with st set when there is none): registry files
 * that parse their own replies (sched.c). */
typedef void lash_araw_cb(lash_status st, const redisReply *r, const lash_err *e, void *ud);

/* A command: kept until answered, so it can be re-sent (NOSCRIPT, redirects). */
typedef struct lash_apending {
    struct lash_aconn *c;
    lash_argv argv;
    int slot;
    size_t n;      /* rows, for status replies */
    lash_send how; /* FCALL, then EVALSHA, then EVAL (argv.h) */
    int redirects, pause_ms;
    int64_t deadline, not_before; /* parked: give up at / not before */
    lash_aclaim_cb *claim_cb;
    lash_astatus_cb *status_cb;
    lash_arecover_cb *recover_cb;
    lash_apeek_cb *peek_cb;
    lash_araw_cb *raw_cb; /* sched.c: parses the reply itself */
    const char *owner;    /* recover: the leases name it (the caller keeps it alive) */
    void *ud;
    struct lash_apending *next;
} lash_apending;

typedef enum { LASH_ACONN_OPENING, LASH_ACONN_UP, LASH_ACONN_DOWN } lash_aconn_state;

struct lash_aconn {
    lash_atopo *t;
    lash_aconn_cbs cbs;
    void *ud;
    bool sub; /* a subscriber */
    /* A subscriber pinned to a slot (-1: any node): in a Cluster it comes up
     * only on the primary the slot map names owner (read on the anchor itself,
     * pin_asked, once per candidate; hops bounds how often it moves on). */
    int pin;
    bool pin_asked;
    int hops;
    /* A subscriber whose slot moved away (a sunsubscribe push, or MOVED to its
     * SSUBSCRIBE): lash_aconn_moved. */
    bool moved;
    lash_aconn_state state;
    bool up_due, down_due, want_refresh;
    lash_err down_why;
    lash_anode *nodes;
    lash_sendpref send; /* FCALL or EVALSHA first (argv.h) */
    lash_anode *anchor; /* the node whose coming up makes the connection up */
    lash_anode *asking; /* Sentinel: the query in flight */
    int cand;           /* opening: next candidate address */
    int rr;             /* map refresh: next node to ask when none is open */
    int tries;          /* Sentinel: Sentinels asked this round */
    int busy;           /* inside tick: a close there is finished at its end */
    bool closed;
    int64_t since;   /* opening (or unreachable) since */
    int64_t wait_to; /* opening: next round not before */
    int64_t refresh_at;
    int64_t watch_at[LASH_URL_SENTINELS_MAX]; /* Sentinel i: listen again not before */
    bool refreshing;
    lash_apending *parked;
    lash_err last; /* why the last candidate failed */
    ev_timer tick;
    char where[400];
};

/* Monotonic ms. */
static inline int64_t lash_amono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the tick in ms (sooner if it is due sooner already). */
static inline void lash_akick_in(lash_aconn *c, int64_t ms)
{
    double at = ms > 0 ? (double)ms / 1000.0 : 0.0;
    if (ev_is_active(&c->tick)) {
        double left = ev_timer_remaining(c->t->loop, &c->tick);
        if (left <= at) return;
        ev_timer_stop(c->t->loop, &c->tick);
    }
    ev_timer_set(&c->tick, at, 0);
    ev_timer_start(c->t->loop, &c->tick);
}

static inline void lash_akick(lash_aconn *c)
{
    lash_akick_in(c, 0);
}

/* The host a context reached (for "MOVED 1 :7001" and empty CLUSTER SLOTS hosts). */
static inline const char *lash_ahost(const redisAsyncContext *ac)
{
    return ac && ac->c.connection_type == REDIS_CONN_TCP ? ac->c.tcp.host : "127.0.0.1";
}

/* ---- anode.c ---------------------------------------------------------------- */

lash_anode *lash_anode_new(lash_aconn *c, lash_anode_kind kind, const lash_url_host *at, bool seed);
/* Opens (or re-opens) nd's hiredis context; false when it could not even start. */
bool lash_anode_dial(lash_anode *nd, int setup_ms);
/* Queues the setup of a Redis node: AUTH, SELECT, HELLO (hello), the scripts
 * (command connections), PING. Commands queued after it run after it. */
void lash_anode_setup(lash_anode *nd, bool hello);
/* The data node for a Cluster address, dialed when not open (and not given up
 * on a moment ago); NULL: none now. */
lash_anode *lash_anode_data(lash_aconn *c, const lash_url_host *at);
/* A connection to Sentinel idx, authenticated with LASH_SENTINEL_PASSWORD. */
lash_anode *lash_anode_sentinel(lash_aconn *c, lash_anode_kind kind, int idx);

/* ---- async.c ---------------------------------------------------------------- */

/* Answers the caller: the reply r, or (r NULL) the error code/why. */
void lash_apending_finish(lash_apending *p, redisReply *r, lash_status code, const char *why);
/* Sends a script call built with argv.h (taken over: the caller's is left
 * empty) whose reply cb parses; an error and no callback when it cannot go. */
lash_status lash_asend_raw(lash_aconn *c, lash_argv *argv, lash_araw_cb *cb, void *ud);
/* Keeps p until a route appears, at most park_ms from its first setback. */
void lash_apending_park(lash_aconn *c, lash_apending *p, int64_t pause_ms);
int64_t lash_apending_pause(lash_apending *p);
/* Sends p where it belongs now, or parks it. */
void lash_aconn_dispatch(lash_aconn *c, lash_apending *p);
/* A subscriber's node stopped serving a channel's slot: why is a sunsubscribe
 * or a MOVED (which teaches the map the owner). Marks c moved and says why it
 * goes down; the caller drops the connection (or hiredis already does). */
void lash_asub_left(lash_anode *nd, const char *why, size_t len);

/* ---- aopen.c ---------------------------------------------------------------- */

void lash_aconn_on_tick(struct ev_loop *loop, ev_timer *w, int revents);
void lash_aconn_free(lash_aconn *c);

#endif
