/* sched.h (internal): a worker's schedule poll (issue 15, recurring schedules).
 *
 * Every worker fires every queue's due schedules; none is elected, so a dead
 * worker never stops a schedule. Per queue it asks schedpeek which are due,
 * computes each one's firing and next check (proto/cron.h: the latest firing
 * since the check that fell due, never a burst), and sends them to sched.lua's
 * fire, a compare-and-set: of several workers racing, one fires, the others
 * hear 'moved'. It then sleeps until the queue's earliest next check (at most
 * 30 s: with no schedule the poll costs Redis one schedpeek per 30 s per
 * worker; a 'sched' message on the poke channel, which sched.lua publishes on
 * add and resume, and a subscriber that (re)connects wake it at once).
 *
 * Zone files are read from $TZDIR or /usr/share/zoneinfo and kept (16 zones).
 * Lives on the worker's loop; uses the worker's command connection through
 * *cmd (NULL while down), so the worker frees it after closing that connection.
 */
#ifndef LASH_WORKER_SCHED_H
#define LASH_WORKER_SCHED_H

#include <ev.h>

#include "registry/async.h"
#include "worker/log.h"

typedef struct lash_wsched lash_wsched;

/* queues and log are borrowed for the poll's life. NULL when out of memory. */
lash_wsched *lash_wsched_new(struct ev_loop *loop, lash_aconn *const *cmd, char *const *queues,
                             int nqueues, const lash_logger *log);
void lash_wsched_start(lash_wsched *s);
/* Polls queue q at once (a schedule was added or resumed). */
void lash_wsched_wake(lash_wsched *s, int q);
void lash_wsched_stop(lash_wsched *s);
void lash_wsched_free(lash_wsched *s);

#endif
