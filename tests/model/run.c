/* run.c: steps, their generation, playing them with checks, shrinking (see run.h). */
#include "run.h"

#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "fixture.h"
#include "model.h"
#include "observe.h"
#include "sut.h"

/* Weights per thousand-odd steps: mostly the work itself, a fifth hands. */
static const struct {
    const char *name;
    int weight;
} kinds[LR_KINDS] = {
    [LR_SUBMIT] = {"submit", 130},
    [LR_CLAIM] = {"claim", 130},
    [LR_RENEW] = {"renew", 60},
    [LR_COMPLETE] = {"complete", 140},
    [LR_RELEASE] = {"release", 30},
    [LR_CANCEL] = {"cancel", 35},
    [LR_RETRY] = {"retry", 35},
    [LR_TRIM] = {"trim", 45},
    [LR_ADVANCE] = {"advance", 80},
    [LR_SHORT_LEASE] = {"short-lease", 4}, /* sleeps ~150 ms: sparingly */
    [LR_RECOUNT] = {"recount", 10},
    [LR_DRAIN] = {"drain", 3},
    [LR_LIMIT] = {"limit", 12},
    [LR_PROGRESS] = {"progress", 40},
    [LR_ROW_JUNK] = {"row-junk", 15},
    [LR_DEL_ROW] = {"del-row", 15},
    [LR_DEL_FIELD] = {"del-field", 25},
    [LR_STATE_JUNK] = {"state-junk", 10},
    [LR_SET_FENCE] = {"set-fence", 20},
    [LR_SET_LEASE] = {"set-lease", 20},
    [LR_LEASE_JUNK] = {"lease-junk", 15},
    [LR_DUE_JUNK] = {"due-junk", 20},
    [LR_DONE_JUNK] = {"done-junk", 15},
    [LR_QUEUE_KEY_JUNK] = {"queue-key-junk", 30},
};

static const char *const queue_keys[] = {"due", "done", "stats", "events", "workers"};
static const char *const fields[] = {"state",   "kind",  "payload",     "fence",
                                     "attempt", "owner", "max_attempts"};
#define SHORT_TTL 150

const char *lr_kind_name(int kind)
{
    return kind >= 0 && kind < LR_KINDS ? kinds[kind].name : "?";
}

int lr_kind_parse(const char *name)
{
    for (int k = 0; k < LR_KINDS; k++)
        if (strcmp(kinds[k].name, name) == 0) return k;
    return -1;
}

/* splitmix64: the seed's stream of choices. */
static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static unsigned pick(uint64_t *s, unsigned n)
{
    return n ? (unsigned)(mix(s) % n) : 0;
}

void lr_generate(uint64_t seed, const bool *skip, lr_step *out, size_t n)
{
    uint64_t s = seed;
    int total = 0;
    for (int k = 0; k < LR_KINDS; k++)
        total += skip && skip[k] ? 0 : kinds[k].weight;
    cr_assert(total > 0, "every kind of step is skipped");
    for (size_t i = 0; i < n; i++) {
        int w = (int)pick(&s, (unsigned)total), k = 0;
        for (;; k++) {
            int kw = skip && skip[k] ? 0 : kinds[k].weight;
            if (w < kw) break;
            w -= kw;
        }
        lr_step *st = &out[i];
        st->kind = (uint8_t)k;
        /* Junk in due and done may name the ghost id, which never has a row. */
        st->id = (uint8_t)pick(&s, k == LR_DUE_JUNK || k == LR_DONE_JUNK ? LM_NIDS : LM_GHOST);
        st->owner = (uint8_t)pick(&s, LM_NOWNERS);
        static const uint8_t claim_n[] = {1, 2, 3, 100};
        st->n = claim_n[pick(&s, 4)];
        st->inner = 0;
        if (k == LR_QUEUE_KEY_JUNK) {
            static const uint8_t ops[] = {LR_SUBMIT,  LR_CLAIM,  LR_RENEW, LR_COMPLETE,
                                          LR_RELEASE, LR_CANCEL, LR_RETRY, LR_TRIM};
            do
                st->inner = ops[pick(&s, 8)];
            while (skip && skip[st->inner] && !skip[LR_CLAIM]);
        }
        st->salt = (uint32_t)mix(&s);
    }
}

/* ---- playing --------------------------------------------------------------------- */

typedef struct {
    lr_run *run;
    redisContext *ctx;
    lm m;
    lo_view view;
    lc_memory mem;
    lo_snap snap;
    uint64_t g; /* the current step's choices, from its salt */
    size_t step;
    bool muted;    /* the step already failed: what the check finds follows from it */
    bool adrift;   /* an ignored violation: the model must take what Redis holds */
    char past[32]; /* a score after every one written so far, before any to come */
    char op[96];
    char line[4096];
    char pending[4096]; /* violations found before the step's line was written */
} play;

