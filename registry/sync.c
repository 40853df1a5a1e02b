/* sync.c: the blocking registry operations (see registry.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "proto/id.h"
#include "proto/keys.h"
#include "proto/progress.h"
#include "proto/slot.h"
#include "registry/conn.h"
#include "registry/reply.h"

/* Rows per submit script call: large enough to amortize the call, small enough
 * that one call holds Redis for well under a millisecond. */
#define SUBMIT_CHUNK 200
/* Submit calls in flight at once on the pipeline. */
#define SUBMIT_WINDOW 8

/* Runs a script call and checks its reply for errors; the reply is returned for
 * parsing and must be freed. */
static redisReply *call(lash_conn *c, lash_argv *a, lash_err *e, lash_status *st)
{
    lash_op op = a->op;
    redisReply *r = lash_conn_script(c, a, e);
    lash_argv_free(a);
    *st = r ? lash_reply_check(r, lash_op_name(op), e) : LASH_EIO;
    return r;
}

/* ---- submit ---------------------------------------------------------------- */

static lash_idgen *idgen(void)
{
    static __thread lash_idgen g;
    static __thread int ready;
    if (!ready) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof seed, 0) != sizeof seed)
            seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)&g;
        lash_idgen_init(&g, seed);
        ready = 1;
    }
    return &g;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct {
    lash_argv argv;
    size_t *map; /* out index of each row sent in this call */
    size_t nrows;
    lash_send how; /* how it was sent: FCALL, EVALSHA or EVAL (argv.h) */
} chunk;

static void chunk_free(chunk *k)
{
    lash_argv_free(&k->argv);
    free(k->map);
    k->map = NULL;
}

#define NOT_SUBMITTED "not submitted"

/* A row no reply has answered yet (refused rows say "invalid: ..."). */
static bool unsent(const lash_submitted *o)
{
    return o->status == LASH_SUB_INVALID && strcmp(o->msg, NOT_SUBMITTED) == 0;
}

/* Gives every row its id (generated ones too, once: a row sent again after a
 * failover must carry the same id, so that Redis answers "exists") and checks
 * it; rows that fail the client-side check are answered at once, never sent. */
static void prepare_rows(const lash_submission *subs, size_t n, lash_submitted *out)
{
    int64_t now = wall_ms();
    for (size_t i = 0; i < n; i++) {
        const lash_submission *s = &subs[i];
        lash_submitted *o = &out[i];
        lash_err re;
        memset(o, 0, sizeof *o);
        if (s->id && s->id[0])
            snprintf(o->id, sizeof o->id, "%s", s->id);
        else
            lash_id_new(idgen(), now, o->id);
        o->status = LASH_SUB_INVALID;
        if (lash_submission_check(s, &re))
            snprintf(o->msg, sizeof o->msg, "invalid: %s", re.msg);
        else
            snprintf(o->msg, sizeof o->msg, NOT_SUBMITTED);
    }
}

/* Builds the next chunk from the unsent rows of subs[*next..]. */
static lash_status build_chunk(const char *queue, const lash_submission *subs, size_t n,
                               size_t *next, lash_submitted *out, chunk *k, lash_err *e)
{
    memset(k, 0, sizeof *k);
    k->map = malloc(SUBMIT_CHUNK * sizeof *k->map);
    if (!k->map) return lash_fail(e, LASH_ENOMEM, "out of memory");
    lash_argv_script(&k->argv, LASH_OP_SUBMIT, queue);
    while (*next < n && k->nrows < SUBMIT_CHUNK) {
        size_t i = (*next)++;
        if (!unsent(&out[i])) continue;
        lash_argv_submit_row(&k->argv, &subs[i], out[i].id);
        k->map[k->nrows++] = i;
    }
    if (k->argv.oom) return lash_fail(e, LASH_ENOMEM, "out of memory");
    return LASH_OK;
}

/* Reads the reply of the oldest chunk in flight. On NOSCRIPT (the script cache
 * was flushed between two pipelined calls) the chunk is sent again as EVAL,
 * behind the calls still in flight, and *requeued tells the caller to keep it:
 * a blocking retry here would read the next chunk's reply as this one's. A
 * reply that routing deals with (MOVED, READONLY, ...) leaves the chunk's rows
 * unsent and is handed over in *setback (the first one only). */
