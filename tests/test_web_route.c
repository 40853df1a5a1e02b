/* test_web_route.c: lash-web's request router (web/route.h), a pure function:
 * which route each request is, what it refuses and why, and the security
 * rules for actions. The prometheus writer (proto/prom.h) is checked here too. */
#include <criterion/criterion.h>
#include <string.h>

#include "proto/prom.h"
#include "web/route.h"

#define TOKEN "0123456789abcdef-token"

static const web_policy RO = {NULL, true};
static const web_policy RW = {TOKEN, true};

static web_route get(const char *path, const web_kv *args, size_t n)
{
    web_request rq = {
        .method = "GET", .path = path, .args = args, .nargs = n, .host = "127.0.0.1:9464"};
    web_route r;
    web_route_request(&rq, &RO, &r);
    return r;
}

static web_route post(const web_policy *p, const char *path, const web_kv *args, size_t n,
                      const char *token, const char *origin, const char *site)
{
    web_request rq = {.method = "POST",
                      .path = path,
                      .args = args,
                      .nargs = n,
                      .host = "127.0.0.1:9464",
                      .origin = origin,
                      .sec_fetch_site = site,
                      .token = token};
    web_route r;
    web_route_request(&rq, p, &r);
    return r;
}

Test(route, pages_and_assets)
{
    cr_assert_eq(get("/", NULL, 0).kind, WEB_R_PAGE);
    cr_assert_eq(get("/metrics", NULL, 0).kind, WEB_R_METRICS);
    cr_assert_eq(get("/healthz", NULL, 0).kind, WEB_R_HEALTH);
    web_route r = get("/app.js", NULL, 0);
    cr_assert_eq(r.kind, WEB_R_ASSET);
    cr_assert_str_eq(r.asset, "app.js");
    r = get("/../etc/passwd", NULL, 0);
    cr_assert_eq(r.kind, WEB_R_ERROR);
    cr_assert_eq(r.status, 404);
    cr_assert_eq(get("/index.html", NULL, 0).status, 404, "the page is only at /");
}

Test(route, a_page_of_processes_takes_checked_arguments)
{
    web_kv a[] = {{"queue", "q1"}, {"state", "failed"}, {"cursor", "t50"}, {"limit", "20"}};
    web_route r = get("/api/processes", a, 4);
    cr_assert_eq(r.kind, WEB_R_PROCESSES, "%s", r.error);
    cr_assert_str_eq(r.queue, "q1");
    cr_assert_str_eq(r.state, "failed");
    cr_assert_str_eq(r.cursor, "t50");
    cr_assert_eq(r.limit, 20);
    web_kv d[] = {{"queue", "q1"}};
    r = get("/api/processes", d, 1);
    cr_assert_str_eq(r.cursor, "0");
    cr_assert_eq(r.limit, 50);
    cr_assert_str_eq(r.state, "");
}

