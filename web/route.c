/* route.c: the request router (see route.h). */
#include "web/route.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "proto/keys.h"
#include "proto/record.h"
#include "proto/state.h"

/* The static files compiled in (web/assets/); web/server.c serves them. */
static const char *const assets[] = {"app.js", "app.css", "favicon.svg"};

static void fail(web_route *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(web_route *r, int status, const char *fmt, ...)
{
    va_list ap;
    r->kind = WEB_R_ERROR;
    r->status = status;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
}

bool web_token_equal(const char *given, const char *want)
{
    if (!given || !want) return false;
    size_t gl = strlen(given), wl = strlen(want);
    /* Every byte of want is looked at whatever given holds, so the time taken
     * does not tell how much of a guess was right. */
    unsigned diff = gl != wl;
    for (size_t i = 0; i < wl; i++)
        diff |= (unsigned char)want[i] ^ (unsigned char)(i < gl ? given[i] : 0);
    return diff == 0;
}

/* "localhost", "127.x.y.z", "[::1]", each with an optional :port. */
static bool loopback_host(const char *h)
{
    char name[64];
    size_t n = strlen(h);
    if (n == 0 || n >= sizeof name) return false;
    memcpy(name, h, n + 1);
    char *colon = name[0] == '[' ? strstr(name, "]:") : strrchr(name, ':');
    if (colon) {
        char *port = colon + (name[0] == '[' ? 2 : 1);
        int64_t v;
        if (!lash_parse_i64(port, strlen(port), 1, 65535, &v)) return false;
        if (name[0] == '[')
            colon[1] = 0;
        else
            *colon = 0;
    }
    if (strcmp(name, "localhost") == 0 || strcmp(name, "[::1]") == 0) return true;
    if (strncmp(name, "127.", 4) != 0) return false;
    int dots = 0;
    for (const char *p = name + 4; *p; p++) {
        if (*p == '.')
            dots++;
        else if (*p < '0' || *p > '9')
            return false;
    }
    return dots == 2;
}

/* The arguments a route accepts; each may be given once. */
typedef struct {
    const char *name;
    const char *val;
    bool seen;
} arg;

static bool take_args(const web_request *rq, arg *want, size_t n, web_route *r)
{
    for (size_t i = 0; i < rq->nargs; i++) {
        const char *name = rq->args[i].name ? rq->args[i].name : "";
        arg *a = NULL;
        for (size_t k = 0; k < n && !a; k++)
            if (strcmp(want[k].name, name) == 0) a = &want[k];
        if (!a) {
            fail(r, 400, "unknown query argument '%.40s'", name);
            return false;
        }
        if (a->seen) {
            fail(r, 400, "query argument '%s' given twice", a->name);
            return false;
        }
        a->seen = true;
        a->val = rq->args[i].value ? rq->args[i].value : "";
    }
    return true;
}

static bool want_queue(const char *v, web_route *r)
{
    lash_err e = {0};
    if (!v) {
        fail(r, 400, "queue is missing");
        return false;
    }
    if (lash_queue_check(v, &e)) {
        fail(r, 400, "queue: %.150s", e.msg);
        return false;
    }
    snprintf(r->queue, sizeof r->queue, "%s", v);
    return true;
}

static bool want_id(const char *v, web_route *r)
{
    lash_err e = {0};
    if (!v) {
        fail(r, 400, "id is missing");
        return false;
    }
    if (lash_id_check(v, strlen(v), &e)) {
        fail(r, 400, "id: %.150s", e.msg);
        return false;
    }
    snprintf(r->id, sizeof r->id, "%s", v);
    return true;
}

/* Cursors are 0, d<n> or t<n> (proto/lua/list.lua), as lashctl checks them. */
static bool want_cursor(const char *v, web_route *r)
{
    int64_t at;
    if (!v || strcmp(v, "0") == 0) {
        snprintf(r->cursor, sizeof r->cursor, "0");
        return true;
    }
    if ((v[0] != 'd' && v[0] != 't') ||
        !lash_parse_i64(v + 1, strlen(v + 1), 0, 1000000000000LL, &at)) {
        fail(r, 400, "cursor: not a cursor from a previous page");
        return false;
    }
    snprintf(r->cursor, sizeof r->cursor, "%c%lld", v[0], (long long)at);
    return true;
}

/* A reason is printable ASCII, 1..WEB_REASON_MAX bytes. */
static bool want_reason(const char *v, web_route *r)
{
    if (!v) return true;
    size_t n = strlen(v);
    if (n == 0 || n > WEB_REASON_MAX) {
        fail(r, 400, "reason must be 1..%d bytes", WEB_REASON_MAX);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e) {
            fail(r, 400, "reason must be printable ASCII");
            return false;
        }
    memcpy(r->reason, v, n + 1);
    return true;
}

/* The rules every action obeys before anything else is looked at. */
static bool action_allowed(const web_request *rq, const web_policy *p, web_route *r)
{
    if (!p->token || !p->token[0]) {
        fail(r, 403, "read-only: actions need lash-web started with LASH_WEB_TOKEN");
        return false;
    }
    const char *site = rq->sec_fetch_site;
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0) {
        fail(r, 403, "cross-site request refused (Sec-Fetch-Site: %.20s)", site);
        return false;
    }
    if (rq->origin) {
        char want[300];
        snprintf(want, sizeof want, "http://%s", rq->host ? rq->host : "");
        if (!rq->host || strcmp(rq->origin, want) != 0) {
            fail(r, 403, "cross-origin request refused");
            return false;
        }
    }
    if (!rq->token || !rq->token[0]) {
        fail(r, 401, "this action needs the token in the X-Lash-Token header");
        return false;
    }
    if (!web_token_equal(rq->token, p->token)) {
        fail(r, 403, "wrong token");
        return false;
    }
    return true;
}