static lash_status read_chunk(lash_conn *c, redisContext *ctx, chunk *k, lash_submitted *out,
                              bool *requeued, redisReply **setback, lash_err *e)
{
    void *rv = NULL;
    *requeued = false;
    if (redisGetReply(ctx, &rv) != REDIS_OK)
        return lash_fail(e, LASH_EIO, "submit: %s", ctx->errstr);
    redisReply *r = rv;
    if (lash_send_fallback(&c->send, &k->how, r)) {
        freeReplyObject(r);
        const char **p = lash_argv_finish(&k->argv, k->how);
        if (!p) return lash_fail(e, LASH_ENOMEM, "out of memory");
        if (redisAppendCommandArgv(ctx, k->argv.argc, p, k->argv.len) != REDIS_OK)
            return lash_fail(e, LASH_EIO, "submit: cannot queue command");
        *requeued = true;
        return LASH_OK;
    }
    lash_redirect d;
    if (r && r->type == REDIS_REPLY_ERROR &&
        lash_redirect_parse(r->str, r->len, NULL, &d) != LASH_REPLY_PLAIN) {
        if (!*setback)
            *setback = r;
        else
            freeReplyObject(r);
        return LASH_OK;
    }
    lash_status st = lash_reply_check(r, "submit", e);
    if (!st) st = lash_reply_submit(r, out, k->map, k->nrows, e);
    freeReplyObject(r);
    return st;
}

/* The rows of a call that was sent but never answered: Redis may have run it. */
static void mark_unknown(const chunk *k, lash_submitted *out, const lash_err *why)
{
    for (size_t j = 0; j < k->nrows; j++) {
        lash_submitted *o = &out[k->map[j]];
        o->status = LASH_SUB_UNKNOWN;
        snprintf(o->msg, sizeof o->msg, "unknown: sent, but no answer came (%.200s)", why->msg);
    }
}

/* One pass: every unsent row to ctx, pipelined. LASH_EIO when ctx broke (rows
 * whose reply was not read stay unsent); another error when Redis refused a
 * call or out of memory; LASH_OK otherwise, *setback holding a reply to route
 * around when one came (its rows stay unsent). */
static lash_status submit_pass(lash_conn *c, redisContext *ctx, const char *queue,
                               const lash_submission *subs, size_t n, lash_submitted *out,
                               redisReply **setback, lash_err *e)
{
    chunk win[SUBMIT_WINDOW];
    size_t next = 0, head = 0, tail = 0; /* chunks [head, tail) are in flight */
    bool first = true;
    lash_status st = LASH_OK;
    while (head < tail || (!st && next < n)) {
        /* The first call goes alone, so "Function not found" or NOSCRIPT is
         * met once, not per chunk: the calls behind it go the way it found
         * (argv.h), and its re-sent EVAL loads the script ahead of them. It is
         * an FCALL or EVALSHA all the same: an EVAL makes Redis hash and parse
         * the whole script text (~12 KB) again, which cost more than the row
         * itself for a one-row submit (docs/benchmarks.md). */
        while (!st && next < n && tail - head < (first ? 1u : SUBMIT_WINDOW)) {
            chunk *k = &win[tail % SUBMIT_WINDOW];
            if ((st = build_chunk(queue, subs, n, &next, out, k, e))) {
                chunk_free(k);
                break;
            }
            if (k->nrows == 0) {
                chunk_free(k);
                continue;
            }
            k->how = lash_sendpref_first(&c->send);
            const char **p = lash_argv_finish(&k->argv, k->how);
            if (!p || redisAppendCommandArgv(ctx, k->argv.argc, p, k->argv.len) != REDIS_OK) {
                st = lash_fail(e, p ? LASH_EIO : LASH_ENOMEM, "submit: cannot queue command");
                chunk_free(k);
                break;
            }
            tail++;
        }
        first = false;
        if (head == tail) continue;
        chunk *k = &win[head++ % SUBMIT_WINDOW];
        bool requeued = false;
        lash_err ce;
        /* After an error the replies still in flight are read all the same: the
         * connection stays in step, and the rows they created are reported. */
        lash_status cs = ctx->err ? lash_fail(&ce, LASH_EIO, "submit: %s", ctx->errstr)
                                  : read_chunk(c, ctx, k, out, &requeued, setback, &ce);
        if (requeued) { /* its slot is free now, and so is the one at tail */
            chunk moved = *k;
            win[tail++ % SUBMIT_WINDOW] = moved;
            continue;
        }
        if (cs == LASH_EIO) mark_unknown(k, out, &ce);
        if (cs && (!st || cs == LASH_EIO)) {
            st = cs;
            if (e) *e = ce;
        }
        chunk_free(k);
    }
    return st;
}

