/* worker.c: the libev shell around the turn machine (see worker.h, turn.h).
 *
 * Callbacks only feed events into the machine. Once per loop iteration, in an
 * ev_prepare watcher, the shell hands it the jobs that finished, lets it flush,
 * and carries out every action it queued; so all the Redis commands one
 * iteration decided leave together as one pipelined write.
 *
 * Nothing is fed to the machine from inside that action loop: what carrying
 * out an action brings about (a handler that finishes at once, a command that
 * could not be sent, the failures a closed connection hands its waiting
 * commands, the connection being down) is queued and told at the start of the
 * next round, the same way for all of them. The machine then never sees an
 * event while the shell is still walking the actions it queued.
 */
#include "worker/worker.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "proto/keys.h"
#include "proto/progress.h"
#include "proto/text.h"
#include "registry/async.h"
#include "worker/exec.h"
#include "worker/sched.h"

/* Retention by age: at most a century. */
#define LASH_KEEP_MS_MAX (100LL * 365 * 86400000)

/* "#" and 12 hex digits after the worker id in the owner (make_owner). */
#define OWNER_NONCE_LEN 13

typedef struct {
    char kind[LASH_KIND_MAX + 1];
    char *program; /* exec handler, or NULL */
    lash_handler_fn *fn;
    lash_stop_fn *stop;
    void *ud;
} handler;

struct lash_job {
    lash_worker *w;
    int slot;
    const handler *h;
    lash_exec *exec;
    void *data;
    bool stop_asked;
    bool finished;
    lash_outcome outcome;
    char *text;
    size_t len;
    lash_job *next_done; /* on the finished list */
    /* its latest progress report, to be told to the machine (the shell keeps
     * one; the machine decides when it goes), and bad lines seen on fd 3 */
    bool progress_new;
    int progress;
    char progress_text[LASH_PROGRESS_TEXT_MAX + 1];
    size_t progress_len;
    uint64_t bad_lines;
};

/* A command on its way: the callback's context (worker, cmd id), and, when it
 * failed while the shell was carrying out actions, that failure, waiting on
 * the deferred list to be told to the machine. */
typedef struct call {
    lash_worker *w;
    uint32_t cmd;
    lash_action_kind kind;
    lash_status st;
    char why[sizeof((lash_err){0}.msg)]; /* as long as a lash_err says */
    struct call *next;
} call;

