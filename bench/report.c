/* report.c: `lash-bench report`: medians, min/max, ratios and targets.
 *
 * Reads the JSON lines the scenarios (and bench/peers/bullmq-bench.js) printed
 * over several runs, groups them by key in the order first seen, and prints a
 * table of the median with min and max of each; then the lash/BullMQ ratios
 * measured in the same session, then the targets, each met or not. The
 * same goes to --json OUT as one document.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"

typedef struct {
    char key[96], label[160], unit[16];
    int detail;
    double *v;
    int n, cap;
    double med, min, max;
} metric;

static metric *ms;
static int nms, capms;

static metric *get(const char *key)
{
    for (int i = 0; i < nms; i++)
        if (strcmp(ms[i].key, key) == 0) return &ms[i];
    return NULL;
}

static void add(const char *key, const char *label, const char *unit, double v, int detail)
{
    metric *m = get(key);
    if (!m) {
        if (nms == capms) {
            capms = capms ? capms * 2 : 64;
            ms = realloc(ms, (size_t)capms * sizeof *ms);
            if (!ms) bench_die("out of memory");
        }
        m = &ms[nms++];
        memset(m, 0, sizeof *m);
        snprintf(m->key, sizeof m->key, "%s", key);
        snprintf(m->label, sizeof m->label, "%s", label);
        snprintf(m->unit, sizeof m->unit, "%s", unit);
        m->detail = detail;
    }
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 4;
        m->v = realloc(m->v, (size_t)m->cap * sizeof *m->v);
        if (!m->v) bench_die("out of memory");
    }
    m->v[m->n++] = v;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void summarize(metric *m)
{
    qsort(m->v, (size_t)m->n, sizeof *m->v, cmp);
    m->min = m->v[0];
    m->max = m->v[m->n - 1];
    m->med = m->n % 2 ? m->v[m->n / 2] : (m->v[m->n / 2 - 1] + m->v[m->n / 2]) / 2;
}

static void load(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) bench_die("cannot read %s", path);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *k = cJSON_GetObjectItem(j, "key"), *l = cJSON_GetObjectItem(j, "label"),
                    *u = cJSON_GetObjectItem(j, "unit"), *v = cJSON_GetObjectItem(j, "value");
        if (cJSON_IsString(k) && cJSON_IsString(l) && cJSON_IsString(u) && cJSON_IsNumber(v))
            add(k->valuestring, l->valuestring, u->valuestring, v->valuedouble,
                cJSON_IsTrue(cJSON_GetObjectItem(j, "detail")));
        cJSON_Delete(j);
    }
    free(line);
    fclose(f);
}

static double med(const char *key)
{
    metric *m = get(key);
    return m ? m->med : -1;
}

/* The best median among keys "<prefix>c<N>.rate". */
static double best_rate(const char *prefix, char *which, size_t cap)
{
    double best = -1;
    size_t n = strlen(prefix);
    for (int i = 0; i < nms; i++) {
        const char *k = ms[i].key;
        size_t kl = strlen(k);
        if (strncmp(k, prefix, n) == 0 && k[n] == 'c' && kl > 5 &&
            strcmp(k + kl - 5, ".rate") == 0 && ms[i].med > best) {
            best = ms[i].med;
            snprintf(which, cap, "%.*s", (int)(kl - 5 - n), k + n);
        }
    }
    return best;
}

static cJSON *jratios, *jtargets;

static void ratio(const char *peer, const char *what, double lash, double other, const char *how)
{
    if (lash <= 0 || other <= 0) return;
    double r = lash / other;
    printf("  %-52s %10.3g / %-10.3g = %6.2fx  %s\n", what, lash, other, r, how);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "peer", peer);
    cJSON_AddStringToObject(o, "what", what);
    cJSON_AddNumberToObject(o, "lash", lash);
    cJSON_AddNumberToObject(o, "other", other);
    cJSON_AddNumberToObject(o, "ratio", r);
    cJSON_AddStringToObject(o, "meaning", how);
    cJSON_AddItemToArray(jratios, o);
}

/* A target: value op bound; value < 0 means not measured in this session. */
static void target(const char *what, double value, const char *op, double bound, const char *unit)
{
    const char *verdict = "not measured";
    if (value >= 0) {
        bool ok = strcmp(op, "<=") == 0  ? value <= bound
                  : strcmp(op, "<") == 0 ? value < bound
                                         : value >= bound;
        verdict = ok ? "met" : "NOT met";
    }
    printf("  %-60s %12.4g %s %-10.4g %-6s %s\n", what, value, op, bound, unit, verdict);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "target", what);
    if (value >= 0) cJSON_AddNumberToObject(o, "value", value);
    cJSON_AddStringToObject(o, "op", op);
    cJSON_AddNumberToObject(o, "bound", bound);
    cJSON_AddStringToObject(o, "unit", unit);
    cJSON_AddStringToObject(o, "verdict", verdict);
    cJSON_AddItemToArray(jtargets, o);
}

