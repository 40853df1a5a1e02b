/* ha.h: real Redis deployments for the Cluster and Sentinel suites
 * (tests/test_ha_cluster.c, tests/test_ha_sentinel.c).
 *
 * Header-only, like tests/reliability/rel.h, whose worker and clean-up helpers
 * it builds on: every process started here is in rel_pids, so rel_fini kills it
 * when an assertion ends a test early. Servers listen on 127.0.0.1 only, on
 * ports found free at start (a Cluster node also needs port + 10000 for its bus).
 * Timing figures are printed as "REPORT ..." lines; they never decide a verdict
 * except as generous liveness bounds.
 */
#ifndef LASH_TESTS_HA_H
#define LASH_TESTS_HA_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <time.h>

#include "registry/conn.h"
#include "tests/reliability/rel.h"

typedef struct {
    pid_t pid;
    int port;
    char dir[200];
} ha_node;

/* Is program on PATH? (The suites skip, saying why, when one is missing.) */
static inline bool ha_have(const char *program)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", program);
    return system(cmd) == 0;
}

static inline long long ha_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline bool ha_port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0) close(fd);
    return ok;
}

/* A base port p such that p..p+n-1 (and, with bus, p+10000..p+10000+n-1) are free. */
static inline int ha_ports(int n, bool bus)
{
    srand((unsigned)(getpid() ^ (unsigned)lash_fx_ms()));
    for (int tries = 0; tries < 200; tries++) {
        int base = 20000 + rand() % 25000;
        bool ok = true;
        for (int i = 0; i < n && ok; i++)
            ok = ha_port_free(base + i) && (!bus || ha_port_free(base + 10000 + i));
        if (ok) return base;
    }
    cr_assert_fail("no free port range on 127.0.0.1");
    return 0;
}

static inline void ha_track(pid_t pid)
{
    for (int i = 0; i < 64; i++)
        if (rel_pids[i] <= 0) {
            rel_pids[i] = pid;
            return;
        }
}

/* Runs argv (NULL-terminated) with stdout/stderr appended to log and stdin from
 * in (NULL: /dev/null); waits for it when wait is set and returns its exit
 * status, else returns its pid. */
