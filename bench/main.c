/* main.c: lash-bench, the benchmark program (see bench.h and bench/run.sh).
 *
 *   lash-bench --redis URL [--n N] [--quick] [--flush] SCENARIO...
 *   lash-bench report [--meta KEY=VALUE]... [--json OUT] RESULTS.jsonl...
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"

static const char usage[] =
    "usage: lash-bench --redis URL [--n N] [--quick] [--flush] SCENARIO...\n"
    "       lash-bench report [--meta KEY=VALUE]... [--json OUT] RESULTS.jsonl...\n"
    "\n"
    "Scenarios (each prints one JSON line per measurement on stdout):\n"
    "  registry  submit / claim / complete / trim rates and Redis cost, one connection\n"
    "  drain     one embedded worker drains N no-op rows at c=1, 10, 50, 256\n"
    "  fleet     1, 2, 4, 8 lash-worker processes (c=50 each) drain N no-op rows\n"
    "  submit    bulk submit: C API and lashctl submit-bulk\n"
    "  latency   poke-to-start and delayed-row (run_at) start latency of an idle worker\n"
    "  exec      fork+exec of /bin/true at c=32\n"
    "  idle      idle worker CPU and Redis commands/s; RSS at c=64\n"
    "  idlefleet Redis CPU of 20 and 100 idle lash-workers, each (less Redis alone)\n"
    "  memory    Redis bytes per pending and per terminal row\n"
    "  all       every one of them, in that order\n"
    "\n"
    "--flush lets it FLUSHALL between scenarios: give it only a Redis of its own.\n"
    "Redis CPU comes from INFO cpu, so nothing else should use that Redis meanwhile.\n";

static void self_dir(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0) {
        snprintf(out, cap, ".");
        return;
    }
    out[n] = 0;
    char *slash = strrchr(out, '/');
    if (slash) *slash = 0;
}

static void run(const bench_opts *o, const char *name)
{
    static const int conc[] = {1, 10, 50, 256};
    static const int quick_conc[] = {1, 10, 50};
    static const int workers[] = {1, 2, 4, 8};
    if (strcmp(name, "registry") == 0)
        sc_registry(o);
    else if (strcmp(name, "drain") == 0)
        o->quick ? sc_drain(o, quick_conc, 3) : sc_drain(o, conc, 4);
    else if (strcmp(name, "fleet") == 0)
        sc_fleet(o, workers, o->quick ? 2 : 4);
    else if (strcmp(name, "submit") == 0)
        sc_submit(o);
    else if (strcmp(name, "latency") == 0)
        sc_latency(o);
    else if (strcmp(name, "exec") == 0)
        sc_exec(o);
    else if (strcmp(name, "idle") == 0)
        sc_idle(o);
    else if (strcmp(name, "idlefleet") == 0)
        sc_idlefleet(o);
    else if (strcmp(name, "memory") == 0)
        sc_memory(o);
    else
        bench_die("unknown scenario '%s'\n%s", name, usage);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "report") == 0) return bench_report(argc - 1, argv + 1);
    if (argc > 1 && strcmp(argv[1], "beanstalkd") == 0) return bench_beanstalkd(argc - 1, argv + 1);
    signal(SIGPIPE, SIG_IGN);
    bench_opts o = {.url = getenv("LASH_REDIS_URL"), .n = 100000};
    self_dir(o.bin_dir, sizeof o.bin_dir);
    int first = argc;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc) {
            o.url = argv[++i];
        } else if (strcmp(argv[i], "--n") == 0 && i + 1 < argc) {
            o.n = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--quick") == 0) {
            o.quick = true;
        } else if (strcmp(argv[i], "--flush") == 0) {
            o.flush = true;
        } else if (strcmp(argv[i], "--help") == 0) {
            fputs(usage, stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "lash-bench: unknown option %s\n%s", argv[i], usage);
            return 2;
        } else {
            first = i;
            break;
        }
    }
    if (!o.url || o.n < 1 || first == argc) {
        fputs(usage, stderr);
        return 2;
    }
    for (int i = first; i < argc; i++) {
        if (strcmp(argv[i], "all") == 0) {
            static const char *const all[] = {"registry", "drain", "fleet",     "submit", "latency",
                                              "exec",     "idle",  "idlefleet", "memory"};
            for (size_t k = 0; k < sizeof all / sizeof *all; k++)
                run(&o, all[k]);
        } else {
            run(&o, argv[i]);
        }
    }
    return 0;
}
