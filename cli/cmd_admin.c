/* cmd_admin.c: the commands that change things: cancel, retry, poke, trim,
 * functions. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/keys.h"
#include "proto/scripts.h"

/* Prints {"id":..,"status":..} or the text line. */
static int report(const cli_ctx *ctx, const char *id, const char *status, const char *text)
{
    if (!ctx->json) {
        printf("%s\n", text);
        return CLI_OK;
    }
    cJSON *j = cJSON_CreateObject();
    if (id) cJSON_AddStringToObject(j, "id", id);
    cJSON_AddStringToObject(j, "status", status);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return cli_print_json(s);
}

int cli_cmd_cancel(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{"reason", true, NULL}, {NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    if (!cli_begin(ctx, "cancel", argc, argv, o, pos, 1, 1, &npos, &rc)) return rc;
    lash_err e = {0};
    if (lash_id_check(pos[0], strlen(pos[0]), &e)) return cli_usage("cancel", "ID %s", e.msg);
    const char *reason = cli_opt_val(o, "reason");
    if (reason && (!reason[0] || strlen(reason) > LASH_ERROR_MAX))
        return cli_usage("cancel", "--reason must be 1..%d bytes", LASH_ERROR_MAX);
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    bool requested = false;
    lash_status st = lash_cancel(c, ctx->queue, pos[0], reason, &requested, &e);
    lash_close(c);
    if (st) return cli_fail(st, &e);
    char text[LASH_ID_MAX + 96];
    snprintf(text, sizeof text,
             requested ? "%s: cancel requested (it is running; its worker stops it)"
                       : "%s: cancelled",
             pos[0]);
    return report(ctx, pos[0], requested ? "requested" : "cancelled", text);
}

int cli_cmd_retry(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    if (!cli_begin(ctx, "retry", argc, argv, o, pos, 1, 1, &npos, &rc)) return rc;
    lash_err e = {0};
    if (lash_id_check(pos[0], strlen(pos[0]), &e)) return cli_usage("retry", "ID %s", e.msg);
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    lash_status st = lash_retry(c, ctx->queue, pos[0], &e);
    lash_close(c);
    if (st) return cli_fail(st, &e);
    char text[LASH_ID_MAX + 64];
    snprintf(text, sizeof text, "%s: reopened (pending)", pos[0]);
    return report(ctx, pos[0], "reopened", text);
}

int cli_cmd_poke(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    if (!cli_begin(ctx, "poke", argc, argv, o, pos, 0, 0, &npos, &rc)) return rc;
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    lash_err e = {0};
    lash_status st = lash_poke(c, ctx->queue, &e);
    lash_close(c);
    if (st) return cli_fail(st, &e);
    return report(ctx, NULL, "poked", "poked");
}

int cli_cmd_trim(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{"keep", true, NULL}, {"older-than", true, NULL}, {NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    if (!cli_begin(ctx, "trim", argc, argv, o, pos, 0, 0, &npos, &rc)) return rc;
    const char *keep = cli_opt_val(o, "keep"), *older = cli_opt_val(o, "older-than");
    /* Neither: the workers' own retention. One: that bound alone. */
    lash_retention r = {LASH_DEFAULT_KEEP_N, LASH_DEFAULT_KEEP_MS};
    if (keep || older) r = (lash_retention){-1, 0};
    if (keep && (rc = cli_parse_int("--keep", keep, 0, 1000000000, &r.keep_n))) return rc;
    if (older &&
        (rc = cli_parse_duration("--older-than", older, 1, 100LL * 365 * 86400000, &r.keep_ms)))
        return rc;
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    enum { MAX = 1000 };
    int64_t total = 0, n;
    lash_err e = {0};
    lash_status st;
    /* Each call deletes at most MAX rows, so Redis is never held for long. */
    do {
        n = 0;
        st = lash_trim(c, ctx->queue, r, MAX, &n, &e);
        total += n;
    } while (!st && n == MAX);
    lash_close(c);
    if (st) return cli_fail(st, &e);
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "removed", (double)total);
        char *s = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        return cli_print_json(s);
    }
    printf("removed %lld finished rows\n", (long long)total);
    return CLI_OK;
}

static lash_status count_primary(lash_conn *node, void *ud, lash_err *e)
{
    (void)node;
    (void)e;
    ++*(int *)ud;
    return LASH_OK;
}

int cli_cmd_functions(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{NULL, false, NULL}};
    const char *pos[1];
    int npos, rc;
    if (!cli_begin(ctx, "functions", argc, argv, o, pos, 0, 0, &npos, &rc)) return rc;
    lash_conn *c = NULL;
    lash_err e = {0};
    /* Not cli_connect: its load is best effort, and here the outcome is the point. */
    lash_conn_opts opts = {.timeout_ms = 5000, .failover_ms = ctx->failover_ms};
    lash_status st = lash_connect_opts(ctx->redis_url, &opts, &c, &e);
    if (st) return cli_fail(st, &e);
    /* On every primary: a Cluster's primaries do not share functions. */
    int primaries = 0;
    st = lash_functions_ensure(c, &e);
    if (!st) st = lash_conn_each_primary(c, count_primary, &primaries, &e);
    lash_close(c);
    if (st) return cli_fail(st, &e);
    if (!ctx->json) {
        printf("functions library 'lash' loaded (version %s) on %d primar%s\n",
               lash_function_version(), primaries, primaries == 1 ? "y" : "ies");
        return CLI_OK;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "library", "lash");
    cJSON_AddStringToObject(j, "version", lash_function_version());
    cJSON_AddNumberToObject(j, "primaries", primaries);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return cli_print_json(s);
}
