/* registry.h: the Redis-backed process registry, blocking API.
 *
 * The only room that talks to Redis. Each operation is one Lua script (see
 * proto/scripts.h) run with EVALSHA, falling back to EVAL on NOSCRIPT, so a
 * flushed script cache or a fail-over costs one extra round trip, never an error.
 * Every call returns a lash_status and fills a lash_err; a stale owner's renew,
 * complete or release is not an error of the call: its per-row status says so.
 *
 * Thread safety: a lash_conn belongs to one thread at a time.
 * Signals: a program using the registry should ignore SIGPIPE (lashctl and
 * lash-worker do): a write to a Redis that just died must fail with LASH_EIO,
 * not kill the process.
 * The async twin for event loops is registry/async.h.
 */
#ifndef LASH_REGISTRY_H
#define LASH_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"
#include "proto/limits.h"
#include "proto/ops.h"
#include "proto/record.h"
#include "proto/url.h"

typedef struct lash_conn lash_conn;
struct redisContext;

/* Connects (TCP or unix socket), authenticates (AUTH [user] password) and selects
 * the database of the URL. timeout_ms bounds the connect and every later reply
 * (0: 5000). LASH_REDIS_PASSWORD, when set, overrides the URL's password.
 *
 * The URL may name a single Redis, any node of a Redis Cluster, or Sentinels
 * (redis-sentinel://h1:26379,h2:26379#mymaster; proto/url.h): every operation
 * below then goes to the primary that serves its queue, follows the Cluster's
 * MOVED and ASK replies, and finds the new primary after a failover. In a
 * Cluster or under Sentinel, a call that meets a failover or a slot migration
 * keeps trying for up to failover_ms before it fails; since it may then have
 * run twice, every operation is safe to repeat (submit: the ids are fixed
 * before the first attempt, so a repeat says "exists"; complete, renew and
 * release are idempotent for their token; a repeated claim leaves leases that
 * expire and cost the rows an attempt). A single Redis is never retried. */
typedef struct {
    int timeout_ms;  /* connect and each reply; 0: 5000 */
    int failover_ms; /* Cluster, Sentinel: how long a call keeps trying; 0: $LASH_FAILOVER_MS,
                        else 30000 */
} lash_conn_opts;

lash_status lash_connect(const char *url, int timeout_ms, lash_conn **out, lash_err *e);
lash_status lash_connect_url(const lash_url *u, int timeout_ms, lash_conn **out, lash_err *e);
lash_status lash_connect_opts(const char *url, const lash_conn_opts *o, lash_conn **out,
                              lash_err *e);
lash_status lash_connect_url_opts(const lash_url *u, const lash_conn_opts *o, lash_conn **out,
                                  lash_err *e);
void lash_close(lash_conn *c);
/* The hiredis context of the node the last command went to (before any: the
 * one connected first), for raw commands (tests, tools). In a Cluster, a raw
 * command is not routed: use lash_conn_each_primary to reach every node.
 * NULL only when no node of a Cluster or Sentinel deployment is reachable. */
struct redisContext *lash_conn_redis(lash_conn *c);

/* Calls fn once for every primary: for a single Redis or under Sentinel once,
 * with c itself; in a Cluster once per primary of a freshly read slot map,
 * with a view of c whose every command (lash_conn_redis, and any registry call)
 * goes to that primary alone. A view lives until fn returns (lash_close on it
 * does nothing). Stops at the first error fn returns. For what has to be done
 * on every node: loading the Functions library, SCAN for queues. */
typedef lash_status lash_node_fn(lash_conn *node, void *ud, lash_err *e);
lash_status lash_conn_each_primary(lash_conn *c, lash_node_fn *fn, void *ud, lash_err *e);

/* ---- submit ---------------------------------------------------------------- */

typedef enum {
    LASH_SUB_CREATED = 0,
    LASH_SUB_EXISTS,   /* same id, same registration: nothing changed */
    LASH_SUB_CONFLICT, /* same id, another registration: refused */
    LASH_SUB_INVALID,  /* refused before it reached Redis, or by the script */
    LASH_SUB_UNKNOWN,  /* sent, but no answer came (connection lost or timed out):
                          it may or may not exist. Submit again with the same id:
                          the same registration answers "exists" if it landed */
} lash_sub_status;