static bool ignored(const char *list, const char *code)
{
    for (const char *p = list; p && *p;) {
        size_t len = strcspn(p, ",");
        char part[96];
        snprintf(part, sizeof part, "%.*s", (int)len, p);
        if (len && strstr(code, part)) return true;
        p += len + (p[len] == ',');
    }
    return false;
}

static void report(void *ctx, const char *code, const char *msg)
{
    play *p = ctx;
    lr_run *r = p->run;
    if (p->muted) return;
    if (ignored(r->ignore, code)) {
        p->adrift = true;
        return;
    }
    r->viol = realloc(r->viol, (r->nviol + 1) * sizeof *r->viol);
    cr_assert(r->viol);
    lr_viol *v = &r->viol[r->nviol++];
    snprintf(v->code, sizeof v->code, "%s", code);
    snprintf(v->msg, sizeof v->msg, "%s", msg);
    v->step = p->step;
    if (r->first_bad == SIZE_MAX) r->first_bad = p->step;
    if (!r->trace) return;
    if (p->line[0]) { /* the step's line comes first */
        size_t used = strlen(p->pending);
        snprintf(p->pending + used, sizeof p->pending - used, "    !! %s: %s\n", code, msg);
    } else {
        fprintf(r->trace, "    !! %s: %s\n", code, msg);
    }
}

static void say(play *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(play *p, const char *fmt, ...)
{
    size_t used = strlen(p->line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->line + used, sizeof p->line - used, fmt, ap);
    va_end(ap);
}

static void flush_line(play *p)
{
    lr_run *r = p->run;
    if (!p->line[0]) return;
    r->log = realloc(r->log, (r->nlog + 1) * sizeof *r->log);
    cr_assert(r->log);
    r->log[r->nlog] = strdup(p->line);
    cr_assert(r->log[r->nlog]);
    if (r->trace) fprintf(r->trace, "%s\n%s", p->line, p->pending);
    r->nlog++;
    p->line[0] = p->pending[0] = 0;
}

static void set_op(play *p, const char *name)
{
    if (p->m.qfault)
        snprintf(p->op, sizeof p->op, "%s (%s of the wrong type)", name, p->m.qfault);
    else
        snprintf(p->op, sizeof p->op, "%s", name);
    p->m.op = p->op;
}

/* Around every script call: a call that failed must have changed nothing. */
static void call_begin(play *p)
{
    lo_snap_take(p->ctx, &p->snap);
}

static void call_end(play *p, lash_status st, const lash_err *e)
{
    if (st != LASH_OK && st != LASH_ENOTFOUND && st != LASH_EREFUSED) {
        say(p, " -> ERROR %s", e->msg);
        lo_snap after;
        lo_snap_take(p->ctx, &after);
        char why[256];
        if (lo_snap_diff(&p->snap, &after, why, sizeof why))
            lm_viol(&p->m, "partial-write", "the call failed (%s) and yet %s", e->msg, why);
        lo_snap_free(&after);
    }
    lo_snap_free(&p->snap);
}

static long long server_ms(play *p)
{
    redisReply *r = redisCommand(p->ctx, "TIME");
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 2, "TIME failed");
    long long ms = atoll(r->element[0]->str) * 1000 + atoll(r->element[1]->str) / 1000;
    freeReplyObject(r);
    return ms;
}

/* Waits for the server's clock to pass ms. Scores are server milliseconds, and
 * two rows scored in the same one are ordered by id: a run is only repeatable
 * if no two steps write in the same millisecond. Scores the test sets by hand
 * are half milliseconds between two steps (p->past), so they never tie either. */
static void tick_past(play *p, long long ms)
{
    while (server_ms(p) <= ms) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
}

/* Reads Redis and checks it; after a violation, adopts it when going on. */
static void settle(play *p, size_t before)
{
    flush_line(p);
    long long end = server_ms(p);
    tick_past(p, end);
    snprintf(p->past, sizeof p->past, "%lld.5", end);
    lo_free(&p->view);
    lo_read(p->ctx, &p->view);
    p->muted = p->run->nviol > before || p->adrift;
    lc_check(&p->m, &p->view, &p->mem);
    p->muted = false;
    if ((p->run->nviol > before && p->run->keep_going) || p->adrift)
        lc_adopt(&p->m, &p->view, &p->mem);
    p->adrift = false;
}

static unsigned choose(play *p, unsigned n)
{
    return pick(&p->g, n);
}

/* A token this row had once (for stale calls), or NULL. */
static const char *old_token(play *p, int id)
{
    lm_row *r = &p->m.row[id];
    return r->nhist ? r->hist[choose(p, (unsigned)r->nhist)] : NULL;
}

static bool token_parses(const char *t)
{
    const char *colon = strrchr(t, ':');
    if (!colon || colon == t || !colon[1]) return false;
    for (const char *c = colon + 1; *c; c++)
        if (*c < '0' || *c > '9') return false;
    return true;
}

/* ---- the operations ---------------------------------------------------------------- */

