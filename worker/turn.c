/* turn.c: the worker's sans-IO turn machine (see turn.h). */
#include "worker/turn.h"

#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"
#include "proto/progress.h"
#include "proto/record.h"
#include "proto/text.h"

/* An outcome waiting to be written: a completion or a release. It owns copies
 * of what it names, because its slot is reused as soon as the process ends. */
typedef struct {
    char id[LASH_ID_MAX + 1];
    int64_t fence;
    lash_outcome outcome;
    char *text;
    size_t len;
    int64_t retry_ms;
    bool ran;    /* a release: the process started (release.lua's `ran`) */
    int percent; /* a progress report */
} rec;

typedef struct {
    rec *v;
    size_t n, cap;
} recs;

typedef enum {
    CMD_CLAIM,
    CMD_RENEW,
    CMD_COMPLETE,
    CMD_RELEASE,
    CMD_RECOVER,
    CMD_PEEK,
    CMD_PROGRESS,
} cmd_kind;
#define CMD_KINDS (CMD_PROGRESS + 1)

/* Repeated failures of one kind of command are logged once, then summed up at
 * a slowing rate (1 s, 2 s, 4 s, ... 60 s) while they last: a persistent fault
 * (WRONGTYPE, OOM, READONLY, MOVED) would otherwise log a line per queue on
 * every poll tick. */
typedef struct {
    char what[200];   /* the failure being summed up, "" when none */
    uint64_t repeats; /* since the last line */
    uint64_t total;
    int64_t next_at, gap;
} fault;

/* A command sent and not yet answered. */
typedef struct {
    bool used;
    uint32_t id;
    cmd_kind kind;
    int q;
    int n;
    int64_t sent;
    recs rows;                     /* COMPLETE/RELEASE/PROGRESS: owned records */
    lash_completion *comps;        /* COMPLETE: views of rows */
    lash_lease *leases;            /* RENEW/RELEASE */
    bool *ran;                     /* RELEASE: whether each process started */
    int *slots;                    /* RENEW: slot per lease */
    int64_t *fences;               /* RENEW: fence per lease, to spot a reused slot */
    lash_progress_report *reports; /* PROGRESS: views of rows */
} cmd;

struct lash_turn {
    lash_turn_config c;
    char owner[LASH_WORKER_ID_MAX + 1];
    uint64_t rng;

    lash_slot *slots;
    int nslots;       /* concurrency + prefetch */
    int used;         /* slots in use, prefetched ones included */
    int prefetched;   /* slots holding a row not started (prefetch) */
    uint64_t order;   /* the last prefetched row's order */
    int reserved;     /* rows asked for by claims in flight */
    int progress_due; /* slots holding a progress report not sent yet */

    bool *want;           /* per queue: a drive is wanted */
    bool *beat;           /* per queue: a heartbeat claim is due */
    uint32_t *claim;      /* per queue: claim in flight (cmd id) or 0 */
    uint32_t *lost;       /* per queue: a claim whose reply was lost (its seq), to recover */
    uint32_t *recovering; /* per queue: recover in flight (cmd id) or 0 */
    bool *look;           /* per queue: a poll tick wants a peek */
    uint32_t *peeking;    /* per queue: peek in flight (cmd id) or 0 */
    int64_t *look_at;     /* per queue: no peek before (the fleet shares the poll) */
    int64_t *wake_at;     /* per queue: a row falls due then, as a peek said; 0 none */
    int *sharing;         /* per queue: workers polling it, as the last upkeep counted */
    int64_t *upkeep_at;   /* per queue: when the next claim does the upkeep */
    int *recorded;        /* per queue: rows recorded since the last upkeep */
    int64_t beat_at;      /* when the next heartbeat claim goes out */
    recs *done;           /* per queue: completions to send */
    recs *rel;            /* per queue: releases to send */
    int rr;               /* round-robin start over queues */

    cmd *cmds;
    int ncmds;
    uint32_t next_id;

    bool started, connected, connecting, draining, exited;
    bool grace_over;    /* the shutdown grace has run out and its kills were sent */
    int64_t hold_until; /* after an error reply: re-send nothing before this */
    int64_t connect_at, connect_since, backoff_ms, next_poll, grace_at, hard_at;
    int64_t armed;

    lash_action *acts;
    size_t nacts, head, capacts;
    char *last_msg;
    fault faults[CMD_KINDS];

    lash_counters k;
};

/* ---- small utilities -------------------------------------------------------- */

static double rnd(lash_turn *t)
{
    /* xorshift64*: deterministic for a given seed, which is what tests want. */
    t->rng ^= t->rng >> 12;
    t->rng ^= t->rng << 25;
    t->rng ^= t->rng >> 27;
    return (double)((t->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fputs("lash-worker: out of memory\n", stderr);
        abort(); /* the machine cannot keep its promises without memory */
    }
    return p;
}

static void *xrealloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (!p) {
        fputs("lash-worker: out of memory\n", stderr);
        abort();
    }
    return p;
}

static char *xstrndup(const char *s, size_t n)
{
    char *p = xcalloc(n + 1, 1);
    if (n) memcpy(p, s, n);
    return p;
}

static lash_action *push(lash_turn *t, lash_action_kind kind)
{
    if (t->nacts == t->capacts) {
        t->capacts = t->capacts ? t->capacts * 2 : 64;
        t->acts = xrealloc(t->acts, t->capacts * sizeof *t->acts);
    }
    lash_action *a = &t->acts[t->nacts++];
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->slot = -1;
    return a;
}

static void logf_(lash_turn *t, lash_log_level lvl, int slot, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void logf_(lash_turn *t, lash_log_level lvl, int slot, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    lash_action *a = push(t, LASH_ACT_LOG);
    a->level = lvl;
    a->slot = slot;
    a->msg = xstrndup(buf, strlen(buf)); /* freed by lash_turn_next */
}

static void recs_push(recs *r, const rec *x)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 16;
        r->v = xrealloc(r->v, r->cap * sizeof *r->v);
    }
    r->v[r->n++] = *x;
}

static void recs_free(recs *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].text);
    free(r->v);
    memset(r, 0, sizeof *r);
}

/* Moves all of src to the end of dst. */
static void recs_move(recs *dst, recs *src)
{
    for (size_t i = 0; i < src->n; i++)
        recs_push(dst, &src->v[i]);
    free(src->v);
    memset(src, 0, sizeof *src);
}

/* ---- life cycle ------------------------------------------------------------- */

void lash_turn_config_default(lash_turn_config *c)
{
    memset(c, 0, sizeof *c);
    c->concurrency = 16;
    c->nqueues = 1;
    c->claim_max = 256;
    c->lease_ms = 30000;
    c->poll_ms = 400;
    c->grace_ms = 10000;
    c->kill_grace_ms = 5000;
    c->reply_timeout_ms = 0; /* follows the lease */
    c->reconnect_min_ms = 100;
    c->reconnect_max_ms = 5000;
    c->seed = 0x9e3779b97f4a7c15ull;
}

int64_t lash_turn_reply_timeout(const lash_turn_config *c)
{
    if (c->reply_timeout_ms > 0) return c->reply_timeout_ms;
    return c->lease_ms / 3 < 10000 ? c->lease_ms / 3 : 10000;
}

/* One bound, one sentence. */
static lash_status bound(lash_err *e, const char *name, int64_t v, int64_t lo, int64_t hi)
{
    if (v >= lo && v <= hi) return LASH_OK;
    return lash_fail(e, LASH_EINVAL, "%s must be %lld..%lld, got %lld", name, (long long)lo,
                     (long long)hi, (long long)v);
}

