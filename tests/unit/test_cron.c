/* Tests for cron expressions: a table of next fire times (syntax forms, month ends, leap days,
 * the day-of-month/day-of-week OR rule, macros, DST gaps and repeats in Berlin, New York and
 * UTC), exact parse errors, long chains of next() through a DST year, and a brute-force check
 * that walks DST weeks minute by minute and compares every fire time. Expected times are UTC,
 * so they are unambiguous. */
#include "snapback/cron.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test.h"

#define BERLIN "Europe/Berlin"
#define NEW_YORK "America/New_York"

/* Sets TZ to ":zone" (or unsets it for NULL); returns the previous value (caller frees) and
 * whether there was one. */
static char *
tz_push(const char *zone, bool *had)
{
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    *had = old != NULL;
    if (zone) {
        char value[300];
        snprintf(value, sizeof(value), ":%s", zone);
        setenv("TZ", value, 1);
    } else {
        unsetenv("TZ");
    }
    tzset();
    return saved;
}

static void
tz_pop(char *saved, bool had)
{
    if (had)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
}

/* "YYYY-MM-DDTHH:MM[:SS]Z" is UTC; "YYYY-MM-DD HH:MM" is local time in zone (never a time in a
 * gap or a repeat, which would be ambiguous). */
static time_t
test_time(const char *text, const char *zone)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    size_t len = strlen(text);
    if (len > 0 && text[len - 1] == 'Z') {
        if (sscanf(text, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &tm.tm_sec) < 5)
            abort();
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return timegm(&tm);
    }
    if (sscanf(text, "%d-%d-%d %d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min) != 5)
        abort();
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;
    bool had;
    char *saved = tz_push(zone, &had);
    time_t t = mktime(&tm);
    tz_pop(saved, had);
    return t;
}

static const char *
iso(time_t t, char *buf, size_t size)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static const struct next_case {
    const char *expr;
    const char *tz;
    const char *from; /* UTC with 'Z', else local time in tz */
    const char *want; /* UTC */
} next_cases[] = {
    {"* * * * *", "UTC", "2026-01-15 10:20", "2026-01-15T10:21:00Z"},
    {"* * * * *", "UTC", "2026-01-15T10:20:30Z", "2026-01-15T10:21:00Z"},
    {"5 * * * *", "UTC", "2026-01-15 10:20", "2026-01-15T11:05:00Z"},
    {"5 * * * *", "UTC", "2026-01-15 10:05", "2026-01-15T11:05:00Z"},
    {"*/15 * * * *", "UTC", "2026-01-15 10:20", "2026-01-15T10:30:00Z"},
    {"*/15 * * * *", "UTC", "2026-01-15 10:50", "2026-01-15T11:00:00Z"},
    {"10-20/5 * * * *", "UTC", "2026-01-15 10:16", "2026-01-15T10:20:00Z"},
    {"10-20/5 * * * *", "UTC", "2026-01-15 10:21", "2026-01-15T11:10:00Z"},
    {"50/4 * * * *", "UTC", "2026-01-15 10:55", "2026-01-15T10:58:00Z"},
    {"50/4 * * * *", "UTC", "2026-01-15 10:58", "2026-01-15T11:50:00Z"},
    {"0,15-17,*/20 * * * *", "UTC", "2026-01-15 10:17", "2026-01-15T10:20:00Z"},
    {"0,15-17,*/20 * * * *", "UTC", "2026-01-15 10:40", "2026-01-15T11:00:00Z"},
    {"0 9-17 * * *", "UTC", "2026-01-15 17:30", "2026-01-16T09:00:00Z"},
    {"30 */6 * * *", "UTC", "2026-01-15 18:30", "2026-01-16T00:30:00Z"},
    {"0 0 31 * *", "UTC", "2026-04-01 00:00", "2026-05-31T00:00:00Z"},
    {"0 0 30 * *", "UTC", "2026-01-30 00:00", "2026-03-30T00:00:00Z"},
    {"0 0 31 * *", "UTC", "2026-01-31 00:00", "2026-03-31T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2026-01-01 00:00", "2028-02-29T00:00:00Z"},
    {"0 0 29 2 *", "UTC", "2028-02-29 00:00", "2032-02-29T00:00:00Z"},
    {"0 12 28-31 2 *", "UTC", "2028-02-28 12:00", "2028-02-29T12:00:00Z"},
    {"0 12 28-31 2 *", "UTC", "2027-02-28 12:00", "2028-02-28T12:00:00Z"},
    {"0 0 1 jan,JUL *", "UTC", "2026-02-01 00:00", "2026-07-01T00:00:00Z"},
    {"0 0 1 Mar-May *", "UTC", "2026-05-02 00:00", "2027-03-01T00:00:00Z"},
    {"0 0 1 */3 *", "UTC", "2026-05-01 00:00", "2026-07-01T00:00:00Z"},
    {"0 8 * * mon-fri", "UTC", "2026-01-16 09:00", "2026-01-19T08:00:00Z"},
    {"0 8 * * 7", "UTC", "2026-01-16 09:00", "2026-01-18T08:00:00Z"},
    {"0 8 * * 0", "UTC", "2026-01-16 09:00", "2026-01-18T08:00:00Z"},
    {"0 8 * * 5-7", "UTC", "2026-01-18 09:00", "2026-01-23T08:00:00Z"},
    {"0 8 * * SUN", "UTC", "2026-01-16 09:00", "2026-01-18T08:00:00Z"},
    {"0 8 * * fri/2", "UTC", "2026-01-16 09:00", "2026-01-18T08:00:00Z"},
    {"0 0 13 * fri", "UTC", "2026-02-01 00:00", "2026-02-06T00:00:00Z"},
    {"0 0 13 * fri", "UTC", "2026-04-10 00:00", "2026-04-13T00:00:00Z"},
    {"0 0 13 * *", "UTC", "2026-04-10 00:00", "2026-04-13T00:00:00Z"},
    {"0 0 */2 * mon", "UTC", "2026-01-05 00:00", "2026-01-19T00:00:00Z"},
    {"0 0 1 * */7", "UTC", "2026-03-01 00:00", "2026-11-01T00:00:00Z"},
    {"0 0 1 1 *", "UTC", "2026-12-31 23:59", "2027-01-01T00:00:00Z"},
    {"59 23 31 12 *", "UTC", "2026-12-31 23:59", "2027-12-31T23:59:00Z"},
    {"@hourly", "UTC", "2026-01-15 10:20", "2026-01-15T11:00:00Z"},
    {"@daily", "UTC", "2026-01-15 10:20", "2026-01-16T00:00:00Z"},
    {"@midnight", "UTC", "2026-01-15 10:20", "2026-01-16T00:00:00Z"},
    {"@weekly", "UTC", "2026-01-15 10:20", "2026-01-18T00:00:00Z"},
    {"@monthly", "UTC", "2026-01-15 10:20", "2026-02-01T00:00:00Z"},
    {"@yearly", "UTC", "2026-01-15 10:20", "2027-01-01T00:00:00Z"},
    {"@annually", "UTC", "2026-01-15 10:20", "2027-01-01T00:00:00Z"},
    {"  0\t12  * *   * ", "UTC", "2026-01-15 10:20", "2026-01-15T12:00:00Z"},
    {"0 0 * * *", "Europe/Berlin", "2026-12-31 12:00", "2026-12-31T23:00:00Z"},
    {"0 9 * * *", "Europe/Berlin", "2026-07-01 10:00", "2026-07-02T07:00:00Z"},
    {"0 9 * * *", "America/New_York", "2026-01-01 10:00", "2026-01-02T14:00:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2026-03-28 12:00", "2026-03-29T01:00:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2026-03-29T01:00Z", "2026-03-30T00:30:00Z"},
    {"0 2 * * *", "Europe/Berlin", "2026-03-28 12:00", "2026-03-29T01:00:00Z"},
    {"0,30 1-3 * * *", "Europe/Berlin", "2026-03-29 01:30", "2026-03-29T01:00:00Z"},
    {"0,30 1-3 * * *", "Europe/Berlin", "2026-03-29T01:00Z", "2026-03-29T01:30:00Z"},
    {"30 3 * * *", "Europe/Berlin", "2026-03-29 00:00", "2026-03-29T01:30:00Z"},
    {"30 * * * *", "Europe/Berlin", "2026-03-29 01:45", "2026-03-29T01:30:00Z"},
    {"0 */2 * * *", "Europe/Berlin", "2026-03-29 00:30", "2026-03-29T02:00:00Z"},
    {"*/15 * * * *", "Europe/Berlin", "2026-03-29 01:50", "2026-03-29T01:00:00Z"},
    {"0 * * * *", "Europe/Berlin", "2026-03-29 01:30", "2026-03-29T01:00:00Z"},
    {"* 2 * * *", "Europe/Berlin", "2026-03-29 01:59", "2026-03-30T00:00:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2026-10-25 00:00", "2026-10-25T00:30:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2026-10-25T00:30Z", "2026-10-26T01:30:00Z"},
    {"30 2 * * *", "Europe/Berlin", "2026-10-25T01:10Z", "2026-10-26T01:30:00Z"},
    {"45 2 * * *", "Europe/Berlin", "2026-10-25T00:30Z", "2026-10-25T00:45:00Z"},
    {"0 2,3 * * *", "Europe/Berlin", "2026-10-25T00:00Z", "2026-10-25T02:00:00Z"},
    {"0 * * * *", "Europe/Berlin", "2026-10-25T00:30Z", "2026-10-25T01:00:00Z"},
    {"0 * * * *", "Europe/Berlin", "2026-10-25T01:00Z", "2026-10-25T02:00:00Z"},
    {"*/15 * * * *", "Europe/Berlin", "2026-10-25T00:50Z", "2026-10-25T01:00:00Z"},
    {"30 * * * *", "Europe/Berlin", "2026-10-25T01:10Z", "2026-10-25T01:30:00Z"},
    {"*/20 2 * * *", "Europe/Berlin", "2026-10-25T00:50Z", "2026-10-25T01:00:00Z"},
    {"30 2 * * *", "America/New_York", "2026-03-07 12:00", "2026-03-08T07:00:00Z"},
    {"30 2 * * *", "America/New_York", "2026-03-08T07:00Z", "2026-03-09T06:30:00Z"},
    {"0 2 * * sun", "America/New_York", "2026-03-01 03:00", "2026-03-08T07:00:00Z"},
    {"30 * * * *", "America/New_York", "2026-03-08 01:45", "2026-03-08T07:30:00Z"},
    {"*/15 * * * *", "America/New_York", "2026-03-08 01:50", "2026-03-08T07:00:00Z"},
    {"30 1 * * *", "America/New_York", "2026-10-31 12:00", "2026-11-01T05:30:00Z"},
    {"30 1 * * *", "America/New_York", "2026-11-01T05:30Z", "2026-11-02T06:30:00Z"},
    {"30 1 * * *", "America/New_York", "2026-11-01T06:10Z", "2026-11-02T06:30:00Z"},
    {"30 * * * *", "America/New_York", "2026-11-01T05:30Z", "2026-11-01T06:30:00Z"},
    {"*/15 * * * *", "America/New_York", "2026-11-01T05:50Z", "2026-11-01T06:00:00Z"},
    {"0 * * * *", "America/New_York", "2026-11-01T06:00Z", "2026-11-01T07:00:00Z"},
};

static void
test_next_table(void)
{
    struct sb_error err = SB_ERROR_INIT;
    for (size_t case_idx = 0; case_idx < sizeof(next_cases) / sizeof(next_cases[0]); case_idx++) {
        const struct next_case *c = &next_cases[case_idx];
        struct sb_cron *cron = NULL;
        time_t next = 0;
        char got[32], from_utc[32];
        EXPECT_OK(sb_cron_parse(c->expr, &cron, &err), &err);
        if (!cron)
            continue;
        time_t from = test_time(c->from, c->tz);
        sb_error_clear(&err);
        if (sb_cron_next(cron, from, c->tz, &next, &err) != 0) {
            TEST_FAIL("'%s' in %s after %s: %s", c->expr, c->tz, c->from, err.msg);
        } else if (strcmp(iso(next, got, sizeof(got)), c->want) != 0) {
            TEST_FAIL("'%s' in %s after %s (%s):\n    got  %s\n    want %s", c->expr, c->tz,
                      c->from, iso(from, from_utc, sizeof(from_utc)), got, c->want);
        }
        sb_cron_free(cron);
    }
    EXPECT(sizeof(next_cases) / sizeof(next_cases[0]) >= 45);
}

static const struct bad_case {
    const char *expr;
    const char *msg;
} bad_cases[] = {
    {"", "expected 5 fields, got 0"},
    {" \t ", "expected 5 fields, got 0"},
    {"* * * *", "expected 5 fields, got 4"},
    {"0 0 * * * /bin/true", "expected 5 fields, got 6"},
    {"61 * * * *", "minute field '61': value out of range 0-59"},
    {"99999999999 * * * *", "minute field '99999999999': value out of range 0-59"},
    {"* 24 * * *", "hour field '24': value out of range 0-23"},
    {"* * 0 * *", "day-of-month field '0': value out of range 1-31"},
    {"* * 1-32 * *", "day-of-month field '1-32': value out of range 1-31"},
    {"* * * 13 *", "month field '13': value out of range 1-12"},
    {"* * * * 8", "day-of-week field '8': value out of range 0-7"},
    {"* * * * funday", "day-of-week field 'funday': unknown name"},
    {"* * * * monday", "day-of-week field 'monday': unknown name"},
    {"* * * foo *", "month field 'foo': unknown name"},
    {"mon * * * *", "minute field 'mon': expected a number"},
    {"? * * * *", "minute field '?': expected a number"},
    {"* * * * ?", "day-of-week field '?': expected a number or a name"},
    {"1- * * * *", "minute field '1-': expected a number"},
    {"1-2-3 * * * *", "minute field '1-2-3': unexpected '-3'"},
    {"*5 * * * *", "minute field '*5': unexpected '5'"},
    {"1,,2 * * * *", "minute field '1,,2': empty list item"},
    {"1, * * * *", "minute field '1,': empty list item"},
    {",1 * * * *", "minute field ',1': empty list item"},
    {"* */0 * * *", "hour field '*/0': step must be at least 1"},
    {"*/60 * * * *", "minute field '*/60': step must be at most 59"},
    {"* * * * mon-fri/x", "day-of-week field 'mon-fri/x': step must be a number"},
    {"* * 5-2 * *", "day-of-month field '5-2': range start is after range end"},
    {"* * * * fri-sun", "day-of-week field 'fri-sun': range start is after range end"},
    {"@sometimes", "unknown macro '@sometimes'"},
    {"@reboot", "unknown macro '@reboot'"},
    {"@daily 5", "macro '@daily' cannot be followed by fields"},
};

static void
test_parse_errors(void)
{
    struct sb_error err = SB_ERROR_INIT;
    for (size_t case_idx = 0; case_idx < sizeof(bad_cases) / sizeof(bad_cases[0]); case_idx++) {
        struct sb_cron *cron = (struct sb_cron *)&err; /* must be reset to NULL */
        EXPECT_ERR(sb_cron_parse(bad_cases[case_idx].expr, &cron, &err), &err, SB_E_CONFIG,
                   bad_cases[case_idx].msg);
        EXPECT(cron == NULL);
    }
    struct sb_cron *cron = NULL;
    EXPECT_ERR(sb_cron_parse(NULL, &cron, &err), &err, SB_E_CONFIG, "expected 5 fields, got 0");
    EXPECT(sizeof(bad_cases) / sizeof(bad_cases[0]) >= 12);
}

static void
test_parse_accepts(void)
{
    static const char *const good[] = {
        "0-59 0-23 1-31 1-12 0-7",
        "0/1 0/1 1/1 1/1 0/1",
        "*/59 */23 */31 */12 */7",
        "0 0 * JAN-dec SUN-Sat",
        "@Daily",
        " @hourly\t",
        "5,10,15 1,2 1,15 * 1-5",
    };
    struct sb_error err = SB_ERROR_INIT;
    for (size_t idx = 0; idx < sizeof(good) / sizeof(good[0]); idx++) {
        struct sb_cron *cron = NULL;
        EXPECT_OK(sb_cron_parse(good[idx], &cron, &err), &err);
        EXPECT(cron != NULL);
        sb_cron_free(cron);
    }
    sb_cron_free(NULL);
}

static void
test_next_errors(void)
{
    static const char *const bad_zones[] = {
        "Mars/Olympus",
        "",
        "../../../etc/passwd",
        "Europe/../../etc/passwd",
        "/usr/share/zoneinfo/UTC",
        "Europe",
        "zone.tab",
        ":UTC",
    };
    struct sb_error err = SB_ERROR_INIT;
    struct sb_cron *cron = NULL;
    time_t next = 0;
    char msg[128];
    EXPECT_OK(sb_cron_parse("0 0 * * *", &cron, &err), &err);
    for (size_t idx = 0; idx < sizeof(bad_zones) / sizeof(bad_zones[0]); idx++) {
        snprintf(msg, sizeof(msg), "time zone '%s': unknown", bad_zones[idx]);
        EXPECT_ERR(sb_cron_next(cron, 0, bad_zones[idx], &next, &err), &err, SB_E_CONFIG, msg);
    }
    sb_cron_free(cron);

    static const char *const never[] = {"0 0 30 2 *", "0 0 31 4,6,9,11 *", "0 0 31 2 */7"};
    for (size_t idx = 0; idx < sizeof(never) / sizeof(never[0]); idx++) {
        cron = NULL;
        EXPECT_OK(sb_cron_parse(never[idx], &cron, &err), &err);
        if (!cron)
            continue;
        EXPECT_ERR(sb_cron_next(cron, test_time("2026-01-01T00:00Z", NULL), BERLIN, &next, &err),
                   &err, SB_E_CONFIG, "expression never fires");
        sb_cron_free(cron);
    }
    /* When the day-of-week is restricted too, the OR rule makes it fire: Mondays in February. */
    EXPECT_OK(sb_cron_parse("0 0 30 2 mon", &cron, &err), &err);
    EXPECT_OK(sb_cron_next(cron, test_time("2026-01-01T00:00Z", NULL), "UTC", &next, &err), &err);
    EXPECT_INT(next, test_time("2026-02-02T00:00Z", NULL));
    sb_cron_free(cron);
}

/* tz NULL uses the process's zone; a named zone leaves TZ as it was, set or unset. */
static void
test_local_zone(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_cron *cron = NULL;
    time_t next = 0;
    bool had;
    char *saved = tz_push(BERLIN, &had);

    EXPECT_OK(sb_cron_parse("30 2 * * *", &cron, &err), &err);
    EXPECT_OK(sb_cron_next(cron, test_time("2026-03-28T12:00Z", NULL), NULL, &next, &err), &err);
    EXPECT_INT(next, test_time("2026-03-29T01:00Z", NULL));
    EXPECT_STR(getenv("TZ"), ":" BERLIN);

    EXPECT_OK(sb_cron_next(cron, test_time("2026-03-28T12:00Z", NULL), NEW_YORK, &next, &err),
              &err);
    EXPECT_INT(next, test_time("2026-03-29T06:30Z", NULL));
    EXPECT_STR(getenv("TZ"), ":" BERLIN);
    /* The process's zone is really back, not just the variable. */
    struct tm tm;
    time_t probe = test_time("2026-07-01T00:00Z", NULL);
    localtime_r(&probe, &tm);
    EXPECT_INT(tm.tm_gmtoff, 7200);

    unsetenv("TZ");
    tzset();
    EXPECT_OK(sb_cron_next(cron, 0, NEW_YORK, &next, &err), &err);
    EXPECT(getenv("TZ") == NULL);

    /* A failed call restores TZ too. */
    setenv("TZ", ":" NEW_YORK, 1);
    tzset();
    sb_cron_free(cron);
    cron = NULL;
    EXPECT_OK(sb_cron_parse("0 0 30 2 *", &cron, &err), &err);
    EXPECT_ERR(sb_cron_next(cron, 0, BERLIN, &next, &err), &err, SB_E_CONFIG,
               "expression never fires");
    EXPECT_STR(getenv("TZ"), ":" NEW_YORK);

    sb_cron_free(cron);
    tz_pop(saved, had);
}

/* Iterates next() `count` times from `from`: strictly increasing, every gap within
 * [min_gap, max_gap] seconds; returns how many fires fall before `until`. */
static int
chain(const char *expr, const char *zone, time_t from, int count, time_t min_gap, time_t max_gap,
      time_t until)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_cron *cron = NULL;
    int before_until = 0;
    char buf_a[32], buf_b[32];
    EXPECT_OK(sb_cron_parse(expr, &cron, &err), &err);
    if (!cron)
        return -1;
    time_t t = from;
    for (int iter = 0; iter < count; iter++) {
        time_t next = 0;
        sb_error_clear(&err);
        if (sb_cron_next(cron, t, zone, &next, &err) != 0) {
            TEST_FAIL("'%s' in %s after %s: %s", expr, zone, iso(t, buf_a, sizeof(buf_a)), err.msg);
            break;
        }
        if (next <= t || (iter > 0 && (next - t < min_gap || next - t > max_gap))) {
            TEST_FAIL("'%s' in %s: after %s came %s", expr, zone, iso(t, buf_a, sizeof(buf_a)),
                      iso(next, buf_b, sizeof(buf_b)));
            break;
        }
        if (next < until)
            before_until++;
        t = next;
    }
    sb_cron_free(cron);
    return before_until;
}

