/* exec.c: the exec handler (see exec.h). */
#include "worker/exec.h"

#include <errno.h>
#include <ev.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proto/text.h"

extern char **environ;

/* After the program exits, how long its pipes may stay open (a grandchild may
 * hold them) before we stop reading and report. */
#define DRAIN_AFTER_EXIT 0.2

struct lash_exec {
    struct ev_loop *loop;
    pid_t pid;
    ev_child child;
    ev_io in, out, err, prog;
    ev_timer drain;
    int status;
    bool exited;
    bool flooded;        /* stdout passed result_max: the group was stopped */
    const char *payload; /* borrowed: the slot keeps it until we report */
    size_t payload_len, written;
    char *stdout_buf;
    size_t stdout_len, stdout_total, result_max;
    char *tail; /* ring of the last tail_max stderr bytes */
    size_t tail_max, tail_total;
    lash_exec_done_fn *done;
    lash_exec_progress_fn *progress;
    void *ud;
    /* the progress line being read; over the cap, only its length is counted */
    char line[LASH_PROGRESS_LINE_MAX + 2];
    size_t line_len;
    bool line_long;
};

static void close_io(lash_exec *x, ev_io *w)
{
    if (w->fd < 0) return;
    ev_io_stop(x->loop, w);
    close(w->fd);
    w->fd = -1;
}

static void stderr_tail(const lash_exec *x, char *out, size_t cap)
{
    size_t n = x->tail_total < x->tail_max ? x->tail_total : x->tail_max;
    char *lin = malloc(n + 1);
    if (!lin) {
        out[0] = 0;
        return;
    }
    size_t start = x->tail_total < x->tail_max ? 0 : x->tail_total % x->tail_max;
    for (size_t i = 0; i < n; i++)
        lin[i] = x->tail[(start + i) % (x->tail_max ? x->tail_max : 1)];
    while (n && (lin[n - 1] == '\n' || lin[n - 1] == '\r'))
        n--;
    lash_text_tail(lin, n, out, cap);
    free(lin);
}

static void report(lash_exec *x)
{
    char tail[LASH_ERROR_MAX / 2 + 1], why[LASH_ERROR_MAX];
    lash_err e;
    /* The outcome is decided: nothing of the program's may run on, not a
     * helper that ignores TERM, not a background child holding a pipe. (The
     * group id is free for reuse only once its last member is gone, so this
     * reaches no stranger; an empty group makes it fail with ESRCH.) */
    kill(-x->pid, SIGKILL);
    ev_child_stop(x->loop, &x->child);
    ev_timer_stop(x->loop, &x->drain);
    close_io(x, &x->in);
    close_io(x, &x->out);
    close_io(x, &x->err);
    close_io(x, &x->prog);
    stderr_tail(x, tail, sizeof tail);
    const char *sep = tail[0] ? ": " : "";
    int st = x->status;
    if (x->flooded) {
        snprintf(why, sizeof why, "result is over %zu bytes: the program was stopped%s%s",
                 x->result_max, sep, tail);
        x->done(x->ud, LASH_OUT_FAIL, why, strlen(why));
    } else if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
        if (x->stdout_total > x->result_max) {
            snprintf(why, sizeof why, "result is %zu bytes, over %zu", x->stdout_total,
                     x->result_max);
            x->done(x->ud, LASH_OUT_FAIL, why, strlen(why));
        } else if (lash_result_check(x->stdout_buf, x->stdout_len, x->result_max, &e)) {
            x->done(x->ud, LASH_OUT_FAIL, e.msg, strlen(e.msg));
        } else {
            x->done(x->ud, LASH_OUT_OK, x->stdout_buf ? x->stdout_buf : "", x->stdout_len);
        }
    } else {
        if (WIFEXITED(st))
            snprintf(why, sizeof why, "exit status %d%s%s", WEXITSTATUS(st), sep, tail);
        else if (WIFSIGNALED(st))
            snprintf(why, sizeof why, "killed by signal %d (%s)%s%s", WTERMSIG(st),
                     strsignal(WTERMSIG(st)), sep, tail);
        else
            snprintf(why, sizeof why, "ended with wait status %d%s%s", st, sep, tail);
        x->done(x->ud, LASH_OUT_FAIL, why, strlen(why));
    }
    free(x->stdout_buf);
    free(x->tail);
    free(x);
}

