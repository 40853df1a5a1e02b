/* inspect.c: the read-side operations that are not scripts (see inspect.h). */
#include "registry/inspect.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/keys.h"
#include "proto/record.h"
#include "proto/text.h"
#include "registry/conn.h"
#include "registry/reply.h"

static bool is_str(const redisReply *r)
{
    return r && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS);
}

/* Sends one command; checks for a broken connection and an error reply. */
static redisReply *command(lash_conn *c, const char *queue, const char *what, int argc,
                           const char **argv, lash_err *e, lash_status *st)
{
    redisReply *r = lash_conn_command(c, queue, what, argc, argv, NULL, e);
    *st = r ? lash_reply_check(r, what, e) : LASH_EIO;
    return r;
}

lash_status lash_server_ms(lash_conn *c, const char *queue, int64_t *now_ms, lash_err *e)
{
    lash_status st;
    redisReply *r = command(c, queue, "TIME", 1, (const char *[]){"TIME"}, e, &st);
    int64_t s, us;
    if (!st && !(r->type == REDIS_REPLY_ARRAY && r->elements == 2 && is_str(r->element[0]) &&
                 is_str(r->element[1]) &&
                 lash_parse_i64(r->element[0]->str, r->element[0]->len, 0, INT64_MAX / 2000, &s) &&
                 lash_parse_i64(r->element[1]->str, r->element[1]->len, 0, 999999, &us)))
        st = lash_fail(e, LASH_EPROTO, "TIME: unexpected reply");
    if (!st) *now_ms = s * 1000 + us / 1000;
    freeReplyObject(r);
    return st;
}

/* ---- workers ---------------------------------------------------------------- */

void lash_workers_free(lash_worker_seen *w, size_t n)
{
    for (size_t i = 0; w && i < n; i++)
        free(w[i].id);
    free(w);
}

lash_status lash_read_workers(lash_conn *c, const char *queue, size_t max, lash_worker_seen **out,
                              size_t *n, int64_t *now_ms, lash_err *e)
{
    char key[LASH_KEY_MAX], stop[24];
    lash_status st;
    *out = NULL;
    *n = 0;
    if ((st = lash_queue_check(queue, e))) return st;
    if (now_ms && (st = lash_server_ms(c, queue, now_ms, e))) return st;
    snprintf(stop, sizeof stop, "%lld", max ? (long long)max - 1 : -1LL);
    const char *argv[] = {"ZREVRANGE", lash_key(key, queue, LASH_KEY_WORKERS), "0", stop,
                          "WITHSCORES"};
    redisReply *r = command(c, queue, "workers", 5, argv, e, &st);
    if (!st && (r->type != REDIS_REPLY_ARRAY || r->elements % 2))
        st = lash_fail(e, LASH_EPROTO, "workers: ZREVRANGE did not return pairs");
    if (!st && r->elements && !(*out = calloc(r->elements / 2, sizeof **out)))
        st = lash_fail(e, LASH_ENOMEM, "out of memory");
    for (size_t i = 0; !st && i + 1 < r->elements; i += 2) {
        const redisReply *id = r->element[i], *sc = r->element[i + 1];
        int64_t ms;
        /* A score Redis formats as a float (1.7e12) or an id that is no worker
         * id is not something a worker wrote: left out. */
        if (!is_str(id) || !is_str(sc) || lash_worker_id_check(id->str, NULL) ||
            strlen(id->str) != id->len || !lash_parse_i64(sc->str, sc->len, 0, INT64_MAX, &ms))
            continue;
        lash_worker_seen *w = &(*out)[*n];
        if (!(w->id = strndup(id->str, id->len))) {
            st = lash_fail(e, LASH_ENOMEM, "out of memory");
            break;
        }
        w->seen_ms = ms;
        (*n)++;
    }
    freeReplyObject(r);
    return st;
}

/* ---- the events stream ------------------------------------------------------ */

static void event_clear(lash_event *ev)
{
    for (size_t k = 0; k < ev->nf; k++)
        free(ev->f[k]);
    free(ev->f);
    free(ev->lens);
    memset(ev, 0, sizeof *ev);
}

void lash_events_free(lash_events *ev)
{
    for (size_t i = 0; ev && ev->ev && i < ev->n; i++)
        event_clear(&ev->ev[i]);
    if (ev) {
        free(ev->ev);
        ev->ev = NULL;
        ev->n = 0;
    }
}