static void do_submit(play *p, const lr_step *s)
{
    lm_sub sub[3];
    size_t n = 1 + choose(p, 3);
    say(p, "submit");
    for (size_t i = 0; i < n; i++) {
        sub[i].id = i == 0 ? s->id : (int)choose(p, LM_GHOST);
        sub[i].reg = choose(p, 4) < 3 ? sub[i].id % LM_NREGS : (int)choose(p, LM_NREGS);
        sub[i].delay = choose(p, 10) == 0;
        /* Mostly the id's own priority (0 for three ids of eight), at times
         * another: a resubmit with another priority is a conflict. */
        static const int prios[] = {0, 2, -1, 0, 5, 1, 0, 2};
        sub[i].prio = choose(p, 4) < 3 ? prios[sub[i].id] : prios[choose(p, 8)];
        const lm_row *r = &p->m.row[sub[i].id];
        bool creates = r->form != LM_HASH || r->no_kind;
        if (!LM_SUBMIT_CLEARS_PRIO && !sub[i].prio && creates &&
            (p->view.id[sub[i].id].in_pwait || p->view.id[sub[i].id].in_pready))
            sub[i].prio = 1; /* see LM_SUBMIT_CLEARS_PRIO */
        /* Mostly the id's own dependencies (chains: a1 after a0, a3 after a1
         * and a2, ...), at times another id's. */
        static const unsigned afters[] = {0, 1u << 0, 0, 1u << 1 | 1u << 2, 0, 1u << 4, 1u << 3, 0};
        sub[i].after = choose(p, 4) < 3 ? afters[sub[i].id] : afters[choose(p, 8)];
        sub[i].after &= ~(1u << sub[i].id);
        const lm_reg *g = &lm_regs[sub[i].reg];
        say(p, " %s(payload %s max %d%s%s", lm_id(sub[i].id), g->payload, g->max_attempts,
            g->abandon ? " abandon" : "", sub[i].delay ? " delay 1h" : "");
        if (sub[i].prio) say(p, " priority %d", sub[i].prio);
        for (int d = 0, first = 1; d < LM_NIDS; d++)
            if (sub[i].after & (1u << d)) {
                say(p, "%s%s", first ? " after " : ",", lm_id(d));
                first = 0;
            }
        say(p, ")");
    }
    lash_submitted out[3];
    lash_err e = {0};
    call_begin(p);
    lash_status st = sut_submit(p->run->c, sub, n, out, &e);
    call_end(p, st, &e);
    if (st == LASH_OK) {
        static const char *const names[] = {"created", "exists", "conflict", "invalid"};
        say(p, " ->");
        for (size_t i = 0; i < n; i++)
            say(p, " %s", names[out[i].status]);
    }
    lm_submit(&p->m, sub, n, out, st != LASH_OK, e.msg);
}

/* The ids a claim of n looks at, in the order it must look at them (read just
 * before it): the rows of due whose score passed (ranked as priority 0), and
 * the prioritized ones: all of prio:ready, and those of prio:wait whose time
 * passed and that are still pending with a priority (any other goes back to due
 * unlooked at, lib.lua lash_prio_pick). The order is the model's. */
static size_t looked_ids(play *p, size_t n, int *looked)
{
    lm_cand cand[LO_SET_MAX + 2 * LM_NIDS];
    size_t nc = 0;
    const lo_view *v = &p->view;
    for (size_t k = 0; k < v->ndue; k++)
        if (v->due_score[k] <= v->now)
            cand[nc++] = (lm_cand){.id = v->due[k], .prio = 0, .at = v->due_at[k]};
    for (int i = 0; i < LM_NIDS; i++) {
        const lo_id *x = &v->id[i];
        const lm_row *r = &p->m.row[i];
        if (x->in_pready)
            cand[nc++] =
                (lm_cand){.id = i,
                          .prio = r->prio,
                          .at = (double)(x->pready_rank - LO_PRIO_K0 + r->prio * LO_PRIO_STRICT)};
        if (x->in_pwait && x->pwait_score <= v->now && r->form == LM_HASH &&
            r->state == LM_PENDING && r->prio != 0)
            cand[nc++] = (lm_cand){.id = i, .prio = r->prio, .at = x->pwait_at};
    }
    return lm_claim_order(cand, nc, n, looked);
}

static void do_claim(play *p, int owner, int n, int64_t ttl, int *claimed, size_t *nclaimed)
{
    int looked[LO_SET_MAX];
    size_t nl = looked_ids(p, (size_t)n, looked);
    say(p, "claim %s n=%d ttl=%lld (looks at", lm_owner(owner), n, (long long)ttl);
    for (size_t k = 0; k < nl; k++)
        say(p, " %s", lm_id(looked[k]));
    say(p, ")");
    lash_claim_batch b = {0};
    lash_err e = {0};
    call_begin(p);
    lash_status st = sut_claim(p->run->c, owner, n, ttl, &b, &e);
    call_end(p, st, &e);
    if (st == LASH_OK) {
        say(p, " -> seen %zu bad %zu:", b.seen, b.bad);
        for (size_t i = 0; i < b.n; i++)
            say(p, " %s@%s:%lld", b.rows[i].id, lm_owner(owner), (long long)b.rows[i].fence);
        if (!b.n) say(p, " nothing");
    }
    lm_claim(&p->m, owner, looked, nl, &b, st != LASH_OK, e.msg);
    if (claimed) {
        *nclaimed = 0;
        for (size_t i = 0; i < b.n; i++) {
            int id = lm_id_index(b.rows[i].id, strlen(b.rows[i].id));
            if (id >= 0) claimed[(*nclaimed)++] = id;
        }
    }
    lash_claim_batch_free(&b);
}