static void maybe_report(lash_exec *x)
{
    if (x->exited && x->out.fd < 0 && x->err.fd < 0) report(x);
}

static void on_child(struct ev_loop *loop, ev_child *w, int revents)
{
    (void)loop;
    (void)revents;
    lash_exec *x = w->data;
    x->status = w->rstatus;
    x->exited = true;
    ev_child_stop(x->loop, w);
    close_io(x, &x->in);
    if (x->out.fd >= 0 || x->err.fd >= 0) ev_timer_start(x->loop, &x->drain);
    maybe_report(x);
}

static void on_drain(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void)loop;
    (void)revents;
    lash_exec *x = w->data;
    close_io(x, &x->out);
    close_io(x, &x->err);
    maybe_report(x);
}

static void on_stdin(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    lash_exec *x = w->data;
    while (x->written < x->payload_len) {
        ssize_t n = write(w->fd, x->payload + x->written, x->payload_len - x->written);
        if (n > 0) {
            x->written += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return; /* wait for room */
        } else {
            break; /* EPIPE: the program does not read its input; that is its business */
        }
    }
    close_io(x, w);
}

static void on_output(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    lash_exec *x = w->data;
    char buf[16384];
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            close_io(x, w);
            maybe_report(x);
            return;
        }
        if (w == &x->out) {
            /* Keep up to result_max+1 bytes: enough to know it was too much. */
            size_t room = x->result_max + 1 - x->stdout_len;
            size_t take = (size_t)n < room ? (size_t)n : room;
            if (take) {
                char *p = realloc(x->stdout_buf, x->stdout_len + take + 1);
                if (!p)
                    take = 0;
                else
                    x->stdout_buf = p;
                memcpy(x->stdout_buf + x->stdout_len, buf, take);
                x->stdout_len += take;
                x->stdout_buf[x->stdout_len] = 0;
            }
            x->stdout_total += (size_t)n;
            if (x->stdout_total > x->result_max) {
                /* Over the cap: it can only fail now. Reading a gigabyte to
                 * the end first would be waste; stop the program instead. */
                x->flooded = true;
                kill(-x->pid, SIGKILL);
                close_io(x, w);
                maybe_report(x);
                return;
            }
        } else if (x->tail_max) {
            for (ssize_t i = 0; i < n; i++)
                x->tail[(x->tail_total++) % x->tail_max] = buf[i];
        }
    }
}

/* One line of fd 3 is complete (or the pipe ended after part of one). */
static void progress_line(lash_exec *x)
{
    if (x->progress) {
        if (x->line_long)
            x->progress(x->ud, NULL, x->line_len);
        else
            x->progress(x->ud, x->line, x->line_len);
    }
    x->line_len = 0;
    x->line_long = false;
}

static void on_progress(struct ev_loop *loop, ev_io *w, int revents)
{
    (void)loop;
    (void)revents;
    lash_exec *x = w->data;
    char buf[4096];
    for (;;) {
        ssize_t n = read(w->fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            if (x->line_len) progress_line(x); /* a last line without its newline */
            close_io(x, w);
            return;
        }
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\n') {
                progress_line(x);
            } else if (x->line_long || x->line_len == sizeof x->line) {
                x->line_long = true; /* too long to keep: count it, parse nothing */
                x->line_len++;
            } else {
                x->line[x->line_len++] = buf[i];
            }
        }
    }
}

/* Builds the child's environment: the worker's, less any LASH_* of its own,
 * plus this process's LASH_* values. */
