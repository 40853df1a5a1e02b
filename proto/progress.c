/* progress.c: checking and parsing progress reports (see progress.h). */
#include "proto/progress.h"

#include "proto/text.h"

lash_status lash_progress_check(int percent, const char *text, size_t len, lash_err *e)
{
    if (percent < 0 || percent > 100)
        return lash_fail(e, LASH_EINVAL, "progress must be 0..100, got %d", percent);
    if (len > LASH_PROGRESS_TEXT_MAX)
        return lash_fail(e, LASH_EINVAL, "progress text is %zu bytes, over %d", len,
                         LASH_PROGRESS_TEXT_MAX);
    if (len && !text) return lash_fail(e, LASH_EINVAL, "progress text is NULL");
    if (!lash_utf8_valid(text ? text : "", len))
        return lash_fail(e, LASH_EINVAL, "progress text is not valid UTF-8 (or holds a NUL)");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x20 || c == 0x7f)
            return lash_fail(e, LASH_EINVAL, "progress text has control byte 0x%02x at %zu", c, i);
    }
    return LASH_OK;
}

lash_status lash_progress_parse(const char *line, size_t len, int *percent, const char **text,
                                size_t *text_len, lash_err *e)
{
    if (len && line[len - 1] == '\r') len--;
    if (len > LASH_PROGRESS_LINE_MAX)
        return lash_fail(e, LASH_EINVAL, "progress line is %zu bytes, over %d", len,
                         LASH_PROGRESS_LINE_MAX);
    size_t i = 0;
    int p = 0;
    while (i < len && i < 4 && line[i] >= '0' && line[i] <= '9')
        p = p * 10 + (line[i++] - '0');
    if (i == 0)
        return lash_fail(e, LASH_EINVAL, "progress line does not start with a number 0..100");
    if (i > 3 || p > 100)
        return lash_fail(e, LASH_EINVAL, "progress must be 0..100, got %.*s", (int)i, line);
    if (i < len && line[i] != ' ')
        return lash_fail(e, LASH_EINVAL,
                         "progress line wants a space after the number, got byte 0x%02x",
                         (unsigned char)line[i]);
    const char *t = i < len ? line + i + 1 : line + len;
    size_t tl = i < len ? len - i - 1 : 0;
    lash_status st = lash_progress_check(p, t, tl, e);
    if (st) return st;
    *percent = p;
    *text = t;
    *text_len = tl;
    return LASH_OK;
}
