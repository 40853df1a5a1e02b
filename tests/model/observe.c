/* observe.c: reading the queue back from Redis (see observe.h). */
#include "observe.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fixture.h"

#define Q "lash:{" LM_QUEUE "}"

static redisReply *next_reply(redisContext *c)
{
    void *r = NULL;
    cr_assert(redisGetReply(c, &r) == REDIS_OK && r, "observe: %s", c->errstr);
    return r;
}

static lo_type type_of(const redisReply *r)
{
    if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "none") == 0) return LO_NONE;
    if (strcmp(r->str, "string") == 0) return LO_STRING;
    if (strcmp(r->str, "hash") == 0) return LO_HASH;
    return LO_OTHER;
}

static int cmp_pair(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Fields, sorted; and the canonical text "f=v\n"... */
static void read_hash(lo_id *x, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY) return;
    size_t n = r->elements / 2;
    if (n > LO_FIELDS) n = LO_FIELDS;
    char *lines[LO_FIELDS];
    size_t total = 1;
    for (size_t i = 0; i < n; i++) {
        const redisReply *f = r->element[2 * i], *v = r->element[2 * i + 1];
        x->f[i] = strndup(f->str, f->len);
        x->v[i] = strndup(v->str, v->len);
        size_t len = strlen(x->f[i]) + strlen(x->v[i]) + 3;
        lines[i] = malloc(len);
        cr_assert(lines[i] && x->f[i] && x->v[i]);
        snprintf(lines[i], len, "%s=%s\n", x->f[i], x->v[i]);
        total += len;
    }
    x->nf = (int)n;
    qsort(lines, n, sizeof lines[0], cmp_pair);
    x->canon = malloc(total);
    cr_assert(x->canon);
    x->canon[0] = 0;
    for (size_t i = 0; i < n; i++) {
        strcat(x->canon, lines[i]);
        free(lines[i]);
    }
}

const char *lo_field(const lo_id *x, const char *name)
{
    for (int i = 0; i < x->nf; i++)
        if (strcmp(x->f[i], name) == 0) return x->v[i];
    return NULL;
}

static bool to_ll(const char *s, long long *out)
{
    char *end;
    if (!s || !*s) return false;
    *out = strtoll(s, &end, 10);
    return *end == 0;
}

static void read_set(const redisReply *r, int *ids, long long *scores, double *exact, size_t *n,
                     size_t *foreign)
{
    *n = *foreign = 0;
    if (r->type != REDIS_REPLY_ARRAY) return;
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        int id = lm_id_index(r->element[i]->str, r->element[i]->len);
        if (id < 0 || *n == LO_SET_MAX) {
            (*foreign)++;
            continue;
        }
        if (scores) scores[*n] = atoll(r->element[i + 1]->str);
        if (exact) exact[*n] = strtod(r->element[i + 1]->str, NULL);
        ids[(*n)++] = id;
    }
}

static void read_stats(lo_view *v, const redisReply *r)
{
    static const char *const states[6] = {"pending", "running",   "completed",
                                          "failed",  "cancelled", "abandoned"};
    static const char *const totals[7] = {"total_submitted", "total_completed", "total_failed",
                                          "total_cancelled", "total_abandoned", "total_retried",
                                          "total_lost"};
    int64_t *tot[7] = {&v->tot.submitted, &v->tot.completed, &v->tot.failed, &v->tot.cancelled,
                       &v->tot.abandoned, &v->tot.retried,   &v->tot.lost};
    if (r->type != REDIS_REPLY_ARRAY) {
        snprintf(v->stats_bad, sizeof v->stats_bad, "the stats key is not a hash");
        return;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str;
        long long n;
        if (!to_ll(r->element[i + 1]->str, &n)) {
            snprintf(v->stats_bad, sizeof v->stats_bad, "%s = '%.40s'", f, r->element[i + 1]->str);
            continue;
        }
        if (n < 0) {
            size_t used = strlen(v->negative);
            snprintf(v->negative + used, sizeof v->negative - used, "%s%s=%lld", used ? " " : "", f,
                     n);
        }
        for (int s = 0; s < 6; s++)
            if (strcmp(f, states[s]) == 0) v->count[s] = n;
        for (int t = 0; t < 7; t++)
            if (strcmp(f, totals[t]) == 0) *tot[t] = n;
    }
}