static inline int ha_run(const char *const *argv, const char *in, const char *log, bool wait)
{
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(in ? in : "/dev/null", O_RDONLY);
        if (fd >= 0) dup2(fd, 0);
        fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (!wait) {
        ha_track(pid);
        return pid;
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The last bytes of a log, for an assertion's message (one static buffer). */
static inline const char *ha_tail(const char *path)
{
    static char buf[400];
    buf[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return "(no log)";
    if (fseek(f, 0, SEEK_END) == 0) {
        long end = ftell(f);
        fseek(f, end > (long)sizeof buf - 1 ? end - (long)sizeof buf + 1 : 0, SEEK_SET);
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static inline redisContext *ha_ctx(int port)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c && !c->err) {
        redisSetTimeout(c, tv);
        return c;
    }
    if (c) redisFree(c);
    return NULL;
}

/* One command to 127.0.0.1:port; NULL when it cannot be reached. */
static inline redisReply *ha_cmdv(int port, int argc, const char **argv)
{
    redisContext *c = ha_ctx(port);
    if (!c) return NULL;
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    redisFree(c);
    return r;
}

static inline redisReply *ha_cmd(int port, const char *fmt, ...)
{
    redisContext *c = ha_ctx(port);
    if (!c) return NULL;
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    redisFree(c);
    return r;
}

/* The role of the node at port ("master", "slave", "sentinel"), "" when down. */
static inline const char *ha_role(int port, int *master_port)
{
    static __thread char role[16];
    role[0] = 0;
    if (master_port) *master_port = 0;
    redisReply *r = ha_cmd(port, "ROLE");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_STRING) {
        snprintf(role, sizeof role, "%s", r->element[0]->str);
        if (master_port && strcmp(role, "slave") == 0 && r->elements >= 3)
            *master_port = (int)r->element[2]->integer;
    }
    freeReplyObject(r);
    return role;
}

/* Polls cond(arg) every 20 ms until it holds or ms pass. */
static inline bool ha_until(bool (*cond)(void *), void *arg, int ms)
{
    long long until = lash_fx_ms() + ms;
    do {
        if (cond(arg)) return true;
        lash_fx_sleep_ms(20);
    } while (lash_fx_ms() < until);
    return cond(arg);
}

static bool ha_answers(void *p)
{
    redisReply *r = ha_cmd(*(int *)p, "PING");
    bool ok = r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING);
    freeReplyObject(r);
    return ok;
}

/* Starts redis-server (or, sentinel set, redis-sentinel with conf) on port. */
static inline void ha_start(ha_node *nd, const char *root, int port, const char *const *extra)
{
    nd->port = port;
    snprintf(nd->dir, sizeof nd->dir, "%s/n%d", root, port);
    cr_assert(mkdir(nd->dir, 0755) == 0 || errno == EEXIST);
    char portstr[16], log[260];
    snprintf(portstr, sizeof portstr, "%d", port);
    snprintf(log, sizeof log, "%s/redis.log", nd->dir);
    const char *argv[64] = {"redis-server", "--port", portstr, "--bind", "127.0.0.1", "--dir",
                            nd->dir, "--save", "", "--appendonly", "no", "--logfile", log,
                            "--daemonize", "no",
                            /* no 5 s wait before a replica's first (diskless) sync */
                            "--repl-diskless-sync-delay", "0"};
    int n = 17;
    for (int i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    char out[260];
    snprintf(out, sizeof out, "%s/stdout.log", nd->dir);
    nd->pid = ha_run(argv, NULL, out, false);
    cr_assert(ha_until(ha_answers, &nd->port, 5000), "redis-server on %d did not come up (%s)",
              port, log);
}

/* A Sentinel on port watching the primary at primary_port as `name`, with a
 * 1 s down-after (the suites fail over in seconds, not the default 30 s). */
static inline void ha_start_sentinel(ha_node *nd, const char *root, int port, int primary_port,
                                     const char *name)
{
    nd->port = port;
    snprintf(nd->dir, sizeof nd->dir, "%s/s%d", root, port);
    cr_assert(mkdir(nd->dir, 0755) == 0 || errno == EEXIST);
    char conf[260], out[260];
    snprintf(conf, sizeof conf, "%s/sentinel.conf", nd->dir);
    FILE *f = fopen(conf, "w");
    cr_assert(f);
    fprintf(f,
            "port %d\nbind 127.0.0.1\ndir %s\nlogfile %s/sentinel.log\n"
            "sentinel monitor %s 127.0.0.1 %d 2\n"
            "sentinel down-after-milliseconds %s 1000\n"
            "sentinel failover-timeout %s 10000\n"
            "sentinel parallel-syncs %s 1\n",
            port, nd->dir, nd->dir, name, primary_port, name, name, name);
    fclose(f);
    snprintf(out, sizeof out, "%s/stdout.log", nd->dir);
    const char *argv[] = {"redis-sentinel", conf, NULL};
    nd->pid = ha_run(argv, NULL, out, false);
    cr_assert(ha_until(ha_answers, &nd->port, 5000), "redis-sentinel on %d did not come up", port);
}

static inline void ha_kill9(ha_node *nd)
{
    if (nd->pid > 0) rel_kill9(nd->pid);
    nd->pid = 0;
}

/* Runs build/bin/lashctl with args; stdin from in; output to out. Exit status. */
static inline int ha_lashctl(const char *const *args, const char *in, const char *out)
{
    const char *argv[32] = {lash_fx_bin("lashctl")};
    char bin[512];
    snprintf(bin, sizeof bin, "%s", argv[0]);
    argv[0] = bin;
    int n = 1;
    for (int i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return ha_run(argv, in, out, true);
}

/* ---- what the drain left behind ----------------------------------------------- */

/* Completion times (ms, the Redis clock) of the queue's finished rows. */
static inline size_t ha_done_times(lash_conn *c, const char *queue, long long **out)
{
    char key[LASH_KEY_MAX];
    lash_key(key, queue, LASH_KEY_DONE);
    const char *argv[] = {"ZRANGE", key, "0", "-1", "WITHSCORES"};
    lash_err e;
    redisReply *r = lash_conn_command(c, queue, "zrange", 5, argv, NULL, &e);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY, "ZRANGE done: %s", r ? "bad reply" : e.msg);
    size_t n = r->elements / 2;
    *out = calloc(n ? n : 1, sizeof **out);
    for (size_t i = 0; i < n; i++)
        (*out)[i] = atoll(r->element[2 * i + 1]->str);
    freeReplyObject(r);
    return n;
}

/* The longest stretch without a completion that covers `at`: from the last
 * completion before it to the first after it (times sorted). -1: none after. */
static inline long long ha_gap_at(const long long *t, size_t n, long long at)
{
    long long before = -1, after = -1;
    for (size_t i = 0; i < n; i++) {
        if (t[i] <= at) before = t[i] > before ? t[i] : before;
        if (t[i] > at && (after < 0 || t[i] < after)) after = t[i];
    }
    if (after < 0) return -1;
    return after - (before < 0 ? at : before);
}

/* First completion after `at`, minus at (-1: none). */
static inline long long ha_first_after(const long long *t, size_t n, long long at)
{
    long long after = -1;
    for (size_t i = 0; i < n; i++)
        if (t[i] > at && (after < 0 || t[i] < after)) after = t[i];
    return after < 0 ? -1 : after - at;
}

/* The longest stretch without a completion inside [from, to] (times sorted or
 * not), counting from `from` to the first completion in it. */
static inline long long ha_max_gap(const long long *t, size_t n, long long from, long long to)
{
    long long *v = malloc((n ? n : 1) * sizeof *v);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i] >= from && t[i] <= to) v[k++] = t[i];
    long long gap = -1, prev = from;
    for (size_t i = 0; i < k; i++) /* insertion sort: k is a few thousand at most */
        for (size_t j = i; j > 0 && v[j - 1] > v[j]; j--) {
            long long x = v[j];
            v[j] = v[j - 1];
            v[j - 1] = x;
        }
    for (size_t i = 0; i < k; i++) {
        if (v[i] - prev > gap) gap = v[i] - prev;
        prev = v[i];
    }
    free(v);
    return gap;
}

