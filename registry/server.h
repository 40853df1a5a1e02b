/* server.h (internal): operations on the Redis server as a whole.
 *
 * For tools that own the server they talk to: the benchmark harness reads the
 * server's counters (INFO: CPU, commands, memory, per-command stats) before
 * and after each phase, and empties the server between scenarios (FLUSHALL).
 * Nothing in lash's runtime, lashctl or lash-web uses these; they are not
 * installed with the public headers. Both go through lash_conn_command like
 * every other non-script command, so the connection's routing decides where
 * they go (queue NULL: any node).
 */
#ifndef LASH_REGISTRY_SERVER_H
#define LASH_REGISTRY_SERVER_H

#include "registry/registry.h"

/* INFO sections (e.g. "cpu stats memory commandstats"; NULL: the defaults):
 * *text gets the reply, NUL-terminated, the caller's to free. */
lash_status lash_server_info(lash_conn *c, const char *sections, char **text, lash_err *e);

/* FLUSHALL SYNC: deletes every key of every database of the server. */
lash_status lash_server_flush(lash_conn *c, lash_err *e);

#endif
