/* cron.h: recurring schedules' times: a cron spec, a time zone, the next firing.
 *
 * Pure: no clock and no files. A spec is standard 5-field cron
 *   minute hour day-of-month month day-of-week
 * each field a list of `*`, N, N-M, with an optional /STEP (`*`/15, 1-30/5,
 * 10/20 = 10..max step 20); months JAN..DEC and days SUN..SAT by name (any
 * case); day-of-week 0..7 (0 and 7 are Sunday). As in Vixie cron, when both
 * day fields are restricted a day matches either; when one is `*`, both must.
 * Shortcuts: @hourly @daily @midnight @weekly @monthly @yearly @annually, and
 * `@every N{s,m,h}` (1 s .. 8760 h): firings at the multiples of the period
 * since the Unix epoch, whatever the zone (so `@every 30s` fires at :00 and :30).
 *
 * A zone is read from TZif bytes (RFC 8536, version 1 to 4; the caller reads
 * the file, e.g. /usr/share/zoneinfo/Europe/Paris); NULL is UTC. Past the
 * file's last transition its footer's POSIX TZ rule holds (the last offset,
 * when a file has none). Cron fields match the zone's wall clock:
 *   - a wall time that happens twice (autumn) fires once, at its first;
 *   - a wall time that a spring-forward skips fires when the gap ends
 *     (02:30 on the night clocks go 02:00 -> 03:00 fires at 03:00 local);
 *   so a daily job runs exactly once a day across DST. @every ignores zones.
 *
 * Ownership: a lash_cron holds no memory; a lash_tz owns its arrays
 * (lash_tz_free, safe on an empty one).
 */
#ifndef LASH_PROTO_CRON_H
#define LASH_PROTO_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/err.h"

/* Longest spec and zone name a schedule keeps. */
#define LASH_CRON_SPEC_MAX 128
#define LASH_TZ_NAME_MAX 64
#define LASH_SCHED_NAME_MAX 64

typedef struct {
    uint64_t minute; /* bit m: minute m (0..59) */
    uint32_t hour;   /* bit h (0..23) */
    uint32_t mday;   /* bit d (1..31) */
    uint16_t month;  /* bit m (1..12) */
    uint8_t wday;    /* bit d (0..6, 0 Sunday) */
    bool mday_any, wday_any;
    int64_t every_ms; /* > 0: an @every schedule, the fields unused */
} lash_cron;

lash_status lash_cron_parse(const char *spec, lash_cron *c, lash_err *e);

/* A day of a POSIX TZ rule: kind 'M' (month m, week w 1..5, 5 = last, weekday
 * d), 'J' (day n 1..365, February 29 never counted) or 'D' (day n 0..365); at
 * time seconds of local time (-167 h .. 167 h). */
typedef struct {
    char kind;
    int m, w, d, n;
    int32_t time;
} lash_tz_day;

typedef struct {
    size_t n;     /* transitions */
    int64_t *at;  /* n transition times, UTC seconds, ascending */
    int32_t *off; /* n offsets in effect from each */
    int32_t off0; /* before the first (or always, when n == 0) */
    /* The file's footer (a POSIX TZ string such as CET-1CEST,M3.5.0,M10.5.0/3),
     * which holds after the last transition; rule false: the last offset holds. */
    bool rule, rule_dst;
    int32_t std_off, dst_off;
    lash_tz_day start, end;
} lash_tz;

/* Parses TZif bytes. On error *tz is left empty. */
lash_status lash_tz_parse(const void *bytes, size_t len, lash_tz *tz, lash_err *e);
void lash_tz_free(lash_tz *tz);
/* Seconds east of UTC at UTC second t (tz NULL: 0). */
int32_t lash_tz_offset(const lash_tz *tz, int64_t t);
/* A zone name as the tz database spells them (Europe/Paris, UTC, Etc/GMT+3):
 * letters, digits, _ + - in parts joined by '/', no part starting with '.'. */
lash_status lash_tz_name_check(const char *name, lash_err *e);
/* A schedule name: A-Z a-z 0-9 . _ - , 1..LASH_SCHED_NAME_MAX bytes. */
lash_status lash_sched_name_check(const char *name, lash_err *e);

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1..12): calendar
 * arithmetic with no libc time zone state (H. Hinnant's algorithm). */
int64_t lash_days_from_civil(int64_t y, int m, int d);

/* The first firing strictly after after_ms (UTC ms). LASH_EINVAL when there is
 * none within ten years (a spec such as 30 February). */
lash_status lash_cron_next(const lash_cron *c, const lash_tz *tz, int64_t after_ms, int64_t *out,
                           lash_err *e);

/* The catch-up rule: the latest firing in [from_ms, now_ms], or -1 when none;
 * *skipped counts the firings in that window before it (not run): exact up to
 * 10,000, beyond that a lower bound (the walk then jumps to the last day). */
lash_status lash_cron_latest(const lash_cron *c, const lash_tz *tz, int64_t from_ms, int64_t now_ms,
                             int64_t *out, int64_t *skipped, lash_err *e);

#endif
