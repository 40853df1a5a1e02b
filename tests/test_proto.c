/* test_proto.c: the pure layer (proto/) without Redis: states, the row decoder
 * and JSON codec, name and submission checks, the backoff policy, Redis URLs,
 * generated ids, SHA-1, and that the Lua limits equal limits.h. */
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/err.h"
#include "proto/id.h"
#include "proto/json.h"
#include "proto/keys.h"
#include "proto/limits.h"
#include "proto/record.h"
#include "proto/scripts.h"
#include "proto/sha1.h"
#include "proto/state.h"
#include "proto/url.h"

/* ---- states ------------------------------------------------------------------ */

/* The transition table itself is checked cell by cell against the Lua scripts
 * on a real Redis (tests/test_states.c); here only what holds of it as a whole. */

Test(state, terminal_rows_leave_only_by_reopen_and_completed_never)
{
    for (int s = LASH_COMPLETED; s < LASH_STATE_COUNT; s++)
        for (int t = 0; t < LASH_T_COUNT; t++)
            for (unsigned f = 0; f < LASH_ROW_FACTS; f++) {
                int next = lash_state_next((lash_state)s, (lash_transition)t, f);
                if (t == LASH_T_REOPEN && s != LASH_COMPLETED)
                    cr_expect_eq(next, LASH_PENDING);
                else
                    cr_expect_eq(next, -1, "%s --%s--> %d", lash_state_name((lash_state)s),
                                 lash_transition_name((lash_transition)t), next);
            }
}

Test(state, out_of_range_is_illegal)
{
    for (int t = 0; t < LASH_T_COUNT; t++) {
        cr_expect_eq(lash_state_next(LASH_STATE_COUNT, (lash_transition)t, 0), -1);
        cr_expect_eq(lash_state_next((lash_state)-1, (lash_transition)t, 0), -1);
        cr_expect_eq(lash_state_next((lash_state)99, (lash_transition)t, LASH_ROW_LEASED), -1);
    }
    for (int s = 0; s < LASH_STATE_COUNT; s++) {
        cr_expect_eq(lash_state_next((lash_state)s, LASH_T_COUNT, 0), -1);
        cr_expect_eq(lash_state_next((lash_state)s, (lash_transition)-1, 0), -1);
        cr_expect_eq(lash_state_next((lash_state)s, LASH_T_REOPEN, LASH_ROW_FACTS), -1);
    }
}

Test(state, names_and_terminality)
{
    static const char *const names[] = {"pending", "running",   "completed",
                                        "failed",  "cancelled", "abandoned"};
    cr_assert_eq(sizeof names / sizeof names[0], LASH_STATE_COUNT);
    for (int s = 0; s < LASH_STATE_COUNT; s++) {
        cr_expect_str_eq(lash_state_name((lash_state)s), names[s]);
        cr_expect_eq(lash_state_parse(names[s]), s);
        cr_expect_eq(lash_state_terminal((lash_state)s), s >= LASH_COMPLETED);
    }
    cr_expect_eq(lash_state_parse("Pending"), -1);
    cr_expect_eq(lash_state_parse("pending "), -1);
    cr_expect_eq(lash_state_parse(""), -1);
    cr_expect_eq(lash_state_parse(NULL), -1);
    cr_expect_str_eq(lash_state_name(LASH_STATE_COUNT), "invalid");
    cr_expect_not(lash_state_terminal(LASH_STATE_COUNT));
    for (int a = 0; a < LASH_T_COUNT; a++) {
        cr_expect_str_neq(lash_transition_name((lash_transition)a), "invalid");
        for (int b = 0; b < a; b++)
            cr_expect_str_neq(lash_transition_name((lash_transition)a),
                              lash_transition_name((lash_transition)b));
    }
    cr_expect_str_eq(lash_transition_name(LASH_T_COUNT), "invalid");
}

/* ---- the row decoder and its JSON ------------------------------------------ */

/* Sets a field from an exactly-sized heap copy (no NUL after it), so a decoder
 * that reads past len is caught by ASan. */
static lash_status set_exact(lash_record *r, const char *field, const char *val, lash_err *e)
{
    size_t n = strlen(val);
    char *copy = malloc(n ? n : 1);
    cr_assert(copy);
    memcpy(copy, val, n);
    lash_status st = lash_record_set(r, field, copy, n, e);
    free(copy);
    return st;
}

static const char *const good_row[][2] = {
    {"kind", "email.send"},
    {"payload", "{\"to\":[\"a@b\",\"c@d\"],\"n\":1,\"deep\":{\"x\":null}}"},
    {"state", "completed"},
    {"attempt", "2"},
    {"max_attempts", "5"},
    {"fence", "7"},
    {"owner", "host-1.w2"},
    {"created_ms", "1700000000000"},
    {"updated_ms", "1700000000123"},
    {"finished_ms", "1700000000456"},
    {"run_at", "1700000000010"},
    {"timeout_ms", "30000"},
    {"backoff", "fixed:250"},
    {"on_lost", "abandon"},
    {"cancel", "1"},
    {"result", "{\"sent\":true,\"ids\":[1,2]}"},
    {"error", "first try: timeout"},
    {"some_future_field", "ignored"},
};

static void load_good(lash_record *r)
{
    lash_err e = {0};
    lash_record_init(r);
    snprintf(r->id, sizeof r->id, "p-42");
    snprintf(r->queue, sizeof r->queue, "mail");
    for (size_t i = 0; i < sizeof good_row / sizeof good_row[0]; i++)
        cr_assert_eq(set_exact(r, good_row[i][0], good_row[i][1], &e), LASH_OK, "field %s: %s",
                     good_row[i][0], e.msg);
    cr_assert_eq(lash_record_check(r, &e), LASH_OK, "%s", e.msg);
}

/* A terminal row written since finished_ms was dropped: its finish time is
 * its updated_ms; a live row has none. */
Test(record, a_terminal_row_finished_when_it_was_last_updated)
{
    static const char *const states[] = {"completed", "failed",  "cancelled",
                                         "abandoned", "pending", "running"};
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++) {
        lash_record r;
        lash_err e = {0};
        lash_record_init(&r);
        cr_assert_eq(set_exact(&r, "kind", "k", &e), LASH_OK);
        cr_assert_eq(set_exact(&r, "payload", "{}", &e), LASH_OK);
        cr_assert_eq(set_exact(&r, "state", states[i], &e), LASH_OK);
        cr_assert_eq(set_exact(&r, "created_ms", "1700000000000", &e), LASH_OK);
        cr_assert_eq(set_exact(&r, "updated_ms", "1700000000123", &e), LASH_OK);
        cr_assert_eq(lash_record_check(&r, &e), LASH_OK, "%s", e.msg);
        cr_expect_eq(r.finished_ms, i < 4 ? 1700000000123 : 0, "%s", states[i]);
        lash_record_free(&r);
    }
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsNumber(v), "JSON has no number '%s'", k);
    return v->valuedouble;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsString(v), "JSON has no string '%s'", k);
    return v->valuestring;
}

