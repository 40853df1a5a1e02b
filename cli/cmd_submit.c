/* cmd_submit.c: `lashctl submit` (one process) and `submit-bulk` (JSON Lines). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "proto/json.h"
#include "proto/keys.h"

/* Lines per lash_submit call in submit-bulk: big enough that the registry's
 * pipeline stays full, small enough that a bad chunk costs little memory. */
#define BULK_CHUNK 10000
/* ... and a bound on the bytes a chunk holds, for big payloads. */
#define BULK_CHUNK_BYTES (64u << 20)

/* Reads all of f, at most LASH_PAYLOAD_MAX + 1 bytes (so an oversized payload is
 * seen as such, not cut). NULL with errno on failure. */
static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n == cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                return NULL;
            }
            buf = nb;
        }
        size_t want = cap - n;
        if (n + want > (size_t)LASH_PAYLOAD_MAX + 1) want = (size_t)LASH_PAYLOAD_MAX + 1 - n;
        size_t got = fread(buf + n, 1, want, f);
        n += got;
        if (got < want || n > (size_t)LASH_PAYLOAD_MAX) break;
    }
    if (ferror(f)) {
        free(buf);
        errno = EIO;
        return NULL;
    }
    *len = n;
    return buf;
}

static int load_payload(const char *file, char **out, size_t *len)
{
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (!f)
        return cli_error(CLI_USAGE, "--payload-file: cannot open %s: %s", file, strerror(errno));
    *out = read_all(f, len);
    int err = errno;
    if (f != stdin) fclose(f);
    if (!*out)
        return cli_error(CLI_USAGE, "--payload-file: cannot read %s: %s", file, strerror(err));
    return CLI_OK;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Fills s from the flags; *payload_buf is what to free afterwards. */
static int submission_from_flags(const char *kind, const cli_opt *o, const char **pos, int npos,
                                 lash_submission *s, char **payload_buf)
{
    const char *payload = cli_opt_val(o, "payload"), *file = cli_opt_val(o, "payload-file");
    const char *v;
    int64_t n;
    int rc;
    bool dash = npos > 1;
    if (npos > 1 && strcmp(pos[1], "-") != 0)
        return cli_usage("submit", "unexpected argument '%s'", pos[1]);
    if ((payload != NULL) + (file != NULL) + dash > 1)
        return cli_usage("submit", "give the payload one way: --payload, --payload-file or -");
    memset(s, 0, sizeof *s);
    *payload_buf = NULL;
    s->kind = kind;
    if (payload) {
        s->payload = payload;
        s->payload_len = strlen(payload);
    } else if (file || dash) {
        if ((rc = load_payload(file ? file : "-", payload_buf, &s->payload_len))) return rc;
        s->payload = *payload_buf;
    }
    s->id = cli_opt_val(o, "id");
    if (s->id && !s->id[0]) return cli_usage("submit", "--id is empty");
    if ((v = cli_opt_val(o, "delay")) && cli_opt_val(o, "at"))
        return cli_usage("submit", "give --delay or --at, not both");
    if (v) {
        if ((rc = cli_parse_int("--delay", v, 0, LASH_DELAY_MAX, &s->delay_ms))) return rc;
    }
    if ((v = cli_opt_val(o, "at"))) {
        if ((rc = cli_parse_iso8601("--at", v, &s->run_at_ms))) return rc;
        /* The server checks against its own clock; this catches typos early. */
        if (s->run_at_ms > wall_ms() + LASH_DELAY_MAX)
            return cli_usage("submit", "--at %s is more than a year ahead", v);
        if (s->run_at_ms == 0) s->run_at_ms = 1; /* 0 would mean "not given" */
    }
    if ((v = cli_opt_val(o, "max-attempts"))) {
        if ((rc = cli_parse_int("--max-attempts", v, 1, LASH_ATTEMPTS_MAX, &n))) return rc;
        s->max_attempts = (int)n;
    }
    if ((v = cli_opt_val(o, "timeout")) &&
        (rc = cli_parse_int("--timeout", v, 0, LASH_TIMEOUT_MAX, &s->timeout_ms)))
        return rc;
    if ((v = cli_opt_val(o, "backoff"))) {
        lash_backoff b;
        lash_err e = {0};
        if (lash_backoff_parse(v, &b, &e)) return cli_error(CLI_USAGE, "--backoff: %s", e.msg);
        s->backoff = v;
    }
    if ((v = cli_opt_val(o, "after"))) {
        lash_err ae = {0};
        if (lash_after_check(v, s->id, &ae)) return cli_error(CLI_USAGE, "--after: %s", ae.msg);
        s->after = v;
    }
    if ((v = cli_opt_val(o, "priority"))) {
        if ((rc = cli_parse_int("--priority", v, -LASH_PRIO_MAX, LASH_PRIO_MAX, &n))) return rc;
        s->priority = (int)n;
    }
    if ((v = cli_opt_val(o, "on-lost"))) {
        if (strcmp(v, "abandon") == 0)
            s->on_lost = LASH_ON_LOST_ABANDON;
        else if (strcmp(v, "rerun") != 0)
            return cli_error(CLI_USAGE, "--on-lost: '%s' is not rerun or abandon", v);
    }
    lash_err e = {0};
    if (lash_submission_check(s, &e)) return cli_error(CLI_USAGE, "submit: %s", e.msg);
    return CLI_OK;
}

/* --wait-replicas N [--wait-timeout MS]: the durable acknowledgement asked for. */
static int wait_from_flags(const char *cmd, const cli_opt *o, lash_wait *w)
{
    const char *v;
    int64_t n;
    *w = (lash_wait){0, 1000};
    if ((v = cli_opt_val(o, "wait-replicas"))) {
        if (cli_parse_int("--wait-replicas", v, 1, 100, &n)) return CLI_USAGE;
        w->replicas = (int)n;
    }
    if ((v = cli_opt_val(o, "wait-timeout"))) {
        if (!w->replicas) return cli_usage(cmd, "--wait-timeout goes with --wait-replicas");
        if (cli_parse_int("--wait-timeout", v, 1, 600000, &n)) return CLI_USAGE;
        w->timeout_ms = (int)n;
    }
    return CLI_OK;
}

int cli_cmd_submit(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {
        {"payload", true, NULL},      {"payload-file", true, NULL}, {"id", true, NULL},
        {"delay", true, NULL},        {"at", true, NULL},           {"max-attempts", true, NULL},
        {"timeout", true, NULL},      {"backoff", true, NULL},      {"on-lost", true, NULL},
        {"priority", true, NULL},     {"after", true, NULL},        {"wait-replicas", true, NULL},
        {"wait-timeout", true, NULL}, {NULL, false, NULL}};
    const char *pos[2];
    int npos, rc;
    if (!cli_begin(ctx, "submit", argc, argv, o, pos, 1, 2, &npos, &rc)) return rc;
    lash_wait w;
    if ((rc = wait_from_flags("submit", o, &w))) return rc;
    lash_err e = {0};
    if (lash_kind_check(pos[0], strlen(pos[0]), &e)) return cli_usage("submit", "KIND %s", e.msg);
    lash_submission s;
    char *buf = NULL;
    if ((rc = submission_from_flags(pos[0], o, pos, npos, &s, &buf))) {
        free(buf);
        return rc;
    }
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) {
        free(buf);
        return rc;
    }
    lash_submitted out;
    lash_status st = lash_submit_wait(c, ctx->queue, &s, 1, w, &out, &e);
    lash_close(c);
    free(buf);
    if (st && out.status == LASH_SUB_UNKNOWN)
        return cli_error(cli_exit_code(st),
                         "submit %s: %s; submit again with --id %s: if it landed, the same "
                         "submission answers that it exists",
                         out.id, out.msg, out.id);
    if (st == LASH_EDURABLE) printf("%s\n", out.id); /* it is there, only not confirmed */
    if (st) return cli_fail(st, &e);
    if (out.status == LASH_SUB_CONFLICT || out.status == LASH_SUB_INVALID)
        return cli_error(CLI_REFUSED, "submit %s: %s", out.id, out.msg);
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "id", out.id);
        cJSON_AddStringToObject(j, "status", out.status == LASH_SUB_CREATED ? "created" : "exists");
        char *text = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        return cli_print_json(text);
    }
    if (out.status == LASH_SUB_EXISTS)
        fprintf(stderr,
                "lashctl: note: %s was already submitted with the same registration; "
                "nothing changed\n",
                out.id);
    printf("%s\n", out.id);
    return CLI_OK;
}

