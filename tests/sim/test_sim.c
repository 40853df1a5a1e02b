/* test_sim.c: a fleet of turn machines (worker/turn.h) against an in-memory
 * model of the registry, with a simulated clock and injected faults.
 *
 * No Redis, no processes: the model keeps each row's data the way
 * proto/lua/{claim,renew,complete,release,cancel}.lua do, takes the state a
 * row moves to from the one transition table (proto/state.h, checked against
 * those scripts by tests/test_states.c), the harness plays each machine's
 * shell, and every row must end terminal with none recorded twice.
 *
 * Bug hunts: LASH_SIM_SEEDS=FIRST-LAST build/bin/test_sim --filter 'sim/sweep'
 * runs the default, harsh and drains profiles on every seed of the range (it
 * prints each seed before it runs it); LASH_SIM_TRACE=M prints what machine M
 * (0..3) does and hears.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/record.h"
#include "proto/state.h"
#include "worker/turn.h"

/* The model keeps each row as the Lua scripts do (state, attempt, fence, owner,
 * the lease key with its expiry, the due score, the cancel flag) and applies
 * claim, renew, complete, release and cancel to it on the simulated clock; the
 * state each lands in is lash_state_next's. Around it, the harness plays each machine's shell:
 * commands travel with latency, processes run for random durations, and faults are injected from a
 * seeded PRNG. Every rule a machine must keep is checked where it acts (a START, KILL, CLAIM,
 * COMPLETE or RELEASE); every rule of the whole is checked at the end. */

#define SIM_Q 2
#define SIM_M 4
#define SIM_SLOTS 8
#define SIM_PREFETCH 3 /* the most rows a machine prefetches */
#define SIM_SLOTS_ALL (SIM_SLOTS + SIM_PREFETCH)
#define SIM_FENCES 128
#define SIM_LEASE 3000

typedef enum {
    M_UNSUBMITTED,
    M_PENDING,
    M_RUNNING,
    M_COMPLETED,
    M_FAILED,
    M_CANCELLED,
    M_ABANDONED
} mstate;

typedef struct {
    char id[16];
    int q;
    mstate state;
    int attempt, max_attempts;
    int64_t fence;
    char owner[32];
    bool leased; /* lash:{q}:lease:<id>, live while lexp > now */
    char lowner[32];
    int64_t lfence, lexp;
    bool in_due;
    int64_t due;
    bool cancel, abandon, bad_payload;
    int64_t timeout_ms, delay_ms;
    const char *backoff;
    /* the audit */
    int terminal;                   /* times the row became terminal */
    int ok_records;                 /* accepted completes that recorded 'completed' */
    int64_t last_accepted;          /* fence of the last accepted complete or release */
    int started_by[SIM_FENCES];     /* machine instance that started fence f */
    int delivered_to[SIM_FENCES];   /* instance a claim reply granting f reached */
    int granted_to[SIM_FENCES];     /* instance the claim that granted f was sent by */
    signed char exited[SIM_FENCES]; /* 1 + the process' own outcome */
    bool lost[SIM_FENCES];          /* a renew said "lost" while its process ran */
    bool gaveup[SIM_FENCES];        /* its machine gave the lease up (lost) */
    bool stolen[SIM_FENCES];        /* its lease key vanished (a fault) */
} mrow;

typedef enum { F_NONE, F_ERROR, F_LOST_REQUEST, F_LOST_REPLY } cmd_fault;

typedef struct {
    int m, gen;
    uint64_t conn;
    lash_action_kind kind;
    uint32_t id;
    int q, n;
    const lash_lease *leases; /* the machine's memory, valid while open */
    const bool *ran;
    const lash_completion *comps;
    cmd_fault fault;
    bool open, arrived;
    uint32_t seq; /* RECOVER: the lost claim */
    int64_t wait; /* PEEK: the answer (ms until the first row is due, -1 none) */
    lash_claim_batch batch;
    lash_recovered rec;
    int *status;
} scmd;

typedef struct {
    bool running, ignore_term;
    int row;
    int64_t fence, exit_at;
    uint64_t seq;
    lash_outcome out;
    const char *text;
} sproc;

typedef struct {
    lash_turn *t;
    lash_turn_config c;
    int gen, inst;
    char owner[32];
    bool alive, up, exiting, draining, hard_exit;
    int64_t frozen_until; /* stopped (SIGSTOP, a swap storm): events wait till then */
    uint64_t conn, timer_seq;
    int64_t timer_at, last_tick;
    int same_tick;
    sproc p[SIM_SLOTS_ALL];
    int running, claim_out;
    uint32_t claim_q[SIM_Q];
    int claim_n[SIM_Q];
    uint64_t starts;
} smach;

typedef enum {
    EV_SUBMIT,
    EV_TIMER,
    EV_CONNECT,
    EV_ARRIVE,
    EV_REPLY,
    EV_EXIT,
    EV_POKE,
    EV_CANCELMSG,
    EV_FAULT,
    EV_SHUTDOWN,
    EV_RESTART,
    EV_REDIS_UP,
} evkind;

typedef struct {
    int64_t at;
    uint64_t seq;
    evkind kind;
    int m, gen, a;
    uint64_t tag;
    scmd *cmd;
} event;

typedef struct {
    /* the fault profile */
    double poke_drop, cmd_error, renew_error, lost_request, lost_reply, conn_fail, conn_hang;
    double p_disconnect, p_crash, p_shutdown, p_outage, p_cancel, p_freeze, p_steal;
    int nrows, nqueues;
} profile;

typedef struct {
    uint64_t pokes, pokes_dropped, errors, lost_requests, lost_replies, conn_fails, conn_hangs;
    uint64_t disconnects, reply_timeouts, crashes, shutdowns, second_shutdowns, graceful_exits,
        hard_exits, outages, op_cancels, cancel_msgs, starts, kills, claims, renews, completes,
        releases, freezes, postponed, steals, cancel_reruns, recovers, peeks;
    uint64_t accepted, stale, already, released, renew_lost, leases_expired, timed_out;
    uint64_t ended[M_ABANDONED + 1];
} scount;

/* claim.lua's record lash:{q}:claim:<owner>: the rows the owner's last claim
 * with rows leased, by seq (recover.lua reads it). */
#define SIM_RECORDS 512 /* one per (queue, machine instance): long sweeps restart many */
typedef struct {
    int q;
    char owner[32];
    uint32_t seq;
    int n;
    int row[SIM_SLOTS_ALL];
    int64_t fence[SIM_SLOTS_ALL];
} srecord;

static struct {
    profile p;
    uint64_t rng;
    int64_t now;
    event *heap;
    size_t nheap, capheap;
    uint64_t seq, steps;
    mrow *rows;
    int nrows, terminal;
    smach m[SIM_M];
    scmd **cmds;
    size_t ncmds, capcmds;
    bool redis_up;
    int insts;
    scount k;
    srecord rec[SIM_RECORDS];
    int nrec;
    int trace; /* LASH_SIM_TRACE=M: the machine whose every action and reply is printed */
} S;

static bool tracing(int mi)
{
    return S.trace == mi + 1;
}

