/* fuzz_url: the Redis URL parser and its password-free description. */
#include <stdbool.h>
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
        /* A parsed URL names exactly one place (a host, a socket, or Sentinels and
         * a primary's name), with ports and db in range. */
        int places = (u.host[0] != 0) + (u.path[0] != 0) + (u.nsentinels > 0);
        bool sentinels_ok = u.nsentinels >= 0 && u.nsentinels <= LASH_URL_SENTINELS_MAX &&
                            (u.nsentinels == 0) == (u.master[0] == 0);
        for (int i = 0; sentinels_ok && i < u.nsentinels; i++)
            sentinels_ok = u.sentinels[i].host[0] && u.sentinels[i].port >= 1 &&
                           u.sentinels[i].port <= 65535 &&
                           memchr(u.sentinels[i].host, 0, sizeof u.sentinels[i].host);
        if (places != 1 || !sentinels_ok || u.port < 1 || u.port > 65535 || u.db < 0 ||
            u.db > 65535 || memchr(u.master, 0, sizeof u.master) == NULL) {
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
