/* test_text.c: UTF-8 validation, result checks and stderr tails (proto/text.h). No Redis. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/limits.h"
#include "proto/progress.h"
#include "proto/text.h"

/* Literals with sizeof - 1, so embedded NULs count. */
#define V(lit) lash_utf8_valid(lit, sizeof(lit) - 1)

Test(utf8, accepts_valid_text)
{
    cr_assert(lash_utf8_valid("", 0));
    cr_assert(lash_utf8_valid(NULL, 0));
    cr_assert(V("plain ascii\n\twith controls\x01\x7f"));
    cr_assert(V("\xc2\x80"));                             /* U+0080, smallest 2-byte */
    cr_assert(V("\xdf\xbf"));                             /* U+07FF */
    cr_assert(V("\xe0\xa0\x80"));                         /* U+0800, smallest 3-byte */
    cr_assert(V("\xe2\x82\xac"));                         /* euro sign */
    cr_assert(V("\xed\x9f\xbf"));                         /* U+D7FF, just below the surrogates */
    cr_assert(V("\xee\x80\x80"));                         /* U+E000, just above them */
    cr_assert(V("\xef\xbf\xbf"));                         /* U+FFFF */
    cr_assert(V("\xf0\x90\x80\x80"));                     /* U+10000, smallest 4-byte */
    cr_assert(V("\xf0\x9f\x98\x80"));                     /* an emoji */
    cr_assert(V("\xf4\x8f\xbf\xbf"));                     /* U+10FFFF, the maximum */
    cr_assert(V("caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac")); /* mixed */
}

Test(utf8, rejects_overlongs)
{
    cr_assert_not(V("\xc0\x80")); /* NUL, overlong */
    cr_assert_not(V("\xc1\xbf")); /* U+007F in two bytes */
    cr_assert_not(V("\xe0\x80\x80"));
    cr_assert_not(V("\xe0\x9f\xbf")); /* U+07FF in three bytes */
    cr_assert_not(V("\xf0\x80\x80\x80"));
    cr_assert_not(V("\xf0\x8f\xbf\xbf")); /* U+FFFF in four bytes */
}

Test(utf8, rejects_surrogates_and_beyond_max)
{
    cr_assert_not(V("\xed\xa0\x80"));             /* U+D800 */
    cr_assert_not(V("\xed\xbf\xbf"));             /* U+DFFF */
    cr_assert_not(V("\xed\xa0\xbd\xed\xb8\x80")); /* CESU-8 pair */
    cr_assert_not(V("\xf4\x90\x80\x80"));         /* U+110000 */
    cr_assert_not(V("\xf5\x80\x80\x80"));
    cr_assert_not(V("\xf8\x88\x80\x80\x80")); /* old 5-byte form */
    cr_assert_not(V("\xfe"));
    cr_assert_not(V("\xff"));
}

Test(utf8, rejects_truncated_and_stray_bytes)
{
    cr_assert_not(V("\xc3"));
    cr_assert_not(V("\xe2\x82"));
    cr_assert_not(V("\xf0\x9f\x98"));
    cr_assert_not(V("a\xe2\x82z")); /* continuation missing mid-text */
    cr_assert_not(V("\x80"));       /* lone continuation */
    cr_assert_not(V("ab\xbf"));
    cr_assert_not(V("\xc3\xa9\xa9")); /* one continuation too many */
    /* The length bounds the scan: a valid character cut by len is invalid. */
    cr_assert_not(lash_utf8_valid("\xe2\x82\xac", 2));
    cr_assert(lash_utf8_valid("\xe2\x82\xac", 3));
}

Test(utf8, rejects_nul)
{
    cr_assert_not(V("\0"));
    cr_assert_not(V("abc\0def"));
    cr_assert_not(V("abc\0"));
}

Test(result, accepts_text_within_max)
{
    lash_err e = {0};
    cr_assert_eq(lash_result_check("", 0, 10, &e), LASH_OK);
    cr_assert_eq(lash_result_check("{\"ok\":1}", 8, 8, &e), LASH_OK);
    cr_assert_eq(lash_result_check("\xf4\x8f\xbf\xbf", 4, 4, &e), LASH_OK);
}