Test(route, bad_inputs_are_400_naming_what_was_wrong)
{
    static const struct {
        const char *path;
        web_kv args[3];
        size_t n;
        const char *why;
    } cases[] = {
        {"/api/processes", {{"queue", "a b"}}, 1, "queue"},
        {"/api/processes", {{"queue", "<script>"}}, 1, "queue"},
        {"/api/processes", {}, 0, "queue is missing"},
        {"/api/processes", {{"queue", "q"}, {"state", "done"}}, 2, "state"},
        {"/api/processes", {{"queue", "q"}, {"cursor", "x5"}}, 2, "cursor"},
        {"/api/processes", {{"queue", "q"}, {"cursor", "d-1"}}, 2, "cursor"},
        {"/api/processes", {{"queue", "q"}, {"limit", "0"}}, 2, "limit"},
        {"/api/processes", {{"queue", "q"}, {"limit", "501"}}, 2, "limit"},
        {"/api/processes", {{"queue", "q"}, {"queue", "q"}}, 2, "twice"},
        {"/api/processes", {{"queue", "q"}, {"evil", "1"}}, 2, "unknown query argument"},
        {"/api/process", {{"queue", "q"}, {"id", "<img src=x>"}}, 2, "id"},
        {"/api/process", {{"queue", "q"}}, 1, "id is missing"},
        {"/api/queues", {{"x", NULL}}, 1, "unknown query argument"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        web_route r = get(cases[i].path, cases[i].args, cases[i].n);
        cr_assert_eq(r.kind, WEB_R_ERROR, "case %zu", i);
        cr_assert_eq(r.status, 400, "case %zu: %d", i, r.status);
        cr_assert(strstr(r.error, cases[i].why), "case %zu: '%s' lacks '%s'", i, r.error,
                  cases[i].why);
    }
}

Test(route, methods)
{
    web_request rq = {.method = "DELETE", .path = "/api/queues"};
    web_route r;
    web_route_request(&rq, &RW, &r);
    cr_assert_eq(r.status, 405);
    web_kv a[] = {{"queue", "q"}, {"id", "p1"}};
    r = get("/api/retry", a, 2);
    cr_assert_eq(r.status, 405, "an action is never a GET");
    r = post(&RW, "/api/queues", NULL, 0, TOKEN, NULL, NULL);
    cr_assert_eq(r.status, 405, "a read is never a POST");
    rq = (web_request){.method = "HEAD", .path = "/metrics"};
    web_route_request(&rq, &RO, &r);
    cr_assert_eq(r.kind, WEB_R_METRICS);
    cr_assert(r.head);
}

Test(route, actions_need_a_configured_token)
{
    web_kv a[] = {{"queue", "q"}, {"id", "p1"}};
    web_route r = post(&RO, "/api/retry", a, 2, TOKEN, NULL, NULL);
    cr_assert_eq(r.status, 403);
    cr_assert(strstr(r.error, "read-only"), "%s", r.error);
}

Test(route, actions_with_the_token_pass)
{
    web_kv a[] = {{"queue", "q"}, {"id", "p1"}, {"reason", "operator said so"}};
    web_route r = post(&RW, "/api/retry", a, 2, TOKEN, NULL, NULL);
    cr_assert_eq(r.kind, WEB_R_RETRY, "%s", r.error);
    cr_assert_str_eq(r.id, "p1");
    r = post(&RW, "/api/cancel", a, 3, TOKEN, "http://127.0.0.1:9464", "same-origin");
    cr_assert_eq(r.kind, WEB_R_CANCEL, "%s", r.error);
    cr_assert_str_eq(r.reason, "operator said so");
    r = post(&RW, "/api/poke", a, 1, TOKEN, NULL, "none");
    cr_assert_eq(r.kind, WEB_R_POKE, "%s", r.error);
}

Test(route, actions_without_or_with_a_wrong_token_are_refused)
{
    web_kv a[] = {{"queue", "q"}, {"id", "p1"}};
    cr_assert_eq(post(&RW, "/api/retry", a, 2, NULL, NULL, NULL).status, 401);
    cr_assert_eq(post(&RW, "/api/retry", a, 2, "", NULL, NULL).status, 401);
    cr_assert_eq(post(&RW, "/api/retry", a, 2, TOKEN "x", NULL, NULL).status, 403);
    cr_assert_eq(post(&RW, "/api/retry", a, 2, "0123456789abcdef-tokeN", NULL, NULL).status, 403);
}

Test(route, cross_site_requests_are_refused_even_with_the_token)
{
    web_kv a[] = {{"queue", "q"}, {"id", "p1"}};
    web_route r = post(&RW, "/api/retry", a, 2, TOKEN, NULL, "cross-site");
    cr_assert_eq(r.status, 403);
    cr_assert(strstr(r.error, "cross-site"));
    cr_assert_eq(post(&RW, "/api/retry", a, 2, TOKEN, NULL, "same-site").status, 403);
    cr_assert_eq(post(&RW, "/api/retry", a, 2, TOKEN, "http://evil.example", NULL).status, 403);
    cr_assert_eq(post(&RW, "/api/retry", a, 2, TOKEN, "null", NULL).status, 403);
}

Test(route, loopback_servers_answer_loopback_hosts_only)
{
    const char *good[] = {"127.0.0.1:9464", "localhost:9464", "localhost", "[::1]:9464",
                          "127.1.2.3"};
    const char *bad[] = {"evil.example:9464", "127.0.0.1.evil.example", "localhost.evil",
                         "[::2]:9464",        "127.0.0.1:99999",        ""};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        web_request rq = {.method = "GET", .path = "/metrics", .host = good[i]};
        web_route r;
        web_route_request(&rq, &RO, &r);
        cr_assert_eq(r.kind, WEB_R_METRICS, "%s: %s", good[i], r.error);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        web_request rq = {.method = "GET", .path = "/metrics", .host = bad[i]};
        web_route r;
        web_route_request(&rq, &RO, &r);
        cr_assert_eq(r.status, 421, "%s", bad[i]);
    }
    web_policy open = {NULL, false};
    web_request rq = {.method = "GET", .path = "/metrics", .host = "lash-web.monitoring:9464"};
    web_route r;
    web_route_request(&rq, &open, &r);
    cr_assert_eq(r.kind, WEB_R_METRICS, "any Host when not on loopback");
}

Test(route, token_comparison)
{
    cr_assert(web_token_equal("abc", "abc"));
    cr_assert(!web_token_equal("abd", "abc"));
    cr_assert(!web_token_equal("ab", "abc"));
    cr_assert(!web_token_equal("abcd", "abc"));
    cr_assert(!web_token_equal(NULL, "abc"));
}

Test(prom, label_values_are_escaped_and_cleaned)
{
    lash_prom_buf b = {0};
    lash_prom_sample(&b, "m", 1.5, "a", "x\"y\\z\nw", "b", "\x01\xff", NULL);
    lash_prom_sample(&b, "n", 42, NULL);
    cr_assert(!b.oom);
    cr_assert_str_eq(b.s, "m{a=\"x\\\"y\\\\z\\nw\",b=\"??\"} 1.5\nn 42\n");
    lash_prom_buf_free(&b);
}