struct lash_worker {
    struct ev_loop *loop;
    lash_worker_config c;
    lash_url url;
    lash_atopo *topo; /* what both connections know of the deployment */
    char owner[LASH_WORKER_ID_MAX + 1];
    char **queues;
    int nqueues;
    char (*poke_chan)[LASH_KEY_MAX];
    char (*cancel_chan)[LASH_KEY_MAX];
    lash_turn *turn;
    handler *handlers;
    int nhandlers;
    lash_job **jobs;    /* per slot */
    bool *start_failed; /* per slot: no memory for its job, to be told */
    int nstart_failed;  /* how many are */
    int nprogress;      /* jobs with a progress report to tell */
    lash_job *finished;
    call *deferred, *deferred_tail; /* failed commands, oldest first, to be told */
    bool down_deferred;             /* the connection is down, to be told */
    bool acting;                    /* carrying out the machine's actions */
    lash_aconn *cmd;
    bool cmd_dead;
    /* Subscribers (the poke and cancel channels, heard both classic and
     * sharded): sub[0] for every queue, or, in a Cluster (sub_pinned), sub[q]
     * for queue q on the primary owning its slot, where the scripts' SPUBLISH
     * stays. nsub of them (1 or nqueues), chosen whenever none is open. */
    lash_aconn **sub;
    bool *sub_dead;
    int nsub;
    bool sub_pinned;
    ev_prepare prep;
    ev_idle again; /* one more loop iteration at once: there is more to tell */
    ev_timer timer, sub_retry;
    int64_t last_health;
    bool exited;
    bool ready;         /* on_ready was called */
    lash_wsched *sched; /* the schedule poll (sched.h) */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void lash_worker_config_default(lash_worker_config *c)
{
    memset(c, 0, sizeof *c);
    c->redis_url = "redis://127.0.0.1:6379";
    lash_turn_config_default(&c->turn);
    c->keep.keep_n = LASH_DEFAULT_KEEP_N;
    c->keep.keep_ms = LASH_DEFAULT_KEEP_MS;
    c->result_max = LASH_RESULT_MAX;
    c->stderr_tail = 1024;
    c->log.out = stderr;
    c->log.level = LASH_LOG_INFO;
}

/* ---- jobs --------------------------------------------------------------------- */

const char *lash_job_id(const lash_job *j)
{
    return lash_turn_slot(j->w->turn, j->slot)->id;
}
const char *lash_job_queue(const lash_job *j)
{
    return j->w->queues[lash_turn_slot(j->w->turn, j->slot)->q];
}
const char *lash_job_kind(const lash_job *j)
{
    return lash_turn_slot(j->w->turn, j->slot)->kind;
}
const char *lash_job_payload(const lash_job *j, size_t *len)
{
    const lash_slot *s = lash_turn_slot(j->w->turn, j->slot);
    if (len) *len = s->payload_len;
    return s->payload;
}
int lash_job_attempt(const lash_job *j)
{
    return lash_turn_slot(j->w->turn, j->slot)->attempt;
}
int64_t lash_job_fence(const lash_job *j)
{
    return lash_turn_slot(j->w->turn, j->slot)->fence;
}
struct ev_loop *lash_job_loop(const lash_job *j)
{
    return j->w->loop;
}
void *lash_job_data(const lash_job *j)
{
    return j->data;
}
void lash_job_set_data(lash_job *j, void *p)
{
    j->data = p;
}

void lash_job_done(lash_job *j, lash_outcome o, const char *text, size_t len)
{
    if (j->finished) return; /* exactly once; a second call is a handler bug, ignored */
    j->finished = true;
    j->outcome = o;
    if (text && len && (j->text = malloc(len + 1))) {
        memcpy(j->text, text, len);
        j->text[len] = 0;
        j->len = len;
    }
    /* Reported from the prepare watcher, never from inside the caller: the
     * handler may be running inside an action the shell is carrying out. */
    j->next_done = j->w->finished;
    j->w->finished = j;
}

lash_status lash_job_progress(lash_job *j, int percent, const char *text, lash_err *e)
{
    size_t len = text ? strlen(text) : 0;
    lash_status st = lash_progress_check(percent, text, len, e);
    if (st || j->finished) return st;
    /* Told to the machine from the prepare watcher (report_progress), like an
     * outcome: the handler may be running inside an action. The latest wins. */
    j->progress = percent;
    if (len) memcpy(j->progress_text, text, len);
    j->progress_text[len] = 0;
    j->progress_len = len;
    if (!j->progress_new) {
        j->progress_new = true;
        j->w->nprogress++;
    }
    return LASH_OK;
}

/* A line the exec handler wrote on fd 3. A bad one is ignored; the first of a
 * job is logged with what was wrong, the rest counted (report_finished). */
static void exec_progress(void *ud, const char *line, size_t len)
{
    lash_job *j = ud;
    lash_err e;
    int percent = 0;
    const char *text = NULL;
    size_t tlen = 0;
    lash_status st = line ? lash_progress_parse(line, len, &percent, &text, &tlen, &e)
                          : lash_fail(&e, LASH_EINVAL, "progress line is %zu bytes, over %d", len,
                                      LASH_PROGRESS_LINE_MAX);
    if (!st) {
        char buf[LASH_PROGRESS_TEXT_MAX + 1];
        memcpy(buf, text, tlen);
        buf[tlen] = 0;
        lash_job_progress(j, percent, buf, NULL);
        return;
    }
    if (j->bad_lines++ == 0) {
        const lash_slot *s = lash_turn_slot(j->w->turn, j->slot);
        char tail[80];
        lash_text_tail(line ? line : "", line ? (len > 64 ? 64 : len) : 0, tail, sizeof tail);
        lash_log(&j->w->c.log, LASH_LOG_WARN, j->w->queues[s->q], s->id, s->attempt, s->fence,
                 "bad progress line ignored (later ones are counted): %s%s%s%s", e.msg,
                 tail[0] ? ": '" : "", tail, tail[0] ? "'" : "");
    }
}

/* Hands the machine the jobs' latest progress reports. */
static void report_progress(lash_worker *w, int64_t now)
{
    for (int i = 0; w->nprogress && i < lash_turn_slots(w->turn); i++) {
        lash_job *j = w->jobs[i];
        if (!j || !j->progress_new) continue;
        j->progress_new = false;
        w->nprogress--;
        lash_turn_progress(w->turn, i, j->progress, j->progress_text, j->progress_len, now);
    }
}

static void exec_done(void *ud, lash_outcome o, const char *text, size_t len)
{
    lash_job *j = ud;
    j->exec = NULL;
    lash_job_done(j, o, text, len);
}

/* ---- handlers -------------------------------------------------------------------- */

static handler *find_handler(lash_worker *w, const char *kind)
{
    for (int i = 0; i < w->nhandlers; i++)
        if (strcmp(w->handlers[i].kind, kind) == 0) return &w->handlers[i];
    return NULL;
}

static lash_status add_handler(lash_worker *w, const char *kind, handler h, lash_err *e)
{
    lash_status st = lash_kind_check(kind, strlen(kind), e);
    if (st) return st;
    if (find_handler(w, kind))
        return lash_fail(e, LASH_EINVAL, "kind %s has a handler already", kind);
    handler *p = realloc(w->handlers, (size_t)(w->nhandlers + 1) * sizeof *p);
    if (!p) return lash_fail(e, LASH_ENOMEM, "out of memory");
    w->handlers = p;
    snprintf(h.kind, sizeof h.kind, "%s", kind);
    w->handlers[w->nhandlers++] = h;
    return LASH_OK;
}

lash_status lash_worker_handle(lash_worker *w, const char *kind, lash_handler_fn *fn,
                               lash_stop_fn *stop, void *ud, lash_err *e)
{
    if (!fn) return lash_fail(e, LASH_EINVAL, "handler for %s is NULL", kind);
    return add_handler(w, kind, (handler){.fn = fn, .stop = stop, .ud = ud}, e);
}

lash_status lash_worker_exec(lash_worker *w, const char *kind, const char *program, lash_err *e)
{
    lash_status st = lash_exec_program_check(program, e);
    if (st) return st;
    char *p = strdup(program);
    if (!p) return lash_fail(e, LASH_ENOMEM, "out of memory");
    if ((st = add_handler(w, kind, (handler){.program = p}, e))) free(p);
    return st;
}

static void start_job(lash_worker *w, int slot)
{
    const lash_slot *s = lash_turn_slot(w->turn, slot);
    lash_job *j = calloc(1, sizeof *j);
    if (!j) { /* told with the finished jobs, at the start of the next round */
        w->start_failed[slot] = true;
        w->nstart_failed++;
        return;
    }
    j->w = w;
    j->slot = slot;
    j->h = find_handler(w, s->kind);
    w->jobs[slot] = j;
    lash_log(&w->c.log, LASH_LOG_DEBUG, w->queues[s->q], s->id, s->attempt, s->fence, "start %s",
             s->kind);
    if (!j->h) {
        char why[256];
        int n = snprintf(why, sizeof why, "unknown kind '%s': worker %s has no handler for it",
                         s->kind, w->owner);
        lash_job_done(j, LASH_OUT_ABORT, why, (size_t)n);
        return;
    }
    if (j->h->fn) {
        j->h->fn(j, j->h->ud);
        return;
    }
    lash_exec_spec spec = {
        .program = j->h->program,
        .queue = w->queues[s->q],
        .id = s->id,
        .kind = s->kind,
        .attempt = s->attempt,
        .fence = s->fence,
        .payload = s->payload,
        .payload_len = s->payload_len,
        .result_max = w->c.result_max,
        .tail_max = w->c.stderr_tail,
        .progress = exec_progress,
    };
    lash_err e;
    if (lash_exec_start(w->loop, &spec, exec_done, j, &j->exec, &e))
        lash_job_done(j, LASH_OUT_FAIL, e.msg, strlen(e.msg));
}

static void kill_job(lash_worker *w, int slot, int sig)
{
    lash_job *j = w->jobs[slot];
    if (!j || j->finished) return;
    if (j->exec) {
        lash_exec_kill(j->exec, sig);
    } else if (j->h && j->h->stop && !j->stop_asked) {
        j->stop_asked = true;
        j->h->stop(j, j->h->ud);
    }
}

/* Reports finished jobs to the machine (oldest first is not needed: each is
 * independent), and the starts that found no memory for a job. */
static void report_finished(lash_worker *w, int64_t now)
{
    for (int i = 0; w->nstart_failed && i < lash_turn_slots(w->turn); i++) {
        if (!w->start_failed[i]) continue;
        w->start_failed[i] = false;
        w->nstart_failed--;
        lash_turn_exited(w->turn, i, LASH_OUT_FAIL, "worker out of memory", 20, now);
    }
    while (w->finished) {
        lash_job *j = w->finished;
        w->finished = j->next_done;
        const lash_slot *s = lash_turn_slot(w->turn, j->slot);
        lash_log(&w->c.log, j->outcome == LASH_OUT_OK ? LASH_LOG_DEBUG : LASH_LOG_INFO,
                 w->queues[s->q], s->id, s->attempt, s->fence, "%s%s%.*s",
                 j->outcome == LASH_OUT_OK ? "succeeded" : "failed",
                 j->outcome == LASH_OUT_OK ? "" : ": ",
                 j->outcome == LASH_OUT_OK ? 0 : (int)(j->len > 300 ? 300 : j->len),
                 j->text ? j->text : "");
        if (j->bad_lines > 1)
            lash_log(&w->c.log, LASH_LOG_WARN, w->queues[s->q], s->id, s->attempt, s->fence,
                     "%llu bad progress line(s) ignored in all", (unsigned long long)j->bad_lines);
        if (j->progress_new) w->nprogress--; /* the outcome supersedes it */
        w->jobs[j->slot] = NULL;
        if (w->c.on_job_end) w->c.on_job_end(w->c.hooks_ud, s->kind, j->outcome, now - s->started);
        lash_turn_exited(w->turn, j->slot, j->outcome, j->text, j->len, now);
        free(j->text);
        free(j);
    }
}

/* ---- Redis ------------------------------------------------------------------------ */

/* A sign of life for --check: a poll answered (a peek or a claim; at least
 * every LASH_TURN_BEAT_MS, when the heartbeat claim goes). */
static void health(lash_worker *w, int64_t now)
{
    if (!w->c.health_file || now - w->last_health < 1000) return;
    w->last_health = now;
    int fd = open(w->c.health_file, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
        futimens(fd, NULL);
        close(fd);
    }
}

/* Queues c's failure (st, why) to be told at the start of the next round. */
static void defer(lash_worker *w, call *c, lash_status st, const char *why)
{
    c->st = st;
    snprintf(c->why, sizeof c->why, "%s", why);
    c->next = NULL;
    if (w->deferred_tail)
        w->deferred_tail->next = c;
    else
        w->deferred = c;
    w->deferred_tail = c;
}

/* Tells the machine the deferred failures, oldest first. */
static void report_deferred(lash_worker *w, int64_t now)
{
    if (w->down_deferred) {
        w->down_deferred = false;
        lash_turn_disconnected(w->turn, now);
    }
    while (w->deferred) {
        call *c = w->deferred;
        w->deferred = c->next;
        if (!w->deferred) w->deferred_tail = NULL;
        if (c->kind == LASH_ACT_CLAIM) {
            lash_claim_batch b = {0};
            lash_turn_claimed(w->turn, c->cmd, c->st, &b, c->why, now);
        } else if (c->kind == LASH_ACT_RECOVER) {
            lash_turn_recovered(w->turn, c->cmd, c->st, NULL, c->why, now);
        } else if (c->kind == LASH_ACT_PEEK) {
            lash_turn_peeked(w->turn, c->cmd, c->st, -1, c->why, now);
        } else {
            lash_turn_replied(w->turn, c->cmd, c->st, NULL, 0, c->why, now);
        }
        free(c);
    }
}

/* Replies go to the machine, failures with their text: it logs them (once per
 * run of the same failure). A reply is only read in the loop's I/O phase, so
 * inside the action loop a callback can only be a failure (a connection the
 * shell closed fails what was waiting on it): that one is deferred. */
static void on_claim(lash_status st, lash_claim_batch *b, const lash_err *e, void *ud)
{
    call *c = ud;
    lash_worker *w = c->w;
    if (st && w->acting) {
        defer(w, c, st, e->msg);
        return;
    }
    if (!st) health(w, now_ms());
    if (!st && !w->ready) { /* connected, and the first drive came back */
        w->ready = true;
        if (w->c.on_ready) w->c.on_ready(w->c.hooks_ud);
    }
    if (w->turn) lash_turn_claimed(w->turn, c->cmd, st, b, st ? e->msg : NULL, now_ms());
    free(c);
}

static void on_status(lash_status st, const int *status, size_t n, const lash_err *e, void *ud)
{
    call *c = ud;
    lash_worker *w = c->w;
    if (st && w->acting) {
        defer(w, c, st, e->msg);
        return;
    }
    if (w->turn) lash_turn_replied(w->turn, c->cmd, st, status, n, st ? e->msg : NULL, now_ms());
    free(c);
}

static void on_recover(lash_status st, const lash_recovered *r, const lash_err *e, void *ud)
{
    call *c = ud;
    lash_worker *w = c->w;
    if (st && w->acting) {
        defer(w, c, st, e->msg);
        return;
    }
    if (w->turn) lash_turn_recovered(w->turn, c->cmd, st, r, st ? e->msg : NULL, now_ms());
    free(c);
}

static void on_peek(lash_status st, int64_t wait_ms, const lash_err *e, void *ud)
{
    call *c = ud;
    lash_worker *w = c->w;
    if (st && w->acting) {
        defer(w, c, st, e->msg);
        return;
    }
    if (!st) health(w, now_ms());
    if (w->turn) lash_turn_peeked(w->turn, c->cmd, st, wait_ms, st ? e->msg : NULL, now_ms());
    free(c);
}

static int queue_of(lash_worker *w, const char *chan, char (*names)[LASH_KEY_MAX])
{
    for (int q = 0; q < w->nqueues; q++)
        if (strcmp(chan, names[q]) == 0) return q;
    return -1;
}

static void on_message(lash_aconn *c, const char *chan, const char *msg, size_t len, void *ud)
{
    (void)c;
    lash_worker *w = ud;
    int q;
    if ((q = queue_of(w, chan, w->poke_chan)) >= 0) {
        lash_turn_poke(w->turn, q, now_ms()); /* any message wakes: its text is not read */
        if (len == 5 && memcmp(msg, "sched", 5) == 0) lash_wsched_wake(w->sched, q);
    } else if ((q = queue_of(w, chan, w->cancel_chan)) >= 0) {
        lash_err e;
        if (lash_id_check(msg, len, &e) || strlen(msg) != len) {
            char tail[80];
            lash_text_tail(msg, len > 64 ? 64 : len, tail, sizeof tail);
            lash_log(&w->c.log, LASH_LOG_WARN, w->queues[q], NULL, -1, -1,
                     "ignored garbage on the cancel channel: %s (%s)", tail, e.msg);
            return;
        }
        lash_turn_cancel(w->turn, q, msg, now_ms());
    }
}

static void subs_open(lash_worker *w);

static void on_cmd_up(lash_aconn *c, void *ud)
{
    (void)c;
    lash_worker *w = ud;
    lash_turn_connected(w->turn, now_ms());
    for (int q = 0; q < w->nqueues; q++) /* schedules due while it was down */
        lash_wsched_wake(w->sched, q);
    /* Now that the deployment is known (a Cluster's map read), the subscribers. */
    subs_open(w);
}

static void on_cmd_down(lash_aconn *c, const lash_err *e, void *ud)
{
    (void)c;
    lash_worker *w = ud;
    lash_log(&w->c.log, LASH_LOG_WARN, NULL, NULL, -1, -1, "%s", e->msg);
    w->cmd_dead = true; /* freed in the prepare watcher, not inside hiredis' callback */
    if (w->acting)
        w->down_deferred = true;
    else
        lash_turn_disconnected(w->turn, now_ms());
}

static int sub_index(const lash_worker *w, const lash_aconn *c)
{
    for (int i = 0; i < w->nsub; i++)
        if (w->sub[i] == c) return i;
    return -1;
}

/* Re-arms the subscriber retry to fire in ms (sooner if it is due sooner). A
 * one-shot ev_timer that has fired keeps only its leftover (about 0 s):
 * restarted as is, it fires at once, and a subscriber that keeps failing would
 * reconnect in a hot loop. */
static void sub_retry_in(lash_worker *w, int ms)
{
    double at = (double)ms / 1000.0;
    if (ev_is_active(&w->sub_retry) && ev_timer_remaining(w->loop, &w->sub_retry) <= at) return;
    ev_timer_stop(w->loop, &w->sub_retry);
    ev_timer_set(&w->sub_retry, at, 0);
    ev_timer_start(w->loop, &w->sub_retry);
}

static void on_sub_up(lash_aconn *c, void *ud)
{
    lash_worker *w = ud;
    int i = sub_index(w, c);
    if (i < 0) return;
    if (!w->sub_pinned && lash_atopo_cluster(w->topo)) {
        /* Opened before the deployment was known to be a Cluster (HELLO
         * refused): once more, pinned, as soon as this one is reaped. */
        w->sub_dead[i] = true;
        sub_retry_in(w, 0);
        return;
    }
    int q0 = w->sub_pinned ? i : 0, qn = w->sub_pinned ? 1 : w->nqueues;
    const char **chans = malloc(2 * (size_t)qn * sizeof *chans);
    lash_err e;
    if (!chans) return;
    for (int k = 0; k < qn; k++) {
        chans[2 * k] = w->poke_chan[q0 + k];
        chans[2 * k + 1] = w->cancel_chan[q0 + k];
    }
    if (lash_asubscribe(c, chans, 2 * (size_t)qn, &e))
        lash_log(&w->c.log, LASH_LOG_WARN, NULL, NULL, -1, -1, "subscribe: %s", e.msg);
    free(chans);
    /* Pokes sent while we were not listening are lost: drive once now. */
    for (int q = q0; q < q0 + qn; q++) {
        lash_turn_poke(w->turn, q, now_ms());
        lash_wsched_wake(w->sched, q);
    }
}

/* A subscriber whose slot moved (a migration, a failover) is opened again
 * after 100 ms, on the new owner; any other after 1 s, so that one Redis keeps
 * refusing is not hammered. */
static void on_sub_down(lash_aconn *c, const lash_err *e, void *ud)
{
    lash_worker *w = ud;
    int i = sub_index(w, c);
    int ms = lash_aconn_moved(c) ? 100 : 1000;
    lash_log(&w->c.log, LASH_LOG_WARN, w->sub_pinned && i >= 0 ? w->queues[i] : NULL, NULL, -1, -1,
             "subscriber: %s; the poll keeps work moving, retrying in %d ms", e->msg, ms);
    if (i >= 0) w->sub_dead[i] = true; /* closed in the prepare watcher */
    sub_retry_in(w, ms);
}

static void on_sub_retry(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    lash_worker *w = t->data;
    if (!w->exited) subs_open(w);
}

/* Opens the subscribers that are not open. With none open, first chooses how
 * many: one per queue in a Cluster, else one. */
static void subs_open(lash_worker *w)
{
    static const lash_aconn_cbs cbs = {on_sub_up, on_sub_down, on_message};
    bool none = true;
    for (int i = 0; i < w->nsub; i++)
        none = none && !w->sub[i];
    if (none) {
        w->sub_pinned = lash_atopo_cluster(w->topo);
        w->nsub = w->sub_pinned ? w->nqueues : 1;
    }
    for (int i = 0; i < w->nsub; i++) {
        if (w->sub[i]) continue;
        lash_err e;
        lash_status st =
            w->sub_pinned ? lash_aconn_open_pinned(w->topo, w->queues[i], &cbs, w, &w->sub[i], &e)
                          : lash_aconn_open(w->topo, &cbs, w, &w->sub[i], &e);
        if (st) {
            lash_log(&w->c.log, LASH_LOG_WARN, NULL, NULL, -1, -1, "subscriber: %s", e.msg);
            w->sub[i] = NULL;
            sub_retry_in(w, 1000);
        }
    }
}

static void sub_close(lash_worker *w, int i)
{
    lash_aconn_close(w->sub[i]);
    w->sub[i] = NULL;
    w->sub_dead[i] = false;
}

static void subs_close(lash_worker *w)
{
    for (int i = 0; w->sub && i < w->nsub; i++)
        sub_close(w, i);
}

static void reap_dead(lash_worker *w)
{
    if (w->cmd_dead) {
        lash_aconn_close(w->cmd);
        w->cmd = NULL;
        w->cmd_dead = false;
    }
    for (int i = 0; i < w->nsub; i++)
        if (w->sub_dead[i]) sub_close(w, i);
}

/* ---- actions ----------------------------------------------------------------------- */

static call *new_call(lash_worker *w, const lash_action *a)
{
    call *c = calloc(1, sizeof *c);
    if (c) {
        c->w = w;
        c->cmd = a->cmd;
        c->kind = a->kind;
    }
    return c;
}

static void send_cmd(lash_worker *w, const lash_action *a)
{
    call *c = new_call(w, a);
    lash_status st = LASH_ENOMEM;
    const char *q = w->queues[a->q];
    if (c && w->cmd) {
        switch (a->kind) {
        case LASH_ACT_CLAIM:
            st = lash_aclaim(w->cmd, q, w->owner, a->n, w->c.turn.lease_ms, w->c.keep, a->cmd,
                             a->upkeep, on_claim, c);
            break;
        case LASH_ACT_PEEK:
            st = lash_apeek(w->cmd, q, on_peek, c);
            break;
        case LASH_ACT_RECOVER:
            st = lash_arecover(w->cmd, q, w->owner, a->seq, on_recover, c);
            break;
        case LASH_ACT_RENEW:
            st = lash_arenew(w->cmd, q, w->c.turn.lease_ms, a->leases, (size_t)a->n, on_status, c);
            break;
        case LASH_ACT_COMPLETE:
            st = lash_acomplete(w->cmd, q, a->completions, (size_t)a->n, on_status, c);
            break;
        case LASH_ACT_PROGRESS:
            st = lash_aprogress(w->cmd, q, a->progress, (size_t)a->n, on_status, c);
            break;
        default:
            st = lash_arelease(w->cmd, q, a->leases, a->ran, (size_t)a->n, on_status, c);
            break;
        }
    } else if (c) {
        st = LASH_EIO;
    }
    if (st == LASH_OK) return;
    /* Not sent: the machine hears it as if the reply said so, next round. */
    if (c) {
        defer(w, c, st, st == LASH_EIO ? "not connected" : "out of memory");
    } else {
        /* Nothing to remember it by: the machine counts the command as
         * unanswered, and its reply timeout reconnects. */
        lash_log(&w->c.log, LASH_LOG_ERROR, NULL, NULL, -1, -1,
                 "out of memory: a command was not sent");
    }
}

static void cmd_open(lash_worker *w)
{
    static const lash_aconn_cbs cbs = {on_cmd_up, on_cmd_down, NULL};
    lash_err e;
    if (w->cmd) {
        lash_aconn_close(w->cmd);
        w->cmd = NULL;
    }
    if (lash_aconn_open(w->topo, &cbs, w, &w->cmd, &e)) {
        lash_log(&w->c.log, LASH_LOG_WARN, NULL, NULL, -1, -1, "%s", e.msg);
        w->cmd = NULL;
        w->down_deferred = true; /* the answer to CONNECT, next round */
        return;
    }
}

static void finish(lash_worker *w, int code)
{
    w->exited = true;
    lash_log(&w->c.log, LASH_LOG_INFO, NULL, NULL, -1, -1, "stopped (exit %d)", code);
    ev_prepare_stop(w->loop, &w->prep);
    ev_idle_stop(w->loop, &w->again);
    ev_timer_stop(w->loop, &w->timer);
    ev_timer_stop(w->loop, &w->sub_retry);
    lash_wsched_stop(w->sched);
    lash_aconn_close(w->cmd);
    w->cmd = NULL;
    subs_close(w);
    ev_break(w->loop, EVBREAK_ONE);
}

static void act(lash_worker *w, const lash_action *a, int64_t now)
{
    const lash_slot *s = a->slot >= 0 ? lash_turn_slot(w->turn, a->slot) : NULL;
    switch (a->kind) {
    case LASH_ACT_CONNECT:
        cmd_open(w);
        break;
    case LASH_ACT_DISCONNECT:
        if (w->cmd) {
            lash_aconn_close(w->cmd); /* waiting callbacks get LASH_EIO: deferred */
            w->cmd = NULL;
        }
        w->down_deferred = true; /* the answer, next round */
        break;
    case LASH_ACT_START:
        start_job(w, a->slot);
        break;
    case LASH_ACT_KILL:
        kill_job(w, a->slot, a->sig);
        break;
    case LASH_ACT_CLAIM:
    case LASH_ACT_RENEW:
    case LASH_ACT_COMPLETE:
    case LASH_ACT_RELEASE:
    case LASH_ACT_RECOVER:
    case LASH_ACT_PEEK:
    case LASH_ACT_PROGRESS:
        send_cmd(w, a);
        break;
    case LASH_ACT_TIMER:
        ev_timer_stop(w->loop, &w->timer);
        if (a->at >= 0) {
            double after = (double)(a->at - now) / 1000.0;
            ev_timer_set(&w->timer, after > 0 ? after : 0, 0);
            ev_timer_start(w->loop, &w->timer);
        }
        break;
    case LASH_ACT_LOG:
        lash_log(&w->c.log, a->level, s && s->used ? w->queues[s->q] : NULL,
                 s && s->used ? s->id : NULL, s && s->used ? s->attempt : -1,
                 s && s->used ? s->fence : -1, "%s", a->msg);
        break;
    case LASH_ACT_EXIT:
        finish(w, a->code);
        break;
    }
}

/* Whether something waits to be told to the machine. */
static bool to_tell(const lash_worker *w)
{
    return w->finished || w->deferred || w->down_deferred || w->nstart_failed || w->nprogress;
}

/* Carries out every action the machine has queued. */
static void act_all(lash_worker *w, int64_t now)
{
    lash_action a;
    w->acting = true;
    while (!w->exited && lash_turn_next(w->turn, &a))
        act(w, &a, now);
    w->acting = false;
}

/* Once per loop iteration: what happened in, every action out, one flush. */
static void on_prepare(struct ev_loop *loop, ev_prepare *p, int revents)
{
    (void)revents;
    lash_worker *w = p->data;
    reap_dead(w);
    /* Rounds: what ends while acting (an in-process handler, a start that
     * failed) is told in the next, and what that starts is acted on, so that
     * a run of short processes (a prefetched row starts as the last ends)
     * finishes within one iteration and its outcomes leave in one flush.
     * Bounded: what is left asks for another iteration straight away
     * (ev_idle below), not for I/O. */
    for (int round = 0; round < 64 && !w->exited; round++) {
        int64_t now = now_ms();
        report_progress(w, now);
        report_finished(w, now);
        report_deferred(w, now);
        act_all(w, now);
        if (!to_tell(w)) break;
    }
    if (!w->exited) {
        int64_t now = now_ms();
        lash_turn_flush(w->turn, now);
        act_all(w, now);
    }
    reap_dead(w);
    if (!w->exited && to_tell(w)) ev_idle_start(loop, &w->again);
}

static void on_again(struct ev_loop *loop, ev_idle *i, int revents)
{
    (void)revents;
    ev_idle_stop(loop, i); /* it only kept the loop from blocking: on_prepare does the work */
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    lash_worker *w = t->data;
    lash_turn_tick(w->turn, now_ms());
}

/* ---- life cycle ------------------------------------------------------------------------ */

static const char *const default_queues[] = {"default"};

/* The queues c names: its own, or {"default"}. */
static const char *const *queues_of(const lash_worker_config *c, int *n)
{
    *n = c->nqueues > 0 ? c->nqueues : 1;
    return c->nqueues > 0 ? c->queues : default_queues;
}

/* The turn machine's config for c: c->turn with the number of queues set. */
static lash_turn_config turn_config(const lash_worker_config *c)
{
    lash_turn_config t = c->turn;
    queues_of(c, &t.nqueues);
    return t;
}

lash_status lash_worker_config_check(const lash_worker_config *c, lash_err *e)
{
    int n;
    const char *const *qs = queues_of(c, &n);
    lash_status st;
    if (c->nqueues < 0 || (c->nqueues > 0 && !c->queues))
        return lash_fail(e, LASH_EINVAL, "nqueues is %d with queues %s", c->nqueues,
                         c->queues ? "given" : "NULL");
    for (int q = 0; q < n; q++) {
        if (!qs[q]) return lash_fail(e, LASH_EINVAL, "queue #%d is NULL", q);
        if ((st = lash_queue_check(qs[q], e))) return st;
        for (int k = 0; k < q; k++)
            if (strcmp(qs[k], qs[q]) == 0)
                return lash_fail(e, LASH_EINVAL, "queue %s given twice", qs[q]);
    }
    if (c->worker_id) {
        /* The id becomes "<id>#<boot nonce>" in lease tokens. */
        if ((st = lash_worker_id_check(c->worker_id, e))) return st;
        if (strlen(c->worker_id) > LASH_WORKER_ID_MAX - OWNER_NONCE_LEN)
            return lash_fail(e, LASH_EINVAL, "worker id is over %d bytes",
                             LASH_WORKER_ID_MAX - OWNER_NONCE_LEN);
    }
    if (c->result_max < 1 || c->result_max > LASH_RESULT_MAX)
        return lash_fail(e, LASH_EINVAL, "result_max must be 1..%d, got %zu", LASH_RESULT_MAX,
                         c->result_max);
    if (c->stderr_tail > LASH_ERROR_MAX / 2)
        return lash_fail(e, LASH_EINVAL, "stderr_tail must be 0..%d, got %zu", LASH_ERROR_MAX / 2,
                         c->stderr_tail);
    if (c->keep.keep_n < -1 || c->keep.keep_n > 1000000000)
        return lash_fail(e, LASH_EINVAL, "keep must be -1..1000000000, got %lld",
                         (long long)c->keep.keep_n);
    if (c->keep.keep_ms < 0 || c->keep.keep_ms > LASH_KEEP_MS_MAX)
        return lash_fail(e, LASH_EINVAL, "keep_ms must be 0..%lld, got %lld",
                         (long long)LASH_KEEP_MS_MAX, (long long)c->keep.keep_ms);
    lash_turn_config t = turn_config(c);
    return lash_turn_config_check(&t, e);
}

static lash_status copy_queues(lash_worker *w, const lash_worker_config *c, lash_err *e)
{
    int n;
    const char *const *qs = queues_of(c, &n);
    w->queues = calloc((size_t)n, sizeof *w->queues);
    w->poke_chan = calloc((size_t)n, sizeof *w->poke_chan);
    w->cancel_chan = calloc((size_t)n, sizeof *w->cancel_chan);
    w->sub = calloc((size_t)n, sizeof *w->sub);
    w->sub_dead = calloc((size_t)n, sizeof *w->sub_dead);
    if (!w->queues || !w->poke_chan || !w->cancel_chan || !w->sub || !w->sub_dead)
        return lash_fail(e, LASH_ENOMEM, "out of memory");
    w->nqueues = n;
    for (int q = 0; q < n; q++) {
        if (!(w->queues[q] = strdup(qs[q]))) return lash_fail(e, LASH_ENOMEM, "out of memory");
        lash_key(w->poke_chan[q], qs[q], LASH_CHAN_POKE);
        lash_key(w->cancel_chan[q], qs[q], LASH_CHAN_CANCEL);
    }
    return LASH_OK;
}

/* The owner in lease tokens: the worker id (default <host>:<pid>), then '#'
 * and a nonce drawn at start-up, so that a restarted worker of the same id, or
 * one handed the same fence again after Redis lost writes, never holds the
 * same token as an earlier run. The id may hold ':' (host:pid): a token's
 * fence is after its last colon. */
static void make_owner(lash_worker *w)
{
    char id[LASH_WORKER_ID_MAX + 1];
    if (w->c.worker_id) {
        snprintf(id, sizeof id, "%s", w->c.worker_id);
    } else {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        host[sizeof host - 1] = 0;
        for (char *p = host; *p; p++)
            if (*p == ':' || *p <= ' ' || *p >= 0x7f) *p = '-';
        snprintf(id, sizeof id, "%s:%d", host, (int)getpid());
    }
    unsigned char r[6] = {0};
    if (getrandom(r, sizeof r, 0) != sizeof r) {
        uint64_t x = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 20);
        memcpy(r, &x, sizeof r);
    }
    snprintf(w->owner, sizeof w->owner, "%.*s#%02x%02x%02x%02x%02x%02x",
             LASH_WORKER_ID_MAX - OWNER_NONCE_LEN, id, r[0], r[1], r[2], r[3], r[4], r[5]);
}

