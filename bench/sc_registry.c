/* sc_registry.c: the registry alone, from one blocking connection.
 *
 * Phases, each timed and each measured in Redis CPU (INFO cpu) and commandstats:
 *   submit   N rows through lash_submit (pipelined chunks);
 *   claim    all of them, CLAIM_BATCH rows per call (what a busy worker asks);
 *   complete all of them, CLAIM_BATCH rows per call;
 *   trim     every terminal row (retention keep_n=0), 1,000 per call.
 * "Redis CPU per process" is submit + claim + complete over N: the life of a
 * process, minus its deletion, which is shown apart (trim).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

#define CLAIM_BATCH 256
#define QUEUE "bench-reg"

typedef struct {
    double t;
    bench_redis_snap s;
} mark;

static void take(lash_conn *c, mark *m, const char *phase)
{
    bench_mark(phase);
    bench_snap(c, &m->s);
    m->t = bench_now();
}

static void phase(const char *key, const char *label, const mark *a, const mark *b, long n)
{
    char k[64], l[128];
    snprintf(k, sizeof k, "registry.%s.rate", key);
    snprintf(l, sizeof l, "registry %s (1 conn)", label);
    bench_emit(k, l, "rows/s", (double)n / (b->t - a->t), false);
    snprintf(k, sizeof k, "registry.%s.redis_us", key);
    snprintf(l, sizeof l, "registry %s: Redis CPU per row", label);
    bench_emit(k, l, "us", (b->s.cpu - a->s.cpu) * 1e6 / (double)n, false);
    snprintf(k, sizeof k, "registry.%s", key);
    snprintf(l, sizeof l, "registry %s", label);
    bench_emit_cmdstats(k, l, &a->s, &b->s, n);
}

void sc_registry(const bench_opts *o)
{
    lash_conn *c = bench_connect(o);
    lash_err e;
    long n = o->n;
    bench_flush(o, c);
    /* Scripts cached before the clock starts: the phases measure steady state,
     * not one compile of each script (an EVAL of ~15 KB) spread over the rows. */
    if (lash_scripts_load(c, &e)) bench_die("%s", e.msg);
    bench_note("registry: %ld rows, one connection", n);
    lash_retention keep = {-1, 0}; /* no trimming during claims: the done count is checked */

    lash_completion *comp = calloc(CLAIM_BATCH, sizeof *comp);
    int *status = calloc(CLAIM_BATCH, sizeof *status);
    lash_claim_batch *batches = calloc((size_t)n / CLAIM_BATCH + 2, sizeof *batches);
    if (!comp || !status || !batches) bench_die("out of memory");

    mark m0, m1, m2, m3, m4;
    take(c, &m0, "start");
    bench_submit(c, QUEUE, "noop", "{}", n);
    take(c, &m1, "submit");

    size_t nb = 0;
    long claimed = 0;
    for (;;) {
        lash_claim_batch *b = &batches[nb];
        if (lash_claim(c, QUEUE, "bench-reg", CLAIM_BATCH, 600000, keep, 0, 0, b, &e))
            bench_die("claim: %s", e.msg);
        if (b->n == 0) break;
        claimed += (long)b->n;
        if (++nb > (size_t)n / CLAIM_BATCH + 1) bench_die("claim: more rows than submitted");
    }
    take(c, &m2, "claim");
    if (claimed != n) bench_die("claimed %ld of %ld rows", claimed, n);

    for (size_t i = 0; i < nb; i++) {
        lash_claim_batch *b = &batches[i];
        for (size_t j = 0; j < b->n; j++)
            comp[j] = (lash_completion){
                .lease = {b->rows[j].id, "bench-reg", b->rows[j].fence},
                .outcome = LASH_OUT_OK,
            };
        if (lash_complete(c, QUEUE, comp, b->n, status, &e)) bench_die("complete: %s", e.msg);
        for (size_t j = 0; j < b->n; j++)
            if (status[j] != LASH_DONE_RECORDED) bench_die("complete: row refused (%d)", status[j]);
    }
    take(c, &m3, "complete");
    bench_verify_completed(c, QUEUE, n, 0);

    long trimmed = 0;
    for (;;) {
        int64_t removed = 0;
        if (lash_trim(c, QUEUE, (lash_retention){0, 0}, 1000, &removed, &e))
            bench_die("trim: %s", e.msg);
        if (removed == 0) break;
        trimmed += (long)removed;
    }
    take(c, &m4, "trim");
    if (trimmed != n) bench_die("trimmed %ld of %ld rows", trimmed, n);

    phase("submit", "submit", &m0, &m1, n);
    phase("claim", "claim", &m1, &m2, n);
    phase("complete", "complete", &m2, &m3, n);
    phase("trim", "trim", &m3, &m4, n);
    bench_emit("registry.claim_complete.rate", "registry claim+complete (1 conn)", "rows/s",
               (double)n / (m3.t - m1.t), false);
    bench_emit("registry.life.redis_us", "registry: Redis CPU per process (sub+claim+compl)", "us",
               (m3.s.cpu - m0.s.cpu) * 1e6 / (double)n, false);

    for (size_t i = 0; i <= nb; i++)
        lash_claim_batch_free(&batches[i]);
    free(batches);
    free(comp);
    free(status);
    lash_close(c);
}
