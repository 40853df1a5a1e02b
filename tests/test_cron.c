/* test_cron.c: cron specs, TZif zones and next firings (proto/cron.h), pure. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/cron.h"

/* 2026-03-01T00:00:00Z and friends, in ms. */
#define MIN_MS 60000LL
#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL
static const int64_t MAR1 = 1772323200000LL; /* 2026-03-01 00:00 UTC, a Sunday */

static lash_cron parse_ok(const char *spec)
{
    lash_cron c;
    lash_err e = {0};
    cr_assert_eq(lash_cron_parse(spec, &c, &e), LASH_OK, "%s: %s", spec, e.msg);
    return c;
}

static int64_t next_of(const char *spec, const lash_tz *tz, int64_t after)
{
    lash_cron c = parse_ok(spec);
    int64_t out = -1;
    lash_err e = {0};
    cr_assert_eq(lash_cron_next(&c, tz, after, &out, &e), LASH_OK, "%s: %s", spec, e.msg);
    return out;
}

static lash_tz load_zone(const char *name)
{
    char path[256];
    snprintf(path, sizeof path, "/usr/share/zoneinfo/%s", name);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s (tzdata installed?)", path);
    static unsigned char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    lash_tz tz;
    lash_err e = {0};
    cr_assert_eq(lash_tz_parse(buf, n, &tz, &e), LASH_OK, "%s: %s", name, e.msg);
    return tz;
}

Test(cron, every_minute_fires_at_the_next_whole_minute)
{
    cr_assert_eq(next_of("* * * * *", NULL, MAR1), MAR1 + MIN_MS);
    cr_assert_eq(next_of("* * * * *", NULL, MAR1 + 1), MAR1 + MIN_MS);
    cr_assert_eq(next_of("* * * * *", NULL, MAR1 - 1), MAR1);
}

Test(cron, steps_ranges_and_lists_select_their_minutes)
{
    cr_assert_eq(next_of("*/5 * * * *", NULL, MAR1 + 1), MAR1 + 5 * MIN_MS);
    cr_assert_eq(next_of("10-20/5 * * * *", NULL, MAR1 + 16 * MIN_MS), MAR1 + 20 * MIN_MS);
    cr_assert_eq(next_of("10-20/5 * * * *", NULL, MAR1 + 20 * MIN_MS),
                 MAR1 + HOUR_MS + 10 * MIN_MS);
    cr_assert_eq(next_of("7,3 * * * *", NULL, MAR1 + 4 * MIN_MS), MAR1 + 7 * MIN_MS);
    cr_assert_eq(next_of("50/5 * * * *", NULL, MAR1 + 56 * MIN_MS), MAR1 + HOUR_MS + 50 * MIN_MS);
}

Test(cron, names_of_months_and_days_are_accepted)
{
    /* First Monday 09:30 in April 2026 is the 6th. */
    int64_t apr6 = MAR1 + (31 + 5) * DAY_MS;
    cr_assert_eq(next_of("30 9 * apr MON", NULL, MAR1), apr6 + 9 * HOUR_MS + 30 * MIN_MS);
    cr_assert_eq(next_of("30 9 * 4 1", NULL, MAR1), apr6 + 9 * HOUR_MS + 30 * MIN_MS);
}

Test(cron, sunday_is_both_0_and_7)
{
    /* MAR1 is a Sunday: the next Sunday noon after it is MAR1 + 12 h. */
    cr_assert_eq(next_of("0 12 * * 0", NULL, MAR1), MAR1 + 12 * HOUR_MS);
    cr_assert_eq(next_of("0 12 * * 7", NULL, MAR1), MAR1 + 12 * HOUR_MS);
    cr_assert_eq(next_of("0 12 * * sun", NULL, MAR1), MAR1 + 12 * HOUR_MS);
}

Test(cron, both_day_fields_restricted_match_either)
{
    /* The 15th, or any Monday: from Sunday March 1 the next is Monday March 2. */
    cr_assert_eq(next_of("0 0 15 * 1", NULL, MAR1), MAR1 + DAY_MS);
    /* With day-of-week '*', only the 15th. */
    cr_assert_eq(next_of("0 0 15 * *", NULL, MAR1), MAR1 + 14 * DAY_MS);
}

Test(cron, february_29_waits_for_a_leap_year)
{
    /* 2028-02-29 00:00 UTC. */
    cr_assert_eq(next_of("0 0 29 2 *", NULL, MAR1), 1835395200000LL);
}

