/* test_proto_regress.c: inputs the fuzzers (tests/fuzz) found, kept as tests. No Redis.
 *
 * Each test names the fuzz target and what went wrong. Some failures only show
 * as a sanitizer report, so this suite matters most in the LASH_SANITIZE build;
 * where the fix also changed what a caller sees, the test asserts that too.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "proto/json.h"
#include "proto/record.h"

/* An exact-length, not NUL-terminated copy, as the fuzzer hands values over. */
static char *exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    memcpy(p, s, n);
    return p;
}

/* fuzz_record, seed bad_fields: a bad 'state', integer or 'on_lost' value was
 * quoted in the error with '%.32s', which reads until a NUL: past the value's
 * length (heap-buffer-overflow under ASan). The message now quotes exactly the
 * value's bytes. */
Test(regress, record_error_quotes_only_the_value)
{
    lash_record rec;
    lash_err e = {0};
    lash_record_init(&rec);
    char *v = exact("pendingXYZ", 3);
    cr_assert_eq(lash_record_set(&rec, "state", v, 3, &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "field 'state' is not a state: 'pen'");
    free(v);

    v = exact("12x", 3);
    cr_assert_eq(lash_record_set(&rec, "attempt", v, 3, &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "field 'attempt' is not an integer in 0..1000: '12x'");
    free(v);

    v = exact("", 0);
    cr_assert_eq(lash_record_set(&rec, "fence", v, 0, &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "field 'fence' is not an integer in 0..9223372036854775807: ''");
    free(v);

    v = exact("never", 5);
    cr_assert_eq(lash_record_set(&rec, "on_lost", v, 5, &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "field 'on_lost' is not rerun|abandon: 'never'");
    free(v);

    /* Long values are cut at 32 bytes in the message. */
    const char *longv = "0123456789012345678901234567890123456789x";
    v = exact(longv, strlen(longv));
    cr_assert_eq(lash_record_set(&rec, "created_ms", v, strlen(longv), &e), LASH_EINVAL);
    cr_assert_str_eq(e.msg, "field 'created_ms' is not an integer in 0..9223372036854775807: "
                            "'01234567890123456789012345678901'");
    free(v);
    lash_record_free(&rec);
}

/* Found reading the same code: a state with a NUL inside ("pending\0junk") was
 * taken for "pending", because the copy was compared as a C string. */
Test(regress, record_state_with_nul_is_refused)
{
    lash_record rec;
    lash_err e = {0};
    lash_record_init(&rec);
    cr_assert_eq(lash_record_set(&rec, "state", "pending\0junk", 12, &e), LASH_EINVAL);
    cr_assert_eq(lash_record_set(&rec, "state", "running\0", 8, &e), LASH_EINVAL);
    cr_assert_eq(lash_record_set(&rec, "state", "running", 7, &e), LASH_OK);
    cr_assert_eq(rec.state, LASH_RUNNING);
    lash_record_free(&rec);
}

static lash_status from_json(const char *line, lash_err *e)
{
    lash_submission sub;
    void *holder;
    char *payload;
    lash_status st =
        lash_submission_from_json(line, strlen(line), NULL, &sub, &holder, &payload, e);
    lash_json_free(holder);
    free(payload);
    return st;
}

/* fuzz_jsonl, seed invalid_fields: {"max_attempts":1e300} converted the double to
 * int64_t before checking its range, which is undefined behaviour (UBSan:
 * "1e+300 is outside the range of representable values of type 'long'"). The
 * range is now checked first; out-of-range numbers are refused either way. The
 * UB shows only where float-cast-overflow is sanitized: clang's -fsanitize=undefined
 * (CC=clang -DLASH_SANITIZE=ON) includes it, gcc's does not. */
Test(regress, jsonl_huge_numbers_are_refused_without_ub)
{
    lash_err e = {0};
    const char *bad[] = {
        "{\"kind\":\"k\",\"max_attempts\":1e300}",
        "{\"kind\":\"k\",\"max_attempts\":-1e300}",
        "{\"kind\":\"k\",\"timeout_ms\":1e19}",
        "{\"kind\":\"k\",\"delay_ms\":9223372036854775808}",
        "{\"kind\":\"k\",\"run_at\":1e308}",
        "{\"kind\":\"k\",\"run_at\":-1e308}",
        "{\"kind\":\"k\",\"run_at\":1e999}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e.msg[0] = 0;
        cr_assert_eq(from_json(bad[i], &e), LASH_EINVAL, "%s", bad[i]);
        cr_assert(strstr(e.msg, "must be an integer in"), "%s: %s", bad[i], e.msg);
    }
    cr_assert_eq(from_json("{\"kind\":\"k\",\"max_attempts\":1000}", &e), LASH_OK);
    cr_assert_eq(from_json("{\"kind\":\"k\",\"max_attempts\":1001}", &e), LASH_EINVAL);
    cr_assert_eq(from_json("{\"kind\":\"k\",\"timeout_ms\":1.5}", &e), LASH_EINVAL);
    cr_assert_eq(from_json("{\"kind\":\"k\",\"run_at\":1700000000000}", &e), LASH_OK);
}

/* fuzz_record's JSON rendering, found reading the code it drives: a result that
 * merely starts with JSON ("1 abc") was shown as that JSON (1), dropping the rest,
 * because cJSON_Parse stops after the first value. It is text, and shown as such. */
Test(regress, record_json_shows_partial_json_result_as_text)
{
    lash_record rec;
    lash_err e = {0};
    lash_record_init(&rec);
    cr_assert_eq(lash_record_set(&rec, "kind", "echo", 4, &e), LASH_OK);
    cr_assert_eq(lash_record_set(&rec, "result", "1 abc", 5, &e), LASH_OK);
    char *j = lash_record_to_json(&rec);
    cr_assert_not_null(j);
    cr_assert(strstr(j, "\"result\":\"1 abc\""), "%s", j);
    free(j);
    cr_assert_eq(lash_record_set(&rec, "result", " {\"a\":1}\n", 9, &e), LASH_OK);
    j = lash_record_to_json(&rec);
    cr_assert_not_null(j);
    cr_assert(strstr(j, "\"result\":{\"a\":1}"), "%s", j);
    free(j);
    lash_record_free(&rec);
}
