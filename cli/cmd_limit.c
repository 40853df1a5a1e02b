/* cmd_limit.c: `lashctl limit set|list|rm`: fleet-wide limits per kind
 * (registry/limit.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/keys.h"
#include "registry/limit.h"

/* "R/PERIOD" (100/1s, 5/1m, 20/500ms): starts and the period in ms. */
static int parse_rate(const char *s, int64_t *rate, int64_t *period_ms)
{
    const char *slash = strchr(s, '/');
    char r[24];
    size_t n = slash ? (size_t)(slash - s) : 0;
    if (!slash || n == 0 || n >= sizeof r)
        return cli_usage("limit", "--rate '%s' must be R/PERIOD, e.g. 100/1s or 5/1m", s);
    memcpy(r, s, n);
    r[n] = 0;
    int rc = cli_parse_int("--rate (starts)", r, 1, LASH_LIMIT_RATE_MAX, rate);
    if (!rc)
        rc = cli_parse_duration("--rate (period)", slash + 1, 1, LASH_LIMIT_PERIOD_MAX, period_ms);
    return rc;
}

/* Prints {"kind":..,"status":..} or "<kind>: <text>". */
static int report(const cli_ctx *ctx, const char *kind, const char *status, const char *text)
{
    if (!ctx->json) {
        printf("%s: %s\n", kind, text);
        return CLI_OK;
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "kind", kind);
    cJSON_AddStringToObject(j, "status", status);
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return cli_print_json(s);
}

static int limit_set(cli_ctx *ctx, const char *kind, const char *conc, const char *rate)
{
    lash_err e = {0};
    if (lash_kind_check(kind, strlen(kind), &e)) return cli_usage("limit", "KIND %s", e.msg);
    if (!conc && !rate)
        return cli_usage("limit", "set wants --concurrency N and/or --rate R/PERIOD");
    int64_t c = LASH_LIMIT_KEEP, r = LASH_LIMIT_KEEP, p = 0;
    int rc;
    if (conc && strcmp(conc, "none") == 0)
        c = 0;
    else if (conc && (rc = cli_parse_int("--concurrency", conc, 1, LASH_LIMIT_CONCURRENCY_MAX, &c)))
        return rc;
    if (rate && strcmp(rate, "none") == 0)
        r = 0;
    else if (rate && (rc = parse_rate(rate, &r, &p)))
        return rc;
    lash_conn *cn = NULL;
    if ((rc = cli_connect(ctx, &cn))) return rc;
    lash_status st = lash_limit_set(cn, ctx->queue, kind, c, r, p, &e);
    lash_close(cn);
    if (st) return cli_fail(st, &e);
    return report(ctx, kind, "set", "limit set");
}

static int limit_rm(cli_ctx *ctx, const char *kind)
{
    lash_err e = {0};
    if (lash_kind_check(kind, strlen(kind), &e)) return cli_usage("limit", "KIND %s", e.msg);
    lash_conn *cn = NULL;
    int rc;
    if ((rc = cli_connect(ctx, &cn))) return rc;
    bool had = false;
    lash_status st = lash_limit_rm(cn, ctx->queue, kind, &had, &e);
    lash_close(cn);
    if (st) return cli_fail(st, &e);
    if (!had) {
        fprintf(stderr, "lashctl: limit: kind %s has no limit\n", kind);
        return CLI_REFUSED;
    }
    return report(ctx, kind, "removed", "limit removed");
}

/* "50/1000" as the shortest exact unit: 50/1s. */
static void rate_text(char *buf, size_t cap, const lash_limit *l)
{
    if (l->rate == 0) {
        snprintf(buf, cap, "-");
        return;
    }
    if (l->rate < 0) {
        snprintf(buf, cap, "malformed");
        return;
    }
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}, {"ms", 1}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (l->period_ms % units[i].ms == 0) {
            snprintf(buf, cap, "%lld/%lld%s", (long long)l->rate,
                     (long long)(l->period_ms / units[i].ms), units[i].unit);
            return;
        }
    }
}

static int limit_list(cli_ctx *ctx)
{
    lash_conn *cn = NULL;
    int rc;
    if ((rc = cli_connect(ctx, &cn))) return rc;
    lash_limit *l = NULL;
    size_t n = 0;
    lash_err e = {0};
    lash_status st = lash_limit_list(cn, ctx->queue, &l, &n, &e);
    lash_close(cn);
    if (st) return cli_fail(st, &e);
    if (ctx->json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "kind", l[i].kind);
            cJSON_AddNumberToObject(j, "concurrency", (double)l[i].concurrency);
            cJSON_AddNumberToObject(j, "rate", (double)l[i].rate);
            cJSON_AddNumberToObject(j, "period_ms", (double)l[i].period_ms);
            cJSON_AddNumberToObject(j, "running", (double)l[i].running);
            cJSON_AddNumberToObject(j, "held", (double)l[i].held);
            cJSON_AddItemToArray(arr, j);
        }
        free(l);
        char *s = cJSON_PrintUnformatted(arr);
        cJSON_Delete(arr);
        return cli_print_json(s);
    }
    printf("%-24s %-12s %-14s %8s %8s\n", "KIND", "CONCURRENCY", "RATE", "RUNNING", "HELD");
    for (size_t i = 0; i < n; i++) {
        char c[24], r[48];
        if (l[i].concurrency > 0)
            snprintf(c, sizeof c, "%lld", (long long)l[i].concurrency);
        else
            snprintf(c, sizeof c, "%s", l[i].concurrency < 0 ? "malformed" : "-");
        rate_text(r, sizeof r, &l[i]);
        printf("%-24s %-12s %-14s %8lld %8lld\n", l[i].kind, c, r, (long long)l[i].running,
               (long long)l[i].held);
    }
    free(l);
    return CLI_OK;
}

int cli_cmd_limit(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{"concurrency", true, NULL}, {"rate", true, NULL}, {NULL, false, NULL}};
    const char *pos[2];
    int npos, rc;
    if (!cli_begin(ctx, "limit", argc, argv, o, pos, 1, 2, &npos, &rc)) return rc;
    const char *conc = cli_opt_val(o, "concurrency"), *rate = cli_opt_val(o, "rate");
    const char *sub = pos[0];
    if (strcmp(sub, "set") == 0) {
        if (npos != 2) return cli_usage("limit", "set wants KIND");
        return limit_set(ctx, pos[1], conc, rate);
    }
    if (conc || rate) return cli_usage("limit", "--concurrency and --rate go with set");
    if (strcmp(sub, "rm") == 0) {
        if (npos != 2) return cli_usage("limit", "rm wants KIND");
        return limit_rm(ctx, pos[1]);
    }
    if (strcmp(sub, "list") == 0) {
        if (npos != 1) return cli_usage("limit", "list takes no KIND");
        return limit_list(ctx);
    }
    return cli_usage("limit", "unknown subcommand '%s' (set, list or rm)", sub);
}