static void do_renew(play *p, int owner, int64_t ttl, int *renewed, size_t *nrenewed)
{
    lm_tok t[16];
    size_t n = 0;
    for (int i = 0; i < p->m.nheld[owner] && n < 12; i++) {
        t[n].id = p->m.held[owner][i].id;
        snprintf(t[n].token, sizeof t[n].token, "%s", p->m.held[owner][i].token);
        n++;
    }
    if (choose(p, 4) == 0) { /* and a token that is not (or no longer) its own */
        int id = (int)choose(p, LM_GHOST);
        const char *old = old_token(p, id);
        t[n].id = id;
        snprintf(t[n].token, sizeof t[n].token, "%s", old ? old : "w9:1");
        n++;
    }
    say(p, "renew ttl=%lld", (long long)ttl);
    for (size_t i = 0; i < n; i++)
        say(p, " %s@%s", lm_id(t[i].id), t[i].token);
    if (!n) {
        say(p, " (%s holds nothing)", lm_owner(owner));
        return;
    }
    int st[16];
    lash_err e = {0};
    call_begin(p);
    lash_status s = sut_renew(p->run->c, ttl, t, n, st, &e);
    call_end(p, s, &e);
    if (s == LASH_OK) {
        say(p, " ->");
        for (size_t i = 0; i < n; i++)
            say(p, " %d", st[i]);
    }
    lm_renew(&p->m, owner, t, n, st, s != LASH_OK, e.msg);
    if (renewed) {
        *nrenewed = 0;
        for (size_t i = 0; s == LASH_OK && i < n; i++)
            if (st[i] != LASH_RENEW_LOST) renewed[(*nrenewed)++] = t[i].id;
    }
}

/* The owner reports progress on some of what it holds, at times with a token
 * that is not (or no longer) the holder's: refused, the row unchanged. */
static void do_progress(play *p, int owner)
{
    lm_tok t[16];
    int pct[16];
    size_t n = 0;
    for (int i = 0; i < p->m.nheld[owner] && n < 4; i++)
        if (choose(p, 2)) {
            t[n].id = p->m.held[owner][i].id;
            snprintf(t[n].token, sizeof t[n].token, "%s", p->m.held[owner][i].token);
            n++;
        }
    if (!n || choose(p, 3) == 0) {
        int id = (int)choose(p, LM_GHOST);
        const char *old = old_token(p, id);
        t[n].id = id;
        snprintf(t[n].token, sizeof t[n].token, "%s", old ? old : "w9:1");
        n++;
    }
    say(p, "progress");
    for (size_t i = 0; i < n; i++) {
        pct[i] = (int)choose(p, 101);
        say(p, " %s@%s:%d%%", lm_id(t[i].id), t[i].token, pct[i]);
    }
    int st[16];
    lash_err e = {0};
    call_begin(p);
    lash_status s = sut_progress(p->run->c, t, pct, n, st, &e);
    call_end(p, s, &e);
    if (s == LASH_OK) {
        say(p, " ->");
        for (size_t i = 0; i < n; i++)
            say(p, " %d", st[i]);
    }
    lm_progress(&p->m, t, pct, n, st, s != LASH_OK, e.msg);
}

static void complete_these(play *p, int owner, lm_fin *f, size_t n)
{
    static const char *const out[] = {"ok", "fail", "cancel", "abort"};
    say(p, "complete");
    for (size_t i = 0; i < n; i++)
        say(p, " %s@%s:%s%s", lm_id(f[i].t.id), f[i].t.token, out[f[i].outcome],
            f[i].later ? "(retry in 1h)" : "");
    int st[16];
    lash_err e = {0};
    call_begin(p);
    lash_status s = sut_complete(p->run->c, f, n, st, &e);
    call_end(p, s, &e);
    if (s == LASH_OK) {
        say(p, " ->");
        for (size_t i = 0; i < n; i++)
            say(p, " %d", st[i]);
    }
    lm_complete(&p->m, owner, f, n, st, s != LASH_OK, e.msg);
}

