/* text.h: checks on text a handler hands back, and safe excerpts of text for errors.
 *
 * A handler's result is stored in the row and printed by lashctl, so it must be
 * text: valid UTF-8 (strict: no overlong forms, no surrogates, nothing above
 * U+10FFFF), without NUL bytes (Redis keeps them, but C strings, JSON consumers
 * and terminals do not), and within a size limit. Anything else fails the attempt
 * with an error that says which rule was broken and where.
 *
 * A failed process's stderr is untrusted bytes. lash_text_tail keeps its end as
 * printable text, so an error message never carries invalid UTF-8 or terminal
 * control sequences into the row, the logs or an operator's terminal.
 *
 * Pure: no I/O, no allocation.
 */
#ifndef LASH_PROTO_TEXT_H
#define LASH_PROTO_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/err.h"

/* True when s[0..len) is strict UTF-8 with no NUL byte. The empty text is valid. */
bool lash_utf8_valid(const char *s, size_t len);

/* Accepts s[0..len) as a handler's result when len <= max and it is valid UTF-8
 * without NUL; otherwise LASH_EINVAL with a message such as
 *   "result is 70000 bytes, over 65536"
 *   "result is not valid UTF-8 (byte 0xff at 12)"
 *   "result contains a NUL byte at 3"
 * The size is checked first, so an oversized result is never scanned. */
lash_status lash_result_check(const char *s, size_t len, size_t max, lash_err *e);

/* Writes the last at most cap-1 bytes of s[0..len) into out as printable text and
 * NUL-terminates it; returns the number of bytes written before the NUL (0 when
 * cap is 0, in which case out is not touched). The excerpt starts at a character
 * boundary (a multi-byte character cut by the window is dropped, not mangled);
 * every byte that is not part of valid UTF-8, and every control character other
 * than '\n' and '\t' (C0, DEL, and the C1 range U+0080..U+009F), becomes one '?'.
 * The output is therefore valid UTF-8 without NUL and never longer than the
 * window it came from. */
size_t lash_text_tail(const char *s, size_t len, char *out, size_t cap);

#endif