/* WAIT for w.replicas; LASH_EIO when ctx broke. */
static lash_status submit_wait(redisContext *ctx, lash_wait w, lash_err *e)
{
    redisReply *r = redisCommand(ctx, "WAIT %d %d", w.replicas, w.timeout_ms);
    if (!r) return lash_fail(e, LASH_EIO, "submit: WAIT: %s", ctx->errstr);
    lash_status st = lash_reply_check(r, "submit: WAIT", e);
    if (!st && r->type != REDIS_REPLY_INTEGER)
        st = lash_fail(e, LASH_EPROTO, "submit: WAIT did not answer a number");
    if (!st && r->integer < w.replicas)
        st = lash_fail(e, LASH_EDURABLE,
                       "submit: WAIT: %lld of %d replica(s) confirmed the rows within %d ms; "
                       "they are on the primary, not known to be on a replica",
                       (long long)r->integer, w.replicas, w.timeout_ms);
    freeReplyObject(r);
    return st;
}

lash_status lash_submit(lash_conn *c, const char *queue, const lash_submission *subs, size_t n,
                        lash_submitted *out, lash_err *e)
{
    return lash_submit_wait(c, queue, subs, n, (lash_wait){0, 0}, out, e);
}

lash_status lash_submit_wait(lash_conn *c, const char *queue, const lash_submission *subs, size_t n,
                             lash_wait w, lash_submitted *out, lash_err *e)
{
    lash_status st = lash_queue_check(queue, e);
    if (st) return st;
    if (w.replicas < 0 || (w.replicas > 0 && w.timeout_ms < 1))
        return lash_fail(e, LASH_EINVAL, "submit: WAIT needs replicas >= 0 and a timeout >= 1 ms");
    /* A row is not submitted until Redis answers for it: after a failed call,
     * the rows it carried and those never sent say so. */
    prepare_rows(subs, n, out);
    bool *created = NULL; /* durable: rows a pass before created */
    if (w.replicas > 0 && !(created = calloc(n ? n : 1, sizeof *created)))
        return lash_fail(e, LASH_ENOMEM, "out of memory");
    int slot = lash_queue_slot(queue);
    lash_attempts t = {0};
    redisContext *prev = NULL;
    uint64_t prev_dials = 0;
    lash_err err = {0};
    for (;;) {
        redisContext *ctx = lash_conn_route(c, slot, &err);
        if (!ctx) {
            if (lash_conn_retry(c, NULL, NULL, slot, &t)) continue;
            st = lash_fail(&err, LASH_EIO, "submit: %s", err.msg);
            break;
        }
        c->ctx = ctx;
        if (created && prev && (ctx != prev || c->dials != prev_dials)) {
            /* Rows the lost primary acknowledged were never confirmed by WAIT
             * there: send them again here (they say "exists" if they made it). */
            for (size_t i = 0; i < n; i++)
                if (out[i].status == LASH_SUB_CREATED || out[i].status == LASH_SUB_EXISTS) {
                    created[i] = created[i] || out[i].status == LASH_SUB_CREATED;
                    out[i].status = LASH_SUB_INVALID;
                    snprintf(out[i].msg, sizeof out[i].msg, NOT_SUBMITTED);
                }
        }
        prev = ctx;
        prev_dials = c->dials;
        /* Rows sent without an answer go again: by id, so a row that landed
         * answers "exists". */
        for (size_t i = 0; i < n; i++)
            if (out[i].status == LASH_SUB_UNKNOWN) {
                out[i].status = LASH_SUB_INVALID;
                snprintf(out[i].msg, sizeof out[i].msg, NOT_SUBMITTED);
            }
        redisReply *sb = NULL;
        st = submit_pass(c, ctx, queue, subs, n, out, &sb, &err);
        if (st == LASH_EIO || sb) {
            bool again = lash_conn_retry(c, ctx, st == LASH_EIO ? NULL : sb, slot, &t);
            if (!again && st != LASH_EIO)
                st = lash_fail(&err, LASH_EREDIS, "submit: Redis said: %.180s", sb->str);
            freeReplyObject(sb);
            if (again) continue;
            break;
        }
        if (st || !created) break;
        st = submit_wait(ctx, w, &err);
        if (st == LASH_EIO && lash_conn_retry(c, ctx, NULL, slot, &t)) continue;
        break;
    }
    for (size_t i = 0; created && i < n; i++)
        if (created[i] && out[i].status == LASH_SUB_EXISTS) out[i].status = LASH_SUB_CREATED;
    free(created);
    if (st) {
        for (size_t i = 0; i < n; i++)
            if (unsent(&out[i]))
                snprintf(out[i].msg, sizeof out[i].msg, NOT_SUBMITTED ": %.250s", err.msg);
        if (e) *e = err;
    }
    return st;
}