void lo_read(redisContext *c, lo_view *v)
{
    memset(v, 0, sizeof *v);
    redisAppendCommand(c, "TIME");
    for (int i = 0; i < LM_NIDS; i++) {
        const char *id = lm_id(i);
        redisAppendCommand(c, "TYPE " Q ":p:%s", id);
        redisAppendCommand(c, "HGETALL " Q ":p:%s", id);
        redisAppendCommand(c, "TYPE " Q ":lease:%s", id);
        redisAppendCommand(c, "GET " Q ":lease:%s", id);
        redisAppendCommand(c, "PTTL " Q ":lease:%s", id);
        redisAppendCommand(c, "ZSCORE " Q ":due %s", id);
        redisAppendCommand(c, "ZSCORE " Q ":done %s", id);
        redisAppendCommand(c, "ZSCORE " Q ":prio:wait %s", id);
        redisAppendCommand(c, "ZSCORE " Q ":prio:ready %s", id);
    }
    redisAppendCommand(c, "ZRANGE " Q ":due 0 -1 WITHSCORES");
    redisAppendCommand(c, "ZRANGE " Q ":done 0 -1 WITHSCORES");
    redisAppendCommand(c, "HGETALL " Q ":stats");

    redisReply *r = next_reply(c);
    cr_assert(r->type == REDIS_REPLY_ARRAY && r->elements == 2);
    v->now = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    for (int i = 0; i < LM_NIDS; i++) {
        lo_id *x = &v->id[i];
        redisReply *t = next_reply(c), *h = next_reply(c), *lt = next_reply(c), *lg = next_reply(c),
                   *lp = next_reply(c), *ds = next_reply(c), *dn = next_reply(c),
                   *pw = next_reply(c), *pr = next_reply(c);
        x->type = type_of(t);
        if (x->type == LO_HASH) read_hash(x, h);
        x->lease_type = type_of(lt);
        if (lg->type == REDIS_REPLY_STRING)
            snprintf(x->lease, sizeof x->lease, "%.*s", (int)(lg->len < 95 ? lg->len : 95),
                     lg->str);
        x->lease_pttl = lp->type == REDIS_REPLY_INTEGER ? lp->integer : -2;
        if ((x->in_due = ds->type == REDIS_REPLY_STRING)) x->due_score = atoll(ds->str);
        if ((x->in_done = dn->type == REDIS_REPLY_STRING)) x->done_score = atoll(dn->str);
        freeReplyObject(t), freeReplyObject(h), freeReplyObject(lt), freeReplyObject(lg);
        freeReplyObject(lp), freeReplyObject(ds), freeReplyObject(dn);
        x->in_due_set = x->in_due;
        if ((x->in_pwait = pw->type == REDIS_REPLY_STRING))
            x->pwait_score = (long long)(x->pwait_at = strtod(pw->str, NULL));
        if ((x->in_pready = pr->type == REDIS_REPLY_STRING)) {
            long long p = 0;
            const char *pf = lo_field(x, "priority");
            x->pready_rank = (long long)strtod(pr->str, NULL);
            if (pf && to_ll(pf, &p))
                x->pready_at = x->pready_rank - LO_PRIO_K0 + p * LO_PRIO_STRICT;
        }
        freeReplyObject(pw), freeReplyObject(pr);
        x->nindex = x->in_due_set + x->in_pwait + x->in_pready;
        if (!x->in_due && (x->in_pwait || x->in_pready)) {
            x->in_due = true;
            x->due_score = x->in_pwait ? x->pwait_score : x->pready_at;
        }
    }
    r = next_reply(c);
    read_set(r, v->due, v->due_score, v->due_at, &v->ndue, &v->due_foreign);
    freeReplyObject(r);
    r = next_reply(c);
    read_set(r, v->done, NULL, NULL, &v->ndone, &v->done_foreign);
    freeReplyObject(r);
    r = next_reply(c);
    read_stats(v, r);
    freeReplyObject(r);
}

void lo_free(lo_view *v)
{
    for (int i = 0; i < LM_NIDS; i++) {
        lo_id *x = &v->id[i];
        for (int k = 0; k < x->nf; k++) {
            free(x->f[k]);
            free(x->v[k]);
        }
        free(x->canon);
    }
    memset(v, 0, sizeof *v);
}

/* ---- snapshots ------------------------------------------------------------------ */

static int cmp_key(const void *a, const void *b)
{
    return strcmp(((const lo_key *)a)->key, ((const lo_key *)b)->key);
}