const char *lash_event_field(const lash_event *ev, const char *name)
{
    for (size_t i = 0; i + 1 < ev->nf; i += 2)
        if (strcmp(ev->f[i], name) == 0) return ev->f[i + 1];
    return NULL;
}

/* Copies one {sid, [f, v, ...]} entry; false when it is not that shape. */
static bool copy_entry(const redisReply *ent, lash_event *out, bool *oom)
{
    memset(out, 0, sizeof *out);
    if (ent->type != REDIS_REPLY_ARRAY || ent->elements != 2 || !is_str(ent->element[0]) ||
        ent->element[0]->len >= sizeof out->sid || ent->element[1]->type != REDIS_REPLY_ARRAY ||
        ent->element[1]->elements % 2)
        return false;
    snprintf(out->sid, sizeof out->sid, "%s", ent->element[0]->str);
    const redisReply *kv = ent->element[1];
    out->f = calloc(kv->elements + 1, sizeof *out->f);
    out->lens = calloc(kv->elements + 1, sizeof *out->lens);
    if (!out->f || !out->lens) goto nomem;
    for (size_t i = 0; i < kv->elements; i++) {
        const redisReply *x = kv->element[i];
        const char *s = is_str(x) ? x->str : "";
        size_t len = is_str(x) ? x->len : 0;
        if (!(out->f[i] = malloc(len + 1))) goto nomem;
        memcpy(out->f[i], s, len);
        out->f[i][len] = 0;
        out->lens[i] = len;
        out->nf = i + 1;
    }
    return true;
nomem:
    *oom = true;
    event_clear(out);
    return false;
}

/* Appends the entries of an XRANGE-shaped array to out (reverse: last first). */
static lash_status add_entries(const redisReply *arr, bool reverse, const char *only_id, int max,
                               lash_events *out, lash_err *e)
{
    if (arr->type != REDIS_REPLY_ARRAY)
        return lash_fail(e, LASH_EPROTO, "events: expected an array of entries");
    lash_event *grown = realloc(out->ev, (out->n + arr->elements + 1) * sizeof *grown);
    if (!grown) return lash_fail(e, LASH_ENOMEM, "out of memory");
    out->ev = grown;
    for (size_t k = 0; k < arr->elements && (max <= 0 || out->n < (size_t)max); k++) {
        const redisReply *ent = arr->element[reverse ? arr->elements - 1 - k : k];
        bool oom = false;
        if (!copy_entry(ent, &out->ev[out->n], &oom)) {
            if (oom) return lash_fail(e, LASH_ENOMEM, "out of memory");
            continue;
        }
        lash_event *ev = &out->ev[out->n];
        const char *id = lash_event_field(ev, "id");
        if (only_id && (!id || strcmp(id, only_id) != 0))
            event_clear(ev);
        else
            out->n++;
    }
    return LASH_OK;
}

static void reverse_events(lash_events *ev)
{
    for (size_t i = 0, j = ev->n; j-- > i + 1; i++) {
        lash_event t = ev->ev[i];
        ev->ev[i] = ev->ev[j];
        ev->ev[j] = t;
    }
}

lash_status lash_events_newest(lash_conn *c, const char *queue, int count, lash_events *out,
                               lash_err *e)
{
    char key[LASH_KEY_MAX], n[16];
    lash_status st;
    memset(out, 0, sizeof *out);
    if ((st = lash_queue_check(queue, e))) return st;
    if (count < 1 || count > 100000)
        return lash_fail(e, LASH_EINVAL, "events: count must be 1..100000");
    snprintf(n, sizeof n, "%d", count);
    const char *argv[] = {"XREVRANGE", lash_key(key, queue, LASH_KEY_EVENTS), "+", "-", "COUNT", n};
    redisReply *r = command(c, queue, "events", 6, argv, e, &st);
    /* Newest first from Redis; oldest first for a reader. */
    if (!st) st = add_entries(r, true, NULL, 0, out, e);
    freeReplyObject(r);
    return st;
}

/* A stream id as XREAD takes it: <ms>-<seq>, digits only. */
static bool stream_id_ok(const char *s)
{
    const char *dash = strchr(s, '-');
    int64_t v;
    return dash && dash > s && strlen(s) < 48 &&
           lash_parse_i64(s, (size_t)(dash - s), 0, INT64_MAX, &v) &&
           lash_parse_i64(dash + 1, strlen(dash + 1), 0, INT64_MAX, &v);
}

