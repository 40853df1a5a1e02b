/* cmd_schedule.c: `lashctl schedule add|list|rm|pause|resume` (recurring
 * schedules, registry/sched.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "proto/cron.h"
#include "registry/sched.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads the zone as the workers will ($TZDIR or /usr/share/zoneinfo), so a
 * misspelt zone is refused here, not found out at the first firing. */
static int load_zone(const char *name, lash_tz *tz)
{
    lash_err e = {0};
    if (lash_tz_name_check(name, &e)) return cli_usage("schedule", "--tz: %s", e.msg);
    const char *dir = getenv("TZDIR");
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir && *dir ? dir : "/usr/share/zoneinfo", name);
    FILE *f = fopen(path, "rb");
    if (!f) return cli_usage("schedule", "--tz: unknown time zone '%s' (no %s)", name, path);
    static unsigned char buf[1 << 17];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    if (lash_tz_parse(buf, n, tz, &e)) return cli_usage("schedule", "--tz %s: %s", name, e.msg);
    return CLI_OK;
}

static int add(cli_ctx *ctx, const cli_opt *o, const char **pos, int npos)
{
    if (npos != 3) return cli_usage("schedule", "add wants NAME and KIND");
    lash_sched_def d = {0};
    const char *v;
    int64_t n;
    int rc;
    lash_err e = {0};
    d.job.id = pos[1];
    d.job.kind = pos[2];
    d.spec = cli_opt_val(o, "cron");
    d.tz = cli_opt_val(o, "tz");
    if (lash_sched_name_check(d.job.id, &e)) return cli_usage("schedule", "NAME: %s", e.msg);
    if (!d.spec) return cli_usage("schedule", "add wants --cron SPEC");
    lash_cron cron;
    if (lash_cron_parse(d.spec, &cron, &e)) return cli_usage("schedule", "--cron: %s", e.msg);
    lash_tz tz = {0};
    if (d.tz && (rc = load_zone(d.tz, &tz))) return rc;
    int64_t next = 0;
    rc = lash_cron_next(&cron, d.tz ? &tz : NULL, wall_ms(), &next, &e);
    lash_tz_free(&tz);
    if (rc) return cli_usage("schedule", "--cron: %s", e.msg);
    if ((v = cli_opt_val(o, "payload"))) {
        d.job.payload = v;
        d.job.payload_len = strlen(v);
    }
    if ((v = cli_opt_val(o, "max-attempts"))) {
        if ((rc = cli_parse_int("--max-attempts", v, 1, LASH_ATTEMPTS_MAX, &n))) return rc;
        d.job.max_attempts = (int)n;
    }
    if ((v = cli_opt_val(o, "timeout")) &&
        (rc = cli_parse_int("--timeout", v, 0, LASH_TIMEOUT_MAX, &d.job.timeout_ms)))
        return rc;
    if ((v = cli_opt_val(o, "backoff"))) {
        lash_backoff b;
        if (lash_backoff_parse(v, &b, &e)) return cli_error(CLI_USAGE, "--backoff: %s", e.msg);
        d.job.backoff = v;
    }
    if ((v = cli_opt_val(o, "on-lost"))) {
        if (strcmp(v, "abandon") == 0)
            d.job.on_lost = LASH_ON_LOST_ABANDON;
        else if (strcmp(v, "rerun") != 0)
            return cli_error(CLI_USAGE, "--on-lost: '%s' is not rerun or abandon", v);
    }
    if (lash_submission_check(&d.job, &e)) return cli_usage("schedule", "%s", e.msg);
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    lash_sched_added added;
    lash_status st = lash_sched_add(c, ctx->queue, &d, &added, &e);
    lash_close(c);
    if (st) return cli_fail(st, &e);
    const char *word = added == LASH_SCHED_CREATED  ? "created"
                       : added == LASH_SCHED_EXISTS ? "exists"
                                                    : "replaced";
    char t[32];
    cli_fmt_time(next, t, sizeof t);
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", d.job.id);
        cJSON_AddStringToObject(j, "status", word);
        cJSON_AddNumberToObject(j, "next_ms", (double)next);
        return cli_print_json(cJSON_PrintUnformatted(j)) + (cJSON_Delete(j), 0);
    }
    printf("%s: %s (ids %s@<fire ms>); next firing %s\n", d.job.id, word, d.job.id, t);
    return CLI_OK;
}

static int64_t field_i64(const lash_sched_info *s, const char *f)
{
    const char *v = lash_sched_field(s, f);
    int64_t n;
    return v && lash_parse_i64(v, strlen(v), 0, INT64_MAX, &n) ? n : -1;
}