/* ---- worker operations ---------------------------------------------------- */

lash_status lash_claim(lash_conn *c, const char *queue, const char *owner, int n, int64_t ttl_ms,
                       lash_retention keep, uint32_t seq, int upkeep, lash_claim_batch *out,
                       lash_err *e)
{
    lash_argv a;
    lash_status st;
    memset(out, 0, sizeof *out);
    if ((st = lash_queue_check(queue, e)) || (st = lash_worker_id_check(owner, e))) return st;
    lash_argv_claim(&a, queue, owner, n, ttl_ms, keep, seq, upkeep);
    redisReply *r = call(c, &a, e, &st);
    if (!st) st = lash_reply_claim(r, out, e);
    freeReplyObject(r);
    return st;
}

lash_status lash_peek(lash_conn *c, const char *queue, int64_t *wait_ms, lash_err *e)
{
    lash_argv a;
    lash_status st;
    *wait_ms = -1;
    if ((st = lash_queue_check(queue, e))) return st;
    lash_argv_script(&a, LASH_OP_PEEK, queue);
    redisReply *r = call(c, &a, e, &st);
    if (!st) st = lash_reply_peek(r, wait_ms, e);
    freeReplyObject(r);
    return st;
}

lash_status lash_recover(lash_conn *c, const char *queue, const char *owner, uint32_t seq,
                         lash_recovered *out, lash_err *e)
{
    lash_argv a;
    lash_status st;
    memset(out, 0, sizeof *out);
    if ((st = lash_queue_check(queue, e)) || (st = lash_worker_id_check(owner, e))) return st;
    lash_argv_recover(&a, queue, owner, seq);
    redisReply *r = call(c, &a, e, &st);
    if (!st) st = lash_reply_recover(r, owner, out, e);
    freeReplyObject(r);
    return st;
}

static lash_status statuses(lash_conn *c, lash_argv *a, size_t n, int *status, lash_err *e)
{
    lash_status st;
    redisReply *r = call(c, a, e, &st);
    if (!st) st = lash_reply_ints(r, n, status, e);
    freeReplyObject(r);
    return st;
}

lash_status lash_renew(lash_conn *c, const char *queue, int64_t ttl_ms, const lash_lease *l,
                       size_t n, int *status, lash_err *e)
{
    lash_argv a;
    lash_argv_renew(&a, queue, ttl_ms, l, n);
    return statuses(c, &a, n, status, e);
}

lash_status lash_complete(lash_conn *c, const char *queue, const lash_completion *r, size_t n,
                          int *status, lash_err *e)
{
    lash_argv a;
    lash_argv_complete(&a, queue, r, n);
    return statuses(c, &a, n, status, e);
}