static void expect_json_eq(const cJSON *o, const char *k, const char *json)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(v, "JSON has no '%s'", k);
    char *got = cJSON_PrintUnformatted(v);
    cJSON *w = cJSON_Parse(json);
    char *want = cJSON_PrintUnformatted(w);
    cr_expect_str_eq(got, want, "'%s'", k);
    free(got);
    free(want);
    cJSON_Delete(w);
}

Test(record, decode_and_json_round_trip)
{
    lash_record r;
    load_good(&r);
    cr_expect_str_eq(r.kind, "email.send");
    cr_expect_eq(r.state, LASH_COMPLETED);
    cr_expect_eq(r.attempt, 2);
    cr_expect_eq(r.max_attempts, 5);
    cr_expect_eq(r.fence, 7);
    cr_expect_eq(r.created_ms, 1700000000000LL);
    cr_expect_eq(r.on_lost, LASH_ON_LOST_ABANDON);
    cr_expect(r.cancel_requested);
    cr_expect_str_eq(r.backoff, "fixed:250");

    char *text = lash_record_to_json(&r);
    cr_assert(text);
    cJSON *o = cJSON_Parse(text);
    cr_assert(o, "not JSON: %s", text);
    cr_expect_str_eq(str(o, "id"), "p-42");
    cr_expect_str_eq(str(o, "queue"), "mail");
    cr_expect_str_eq(str(o, "kind"), "email.send");
    cr_expect_str_eq(str(o, "state"), "completed");
    expect_json_eq(o, "payload", good_row[1][1]);
    cr_expect_eq(num(o, "attempt"), 2);
    cr_expect_eq(num(o, "max_attempts"), 5);
    cr_expect_eq(num(o, "fence"), 7);
    cr_expect_str_eq(str(o, "owner"), "host-1.w2");
    cr_expect_eq(num(o, "created_ms"), 1700000000000.0);
    cr_expect_eq(num(o, "updated_ms"), 1700000000123.0);
    cr_expect_eq(num(o, "finished_ms"), 1700000000456.0);
    cr_expect_eq(num(o, "run_at"), 1700000000010.0);
    cr_expect_eq(num(o, "timeout_ms"), 30000);
    cr_expect_str_eq(str(o, "backoff"), "fixed:250");
    cr_expect_str_eq(str(o, "on_lost"), "abandon");
    cr_expect(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "cancel_requested")));
    expect_json_eq(o, "result", "{\"sent\":true,\"ids\":[1,2]}");
    cr_expect_str_eq(str(o, "error"), "first try: timeout");
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(o, "some_future_field"));
    cJSON_Delete(o);
    free(text);
    lash_record_free(&r);
}

Test(record, json_of_a_minimal_row_uses_defaults)
{
    lash_record r;
    lash_err e = {0};
    lash_record_init(&r);
    snprintf(r.id, sizeof r.id, "x");
    cr_assert_eq(set_exact(&r, "kind", "k", &e), LASH_OK);
    cr_assert_eq(set_exact(&r, "payload", "null", &e), LASH_OK);
    cr_assert_eq(set_exact(&r, "state", "pending", &e), LASH_OK);
    cr_assert_eq(set_exact(&r, "created_ms", "5", &e), LASH_OK);
    cr_assert_eq(lash_record_check(&r, &e), LASH_OK, "%s", e.msg);
    char *text = lash_record_to_json(&r);
    cJSON *o = cJSON_Parse(text);
    cr_assert(o);
    cr_expect(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(o, "payload")));
    cr_expect_eq(num(o, "max_attempts"), LASH_DEFAULT_MAX_ATTEMPTS);
    cr_expect_str_eq(str(o, "backoff"), LASH_DEFAULT_BACKOFF);
    cr_expect_str_eq(str(o, "on_lost"), "rerun");
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(o, "owner"));
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(o, "result"));
    cr_expect_null(cJSON_GetObjectItemCaseSensitive(o, "cancel_requested"));
    cJSON_Delete(o);
    free(text);
    lash_record_free(&r);
}

/* A result that is not JSON text is a string in the record's JSON, whole: text
 * that merely starts like JSON ("123abc", "true story") must not be cut short. */
Test(record, json_keeps_non_json_results_as_strings)
{
    static const char *const texts[] = {"123abc", "true story", "{\"a\":1} and more",
                                        "plain",  "[1,2",       ""};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        lash_record r;
        load_good(&r);
        lash_err e = {0};
        cr_assert_eq(set_exact(&r, "result", texts[i], &e), LASH_OK);
        char *text = lash_record_to_json(&r);
        cJSON *o = cJSON_Parse(text);
        cr_assert(o);
        cr_expect_str_eq(str(o, "result"), texts[i], "in %s", text);
        cJSON_Delete(o);
        free(text);
        lash_record_free(&r);
    }
}

