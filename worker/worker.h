/* worker.h: lash's runtime, to embed in a program or to run as lash-worker.
 *
 * A lash_worker drives the non-terminal rows of its queues to completion on a
 * libev loop: it claims rows under leases, runs each with the handler of its
 * kind, renews the leases while they run, and records outcomes. Kinds without a
 * handler are failed with an error saying so (put kinds that need different
 * workers on different queues).
 *
 *   lash_worker_config cfg;
 *   lash_worker_config_default(&cfg);
 *   cfg.redis_url = "redis://127.0.0.1:6379";
 *   lash_worker *w;
 *   if (lash_worker_new(EV_DEFAULT, &cfg, &w, &err)) ...
 *   lash_worker_handle(w, "resize", my_handler, NULL, my_state, &err);
 *   lash_worker_start(w);
 *   ev_run(EV_DEFAULT, 0);      // returns after lash_worker_shutdown() has finished
 *   lash_worker_free(w);
 *
 * An in-process handler is called on the loop with a lash_job and must call
 * lash_job_done() exactly once, then or later, from the loop's thread. Exec
 * handlers (lash_worker_exec) need libev's default loop. The process should
 * ignore SIGPIPE (lash-worker does): a Redis or pipe peer that goes away must not
 * kill it.
 */
#ifndef LASH_WORKER_H
#define LASH_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"
#include "proto/version.h" /* lash_version() */
#include "registry/registry.h"
#include "worker/log.h"
#include "worker/turn.h"

struct ev_loop;
typedef struct lash_worker lash_worker;
typedef struct lash_job lash_job;

typedef struct {
    const char *redis_url;
    const char *const *queues; /* default: {"default"} */
    int nqueues;
    const char *worker_id;   /* default: <hostname>:<pid>; leases name "<id>#<nonce>" */
    lash_turn_config turn;   /* concurrency, lease, poll, grace, ... (its nqueues is
                                ignored: the queues above set it) */
    lash_retention keep;     /* retention of terminal rows applied by claims */
    size_t result_max;       /* exec stdout cap, <= LASH_RESULT_MAX */
    size_t stderr_tail;      /* exec stderr kept for errors */
    const char *health_file; /* touched while Redis answers; NULL: none */
    int failover_ms;         /* Cluster, Sentinel: how long a connection keeps trying to reach
                                a primary before it counts as lost (0: $LASH_FAILOVER_MS,
                                else 30000); see registry/async.h */
    lash_logger log;
    /* Hooks, called on the loop (NULL: none). on_ready: once, when the worker
     * has connected and its first drive came back (the health file is written
     * then too): readiness for supervisors. on_job_end: as each job ends, with
     * its kind, outcome and run time (for metrics). */
    void (*on_ready)(void *ud);
    void (*on_job_end)(void *ud, const char *kind, lash_outcome o, int64_t run_ms);
    void *hooks_ud;
} lash_worker_config;

void lash_worker_config_default(lash_worker_config *c);
/* The bounds of every setting, in one place (lash_worker_new calls it, and so
 * does lash-worker for its flags and environment): LASH_EINVAL and a sentence
 * naming the setting, e.g. "concurrency must be 1..4096, got 0". */
lash_status lash_worker_config_check(const lash_worker_config *c, lash_err *e);

typedef void lash_handler_fn(lash_job *job, void *ud);
/* Asked to stop a job (cancel, timeout, lease lost, shutdown). The handler
 * should finish it soon with lash_job_done; NULL: it cannot be stopped early. */
typedef void lash_stop_fn(lash_job *job, void *ud);

lash_status lash_worker_new(struct ev_loop *loop, const lash_worker_config *c, lash_worker **out,
                            lash_err *e);
lash_status lash_worker_handle(lash_worker *w, const char *kind, lash_handler_fn *fn,
                               lash_stop_fn *stop, void *ud, lash_err *e);
lash_status lash_worker_exec(lash_worker *w, const char *kind, const char *program, lash_err *e);
/* Built-in kinds for demos and benchmarks: "noop" (succeeds at once), "sleep"
 * (payload {"ms":N}), "fail" (fails with payload {"error":"..."}). */
lash_status lash_worker_builtin(lash_worker *w, const char *name, lash_err *e);

void lash_worker_start(lash_worker *w);
/* Graceful stop: claim nothing more, let running jobs finish within the grace
 * period, stop the rest and release their leases, then leave the loop. A second
 * call stops the running jobs at once. */
void lash_worker_shutdown(lash_worker *w);
void lash_worker_reopen_log(lash_worker *w);
void lash_worker_free(lash_worker *w);
const lash_counters *lash_worker_counters(const lash_worker *w);
/* Jobs running now. */
int lash_worker_running(const lash_worker *w);
/* Rows claimed ahead (turn.h: prefetch), leased and waiting to start. */
int lash_worker_prefetched(const lash_worker *w);

/* The job an in-process handler is given. Strings stay valid until lash_job_done. */
const char *lash_job_id(const lash_job *j);
const char *lash_job_queue(const lash_job *j);
const char *lash_job_kind(const lash_job *j);
const char *lash_job_payload(const lash_job *j, size_t *len);
int lash_job_attempt(const lash_job *j);
int64_t lash_job_fence(const lash_job *j);
struct ev_loop *lash_job_loop(const lash_job *j);
void *lash_job_data(const lash_job *j); /* a handler's own pointer */
void lash_job_set_data(lash_job *j, void *p);
/* Reports how far the job has got: percent 0..100 and a short text (NULL, or
 * at most LASH_PROGRESS_TEXT_MAX bytes of UTF-8 without control characters;
 * proto/progress.h), copied. LASH_EINVAL naming what was wrong for anything
 * else. Call it as often as you like: the worker keeps the latest report and
 * writes at most one per job every LASH_TURN_PROGRESS_MS (worker/turn.h), at
 * best. After lash_job_done it does nothing. */
lash_status lash_job_progress(lash_job *j, int percent, const char *text, lash_err *e);
/* Ends the job: LASH_OUT_OK with a result text, LASH_OUT_FAIL with an error
 * (retried while attempts remain), LASH_OUT_ABORT (failed for good). */
void lash_job_done(lash_job *j, lash_outcome o, const char *text, size_t len);

#endif
