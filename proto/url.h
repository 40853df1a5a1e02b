/* url.h: where Redis is, as a URL.
 *
 *   redis://[[user]:password@]host[:port][/db]     (port 6379, db 0 by default)
 *   unix://[[user]:password@]/path/to/redis.sock[?db=N]
 *
 * Percent-escapes (%40 for '@', ...) are decoded in user and password.
 * redis://user@host names a user only; a password alone is redis://:pw@host. Passwords
 * belong in the URL given by environment (LASH_REDIS_URL) or a file, not on a
 * command line that `ps` shows; LASH_REDIS_PASSWORD, if set, overrides the URL's.
 */
#ifndef LASH_PROTO_URL_H
#define LASH_PROTO_URL_H

#include "proto/err.h"

typedef struct {
    char host[256]; /* empty for unix sockets */
    int port;
    char path[108]; /* unix socket path; empty for TCP */
    char user[128];
    char password[256];
    int db;
} lash_url;

lash_status lash_url_parse(const char *s, lash_url *out, lash_err *e);
/* The URL without its password, for logs. */
void lash_url_describe(const lash_url *u, char *buf, unsigned len);

#endif