static char **child_env(const lash_exec_spec *s, char own[6][200])
{
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 7, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "LASH_", 5) != 0) env[k++] = environ[i];
    snprintf(own[0], 200, "LASH_ID=%s", s->id);
    snprintf(own[1], 200, "LASH_QUEUE=%s", s->queue);
    snprintf(own[2], 200, "LASH_KIND=%s", s->kind);
    snprintf(own[3], 200, "LASH_ATTEMPT=%d", s->attempt);
    snprintf(own[4], 200, "LASH_FENCE=%lld", (long long)s->fence);
    snprintf(own[5], 200, "LASH_PROGRESS_FD=%d", LASH_EXEC_PROGRESS_FD);
    for (int i = 0; i < 6; i++)
        env[k++] = own[i];
    env[k] = NULL;
    return env;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* The child, between fork and exec: only async-signal-safe calls (system
 * calls; execvpe searches PATH in a buffer on the stack), since another thread
 * of the worker (metrics, an embedder's) may hold a lock at fork. On failure it
 * writes errno to err_fd (close-on-exec, so a successful exec closes it and the
 * parent reads nothing) and exits. Needs fds 0, 1 and 2 open in the worker
 * (lash-worker makes sure), so that no pipe end sits where dup2 writes. */
static void child(const char *program, char **env, int p[4][2], int err_fd, pid_t parent)
{
    /* Die with the worker: a handler must not outlive the one who would record
     * its outcome, while its lease runs out and another worker reruns it. The
     * signal reaches this process, the group leader; programs it starts in the
     * background must watch for their parent's death themselves (or run under
     * systemd or a container, which stop the whole group). */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) _exit(127);
    /* A group of its own, so a kill reaches the program's children too. */
    setpgid(0, 0);
    /* Default dispositions and an empty mask: ignored signals survive exec
     * (the worker ignores SIGPIPE), and a program must be stoppable by TERM. */
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, &dfl, NULL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* fd 3 is the progress pipe's: the error pipe moves out of its way. */
    if (err_fd <= LASH_EXEC_PROGRESS_FD &&
        (err_fd = fcntl(err_fd, F_DUPFD_CLOEXEC, LASH_EXEC_PROGRESS_FD + 1)) < 0)
        _exit(127);
    if (dup2(p[0][0], 0) < 0 || dup2(p[1][1], 1) < 0 || dup2(p[2][1], 2) < 0) goto fail;
    /* dup2 onto itself would keep close-on-exec: clear it instead. */
    if (p[3][1] == LASH_EXEC_PROGRESS_FD ? fcntl(p[3][1], F_SETFD, 0) < 0
                                         : dup2(p[3][1], LASH_EXEC_PROGRESS_FD) < 0)
        goto fail;
    /* Every descriptor of the worker's (Redis sockets, the log, other jobs'
     * pipes) is close-on-exec already; this makes sure a handler sees 0 to 3
     * only, whatever an embedding program left open. */
    if (err_fd > LASH_EXEC_PROGRESS_FD + 1)
        close_range(LASH_EXEC_PROGRESS_FD + 1, (unsigned)err_fd - 1, 0);
    close_range((unsigned)err_fd + 1, ~0U, 0);
    char *argv[] = {(char *)program, NULL};
    execvpe(program, argv, env);
fail:;
    int err = errno;
    ssize_t n = write(err_fd, &err, sizeof err);
    (void)n;
    _exit(127);
}

static lash_status spawn(lash_exec *x, const lash_exec_spec *s, int p[4][2], lash_err *e)
{
    char own[6][200];
    char **env = child_env(s, own);
    int ep[2];
    if (!env) return lash_fail(e, LASH_ENOMEM, "out of memory");
    if (pipe2(ep, O_CLOEXEC) != 0) {
        free(env);
        return lash_fail(e, LASH_EIO, "pipe: %s", strerror(errno));
    }
    /* fork, not posix_spawn: the parent-death signal can only be set between
     * fork and exec. The worker is small, so the page-table copy is cheap. */
    pid_t parent = getpid(), pid = fork();
    if (pid == 0) {
        close(ep[0]);
        child(s->program, env, p, ep[1], parent);
    }
    int err = 0;
    close(ep[1]);
    free(env);
    if (pid < 0) {
        close(ep[0]);
        return lash_fail(e, LASH_EIO, "cannot start %s: fork: %s", s->program, strerror(errno));
    }
    setpgid(pid, pid); /* as the child does: whichever runs first, a kill finds the group */
    x->pid = pid;
    ssize_t n;
    while ((n = read(ep[0], &err, sizeof err)) < 0 && errno == EINTR)
        ;
    close(ep[0]);
    if (n == (ssize_t)sizeof err) {
        waitpid(pid, NULL, 0);
        x->pid = 0;
        return lash_fail(e, LASH_EINVAL, "cannot start %s: %s", s->program, strerror(err));
    }
    return LASH_OK;
}