static const int conc[] = {1, 10, 50, 256};
#define NCONC (sizeof conc / sizeof *conc)

static void vs_bullmq(const char *which, double best, const char *pwhich, double pbest)
{
    char a[64], b[64], w[128];
    printf("\nlash / BullMQ, same Redis, same session (medians):\n");
    for (size_t i = 0; i < NCONC; i++) {
        snprintf(a, sizeof a, "drain.c%d.rate", conc[i]);
        snprintf(b, sizeof b, "bullmq.drain.c%d.rate", conc[i]);
        snprintf(w, sizeof w, "drain jobs/s, one worker, c=%d", conc[i]);
        ratio("bullmq", w, med(a), med(b), "higher is better for lash");
    }
    snprintf(w, sizeof w, "best drain jobs/s (lash %s, BullMQ %s)", which, pwhich);
    ratio("bullmq", w, best, pbest, "target >= 3x");
    ratio("bullmq", "bulk enqueue rows/s (C API vs addBulk)", med("submit.capi.rate"),
          med("bullmq.enqueue.rate"), "higher is better for lash");
    for (size_t i = 0; i < NCONC; i++) {
        snprintf(a, sizeof a, "drain.c%d.life_us", conc[i]);
        snprintf(b, sizeof b, "bullmq.drain.c%d.life_us", conc[i]);
        snprintf(w, sizeof w, "Redis CPU per job, enqueue+drain, c=%d", conc[i]);
        ratio("bullmq", w, med(a), med(b), "lower is better for lash");
    }
    ratio("bullmq", "worker CPU per job, c=50", med("drain.c50.worker_us"),
          med("bullmq.drain.c50.worker_us"), "lower is better for lash");
    ratio("bullmq", "start latency p50 (idle worker)", med("latency.poke.p50"),
          med("bullmq.latency.p50"), "lower is better for lash");
    ratio("bullmq", "start latency p99 (idle worker)", med("latency.poke.p99"),
          med("bullmq.latency.p99"), "lower is better for lash");
}

static void vs_beanstalkd(const char *which, double best, const char *bwhich, double bbest)
{
    char a[64], b[64], w[128];
    printf("\nlash / beanstalkd, same session (medians):\n");
    for (size_t i = 0; i < NCONC; i++) {
        snprintf(a, sizeof a, "drain.c%d.rate", conc[i]);
        snprintf(b, sizeof b, "beanstalkd.drain.c%d.rate", conc[i]);
        snprintf(w, sizeof w, "drain jobs/s, one worker / client, c=%d", conc[i]);
        ratio("beanstalkd", w, med(a), med(b), "higher is better for lash");
    }
    snprintf(w, sizeof w, "best drain jobs/s (lash %s, beanstalkd %s)", which, bwhich);
    ratio("beanstalkd", w, best, bbest, "higher is better for lash");
    for (size_t i = 0; i < NCONC; i++) {
        snprintf(a, sizeof a, "drain.c%d.life_us", conc[i]);
        snprintf(b, sizeof b, "beanstalkd.drain.c%d.server_us", conc[i]);
        snprintf(w, sizeof w, "server CPU per job, put+take+finish, c=%d", conc[i]);
        ratio("beanstalkd", w, med(a), med(b), "lower is better for lash");
    }
    ratio("beanstalkd", "start latency p50 (idle worker)", med("latency.poke.p50"),
          med("beanstalkd.latency.p50"), "lower is better for lash");
    ratio("beanstalkd", "start latency p99 (idle worker)", med("latency.poke.p99"),
          med("beanstalkd.latency.p99"), "lower is better for lash");
}

/* a / b, or -1 when either was not measured. */
static double over(double a, double b)
{
    return a > 0 && b > 0 ? a / b : -1;
}

