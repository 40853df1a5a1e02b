/* cron.c: cron specs, TZif zones and the next firing (see cron.h). */
#include "proto/cron.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- civil dates (days since 1970-01-01, proleptic Gregorian) --------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

int64_t lash_days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

/* ---- parsing ---------------------------------------------------------------------- */

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

typedef struct {
    const char *what;
    int lo, hi;
    const char *const *names; /* names[i] is lo + i (months: 1.., days: 0..) */
    int nnames;
} field_def;

static const field_def fields[5] = {
    {"minute", 0, 59, NULL, 0},          {"hour", 0, 23, NULL, 0},
    {"day of month", 1, 31, NULL, 0},    {"month", 1, 12, month_names, 12},
    {"day of week", 0, 7, day_names, 7},
};

/* A number or a name at *p; advances *p. */
static bool value(const char **p, const field_def *f, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        long v = 0;
        while (isdigit((unsigned char)*s) && v < 1000)
            v = v * 10 + (*s++ - '0');
        if (isdigit((unsigned char)*s)) return false;
        *out = (int)v;
        *p = s;
        return true;
    }
    for (int i = 0; i < f->nnames; i++)
        if (strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char)s[3])) {
            *out = f->nnames == 12 ? i + 1 : i;
            *p = s + 3;
            return true;
        }
    return false;
}

/* One field (len bytes at s) into bits; *any when it starts with '*'. */
static lash_status parse_field(const char *s, size_t len, const field_def *f, uint64_t *bits,
                               bool *any, lash_err *e)
{
    char buf[LASH_CRON_SPEC_MAX + 1];
    memcpy(buf, s, len);
    buf[len] = 0;
    *bits = 0;
    *any = buf[0] == '*';
    const char *p = buf;
    for (;;) {
        int a, b, step = 1;
        bool single = false;
        if (*p == '*') {
            a = f->lo;
            b = f->hi;
            p++;
        } else {
            if (!value(&p, f, &a))
                return lash_fail(e, LASH_EINVAL, "cron %s: '%s' is not a number, a name or *",
                                 f->what, buf);
            b = a;
            single = *p != '-';
            if (*p == '-') {
                p++;
                if (!value(&p, f, &b))
                    return lash_fail(e, LASH_EINVAL, "cron %s: bad range in '%s'", f->what, buf);
            }
        }
        if (*p == '/') {
            p++;
            const char *q = p;
            if (!value(&p, &fields[0], &step) || p == q || step < 1 || step > f->hi)
                return lash_fail(e, LASH_EINVAL, "cron %s: bad step in '%s' (1..%d)", f->what, buf,
                                 f->hi);
            if (single) b = f->hi; /* N/STEP: from N to the end */
        }
        if (a < f->lo || b > f->hi)
            return lash_fail(e, LASH_EINVAL, "cron %s: %d is outside %d-%d", f->what,
                             a < f->lo ? a : b, f->lo, f->hi);
        if (a > b)
            return lash_fail(e, LASH_EINVAL, "cron %s: range %d-%d is backwards", f->what, a, b);
        for (int v = a; v <= b; v += step)
            *bits |= 1ULL << (f->nnames == 7 && v == 7 ? 0 : v);
        if (*p == ',') {
            p++;
            continue;
        }
        if (*p)
            return lash_fail(e, LASH_EINVAL, "cron %s: unexpected '%c' in '%s'", f->what, *p, buf);
        return LASH_OK;
    }
}

static lash_status parse_every(const char *s, lash_cron *c, lash_err *e)
{
    while (*s == ' ')
        s++;
    char *end;
    if (!isdigit((unsigned char)*s)) goto bad;
    long long n = strtoll(s, &end, 10);
    int64_t unit = *end == 's' ? 1000 : *end == 'm' ? 60000 : *end == 'h' ? 3600000 : 0;
    if (!unit || end[1] || n < 1 || n > 8760LL * 3600) goto bad;
    c->every_ms = n * unit;
    if (c->every_ms > 8760LL * 3600000) goto bad;
    return LASH_OK;
bad:
    return lash_fail(e, LASH_EINVAL, "@every wants N followed by s, m or h (1s .. 8760h), got '%s'",
                     s);
}

