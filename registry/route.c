/* route.c: routing decisions and topology replies (see route.h). */
#include "registry/route.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/record.h"

void lash_slotmap_init(lash_slotmap *m)
{
    memset(m, 0, sizeof *m);
    for (int i = 0; i < LASH_SLOTS; i++)
        m->owner[i] = LASH_NO_NODE;
}

void lash_slotmap_free(lash_slotmap *m)
{
    free(m->nodes);
    free(m->primary);
    lash_slotmap_init(m);
}

int lash_slotmap_node(lash_slotmap *m, const char *host, int port)
{
    for (size_t i = 0; i < m->nnodes; i++)
        if (m->nodes[i].port == port && strcmp(m->nodes[i].host, host) == 0) return (int)i;
    if (m->nnodes >= LASH_ROUTE_NODES_MAX || strlen(host) >= sizeof m->nodes[0].host) return -1;
    if (m->nnodes == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 8;
        lash_url_host *n = realloc(m->nodes, cap * sizeof *n);
        if (!n) return -1;
        m->nodes = n;
        bool *p = realloc(m->primary, cap * sizeof *p);
        if (!p) return -1;
        m->primary = p;
        m->cap = cap;
    }
    lash_url_host *h = &m->nodes[m->nnodes];
    snprintf(h->host, sizeof h->host, "%s", host);
    h->port = port;
    m->primary[m->nnodes] = false;
    return (int)m->nnodes++;
}

const lash_url_host *lash_slotmap_owner(const lash_slotmap *m, int slot)
{
    if (slot < 0 || slot >= LASH_SLOTS || m->owner[slot] == LASH_NO_NODE) return NULL;
    return &m->nodes[m->owner[slot]];
}

static bool is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

static bool get_int(const redisReply *r, int64_t lo, int64_t hi, int64_t *out)
{
    if (!r) return false;
    if (r->type == REDIS_REPLY_INTEGER) {
        *out = r->integer;
        return *out >= lo && *out <= hi;
    }
    return is_str(r) && lash_parse_i64(r->str, r->len, lo, hi, out);
}