static void
test_chains_through_dst(void)
{
    time_t year_start = test_time("2026-01-01 00:00", BERLIN);
    time_t year_end = test_time("2027-01-01 00:00", BERLIN);
    /* Fixed time: once a day all year, 23:43 before the gap day's catch-up run at 03:00 and 25h
     * after the repeat; exactly 365 runs in 2026. */
    EXPECT_INT(chain("17 2 * * *", BERLIN, year_start, 500, 22 * 3600, 26 * 3600, year_end), 365);
    EXPECT_INT(chain("30 1 * * *", NEW_YORK, test_time("2026-01-01 00:00", NEW_YORK), 500,
                     23 * 3600, 25 * 3600, test_time("2027-01-01 00:00", NEW_YORK)),
               365);
    /* Wildcard hours follow real time: every gap exactly one hour / 15 minutes / 2 hours. */
    chain("0 * * * *", BERLIN, test_time("2026-03-28T20:00Z", NULL), 500, 3600, 3600, 0);
    chain("0 * * * *", BERLIN, test_time("2026-10-24T20:00Z", NULL), 500, 3600, 3600, 0);
    chain("*/15 * * * *", NEW_YORK, test_time("2026-03-08T00:00Z", NULL), 500, 900, 900, 0);
    chain("*/15 * * * *", NEW_YORK, test_time("2026-11-01T00:00Z", NULL), 500, 900, 900, 0);
    chain("@hourly", NEW_YORK, test_time("2026-10-31T12:00Z", NULL), 500, 3600, 3600, 0);
    chain("0 */6 * * *", BERLIN, year_start, 500, 5 * 3600, 7 * 3600, 0);
    chain("* * * * *", BERLIN, test_time("2026-10-25T00:30Z", NULL), 500, 60, 60, 0);
}

