/* json.h: the JSON codec (cJSON) for payloads, records, submissions and events.
 *
 * Payloads and results are JSON *text* to lash: it validates them and stores the
 * text as given, never re-encodes them.
 */
#ifndef LASH_PROTO_JSON_H
#define LASH_PROTO_JSON_H

#include <stddef.h>

#include "proto/err.h"
#include "proto/record.h"

/* Checks that text[0..len) is exactly one JSON value (whitespace around it is
 * allowed). `what` names it in the error, e.g. "payload". */
lash_status lash_json_check(const char *text, size_t len, const char *what, lash_err *e);

/* A record as a JSON object text (malloc'd; NULL on no memory). The payload is
 * embedded as JSON; result too when it parses as JSON, else as a string. */
char *lash_record_to_json(const lash_record *r);

/* One submission from a JSON line. Two forms are accepted:
 *   any JSON value that is not an object with a "kind" or "payload" key:
 *       the payload, with kind = default_kind;
 *   {"kind":..,"payload":..,"id":..,"max_attempts":..,"timeout_ms":..,
 *    "delay_ms":..,"run_at":..,"backoff":..,"on_lost":..}: a full submission.
 * Strings in *out point into *holder (a cJSON tree the caller frees with
 * lash_json_free) and into *payload_text (malloc'd, caller frees). */
lash_status lash_submission_from_json(const char *line, size_t len, const char *default_kind,
                                      lash_submission *out, void **holder, char **payload_text,
                                      lash_err *e);
void lash_json_free(void *holder);

/* An events-stream entry (field/value pairs as XRANGE returns them) as a JSON
 * object text with "stream_id" and each field. malloc'd; NULL on no memory. */
char *lash_event_to_json(const char *stream_id, const char *const *fields, const size_t *lens,
                         size_t nfields);

#endif