/* A node entry of CLUSTER SLOTS: {ip, port, id, ...}. */
static lash_status node_entry(const redisReply *x, const char *asked_host, lash_url_host *out,
                              lash_err *e)
{
    int64_t port;
    if (!x || x->type != REDIS_REPLY_ARRAY || x->elements < 2 || !is_str(x->element[0]) ||
        !get_int(x->element[1], 1, 65535, &port))
        return lash_fail(e, LASH_EPROTO, "CLUSTER SLOTS: a node is not {ip, port 1..65535, ...}");
    const redisReply *ip = x->element[0];
    if (strlen(ip->str) != ip->len)
        return lash_fail(e, LASH_EPROTO, "CLUSTER SLOTS: a node address holds a NUL byte");
    /* "" means "the address you reached me at"; "?" an unknown endpoint. */
    const char *host = ip->len ? ip->str : asked_host;
    if (!host || !host[0] || strcmp(host, "?") == 0 || strlen(host) >= sizeof out->host)
        return lash_fail(e, LASH_EPROTO, "CLUSTER SLOTS: a node has no usable address");
    for (const char *c = host; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return lash_fail(e, LASH_EPROTO, "CLUSTER SLOTS: a node address is not printable");
    snprintf(out->host, sizeof out->host, "%s", host);
    out->port = (int)port;
    return LASH_OK;
}

lash_status lash_slotmap_parse(lash_slotmap *m, const redisReply *r, const char *asked_host,
                               lash_err *e)
{
    if (!r) return lash_fail(e, LASH_EIO, "CLUSTER SLOTS: no reply (connection lost)");
    if (r->type == REDIS_REPLY_ERROR)
        return lash_fail(e, LASH_EREDIS, "CLUSTER SLOTS: Redis said: %.180s", r->str);
    if (r->type != REDIS_REPLY_ARRAY)
        return lash_fail(e, LASH_EPROTO, "CLUSTER SLOTS: reply is not an array");
    /* Parse into a copy of the owners; nodes may grow (indexes stay valid). */
    uint16_t *owner = malloc(sizeof m->owner);
    if (!owner) return lash_fail(e, LASH_ENOMEM, "out of memory");
    for (int i = 0; i < LASH_SLOTS; i++)
        owner[i] = LASH_NO_NODE;
    bool *seen = calloc(LASH_ROUTE_NODES_MAX, sizeof *seen); /* primaries of this map */
    lash_status st = seen ? LASH_OK : lash_fail(e, LASH_ENOMEM, "out of memory");
    for (size_t i = 0; !st && i < r->elements; i++) {
        const redisReply *x = r->element[i];
        int64_t from, to;
        if (!x || x->type != REDIS_REPLY_ARRAY || x->elements < 3 ||
            !get_int(x->element[0], 0, LASH_SLOTS - 1, &from) ||
            !get_int(x->element[1], 0, LASH_SLOTS - 1, &to) || from > to) {
            st = lash_fail(e, LASH_EPROTO,
                           "CLUSTER SLOTS: range %zu is not {first, last, primary, ...} with "
                           "0 <= first <= last <= 16383",
                           i);
            break;
        }
        int idx[1 + 16] = {0}; /* the primary, then up to 16 replicas */
        size_t nn = x->elements - 2 > 17 ? 17 : x->elements - 2;
        for (size_t k = 0; !st && k < nn; k++) {
            lash_url_host h;
            if ((st = node_entry(x->element[2 + k], asked_host, &h, e))) break;
            if ((idx[k] = lash_slotmap_node(m, h.host, h.port)) < 0)
                st = lash_fail(e, LASH_EPROTO, "CLUSTER SLOTS: more than %d nodes",
                               LASH_ROUTE_NODES_MAX);
        }
        if (st) break;
        seen[idx[0]] = true;
        for (int64_t s = from; s <= to; s++)
            owner[s] = (uint16_t)idx[0];
    }
    if (!st) {
        if (memcmp(owner, m->owner, sizeof m->owner) != 0) m->version++;
        memcpy(m->owner, owner, sizeof m->owner);
        for (size_t i = 0; i < m->nnodes; i++)
            m->primary[i] = seen[i];
    }
    free(owner);
    free(seen);
    return st;
}

/* ---- replies -------------------------------------------------------------------- */

static bool starts(const char *s, size_t len, const char *word)
{
    size_t n = strlen(word);
    return len >= n && memcmp(s, word, n) == 0 && (len == n || s[n] == ' ');
}

/* "<slot> <host>:<port>" (the host may be empty, or an IPv6 address whose own
 * colons come before the port's). */
static bool parse_target(const char *s, size_t len, const char *from_host, lash_redirect *out)
{
    const char *sp = memchr(s, ' ', len);
    int64_t slot, port;
    if (!sp || !lash_parse_i64(s, (size_t)(sp - s), 0, LASH_SLOTS - 1, &slot)) return false;
    const char *addr = sp + 1;
    size_t alen = len - (size_t)(addr - s);
    const char *colon = NULL;
    for (size_t i = alen; i-- > 0;)
        if (addr[i] == ':') {
            colon = addr + i;
            break;
        }
    if (!colon || !lash_parse_i64(colon + 1, alen - (size_t)(colon - addr) - 1, 1, 65535, &port))
        return false;
    size_t hlen = (size_t)(colon - addr);
    if (hlen == 0) {
        if (!from_host || !from_host[0]) return false;
        addr = from_host;
        hlen = strlen(from_host);
    }
    if (hlen >= sizeof out->to.host) return false;
    for (size_t i = 0; i < hlen; i++)
        if ((unsigned char)addr[i] <= ' ' || (unsigned char)addr[i] >= 0x7f) return false;
    memcpy(out->to.host, addr, hlen);
    out->to.host[hlen] = 0;
    out->to.port = (int)port;
    out->slot = (int)slot;
    return true;
}

lash_reply_kind lash_redirect_parse(const char *err, size_t len, const char *from_host,
                                    lash_redirect *out)
{
    memset(out, 0, sizeof *out);
    out->slot = -1;
    if (!err) return out->kind = LASH_REPLY_PLAIN;
    if (starts(err, len, "MOVED") || starts(err, len, "ASK")) {
        bool moved = err[0] == 'M';
        size_t skip = moved ? 6 : 4;
        if (len > skip && parse_target(err + skip, len - skip, from_host, out))
            return out->kind = moved ? LASH_REPLY_MOVED : LASH_REPLY_ASK;
        return out->kind = LASH_REPLY_PLAIN;
    }
    static const struct {
        const char *word;
        lash_reply_kind kind;
    } words[] = {
        {"TRYAGAIN", LASH_REPLY_TRYAGAIN},     {"CLUSTERDOWN", LASH_REPLY_CLUSTERDOWN},
        {"READONLY", LASH_REPLY_READONLY},     {"LOADING", LASH_REPLY_LOADING},
        {"MASTERDOWN", LASH_REPLY_MASTERDOWN},
    };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (starts(err, len, words[i].word)) return out->kind = words[i].kind;
    return out->kind = LASH_REPLY_PLAIN;
}

bool lash_slotmap_moved(lash_slotmap *m, int slot, const lash_url_host *to)
{
    int idx = lash_slotmap_node(m, to->host, to->port);
    if (idx < 0 || slot < 0 || slot >= LASH_SLOTS) return false;
    if (m->owner[slot] != idx) m->version++;
    m->owner[slot] = (uint16_t)idx;
    m->primary[idx] = true;
    return true;
}

lash_route_step lash_route_reply(lash_slotmap *m, lash_topo_mode mode, const redisReply *r,
                                 int slot, bool script, const char *from_host, int redirects,
                                 lash_url_host *to)
{
    if (!r || r->type != REDIS_REPLY_ERROR || redirects >= LASH_ROUTE_REDIRECTS_MAX)
        return LASH_ROUTE_DONE;
    lash_redirect d;
    switch (lash_redirect_parse(r->str, r->len, from_host, &d)) {
    case LASH_REPLY_MOVED:
        if (slot < 0 || d.slot != slot) return LASH_ROUTE_DONE; /* not about our key */
        if (!lash_slotmap_moved(m, slot, &d.to)) return LASH_ROUTE_DONE;
        *to = d.to;
        return LASH_ROUTE_RESEND;
    case LASH_REPLY_ASK:
        if (slot < 0 || d.slot != slot) return LASH_ROUTE_DONE;
        if (script) return LASH_ROUTE_WAIT; /* see route.h: never half a queue */
        *to = d.to;
        return LASH_ROUTE_ASKING;
    case LASH_REPLY_TRYAGAIN:
        return mode == LASH_TOPO_CLUSTER ? LASH_ROUTE_WAIT : LASH_ROUTE_DONE;
    case LASH_REPLY_LOADING:
        /* A promoted replica or a restarted node: worth waiting for when the
         * deployment is meant to fail over; a single Redis says so at once. */
        return mode == LASH_TOPO_SINGLE ? LASH_ROUTE_DONE : LASH_ROUTE_WAIT;
    case LASH_REPLY_CLUSTERDOWN:
    case LASH_REPLY_READONLY:
    case LASH_REPLY_MASTERDOWN:
        return mode == LASH_TOPO_SINGLE ? LASH_ROUTE_DONE : LASH_ROUTE_REFRESH;
    case LASH_REPLY_PLAIN:
        break;
    }
    return LASH_ROUTE_DONE;
}

/* ---- what a node or a Sentinel says ----------------------------------------------- */

lash_status lash_hello_parse(const redisReply *r, lash_node_info *out, lash_err *e)
{
    memset(out, 0, sizeof *out);
    if (!r) return lash_fail(e, LASH_EIO, "HELLO: no reply (connection lost)");
    if (r->type == REDIS_REPLY_ERROR)
        return lash_fail(e, LASH_EREDIS, "HELLO: Redis said: %.180s", r->str);
    if (r->type != REDIS_REPLY_ARRAY || r->elements % 2)
        return lash_fail(e, LASH_EPROTO, "HELLO: reply is not field/value pairs");
    bool mode = false, role = false;
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *f = r->element[i], *v = r->element[i + 1];
        if (!is_str(f) || !is_str(v)) continue;
        if (strcmp(f->str, "mode") == 0) {
            mode = true;
            if (strcmp(v->str, "cluster") == 0)
                out->mode = LASH_TOPO_CLUSTER;
            else if (strcmp(v->str, "sentinel") == 0)
                out->sentinel = true;
            else if (strcmp(v->str, "standalone") != 0)
                return lash_fail(e, LASH_EPROTO, "HELLO: unknown mode '%.40s'", v->str);
        } else if (strcmp(f->str, "role") == 0) {
            role = true;
            out->primary = strcmp(v->str, "master") == 0;
        }
    }
    if (!mode || !role) return lash_fail(e, LASH_EPROTO, "HELLO: reply lacks mode or role");
    return LASH_OK;
}

