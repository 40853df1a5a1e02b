/* sc_drain.c: draining pre-submitted no-op processes.
 *
 * drain: one embedded lash_worker (built-in "noop") in this process, at each
 *   concurrency asked, and at c=1 with a prefetch of 15 (keys drain.c1p15.*).
 *   The clock runs from lash_worker_start to the moment its counters say every
 *   row was recorded; worker CPU is this process's rusage over the same span
 *   (the loop does nothing else), Redis CPU is INFO cpu.
 * fleet: K real `lash-worker --builtin noop` processes on one queue. The clock
 *   runs from spawning them to the done set holding every row (polled with
 *   ZCARD every 5 ms, a cost too small to see); worker CPU is their rusage.
 * Both verify every row is `completed` before reporting.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "worker/worker.h"

typedef struct {
    lash_worker *w;
    long n;
    double t_end;
    bool stopping;
} drain_run;

static void on_prepare(struct ev_loop *loop, ev_prepare *c, int revents)
{
    (void)loop;
    (void)revents;
    drain_run *d = c->data;
    if (!d->stopping && (long)lash_worker_counters(d->w)->rows_recorded >= d->n) {
        d->t_end = bench_now();
        d->stopping = true;
        lash_worker_shutdown(d->w);
    }
}

static void on_watchdog(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void)loop;
    (void)revents;
    drain_run *d = t->data;
    bench_die("drain: only %llu of %ld rows recorded after 600 s",
              (unsigned long long)lash_worker_counters(d->w)->rows_recorded, d->n);
}

/* Runs one embedded worker on queue until n rows are recorded; returns seconds.
 * Used by the drain scenario and, with an exec handler, by sc_exec. */
double bench_run_worker(const bench_opts *o, const char *queue, int conc, int prefetch, long n,
                        const char *exec_kind, const char *exec_prog)
{
    struct ev_loop *loop = EV_DEFAULT;
    lash_worker_config cfg;
    lash_worker_config_default(&cfg);
    const char *qs[] = {queue};
    char id[64];
    snprintf(id, sizeof id, "bench-%d", (int)getpid());
    cfg.redis_url = o->url;
    cfg.queues = qs;
    cfg.nqueues = 1;
    cfg.worker_id = id;
    cfg.turn.concurrency = conc;
    cfg.turn.prefetch = prefetch;
    cfg.keep = (lash_retention){-1, 0}; /* keep every row: the done count is checked */
    cfg.log.level = LASH_LOG_WARN;
    drain_run d = {.n = n};
    lash_err e;
    if (lash_worker_new(loop, &cfg, &d.w, &e)) bench_die("worker: %s", e.msg);
    if (exec_kind ? lash_worker_exec(d.w, exec_kind, exec_prog, &e)
                  : lash_worker_builtin(d.w, "noop", &e))
        bench_die("worker: %s", e.msg);
    /* A prepare watcher, not a check: libev runs check watchers before the I/O
     * callbacks of the same iteration, so a check would see the last reply only
     * after the next poll, up to a poll interval late. */
    ev_prepare chk;
    ev_timer dog;
    ev_prepare_init(&chk, on_prepare);
    ev_timer_init(&dog, on_watchdog, 600, 0);
    chk.data = dog.data = &d;
    ev_prepare_start(loop, &chk);
    ev_timer_start(loop, &dog);
    double t0 = bench_now();
    lash_worker_start(d.w);
    ev_run(loop, 0);
    ev_prepare_stop(loop, &chk);
    ev_timer_stop(loop, &dog);
    if (!d.stopping) bench_die("drain: the worker stopped early");
    const lash_counters *k = lash_worker_counters(d.w);
    bench_note("    worker: %llu claims (%llu rows), %llu completes, %llu pokes, %llu ticks",
               (unsigned long long)k->claims_sent, (unsigned long long)k->rows_claimed,
               (unsigned long long)k->completes_sent, (unsigned long long)k->pokes,
               (unsigned long long)k->ticks);
    lash_worker_free(d.w);
    return d.t_end - t0;
}