Test(cron, shortcuts_mean_their_cron_lines)
{
    cr_assert_eq(next_of("@hourly", NULL, MAR1), MAR1 + HOUR_MS);
    cr_assert_eq(next_of("@daily", NULL, MAR1), MAR1 + DAY_MS);
    cr_assert_eq(next_of("@monthly", NULL, MAR1), MAR1 + 31 * DAY_MS);
}

Test(cron, every_fires_at_multiples_of_its_period)
{
    cr_assert_eq(next_of("@every 30s", NULL, MAR1), MAR1 + 30000);
    cr_assert_eq(next_of("@every 30s", NULL, MAR1 + 29999), MAR1 + 30000);
    cr_assert_eq(next_of("@every 1s", NULL, MAR1 + 1), MAR1 + 1000);
    cr_assert_eq(next_of("@every 2h", NULL, MAR1 + 1), MAR1 + 2 * HOUR_MS);
}

Test(cron, bad_specs_are_refused_naming_the_field)
{
    static const struct {
        const char *spec, *says;
    } bad[] = {
        {"", "empty"},
        {"* * * *", "wants 5"},
        {"* * * * * *", "more than 5"},
        {"60 * * * *", "minute"},
        {"* 24 * * *", "hour"},
        {"* * 0 * *", "day of month"},
        {"* * * 13 *", "month"},
        {"* * * * 8", "day of week"},
        {"5-1 * * * *", "backwards"},
        {"61 * * * *", "61 is outside 0-59"},
        {"*/0 * * * *", "step"},
        {"x * * * *", "minute"},
        {"* * * foo *", "month"},
        {"1,,2 * * * *", "minute"},
        {"@every", "shortcut"},
        {"@every 0s", "@every"},
        {"@every 5d", "@every"},
        {"@every 5", "@every"},
        {"@sometimes", "shortcut"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lash_cron c;
        lash_err e = {0};
        cr_assert_eq(lash_cron_parse(bad[i].spec, &c, &e), LASH_EINVAL, "'%s' accepted",
                     bad[i].spec);
        cr_assert_not_null(strstr(e.msg, bad[i].says), "'%s': %s", bad[i].spec, e.msg);
    }
}

Test(cron, a_spec_that_never_fires_is_an_error)
{
    lash_cron c = parse_ok("0 0 30 2 *");
    int64_t out;
    lash_err e = {0};
    cr_assert_eq(lash_cron_next(&c, NULL, MAR1, &out, &e), LASH_EINVAL);
    cr_assert_not_null(strstr(e.msg, "never"), "%s", e.msg);
}

Test(cron, names_and_zones_are_checked)
{
    lash_err e;
    cr_assert_eq(lash_sched_name_check("nightly-report.v2", &e), LASH_OK);
    cr_assert_eq(lash_sched_name_check("", &e), LASH_EINVAL);
    cr_assert_eq(lash_sched_name_check("a@b", &e), LASH_EINVAL);
    cr_assert_eq(lash_sched_name_check("a:b", &e), LASH_EINVAL);
    cr_assert_eq(lash_tz_name_check("Europe/Paris", &e), LASH_OK);
    cr_assert_eq(lash_tz_name_check("Etc/GMT+3", &e), LASH_OK);
    cr_assert_eq(lash_tz_name_check("../etc/passwd", &e), LASH_EINVAL);
    cr_assert_eq(lash_tz_name_check("/etc/passwd", &e), LASH_EINVAL);
    cr_assert_eq(lash_tz_name_check("Europe//Paris", &e), LASH_EINVAL);
}

Test(cron, garbage_zone_bytes_are_refused)
{
    lash_tz tz;
    lash_err e = {0};
    cr_assert_eq(lash_tz_parse("not a zone", 10, &tz, &e), LASH_EINVAL);
    unsigned char trunc[60] = "TZif2";
    trunc[20 + 15] = 200; /* 200 transitions in 16 bytes */
    cr_assert_eq(lash_tz_parse(trunc, sizeof trunc, &tz, &e), LASH_EINVAL);
    cr_assert_not_null(strstr(e.msg, "truncated"), "%s", e.msg);
    lash_tz_free(&tz);
}

/* Paris, 2026: CET (+1) until March 29 01:00 UTC, then CEST (+2) until October
 * 25 01:00 UTC. */
static const int64_t PARIS_SPRING = 1774746000000LL; /* 2026-03-29 01:00 UTC */
static const int64_t PARIS_AUTUMN = 1792890000000LL; /* 2026-10-25 01:00 UTC */

Test(cron, paris_offsets_follow_dst)
{
    lash_tz tz = load_zone("Europe/Paris");
    cr_assert_eq(lash_tz_offset(&tz, PARIS_SPRING / 1000 - 1), 3600);
    cr_assert_eq(lash_tz_offset(&tz, PARIS_SPRING / 1000), 7200);
    cr_assert_eq(lash_tz_offset(&tz, PARIS_AUTUMN / 1000 - 1), 7200);
    cr_assert_eq(lash_tz_offset(&tz, PARIS_AUTUMN / 1000), 3600);
    lash_tz_free(&tz);
}

Test(cron, a_daily_local_time_moves_in_utc_across_dst)
{
    lash_tz tz = load_zone("Europe/Paris");
    /* 09:00 Paris on March 28 is 08:00 UTC; on March 29 (CEST) 07:00 UTC. */
    int64_t mar28 = PARIS_SPRING - HOUR_MS - DAY_MS; /* 2026-03-28 00:00 UTC */
    int64_t a = next_of("0 9 * * *", &tz, mar28);
    cr_assert_eq(a, mar28 + 8 * HOUR_MS);
    cr_assert_eq(next_of("0 9 * * *", &tz, a), mar28 + DAY_MS + 7 * HOUR_MS);
    lash_tz_free(&tz);
}

Test(cron, a_wall_time_the_spring_gap_skips_fires_when_the_gap_ends)
{
    lash_tz tz = load_zone("Europe/Paris");
    /* 02:30 does not exist on March 29 in Paris: it fires at 03:00 CEST = 01:00 UTC. */
    int64_t got = next_of("30 2 * * *", &tz, PARIS_SPRING - 2 * HOUR_MS);
    cr_assert_eq(got, PARIS_SPRING, "got %lld", (long long)got);
    /* And the next day at 02:30 CEST = 00:30 UTC. */
    cr_assert_eq(next_of("30 2 * * *", &tz, got), PARIS_SPRING + DAY_MS - 30 * MIN_MS);
    lash_tz_free(&tz);
}

Test(cron, a_wall_time_the_autumn_repeats_fires_once)
{
    lash_tz tz = load_zone("Europe/Paris");
    /* 02:30 happens twice on October 25: at 00:30 UTC (CEST) and 01:30 UTC (CET). */
    int64_t first = next_of("30 2 * * *", &tz, PARIS_AUTUMN - 2 * HOUR_MS);
    cr_assert_eq(first, PARIS_AUTUMN - 30 * MIN_MS);
    int64_t then = next_of("30 2 * * *", &tz, first);
    cr_assert_eq(then, PARIS_AUTUMN + DAY_MS + 30 * MIN_MS, "got %lld", (long long)then);
    lash_tz_free(&tz);
}

Test(cron, every_ignores_the_zone)
{
    lash_tz tz = load_zone("Europe/Paris");
    cr_assert_eq(next_of("@every 30s", &tz, MAR1), MAR1 + 30000);
    lash_tz_free(&tz);
}

Test(cron, catch_up_takes_the_latest_missed_firing_only)
{
    lash_cron c = parse_ok("* * * * *");
    int64_t last, skipped;
    lash_err e;
    /* Down from MAR1 (the due firing) to MAR1 + 30 min 20 s: one firing, MAR1 + 30 min. */
    cr_assert_eq(lash_cron_latest(&c, NULL, MAR1, MAR1 + 30 * MIN_MS + 20000, &last, &skipped, &e),
                 LASH_OK);
    cr_assert_eq(last, MAR1 + 30 * MIN_MS);
    cr_assert_eq(skipped, 30);
    /* Nothing due yet in the window. */
    cr_assert_eq(lash_cron_latest(&c, NULL, MAR1 + 1, MAR1 + 59999, &last, &skipped, &e), LASH_OK);
    cr_assert_eq(last, -1);
    /* @every by arithmetic. */
    lash_cron ev = parse_ok("@every 1s");
    cr_assert_eq(lash_cron_latest(&ev, NULL, MAR1, MAR1 + 10500, &last, &skipped, &e), LASH_OK);
    cr_assert_eq(last, MAR1 + 10000);
    cr_assert_eq(skipped, 10);
}

Test(cron, catch_up_after_a_long_downtime_still_finds_the_latest)
{
    lash_cron c = parse_ok("* * * * *");
    int64_t last, skipped;
    lash_err e;
    /* Down a year: the latest is the last whole minute; skipped is a lower bound. */
    int64_t now = MAR1 + 365 * DAY_MS + 90000;
    cr_assert_eq(lash_cron_latest(&c, NULL, MAR1, now, &last, &skipped, &e), LASH_OK);
    cr_assert_eq(last, MAR1 + 365 * DAY_MS + MIN_MS);
    cr_assert_geq(skipped, 10000);
}

/* Past the table (Debian's files end in 2037) the footer's rule holds. */
Test(cron, after_the_last_transition_the_footer_rule_holds)
{
    lash_tz tz = load_zone("Europe/Paris");
    cr_assert(tz.rule && tz.rule_dst, "Paris' footer was not read");
    const int64_t spring = 2216250000LL, autumn = 2234998800LL; /* 2040-03-25/10-28 01:00 UTC */
    cr_assert_eq(lash_tz_offset(&tz, spring - 1), 3600);
    cr_assert_eq(lash_tz_offset(&tz, spring), 7200);
    cr_assert_eq(lash_tz_offset(&tz, autumn - 1), 7200);
    cr_assert_eq(lash_tz_offset(&tz, autumn), 3600);
    /* And the gap of 2040 ends where the rule says. */
    cr_assert_eq(next_of("30 2 * * *", &tz, (spring - 7200) * 1000), spring * 1000);
    lash_tz_free(&tz);
}

/* A file with no transitions and only a footer (zic -b slim): the rule alone. */
Test(cron, a_slim_zone_file_is_its_footer_rule)
{
    static const char footer[] = "\nCET-1CEST,M3.5.0,M10.5.0/3\n";
    unsigned char b[2 * (44 + 6 + 4) + sizeof footer];
    memset(b, 0, sizeof b);
    for (int half = 0; half < 2; half++) {
        unsigned char *h = b + half * (44 + 10);
        memcpy(h, "TZif2", 5);
        h[20 + 19] = 1;                     /* typecnt */
        h[20 + 23] = 4;                     /* charcnt */
        h[44 + 2] = 0x0e, h[44 + 3] = 0x10; /* utoff 3600 */
        memcpy(h + 44 + 6, "CET", 4);
    }
    memcpy(b + 2 * (44 + 10), footer, sizeof footer - 1);
    lash_tz tz;
    lash_err e = {0};
    cr_assert_eq(lash_tz_parse(b, sizeof b - 1, &tz, &e), LASH_OK, "%s", e.msg);
    cr_assert_eq(tz.n, 0);
    cr_assert_eq(lash_tz_offset(&tz, PARIS_SPRING / 1000 - 1), 3600);
    cr_assert_eq(lash_tz_offset(&tz, PARIS_SPRING / 1000), 7200);
    cr_assert_eq(lash_tz_offset(&tz, PARIS_AUTUMN / 1000), 3600);
    lash_tz_free(&tz);
}

/* Zone bytes and specs come from outside: mangled ones are refused or read,
 * never a crash (run under ASan by tests/run.sh). */
Test(cron, mangled_zone_files_and_specs_never_crash)
{
    FILE *f = fopen("/usr/share/zoneinfo/Europe/Paris", "rb");
    cr_assert_not_null(f);
    static unsigned char orig[1 << 16], buf[1 << 16];
    size_t n = fread(orig, 1, sizeof orig, f);
    fclose(f);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < 3000; i++) {
        memcpy(buf, orig, n);
        size_t len = n;
        for (int k = 0; k < 1 + i % 8; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[x % n] = (unsigned char)(x >> 32);
        }
        if (i % 3 == 0) len = (size_t)(x >> 20) % n; /* truncated */
        lash_tz tz;
        lash_err e;
        if (lash_tz_parse(buf, len, &tz, &e) == LASH_OK) {
            lash_cron c = parse_ok("30 2 * * *");
            int64_t out;
            (void)lash_tz_offset(&tz, (int64_t)(x >> 34));
            (void)lash_cron_next(&c, &tz, MAR1 + (int64_t)(x % 1000) * DAY_MS, &out, &e);
            lash_tz_free(&tz);
        }
        char spec[24];
        for (size_t k = 0; k < sizeof spec - 1; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            spec[k] = "0123456789*,-/ @ajnmonsuevry"[x % 28];
        }
        spec[x % (sizeof spec)] = 0;
        spec[sizeof spec - 1] = 0;
        lash_cron c;
        if (lash_cron_parse(spec, &c, &e) == LASH_OK) {
            int64_t out;
            (void)lash_cron_next(&c, NULL, MAR1, &out, &e);
        }
    }
}
