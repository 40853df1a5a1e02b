/* check.c: Redis against the model and the invariants (see check.h). */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const state_names[6] = {"pending", "running",   "completed",
                                           "failed",  "cancelled", "abandoned"};

/* The state a view's row is in, as the model names states. */
static lm_state obs_state(const lo_id *x)
{
    const char *s = lo_field(x, "state");
    if (!s) return LM_NOSTATE;
    for (int i = 0; i < 6; i++)
        if (strcmp(s, state_names[i]) == 0) return (lm_state)i;
    return LM_BADSTATE;
}

static bool obs_live(const lo_id *x)
{
    if (x->type != LO_HASH) return false;
    lm_state s = obs_state(x);
    return s == LM_PENDING || s == LM_RUNNING;
}

static bool obs_terminal(const lo_id *x)
{
    if (x->type != LO_HASH) return false;
    lm_state s = obs_state(x);
    return s >= LM_COMPLETED && s <= LM_ABANDONED;
}

static bool field_ll(const lo_id *x, const char *name, long long *out)
{
    const char *v = lo_field(x, name);
    if (!v || !*v) return false;
    char *end;
    *out = strtoll(v, &end, 10);
    return *end == 0;
}

static const char *form_name(const lm_row *r)
{
    static char b[32];
    if (r->form == LM_ABSENT) return "no row";
    if (r->form == LM_JUNK) return "a key of the wrong type";
    snprintf(b, sizeof b, "a %s row", lm_state_name(r->state));
    return b;
}

static const char *obs_form(const lo_id *x)
{
    static char b[48];
    if (x->type == LO_NONE) return "no row";
    if (x->type != LO_HASH) return "a key of the wrong type";
    const char *s = lo_field(x, "state");
    snprintf(b, sizeof b, "a %.20s row", s ? s : "(no state)");
    return b;
}

/* ---- the invariants ------------------------------------------------------------- */

static void invariants(lm *m, const lo_view *v, lc_memory *mem)
{
    long long rows[6] = {0};
    for (int i = 0; i < LM_NIDS; i++) {
        const lo_id *x = &v->id[i];
        const lm_row *r = &m->row[i];
        const char *id = lm_id(i);
        bool live = obs_live(x), term = obs_terminal(x);
        if (live != x->in_due && lm_live(r) == r->in_due)
            lm_viol(m, "due-iff-live", "%s is %s and %s due", id, obs_form(x),
                    x->in_due ? "in" : "not in");
        if (term != x->in_done && lm_terminal(r) == r->in_done)
            lm_viol(m, "done-iff-terminal", "%s is %s and %s done", id, obs_form(x),
                    x->in_done ? "in" : "not in");
        long long prio = 0;
        if (x->type == LO_HASH && obs_state(x) == LM_PENDING && field_ll(x, "priority", &prio) &&
            prio != 0 && x->in_due_set && !r->hand_due && !r->prio_demoted && !lm_parked(r))
            lm_viol(m, "prio-in-due",
                    "%s is pending with priority %lld and in due (score %lld ms from now), "
                    "where a claim ranks it as priority 0",
                    id, prio, x->due_score - v->now);
        if (x->nindex > 1 && !r->hand_due)
            lm_viol(m, "prio-index", "%s is in %d of due, prio:wait and prio:ready", id, x->nindex);
        if (live && x->in_due && x->due_score > v->now + LM_DELAY_LONG + 60000 &&
            !(lm_parked(r) && x->due_score == LO_PARKED))
            lm_viol(m, "unreachable", "%s is live but due only in %lld ms", id,
                    x->due_score - v->now);
        if (x->type == LO_HASH) {
            lm_state s = obs_state(x);
            if (s <= LM_ABANDONED) rows[s]++;
        }
    }
    /* A concurrency limit: the rows that hold a slot (field slot) and run under a
     * live lease never outnumber it, but for those that ran before it was
     * lowered (the count only must not grow past it). */
    int slots = 0;
    for (int i = 0; i < LM_NIDS; i++) {
        const lo_id *x = &v->id[i];
        slots += x->type == LO_HASH && obs_state(x) == LM_RUNNING && lo_field(x, "slot") &&
                 x->lease_type == LO_STRING && x->lease_pttl > 0;
    }
    if (m->limit > 0 && slots > m->limit && slots > mem->slots)
        lm_viol(m, "limit-exceeded", "%d rows of kind k run holding a slot, the limit is %d", slots,
                m->limit);
    mem->slots = slots;
    /* Once: they stay below zero until a recount. */
    if (v->negative[0] && strcmp(v->negative, mem->negative) != 0)
        lm_viol(m, "counters-negative", "below zero: %s", v->negative);
    snprintf(mem->negative, sizeof mem->negative, "%s", v->negative);
    if (v->stats_bad[0]) lm_viol(m, "counters", "%s", v->stats_bad);
    if (m->counts_exact) {
        for (int s = 0; s < 6; s++)
            if (v->count[s] != rows[s])
                lm_viol(m, "counters", "%s = %lld, but %lld rows are %s", state_names[s],
                        v->count[s], rows[s], state_names[s]);
    }
    const int64_t *want = &m->tot.submitted, *got = &v->tot.submitted;
    static const char *const totals[7] = {"submitted", "completed", "failed", "cancelled",
                                          "abandoned", "retried",   "lost"};
    for (int t = 0; t < 7; t++)
        if (want[t] != got[t])
            lm_viol(m, "totals", "total_%s = %lld, want %lld", totals[t], (long long)got[t],
                    (long long)want[t]);
    if (v->due_foreign || v->done_foreign)
        lm_viol(m, "index", "due or done holds an id no step made (%zu, %zu)", v->due_foreign,
                v->done_foreign);
}