/* One drain at concurrency conc with prefetch; its keys are drain.<tag>.*. */
static void drain_one(const bench_opts *o, lash_conn *c, int conc, int prefetch)
{
    char q[32], tag[16], what[48], key[64], label[96];
    long n = o->n;
    if (prefetch) {
        snprintf(tag, sizeof tag, "c%dp%d", conc, prefetch);
        snprintf(what, sizeof what, "c=%d prefetch %d", conc, prefetch);
    } else {
        snprintf(tag, sizeof tag, "c%d", conc);
        snprintf(what, sizeof what, "c=%d", conc);
    }
    snprintf(q, sizeof q, "bench-drain-%s", tag);
    bench_flush(o, c);
    bench_note("drain: %ld no-op rows, one embedded worker, concurrency %d, prefetch %d", n, conc,
               prefetch);
    bench_redis_snap s0, s1, s2;
    bench_snap(c, &s0);
    bench_submit(c, q, "noop", "{}", n);
    bench_snap(c, &s1);
    double cpu0 = bench_self_cpu();
    double secs = bench_run_worker(o, q, conc, prefetch, n, NULL, NULL);
    double cpu = bench_self_cpu() - cpu0;
    bench_snap(c, &s2);
    bench_verify_completed(c, q, n, 0);

    snprintf(key, sizeof key, "drain.%s.rate", tag);
    snprintf(label, sizeof label, "drain, 1 embedded worker, %s", what);
    bench_emit(key, label, "jobs/s", (double)n / secs, false);
    snprintf(key, sizeof key, "drain.%s.worker_us", tag);
    snprintf(label, sizeof label, "drain %s: worker CPU per process", what);
    bench_emit(key, label, "us", cpu * 1e6 / (double)n, false);
    snprintf(key, sizeof key, "drain.%s.redis_us", tag);
    snprintf(label, sizeof label, "drain %s: Redis CPU per process (claim+compl)", what);
    bench_emit(key, label, "us", (s2.cpu - s1.cpu) * 1e6 / (double)n, false);
    snprintf(key, sizeof key, "drain.%s.life_us", tag);
    snprintf(label, sizeof label, "drain %s: Redis CPU per process (sub+claim+compl)", what);
    bench_emit(key, label, "us", (s2.cpu - s0.cpu) * 1e6 / (double)n, false);
    snprintf(key, sizeof key, "drain.%s", tag);
    snprintf(label, sizeof label, "drain %s", what);
    bench_emit_cmdstats(key, label, &s1, &s2, n);
}

void sc_drain(const bench_opts *o, const int *conc, int nconc)
{
    lash_conn *c = bench_connect(o);
    for (int i = 0; i < nconc; i++)
        drain_one(o, c, conc[i], 0);
    /* One worker that runs one process at a time, its next rows claimed ahead:
     * what --prefetch buys a worker of short processes. */
    drain_one(o, c, 1, 15);
    lash_close(c);
}

void sc_fleet(const bench_opts *o, const int *workers, int nworkers)
{
    lash_conn *c = bench_connect(o);
    const int conc = 50;
    for (int i = 0; i < nworkers; i++) {
        int k = workers[i];
        long n = o->n;
        char q[32], key[64], label[96], cs[16];
        snprintf(q, sizeof q, "bench-fleet-%d", k);
        snprintf(cs, sizeof cs, "%d", conc);
        bench_flush(o, c);
        bench_note("fleet: %ld no-op rows, %d lash-worker process(es) at concurrency %d", n, k,
                   conc);
        bench_submit(c, q, "noop", "{}", n);
        bench_redis_snap s1, s2;
        bench_snap(c, &s1);
        double cpu0 = bench_children_cpu();
        int pids[64];
        double t0 = bench_now();
        for (int j = 0; j < k; j++) {
            char id[32];
            snprintf(id, sizeof id, "bench-fleet-%d", j);
            const char *args[] = {"--redis",   o->url, "--queue",       q,      "--builtin", "noop",
                                  "--id",      id,     "--concurrency", cs,     "--keep",    "-1",
                                  "--keep-ms", "0",    "--log-level",   "warn", NULL};
            pids[j] = bench_spawn(o, "lash-worker", args);
        }
        double t_end = 0;
        for (;;) {
            long long d = bench_done(c, q);
            if (d >= n) {
                t_end = bench_now();
                break;
            }
            if (bench_now() - t0 > 600) bench_die("fleet: only %lld of %ld rows done", d, n);
            for (int j = 0; j < k; j++)
                if (waitpid(pids[j], NULL, WNOHANG) == pids[j])
                    bench_die("fleet: lash-worker %d exited early", j);
            bench_sleep(0.005);
        }
        bench_snap(c, &s2);
        for (int j = 0; j < k; j++) {
            int st = bench_stop(pids[j]);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                bench_die("fleet: lash-worker %d did not exit 0 on SIGTERM", j);
        }
        double cpu = bench_children_cpu() - cpu0;
        bench_verify_completed(c, q, n, 0);

        snprintf(key, sizeof key, "fleet.w%d.rate", k);
        snprintf(label, sizeof label, "drain, %d lash-worker process(es), c=%d each", k, conc);
        bench_emit(key, label, "jobs/s", (double)n / (t_end - t0), false);
        snprintf(key, sizeof key, "fleet.w%d.redis_us", k);
        snprintf(label, sizeof label, "drain %d worker(s): Redis CPU per process", k);
        bench_emit(key, label, "us", (s2.cpu - s1.cpu) * 1e6 / (double)n, false);
        snprintf(key, sizeof key, "fleet.w%d.worker_us", k);
        snprintf(label, sizeof label, "drain %d worker(s): worker CPU per process", k);
        bench_emit(key, label, "us", cpu * 1e6 / (double)n, false);
    }
    lash_close(c);
}
