/* inspect.h: reading a queue from outside: what lashctl and lash-web need that
 * is not a script.
 *
 * Each operation here is one plain Redis command (two for the workers list)
 * sent through lash_conn_command with the queue it concerns, so where it goes
 * on a Cluster or behind Sentinel is decided in one place (registry/conn.c).
 * Everything that comes back is checked like any other reply: a wrong shape is
 * LASH_EPROTO with a sentence, never a crash; entries that are not what lash
 * writes (a worker whose score is not a number, a stream entry with odd fields)
 * are skipped, not trusted.
 *
 *   lash_server_ms      the Redis clock (TIME): the clock every lash score uses
 *   lash_read_workers   lash:{q}:workers: each worker and its last heartbeat
 *   lash_events_newest  the newest N entries of lash:{q}:events, oldest first
 *   lash_events_after   entries after a stream id, blocking up to block_ms
 *                       (XREAD BLOCK): `lashctl events --follow`
 *   lash_events_of      the newest entries that name one process
 *   lash_oldest_due     the id and score of the longest-waiting eligible row
 *   lash_due_count      rows in lash:{q}:due (ZCARD): every non-terminal row
 *   lash_done_count     rows in lash:{q}:done (ZCARD): retained terminal rows
 *   lash_finished_*     a subscription to lash:{q}:finished (`lashctl wait`)
 *   lash_discover_queues  every queue that has a stats hash (SCAN of every
 *                       primary)
 *
 * The same thread rules as registry.h: a lash_conn belongs to one thread.
 */
#ifndef LASH_REGISTRY_INSPECT_H
#define LASH_REGISTRY_INSPECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/registry.h"

/* The Redis server's clock in ms since the epoch. queue names where to ask
 * (NULL: any node; on a Cluster every node's clock is meant to agree). */
lash_status lash_server_ms(lash_conn *c, const char *queue, int64_t *now_ms, lash_err *e);

/* ---- workers ---------------------------------------------------------------- */

typedef struct {
    char *id;
    int64_t seen_ms; /* last heartbeat, server clock */
} lash_worker_seen;

/* The workers zset, newest heartbeat first (at most max entries; 0: all), and
 * the server clock read just before it, so now_ms - seen_ms is an age that no
 * client clock skews (now_ms NULL: no clock, one round trip fewer, for a caller
 * that has the clock already, e.g. from lash_get_stats). Free with
 * lash_workers_free, also after an error. */
lash_status lash_read_workers(lash_conn *c, const char *queue, size_t max, lash_worker_seen **out,
                              size_t *n, int64_t *now_ms, lash_err *e);
void lash_workers_free(lash_worker_seen *w, size_t n);

/* ---- the events stream ------------------------------------------------------ */

/* One entry of lash:{q}:events: its stream id ("<ms>-<seq>") and its
 * field/value pairs as stored (event, id, and sometimes error, owner, ...).
 * Values are binary-safe: lens[] holds each length. */
typedef struct {
    char sid[48];
    size_t nf; /* fields + values: an even count */
    char **f;
    size_t *lens;
} lash_event;

typedef struct {
    size_t n;
    lash_event *ev;
} lash_events;

void lash_events_free(lash_events *ev);
/* The value of field name in ev, or NULL. */
const char *lash_event_field(const lash_event *ev, const char *name);

/* The newest count (1..100000) entries, oldest first. */
lash_status lash_events_newest(lash_conn *c, const char *queue, int count, lash_events *out,
                               lash_err *e);
/* Up to count entries after stream id `after` ("0-0": from the start), waiting
 * up to block_ms (0: do not wait) for the first one. block_ms must stay under
 * the connection's reply timeout (5 s by default), or the wait reads as a lost
 * connection. out->n == 0 when nothing came. */
lash_status lash_events_after(lash_conn *c, const char *queue, const char *after, int count,
                              int block_ms, lash_events *out, lash_err *e);
/* The newest entries (at most max, oldest first) whose id field is `id`. The
 * stream is capped near 10,000 entries, so this reads at most that many, in
 * pages of 1,000 from the newest: a few round trips, never a queue-sized scan. */
lash_status lash_events_of(lash_conn *c, const char *queue, const char *id, int max,
                           lash_events *out, lash_err *e);

/* ---- the due set ------------------------------------------------------------ */

/* The first row of lash:{q}:due when it is eligible at now_ms (score <= now):
 * id[0] == 0 when none is. *score_ms gets its score (may be NULL). */
lash_status lash_oldest_due(lash_conn *c, const char *queue, int64_t now_ms, char *id, size_t cap,
                            int64_t *score_ms, lash_err *e);

/* ---- progress ---------------------------------------------------------------- */

/* A row's last progress report (progress.lua): percent -1 when it has none. */
typedef struct {
    int percent;
    char text[LASH_PROGRESS_TEXT_MAX + 1];
    int64_t ms; /* server clock */
} lash_progress_seen;

/* One HMGET of the row's progress fields, not the whole row (its payload may
 * be a megabyte): for screens that show many rows (lashctl top). A field
 * written by hand out of bounds reads as no report. */
lash_status lash_read_progress(lash_conn *c, const char *queue, const char *id,
                               lash_progress_seen *out, lash_err *e);

/* The sizes of the due set (non-terminal rows) and of the done set (terminal
 * rows still retained): one ZCARD each, O(1), cheap enough to poll (the
 * benchmarks wait on them). lash_get_stats has both too, with everything else. */
lash_status lash_due_count(lash_conn *c, const char *queue, int64_t *n, lash_err *e);
lash_status lash_done_count(lash_conn *c, const char *queue, int64_t *n, lash_err *e);

/* ---- waiting for processes to finish ---------------------------------------- */

/* Turns c into a subscriber of lash:{q}:finished (each message lists the ids,
 * space-separated, of the processes one script call made terminal): sharded
 * (SSUBSCRIBE on the queue's node: how the scripts publish) and classic (what
 * a hand-made PUBLISH uses). After this c serves nothing else: give it a
 * connection of its own. A slot migration ends the sharded half silently
 * (Redis sends "sunsubscribe"); re-read the rows now and then, as lashctl
 * wait does. */
lash_status lash_finished_subscribe(lash_conn *c, const char *queue, lash_err *e);
/* Waits up to timeout_ms (0: just look) for the next message. LASH_OK with
 * *ids set (malloc'd, the caller frees it): the message as published (split it
 * at spaces, and validate each id before use); *ids NULL: nothing within the
 * time. LASH_EIO when the subscription broke. Messages that are not the
 * finished channel's are skipped. */
lash_status lash_finished_next(lash_conn *c, int timeout_ms, char **ids, lash_err *e);

/* ---- queue discovery -------------------------------------------------------- */

typedef struct {
    size_t n;
    char (*names)[LASH_QUEUE_MAX + 1];
} lash_queue_list;

/* Every queue with a lash:{q}:stats hash (every queue that ever had a submit),
 * found with SCAN MATCH lash:{*}:stats COUNT 1000, sorted, at most max (0: no
 * bound). Names that are not valid queue names are skipped. SCAN walks the
 * whole keyspace (about keys/1000 round trips), so callers cache the answer
 * rather than discover on every read. On a Cluster, SCAN sees one node, so
 * every primary is scanned (lash_conn_each_primary) and the names merged. */
lash_status lash_discover_queues(lash_conn *c, size_t max, lash_queue_list *out, lash_err *e);
void lash_queue_list_free(lash_queue_list *l);

#endif