void lo_snap_take(redisContext *c, lo_snap *s)
{
    memset(s, 0, sizeof *s);
    s->ms = lash_fx_ms();
    size_t cap = 0;
    char cursor[32] = "0";
    do {
        redisReply *r = redisCommand(c, "SCAN %s MATCH %s COUNT 1000", cursor, Q "*");
        cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "SCAN failed");
        snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            if (s->n == cap) {
                cap = cap ? 2 * cap : 64;
                s->k = realloc(s->k, cap * sizeof *s->k);
                cr_assert(s->k);
            }
            const redisReply *k = r->element[1]->element[i];
            s->k[s->n++] = (lo_key){.key = strndup(k->str, k->len)};
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (s->n) qsort(s->k, s->n, sizeof *s->k, cmp_key);
    for (size_t i = 0; i < s->n; i++) {
        redisAppendCommand(c, "TYPE %s", s->k[i].key);
        redisAppendCommand(c, "DUMP %s", s->k[i].key);
        redisAppendCommand(c, "XLEN %s", s->k[i].key);
        redisAppendCommand(c, "XREVRANGE %s + - COUNT 1", s->k[i].key);
        redisAppendCommand(c, "PTTL %s", s->k[i].key);
    }
    for (size_t i = 0; i < s->n; i++) {
        lo_key *k = &s->k[i];
        redisReply *t = next_reply(c), *d = next_reply(c), *xl = next_reply(c), *xr = next_reply(c),
                   *p = next_reply(c);
        const char *type = t->type == REDIS_REPLY_STATUS ? t->str : "?";
        if (strcmp(type, "stream") == 0) {
            /* A stream's DUMP carries bookkeeping; its length and last entry say
             * whether anything was added or trimmed. */
            const char *last = "-";
            if (xr->type == REDIS_REPLY_ARRAY && xr->elements == 1 &&
                xr->element[0]->type == REDIS_REPLY_ARRAY)
                last = xr->element[0]->element[0]->str;
            char buf[128];
            int n = snprintf(buf, sizeof buf, "stream len %lld last %s",
                             xl->type == REDIS_REPLY_INTEGER ? xl->integer : -1, last);
            k->val = strndup(buf, (size_t)n);
            k->len = (size_t)n;
        } else {
            size_t tl = strlen(type), dl = d->type == REDIS_REPLY_STRING ? d->len : 0;
            k->val = malloc(tl + 1 + dl + 1);
            cr_assert(k->val);
            memcpy(k->val, type, tl);
            k->val[tl] = ' ';
            if (dl) memcpy(k->val + tl + 1, d->str, dl);
            k->len = tl + 1 + dl;
            k->val[k->len] = 0;
        }
        k->pttl = p->type == REDIS_REPLY_INTEGER ? p->integer : -2;
        freeReplyObject(t), freeReplyObject(d), freeReplyObject(xl), freeReplyObject(xr);
        freeReplyObject(p);
    }
}

bool lo_snap_diff(const lo_snap *a, const lo_snap *b, char *why, size_t cap)
{
    long long elapsed = b->ms - a->ms;
    size_t i = 0, j = 0;
    why[0] = 0;
    while (i < a->n || j < b->n) {
        int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->k[i].key, b->k[j].key);
        if (c < 0) {
            snprintf(why, cap, "%s was deleted", a->k[i].key);
            return true;
        }
        if (c > 0) {
            snprintf(why, cap, "%s was created", b->k[j].key);
            return true;
        }
        const lo_key *x = &a->k[i++], *y = &b->k[j++];
        if (x->len != y->len || memcmp(x->val, y->val, x->len) != 0) {
            snprintf(why, cap, "%s was written", x->key);
            return true;
        }
        /* An expiry only shrinks with time (1 ms of rounding either way). */
        bool same = (x->pttl < 0 && y->pttl == x->pttl) ||
                    (x->pttl >= 0 && y->pttl >= 0 && y->pttl <= x->pttl + 1 &&
                     x->pttl - y->pttl <= elapsed + 50);
        if (!same) {
            snprintf(why, cap, "%s's expiry went from %lld to %lld ms", x->key, x->pttl, y->pttl);
            return true;
        }
    }
    return false;
}

void lo_snap_free(lo_snap *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->k[i].key);
        free(s->k[i].val);
    }
    free(s->k);
    memset(s, 0, sizeof *s);
}