lash_status lash_cron_parse(const char *spec, lash_cron *c, lash_err *e)
{
    static const struct {
        const char *name, *as;
    } macros[] = {{"@hourly", "0 * * * *"},  {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
                  {"@weekly", "0 0 * * 0"},  {"@monthly", "0 0 1 * *"}, {"@yearly", "0 0 1 1 *"},
                  {"@annually", "0 0 1 1 *"}};
    memset(c, 0, sizeof *c);
    if (!spec || !*spec) return lash_fail(e, LASH_EINVAL, "cron spec is empty");
    if (strlen(spec) > LASH_CRON_SPEC_MAX)
        return lash_fail(e, LASH_EINVAL, "cron spec is over %d bytes", LASH_CRON_SPEC_MAX);
    if (strncmp(spec, "@every ", 7) == 0) return parse_every(spec + 7, c, e);
    if (spec[0] == '@') {
        for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
            if (strcmp(spec, macros[i].name) == 0) return lash_cron_parse(macros[i].as, c, e);
        return lash_fail(e, LASH_EINVAL,
                         "unknown cron shortcut '%s' (@every N[smh], @hourly, @daily, @weekly, "
                         "@monthly, @yearly)",
                         spec);
    }
    const char *p = spec;
    uint64_t bits[5];
    bool any[5];
    for (int i = 0; i < 5; i++) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *s = p;
        while (*p && *p != ' ' && *p != '\t')
            p++;
        if (p == s)
            return lash_fail(e, LASH_EINVAL,
                             "cron spec '%s' has %d fields, wants 5: minute hour day-of-month "
                             "month day-of-week",
                             spec, i);
        lash_status st = parse_field(s, (size_t)(p - s), &fields[i], &bits[i], &any[i], e);
        if (st) return st;
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return lash_fail(e, LASH_EINVAL,
                         "cron spec '%s' has more than 5 fields: minute hour day-of-month month "
                         "day-of-week",
                         spec);
    c->minute = bits[0];
    c->hour = (uint32_t)bits[1];
    c->mday = (uint32_t)bits[2];
    c->month = (uint16_t)bits[3];
    c->wday = (uint8_t)bits[4];
    c->mday_any = any[2];
    c->wday_any = any[4];
    return LASH_OK;
}

/* ---- zones ---------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

/* ---- POSIX TZ strings (a TZif footer) --------------------------------------- */

static bool tzs_name(const char **p)
{
    const char *s = *p;
    if (*s == '<') {
        const char *q = strchr(s, '>');
        if (!q || q - s < 4) return false;
        *p = q + 1;
        return true;
    }
    while (isalpha((unsigned char)*s))
        s++;
    if (s - *p < 3) return false;
    *p = s;
    return true;
}

static bool tzs_num(const char **p, int max, int *out)
{
    if (!isdigit((unsigned char)**p)) return false;
    int v = 0;
    while (isdigit((unsigned char)**p)) {
        v = v * 10 + (*(*p)++ - '0');
        if (v > max) return false;
    }
    *out = v;
    return true;
}

/* [+-]hh[:mm[:ss]] into seconds. */
static bool tzs_hms(const char **p, int max_h, int32_t *out)
{
    int sign = 1, h, m = 0, sec = 0;
    if (**p == '+' || **p == '-') sign = *(*p)++ == '-' ? -1 : 1;
    if (!tzs_num(p, max_h, &h)) return false;
    if (**p == ':') {
        (*p)++;
        if (!tzs_num(p, 59, &m)) return false;
        if (**p == ':') {
            (*p)++;
            if (!tzs_num(p, 59, &sec)) return false;
        }
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    return true;
}

static bool tzs_day(const char **p, lash_tz_day *d)
{
    memset(d, 0, sizeof *d);
    d->time = 7200;
    if (**p == 'M') {
        (*p)++;
        d->kind = 'M';
        if (!tzs_num(p, 12, &d->m) || d->m < 1 || *(*p)++ != '.' || !tzs_num(p, 5, &d->w) ||
            d->w < 1 || *(*p)++ != '.' || !tzs_num(p, 6, &d->d))
            return false;
    } else if (**p == 'J') {
        (*p)++;
        d->kind = 'J';
        if (!tzs_num(p, 365, &d->n) || d->n < 1) return false;
    } else {
        d->kind = 'D';
        if (!tzs_num(p, 365, &d->n)) return false;
    }
    if (**p == '/') {
        (*p)++;
        if (!tzs_hms(p, 167, &d->time)) return false;
    }
    return true;
}

/* std offset [dst [offset] ,start[/time],end[/time]]; POSIX offsets are west
 * of UTC, so "CET-1" is an hour east. */
static bool tzs_parse(const char *s, lash_tz *tz)
{
    int32_t v;
    if (!tzs_name(&s) || !tzs_hms(&s, 24, &v)) return false;
    tz->std_off = -v;
    tz->rule_dst = false;
    if (!*s) return true;
    if (!tzs_name(&s)) return false;
    tz->dst_off = tz->std_off + 3600;
    if (*s && *s != ',') {
        if (!tzs_hms(&s, 24, &v)) return false;
        tz->dst_off = -v;
    }
    /* Without a rule POSIX leaves the dates to the implementation: refuse. */
    if (*s++ != ',' || !tzs_day(&s, &tz->start) || *s++ != ',' || !tzs_day(&s, &tz->end) || *s)
        return false;
    tz->rule_dst = true;
    return true;
}

/* The UTC second a rule's day and time falls on in year y; off: the offset
 * in force before it. */
static int64_t rule_at(const lash_tz_day *d, int64_t y, int32_t off)
{
    int64_t jan1 = lash_days_from_civil(y, 1, 1), day;
    if (d->kind == 'J') {
        bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        day = jan1 + d->n - 1 + (leap && d->n >= 60);
    } else if (d->kind == 'D') {
        day = jan1 + d->n;
    } else {
        int64_t first = lash_days_from_civil(y, d->m, 1);
        int64_t dim =
            lash_days_from_civil(d->m == 12 ? y + 1 : y, d->m == 12 ? 1 : d->m + 1, 1) - first;
        int wd1 = (int)(first + 4 - floor_div(first + 4, 7) * 7);
        day = first + (d->d - wd1 + 7) % 7 + (int64_t)(d->w - 1) * 7;
        while (day - first >= dim)
            day -= 7;
    }
    return day * 86400 + d->time - off;
}

static int64_t rule_year(const lash_tz *tz, int64_t t)
{
    int64_t y;
    int m, d;
    civil_from_days(floor_div(t + tz->std_off, 86400), &y, &m, &d);
    return y;
}

static int32_t rule_offset(const lash_tz *tz, int64_t t)
{
    if (!tz->rule_dst) return tz->std_off;
    int64_t y = rule_year(tz, t);
    int64_t s = rule_at(&tz->start, y, tz->std_off), en = rule_at(&tz->end, y, tz->dst_off);
    bool dst = s < en ? t >= s && t < en : t >= s || t < en; /* south: DST spans New Year */
    return dst ? tz->dst_off : tz->std_off;
}

void lash_tz_free(lash_tz *tz)
{
    if (!tz) return;
    free(tz->at);
    free(tz->off);
    memset(tz, 0, sizeof *tz);
}

lash_status lash_tz_parse(const void *bytes, size_t len, lash_tz *tz, lash_err *e)
{
    const unsigned char *b = bytes;
    memset(tz, 0, sizeof *tz);
    if (!b || len < 44 || memcmp(b, "TZif", 4) != 0)
        return lash_fail(e, LASH_EINVAL, "zone file is not TZif (no 'TZif' header)");
    int tsize = 4;
    size_t pos = 0;
    for (int pass = 0; pass < 2; pass++) {
        if (len - pos < 44 || memcmp(b + pos, "TZif", 4) != 0)
            return lash_fail(e, LASH_EINVAL, "zone file is truncated (header at %zu)", pos);
        const unsigned char *h = b + pos + 20;
        uint32_t isut = be32(h), isstd = be32(h + 4), leap = be32(h + 8), timecnt = be32(h + 12),
                 typecnt = be32(h + 16), charcnt = be32(h + 20);
        if (timecnt > 100000 || typecnt > 256 || charcnt > 65536 || leap > 10000 || isut > 256 ||
            isstd > 256)
            return lash_fail(e, LASH_EINVAL, "zone file has implausible counts");
        size_t body = (size_t)timecnt * (size_t)tsize + timecnt + (size_t)typecnt * 6 + charcnt +
                      (size_t)leap * (size_t)(tsize + 4) + isstd + isut;
        if (len - pos - 44 < body) return lash_fail(e, LASH_EINVAL, "zone file is truncated");
        if (pass == 0 && b[4] >= '2') { /* skip the 32-bit block: the 64-bit one follows */
            pos += 44 + body;
            tsize = 8;
            continue;
        }
        if (leap)
            return lash_fail(e, LASH_EINVAL,
                             "zone file counts leap seconds (a right/ zone): use the plain one");
        if (typecnt == 0) return lash_fail(e, LASH_EINVAL, "zone file has no local time types");
        const unsigned char *t = b + pos + 44, *idx = t + (size_t)timecnt * (size_t)tsize,
                            *types = idx + timecnt;
        tz->at = malloc((timecnt ? timecnt : 1) * sizeof *tz->at);
        tz->off = malloc((timecnt ? timecnt : 1) * sizeof *tz->off);
        if (!tz->at || !tz->off) {
            lash_tz_free(tz);
            return lash_fail(e, LASH_ENOMEM, "out of memory");
        }
        for (uint32_t i = 0; i < timecnt; i++) {
            tz->at[i] = tsize == 8 ? be64(t + 8 * i) : (int32_t)be32(t + 4 * i);
            if (idx[i] >= typecnt || (i && tz->at[i] <= tz->at[i - 1])) {
                lash_tz_free(tz);
                return lash_fail(e, LASH_EINVAL, "zone file has a bad transition at %u", i);
            }
            int32_t off = (int32_t)be32(types + 6 * idx[i]);
            if (off < -26 * 3600 || off > 26 * 3600) {
                lash_tz_free(tz);
                return lash_fail(e, LASH_EINVAL, "zone file has an offset beyond 26 h");
            }
            tz->off[i] = off;
        }
        tz->n = timecnt;
        tz->off0 = (int32_t)be32(types);
        if (tz->off0 < -26 * 3600 || tz->off0 > 26 * 3600) {
            lash_tz_free(tz);
            return lash_fail(e, LASH_EINVAL, "zone file has an offset beyond 26 h");
        }
        /* Version 2+: "\n<POSIX TZ>\n" after the 64-bit block. A footer lash
         * cannot read leaves the last offset in force (rule false). */
        size_t end = pos + 44 + body;
        if (tsize == 8 && end < len && b[end] == '\n') {
            const unsigned char *nl = memchr(b + end + 1, '\n', len - end - 1);
            char footer[128];
            size_t flen = nl ? (size_t)(nl - (b + end + 1)) : 0;
            if (nl && flen > 0 && flen < sizeof footer) {
                memcpy(footer, b + end + 1, flen);
                footer[flen] = 0;
                tz->rule = tzs_parse(footer, tz);
            }
        }
        return LASH_OK;
    }
    return LASH_OK;
}

/* Index of the last transition at or before t, or -1. */
static ptrdiff_t tz_find(const lash_tz *tz, int64_t t)
{
    size_t lo = 0, hi = tz->n; /* first with at > t */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->at[mid] <= t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (ptrdiff_t)lo - 1;
}

int32_t lash_tz_offset(const lash_tz *tz, int64_t t)
{
    if (!tz) return 0;
    if (tz->rule && (tz->n == 0 || t >= tz->at[tz->n - 1])) return rule_offset(tz, t);
    ptrdiff_t i = tz_find(tz, t);
    return i < 0 ? tz->off0 : tz->off[i];
}

/* The first transition after t (the table's, then the rule's), or INT64_MAX. */
static int64_t tz_next_transition(const lash_tz *tz, int64_t t)
{
    ptrdiff_t i = tz_find(tz, t);
    if ((size_t)(i + 1) < tz->n) return tz->at[i + 1];
    if (!tz->rule || !tz->rule_dst) return INT64_MAX;
    int64_t best = INT64_MAX, y = rule_year(tz, t);
    for (int64_t yy = y - 1; yy <= y + 1; yy++) {
        int64_t s = rule_at(&tz->start, yy, tz->std_off), en = rule_at(&tz->end, yy, tz->dst_off);
        if (s > t && s < best) best = s;
        if (en > t && en < best) best = en;
    }
    return best;
}

lash_status lash_tz_name_check(const char *name, lash_err *e)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0) return lash_fail(e, LASH_EINVAL, "time zone is empty");
    if (len > LASH_TZ_NAME_MAX)
        return lash_fail(e, LASH_EINVAL, "time zone is over %d bytes", LASH_TZ_NAME_MAX);
    bool start = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c == '/') {
            if (start) return lash_fail(e, LASH_EINVAL, "time zone '%s' has an empty part", name);
            start = true;
            continue;
        }
        if (!isalnum(c) && c != '_' && c != '+' && c != '-')
            return lash_fail(e, LASH_EINVAL,
                             "time zone '%s' has byte 0x%02x: allowed are A-Z a-z 0-9 _ + - /",
                             name, c);
        start = false;
    }
    if (start) return lash_fail(e, LASH_EINVAL, "time zone '%s' ends with '/'", name);
    return LASH_OK;
}