lash_status lash_worker_new(struct ev_loop *loop, const lash_worker_config *c, lash_worker **out,
                            lash_err *e)
{
    lash_status st;
    if ((st = lash_worker_config_check(c, e))) return st;
    lash_worker *w = calloc(1, sizeof *w);
    if (!w) return lash_fail(e, LASH_ENOMEM, "out of memory");
    w->loop = loop;
    w->c = *c;
    if ((st = lash_url_parse(c->redis_url, &w->url, e))) goto fail;
    if ((st = lash_atopo_new(loop, &w->url, c->failover_ms, &w->topo, e))) goto fail;
    make_owner(w);
    if ((st = copy_queues(w, c, e))) goto fail;
    lash_turn_config tc = turn_config(c);
    if (!tc.seed) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
            seed = (uint64_t)now_ms() ^ (uint64_t)getpid();
        tc.seed = seed | 1;
    }
    w->c.log.worker = w->owner;
    if (!(w->turn = lash_turn_new(&tc, w->owner))) {
        st = lash_turn_config_check(&tc, e);
        goto fail;
    }
    w->jobs = calloc((size_t)lash_turn_slots(w->turn), sizeof *w->jobs);
    w->start_failed = calloc((size_t)lash_turn_slots(w->turn), sizeof *w->start_failed);
    if (!w->jobs || !w->start_failed) {
        st = lash_fail(e, LASH_ENOMEM, "out of memory");
        goto fail;
    }
    ev_prepare_init(&w->prep, on_prepare);
    ev_idle_init(&w->again, on_again);
    ev_timer_init(&w->timer, on_timer, 0, 0);
    ev_timer_init(&w->sub_retry, on_sub_retry, 1.0, 0);
    w->prep.data = w->again.data = w->timer.data = w->sub_retry.data = w;
    w->sched = lash_wsched_new(loop, &w->cmd, w->queues, w->nqueues, &w->c.log);
    if (!w->sched) {
        st = lash_fail(e, LASH_ENOMEM, "out of memory");
        goto fail;
    }
    *out = w;
    return LASH_OK;
