/* fuzz_result: the handler result/limits path.
 *
 * lash_result_check is compared with a reference validator written straight
 * from the Unicode well-formed byte sequence table (Unicode 15, table 3-7);
 * lash_text_tail is run at many caps and its promises checked: NUL-terminated,
 * shorter than cap, valid UTF-8, no control characters but '\n' and '\t', and
 * the input itself when it fits and was clean already.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"
#include "proto/limits.h"
#include "proto/text.h"

static bool in(uint8_t b, uint8_t lo, uint8_t hi)
{
    return b >= lo && b <= hi;
}

/* Length of the well-formed sequence at p, or 0. */
static size_t ref_seq(const uint8_t *p, size_t n)
{
    uint8_t b = p[0];
    if (b <= 0x7f) return 1;
    uint8_t lo = 0x80, hi = 0xbf;
    size_t need;
    if (in(b, 0xc2, 0xdf))
        need = 2;
    else if (b == 0xe0)
        need = 3, lo = 0xa0;
    else if (in(b, 0xe1, 0xec) || in(b, 0xee, 0xef))
        need = 3;
    else if (b == 0xed)
        need = 3, hi = 0x9f;
    else if (b == 0xf0)
        need = 4, lo = 0x90;
    else if (in(b, 0xf1, 0xf3))
        need = 4;
    else if (b == 0xf4)
        need = 4, hi = 0x8f;
    else
        return 0;
    if (n < need || !in(p[1], lo, hi)) return 0;
    for (size_t i = 2; i < need; i++)
        if (!in(p[i], 0x80, 0xbf)) return 0;
    return need;
}

static bool ref_valid(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = ref_seq(p + i, n - i);
        if (k == 0 || p[i] == 0) return false;
        i += k;
    }
    return true;
}

/* True when the text has no control character but '\n' and '\t' (C0, DEL, C1). */
static bool ref_clean(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((p[i] < 0x20 && p[i] != '\n' && p[i] != '\t') || p[i] == 0x7f) return false;
        if (p[i] == 0xc2 && i + 1 < n && in(p[i + 1], 0x80, 0x9f)) return false;
    }
    return true;
}

static void check_tail(const uint8_t *data, size_t size, size_t cap)
{
    char *out = malloc(cap ? cap : 1);
    if (!out) abort();
    memset(out, 'Z', cap ? cap : 1);
    size_t n = lash_text_tail((const char *)data, size, out, cap);
    if (cap == 0) {
        if (n != 0 || out[0] != 'Z') abort();
        free(out);
        return;
    }
    if (n >= cap || out[n] != 0 || strlen(out) != n) abort();
    if (!ref_valid((const uint8_t *)out, n) || !ref_clean((const uint8_t *)out, n)) {
        fprintf(stderr, "tail at cap %zu is not clean text\n", cap);
        abort();
    }
    if (size < cap && ref_valid(data, size) && ref_clean(data, size) &&
        (n != size || memcmp(out, data, size) != 0)) {
        fprintf(stderr, "tail at cap %zu changed clean text that fit\n", cap);
        abort();
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-length copy, so reading past size is caught. */
    char *s = malloc(size ? size : 1);
    if (!s) abort();
    memcpy(s, data, size);
    bool want = ref_valid(data, size);
    if (lash_utf8_valid(s, size) != want) {
        fprintf(stderr, "lash_utf8_valid says %d, the reference %d\n", !want, want);
        abort();
    }
    const size_t maxes[] = {0, size / 2, size, LASH_RESULT_MAX};
    for (size_t i = 0; i < sizeof maxes / sizeof maxes[0]; i++) {
        lash_err e = {0};
        lash_status st = lash_result_check(s, size, maxes[i], &e);
        if ((st == LASH_OK) != (size <= maxes[i] && want) || (st && (!e.msg[0] || e.code != st))) {
            fprintf(stderr, "result_check(max %zu) = %d: %s\n", maxes[i], st, e.msg);
            abort();
        }
    }
    const size_t caps[] = {0, 1, 2, 3, 4, 5, 7, 8, 16, 64, size, size + 1, size / 2 + 1};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        check_tail((const uint8_t *)s, size, caps[i]);
    lash_json_check(s, size, "result", NULL);
    free(s);
    return 0;
}
