/* split.h: the harnesses' shared input splitter.
 *
 * Each piece is copied into a buffer of exactly its length, with no NUL after
 * it, so a decoder that reads past the length it was given is caught by ASan
 * instead of running on into the fuzzer's input.
 */
#ifndef LASH_FUZZ_SPLIT_H
#define LASH_FUZZ_SPLIT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The next piece of data[*pos..size) up to sep (not included); advances *pos past
 * sep. Returns a malloc'd exact-length copy (never NULL for a piece of length 0),
 * or NULL when the input is used up. */
static inline char *fuzz_next(const uint8_t *data, size_t size, size_t *pos, uint8_t sep,
                              size_t *len)
{
    if (*pos > size) return NULL;
    const uint8_t *start = data + *pos;
    const uint8_t *end = memchr(start, sep, size - *pos);
    size_t n = end ? (size_t)(end - start) : size - *pos;
    char *p = malloc(n ? n : 1);
    if (!p) abort();
    memcpy(p, start, n);
    *len = n;
    *pos += n + 1; /* past the separator, or past the end when there is none */
    return p;
}

#endif
