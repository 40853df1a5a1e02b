/* cmd_top.c: `lashctl top`, a live screen of the queue (or, with --all, of
 * every queue: a line each).
 *
 * Rates are the deltas of the stats' running totals between two frames, divided
 * by the time between them, so they cost nothing on the server and agree with
 * `lashctl stats`. On a terminal the screen is redrawn in place and q or Ctrl-C
 * quits; otherwise (a pipe, a log, a test) each frame is printed as plain lines.
 */
#include <cjson/cJSON.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli/cli.h"
#include "proto/keys.h"

#define FRAME_MS 1000
/* --all: queues are found again every this many frames (SCAN walks the whole
 * keyspace; a queue's stats are one call). */
#define DISCOVER_EVERY 10
#define SHOW_WORKERS 20
/* Running rows shown with their progress: the first found in the due set. */
#define SHOW_RUNNING 10

static volatile sig_atomic_t stop_asked;

static void on_signal(int sig)
{
    (void)sig;
    stop_asked = 1;
}

typedef struct {
    lash_stats s;
    int64_t at_ms; /* monotonic, when read */
    char oldest_id[LASH_ID_MAX + 1];
    lash_worker_seen *w;
    size_t nw;
    size_t nrun;
    lash_list_row run[SHOW_RUNNING];
    lash_progress_seen prog[SHOW_RUNNING];
} frame;

enum { R_SUBMITTED, R_COMPLETED, R_FAILED, R_RETRIED, R_LOST, R_CANCELLED, R_COUNT };
static const char *const rate_names[R_COUNT] = {"submitted", "completed", "failed",
                                                "retried",   "lost",      "cancelled"};

static void totals(const lash_stats *s, int64_t t[R_COUNT])
{
    t[R_SUBMITTED] = s->total_submitted;
    t[R_COMPLETED] = s->total_completed;
    t[R_FAILED] = s->total_failed;
    t[R_RETRIED] = s->total_retried;
    t[R_LOST] = s->total_lost;
    t[R_CANCELLED] = s->total_cancelled;
}

/* Per second, from the running totals of two reads ms apart. */
static void rates_between(const lash_stats *from, const lash_stats *to, int64_t ms,
                          double rates[R_COUNT])
{
    int64_t a[R_COUNT], b[R_COUNT];
    totals(from, a);
    totals(to, b);
    for (int i = 0; i < R_COUNT; i++)
        rates[i] = ms > 0 ? (double)(b[i] - a[i]) * 1000.0 / (double)ms : 0;
}

/* A few running rows and their last progress report: one page of the list
 * and one HMGET per row. */
static lash_status read_running(lash_conn *c, const char *queue, frame *f, lash_err *e)
{
    lash_list_page p = {0};
    lash_status st = lash_list(c, queue, "running", "0", SHOW_RUNNING, &p, e);
    for (size_t i = 0; !st && i < p.n && f->nrun < SHOW_RUNNING; i++) {
        f->run[f->nrun] = p.rows[i];
        st = lash_read_progress(c, queue, p.rows[i].id, &f->prog[f->nrun], e);
        f->nrun++;
    }
    lash_list_page_free(&p);
    return st;
}

static lash_status read_frame(lash_conn *c, const char *queue, frame *f, lash_err *e)
{
    int64_t now;
    memset(f, 0, sizeof *f);
    lash_status st = lash_get_stats(c, queue, &f->s, e);
    if (!st) st = lash_read_workers(c, queue, 0, &f->w, &f->nw, &now, e);
    if (!st)
        st = lash_oldest_due(c, queue, f->s.now_ms, f->oldest_id, sizeof f->oldest_id, NULL, e);
    if (!st && f->s.count[LASH_RUNNING] > 0) st = read_running(c, queue, f, e);
    f->at_ms = cli_mono_ms();
    return st;
}