lash_status lash_turn_config_check(const lash_turn_config *c, lash_err *e)
{
    lash_status st;
    if ((st = bound(e, "concurrency", c->concurrency, 1, LASH_TURN_CONCURRENCY_MAX)) ||
        (st = bound(e, "prefetch", c->prefetch, 0, LASH_TURN_CONCURRENCY_MAX)) ||
        (st = bound(e, "the number of queues", c->nqueues, 1, LASH_TURN_QUEUES_MAX)) ||
        (st = bound(e, "claim_max", c->claim_max, 1, LASH_BATCH_MAX)) ||
        (st = bound(e, "lease_ms", c->lease_ms, 300, 86400000)) ||
        (st = bound(e, "poll_ms", c->poll_ms, 10, 3600000)) ||
        (st = bound(e, "grace_ms", c->grace_ms, 0, 86400000)) ||
        (st = bound(e, "kill_grace_ms", c->kill_grace_ms, 0, 3600000)) ||
        (st = bound(e, "reconnect_min_ms", c->reconnect_min_ms, 1, 3600000)) ||
        (st = bound(e, "reconnect_max_ms", c->reconnect_max_ms, c->reconnect_min_ms, 3600000)))
        return st;
    /* A reply may take a third of the lease at most: a claim answered later
     * than that would start rows whose leases are nearly gone, and a renew
     * answered later could not be retried before the lease runs out. */
    if (c->reply_timeout_ms != 0)
        return bound(e, "reply_timeout_ms (at most a third of the lease)", c->reply_timeout_ms, 100,
                     c->lease_ms / 3);
    return LASH_OK;
}

lash_turn *lash_turn_new(const lash_turn_config *c, const char *owner)
{
    /* Bounds are the entry points' to check (lash_turn_config_check), so
     * that the error names the flag; this is the backstop, in every build. */
    if (lash_turn_config_check(c, NULL) != LASH_OK) return NULL;
    lash_turn *t = xcalloc(1, sizeof *t);
    t->c = *c;
    t->c.reply_timeout_ms = lash_turn_reply_timeout(c);
    snprintf(t->owner, sizeof t->owner, "%s", owner);
    t->rng = c->seed ? c->seed : 1;
    t->nslots = t->c.concurrency + t->c.prefetch;
    t->slots = xcalloc((size_t)t->nslots, sizeof *t->slots);
    int nq = t->c.nqueues;
    t->want = xcalloc((size_t)nq, sizeof *t->want);
    t->beat = xcalloc((size_t)nq, sizeof *t->beat);
    t->claim = xcalloc((size_t)nq, sizeof *t->claim);
    t->lost = xcalloc((size_t)nq, sizeof *t->lost);
    t->recovering = xcalloc((size_t)nq, sizeof *t->recovering);
    t->look = xcalloc((size_t)nq, sizeof *t->look);
    t->peeking = xcalloc((size_t)nq, sizeof *t->peeking);
    t->look_at = xcalloc((size_t)nq, sizeof *t->look_at);
    t->wake_at = xcalloc((size_t)nq, sizeof *t->wake_at);
    t->sharing = xcalloc((size_t)nq, sizeof *t->sharing);
    t->upkeep_at = xcalloc((size_t)nq, sizeof *t->upkeep_at);
    t->recorded = xcalloc((size_t)nq, sizeof *t->recorded);
    t->done = xcalloc((size_t)nq, sizeof *t->done);
    t->rel = xcalloc((size_t)nq, sizeof *t->rel);
    t->next_id = 1;
    t->armed = -1;
    return t;
}

static void cmd_free(cmd *m)
{
    recs_free(&m->rows);
    free(m->comps);
    free(m->leases);
    free(m->ran);
    free(m->slots);
    free(m->fences);
    free(m->reports);
    memset(m, 0, sizeof *m);
}

static void slot_clear(lash_turn *t, int i)
{
    lash_slot *s = &t->slots[i];
    if (!s->used) return;
    if (s->progress_due) t->progress_due--; /* the outcome supersedes it */
    if (s->prefetched) t->prefetched--;
    free(s->payload);
    memset(s, 0, sizeof *s);
    t->used--;
}

void lash_turn_free(lash_turn *t)
{
    if (!t) return;
    for (int i = 0; i < t->nslots; i++)
        slot_clear(t, i);
    for (int i = 0; i < t->ncmds; i++)
        cmd_free(&t->cmds[i]);
    for (int q = 0; q < t->c.nqueues; q++) {
        recs_free(&t->done[q]);
        recs_free(&t->rel[q]);
    }
    for (size_t i = t->head; i < t->nacts; i++)
        if (t->acts[i].kind == LASH_ACT_LOG) free((char *)t->acts[i].msg);
    free(t->last_msg);
    free(t->acts);
    free(t->cmds);
    free(t->slots);
    free(t->want);
    free(t->beat);
    free(t->claim);
    free(t->lost);
    free(t->recovering);
    free(t->look);
    free(t->peeking);
    free(t->look_at);
    free(t->wake_at);
    free(t->sharing);
    free(t->upkeep_at);
    free(t->recorded);
    free(t->done);
    free(t->rel);
    free(t);
}

bool lash_turn_next(lash_turn *t, lash_action *a)
{
    free(t->last_msg);
    t->last_msg = NULL;
    if (t->head == t->nacts) {
        t->head = t->nacts = 0;
        return false;
    }
    *a = t->acts[t->head++];
    if (a->kind == LASH_ACT_LOG) t->last_msg = (char *)a->msg;
    return true;
}

int lash_turn_slots(const lash_turn *t)
{
    return t->nslots;
}

const lash_slot *lash_turn_slot(const lash_turn *t, int slot)
{
    return slot >= 0 && slot < t->nslots ? &t->slots[slot] : NULL;
}

int lash_turn_running(const lash_turn *t)
{
    return t->used - t->prefetched;
}

int lash_turn_prefetched(const lash_turn *t)
{
    return t->prefetched;
}

bool lash_turn_connected_now(const lash_turn *t)
{
    return t->connected;
}

const lash_counters *lash_turn_counters(const lash_turn *t)
{
    return &t->k;
}

/* ---- commands in flight ----------------------------------------------------- */

static cmd *cmd_new(lash_turn *t, cmd_kind kind, int q, int64_t now)
{
    int i;
    for (i = 0; i < t->ncmds; i++)
        if (!t->cmds[i].used) break;
    if (i == t->ncmds) {
        t->cmds = xrealloc(t->cmds, (size_t)(t->ncmds + 1) * sizeof *t->cmds);
        memset(&t->cmds[t->ncmds++], 0, sizeof *t->cmds);
    }
    cmd *m = &t->cmds[i];
    m->used = true;
    m->id = t->next_id++;
    if (t->next_id == 0) t->next_id = 1; /* 0 means "none" */
    m->kind = kind;
    m->q = q;
    m->sent = now;
    return m;
}

static cmd *cmd_find(lash_turn *t, uint32_t id)
{
    for (int i = 0; i < t->ncmds; i++)
        if (t->cmds[i].used && t->cmds[i].id == id) return &t->cmds[i];
    return NULL;
}

