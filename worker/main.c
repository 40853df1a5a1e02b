/* main.c: lash-worker, the daemon. Flags, each also settable by environment
 * (flags win), then one libev loop until SIGTERM/SIGINT has drained it. */
#include <ev.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "proto/record.h"
#include "proto/scripts.h"
#include "proto/version.h"
#include "worker/metrics.h"
#include "worker/notify.h"
#include "worker/worker.h"

#define MAXQ 64
#define MAXH 64

static const char usage[] =
    "usage: lash-worker [options]\n"
    "       lash-worker --check [--health-file PATH] [--max-age-ms N]\n"
    "\n"
    "Drives the non-terminal processes of its queues to completion.\n"
    "Every option can also come from the environment variable shown (options win).\n"
    "\n"
    "  --redis URL            LASH_REDIS_URL    redis://[user[:password]@]host[:port][/db] or\n"
    "                                           unix:///path[?db=N]  (default "
    "redis://127.0.0.1:6379)\n"
    "                                           LASH_REDIS_PASSWORD overrides the URL's password, "
    "so\n"
    "                                           it need not appear in a process listing.\n"
    "                                           Any node of a Redis Cluster will do. Under "
    "Sentinel:\n"
    "                                           "
    "redis-sentinel://[user@]h1:26379,h2:26379[/db]#NAME\n"
    "                                           (Sentinels' own auth: LASH_SENTINEL_PASSWORD,\n"
    "                                           LASH_SENTINEL_USER; environment only)\n"
    "  --queue NAME           LASH_QUEUES       queue to work (repeatable; env: comma-separated;\n"
    "                                           default: default)\n"
    "  --concurrency N        LASH_CONCURRENCY  processes at once (default 16)\n"
    "  --prefetch N           LASH_PREFETCH     rows claimed ahead, leased, to start the\n"
    "                                           moment a running one ends (default 0;\n"
    "                                           for many short processes, see README)\n"
    "  --lease-ms MS          LASH_LEASE_MS     lease ttl, renewed every third (default 30000)\n"
    "  --poll-ms MS           LASH_POLL_MS      safety-net poll interval (default 400)\n"
    "  --grace-ms MS          LASH_GRACE_MS     on SIGTERM, how long running processes may\n"
    "                                           finish before they are stopped (default 10000)\n"
    "  --reply-timeout-ms MS  LASH_REPLY_TIMEOUT_MS  no reply from Redis within this: reconnect\n"
    "                                           (100..lease/3; default min(10000, lease/3))\n"
    "  --handler KIND=PROG    LASH_HANDLERS     run PROG for KIND: payload on stdin, stdout is "
    "the\n"
    "                                           result (repeatable; env: comma-separated)\n"
    "  --builtin NAME         LASH_BUILTINS     enable a built-in kind: noop, sleep, fail\n"
    "  --id ID                LASH_WORKER_ID    worker id (default host:pid); leases and\n"
    "                                           lashctl workers show it as ID#<nonce>, a nonce\n"
    "                                           new at every start\n"
    "  --keep N               LASH_KEEP         terminal rows to retain per queue (default 10000;\n"
    "                                           -1: no count bound)\n"
    "  --keep-ms MS           LASH_KEEP_MS      drop terminal rows older than this (default 7 "
    "days;\n"
    "                                           0: no age bound)\n"
    "  --log-format text|json LASH_LOG_FORMAT   (default text)\n"
    "  --log-level LEVEL      LASH_LOG_LEVEL    error, warn, info, debug (default info)\n"
    "  --log-file PATH        LASH_LOG_FILE     append logs there (reopened on SIGHUP);\n"
    "                                           default stderr\n"
    "  --health-file PATH     LASH_HEALTH_FILE  touched while Redis answers (for --check); first\n"
    "                                           written once connected and the first drive ran,\n"
    "                                           when READY=1 also goes to $NOTIFY_SOCKET "
    "(systemd)\n"
    "  --metrics-listen ADDR  LASH_METRICS_LISTEN  serve Prometheus metrics at "
    "http://ADDR/metrics\n"
    "                                           (e.g. 127.0.0.1:9465; off by default; needs\n"
    "                                           libmicrohttpd12)\n"
    "  --failover-ms MS       LASH_FAILOVER_MS  Cluster, Sentinel: how long a new connection "
    "keeps\n"
    "                                           trying to reach a primary before it counts as\n"
    "                                           lost (default 30000)\n"
    "  --check                                  exit 0 if the health file is fresh\n"
    "  --max-age-ms N                           freshness bound for --check (default 10000)\n"
    "  --version                                print the version and the Lua library version\n"
    "  --help\n"
    "\n"
    "Signals: SIGTERM/SIGINT drain (a second one stops at once), SIGHUP reopens the log file.\n"
    "Exit: 0 after a drain, 2 on bad options, 1 on other start-up errors.\n";