lash_status lash_role_parse(const redisReply *r, bool *primary, lash_err *e)
{
    *primary = false;
    if (!r) return lash_fail(e, LASH_EIO, "ROLE: no reply (connection lost)");
    if (r->type == REDIS_REPLY_ERROR)
        return lash_fail(e, LASH_EREDIS, "ROLE: Redis said: %.180s", r->str);
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1 || !is_str(r->element[0]))
        return lash_fail(e, LASH_EPROTO, "ROLE: reply is not {role, ...}");
    const char *role = r->element[0]->str;
    if (strcmp(role, "master") != 0 && strcmp(role, "slave") != 0 && strcmp(role, "replica") != 0 &&
        strcmp(role, "sentinel") != 0)
        return lash_fail(e, LASH_EPROTO, "ROLE: unknown role '%.40s'", role);
    *primary = strcmp(role, "master") == 0;
    return LASH_OK;
}

lash_status lash_sentinel_master_parse(const redisReply *r, lash_url_host *out, lash_err *e)
{
    int64_t port;
    memset(out, 0, sizeof *out);
    if (!r) return lash_fail(e, LASH_EIO, "Sentinel: no reply (connection lost)");
    if (r->type == REDIS_REPLY_ERROR)
        return lash_fail(e, LASH_EREDIS, "Sentinel said: %.180s", r->str);
    if (r->type == REDIS_REPLY_NIL)
        return lash_fail(e, LASH_ENOTFOUND, "Sentinel knows no primary by that name");
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_str(r->element[0]) ||
        !r->element[0]->len || r->element[0]->len >= sizeof out->host ||
        strlen(r->element[0]->str) != r->element[0]->len ||
        !get_int(r->element[1], 1, 65535, &port))
        return lash_fail(e, LASH_EPROTO, "Sentinel: primary address is not {ip, port 1..65535}");
    for (const char *c = r->element[0]->str; *c; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return lash_fail(e, LASH_EPROTO, "Sentinel: primary address is not printable");
    memcpy(out->host, r->element[0]->str, r->element[0]->len + 1);
    out->port = (int)port;
    return LASH_OK;
}

