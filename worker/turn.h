/* turn.h: the worker's sans-IO turn machine.
 *
 * Everything a worker decides lives here, and nothing it does: no sockets, no
 * clock, no processes, no randomness of its own. The shell (worker.c) feeds it
 * events, each with the current monotonic time in ms, and carries out the
 * actions it queues. Because of that it is tested deterministically: one
 * machine at a time (tests/test_turn.c), and a fleet of machines against an
 * in-memory registry with dropped pokes, lost replies, disconnects and crashes
 * (tests/sim/test_sim.c). It needs proto/ alone (its words with the registry
 * are proto/ops.h) and links without hiredis; CMake and tests/core.sh hold it
 * to that.
 *
 * What it owns:
 *   - drives: the startup drive on every (re)connect; pokes and poll ticks
 *     coalesce, so a poke during a drive schedules exactly one more drive, and
 *     a full claim (as many rows as asked) schedules the next one; a poll tick
 *     first peeks (is a row eligible?) and claims only when one is; the
 *     heartbeat and retention (a claim's upkeep) go every LASH_TURN_BEAT_MS
 *     when idle, about once a second when busy;
 *   - slots: concurrency + prefetch of them; a claim never asks for more
 *     rows than free slots; at most `concurrency` run, the rest wait, prefetched
 *     (leased, renewed, not started) and start in claim order as running
 *     ones end, without a round trip to Redis in between, and only with a
 *     third of their lease left: a prefetched row that is cancelled is recorded
 *     cancelled, one whose lease is lost is handed back unrun (release), and
 *     so are prefetched rows at the shutdown;
 *   - leases: renewed every lease/3 in one batch per queue; a renew answered
 *     "lost" (or a lease whose local estimate runs out while Redis is away)
 *     kills the process and records nothing, and the lease is left to run out
 *     (the next claim counts the attempt), except for a process the shutdown
 *     was stopping: that one is released once it ends, as the shutdown would;
 *   - outcomes: success, failure with backoff, timeout (TERM, then KILL),
 *     cancellation; completions are batched per queue, re-sent after a lost
 *     connection (the complete script is idempotent for the same token);
 *   - the connection: reconnect with capped exponential backoff and jitter; a
 *     command without a reply within reply_timeout_ms counts as a lost connection;
 *     the rows of a claim whose reply was lost are asked for (RECOVER) and
 *     handed back unrun, and so are those of a claim answered too late to run;
 *   - progress: a handler's reports are kept per process, the latest winning,
 *     and sent at most once every LASH_TURN_PROGRESS_MS per process, batched
 *     per queue (at best: a report refused, lost with the connection or still
 *     waiting when its process ends is dropped; the next one replaces it);
 *   - errors: a failing command is logged once, then summed up at a slowing
 *     rate; after an error reply commands wait min(poll, lease/6);
 *   - shutdown: stop claiming, let processes finish within grace_ms, kill the
 *     rest, release their leases, exit 0.
 *
 * Outbound Redis commands (claim, renew, complete, release) are only queued by
 * lash_turn_flush(), which the shell calls once per loop iteration, so all that
 * one iteration decided leaves as one pipelined burst.
 */
#ifndef LASH_WORKER_TURN_H
#define LASH_WORKER_TURN_H

#include <stdbool.h>
#include <stdint.h>

#include "proto/err.h"
#include "proto/limits.h"
#include "proto/ops.h"

#define LASH_TURN_CONCURRENCY_MAX 4096
/* An idle worker's heartbeat (a claim with upkeep) goes this often; its poll in
 * between only peeks. lash:{q}:workers counts a worker alive for 60 s. */
#define LASH_TURN_BEAT_MS 5000
/* The most terminal rows one claim's upkeep trims. */
#define LASH_TURN_TRIM_MAX 10000
#define LASH_TURN_QUEUES_MAX 64
/* A process's progress goes to Redis at most this often (the latest report
 * wins): a handler that reports on every item of a million costs Redis a few
 * writes a second, not a million. */
#define LASH_TURN_PROGRESS_MS 500