static void ratios_and_targets(void)
{
    char which[32], pwhich[32], bwhich[32];
    jratios = cJSON_CreateArray();
    jtargets = cJSON_CreateArray();
    double best = best_rate("drain.", which, sizeof which);
    double pbest = best_rate("bullmq.drain.", pwhich, sizeof pwhich);
    double bbest = best_rate("beanstalkd.drain.", bwhich, sizeof bwhich);
    if (pbest > 0) vs_bullmq(which, best, pwhich, pbest);
    if (bbest > 0) vs_beanstalkd(which, best, bwhich, bbest);
    if (pbest <= 0 && bbest <= 0)
        printf("\n(no peer results in this session: run with --peers for the ratios)\n");

    printf("\nTargets (issue 14):\n");
    double life = med("registry.life.redis_us");
    target("Redis CPU per process, submit+claim+complete (registry)", life, "<=", 12, "us");
    target("Redis CPU per process, claim+complete, 4 worker processes", med("fleet.w4.redis_us"),
           "<=", 12, "us");
    target("drain c=50 / BullMQ best", over(med("drain.c50.rate"), pbest), ">=", 3, "x");
    target("drain c=256 / BullMQ best", over(med("drain.c256.rate"), pbest), ">=", 3, "x");
    target("drain c=1 / beanstalkd c=1",
           over(med("drain.c1.rate"), med("beanstalkd.drain.c1.rate")), ">=", 1, "x");
    target("drain c=1 --prefetch 15 / beanstalkd c=1",
           over(med("drain.c1p15.rate"), med("beanstalkd.drain.c1.rate")), ">=", 1, "x");
    target("start latency p50 / beanstalkd p50",
           over(med("latency.poke.p50"), med("beanstalkd.latency.p50")), "<=", 1, "x");
    target("start latency p99 (idle worker)", med("latency.poke.p99"), "<=", 1.5, "ms");
    target("idle worker, 20 idle: Redis CPU each", med("idlefleet.w20.pct_each"), "<=", 0.005,
           "% core");
    target("idle worker, 100 idle: Redis CPU each", med("idlefleet.w100.pct_each"), "<=", 0.005,
           "% core");
    target("8 workers / (0.8 / Redis CPU per process)",
           over(med("fleet.w8.rate"), life > 0 ? 0.8e6 / life : -1), ">=", 1, "x");
    target("Redis memory per pending row", med("memory.pending"), "<=", 250, "bytes");
    target("Redis memory per retained terminal row", med("memory.terminal"), "<=", 300, "bytes");

    printf("\nStanding targets (issue 6):\n");
    target("worker CPU per no-op process, c=50", med("drain.c50.worker_us"), "<=", 8, "us");
    double w1 = med("fleet.w1.rate"), w2 = med("fleet.w2.rate");
    target("2 workers / 1 worker throughput (no worse: >= 0.85)", over(w2, w1), ">=", 0.85, "x");
    double cap = med("submit.capi.rate"), ctl = med("submit.lashctl.rate");
    target("bulk submit (best of C API, lashctl)", cap > ctl ? cap : ctl, ">=", 100000, "rows/s");
    target("delayed row p99, run_at to start (poll 100 ms)", med("latency.poll.p99"), "<=", 105,
           "ms");
    target("exec /bin/true at c=32", med("exec.c32.rate"), ">=", 2000, "procs/s");
    target("idle worker CPU", med("idle.cpu_pct"), "<", 1, "% core");
    target("worker RSS at c=64 after a drain", med("idle.rss_kib"), "<", 8192, "KiB");
}

int bench_report(int argc, char **argv)
{
    const char *out = NULL;
    cJSON *meta = cJSON_CreateObject();
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (strcmp(argv[i], "--meta") == 0 && i + 1 < argc) {
            char *kv = argv[++i], *eq = strchr(kv, '=');
            if (!eq) bench_die("--meta wants KEY=VALUE");
            *eq = 0;
            cJSON_AddStringToObject(meta, kv, eq + 1);
        } else {
            load(argv[i]);
        }
    }
    if (nms == 0) bench_die("report: no measurements");
    for (int i = 0; i < nms; i++)
        summarize(&ms[i]);

    for (cJSON *m = meta->child; m; m = m->next)
        printf("%-10s %s\n", m->string, m->valuestring);
    printf("\n%-58s %-8s %12s %12s %12s %4s\n", "measurement", "unit", "median", "min", "max",
           "runs");
    for (int i = 0; i < nms; i++) {
        metric *m = &ms[i];
        if (m->detail) continue;
        printf("%-58s %-8s %12.5g %12.5g %12.5g %4d\n", m->label, m->unit, m->med, m->min, m->max,
               m->n);
    }
    ratios_and_targets();

    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_CreateArray();
    cJSON_AddItemToObject(doc, "meta", meta);
    for (int i = 0; i < nms; i++) {
        metric *m = &ms[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "key", m->key);
        cJSON_AddStringToObject(o, "label", m->label);
        cJSON_AddStringToObject(o, "unit", m->unit);
        cJSON_AddNumberToObject(o, "median", m->med);
        cJSON_AddNumberToObject(o, "min", m->min);
        cJSON_AddNumberToObject(o, "max", m->max);
        cJSON_AddItemToObject(o, "values", cJSON_CreateDoubleArray(m->v, m->n));
        if (m->detail) cJSON_AddTrueToObject(o, "detail");
        cJSON_AddItemToArray(arr, o);
    }
    cJSON_AddItemToObject(doc, "metrics", arr);
    cJSON_AddItemToObject(doc, "ratios", jratios);
    cJSON_AddItemToObject(doc, "targets", jtargets);
    if (out) {
        char *text = cJSON_Print(doc);
        FILE *f = fopen(out, "w");
        if (!f || !text || fputs(text, f) < 0 || fclose(f) != 0) bench_die("cannot write %s", out);
        free(text);
    }
    cJSON_Delete(doc);
    for (int i = 0; i < nms; i++)
        free(ms[i].v);
    free(ms);
    return 0;
}