/* Forgets a command whose reply will never come: its work is put back. */
static void cmd_abandon(lash_turn *t, cmd *m, int64_t now)
{
    switch (m->kind) {
    case CMD_CLAIM:
        t->reserved -= m->n;
        t->claim[m->q] = 0;
        t->want[m->q] = true;
        /* Redis may have run it: the rows it leased are ours and unknown. Ask
         * for them (recover) before the next claim replaces its record. */
        if (m->n > 0) t->lost[m->q] = m->id;
        break;
    case CMD_RECOVER:
        t->recovering[m->q] = 0; /* lost[q] stays: asked again on the next connection */
        break;
    case CMD_PEEK:
        t->peeking[m->q] = 0;
        break;
    case CMD_PROGRESS:
        break; /* at best: the process's next report replaces it */
    case CMD_RENEW:
        for (int i = 0; i < m->n; i++) {
            lash_slot *s = &t->slots[m->slots[i]];
            if (s->used && s->fence == m->fences[i]) s->renew_at = now;
        }
        break;
    case CMD_COMPLETE:
        recs_move(&t->done[m->q], &m->rows);
        break;
    case CMD_RELEASE:
        recs_move(&t->rel[m->q], &m->rows);
        break;
    }
    cmd_free(m);
}

/* ---- timing ----------------------------------------------------------------- */

static int64_t poll_after(lash_turn *t, int64_t now)
{
    /* +-10% so a fleet started together does not poll in lockstep. */
    return now + (int64_t)((double)t->c.poll_ms * (0.9 + 0.2 * rnd(t)));
}

static void consider(int64_t *best, int64_t at)
{
    if (at > 0 && (*best < 0 || at < *best)) *best = at;
}

static void rearm(lash_turn *t)
{
    if (t->exited) return;
    int64_t at = -1;
    if (t->connected) {
        consider(&at, t->next_poll);
        consider(&at, t->hold_until);
        for (int q = 0; q < t->c.nqueues; q++)
            if (t->wake_at[q]) consider(&at, t->wake_at[q]);
        for (int i = 0; i < t->ncmds; i++)
            if (t->cmds[i].used) consider(&at, t->cmds[i].sent + t->c.reply_timeout_ms);
    } else if (t->connecting) {
        consider(&at, t->connect_since + t->c.reply_timeout_ms);
    } else if (t->started) {
        consider(&at, t->connect_at);
    }
    for (int i = 0; i < t->nslots; i++) {
        const lash_slot *s = &t->slots[i];
        if (!s->used) continue;
        /* A renew held back after an error reply waits for the hold, not its
         * time; the lease's own end is always armed, connected or not. */
        int64_t renew = s->renew_at > t->hold_until ? s->renew_at : t->hold_until;
        if (!s->lost && t->connected) consider(&at, renew);
        if (s->progress_due && t->connected) consider(&at, s->progress_at);
        if (!s->lost) consider(&at, s->lease_until);
        if (s->deadline && !s->kill_sig) consider(&at, s->deadline);
        if (s->kill_sig == SIGTERM) consider(&at, s->kill_at);
    }
    if (t->draining) {
        /* Once acted on, a past grace deadline must not re-arm: that would spin. */
        if (!t->grace_over) consider(&at, t->grace_at);
        consider(&at, t->hard_at);
    }
    if (at != t->armed) {
        t->armed = at;
        if (at >= 0) push(t, LASH_ACT_TIMER)->at = at;
    }
}

/* ---- processes -------------------------------------------------------------- */

static void kill_slot(lash_turn *t, int i, int sig, int64_t now)
{
    lash_slot *s = &t->slots[i];
    if (s->kill_sig == SIGKILL || (s->kill_sig == sig)) return;
    s->kill_sig = sig;
    s->kill_at = now + t->c.kill_grace_ms;
    lash_action *a = push(t, LASH_ACT_KILL);
    a->slot = i;
    a->sig = sig;
}

/* Queues an outcome of s: a completion, or a release (ran: the process started). */
static void record(lash_turn *t, int q, const lash_slot *s, lash_outcome o, const char *text,
                   size_t len, int64_t retry_ms, bool release, bool ran)
{
    rec r = {.fence = s->fence, .outcome = o, .retry_ms = retry_ms, .ran = ran};
    snprintf(r.id, sizeof r.id, "%s", s->id);
    if (len > LASH_RESULT_MAX) len = LASH_RESULT_MAX + 1; /* the script says "too large" */
    r.text = xstrndup(text ? text : "", text ? len : 0);
    r.len = text ? len : 0;
    recs_push(release ? &t->rel[q] : &t->done[q], &r);
}

static int64_t retry_delay(lash_turn *t, const lash_slot *s)
{
    lash_backoff b;
    if (lash_backoff_parse(s->backoff[0] ? s->backoff : LASH_DEFAULT_BACKOFF, &b, NULL))
        lash_backoff_parse(LASH_DEFAULT_BACKOFF, &b, NULL);
    return lash_backoff_delay(&b, s->attempt, rnd(t));
}

/* Hands a leased row straight back (release) without running it: it costs
 * no attempt and stays pending, on_lost=abandon or not. */
static void give_back(lash_turn *t, int q, const char *id, int64_t fence)
{
    lash_slot tmp = {.fence = fence};
    snprintf(tmp.id, sizeof tmp.id, "%s", id);
    record(t, q, &tmp, LASH_OUT_FAIL, NULL, 0, 0, true, false);
}

/* Starts the process of slot i: its timeout counts from now. */
static void run_slot(lash_turn *t, int i, int64_t now)
{
    lash_slot *s = &t->slots[i];
    s->started = now;
    if (s->timeout_ms > 0) s->deadline = now + s->timeout_ms;
    push(t, LASH_ACT_START)->slot = i;
}

/* Starts prefetched rows, the oldest claimed first, while fewer than `concurrency`
 * run: the next row starts as the last ends, with no round trip to Redis in
 * between. A prefetched row starts on its lease as last renewed, and only with a
 * third of it left (the next renew is due before then): one whose renews
 * could not go (Redis away, or this process paused) waits for the next renew
 * or runs out. A linear scan for the oldest: prefetched rows are few next to the
 * work of starting one. */
static void start_prefetched(lash_turn *t, int64_t now)
{
    while (t->prefetched > 0 && !t->draining && t->used - t->prefetched < t->c.concurrency) {
        int i = -1;
        for (int k = 0; k < t->nslots; k++) {
            const lash_slot *p = &t->slots[k];
            if (p->prefetched && p->lease_until - now >= t->c.lease_ms / 3 &&
                (i < 0 || p->order < t->slots[i].order))
                i = k;
        }
        if (i < 0) return;
        t->slots[i].prefetched = false;
        t->prefetched--;
        run_slot(t, i, now);
    }
}

/* A prefetched row's lease is gone (ran out while Redis was away, or a renew was
 * refused): it never started, so there is nothing to stop. It is handed back
 * unrun all the same: release.lua goes by the row's owner and fence, not the
 * lease key, so a row nobody claimed since goes back to pending with its
 * attempt unspent (else another claim would count the lease lost: an attempt
 * spent, or `abandoned` for a row that never ran); one claimed since answers
 * stale and is left alone. */
static void drop_prefetched(lash_turn *t, int i, const char *why)
{
    const lash_slot *s = &t->slots[i];
    t->k.leases_lost++;
    logf_(t, LASH_LOG_WARN, -1,
          "queue #%d id %s fence %lld: lease %s before the row started; handed back", s->q, s->id,
          (long long)s->fence, why);
    give_back(t, s->q, s->id, s->fence);
    slot_clear(t, i);
}

