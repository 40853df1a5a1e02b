/* args.c: lashctl's argument parsing and value validation.
 *
 * Every value an operator types is checked here before anything reaches Redis,
 * so a typo is a usage error (exit 2) naming the flag, never a half-done
 * operation.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "proto/cron.h"
#include "proto/keys.h"
#include "proto/url.h"

int cli_global_flag(cli_ctx *ctx, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    if (strcmp(a, "--json") == 0) {
        ctx->json = true;
        return 1;
    }
    const char *name = NULL, *val = NULL;
    size_t len = 7;
    if (strncmp(a, "--redis", 7) == 0 && (a[7] == 0 || a[7] == '='))
        name = "--redis";
    else if (strncmp(a, "--queue", 7) == 0 && (a[7] == 0 || a[7] == '='))
        name = "--queue";
    else if (strncmp(a, "--failover-ms", 13) == 0 && (a[13] == 0 || a[13] == '='))
        name = "--failover-ms", len = 13;
    else
        return 0;
    if (a[len] == '=') {
        val = a + len + 1;
    } else {
        if (*i + 1 >= argc) {
            cli_error(CLI_USAGE, "%s needs a value", name);
            return -1;
        }
        val = argv[++*i];
    }
    if (name[2] == 'r') {
        ctx->redis_url = val;
        ctx->url_from_args = true;
    } else if (name[2] == 'q') {
        ctx->queue = val;
    } else {
        int64_t ms;
        if (cli_parse_int("--failover-ms", val, 1, 3600000, &ms)) return -1;
        ctx->failover_ms = (int)ms;
    }
    return 1;
}

int cli_globals_check(const cli_ctx *ctx)
{
    lash_url u;
    lash_err e = {0};
    if (lash_url_parse(ctx->redis_url, &u, &e)) return cli_error(CLI_USAGE, "--redis: %s", e.msg);
    /* A password in argv is visible to every user through ps and /proc. */
    if (ctx->url_from_args && u.password[0])
        fprintf(stderr, "lashctl: warning: --redis carries a password, which other users can see "
                        "with ps; use LASH_REDIS_URL or LASH_REDIS_PASSWORD instead\n");
    memset(&u, 0, sizeof u);
    if (lash_queue_check(ctx->queue, &e)) return cli_error(CLI_USAGE, "--queue: %s", e.msg);
    return CLI_OK;
}

static cli_opt *find_opt(cli_opt *opts, const char *name, size_t len)
{
    for (cli_opt *o = opts; o && o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) return o;
    return NULL;
}

int cli_parse(cli_ctx *ctx, int argc, char **argv, cli_opt *opts, const char **pos, int max_pos,
              int *npos)
{
    bool words_only = false;
    *npos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (words_only || a[0] != '-' || strcmp(a, "-") == 0) {
            if (*npos >= max_pos) return cli_error(CLI_USAGE, "unexpected argument '%s'", a);
            pos[(*npos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            words_only = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) return -1;
        int g = cli_global_flag(ctx, argc, argv, &i);
        if (g < 0) return CLI_USAGE;
        if (g > 0) continue;
        if (a[1] != '-') return cli_error(CLI_USAGE, "unknown option '%s'", a);
        const char *name = a + 2, *eq = strchr(name, '=');
        cli_opt *o = find_opt(opts, name, eq ? (size_t)(eq - name) : strlen(name));
        if (!o) return cli_error(CLI_USAGE, "unknown option '%.*s'", eq ? (int)(eq - a) : 64, a);
        if (o->val) return cli_error(CLI_USAGE, "--%s given twice", o->name);
        if (!o->has_arg) {
            if (eq) return cli_error(CLI_USAGE, "--%s takes no value", o->name);
            o->val = "";
        } else if (eq) {
            o->val = eq + 1;
        } else {
            if (i + 1 >= argc) return cli_error(CLI_USAGE, "--%s needs a value", o->name);
            o->val = argv[++i];
        }
    }
    return CLI_OK;
}

bool cli_begin(cli_ctx *ctx, const char *cmd, int argc, char **argv, cli_opt *opts,
               const char **pos, int min_pos, int max_pos, int *npos, int *rc)
{
    int r = cli_parse(ctx, argc, argv, opts, pos, max_pos, npos);
    if (r < 0) {
        cli_help(cmd);
        *rc = CLI_OK;
        return false;
    }
    if (r == CLI_OK && *npos < min_pos)
        r = cli_usage(cmd, min_pos == 1 ? "missing argument" : "missing arguments");
    if (r == CLI_OK) r = cli_globals_check(ctx);
    *rc = r;
    return r == CLI_OK;
}

const char *cli_opt_val(const cli_opt *opts, const char *name)
{
    for (const cli_opt *o = opts; o && o->name; o++)
        if (strcmp(o->name, name) == 0) return o->val;
    return NULL;
}

int cli_parse_int(const char *flag, const char *s, int64_t min, int64_t max, int64_t *out)
{
    if (!lash_parse_i64(s, strlen(s), min, max, out))
        return cli_error(CLI_USAGE, "%s: '%s' is not an integer in %lld..%lld", flag, s,
                         (long long)min, (long long)max);
    return CLI_OK;
}

/* ---- durations ------------------------------------------------------------- */

const char *cli_duration_ms(const char *s, int64_t *out_ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
                 {"h", 3600000}, {"d", 86400000}, {"w", 7 * 86400000LL}};
    const char *p = s;
    if (!isdigit((unsigned char)*p)) return "must start with a number, e.g. 30s, 15m, 2h, 7d";
    int64_t n = 0;
    for (; isdigit((unsigned char)*p); p++) {
        if (n > (INT64_MAX - 9) / 10) return "is too large";
        n = n * 10 + (*p - '0');
    }
    if (!*p) return "needs a unit: ms, s, m, h, d or w (e.g. 30s, 15m, 2h, 7d)";
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(p, units[i].unit) == 0) {
            if (n > INT64_MAX / units[i].ms) return "is too large";
            *out_ms = n * units[i].ms;
            return NULL;
        }
    }
    return "has an unknown unit (use ms, s, m, h, d or w)";
}