static int ha_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The value of " key=" in a log line, into buf. */
static inline bool ha_field(const char *line, const char *key, char *buf, size_t cap)
{
    char k[32];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(line, k);
    if (!p) return false;
    p += strlen(k);
    size_t n = strcspn(p, " \n");
    if (n >= cap) return false;
    memcpy(buf, p, n);
    buf[n] = 0;
    return true;
}

/* Every execution the workers started, from their debug logs (a NULL-ended
 * list; "... queue=Q id=I attempt=A fence=F start KIND"): how many, how many distinct processes,
 * and how many (id, fence) pairs were started more than once. */
static inline void ha_runs(const char *const *logs, long *lines, long *ids, long *dups)
{
    size_t cap = 4096, n = 0;
    char **v = malloc(cap * sizeof *v), line[2048];
    for (; *logs; logs++) {
        FILE *f = fopen(*logs, "r");
        cr_assert(f, "no worker log %s", *logs);
        while (fgets(line, sizeof line, f)) {
            char q[80], id[160], fence[32], run[300];
            if (!strstr(line, " start ") || !ha_field(line, "queue", q, sizeof q) ||
                !ha_field(line, "id", id, sizeof id) ||
                !ha_field(line, "fence", fence, sizeof fence))
                continue;
            snprintf(run, sizeof run, "%s %s %s", q, id, fence);
            if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
            v[n++] = strdup(run);
        }
        fclose(f);
    }
    qsort(v, n, sizeof *v, ha_cmp_str);
    *lines = (long)n;
    *dups = 0;
    *ids = 0;
    for (size_t i = 0; i < n; i++) {
        if (i && strcmp(v[i], v[i - 1]) == 0) (*dups)++;
        /* distinct processes: compare up to the last space (before the fence) */
        const char *sp = strrchr(v[i], ' ');
        size_t k = sp ? (size_t)(sp - v[i]) : strlen(v[i]);
        if (!i || strncmp(v[i], v[i - 1], k) != 0 || v[i - 1][k] != ' ') (*ids)++;
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

/* Lease keys of queue, on whichever primaries the deployment has. */
typedef struct {
    const char *pattern;
    long long n;
} ha_scan;

static lash_status ha_scan_node(lash_conn *node, void *ud, lash_err *e)
{
    (void)e;
    ha_scan *s = ud;
    s->n += lash_fx_count_keys(node, s->pattern);
    return LASH_OK;
}

static inline long long ha_count_keys(lash_conn *c, const char *pattern)
{
    ha_scan s = {pattern, 0};
    lash_err e = {0};
    cr_assert_eq(lash_conn_each_primary(c, ha_scan_node, &s, &e), LASH_OK, "each primary: %s",
                 e.msg);
    return s.n;
}

#endif
