/* sc_latency.c: how soon an idle worker starts a process after it is submitted.
 *
 * An embedded worker (main thread, libev) handles kind "stamp": the handler's
 * first act is to read CLOCK_REALTIME and subtract the submitter's timestamp
 * carried in the payload. The submitter is a thread with its own connection: it
 * submits one process, waits until the handler has seen it, sleeps a little
 * (so the worker is idle again), and repeats. Same machine, same clock.
 *
 * poke: lash_submit (the script SPUBLISHes on the poke channel); latency from
 *       the submit call to the handler.
 * delayed: rows submitted to run at a time POLL_WAKE_MS ahead (run_at, the
 *       server clock: the same clock on the same machine). The submit's poke
 *       wakes the worker while the row is not yet due: its claim finds nothing
 *       but answers when the row falls due, and the worker claims it then
 *       (until issue 14 only the next poll, POLL_MS, found it). Latency from
 *       run_at to the handler. The keys keep their old name, latency.poll.*.
 */
#include <ev.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "worker/worker.h"

#define POLL_MS 100
/* Long enough that the poke's drive has come and gone before the row is due. */
#define POLL_WAKE_MS 50
#define QUEUE "bench-lat"

typedef struct {
    const bench_opts *o;
    bool poll_only;
    int samples;
    double *lat_ms;
    atomic_int seen;
    ev_async done;
    lash_worker *w;
    const char *fail;
} lat_state;

static void stamp(lash_job *j, void *ud)
{
    int64_t now = bench_wall_ns();
    lat_state *L = ud;
    size_t len;
    const char *p = lash_job_payload(j, &len);
    long long t = 0;
    int i = -1;
    if (sscanf(p, "{\"t\":%lld,\"i\":%d}", &t, &i) == 2 && i >= 0 && i < L->samples) {
        L->lat_ms[i] = (double)(now - t) / 1e6;
        atomic_store(&L->seen, i + 1);
    }
    lash_job_done(j, LASH_OUT_OK, NULL, 0);
}

static void *submitter(void *arg)
{
    lat_state *L = arg;
    lash_conn *c = bench_connect(L->o);
    unsigned seed = 12345;
    for (int i = 0; i < L->samples && !L->fail; i++) {
        char payload[96];
        int64_t t = bench_wall_ns();
        lash_submission s = {.kind = "stamp"};
        if (L->poll_only) {
            /* The stamp is when the row becomes due: run_at, in whole ms. */
            s.run_at_ms = t / 1000000 + POLL_WAKE_MS;
            t = s.run_at_ms * 1000000;
        }
        snprintf(payload, sizeof payload, "{\"t\":%lld,\"i\":%d}", (long long)t, i);
        s.payload = payload;
        s.payload_len = strlen(payload);
        lash_submitted out;
        lash_err e;
        if (lash_submit(c, QUEUE, &s, 1, &out, &e) || out.status != LASH_SUB_CREATED)
            bench_die("latency submit failed");
        double t0 = bench_now();
        while (atomic_load(&L->seen) <= i) {
            if (bench_now() - t0 > 10) {
                L->fail = "a process was not started within 10 s";
                break;
            }
            bench_sleep(0.00005);
        }
        /* Idle again before the next one; the poll case spreads its submits
         * over the poll period so they do not lock onto its phase. */
        double gap = L->poll_only ? (double)(rand_r(&seed) % (POLL_MS * 1000)) / 1e6
                                  : 0.001 + (double)(rand_r(&seed) % 1000) / 1e6;
        bench_sleep(gap);
    }
    lash_close(c);
    ev_async_send(EV_DEFAULT, &L->done);
    return NULL;
}

static void on_done(struct ev_loop *loop, ev_async *a, int revents)
{
    (void)loop;
    (void)revents;
    lat_state *L = a->data;
    lash_worker_shutdown(L->w);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p)
{
    int i = (int)(p * (double)(n - 1) + 0.5);
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static void run(const bench_opts *o, bool poll_only, int samples)
{
    struct ev_loop *loop = EV_DEFAULT;
    lash_conn *c = bench_connect(o);
    bench_flush(o, c);
    lat_state L = {.o = o, .poll_only = poll_only, .samples = samples};
    L.lat_ms = calloc((size_t)samples, sizeof *L.lat_ms);
    lash_worker_config cfg;
    lash_worker_config_default(&cfg);
    const char *qs[] = {QUEUE};
    cfg.redis_url = o->url;
    cfg.queues = qs;
    cfg.nqueues = 1;
    cfg.worker_id = "bench-lat";
    cfg.keep = (lash_retention){-1, 0};
    cfg.log.level = LASH_LOG_WARN;
    if (poll_only) cfg.turn.poll_ms = POLL_MS;
    lash_err e;
    if (lash_worker_new(loop, &cfg, &L.w, &e) ||
        lash_worker_handle(L.w, "stamp", stamp, NULL, &L, &e))
        bench_die("worker: %s", e.msg);
    ev_async_init(&L.done, on_done);
    L.done.data = &L;
    ev_async_start(loop, &L.done);
    lash_worker_start(L.w);
    /* Let it connect, subscribe and make its startup drive before the first sample. */
    ev_run(loop, EVRUN_NOWAIT);
    double t0 = bench_now();
    while (bench_now() - t0 < 0.3)
        ev_run(loop, EVRUN_ONCE);
    pthread_t th;
    pthread_create(&th, NULL, submitter, &L);
    ev_run(loop, 0);
    pthread_join(th, NULL);
    ev_async_stop(loop, &L.done);
    lash_worker_free(L.w);
    if (L.fail) bench_die("latency: %s", L.fail);
    bench_verify_completed(c, QUEUE, samples, 0);
    lash_close(c);

    qsort(L.lat_ms, (size_t)samples, sizeof *L.lat_ms, cmp);
    if (poll_only) {
        char label[96];
        snprintf(label, sizeof label, "delayed row: run_at to start p50 (poll %d ms)", POLL_MS);
        bench_emit("latency.poll.p50", label, "ms", pct(L.lat_ms, samples, 0.5), false);
        snprintf(label, sizeof label, "delayed row: run_at to start p99 (poll %d ms)", POLL_MS);
        bench_emit("latency.poll.p99", label, "ms", pct(L.lat_ms, samples, 0.99), false);
        bench_emit("latency.poll.max", "delayed row: run_at to start max", "ms",
                   L.lat_ms[samples - 1], true);
    } else {
        bench_emit("latency.poke.p50", "poke-to-start latency p50 (idle worker)", "ms",
                   pct(L.lat_ms, samples, 0.5), false);
        bench_emit("latency.poke.p99", "poke-to-start latency p99 (idle worker)", "ms",
                   pct(L.lat_ms, samples, 0.99), false);
        bench_emit("latency.poke.max", "poke-to-start latency max", "ms", L.lat_ms[samples - 1],
                   true);
    }
    free(L.lat_ms);
}

void sc_latency(const bench_opts *o)
{
    int poke = o->quick ? 50
                        : (int)(o->n / 100 < 200    ? 200
                                : o->n / 100 > 2000 ? 2000
                                                    : o->n / 100);
    int poll = o->quick ? 10 : 100;
    bench_note("latency: %d samples through the poke channel", poke);
    run(o, false, poke);
    bench_note("latency: %d delayed rows, run_at to start (poll %d ms)", poll, POLL_MS);
    run(o, true, poll);
}
