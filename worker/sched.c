/* sched.c: a worker's schedule poll (see sched.h). */
#include "worker/sched.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/cron.h"
#include "registry/sched.h"

/* Sleep at most this long between looks. Only a schedule added or resumed
 * needs a look before its next check comes, and lashctl pokes for those ('sched'
 * on the poke channel, and a subscriber that reconnects looks too): this is the
 * fallback for a poke that was lost. An idle fleet pays one schedpeek per 30 s
 * per worker and queue (bench idlefleet: 0.2 script calls/s per idle worker
 * without schedules, 0.4 with a 5 s bound). */
#define SCHED_IDLE_MS 30000
/* After an error, look again after this. */
#define SCHED_RETRY_MS 5000
/* A schedule whose spec or zone cannot be computed is looked at again after this. */
#define SCHED_BROKEN_MS 60000
#define ZONES_MAX 16

typedef struct {
    char name[LASH_TZ_NAME_MAX + 1];
    lash_tz tz;
    char why[200]; /* "" when loaded */
    int64_t read_ms;
} zone;

typedef struct {
    lash_wsched *s;
    int q;
} qctx;

struct lash_wsched {
    struct ev_loop *loop;
    lash_aconn *const *cmd;
    char *const *queues;
    int nqueues;
    const lash_logger *log;
    ev_timer timer;
    int64_t *at;     /* per queue: monotonic ms of the next look */
    bool *busy;      /* per queue: a look or a fire is on its way */
    qctx *ctx;       /* per queue */
    int64_t *warned; /* per queue: when an error was last logged */
    zone zones[ZONES_MAX];
    int nzones, zone_next;
    unsigned rng;
    bool stopped;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void arm(lash_wsched *s)
{
    if (s->stopped) return;
    int64_t now = mono_ms(), next = now + SCHED_IDLE_MS;
    for (int q = 0; q < s->nqueues; q++)
        if (!s->busy[q] && s->at[q] < next) next = s->at[q];
    ev_timer_stop(s->loop, &s->timer);
    ev_timer_set(&s->timer, next > now ? (double)(next - now) / 1000.0 : 0, 0);
    ev_timer_start(s->loop, &s->timer);
}

static void warn(lash_wsched *s, int q, const char *fmt, const char *msg)
{
    int64_t now = mono_ms();
    if (s->warned[q] && now - s->warned[q] < 60000) return; /* once a minute */
    s->warned[q] = now;
    lash_log(s->log, LASH_LOG_WARN, s->queues[q], NULL, -1, -1, fmt, msg);
}

/* The zone, read once; NULL and *why when it cannot be had. */
static const lash_tz *zone_get(lash_wsched *s, const char *name, const char **why)
{
    int64_t now = mono_ms();
    for (int i = 0; i < s->nzones; i++) {
        zone *z = &s->zones[i];
        if (strcmp(z->name, name) != 0) continue;
        if (!z->why[0]) return &z->tz;
        if (now - z->read_ms < SCHED_BROKEN_MS) {
            *why = z->why;
            return NULL;
        }
        lash_tz_free(&z->tz); /* a failure is retried once a minute */
        z->name[0] = 0;
    }
    int slot = -1;
    for (int i = 0; i < s->nzones && slot < 0; i++)
        if (!s->zones[i].name[0]) slot = i;
    if (slot < 0 && s->nzones < ZONES_MAX) slot = s->nzones++;
    if (slot < 0) {
        slot = s->zone_next;
        s->zone_next = (s->zone_next + 1) % ZONES_MAX;
    }
    zone *z = &s->zones[slot];
    lash_tz_free(&z->tz);
    snprintf(z->name, sizeof z->name, "%s", name);
    z->read_ms = now;
    z->why[0] = 0;
    lash_err e = {0};
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    if (lash_tz_name_check(name, &e)) {
        snprintf(z->why, sizeof z->why, "%.190s", e.msg);
    } else {
        FILE *f = fopen(path, "rb");
        static unsigned char buf[1 << 17];
        size_t n = f ? fread(buf, 1, sizeof buf, f) : 0;
        if (!f)
            snprintf(z->why, sizeof z->why, "time zone %.64s: cannot read %.100s", name, path);
        else if (lash_tz_parse(buf, n, &z->tz, &e))
            snprintf(z->why, sizeof z->why, "time zone %.64s: %.100s", name, e.msg);
        if (f) fclose(f);
    }
    if (z->why[0]) {
        *why = z->why;
        return NULL;
    }
    return &z->tz;
}

/* Fills f for one due schedule: the catch-up firing and the next check. */
static void plan(lash_wsched *s, const lash_sched_due_row *r, int64_t now, lash_sched_firing *f,
                 char *why, size_t cap)
{
    memset(f, 0, sizeof *f);
    f->name = r->name;
    f->expect_ms = r->next_ms;
    f->fire_ms = -1;
    f->next_ms = now + SCHED_BROKEN_MS;
    lash_cron c;
    lash_err e = {0};
    const char *bad = NULL;
    const lash_tz *tz = NULL;
    if (r->bad) {
        bad = "the schedule's fields are unreadable (not written by lash?)";
    } else if (lash_cron_parse(r->spec, &c, &e)) {
        bad = e.msg;
    } else if (r->tz[0] && !(tz = zone_get(s, r->tz, &bad))) {
        /* bad says why */
    } else {
        int64_t fire, skipped, next;
        if (lash_cron_latest(&c, tz, r->next_ms, now, &fire, &skipped, &e) ||
            lash_cron_next(&c, tz, now, &next, &e)) {
            bad = e.msg;
        } else {
            f->fire_ms = fire;
            f->skipped = skipped;
            f->next_ms = next;
        }
    }
    if (bad) {
        snprintf(why, cap, "%.190s", bad);
        f->why = why;
        if (f->next_ms <= f->expect_ms) f->next_ms = f->expect_ms + SCHED_BROKEN_MS;
    }
}

static void on_fire(lash_status st, char *const *statuses, size_t n, const lash_err *e, void *ud)
{
    qctx *c = ud;
    lash_wsched *s = c->s;
    int q = c->q;
    s->busy[q] = false;
    if (st) {
        warn(s, q, "schedule fire: %s", e->msg);
        s->at[q] = mono_ms() + SCHED_RETRY_MS;
    } else {
        bool odd = false;
        for (size_t i = 0; i < n; i++)
            if (strcmp(statuses[i], "created") && strcmp(statuses[i], "advanced") &&
                strcmp(statuses[i], "moved") && strcmp(statuses[i], "paused") &&
                strcmp(statuses[i], "gone")) {
                warn(s, q, "schedule fire: %s", statuses[i]);
                odd = true;
            }
        /* Look again now (the next check moved); after an odd answer (an id
         * taken by hand, a row refused) a little later, never in a loop. */
        s->at[q] = mono_ms() + (odd ? SCHED_RETRY_MS : 0);
    }
    arm(s);
}

static void on_peek(lash_status st, const lash_sched_due *d, const lash_err *e, void *ud)
{
    qctx *c = ud;
    lash_wsched *s = c->s;
    int q = c->q;
    int64_t now = mono_ms();
    if (st) {
        s->busy[q] = false;
        if (st != LASH_EIO) warn(s, q, "schedule poll: %s", e->msg);
        s->at[q] = now + SCHED_RETRY_MS;
        arm(s);
        return;
    }
    if (d->n == 0) {
        s->busy[q] = false;
        int64_t wait = d->earliest < 0 ? SCHED_IDLE_MS : d->earliest - d->now_ms;
        if (wait > SCHED_IDLE_MS) wait = SCHED_IDLE_MS;
        /* A few ms of jitter: the workers of a fleet that all wake for the
         * same firing do not all race for it. */
        s->rng = s->rng * 1103515245u + 12345u;
        s->at[q] = now + (wait > 0 ? wait : 0) + (int64_t)(s->rng >> 16) % 8;
        arm(s);
        return;
    }
    lash_sched_firing f[16];
    char why[16][200];
    for (size_t i = 0; i < d->n; i++)
        plan(s, &d->rows[i], d->now_ms, &f[i], why[i], sizeof why[i]);
    lash_status fst =
        *s->cmd ? lash_asched_fire(*s->cmd, s->queues[q], f, d->n, on_fire, c) : LASH_EIO;
    if (fst) {
        s->busy[q] = false;
        s->at[q] = now + SCHED_RETRY_MS;
        arm(s);
    }
}

static void look(lash_wsched *s, int q)
{
    if (s->busy[q] || s->stopped) return;
    if (!*s->cmd || lash_asched_peek(*s->cmd, s->queues[q], on_peek, &s->ctx[q])) {
        s->at[q] = mono_ms() + 1000; /* not connected yet: on_cmd_up wakes it */
        return;
    }
    s->busy[q] = true;
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    lash_wsched *s = t->data;
    int64_t now = mono_ms();
    for (int q = 0; q < s->nqueues; q++)
        if (!s->busy[q] && s->at[q] <= now) look(s, q);
    arm(s);
}

lash_wsched *lash_wsched_new(struct ev_loop *loop, lash_aconn *const *cmd, char *const *queues,
                             int nqueues, const lash_logger *log)
{
    lash_wsched *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->loop = loop;
    s->cmd = cmd;
    s->queues = queues;
    s->nqueues = nqueues;
    s->log = log;
    s->at = calloc((size_t)nqueues, sizeof *s->at);
    s->busy = calloc((size_t)nqueues, sizeof *s->busy);
    s->ctx = calloc((size_t)nqueues, sizeof *s->ctx);
    s->warned = calloc((size_t)nqueues, sizeof *s->warned);
    if (!s->at || !s->busy || !s->ctx || !s->warned) {
        lash_wsched_free(s);
        return NULL;
    }
    for (int q = 0; q < nqueues; q++)
        s->ctx[q] = (qctx){s, q};
    s->rng = (unsigned)mono_ms() ^ (unsigned)(uintptr_t)s;
    ev_timer_init(&s->timer, on_timer, 0, 0);
    s->timer.data = s;
    s->stopped = true;
    return s;
}

void lash_wsched_start(lash_wsched *s)
{
    s->stopped = false;
    int64_t now = mono_ms();
    for (int q = 0; q < s->nqueues; q++)
        s->at[q] = now + 200; /* once connected */
    arm(s);
}

void lash_wsched_wake(lash_wsched *s, int q)
{
    if (!s || s->stopped || q < 0 || q >= s->nqueues) return;
    s->at[q] = mono_ms();
    arm(s);
}

void lash_wsched_stop(lash_wsched *s)
{
    if (!s) return;
    s->stopped = true;
    ev_timer_stop(s->loop, &s->timer);
}

void lash_wsched_free(lash_wsched *s)
{
    if (!s) return;
    lash_wsched_stop(s);
    for (int i = 0; i < s->nzones; i++)
        lash_tz_free(&s->zones[i].tz);
    free(s->at);
    free(s->busy);
    free(s->ctx);
    free(s->warned);
    free(s);
}
