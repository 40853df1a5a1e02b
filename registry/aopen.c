/* aopen.c: how a lash_aconn finds its way (see aconn.h): coming up, the
 * Cluster's slot map, the Sentinels, going down; the tick. */
#include <hiredis/adapters/libev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/aconn.h"
#include "registry/conn.h"
#include "registry/reply.h"

static void on_slots(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    lash_anode *nd = ac->data;
    if (!nd) return;
    lash_aconn *c = nd->c;
    c->refreshing = false;
    lash_err e;
    if (lash_slotmap_parse(&c->t->map, r_, lash_ahost(ac), &e) == LASH_OK) {
        c->since = 0; /* reachable */
        for (lash_apending *p = c->parked; p; p = p->next)
            p->not_before = 0; /* a new map: try the parked commands at once */
    } else {
        c->last = e;
        /* Refused (a user without +cluster|slots): every node would say the
         * same. Ask no more; MOVED replies teach the owners one slot at a time. */
        if (e.code == LASH_EREDIS && strstr(e.msg, "NOPERM"))
            c->t->slots_refused = true;
        else if (r_)
            c->want_refresh = true;
    }
    lash_akick(c);
}

/* Sends CLUSTER SLOTS to a live node (or dials one); at most every LASH_AREFRESH_MS. */
static void refresh(lash_aconn *c, int64_t now)
{
    if (c->t->slots_refused) {
        c->want_refresh = false;
        return;
    }
    if (c->refreshing || now < c->refresh_at) return;
    lash_anode *nd = NULL;
    for (lash_anode *x = c->nodes; x && !nd; x = x->next)
        if (x->kind == LASH_NODE_DATA && x->state == LASH_NODE_UP) nd = x;
    for (size_t k = 0; !nd && k < c->t->map.nnodes; k++) {
        /* Round robin over every node known, replicas too: they know the map. */
        size_t i = ((size_t)c->rr + k) % c->t->map.nnodes;
        nd = lash_anode_data(c, &c->t->map.nodes[i]);
        if (nd) c->rr = (int)(i + 1);
    }
    if (!nd) return;
    c->want_refresh = false;
    c->refresh_at = now + LASH_AREFRESH_MS;
    if (redisAsyncCommand(nd->ac, on_slots, NULL, "CLUSTER SLOTS") == REDIS_OK)
        c->refreshing = true;
}

static void on_master_addr(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    lash_anode *nd = ac->data;
    if (!nd || nd->state == LASH_NODE_GONE) return;
    lash_aconn *c = nd->c;
    lash_atopo *t = c->t;
    ev_timer_stop(t->loop, &nd->tmo);
    nd->state = LASH_NODE_UP;
    if (c->asking == nd) c->asking = NULL;
    lash_url_host at;
    lash_err e;
    lash_status st = lash_sentinel_master_parse(r_, &at, &e);
    redisAsyncDisconnect(ac); /* one question per connection */
    if (st) {
        snprintf(c->last.msg, sizeof c->last.msg, "Sentinel %.60s:%d: %.180s", nd->at.host,
                 nd->at.port, e.msg);
        c->last.code = st;
        lash_akick(c);
        return;
    }
    t->sentinel_next = nd->idx;
    lash_anode *a = lash_anode_new(c, LASH_NODE_DATA, &at, false);
    if (a && lash_anode_dial(a, LASH_ASETUP_MS)) {
        a->check_role = true;
        c->anchor = a;
        lash_anode_setup(a, true);
    }
    lash_akick(c);
}

/* Asks the next Sentinel of this round where the primary is. */
static void ask_sentinel(lash_aconn *c)
{
    const lash_url *u = &c->t->url;
    int idx = (c->t->sentinel_next + c->tries) % u->nsentinels;
    c->tries++;
    lash_anode *nd = lash_anode_sentinel(c, LASH_NODE_ASK, idx);
    if (!nd) return;
    c->asking = nd;
    redisAsyncCommand(nd->ac, on_master_addr, NULL, "SENTINEL get-master-addr-by-name %s",
                      u->master);
}

