/* wfx.c: the worker-suite fixture (see wfx.h). */
#include "wfx.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/keys.h"

extern char **environ;

/* ---- the private Redis and a connection to it ---------------------------------- */

lash_fx_redis R;
lash_conn *C;

void up(const char *const *extra)
{
    lash_fx_redis_start(&R, extra);
    C = lash_fx_connect(&R);
}

void reconnect(void)
{
    lash_close(C);
    C = lash_fx_connect(&R);
}

redisReply *vcmd(const char *fmt, va_list ap)
{
    redisContext *ctx = lash_conn_redis(C);
    redisReply *r = redisvCommand(ctx, fmt, ap);
    cr_assert(r, "redis command '%s' failed: %s", fmt, ctx->errstr);
    cr_assert(r->type != REDIS_REPLY_ERROR, "redis command '%s': %s", fmt, r->str);
    return r;
}

/* A raw command; the caller frees the reply. */
redisReply *cmd(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(fmt, ap);
    va_end(ap);
    return r;
}

void cmd_do(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    freeReplyObject(vcmd(fmt, ap));
    va_end(ap);
}

long long cmd_int(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = vcmd(fmt, ap);
    va_end(ap);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "'%s' did not answer an integer", fmt);
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* A field of row id of queue q (NULL when missing); into buf. */
const char *hget(const char *q, const char *id, const char *field, char *buf, size_t cap)
{
    char key[LASH_KEY_MAX + 64];
    snprintf(key, sizeof key, "lash:{%s}:p:%s", q, id);
    redisReply *r = cmd("HGET %s %s", key, field);
    const char *out = NULL;
    if (r->type == REDIS_REPLY_STRING) {
        snprintf(buf, cap, "%.*s", (int)r->len, r->str);
        out = buf;
    }
    freeReplyObject(r);
    return out;
}

bool row_is(const char *q, const char *id, const char *state)
{
    char buf[64];
    const char *s = hget(q, id, "state", buf, sizeof buf);
    return s && strcmp(s, state) == 0;
}

bool lease_exists(const char *q, const char *id)
{
    char key[LASH_KEY_MAX + 64];
    snprintf(key, sizeof key, "lash:{%s}:lease:%s", q, id);
    return cmd_int("EXISTS %s", key) == 1;
}

long long lease_keys(const char *q)
{
    return lash_fx_lease_keys(C, q);
}

lash_stats stats(const char *q)
{
    return lash_fx_stats(C, q);
}

lash_record get(const char *q, const char *id)
{
    return lash_fx_get(C, q, id);
}

/* The events of kind ev recorded for id in the queue's stream. */
int events(const char *q, const char *id, const char *ev)
{
    char key[LASH_KEY_MAX];
    redisReply *r = cmd("XRANGE %s - +", lash_key(key, q, LASH_KEY_EVENTS));
    int n = 0;
    for (size_t i = 0; i < r->elements; i++) {
        redisReply *f = r->element[i]->element[1];
        const char *e = NULL, *rid = NULL;
        for (size_t k = 0; k + 1 < f->elements; k += 2) {
            if (strcmp(f->element[k]->str, "event") == 0) e = f->element[k + 1]->str;
            if (strcmp(f->element[k]->str, "id") == 0) rid = f->element[k + 1]->str;
        }
        n += e && rid && strcmp(e, ev) == 0 && strcmp(rid, id) == 0;
    }
    freeReplyObject(r);
    return n;
}

long long subscribers(const char *q)
{
    char chan[LASH_KEY_MAX];
    lash_key(chan, q, LASH_CHAN_POKE);
    redisReply *r = cmd("PUBSUB NUMSUB %s", chan);
    long long n = r->elements == 2 ? r->element[1]->integer : -1;
    freeReplyObject(r);
    r = cmd("PUBSUB SHARDNUMSUB %s", chan);
    long long ns = r->elements == 2 ? r->element[1]->integer : -1;
    freeReplyObject(r);
    return ns < n ? ns : n;
}