static void print_json(const char *queue, const frame *f, const double *rates)
{
    cJSON *j = cli_stats_json(&f->s, queue);
    if (!j) return;
    cJSON *r = cJSON_AddObjectToObject(j, "rates");
    for (int i = 0; rates && i < R_COUNT; i++)
        cJSON_AddNumberToObject(r, rate_names[i], rates[i]);
    if (f->oldest_id[0]) cJSON_AddStringToObject(j, "oldest_id", f->oldest_id);
    cJSON *a = cJSON_AddArrayToObject(j, "worker_list");
    for (size_t i = 0; i < f->nw; i++) {
        cJSON *w = cJSON_CreateObject();
        cJSON_AddStringToObject(w, "id", f->w[i].id);
        cJSON_AddNumberToObject(w, "seconds_ago", (double)(f->s.now_ms - f->w[i].seen_ms) / 1000);
        cJSON_AddItemToArray(a, w);
    }
    cJSON *run = cJSON_AddArrayToObject(j, "running_list");
    for (size_t i = 0; i < f->nrun; i++) {
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "id", f->run[i].id);
        cJSON_AddStringToObject(r, "kind", f->run[i].kind);
        if (f->prog[i].percent >= 0) {
            cJSON_AddNumberToObject(r, "progress", f->prog[i].percent);
            cJSON_AddStringToObject(r, "progress_text", f->prog[i].text);
        }
        cJSON_AddItemToArray(run, r);
    }
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    cli_print_json(text);
}

static void print_text(FILE *out, const char *queue, const frame *f, const double *rates, bool tty)
{
    char t[40], age[32];
    fprintf(out, "lash top  queue %s  %s%s\n", queue, cli_fmt_time(f->s.now_ms, t, sizeof t),
            tty ? "  (q to quit)" : "");
    fprintf(out, "rates/s   ");
    for (int i = 0; i < R_COUNT; i++)
        if (rates)
            fprintf(out, " %s %.1f", rate_names[i], rates[i]);
        else
            fprintf(out, " %s -", rate_names[i]);
    fprintf(out, "\nstates    ");
    for (int i = 0; i < LASH_STATE_COUNT; i++)
        fprintf(out, " %s %lld", lash_state_name((lash_state)i), (long long)f->s.count[i]);
    if (f->oldest_id[0])
        fprintf(out, "\noldest     %s waiting %s\n", f->oldest_id,
                cli_fmt_age(f->s.oldest_due_ms, age, sizeof age));
    else
        fprintf(out, "\noldest     none waiting\n");
    fprintf(out, "workers    %lld alive\n", (long long)f->s.workers);
    for (size_t i = 0; i < f->nw && (!tty || i < SHOW_WORKERS); i++)
        fprintf(out, "  %-40s %.1fs ago\n", f->w[i].id,
                (double)(f->s.now_ms - f->w[i].seen_ms) / 1000);
    if (tty && f->nw > SHOW_WORKERS) fprintf(out, "  ... and %zu more\n", f->nw - SHOW_WORKERS);
    if (f->nrun) fprintf(out, "running    %zu shown\n", f->nrun);
    for (size_t i = 0; i < f->nrun; i++) {
        fprintf(out, "  %-40s %-16s", f->run[i].id, f->run[i].kind);
        if (f->prog[i].percent >= 0)
            fprintf(out, " %3d%% %s\n", f->prog[i].percent, f->prog[i].text);
        else
            fprintf(out, "    -\n");
    }
}

/* ---- --all: a line per queue ------------------------------------------------------ */

typedef struct {
    lash_queue_list l;
    lash_stats *s; /* l.n entries */
    int64_t at_ms;
} all_frame;

static void all_frame_free(all_frame *f)
{
    lash_queue_list_free(&f->l);
    free(f->s);
    memset(f, 0, sizeof *f);
}

