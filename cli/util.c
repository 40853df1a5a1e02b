/* util.c: lashctl's connection and output helpers. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

int cli_connect(const cli_ctx *ctx, lash_conn **out)
{
    lash_err e = {0};
    lash_conn_opts o = {.timeout_ms = 5000, .failover_ms = ctx->failover_ms};
    lash_status st = lash_connect_opts(ctx->redis_url, &o, out, &e);
    if (st) return cli_fail(st, &e);
    /* The Functions library is what lets redis-cli users FCALL lash_submit; a
     * server that refuses it (ACL, Redis < 7) still works for lashctl, which
     * then runs the same scripts with EVALSHA, so only a broken connection stops us. */
    st = lash_functions_ensure(*out, &e);
    if (st == LASH_EIO) {
        lash_close(*out);
        *out = NULL;
        return cli_fail(st, &e);
    }
    return CLI_OK;
}

int cli_print_json(char *text)
{
    if (!text) return cli_error(CLI_REFUSED, "out of memory");
    fputs(text, stdout);
    fputc('\n', stdout);
    free(text);
    return CLI_OK;
}

char *cli_fmt_time(int64_t ms, char *buf, size_t len)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || !gmtime_r(&t, &tm)) {
        snprintf(buf, len, "-");
        return buf;
    }
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
    return buf;
}

char *cli_fmt_age(int64_t ms, char *buf, size_t len)
{
    if (ms < 0) ms = 0;
    if (ms < 1000)
        snprintf(buf, len, "%" PRId64 "ms", ms);
    else if (ms < 60000)
        snprintf(buf, len, "%.1fs", (double)ms / 1000);
    else if (ms < 3600000)
        snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", ms / 60000, ms / 1000 % 60);
    else if (ms < 86400000)
        snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", ms / 3600000, ms / 60000 % 60);
    else
        snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", ms / 86400000, ms / 3600000 % 24);
    return buf;
}