typedef struct {
    lash_worker_config c;
    const char *queues[MAXQ];
    int nq;
    char *handlers[MAXH];
    int nh;
    const char *builtins[8];
    int nb;
    bool check;
    long long max_age_ms;
    char *envq, *envh, *envb; /* strdup'd env lists, split in place */
    const char *metrics_listen;
} opts;

static int die_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "lash-worker: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see lash-worker --help)\n");
    return 2;
}

/* An integer flag. Only its syntax is checked here: the bounds of every
 * setting are lash_worker_config_check's (lash_worker_new runs it). */
static int num(const char *name, const char *s, long long *out)
{
    int64_t v;
    if (!s || !lash_parse_i64(s, strlen(s), INT32_MIN, INT64_MAX / 4, &v)) {
        fprintf(stderr, "lash-worker: %s must be an integer, got '%s'\n", name, s ? s : "");
        return 2;
    }
    *out = v;
    return 0;
}

/* Splits a comma-separated env value into list (in place). */
static int split(char *s, const char **list, int *n, int max)
{
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        while (*tok == ' ')
            tok++;
        if (!*tok) continue;
        if (*n >= max) return -1;
        list[(*n)++] = tok;
    }
    return 0;
}

enum {
    O_REDIS = 256,
    O_QUEUE,
    O_CONC,
    O_PREFETCH,
    O_LEASE,
    O_POLL,
    O_GRACE,
    O_HANDLER,
    O_BUILTIN,
    O_ID,
    O_KEEP,
    O_KEEPMS,
    O_LFMT,
    O_LLVL,
    O_LFILE,
    O_HEALTH,
    O_CHECK,
    O_MAXAGE,
    O_FAILOVER,
    O_REPLY,
    O_METRICS,
    O_VERSION,
    O_HELP
};

