/* server.c: the libmicrohttpd layer (see server.h). */
#include "web/server.h"

#include <microhttpd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/record.h"
#include "web/app.h"

#define MAX_ARGS 16

struct web_server {
    struct MHD_Daemon *d;
    web_app *app;
    int port;
};

typedef struct {
    web_kv kv[MAX_ARGS];
    size_t n;
    bool too_many;
} args;

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    (void)kind;
    args *a = cls;
    if (a->n >= MAX_ARGS) {
        a->too_many = true;
        return MHD_NO;
    }
    a->kv[a->n++] = (web_kv){key, value};
    return MHD_YES;
}

static void headers(struct MHD_Response *resp, const web_reply *r)
{
    MHD_add_response_header(resp, "Content-Type", r->type);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    /* The page's scripts and styles are its own files: nothing inline runs,
     * so even markup that slipped into the page could not execute. */
    MHD_add_response_header(resp, "Content-Security-Policy",
                            "default-src 'none'; script-src 'self'; style-src 'self'; "
                            "img-src 'self'; connect-src 'self'; base-uri 'none'; "
                            "form-action 'none'; frame-ancestors 'none'");
    MHD_add_response_header(resp, "Cache-Control",
                            r->cacheable ? "public, max-age=300" : "no-store");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    web_server *s = cls;
    static int seen;
    /* First call: headers only. A request body is not wanted by any route:
     * it is read and dropped (MHD bounds what it buffers). */
    if (*con_cls == NULL) {
        *con_cls = &seen;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    args a = {0};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect, &a);
    web_request rq = {
        .method = method,
        .path = url,
        .args = a.kv,
        .nargs = a.n,
        .host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host"),
        .origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"),
        .sec_fetch_site = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Sec-Fetch-Site"),
        .token = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Lash-Token"),
    };
    web_route r;
    web_route_request(&rq, &s->app->c.policy, &r);
    if (a.too_many && r.kind != WEB_R_ERROR) {
        r.kind = WEB_R_ERROR;
        r.status = 400;
        snprintf(r.error, sizeof r.error, "more than %d query arguments", MAX_ARGS);
    }
    web_reply rep;
    web_handle(s->app, &r, &rep);
    if (rep.status >= 500) s->app->errors_5xx++;
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        rep.len, rep.body, rep.is_static ? MHD_RESPMEM_PERSISTENT : MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret = MHD_NO;
    if (resp) {
        headers(resp, &rep);
        ret = MHD_queue_response(conn, (unsigned)rep.status, resp);
        MHD_destroy_response(resp);
    }
    web_reply_free(&rep);
    return ret;
}

lash_status web_server_start(const lash_listen *addr, void *app, web_server **out, lash_err *e)
{
    web_server *s = calloc(1, sizeof *s);
    if (!s) return lash_fail(e, LASH_ENOMEM, "out of memory");
    s->app = app;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    if (addr->sa.ss_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, &addr->sa,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
    if (!s->d) {
        free(s);
        return lash_fail(e, LASH_EIO, "cannot listen on %s (in use, or not an address here?)",
                         addr->text);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : 0;
    *out = s;
    return LASH_OK;
}

int web_server_port(const web_server *s)
{
    return s->port;
}

void web_server_stop(web_server *s)
{
    if (!s) return;
    MHD_stop_daemon(s->d);
    free(s);
}