/* ---- submit-bulk ----------------------------------------------------------- */

typedef struct {
    lash_submission *subs;
    lash_submitted *out;
    long *line;   /* line number of each row */
    char **text;  /* the line (a bare payload points into it) */
    void **tree;  /* the parsed cJSON tree (full submissions point into it) */
    char **ptext; /* a full submission's payload, re-printed */
    size_t n, bytes;
} bulk_chunk;

/* What became of the lines: each count is what Redis acknowledged (created,
 * exists, refused), or says why it is not known (unknown: sent, never
 * answered; unsent: never sent, or refused with the whole call). */
typedef struct {
    long lines, created, exists, bad, refused, unknown, unsent;
    cli_progress *bar; /* cleared before a line is reported */
} bulk_counts;

static void chunk_clear(bulk_chunk *k)
{
    for (size_t i = 0; i < k->n; i++) {
        free(k->text[i]);
        lash_json_free(k->tree[i]);
        free(k->ptext[i]);
    }
    k->n = k->bytes = 0;
}

static void chunk_free(bulk_chunk *k)
{
    chunk_clear(k);
    free(k->subs);
    free(k->out);
    free(k->line);
    free(k->text);
    free(k->tree);
    free(k->ptext);
}

static bool chunk_alloc(bulk_chunk *k)
{
    memset(k, 0, sizeof *k);
    k->subs = calloc(BULK_CHUNK, sizeof *k->subs);
    k->out = calloc(BULK_CHUNK, sizeof *k->out);
    k->line = calloc(BULK_CHUNK, sizeof *k->line);
    k->text = calloc(BULK_CHUNK, sizeof *k->text);
    k->tree = calloc(BULK_CHUNK, sizeof *k->tree);
    k->ptext = calloc(BULK_CHUNK, sizeof *k->ptext);
    return k->subs && k->out && k->line && k->text && k->tree && k->ptext;
}