fail:
    lash_worker_free(w);
    return st;
}

void lash_worker_start(lash_worker *w)
{
    char where[400];
    lash_url_describe(&w->url, where, sizeof where);
    lash_log(&w->c.log, LASH_LOG_INFO, NULL, NULL, -1, -1,
             "starting: redis %s, %d queue(s), concurrency %d, lease %lld ms, poll %lld ms", where,
             w->nqueues, w->c.turn.concurrency, (long long)w->c.turn.lease_ms,
             (long long)w->c.turn.poll_ms);
    ev_prepare_start(w->loop, &w->prep);
    lash_turn_start(w->turn, now_ms());
    lash_wsched_start(w->sched);
}

void lash_worker_shutdown(lash_worker *w)
{
    lash_wsched_stop(w->sched); /* a draining worker fires no more schedules */
    if (!w->exited) lash_turn_shutdown(w->turn, now_ms());
}

void lash_worker_reopen_log(lash_worker *w)
{
    lash_log_reopen(&w->c.log);
}

const lash_counters *lash_worker_counters(const lash_worker *w)
{
    return lash_turn_counters(w->turn);
}

int lash_worker_running(const lash_worker *w)
{
    return lash_turn_running(w->turn);
}

int lash_worker_prefetched(const lash_worker *w)
{
    return lash_turn_prefetched(w->turn);
}