/* ---- submitting -------------------------------------------------------------------- */

void submit_o(const char *q, const char *id, const char *kind, const char *payload, opts o)
{
    lash_submission s = {.id = id,
                         .kind = kind,
                         .payload = payload,
                         .payload_len = payload ? strlen(payload) : 0,
                         .max_attempts = o.max_attempts,
                         .timeout_ms = o.timeout_ms,
                         .on_lost = o.abandon ? LASH_ON_LOST_ABANDON : LASH_ON_LOST_RERUN};
    lash_submitted out;
    lash_err e = {0};
    cr_assert_eq(lash_submit(C, q, &s, 1, &out, &e), LASH_OK, "submit %s: %s", id, e.msg);
    cr_assert_eq(out.status, LASH_SUB_CREATED, "submit %s: %s", id, out.msg);
}

void submit(const char *q, const char *id, const char *kind, const char *payload)
{
    submit_o(q, id, kind, payload, (opts){0});
}

/* n rows "<prefix><i>" of one kind and payload, in one batch. */
void submit_many(const char *q, const char *prefix, int n, const char *kind, const char *payload)
{
    lash_submission *s = calloc((size_t)n, sizeof *s);
    lash_submitted *out = calloc((size_t)n, sizeof *out);
    char(*ids)[32] = calloc((size_t)n, sizeof *ids);
    cr_assert(s && out && ids);
    for (int i = 0; i < n; i++) {
        snprintf(ids[i], sizeof ids[i], "%s%d", prefix, i);
        s[i] = (lash_submission){
            .id = ids[i], .kind = kind, .payload = payload, .payload_len = strlen(payload)};
    }
    lash_err e = {0};
    cr_assert_eq(lash_submit(C, q, s, (size_t)n, out, &e), LASH_OK, "submit: %s", e.msg);
    for (int i = 0; i < n; i++)
        cr_assert_eq(out[i].status, LASH_SUB_CREATED, "%s: %s", ids[i], out[i].msg);
    free(s);
    free(out);
    free(ids);
}

void ran_once(const char *q, const char *prefix, int n)
{
    for (int i = 0; i < n; i++) {
        char id[LASH_ID_MAX + 1];
        snprintf(id, sizeof id, "%s%d", prefix, i);
        lash_record r = get(q, id);
        cr_assert_eq(r.attempt, 1, "%s ran %d times", id, r.attempt);
        lash_record_free(&r);
    }
}

/* A pending row written with raw commands, no PUBLISH: what a submit would
 * write, as field/value pairs (NULL-terminated), due at once. */
void raw_row(const char *q, const char *id, const char *const *fv)
{
    char key[LASH_KEY_MAX + 64], due[LASH_KEY_MAX];
    snprintf(key, sizeof key, "lash:{%s}:p:%s", q, id);
    for (int i = 0; fv[i]; i += 2)
        cmd_do("HSET %s %s %s", key, fv[i], fv[i + 1]);
    cmd_do("ZADD %s 0 %s", lash_key(due, q, LASH_KEY_DUE), id);
}

/* ---- waiting ------------------------------------------------------------------------ */

bool group_gone(pid_t pgid)
{
    return kill(-pgid, 0) == -1 && errno == ESRCH;
}

bool file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f) return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* ---- workers ----------------------------------------------------------------------- */

wproc W[MAXW];

void path_in(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", R.dir, name);
}

/* Starts a program with stdout/stderr to <dir>/<name>.err, stdin from
 * /dev/null, no LASH_* variable of the test's environment but env's
 * ("NAME=value", NULL-terminated, may be NULL), default signal handling. */