/* Sends the chunk; counts what became of each line, reporting refusals. Rows
 * of calls that went through are counted even when a later call failed: the
 * counts are what Redis acknowledged, whatever stopped the run. */
static lash_status chunk_send(lash_conn *c, const char *queue, lash_wait w, bulk_chunk *k,
                              bulk_counts *n, lash_err *e)
{
    if (k->n == 0) return LASH_OK;
    lash_status st = lash_submit_wait(c, queue, k->subs, k->n, w, k->out, e);
    for (size_t i = 0; i < k->n; i++) {
        const lash_submitted *o = &k->out[i];
        if (o->status == LASH_SUB_CREATED) {
            n->created++;
        } else if (o->status == LASH_SUB_EXISTS) {
            n->exists++;
        } else if (o->status == LASH_SUB_UNKNOWN) {
            n->unknown++;
        } else if (st && strncmp(o->msg, "not submitted", 13) == 0) {
            n->unsent++; /* the call failed as a whole: said once, by the caller */
        } else {
            n->refused++;
            cli_progress_clear(n->bar);
            fprintf(stderr, "line %ld: %s\n", k->line[i], o->msg);
        }
    }
    chunk_clear(k);
    return st;
}

static bool blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return false;
    return true;
}

/* Parses one line into the chunk, or reports it. */
static void add_line(bulk_chunk *k, const char *kind, char *line, size_t len, long no,
                     bulk_counts *n)
{
    lash_submission *s = &k->subs[k->n];
    void *tree = NULL;
    char *ptext = NULL;
    lash_err e = {0};
    char *copy = malloc(len + 1);
    if (!copy) {
        cli_progress_clear(n->bar);
        fprintf(stderr, "line %ld: out of memory\n", no);
        n->bad++;
        return;
    }
    memcpy(copy, line, len);
    copy[len] = 0;
    if (lash_submission_from_json(copy, len, kind, s, &tree, &ptext, &e)) {
        cli_progress_clear(n->bar);
        fprintf(stderr, "line %ld: %s\n", no, e.msg);
        n->bad++;
        free(copy);
        lash_json_free(tree);
        free(ptext);
        return;
    }
    k->line[k->n] = no;
    k->text[k->n] = copy;
    k->tree[k->n] = tree;
    k->ptext[k->n] = ptext;
    k->n++;
    k->bytes += len;
}