lash_status lash_sched_name_check(const char *name, lash_err *e)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0) return lash_fail(e, LASH_EINVAL, "schedule name is empty");
    if (len > LASH_SCHED_NAME_MAX)
        return lash_fail(e, LASH_EINVAL, "schedule name is %zu bytes, over %d", len,
                         LASH_SCHED_NAME_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return lash_fail(e, LASH_EINVAL,
                             "schedule name has byte 0x%02x at %zu: allowed are A-Z a-z 0-9 . _ -",
                             c, i);
    }
    return LASH_OK;
}

/* ---- the next firing ----------------------------------------------------------- */

#define TEN_YEARS_S (3653LL * 86400)

static bool day_ok(const lash_cron *c, int d, int wd)
{
    bool dm = c->mday >> d & 1, dw = c->wday >> wd & 1;
    return c->mday_any || c->wday_any ? dm && dw : dm || dw;
}

/* The first whole minute after t (wall-clock seconds) whose fields match. */
static bool naive_next(const lash_cron *c, int64_t t, int64_t *out)
{
    int64_t limit = t + TEN_YEARS_S;
    t = floor_div(t, 60) * 60 + 60;
    while (t < limit) {
        int64_t days = floor_div(t, 86400), secs = t - days * 86400, y;
        int m, d;
        civil_from_days(days, &y, &m, &d);
        if (!(c->month >> m & 1)) {
            t = lash_days_from_civil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * 86400;
            continue;
        }
        if (!day_ok(c, d, (int)(days + 4 - floor_div(days + 4, 7) * 7))) { /* 1970-01-01: Thu */
            t = (days + 1) * 86400;
            continue;
        }
        int h = (int)(secs / 3600);
        if (!(c->hour >> h & 1)) {
            t = days * 86400 + (h + 1) * 3600;
            continue;
        }
        int mi = (int)(secs % 3600 / 60);
        if (!(c->minute >> mi & 1)) {
            t += 60;
            continue;
        }
        *out = t;
        return true;
    }
    return false;
}