static void do_complete(play *p, int owner)
{
    lm_fin f[8];
    size_t n = 0;
    int held = p->m.nheld[owner];
    size_t want = 1 + choose(p, 3);
    bool used[LM_HELD] = {0};
    for (size_t k = 0; k < want && held > 0; k++) {
        int i = (int)choose(p, (unsigned)held);
        if (used[i]) continue;
        used[i] = true;
        f[n].t.id = p->m.held[owner][i].id;
        snprintf(f[n].t.token, sizeof f[n].t.token, "%s", p->m.held[owner][i].token);
        n++;
    }
    if (choose(p, 5) == 0) {
        /* Someone else: a stale token, or whoever the lease key names now. */
        int id = (int)choose(p, LM_GHOST);
        lm_row *r = &p->m.row[id];
        const char *t = r->lease == LM_TOKEN && token_parses(r->token) && choose(p, 2)
                            ? r->token
                            : old_token(p, id);
        if (t) {
            f[n].t.id = id;
            snprintf(f[n].t.token, sizeof f[n].t.token, "%s", t);
            n++;
        }
    }
    if (!n) {
        say(p, "complete: %s holds nothing", lm_owner(owner));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned o = choose(p, 10);
        f[i].outcome = o < 5   ? LASH_OUT_OK
                       : o < 8 ? LASH_OUT_FAIL
                       : o < 9 ? LASH_OUT_CANCEL
                               : LASH_OUT_ABORT;
        f[i].later = choose(p, 4) == 0;
    }
    complete_these(p, owner, f, n);
}

static void do_release(play *p, int owner)
{
    lm_tok t[16];
    bool ran[16];
    size_t n = 0;
    int held = p->m.nheld[owner];
    if (!held) {
        say(p, "release: %s holds nothing", lm_owner(owner));
        return;
    }
    size_t want = 1 + choose(p, (unsigned)held);
    for (int i = 0; i < held && n < want && n < 16; i++) {
        t[n].id = p->m.held[owner][i].id;
        snprintf(t[n].token, sizeof t[n].token, "%s", p->m.held[owner][i].token);
        ran[n] = sut_release_knows_ran && choose(p, 2);
        n++;
    }
    say(p, "release");
    for (size_t i = 0; i < n; i++)
        say(p, " %s@%s%s", lm_id(t[i].id), t[i].token, ran[i] ? "(ran)" : "");
    int st[16];
    lash_err e = {0};
    call_begin(p);
    lash_status s = sut_release(p->run->c, t, ran, n, st, &e);
    call_end(p, s, &e);
    if (s == LASH_OK) {
        say(p, " ->");
        for (size_t i = 0; i < n; i++)
            say(p, " %d", st[i]);
    }
    lm_release(&p->m, owner, t, ran, n, st, s != LASH_OK, e.msg);
}

static void do_cancel(play *p, int id)
{
    bool requested = false;
    lash_err e = {0};
    say(p, "cancel %s", lm_id(id));
    call_begin(p);
    lash_status st = sut_cancel(p->run->c, id, &requested, &e);
    call_end(p, st, &e);
    say(p, " -> %s%s", lash_status_name(st), requested ? " (requested)" : "");
    lm_cancel(&p->m, id, st, requested, e.msg);
}

static void do_retry(play *p, int id)
{
    lash_err e = {0};
    say(p, "retry %s", lm_id(id));
    call_begin(p);
    lash_status st = sut_retry(p->run->c, id, &e);
    call_end(p, st, &e);
    say(p, " -> %s", lash_status_name(st));
    lm_retry(&p->m, id, st, e.msg);
}

static void do_trim(play *p)
{
    static const int keep[] = {0, 1, 2, 4, -1}, maxes[] = {1, 2, 1000};
    int keep_n = keep[choose(p, 5)], max = maxes[choose(p, 3)];
    int64_t removed = -1;
    lash_err e = {0};
    say(p, "trim keep_n=%d max=%d (done:", keep_n, max);
    for (size_t i = 0; i < p->view.ndone; i++)
        say(p, " %s", lm_id(p->view.done[i]));
    say(p, ")");
    call_begin(p);
    lash_status st = sut_trim(p->run->c, keep_n, max, &removed, &e);
    call_end(p, st, &e);
    if (st == LASH_OK) say(p, " -> %lld", (long long)removed);
    lm_trim(&p->m, keep_n, max, p->view.done, p->view.ndone, removed, st != LASH_OK, e.msg);
}

static void do_op(play *p, const lr_step *s, int kind)
{
    switch (kind) {
    case LR_SUBMIT:
        do_submit(p, s);
        break;
    case LR_CLAIM:
        do_claim(p, s->owner, s->n, LM_TTL_LONG, NULL, NULL);
        break;
    case LR_RENEW:
        do_renew(p, s->owner, LM_TTL_LONG, NULL, NULL);
        break;
    case LR_COMPLETE:
        do_complete(p, s->owner);
        break;
    case LR_RELEASE:
        do_release(p, s->owner);
        break;
    case LR_CANCEL:
        do_cancel(p, s->id);
        break;
    case LR_RETRY:
        do_retry(p, s->id);
        break;
    case LR_TRIM:
        do_trim(p);
        break;
    default:
        break;
    }
}