/* A prefetched row whose cancellation was asked: recorded cancelled, never started. */
static void cancel_prefetched(lash_turn *t, int i)
{
    const lash_slot *s = &t->slots[i];
    logf_(t, LASH_LOG_INFO, -1, "queue #%d id %s: cancellation asked before it started", s->q,
          s->id);
    record(t, s->q, s, LASH_OUT_CANCEL, "cancelled by request", 20, 0, false, false);
    slot_clear(t, i);
}

void lash_turn_exited(lash_turn *t, int i, lash_outcome o, const char *text, size_t len,
                      int64_t now)
{
    if (i < 0 || i >= t->nslots || !t->slots[i].used || t->slots[i].prefetched) return;
    lash_slot *s = &t->slots[i];
    char why[160];
    if (s->lost) {
        /* The slot is gone by the time the shell logs: name the row in the text. */
        logf_(t, LASH_LOG_WARN, -1, "queue #%d id %s fence %lld: lease lost, outcome discarded",
              s->q, s->id, (long long)s->fence);
        /* One the shutdown was stopping is released all the same, as the
         * shutdown would have: its lease may still be ours in Redis (a renew
         * in flight when our clock gave it up may have extended it), and a
         * draining worker must not exit holding one. release.lua goes by the
         * row's owner and fence, so if another claimed the row meanwhile this
         * changes nothing. Any other lost lease is left to run out: the claim
         * that takes the row again counts the attempt (a release would hand
         * it back, and a row whose worker keeps losing its lease would run
         * more often than max_attempts). */
        if (s->releasing) record(t, s->q, s, LASH_OUT_FAIL, NULL, 0, 0, true, true);
    } else if (s->cancelled && o != LASH_OUT_OK) {
        /* Before the shutdown's release: a released row is pending again and
         * the next claimer would run it, cancel asked or not (release.lua does
         * not look at the flag, and the cancel message has gone by). */
        record(t, s->q, s, LASH_OUT_CANCEL, "cancelled by request", 20, 0, false, true);
    } else if (s->releasing && o != LASH_OUT_OK) {
        /* Stopped by the shutdown: another worker runs it again (release.lua
         * ends an on_lost=abandon row instead). A process that finished its
         * work anyway (it exited 0 on the TERM) records its own outcome below:
         * a release would throw the result away and run it twice. */
        record(t, s->q, s, LASH_OUT_FAIL, NULL, 0, 0, true, true);
    } else if (s->timed_out) {
        int n = snprintf(why, sizeof why, "timed out after %lld ms", (long long)s->timeout_ms);
        if (text && len) { /* keep what the handler said (its stderr tail) after the reason */
            size_t total = (size_t)n + 2 + len;
            char *buf = xcalloc(total + 1, 1);
            snprintf(buf, total + 1, "%s: %.*s", why, (int)len, text);
            record(t, s->q, s, LASH_OUT_FAIL, buf, strlen(buf), retry_delay(t, s), false, true);
            free(buf);
        } else {
            record(t, s->q, s, LASH_OUT_FAIL, why, (size_t)n, retry_delay(t, s), false, true);
        }
    } else {
        int64_t retry = o == LASH_OUT_FAIL ? retry_delay(t, s) : 0;
        record(t, s->q, s, o, text, len, retry, false, true);
    }
    slot_clear(t, i);
    start_prefetched(t, now);
    rearm(t);
}

static int free_slots(const lash_turn *t)
{
    return t->nslots - t->used - t->reserved;
}

static int take_slot(lash_turn *t)
{
    for (int i = 0; i < t->nslots; i++)
        if (!t->slots[i].used) return i;
    return -1;
}

static void start_row(lash_turn *t, int q, lash_claimed *row, int64_t sent, int64_t now)
{
    int i = take_slot(t);
    if (i < 0) { /* cannot happen while reserved is honest; give the row back */
        give_back(t, q, row->id, row->fence);
        return;
    }
    lash_slot *s = &t->slots[i];
    memset(s, 0, sizeof *s);
    s->used = true;
    t->used++;
    s->q = q;
    memcpy(s->id, row->id, sizeof s->id);
    memcpy(s->kind, row->kind, sizeof s->kind);
    s->payload = row->payload;
    s->payload_len = row->payload_len;
    row->payload = NULL;
    s->attempt = row->attempt;
    s->max_attempts = row->max_attempts;
    s->fence = row->fence;
    s->timeout_ms = row->timeout_ms;
    memcpy(s->backoff, row->backoff, sizeof s->backoff);
    /* The lease began no earlier than the claim was sent: count from there. */
    s->lease_until = sent + t->c.lease_ms;
    s->renew_at = sent + t->c.lease_ms / 3;
    lash_err e;
    /* Rows are untrusted: a payload that is not JSON never reaches a handler.
     * cJSON passes any byte inside strings, and JSON text is UTF-8 (RFC 8259),
     * so bytes that are not UTF-8 are refused here as well. */
    lash_status bad = lash_json_check(s->payload, s->payload_len, "payload", &e);
    if (!bad && !lash_utf8_valid(s->payload, s->payload_len))
        bad = lash_fail(&e, LASH_EINVAL, "payload is not valid UTF-8");
    if (bad) {
        /* Slot -1 and the row named in the text: the slot is cleared below and
         * may hold another row by the time the shell writes this line. */
        logf_(t, LASH_LOG_WARN, -1, "queue #%d id %s fence %lld: bad row: %s", q, s->id,
              (long long)s->fence, e.msg);
        char why[300];
        int n = snprintf(why, sizeof why, "bad row: %s", e.msg);
        record(t, q, s, LASH_OUT_ABORT, why, (size_t)n, 0, false, true);
        slot_clear(t, i);
        return;
    }
    /* With a running slot free and no row waiting before it, it starts now
     * (without prefetch, always: no scan of the slots on the hot path); else
     * it waits its turn with the prefetched rows, in claim order. */
    if (t->prefetched == 0 && t->used <= t->c.concurrency) {
        run_slot(t, i, now);
        return;
    }
    s->prefetched = true;
    s->order = ++t->order;
    t->prefetched++;
    start_prefetched(t, now);
}

/* ---- events ----------------------------------------------------------------- */

static void connect_later(lash_turn *t, int64_t now)
{
    int64_t b = t->backoff_ms ? t->backoff_ms * 2 : t->c.reconnect_min_ms;
    if (b > t->c.reconnect_max_ms) b = t->c.reconnect_max_ms;
    t->backoff_ms = b;
    t->connect_at = now + b / 2 + (int64_t)((double)(b - b / 2) * rnd(t));
}

static void maybe_exit(lash_turn *t, int64_t now)
{
    if (!t->draining || t->exited) return;
    bool pending = t->used > 0;
    for (int q = 0; q < t->c.nqueues && !pending; q++)
        pending = t->done[q].n || t->rel[q].n || t->lost[q];
    /* A claim that asked for rows may come back holding leases: wait for it, so
     * they are released rather than left to expire (each would cost an attempt).
     * A heartbeat claim (n = 0) brings nothing back. */
    for (int i = 0; i < t->ncmds && !pending; i++)
        pending = t->cmds[i].used && (t->cmds[i].kind != CMD_CLAIM || t->cmds[i].n > 0);
    if (pending && now < t->hard_at) return;
    if (pending) logf_(t, LASH_LOG_WARN, -1, "shutdown deadline: exiting with work unrecorded");
    t->exited = true;
    push(t, LASH_ACT_EXIT)->code = 0;
}

