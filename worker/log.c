/* log.c: event lines (see log.h). */
#include "worker/log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int lash_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, level_names[i]) == 0) return i;
    return -1;
}

int lash_log_format_parse(const char *s)
{
    if (s && strcmp(s, "text") == 0) return LASH_LOGFMT_TEXT;
    if (s && strcmp(s, "json") == 0) return LASH_LOGFMT_JSON;
    return -1;
}

/* Writes s escaped for JSON (json=1) or for a text line (control bytes as \xNN). */
static void put_escaped(FILE *f, const char *s, bool json)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' && json)
            fputs("\\\"", f);
        else if (*p == '\\' && json)
            fputs("\\\\", f);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p < 0x20 || *p == 0x7f)
            fprintf(f, json ? "\\u%04x" : "\\x%02x", *p);
        else
            fputc(*p, f);
    }
}

void lash_log(const lash_logger *l, lash_log_level lvl, const char *queue, const char *id,
              int attempt, int64_t fence, const char *fmt, ...)
{
    if (!l || !l->out || lvl > l->level) return;
    char msg[1024], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03dZ", (int)(tv.tv_usec / 1000));
    /* The line is made in memory and written with one call: a log line is
     * one write(2) on an unbuffered stderr, so a pipe, a container runtime
     * or another process appending to the same file never sees it in pieces. */
    char line[8192];
    FILE *f = fmemopen(line, sizeof line, "w");
    if (!f) return;
    if (l->format == LASH_LOGFMT_JSON) {
        fprintf(f, "{\"ts\":\"%s\",\"level\":\"%s\"", ts, level_names[lvl]);
        if (l->worker) fputs(",\"worker\":\"", f), put_escaped(f, l->worker, true), fputc('"', f);
        if (queue) fputs(",\"queue\":\"", f), put_escaped(f, queue, true), fputc('"', f);
        if (id) fputs(",\"id\":\"", f), put_escaped(f, id, true), fputc('"', f);
        if (attempt >= 0) fprintf(f, ",\"attempt\":%d", attempt);
        if (fence >= 0) fprintf(f, ",\"fence\":%lld", (long long)fence);
        fputs(",\"msg\":\"", f);
        put_escaped(f, msg, true);
        fputs("\"}\n", f);
    } else {
        fprintf(f, "%s %-5s", ts, level_names[lvl]);
        /* Escaped like the message: an id read from Redis is untrusted, and a
         * newline in it would forge a second log line. */
        if (l->worker) fputs(" worker=", f), put_escaped(f, l->worker, false);
        if (queue) fputs(" queue=", f), put_escaped(f, queue, false);
        if (id) fputs(" id=", f), put_escaped(f, id, false);
        if (attempt >= 0) fprintf(f, " attempt=%d", attempt);
        if (fence >= 0) fprintf(f, " fence=%lld", (long long)fence);
        fputc(' ', f);
        put_escaped(f, msg, false);
        fputc('\n', f);
    }
    fflush(f);
    long len = ftell(f);
    fclose(f);
    if (len <= 0) return;
    if ((size_t)len >= sizeof line) len = (long)sizeof line - 1; /* cut: still one line */
    if (line[len - 1] != '\n') line[len - 1] = '\n';
    fwrite(line, 1, (size_t)len, l->out);
    fflush(l->out);
}

void lash_log_reopen(lash_logger *l)
{
    if (!l->path) return;
    FILE *f = freopen(l->path, "ae", l->out);
    if (f) l->out = f;
}