/* The reference: walk a window minute by minute in the zone. A wildcard job fires at every
 * instant whose local time matches; a fixed-time job fires at the first instant each matching
 * local time occurs, and at the end of a gap that swallowed one. Matching local times come from
 * the cron itself in UTC, where no DST is involved. */
struct window {
    const char *zone;
    const char *start; /* UTC, far from a transition */
};

static const struct window windows[] = {
    {BERLIN, "2026-03-28T10:00Z"},
    {BERLIN, "2026-10-24T10:00Z"},
    {NEW_YORK, "2026-03-07T17:00Z"},
    {NEW_YORK, "2026-10-31T17:00Z"},
    {"Australia/Lord_Howe", "2026-04-04T00:00Z"}, /* 02:00 -> 01:30 */
    {"Australia/Lord_Howe", "2026-10-03T00:00Z"}, /* 02:00 -> 02:30 */
    {"UTC", "2026-03-28T10:00Z"},
};

static const struct {
    const char *expr;
    bool fixed;
} brute_exprs[] = {
    {"30 2 * * *", true},   {"0 2 * * *", true},      {"10 2 * * *", true},
    {"45 1 * * *", true},   {"0,30 1-3 * * *", true}, {"15 2,3 * * *", true},
    {"59 1 * * *", true},   {"@daily", true},         {"*/15 * * * *", false},
    {"0 * * * *", false},   {"30 * * * *", false},    {"*/20 2 * * *", false},
    {"0 */2 * * *", false}, {"*/5 1-3 * * *", false}, {"5 0-4/1 * * *", false},
    {"* 1-2 * * *", false},
};