/* ---- the model ------------------------------------------------------------------- */

static void check_lease(lm *m, int i, lm_row *r, const lo_id *x)
{
    const char *id = lm_id(i);
    bool ok;
    if (r->lease_may_vanish && x->lease_type == LO_NONE) r->lease = LM_NOLEASE;
    r->lease_may_vanish = false;
    switch (r->lease) {
    case LM_NOLEASE:
        ok = x->lease_type == LO_NONE;
        break;
    case LM_TOKEN:
        ok = x->lease_type == LO_STRING && strcmp(x->lease, r->token) == 0;
        break;
    default:
        ok = x->lease_type != LO_NONE && x->lease_type != LO_STRING;
        break;
    }
    if (!ok) {
        lm_viol(m, "lease", "%s's lease: want %s, Redis has %s", id,
                r->lease == LM_NOLEASE ? "none"
                : r->lease == LM_TOKEN ? r->token
                                       : "a key of another type",
                x->lease_type == LO_NONE     ? "none"
                : x->lease_type == LO_STRING ? x->lease
                                             : "a key of another type");
        return;
    }
    if (r->lease != LM_NOLEASE && r->lease_ttl != (x->lease_pttl >= 0))
        lm_viol(m, "lease", "%s's lease: want it %s an expiry, PTTL is %lld", id,
                r->lease_ttl ? "with" : "without", x->lease_pttl);
}

/* The fence field: what the spec says, or (when the spec left it open) above
 * what it was. */
static void check_fence(lm *m, int i, lm_row *r, const lo_id *x, lc_memory *mem)
{
    const char *id = lm_id(i), *fence = lo_field(x, "fence");
    long long n = 0;
    bool has = field_ll(x, "fence", &n);
    if (fence && !has) {
        /* Lua formats numbers of 10^14 and more as 1e+14 (issue 10, item 8).
         * Said once: it stays until a script or a hand writes the field. */
        if (strcmp(mem->badfence[i], fence) != 0)
            lm_viol(m, "fence-not-an-integer", "%s's fence is '%s'", id, fence);
        snprintf(mem->badfence[i], sizeof mem->badfence[i], "%s", fence);
        r->fence_open = false;
        return;
    }
    mem->badfence[i][0] = 0;
    if (r->fence_open) {
        if (r->fence_min >= 0 && (!has || n <= r->fence_min))
            lm_viol(m, "fence", "%s was ended with fence %s, want it above %lld", id,
                    fence ? fence : "(none)", (long long)r->fence_min);
        r->fence_open = false;
        r->has_fence = has;
        r->fence = has ? n : 0;
    } else if (r->has_fence != has || (has && n != r->fence)) {
        lm_viol(m, "fence", "%s's fence is %s, want %lld", id, fence ? fence : "(none)",
                (long long)r->fence);
    }
}