pid_t spawn(const char *name, const char *const *env, const char *const *argv)
{
    char errp[256];
    snprintf(errp, sizeof errp, "%s/%s.err", R.dir, name);
    pid_t pid = fork();
    cr_assert(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int in = open("/dev/null", O_RDONLY);
        int err = open(errp, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (in < 0 || err < 0) _exit(126);
        dup2(in, 0);
        dup2(err, 1);
        dup2(err, 2);
        for (int again = 1; again;) {
            again = 0;
            for (char **e = environ; *e; e++) {
                if (strncmp(*e, "LASH_", 5) == 0) {
                    char var[256];
                    snprintf(var, sizeof var, "%.*s", (int)strcspn(*e, "="), *e);
                    unsetenv(var);
                    again = 1;
                    break;
                }
            }
        }
        for (int i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGCHLD, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

wproc *track(const char *name, pid_t pid)
{
    for (int i = 0; i < MAXW; i++) {
        if (W[i].pid == 0) {
            W[i].pid = pid;
            snprintf(W[i].name, sizeof W[i].name, "%s", name);
            return &W[i];
        }
    }
    cr_assert_fail("too many workers");
    return NULL;
}

/* Starts lash-worker --id name with a log file <dir>/<name>.log (debug level)
 * and a short default grace; args (NULL-terminated) come after and win. */
pid_t worker_env(const char *name, const char *const *env, const char *const *args)
{
    char logp[256];
    snprintf(logp, sizeof logp, "%s/%s.log", R.dir, name);
    const char *argv[64] = {lash_fx_bin("lash-worker"),
                            "--redis",
                            R.url,
                            "--id",
                            name,
                            "--log-file",
                            logp,
                            "--log-level",
                            "debug",
                            "--grace-ms",
                            "1000"};
    int n = 0;
    while (argv[n])
        n++;
    for (int i = 0; args && args[i] && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return track(name, spawn(name, env, argv))->pid;
}

wproc *find(pid_t pid)
{
    for (int i = 0; i < MAXW; i++)
        if (W[i].pid == pid && pid > 0) return &W[i];
    return NULL;
}

/* Waits up to ms for pid to exit: its exit status, 128 + signal, or -1 when it
 * is still running. */
int wait_exit(pid_t pid, int ms)
{
    long long end = lash_fx_ms() + ms;
    int status;
    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid) {
            wproc *w = find(pid);
            if (w) w->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        cr_assert(r == 0, "waitpid: %s", strerror(errno));
        if (lash_fx_ms() >= end) return -1;
        lash_fx_sleep_ms(10);
    }
}

bool alive(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) == 0;
}

void kill9(pid_t pid)
{
    kill(pid, SIGKILL);
    cr_assert_eq(wait_exit(pid, 5000), 128 + SIGKILL);
}

/* Runs a program to completion (stdout/stderr to <dir>/<name>.err): its exit code. */
int run(const char *name, const char *const *argv)
{
    pid_t pid = spawn(name, NULL, argv);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void dump(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[1024];
    fprintf(stderr, "---- %s\n", path);
    while (fgets(line, sizeof line, f))
        fputs(line, stderr);
    fclose(f);
}

void wfx_teardown(void)
{
    /* Drain every worker still running: each must exit 0 promptly. */
    for (int i = 0; i < MAXW; i++)
        if (W[i].pid > 0) kill(W[i].pid, SIGTERM);
    for (int i = 0; i < MAXW; i++) {
        if (W[i].pid <= 0) continue;
        pid_t pid = W[i].pid;
        int code = wait_exit(pid, 8000);
        if (code < 0) {
            kill(pid, SIGKILL);
            wait_exit(pid, 5000);
        }
        cr_expect_eq(code, 0, "worker %s: exit %d after SIGTERM in teardown", W[i].name, code);
    }
    /* Sanitizer reports from any worker (even one killed on purpose). */
    char cmdline[512];
    snprintf(cmdline, sizeof cmdline,
             "grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' %s/*.err >/dev/null "
             "2>&1",
             R.dir);
    bool reports = R.dir[0] && system(cmdline) == 0;
    if (reports || getenv("LASH_TEST_VERBOSE")) {
        char p[256];
        for (int i = 0; i < MAXW; i++) {
            if (!W[i].name[0]) continue;
            snprintf(p, sizeof p, "%s/%s.err", R.dir, W[i].name);
            dump(p);
            if (getenv("LASH_TEST_VERBOSE")) {
                snprintf(p, sizeof p, "%s/%s.log", R.dir, W[i].name);
                dump(p);
            }
        }
    }
    cr_expect(!reports, "a sanitizer report in a worker's stderr (dumped above)");
    if (C) lash_close(C);
    C = NULL;
    lash_fx_redis_stop(&R);
}

/* ---- exec handler scripts ------------------------------------------------------------ */

/* Writes an executable /bin/sh script <dir>/<name>; its path goes into path. */
void script(char *path, size_t cap, const char *name, const char *body)
{
    path_in(path, cap, name);
    FILE *f = fopen(path, "w");
    cr_assert(f, "cannot write %s", path);
    fprintf(f, "#!/bin/sh\n%s", body);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(chmod(path, 0755), 0);
}

/* The "work" script: payload "[A,B]" means sleep A seconds on fence 1 and B
 * seconds on later fences; logs "<id> <fence> <attempt> <pid>" to exec.log
 * first, prints "fence <N>" last. */
void work_script(char *path, size_t cap)
{
    char body[1024], log[256], dir[200];
    path_in(log, sizeof log, "exec.log");
    path_in(dir, sizeof dir, "ran-");
    snprintf(body, sizeof body,
             "p=$(cat | tr -d '[] ')\n"
             "echo \"$LASH_ID $LASH_FENCE $LASH_ATTEMPT $$\" >> %s\n"
             "m=%s$LASH_ID\n"
             "if [ -e \"$m\" ]; then s=${p#*,}; else s=${p%%%%,*}; : > \"$m\"; fi\n"
             "if [ \"$s\" != 0 ]; then sleep \"$s\"; fi\n"
             "echo \"fence $LASH_FENCE\"\n",
             log, dir);
    script(path, cap, "work", body);
}

/* The run-th run of id in exec.log (1-based): how many runs there were, and
 * that run's fence and pid (0 when there is no such run). */
static int scan_runs(const char *id, int run, int64_t *fence, pid_t *pid)
{
    char log[256], line[512];
    path_in(log, sizeof log, "exec.log");
    if (pid) *pid = 0;
    if (fence) *fence = 0;
    FILE *f = fopen(log, "r");
    if (!f) return 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char rid[200];
        long long fe;
        int at, p;
        if (sscanf(line, "%199s %lld %d %d", rid, &fe, &at, &p) != 4 || strcmp(rid, id) != 0)
            continue;
        if (++n != run) continue;
        if (pid) *pid = p;
        if (fence) *fence = fe;
    }
    fclose(f);
    return n;
}

int runs_of(const char *id, int run, pid_t *pid)
{
    return scan_runs(id, run, NULL, pid);
}

int64_t fence_of_run(const char *id, int run)
{
    int64_t fence;
    scan_runs(id, run, &fence, NULL);
    return fence;
}

bool owner_is(const char *owner, const char *name)
{
    size_t n = strlen(name);
    return owner && strncmp(owner, name, n) == 0 && owner[n] == '#' && strlen(owner + n + 1) == 12;
}

bool owned_by(const lash_record *r, const char *name)
{
    return owner_is(r->owner, name);
}

void expect_result(const lash_record *r)
{
    char want[64];
    snprintf(want, sizeof want, "fence %lld\n", (long long)r->fence);
    cr_assert_str_eq(r->result ? r->result : "(none)", want, "%s", r->id);
}

const char *hf(const char *q, const char *id, const char *field)
{
    static char buf[4][8192];
    static int k;
    k = (k + 1) % 4;
    const char *v = hget(q, id, field, buf[k], sizeof buf[k]);
    return v ? v : "(none)";
}