#define WINDOW_MINUTES (2 * 24 * 60)

static void
brute_force_one(const char *expr, bool fixed, const struct window *win)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_cron *cron = NULL;
    int64_t walls[WINDOW_MINUTES + 1];
    time_t expected[WINDOW_MINUTES + 1];
    int expected_count = 0;
    unsigned char *matches = NULL;
    char buf_a[32], buf_b[32];
    bool had;
    char *saved;

    EXPECT_OK(sb_cron_parse(expr, &cron, &err), &err);
    if (!cron)
        return;
    time_t start = test_time(win->start, NULL);

    saved = tz_push(win->zone, &had);
    int64_t wall_min = INT64_MAX, wall_max = INT64_MIN;
    for (int idx = 0; idx <= WINDOW_MINUTES; idx++) {
        time_t u = start + 60 * idx;
        struct tm tm;
        localtime_r(&u, &tm);
        walls[idx] = (int64_t)u + tm.tm_gmtoff;
        wall_min = walls[idx] < wall_min ? walls[idx] : wall_min;
        wall_max = walls[idx] > wall_max ? walls[idx] : wall_max;
    }
    tz_pop(saved, had);

    /* Which local minutes in [wall_min, wall_max] match: next() in UTC, no DST there. TZ is
     * set to what next() sets, so glibc does not reload the zone file on every call. */
    size_t slots = (size_t)((wall_max - wall_min) / 60 + 1);
    matches = calloc(slots, 1);
    saved = tz_push("UTC", &had);
    for (time_t w = (time_t)wall_min - 1;;) {
        time_t next = 0;
        if (sb_cron_next(cron, w, "UTC", &next, &err) != 0 || next > wall_max)
            break;
        matches[(next - wall_min) / 60] = 1;
        w = next;
    }
    tz_pop(saved, had);

    int64_t seen = walls[0];
    for (int idx = 1; idx <= WINDOW_MINUTES; idx++) {
        int64_t prev = walls[idx - 1], cur = walls[idx];
        bool fire = matches[(cur - wall_min) / 60] != 0;
        if (fixed) {
            fire = fire && cur > seen;
            for (int64_t gap = prev + 60; gap < cur; gap += 60)
                fire = fire || matches[(gap - wall_min) / 60];
            seen = cur > seen ? cur : seen;
        }
        if (fire)
            expected[expected_count++] = start + 60 * idx;
    }

    time_t t = start, end = start + 60 * WINDOW_MINUTES;
    saved = tz_push(win->zone, &had);
    for (int fire_idx = 0;; fire_idx++) {
        time_t next = 0;
        sb_error_clear(&err);
        if (sb_cron_next(cron, t, win->zone, &next, &err) != 0) {
            TEST_FAIL("'%s' in %s: %s", expr, win->zone, err.msg);
            break;
        }
        if (next > end) {
            if (fire_idx != expected_count)
                TEST_FAIL("'%s' in %s from %s: %d fires, want %d; missing %s", expr, win->zone,
                          win->start, fire_idx, expected_count,
                          iso(expected[fire_idx], buf_a, sizeof(buf_a)));
            break;
        }
        if (next <= t || fire_idx >= expected_count || next != expected[fire_idx]) {
            char buf_c[32];
            TEST_FAIL("'%s' in %s, fire %d after %s: got %s, want %s", expr, win->zone, fire_idx,
                      iso(t, buf_a, sizeof(buf_a)), iso(next, buf_b, sizeof(buf_b)),
                      fire_idx < expected_count ? iso(expected[fire_idx], buf_c, sizeof(buf_c))
                                                : "none");
            break;
        }
        t = next;
    }
    /* From arbitrary instants too (inside repeats, off the minute), not just from fires. */
    int want_idx = 0;
    for (time_t probe = start + 13; probe < end; probe += 11 * 60) {
        time_t next = 0;
        while (want_idx < expected_count && expected[want_idx] <= probe)
            want_idx++;
        if (want_idx == expected_count)
            break;
        sb_error_clear(&err);
        if (sb_cron_next(cron, probe, win->zone, &next, &err) != 0 || next != expected[want_idx]) {
            char buf_c[32];
            TEST_FAIL("'%s' in %s after %s: got %s, want %s", expr, win->zone,
                      iso(probe, buf_a, sizeof(buf_a)),
                      err.msg[0] ? err.msg : iso(next, buf_b, sizeof(buf_b)),
                      iso(expected[want_idx], buf_c, sizeof(buf_c)));
            break;
        }
    }
    tz_pop(saved, had);
    free(matches);
    sb_cron_free(cron);
}