lash_status lash_events_after(lash_conn *c, const char *queue, const char *after, int count,
                              int block_ms, lash_events *out, lash_err *e)
{
    char key[LASH_KEY_MAX], n[16], b[16];
    lash_status st;
    memset(out, 0, sizeof *out);
    if ((st = lash_queue_check(queue, e))) return st;
    if (!stream_id_ok(after))
        return lash_fail(e, LASH_EINVAL, "events: '%.60s' is not a stream id <ms>-<seq>", after);
    if (count < 1 || count > 100000 || block_ms < 0)
        return lash_fail(e, LASH_EINVAL, "events: count must be 1..100000, block_ms >= 0");
    snprintf(n, sizeof n, "%d", count);
    snprintf(b, sizeof b, "%d", block_ms);
    lash_key(key, queue, LASH_KEY_EVENTS);
    const char *blocking[] = {"XREAD", "COUNT", n, "BLOCK", b, "STREAMS", key, after};
    const char *plain[] = {"XREAD", "COUNT", n, "STREAMS", key, after};
    redisReply *r = block_ms ? command(c, queue, "events", 8, blocking, e, &st)
                             : command(c, queue, "events", 6, plain, e, &st);
    /* Nothing came: a nil reply. Else [[key, [entries]]]. */
    if (!st && r->type != REDIS_REPLY_NIL) {
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements == 2)
            st = add_entries(r->element[0]->element[1], false, NULL, 0, out, e);
        else
            st = lash_fail(e, LASH_EPROTO, "events: unexpected XREAD reply");
    }
    freeReplyObject(r);
    return st;
}

lash_status lash_events_of(lash_conn *c, const char *queue, const char *id, int max,
                           lash_events *out, lash_err *e)
{
    enum { PAGE = 1000, PAGES = 12 };
    char key[LASH_KEY_MAX], end[64] = "+";
    lash_status st;
    memset(out, 0, sizeof *out);
    if ((st = lash_queue_check(queue, e)) || (st = lash_id_check(id, strlen(id), e))) return st;
    if (max < 1) return lash_fail(e, LASH_EINVAL, "events: max must be positive");
    lash_key(key, queue, LASH_KEY_EVENTS);
    /* Newest first, a page at a time; the next page ends just before the
     * oldest entry of this one ("(" makes the bound exclusive). The stream is
     * capped near 10,000 entries; PAGES bounds the walk if it ever is not. */
    for (int p = 0; !st && p < PAGES && out->n < (size_t)max; p++) {
        const char *argv[] = {"XREVRANGE", key, end, "-", "COUNT", "1000"};
        redisReply *r = command(c, queue, "events", 6, argv, e, &st);
        size_t got = 0;
        if (!st && r->type == REDIS_REPLY_ARRAY) {
            got = r->elements;
            const redisReply *last = got ? r->element[got - 1] : NULL;
            if (last && last->type == REDIS_REPLY_ARRAY && last->elements == 2 &&
                is_str(last->element[0]) && last->element[0]->len < 48)
                snprintf(end, sizeof end, "(%s", last->element[0]->str);
            else
                got = 0;
            /* add_entries keeps only matching ones, newest first for now. */
            if (r->elements) st = add_entries(r, false, id, max, out, e);
        } else if (!st) {
            st = lash_fail(e, LASH_EPROTO, "events: XREVRANGE did not return an array");
        }
        freeReplyObject(r);
        if (got < PAGE) break;
    }
    if (!st) reverse_events(out);
    return st;
}

/* ---- the due set ------------------------------------------------------------ */

lash_status lash_oldest_due(lash_conn *c, const char *queue, int64_t now_ms, char *id, size_t cap,
                            int64_t *score_ms, lash_err *e)
{
    char key[LASH_KEY_MAX];
    lash_status st;
    id[0] = 0;
    if ((st = lash_queue_check(queue, e))) return st;
    const char *argv[] = {"ZRANGE", lash_key(key, queue, LASH_KEY_DUE), "0", "0", "WITHSCORES"};
    redisReply *r = command(c, queue, "oldest due", 5, argv, e, &st);
    int64_t sc;
    if (!st && r->type != REDIS_REPLY_ARRAY)
        st = lash_fail(e, LASH_EPROTO, "oldest due: ZRANGE did not return an array");
    if (!st && r->elements == 2 && is_str(r->element[0]) && is_str(r->element[1]) &&
        lash_parse_i64(r->element[1]->str, r->element[1]->len, INT64_MIN, INT64_MAX, &sc) &&
        sc <= now_ms) {
        snprintf(id, cap, "%s", r->element[0]->str);
        if (score_ms) *score_ms = sc;
    }
    freeReplyObject(r);
    return st;
}

