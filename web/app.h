/* app.h: lash-web's state and its handlers, below the HTTP layer.
 *
 * web/server.c (libmicrohttpd) turns a request into a web_route (route.h) and
 * hands it to web_handle, which answers with a web_reply. Everything here runs
 * on the server's one thread, which owns the Redis connection: a lash_conn is
 * one thread's at a time (registry.h), and one thread keeps it so. A request
 * that finds the connection broken reconnects once; Redis down is a 503 for the
 * JSON API and `lash_up 0` for /metrics (what Prometheus exporters do).
 */
#ifndef LASH_WEB_APP_H
#define LASH_WEB_APP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/inspect.h"
#include "registry/registry.h"
#include "web/route.h"

#define WEB_MAX_QUEUES 1000

typedef struct {
    const char *redis_url;
    int redis_timeout_ms;
    const char *const *queues; /* the queues to serve; none: discover them */
    size_t nqueues;
    int64_t discover_ms; /* how long a discovered queue list is reused */
    web_policy policy;
} web_config;

typedef struct {
    web_config c;
    lash_conn *conn;
    lash_queue_list found; /* discovered queues (when c.nqueues == 0) */
    const char **found_ptrs;
    int64_t found_at_ms; /* monotonic; 0: never */
    uint64_t commands;   /* Redis commands sent by the last /metrics */
    uint64_t requests, errors_5xx;
} web_app;

typedef struct {
    int status;
    const char *type;
    char *body; /* malloc'd, or static when is_static */
    size_t len;
    bool is_static;
    bool cacheable; /* assets: may be cached for a while */
} web_reply;

void web_app_init(web_app *a, const web_config *c);
void web_app_free(web_app *a);
/* Answers one routed request. The reply's body is the caller's to free
 * (unless is_static). */
void web_handle(web_app *a, const web_route *r, web_reply *out);
void web_reply_free(web_reply *r);

/* The static files (generated from web/assets/ by web/embed.cmake). */
typedef struct {
    const char *name;
    const char *type;
    const unsigned char *data;
    size_t len;
} web_asset;
const web_asset *web_asset_find(const char *name);

/* ---- pieces of web_handle, in their own files ---- */
/* /metrics (web/metrics.c). */
void web_metrics(web_app *a, web_reply *out);
/* The queues to show: the configured ones, or the discovered ones (refreshed
 * when older than discover_ms). LASH_EIO when Redis is down. */
lash_status web_queues(web_app *a, const char *const **names, size_t *n, lash_err *e);
/* A connection, reconnecting when there is none. */
lash_status web_conn(web_app *a, lash_err *e);
/* After a call failed with st: drop a broken connection. */
void web_conn_failed(web_app *a, lash_status st);
int64_t web_mono_ms(void);

#endif