/* The UTC second a wall time L fires at: its first occurrence, or the end of
 * the gap that skips it. Assumes at most one transition within a day of L. */
static int64_t wall_to_utc(const lash_tz *tz, int64_t L)
{
    if (!tz) return L;
    int32_t oa = lash_tz_offset(tz, L - 86400), ob = lash_tz_offset(tz, L + 86400);
    int64_t best = INT64_MAX;
    if (lash_tz_offset(tz, L - oa) == oa) best = L - oa;
    if (ob != oa && lash_tz_offset(tz, L - ob) == ob && L - ob < best) best = L - ob;
    if (best != INT64_MAX) return best;
    int64_t from = L - (oa > ob ? oa : ob); /* in the gap: the transition after this */
    int64_t at = tz_next_transition(tz, from);
    return at != INT64_MAX ? at : L - oa;
}

/* Firings in order: wall times that match, mapped to UTC, each instant once. */
typedef struct {
    const lash_cron *c;
    const lash_tz *tz;
    int64_t wall, last;
} walk;

/* Starts so that the first step is the first firing after after_s or earlier. */
static void walk_start(walk *w, const lash_cron *c, const lash_tz *tz, int64_t after_s)
{
    w->c = c;
    w->tz = tz;
    /* Offsets are within 26 h: a wall time 26 h before covers every zone. */
    w->wall = tz ? after_s + lash_tz_offset(tz, after_s) - 26 * 3600 : after_s;
    w->last = INT64_MIN;
}