/* The queues: found again every DISCOVER_EVERY frames, else the last frame's. */
static lash_status read_all(lash_conn *c, const all_frame *prev, bool discover, all_frame *f,
                            lash_err *e)
{
    memset(f, 0, sizeof *f);
    lash_status st = LASH_OK;
    if (discover) {
        st = lash_discover_queues(c, 0, &f->l, e);
    } else {
        f->l.names = calloc(prev->l.n ? prev->l.n : 1, sizeof *f->l.names);
        if (!f->l.names) return lash_fail(e, LASH_ENOMEM, "out of memory");
        memcpy(f->l.names, prev->l.names, prev->l.n * sizeof *f->l.names);
        f->l.n = prev->l.n;
    }
    if (!st && !(f->s = calloc(f->l.n ? f->l.n : 1, sizeof *f->s)))
        st = lash_fail(e, LASH_ENOMEM, "out of memory");
    for (size_t i = 0; !st && i < f->l.n; i++)
        st = lash_get_stats(c, f->l.names[i], &f->s[i], e);
    f->at_ms = cli_mono_ms();
    return st;
}

/* Queue i's rates against the previous frame; false when it was not there. */
static bool all_rates(const all_frame *prev, const all_frame *f, size_t i, double *rates)
{
    for (size_t j = 0; prev && j < prev->l.n; j++) {
        if (strcmp(prev->l.names[j], f->l.names[i]) != 0) continue;
        rates_between(&prev->s[j], &f->s[i], f->at_ms - prev->at_ms, rates);
        return true;
    }
    return false;
}

static void print_all(FILE *out, const all_frame *prev, const all_frame *f, bool json, bool tty)
{
    cJSON *arr = json ? cJSON_CreateArray() : NULL;
    if (!json) {
        char t[40];
        int64_t now = f->l.n ? f->s[0].now_ms : 0;
        fprintf(out, "lash top  %zu queues  %s%s\n", f->l.n,
                now ? cli_fmt_time(now, t, sizeof t) : "", tty ? "  (q to quit)" : "");
        fprintf(out, "%-24s %11s %11s %9s", "queue", "submitted/s", "completed/s", "failed/s");
        for (int k = 0; k < LASH_STATE_COUNT; k++)
            fprintf(out, " %10s", lash_state_name((lash_state)k));
        fprintf(out, " %8s\n", "workers");
    }
    for (size_t i = 0; i < f->l.n; i++) {
        double r[R_COUNT];
        bool have = all_rates(prev, f, i, r);
        if (arr) {
            cJSON *j = cli_stats_json(&f->s[i], f->l.names[i]);
            cJSON *jr = j && have ? cJSON_AddObjectToObject(j, "rates") : NULL;
            for (int k = 0; jr && k < R_COUNT; k++)
                cJSON_AddNumberToObject(jr, rate_names[k], r[k]);
            if (j) cJSON_AddItemToArray(arr, j);
            continue;
        }
        fprintf(out, "%-24s", f->l.names[i]);
        if (have)
            fprintf(out, " %11.1f %11.1f %9.1f", r[R_SUBMITTED], r[R_COMPLETED], r[R_FAILED]);
        else
            fprintf(out, " %11s %11s %9s", "-", "-", "-");
        for (int k = 0; k < LASH_STATE_COUNT; k++)
            fprintf(out, " %10lld", (long long)f->s[i].count[k]);
        fprintf(out, " %8lld\n", (long long)f->s[i].workers);
    }
    if (arr) {
        char *text = cJSON_PrintUnformatted(arr);
        cJSON_Delete(arr);
        cli_print_json(text);
    }
}

/* Sleeps a frame; on a terminal, a 'q' key ends it early. Returns true to stop. */
static bool pause_frame(bool keys)
{
    int64_t until = cli_mono_ms() + FRAME_MS;
    while (!stop_asked) {
        int64_t left = until - cli_mono_ms();
        if (left <= 0) return false;
        struct pollfd p = {.fd = STDIN_FILENO, .events = POLLIN};
        int n = poll(keys ? &p : NULL, keys ? 1 : 0, (int)left);
        if (n > 0) {
            char ch;
            ssize_t got = read(STDIN_FILENO, &ch, 1);
            if (got <= 0) keys = false; /* stdin closed: only time or a signal ends us */
            if (got == 1 && (ch == 'q' || ch == 'Q' || ch == 3)) return true;
        }
    }
    return true;
}

