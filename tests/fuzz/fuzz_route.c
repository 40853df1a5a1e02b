/* fuzz_route: lash-web's request router. The input is split at newlines into
 * method, path, Host, Origin, Sec-Fetch-Site, X-Lash-Token, then query
 * arguments "name=value" (a line without '=' is an argument without a value).
 * Whatever comes in, the route is an error with a status and a reason, or a
 * route whose every field is valid the way the handlers rely on. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/keys.h"
#include "proto/state.h"
#include "web/route.h"

#define TOKEN "fuzz-token-0123456789"

static void check(const web_request *rq, const web_policy *p)
{
    web_route r;
    web_route_request(rq, p, &r);
    if (r.kind == WEB_R_ERROR) {
        int s = r.status;
        if (!(s == 400 || s == 401 || s == 403 || s == 404 || s == 405 || s == 421) ||
            !r.error[0] || !memchr(r.error, 0, sizeof r.error))
            abort();
        return;
    }
    if (r.kind == WEB_R_RETRY || r.kind == WEB_R_CANCEL || r.kind == WEB_R_POKE) {
        if (!p->token || !web_token_equal(rq->token, p->token) || strcmp(rq->method, "POST"))
            abort();
        if (rq->sec_fetch_site && strcmp(rq->sec_fetch_site, "same-origin") &&
            strcmp(rq->sec_fetch_site, "none"))
            abort();
    } else if (strcmp(rq->method, "GET") && strcmp(rq->method, "HEAD")) {
        abort();
    }
    if (r.queue[0] && lash_queue_check(r.queue, NULL)) abort();
    if (r.id[0] && lash_id_check(r.id, strlen(r.id), NULL)) abort();
    if (r.state[0] && lash_state_parse(r.state) < 0) abort();
    if (r.limit < 1 || r.limit > 500) abort();
    if (strcmp(r.cursor, "0") && r.cursor[0] != 'd' && r.cursor[0] != 't') abort();
    if ((r.kind == WEB_R_PROCESS || r.kind == WEB_R_RETRY || r.kind == WEB_R_CANCEL) &&
        (!r.queue[0] || !r.id[0]))
        abort();
    for (const char *c = r.reason; *c; c++)
        if (*c < 0x20 || *c > 0x7e) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    char *line[6] = {0};
    web_kv args[16];
    size_t nargs = 0, nl = 0;
    char *p = s;
    while (p) {
        char *next = strchr(p, '\n');
        if (next) *next++ = 0;
        if (nl < 6) {
            line[nl++] = p;
        } else if (nargs < 16) {
            char *eq = strchr(p, '=');
            if (eq) *eq++ = 0;
            args[nargs++] = (web_kv){p, eq};
        }
        p = next;
    }
    web_request rq = {.method = line[0] ? line[0] : "",
                      .path = line[1],
                      .host = line[2] && line[2][0] ? line[2] : NULL,
                      .origin = line[3] && line[3][0] ? line[3] : NULL,
                      .sec_fetch_site = line[4] && line[4][0] ? line[4] : NULL,
                      .token = line[5],
                      .args = args,
                      .nargs = nargs};
    const web_policy ro = {NULL, true}, rw = {TOKEN, true}, open = {TOKEN, false};
    check(&rq, &ro);
    check(&rq, &rw);
    check(&rq, &open);
    free(s);
    return 0;
}