void lash_turn_start(lash_turn *t, int64_t now)
{
    if (t->started) return;
    t->started = true;
    t->connecting = true;
    t->connect_since = now;
    push(t, LASH_ACT_CONNECT);
    rearm(t);
}

void lash_turn_connected(lash_turn *t, int64_t now)
{
    t->connected = true;
    t->connecting = false;
    t->backoff_ms = 0;
    t->next_poll = poll_after(t, now);
    /* The startup drive (and the drive after every reconnect): orphans whose
     * leases expired are due, and pokes sent while away were lost. */
    for (int q = 0; q < t->c.nqueues; q++)
        t->want[q] = t->beat[q] = true;
    t->beat_at = now + LASH_TURN_BEAT_MS;
    for (int i = 0; i < t->nslots; i++)
        if (t->slots[i].used) t->slots[i].renew_at = now;
    logf_(t, LASH_LOG_INFO, -1, "connected");
    rearm(t);
}

void lash_turn_disconnected(lash_turn *t, int64_t now)
{
    bool was = t->connected;
    t->connected = false;
    t->connecting = false;
    for (int i = 0; i < t->ncmds; i++)
        if (t->cmds[i].used) cmd_abandon(t, &t->cmds[i], now);
    if (was) {
        t->k.reconnects++;
        logf_(t, LASH_LOG_WARN, -1, "Redis connection lost; running processes keep running");
    }
    connect_later(t, now);
    maybe_exit(t, now);
    rearm(t);
}

void lash_turn_poke(lash_turn *t, int q, int64_t now)
{
    (void)now;
    if (q < 0 || q >= t->c.nqueues) return;
    t->k.pokes++;
    t->want[q] = true; /* coalesces: many pokes before the flush make one drive */
}

static void check_slots(lash_turn *t, int64_t now)
{
    for (int i = 0; i < t->nslots; i++) {
        lash_slot *s = &t->slots[i];
        if (!s->used) continue;
        if (s->prefetched && now >= s->lease_until) {
            drop_prefetched(t, i, "ran out");
            continue;
        }
        if (!s->lost && now >= s->lease_until) {
            /* We could not renew in time: someone else may own it now. */
            s->lost = true;
            t->k.leases_lost++;
            logf_(t, LASH_LOG_WARN, i, "lease expired before it could be renewed; stopping");
            kill_slot(t, i, SIGTERM, now);
        }
        if (s->deadline && now >= s->deadline && !s->timed_out && !s->kill_sig) {
            s->timed_out = true;
            logf_(t, LASH_LOG_WARN, i, "timeout of %lld ms reached; stopping",
                  (long long)s->timeout_ms);
            kill_slot(t, i, SIGTERM, now);
        }
        if (s->kill_sig == SIGTERM && now >= s->kill_at) kill_slot(t, i, SIGKILL, now);
    }
}

void lash_turn_tick(lash_turn *t, int64_t now)
{
    t->k.ticks++;
    t->armed = -1;                                                /* the timer fired */
    if (t->hold_until && now >= t->hold_until) t->hold_until = 0; /* held work may go */
    if (t->connected) {
        for (int i = 0; i < t->ncmds; i++) {
            if (t->cmds[i].used && now >= t->cmds[i].sent + t->c.reply_timeout_ms) {
                logf_(t, LASH_LOG_WARN, -1, "no reply from Redis in %lld ms; reconnecting",
                      (long long)t->c.reply_timeout_ms);
                push(t, LASH_ACT_DISCONNECT);
                t->k.reconnects++; /* lash_turn_disconnected will not count it: not connected */
                t->connected = false;
                t->connecting = true; /* until the shell answers disconnected */
                t->connect_since = now;
                break;
            }
        }
        for (int q = 0; t->connected && q < t->c.nqueues; q++) {
            if (t->wake_at[q] && now >= t->wake_at[q]) {
                t->wake_at[q] = 0;
                t->want[q] = true; /* a row fell due, as the last look said: claim it */
            }
        }
        if (t->connected && now >= t->next_poll) {
            /* The poll looks (peek) before it claims: an idle worker costs
             * Redis a glance at the due set, not a claim. The heartbeat (a
             * claim with its upkeep) goes every LASH_TURN_BEAT_MS. */
            for (int q = 0; q < t->c.nqueues; q++)
                t->look[q] = true;
            if (now >= t->beat_at) {
                for (int q = 0; q < t->c.nqueues; q++)
                    t->beat[q] = true;
                t->beat_at = now + LASH_TURN_BEAT_MS;
            }
            t->next_poll = poll_after(t, now); /* from now: late ticks never burst */
        }
    } else if (t->connecting) {
        if (now >= t->connect_since + t->c.reply_timeout_ms) {
            logf_(t, LASH_LOG_WARN, -1,
                  "no answer from Redis within %lld ms of connecting; "
                  "trying again",
                  (long long)t->c.reply_timeout_ms);
            push(t, LASH_ACT_DISCONNECT);
            t->connect_since = now;
        }
    } else if (t->started && !t->exited && now >= t->connect_at) {
        t->connecting = true;
        t->connect_since = now;
        push(t, LASH_ACT_CONNECT);
    }
    check_slots(t, now);
    if (t->draining && !t->grace_over && now >= t->grace_at) {
        t->grace_over = true;
        for (int i = 0; i < t->nslots; i++) {
            lash_slot *s = &t->slots[i];
            if (s->used && !s->prefetched && !s->lost && !s->releasing) {
                s->releasing = true;
                logf_(t, LASH_LOG_INFO, i, "shutdown grace over: stopping, lease to be released");
                kill_slot(t, i, SIGTERM, now);
            }
        }
    }
    maybe_exit(t, now);
    rearm(t);
}

/* K: the workers polling queue q, as its last upkeep counted them (1 when
 * not counted yet). */
static int sharing_of(const lash_turn *t, int q)
{
    return t->sharing[q] > 1 ? t->sharing[q] : 1;
}

/* When this worker looks at queue q next. The K workers polling a queue share
 * its poll: each looks every K poll intervals, at jittered ticks, so the fleet
 * looks about once a poll interval in all and an idle fleet's cost to Redis
 * does not grow with its size. A claim is a look too; the heartbeat's every
 * LASH_TURN_BEAT_MS is one. */
static void looked(lash_turn *t, int q, int64_t now)
{
    int k = sharing_of(t, q);
    t->look_at[q] = now + (int64_t)t->c.poll_ms * k - t->c.poll_ms / 2;
}

static const char *const cmd_names[] = {"claim",   "renew", "complete", "release",
                                        "recover", "peek",  "progress"};

/* A command of kind k failed with why, or (why NULL) went through: see fault. */
static void fault_seen(lash_turn *t, cmd_kind k, const char *why, int64_t now)
{
    fault *f = &t->faults[k];
    if (!why) {
        if (f->what[0])
            logf_(t, LASH_LOG_INFO, -1, "%s works again after %llu failure(s)", cmd_names[k],
                  (unsigned long long)f->total);
        memset(f, 0, sizeof *f);
        return;
    }
    char what[sizeof f->what];
    snprintf(what, sizeof what, "%s", why);
    f->total++;
    if (f->what[0] && strcmp(f->what, what) == 0) {
        f->repeats++;
        if (now < f->next_at) return;
        logf_(t, LASH_LOG_ERROR, -1, "%s still failing: %s (%llu more time(s) in %lld s)",
              cmd_names[k], what, (unsigned long long)f->repeats, (long long)(f->gap / 1000));
        f->repeats = 0;
        f->gap = f->gap * 2 > 60000 ? 60000 : f->gap * 2;
        f->next_at = now + f->gap;
        return;
    }
    memcpy(f->what, what, sizeof what);
    f->repeats = 0;
    f->gap = 1000;
    f->next_at = now + f->gap;
    logf_(t, LASH_LOG_ERROR, -1, "%s failed: %s; retrying", cmd_names[k], what);
}

