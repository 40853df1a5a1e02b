/* test_resp.c: reply objects built as hiredis reads them (registry/resp.h).
 *
 * The same redisReply as hiredis builds, freed with freeReplyObject; but an
 * array's header allocates nothing for the elements it declares: memory
 * follows the bytes that arrived. No server: RESP text is fed to a reader.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "registry/resp.h"

/* AddressSanitizer maps terabytes of shadow and allocates through its own
 * mappings: an address-space limit would break it, and it grants a huge
 * calloc without touching it anyway. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif

/* Feeds text to a reader with fns (NULL: hiredis' own); the first reply, or
 * NULL while incomplete; *st the reader's answer. */
static redisReply *read_one(redisReplyObjectFunctions *fns, const char *text, size_t len, int *st)
{
    redisReader *rd = fns ? redisReaderCreateWithFunctions(fns) : redisReaderCreate();
    cr_assert(rd);
    cr_assert_eq(redisReaderFeed(rd, text, len), REDIS_OK);
    void *r = NULL;
    *st = redisReaderGetReply(rd, &r);
    redisReaderFree(rd);
    return r;
}

static void same(const redisReply *a, const redisReply *b)
{
    cr_assert_eq(a->type, b->type);
    cr_assert_eq(a->integer, b->integer);
    cr_assert_eq(a->len, b->len);
    cr_assert_eq(a->str == NULL, b->str == NULL);
    if (a->str) cr_assert_eq(memcmp(a->str, b->str, a->len + 1), 0);
    cr_assert_eq(a->elements, b->elements);
    for (size_t i = 0; i < a->elements; i++)
        same(a->element[i], b->element[i]);
}

Test(resp, replies_are_the_objects_hiredis_builds)
{
    static const char text[] = "*5\r\n$3\r\nabc\r\n*3\r\n:-7\r\n$-1\r\n*0\r\n+OK\r\n-ERR no\r\n"
                               "$0\r\n\r\n";
    int st1, st2;
    redisReply *mine = read_one(lash_resp_functions(), text, sizeof text - 1, &st1);
    redisReply *theirs = read_one(NULL, text, sizeof text - 1, &st2);
    cr_assert_eq(st1, REDIS_OK);
    cr_assert_eq(st2, REDIS_OK);
    cr_assert(mine && theirs);
    same(mine, theirs);
    cr_assert_str_eq(mine->element[0]->str, "abc");
    cr_assert_eq(mine->element[1]->element[0]->integer, -7);
    freeReplyObject(mine);
    freeReplyObject(theirs);
}

Test(resp, an_array_grows_in_order_as_its_elements_arrive)
{
    const int n = 1000; /* past every doubling up to 1024 */
    char *text = malloc((size_t)n * 16 + 32);
    cr_assert(text);
    size_t len = (size_t)sprintf(text, "*%d\r\n", n);
    for (int i = 0; i < n; i++)
        len += (size_t)sprintf(text + len, ":%d\r\n", i);
    int st;
    redisReply *r = read_one(lash_resp_functions(), text, len, &st);
    cr_assert_eq(st, REDIS_OK);
    cr_assert_not_null(r);
    cr_assert_eq(r->elements, (size_t)n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(r->element[i]->integer, i);
    freeReplyObject(r);
    free(text);
}

/* The fuzzer's find: a header declaring 412,888,888 elements made hiredis ask
 * for 3.3 GB before a single element came. Declared lengths up to INT_MAX,
 * nested: nothing is allocated for them, the reply just waits for its
 * elements. With hiredis' own functions the reader answers "Out of memory"
 * here: it asks for 16 GB at once, past the address space this test allows. */
Test(resp, a_declared_array_length_allocates_nothing_before_its_elements)
{
#ifndef UNDER_ASAN
    /* 2 GB of address space for this test's process (criterion forks one per
     * test): what the declared lengths would ask for cannot be granted. */
    struct rlimit rl = {2UL << 30, 2UL << 30};
    cr_assert_eq(setrlimit(RLIMIT_AS, &rl), 0);
#endif
    static const char text[] = "*2147483647\r\n*2147483647\r\n*2147483647\r\n:1\r\n:2\r\n";
    int st;
    redisReply *r = read_one(lash_resp_functions(), text, sizeof text - 1, &st);
    cr_assert_eq(st, REDIS_OK, "the reader failed");
    cr_assert_null(r, "incomplete: no reply yet");
}

Test(resp, a_reply_cut_short_is_freed_whole)
{
    /* Freed by the reader (its freeObject) with the reply half built. */
    static const char text[] = "*3\r\n$5\r\nhello\r\n*2\r\n:1\r\n";
    int st;
    cr_assert_null(read_one(lash_resp_functions(), text, sizeof text - 1, &st));
    cr_assert_eq(st, REDIS_OK);
}