lash_status lash_report_progress(lash_conn *c, const char *queue, const lash_progress_report *r,
                                 size_t n, int *status, lash_err *e)
{
    lash_status st;
    for (size_t i = 0; i < n; i++)
        if ((st = lash_progress_check(r[i].percent, r[i].text, r[i].text_len, e))) return st;
    lash_argv a;
    lash_argv_progress(&a, queue, r, n);
    return statuses(c, &a, n, status, e);
}

lash_status lash_release(lash_conn *c, const char *queue, const lash_lease *l, const bool *ran,
                         size_t n, int *status, lash_err *e)
{
    lash_argv a;
    lash_argv_release(&a, queue, l, ran, n);
    return statuses(c, &a, n, status, e);
}

/* ---- operator operations -------------------------------------------------- */

/* Runs a one-id script answering a status text; copies it into ans. */
static lash_status id_op(lash_conn *c, lash_op op, const char *queue, const char *id,
                         const char *extra, char *ans, size_t cap, lash_err *e)
{
    lash_argv a;
    lash_status st;
    if ((st = lash_queue_check(queue, e)) || (st = lash_id_check(id, strlen(id), e))) return st;
    lash_argv_script(&a, op, queue);
    lash_argv_adds(&a, id);
    if (extra) lash_argv_adds(&a, extra);
    redisReply *r = call(c, &a, e, &st);
    if (!st) {
        if (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS)
            st = lash_fail(e, LASH_EPROTO, "%s: expected a status text", lash_op_name(op));
        else
            snprintf(ans, cap, "%s", r->str);
    }
    freeReplyObject(r);
    if (st) return st;
    if (strcmp(ans, "not-found") == 0)
        return lash_fail(e, LASH_ENOTFOUND, "process %s not found", id);
    if (strncmp(ans, "refused", 7) == 0)
        return lash_fail(e, LASH_EREFUSED, "process %s: %s", id, ans);
    return LASH_OK;
}

lash_status lash_cancel(lash_conn *c, const char *queue, const char *id, const char *reason,
                        bool *requested, lash_err *e)
{
    char ans[64];
    lash_status st = id_op(c, LASH_OP_CANCEL, queue, id, reason, ans, sizeof ans, e);
    if (!st && requested) *requested = strcmp(ans, "requested") == 0;
    return st;
}

lash_status lash_retry(lash_conn *c, const char *queue, const char *id, lash_err *e)
{
    char ans[64];
    return id_op(c, LASH_OP_RETRY, queue, id, NULL, ans, sizeof ans, e);
}

lash_status lash_get(lash_conn *c, const char *queue, const char *id, lash_record *rec, lash_err *e)
{
    char key[LASH_KEY_MAX];
    lash_status st;
    lash_record_init(rec);
    if ((st = lash_queue_check(queue, e)) || (st = lash_id_check(id, strlen(id), e))) return st;
    const char *argv[] = {"HGETALL", lash_key_row(key, queue, id)};
    redisReply *r = lash_conn_command(c, queue, "get", 2, argv, NULL, e);
    if (!r) return LASH_EIO;
    st = lash_reply_record(r, queue, id, rec, e);
    freeReplyObject(r);
    return st;
}

lash_status lash_list(lash_conn *c, const char *queue, const char *state, const char *cursor,
                      int limit, lash_list_page *out, lash_err *e)
{
    lash_argv a;
    lash_status st;
    memset(out, 0, sizeof *out);
    if ((st = lash_queue_check(queue, e))) return st;
    if (state && lash_state_parse(state) < 0)
        return lash_fail(e, LASH_EINVAL, "unknown state '%s'", state);
    lash_argv_script(&a, LASH_OP_LIST, queue);
    lash_argv_adds(&a, state ? state : "");
    lash_argv_adds(&a, cursor ? cursor : "0");
    lash_argv_addi(&a, limit);
    redisReply *r = call(c, &a, e, &st);
    if (!st) st = lash_reply_list(r, out, e);
    freeReplyObject(r);
    return st;
}

