/* argv.c: script call vectors (see argv.h). */
#include "registry/argv.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/keys.h"

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *q = realloc(*p, n * elem);
    if (!q) return -1;
    *p = q;
    *cap = n;
    return 0;
}

void lash_argv_add(lash_argv *a, const char *s, size_t len)
{
    if (a->oom) return;
    size_t argcap = (size_t)a->argcap;
    if (grow((void **)&a->arena, &a->cap, a->used + len + 1, 1) ||
        (a->argc + 1 > a->argcap &&
         (grow((void **)&a->off, &argcap, (size_t)a->argc + 1, sizeof(size_t)) ||
          (a->len = realloc(a->len, argcap * sizeof(size_t))) == NULL))) {
        a->oom = true;
        return;
    }
    a->argcap = (int)argcap;
    memcpy(a->arena + a->used, s, len);
    a->arena[a->used + len] = 0;
    a->off[a->argc] = a->used;
    a->len[a->argc] = len;
    a->used += len + 1;
    a->argc++;
}

void lash_argv_adds(lash_argv *a, const char *s)
{
    lash_argv_add(a, s, strlen(s));
}

void lash_argv_addi(lash_argv *a, int64_t v)
{
    char b[24];
    int n = snprintf(b, sizeof b, "%lld", (long long)v);
    lash_argv_add(a, b, (size_t)n);
}

void lash_argv_token(lash_argv *a, const char *owner, int64_t fence)
{
    char b[LASH_WORKER_ID_MAX + 24];
    int n = snprintf(b, sizeof b, "%s:%lld", owner, (long long)fence);
    lash_argv_add(a, b, (size_t)n < sizeof b ? (size_t)n : sizeof b - 1);
}

void lash_argv_script(lash_argv *a, lash_op op, const char *queue)
{
    char base[LASH_KEY_MAX];
    memset(a, 0, sizeof *a);
    a->op = op;
    lash_argv_adds(a, "EVALSHA");
    lash_argv_adds(a, lash_script_sha(op));
    lash_argv_adds(a, "1");
    lash_argv_adds(a, lash_key(base, queue, LASH_KEY_BASE));
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

lash_send lash_sendpref_first(const lash_sendpref *p)
{
    return mono_ms() >= p->fcall_after ? LASH_SEND_FCALL : LASH_SEND_EVALSHA;
}

bool lash_send_fallback(lash_sendpref *p, lash_send *how, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_ERROR) return false;
    if (*how == LASH_SEND_FCALL && strncmp(r->str, "ERR Function not found", 22) == 0) {
        p->fcall_after = mono_ms() + 60000;
        *how = LASH_SEND_EVALSHA;
        return true;
    }
    if (*how == LASH_SEND_EVALSHA && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        *how = LASH_SEND_EVAL;
        return true;
    }
    return false;
}

const char **lash_argv_finish(lash_argv *a, lash_send how)
{
    if (a->oom) return NULL;
    free(a->ptrs);
    a->ptrs = malloc((size_t)a->argc * sizeof *a->ptrs);
    if (!a->ptrs) return NULL;
    for (int i = 0; i < a->argc; i++)
        a->ptrs[i] = a->arena + a->off[i];
    if (how == LASH_SEND_EVAL) {
        size_t tlen;
        a->ptrs[0] = "EVAL";
        a->len[0] = 4;
        a->ptrs[1] = lash_script_text(a->op, &tlen);
        a->len[1] = tlen;
    } else if (how == LASH_SEND_FCALL) {
        a->ptrs[0] = "FCALL";
        a->len[0] = 5;
        a->ptrs[1] = lash_function_name(a->op);
        a->len[1] = strlen(a->ptrs[1]);
    } else {
        a->len[0] = 7;
        a->len[1] = 40;
    }
    return a->ptrs;
}

void lash_argv_free(lash_argv *a)
{
    free(a->arena);
    free(a->off);
    free(a->len);
    free(a->ptrs);
    memset(a, 0, sizeof *a);
}

void lash_argv_claim(lash_argv *a, const char *queue, const char *owner, int n, int64_t ttl_ms,
                     lash_retention keep, uint32_t seq, int upkeep)
{
    lash_argv_script(a, LASH_OP_CLAIM, queue);
    lash_argv_adds(a, owner);
    lash_argv_addi(a, n);
    lash_argv_addi(a, ttl_ms);
    lash_argv_addi(a, keep.keep_n);
    lash_argv_addi(a, keep.keep_ms);
    if (seq || upkeep >= 0) lash_argv_addi(a, seq);
    if (upkeep >= 0) lash_argv_addi(a, upkeep);
}

