/* model.c: the executable spec of a lash queue (see model.h). */
#include "model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Four registrations, each differing from the others in payload, max_attempts
 * or on_lost: resubmitting an id with another one is a conflict. */
const lm_reg lm_regs[LM_NREGS] = {
    {"{}", 3, false},
    {"{}", 1, true},
    {"{\"v\":2}", 2, false},
    {"[1]", 1, false},
};

static const char *const ids[LM_NIDS] = {"a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "zz"};
static const char *const owners[LM_NOWNERS + 1] = {"w1", "w2", "w3", "wd"};

const char *lm_id(int i)
{
    return i >= 0 && i < LM_NIDS ? ids[i] : "?";
}

int lm_id_index(const char *s, size_t len)
{
    for (int i = 0; i < LM_NIDS; i++)
        if (strlen(ids[i]) == len && memcmp(ids[i], s, len) == 0) return i;
    return -1;
}

const char *lm_owner(int o)
{
    return owners[o];
}

const char *lm_state_name(lm_state s)
{
    static const char *const n[] = {"pending",   "running",   "completed",  "failed",
                                    "cancelled", "abandoned", "(no state)", "zombie"};
    return n[s];
}

bool lm_live(const lm_row *r)
{
    return r->form == LM_HASH && (r->state == LM_PENDING || r->state == LM_RUNNING);
}

bool lm_terminal(const lm_row *r)
{
    return r->form == LM_HASH && r->state >= LM_COMPLETED && r->state <= LM_ABANDONED;
}

static bool valid_state(const lm_row *r)
{
    return r->form == LM_HASH && r->state <= LM_ABANDONED;
}

void lm_viol(lm *m, const char *what, const char *fmt, ...)
{
    char code[128], msg[512];
    snprintf(code, sizeof code, "%s/%s", m->op ? m->op : "?", what);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    m->nviol++;
    if (m->report) m->report(m->ctx, code, msg);
}

void lm_init(lm *m, lm_report_fn *report, void *ctx)
{
    memset(m, 0, sizeof *m);
    m->counts_exact = true;
    m->report = report;
    m->ctx = ctx;
}

/* ---- row helpers --------------------------------------------------------------- */

static int row_attempt(const lm_row *r)
{
    return r->has_attempt ? r->attempt : 0;
}

static int64_t row_fence(const lm_row *r)
{
    return r->has_fence ? r->fence : 0;
}

static int row_max(const lm_row *r)
{
    return r->no_max ? LASH_DEFAULT_MAX_ATTEMPTS : r->max_attempts;
}

static bool same_reg(const lm_row *r, int reg)
{
    const lm_reg *g = &lm_regs[reg];
    return !r->no_payload && strcmp(r->payload, g->payload) == 0 && row_max(r) == g->max_attempts &&
           r->abandon == g->abandon;
}

/* The priority is part of the registration too (submit.lua: "conflict: id
 * exists with another priority"). */
static bool same_sub(const lm_row *r, const lm_sub *s)
{
    return same_reg(r, s->reg) && r->prio == s->prio && r->after == s->after;
}

/* Fields a claim refuses to hand to a worker: the row ends failed, by name. */
static bool row_bad(const lm_row *r)
{
    return r->no_kind || r->no_payload;
}

/* A script queued the row (again): where it waits is the scripts' doing. */
static void queued(lm_row *r)
{
    r->hand_due = r->prio_demoted = r->parked = false;
}

static void changed(lm_row *r)
{
    r->version++;
    r->fresh = false;
}

/* The row's own token, owner:fence, into t; false when a hand deleted either. */
static bool row_token(const lm_row *r, char *t, size_t cap)
{
    if (!r->owner[0] || !r->has_fence) return false;
    snprintf(t, cap, "%s:%lld", r->owner, (long long)r->fence);
    return true;
}

/* The holder: the running row names its token (owner and fence, written with
 * the lease by the claim). The lease key only keeps time, so a complete or
 * release that comes after it ran out, while nobody claimed the row again, is
 * still the holder's; a lease key left beside a row that does not name its
 * token holds nothing. */
static bool holder(const lm_row *r, const char *token)
{
    char t[LM_TOKEN_MAX];
    return r->form == LM_HASH && r->state == LM_RUNNING && row_token(r, t, sizeof t) &&
           strcmp(t, token) == 0;
}

/* A renew also needs the lease key to live: gone, the lease ran out. */
static bool renew_holder(const lm_row *r, const char *token)
{
    return holder(r, token) && r->lease != LM_NOLEASE;
}

/* Recorded before by this very token: the row names it and is not running. */
static bool already(const lm_row *r, const char *token)
{
    char t[LM_TOKEN_MAX];
    if (r->form != LM_HASH || r->state == LM_RUNNING || r->state == LM_NOSTATE ||
        r->state == LM_BADSTATE || !row_token(r, t, sizeof t))
        return false;
    return strcmp(t, token) == 0;
}

/* A script met the lease key of a row that is not running (gone, junk, or not
 * claimed): repairing it by deleting the key is as good as leaving it. */
static void orphan_lease(lm_row *r)
{
    if (r->lease != LM_NOLEASE && !(r->form == LM_HASH && r->state == LM_RUNNING))
        r->lease_may_vanish = true;
}

static void count_final(lm *m, lm_state s)
{
    switch (s) {
    case LM_COMPLETED:
        m->tot.completed++;
        break;
    case LM_FAILED:
        m->tot.failed++;
        break;
    case LM_CANCELLED:
        m->tot.cancelled++;
        break;
    case LM_ABANDONED:
        m->tot.abandoned++;
        break;
    default:
        break;
    }
}

bool lm_parked(const lm_row *r)
{
    return r->form == LM_HASH && r->state == LM_PENDING && r->parked;
}

static void settle_deps(lm *m, lm_row *r, lm_state s);

/* Ends a row (lash_finish): out of due, into done, lease gone; its waiters
 * settle (lash_dep_settle). */
static void finish(lm *m, lm_row *r, lm_state s)
{
    r->state = s;
    r->in_due = false;
    r->due_ready = false;
    r->in_done = true;
    r->lease = LM_NOLEASE;
    r->parked = false;
    count_final(m, s);
    changed(r);
    if (m->nended < (int)(sizeof m->ended / sizeof m->ended[0]))
        m->ended[m->nended++] = (int)(r - m->row);
}

/* The end of a call: the waiters of the rows it ended settle, in the order
 * they ended (and those that end then, after them), by each one's state now
 * (a row gone counts as not completed). */
static void settle_all(lm *m)
{
    for (int i = 0; i < m->nended; i++) {
        lm_row *r = &m->row[m->ended[i]];
        settle_deps(m, r, r->form == LM_HASH ? r->state : LM_NOSTATE);
    }
    m->nended = 0;
}

/* The rows that wait for r (registered at their submit while r was live) when
 * r ends in s: completed counts each pending one's deps_left down and, at 0,
 * makes it due (at its run_at); any other end cancels each pending one, which
 * settles its own waiters in turn. Either way they no longer wait for r. */
static void settle_deps(lm *m, lm_row *r, lm_state s)
{
    unsigned bit = 1u << (unsigned)(r - m->row);
    for (int w = 0; w < LM_NIDS; w++) {
        lm_row *x = &m->row[w];
        if (!(x->waiting & bit)) continue;
        x->waiting &= ~bit;
        if (x->form != LM_HASH || x->state != LM_PENDING) continue;
        if (s != LM_COMPLETED) {
            finish(m, x, LM_CANCELLED);
            continue;
        }
        x->deps_left = x->deps_left > 0 ? x->deps_left - 1 : 0;
        changed(x);
        if (x->deps_left == 0) {
            x->parked = false;
            x->in_due = true;
            x->due_ready = !x->run_later;
        }
    }
}

/* Ends a row whose lease ran out: the fence moves on, so the lost owner's late
 * complete hears "stale", not "already recorded". How far is open. */
static void finish_lost(lm *m, lm_row *r, lm_state s)
{
    r->fence_open = true;
    r->fence_min = row_fence(r);
    finish(m, r, s);
}

/* Tokens are copied whole (always shorter than LM_TOKEN_MAX, made by
 * snprintf into the same size); memmove, since callers pass the row's own. */
static void copy_token(char *dst, const char *src)
{
    memmove(dst, src, strnlen(src, LM_TOKEN_MAX - 1) + 1);
    dst[LM_TOKEN_MAX - 1] = 0;
}

static void hist_push(lm_row *r, const char *token)
{
    if (r->nhist == LM_HIST) {
        memmove(r->hist[0], r->hist[1], sizeof r->hist[0] * (LM_HIST - 1));
        r->nhist--;
    }
    copy_token(r->hist[r->nhist++], token);
}

static void hold(lm *m, int owner, int id, const char *token)
{
    if (m->nheld[owner] == LM_HELD) return;
    lm_held *h = &m->held[owner][m->nheld[owner]++];
    h->id = id;
    copy_token(h->token, token);
}

void lm_forget(lm *m, int owner, int id, const char *token)
{
    for (int i = 0; i < m->nheld[owner]; i++) {
        lm_held *h = &m->held[owner][i];
        if (h->id == id && strcmp(h->token, token) == 0) {
            *h = m->held[owner][--m->nheld[owner]];
            return;
        }
    }
}

/* "error" and where the script failed ("error at @user_script:271"), so that
 * failures of different lines count as different violations. */
static void script_error(lm *m, const char *err)
{
    char what[64] = "error";
    const char *at = err ? strstr(err, "@user_script:") : NULL;
    if (at) snprintf(what, sizeof what, "error at %.*s", (int)strcspn(at, ". "), at);
    lm_viol(m, what, "the script failed: %s", err ? err : "?");
}

/* A log key (events, workers) is written at best: one of the wrong type
 * loses entries, never the call. */
static bool qfault_is_log(const lm *m)
{
    return m->qfault && (!strcmp(m->qfault, "events") || !strcmp(m->qfault, "workers"));
}

/* A script call failed. Only a queue-wide state key (due, done, stats) of the
 * wrong type may do that (and then nothing may have changed: run.c compares
 * the keys). */
static bool call_failed(lm *m, bool failed, const char *err)
{
    if (!failed) return false;
    if (!m->qfault || qfault_is_log(m)) script_error(m, err);
    return true;
}

/* ---- submit ---------------------------------------------------------------------- */

static void create(lm *m, lm_row *r, const lm_sub *s)
{
    bool had_row = r->form == LM_HASH;
    r->form = LM_HASH;
    r->state = LM_PENDING;
    snprintf(r->payload, sizeof r->payload, "%s", lm_regs[s->reg].payload);
    r->max_attempts = lm_regs[s->reg].max_attempts;
    r->abandon = lm_regs[s->reg].abandon;
    r->prio = s->prio;
    r->after = s->after;
    r->run_later = s->delay;
    r->progress = -1;
    r->parked = false;
    r->deps_left = 0;
    if (LM_DEPS_FORGET_DELETED) r->waiting = 0;
    r->no_kind = r->no_payload = false;
    r->no_max = r->max_attempts == LASH_DEFAULT_MAX_ATTEMPTS; /* the default is left out */
    r->has_attempt = false;
    r->attempt = 0;
    r->owner[0] = 0;
    r->cancel = false;
    r->in_due = true;
    r->due_ready = !s->delay;
    r->in_done = false; /* a created row is live: never in done */
    queued(r);
    r->may_vanish = false;
    /* The lease key is not the submit's: one left by an earlier row stays, and
     * its holder must now be refused (holder() wants a running row).
     * An earlier row's fence may stay (fences only grow); absent is as good. */
    if (had_row) {
        r->fence_open = true;
        r->fence_min = -1;
    } else {
        r->has_fence = false;
        r->fence = 0;
    }
    changed(r);
    r->fresh = true;
    m->tot.submitted++;
}

/* A submit's `after`, judged before the row is written: -1 when one is no row
 * of the queue (or a row without a state lash knows: refused), 1 when one
 * ended other than completed (the row is made cancelled), else 0 with the
 * live ones in *waits. */
static int dep_outcome(const lm *m, unsigned after, unsigned *waits)
{
    int out = 0;
    *waits = 0;
    for (int d = 0; d < LM_NIDS; d++) {
        if (!(after & (1u << d))) continue;
        const lm_row *r = &m->row[d];
        if (r->form != LM_HASH || r->state == LM_NOSTATE || r->state == LM_BADSTATE) return -1;
        if (lm_live(r))
            *waits |= 1u << d;
        else if (r->state != LM_COMPLETED)
            out = 1;
    }
    return out;
}

void lm_submit(lm *m, const lm_sub *s, size_t n, const lash_submitted *got, bool failed,
               const char *err)
{
    if (call_failed(m, failed, err)) return;
    for (size_t i = 0; i < n; i++) {
        lm_row *r = &m->row[s[i].id];
        const char *id = lm_id(s[i].id);
        lash_sub_status st = got[i].status;
        bool refused = st == LASH_SUB_CONFLICT || st == LASH_SUB_INVALID;
        if (strcmp(got[i].id, id) != 0)
            lm_viol(m, "reply", "row %zu came back as '%s', sent as %s", i, got[i].id, id);
        if (r->form == LM_ABSENT) {
            unsigned waits = 0;
            int dep = dep_outcome(m, s[i].after, &waits);
            if (dep < 0) {
                if (st != LASH_SUB_INVALID)
                    lm_viol(m, "status",
                            "%s names a dependency that is no row: want invalid, got %d", id, st);
                continue;
            }
            if (st != LASH_SUB_CREATED)
                lm_viol(m, "status", "%s has no row: want created, got %d (%s)", id, st,
                        got[i].msg);
            create(m, r, &s[i]);
            if (dep > 0) {
                finish(m, r, LM_CANCELLED); /* a dependency ended otherwise already */
            } else if (waits) {
                r->waiting |= waits;
                r->deps_left = __builtin_popcount(waits);
                r->parked = true;
                r->due_ready = false;
            }
        } else if (r->form == LM_JUNK) {
            if (!refused)
                lm_viol(m, "status", "%s's row key has the wrong type: want it refused, got %d", id,
                        st);
        } else if (r->no_kind) {
            /* A row without a kind is no registration: refuse it, or make a new
             * row that keeps nothing of the old one. */
            if (st == LASH_SUB_CREATED)
                create(m, r, &s[i]);
            else if (!refused)
                lm_viol(m, "status", "%s's row has no kind: want refused or created, got %d", id,
                        st);
        } else {
            bool same = same_sub(r, &s[i]);
            if (st != (same ? LASH_SUB_EXISTS : LASH_SUB_CONFLICT))
                lm_viol(m, "status", "%s exists (%s registration): want %s, got %d (%s)", id,
                        same ? "same" : "another", same ? "exists" : "conflict", st, got[i].msg);
        }
    }
    settle_all(m);
}

/* ---- claim ----------------------------------------------------------------------- */

static int cmp_cand(const void *a, const void *b)
{
    const lm_cand *x = a, *y = b;
    if (x->prio != y->prio) return x->prio > y->prio ? -1 : 1;
    if (x->at != y->at) return x->at < y->at ? -1 : 1;
    return x->id - y->id; /* ids sort as their text: "a0" < ... < "a7" < "zz" */
}

size_t lm_claim_order(lm_cand *cand, size_t ncand, size_t n, int *out)
{
    qsort(cand, ncand, sizeof *cand, cmp_cand);
    bool seen[LM_NIDS] = {0};
    size_t k = 0;
    for (size_t i = 0; i < ncand && k < n; i++) {
        if (seen[cand[i].id]) continue;
        seen[cand[i].id] = true;
        out[k++] = cand[i].id;
    }
    return k;
}

static void claim_row(lm *m, int owner, int id, const lash_claimed *c)
{
    lm_row *r = &m->row[id];
    if (strcmp(c->kind, "k") != 0 || strcmp(c->payload, r->payload) != 0 ||
        c->attempt != row_attempt(r) + 1 || c->max_attempts != row_max(r) || c->timeout_ms != 0 ||
        c->backoff[0] != 0)
        lm_viol(m, "reply",
                "%s claimed as kind %s payload %s attempt %d max %d: want k %s attempt %d max %d",
                lm_id(id), c->kind, c->payload, c->attempt, c->max_attempts, r->payload,
                row_attempt(r) + 1, row_max(r));
    if (c->fence <= r->top_fence)
        lm_viol(m, "fence",
                "%s claimed with fence %lld, not above %lld, which an earlier claim gave it",
                lm_id(id), (long long)c->fence, (long long)r->top_fence);
    else if (r->has_fence && c->fence <= r->fence)
        lm_viol(m, "fence", "%s claimed with fence %lld, not above its row's fence %lld", lm_id(id),
                (long long)c->fence, (long long)r->fence);
    r->state = LM_RUNNING;
    r->attempt = row_attempt(r) + 1;
    r->has_attempt = true;
    r->has_fence = true;
    r->fence = c->fence;
    snprintf(r->owner, sizeof r->owner, "%s", lm_owner(owner));
    r->lease = LM_TOKEN;
    snprintf(r->token, sizeof r->token, "%s:%lld", lm_owner(owner), (long long)c->fence);
    r->lease_ttl = true;
    r->in_due = true;
    r->due_ready = false;
    queued(r);
    r->slot = m->limit > 0;
    if (r->slot)
        r->held = false; /* out of the held set (else an entry stays there,
                          * to be woken by a freed slot or a limit change) */
    if (c->fence > r->top_fence) r->top_fence = c->fence;
    hist_push(r, r->token);
    hold(m, owner, id, r->token);
    changed(r);
}

/* A claim held r back for a slot (lib.lua lash_limit_hold): the lease it took
 * is given back, a lost lease's rerun is pending again with its fence moved
 * on, and the row is rescored in due to when a slot may free. */
static void hold_back(lm_row *r)
{
    r->lease = LM_NOLEASE;
    if (r->state == LM_RUNNING) {
        r->state = LM_PENDING;
        r->fence_open = true;
        r->fence_min = row_fence(r);
        changed(r);
    }
    if (!LM_PRIO_SURVIVES_WAIT && r->prio) r->prio_demoted = true;
    r->held = true;
    r->in_due = true;
    r->due_open = true;
}

/* A row gave its slot back (complete, release): the oldest held row wakes
 * (which one is the held set's say: any may). */
static void free_slot(lm *m, lm_row *r)
{
    if (!r->slot) return;
    r->slot = false;
    for (int i = 0; i < LM_NIDS; i++)
        if (m->row[i].held) m->row[i].due_open = true;
}

void lm_limit(lm *m, int concurrency)
{
    m->limit = concurrency;
    for (int i = 0; i < LM_NIDS; i++)
        if (m->row[i].held) {
            m->row[i].held = false;
            m->row[i].due_open = true;
        }
}

void lm_claim(lm *m, int owner, const int *looked, size_t nlooked, const lash_claim_batch *got,
              bool failed, const char *err)
{
    if (call_failed(m, failed, err)) return;
    if (got->seen != nlooked)
        lm_viol(m, "reply", "claim looked at %zu due ids, want %zu", got->seen, nlooked);
    size_t gi = 0, bad = 0;
    for (size_t k = 0; k < nlooked; k++) {
        int id = looked[k];
        lm_row *r = &m->row[id];
        const lash_claimed *c =
            gi < got->n && strcmp(got->rows[gi].id, lm_id(id)) == 0 ? &got->rows[gi] : NULL;
        bool must = false, may = false;
        if (r->form == LM_ABSENT) {
            r->in_due = false; /* dropped: nothing to record on, and noted */
            orphan_lease(r);
            bad++;
        } else if (r->form == LM_JUNK) {
            r->in_due = false; /* dropped by name */
            r->may_vanish = true;
            orphan_lease(r);
            bad++;
        } else if (r->state == LM_NOSTATE || r->state == LM_BADSTATE) {
            finish_lost(m, r, LM_FAILED); /* the fence moves on too */
            bad++;
        } else if (lm_terminal(r)) {
            r->in_due = false; /* a terminal row is never work */
        } else {
            /* A lease key of another type is not a lease lash wrote: deleted
             * (repaired) and noted, and the row is judged as if it had none. */
            if (r->lease == LM_JUNKLEASE) {
                r->lease = LM_NOLEASE;
                bad++;
            }
            if (r->lease == LM_TOKEN) {
                /* Held, by whoever: the row waits for the lease to run out (one
                 * without an expiry is given one, and noted). */
                if (!r->lease_ttl) bad++;
                r->lease_ttl = true;
                r->due_ready = false;
                if (!LM_PRIO_SURVIVES_WAIT && r->state == LM_PENDING && r->prio)
                    r->prio_demoted = true;
            } else if (r->state == LM_RUNNING) {
                m->tot.lost++;
                if (row_bad(r)) {
                    finish_lost(m, r, LM_FAILED);
                    bad++;
                } else if (r->cancel) {
                    finish_lost(m, r, LM_CANCELLED);
                } else if (r->abandon) {
                    finish_lost(m, r, LM_ABANDONED);
                } else if (row_attempt(r) >= row_max(r)) {
                    finish_lost(m, r, LM_FAILED);
                } else {
                    must = true; /* rerun */
                }
            } else if (row_bad(r)) {
                finish_lost(m, r, LM_FAILED); /* the fence moves on too */
                bad++;
            } else {
                must = true;
            }
        }
        /* Under a concurrency limit a row the spec would claim may be held
         * back instead (how many slots are free is the running set's say). */
        if (must && m->limit > 0 && !c) {
            must = false;
            hold_back(r);
        }
        if (c && !must && !may)
            lm_viol(m, "claimed", "%s (%s) was handed out; the spec does not claim it", lm_id(id),
                    r->form == LM_HASH ? lm_state_name(r->state) : "no row");
        if (!c && must)
            lm_viol(m, "missed", "%s (%s, no lease) was looked at but not handed out", lm_id(id),
                    lm_state_name(r->state));
        if (c && (must || may)) {
            claim_row(m, owner, id, c);
        } else if (may) {
            r->lease_ttl = true;
            r->due_ready = false;
        }
        if (c) gi++;
    }
    for (; gi < got->n; gi++)
        lm_viol(m, "claimed", "%s was handed out out of order or not looked at", got->rows[gi].id);
    /* ... and a log key of the wrong type may add its own note. */
    if (got->bad != bad && !(qfault_is_log(m) && got->bad == bad + 1))
        lm_viol(m, "reply", "claim noted %zu ids, want %zu", got->bad, bad);
    settle_all(m);
}

/* ---- the owner's other calls ---------------------------------------------------- */

/* Why a token is not the holder's, in a few words. */
static const char *why_not(const lm_row *r, const char *token)
{
    static char b[96];
    if (r->form == LM_ABSENT) return "the row is gone";
    if (r->form == LM_JUNK) return "the row key has the wrong type";
    if (r->lease == LM_NOLEASE) return "there is no lease";
    if (r->lease == LM_JUNKLEASE) return "the lease key has the wrong type";
    if (strcmp(r->token, token) != 0) return "the lease is another's";
    snprintf(b, sizeof b, "the row is %s", lm_state_name(r->state));
    return b;
}

static void stale_or_refused(lm *m, const char *op, int id, const char *token, int want, int got)
{
    if (got == want) return;
    const lm_row *r = &m->row[id];
    if (want == 0) {
        char what[128];
        snprintf(what, sizeof what, "stale-accepted (%s)", why_not(r, token));
        lm_viol(m, what, "%s of %s by %s answered %d, want 0 (the lease key holds %s)", op,
                lm_id(id), token, got, r->lease == LM_TOKEN ? r->token : "no token");
    } else {
        lm_viol(m, "status", "%s of %s by %s answered %d, want %d", op, lm_id(id), token, got,
                want);
    }
}

void lm_progress(lm *m, const lm_tok *t, const int *pct, size_t n, const int *st, bool failed,
                 const char *err)
{
    if (call_failed(m, failed, err)) return;
    for (size_t i = 0; i < n; i++) {
        lm_row *r = &m->row[t[i].id];
        bool h = holder(r, t[i].token);
        stale_or_refused(m, "progress", t[i].id, t[i].token, h ? 1 : 0, st[i]);
        if (!h) continue; /* the row must stay as it was: check.c, row-changed */
        r->progress = pct[i];
        changed(r);
    }
}

void lm_renew(lm *m, int owner, const lm_tok *t, size_t n, const int *st, bool failed,
              const char *err)
{
    if (call_failed(m, failed, err)) return;
    for (size_t i = 0; i < n; i++) {
        lm_row *r = &m->row[t[i].id];
        bool h = renew_holder(r, t[i].token);
        stale_or_refused(m, "renew", t[i].id, t[i].token, h ? (r->cancel ? 2 : 1) : 0, st[i]);
        if (h) {
            r->lease_ttl = true;
            if (r->in_due) r->due_ready = false;
        } else {
            orphan_lease(r);
        }
        if (st[i] == LASH_RENEW_LOST) lm_forget(m, owner, t[i].id, t[i].token);
    }
}

void lm_complete(lm *m, int owner, const lm_fin *f, size_t n, const int *st, bool failed,
                 const char *err)
{
    if (call_failed(m, failed, err)) return;
    for (size_t i = 0; i < n; i++) {
        int id = f[i].t.id;
        lm_row *r = &m->row[id];
        const char *token = f[i].t.token;
        bool h = holder(r, token);
        int want = h ? LASH_DONE_RECORDED : already(r, token) ? LASH_DONE_ALREADY : LASH_DONE_STALE;
        if (st[i] != want && !h && lm_terminal(r))
            lm_viol(m, "terminal-rewritten", "complete of %s (%s) by %s answered %d, want %d",
                    lm_id(id), lm_state_name(r->state), token, st[i], want);
        else
            stale_or_refused(m, "complete", id, token, want, st[i]);
        lm_forget(m, owner, id, token);
        if (!h) {
            orphan_lease(r);
            continue;
        }
        free_slot(m, r);
        int attempt = r->has_attempt ? r->attempt : LASH_ATTEMPTS_MAX;
        if (f[i].outcome == LASH_OUT_OK) {
            finish(m, r, LM_COMPLETED);
        } else if (f[i].outcome == LASH_OUT_CANCEL || r->cancel) {
            finish(m, r, LM_CANCELLED);
        } else if (f[i].outcome == LASH_OUT_FAIL && attempt < row_max(r)) {
            r->state = LM_PENDING;
            r->lease = LM_NOLEASE;
            r->in_due = true;
            r->due_ready = !f[i].later;
            queued(r);
            m->tot.retried++;
            changed(r);
        } else {
            finish(m, r, LM_FAILED);
        }
    }
    settle_all(m);
}

void lm_release(lm *m, int owner, const lm_tok *t, const bool *ran, size_t n, const int *st,
                bool failed, const char *err)
{
    if (call_failed(m, failed, err)) return;
    for (size_t i = 0; i < n; i++) {
        lm_row *r = &m->row[t[i].id];
        bool h = holder(r, t[i].token);
        stale_or_refused(m, "release", t[i].id, t[i].token, h ? 1 : 0, st[i]);
        lm_forget(m, owner, t[i].id, t[i].token);
        if (!h) {
            orphan_lease(r);
            continue;
        }
        free_slot(m, r);
        if (r->cancel) {
            finish(m, r, LM_CANCELLED);
        } else if (ran[i] && r->abandon) {
            finish(m, r, LM_ABANDONED); /* at most once: it ran, it never runs again */
        } else {
            r->state = LM_PENDING;
            r->attempt = row_attempt(r) >= 1 ? row_attempt(r) - 1 : 0; /* handed back */
            r->has_attempt = true;
            r->lease = LM_NOLEASE;
            r->in_due = true;
            r->due_ready = true;
            queued(r);
            changed(r);
        }
    }
    settle_all(m);
}

/* ---- the operator's calls -------------------------------------------------------- */

static void expect_status(lm *m, int id, lash_status got, const char *err, lash_status a,
                          lash_status b)
{
    if (got == a || got == b) return;
    if (got == LASH_EREDIS || got == LASH_EIO || got == LASH_EPROTO) {
        if (!m->qfault) script_error(m, err);
        return;
    }
    lm_viol(m, "status", "%s: answered %s (%s), want %s", lm_id(id), lash_status_name(got), err,
            lash_status_name(a));
}

void lm_cancel(lm *m, int id, lash_status got, bool requested, const char *err)
{
    lm_row *r = &m->row[id];
    if (r->form == LM_ABSENT || r->form == LM_JUNK || r->state == LM_NOSTATE) {
        expect_status(m, id, got, err, LASH_ENOTFOUND, LASH_EREFUSED);
        return;
    }
    if (!lm_live(r)) {
        expect_status(m, id, got, err, LASH_EREFUSED, LASH_EREFUSED);
        return;
    }
    expect_status(m, id, got, err, LASH_OK, LASH_OK);
    if (got != LASH_OK) return;
    bool running = r->state == LM_RUNNING;
    if (requested != running)
        lm_viol(m, "status", "cancel of %s (%s) said requested=%d", lm_id(id),
                lm_state_name(r->state), requested);
    if (running) {
        r->cancel = true;
        changed(r);
    } else {
        finish(m, r, LM_CANCELLED);
    }
    settle_all(m);
}

void lm_retry(lm *m, int id, lash_status got, const char *err)
{
    lm_row *r = &m->row[id];
    if (r->form == LM_ABSENT || r->form == LM_JUNK || r->state == LM_NOSTATE) {
        expect_status(m, id, got, err, LASH_ENOTFOUND, LASH_EREFUSED);
        return;
    }
    if (r->state != LM_FAILED && r->state != LM_CANCELLED && r->state != LM_ABANDONED) {
        expect_status(m, id, got, err, LASH_EREFUSED, LASH_EREFUSED);
        return;
    }
    expect_status(m, id, got, err, LASH_OK, LASH_OK);
    if (got != LASH_OK) return;
    r->state = LM_PENDING;
    r->has_attempt = true;
    r->attempt = 0;
    r->cancel = false;
    r->owner[0] = 0;
    r->in_done = false;
    r->in_due = true;
    r->due_ready = true;
    /* A retried dependent runs without waiting again (retry.lua drops
     * deps_left): its dependencies no longer settle it. */
    r->waiting = 0;
    r->deps_left = 0;
    queued(r);
    changed(r);
}

void lm_trim(lm *m, int keep_n, int max, const int *done_order, size_t ndone, int64_t removed,
             bool failed, const char *err)
{
    if (call_failed(m, failed, err)) return;
    size_t k = 0;
    if (keep_n >= 0 && ndone > (size_t)keep_n) k = ndone - (size_t)keep_n;
    if (k > (size_t)max) k = (size_t)max;
    int64_t deleted = 0, maybe = 0;
    for (size_t i = 0; i < k; i++) {
        lm_row *r = &m->row[done_order[i]];
        r->in_done = false;
        if (lm_terminal(r)) {
            r->form = LM_ABSENT; /* its lease key, if a hand left one, stays */
            changed(r);
            deleted++;
        } else if (r->form == LM_JUNK || (r->form == LM_HASH && !lm_live(r))) {
            r->may_vanish = true; /* broken by hand: deleting it is fine too */
            maybe++;
        }
        /* A live row only leaves done. */
    }
    if (removed != (int64_t)k && (removed < deleted || removed > deleted + maybe))
        lm_viol(m, "reply", "trim said %lld removed, want %zu (ids out of done) or %lld (rows)",
                (long long)removed, k, (long long)deleted);
}

/* ---- time and hands --------------------------------------------------------------- */

void lm_advance(lm *m, int id)
{
    lm_row *r = &m->row[id];
    if (r->lease != LM_NOLEASE && r->lease_ttl) r->lease = LM_NOLEASE;
    if (r->in_due && !lm_parked(r)) r->due_ready = true;
}

static void hand_state_gone(lm *m, lm_row *r)
{
    if (valid_state(r)) m->counts_exact = false;
}

void lm_hand_row_junk(lm *m, int id)
{
    lm_row *r = &m->row[id];
    hand_state_gone(m, r);
    r->form = LM_JUNK;
    r->may_vanish = false;
    changed(r);
}

void lm_hand_del_row(lm *m, int id)
{
    lm_row *r = &m->row[id];
    hand_state_gone(m, r);
    r->form = LM_ABSENT;
    changed(r);
}

void lm_hand_del_field(lm *m, int id, const char *field)
{
    lm_row *r = &m->row[id];
    if (r->form != LM_HASH) return;
    if (strcmp(field, "state") == 0) {
        hand_state_gone(m, r);
        r->state = LM_NOSTATE;
    } else if (strcmp(field, "kind") == 0) {
        r->no_kind = true;
    } else if (strcmp(field, "payload") == 0) {
        r->no_payload = true;
    } else if (strcmp(field, "fence") == 0) {
        r->has_fence = false;
    } else if (strcmp(field, "attempt") == 0) {
        r->has_attempt = false;
    } else if (strcmp(field, "owner") == 0) {
        r->owner[0] = 0;
    } else if (strcmp(field, "max_attempts") == 0) {
        r->no_max = true;
    }
    changed(r);
}

void lm_hand_set_state_junk(lm *m, int id)
{
    lm_row *r = &m->row[id];
    if (r->form != LM_HASH) return;
    hand_state_gone(m, r);
    r->state = LM_BADSTATE;
    changed(r);
}

void lm_hand_set_fence(lm *m, int id, int64_t fence)
{
    lm_row *r = &m->row[id];
    if (r->form != LM_HASH) return;
    r->has_fence = true;
    r->fence = fence;
    changed(r);
}

void lm_hand_set_lease(lm *m, int id, const char *token, bool ttl)
{
    lm_row *r = &m->row[id];
    r->lease = LM_TOKEN;
    snprintf(r->token, sizeof r->token, "%s", token);
    r->lease_ttl = ttl;
}

void lm_hand_lease_junk(lm *m, int id, bool ttl)
{
    lm_row *r = &m->row[id];
    r->lease = LM_JUNKLEASE;
    r->token[0] = 0;
    r->lease_ttl = ttl;
}

void lm_hand_due(lm *m, int id, bool ready)
{
    m->row[id].in_due = true;
    m->row[id].due_ready = ready;
    m->row[id].hand_due = true;
}

void lm_hand_done(lm *m, int id)
{
    m->row[id].in_done = true;
}

void lm_recount(lm *m)
{
    m->counts_exact = true;
}