lash_status lash_get_stats(lash_conn *c, const char *queue, lash_stats *out, lash_err *e)
{
    lash_argv a;
    lash_status st;
    if ((st = lash_queue_check(queue, e))) return st;
    lash_argv_script(&a, LASH_OP_STATS, queue);
    redisReply *r = call(c, &a, e, &st);
    if (!st) st = lash_reply_stats(r, out, e);
    freeReplyObject(r);
    return st;
}

lash_status lash_recount(lash_conn *c, const char *queue, lash_stats *out, lash_err *e)
{
    lash_argv a;
    lash_status st;
    if ((st = lash_queue_check(queue, e))) return st;
    lash_argv_script(&a, LASH_OP_RECOUNT, queue);
    redisReply *r = call(c, &a, e, &st);
    freeReplyObject(r);
    return st ? st : lash_get_stats(c, queue, out, e);
}

lash_status lash_trim(lash_conn *c, const char *queue, lash_retention keep, int max,
                      int64_t *removed, lash_err *e)
{
    lash_argv a;
    lash_status st;
    if ((st = lash_queue_check(queue, e))) return st;
    lash_argv_script(&a, LASH_OP_TRIM, queue);
    lash_argv_addi(&a, keep.keep_n);
    lash_argv_addi(&a, keep.keep_ms);
    lash_argv_addi(&a, max);
    redisReply *r = call(c, &a, e, &st);
    if (!st) {
        if (r->type == REDIS_REPLY_INTEGER)
            *removed = r->integer;
        else
            st = lash_fail(e, LASH_EPROTO, "trim: expected an integer");
    }
    freeReplyObject(r);
    return st;
}

lash_status lash_poke(lash_conn *c, const char *queue, lash_err *e)
{
    char chan[LASH_KEY_MAX];
    lash_status st;
    if ((st = lash_queue_check(queue, e))) return st;
    const char *argv[] = {"PUBLISH", lash_key(chan, queue, LASH_CHAN_POKE), "poke"};
    redisReply *r = lash_conn_command(c, queue, "poke", 3, argv, NULL, e);
    if (!r) return LASH_EIO;
    st = lash_reply_check(r, "poke", e);
    freeReplyObject(r);
    return st;
}

lash_status lash_scripts_load(lash_conn *c, lash_err *e)
{
    for (int op = 0; op < LASH_OP_COUNT; op++) {
        size_t len;
        const char *text = lash_script_text((lash_op)op, &len);
        const char *argv[] = {"SCRIPT", "LOAD", text};
        redisReply *r =
            lash_conn_command(c, NULL, "SCRIPT LOAD", 3, argv, (const size_t[]){6, 4, len}, e);
        if (!r) return LASH_EIO;
        lash_status st = lash_reply_check(r, "SCRIPT LOAD", e);
        freeReplyObject(r);
        if (st) return st;
    }
    return LASH_OK;
}

/* On one node: loads the library when missing or of another version. */
static lash_status functions_here(lash_conn *c, void *ud, lash_err *e)
{
    (void)ud;
    const char *want = lash_function_version();
    redisReply *r = lash_conn_command(c, NULL, "functions", 3,
                                      (const char *[]){"FCALL", "lash_version", "0"}, NULL, e);
    if (!r) return LASH_EIO;
    bool current = r->type == REDIS_REPLY_STRING && strcmp(r->str, want) == 0;
    freeReplyObject(r);
    if (current) return LASH_OK;
    size_t len;
    const char *lib = lash_function_library(&len);
    const char *load[] = {"FUNCTION", "LOAD", "REPLACE", lib};
    r = lash_conn_command(c, NULL, "functions", 4, load, (const size_t[]){8, 4, 7, len}, e);
    if (!r) return LASH_EIO;
    lash_status st = lash_reply_check(r, "FUNCTION LOAD", e);
    freeReplyObject(r);
    return st;
}

lash_status lash_functions_ensure(lash_conn *c, lash_err *e)
{
    /* Functions are per primary (a Cluster does not spread them; replicas get
     * them by replication, so they survive a failover). */
    return lash_conn_each_primary(c, functions_here, NULL, e);
}