static bool walk_step(walk *w, int64_t *u)
{
    for (;;) {
        if (!naive_next(w->c, w->wall, &w->wall)) return false;
        int64_t v = wall_to_utc(w->tz, w->wall);
        if (v > w->last) {
            w->last = *u = v;
            return true;
        }
    }
}

lash_status lash_cron_next(const lash_cron *c, const lash_tz *tz, int64_t after_ms, int64_t *out,
                           lash_err *e)
{
    if (c->every_ms > 0) {
        *out = (floor_div(after_ms, c->every_ms) + 1) * c->every_ms;
        return LASH_OK;
    }
    walk w;
    int64_t after_s = floor_div(after_ms, 1000), u;
    walk_start(&w, c, tz, after_s);
    while (walk_step(&w, &u))
        if (u * 1000 > after_ms) {
            *out = u * 1000;
            return LASH_OK;
        }
    return lash_fail(e, LASH_EINVAL, "the cron spec never fires within ten years");
}

lash_status lash_cron_latest(const lash_cron *c, const lash_tz *tz, int64_t from_ms, int64_t now_ms,
                             int64_t *out, int64_t *skipped, lash_err *e)
{
    (void)e;
    *out = -1;
    *skipped = 0;
    if (from_ms > now_ms) return LASH_OK;
    if (c->every_ms > 0) {
        int64_t last = floor_div(now_ms, c->every_ms) * c->every_ms;
        int64_t first = -floor_div(-from_ms, c->every_ms) * c->every_ms; /* ceil */
        if (last >= from_ms) {
            *out = last;
            *skipped = (last - first) / c->every_ms;
        }
        return LASH_OK;
    }
    walk w;
    int64_t u, steps = 0;
    walk_start(&w, c, tz, floor_div(from_ms - 1, 1000));
    while (walk_step(&w, &u)) {
        if (u * 1000 < from_ms || u * 1000 <= *out) continue;
        if (u * 1000 > now_ms) break;
        if (*out >= 0) ++*skipped;
        *out = u * 1000;
        if (++steps == 10000 && u * 1000 < now_ms - 86400000) /* long down: the last day */
            walk_start(&w, c, tz, floor_div(now_ms - 86400000, 1000));
    }
    return LASH_OK;
}