lash_status lash_read_progress(lash_conn *c, const char *queue, const char *id,
                               lash_progress_seen *out, lash_err *e)
{
    char key[LASH_KEY_MAX];
    lash_status st;
    memset(out, 0, sizeof *out);
    out->percent = -1;
    if ((st = lash_queue_check(queue, e)) || (st = lash_id_check(id, strlen(id), e))) return st;
    const char *argv[] = {"HMGET", lash_key_row(key, queue, id), "progress", "progress_text",
                          "progress_ms"};
    redisReply *r = command(c, queue, "progress", 5, argv, e, &st);
    if (!st && (r->type != REDIS_REPLY_ARRAY || r->elements != 3))
        st = lash_fail(e, LASH_EPROTO, "progress: HMGET did not return 3 values");
    int64_t v;
    if (!st && is_str(r->element[0]) &&
        lash_parse_i64(r->element[0]->str, r->element[0]->len, 0, 100, &v)) {
        out->percent = (int)v;
        if (is_str(r->element[1]) && r->element[1]->len <= LASH_PROGRESS_TEXT_MAX)
            lash_text_tail(r->element[1]->str, r->element[1]->len, out->text, sizeof out->text);
        if (is_str(r->element[2]) &&
            lash_parse_i64(r->element[2]->str, r->element[2]->len, 0, INT64_MAX, &v))
            out->ms = v;
    }
    freeReplyObject(r);
    return st;
}

/* ZCARD of one of the queue's sets. */
static lash_status set_size(lash_conn *c, const char *queue, lash_key_kind k, const char *what,
                            int64_t *n, lash_err *e)
{
    char key[LASH_KEY_MAX];
    lash_status st;
    if ((st = lash_queue_check(queue, e))) return st;
    const char *argv[] = {"ZCARD", lash_key(key, queue, k)};
    redisReply *r = command(c, queue, what, 2, argv, e, &st);
    if (!st && (r->type != REDIS_REPLY_INTEGER || r->integer < 0))
        st = lash_fail(e, LASH_EPROTO, "%s: ZCARD did not return a count", what);
    if (!st) *n = r->integer;
    freeReplyObject(r);
    return st;
}

lash_status lash_due_count(lash_conn *c, const char *queue, int64_t *n, lash_err *e)
{
    return set_size(c, queue, LASH_KEY_DUE, "due count", n, e);
}

lash_status lash_done_count(lash_conn *c, const char *queue, int64_t *n, lash_err *e)
{
    return set_size(c, queue, LASH_KEY_DONE, "done count", n, e);
}

/* ---- waiting for processes to finish ---------------------------------------- */

lash_status lash_finished_subscribe(lash_conn *c, const char *queue, lash_err *e)
{
    char chan[LASH_KEY_MAX];
    lash_status st;
    if ((st = lash_queue_check(queue, e))) return st;
    lash_key(chan, queue, LASH_CHAN_FINISHED);
    /* The scripts publish sharded (lib.lua, lash_publish): SSUBSCRIBE goes to
     * the queue's own node (routed by queue, MOVED followed), and a classic
     * SUBSCRIBE beside it on the same context keeps a hand-made PUBLISH heard. */
    redisReply *r =
        command(c, queue, "SSUBSCRIBE", 2, (const char *[]){"SSUBSCRIBE", chan}, e, &st);
    freeReplyObject(r);
    if (st) return st;
    r = command(c, queue, "SUBSCRIBE", 2, (const char *[]){"SUBSCRIBE", chan}, e, &st);
    freeReplyObject(r);
    return st;
}