/* One frame of one queue's screen; prev holds the frame before, if any. */
static lash_status top_one(const cli_ctx *ctx, lash_conn *c, frame *prev, bool *have_prev, bool tty,
                           lash_err *e)
{
    frame cur;
    lash_status st = read_frame(c, ctx->queue, &cur, e);
    if (st) {
        lash_workers_free(cur.w, cur.nw);
        return st;
    }
    double rates[R_COUNT];
    if (*have_prev) rates_between(&prev->s, &cur.s, cur.at_ms - prev->at_ms, rates);
    if (ctx->json) {
        print_json(ctx->queue, &cur, *have_prev ? rates : NULL);
    } else {
        if (tty) fputs("\033[H\033[2J", stdout);
        print_text(stdout, ctx->queue, &cur, *have_prev ? rates : NULL, tty);
        if (!tty) fputs("\n", stdout);
    }
    if (*have_prev) lash_workers_free(prev->w, prev->nw);
    *prev = cur;
    *have_prev = true;
    return LASH_OK;
}

/* One frame of every queue's lines (frame k, from 1). */
static lash_status top_all(const cli_ctx *ctx, lash_conn *c, all_frame *prev, int64_t k, bool tty,
                           lash_err *e)
{
    all_frame cur;
    lash_status st = read_all(c, prev, k % DISCOVER_EVERY == 1, &cur, e);
    if (st) {
        all_frame_free(&cur);
        return st;
    }
    if (tty) fputs("\033[H\033[2J", stdout);
    print_all(stdout, k > 1 ? prev : NULL, &cur, ctx->json, tty);
    if (!tty && !ctx->json) fputs("\n", stdout);
    all_frame_free(prev);
    *prev = cur;
    return LASH_OK;
}

int cli_cmd_top(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{"iterations", true, NULL}, {"all", false, NULL}, {NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    int64_t iterations = 0;
    if (!cli_begin(ctx, "top", argc, argv, o, pos, 0, 0, &npos, &rc)) return rc;
    const char *v = cli_opt_val(o, "iterations");
    if (v && (rc = cli_parse_int("--iterations", v, 1, 1000000, &iterations))) return rc;
    bool all = cli_opt_val(o, "all") != NULL;
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;

    bool tty = !ctx->json && isatty(STDOUT_FILENO);
    bool keys = tty && isatty(STDIN_FILENO);
    struct termios saved;
    if (keys && tcgetattr(STDIN_FILENO, &saved) == 0) {
        struct termios raw = saved;
        raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
        raw.c_cc[VMIN] = 1;
        raw.c_cc[VTIME] = 0;
        tcsetattr(STDIN_FILENO, TCSANOW, &raw);
    } else {
        keys = false;
    }
    if (tty) {
        /* Our own handler, so the terminal is restored however we stop. */
        struct sigaction sa = {0};
        sa.sa_handler = on_signal;
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        fputs("\033[?25l", stdout);
    }

    frame prev = {0};
    all_frame aprev = {0};
    bool have_prev = false;
    lash_err e = {0};
    for (int64_t k = 1; !stop_asked; k++) {
        lash_status st =
            all ? top_all(ctx, c, &aprev, k, tty, &e) : top_one(ctx, c, &prev, &have_prev, tty, &e);
        if (st) {
            rc = cli_fail(st, &e);
            break;
        }
        if (fflush(stdout) != 0) break; /* the reader went away */
        if (iterations && k >= iterations) break;
        if (pause_frame(keys)) break;
    }
    if (have_prev) lash_workers_free(prev.w, prev.nw);
    all_frame_free(&aprev);
    if (keys) tcsetattr(STDIN_FILENO, TCSANOW, &saved);
    if (tty) fputs("\033[?25h\n", stdout);
    lash_close(c);
    return rc;
}