/* schedule.timezone: zones with odd offsets (+05:30, +12:45) and a 30-minute DST shift
 * (Lord Howe), evaluated while the process's own zone is a third one, which stays set. */
static void
test_named_zone_not_local(void)
{
    static const struct next_case cases[] = {
        {"30 9 * * *", "Asia/Kolkata", "2026-06-01T00:00Z", "2026-06-01T04:00:00Z"},
        {"30 9 * * *", "Pacific/Chatham", "2026-05-31T00:00Z", "2026-05-31T20:45:00Z"},
        /* Lord Howe springs forward 02:00 -> 02:30 on 2026-10-04 (15:30Z) */
        {"15 2 * * *", "Australia/Lord_Howe", "2026-10-03T15:00Z", "2026-10-03T15:30:00Z"},
        {"*/20 * * * *", "Australia/Lord_Howe", "2026-10-03T15:20Z", "2026-10-03T15:40:00Z"},
        {"0 * * * *", "Australia/Lord_Howe", "2026-10-03T15:00Z", "2026-10-03T16:00:00Z"},
    };
    struct sb_error err = SB_ERROR_INIT;
    bool had;
    char *saved = tz_push("Asia/Tokyo", &had);
    for (size_t case_idx = 0; case_idx < sizeof(cases) / sizeof(cases[0]); case_idx++) {
        const struct next_case *c = &cases[case_idx];
        struct sb_cron *cron = NULL;
        time_t next = 0;
        char got[32];
        EXPECT_OK(sb_cron_parse(c->expr, &cron, &err), &err);
        if (!cron)
            continue;
        EXPECT_OK(sb_cron_next(cron, test_time(c->from, NULL), c->tz, &next, &err), &err);
        if (strcmp(iso(next, got, sizeof(got)), c->want) != 0)
            TEST_FAIL("'%s' in %s after %s: got %s, want %s", c->expr, c->tz, c->from, got,
                      c->want);
        sb_cron_free(cron);
    }
    EXPECT_STR(getenv("TZ"), ":Asia/Tokyo");
    struct tm tm;
    time_t probe = test_time("2026-07-01T00:00Z", NULL);
    localtime_r(&probe, &tm);
    EXPECT_INT(tm.tm_gmtoff, 9 * 3600);
    EXPECT(sb_cron_zone_exists("Australia/Lord_Howe"));
    EXPECT(!sb_cron_zone_exists("Australia"));
    EXPECT(!sb_cron_zone_exists("../zoneinfo/UTC"));
    EXPECT(!sb_cron_zone_exists(""));
    tz_pop(saved, had);
}

static void
test_brute_force_dst_windows(void)
{
    for (size_t win_idx = 0; win_idx < sizeof(windows) / sizeof(windows[0]); win_idx++) {
        for (size_t expr_idx = 0; expr_idx < sizeof(brute_exprs) / sizeof(brute_exprs[0]);
             expr_idx++)
            brute_force_one(brute_exprs[expr_idx].expr, brute_exprs[expr_idx].fixed,
                            &windows[win_idx]);
    }
}

int
main(void)
{
    RUN(test_next_table);
    RUN(test_parse_errors);
    RUN(test_parse_accepts);
    RUN(test_next_errors);
    RUN(test_local_zone);
    RUN(test_named_zone_not_local);
    RUN(test_chains_through_dst);
    RUN(test_brute_force_dst_windows);
    return test_summary();
}