typedef struct {
    int concurrency;          /* processes running at once, 1..4096 */
    int prefetch;             /* rows claimed ahead beyond those, leased, 0..4096 */
    int nqueues;              /* queues 0..nqueues-1 (names are the shell's), 1..64 */
    int claim_max;            /* rows per claim call, 1..LASH_BATCH_MAX */
    int64_t lease_ms;         /* lease ttl, 300 ms..1 day */
    int64_t poll_ms;          /* safety-net drive interval, 10 ms..1 h */
    int64_t grace_ms;         /* shutdown: how long running processes may finish */
    int64_t kill_grace_ms;    /* TERM -> KILL escalation */
    int64_t reply_timeout_ms; /* no reply within this: the connection is lost;
                                 100..lease/3, or 0: min(10 s, lease/3) */
    int64_t reconnect_min_ms; /* first reconnect delay; doubles up to max */
    int64_t reconnect_max_ms;
    uint64_t seed; /* for jitter: poll spread, backoff, reconnect */
} lash_turn_config;

/* Fills c with the defaults (concurrency 16, lease 30 s, poll 400 ms, ...). */
void lash_turn_config_default(lash_turn_config *c);
/* The bounds above, in one place: every entry point (lash-worker's flags and
 * environment, the embedding API) calls this before building a machine;
 * LASH_EINVAL and a sentence naming the setting when one is out of bounds.
 * lash_turn_new refuses a config past them (NULL). */
lash_status lash_turn_config_check(const lash_turn_config *c, lash_err *e);
/* The reply timeout c stands for (resolving 0). */
int64_t lash_turn_reply_timeout(const lash_turn_config *c);

typedef enum {
    LASH_ACT_CONNECT = 1, /* open the Redis connections; answer with connected/disconnected */
    LASH_ACT_DISCONNECT,  /* drop them (reply timeout); answer with disconnected */
    LASH_ACT_START,       /* start the process in slot */
    LASH_ACT_KILL,        /* signal the process in slot (sig = SIGTERM or SIGKILL) */
    LASH_ACT_CLAIM,       /* queue q, n rows (n may be 0: heartbeat and trim only); upkeep:
                             the rows it may trim with the heartbeat, 0: no upkeep */
    LASH_ACT_RENEW,       /* queue q, leases[n] */
    LASH_ACT_COMPLETE,    /* queue q, completions[n] */
    LASH_ACT_RELEASE,     /* queue q, leases[n], ran[n] */
    LASH_ACT_RECOVER,     /* queue q: the rows of claim `seq` whose reply was lost */
    LASH_ACT_PEEK,        /* queue q: is a row eligible now? (a poll's look) */
    LASH_ACT_PROGRESS,    /* queue q, progress[n]: the processes' latest reports */
    LASH_ACT_TIMER,       /* call lash_turn_tick at `at` (replaces the previous timer) */
    LASH_ACT_LOG,         /* level, slot (-1 if none), msg */
    LASH_ACT_EXIT,        /* exit with code */
} lash_action_kind;

typedef enum { LASH_LOG_ERROR = 0, LASH_LOG_WARN, LASH_LOG_INFO, LASH_LOG_DEBUG } lash_log_level;

/* One action. Pointers stay valid until the reply to that command is fed back
 * (cmd identifies it), or for LOG until the next call into the machine. */
typedef struct {
    lash_action_kind kind;
    int q;
    int slot;
    int sig;
    int n;
    int upkeep;   /* CLAIM: see LASH_ACT_CLAIM */
    uint32_t cmd; /* the command's id: a CLAIM sends it as its seq */
    uint32_t seq; /* RECOVER: the lost claim's cmd */
    int64_t at;
    int code;
    lash_log_level level;
    const lash_lease *leases;
    const bool *ran; /* RELEASE: per lease, whether its process started */
    const lash_completion *completions;
    const lash_progress_report *progress;
    const char *msg;
} lash_action;

/* A running process, as the shell needs it to start and describe it. */
typedef struct {
    bool used;
    int q;
    char id[LASH_ID_MAX + 1];
    char kind[LASH_KIND_MAX + 1];
    char *payload;
    size_t payload_len;
    int attempt, max_attempts;
    int64_t fence, timeout_ms;
    char backoff[48];
    /* the machine's bookkeeping */
    int64_t started, renew_at, lease_until, deadline, kill_at;
    int kill_sig;    /* last signal sent, 0 if none */
    bool cancelled;  /* cancellation asked: record 'cancelled' */
    bool lost;       /* lease lost: record nothing */
    bool timed_out;  /* exceeded timeout_ms: record a failure */
    bool releasing;  /* killed at the end of the shutdown grace: release */
    bool prefetched; /* leased and waiting for a running slot (prefetch) */
    uint64_t order;  /* prefetched: starts before those of higher order */
    /* its latest progress report not sent yet (progress_due), and when the
     * next may go (LASH_TURN_PROGRESS_MS after the last) */
    bool progress_due;
    int progress;
    char progress_text[LASH_PROGRESS_TEXT_MAX + 1];
    size_t progress_len;
    int64_t progress_at;
} lash_slot;

