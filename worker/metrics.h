/* metrics.h: lash-worker's own Prometheus endpoint (--metrics-listen ADDR).
 *
 * What one worker did since it started: claims, rows claimed, completes sent,
 * stale completes, renews, leases lost, reconnects; running jobs and slots now;
 * and a histogram of handler run time per kind. The queue-wide view (rows per
 * state, eligible rows, heartbeats) is lash-web's /metrics.
 *
 * Threads: the HTTP server (libmicrohttpd) answers on a thread of its own; the
 * worker's counters belong to the loop thread. So the loop copies them into a
 * snapshot, under a mutex, once per loop iteration (an ev_check watcher) and
 * as each job ends; a scrape reads only the snapshot, under the same mutex.
 *
 * libmicrohttpd is loaded with dlopen when metrics are asked for, not linked:
 * a worker without --metrics-listen needs only hiredis, libev and cJSON (the
 * container image carries no more), and one with it needs libmicrohttpd12.
 */
#ifndef LASH_WORKER_METRICS_H
#define LASH_WORKER_METRICS_H

#include <stdint.h>

#include "worker/worker.h"

struct ev_loop;
typedef struct lash_wmetrics lash_wmetrics;

/* Listens on addr ("127.0.0.1:9465"; port 0 picks one) and starts copying w's
 * counters on loop. slots: the worker's concurrency. */
lash_status lash_wmetrics_start(const char *addr, struct ev_loop *loop, lash_worker *w, int slots,
                                lash_wmetrics **out, lash_err *e);
/* The port bound. */
int lash_wmetrics_port(const lash_wmetrics *m);
/* lash_worker_config.on_job_end, with hooks_ud = the lash_wmetrics. */
void lash_wmetrics_job_end(void *m, const char *kind, lash_outcome o, int64_t run_ms);
/* The exposition text now (malloc'd), as a scrape would get it. */
char *lash_wmetrics_text(lash_wmetrics *m, size_t *len);
void lash_wmetrics_stop(lash_wmetrics *m);

#endif