Test(record, malformed_fields_are_rejected_naming_the_field)
{
    char big_owner[LASH_WORKER_ID_MAX + 2];
    memset(big_owner, 'w', sizeof big_owner - 1);
    big_owner[sizeof big_owner - 1] = 0;
    char *big_result = malloc(LASH_RESULT_MAX + 2);
    memset(big_result, 'r', LASH_RESULT_MAX + 1);
    big_result[LASH_RESULT_MAX + 1] = 0;
    char *big_error = malloc(LASH_ERROR_MAX + 2);
    memset(big_error, 'e', LASH_ERROR_MAX + 1);
    big_error[LASH_ERROR_MAX + 1] = 0;
    char long_kind[LASH_KIND_MAX + 2];
    memset(long_kind, 'k', sizeof long_kind - 1);
    long_kind[sizeof long_kind - 1] = 0;
    const char *const bad[][2] = {
        {"kind", ""},
        {"kind", "has space"},
        {"kind", "a:b"},
        {"kind", long_kind},
        {"payload", ""},
        {"payload", "{"},
        {"payload", "{\"a\":1} x"},
        {"payload", "nope"},
        {"state", "zombie"},
        {"state", ""},
        {"state", "pendingXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"},
        {"state", "PENDING"},
        {"attempt", "x"},
        {"attempt", "-1"},
        {"attempt", "1001"},
        {"attempt", ""},
        {"attempt", "1.5"},
        {"attempt", " 1"},
        {"max_attempts", "0"},
        {"max_attempts", "1001"},
        {"fence", "-1"},
        {"fence", "99999999999999999999"},
        {"fence", "7x"},
        {"created_ms", "yesterday"},
        {"updated_ms", "-5"},
        {"finished_ms", "1e9"},
        {"run_at", "+1"},
        {"timeout_ms", "604800001"},
        {"backoff", "sometimes"},
        {"backoff", "exp:10:5"},
        {"on_lost", "maybe"},
        {"on_lost", ""},
        {"owner", big_owner},
        {"result", big_result},
        {"error", big_error},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lash_record r;
        lash_err e = {0};
        lash_record_init(&r);
        lash_status st = set_exact(&r, bad[i][0], bad[i][1], &e);
        cr_expect_eq(st, LASH_EINVAL, "%s='%.40s' accepted", bad[i][0], bad[i][1]);
        cr_expect_eq(e.code, LASH_EINVAL);
        cr_expect(strstr(e.msg, bad[i][0]), "%s='%.40s': message does not name it: %s", bad[i][0],
                  bad[i][1], e.msg);
        lash_record_free(&r);
    }
    /* A NUL inside a text field. */
    lash_record r;
    lash_err e = {0};
    lash_record_init(&r);
    cr_expect_eq(lash_record_set(&r, "owner", "a\0b", 3, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "owner"), "%s", e.msg);
    cr_expect_eq(lash_record_set(&r, "payload", "1\0", 2, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "payload"), "%s", e.msg);
    lash_record_free(&r);
    free(big_result);
    free(big_error);
}