static int bulk_report(const cli_ctx *ctx, const bulk_counts *n, int64_t ms)
{
    double secs = (double)(ms > 0 ? ms : 1) / 1000.0;
    double rate = (double)(n->created + n->exists) / secs;
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "lines", (double)n->lines);
        cJSON_AddNumberToObject(j, "created", (double)n->created);
        cJSON_AddNumberToObject(j, "exists", (double)n->exists);
        cJSON_AddNumberToObject(j, "bad", (double)n->bad);
        cJSON_AddNumberToObject(j, "refused", (double)n->refused);
        cJSON_AddNumberToObject(j, "unknown", (double)n->unknown);
        cJSON_AddNumberToObject(j, "not_sent", (double)n->unsent);
        cJSON_AddNumberToObject(j, "seconds", secs);
        cJSON_AddNumberToObject(j, "rate", rate);
        char *text = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        if (cli_print_json(text)) return CLI_REFUSED;
    } else {
        printf("submitted %ld of %ld lines in %.2f s (%.0f/s): %ld created, %ld already there, "
               "%ld bad, %ld refused",
               n->created + n->exists, n->lines, secs, rate, n->created, n->exists, n->bad,
               n->refused);
        if (n->unknown || n->unsent)
            printf(", %ld unknown (sent, no answer), %ld not sent", n->unknown, n->unsent);
        printf("\n");
    }
    return n->bad || n->refused || n->unknown || n->unsent ? CLI_REFUSED : CLI_OK;
}

int cli_cmd_submit_bulk(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {
        {"wait-replicas", true, NULL}, {"wait-timeout", true, NULL}, {NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    if (!cli_begin(ctx, "submit-bulk", argc, argv, o, pos, 1, 1, &npos, &rc)) return rc;
    lash_wait w;
    if ((rc = wait_from_flags("submit-bulk", o, &w))) return rc;
    lash_err e = {0};
    if (lash_kind_check(pos[0], strlen(pos[0]), &e))
        return cli_usage("submit-bulk", "KIND %s", e.msg);
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    bulk_chunk k;
    if (!chunk_alloc(&k)) {
        chunk_free(&k);
        lash_close(c);
        return cli_error(CLI_REFUSED, "out of memory");
    }
    struct stat sb;
    cli_progress bar;
    cli_progress_start(&bar, "submitting",
                       fstat(STDIN_FILENO, &sb) == 0 && S_ISREG(sb.st_mode) ? sb.st_size : 0);
    bulk_counts n = {.bar = &bar};
    int64_t start = cli_mono_ms(), read_bytes = 0;
    char *line = NULL, note[64];
    size_t cap = 0;
    ssize_t len;
    lash_status st = LASH_OK;
    while (!st && (len = getline(&line, &cap, stdin)) >= 0) {
        n.lines++;
        read_bytes += len;
        /* A blank line (a trailing newline, say) keeps its number but is no work. */
        if (!blank(line, (size_t)len)) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
                len--;
            add_line(&k, pos[0], line, (size_t)len, n.lines, &n);
        }
        if (k.n == BULK_CHUNK || k.bytes >= BULK_CHUNK_BYTES)
            st = chunk_send(c, ctx->queue, w, &k, &n, &e);
        if (bar.on) {
            snprintf(note, sizeof note, " %ld lines, %ld in", n.lines, n.created + n.exists);
            cli_progress_update(&bar, bar.total ? read_bytes : n.lines, note);
        }
    }
    bool read_err = ferror(stdin);
    if (!st) st = chunk_send(c, ctx->queue, w, &k, &n, &e);
    cli_progress_end(&bar);
    free(line);
    chunk_free(&k);
    lash_close(c);
    /* The report comes first, on every ending: a script reading --json gets
     * its document, and the counts say what Redis acknowledged. */
    rc = bulk_report(ctx, &n, cli_mono_ms() - start);
    if (st)
        return cli_error(cli_exit_code(st), "%s (stopped after %ld lines, %ld submitted)", e.msg,
                         n.lines, n.created + n.exists);
    if (read_err) return cli_error(CLI_REFUSED, "reading stdin: %s", strerror(errno));
    return rc;
}
