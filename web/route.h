/* route.h: lash-web's request router, a pure function.
 *
 * Every HTTP request lash-web serves is first turned into a web_route here:
 * which page, asset or API call it is, with every input checked (queue names,
 * ids, states and cursors the way lashctl checks them; unknown or repeated
 * query arguments refused), and the security rules applied:
 *
 *   - reads (GET, HEAD) are open to whoever reaches the listening address;
 *   - actions (POST retry/cancel/poke) need the server started with a token
 *     (LASH_WEB_TOKEN) and the request carrying it in the X-Lash-Token header,
 *     compared in constant time. A cross-site page cannot set that header
 *     without a CORS preflight, which lash-web never grants; and a request a
 *     browser marks as coming from another site (Sec-Fetch-Site) or another
 *     origin (Origin) is refused even with the token;
 *   - when it listens on loopback, the Host header must name a loopback host,
 *     so a DNS-rebinding page cannot read the dashboard through the browser.
 *
 * No I/O, no allocation, no globals: tested directly (tests/test_web.c) and
 * fuzzed (tests/fuzz/fuzz_route.c). web/server.c feeds it what MHD parsed.
 */
#ifndef LASH_WEB_ROUTE_H
#define LASH_WEB_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "proto/limits.h"

typedef struct {
    const char *name;
    const char *value; /* NULL: the argument had no '=' */
} web_kv;

/* A request as MHD hands it over: the path already percent-decoded, the query
 * split into arguments (decoded), and the headers that matter (NULL: absent). */
typedef struct {
    const char *method;
    const char *path;
    const web_kv *args;
    size_t nargs;
    const char *host;
    const char *origin;
    const char *sec_fetch_site;
    const char *token; /* X-Lash-Token */
} web_request;

typedef struct {
    const char *token; /* NULL or "": read-only */
    bool loopback;     /* listening on a loopback address */
} web_policy;

typedef enum {
    WEB_R_ERROR = 0, /* status + error say why */
    WEB_R_PAGE,      /* the dashboard, GET / */
    WEB_R_ASSET,     /* a static file: asset names it */
    WEB_R_HEALTH,    /* GET /healthz: the server itself, no Redis */
    WEB_R_METRICS,   /* GET /metrics */
    WEB_R_CONFIG,    /* GET /api/config: version, whether actions are on */
    WEB_R_QUEUES,    /* GET /api/queues: every queue with its stats */
    WEB_R_WORKERS,   /* GET /api/workers?queue= */
    WEB_R_PROCESSES, /* GET /api/processes?queue=&state=&cursor=&limit= */
    WEB_R_PROCESS,   /* GET /api/process?queue=&id= (the row and its events) */
    WEB_R_RETRY,     /* POST /api/retry?queue=&id= */
    WEB_R_CANCEL,    /* POST /api/cancel?queue=&id=[&reason=] */
    WEB_R_POKE,      /* POST /api/poke?queue= */
} web_route_kind;

#define WEB_REASON_MAX 200

typedef struct {
    web_route_kind kind;
    int status; /* WEB_R_ERROR: 400, 401, 403, 404, 405, 421 */
    char error[200];
    const char *asset; /* WEB_R_ASSET: the name, e.g. "app.js" */
    char queue[LASH_QUEUE_MAX + 1];
    char id[LASH_ID_MAX + 1];
    char state[16];  /* "" for every state */
    char cursor[32]; /* "0": the first page */
    int limit;       /* rows per page, 1..500 (default 50) */
    char reason[WEB_REASON_MAX + 1];
    bool head; /* HEAD: send the headers only */
} web_route;

void web_route_request(const web_request *rq, const web_policy *p, web_route *out);

/* Constant-time comparison of a presented token with the configured one. */
bool web_token_equal(const char *given, const char *want);

#endif