static void check_hash(lm *m, int i, lm_row *r, const lo_id *x, lc_memory *mem)
{
    const char *id = lm_id(i);
    lm_state s = obs_state(x);
    if (s != r->state)
        lm_viol(m, "state", "%s is %s, want %s", id, lm_state_name(s), lm_state_name(r->state));
    long long n;
    bool has = field_ll(x, "attempt", &n);
    if (r->has_attempt ? !has || n != r->attempt : has && n != 0)
        lm_viol(m, "attempt", "%s's attempt is %s, want %d", id,
                lo_field(x, "attempt") ? lo_field(x, "attempt") : "(none)",
                r->has_attempt ? r->attempt : 0);
    check_fence(m, i, r, x, mem);
    const char *owner = lo_field(x, "owner");
    if (strcmp(owner ? owner : "", r->owner) != 0)
        lm_viol(m, "owner", "%s's owner is %s, want %s", id, owner ? owner : "(none)",
                r->owner[0] ? r->owner : "(none)");
    const char *cancel = lo_field(x, "cancel");
    if ((cancel && strcmp(cancel, "1") == 0) != r->cancel)
        lm_viol(m, "cancel", "%s's cancel flag is %s, want %s", id, cancel ? cancel : "(none)",
                r->cancel ? "1" : "(none)");
    const char *kind = lo_field(x, "kind"), *payload = lo_field(x, "payload"),
               *max = lo_field(x, "max_attempts"), *on_lost = lo_field(x, "on_lost");
    char want_max[16];
    snprintf(want_max, sizeof want_max, "%d", r->max_attempts);
    if ((kind != NULL) == r->no_kind || (kind && strcmp(kind, "k") != 0) ||
        (payload != NULL) == r->no_payload || (payload && strcmp(payload, r->payload) != 0) ||
        (max != NULL) == r->no_max || (max && strcmp(max, want_max) != 0) ||
        (on_lost && strcmp(on_lost, "abandon") == 0) != r->abandon)
        lm_viol(m, "registration",
                "%s is kind %s payload %s max_attempts %s on_lost %s; want %s %s %s %s", id,
                kind ? kind : "-", payload ? payload : "-", max ? max : "-",
                on_lost ? on_lost : "-", r->no_kind ? "-" : "k", r->no_payload ? "-" : r->payload,
                r->no_max ? "-" : want_max, r->abandon ? "abandon" : "-");
    long long prio = 0;
    const char *pf = lo_field(x, "priority");
    if ((pf && !field_ll(x, "priority", &prio)) || prio != r->prio)
        lm_viol(m, "registration", "%s's priority is %s, want %d", id, pf ? pf : "(none)", r->prio);
    long long pct = -1;
    const char *pf2 = lo_field(x, "progress");
    if (pf2 && !field_ll(x, "progress", &pct)) pct = -2;
    if (pct != r->progress)
        lm_viol(m, "progress", "%s's progress is %s, want %d", id, pf2 ? pf2 : "(none)",
                r->progress);
    if (r->fresh) {
        static const char *const leftovers[] = {"owner",         "cancel",     "finished_ms",
                                                "result",        "error",      "progress",
                                                "progress_text", "progress_ms"};
        for (size_t k = 0; k < sizeof leftovers / sizeof leftovers[0]; k++)
            if (lo_field(x, leftovers[k]))
                lm_viol(m, "leftover-field", "%s was just created but has %s = %.60s", id,
                        leftovers[k], lo_field(x, leftovers[k]));
        r->fresh = false;
    }
}

/* The fields that differ between two canonical rows, "f: old -> new; ...". */
static void row_diff(const char *was, const char *now, char *out, size_t cap)
{
    out[0] = 0;
    const char *texts[2] = {was, now};
    for (int side = 0; side < 2; side++) {
        for (const char *l = texts[side]; *l;) {
            const char *eol = strchr(l, '\n'), *eq = strchr(l, '=');
            size_t flen = (size_t)(eq - l), llen = (size_t)(eol - l) + 1;
            /* The same field in the other text, or NULL. */
            const char *o = texts[1 - side], *hit = NULL;
            for (const char *k = o; *k; k = strchr(k, '\n') + 1)
                if (strncmp(k, l, flen + 1) == 0) hit = k;
            size_t hlen = hit ? (size_t)(strchr(hit, '\n') - hit) + 1 : 0;
            bool same = hit && hlen == llen && memcmp(hit, l, llen) == 0;
            if (!same && (side == 0 || !hit)) {
                size_t used = strlen(out);
                const char *a = side == 0 ? l : NULL, *b = side == 0 ? hit : l;
                snprintf(out + used, cap - used, "%s%.*s: %.*s -> %.*s", used ? "; " : "",
                         (int)flen, l, a ? (int)(llen - flen - 2) : 6, a ? a + flen + 1 : "(none)",
                         b ? (int)(strchr(b, '\n') - b - flen - 1) : 6,
                         b ? b + flen + 1 : "(none)");
            }
            l = eol + 1;
        }
    }
}