/* Splits msg into exactly n space-separated, non-empty words. */
static bool words(const char *msg, size_t len, size_t n, const char **w, size_t *wl)
{
    size_t k = 0, i = 0;
    for (;;) {
        size_t j = i;
        while (j < len && msg[j] != ' ')
            j++;
        if (j == i || k == n) return false; /* an empty word, or one too many */
        w[k] = msg + i;
        wl[k++] = j - i;
        if (j == len) break;
        i = j + 1;
    }
    return k == n;
}

static bool word_is(const char *w, size_t wl, const char *s)
{
    return wl == strlen(s) && memcmp(w, s, wl) == 0;
}

static bool address(const char *host, size_t hl, const char *port, size_t pl, lash_url_host *to)
{
    int64_t p;
    if (hl >= sizeof to->host || !lash_parse_i64(port, pl, 1, 65535, &p)) return false;
    for (size_t k = 0; k < hl; k++)
        if ((unsigned char)host[k] <= ' ' || (unsigned char)host[k] >= 0x7f) return false;
    memcpy(to->host, host, hl);
    to->host[hl] = 0;
    to->port = (int)p;
    return true;
}

bool lash_sentinel_event_parse(const char *channel, const char *msg, size_t len, const char *name,
                               lash_url_host *to)
{
    const char *w[8];
    size_t wl[8];
    if (!channel || !msg) return false;
    if (strcmp(channel, "+switch-master") == 0)
        return words(msg, len, 5, w, wl) && word_is(w[0], wl[0], name) &&
               address(w[3], wl[3], w[4], wl[4], to);
    if (strcmp(channel, LASH_SENTINEL_PROMOTING) == 0)
        return words(msg, len, 8, w, wl) && word_is(w[0], wl[0], "slave") &&
               word_is(w[4], wl[4], "@") && word_is(w[5], wl[5], name) &&
               address(w[2], wl[2], w[3], wl[3], to);
    return false;
}
