/* text.c: UTF-8 validation, result checks and printable tails (see text.h). */
#include "proto/text.h"

#include <stdint.h>

/* Length (1..4) of the valid UTF-8 character at p[0..n), its code point in *cp;
 * 0 when p does not start a valid character (bad lead byte, bad or missing
 * continuation, overlong form, surrogate, or above U+10FFFF). NUL is valid here:
 * callers decide what to do with it. */
static size_t utf8_char(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0];
    size_t need;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) { /* 0xc0, 0xc1 could only start overlongs */
        need = 2;
        v = c & 0x1fu;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        v = c & 0x0fu;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) { /* 0xf5.. would be above U+10FFFF */
        need = 4;
        v = c & 0x07u;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < need) return 0;
    for (size_t i = 1; i < need; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        v = (v << 6) | (p[i] & 0x3fu);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    *cp = v;
    return need;
}

/* Offset of the first byte that is NUL or not valid UTF-8; len when there is none.
 * *nul says which of the two stopped the scan. */
static size_t first_bad(const unsigned char *p, size_t len, bool *nul)
{
    size_t i = 0;
    *nul = false;
    while (i < len) {
        uint32_t cp;
        size_t k = utf8_char(p + i, len - i, &cp);
        if (k == 0) return i;
        if (cp == 0) {
            *nul = true;
            return i;
        }
        i += k;
    }
    return len;
}

bool lash_utf8_valid(const char *s, size_t len)
{
    bool nul;
    if (len == 0) return true;
    if (!s) return false;
    return first_bad((const unsigned char *)s, len, &nul) == len;
}

lash_status lash_result_check(const char *s, size_t len, size_t max, lash_err *e)
{
    bool nul;
    if (len > max) return lash_fail(e, LASH_EINVAL, "result is %zu bytes, over %zu", len, max);
    if (len == 0) return LASH_OK;
    if (!s) return lash_fail(e, LASH_EINVAL, "result is missing");
    const unsigned char *p = (const unsigned char *)s;
    size_t at = first_bad(p, len, &nul);
    if (at == len) return LASH_OK;
    if (nul) return lash_fail(e, LASH_EINVAL, "result contains a NUL byte at %zu", at);
    return lash_fail(e, LASH_EINVAL, "result is not valid UTF-8 (byte 0x%02x at %zu)", p[at], at);
}

/* Control characters a terminal could act on; '\n' and '\t' keep a tail readable. */
static bool is_control(uint32_t cp)
{
    if (cp == '\n' || cp == '\t') return false;
    return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

size_t lash_text_tail(const char *s, size_t len, char *out, size_t cap)
{
    if (cap == 0) return 0;
    if (!s) len = 0;
    const unsigned char *p = (const unsigned char *)s;
    size_t start = len > cap - 1 ? len - (cap - 1) : 0;
    /* Skip the continuation bytes of a character the window cut; a valid
     * character has at most three, more are garbage and become '?' below. */
    for (int k = 0; k < 3 && start < len && start > 0 && (p[start] & 0xc0) == 0x80; k++)
        start++;
    size_t o = 0;
    for (size_t i = start; i < len;) {
        uint32_t cp;
        size_t k = utf8_char(p + i, len - i, &cp);
        if (k == 0 || is_control(cp)) {
            out[o++] = '?';
            i += k ? k : 1;
            continue;
        }
        /* Each input byte yields at most one output byte, so this fits. */
        for (size_t j = 0; j < k; j++)
            out[o++] = (char)p[i + j];
        i += k;
    }
    out[o] = 0;
    return o;
}