void lash_worker_free(lash_worker *w)
{
    if (!w) return;
    if (w->loop) {
        ev_prepare_stop(w->loop, &w->prep);
        ev_idle_stop(w->loop, &w->again);
        ev_timer_stop(w->loop, &w->timer);
        ev_timer_stop(w->loop, &w->sub_retry);
    }
    w->acting = true; /* what the closes fail is only freed below, never told */
    lash_aconn_close(w->cmd);
    subs_close(w);
    lash_wsched_free(w->sched); /* after the closes: their failures reach it */
    lash_atopo_free(w->topo);
    while (w->deferred) {
        call *c = w->deferred;
        w->deferred = c->next;
        free(c);
    }
    while (w->finished) {
        lash_job *j = w->finished;
        w->finished = j->next_done;
        if (w->jobs) w->jobs[j->slot] = NULL;
        free(j->text);
        free(j);
    }
    if (w->jobs && w->turn)
        for (int i = 0; i < lash_turn_slots(w->turn); i++)
            free(w->jobs[i]);
    lash_turn_free(w->turn);
    for (int i = 0; i < w->nhandlers; i++)
        free(w->handlers[i].program);
    free(w->handlers);
    for (int q = 0; w->queues && q < w->nqueues; q++)
        free(w->queues[q]);
    free(w->queues);
    free(w->poke_chan);
    free(w->cancel_chan);
    free(w->sub);
    free(w->sub_dead);
    free(w->jobs);
    free(w->start_failed);
    memset(&w->url, 0, sizeof w->url);
    free(w);
}