typedef struct {
    char id[LASH_ID_MAX + 1];
    lash_sub_status status;
    char msg[272]; /* why, for CONFLICT and INVALID */
} lash_submitted;

/* Submits n processes to queue, pipelined in batches of at most LASH_BATCH_MAX
 * rows per script call. Ids missing from subs are generated. out[i] (n entries)
 * says what became of subs[i]. Returns LASH_OK when Redis was reached, even if
 * some rows were refused (see out); an error when a call of the batch failed:
 * then rows of calls that went through still say created/exists, rows of calls
 * Redis answered with an error or that were never sent say LASH_SUB_INVALID
 * with a msg starting "not submitted", and rows of calls sent without an answer
 * say LASH_SUB_UNKNOWN. Ids chosen by the caller make a retry safe: generated
 * ids are new on every call, so a retry of an unknown row can duplicate it. */
lash_status lash_submit(lash_conn *c, const char *queue, const lash_submission *subs, size_t n,
                        lash_submitted *out, lash_err *e);

/* Durable acknowledgement: after the rows are written, WAIT until `replicas`
 * replicas of the primary that took them confirm they have them, for at most
 * timeout_ms. Redis replicates asynchronously: a plain submit acknowledged by a
 * primary that dies a moment later may be missing on the replica promoted in
 * its place. With WAIT it is acknowledged only once that many replicas hold
 * it (they already applied the write), so losing the primary alone cannot lose
 * it. It is no consensus: a replica that was confirmed may itself be lost,
 * Sentinel or the Cluster may still promote a replica that was not among those
 * confirmed, and nothing is fsynced by WAIT. Rows that a connection lost during
 * the call acknowledged are sent again to the new primary (a row already there
 * says "exists") and confirmed there; WAIT covers what this call wrote, so a
 * row that was "exists" from the start is only as durable as whoever wrote it.
 * Returns LASH_EDURABLE (every row still says what Redis answered) when fewer
 * replicas confirmed in time; w.replicas 0 is lash_submit. */
typedef struct {
    int replicas;   /* 0: do not wait */
    int timeout_ms; /* >= 1 */
} lash_wait;

lash_status lash_submit_wait(lash_conn *c, const char *queue, const lash_submission *subs, size_t n,
                             lash_wait w, lash_submitted *out, lash_err *e);

/* ---- the worker's operations ----------------------------------------------- */

/* The values these operations take and give (lash_claim_batch, lash_lease,
 * lash_completion, the per-row statuses, lash_recovered, lash_retention) are
 * the protocol's words: proto/ops.h. */

/* Claims up to n due rows for owner, leased for ttl_ms. seq (0: none) names the
 * call: when the reply is lost, lash_recover(seq) finds the rows it leased.
 * upkeep > 0 also does the queue's upkeep: owner's heartbeat in the workers
 * set and retention (keep) of at most upkeep terminal rows; 0 none (a worker
 * asks about once a second: see turn.c); -1 the script's default (upkeep on
 * every call, 100 + n rows). */
lash_status lash_claim(lash_conn *c, const char *queue, const char *owner, int n, int64_t ttl_ms,
                       lash_retention keep, uint32_t seq, int upkeep, lash_claim_batch *out,
                       lash_err *e);

/* Renews leases for ttl_ms: status[i] is a lash_renew_status. */
lash_status lash_renew(lash_conn *c, const char *queue, int64_t ttl_ms, const lash_lease *l,
                       size_t n, int *status, lash_err *e);

/* Records outcomes: status[i] is a lash_done_status. */
lash_status lash_complete(lash_conn *c, const char *queue, const lash_completion *r, size_t n,
                          int *status, lash_err *e);

/* Gives leases back: each row is pending again and its attempt handed back.
 * ran[i] says whether its process started (NULL: all did): an on_lost=abandon
 * row that ran ends abandoned instead (it may have done part of its work).
 * status[i] is a lash_release_status. */
lash_status lash_release(lash_conn *c, const char *queue, const lash_lease *l, const bool *ran,
                         size_t n, int *status, lash_err *e);