/* Applies one setting (from a flag or the environment). */
static int apply(opts *o, int key, const char *v)
{
    long long n;
    int rc;
    switch (key) {
    case O_REDIS:
        o->c.redis_url = v;
        break;
    case O_QUEUE:
        if (o->nq >= MAXQ) return die_usage("at most 64 queues%s", "");
        o->queues[o->nq++] = v;
        break;
    case O_CONC:
        if ((rc = num("--concurrency", v, &n))) return rc;
        o->c.turn.concurrency = n > INT32_MAX ? INT32_MAX : (int)n;
        break;
    case O_PREFETCH:
        if ((rc = num("--prefetch", v, &n))) return rc;
        o->c.turn.prefetch = n > INT32_MAX ? INT32_MAX : (int)n;
        break;
    case O_LEASE:
        if ((rc = num("--lease-ms", v, &n))) return rc;
        o->c.turn.lease_ms = n;
        break;
    case O_POLL:
        if ((rc = num("--poll-ms", v, &n))) return rc;
        o->c.turn.poll_ms = n;
        break;
    case O_GRACE:
        if ((rc = num("--grace-ms", v, &n))) return rc;
        o->c.turn.grace_ms = n;
        break;
    case O_HANDLER:
        if (o->nh >= MAXH) return die_usage("at most 64 handlers%s", "");
        o->handlers[o->nh++] = (char *)v;
        break;
    case O_BUILTIN:
        if (o->nb >= 8) return die_usage("too many --builtin%s", "");
        o->builtins[o->nb++] = v;
        break;
    case O_ID:
        o->c.worker_id = v;
        break;
    case O_KEEP:
        if ((rc = num("--keep", v, &n))) return rc;
        o->c.keep.keep_n = n;
        break;
    case O_KEEPMS:
        if ((rc = num("--keep-ms", v, &n))) return rc;
        o->c.keep.keep_ms = n;
        break;
    case O_LFMT:
        if ((rc = lash_log_format_parse(v)) < 0)
            return die_usage("--log-format must be text or json, got '%s'", v);
        o->c.log.format = (lash_log_format)rc;
        break;
    case O_LLVL:
        if ((rc = lash_log_level_parse(v)) < 0)
            return die_usage("--log-level must be error, warn, info or debug, got '%s'", v);
        o->c.log.level = (lash_log_level)rc;
        break;
    case O_LFILE:
        o->c.log.path = v;
        break;
    case O_HEALTH:
        o->c.health_file = v;
        break;
    case O_METRICS:
        o->metrics_listen = v;
        break;
    case O_MAXAGE:
        if ((rc = num("--max-age-ms", v, &n))) return rc;
        if (n < 1 || n > 86400000) return die_usage("--max-age-ms must be 1..86400000, got %s", v);
        o->max_age_ms = n;
        break;
    case O_FAILOVER:
        if ((rc = num("--failover-ms", v, &n))) return rc;
        if (n < 1 || n > 3600000) return die_usage("--failover-ms must be 1..3600000, got %s", v);
        o->c.failover_ms = (int)n;
        break;
    case O_REPLY:
        if ((rc = num("--reply-timeout-ms", v, &n))) return rc;
        o->c.turn.reply_timeout_ms = n;
        break;
    }
    return 0;
}

static int from_env(opts *o)
{
    static const struct {
        const char *name;
        int key;
    } vars[] = {{"LASH_REDIS_URL", O_REDIS},        {"LASH_CONCURRENCY", O_CONC},
                {"LASH_PREFETCH", O_PREFETCH},      {"LASH_LEASE_MS", O_LEASE},
                {"LASH_POLL_MS", O_POLL},           {"LASH_GRACE_MS", O_GRACE},
                {"LASH_WORKER_ID", O_ID},           {"LASH_KEEP", O_KEEP},
                {"LASH_KEEP_MS", O_KEEPMS},         {"LASH_LOG_FORMAT", O_LFMT},
                {"LASH_LOG_LEVEL", O_LLVL},         {"LASH_LOG_FILE", O_LFILE},
                {"LASH_HEALTH_FILE", O_HEALTH},     {"LASH_REPLY_TIMEOUT_MS", O_REPLY},
                {"LASH_METRICS_LISTEN", O_METRICS}, {"LASH_FAILOVER_MS", O_FAILOVER}};
    int rc;
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) {
        const char *v = getenv(vars[i].name);
        if (v && *v && (rc = apply(o, vars[i].key, v))) return rc;
    }
    const char *q = getenv("LASH_QUEUES"), *h = getenv("LASH_HANDLERS"),
               *b = getenv("LASH_BUILTINS");
    if ((q && *q && (!(o->envq = strdup(q)) || split(o->envq, o->queues, &o->nq, MAXQ))) ||
        (h && *h &&
         (!(o->envh = strdup(h)) || split(o->envh, (const char **)o->handlers, &o->nh, MAXH))) ||
        (b && *b && (!(o->envb = strdup(b)) || split(o->envb, o->builtins, &o->nb, 8))))
        return die_usage("LASH_QUEUES, LASH_HANDLERS or LASH_BUILTINS has too many entries%s", "");
    return 0;
}