Test(record, limits_are_inclusive)
{
    lash_record r;
    lash_err e = {0};
    lash_record_init(&r);
    char *res = malloc(LASH_RESULT_MAX + 1);
    memset(res, 'r', LASH_RESULT_MAX);
    res[LASH_RESULT_MAX] = 0;
    cr_expect_eq(set_exact(&r, "result", res, &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(set_exact(&r, "attempt", "1000", &e), LASH_OK);
    cr_expect_eq(set_exact(&r, "attempt", "0", &e), LASH_OK);
    cr_expect_eq(set_exact(&r, "max_attempts", "1", &e), LASH_OK);
    cr_expect_eq(set_exact(&r, "timeout_ms", "604800000", &e), LASH_OK);
    cr_expect_eq(set_exact(&r, "fence", "9223372036854775807", &e), LASH_OK);
    cr_expect_eq(r.fence, INT64_MAX);
    cr_expect_eq(set_exact(&r, "cancel", "0", &e), LASH_OK);
    cr_expect_not(r.cancel_requested);
    free(res);
    lash_record_free(&r);
}

Test(record, check_names_missing_required_fields)
{
    static const char *const required[] = {"kind", "state", "payload", "created_ms"};
    for (size_t skip = 0; skip < 4; skip++) {
        lash_record r;
        lash_err e = {0};
        lash_record_init(&r);
        static const char *const vals[] = {"k", "pending", "{}", "12"};
        for (size_t i = 0; i < 4; i++)
            if (i != skip) cr_assert_eq(set_exact(&r, required[i], vals[i], &e), LASH_OK);
        cr_expect_eq(lash_record_check(&r, &e), LASH_EINVAL, "without %s", required[skip]);
        cr_expect(strstr(e.msg, required[skip]), "%s", e.msg);
        lash_record_free(&r);
    }
}

Test(record, parse_i64)
{
    int64_t v = 0;
    cr_expect(lash_parse_i64("0", 1, 0, 10, &v) && v == 0);
    cr_expect(lash_parse_i64("-9223372036854775808", 20, INT64_MIN, INT64_MAX, &v) &&
              v == INT64_MIN);
    cr_expect(lash_parse_i64("9223372036854775807", 19, INT64_MIN, INT64_MAX, &v) &&
              v == INT64_MAX);
    cr_expect_not(lash_parse_i64("9223372036854775808", 19, INT64_MIN, INT64_MAX, &v));
    cr_expect_not(lash_parse_i64("-9223372036854775809", 20, INT64_MIN, INT64_MAX, &v));
    cr_expect_not(lash_parse_i64("-", 1, INT64_MIN, INT64_MAX, &v));
    cr_expect_not(lash_parse_i64("", 0, INT64_MIN, INT64_MAX, &v));
    cr_expect_not(lash_parse_i64("11", 2, 0, 10, &v));
    cr_expect(lash_parse_i64("12345", 3, 0, 1000, &v) && v == 123); /* len is honoured */
}

/* ---- names ------------------------------------------------------------------- */

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = 0;
    return s;
}

Test(names, ids)
{
    lash_err e = {0};
    char *max = repeat('a', LASH_ID_MAX), *over = repeat('a', LASH_ID_MAX + 1);
    cr_expect_eq(lash_id_check(max, strlen(max), &e), LASH_OK);
    cr_expect_eq(lash_id_check(over, strlen(over), &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "process id"), "%s", e.msg);
    cr_expect_eq(lash_id_check("", 0, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "empty"), "%s", e.msg);
    cr_expect_eq(lash_id_check(NULL, 0, &e), LASH_EINVAL);
    cr_expect_eq(lash_id_check("Az09._:-", 8, &e), LASH_OK);
    /* '@': a schedule's firings are NAME@<fire ms> (registry/sched.h). */
    cr_expect_eq(lash_id_check("nightly@1764585600000", 21, &e), LASH_OK);
    static const char *const bad[] = {"a b",  "a/b",  "a{b", "a}b", "a*b", "caf\xc3\xa9",
                                      "a\tb", "a\"b", "a'b", "a$b", "a#b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(lash_id_check(bad[i], strlen(bad[i]), &e), LASH_EINVAL, "'%s'", bad[i]);
        cr_expect(strstr(e.msg, "process id"), "%s", e.msg);
    }
    /* len is what counts: a NUL inside is a bad byte, not an end. */
    cr_expect_eq(lash_id_check("ab\0c", 4, &e), LASH_EINVAL);
    free(max);
    free(over);
}

Test(names, queues_and_kinds)
{
    lash_err e = {0};
    char *q = repeat('q', LASH_QUEUE_MAX), *q1 = repeat('q', LASH_QUEUE_MAX + 1);
    char *k = repeat('k', LASH_KIND_MAX), *k1 = repeat('k', LASH_KIND_MAX + 1);
    cr_expect_eq(lash_queue_check(q, &e), LASH_OK);
    cr_expect_eq(lash_queue_check(q1, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "queue"), "%s", e.msg);
    cr_expect_eq(lash_queue_check("", &e), LASH_EINVAL);
    cr_expect_eq(lash_queue_check(NULL, &e), LASH_EINVAL);
    cr_expect_eq(lash_queue_check("Mail.out_2-x", &e), LASH_OK);
    /* ':' is an id character only: a queue with ':' or braces breaks key names. */
    static const char *const badq[] = {"a:b", "{a}", "a}b", "a b", "a/b", "\xff"};
    for (size_t i = 0; i < sizeof badq / sizeof badq[0]; i++)
        cr_expect_eq(lash_queue_check(badq[i], &e), LASH_EINVAL, "'%s'", badq[i]);
    cr_expect_eq(lash_kind_check(k, strlen(k), &e), LASH_OK);
    cr_expect_eq(lash_kind_check(k1, strlen(k1), &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "kind"), "%s", e.msg);
    cr_expect_eq(lash_kind_check("a:b", 3, &e), LASH_EINVAL);
    cr_expect_eq(lash_kind_check("", 0, &e), LASH_EINVAL);
    cr_expect_eq(lash_kind_check("email.send_v2-x", 15, &e), LASH_OK);
    free(q);
    free(q1);
    free(k);
    free(k1);
}

Test(names, worker_ids)
{
    lash_err e = {0};
    char *w = repeat('w', LASH_WORKER_ID_MAX), *w1 = repeat('w', LASH_WORKER_ID_MAX + 1);
    cr_expect_eq(lash_worker_id_check(w, &e), LASH_OK);
    cr_expect_eq(lash_worker_id_check(w1, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "worker id"), "%s", e.msg);
    cr_expect_eq(lash_worker_id_check("host-1/pid@7#{x}", &e), LASH_OK);
    /* The fence follows a token's last colon, so host:pid ids are fine. */
    cr_expect_eq(lash_worker_id_check("host-1:4242", &e), LASH_OK);
    static const char *const bad[] = {"", "a b", "a\tb", "a\x7f", "caf\xc3\xa9", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(lash_worker_id_check(bad[i], &e), LASH_EINVAL, "'%s'", bad[i]);
    cr_expect_eq(lash_worker_id_check(NULL, &e), LASH_EINVAL);
    free(w);
    free(w1);
}

Test(names, key_names)
{
    char b[LASH_KEY_MAX];
    cr_expect_str_eq(lash_key(b, "q", LASH_KEY_BASE), "lash:{q}");
    cr_expect_str_eq(lash_key(b, "q", LASH_KEY_DUE), "lash:{q}:due");
    cr_expect_str_eq(lash_key(b, "q", LASH_KEY_DONE), "lash:{q}:done");
    cr_expect_str_eq(lash_key(b, "q", LASH_KEY_EVENTS), "lash:{q}:events");
    cr_expect_str_eq(lash_key(b, "q", LASH_KEY_WORKERS), "lash:{q}:workers");
    cr_expect_str_eq(lash_key(b, "q", LASH_CHAN_POKE), "lash:{q}:poke");
    cr_expect_str_eq(lash_key(b, "q", LASH_CHAN_CANCEL), "lash:{q}:cancel");
    cr_expect_str_eq(lash_key(b, "q", LASH_CHAN_FINISHED), "lash:{q}:finished");
    cr_expect_str_eq(lash_key_row(b, "q", "p:1"), "lash:{q}:p:p:1");
    cr_expect_str_eq(lash_key_lease(b, "q", "x"), "lash:{q}:lease:x");
    /* The longest names fit whole. */
    char *q = repeat('q', LASH_QUEUE_MAX), *id = repeat('i', LASH_ID_MAX);
    lash_key_lease(b, q, id);
    cr_expect_eq(strlen(b), strlen("lash:{}:lease:") + LASH_QUEUE_MAX + LASH_ID_MAX);
    free(q);
    free(id);
}

/* ---- submissions ------------------------------------------------------------ */

static lash_submission sub(const char *kind, const char *payload)
{
    lash_submission s = {0};
    s.kind = kind;
    s.payload = payload;
    s.payload_len = payload ? strlen(payload) : 0;
    return s;
}

Test(submission, valid_ones_pass)
{
    lash_err e = {0};
    lash_submission s = sub("k", "{\"a\":[1,2,{\"b\":null}]}");
    cr_expect_eq(lash_submission_check(&s, &e), LASH_OK, "%s", e.msg);
    s = sub("k", NULL);
    cr_expect_eq(lash_submission_check(&s, &e), LASH_OK, "%s", e.msg);
    s = sub("k", "  42 \n");
    s.id = "order:17";
    s.max_attempts = LASH_ATTEMPTS_MAX;
    s.timeout_ms = LASH_TIMEOUT_MAX;
    s.delay_ms = LASH_DELAY_MAX;
    s.backoff = "exp:10:20";
    s.on_lost = LASH_ON_LOST_ABANDON;
    cr_expect_eq(lash_submission_check(&s, &e), LASH_OK, "%s", e.msg);
}

Test(submission, payload_size_limit)
{
    lash_err e = {0};
    /* A JSON string of exactly LASH_PAYLOAD_MAX bytes, then one over. */
    char *p = malloc(LASH_PAYLOAD_MAX + 2);
    memset(p, 'x', LASH_PAYLOAD_MAX + 1);
    p[0] = '"';
    p[LASH_PAYLOAD_MAX - 1] = '"';
    lash_submission s = sub("k", NULL);
    s.payload = p;
    s.payload_len = LASH_PAYLOAD_MAX;
    cr_expect_eq(lash_submission_check(&s, &e), LASH_OK, "%s", e.msg);
    p[LASH_PAYLOAD_MAX - 1] = 'x';
    p[LASH_PAYLOAD_MAX] = '"';
    s.payload_len = LASH_PAYLOAD_MAX + 1;
    cr_expect_eq(lash_submission_check(&s, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "payload") && strstr(e.msg, "over"), "%s", e.msg);
    free(p);
}

Test(submission, invalid_ones_name_the_problem)
{
    struct {
        const char *what;
        lash_submission s;
    } bad[16];
    size_t n = 0;
    lash_submission base = sub("k", "{}");
#define BAD(w, ...)                                                                                \
    do {                                                                                           \
        bad[n].what = w;                                                                           \
        bad[n].s = base;                                                                           \
        __VA_ARGS__;                                                                               \
        n++;                                                                                       \
    } while (0)
    BAD("payload", bad[n].s.payload = "{", bad[n].s.payload_len = 1);
    BAD("payload", bad[n].s.payload = "{} {}", bad[n].s.payload_len = 5);
    BAD("payload", bad[n].s.payload = "nul\0l", bad[n].s.payload_len = 5);
    BAD("payload", bad[n].s.payload = "", bad[n].s.payload_len = 0);
    BAD("payload", bad[n].s.payload = "[1,]", bad[n].s.payload_len = 4);
    BAD("kind", bad[n].s.kind = NULL);
    BAD("kind", bad[n].s.kind = "a b");
    BAD("process id", bad[n].s.id = "a b");
    BAD("max_attempts", bad[n].s.max_attempts = LASH_ATTEMPTS_MAX + 1);
    BAD("max_attempts", bad[n].s.max_attempts = -1);
    BAD("timeout", bad[n].s.timeout_ms = -1);
    BAD("timeout", bad[n].s.timeout_ms = LASH_TIMEOUT_MAX + 1);
    BAD("delay", bad[n].s.delay_ms = LASH_DELAY_MAX + 1);
    BAD("run_at", bad[n].s.run_at_ms = -1);
    BAD("backoff", bad[n].s.backoff = "linear:5");
    BAD("on_lost", bad[n].s.on_lost = (lash_on_lost)7);
#undef BAD
    for (size_t i = 0; i < n; i++) {
        lash_err e = {0};
        cr_expect_eq(lash_submission_check(&bad[i].s, &e), LASH_EINVAL, "case %zu (%s)", i,
                     bad[i].what);
        cr_expect(strstr(e.msg, bad[i].what), "case %zu: '%s' not in: %s", i, bad[i].what, e.msg);
    }
}

Test(submission, from_json_bare_payload)
{
    static const char *const lines[] = {"{\"a\":1}", "[1,2]", "\"text\"",
                                        "42",        "null",  "{\"kindness\":1}"};
    for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
        lash_submission s;
        void *h;
        char *pt;
        lash_err e = {0};
        size_t len = strlen(lines[i]);
        cr_assert_eq(lash_submission_from_json(lines[i], len, "dflt", &s, &h, &pt, &e), LASH_OK,
                     "%s: %s", lines[i], e.msg);
        cr_expect_str_eq(s.kind, "dflt");
        cr_expect_eq(s.payload_len, len);
        cr_expect_eq(memcmp(s.payload, lines[i], len), 0);
        cr_expect_null(s.id);
        cr_expect_eq(s.max_attempts, 0);
        lash_json_free(h);
        free(pt);
    }
    /* No default kind: a bare payload cannot be submitted. */
    lash_submission s;
    void *h;
    char *pt;
    lash_err e = {0};
    cr_expect_eq(lash_submission_from_json("{}", 2, NULL, &s, &h, &pt, &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "kind"), "%s", e.msg);
    lash_json_free(h);
    free(pt);
}

Test(submission, from_json_full_object)
{
    const char *line = "{\"kind\":\"email\",\"payload\":{\"to\":\"x\",\"n\":[1,2]},\"id\":\"p-1\","
                       "\"max_attempts\":5,\"timeout_ms\":1000,\"delay_ms\":50,"
                       "\"backoff\":\"fixed:10\",\"on_lost\":\"abandon\"}";
    lash_submission s;
    void *h;
    char *pt;
    lash_err e = {0};
    cr_assert_eq(lash_submission_from_json(line, strlen(line), "dflt", &s, &h, &pt, &e), LASH_OK,
                 "%s", e.msg);
    cr_expect_str_eq(s.kind, "email");
    cr_expect_str_eq(s.id, "p-1");
    cr_expect_eq(s.max_attempts, 5);
    cr_expect_eq(s.timeout_ms, 1000);
    cr_expect_eq(s.delay_ms, 50);
    cr_expect_eq(s.run_at_ms, 0);
    cr_expect_str_eq(s.backoff, "fixed:10");
    cr_expect_eq(s.on_lost, LASH_ON_LOST_ABANDON);
    cr_expect_eq(s.payload_len, strlen("{\"to\":\"x\",\"n\":[1,2]}"));
    cr_expect_eq(memcmp(s.payload, "{\"to\":\"x\",\"n\":[1,2]}", s.payload_len), 0);
    lash_json_free(h);
    free(pt);

    /* payload alone: the default kind; kind alone: payload null. */
    line = "{\"payload\":[true]}";
    cr_assert_eq(lash_submission_from_json(line, strlen(line), "dflt", &s, &h, &pt, &e), LASH_OK);
    cr_expect_str_eq(s.kind, "dflt");
    cr_expect_eq(memcmp(s.payload, "[true]", 6), 0);
    lash_json_free(h);
    free(pt);
    line = "{\"kind\":\"k2\",\"run_at\":1700000000000,\"on_lost\":\"rerun\"}";
    cr_assert_eq(lash_submission_from_json(line, strlen(line), NULL, &s, &h, &pt, &e), LASH_OK);
    cr_expect_str_eq(s.kind, "k2");
    cr_expect_null(s.payload);
    cr_expect_eq(s.run_at_ms, 1700000000000LL);
    cr_expect_eq(s.on_lost, LASH_ON_LOST_RERUN);
    lash_json_free(h);
    free(pt);
}

Test(submission, from_json_bad_types)
{
    static const char *const bad[][2] = {
        {"{\"kind\":5}", "kind"},
        {"{\"kind\":\"k\",\"id\":true}", "id"},
        {"{\"kind\":\"k\",\"id\":\"a b\"}", "id"},
        {"{\"kind\":\"k\",\"max_attempts\":\"5\"}", "max_attempts"},
        {"{\"kind\":\"k\",\"max_attempts\":1.5}", "max_attempts"},
        {"{\"kind\":\"k\",\"max_attempts\":0}", "max_attempts"},
        {"{\"kind\":\"k\",\"max_attempts\":1e300}", "max_attempts"},
        {"{\"kind\":\"k\",\"max_attempts\":-1e300}", "max_attempts"},
        {"{\"kind\":\"k\",\"timeout_ms\":-1}", "timeout_ms"},
        {"{\"kind\":\"k\",\"timeout_ms\":null}", "timeout_ms"},
        {"{\"kind\":\"k\",\"delay_ms\":1e300}", "delay_ms"},
        {"{\"kind\":\"k\",\"delay_ms\":[1]}", "delay_ms"},
        {"{\"kind\":\"k\",\"run_at\":\"now\"}", "run_at"},
        {"{\"kind\":\"k\",\"run_at\":9.3e18}", "run_at"},
        {"{\"kind\":\"k\",\"backoff\":7}", "backoff"},
        {"{\"kind\":\"k\",\"backoff\":\"whenever\"}", "backoff"},
        {"{\"kind\":\"k\",\"on_lost\":\"sometimes\"}", "on_lost"},
        {"{\"kind\":\"k\",\"on_lost\":3}", "on_lost"},
        {"{\"kind\":\"a b\"}", "kind"},
        {"{\"kind\":\"k\",\"payload\":", "line"},
        {"{\"kind\":\"k\"} trailing", "line"},
        {"", "line"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lash_submission s;
        void *h;
        char *pt;
        lash_err e = {0};
        cr_expect_eq(
            lash_submission_from_json(bad[i][0], strlen(bad[i][0]), "dflt", &s, &h, &pt, &e),
            LASH_EINVAL, "%s accepted", bad[i][0]);
        cr_expect(strstr(e.msg, bad[i][1]), "%s: '%s' not in: %s", bad[i][0], bad[i][1], e.msg);
        lash_json_free(h);
        free(pt);
    }
}

Test(json, check_and_events)
{
    lash_err e = {0};
    const char *ok = " {\"a\" : [1, 2.5e3, \"\\u00e9\"]} \r\n";
    cr_expect_eq(lash_json_check(ok, strlen(ok), "x", &e), LASH_OK, "%s", e.msg);
    cr_expect_eq(lash_json_check("{\"a\":1}}", 8, "thing", &e), LASH_EINVAL);
    cr_expect(strstr(e.msg, "thing"), "%s", e.msg);
    /* The length bounds what is read: "[1]" followed by garbage. */
    cr_expect_eq(lash_json_check("[1]xyz", 3, "x", &e), LASH_OK, "%s", e.msg);

    const char *fields[] = {"event", "claimed", "id", "p1"};
    size_t lens[] = {5, 7, 2, 2};
    char *j = lash_event_to_json("1-0", fields, lens, 4);
    cJSON *o = cJSON_Parse(j);
    cr_assert(o);
    cr_expect_str_eq(str(o, "stream_id"), "1-0");
    cr_expect_str_eq(str(o, "event"), "claimed");
    cr_expect_str_eq(str(o, "id"), "p1");
    cJSON_Delete(o);
    free(j);
}

/* ---- backoff ---------------------------------------------------------------- */

Test(backoff, parse)
{
    lash_backoff b;
    lash_err e = {0};
    cr_assert_eq(lash_backoff_parse("fixed:500", &b, &e), LASH_OK);
    cr_expect(!b.exponential && b.base_ms == 500 && b.cap_ms == 500);
    cr_assert_eq(lash_backoff_parse("fixed:0", &b, &e), LASH_OK);
    cr_expect_eq(b.base_ms, 0);
    cr_assert_eq(lash_backoff_parse("exp:100:1000", &b, &e), LASH_OK);
    cr_expect(b.exponential && b.base_ms == 100 && b.cap_ms == 1000);
    cr_assert_eq(lash_backoff_parse(LASH_DEFAULT_BACKOFF, &b, &e), LASH_OK);
    cr_assert_eq(lash_backoff_parse("exp:7:7", &b, &e), LASH_OK);
    cr_expect_eq(lash_backoff_parse("exp:1:31536000000", NULL, &e), LASH_OK);
    static const char *const bad[] = {
        "",         "fixed:",  "fixed:-1",  "fixed:abc", "fixed:1x",          "exp:0:10",
        "exp:10:5", "exp:10",  "exp:10:",   "exp::10",   "exp:1:31536000001", "fixed:31536000001",
        "linear:5", "FIXED:5", "exp:1:2:3", " fixed:5",  "exp:-1:5",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(lash_backoff_parse(bad[i], &b, &e), LASH_EINVAL, "'%s'", bad[i]);
        cr_expect(strstr(e.msg, "backoff"), "%s", e.msg);
    }
    cr_expect_eq(lash_backoff_parse(NULL, &b, &e), LASH_EINVAL);
}

Test(backoff, fixed_ignores_attempt_and_jitter)
{
    lash_backoff b;
    cr_assert_eq(lash_backoff_parse("fixed:250", &b, NULL), LASH_OK);
    for (int a = -1; a < 50; a++)
        for (double r = 0; r < 1; r += 0.125)
            cr_expect_eq(lash_backoff_delay(&b, a, r), 250);
}

Test(backoff, exponential_doubles_caps_and_jitters)
{
    lash_backoff b;
    cr_assert_eq(lash_backoff_parse("exp:1000:60000", &b, NULL), LASH_OK);
    /* Un-jittered delays by attempt: 1000 * 2^(attempt-1), capped at 60000. */
    static const int64_t d[] = {1000, 1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
    for (int a = 0; a <= 8; a++) {
        int64_t lo = lash_backoff_delay(&b, a, 0.0);
        cr_expect_eq(lo, d[a] / 2, "attempt %d: %lld", a, (long long)lo);
        for (double r = 0; r < 1; r += 1.0 / 64) {
            int64_t x = lash_backoff_delay(&b, a, r);
            cr_expect(x >= d[a] / 2 && x < d[a], "attempt %d rnd %g: %lld", a, r, (long long)x);
        }
        int64_t hi = lash_backoff_delay(&b, a, nextafter(1.0, 0.0));
        cr_expect(hi >= d[a] - 1 - d[a] / 1000 && hi < d[a], "attempt %d: %lld", a, (long long)hi);
    }
    cr_expect_eq(lash_backoff_delay(&b, 1000, 0.5), 45000);
    cr_expect_eq(lash_backoff_delay(&b, -5, 0.0), 500);
    /* rnd outside [0,1) (a caller's bug) still lands in range, never below. */
    static const double odd[] = {1.0, 7.5, -0.5, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        int64_t x = lash_backoff_delay(&b, 3, odd[i]);
        cr_expect(x >= 2000 && x < 4000, "rnd %g: %lld", odd[i], (long long)x);
    }
    /* Huge bounds do not overflow. */
    cr_assert_eq(lash_backoff_parse("exp:1:31536000000", &b, NULL), LASH_OK);
    for (int a = 1; a <= LASH_ATTEMPTS_MAX; a += 37) {
        int64_t x = lash_backoff_delay(&b, a, nextafter(1.0, 0.0));
        cr_expect(x >= 0 && x < 31536000000LL, "attempt %d: %lld", a, (long long)x);
    }
}

/* ---- URLs --------------------------------------------------------------------- */

Test(url, accepted_forms)
{
    lash_url u;
    lash_err e = {0};
    cr_assert_eq(lash_url_parse("redis://localhost", &u, &e), LASH_OK, "%s", e.msg);
    cr_expect_str_eq(u.host, "localhost");
    cr_expect(u.port == 6379 && u.db == 0 && !u.path[0] && !u.user[0] && !u.password[0]);

    cr_assert_eq(lash_url_parse("redis://10.0.0.2:6380/2", &u, &e), LASH_OK);
    cr_expect(strcmp(u.host, "10.0.0.2") == 0 && u.port == 6380 && u.db == 2);

    cr_assert_eq(lash_url_parse("redis://h:1/", &u, &e), LASH_OK);
    cr_expect(u.port == 1 && u.db == 0);

    cr_assert_eq(lash_url_parse("redis://app:pa%40ss%3Aw%2fd@h:7000/15", &u, &e), LASH_OK);
    cr_expect_str_eq(u.user, "app");
    cr_expect_str_eq(u.password, "pa@ss:w/d");
    cr_expect(u.port == 7000 && u.db == 15);
    cr_expect_str_eq(u.host, "h");

    cr_assert_eq(lash_url_parse("redis://:s3cret@h", &u, &e), LASH_OK);
    cr_expect(u.user[0] == 0 && strcmp(u.password, "s3cret") == 0);
    /* userinfo without a colon is a user name (RFC 3986), not a password */
    cr_assert_eq(lash_url_parse("redis://lash-worker@h", &u, &e), LASH_OK);
    cr_expect(strcmp(u.user, "lash-worker") == 0 && u.password[0] == 0);
    cr_assert_eq(lash_url_parse("redis://u%20x:p:q@h", &u, &e), LASH_OK);
    cr_expect_str_eq(u.user, "u x");
    cr_expect_str_eq(u.password, "p:q");

    cr_assert_eq(lash_url_parse("redis://[::1]:6390/4", &u, &e), LASH_OK, "%s", e.msg);
    cr_expect_str_eq(u.host, "::1");
    cr_expect(u.port == 6390 && u.db == 4);
    cr_assert_eq(lash_url_parse("redis://[fe80::1%25eth0]", &u, &e), LASH_OK);
    cr_expect_eq(u.port, 6379);

    cr_assert_eq(lash_url_parse("unix:///run/redis/redis.sock", &u, &e), LASH_OK);
    cr_expect_str_eq(u.path, "/run/redis/redis.sock");
    cr_expect(!u.host[0] && u.db == 0);
    cr_assert_eq(lash_url_parse("unix:///tmp/r.sock?db=5", &u, &e), LASH_OK);
    cr_expect(strcmp(u.path, "/tmp/r.sock") == 0 && u.db == 5);
    cr_assert_eq(lash_url_parse("unix://lash:pw@/tmp/r.sock?db=1", &u, &e), LASH_OK);
    cr_expect(strcmp(u.user, "lash") == 0 && strcmp(u.password, "pw") == 0 && u.db == 1);
    cr_expect_str_eq(u.path, "/tmp/r.sock");
}

Test(url, rejections)
{
    char longurl[1100];
    memset(longurl, 'a', sizeof longurl - 1);
    memcpy(longurl, "redis://", 8);
    longurl[sizeof longurl - 1] = 0;
    char longpath[140];
    snprintf(longpath, sizeof longpath, "unix:///%0120d", 0);
    static const char *const bad[] = {
        "",
        "http://h",
        "redis:/h",
        "redis://",
        "redis://:6379",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:",
        "redis://h:abc",
        "redis://h:63 79",
        "redis://h/x",
        "redis://h/70000",
        "redis://h/-1",
        "redis://h?db=1",
        "redis://[::1",
        "redis://[::1]x",
        "redis://[::1]:",
        "redis://u:%zz@h",
        "redis://u:%4@h",
        "redis://u:%00@h",
        "redis://%@h",
        "unix://relative.sock",
        "unix://",
        "unix:///p?foo=1",
        "unix:///p?db=x",
        "unix:///p?db=",
    };
    lash_url u;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lash_err e = {0};
        cr_expect_eq(lash_url_parse(bad[i], &u, &e), LASH_EINVAL, "'%s' accepted", bad[i]);
        cr_expect(strstr(e.msg, "URL"), "'%s': %s", bad[i], e.msg);
    }
    lash_err e = {0};
    cr_expect_eq(lash_url_parse(NULL, &u, &e), LASH_EINVAL);
    cr_expect_eq(lash_url_parse(longurl, &u, &e), LASH_EINVAL);
    cr_expect_eq(lash_url_parse(longpath, &u, &e), LASH_EINVAL);
}

Test(url, describe_hides_the_password)
{
    lash_url u;
    char buf[512];
    cr_assert_eq(lash_url_parse("redis://app:hunter2@h:7000/3", &u, NULL), LASH_OK);
    lash_url_describe(&u, buf, sizeof buf);
    cr_expect_null(strstr(buf, "hunter2"), "%s", buf);
    cr_expect(strstr(buf, "app") && strstr(buf, "h:7000"), "%s", buf);
    cr_assert_eq(lash_url_parse("unix://:pw@/tmp/s?db=2", &u, NULL), LASH_OK);
    lash_url_describe(&u, buf, sizeof buf);
    cr_expect_null(strstr(buf, "pw@"), "%s", buf);
    cr_expect(strstr(buf, "/tmp/s"), "%s", buf);
}

/* ---- generated ids ------------------------------------------------------------ */

static int cmp_str(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

Test(id, shape_and_time_order)
{
    lash_idgen g1, g2;
    lash_idgen_init(&g1, 0x123456789abcdefULL);
    lash_idgen_init(&g2, 0xfedcba987654321ULL);
    char a[LASH_GEN_ID_LEN + 1], b[LASH_GEN_ID_LEN + 1];
    static const int64_t times[] = {
        0, 35, 36, 1295, 1296, 1700000000000LL, 1700000000001LL, 1700000035999LL, 4102444800000LL};
    lash_err e = {0};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        lash_id_new(&g1, times[i], a);
        cr_expect_eq(strlen(a), LASH_GEN_ID_LEN);
        for (int k = 0; k < LASH_GEN_ID_LEN; k++)
            cr_expect((a[k] >= '0' && a[k] <= '9') || (a[k] >= 'a' && a[k] <= 'z'), "%s", a);
        cr_expect_eq(lash_id_check(a, strlen(a), &e), LASH_OK);
        if (i + 1 < sizeof times / sizeof times[0]) {
            /* Another generator, a later millisecond: sorts after, whatever its prefix. */
            lash_id_new(&g2, times[i + 1], b);
            cr_expect_lt(strcmp(a, b), 0, "%s (t=%lld) !< %s", a, (long long)times[i], b);
        }
    }
}

Test(id, distinct_within_a_process)
{
    enum { N = 200000 };
    lash_idgen g;
    lash_idgen_init(&g, 42);
    char(*ids)[LASH_GEN_ID_LEN + 1] = malloc(N * sizeof *ids);
    cr_assert(ids);
    /* Many ids inside one millisecond (more than the counter's 46,656), then a
     * clock that stalls and steps back: none may repeat. */
    for (int i = 0; i < N; i++)
        lash_id_new(&g, i < N / 2 ? 1700000000000LL : 1700000000000LL - (i % 3), ids[i]);
    qsort(ids, N, sizeof *ids, cmp_str);
    for (int i = 1; i < N; i++)
        cr_assert_neq(strcmp(ids[i - 1], ids[i]), 0, "id %s repeats", ids[i]);
    free(ids);
}

Test(id, one_generator_is_monotonic)
{
    lash_idgen g;
    lash_idgen_init(&g, 0xffffffffffffffffULL);
    char prev[LASH_GEN_ID_LEN + 1] = "", cur[LASH_GEN_ID_LEN + 1];
    int64_t t = 1700000000000LL;
    for (int i = 0; i < 100000; i++) {
        if (i % 1000 == 0) t++;
        lash_id_new(&g, t, cur);
        cr_assert_gt(strcmp(cur, prev), 0, "%s after %s", cur, prev);
        memcpy(prev, cur, sizeof cur);
    }
}

/* ---- SHA-1 ------------------------------------------------------------------------ */

static void expect_sha1(const void *data, size_t len, const char *want)
{
    char hex[41];
    lash_sha1_hex(data, len, hex);
    cr_expect_str_eq(hex, want, "len %zu", len);
}

Test(sha1, known_vectors)
{
    expect_sha1("", 0, "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    expect_sha1("abc", 3, "a9993e364706816aba3e25717850c26c9cd0d89d");
    expect_sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 56,
                "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    expect_sha1("The quick brown fox jumps over the lazy dog", 43,
                "2fd4e1c67a2d28fced849ee1bb76e7391b93eb12");
    static const struct {
        size_t n;
        const char *hex;
    } as[] = {
        {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
        {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
        {63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5"},
        {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
        {65, "11655326c708d70319be2610e8a57d9a5b959d3b"},
        {119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56"},
        {120, "f34c1488385346a55709ba056ddd08280dd4c6d6"},
        {128, "ad5b3fdbcb526778c2839d2f151ea753995e26a0"},
        {1000000, "34aa973cd4c4daa4f61eeb2bdbad27316534016f"},
    };
    for (size_t i = 0; i < sizeof as / sizeof as[0]; i++) {
        char *a = repeat('a', as[i].n);
        expect_sha1(a, as[i].n, as[i].hex);
        free(a);
    }
}

Test(sha1, script_shas_name_their_texts)
{
    for (int op = 0; op < LASH_OP_COUNT; op++) {
        size_t len;
        const char *t = lash_script_text((lash_op)op, &len);
        char hex[41];
        cr_assert(t && len > 0);
        lash_sha1_hex(t, len, hex);
        cr_expect_str_eq(lash_script_sha((lash_op)op), hex, "%s", lash_op_name((lash_op)op));
    }
    size_t len;
    const char *lib = lash_function_library(&len);
    cr_assert(lib && len == strlen(lib));
    cr_expect_eq(strlen(lash_function_version()), 16);
    for (int op = 0; op < LASH_OP_COUNT; op++) {
        char reg[64];
        snprintf(reg, sizeof reg, "function_name='lash_%s'", lash_op_name((lash_op)op));
        cr_expect(strstr(lib, reg), "library does not register %s", reg);
    }
}

/* ---- limits: lib.lua agrees with limits.h ---------------------------------------- */

/* Finds "local NAME = VALUE" in text and copies VALUE (to end of line). */
static bool lua_const(const char *text, const char *name, char *out, size_t cap)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\nlocal %s = ", name);
    const char *p = strstr(text, pat);
    if (!p) return false;
    p += strlen(pat);
    size_t n = strcspn(p, "\r\n");
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n >= cap) return false;
    memcpy(out, p, n);
    out[n] = 0;
    return true;
}

Test(limits, lua_equals_limits_h)
{
    char path[512];
    snprintf(path, sizeof path, "%s/proto/lua/lib.lua", LASH_SOURCE_DIR);
    FILE *f = fopen(path, "rb");
    cr_assert(f, "cannot open %s", path);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    static const struct {
        const char *name;
        long long want;
    } nums[] = {
        {"LASH_ID_MAX", LASH_ID_MAX},
        {"LASH_KIND_MAX", LASH_KIND_MAX},
        {"LASH_WORKER_ID_MAX", LASH_WORKER_ID_MAX},
        {"LASH_PAYLOAD_MAX", LASH_PAYLOAD_MAX},
        {"LASH_RESULT_MAX", LASH_RESULT_MAX},
        {"LASH_ERROR_MAX", LASH_ERROR_MAX},
        {"LASH_ATTEMPTS_MAX", LASH_ATTEMPTS_MAX},
        {"LASH_TIMEOUT_MAX", LASH_TIMEOUT_MAX},
        {"LASH_DELAY_MAX", LASH_DELAY_MAX},
        {"LASH_WAIT_MAX", LASH_WAIT_MAX},
        {"LASH_BATCH_MAX", LASH_BATCH_MAX},
        {"LASH_PRIO_MAX", LASH_PRIO_MAX},
        {"LASH_AFTER_MAX", LASH_AFTER_MAX},
        {"LASH_DEFAULT_MAX_ATTEMPTS", LASH_DEFAULT_MAX_ATTEMPTS},
        {"LASH_PROGRESS_TEXT_MAX", LASH_PROGRESS_TEXT_MAX},
        {"LASH_LIMIT_CONCURRENCY_MAX", LASH_LIMIT_CONCURRENCY_MAX},
        {"LASH_LIMIT_RATE_MAX", LASH_LIMIT_RATE_MAX},
        {"LASH_LIMIT_PERIOD_MAX", LASH_LIMIT_PERIOD_MAX},
    };
    char val[128];
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        cr_assert(lua_const(text, nums[i].name, val, sizeof val), "lib.lua has no %s",
                  nums[i].name);
        char *end;
        long long got = strtoll(val, &end, 10);
        cr_expect(*end == 0 && got == nums[i].want, "%s: lib.lua says '%s', limits.h %lld",
                  nums[i].name, val, nums[i].want);
    }
    cr_assert(lua_const(text, "LASH_DEFAULT_BACKOFF", val, sizeof val));
    char want[64];
    snprintf(want, sizeof want, "'%s'", LASH_DEFAULT_BACKOFF);
    cr_expect(strcmp(val, want) == 0 ||
                  (val[0] == '"' && strncmp(val + 1, want + 1, strlen(want) - 2) == 0),
              "LASH_DEFAULT_BACKOFF: lib.lua says %s, limits.h %s", val, LASH_DEFAULT_BACKOFF);
}