/* A message on the finished channel, sharded or classic. */
static bool is_finished_msg(const redisReply *r)
{
    if (!(r->type == REDIS_REPLY_ARRAY && r->elements == 3 && is_str(r->element[0]) &&
          is_str(r->element[1]) && is_str(r->element[2])))
        return false;
    const char *kind = r->element[0]->str;
    return (strcmp(kind, "message") == 0 || strcmp(kind, "smessage") == 0) &&
           strstr(r->element[1]->str, "}:finished");
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

lash_status lash_finished_next(lash_conn *c, int timeout_ms, char **ids, lash_err *e)
{
    /* Messages arrive on the context SUBSCRIBE went out on: with routing by
     * queue (conn.c), that is the queue's node, the one c->ctx names here. */
    redisContext *ctx = c->ctx;
    int64_t deadline = mono_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    *ids = NULL;
    for (;;) {
        void *rv = NULL;
        if (redisReaderGetReply(ctx->reader, &rv) != REDIS_OK)
            return lash_fail(e, LASH_EPROTO, "wait: unreadable reply on the subscription");
        if (rv) {
            redisReply *r = rv;
            /* Anything else is skipped, a "sunsubscribe" too (the queue's slot
             * moved to another node: the caller's re-reads cover the rest). */
            bool msg = is_finished_msg(r);
            if (msg && !(*ids = strdup(r->element[2]->str))) {
                freeReplyObject(r);
                return lash_fail(e, LASH_ENOMEM, "out of memory");
            }
            freeReplyObject(r);
            if (msg) return LASH_OK;
            continue;
        }
        int64_t left = deadline - mono_ms();
        if (left < 0) left = 0;
        struct pollfd p = {.fd = ctx->fd, .events = POLLIN};
        int ready = poll(&p, 1, (int)left);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) return lash_fail(e, LASH_EIO, "wait: poll: %s", strerror(errno));
        if (ready == 0) return LASH_OK;
        if (redisBufferRead(ctx) != REDIS_OK)
            return lash_fail(e, LASH_EIO, "wait: subscription lost: %s", ctx->errstr);
    }
}

/* ---- queue discovery -------------------------------------------------------- */

void lash_queue_list_free(lash_queue_list *l)
{
    if (!l) return;
    free(l->names);
    l->names = NULL;
    l->n = 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* What a SCAN of one node adds to: the list so far, its capacity, the bound. */
typedef struct {
    lash_queue_list *out;
    size_t cap, max;
} discovery;

/* Scans one node (a primary: in a Cluster each holds its own queues). */
static lash_status scan_node(lash_conn *c, void *ud, lash_err *e)
{
    discovery *d = ud;
    lash_queue_list *out = d->out;
    char cursor[32] = "0";
    lash_status st = LASH_OK;
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", "lash:{*}:stats", "COUNT", "1000"};
        redisReply *r = command(c, NULL, "SCAN", 6, argv, e, &st);
        if (!st &&
            (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !is_str(r->element[0]) ||
             r->element[0]->len >= sizeof cursor || r->element[1]->type != REDIS_REPLY_ARRAY))
            st = lash_fail(e, LASH_EPROTO, "SCAN: unexpected reply");
        for (size_t i = 0; !st && i < r->element[1]->elements; i++) {
            const redisReply *k = r->element[1]->element[i];
            /* lash:{<queue>}:stats, with a valid queue name inside. */
            if (!is_str(k) || k->len < 13 || strlen(k->str) != k->len) continue;
            size_t qlen = k->len - 13;
            if (qlen > LASH_QUEUE_MAX || memcmp(k->str + 6 + qlen, "}:stats", 7) != 0) continue;
            char q[LASH_QUEUE_MAX + 1];
            memcpy(q, k->str + 6, qlen);
            q[qlen] = 0;
            if (lash_queue_check(q, NULL)) continue;
            bool dup = false; /* SCAN may return a key twice */
            for (size_t j = 0; j < out->n && !dup; j++)
                dup = strcmp(out->names[j], q) == 0;
            if (dup || (d->max && out->n >= d->max)) continue;
            if (out->n == d->cap) {
                size_t ncap = d->cap ? 2 * d->cap : 16;
                void *p = realloc(out->names, ncap * sizeof *out->names);
                if (!p) {
                    st = lash_fail(e, LASH_ENOMEM, "out of memory");
                    break;
                }
                out->names = p;
                d->cap = ncap;
            }
            memcpy(out->names[out->n++], q, qlen + 1);
        }
        if (!st) snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        freeReplyObject(r);
    } while (!st && strcmp(cursor, "0") != 0);
    return st;
}

lash_status lash_discover_queues(lash_conn *c, size_t max, lash_queue_list *out, lash_err *e)
{
    memset(out, 0, sizeof *out);
    discovery d = {out, 0, max};
    lash_status st = lash_conn_each_primary(c, scan_node, &d, e);
    if (st) {
        lash_queue_list_free(out);
        return st;
    }
    if (out->n) qsort(out->names, out->n, sizeof *out->names, name_cmp);
    return LASH_OK;
}