/* Whether a claim answered at `now` came back in time to run its rows: a lease
 * counts from when the claim was sent, and a row started with less than half of
 * it left could run out before its first renew came back. */
static bool claim_in_time(const lash_turn *t, int64_t sent, int64_t now)
{
    return now - sent < t->c.lease_ms / 2;
}

/* A reply said the first row of queue q falls due in wait_ms: claim it then,
 * when that comes before this worker's share of the poll comes round again.
 * Delayed rows start on time, and a limit's held rows go when their window
 * reopens; the poll stays the safety net. */
static void wake_for(lash_turn *t, int q, int64_t wait_ms, int64_t now)
{
    int k = sharing_of(t, q);
    if (wait_ms <= 0 || wait_ms > (int64_t)t->c.poll_ms * k) return;
    int64_t at = now + wait_ms;
    if (!t->wake_at[q] || at < t->wake_at[q]) t->wake_at[q] = at;
}

void lash_turn_claimed(lash_turn *t, uint32_t id, lash_status st, lash_claim_batch *b,
                       const char *why, int64_t now)
{
    cmd *m = cmd_find(t, id);
    if (!m || m->kind != CMD_CLAIM) {
        /* Answered after we gave up on it (it was abandoned, and its rows will
         * be recovered by seq). The rows are still ours to free (turn.h: on
         * LASH_OK they are moved out of b). */
        if (st == LASH_OK) lash_claim_batch_free(b);
        return;
    }
    int q = m->q, asked = m->n;
    int64_t sent = m->sent;
    t->reserved -= asked;
    t->claim[q] = 0;
    cmd_free(m);
    if (st != LASH_OK) {
        /* An error reply means the script wrote nothing (scripts check before
         * their first write); any other failure may have leased rows. */
        if (st != LASH_EREDIS && asked > 0) t->lost[q] = id;
        if (st != LASH_EIO) fault_seen(t, CMD_CLAIM, why ? why : lash_status_name(st), now);
        maybe_exit(t, now); /* a shutdown may have been waiting for this claim */
        rearm(t);
        return;
    }
    fault_seen(t, CMD_CLAIM, NULL, now);
    if (b->workers > 0) {
        t->sharing[q] = b->workers;
        looked(t, q, sent); /* the claim's look, now with the count it brought */
    }
    t->k.rows_claimed += b->n;
    for (size_t i = 0; i < b->bad; i++)
        logf_(t, LASH_LOG_WARN, -1, "queue #%d: claim: %s", q, b->notes[i]);
    bool late = !claim_in_time(t, sent, now);
    if (late && b->n)
        logf_(t, LASH_LOG_WARN, -1,
              "claim answered after %lld ms, over half the lease: %zu row(s) handed back unrun",
              (long long)(now - sent), b->n);
    for (size_t i = 0; i < b->n; i++) {
        if (t->draining || late) { /* hand it straight back, unrun */
            give_back(t, q, b->rows[i].id, b->rows[i].fence);
            continue;
        }
        start_row(t, q, &b->rows[i], sent, now);
    }
    /* A full batch means there is probably more: drive again as slots allow;
     * a short one says when the next row falls due. */
    if (asked > 0 && (int)b->seen >= asked)
        t->want[q] = true;
    else if (asked > 0)
        wake_for(t, q, b->wait_ms, now);
    lash_claim_batch_free(b);
    maybe_exit(t, now); /* a shutdown may have been waiting for this claim */
    rearm(t);
}

void lash_turn_peeked(lash_turn *t, uint32_t id, lash_status st, int64_t wait_ms, const char *why,
                      int64_t now)
{
    cmd *m = cmd_find(t, id);
    if (!m || m->kind != CMD_PEEK) return;
    int q = m->q;
    t->peeking[q] = 0;
    cmd_free(m);
    if (st != LASH_OK) {
        if (st != LASH_EIO) fault_seen(t, CMD_PEEK, why ? why : lash_status_name(st), now);
    } else {
        fault_seen(t, CMD_PEEK, NULL, now);
        if (wait_ms == 0)
            t->want[q] = true;
        else
            wake_for(t, q, wait_ms, now);
    }
    rearm(t);
}

void lash_turn_recovered(lash_turn *t, uint32_t id, lash_status st, const lash_recovered *r,
                         const char *why, int64_t now)
{
    cmd *m = cmd_find(t, id);
    if (!m || m->kind != CMD_RECOVER) return;
    int q = m->q;
    t->recovering[q] = 0;
    cmd_free(m);
    if (st != LASH_OK) {
        /* An error reply: the record cannot be read; its leases will run out. */
        if (st == LASH_EREDIS) t->lost[q] = 0;
        if (st != LASH_EIO) fault_seen(t, CMD_RECOVER, why ? why : lash_status_name(st), now);
        rearm(t);
        return;
    }
    fault_seen(t, CMD_RECOVER, NULL, now);
    t->lost[q] = 0;
    for (size_t i = 0; i < r->n; i++) {
        bool running = false;
        for (int k = 0; k < t->nslots && !running; k++)
            running = t->slots[k].used && t->slots[k].q == q &&
                      t->slots[k].fence == r->leases[i].fence &&
                      strcmp(t->slots[k].id, r->leases[i].id) == 0;
        if (running) continue;
        logf_(t, LASH_LOG_INFO, -1, "queue #%d id %s fence %lld: a lost claim's row, handed back",
              q, r->leases[i].id, (long long)r->leases[i].fence);
        give_back(t, q, r->leases[i].id, r->leases[i].fence);
        t->k.rows_recovered++;
    }
    maybe_exit(t, now);
    rearm(t);
}

static void renew_reply(lash_turn *t, cmd *m, const int *status, size_t n, int64_t now)
{
    for (int i = 0; i < m->n && (size_t)i < n; i++) {
        int k = m->slots[i];
        lash_slot *s = &t->slots[k];
        if (!s->used || s->fence != m->fences[i] || strcmp(s->id, m->leases[i].id) != 0) continue;
        if (status[i] == LASH_RENEW_LOST && s->prefetched) {
            drop_prefetched(t, k, "lost (renew refused)");
            continue;
        }
        if (status[i] == LASH_RENEW_CANCEL && s->prefetched) {
            cancel_prefetched(t, k);
            continue;
        }
        if (status[i] == LASH_RENEW_LOST) {
            if (!s->lost) {
                s->lost = true;
                t->k.leases_lost++;
                logf_(t, LASH_LOG_WARN, k, "lease lost (renew refused); stopping");
                kill_slot(t, k, SIGTERM, now);
            }
            continue;
        }
        s->lease_until = m->sent + t->c.lease_ms;
        if (status[i] == LASH_RENEW_CANCEL && !s->cancelled) {
            s->cancelled = true;
            logf_(t, LASH_LOG_INFO, k, "cancellation asked; stopping");
            kill_slot(t, k, SIGTERM, now);
        }
    }
    start_prefetched(t, now); /* a prefetched row kept waiting for want of lease may go now */
}