lash_status lash_exec_start(struct ev_loop *loop, const lash_exec_spec *s, lash_exec_done_fn *done,
                            void *ud, lash_exec **out, lash_err *e)
{
    /* stdin, stdout, stderr, progress (fd 3) */
    int p[4][2] = {{-1, -1}, {-1, -1}, {-1, -1}, {-1, -1}};
    lash_exec *x = calloc(1, sizeof *x);
    lash_status st = LASH_OK;
    if (!x) return lash_fail(e, LASH_ENOMEM, "out of memory");
    x->tail_max = s->tail_max;
    if (x->tail_max && !(x->tail = malloc(x->tail_max)))
        st = lash_fail(e, LASH_ENOMEM, "out of memory");
    for (int i = 0; i < 4 && !st; i++)
        if (pipe2(p[i], O_CLOEXEC) != 0) st = lash_fail(e, LASH_EIO, "pipe: %s", strerror(errno));
    if (!st) st = spawn(x, s, p, e);
    /* The child's ends are the child's now. */
    if (p[0][0] >= 0) close(p[0][0]);
    if (p[1][1] >= 0) close(p[1][1]);
    if (p[2][1] >= 0) close(p[2][1]);
    if (p[3][1] >= 0) close(p[3][1]);
    if (!st && (set_nonblock(p[0][1]) || set_nonblock(p[1][0]) || set_nonblock(p[2][0]) ||
                set_nonblock(p[3][0])))
        st = lash_fail(e, LASH_EIO, "fcntl: %s", strerror(errno));
    if (st) {
        for (int i = 0; i < 4; i++) {
            if (i == 0 && p[0][1] >= 0) close(p[0][1]);
            if (i > 0 && p[i][0] >= 0) close(p[i][0]);
        }
        if (x->pid > 0) { /* spawned, but we cannot talk to it: stop it */
            kill(-x->pid, SIGKILL);
            waitpid(x->pid, NULL, 0);
        }
        free(x->tail);
        free(x);
        return st;
    }
    x->loop = loop;
    x->payload = s->payload;
    x->payload_len = s->payload_len;
    x->result_max = s->result_max;
    x->done = done;
    x->progress = s->progress;
    x->ud = ud;
    ev_child_init(&x->child, on_child, x->pid, 0);
    ev_io_init(&x->in, on_stdin, p[0][1], EV_WRITE);
    ev_io_init(&x->out, on_output, p[1][0], EV_READ);
    ev_io_init(&x->err, on_output, p[2][0], EV_READ);
    ev_io_init(&x->prog, on_progress, p[3][0], EV_READ);
    ev_timer_init(&x->drain, on_drain, DRAIN_AFTER_EXIT, 0);
    x->child.data = x->in.data = x->out.data = x->err.data = x->prog.data = x->drain.data = x;
    ev_child_start(loop, &x->child);
    ev_io_start(loop, &x->in);
    ev_io_start(loop, &x->out);
    ev_io_start(loop, &x->err);
    ev_io_start(loop, &x->prog);
    *out = x;
    return LASH_OK;
}

void lash_exec_kill(lash_exec *x, int sig)
{
    if (x && x->pid > 0 && !x->exited) kill(-x->pid, sig);
}

lash_status lash_exec_program_check(const char *program, lash_err *e)
{
    if (!program || !*program) return lash_fail(e, LASH_EINVAL, "handler program is empty");
    if (strchr(program, '/')) {
        if (access(program, X_OK) != 0)
            return lash_fail(e, LASH_EINVAL, "handler program %s is not executable: %s", program,
                             strerror(errno));
        return LASH_OK;
    }
    const char *path = getenv("PATH");
    char buf[4096];
    for (const char *p = path ? path : "/usr/bin:/bin"; p && *p;) {
        const char *c = strchr(p, ':');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        snprintf(buf, sizeof buf, "%.*s/%s", (int)n, p, program);
        struct stat sb;
        if (stat(buf, &sb) == 0 && S_ISREG(sb.st_mode) && access(buf, X_OK) == 0) return LASH_OK;
        p = c ? c + 1 : NULL;
    }
    return lash_fail(e, LASH_EINVAL, "handler program %s not found in PATH", program);
}