static void on_switch(redisAsyncContext *ac, void *r_, void *priv)
{
    (void)priv;
    redisReply *r = r_;
    lash_anode *nd = ac->data;
    if (!nd || !r || r->type != REDIS_REPLY_ARRAY || r->elements != 3) return;
    lash_aconn *c = nd->c;
    const redisReply *kind = r->element[0], *chan = r->element[1], *msg = r->element[2];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING) return;
    if (strcmp(kind->str, "subscribe") == 0) {
        ev_timer_stop(c->t->loop, &nd->tmo);
        nd->state = LASH_NODE_UP;
        return;
    }
    if (msg->type != REDIS_REPLY_STRING) return;
    lash_url_host to;
    if (strcmp(kind->str, "message") != 0 ||
        !lash_sentinel_event_parse(chan->str, msg->str, msg->len, c->t->url.master, &to))
        return;
    c->t->promoting = to;
    c->t->promoting_until = lash_amono_ms() + LASH_APROMOTING_MS;
    lash_anode *a = c->anchor;
    if (c->state == LASH_ACONN_OPENING) {
        c->wait_to = 0; /* ask again now */
        lash_akick(c);
    } else if (c->state == LASH_ACONN_UP && a && a->ac &&
               (a->at.port != to.port || strcmp(a->at.host, to.host) != 0)) {
        lash_fail(&c->last, LASH_EIO, "the Sentinels are moving the primary to %s:%d", to.host,
                  to.port);
        redisAsyncDisconnect(a->ac);
    }
}

/* Keeps a subscription to the failover events open on every Sentinel: only
 * the one leading a failover publishes that a replica is being promoted, and
 * any of them may lead the next. One that fails is tried again a second later. */
static void watch(lash_aconn *c, int64_t now)
{
    int n = c->t->url.nsentinels;
    bool live[LASH_URL_SENTINELS_MAX] = {0};
    for (lash_anode *nd = c->nodes; nd; nd = nd->next)
        if (nd->kind == LASH_NODE_WATCH && nd->state != LASH_NODE_GONE) live[nd->idx] = true;
    int64_t soonest = -1;
    for (int i = 0; i < n; i++) {
        if (live[i]) continue;
        if (now < c->watch_at[i]) {
            if (soonest < 0 || c->watch_at[i] < soonest) soonest = c->watch_at[i];
            continue;
        }
        c->watch_at[i] = now + 1000;
        lash_anode *nd = lash_anode_sentinel(c, LASH_NODE_WATCH, i);
        if (nd)
            redisAsyncCommand(nd->ac, on_switch, NULL, "SUBSCRIBE +switch-master %s",
                              LASH_SENTINEL_PROMOTING);
    }
    if (soonest >= 0) lash_akick_in(c, soonest - now);
}

/* A pinned subscriber in a Cluster, its anchor up: true when the anchor is the
 * node to stay on. The map is read on the anchor itself first (once per
 * anchor); an anchor the map does not name owner of the pinned slot is left
 * for the owner. It stays where it is when the owner is unknown (SSUBSCRIBE
 * then answers MOVED, which names it), and after a few moves in one opening
 * (nodes that disagree mid-failover): lash_aconn_moved makes the caller try
 * again soon. */
static bool pin_ok(lash_aconn *c)
{
    lash_atopo *t = c->t;
    lash_anode *a = c->anchor;
    if (!c->pin_asked && !t->slots_refused && a->ac) {
        c->pin_asked = true;
        if (redisAsyncCommand(a->ac, on_slots, NULL, "CLUSTER SLOTS") == REDIS_OK)
            c->refreshing = true;
    }
    if (c->refreshing) return false; /* on_slots runs the tick again */
    const lash_url_host *own = lash_slotmap_owner(&t->map, c->pin);
    if (!own || (own->port == a->at.port && strcmp(own->host, a->at.host) == 0) || c->hops >= 4)
        return true;
    lash_anode *nd = lash_anode_data(c, own);
    if (!nd) { /* the owner failed a moment ago: ask again shortly */
        c->pin_asked = false;
        lash_akick_in(c, LASH_ARETRY_MS);
        return false;
    }
    c->hops++;
    c->pin_asked = false;
    c->anchor = nd;
    if (a->ac) redisAsyncDisconnect(a->ac); /* its node_gone only kicks: still opening */
    return false;
}

