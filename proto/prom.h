/* prom.h: writing the Prometheus text exposition format (version 0.0.4).
 *
 * A growable text buffer and the three things an exporter writes: a family's
 * HELP and TYPE lines, and samples with labels. Label values are escaped as the
 * format asks (backslash, double quote, newline), and bytes that are not
 * printable UTF-8 become '?', so a hostile worker id or queue name read from
 * Redis cannot break a line or the parser reading it. Pure: no I/O.
 *
 *   lash_prom_buf b = {0};
 *   lash_prom_family(&b, "lash_processes", "gauge", "Rows in each state.");
 *   lash_prom_sample(&b, "lash_processes", 12, "queue", "default", "state", "pending", NULL);
 *   ... b.s / b.len, then lash_prom_buf_free(&b)
 *
 * Allocation failure is sticky: b.oom is set and later writes do nothing.
 */
#ifndef LASH_PROTO_PROM_H
#define LASH_PROTO_PROM_H

#include <stdbool.h>
#include <stddef.h>

typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} lash_prom_buf;

void lash_prom_buf_free(lash_prom_buf *b);
/* Appends printf-formatted text. */
void lash_prom_printf(lash_prom_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s as a label value: escaped, invalid bytes as '?', at most 200 bytes. */
void lash_prom_label_value(lash_prom_buf *b, const char *s);
/* # HELP and # TYPE lines (type: counter, gauge, histogram). */
void lash_prom_family(lash_prom_buf *b, const char *name, const char *type, const char *help);
/* name{l1="v1",...} value; the label list is name, value pairs ended by NULL. */
void lash_prom_sample(lash_prom_buf *b, const char *name, double value, ...);

#endif