void lash_argv_recover(lash_argv *a, const char *queue, const char *owner, uint32_t seq)
{
    lash_argv_script(a, LASH_OP_RECOVER, queue);
    lash_argv_adds(a, owner);
    lash_argv_addi(a, seq);
}

void lash_argv_renew(lash_argv *a, const char *queue, int64_t ttl_ms, const lash_lease *l, size_t n)
{
    lash_argv_script(a, LASH_OP_RENEW, queue);
    lash_argv_addi(a, ttl_ms);
    for (size_t i = 0; i < n; i++) {
        lash_argv_adds(a, l[i].id);
        lash_argv_token(a, l[i].owner, l[i].fence);
    }
}

void lash_argv_complete(lash_argv *a, const char *queue, const lash_completion *r, size_t n)
{
    static const char *const outcome[] = {"ok", "fail", "cancel", "abort"};
    lash_argv_script(a, LASH_OP_COMPLETE, queue);
    for (size_t i = 0; i < n; i++) {
        lash_argv_adds(a, r[i].lease.id);
        lash_argv_token(a, r[i].lease.owner, r[i].lease.fence);
        lash_argv_adds(a, outcome[r[i].outcome]);
        lash_argv_add(a, r[i].text ? r[i].text : "", r[i].text ? r[i].text_len : 0);
        lash_argv_addi(a, r[i].retry_ms);
    }
}

void lash_argv_progress(lash_argv *a, const char *queue, const lash_progress_report *r, size_t n)
{
    lash_argv_script(a, LASH_OP_PROGRESS, queue);
    for (size_t i = 0; i < n; i++) {
        lash_argv_adds(a, r[i].lease.id);
        lash_argv_token(a, r[i].lease.owner, r[i].lease.fence);
        lash_argv_addi(a, r[i].percent);
        lash_argv_add(a, r[i].text ? r[i].text : "", r[i].text ? r[i].text_len : 0);
    }
}

void lash_argv_release(lash_argv *a, const char *queue, const lash_lease *l, const bool *ran,
                       size_t n)
{
    lash_argv_script(a, LASH_OP_RELEASE, queue);
    for (size_t i = 0; i < n; i++) {
        lash_argv_adds(a, l[i].id);
        lash_argv_token(a, l[i].owner, l[i].fence);
        lash_argv_adds(a, !ran || ran[i] ? "1" : "0");
    }
}

void lash_argv_submit_row(lash_argv *a, const lash_submission *s, const char *id)
{
    int nopts = (s->max_attempts > 0) + (s->timeout_ms > 0) + (s->delay_ms > 0) +
                (s->run_at_ms > 0) + (s->backoff != NULL) + (s->on_lost == LASH_ON_LOST_ABANDON) +
                (s->priority != 0) + (s->after != NULL);
    lash_argv_adds(a, id);
    lash_argv_adds(a, s->kind);
    if (s->payload)
        lash_argv_add(a, s->payload, s->payload_len);
    else
        lash_argv_adds(a, "null");
    lash_argv_addi(a, nopts);
    if (s->max_attempts > 0) lash_argv_adds(a, "max_attempts"), lash_argv_addi(a, s->max_attempts);
    if (s->timeout_ms > 0) lash_argv_adds(a, "timeout_ms"), lash_argv_addi(a, s->timeout_ms);
    if (s->delay_ms > 0) lash_argv_adds(a, "delay_ms"), lash_argv_addi(a, s->delay_ms);
    if (s->run_at_ms > 0) lash_argv_adds(a, "run_at"), lash_argv_addi(a, s->run_at_ms);
    if (s->backoff) lash_argv_adds(a, "backoff"), lash_argv_adds(a, s->backoff);
    if (s->on_lost == LASH_ON_LOST_ABANDON)
        lash_argv_adds(a, "on_lost"), lash_argv_adds(a, "abandon");
    if (s->priority != 0) lash_argv_adds(a, "priority"), lash_argv_addi(a, s->priority);
    if (s->after) lash_argv_adds(a, "after"), lash_argv_adds(a, s->after);
}