/* An operator sets kind k's concurrency limit to 1, 2 or 3, or removes it. */
static void set_limit(play *p, int conc)
{
    lash_err e = {0};
    say(p, conc ? "limit set k concurrency %d" : "limit rm k", conc);
    call_begin(p);
    lash_status st = sut_limit(p->run->c, conc, &e);
    call_end(p, st, &e);
    if (st != LASH_OK) {
        if (!p->m.qfault) lm_viol(&p->m, "error", "limit: %s", e.msg);
        return;
    }
    lm_limit(&p->m, conc);
}

/* ---- time ------------------------------------------------------------------------- */

static void advance(play *p, int id)
{
    sut_advance(p->run->c, id, p->past, !lm_parked(&p->m.row[id]));
    lm_advance(&p->m, id);
}

/* A real lease of 150 ms, from a claim or a renew, runs out by itself. A claim
 * also gives lease keys without an expiry that it passes over the same 150 ms:
 * those run out too before the step ends, or a later step would meet them
 * expiring at a moment of their own. */
static void do_short_lease(play *p, const lr_step *s)
{
    int ids[2 * LO_SET_MAX];
    size_t n = 0;
    if (choose(p, 2)) {
        int forever[LO_SET_MAX], looked[LO_SET_MAX];
        size_t nf = 0, nl = looked_ids(p, s->n, looked);
        for (size_t k = 0; k < nl; k++) {
            lm_row *r = &p->m.row[looked[k]];
            if (r->lease != LM_NOLEASE && !r->lease_ttl) forever[nf++] = looked[k];
        }
        do_claim(p, s->owner, s->n, SHORT_TTL, ids, &n);
        for (size_t i = 0; i < nf; i++)
            ids[n++] = forever[i];
    } else {
        do_renew(p, s->owner, SHORT_TTL, ids, &n);
    }
    sut_wait_leases_gone(p->run->c, ids, n);
    say(p, "; waited until they ran out");
    for (size_t i = 0; i < n; i++)
        lm_advance(&p->m, ids[i]);
}

/* Whether id waits for a dependency whose row a hand took away (see
 * LM_DEPS_SETTLE_DROPPED) ... */
static bool waits_for_dropped_at(play *p, int id, int depth)
{
    for (int d = 0; d < LM_NIDS && depth < LM_NIDS; d++)
        if ((p->m.row[id].waiting & (1u << d)) &&
            (p->m.row[d].form != LM_HASH ||
             (lm_parked(&p->m.row[d]) && waits_for_dropped_at(p, d, depth + 1))))
            return true;
    return false;
}

/* ... or for one that waits so in turn. */
static bool waits_for_dropped(play *p, int id)
{
    return waits_for_dropped_at(p, id, 0);
}

/* Time passes for every id; claims and completes until nothing is live. Every
 * live row must get there: none may be stranded. */
static void do_drain(play *p)
{
    size_t before = p->run->nviol;
    say(p, "drain:");
    flush_line(p);
    if (p->m.limit) { /* every row must get there: the operator lifts the limit */
        say(p, "    ");
        set_limit(p, 0);
        settle(p, before);
    }
    for (int round = 0; round < 8; round++) {
        bool work = false;
        for (int i = 0; i < LM_NIDS; i++)
            work |= p->m.row[i].in_due || lm_live(&p->m.row[i]);
        if (!work) break;
        say(p, "    advance every id");
        for (int i = 0; i < LM_NIDS; i++)
            advance(p, i);
        set_op(p, "drain");
        settle(p, before);
        say(p, "    ");
        set_op(p, "claim");
        do_claim(p, LM_NOWNERS, 1000, LM_TTL_LONG, NULL, NULL);
        settle(p, before);
        if (p->run->nviol > before && !p->run->keep_going) return;
        lm_fin f[16];
        size_t n = 0;
        for (int i = 0; i < p->m.nheld[LM_NOWNERS] && n < 16; i++, n++) {
            f[n] = (lm_fin){.t.id = p->m.held[LM_NOWNERS][i].id, .outcome = LASH_OUT_OK};
            snprintf(f[n].t.token, sizeof f[n].t.token, "%s", p->m.held[LM_NOWNERS][i].token);
        }
        if (n) {
            say(p, "    ");
            set_op(p, "complete");
            complete_these(p, LM_NOWNERS, f, n);
            settle(p, before);
            if (p->run->nviol > before && !p->run->keep_going) return;
        }
    }
    set_op(p, "drain");
    for (int i = 0; i < LM_NIDS; i++)
        if (lm_parked(&p->m.row[i]) && !LM_DEPS_SETTLE_DROPPED && waits_for_dropped(p, i))
            continue;
        else if (lm_parked(&p->m.row[i]))
            lm_viol(&p->m, "dep-stranded",
                    "%s still waits for dependencies after 8 rounds of drain (deps_left %d)",
                    lm_id(i), p->m.row[i].deps_left);
        else if (lm_live(&p->m.row[i]) || p->m.row[i].in_due)
            lm_viol(&p->m, "unreachable", "%s is still %s%s after 8 rounds of drain", lm_id(i),
                    lm_state_name(p->m.row[i].state), p->m.row[i].in_due ? " and in due" : "");
}

