/* progress.h: a running process's progress report, as a handler writes it.
 *
 * An exec handler writes one report per line to the pipe on fd 3 (its number
 * is also in $LASH_PROGRESS_FD):
 *
 *   <percent> [<text>]\n        e.g.  "40 resized 4 of 10 images"
 *
 * percent is a decimal integer 0..100 (no sign, at most 3 digits); then, after
 * one space, an optional text of at most LASH_PROGRESS_TEXT_MAX bytes of UTF-8
 * without control characters (a trailing '\r' is dropped). A line that breaks
 * a rule is that line's error, named in one sentence; the worker logs the first
 * of a process and ignores them all. An in-process handler reports the same two
 * values with lash_job_progress (worker/worker.h), checked by
 * lash_progress_check.
 *
 * Pure: no I/O, no allocation.
 */
#ifndef LASH_PROTO_PROGRESS_H
#define LASH_PROTO_PROGRESS_H

#include <stddef.h>

#include "proto/err.h"
#include "proto/limits.h"

/* The longest line a reader keeps: "100 " and the longest text. A reader that
 * sees more bytes before the newline drops the line (lash_progress_parse is
 * never handed more). */
#define LASH_PROGRESS_LINE_MAX (4 + LASH_PROGRESS_TEXT_MAX)

/* Checks a report: percent 0..100, text (len bytes, may be NULL when len is 0)
 * within LASH_PROGRESS_TEXT_MAX, valid UTF-8, no control characters. */
lash_status lash_progress_check(int percent, const char *text, size_t len, lash_err *e);

/* Parses one line (without its '\n'). On LASH_OK *percent is set and
 * text and text_len point into line (the text may be empty). */
lash_status lash_progress_parse(const char *line, size_t len, int *percent, const char **text,
                                size_t *text_len, lash_err *e);

#endif
