/* test_reliability_security.c: nothing a row holds can make a worker run a
 * program it was not configured for, read a file, or exceed its limits.
 *
 * Whoever can write to Redis can write any row. This suite plays that part with
 * raw HSET/ZADD (and the submit API where the check is the submitter's) against
 * one lash-worker daemon configured with a few exec kinds, and then checks:
 *   - kinds that look like paths or commands never run anything: the row fails,
 *     named as malformed or as a kind this worker has no handler for;
 *   - payloads full of shell syntax reach the program verbatim on stdin (the
 *     cat kind hands them back unchanged), and no marker file ever appears;
 *   - a 100 MB payload, a program that floods stdout or stderr, and a 1 MB result
 *     end failed with a size error, and the worker's peak RSS stays small;
 *   - NUL bytes and invalid UTF-8 in ids, kinds and payloads, malformed numbers
 *     and states, 100,000 junk fields: each named row ends failed with an error
 *     that says what was wrong (junk fields beside valid ones are ignored);
 *   - through all of it the same worker process keeps running, and a good row
 *     submitted last completes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/reliability/rel.h"

#define Q "sec"

static char dir[128], marker[256];

/* A row written by hand: id (binary), then field/value pairs (binary), made due now. */
static void raw_row(lash_conn *c, const char *id, size_t idlen, const char *const *fv,
                    const size_t *lens, size_t nfv)
{
    size_t argc = 2 + nfv;
    const char **argv = calloc(argc, sizeof *argv);
    size_t *argl = calloc(argc, sizeof *argl);
    char key[512];
    cr_assert(argv && argl);
    static const char prefix[] = "lash:{" Q "}:p:";
    const size_t pl = sizeof prefix - 1;
    cr_assert(pl + idlen < sizeof key);
    memcpy(key, prefix, pl);
    memcpy(key + pl, id, idlen);
    argv[0] = "HSET";
    argl[0] = 4;
    argv[1] = key;
    argl[1] = pl + idlen;
    for (size_t i = 0; i < nfv; i++) {
        argv[2 + i] = fv[i];
        argl[2 + i] = lens ? lens[i] : strlen(fv[i]);
    }
    redisReply *r = redisCommandArgv(lash_conn_redis(c), (int)argc, argv, argl);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER, "HSET %.*s failed", (int)idlen, id);
    freeReplyObject(r);
    r = redisCommand(lash_conn_redis(c), "ZADD lash:{" Q "}:due 0 %b", id, idlen);
    cr_assert(r && r->type == REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    free(argv);
    free(argl);
}

/* A pending row of kind with payload (both text), one attempt. */
static void simple_row(lash_conn *c, const char *id, const char *kind, const char *payload)
{
    const char *fv[] = {"kind", kind, "payload", payload, "state", "pending", "max_attempts", "1"};
    raw_row(c, id, strlen(id), fv, NULL, 8);
}

typedef struct {
    char *state, *error, *result;
    size_t error_len, result_len;
} outcome;

static outcome get_row(lash_conn *c, const char *id, size_t idlen)
{
    outcome o = {0};
    redisReply *r =
        redisCommand(lash_conn_redis(c), "HMGET lash:{" Q "}:p:%b state error result", id, idlen);
    cr_assert(r && r->type == REDIS_REPLY_ARRAY && r->elements == 3);
    if (r->element[0]->type == REDIS_REPLY_STRING) o.state = strdup(r->element[0]->str);
    if (r->element[1]->type == REDIS_REPLY_STRING) {
        o.error = malloc(r->element[1]->len + 1);
        memcpy(o.error, r->element[1]->str, r->element[1]->len + 1);
        o.error_len = r->element[1]->len;
    }
    if (r->element[2]->type == REDIS_REPLY_STRING) {
        o.result = malloc(r->element[2]->len + 1);
        memcpy(o.result, r->element[2]->str, r->element[2]->len + 1);
        o.result_len = r->element[2]->len;
    }
    freeReplyObject(r);
    return o;
}

static void outcome_free(outcome *o)
{
    free(o->state);
    free(o->error);
    free(o->result);
}

static int checks_failed;

/* The row ended failed and its error contains want (and stays within the limit). */
static void expect_failed(lash_conn *c, const char *id, size_t idlen, const char *want)
{
    outcome o = get_row(c, id, idlen);
    bool ok = o.state && strcmp(o.state, "failed") == 0 && o.error && strstr(o.error, want) &&
              o.error_len <= LASH_ERROR_MAX;
    fprintf(stderr, "  row %-28.*s %-9s %.160s\n", (int)(idlen > 28 ? 28 : idlen), id,
            o.state ? o.state : "(none)", o.error ? o.error : "");
    cr_expect(ok, "row %.*s: state %s, error '%.300s', want failed with '%s'", (int)idlen, id,
              o.state ? o.state : "(none)", o.error ? o.error : "", want);
    checks_failed += !ok;
    outcome_free(&o);
}