static uint64_t rnd64(void)
{
    /* splitmix64: every seed gives a different, reproducible run */
    uint64_t z = (S.rng += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double unif(void)
{
    return (double)(rnd64() >> 11) / 9007199254740992.0;
}

static bool chance(double p)
{
    return unif() < p;
}

static int64_t between(int64_t lo, int64_t hi)
{
    return lo + (int64_t)(rnd64() % (uint64_t)(hi - lo + 1));
}

/* ---- the event queue (a binary heap on time, then insertion order) ---- */

static bool ev_before(const event *a, const event *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void ev_push(event e)
{
    if (S.nheap == S.capheap) {
        S.capheap = S.capheap ? S.capheap * 2 : 1024;
        S.heap = realloc(S.heap, S.capheap * sizeof *S.heap);
        cr_assert_not_null(S.heap);
    }
    e.seq = S.seq++;
    if (e.at < S.now) e.at = S.now;
    size_t i = S.nheap++;
    while (i > 0 && ev_before(&e, &S.heap[(i - 1) / 2])) {
        S.heap[i] = S.heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    S.heap[i] = e;
}

static event ev_pop(void)
{
    event top = S.heap[0], last = S.heap[--S.nheap];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= S.nheap) break;
        if (c + 1 < S.nheap && ev_before(&S.heap[c + 1], &S.heap[c])) c++;
        if (!ev_before(&S.heap[c], &last)) break;
        S.heap[i] = S.heap[c];
        i = c;
    }
    if (S.nheap) S.heap[i] = last;
    return top;
}

static void at(int64_t when, evkind kind, int m, int gen, int a, uint64_t tag, scmd *cmd)
{
    ev_push((event){.at = when, .kind = kind, .m = m, .gen = gen, .a = a, .tag = tag, .cmd = cmd});
}

/* ---- the model: the Lua scripts' rules ---- */

static mrow *row_by_id(const char *id)
{
    cr_assert_eq(id[0], 'r', "unknown id %s", id);
    int i = atoi(id + 1);
    cr_assert(i >= 0 && i < S.nrows, "unknown id %s", id);
    return &S.rows[i];
}

static bool live_lease(const mrow *r)
{
    return r->leased && r->lexp > S.now;
}

static bool holds(const mrow *r, const char *owner, int64_t fence)
{
    return live_lease(r) && r->lfence == fence && strcmp(r->lowner, owner) == 0;
}

static void m_finish(mrow *r, mstate st)
{
    cr_assert(r->state == M_PENDING || r->state == M_RUNNING, "%s: terminal twice", r->id);
    r->state = st;
    r->in_due = false;
    r->leased = false;
    r->terminal++;
    S.terminal++;
    S.k.ended[st]++;
}

/* The row's state and facts as the transition table names them. */
static lash_state lstate(const mrow *r)
{
    cr_assert(r->state >= M_PENDING, "%s: not submitted", r->id);
    return (lash_state)(r->state - M_PENDING);
}

static unsigned facts(const mrow *r, bool leased)
{
    return (leased ? LASH_ROW_LEASED : 0u) |
           (r->attempt < r->max_attempts ? LASH_ROW_ATTEMPTS_LEFT : 0u) |
           (r->abandon ? LASH_ROW_ABANDON : 0u) | (r->cancel ? LASH_ROW_CANCEL_ASKED : 0u);
}

static mstate mstate_of(int s)
{
    cr_assert(s >= 0 && s < LASH_STATE_COUNT);
    return (mstate)(s + M_PENDING);
}

static void publish_poke(int q);
static void publish_cancel(int row);

static srecord *record_of(int q, const char *owner)
{
    for (int i = 0; i < S.nrec; i++)
        if (S.rec[i].q == q && strcmp(S.rec[i].owner, owner) == 0) return &S.rec[i];
    cr_assert_lt(S.nrec, SIM_RECORDS, "too many claim records");
    srecord *r = &S.rec[S.nrec++];
    memset(r, 0, sizeof *r);
    r->q = q;
    snprintf(r->owner, sizeof r->owner, "%s", owner);
    return r;
}

static void m_claim(int q, const char *owner, int n, int64_t ttl, uint32_t seq, lash_claim_batch *b)
{
    memset(b, 0, sizeof *b);
    b->rows = calloc((size_t)(n > 0 ? n : 1), sizeof *b->rows);
    cr_assert_not_null(b->rows);
    if (n <= 0) return;
    /* ZRANGEBYSCORE due -inf now LIMIT 0 n: the n smallest (score, id) that are due */
    int pick[SIM_SLOTS_ALL * 2], np = 0;
    cr_assert_leq(n, SIM_SLOTS_ALL);
    for (int i = 0; i < S.nrows; i++) {
        const mrow *r = &S.rows[i];
        if (r->q != q || !r->in_due || r->due > S.now) continue;
        int j = np < n ? np++ : n;
        if (j == n && !(r->due < S.rows[pick[n - 1]].due)) continue;
        if (j == n) j = n - 1;
        while (j > 0 && r->due < S.rows[pick[j - 1]].due) {
            pick[j] = pick[j - 1];
            j--;
        }
        pick[j] = i;
    }
    b->seen = (size_t)np;
    for (int k = 0; k < np; k++) {
        mrow *r = &S.rows[pick[k]];
        cr_assert(r->state == M_RUNNING || !live_lease(r), "%s: pending with a live lease", r->id);
        int next = lash_state_next(lstate(r), LASH_T_CLAIM, facts(r, live_lease(r)));
        if (next < 0) { /* a live lease: the score lagged a renew: rescored, skipped */
            r->due = r->lexp;
            continue;
        }
        /* a running row here: the lease ran out, whoever held it is gone or cut off */
        if (r->state == M_RUNNING) S.k.leases_expired++;
        if (next != LASH_RUNNING) {
            r->fence++; /* the lost owner's late complete hears "stale" */
            m_finish(r, mstate_of(next));
            continue;
        }
        r->fence++;
        r->attempt++;
        r->state = M_RUNNING;
        r->leased = true;
        snprintf(r->lowner, sizeof r->lowner, "%s", owner);
        snprintf(r->owner, sizeof r->owner, "%s", owner);
        r->lfence = r->fence;
        r->lexp = S.now + ttl;
        r->due = S.now + ttl;
        cr_assert_lt(r->fence, SIM_FENCES, "%s: too many fences", r->id);
        lash_claimed *c = &b->rows[b->n++];
        snprintf(c->id, sizeof c->id, "%s", r->id);
        snprintf(c->kind, sizeof c->kind, "k");
        c->payload = strdup(r->bad_payload ? "{\"i\": " : "{\"i\": 1}");
        c->payload_len = strlen(c->payload);
        c->attempt = r->attempt;
        c->max_attempts = r->max_attempts;
        c->fence = r->fence;
        c->timeout_ms = r->timeout_ms;
        snprintf(c->backoff, sizeof c->backoff, "%s", r->backoff);
    }
    if (b->n > 0) { /* the record lives as long as the leases: ttl */
        srecord *rec = record_of(q, owner);
        rec->seq = seq;
        rec->n = (int)b->n;
        for (size_t i = 0; i < b->n; i++) {
            rec->row[i] = (int)(row_by_id(b->rows[i].id) - S.rows);
            rec->fence[i] = b->rows[i].fence;
        }
    }
}

/* recover.lua: the rows of claim seq the owner still holds. */
static void m_recover(int q, const char *owner, uint32_t seq, lash_recovered *out)
{
    srecord *rec = record_of(q, owner);
    memset(out, 0, sizeof *out);
    out->leases = calloc(SIM_SLOTS_ALL, sizeof *out->leases);
    cr_assert_not_null(out->leases);
    if (rec->seq != seq) return;
    for (int i = 0; i < rec->n; i++) {
        mrow *r = &S.rows[rec->row[i]];
        if (!holds(r, owner, rec->fence[i])) continue;
        out->leases[out->n++] = (lash_lease){strdup(r->id), owner, rec->fence[i]};
    }
}

static void m_renew(const lash_lease *l, int n, int64_t ttl, int *status)
{
    for (int i = 0; i < n; i++) {
        mrow *r = row_by_id(l[i].id);
        if (holds(r, l[i].owner, l[i].fence)) {
            r->lexp = S.now + ttl;
            if (r->in_due) r->due = S.now + ttl;
            status[i] = r->cancel ? LASH_RENEW_CANCEL : LASH_RENEW_OK;
        } else {
            status[i] = LASH_RENEW_LOST;
            S.k.renew_lost++;
        }
    }
}

static void accept(mrow *r, int64_t fence)
{
    cr_assert_eq(fence, r->fence, "%s: a stale fence %lld was accepted (row at %lld)", r->id,
                 (long long)fence, (long long)r->fence);
    cr_assert_gt(fence, r->last_accepted, "%s: fence %lld recorded twice", r->id, (long long)fence);
    r->last_accepted = fence;
}

static int already(const mrow *r, const char *owner, int64_t fence)
{
    return r->state != M_RUNNING && strcmp(r->owner, owner) == 0 && r->fence == fence
               ? LASH_DONE_ALREADY
               : LASH_DONE_STALE;
}

static void m_complete(const lash_completion *c, int n, int *status)
{
    for (int i = 0; i < n; i++) {
        mrow *r = row_by_id(c[i].lease.id);
        if (!holds(r, c[i].lease.owner, c[i].lease.fence)) {
            status[i] = already(r, c[i].lease.owner, c[i].lease.fence);
            S.k.stale += status[i] == LASH_DONE_STALE;
            S.k.already += status[i] == LASH_DONE_ALREADY;
            continue;
        }
        accept(r, c[i].lease.fence);
        S.k.accepted++;
        status[i] = LASH_DONE_RECORDED;
        if (c[i].outcome == LASH_OUT_FAIL && c[i].text_len >= 9 &&
            memcmp(c[i].text, "timed out", 9) == 0)
            S.k.timed_out++;
        static const lash_transition by_outcome[] = {
            [LASH_OUT_OK] = LASH_T_COMPLETE_OK,
            [LASH_OUT_FAIL] = LASH_T_COMPLETE_FAIL,
            [LASH_OUT_CANCEL] = LASH_T_COMPLETE_CANCEL,
            [LASH_OUT_ABORT] = LASH_T_COMPLETE_ABORT,
        };
        int next = lash_state_next(lstate(r), by_outcome[c[i].outcome], facts(r, true));
        cr_assert_geq(next, 0, "%s: the lease holder's complete changed nothing", r->id);
        if (next == LASH_PENDING) { /* a retry, after the owner's backoff */
            r->state = M_PENDING;
            r->leased = false;
            r->due = S.now + c[i].retry_ms;
            continue;
        }
        if (next == LASH_COMPLETED) r->ok_records++;
        m_finish(r, mstate_of(next));
    }
}

static void m_release(const lash_lease *l, const bool *ran, int n, int *status)
{
    bool poke[SIM_Q] = {false};
    for (int i = 0; i < n; i++) {
        mrow *r = row_by_id(l[i].id);
        if (!holds(r, l[i].owner, l[i].fence)) {
            status[i] = LASH_RELEASE_STALE;
            continue;
        }
        accept(r, l[i].fence);
        S.k.released++;
        status[i] = LASH_RELEASED;
        int next = lash_state_next(lstate(r), ran[i] ? LASH_T_RELEASE_RAN : LASH_T_RELEASE_UNRUN,
                                   facts(r, true));
        cr_assert_geq(next, 0, "%s: the lease holder's release changed nothing", r->id);
        if (next != LASH_PENDING) { /* cancelled, or abandoned: it may have done part of its work */
            m_finish(r, mstate_of(next));
            continue;
        }
        r->leased = false;
        r->state = M_PENDING;
        r->attempt--; /* handed back, not spent */
        r->due = S.now;
        poke[r->q] = true;
    }
    for (int q = 0; q < SIM_Q; q++)
        if (poke[q]) publish_poke(q);
}

static void m_cancel(mrow *r)
{
    int next = lash_state_next(lstate(r), LASH_T_CANCEL, facts(r, live_lease(r)));
    if (next == LASH_RUNNING) { /* flagged and announced: its owner stops it */
        r->cancel = true;
        publish_cancel((int)(r - S.rows));
    } else if (next >= 0) {
        m_finish(r, mstate_of(next));
    }
}

/* ---- the shells ---- */

static void act(int mi, const lash_action *a);

static void drain_m(int mi);

/* One loop iteration of machine mi: flush, then carry out every action. */
static void iterate(int mi)
{
    smach *M = &S.m[mi];
    if (!M->alive) return;
    lash_turn_flush(M->t, S.now);
    drain_m(mi);
    if (M->alive) /* no process forgotten, none imagined */
        cr_assert_eq(lash_turn_running(M->t), M->running, "%s: %d slots used, %d running", M->owner,
                     lash_turn_running(M->t), M->running);
}

static void restart_later(int mi)
{
    at(S.now + between(50, 1000), EV_RESTART, mi, S.m[mi].gen, 0, 0, NULL);
}

/* The instance is gone: a crash (graceful false) or its EXIT. */
static void end_instance(int mi, bool graceful)
{
    smach *M = &S.m[mi];
    if (graceful && !M->hard_exit) {
        S.k.graceful_exits++;
        cr_assert_eq(M->running, 0, "%s exited with processes running", M->owner);
        /* "SIGTERM drains: no lease left": every lease it was told about is
         * recorded or released (a lease it gave up as lost may outlive its
         * estimate by the one-way latency; one it never heard of just expires). */
        for (int i = 0; i < S.nrows; i++) {
            const mrow *r = &S.rows[i];
            if (r->leased && r->lexp > S.now + 5 && strcmp(r->lowner, M->owner) == 0 &&
                r->delivered_to[r->lfence] == M->inst && !r->gaveup[r->lfence])
                cr_assert_fail("%s exited holding the lease of %s fence %lld", M->owner, r->id,
                               (long long)r->lfence);
        }
    }
    S.k.hard_exits += graceful && M->hard_exit;
    lash_turn_free(M->t);
    M->t = NULL;
    M->alive = false;
    M->up = false;
    M->running = 0;
    memset(M->p, 0, sizeof M->p);
    restart_later(mi);
}

static void drain_m(int mi)
{
    smach *M = &S.m[mi];
    lash_action a;
    while (M->alive && !M->exiting && lash_turn_next(M->t, &a))
        act(mi, &a);
    if (M->alive && M->exiting) end_instance(mi, true);
}

static void start_instance(int mi)
{
    smach *M = &S.m[mi];
    M->gen++;
    M->inst = ++S.insts;
    snprintf(M->owner, sizeof M->owner, "w%d-%d", mi, M->gen);
    M->c.seed = rnd64() | 1;
    M->t = lash_turn_new(&M->c, M->owner);
    M->alive = true;
    M->up = M->exiting = M->draining = M->hard_exit = false;
    M->conn++;
    M->timer_seq++;
    M->running = M->claim_out = 0;
    memset(M->claim_q, 0, sizeof M->claim_q);
    memset(M->p, 0, sizeof M->p);
    lash_turn_start(M->t, S.now);
    iterate(mi);
}

static bool same(const smach *M, int gen, uint64_t conn)
{
    return M->alive && M->gen == gen && M->conn == conn;
}

static void execute(scmd *c)
{
    smach *M = &S.m[c->m];
    c->arrived = true;
    switch (c->kind) {
    case LASH_ACT_CLAIM:
        m_claim(c->q, M->owner, c->n, M->c.lease_ms, c->id, &c->batch);
        for (size_t i = 0; i < c->batch.n; i++)
            row_by_id(c->batch.rows[i].id)->granted_to[c->batch.rows[i].fence] = M->inst;
        break;
    case LASH_ACT_RECOVER:
        m_recover(c->q, M->owner, c->seq, &c->rec);
        break;
    case LASH_ACT_PEEK: /* peek.lua: when is the first row of the queue due? */
        c->wait = -1;
        for (int i = 0; i < S.nrows; i++) {
            if (S.rows[i].q != c->q || !S.rows[i].in_due) continue;
            int64_t w = S.rows[i].due > S.now ? S.rows[i].due - S.now : 0;
            if (c->wait < 0 || w < c->wait) c->wait = w;
        }
        break;
    case LASH_ACT_RENEW:
        c->status = calloc((size_t)c->n, sizeof *c->status);
        m_renew(c->leases, c->n, M->c.lease_ms, c->status);
        break;
    case LASH_ACT_COMPLETE:
        c->status = calloc((size_t)c->n, sizeof *c->status);
        m_complete(c->comps, c->n, c->status);
        break;
    default:
        c->status = calloc((size_t)c->n, sizeof *c->status);
        m_release(c->leases, c->ran, c->n, c->status);
        break;
    }
}

/* The connection of machine mi breaks: commands not yet at the server may or
 * may not have run there; waiting callbacks may fire with an error (hiredis
 * does on a close) or not at all. The shell then tells the machine. */
static void drop_conn(int mi)
{
    smach *M = &S.m[mi];
    if (tracing(mi)) fprintf(stderr, "%lld %s: connection dropped\n", (long long)S.now, M->owner);
    for (size_t i = 0; i < S.ncmds; i++) {
        scmd *c = S.cmds[i];
        if (!c->open || c->m != mi || !same(M, c->gen, c->conn)) continue;
        if (!c->arrived && c->fault == F_NONE && chance(0.5)) execute(c);
        c->open = false;
        if (chance(0.5)) {
            if (c->kind == LASH_ACT_CLAIM) {
                lash_claim_batch none = {0};
                lash_turn_claimed(M->t, c->id, LASH_EIO, &none, NULL, S.now);
            } else if (c->kind == LASH_ACT_RECOVER) {
                lash_turn_recovered(M->t, c->id, LASH_EIO, NULL, NULL, S.now);
            } else if (c->kind == LASH_ACT_PEEK) {
                lash_turn_peeked(M->t, c->id, LASH_EIO, -1, NULL, S.now);
            } else {
                lash_turn_replied(M->t, c->id, LASH_EIO, NULL, 0, NULL, S.now);
            }
        }
    }
    M->conn++;
    M->up = false;
    M->claim_out = 0;
    memset(M->claim_q, 0, sizeof M->claim_q);
}

static void send_cmd(int mi, const lash_action *a)
{
    smach *M = &S.m[mi];
    cr_assert(M->up, "%s sent a command while not connected", M->owner);
    scmd *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    *c = (scmd){.m = mi,
                .gen = M->gen,
                .conn = M->conn,
                .kind = a->kind,
                .id = a->cmd,
                .q = a->q,
                .n = a->n,
                .leases = a->leases,
                .ran = a->ran,
                .seq = a->seq,
                .comps = a->completions,
                .open = true};
    double u = unif(), err = a->kind == LASH_ACT_RENEW ? S.p.renew_error : S.p.cmd_error;
    if (u < err)
        c->fault = F_ERROR;
    else if (u < err + S.p.lost_request)
        c->fault = F_LOST_REQUEST;
    else if (u < err + S.p.lost_request + S.p.lost_reply)
        c->fault = F_LOST_REPLY;
    if (S.ncmds == S.capcmds) {
        S.capcmds = S.capcmds ? S.capcmds * 2 : 4096;
        S.cmds = realloc(S.cmds, S.capcmds * sizeof *S.cmds);
        cr_assert_not_null(S.cmds);
    }
    S.cmds[S.ncmds++] = c;
    at(S.now + between(0, 3), EV_ARRIVE, mi, M->gen, 0, 0, c);
}

/* What a machine may send, checked as it sends it. */
static void audit_send(int mi, const lash_action *a)
{
    smach *M = &S.m[mi];
    cr_assert(a->q >= 0 && a->q < S.p.nqueues);
    switch (a->kind) {
    case LASH_ACT_CLAIM:
        S.k.claims++;
        cr_assert(a->n >= 0 && a->n <= M->c.claim_max);
        cr_assert_eq(M->claim_q[a->q], 0, "%s: two claims in flight on queue %d", M->owner, a->q);
        cr_assert_leq(M->claim_out + a->n + M->running + lash_turn_prefetched(M->t),
                      M->c.concurrency + M->c.prefetch,
                      "%s: claims %d more with %d asked, %d running and %d prefetched, %d+%d slots",
                      M->owner, a->n, M->claim_out, M->running, lash_turn_prefetched(M->t),
                      M->c.concurrency, M->c.prefetch);
        M->claim_out += a->n;
        M->claim_q[a->q] = a->cmd;
        M->claim_n[a->q] = a->n;
        break;
    case LASH_ACT_RENEW:
        S.k.renews++;
        for (int i = 0; i < a->n; i++)
            cr_assert_str_eq(a->leases[i].owner, M->owner);
        break;
    case LASH_ACT_COMPLETE:
        S.k.completes++;
        for (int i = 0; i < a->n; i++) {
            const lash_completion *c = &a->completions[i];
            mrow *r = row_by_id(c->lease.id);
            int64_t f = c->lease.fence;
            cr_assert_str_eq(c->lease.owner, M->owner);
            cr_assert(f > 0 && f < SIM_FENCES);
            if (c->outcome == LASH_OUT_ABORT && c->text_len >= 7 &&
                memcmp(c->text, "bad row", 7) == 0) {
                cr_assert(r->bad_payload, "%s: a good row was refused", r->id);
                cr_assert_eq(r->started_by[f], 0, "%s: a bad row was started", r->id);
                cr_assert_eq(r->delivered_to[f], M->inst);
                continue;
            }
            if (c->outcome == LASH_OUT_CANCEL && r->started_by[f] == 0) {
                /* A prefetched row (prefetch) whose cancellation came before its start. */
                cr_assert(r->cancel, "%s: cancelled unasked", r->id);
                cr_assert_eq(r->delivered_to[f], M->inst, "%s: cancels a row it was not given",
                             r->id);
                continue;
            }
            cr_assert_eq(r->started_by[f], M->inst, "%s fence %lld: %s records what it did not run",
                         r->id, (long long)f, M->owner);
            cr_assert_neq(r->exited[f], 0, "%s fence %lld: recorded before its process ended",
                          r->id, (long long)f);
            cr_assert_not(r->lost[f], "%s fence %lld: recorded after a renew said lost", r->id,
                          (long long)f);
            cr_assert_not(r->gaveup[f], "%s fence %lld: recorded after the lease was given up",
                          r->id, (long long)f);
            if (c->outcome == LASH_OUT_OK)
                cr_assert_eq(r->exited[f] - 1, LASH_OUT_OK, "%s: a failure recorded as success",
                             r->id);
            if (c->outcome == LASH_OUT_CANCEL) cr_assert(r->cancel, "%s: cancelled unasked", r->id);
            if (c->outcome == LASH_OUT_FAIL && c->text_len >= 9 && !memcmp(c->text, "timed out", 9))
                cr_assert_gt(r->timeout_ms, 0, "%s: timed out without a timeout", r->id);
        }
        break;
    case LASH_ACT_PEEK:
        S.k.peeks++;
        break;
    case LASH_ACT_RECOVER:
        S.k.recovers++;
        cr_assert_eq(M->claim_q[a->q], 0, "%s: recover with a claim in flight", M->owner);
        break;
    default: /* RELEASE */
        S.k.releases++;
        for (int i = 0; i < a->n; i++) {
            mrow *r = row_by_id(a->leases[i].id);
            int64_t f = a->leases[i].fence;
            cr_assert_str_eq(a->leases[i].owner, M->owner);
            /* A process that started is released only by a shutdown (even
             * when its lease was lost while the shutdown stopped it: Redis may
             * still hold it), and says so; a row handed back unrun was granted
             * to this very instance (a claim reply, late or lost, or a
             * recover). */
            if (a->ran[i])
                cr_assert(M->draining && r->started_by[f] == M->inst,
                          "%s fence %lld: released as run by %s", r->id, (long long)f, M->owner);
            else
                cr_assert(r->started_by[f] == 0 && r->granted_to[f] == M->inst,
                          "%s fence %lld: handed back unrun by %s", r->id, (long long)f, M->owner);
            cr_assert(!(r->lost[f] || r->gaveup[f]) || a->ran[i], "%s: released a lost lease",
                      r->id);
        }
    }
}

/* What machine M does and hears (LASH_SIM_TRACE), one line each. */
static void trace_act(int mi, const lash_action *a)
{
    const smach *M = &S.m[mi];
    fprintf(stderr, "%lld %s: action %d cmd %u q %d n %d", (long long)S.now, M->owner, a->kind,
            (unsigned)a->cmd, a->q, a->n);
    if (a->kind == LASH_ACT_START || a->kind == LASH_ACT_KILL) {
        const lash_slot *sl = lash_turn_slot(M->t, a->slot);
        fprintf(stderr, " slot %d %s/%lld", a->slot, sl->id, (long long)sl->fence);
    }
    if (a->kind == LASH_ACT_RELEASE || a->kind == LASH_ACT_RENEW)
        for (int i = 0; i < a->n; i++)
            fprintf(stderr, " %s/%lld%s", a->leases[i].id, (long long)a->leases[i].fence,
                    a->kind == LASH_ACT_RELEASE && a->ran[i] ? " (ran)" : "");
    if (a->kind == LASH_ACT_COMPLETE)
        for (int i = 0; i < a->n; i++)
            fprintf(stderr, " %s/%lld", a->completions[i].lease.id,
                    (long long)a->completions[i].lease.fence);
    if (a->kind == LASH_ACT_LOG) fprintf(stderr, " log: %s", a->msg);
    fputc('\n', stderr);
}

static void trace_reply(const scmd *c)
{
    fprintf(stderr, "%lld %s: reply to %d cmd %u fault %d", (long long)S.now, S.m[c->m].owner,
            c->kind, (unsigned)c->id, c->fault);
    if (c->kind == LASH_ACT_CLAIM)
        for (size_t i = 0; i < c->batch.n; i++)
            fprintf(stderr, " %s/%lld", c->batch.rows[i].id, (long long)c->batch.rows[i].fence);
    else if (c->status)
        for (int i = 0; i < c->n; i++)
            fprintf(stderr, " %d", c->status[i]);
    fputc('\n', stderr);
}

static void act(int mi, const lash_action *a)
{
    smach *M = &S.m[mi];
    if (tracing(mi)) trace_act(mi, a);
    switch (a->kind) {
    case LASH_ACT_CONNECT:
        M->conn++;
        M->up = false;
        if (chance(S.p.conn_hang)) {
            S.k.conn_hangs++; /* never answers: the machine's connect timeout must fire */
            break;
        }
        at(S.now + between(1, 20), EV_CONNECT, mi, M->gen, 0, M->conn, NULL);
        break;
    case LASH_ACT_DISCONNECT:
        S.k.reply_timeouts++;
        drop_conn(mi);
        lash_turn_disconnected(M->t, S.now);
        break;
    case LASH_ACT_START: {
        const lash_slot *s = lash_turn_slot(M->t, a->slot);
        cr_assert(s && s->used);
        sproc *p = &M->p[a->slot];
        cr_assert_not(p->running, "%s: slot %d reused while its process runs", M->owner, a->slot);
        cr_assert_lt(M->running, M->c.concurrency, "%s: more running than its slots", M->owner);
        mrow *r = row_by_id(s->id);
        int64_t f = s->fence;
        cr_assert(f > 0 && f < SIM_FENCES);
        cr_assert_not(r->bad_payload, "%s: a payload that is not JSON was started", r->id);
        cr_assert_eq(r->started_by[f], 0, "%s fence %lld started twice", r->id, (long long)f);
        /* A prefetched row (prefetch) starts on its lease as last renewed: one that
         * vanished since (the steal fault) is learned of at the next renew,
         * as for a running row, and the fence refuses its record. */
        cr_assert(holds(r, M->owner, f) || (r->stolen[f] && r->delivered_to[f] == M->inst),
                  "%s: started fence %lld without its lease (leased %d exp %lld now %lld lfence "
                  "%lld lowner %s owner %s state %d)",
                  r->id, (long long)f, r->leased, (long long)r->lexp, (long long)S.now,
                  (long long)r->lfence, r->lowner, M->owner, r->state);
        r->started_by[f] = M->inst;
        S.k.cancel_reruns += r->cancel; /* released with its cancel asked: see release.lua */
        double u = unif();
        int64_t d = u < 0.85   ? between(5, 200)
                    : u < 0.97 ? between(200, 2000)
                               : between(2000, 7000);
        *p = (sproc){.running = true,
                     .row = (int)(r - S.rows),
                     .fence = f,
                     .seq = p->seq + 1,
                     .exit_at = S.now + d,
                     .out = chance(0.8) ? LASH_OUT_OK : LASH_OUT_FAIL,
                     .ignore_term = chance(0.1)};
        p->text = p->out == LASH_OUT_OK ? "{\"ok\": true}" : "exit status 1";
        M->running++;
        M->starts++;
        S.k.starts++;
        cr_assert_leq(lash_turn_running(M->t), M->c.concurrency);
        at(p->exit_at, EV_EXIT, mi, M->gen, a->slot, p->seq, NULL);
        break;
    }
    case LASH_ACT_KILL: {
        sproc *p = &M->p[a->slot];
        const lash_slot *s = lash_turn_slot(M->t, a->slot);
        cr_assert(p->running && s->used, "%s: KILL of slot %d, nothing runs there", M->owner,
                  a->slot);
        cr_assert_eq(s->fence, p->fence);
        S.k.kills++;
        if (s->lost) S.rows[p->row].gaveup[p->fence] = true;
        if (a->sig == SIGTERM && p->ignore_term) break;
        int64_t when = S.now + (a->sig == SIGKILL ? between(0, 2) : between(0, 30));
        if (when < p->exit_at) {
            p->exit_at = when;
            p->seq++;
            p->out = LASH_OUT_FAIL;
            p->text = a->sig == SIGKILL ? "killed by signal 9" : "killed by signal 15";
            at(when, EV_EXIT, mi, M->gen, a->slot, p->seq, NULL);
        }
        break;
    }
    case LASH_ACT_CLAIM:
    case LASH_ACT_RENEW:
    case LASH_ACT_COMPLETE:
    case LASH_ACT_RELEASE:
    case LASH_ACT_RECOVER:
    case LASH_ACT_PEEK:
        audit_send(mi, a);
        send_cmd(mi, a);
        break;
    case LASH_ACT_PROGRESS: /* the simulated processes report none */
        cr_assert_fail("%s: a progress report nobody made", M->owner);
        break;
    case LASH_ACT_TIMER:
        M->timer_at = a->at;
        at(a->at, EV_TIMER, mi, M->gen, 0, ++M->timer_seq, NULL);
        break;
    case LASH_ACT_LOG:
        if (strstr(a->msg, "shutdown deadline")) M->hard_exit = true;
        break;
    case LASH_ACT_EXIT:
        cr_assert_eq(a->code, 0);
        cr_assert(M->draining, "%s exited unasked", M->owner);
        M->exiting = true;
        break;
    }
}

/* ---- events ---- */

static void publish_poke(int q)
{
    for (int mi = 0; mi < SIM_M; mi++) {
        smach *M = &S.m[mi];
        if (!M->alive || !M->up) continue;
        S.k.pokes++;
        if (chance(S.p.poke_drop)) {
            S.k.pokes_dropped++;
            continue;
        }
        at(S.now + between(0, 2), EV_POKE, mi, M->gen, q, M->conn, NULL);
    }
}

static void publish_cancel(int row)
{
    for (int mi = 0; mi < SIM_M; mi++) {
        smach *M = &S.m[mi];
        if (!M->alive || !M->up || chance(S.p.poke_drop)) continue;
        at(S.now + between(0, 2), EV_CANCELMSG, mi, M->gen, row, M->conn, NULL);
    }
}

static void on_arrive(scmd *c)
{
    smach *M = &S.m[c->m];
    if (!c->open || !same(M, c->gen, c->conn)) {
        c->open = false;
        return;
    }
    switch (c->fault) {
    case F_LOST_REQUEST: /* the connection swallowed it: no reply, ever */
        S.k.lost_requests++;
        c->arrived = true;
        return;
    case F_ERROR: /* Redis answered with an error, nothing ran */
        S.k.errors++;
        c->arrived = true;
        at(S.now + between(0, 3), EV_REPLY, c->m, c->gen, 0, 0, c);
        return;
    case F_LOST_REPLY: /* it ran; the answer is lost */
        S.k.lost_replies++;
        execute(c);
        return;
    case F_NONE:
        execute(c);
        at(S.now + between(0, 3), EV_REPLY, c->m, c->gen, 0, 0, c);
        return;
    }
}

static void on_reply(scmd *c)
{
    smach *M = &S.m[c->m];
    if (!c->open || !same(M, c->gen, c->conn)) {
        c->open = false;
        return;
    }
    c->open = false;
    if (tracing(c->m)) trace_reply(c);
    if (c->kind == LASH_ACT_CLAIM) {
        M->claim_out -= M->claim_n[c->q];
        M->claim_q[c->q] = 0;
        if (c->fault == F_ERROR) {
            lash_claim_batch none = {0};
            lash_turn_claimed(M->t, c->id, LASH_EREDIS, &none, NULL, S.now);
        } else {
            for (size_t i = 0; i < c->batch.n; i++)
                row_by_id(c->batch.rows[i].id)->delivered_to[c->batch.rows[i].fence] = M->inst;
            lash_turn_claimed(M->t, c->id, LASH_OK, &c->batch, NULL, S.now);
            cr_assert_eq(c->batch.n, 0, "the machine takes the rows");
        }
    } else if (c->kind == LASH_ACT_PEEK) {
        if (c->fault == F_ERROR)
            lash_turn_peeked(M->t, c->id, LASH_EREDIS, -1, "ERR injected", S.now);
        else
            lash_turn_peeked(M->t, c->id, LASH_OK, c->wait, NULL, S.now);
    } else if (c->kind == LASH_ACT_RECOVER) {
        if (c->fault == F_ERROR)
            lash_turn_recovered(M->t, c->id, LASH_EREDIS, NULL, "ERR injected", S.now);
        else
            lash_turn_recovered(M->t, c->id, LASH_OK, &c->rec, NULL, S.now);
    } else if (c->fault == F_ERROR) {
        lash_turn_replied(M->t, c->id, LASH_EREDIS, NULL, 0, NULL, S.now);
    } else {
        if (c->kind == LASH_ACT_RENEW) {
            for (int i = 0; i < c->n; i++) {
                if (c->status[i] != LASH_RENEW_LOST) continue;
                mrow *r = row_by_id(c->leases[i].id);
                for (int s = 0; s < lash_turn_slots(M->t); s++)
                    if (M->p[s].running && M->p[s].row == (int)(r - S.rows) &&
                        M->p[s].fence == c->leases[i].fence)
                        r->lost[c->leases[i].fence] = true;
            }
        }
        lash_turn_replied(M->t, c->id, LASH_OK, c->status, (size_t)c->n, NULL, S.now);
    }
    free(c->status);
    c->status = NULL;
    lash_recovered_free(&c->rec);
    iterate(c->m);
}

static void fault(void)
{
    int mi = (int)between(0, SIM_M - 1);
    smach *M = &S.m[mi];
    double u = unif(), p = 0;
    if (u < (p += S.p.p_disconnect)) {
        if (M->alive && M->up) {
            S.k.disconnects++;
            drop_conn(mi);
            lash_turn_disconnected(M->t, S.now);
            iterate(mi);
        }
    } else if (u < (p += S.p.p_crash)) {
        if (M->alive) {
            S.k.crashes++;
            end_instance(mi, false);
        }
    } else if (u < (p += S.p.p_shutdown)) {
        if (M->alive && !M->draining) {
            S.k.shutdowns++;
            M->draining = true;
            lash_turn_shutdown(M->t, S.now);
            drain_m(mi);
            if (chance(0.25)) at(S.now + between(10, 1000), EV_SHUTDOWN, mi, M->gen, 0, 0, NULL);
        }
    } else if (u < (p += S.p.p_outage)) {
        if (S.redis_up) {
            S.k.outages++;
            S.redis_up = false;
            for (int j = 0; j < SIM_M; j++) {
                if (!S.m[j].alive || !S.m[j].up) continue;
                drop_conn(j);
                lash_turn_disconnected(S.m[j].t, S.now);
                iterate(j);
            }
            at(S.now + between(200, 4000), EV_REDIS_UP, 0, 0, 0, 0, NULL);
        }
    } else if (u < (p += S.p.p_cancel)) {
        /* Mostly running rows: those are the ones a machine has to stop. */
        int i0 = (int)between(0, S.nrows - 1);
        bool any = chance(0.3);
        for (int k = 0; k < S.nrows; k++) {
            mrow *r = &S.rows[(i0 + k) % S.nrows];
            if (r->state == M_RUNNING || (any && r->state == M_PENDING)) {
                S.k.op_cancels++;
                m_cancel(r);
                break;
            }
        }
    } else if (u < (p += S.p.p_freeze)) {
        /* The whole worker stops for a while, sometimes past its leases: on
         * waking, its late renews and completes must be told stale. */
        if (M->alive && M->frozen_until <= S.now) {
            S.k.freezes++;
            M->frozen_until = S.now + between(200, 2 * SIM_LEASE);
        }
    } else if (u < (p += S.p.p_steal)) {
        /* A lease key vanishes (a fail-over lost the write): its owner's next
         * renew hears "lost", and the row runs again elsewhere. */
        int i0 = (int)between(0, S.nrows - 1);
        for (int k = 0; k < S.nrows; k++) {
            mrow *r = &S.rows[(i0 + k) % S.nrows];
            if (r->state == M_RUNNING && live_lease(r)) {
                S.k.steals++;
                r->leased = false;
                r->stolen[r->lfence] = true;
                break;
            }
        }
    }
}

static void dispatch(const event *e)
{
    smach *M = e->m >= 0 && e->m < SIM_M ? &S.m[e->m] : NULL;
    if (M && e->kind != EV_FAULT && e->kind != EV_REDIS_UP && M->frozen_until > S.now) {
        /* A stopped worker sees nothing; its events wait, in order. (Arrivals
         * at Redis are not the worker's: they go on.) */
        if (e->kind != EV_ARRIVE) {
            S.k.postponed++;
            event later = *e;
            later.at = M->frozen_until;
            ev_push(later);
            return;
        }
    }
    switch (e->kind) {
    case EV_SUBMIT: {
        mrow *r = &S.rows[e->a];
        r->state = M_PENDING;
        r->in_due = true;
        r->due = S.now + r->delay_ms;
        publish_poke(r->q);
        break;
    }
    case EV_TIMER:
        if (!M->alive || M->gen != e->gen || M->timer_seq != e->tag) break;
        if (S.now == M->last_tick) {
            cr_assert_lt(++M->same_tick, 50, "%s: its timer spins at %lld", M->owner,
                         (long long)S.now);
        } else {
            M->same_tick = 0;
            M->last_tick = S.now;
        }
        lash_turn_tick(M->t, S.now);
        iterate(e->m);
        break;
    case EV_CONNECT:
        if (!same(M, e->gen, e->tag)) break;
        if (S.redis_up && !chance(S.p.conn_fail)) {
            M->up = true;
            lash_turn_connected(M->t, S.now);
        } else {
            S.k.conn_fails++;
            M->conn++;
            lash_turn_disconnected(M->t, S.now);
        }
        iterate(e->m);
        break;
    case EV_ARRIVE:
        on_arrive(e->cmd);
        break;
    case EV_REPLY:
        on_reply(e->cmd);
        break;
    case EV_EXIT: {
        if (!M->alive || M->gen != e->gen) break;
        sproc *p = &M->p[e->a];
        if (!p->running || p->seq != e->tag) break;
        p->running = false;
        M->running--;
        mrow *r = &S.rows[p->row];
        r->exited[p->fence] = (signed char)(1 + p->out);
        /* Given up whenever the machine counted it lost, killed for that or
         * for something else first (a timeout), unless the shutdown was
         * stopping it: that lease is released all the same. */
        const lash_slot *sl = lash_turn_slot(M->t, e->a);
        if (sl->lost && !sl->releasing) r->gaveup[p->fence] = true;
        lash_turn_exited(M->t, e->a, p->out, p->text, strlen(p->text), S.now);
        iterate(e->m);
        break;
    }
    case EV_POKE:
        if (!same(M, e->gen, e->tag) || !M->up) break;
        lash_turn_poke(M->t, e->a, S.now);
        iterate(e->m);
        break;
    case EV_CANCELMSG:
        if (!same(M, e->gen, e->tag) || !M->up) break;
        S.k.cancel_msgs++;
        lash_turn_cancel(M->t, S.rows[e->a].q, S.rows[e->a].id, S.now);
        iterate(e->m);
        break;
    case EV_FAULT:
        fault();
        at(S.now + between(20, 80), EV_FAULT, 0, 0, 0, 0, NULL);
        break;
    case EV_SHUTDOWN: /* asked again: kill at once */
        if (!M->alive || M->gen != e->gen) break;
        S.k.second_shutdowns++;
        lash_turn_shutdown(M->t, S.now);
        iterate(e->m);
        break;
    case EV_RESTART:
        if (M->alive || M->gen != e->gen) break;
        start_instance(e->m);
        break;
    case EV_REDIS_UP:
        S.redis_up = true;
        break;
    }
}

static void sim_run(uint64_t seed, const profile *p)
{
    memset(&S, 0, sizeof S);
    S.p = *p;
    S.rng = seed * 0x2545f4914f6cdd1dull + 1;
    S.trace = getenv("LASH_SIM_TRACE") ? atoi(getenv("LASH_SIM_TRACE")) + 1 : 0;
    S.redis_up = true;
    S.nrows = p->nrows;
    S.rows = calloc((size_t)S.nrows, sizeof *S.rows);
    cr_assert_not_null(S.rows);
    static const char *const backoffs[] = {"fixed:50", "exp:20:400", ""};
    for (int i = 0; i < S.nrows; i++) {
        mrow *r = &S.rows[i];
        snprintf(r->id, sizeof r->id, "r%d", i);
        r->q = i % p->nqueues;
        r->max_attempts = (int)between(1, 4);
        r->timeout_ms = chance(0.15) ? between(300, 1500) : 0;
        r->backoff = backoffs[between(0, 2)];
        r->bad_payload = chance(0.01);
        r->abandon = chance(0.05);
        r->delay_ms = chance(0.1) ? between(0, 5000) : 0;
        at(between(0, 20000), EV_SUBMIT, -1, 0, i, 0, NULL);
    }
    for (int mi = 0; mi < SIM_M; mi++) {
        smach *M = &S.m[mi];
        lash_turn_config_default(&M->c);
        M->c.concurrency = (int)between(3, SIM_SLOTS);
        M->c.prefetch = chance(0.5) ? (int)between(1, SIM_PREFETCH) : 0;
        M->c.nqueues = p->nqueues;
        static const int claim_max[] = {1, 2, 3, 256};
        M->c.claim_max = claim_max[between(0, 3)];
        M->c.lease_ms = SIM_LEASE;
        M->c.poll_ms = 400;
        M->c.grace_ms = 1500;
        M->c.kill_grace_ms = 300;
        M->c.reply_timeout_ms = 800;
        M->c.reconnect_min_ms = 50;
        M->c.reconnect_max_ms = 1000;
        M->last_tick = -1;
        start_instance(mi);
    }
    at(100, EV_FAULT, 0, 0, 0, 0, NULL);

    while (S.terminal < S.nrows) {
        cr_assert_gt(S.nheap, 0, "the simulation ran dry with %d rows live", S.nrows - S.terminal);
        cr_assert_lt(++S.steps, 20000000, "the simulation did not end");
        event e = ev_pop();
        cr_assert_geq(e.at, S.now);
        S.now = e.at;
        cr_assert_lt(S.now, 3600 * 1000, "an hour of simulated time and %d rows live",
                     S.nrows - S.terminal);
        dispatch(&e);
    }

    int completed = 0;
    for (int i = 0; i < S.nrows; i++) {
        const mrow *r = &S.rows[i];
        cr_assert(r->state >= M_COMPLETED, "%s never ended", r->id);
        cr_assert_eq(r->terminal, 1, "%s ended %d times", r->id, r->terminal);
        if (r->state == M_COMPLETED) {
            completed++;
            cr_assert_eq(r->ok_records, 1, "%s completed %d times", r->id, r->ok_records);
        } else {
            cr_assert_eq(r->ok_records, 0);
        }
        if (r->bad_payload) /* failed, unless cancelled or abandoned first */
            cr_assert_neq(r->state, M_COMPLETED, "%s: a bad row never runs", r->id);
    }
    for (int mi = 0; mi < SIM_M; mi++)
        cr_assert_gt(S.m[mi].starts, 0, "machine %d never ran anything", mi);
    cr_assert_gt(completed, S.nrows / 2, "most rows succeed");

    cr_log_info("seed %llu: %d rows in %.1f s simulated, %llu steps; ended completed %llu "
                "failed %llu cancelled %llu abandoned %llu; %llu starts, %llu kills, %llu "
                "timed out, %llu leases expired, %llu renews said lost, %llu released; "
                "completes accepted %llu stale %llu already %llu",
                (unsigned long long)seed, S.nrows, (double)S.now / 1000,
                (unsigned long long)S.steps, (unsigned long long)S.k.ended[M_COMPLETED],
                (unsigned long long)S.k.ended[M_FAILED], (unsigned long long)S.k.ended[M_CANCELLED],
                (unsigned long long)S.k.ended[M_ABANDONED], (unsigned long long)S.k.starts,
                (unsigned long long)S.k.kills, (unsigned long long)S.k.timed_out,
                (unsigned long long)S.k.leases_expired, (unsigned long long)S.k.renew_lost,
                (unsigned long long)S.k.released, (unsigned long long)S.k.accepted,
                (unsigned long long)S.k.stale, (unsigned long long)S.k.already);
    cr_log_info("seed %llu faults: pokes dropped %llu of %llu, error replies %llu, lost "
                "requests %llu, lost replies %llu, reply timeouts %llu, disconnects %llu, "
                "outages %llu, connect fails %llu, connect hangs %llu, crashes %llu, "
                "shutdowns %llu (again %llu, graceful exits %llu, at the deadline %llu), "
                "cancels %llu (messages %llu), freezes %llu (events postponed %llu), leases "
                "stolen %llu; cancel-asked rows started again %llu",
                (unsigned long long)seed, (unsigned long long)S.k.pokes_dropped,
                (unsigned long long)S.k.pokes, (unsigned long long)S.k.errors,
                (unsigned long long)S.k.lost_requests, (unsigned long long)S.k.lost_replies,
                (unsigned long long)S.k.reply_timeouts, (unsigned long long)S.k.disconnects,
                (unsigned long long)S.k.outages, (unsigned long long)S.k.conn_fails,
                (unsigned long long)S.k.conn_hangs, (unsigned long long)S.k.crashes,
                (unsigned long long)S.k.shutdowns, (unsigned long long)S.k.second_shutdowns,
                (unsigned long long)S.k.graceful_exits, (unsigned long long)S.k.hard_exits,
                (unsigned long long)S.k.op_cancels, (unsigned long long)S.k.cancel_msgs,
                (unsigned long long)S.k.freezes, (unsigned long long)S.k.postponed,
                (unsigned long long)S.k.steals, (unsigned long long)S.k.cancel_reruns);

    for (int mi = 0; mi < SIM_M; mi++)
        if (S.m[mi].alive) lash_turn_free(S.m[mi].t);
    for (size_t i = 0; i < S.ncmds; i++) {
        lash_claim_batch_free(&S.cmds[i]->batch);
        lash_recovered_free(&S.cmds[i]->rec);
        free(S.cmds[i]->status);
        free(S.cmds[i]);
    }
    free(S.cmds);
    free(S.heap);
    free(S.rows);
}

static const profile sim_default = {
    .poke_drop = 0.2,
    .cmd_error = 0.005,
    .renew_error = 0.03,
    .lost_request = 0.002,
    .lost_reply = 0.003,
    .conn_fail = 0.1,
    .conn_hang = 0.02,
    .p_disconnect = 0.03,
    .p_crash = 0.008,
    .p_shutdown = 0.008,
    .p_outage = 0.002,
    .p_cancel = 0.03,
    .p_freeze = 0.008,
    .p_steal = 0.008,
    .nrows = 2000,
    .nqueues = 2,
};

#define SIM_SEED(n)                                                                                \
    Test(sim, seed_##n, .timeout = 120)                                                            \
    {                                                                                              \
        sim_run(n, &sim_default);                                                                  \
    }

SIM_SEED(1)
SIM_SEED(2)
SIM_SEED(3)
SIM_SEED(4)
SIM_SEED(5)
SIM_SEED(6)
SIM_SEED(7)
SIM_SEED(8)

/* Harsher: a lossy network and a fleet that keeps falling over, on one queue. */
static profile sim_harsh(void)
{
    profile p = sim_default;
    p.poke_drop = 0.6;
    p.renew_error = 0.1;
    p.lost_request = 0.01;
    p.lost_reply = 0.01;
    p.conn_fail = 0.3;
    p.p_disconnect = 0.06;
    p.p_crash = 0.02;
    p.p_shutdown = 0.02;
    p.p_outage = 0.004;
    p.p_freeze = 0.02;
    p.p_steal = 0.02;
    p.nqueues = 1;
    p.nrows = 1000;
    return p;
}

Test(sim, harsh, .timeout = 120)
{
    profile p = sim_harsh();
    sim_run(99, &p);
}

/* For the sweep: drains, outages and freezes more often, on one queue. */
static profile sim_drains(void)
{
    profile p = sim_default;
    p.renew_error = 0.08;
    p.p_shutdown = 0.05;
    p.p_outage = 0.01;
    p.p_freeze = 0.02;
    p.nqueues = 1;
    p.nrows = 600;
    return p;
}

/* A seed sweep for bug hunts (see the top): skipped without LASH_SIM_SEEDS. */
Test(sim, sweep, .timeout = 100000)
{
    const char *s = getenv("LASH_SIM_SEEDS");
    unsigned long long a, b;
    if (!s || sscanf(s, "%llu-%llu", &a, &b) != 2 || a > b)
        cr_skip_test("LASH_SIM_SEEDS=FIRST-LAST not set");
    const profile harsh = sim_harsh(), drains = sim_drains();
    for (unsigned long long n = a; n <= b; n++) {
        fprintf(stderr, "seed %llu default\n", n);
        sim_run(n, &sim_default);
        fprintf(stderr, "seed %llu harsh\n", n);
        sim_run(n, &harsh);
        fprintf(stderr, "seed %llu drains\n", n);
        sim_run(n, &drains);
    }
}
