/* url.h: where Redis is, as a URL.
 *
 *   redis://[[user]:password@]host[:port][/db]     (port 6379, db 0 by default)
 *   unix://[[user]:password@]/path/to/redis.sock[?db=N]
 *   redis-sentinel://[[user]:password@]host[:port][,host[:port]...][/db]#master
 *
 * A redis:// address may be a single Redis or any node of a Redis Cluster (the
 * registry finds out which when it connects). A redis-sentinel:// URL names up
 * to LASH_URL_SENTINELS_MAX Sentinels (port 26379 by default) and, after '#',
 * the name under which they watch the primary; the registry asks them where the
 * primary is. The same convention as redis-py, Lettuce and others, which put
 * the master name in the path or fragment; the db stays in the path here.
 *
 * Percent-escapes (%40 for '@', ...) are decoded in user, password and master.
 * redis://user@host names a user only; a password alone is redis://:pw@host. Passwords
 * belong in the URL given by environment (LASH_REDIS_URL) or a file, not on a
 * command line that `ps` shows; LASH_REDIS_PASSWORD, if set, overrides the URL's.
 * The user and password are those of the Redis nodes; the Sentinels' own come
 * from LASH_SENTINEL_USER and LASH_SENTINEL_PASSWORD (environment only).
 */
#ifndef LASH_PROTO_URL_H
#define LASH_PROTO_URL_H

#include "proto/err.h"

#define LASH_URL_SENTINELS_MAX 8
#define LASH_SENTINEL_PORT 26379

typedef struct {
    char host[256];
    int port;
} lash_url_host;

typedef struct {
    char host[256]; /* empty for unix sockets and Sentinel URLs */
    int port;
    char path[108]; /* unix socket path; empty for TCP */
    char user[128];
    char password[256];
    int db;
    /* redis-sentinel:// only (nsentinels is 0 otherwise) */
    int nsentinels;
    lash_url_host sentinels[LASH_URL_SENTINELS_MAX];
    char master[128]; /* the name the Sentinels know the primary by */
} lash_url;

lash_status lash_url_parse(const char *s, lash_url *out, lash_err *e);
/* The URL without its password, for logs. */
void lash_url_describe(const lash_url *u, char *buf, unsigned len);

#endif