typedef struct lash_turn lash_turn;

/* A machine for c (copied) and owner; NULL when c is past the bounds of
 * lash_turn_config_check. Out of memory aborts (see xcalloc in turn.c). */
lash_turn *lash_turn_new(const lash_turn_config *c, const char *owner);
void lash_turn_free(lash_turn *t);

/* Events. */
void lash_turn_start(lash_turn *t, int64_t now);
void lash_turn_connected(lash_turn *t, int64_t now);
void lash_turn_disconnected(lash_turn *t, int64_t now);
void lash_turn_poke(lash_turn *t, int q, int64_t now);
void lash_turn_tick(lash_turn *t, int64_t now);
/* The reply to CLAIM cmd. On LASH_OK the rows are moved out of b (b is left
 * empty). On failure why says what went wrong (the machine logs it, once per
 * run of the same failure). */
void lash_turn_claimed(lash_turn *t, uint32_t cmd, lash_status st, lash_claim_batch *b,
                       const char *why, int64_t now);
/* Replies to RENEW, COMPLETE, RELEASE and PROGRESS: per-row statuses (n of them on LASH_OK). */
void lash_turn_replied(lash_turn *t, uint32_t cmd, lash_status st, const int *status, size_t n,
                       const char *why, int64_t now);
/* The reply to PEEK cmd: wait_ms until a row of its queue is eligible (0 now,
 * -1 none waiting). A row due before this worker's next look wakes it then. */
void lash_turn_peeked(lash_turn *t, uint32_t cmd, lash_status st, int64_t wait_ms, const char *why,
                      int64_t now);
/* The reply to RECOVER cmd: the leases the lost claim left us (r only on LASH_OK). */
void lash_turn_recovered(lash_turn *t, uint32_t cmd, lash_status st, const lash_recovered *r,
                         const char *why, int64_t now);
/* The process in slot ended. outcome/text as the handler reported it (text is
 * copied); the machine overrides it for cancel, timeout, lost and shutdown. */
void lash_turn_exited(lash_turn *t, int slot, lash_outcome outcome, const char *text, size_t len,
                      int64_t now);
/* A progress report of the process in slot: percent 0..100 and a text of
 * len bytes (copied), as lash_progress_check accepts them; anything else is
 * ignored. It replaces a report of the slot not sent yet, and goes with the
 * next flush once LASH_TURN_PROGRESS_MS have passed since the slot's last. */
void lash_turn_progress(lash_turn *t, int slot, int percent, const char *text, size_t len,
                        int64_t now);
/* A cancel message for id on queue q. */
void lash_turn_cancel(lash_turn *t, int q, const char *id, int64_t now);
/* SIGTERM/SIGINT: graceful. A second call kills at once. */
void lash_turn_shutdown(lash_turn *t, int64_t now);
/* End of a loop iteration: queue the Redis commands decided so far. */
void lash_turn_flush(lash_turn *t, int64_t now);

/* Actions, oldest first; false when none is left. */
bool lash_turn_next(lash_turn *t, lash_action *a);

/* The slots, concurrency + prefetch: every action's slot is below this. */
int lash_turn_slots(const lash_turn *t);
const lash_slot *lash_turn_slot(const lash_turn *t, int slot);
/* Processes running (prefetched rows not counted). */
int lash_turn_running(const lash_turn *t);
/* Rows prefetched: leased, waiting for a running slot. */
int lash_turn_prefetched(const lash_turn *t);
bool lash_turn_connected_now(const lash_turn *t);
/* What a worker has done since it started, counted: for its logs, its metrics
 * (lash-worker --metrics-listen) and tests. lash_turn_counters and
 * lash_worker_counters read them. */
typedef struct {
    uint64_t claims_sent, rows_claimed, completes_sent, rows_recorded, rows_stale, renews_sent,
        leases_lost, releases_sent, reconnects, pokes, ticks, rows_recovered, progress_sent,
        progress_stale;
} lash_counters;
const lash_counters *lash_turn_counters(const lash_turn *t);

#endif