/* Opening: starts on the next candidate when none is being tried. */
static void open_step(lash_aconn *c, int64_t now)
{
    lash_atopo *t = c->t;
    if (c->anchor && c->anchor->state == LASH_NODE_SETUP) return;
    if (c->anchor && c->anchor->state == LASH_NODE_UP) {
        if (t->mode == LASH_TOPO_CLUSTER && !c->sub) {
            /* Read the map before claiming, so the first commands go straight to
             * their primaries instead of collecting MOVEDs. */
            if (c->want_refresh || c->refreshing) {
                c->want_refresh = true;
                refresh(c, now);
                if (c->refreshing) return;
            }
        }
        if (t->mode == LASH_TOPO_CLUSTER && c->pin >= 0 && !pin_ok(c)) return;
        c->state = LASH_ACONN_UP;
        c->up_due = true;
        c->since = 0;
        return;
    }
    if (c->asking) return;
    c->anchor = NULL;
    if (!c->since) c->since = now;
    if (now < c->wait_to) {
        lash_akick_in(c, c->wait_to - now);
        return;
    }
    bool last_chance = now - c->since >= t->failover_ms;
    if (t->mode == LASH_TOPO_SENTINEL && now < t->promoting_until) {
        /* Straight to the replica being promoted; its role is checked, and
         * tried again every LASH_ARETRY_MS until it says primary. */
        lash_anode *a = lash_anode_new(c, LASH_NODE_DATA, &t->promoting, false);
        if (a && lash_anode_dial(a, LASH_ASETUP_MS)) {
            a->check_role = true;
            c->anchor = a;
            lash_anode_setup(a, true);
        }
        c->wait_to = now + LASH_ARETRY_MS;
        return;
    }
    if (t->mode == LASH_TOPO_SENTINEL) {
        if (c->tries >= t->url.nsentinels) { /* a round is over */
            c->tries = 0;
            if (c->last.code == LASH_ENOTFOUND || last_chance) goto down;
            c->wait_to = now + LASH_ARETRY_MS;
            lash_akick_in(c, LASH_ARETRY_MS);
            return;
        }
        ask_sentinel(c);
        lash_akick(c);
        return;
    }
    /* redis:// and unix://: the node that worked last, the URL, then (Cluster)
     * every node of the map. */
    int ncand = 1 + (t->mode == LASH_TOPO_CLUSTER ? (int)t->map.nnodes : 0);
    while (c->cand < ncand + 1) {
        int k = c->cand++;
        lash_anode *nd;
        if (k == 0) {
            /* A pinned subscriber: the owner the map names, when it names one. */
            const lash_url_host *own = c->pin >= 0 && t->mode == LASH_TOPO_CLUSTER
                                           ? lash_slotmap_owner(&t->map, c->pin)
                                           : NULL;
            if (own) {
                nd = lash_anode_new(c, LASH_NODE_DATA, own, false);
            } else {
                if (t->hint < 0 || (size_t)t->hint >= t->map.nnodes) continue;
                nd = lash_anode_new(c, LASH_NODE_DATA, &t->map.nodes[t->hint], false);
            }
        } else if (k == 1) {
            lash_url_host seed = {{0}, t->url.port};
            snprintf(seed.host, sizeof seed.host, "%s", t->url.host);
            nd = lash_anode_new(c, LASH_NODE_DATA, &seed, true);
        } else {
            nd = lash_anode_new(c, LASH_NODE_DATA, &t->map.nodes[k - 2], false);
        }
        if (nd && lash_anode_dial(nd, LASH_ASETUP_MS)) {
            c->anchor = nd;
            /* HELLO until the mode is known: it does not change under a URL. */
            lash_anode_setup(nd, k == 1 && t->mode == LASH_TOPO_SINGLE);
            if (t->mode == LASH_TOPO_CLUSTER) c->want_refresh = true;
            return;
        }
    }
    c->cand = 0;
    if (t->mode != LASH_TOPO_CLUSTER || last_chance) goto down;
    c->wait_to = now + LASH_ARETRY_MS;
    lash_akick_in(c, LASH_ARETRY_MS);
    return;
down:
    c->state = LASH_ACONN_DOWN;
    c->down_due = true;
    lash_fail(&c->down_why, c->last.code == LASH_EREDIS ? LASH_EREDIS : LASH_EIO, "Redis at %s: %s",
              c->where, c->last.msg[0] ? c->last.msg : "cannot connect");
}