static int list(cli_ctx *ctx)
{
    lash_conn *c = NULL;
    int rc;
    if ((rc = cli_connect(ctx, &c))) return rc;
    lash_sched_info *s = NULL;
    size_t n = 0;
    lash_err e = {0};
    lash_status st = lash_sched_list(c, ctx->queue, &s, &n, &e);
    lash_close(c);
    if (st) return cli_fail(st, &e);
    if (ctx->json) {
        cJSON *arr = cJSON_CreateArray();
        for (size_t i = 0; i < n; i++) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "name", s[i].name);
            for (size_t k = 0; k < s[i].n; k++)
                cJSON_AddStringToObject(j, s[i].fields[k], s[i].values[k]);
            cJSON_AddItemToArray(arr, j);
        }
        rc = cli_print_json(cJSON_PrintUnformatted(arr));
        cJSON_Delete(arr);
    } else {
        printf("%-20s %-16s %-14s %-12s %-7s %-24s %6s  %s\n", "NAME", "CRON", "TZ", "KIND",
               "STATE", "NEXT", "FIRED", "LAST");
        for (size_t i = 0; i < n; i++) {
            const char *tz = lash_sched_field(&s[i], "tz"),
                       *paused = lash_sched_field(&s[i], "paused");
            const char *last = lash_sched_field(&s[i], "last_id"),
                       *lst = lash_sched_field(&s[i], "last_status"),
                       *err = lash_sched_field(&s[i], "last_error");
            bool is_paused = paused && strcmp(paused, "1") == 0;
            char t[32] = "-";
            int64_t next = field_i64(&s[i], "next_ms");
            if (next >= 0 && !is_paused) cli_fmt_time(next, t, sizeof t);
            int64_t fired = field_i64(&s[i], "fired");
            const char *spec = lash_sched_field(&s[i], "spec"),
                       *kind = lash_sched_field(&s[i], "kind");
            printf("%-20s %-16s %-14s %-12s %-7s %-24s %6lld  %s%s%s%s%s\n", s[i].name,
                   spec ? spec : "?", tz && *tz ? tz : "UTC", kind ? kind : "?",
                   is_paused ? "paused" : "active", t, (long long)(fired < 0 ? 0 : fired),
                   last ? last : "-", lst ? " " : "", lst ? lst : "", err ? " error: " : "",
                   err ? err : "");
        }
    }
    lash_sched_list_free(s, n);
    return rc;
}

int cli_cmd_schedule(cli_ctx *ctx, int argc, char **argv)
{
    cli_opt o[] = {{"cron", true, NULL},         {"tz", true, NULL},      {"payload", true, NULL},
                   {"max-attempts", true, NULL}, {"timeout", true, NULL}, {"backoff", true, NULL},
                   {"on-lost", true, NULL},      {NULL, false, NULL}};
    const char *pos[3];
    int npos, rc;
    if (!cli_begin(ctx, "schedule", argc, argv, o, pos, 1, 3, &npos, &rc)) return rc;
    const char *verb = pos[0];
    if (strcmp(verb, "add") == 0) return add(ctx, o, pos, npos);
    for (const cli_opt *x = o; x->name; x++)
        if (x->val) return cli_usage("schedule", "--%s is for schedule add", x->name);
    if (strcmp(verb, "list") == 0) {
        if (npos != 1) return cli_usage("schedule", "list takes no argument");
        return list(ctx);
    }
    lash_sched_verb v;
    if (strcmp(verb, "rm") == 0)
        v = LASH_SCHED_RM;
    else if (strcmp(verb, "pause") == 0)
        v = LASH_SCHED_PAUSE;
    else if (strcmp(verb, "resume") == 0)
        v = LASH_SCHED_RESUME;
    else
        return cli_usage("schedule", "unknown action '%s' (add, list, rm, pause, resume)", verb);
    if (npos != 2) return cli_usage("schedule", "%s wants NAME", verb);
    lash_err e = {0};
    if (lash_sched_name_check(pos[1], &e)) return cli_usage("schedule", "NAME: %s", e.msg);
    lash_conn *c = NULL;
    if ((rc = cli_connect(ctx, &c))) return rc;
    bool found = false;
    lash_status st = lash_sched_do(c, ctx->queue, v, pos[1], &found, &e);
    lash_close(c);
    if (st) return cli_fail(st, &e);
    if (!found) return cli_error(CLI_REFUSED, "schedule %s: no schedule named %s", verb, pos[1]);
    static const char *const done[] = {"removed", "paused", "resumed"};
    if (ctx->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", pos[1]);
        cJSON_AddStringToObject(j, "status", done[v]);
        rc = cli_print_json(cJSON_PrintUnformatted(j));
        cJSON_Delete(j);
        return rc;
    }
    printf("%s: %s\n", pos[1], done[v]);
    return CLI_OK;
}
