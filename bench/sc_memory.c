/* sc_memory.c: Redis memory per row (INFO used_memory deltas).
 *
 * On an empty Redis (after one warm-up row on another queue, so the scripts and
 * the server's own structures are in place): submit N rows of kind "noop" with
 * payload {} to queue "default" -> bytes per pending row; claim and complete them
 * all (no retention bound) -> bytes per retained terminal row. Both include the
 * row's share of the index sets (due, done); the events stream is capped, a
 * constant that N amortizes.
 */
#include <stdlib.h>

#include "bench/bench.h"

#define BATCH 1000

static void claim_complete_all(lash_conn *c, const char *q, long n)
{
    lash_completion *comp = calloc(BATCH, sizeof *comp);
    int *status = calloc(BATCH, sizeof *status);
    lash_err e;
    long total = 0;
    for (;;) {
        lash_claim_batch b;
        if (lash_claim(c, q, "bench-mem", BATCH, 600000, (lash_retention){-1, 0}, 0, -1, &b, &e))
            bench_die("claim: %s", e.msg);
        if (b.n == 0) break;
        for (size_t j = 0; j < b.n; j++)
            comp[j] = (lash_completion){.lease = {b.rows[j].id, "bench-mem", b.rows[j].fence},
                                        .outcome = LASH_OUT_OK};
        if (lash_complete(c, q, comp, b.n, status, &e)) bench_die("complete: %s", e.msg);
        total += (long)b.n;
        lash_claim_batch_free(&b);
    }
    if (total != n) bench_die("memory: completed %ld of %ld", total, n);
    free(comp);
    free(status);
}

void sc_memory(const bench_opts *o)
{
    lash_conn *c = bench_connect(o);
    long n = o->n;
    bench_flush(o, c);
    bench_note("memory: %ld rows with payload {} on queue 'default'", n);
    bench_submit(c, "warmup", "noop", "{}", 1);
    claim_complete_all(c, "warmup", 1);
    bench_redis_snap s0, s1, s2;
    bench_snap(c, &s0);
    bench_submit(c, "default", "noop", "{}", n);
    bench_snap(c, &s1);
    claim_complete_all(c, "default", n);
    bench_snap(c, &s2);
    bench_verify_completed(c, "default", n, 0);
    bench_emit("memory.pending", "Redis memory per pending row", "bytes",
               (double)(s1.used_memory - s0.used_memory) / (double)n, false);
    bench_emit("memory.terminal", "Redis memory per retained terminal row", "bytes",
               (double)(s2.used_memory - s0.used_memory) / (double)n, false);
    lash_close(c);
}
