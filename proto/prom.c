/* prom.c: the Prometheus text format writer (see prom.h). */
#include "proto/prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/text.h"

void lash_prom_buf_free(lash_prom_buf *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

static bool reserve(lash_prom_buf *b, size_t more)
{
    if (b->oom) return false;
    if (b->len + more + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

static void vappend(lash_prom_buf *b, const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    if (n >= 0 && reserve(b, (size_t)n)) {
        vsnprintf(b->s + b->len, (size_t)n + 1, fmt, again);
        b->len += (size_t)n;
    }
    va_end(again);
}

void lash_prom_printf(lash_prom_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vappend(b, fmt, ap);
    va_end(ap);
}

void lash_prom_label_value(lash_prom_buf *b, const char *s)
{
    /* lash_text_tail keeps printable UTF-8 only (every other byte is '?'), so
     * what is left to escape is the format's own three characters. */
    char clean[201];
    size_t len = strlen(s);
    if (len > 200) len = 200;
    lash_text_tail(s, len, clean, sizeof clean);
    if (!reserve(b, 2 * strlen(clean))) return;
    for (const char *p = clean; *p; p++) {
        if (*p == '\\' || *p == '"') {
            b->s[b->len++] = '\\';
            b->s[b->len++] = *p;
        } else if (*p == '\n') {
            b->s[b->len++] = '\\';
            b->s[b->len++] = 'n';
        } else if (*p == '\t') {
            b->s[b->len++] = ' ';
        } else {
            b->s[b->len++] = *p;
        }
    }
    b->s[b->len] = 0;
}

void lash_prom_family(lash_prom_buf *b, const char *name, const char *type, const char *help)
{
    lash_prom_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void lash_prom_sample(lash_prom_buf *b, const char *name, double value, ...)
{
    va_list ap;
    va_start(ap, value);
    lash_prom_printf(b, "%s", name);
    const char *k = va_arg(ap, const char *);
    for (int i = 0; k; i++) {
        const char *v = va_arg(ap, const char *);
        lash_prom_printf(b, "%s%s=\"", i ? "," : "{", k);
        lash_prom_label_value(b, v ? v : "");
        lash_prom_printf(b, "\"");
        k = va_arg(ap, const char *);
        if (!k) lash_prom_printf(b, "}");
    }
    va_end(ap);
    if (isnan(value))
        lash_prom_printf(b, " NaN\n");
    else if (isinf(value))
        lash_prom_printf(b, value > 0 ? " +Inf\n" : " -Inf\n");
    else if (value == (double)(long long)value && fabs(value) < 9e15)
        lash_prom_printf(b, " %lld\n", (long long)value);
    else
        lash_prom_printf(b, " %.17g\n", value);
}