/* The row completed and its result is exactly want. */
static void expect_result(lash_conn *c, const char *id, const char *want)
{
    outcome o = get_row(c, id, strlen(id));
    bool ok = o.state && strcmp(o.state, "completed") == 0 && o.result &&
              o.result_len == strlen(want) && memcmp(o.result, want, o.result_len) == 0;
    fprintf(stderr, "  row %-28s %-9s %.160s\n", id, o.state ? o.state : "(none)",
            o.result ? o.result : (o.error ? o.error : ""));
    cr_expect(ok, "row %s: state %s, result '%.200s', want completed with '%s'", id,
              o.state ? o.state : "(none)", o.result ? o.result : "", want);
    checks_failed += !ok;
    outcome_free(&o);
}

static bool marker_exists(void)
{
    return access(marker, F_OK) == 0;
}

Test(security, rows_cannot_escape_the_workers_configuration, .timeout = 600, .fini = rel_fini)
{
    static lash_fx_redis r;
    lash_fx_redis_start(&r, NULL);
    rel_track_redis(&r);
    lash_conn *c = lash_fx_connect(&r);
    rel_mkdir(dir, sizeof dir, "security");
    snprintf(marker, sizeof marker, "%s/pwned", dir);
    char p_flood[256], p_err[256], h_cat[64] = "cat=/bin/cat", h_flood[300], h_err[300];
    snprintf(p_flood, sizeof p_flood, "%s/flood.sh", dir);
    snprintf(p_err, sizeof p_err, "%s/errflood.sh", dir);
    /* Configured programs that misbehave: 50 MB on stdout; 10 MB on stderr, exit 3. */
    rel_script(p_flood, "head -c 52428800 /dev/zero | tr '\\0' x\n");
    rel_script(p_err, "head -c 10485760 /dev/zero | tr '\\0' e >&2\nexit 3\n");
    snprintf(h_flood, sizeof h_flood, "flood=%s", p_flood);
    snprintf(h_err, sizeof h_err, "errflood=%s", p_err);
    char wlog[256];
    snprintf(wlog, sizeof wlog, "%s/worker.log", dir);
    const char *args[] = {"--queue",    Q,           "--handler", h_cat,       "--handler",
                          h_flood,      "--handler", h_err,       "--builtin", "noop",
                          "--lease-ms", "5000",      "--poll-ms", "200",       "--keep",
                          "-1",         "--keep-ms", "0",         NULL};
    pid_t w = rel_worker(r.url, wlog, args);

    /* 1. The submitter refuses path-like kinds before they reach Redis. */
    const char *bad_kinds[] = {"../../bin/sh", "/bin/sh", "sh -c id", "cat;id", "$(id)"};
    for (size_t i = 0; i < sizeof bad_kinds / sizeof *bad_kinds; i++) {
        lash_submission s = {.id = "refused", .kind = bad_kinds[i], .max_attempts = 1};
        lash_submitted o;
        lash_err e;
        cr_assert(lash_submit(c, Q, &s, 1, &o, &e) == LASH_OK, "%s", e.msg);
        cr_expect_eq(o.status, LASH_SUB_INVALID, "kind %s was accepted", bad_kinds[i]);
    }

    /* 2. The same kinds written by hand, and a well-formed kind with no handler. */
    simple_row(c, "k-dotdot", "../../bin/sh", "null");
    simple_row(c, "k-abs", "/bin/sh", "null");
    simple_row(c, "k-semicolon", "cat;touch pwned", "null");
    simple_row(c, "k-unconfigured", "sh", "null");
    simple_row(c, "k-bash", "bash", "\"-c touch pwned\"");

    /* 3. Shell syntax in payloads: handed to cat on stdin, verbatim. */
    char pay[6][1024];
    snprintf(pay[0], sizeof pay[0], "\"$(touch %s)\"", marker);
    snprintf(pay[1], sizeof pay[1], "\"`touch %s`\"", marker);
    snprintf(pay[2], sizeof pay[2], "\"; touch %s; rm -rf %s\"", marker, dir);
    snprintf(pay[3], sizeof pay[3], "{\"cmd\":\"| touch %s && echo x > %s\"}", marker, marker);
    snprintf(pay[4], sizeof pay[4], "{\"file\":\"/etc/passwd\",\"path\":\"../../etc/shadow\"}");
    snprintf(pay[5], sizeof pay[5], "\"\\n\\u0000$IFS;touch${IFS}%s\"", marker);
    for (int i = 0; i < 6; i++) {
        char id[32];
        snprintf(id, sizeof id, "p-shell-%d", i);
        lash_submission s = {.id = id,
                             .kind = "cat",
                             .payload = pay[i],
                             .payload_len = strlen(pay[i]),
                             .max_attempts = 1};
        lash_submitted o;
        lash_err e;
        cr_assert(lash_submit(c, Q, &s, 1, &o, &e) == LASH_OK, "%s", e.msg);
        cr_assert_eq(o.status, LASH_SUB_CREATED, "%s: %s", id, o.msg);
    }
    char notjson[512];
    snprintf(notjson, sizeof notjson, "$(touch %s)", marker);
    simple_row(c, "p-notjson", "cat", notjson);

    /* 4. Size limits. */
    size_t big = 100u * 1024 * 1024;
    char *huge = malloc(big);
    cr_assert(huge);
    huge[0] = '"';
    memset(huge + 1, 'A', big - 2);
    huge[big - 1] = '"';
    {
        const char *fv[] = {"kind",  "cat",     "payload",      huge,
                            "state", "pending", "max_attempts", "1"};
        size_t lens[] = {4, 3, 7, big, 5, 7, 12, 1};
        raw_row(c, "big-100mb", 9, fv, lens, 8);
    }
    free(huge);
    /* A payload within the limit whose echo is over the result limit. */
    size_t mb = 1000 * 1000;
    char *one = malloc(mb + 3);
    cr_assert(one);
    one[0] = '"';
    memset(one + 1, 'B', mb);
    one[mb + 1] = '"';
    one[mb + 2] = 0;
    {
        lash_submission s = {.id = "big-result",
                             .kind = "cat",
                             .payload = one,
                             .payload_len = mb + 2,
                             .max_attempts = 1};
        lash_submitted o;
        lash_err e;
        cr_assert(lash_submit(c, Q, &s, 1, &o, &e) == LASH_OK, "%s", e.msg);
        cr_assert_eq(o.status, LASH_SUB_CREATED, "big-result: %s", o.msg);
    }
    free(one);
    simple_row(c, "flood-stdout", "flood", "null");
    simple_row(c, "flood-stderr", "errflood", "null");

    /* 5. NUL bytes and invalid UTF-8. */
    {
        const char *fv[] = {"kind",  "cat",     "payload",      "\"a\0b\"",
                            "state", "pending", "max_attempts", "1"};
        size_t lens[] = {4, 3, 7, 5, 5, 7, 12, 1};
        raw_row(c, "nul-payload", 11, fv, lens, 8);
        const char *fk[] = {"kind",  "cat\0evil", "payload",      "null",
                            "state", "pending",   "max_attempts", "1"};
        size_t lk[] = {4, 8, 7, 4, 5, 7, 12, 1};
        raw_row(c, "nul-kind", 8, fk, lk, 8);
        const char *fi[] = {"kind",  "cat",     "payload",      "null",
                            "state", "pending", "max_attempts", "1"};
        raw_row(c, "nul\0id", 6, fi, NULL, 8);
        raw_row(c, "id$(touch pwned)", 16, fi, NULL, 8);
        const char *fu[] = {"kind",  "cat",     "payload",      "\"\xff\xfe\xc0\xaf\"",
                            "state", "pending", "max_attempts", "1"};
        raw_row(c, "utf8-payload", 12, fu, NULL, 8);
        fu[1] = "noop"; /* a handler that would not notice */
        raw_row(c, "utf8-noop", 9, fu, NULL, 8);
        const char *fuk[] = {"kind",  "c\xc3\x28t", "payload",      "null",
                             "state", "pending",    "max_attempts", "1"};
        raw_row(c, "utf8-kind", 9, fuk, NULL, 8);
    }

    /* 6. Malformed numbers and states. */
    const struct {
        const char *id, *field, *value, *want;
    } bad_fields[] = {
        {"f-attempt", "attempt", "abc", "attempt"},
        {"f-max", "max_attempts", "0", "max_attempts"},
        {"f-timeout", "timeout_ms", "-5", "timeout_ms"},
        {"f-fence", "fence", "1e99", "fence"},
        {"f-onlost", "on_lost", "maybe", "on_lost"},
        {"f-state", "state", "bogus", "state"},
    };
    for (size_t i = 0; i < sizeof bad_fields / sizeof *bad_fields; i++) {
        const char *fv[] = {"kind",
                            "noop",
                            "payload",
                            "null",
                            "state",
                            "pending",
                            "max_attempts",
                            "1",
                            bad_fields[i].field,
                            bad_fields[i].value};
        raw_row(c, bad_fields[i].id, strlen(bad_fields[i].id), fv, NULL, 10);
    }
    {
        const char *fv[] = {"payload", "null", "state", "pending"};
        raw_row(c, "f-nokind", 8, fv, NULL, 4);
    }

    /* 7. 100,000 junk fields: beside a valid row (ignored) and without a kind. */
    {
        size_t nj = 100000, nfv = 2 * nj + 8;
        const char **fv = calloc(nfv, sizeof *fv);
        char *names = malloc(nj * 16);
        cr_assert(fv && names);
        for (size_t i = 0; i < nj; i++) {
            snprintf(names + i * 16, 16, "junk%zu", i);
            fv[2 * i] = names + i * 16;
            fv[2 * i + 1] = "$(touch pwned)";
        }
        const char *tail[] = {"kind",  "noop",    "payload",      "null",
                              "state", "pending", "max_attempts", "1"};
        for (int i = 0; i < 8; i++)
            fv[2 * nj + (size_t)i] = tail[i];
        raw_row(c, "junk-valid", 10, fv, NULL, nfv);
        fv[2 * nj + 1] = "$(touch pwned)"; /* the kind: malformed */
        raw_row(c, "junk-badkind", 12, fv, NULL, nfv);
        free(fv);
        free(names);
    }

    freeReplyObject(rel_cmd(c, "PUBLISH lash:{" Q "}:poke x"));
    long long until = lash_fx_ms() + 120000;
    while (rel_zcard(c, Q, LASH_KEY_DUE) > 0 && lash_fx_ms() < until)
        lash_fx_sleep_ms(100);
    cr_expect_eq(rel_zcard(c, Q, LASH_KEY_DUE), 0, "bad rows still due");

    /* 8. A good row after all that. */
    rel_submit_range(c, Q, "good-", 0, 1, "noop", "{\"ok\":true}", 1);
    until = lash_fx_ms() + 30000;
    while (rel_zcard(c, Q, LASH_KEY_DUE) > 0 && lash_fx_ms() < until)
        lash_fx_sleep_ms(50);

    fprintf(stderr, "security rows:\n");
    expect_failed(c, "k-dotdot", 8, "kind");
    expect_failed(c, "k-abs", 5, "kind");
    expect_failed(c, "k-semicolon", 11, "kind");
    expect_failed(c, "k-unconfigured", 14, "unknown kind 'sh'");
    expect_failed(c, "k-bash", 6, "unknown kind 'bash'");
    for (int i = 0; i < 6; i++) {
        char id[32];
        snprintf(id, sizeof id, "p-shell-%d", i);
        expect_result(c, id, pay[i]);
    }
    expect_failed(c, "p-notjson", 9, "payload is not valid JSON");
    expect_failed(c, "big-100mb", 9, "over 1048576 bytes");
    expect_failed(c, "big-result", 10, "over 65536");
    expect_failed(c, "flood-stdout", 12, "over 65536");
    expect_failed(c, "flood-stderr", 12, "exit status 3");
    expect_failed(c, "nul-payload", 11, "NUL");
    expect_failed(c, "nul-kind", 8, "kind");
    expect_failed(c, "nul\0id", 6, "id");
    expect_failed(c, "id$(touch pwned)", 16, "id");
    expect_failed(c, "utf8-payload", 12, "payload is not valid UTF-8");
    expect_failed(c, "utf8-noop", 9, "payload is not valid UTF-8");
    expect_failed(c, "utf8-kind", 9, "kind");
    for (size_t i = 0; i < sizeof bad_fields / sizeof *bad_fields; i++)
        expect_failed(c, bad_fields[i].id, strlen(bad_fields[i].id), bad_fields[i].want);
    expect_failed(c, "f-nokind", 8, "kind");
    expect_failed(c, "junk-badkind", 12, "kind");
    expect_result(c, "junk-valid", "");
    expect_result(c, "good-0", "");

    long hwm = rel_proc_kb(w, "VmHWM"), rss = rel_proc_kb(w, "VmRSS");
    bool alive = rel_alive(w);
    bool pwned = marker_exists() || access("pwned", F_OK) == 0;
    rel_report("security",
               "hostile rows %d, checks failed %d, marker file %s, worker alive %s, worker peak "
               "RSS %ld kB (now %ld kB)",
               5 + 6 + 1 + 4 + 7 + 6 + 1 + 2, checks_failed, pwned ? "PRESENT" : "absent",
               alive ? "yes" : "no", hwm, rss);
    cr_expect(!pwned, "a marker file appeared: a row ran a command");
    cr_expect(alive, "the worker died");
    /* It never holds a 100 MB payload nor a 50 MB output: well under 64 MB. */
    cr_expect(hwm > 0 && hwm < 64 * 1024, "worker peak RSS %ld kB", hwm);
    cr_expect_eq(rel_stop(w, 15000), 0);
    lash_close(c);
    lash_fx_redis_stop(&r);
    if (checks_failed == 0 && !pwned)
        rel_rmdir(dir);
    else
        cr_log_error("evidence kept in %s", dir);
}