/* Fails the route and leaves web_route_request. */
#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fail(__VA_ARGS__);                                                                         \
        return;                                                                                    \
    } while (0)

void web_route_request(const web_request *rq, const web_policy *p, web_route *r)
{
    memset(r, 0, sizeof *r);
    r->limit = 50;
    snprintf(r->cursor, sizeof r->cursor, "0");
    const char *m = rq->method ? rq->method : "", *path = rq->path ? rq->path : "";
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0, post = strcmp(m, "POST") == 0;
    r->head = strcmp(m, "HEAD") == 0;

    if (p->loopback && rq->host && !loopback_host(rq->host))
        FAIL(r, 421, "this server answers to loopback host names only");
    if (!get && !post) FAIL(r, 405, "method not allowed");

    /* Reads. */
    static const struct {
        const char *path;
        web_route_kind kind;
    } reads[] = {{"/", WEB_R_PAGE},
                 {"/healthz", WEB_R_HEALTH},
                 {"/metrics", WEB_R_METRICS},
                 {"/api/config", WEB_R_CONFIG},
                 {"/api/queues", WEB_R_QUEUES},
                 {"/api/workers", WEB_R_WORKERS},
                 {"/api/processes", WEB_R_PROCESSES},
                 {"/api/process", WEB_R_PROCESS}};
    static const struct {
        const char *path;
        web_route_kind kind;
    } actions[] = {
        {"/api/retry", WEB_R_RETRY}, {"/api/cancel", WEB_R_CANCEL}, {"/api/poke", WEB_R_POKE}};
    web_route_kind kind = WEB_R_ERROR;
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++)
        if (strcmp(path, reads[i].path) == 0) kind = reads[i].kind;
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (path[0] == '/' && strcmp(path + 1, assets[i]) == 0) {
            kind = WEB_R_ASSET;
            r->asset = assets[i];
        }
    bool is_action = false;
    for (size_t i = 0; i < sizeof actions / sizeof actions[0]; i++)
        if (strcmp(path, actions[i].path) == 0) {
            kind = actions[i].kind;
            is_action = true;
        }
    if (kind == WEB_R_ERROR) FAIL(r, 404, "no such page");
    if (is_action && !post) FAIL(r, 405, "this action wants POST");
    if (!is_action && !get) FAIL(r, 405, "this page wants GET");
    if (is_action && !action_allowed(rq, p, r)) return;

    arg a[5] = {{"queue", 0, 0}, {"id", 0, 0}, {"state", 0, 0}, {"cursor", 0, 0}, {"limit", 0, 0}};
    switch (kind) {
    case WEB_R_PAGE:
    case WEB_R_ASSET:
    case WEB_R_HEALTH:
    case WEB_R_METRICS:
    case WEB_R_CONFIG:
    case WEB_R_QUEUES:
        if (!take_args(rq, a, 0, r)) return;
        break;
    case WEB_R_WORKERS:
    case WEB_R_POKE:
        if (!take_args(rq, a, 1, r) || !want_queue(a[0].val, r)) return;
        break;
    case WEB_R_PROCESS:
    case WEB_R_RETRY:
        if (!take_args(rq, a, 2, r) || !want_queue(a[0].val, r) || !want_id(a[1].val, r)) return;
        break;
    case WEB_R_CANCEL:
        a[2].name = "reason";
        if (!take_args(rq, a, 3, r) || !want_queue(a[0].val, r) || !want_id(a[1].val, r) ||
            !want_reason(a[2].val, r))
            return;
        break;
    case WEB_R_PROCESSES: {
        arg b[4] = {{"queue", 0, 0}, {"state", 0, 0}, {"cursor", 0, 0}, {"limit", 0, 0}};
        if (!take_args(rq, b, 4, r) || !want_queue(b[0].val, r) || !want_cursor(b[2].val, r))
            return;
        if (b[1].val && b[1].val[0]) {
            if (lash_state_parse(b[1].val) < 0)
                FAIL(r, 400,
                     "state: not one of pending, running, completed, failed, cancelled, "
                     "abandoned");
            snprintf(r->state, sizeof r->state, "%s", b[1].val);
        }
        int64_t lim;
        if (b[3].val && !lash_parse_i64(b[3].val, strlen(b[3].val), 1, 500, &lim))
            FAIL(r, 400, "limit: not an integer in 1..500");
        if (b[3].val) r->limit = (int)lim;
        break;
    }
    default:
        break;
    }
    r->kind = kind;
}