/* ---- hands --------------------------------------------------------------------------- */

static void do_hand(play *p, const lr_step *s)
{
    lash_conn *c = p->run->c;
    int id = s->id;
    lm_row *r = &p->m.row[id];
    bool ttl = choose(p, 2);
    say(p, "hand: ");
    if (r->form != LM_HASH &&
        (s->kind == LR_DEL_FIELD || s->kind == LR_STATE_JUNK || s->kind == LR_SET_FENCE)) {
        say(p, "(%s has no row hash: nothing to do)", lm_id(id));
        return;
    }
    switch (s->kind) {
    case LR_ROW_JUNK:
        say(p, "%s", sut_hand_row_junk(c, id, (int)choose(p, 3)));
        lm_hand_row_junk(&p->m, id);
        break;
    case LR_DEL_ROW:
        say(p, "%s", sut_hand_del_row(c, id));
        lm_hand_del_row(&p->m, id);
        break;
    case LR_DEL_FIELD: {
        const char *f = fields[choose(p, 7)];
        say(p, "%s", sut_hand_del_field(c, id, f));
        lm_hand_del_field(&p->m, id, f);
        break;
    }
    case LR_STATE_JUNK:
        say(p, "%s", sut_hand_set_state_junk(c, id));
        lm_hand_set_state_junk(&p->m, id);
        break;
    case LR_SET_FENCE: {
        int64_t f;
        switch (choose(p, 8)) {
        case 0:
            f = 100000000000000LL;
            break; /* 10^14: issue 10 item 8 */
        case 1:
        case 2:
            f = 0;
            break;
        case 3:
        case 4:
            f = r->top_fence > 0 ? r->top_fence - 1 : 0;
            break;
        case 5:
            f = (int64_t)1 << 40;
            break;
        default:
            f = r->top_fence + 1000;
            break;
        }
        say(p, "%s", sut_hand_set_fence(c, id, f));
        lm_hand_set_fence(&p->m, id, f);
        break;
    }
    case LR_SET_LEASE: {
        char t[LM_TOKEN_MAX];

        const char *old = old_token(p, id);
        unsigned how = choose(p, 3);
        if (how == 0 && old)
            snprintf(t, sizeof t, "%s", old); /* an old token comes back */
        else if (how == 1 && r->form == LM_HASH)
            snprintf(t, sizeof t, "w%d:%lld", 1 + (int)choose(p, 3), (long long)r->fence);
        else
            snprintf(t, sizeof t, "wX:%u", 1 + choose(p, 999));
        say(p, "%s", sut_hand_set_lease(c, id, t, ttl));
        lm_hand_set_lease(&p->m, id, t, ttl);
        break;
    }
    case LR_LEASE_JUNK:
        say(p, "%s", sut_hand_lease_junk(c, id, (int)choose(p, 2), ttl));
        lm_hand_lease_junk(&p->m, id, ttl);
        break;
    case LR_DUE_JUNK: {
        char later[32];
        /* An id waiting in a priority set put in due as well is left out: the
         * scripts leave the prio entry behind when a claim takes the row from
         * due (the report of issue 15's model work). */
        if (p->view.id[id].in_pwait || p->view.id[id].in_pready) {
            say(p, "(%s waits in a priority set: left alone)", lm_id(id));
            break;
        }
        snprintf(later, sizeof later, "%lld", p->view.now + LM_DELAY_LONG);
        say(p, "%s", sut_hand_due(c, id, ttl ? p->past : later));
        lm_hand_due(&p->m, id, ttl);
        break;
    }
    case LR_DONE_JUNK:
        /* The newest or the oldest: a score between others would tie or not
         * with them depending on timing. */
        say(p, "%s", sut_hand_done(c, id, ttl ? p->past : "1"));
        lm_hand_done(&p->m, id);
        break;
    default:
        break;
    }
}

static void do_queue_key_junk(play *p, const lr_step *s)
{
    sut_saved saved;
    const char *key = queue_keys[choose(p, 5)];
    say(p, "%s; ", sut_qfault_begin(p->run->c, key, &saved));
    p->m.qfault = key;
    set_op(p, lr_kind_name(s->inner));
    do_op(p, s, s->inner);
    p->m.qfault = NULL;
    sut_qfault_end(p->run->c, &saved);
}

