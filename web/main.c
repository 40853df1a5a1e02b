/* main.c: lash-web, the dashboard and Prometheus endpoint of lash queues.
 *
 * Its own binary rather than `lashctl serve`: an HTTP server is a long-lived
 * network service with its own dependency (libmicrohttpd) and attack surface,
 * while lashctl is a short-lived operator tool whose container image carries
 * only hiredis, libev and cJSON. Keeping them apart keeps lashctl's
 * dependencies and privileges what they were, and lets an operator run the
 * read-only dashboard where no lashctl is installed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/record.h"
#include "proto/keys.h"
#include "proto/scripts.h"
#include "proto/version.h"
#include "proto/url.h"
#include "web/app.h"
#include "web/server.h"

#define MAXQ 256
#define TOKEN_MIN 16

static const char usage[] =
    "usage: lash-web [--redis URL] [--queue NAME]... [--listen ADDR] [--discover-ms MS]\n"
    "       lash-web --version\n"
    "\n"
    "Serves a dashboard, a JSON API and Prometheus metrics for lash queues.\n"
    "\n"
    "  --redis URL        LASH_REDIS_URL     (default redis://127.0.0.1:6379); the password\n"
    "                                        through LASH_REDIS_PASSWORD or the env URL\n"
    "  --queue NAME       LASH_QUEUES        serve only these queues (repeatable; env:\n"
    "                                        comma-separated). Default: every queue found\n"
    "                                        with SCAN, looked for again every --discover-ms\n"
    "  --listen ADDR      LASH_WEB_LISTEN    host:port to listen on (default 127.0.0.1:9464;\n"
    "                                        [::1]:9464 for IPv6; port 0 picks a free one)\n"
    "  --discover-ms MS                      reuse a discovered queue list this long\n"
    "                                        (default 30000)\n"
    "  --version                             print the version and the Lua library version\n"
    "\n"
    "Pages: /  the dashboard;  /metrics  Prometheus text format;  /healthz;\n"
    "       /api/config, /api/queues, /api/workers?queue=Q, /api/processes?queue=Q&state=S\n"
    "       &cursor=C&limit=N, /api/process?queue=Q&id=ID;  POST /api/retry?queue=Q&id=ID,\n"
    "       /api/cancel?queue=Q&id=ID[&reason=R], /api/poke?queue=Q.\n"
    "\n"
    "Security: read-only unless LASH_WEB_TOKEN is set in the environment (never a flag:\n"
    "ps shows flags to everyone); it must be at least 16 bytes. Actions then need the\n"
    "token in the X-Lash-Token header (the dashboard asks for it), and requests marked\n"
    "cross-site or cross-origin are refused. On a loopback address only loopback Host\n"
    "names are answered (DNS rebinding). Listening elsewhere exposes every payload and\n"
    "result to whoever can connect: put a TLS proxy with authentication in front.\n"
    "\n"
    "Exit: 0 on SIGTERM/SIGINT, 2 on bad options, 1 when it cannot listen.\n";

static int die(const char *fmt, const char *arg)
{
    fprintf(stderr, "lash-web: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n(see lash-web --help)\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *queues[MAXQ];
    size_t nq = 0;
    const char *env = getenv("LASH_REDIS_URL");
    const char *url = env && *env ? env : "redis://127.0.0.1:6379";
    env = getenv("LASH_WEB_LISTEN");
    const char *listen = env && *env ? env : "127.0.0.1:9464";
    int64_t discover_ms = 30000;
    char *envq = NULL;
    bool flag_q = false;
    int rc = 0;
    env = getenv("LASH_QUEUES");
    if (env && *env && (envq = strdup(env)))
        for (char *t = strtok(envq, ","); t && nq < MAXQ; t = strtok(NULL, ","))
            if (*t) queues[nq++] = t;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fputs(usage, stdout);
            free(envq);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("lash-web %s (lua library %s)\n", lash_version(), lash_function_version());
            free(envq);
            return 0;
        } else if (strcmp(a, "--token") == 0 || strncmp(a, "--token=", 8) == 0) {
            rc = die("%sthe token comes from LASH_WEB_TOKEN only: a flag is visible to every "
                     "user through ps",
                     "");
        } else if (!v) {
            rc = die("'%s' needs a value or is unknown", a);
        } else if (strcmp(a, "--redis") == 0) {
            url = v, i++;
        } else if (strcmp(a, "--listen") == 0) {
            listen = v, i++;
        } else if (strcmp(a, "--queue") == 0) {
            if (!flag_q) nq = 0;
            flag_q = true;
            if (nq >= MAXQ) rc = die("at most 256 queues%s", "");
            queues[nq++] = v, i++;
        } else if (strcmp(a, "--discover-ms") == 0) {
            if (!lash_parse_i64(v, strlen(v), 100, 86400000, &discover_ms))
                rc = die("--discover-ms must be 100..86400000, got '%s'", v);
            i++;
        } else {
            rc = die("unknown option '%s'", a);
        }
    }
    lash_err e = {0};
    lash_url u;
    for (size_t i = 0; !rc && i < nq; i++)
        if (lash_queue_check(queues[i], &e)) rc = die("queue: %s", e.msg);
    if (!rc && lash_url_parse(url, &u, &e)) rc = die("--redis: %s", e.msg);
    memset(&u, 0, sizeof u);
    lash_listen addr;
    if (!rc && lash_listen_parse(listen, &addr, &e)) rc = die("%s", e.msg);
    const char *token = getenv("LASH_WEB_TOKEN");
    if (!rc && token && *token && strlen(token) < TOKEN_MIN)
        rc = die("LASH_WEB_TOKEN must be at least 16 bytes%s", "");
    if (rc) {
        free(envq);
        return rc;
    }
    char *tok = token && *token ? strdup(token) : NULL;
    /* Out of the environment: nothing this process starts inherits it. */
    unsetenv("LASH_WEB_TOKEN");

    /* Block the stop signals before MHD starts its thread, so it inherits the
     * mask and only sigwait below sees them. SIGPIPE: a peer that went away
     * must not kill us (registry.h). */
    signal(SIGPIPE, SIG_IGN);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);

    web_config cfg = {.redis_url = url,
                      .queues = queues,
                      .nqueues = nq,
                      .discover_ms = discover_ms,
                      .policy = {.token = tok, .loopback = addr.loopback}};
    web_app app;
    web_app_init(&app, &cfg);
    web_server *srv = NULL;
    if (web_server_start(&addr, &app, &srv, &e)) {
        fprintf(stderr, "lash-web: %s\n", e.msg);
        rc = 1;
    } else {
        char shown[96];
        snprintf(shown, sizeof shown, "%s", addr.text);
        char *colon = strrchr(shown, ':');
        if (colon)
            snprintf(colon + 1, sizeof shown - (size_t)(colon + 1 - shown), "%d",
                     web_server_port(srv));
        fprintf(stderr, "lash-web %s: listening on http://%s/ (%s; %s)\n", lash_version(), shown,
                tok ? "actions on" : "read-only", nq ? "fixed queues" : "queues discovered");
        int sig;
        sigwait(&stop, &sig);
        web_server_stop(srv);
    }
    web_app_free(&app);
    if (tok) memset(tok, 0, strlen(tok));
    free(tok);
    free(envq);
    return rc;
}