/* Frees tombstones nobody needs: Sentinel connections that are over, Cluster
 * nodes whose redial pause is over (data_node makes a new one when needed). */
static void reap(lash_aconn *c, int64_t now)
{
    lash_anode **pp = &c->nodes;
    while (*pp) {
        lash_anode *nd = *pp;
        bool dead = nd->state == LASH_NODE_GONE && !nd->ac && nd != c->anchor && nd != c->asking &&
                    (nd->kind != LASH_NODE_DATA || now >= nd->retry_at);
        if (dead) {
            *pp = nd->next;
            free(nd);
        } else {
            pp = &nd->next;
        }
    }
}

/* Sends the parked commands whose pause is over (they may park again). */
static void unpark(lash_aconn *c, int64_t now)
{
    lash_apending *p = c->parked, *keep = NULL, **kt = &keep;
    c->parked = NULL;
    int64_t soonest = -1;
    while (p && !c->closed) {
        lash_apending *next = p->next;
        p->next = NULL;
        if (p->not_before <= now) {
            lash_aconn_dispatch(c, p); /* may answer the caller, who may close c */
        } else {
            *kt = p;
            kt = &p->next;
            if (soonest < 0 || p->not_before < soonest) soonest = p->not_before;
        }
        p = next;
    }
    if (c->closed) { /* close() answered what was parked then; answer the rest */
        *kt = p;
        while (keep) {
            lash_apending *x = keep;
            keep = x->next;
            lash_apending_finish(x, NULL, LASH_EIO, "connection closed");
        }
        return;
    }
    *kt = c->parked; /* the ones dispatch parked again */
    c->parked = keep;
    if (soonest >= 0) lash_akick_in(c, soonest - now);
    if (c->parked) lash_akick_in(c, LASH_AREFRESH_MS);
}

/* Cluster, command connection, up: down only when no node at all answers for
 * failover_ms. */
static void check_reachable(lash_aconn *c, int64_t now)
{
    for (lash_anode *nd = c->nodes; nd; nd = nd->next)
        if (nd->kind == LASH_NODE_DATA && nd->state != LASH_NODE_GONE) {
            c->since = 0;
            return;
        }
    if (!c->since) c->since = now;
    if (now - c->since >= c->t->failover_ms) {
        c->down_due = true;
        lash_fail(&c->down_why, LASH_EIO, "no Cluster node reachable for %d ms: %s",
                  c->t->failover_ms, c->last.msg);
    } else {
        c->want_refresh = true;
        lash_akick_in(c, LASH_ARETRY_MS);
    }
}

static void tick(lash_aconn *c)
{
    int64_t now = lash_amono_ms();
    reap(c, now);
    if (c->state == LASH_ACONN_OPENING) open_step(c, now);
    if (c->t->mode == LASH_TOPO_SENTINEL && c->state != LASH_ACONN_DOWN) watch(c, now);
    if (c->state == LASH_ACONN_UP && c->t->mode == LASH_TOPO_CLUSTER && !c->sub) {
        if (c->want_refresh || c->parked) refresh(c, now);
        check_reachable(c, now);
        unpark(c, now);
        if (c->closed) return;
    }
    if (c->up_due) {
        c->up_due = false;
        if (c->cbs.on_up) c->cbs.on_up(c, c->ud); /* may close c */
        if (c->closed) return;
    }
    if (c->down_due) {
        c->down_due = false;
        c->state = LASH_ACONN_DOWN;
        /* Parked commands get their EIO before on_down, as in-flight ones do. */
        while (c->parked && !c->closed) {
            lash_apending *p = c->parked;
            c->parked = p->next;
            lash_apending_finish(p, NULL, LASH_EIO, c->down_why.msg);
        }
        lash_err e = c->down_why;
        if (!c->closed && c->cbs.on_down) c->cbs.on_down(c, &e, c->ud); /* may close c */
    }
}

void lash_aconn_free(lash_aconn *c)
{
    while (c->nodes) {
        lash_anode *nd = c->nodes;
        c->nodes = nd->next;
        free(nd);
    }
    free(c);
}

void lash_aconn_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    lash_aconn *c = w->data;
    c->busy++;
    tick(c);
    if (--c->busy == 0 && c->closed) lash_aconn_free(c);
}
