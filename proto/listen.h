/* listen.h: parsing a listen address ("127.0.0.1:9464", "[::1]:9464",
 * "0.0.0.0:9464", "localhost:9464"), for lash-web and the worker's metrics.
 * Numeric hosts and localhost only: nothing is looked up, so a start-up never
 * waits on DNS. Pure: no I/O. */
#ifndef LASH_PROTO_LISTEN_H
#define LASH_PROTO_LISTEN_H

#include <stdbool.h>
#include <sys/socket.h>

#include "proto/err.h"

typedef struct {
    struct sockaddr_storage sa;
    socklen_t len;
    bool loopback; /* 127.0.0.0/8 or ::1 */
    char text[80]; /* as given, for messages */
} lash_listen;

lash_status lash_listen_parse(const char *s, lash_listen *out, lash_err *e);

#endif