/* How long to hold commands after an error reply. */
static int64_t hold_ms(const lash_turn *t)
{
    /* An error reply (read-only replica after a fail-over, OOM, BUSY) would come
     * back just as fast: wait instead of spinning, but never so long that a
     * renew cannot be tried again several times before its lease runs out. */
    int64_t h = t->c.lease_ms / 6;
    return h < t->c.poll_ms ? h : t->c.poll_ms;
}

void lash_turn_replied(lash_turn *t, uint32_t id, lash_status st, const int *status, size_t n,
                       const char *why, int64_t now)
{
    cmd *m = cmd_find(t, id);
    if (!m || m->kind == CMD_CLAIM || m->kind == CMD_RECOVER || m->kind == CMD_PEEK) return;
    cmd_kind k = m->kind;
    if (st != LASH_OK) {
        cmd_abandon(t, m, now);
        /* A lost connection (EIO) has its own log line and backoff. */
        if (st != LASH_EIO) {
            fault_seen(t, k, why ? why : lash_status_name(st), now);
            t->hold_until = now + hold_ms(t);
        }
        rearm(t);
        return;
    }
    fault_seen(t, k, NULL, now);
    if (m->kind == CMD_RENEW) {
        renew_reply(t, m, status, n, now);
    } else if (m->kind == CMD_PROGRESS) {
        /* A stale report is no news: the lease's loss is the renew's to find. */
        for (size_t i = 0; i < n && i < m->rows.n; i++)
            if (status[i] == LASH_PROGRESS_STALE) t->k.progress_stale++;
    } else {
        int stale = m->kind == CMD_COMPLETE ? LASH_DONE_STALE : LASH_RELEASE_STALE;
        for (size_t i = 0; i < n && i < m->rows.n; i++) {
            if (status[i] == stale) {
                t->k.rows_stale++;
                logf_(t, LASH_LOG_WARN, -1, "%s of %s (fence %lld) refused: stale lease",
                      m->kind == CMD_COMPLETE ? "complete" : "release", m->rows.v[i].id,
                      (long long)m->rows.v[i].fence);
            } else if (m->kind == CMD_COMPLETE) {
                t->k.rows_recorded++;
                t->recorded[m->q]++;
            }
        }
    }
    cmd_free(m);
    maybe_exit(t, now);
    rearm(t);
}

void lash_turn_progress(lash_turn *t, int i, int percent, const char *text, size_t len, int64_t now)
{
    (void)now;
    if (i < 0 || i >= t->nslots || !t->slots[i].used || t->slots[i].prefetched) return;
    lash_slot *s = &t->slots[i];
    if (s->lost || lash_progress_check(percent, text, len, NULL)) return;
    s->progress = percent;
    if (len) memcpy(s->progress_text, text, len);
    s->progress_text[len] = 0;
    s->progress_len = len;
    if (!s->progress_due) {
        s->progress_due = true;
        t->progress_due++;
    }
    rearm(t);
}

void lash_turn_cancel(lash_turn *t, int q, const char *id, int64_t now)
{
    for (int i = 0; i < t->nslots; i++) {
        lash_slot *s = &t->slots[i];
        if (s->used && s->prefetched && s->q == q && strcmp(s->id, id) == 0) {
            cancel_prefetched(t, i);
        } else if (s->used && s->q == q && !s->cancelled && strcmp(s->id, id) == 0) {
            s->cancelled = true;
            logf_(t, LASH_LOG_INFO, i, "cancellation asked; stopping");
            kill_slot(t, i, SIGTERM, now);
        }
    }
    rearm(t);
}

void lash_turn_shutdown(lash_turn *t, int64_t now)
{
    if (t->draining) { /* asked twice: no more waiting, SIGKILL what still runs */
        for (int i = 0; i < t->nslots; i++) {
            lash_slot *s = &t->slots[i];
            if (!s->used || s->prefetched) continue;
            if (!s->lost) s->releasing = true;
            kill_slot(t, i, SIGKILL, now);
        }
        t->grace_over = true;
        maybe_exit(t, now);
        rearm(t);
        return;
    }
    t->draining = true;
    t->grace_at = now + t->c.grace_ms;
    t->hard_at = t->grace_at + t->c.kill_grace_ms + 2 * t->c.reply_timeout_ms;
    /* Operators and tests grep this line: its words stay as they were. */
    logf_(t, LASH_LOG_INFO, -1, "shutting down: %d running, grace %lld ms", lash_turn_running(t),
          (long long)t->c.grace_ms);
    /* Prefetched rows never started: another worker runs them. */
    if (t->prefetched)
        logf_(t, LASH_LOG_INFO, -1, "handing back %d prefetched row(s) unrun", t->prefetched);
    for (int i = 0; i < t->nslots; i++) {
        if (!t->slots[i].prefetched) continue;
        give_back(t, t->slots[i].q, t->slots[i].id, t->slots[i].fence);
        slot_clear(t, i);
    }
    maybe_exit(t, now);
    rearm(t);
}

/* ---- flush: what this iteration decided leaves as one burst ------------------- */

static void send_recs(lash_turn *t, int q, recs *from, cmd_kind kind, int64_t now)
{
    while (from->n) {
        size_t n = from->n > LASH_BATCH_MAX ? LASH_BATCH_MAX : from->n;
        cmd *m = cmd_new(t, kind, q, now);
        m->n = (int)n;
        m->rows.v = xcalloc(n, sizeof *m->rows.v);
        memcpy(m->rows.v, from->v, n * sizeof *from->v);
        m->rows.n = m->rows.cap = n;
        memmove(from->v, from->v + n, (from->n - n) * sizeof *from->v);
        from->n -= n;
        lash_action *a = push(t, kind == CMD_COMPLETE ? LASH_ACT_COMPLETE : LASH_ACT_RELEASE);
        a->q = q;
        a->n = (int)n;
        a->cmd = m->id;
        if (kind == CMD_COMPLETE) {
            m->comps = xcalloc(n, sizeof *m->comps);
            for (size_t i = 0; i < n; i++) {
                rec *r = &m->rows.v[i];
                m->comps[i] = (lash_completion){
                    .lease = {r->id, t->owner, r->fence},
                    .outcome = r->outcome,
                    .text = r->text,
                    .text_len = r->len,
                    .retry_ms = r->retry_ms,
                };
            }
            a->completions = m->comps;
            t->k.completes_sent++;
        } else {
            m->leases = xcalloc(n, sizeof *m->leases);
            m->ran = xcalloc(n, sizeof *m->ran);
            for (size_t i = 0; i < n; i++) {
                m->leases[i] = (lash_lease){m->rows.v[i].id, t->owner, m->rows.v[i].fence};
                m->ran[i] = m->rows.v[i].ran;
            }
            a->leases = m->leases;
            a->ran = m->ran;
            t->k.releases_sent++;
        }
    }
}

/* Whether slot s's lease goes in queue q's renew now: a little early, so leases
 * due soon share the call. One that has run out by our clock is not renewed
 * (after a pause the flush can come before the tick that finds it lost): it is
 * lost, and a renew that Redis still honoured (its clock started later) would
 * hold for a whole lease a row this worker is giving up. */
static bool renew_due(const lash_turn *t, const lash_slot *s, int q, int64_t now)
{
    return s->used && s->q == q && !s->lost && now < s->lease_until &&
           now + t->c.lease_ms / 12 >= s->renew_at;
}