static void do_step(play *p, const lr_step *s)
{
    p->g = s->salt;
    set_op(p, lr_kind_name(s->kind));
    switch (s->kind) {
    case LR_ADVANCE:
        say(p, "advance %s (its lease runs out, its due score passes)", lm_id(s->id));
        advance(p, s->id);
        break;
    case LR_SHORT_LEASE:
        do_short_lease(p, s);
        break;
    case LR_RECOUNT:
        say(p, "recount the counters from the rows");
        sut_recount(p->run->c);
        lm_recount(&p->m);
        break;
    case LR_DRAIN:
        do_drain(p);
        break;
    case LR_LIMIT:
        set_limit(p, (int)choose(p, 4));
        break;
    case LR_PROGRESS:
        do_progress(p, s->owner);
        break;
    case LR_QUEUE_KEY_JUNK:
        do_queue_key_junk(p, s);
        break;
    default:
        if (s->kind >= LR_ROW_JUNK)
            do_hand(p, s);
        else
            do_op(p, s, s->kind);
    }
}

static bool has_code(const lr_run *r, size_t from, const char *code)
{
    for (size_t i = from; i < r->nviol; i++)
        if (strcmp(r->viol[i].code, code) == 0) return true;
    return false;
}

size_t lr_play(lr_run *r, const lr_step *steps, size_t n)
{
    play *p = calloc(1, sizeof *p);
    cr_assert(p);
    p->run = r;
    p->ctx = lash_conn_redis(r->c);
    r->first_bad = SIZE_MAX;
    redisReply *rep = redisCommand(p->ctx, "FLUSHALL");
    cr_assert(rep && rep->type != REDIS_REPLY_ERROR, "FLUSHALL failed");
    freeReplyObject(rep);
    lm_init(&p->m, report, p);
    settle(p, r->nviol);
    for (size_t i = 0; i < n; i++) {
        size_t before = r->nviol;
        p->step = i;
        snprintf(p->line, sizeof p->line, "#%zu ", i + 1);
        do_step(p, &steps[i]);
        settle(p, before);
        if (r->nviol > before && !r->keep_going) break;
        if (r->stop_code && r->nviol > before && has_code(r, before, r->stop_code)) break;
    }
    lo_free(&p->view);
    lc_memory_free(&p->mem);
    free(p);
    return r->nviol;
}

void lr_run_free(lr_run *r)
{
    for (size_t i = 0; i < r->nlog; i++)
        free(r->log[i]);
    free(r->log);
    free(r->viol);
    r->log = NULL;
    r->viol = NULL;
    r->nlog = r->nviol = 0;
}

/* ---- shrinking ------------------------------------------------------------------------ */

static bool shows(lash_conn *c, const lr_step *s, size_t n, const char *code)
{
    lr_run r = {.c = c, .keep_going = true, .stop_code = code};
    lr_play(&r, s, n);
    bool found = has_code(&r, 0, code);
    lr_run_free(&r);
    return found;
}

void lr_shrink(lash_conn *c, lr_step *steps, size_t *n, const char *code, double budget_s)
{
    long long until = lash_fx_ms() + (long long)(budget_s * 1000);
    lr_step *cand = malloc((*n ? *n : 1) * sizeof *cand);
    cr_assert(cand);
    size_t chunk = *n / 2 ? *n / 2 : 1;
    for (;;) {
        bool progress = false;
        for (size_t at = 0; at < *n && lash_fx_ms() < until;) {
            size_t len = chunk < *n - at ? chunk : *n - at;
            if (len == *n) break;
            memcpy(cand, steps, at * sizeof *cand);
            memcpy(cand + at, steps + at + len, (*n - at - len) * sizeof *cand);
            if (shows(c, cand, *n - len, code)) {
                *n -= len;
                memcpy(steps, cand, *n * sizeof *cand);
                progress = true;
            } else {
                at += len;
            }
        }
        if (lash_fx_ms() >= until) break;
        if (chunk > 1)
            chunk /= 2;
        else if (!progress)
            break;
    }
    free(cand);
}

void lr_encode(FILE *f, const lr_step *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%s:%u:%u:%u:%s:%u", i ? " " : "", lr_kind_name(s[i].kind), s[i].id,
                s[i].owner, s[i].n, s[i].kind == LR_QUEUE_KEY_JUNK ? lr_kind_name(s[i].inner) : "-",
                s[i].salt);
}

size_t lr_decode(const char *text, lr_step *out, size_t cap)
{
    size_t n = 0;
    const char *p = text;
    while (*p && n < cap) {
        while (*p == ' ' || *p == '\n' || *p == '\t')
            p++;
        if (!*p) break;
        char kind[32], inner[32];
        unsigned id, owner, cnt, salt;
        int used = 0;
        if (sscanf(p, "%31[^:]:%u:%u:%u:%31[^:]:%u%n", kind, &id, &owner, &cnt, inner, &salt,
                   &used) != 6)
            break;
        int k = lr_kind_parse(kind), in = lr_kind_parse(inner);
        if (k < 0 || id >= LM_NIDS || owner >= LM_NOWNERS) break;
        out[n++] = (lr_step){
            (uint8_t)k, (uint8_t)id, (uint8_t)owner, (uint8_t)cnt, (uint8_t)(in < 0 ? 0 : in),
            salt};
        p += used;
    }
    return n;
}
