/* fuzz_url: the Redis URL parser and its password-free description. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    lash_url u;
    lash_err e = {0};
    if (lash_url_parse(s, &u, &e) == LASH_OK) {
        /* A parsed URL names exactly one place, with port and db in range. */
        if ((u.host[0] != 0) == (u.path[0] != 0) || u.port < 1 || u.port > 65535 || u.db < 0 ||
            u.db > 65535) {
            fprintf(stderr, "inconsistent parse of '%s'\n", s);
            abort();
        }
        if (memchr(u.host, 0, sizeof u.host) == NULL || memchr(u.path, 0, sizeof u.path) == NULL ||
            memchr(u.user, 0, sizeof u.user) == NULL ||
            memchr(u.password, 0, sizeof u.password) == NULL)
            abort();
        char big[1024];
        lash_url_describe(&u, big, sizeof big);
        if (u.password[0] && !strstr(big, ":***@")) {
            fprintf(stderr, "description of '%s' does not mask the password: %s\n", s, big);
            abort();
        }
        /* Every buffer size, small ones included, must truncate cleanly. */
        for (unsigned n = 0; n <= 40; n++) {
            char small[41];
            memset(small, 'X', sizeof small);
            lash_url_describe(&u, small, n);
            if (n && strlen(small) >= n) abort();
        }
    } else if (!e.msg[0] || e.code != LASH_EINVAL) {
        abort();
    }
    free(s);
    return 0;
}