static int parse(opts *o, int argc, char **argv)
{
    static const struct option longs[] = {{"redis", 1, 0, O_REDIS},
                                          {"queue", 1, 0, O_QUEUE},
                                          {"concurrency", 1, 0, O_CONC},
                                          {"prefetch", 1, 0, O_PREFETCH},
                                          {"lease-ms", 1, 0, O_LEASE},
                                          {"poll-ms", 1, 0, O_POLL},
                                          {"grace-ms", 1, 0, O_GRACE},
                                          {"handler", 1, 0, O_HANDLER},
                                          {"builtin", 1, 0, O_BUILTIN},
                                          {"id", 1, 0, O_ID},
                                          {"keep", 1, 0, O_KEEP},
                                          {"keep-ms", 1, 0, O_KEEPMS},
                                          {"log-format", 1, 0, O_LFMT},
                                          {"log-level", 1, 0, O_LLVL},
                                          {"log-file", 1, 0, O_LFILE},
                                          {"health-file", 1, 0, O_HEALTH},
                                          {"check", 0, 0, O_CHECK},
                                          {"max-age-ms", 1, 0, O_MAXAGE},
                                          {"failover-ms", 1, 0, O_FAILOVER},
                                          {"reply-timeout-ms", 1, 0, O_REPLY},
                                          {"metrics-listen", 1, 0, O_METRICS},
                                          {"version", 0, 0, O_VERSION},
                                          {"help", 0, 0, O_HELP},
                                          {0, 0, 0, 0}};
    /* Flags given on the command line replace the environment's lists. */
    bool seen_q = false, seen_h = false, seen_b = false;
    int key, rc;
    opterr = 0;
    while ((key = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        if (key == '?' || key == ':')
            return die_usage("unknown or incomplete option '%s'", argv[optind - 1]);
        if (key == O_HELP) {
            fputs(usage, stdout);
            exit(0);
        }
        if (key == O_VERSION) {
            printf("lash-worker %s (lua library %s)\n", lash_version(), lash_function_version());
            exit(0);
        }
        if (key == O_CHECK) {
            o->check = true;
            continue;
        }
        /* The first of a repeatable flag replaces what the environment gave. */
        if (key == O_QUEUE && !seen_q) {
            seen_q = true;
            o->nq = 0;
        }
        if (key == O_HANDLER && !seen_h) {
            seen_h = true;
            o->nh = 0;
        }
        if (key == O_BUILTIN && !seen_b) {
            seen_b = true;
            o->nb = 0;
        }
        if ((rc = apply(o, key, optarg))) return rc;
    }
    if (optind < argc) return die_usage("unexpected argument '%s'", argv[optind]);
    return 0;
}

static int check_health(const opts *o)
{
    const char *f = o->c.health_file;
    struct stat sb;
    struct timespec now;
    if (!f) {
        fprintf(stderr, "lash-worker: --check needs --health-file or LASH_HEALTH_FILE\n");
        return 2;
    }
    if (stat(f, &sb) != 0) {
        fprintf(stderr, "lash-worker: unhealthy: %s does not exist\n", f);
        return 1;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    long long age =
        (now.tv_sec - sb.st_mtim.tv_sec) * 1000LL + (now.tv_nsec - sb.st_mtim.tv_nsec) / 1000000;
    if (age > o->max_age_ms) {
        fprintf(stderr, "lash-worker: unhealthy: last sign of life %lld ms ago\n", age);
        return 1;
    }
    return 0;
}

/* Fds 0, 1 and 2 open (on /dev/null when a supervisor closed them): a pipe
 * or socket opened later must not land there, where a handler's stdio goes. */
static void std_fds_open(void)
{
    for (int fd = 0; fd < 3; fd++)
        if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", fd ? O_WRONLY : O_RDONLY) != fd) exit(1);
}

static void on_term(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop;
    (void)revents;
    lash_worker_shutdown(s->data);
}

static void on_hup(struct ev_loop *loop, ev_signal *s, int revents)
{
    (void)loop;
    (void)revents;
    lash_worker_reopen_log(s->data);
}

static void on_ready(void *ud)
{
    (void)ud;
    lash_sd_notify("READY=1");
}

/* The metrics start after the worker exists (they read its counters); the
 * hook is set before, so it finds them here. */
static lash_wmetrics *metrics;

static void on_job_end(void *ud, const char *kind, lash_outcome out, int64_t run_ms)
{
    (void)ud;
    if (metrics) lash_wmetrics_job_end(metrics, kind, out, run_ms);
}

static int setup(lash_worker *w, opts *o)
{
    lash_err e;
    for (int i = 0; i < o->nb; i++)
        if (lash_worker_builtin(w, o->builtins[i], &e))
            return fprintf(stderr, "lash-worker: %s\n", e.msg), 2;
    for (int i = 0; i < o->nh; i++) {
        char *eq = strchr(o->handlers[i], '=');
        if (!eq || eq == o->handlers[i] || !eq[1])
            return die_usage("--handler wants KIND=PROGRAM, got '%s'", o->handlers[i]);
        *eq = 0;
        if (lash_worker_exec(w, o->handlers[i], eq + 1, &e))
            return fprintf(stderr, "lash-worker: %s\n", e.msg), 2;
    }
    if (o->nb == 0 && o->nh == 0)
        fprintf(
            stderr,
            "lash-worker: warning: no --handler or --builtin: every process claimed will fail\n");
    return 0;
}

int main(int argc, char **argv)
{
    opts o;
    memset(&o, 0, sizeof o);
    lash_worker_config_default(&o.c);
    o.max_age_ms = 10000;
    int rc = from_env(&o);
    if (!rc) rc = parse(&o, argc, argv);
    if (!rc && o.check)
        rc = check_health(&o);
    else if (!rc) {
        signal(SIGPIPE, SIG_IGN);
        std_fds_open();
        if (o.c.log.path && !(o.c.log.out = fopen(o.c.log.path, "ae"))) {
            fprintf(stderr, "lash-worker: cannot open log file %s\n", o.c.log.path);
            rc = 1;
        }
        o.c.queues = o.queues;
        o.c.nqueues = o.nq;
        struct ev_loop *loop = EV_DEFAULT;
        lash_worker *w = NULL;
        lash_wmetrics *m = NULL;
        lash_err e;
        o.c.on_ready = on_ready;
        o.c.on_job_end = on_job_end;
        if (!rc && lash_worker_new(loop, &o.c, &w, &e)) {
            fprintf(stderr, "lash-worker: %s\n", e.msg);
            rc = e.code == LASH_EINVAL ? 2 : 1;
        } else if (m) {
            fprintf(stderr, "lash-worker: metrics at port %d, path /metrics\n",
                    lash_wmetrics_port(m));
        }
        if (!rc) rc = setup(w, &o);
        if (!rc && o.metrics_listen &&
            lash_wmetrics_start(o.metrics_listen, loop, w, o.c.turn.concurrency, &m, &e)) {
            fprintf(stderr, "lash-worker: %s\n", e.msg);
            rc = e.code == LASH_EINVAL ? 2 : 1;
        } else if (m) {
            fprintf(stderr, "lash-worker: metrics at port %d, path /metrics\n",
                    lash_wmetrics_port(m));
        }
        metrics = m;
        if (!rc) {
            ev_signal term, intr, hup;
            ev_signal_init(&term, on_term, SIGTERM);
            ev_signal_init(&intr, on_term, SIGINT);
            ev_signal_init(&hup, on_hup, SIGHUP);
            term.data = intr.data = hup.data = w;
            ev_signal_start(loop, &term);
            ev_signal_start(loop, &intr);
            ev_signal_start(loop, &hup);
            lash_worker_start(w);
            ev_run(loop, 0);
            ev_signal_stop(loop, &term);
            ev_signal_stop(loop, &intr);
            ev_signal_stop(loop, &hup);
        }
        metrics = NULL;
        lash_wmetrics_stop(m);
        lash_worker_free(w);
        if (o.c.log.path && o.c.log.out) fclose(o.c.log.out);
    }
    free(o.envq);
    free(o.envh);
    free(o.envb);
    return rc;
}
