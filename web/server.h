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

#include "proto/err.h"
#include "proto/listen.h"

typedef struct web_server web_server;
/* Starts serving app (a web_app *) on addr. */
lash_status web_server_start(const lash_listen *addr, void *app, web_server **out, lash_err *e);
/* The port actually bound (for :0). */
int web_server_port(const web_server *s);
void web_server_stop(web_server *s);

#endif
