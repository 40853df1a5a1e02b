/* log.h: one line per event, as text or JSON, to a FILE (stderr by default).
 *
 *   text: 2026-11-29T03:40:00.123Z INFO  worker=h:1 queue=default id=x attempt=1 fence=2 msg
 *   json: {"ts":"...","level":"info","worker":"h:1","queue":"default","id":"x",...,"msg":"..."}
 *
 * Fields that do not apply are left out. Messages are escaped, never trusted:
 * they may quote bytes from Redis rows or a handler's stderr.
 */
#ifndef LASH_WORKER_LOG_H
#define LASH_WORKER_LOG_H

#include <stdint.h>
#include <stdio.h>

#include "worker/turn.h"

typedef enum { LASH_LOGFMT_TEXT = 0, LASH_LOGFMT_JSON } lash_log_format;

typedef struct {
    FILE *out;
    const char *path; /* reopened on SIGHUP when set */
    lash_log_format format;
    lash_log_level level;
    const char *worker;
} lash_logger;

/* Parses "error|warn|info|debug" and "text|json"; -1 when unknown. */
int lash_log_level_parse(const char *s);
int lash_log_format_parse(const char *s);

/* queue/id may be NULL; attempt/fence < 0 are left out. */
void lash_log(const lash_logger *l, lash_log_level lvl, const char *queue, const char *id,
              int attempt, int64_t fence, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
/* Reopens path (append) after log rotation. */
void lash_log_reopen(lash_logger *l);

#endif