int cli_parse_duration(const char *flag, const char *s, int64_t min_ms, int64_t max_ms,
                       int64_t *out_ms)
{
    const char *why = cli_duration_ms(s, out_ms);
    if (why) return cli_error(CLI_USAGE, "%s: '%s' %s", flag, s, why);
    if (*out_ms < min_ms || *out_ms > max_ms)
        return cli_error(CLI_USAGE, "%s: '%s' is out of range (%lld ms..%lld ms)", flag, s,
                         (long long)min_ms, (long long)max_ms);
    return CLI_OK;
}

/* ---- ISO 8601 -------------------------------------------------------------- */

/* Reads exactly n digits at *p. */
static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i])) return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dm[m - 1];
}

const char *cli_iso8601_ms(const char *s, int64_t *out_ms)
{
    const char *p = s;
    int y, mo, d, h, mi, sec = 0, ms = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return "is not a date YYYY-MM-DD";
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) return "is not a real date";
    if (*p != 'T' && *p != 't' && *p != ' ') return "needs a time: YYYY-MM-DDTHH:MM[:SS]";
    p++;
    if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi)) return "has a bad time HH:MM";
    if (*p == ':') {
        p++;
        if (!digits(&p, 2, &sec)) return "has bad seconds";
        if (*p == '.' || *p == ',') {
            p++;
            if (!isdigit((unsigned char)*p)) return "has a bad fraction of a second";
            int scale = 100;
            for (int n = 0; isdigit((unsigned char)*p); p++, n++) {
                if (n >= 9) return "has more than 9 fraction digits";
                ms += (*p - '0') * scale;
                scale /= 10;
            }
        }
    }
    if (h > 23 || mi > 59 || sec > 59) return "has a time out of range";
    int off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om = 0;
        if (!digits(&p, 2, &oh)) return "has a bad zone offset (use Z or +hh:mm)";
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &om)) return "has a bad zone offset (use Z or +hh:mm)";
        } else if (isdigit((unsigned char)*p)) {
            if (!digits(&p, 2, &om)) return "has a bad zone offset (use Z or +hh:mm)";
        }
        if (oh > 23 || om > 59) return "has a zone offset out of range";
        off = sign * (oh * 60 + om);
    } else if (*p == 0) {
        return "needs a time zone: Z or +hh:mm (local time would be ambiguous)";
    } else {
        return "has unexpected text after the time";
    }
    if (*p) return "has unexpected text after the zone";
    if (y < 1970) return "is before 1970";
    int64_t secs = lash_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off * 60LL;
    if (secs < 0) return "is before 1970";
    *out_ms = secs * 1000 + ms;
    return NULL;
}

int cli_parse_iso8601(const char *flag, const char *s, int64_t *out_ms)
{
    const char *why = cli_iso8601_ms(s, out_ms);
    if (why) return cli_error(CLI_USAGE, "%s: '%s' %s", flag, s, why);
    return CLI_OK;
}
