/* sched.h: recurring schedules in Redis (proto/lua/sched.lua, schedpeek.lua).
 *
 * What lashctl does to a queue's schedules (add, rm, pause, resume, list), and
 * what every worker does in its schedule poll: look which are due (peek), then
 * fire them (fire). Firing is a compare-and-set on the schedule's next_ms, so
 * any number of workers may fire at once: one wins, each firing is submitted
 * once (its id NAME@<fire ms> is idempotent too). The cron arithmetic is the
 * caller's (proto/cron.h); the scripts check what they can.
 *
 * Keys (all in the queue's slot; README "Inspect with redis-cli"):
 *   lash:{q}:schedules     zset  name -> ms of the next firing check (+inf paused)
 *   lash:{q}:sched:<name>  hash  the schedule (sched.lua lists its fields)
 *
 * Strings in argument structs are borrowed; results own theirs (free functions
 * below, safe on empty ones). Errors: LASH_EINVAL for a name, spec or option
 * the script refused (the message says which), LASH_EIO, LASH_EREDIS.
 */
#ifndef LASH_REGISTRY_SCHED_H
#define LASH_REGISTRY_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/cron.h"
#include "proto/record.h"
#include "registry/registry.h"

/* ---- lashctl ------------------------------------------------------------------ */

/* A schedule: its spec, zone ("" or NULL: UTC), and what each firing submits
 * (job->id is the schedule's name; delay_ms and run_at_ms must be 0). */
typedef struct {
    const char *spec;
    const char *tz;
    lash_submission job;
} lash_sched_def;

typedef enum { LASH_SCHED_CREATED, LASH_SCHED_EXISTS, LASH_SCHED_REPLACED } lash_sched_added;

lash_status lash_sched_add(lash_conn *c, const char *queue, const lash_sched_def *d,
                           lash_sched_added *out, lash_err *e);

typedef enum { LASH_SCHED_RM, LASH_SCHED_PAUSE, LASH_SCHED_RESUME } lash_sched_verb;

/* *found false: no such schedule (nothing changed). */
lash_status lash_sched_do(lash_conn *c, const char *queue, lash_sched_verb v, const char *name,
                          bool *found, lash_err *e);

/* One schedule as stored: its name and the hash's fields, in Redis' order. */
typedef struct {
    char *name;
    size_t n;      /* fields */
    char **fields; /* n names */
    char **values; /* n values */
} lash_sched_info;

/* The value of field f, or NULL. */
const char *lash_sched_field(const lash_sched_info *s, const char *f);

/* By next firing (paused last). Owned: lash_sched_list_free. */
lash_status lash_sched_list(lash_conn *c, const char *queue, lash_sched_info **out, size_t *n,
                            lash_err *e);
void lash_sched_list_free(lash_sched_info *s, size_t n);

/* ---- the workers ---------------------------------------------------------------- */

/* One due schedule as schedpeek saw it; spec NULL when its key is not a hash. */
typedef struct {
    char name[LASH_SCHED_NAME_MAX + 1];
    char spec[LASH_CRON_SPEC_MAX + 1];
    char tz[LASH_TZ_NAME_MAX + 1];
    bool bad;        /* the key is not a hash, or a field is out of bounds */
    int64_t next_ms; /* the firing check that is due */
} lash_sched_due_row;

typedef struct {
    int64_t now_ms;   /* the server's clock */
    int64_t earliest; /* earliest next check of an active schedule; -1: none */
    size_t n;
    lash_sched_due_row rows[16];
} lash_sched_due;

/* What a worker asks sched.lua to do for one due schedule (strings borrowed). */
typedef struct {
    const char *name;
    int64_t expect_ms; /* the next_ms it saw */
    int64_t fire_ms;   /* the firing to submit, or -1: none fell due, only advance */
    int64_t next_ms;   /* the next check */
    int64_t skipped;   /* firings the catch-up rule left out */
    const char *why;   /* NULL, or why the spec could not be computed */
} lash_sched_firing;

/* Blocking forms (tests, tools). statuses: n strings the caller frees with
 * lash_sched_statuses_free (sched.lua: created, exists, advanced, moved, ...). */
lash_status lash_sched_peek(lash_conn *c, const char *queue, lash_sched_due *out, lash_err *e);
lash_status lash_sched_fire(lash_conn *c, const char *queue, const lash_sched_firing *f, size_t n,
                            char ***statuses, lash_err *e);
void lash_sched_statuses_free(char **s, size_t n);

/* On a libev connection (async.h): the callbacks' pointers are theirs for the call only. */
struct lash_aconn;
typedef void lash_asched_peek_cb(lash_status st, const lash_sched_due *d, const lash_err *e,
                                 void *ud);
typedef void lash_asched_fire_cb(lash_status st, char *const *statuses, size_t n, const lash_err *e,
                                 void *ud);
lash_status lash_asched_peek(struct lash_aconn *c, const char *queue, lash_asched_peek_cb *cb,
                             void *ud);
lash_status lash_asched_fire(struct lash_aconn *c, const char *queue, const lash_sched_firing *f,
                             size_t n, lash_asched_fire_cb *cb, void *ud);

#endif