static void send_renews(lash_turn *t, int q, int64_t now)
{
    int n = 0;
    for (int i = 0; i < t->nslots; i++)
        if (renew_due(t, &t->slots[i], q, now)) n++;
    if (!n) return;
    cmd *m = cmd_new(t, CMD_RENEW, q, now);
    m->leases = xcalloc((size_t)n, sizeof *m->leases);
    m->slots = xcalloc((size_t)n, sizeof *m->slots);
    m->fences = xcalloc((size_t)n, sizeof *m->fences);
    /* The ids are copied, not pointed at in the slot: the process may end and
     * its slot take another row before the reply, and the lease must still name
     * (and renew_reply still compare against) the row it was sent for. Fences
     * alone cannot tell rows apart: every row's first attempt is fence 1. */
    m->rows.v = xcalloc((size_t)n, sizeof *m->rows.v);
    m->rows.cap = (size_t)n;
    for (int i = 0; i < t->nslots; i++) {
        lash_slot *s = &t->slots[i];
        if (!renew_due(t, s, q, now)) continue;
        rec *r = &m->rows.v[m->rows.n++];
        memcpy(r->id, s->id, sizeof r->id);
        r->fence = s->fence;
        m->leases[m->n] = (lash_lease){r->id, t->owner, s->fence};
        m->slots[m->n] = i;
        m->fences[m->n] = s->fence;
        m->n++;
        s->renew_at = now + t->c.lease_ms / 3;
    }
    lash_action *a = push(t, LASH_ACT_RENEW);
    a->q = q;
    a->n = m->n;
    a->cmd = m->id;
    a->leases = m->leases;
    t->k.renews_sent++;
}

/* The latest progress reports of queue q's processes whose turn has come: one
 * call for all of them. Costs nothing while no handler reports. */
static void send_progress(lash_turn *t, int q, int64_t now)
{
    if (!t->progress_due) return;
    int n = 0;
    for (int i = 0; i < t->nslots; i++) {
        const lash_slot *s = &t->slots[i];
        if (s->used && s->q == q && s->progress_due && now >= s->progress_at) n++;
    }
    if (!n) return;
    cmd *m = cmd_new(t, CMD_PROGRESS, q, now);
    m->rows.v = xcalloc((size_t)n, sizeof *m->rows.v);
    m->rows.cap = (size_t)n;
    m->reports = xcalloc((size_t)n, sizeof *m->reports);
    for (int i = 0; i < t->nslots; i++) {
        lash_slot *s = &t->slots[i];
        if (!(s->used && s->q == q && s->progress_due && now >= s->progress_at)) continue;
        rec *r = &m->rows.v[m->rows.n++];
        memcpy(r->id, s->id, sizeof r->id);
        r->fence = s->fence;
        r->percent = s->progress;
        r->text = xstrndup(s->progress_text, s->progress_len);
        r->len = s->progress_len;
        m->reports[m->n++] = (lash_progress_report){
            .lease = {r->id, t->owner, r->fence},
            .percent = r->percent,
            .text = r->text,
            .text_len = r->len,
        };
        s->progress_due = false;
        t->progress_due--;
        s->progress_at = now + LASH_TURN_PROGRESS_MS;
    }
    lash_action *a = push(t, LASH_ACT_PROGRESS);
    a->q = q;
    a->n = m->n;
    a->cmd = m->id;
    a->progress = m->reports;
    t->k.progress_sent++;
}

/* Asks for the rows of a claim whose reply was lost, before any new claim of
 * the queue replaces its record (claim.lua). */
static void send_recover(lash_turn *t, int q, int64_t now)
{
    if (!t->lost[q] || t->recovering[q]) return;
    cmd *m = cmd_new(t, CMD_RECOVER, q, now);
    t->recovering[q] = m->id;
    lash_action *a = push(t, LASH_ACT_RECOVER);
    a->q = q;
    a->cmd = m->id;
    a->seq = t->lost[q];
}

/* A poll's look at queue q: only when a claim could follow (free slots, none
 * in flight or wanted already), and when this worker's share of the poll has
 * come round. */
static void send_peek(lash_turn *t, int q, int64_t now)
{
    if (!t->look[q]) return;
    t->look[q] = false;
    if (t->draining || t->claim[q] || t->lost[q] || t->peeking[q] || t->want[q] ||
        free_slots(t) <= 0 || now < t->look_at[q])
        return;
    looked(t, q, now);
    cmd *m = cmd_new(t, CMD_PEEK, q, now);
    t->peeking[q] = m->id;
    lash_action *a = push(t, LASH_ACT_PEEK);
    a->q = q;
    a->cmd = m->id;
}

/* The rows a claim of queue q trims this time, with the heartbeat: 0 when its
 * upkeep is not due. It is due about once a second and after every thousand
 * rows recorded, and trims 100 more rows than were recorded since the last: a
 * busy worker's trimming keeps pace, an idle one's costs nothing. */
static int upkeep_of(lash_turn *t, int q, int64_t now)
{
    if (!t->beat[q] && now < t->upkeep_at[q] && t->recorded[q] < 1000) return 0;
    int n = 100 + t->recorded[q];
    t->recorded[q] = 0;
    t->upkeep_at[q] = now + 1000;
    return n > LASH_TURN_TRIM_MAX ? LASH_TURN_TRIM_MAX : n;
}

static void send_claim(lash_turn *t, int q, int64_t now)
{
    if (t->draining || t->claim[q] || t->lost[q]) return;
    int n = free_slots(t);
    if (n > t->c.claim_max) n = t->c.claim_max;
    /* With prefetched rows waiting, the claim waits until half the prefetch is free: the
     * prefetched rows are refilled in batches, not a claim call per row. */
    if (n < 0 || (t->prefetched > 0 && n < (t->c.prefetch + 1) / 2)) n = 0;
    if (!(t->want[q] && n > 0) && !t->beat[q]) return;
    if (n > 0) t->want[q] = false;
    looked(t, q, now);
    cmd *m = cmd_new(t, CMD_CLAIM, q, now);
    m->n = n;
    t->reserved += n;
    t->claim[q] = m->id;
    lash_action *a = push(t, LASH_ACT_CLAIM);
    a->q = q;
    a->n = n;
    a->upkeep = upkeep_of(t, q, now);
    t->beat[q] = false;
    a->cmd = m->id;
    t->k.claims_sent++;
}

void lash_turn_flush(lash_turn *t, int64_t now)
{
    if (!t->connected) return;
    /* After an error reply only claims (heartbeats) go out until the hold ends. */
    bool held = t->hold_until && now < t->hold_until;
    if (!held) {
        t->hold_until = 0;
        for (int k = 0; k < t->c.nqueues; k++) {
            int q = (t->rr + k) % t->c.nqueues;
            send_recs(t, q, &t->done[q], CMD_COMPLETE, now);
            send_recs(t, q, &t->rel[q], CMD_RELEASE, now);
            send_renews(t, q, now);
            send_progress(t, q, now);
        }
    }
    /* Claims last, and in turn across queues, so one busy queue cannot starve others. */
    for (int k = 0; k < t->c.nqueues; k++) {
        int q = (t->rr + k) % t->c.nqueues;
        send_recover(t, q, now);
        send_claim(t, q, now);
        send_peek(t, q, now);
    }
    if (!held) t->rr = (t->rr + 1) % t->c.nqueues;
    rearm(t);
}