Test(result, size_bound)
{
    lash_err e = {0};
    size_t n = 70000;
    char *big = malloc(n);
    cr_assert_not_null(big);
    memset(big, 'a', n);
    cr_assert_eq(lash_result_check(big, n, LASH_RESULT_MAX, &e), LASH_EINVAL);
    cr_assert_eq(e.code, LASH_EINVAL);
    cr_assert_str_eq(e.msg, "result is 70000 bytes, over 65536");
    cr_assert_eq(lash_result_check(big, LASH_RESULT_MAX, LASH_RESULT_MAX, &e), LASH_OK);
    cr_assert_eq(lash_result_check(big, LASH_RESULT_MAX + 1, LASH_RESULT_MAX, &e), LASH_EINVAL);
    /* The size is checked before the content: an oversized result is not scanned. */
    big[0] = 0;
    cr_assert_eq(lash_result_check(big, n, LASH_RESULT_MAX, &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "result is 70000 bytes, over 65536");
    free(big);
}

Test(result, names_bad_utf8)
{
    lash_err e = {0};
    cr_assert_eq(lash_result_check("hello world \xff!", 14, 100, &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "result is not valid UTF-8 (byte 0xff at 12)");
    cr_assert_eq(lash_result_check("ok\xed\xa0\x80", 5, 100, &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "result is not valid UTF-8 (byte 0xed at 2)");
    cr_assert_eq(lash_result_check("\xc3", 1, 100, &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "result is not valid UTF-8 (byte 0xc3 at 0)");
}

Test(result, names_nul)
{
    lash_err e = {0};
    cr_assert_eq(lash_result_check("abc\0def", 7, 100, &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "result contains a NUL byte at 3");
    /* Whichever comes first is reported. */
    cr_assert_eq(lash_result_check("\xff\0", 2, 100, &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "result is not valid UTF-8 (byte 0xff at 0)");
    cr_assert_eq(lash_result_check("\0\xff", 2, 100, &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "result contains a NUL byte at 0");
}

Test(result, null_err_is_allowed)
{
    cr_assert_eq(lash_result_check("\xff", 1, 100, NULL), LASH_EINVAL);
    cr_assert_eq(lash_result_check("abc", 3, 2, NULL), LASH_EINVAL);
}

/* lash_text_tail into a buffer of cap bytes; the result is also checked to be valid
 * text no longer than cap - 1. */
static const char *tail(const char *s, size_t len, size_t cap)
{
    static char buf[256];
    cr_assert(cap <= sizeof buf);
    memset(buf, 'X', sizeof buf);
    size_t n = lash_text_tail(s, len, buf, cap);
    cr_assert_lt(n, cap);
    cr_assert_eq(strlen(buf), n);
    cr_assert(lash_utf8_valid(buf, n));
    return buf;
}

Test(tail, whole_text_when_it_fits)
{
    cr_assert_str_eq(tail("error: boom\n", 12, 64), "error: boom\n");
    cr_assert_str_eq(tail("abc", 3, 4), "abc");
    cr_assert_str_eq(tail("", 0, 4), "");
    cr_assert_str_eq(tail(NULL, 5, 4), "");
}

Test(tail, keeps_the_end)
{
    const char *s = "line one\nline two\nfatal: disk full\n";
    cr_assert_str_eq(tail(s, strlen(s), 18), "fatal: disk full\n");
    cr_assert_str_eq(tail("abcdef", 6, 4), "def");
    cr_assert_str_eq(tail("abcdef", 6, 2), "f");
    cr_assert_str_eq(tail("abcdef", 6, 1), "");
}

Test(tail, cap_zero_writes_nothing)
{
    char c = 'X';
    cr_assert_eq(lash_text_tail("abc", 3, &c, 0), 0);
    cr_assert_eq(c, 'X');
    cr_assert_eq(lash_text_tail("abc", 3, NULL, 0), 0);
}

Test(tail, starts_at_a_character_boundary)
{
    /* "a€b€": a=0, €=1..3, b=4, €=5..7. */
    const char *s = "a\xe2\x82\xac"
                    "b\xe2\x82\xac";
    cr_assert_str_eq(tail(s, 8, 9), s);
    cr_assert_str_eq(tail(s, 8, 8), "\xe2\x82\xac"
                                    "b\xe2\x82\xac"); /* window at a boundary */
    cr_assert_str_eq(tail(s, 8, 7), "b\xe2\x82\xac"); /* cuts € after its lead */
    cr_assert_str_eq(tail(s, 8, 6), "b\xe2\x82\xac");
    cr_assert_str_eq(tail(s, 8, 5), "b\xe2\x82\xac"); /* window starts at 'b' */
    cr_assert_str_eq(tail(s, 8, 4), "\xe2\x82\xac");
    cr_assert_str_eq(tail(s, 8, 3), ""); /* only € bytes, cut */
    /* A 4-byte character cut after its lead byte: its three continuations go. */
    const char *e = "x\xf0\x9f\x98\x80";
    cr_assert_str_eq(tail(e, 5, 4), "");
    cr_assert_str_eq(tail(e, 5, 5), "\xf0\x9f\x98\x80");
    cr_assert_str_eq(tail(e, 5, 6), e);
}

Test(tail, replaces_invalid_bytes_and_controls)
{
    cr_assert_str_eq(tail("a\xff"
                          "b",
                          3, 16),
                     "a?b");
    cr_assert_str_eq(tail("\x1b[31mred\x1b[0m", 12, 32), "?[31mred?[0m");
    cr_assert_str_eq(tail("keep\n\tthese\r\n", 13, 32), "keep\n\tthese?\n");
    cr_assert_str_eq(tail("nul\0byte", 8, 32), "nul?byte");
    cr_assert_str_eq(tail("del\x7f", 4, 32), "del?");
    cr_assert_str_eq(tail("c1\xc2\x9b"
                          "x",
                          5, 32),
                     "c1?x");                                  /* U+009B, the 8-bit CSI */
    cr_assert_str_eq(tail("ok\xc2\xa0", 4, 32), "ok\xc2\xa0"); /* U+00A0 is not a control */
    cr_assert_str_eq(tail("\xed\xa0\x80", 3, 32), "???");      /* surrogate: each byte */
    cr_assert_str_eq(tail("\xc0\x80", 2, 32), "??");           /* overlong NUL */
    cr_assert_str_eq(tail("end\xe2\x82", 5, 32), "end??");     /* truncated at the end */
    /* Stray continuation bytes: at most three are skipped at the window's start,
     * the rest are garbage and become '?'. */
    cr_assert_str_eq(tail("a\x80\x80\x80\x80\x80z", 7, 6), "?z");
    cr_assert_str_eq(tail("a\x80\x80\x80\x80\x80z", 7, 32), "a?????z");
}

Test(tail, output_is_never_longer_than_the_window)
{
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t cap = 1; cap <= 256; cap++)
        tail((const char *)all, sizeof all, cap);
}

/* ---- progress lines (proto/progress.h) ---- */

static lash_status parse(const char *line, int *p, char *text, lash_err *e)
{
    const char *t = NULL;
    size_t n = 0;
    lash_status st = lash_progress_parse(line, strlen(line), p, &t, &n, e);
    if (!st) {
        memcpy(text, t, n);
        text[n] = 0;
    }
    return st;
}

Test(progress_line, a_number_then_an_optional_text)
{
    int p = -1;
    char text[LASH_PROGRESS_TEXT_MAX + 1];
    cr_assert_eq(parse("40 resized 4 of 10", &p, text, NULL), LASH_OK);
    cr_assert_eq(p, 40);
    cr_assert_str_eq(text, "resized 4 of 10");
    cr_assert_eq(parse("0", &p, text, NULL), LASH_OK);
    cr_assert_eq(p, 0);
    cr_assert_str_eq(text, "");
    cr_assert_eq(parse("100 done\r", &p, text, NULL), LASH_OK, "a CRLF line");
    cr_assert_eq(p, 100);
    cr_assert_str_eq(text, "done");
    cr_assert_eq(parse("7 héllo  two spaces", &p, text, NULL), LASH_OK);
    cr_assert_str_eq(text, "héllo  two spaces");
}

Test(progress_line, each_bad_line_is_named)
{
    static const struct {
        const char *line, *why;
    } bad[] = {
        {"", "does not start with a number"},
        {"x 10", "does not start with a number"},
        {"-5 neg", "does not start with a number"},
        {"101 over", "0..100"},
        {"1000", "0..100"},
        {"50% half", "space after the number"},
        {"5.5 frac", "space after the number"},
        {"5\tx", "space after the number"},
        {"5 a\tb", "control byte 0x09"},
        {"5 bell\a", "control byte 0x07"},
        {"5 \xff", "UTF-8"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int p = -1;
        char text[LASH_PROGRESS_TEXT_MAX + 1];
        lash_err e = {0};
        cr_assert_eq(parse(bad[i].line, &p, text, &e), LASH_EINVAL, "'%s' accepted", bad[i].line);
        cr_expect(strstr(e.msg, bad[i].why), "'%s': %s", bad[i].line, e.msg);
        cr_assert_eq(p, -1, "'%s' set the percent", bad[i].line);
    }
}

Test(progress_line, the_text_is_bounded)
{
    char line[LASH_PROGRESS_LINE_MAX + 8];
    int p;
    char text[LASH_PROGRESS_TEXT_MAX + 1];
    lash_err e = {0};
    memset(line, 'x', sizeof line);
    memcpy(line, "100 ", 4);
    line[4 + LASH_PROGRESS_TEXT_MAX] = 0; /* the longest good line */
    cr_assert_eq(parse(line, &p, text, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(strlen(text), LASH_PROGRESS_TEXT_MAX);
    memcpy(line, "10 ", 3); /* a byte shorter prefix: the text is one over */
    cr_assert_eq(parse(line, &p, text, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "over"), "%s", e.msg);
    line[4 + LASH_PROGRESS_TEXT_MAX] = 'x';
    line[6 + LASH_PROGRESS_TEXT_MAX] = 0;
    cr_assert_eq(parse(line, &p, text, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "progress line is"), "%s", e.msg);
    cr_assert_eq(lash_progress_check(50, NULL, 0, &e), LASH_OK);
    cr_assert_eq(lash_progress_check(50, NULL, 3, &e), LASH_EINVAL);
}