static void check_row(lm *m, int i, const lo_view *v, lc_memory *mem)
{
    lm_row *r = &m->row[i];
    const lo_id *x = &v->id[i];
    const char *id = lm_id(i);
    lm_form got = x->type == LO_NONE ? LM_ABSENT : x->type == LO_HASH ? LM_HASH : LM_JUNK;
    if (r->may_vanish && got == LM_ABSENT && r->form != LM_ABSENT) {
        r->form = LM_ABSENT; /* a script removed a broken row: allowed */
        r->version++;
    }
    r->may_vanish = false;
    if (got != r->form) {
        lm_viol(m, "row", "%s: want %s, Redis has %s", id, form_name(r), obs_form(x));
    } else if (got == LM_HASH) {
        check_hash(m, i, r, x, mem);
        if (mem->canon[i] && mem->version[i] == r->version && strcmp(mem->canon[i], x->canon)) {
            char diff[400];
            row_diff(mem->canon[i], x->canon, diff, sizeof diff);
            lm_viol(m, lm_terminal(r) ? "terminal-rewritten" : "row-changed",
                    "%s (%s) changed though the spec did not change it: %s", id,
                    lm_state_name(r->state), diff);
        }
    }
    free(mem->canon[i]);
    mem->canon[i] = got == LM_HASH && x->canon ? strdup(x->canon) : NULL;
    mem->version[i] = r->version;
    check_lease(m, i, r, x);
    if (r->in_due != x->in_due)
        lm_viol(m, "due", "%s: want it %s due (it is %s), Redis has it %s", id,
                r->in_due ? "in" : "out of", form_name(r), x->in_due ? "in" : "out");
    else if (r->in_due && r->due_open)
        r->due_ready = x->due_score <= v->now; /* rescored to a time the spec left open */
    else if (r->in_due && r->due_ready != (x->due_score <= v->now))
        lm_viol(m, "due", "%s: want its due score %s, it is %lld ms ahead", id,
                r->due_ready ? "passed" : "ahead", x->due_score - v->now);
    r->due_open = false;
    if (r->in_done != x->in_done)
        lm_viol(m, "done", "%s: want it %s done (it is %s), Redis has it %s", id,
                r->in_done ? "in" : "out of", form_name(r), x->in_done ? "in" : "out");
}

void lc_check(lm *m, const lo_view *v, lc_memory *mem)
{
    invariants(m, v, mem);
    for (int i = 0; i < LM_NIDS; i++)
        check_row(m, i, v, mem);
}

void lc_adopt(lm *m, const lo_view *v, lc_memory *mem)
{
    long long rows[6] = {0}, n0;
    for (int i = 0; i < LM_NIDS; i++) {
        lm_row *r = &m->row[i];
        const lo_id *x = &v->id[i];
        r->form = x->type == LO_NONE ? LM_ABSENT : x->type == LO_HASH ? LM_HASH : LM_JUNK;
        if (r->form == LM_HASH) {
            long long n;
            r->state = obs_state(x);
            if (r->state <= LM_ABANDONED) rows[r->state]++;
            const char *payload = lo_field(x, "payload"), *owner = lo_field(x, "owner"),
                       *cancel = lo_field(x, "cancel"), *on_lost = lo_field(x, "on_lost");
            r->no_kind = !lo_field(x, "kind");
            r->no_payload = !payload;
            snprintf(r->payload, sizeof r->payload, "%s", payload ? payload : "");
            r->no_max = !field_ll(x, "max_attempts", &n);
            r->max_attempts = r->no_max ? 0 : (int)n;
            r->abandon = on_lost && strcmp(on_lost, "abandon") == 0;
            r->prio = field_ll(x, "priority", &n) ? (int)n : 0;
            r->progress = field_ll(x, "progress", &n) ? (int)n : -1;
            r->has_attempt = field_ll(x, "attempt", &n);
            r->attempt = r->has_attempt ? (int)n : 0;
            r->has_fence = field_ll(x, "fence", &n);
            r->fence = r->has_fence ? n : 0;
            snprintf(r->owner, sizeof r->owner, "%s", owner ? owner : "");
            r->cancel = cancel && strcmp(cancel, "1") == 0;
        }
        r->lease = x->lease_type == LO_NONE     ? LM_NOLEASE
                   : x->lease_type == LO_STRING ? LM_TOKEN
                                                : LM_JUNKLEASE;
        snprintf(r->token, sizeof r->token, "%.*s", LM_TOKEN_MAX - 1, x->lease);
        r->lease_ttl = x->lease_pttl >= 0;
        r->parked = r->form == LM_HASH && r->state == LM_PENDING && x->in_due_set &&
                    x->due_score == LO_PARKED;
        r->deps_left = field_ll(x, "deps_left", &n0) ? (int)n0 : 0;
        r->in_due = x->in_due;
        r->hand_due = x->nindex > 1 || x->in_due_set;
        r->prio_demoted = false;
        r->due_ready = x->in_due && x->due_score <= v->now;
        r->in_done = x->in_done;
        r->fence_open = r->may_vanish = r->lease_may_vanish = r->fresh = false;
        r->version++;
        free(mem->canon[i]);
        mem->canon[i] = r->form == LM_HASH && x->canon ? strdup(x->canon) : NULL;
        mem->version[i] = r->version;
    }
    m->tot = v->tot;
    m->counts_exact = !v->negative[0];
    for (int s = 0; s < 6; s++)
        if (v->count[s] != rows[s]) m->counts_exact = false;
}

void lc_memory_free(lc_memory *mem)
{
    for (int i = 0; i < LM_NIDS; i++)
        free(mem->canon[i]);
    memset(mem, 0, sizeof *mem);
}
