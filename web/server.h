/* server.h: lash-web's HTTP layer on libmicrohttpd (and the listen address).
 *
 * One MHD daemon with its own polling thread: MHD parses HTTP (lash-web does
 * no parsing of its own), this file turns each request into a web_request for
 * the router and sends back what web_handle answered, with the security
 * headers every response carries. Requests are handled one at a time on that
 * thread, which owns the app and its Redis connection.
 */
#ifndef LASH_WEB_SERVER_H
#define LASH_WEB_SERVER_H

#include <stdbool.h>
#include <sys/socket.h>

#include "proto/err.h"

typedef struct {
    struct sockaddr_storage sa;
    socklen_t len;
    bool loopback;
    char text[80]; /* as given, for logs */
} web_addr;

/* "127.0.0.1:9464", "[::1]:9464", "0.0.0.0:9464", "localhost:9464" (numeric
 * hosts and localhost only: no DNS lookups at start-up). */
lash_status web_addr_parse(const char *s, web_addr *out, lash_err *e);

struct web_app_s;
typedef struct web_server web_server;
/* Starts serving app (a web_app *) on addr. */
lash_status web_server_start(const web_addr *addr, void *app, web_server **out, lash_err *e);
/* The port actually bound (for :0). */
int web_server_port(const web_server *s);
void web_server_stop(web_server *s);

#endif