/* Records progress reports of running processes (the owner's token, as a
 * completion): status[i] is a lash_progress_status. Reports are checked first
 * (lash_progress_check): a bad one fails the call, naming it. */
lash_status lash_report_progress(lash_conn *c, const char *queue, const lash_progress_report *r,
                                 size_t n, int *status, lash_err *e);

/* When a row of queue is eligible (a worker's poll, read-only): wait_ms 0 now,
 * > 0 in that many ms (the first row of the due set: a delayed row, one held
 * back by a limit, a lease that runs out then), -1 none is waiting. */
lash_status lash_peek(lash_conn *c, const char *queue, int64_t *wait_ms, lash_err *e);

/* The rows claim seq of owner leased that owner still holds: out (free it
 * with lash_recovered_free) lists their leases and owns their ids.
 * The owner lost that claim's reply; it hands the rows back with release (ran
 * false), so they cost no attempt. */
lash_status lash_recover(lash_conn *c, const char *queue, const char *owner, uint32_t seq,
                         lash_recovered *out, lash_err *e);

/* ---- the operator's operations --------------------------------------------- */

/* LASH_OK with *requested false: cancelled at once (it was pending); true: the
 * owner was asked to stop it. LASH_ENOTFOUND, or LASH_EREFUSED when terminal. */
lash_status lash_cancel(lash_conn *c, const char *queue, const char *id, const char *reason,
                        bool *requested, lash_err *e);
/* Re-opens a failed, cancelled or abandoned row. */
lash_status lash_retry(lash_conn *c, const char *queue, const char *id, lash_err *e);
/* Reads a row. LASH_EINVAL when the row is malformed (rec holds what parsed and
 * e names the bad field). Free rec with lash_record_free. */
lash_status lash_get(lash_conn *c, const char *queue, const char *id, lash_record *rec,
                     lash_err *e);

typedef struct {
    char id[LASH_ID_MAX + 1];
    char state[16];
    char kind[LASH_KIND_MAX + 1];
    int attempt;
    int64_t score_ms; /* next eligible (live rows) or finished (terminal rows) */
} lash_list_row;

typedef struct {
    char next[32]; /* cursor for the next page; "0" at the end */
    size_t n;
    lash_list_row *rows;
} lash_list_page;

/* state: NULL for any. cursor: "0" for the first page. */
lash_status lash_list(lash_conn *c, const char *queue, const char *state, const char *cursor,
                      int limit, lash_list_page *out, lash_err *e);
void lash_list_page_free(lash_list_page *p);

typedef struct {
    int64_t count[LASH_STATE_COUNT]; /* rows in each state now */
    int64_t total_submitted, total_completed, total_failed, total_cancelled, total_abandoned,
        total_retried, total_lost;
    int64_t due, done, oldest_due_ms, workers, now_ms;
    int64_t eligible; /* due rows with score <= now: ready to run, or leases run out */
} lash_stats;

lash_status lash_get_stats(lash_conn *c, const char *queue, lash_stats *out, lash_err *e);
/* Sets the per-state counters from the rows themselves (they drift when rows
 * are written or deleted by hand), then reads the stats into out. O(rows) in
 * one script call: it holds Redis while it counts. */
lash_status lash_recount(lash_conn *c, const char *queue, lash_stats *out, lash_err *e);
/* Deletes terminal rows beyond retention, at most max per call; *removed says how many. */
lash_status lash_trim(lash_conn *c, const char *queue, lash_retention keep, int max,
                      int64_t *removed, lash_err *e);
/* Wakes every worker of queue. */
lash_status lash_poke(lash_conn *c, const char *queue, lash_err *e);

/* Loads every script into Redis's script cache (SCRIPT LOAD), so the first
 * call of each goes by EVALSHA too. Optional: a NOSCRIPT is answered by sending
 * the text once anyway. */
lash_status lash_scripts_load(lash_conn *c, lash_err *e);

/* Makes sure the Functions library "lash" (FCALL lash_submit ...) is loaded and
 * current on every primary: loads it when missing, replaces it when its version
 * differs. */
lash_status lash_functions_ensure(lash_conn *c, lash_err *e);

#endif
