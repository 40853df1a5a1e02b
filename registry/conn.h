/* conn.h (internal): the blocking connection and the commands that set one up. */
#ifndef LASH_REGISTRY_CONN_H
#define LASH_REGISTRY_CONN_H

#include <hiredis/hiredis.h>

#include "registry/argv.h"
#include "registry/registry.h"

struct lash_conn {
    redisContext *ctx;
    lash_url url;
    int timeout_ms;
};

/* Marks a connection's socket close-on-exec: hiredis opens it without, and a
 * program a worker runs must not inherit a socket it could speak to Redis on
 * with the worker's rights. */
void lash_fd_cloexec(int fd);

/* The password to use: LASH_REDIS_PASSWORD when set, else the URL's. */
const char *lash_url_password(const lash_url *u);

/* Sends one command that concerns queue (NULL: any node will do) and returns
 * its reply, the caller's to free; NULL means the connection broke (e says so,
 * naming `what`). Every registry operation that is not a script sends through
 * here, so where a command goes is decided in one place. */
redisReply *lash_conn_command(lash_conn *c, const char *queue, const char *what, int argc,
                              const char **argv, const size_t *len, lash_err *e);

/* Runs a finished script call, re-sending it as EVAL on NOSCRIPT. The reply is
 * the caller's to free; NULL means the connection broke (e says so). */
redisReply *lash_conn_script(lash_conn *c, lash_argv *a, lash_err *e);

#endif
