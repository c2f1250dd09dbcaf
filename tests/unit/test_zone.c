/* Tests for the TZif reader (src/ops/zone.c): every zone file on the system (except the
 * leap-second "right/" copies) against glibc's localtime_r with TZ set to it, at instants every
 * 17 days from 1900 to 2100 and every 7 hours from 2036 to 2045 (beyond the table, where the
 * footer's POSIX rule decides); then hand-made files: a footer-only zone, a southern-hemisphere
 * rule, J and plain day rules, and damaged files with their exact messages; for a dozen tricky
 * zones, both sides of every transition to 2050, to the second. */
#include "snapback/zone.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "test.h"

#define ZONEINFO "/usr/share/zoneinfo"

static size_t zones_checked, instants_checked;

static bool
glibc_offset(int64_t t, long *off)
{
    time_t when = (time_t)t;
    struct tm tm;
    if (!localtime_r(&when, &tm))
        return false;
    *off = tm.tm_gmtoff;
    return true;
}

static int
compare_at(const char *name, const struct sb_zone *zone, int64_t t)
{
    long want;
    if (!glibc_offset(t, &want))
        return 0;
    instants_checked++;
    int64_t got = sb_zone_offset(zone, t);
    if (got != want) {
        TEST_FAIL("zone '%s' at %lld: offset %lld, glibc says %ld", name, (long long)t,
                  (long long)got, want);
        return -1;
    }
    return 0;
}

/* How much of the comparison with glibc runs: every instant below (1), or every 16th (16)
 * with SNAPBACK_TEST_LIGHT=1, which contrib/test.sh sets for the valgrind and TSan stages:
 * under valgrind the 2.7 million comparisons took 40-100 s, and the ASan stage runs them all.
 * Each zone is still loaded, parsed and looked up. */
static int64_t
sample_step(void)
{
    static int64_t step;
    if (!step)
        step = test_env_on("SNAPBACK_TEST_LIGHT") ? 16 : 1;
    return step;
}

static void
check_zone(const char *name)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_zone *zone = NULL;
    char tzvalue[1100];
    if (sb_zone_load(name, &zone, &err) != 0) {
        /* not a zone file (zone.tab, leap-seconds.list, ...) */
        return;
    }
    snprintf(tzvalue, sizeof(tzvalue), ":%s", name);
    setenv("TZ", tzvalue, 1);
    tzset();
    zones_checked++;
    const int64_t from = -2208988800LL /* 1900 */, to = 4102444800LL /* 2100 */;
    for (int64_t t = from; t < to; t += (17 * 86400 + 3607) * sample_step())
        if (compare_at(name, zone, t) < 0)
            goto out;
    /* past the table of a "fat" file (2037): the footer's rule decides */
    for (int64_t t = 2082758400LL /* 2036 */; t < 2398291200LL /* 2046 */;
         t += (2 * 86400 + 3601) * sample_step())
        if (compare_at(name, zone, t) < 0)
            goto out;
out:
    sb_zone_free(zone);
}

/* Every transition of a zone, to the second, found by bisection against glibc's answer. */
static void
check_transitions(const char *name)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_zone *zone = NULL;
    char tzvalue[512];
    EXPECT_OK(sb_zone_load(name, &zone, &err), &err);
    if (!zone)
        return;
    snprintf(tzvalue, sizeof(tzvalue), ":%s", name);
    setenv("TZ", tzvalue, 1);
    tzset();
    const int64_t window = 6 * 3600 * sample_step();
    for (int64_t t = 0; t < 2524608000LL /* 2050 */; t += window) {
        long a, b;
        if (!glibc_offset(t, &a) || !glibc_offset(t + window, &b) || a == b)
            continue;
        int64_t lo = t, hi = t + window;
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            long m = 0;
            glibc_offset(mid, &m);
            if (m == a)
                lo = mid;
            else
                hi = mid;
        }
        if (compare_at(name, zone, hi - 1) < 0 || compare_at(name, zone, hi) < 0)
            break;
    }
    sb_zone_free(zone);
}

static void
walk(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s%s%s", ZONEINFO, rel[0] ? "/" : "", rel);
    DIR *dir = opendir(path);
    if (!dir)
        return;
    struct dirent *entry;
    while ((entry = readdir(dir))) {
        const char *n = entry->d_name;
        char sub[512];
        struct stat st;
        if (n[0] == '.' || (!rel[0] && (!strcmp(n, "right") || !strcmp(n, "posix"))))
            continue;
        snprintf(sub, sizeof(sub), "%s%s%s", rel, rel[0] ? "/" : "", n);
        snprintf(path, sizeof(path), "%s/%s", ZONEINFO, sub);
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            walk(sub);
        else if (S_ISREG(st.st_mode))
            check_zone(sub);
    }
    closedir(dir);
}

static void
test_all_zones_against_glibc(void)
{
    char *saved = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    walk("");
    static const char *const tricky[] = {
        "Europe/Berlin",    "America/New_York",  "Australia/Lord_Howe", "Pacific/Chatham",
        "America/Santiago", "Africa/Casablanca", "Asia/Tehran",         "Europe/Dublin",
        "America/Godthab",  "Antarctica/Troll",  "Pacific/Apia",        "Asia/Gaza",
    };
    for (size_t idx = 0; idx < sizeof(tricky) / sizeof(tricky[0]); idx++) {
        struct stat st;
        char path[256];
        snprintf(path, sizeof(path), ZONEINFO "/%s", tricky[idx]);
        if (stat(path, &st) == 0)
            check_transitions(tricky[idx]);
    }
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
    printf("     %zu zones, %zu instants compared with glibc\n", zones_checked, instants_checked);
    EXPECT(zones_checked >= 300);
}

/* A version 2 TZif image with no transitions, one type and the given footer. */
static size_t
make_tzif(unsigned char *buf, size_t cap, int32_t offset, const char *footer)
{
    size_t len = 0;
    for (int block = 0; block < 2; block++) {
        unsigned char header[44] = {'T', 'Z', 'i', 'f', '2'};
        header[20 + 19] = 1; /* typecnt */
        header[20 + 23] = 4; /* charcnt */
        memcpy(buf + len, header, sizeof(header));
        len += sizeof(header);
        uint32_t off = (uint32_t)offset;
        unsigned char ttinfo[6] = {(unsigned char)(off >> 24),
                                   (unsigned char)(off >> 16),
                                   (unsigned char)(off >> 8),
                                   (unsigned char)off,
                                   0,
                                   0};
        memcpy(buf + len, ttinfo, sizeof(ttinfo));
        len += sizeof(ttinfo);
        memcpy(buf + len, "XXX", 4);
        len += 4;
    }
    len += (size_t)snprintf((char *)buf + len, cap - len, "\n%s\n", footer);
    return len;
}

static int64_t
utc(int year, int month, int day, int hour, int minute)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = year - 1900;
    tm.tm_mon = month - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = minute;
    return (int64_t)timegm(&tm);
}

static void
test_handmade(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_zone *zone = NULL;
    unsigned char buf[512];
    size_t len;

    /* no transitions: the type's offset for all times, footer or not (as glibc) */
    len = make_tzif(buf, sizeof(buf), 3600, "CET-1CEST,M3.5.0,M10.5.0/3");
    EXPECT_OK(sb_zone_parse(buf, len, "handmade", &zone, &err), &err);
    if (zone)
        EXPECT_INT(sb_zone_offset(zone, utc(2030, 7, 1, 0, 0)), 3600);
    sb_zone_free(zone);
    zone = NULL;

    len = make_tzif(buf, sizeof(buf), 0, "UTC0");
    EXPECT_OK(sb_zone_parse(buf, len, "handmade", &zone, &err), &err);
    if (zone)
        EXPECT_INT(sb_zone_offset(zone, 0), 0);
    sb_zone_free(zone);
    zone = NULL;

    /* damage: the exact messages */
    len = make_tzif(buf, sizeof(buf), 0, "UTC0");
    buf[0] = 'X';
    EXPECT_ERR(sb_zone_parse(buf, len, "Bad/Magic", &zone, &err), &err, SB_E_CORRUPT,
               "time zone 'Bad/Magic': the zone file is not valid TZif (bad header); reinstall "
               "tzdata");
    len = make_tzif(buf, sizeof(buf), 0, "UTC0");
    EXPECT_ERR(sb_zone_parse(buf, 60, "Cut/Short", &zone, &err), &err, SB_E_CORRUPT,
               "time zone 'Cut/Short': the zone file is not valid TZif (bad second header); "
               "reinstall tzdata");
    EXPECT_ERR(sb_zone_parse(buf, len - 6, "No/Footer", &zone, &err), &err, SB_E_CORRUPT,
               "time zone 'No/Footer': the zone file is not valid TZif (no footer); reinstall "
               "tzdata");
    len = make_tzif(buf, sizeof(buf), 0, "CET-1CEST,M13.5.0,M10.5.0/3");
    EXPECT_ERR(sb_zone_parse(buf, len, "Bad/Rule", &zone, &err), &err, SB_E_CORRUPT,
               "time zone 'Bad/Rule': the zone file is not valid TZif (bad TZ string in the "
               "footer); reinstall tzdata");
    len = make_tzif(buf, sizeof(buf), 99999, "UTC0");
    EXPECT_ERR(sb_zone_parse(buf, len, "Big/Offset", &zone, &err), &err, SB_E_CORRUPT,
               "time zone 'Big/Offset': the zone file is not valid TZif (offset out of range); "
               "reinstall tzdata");
    EXPECT(zone == NULL);

    /* names */
    EXPECT_ERR(sb_zone_load("Mars/Olympus_Mons", &zone, &err), &err, SB_E_CONFIG,
               "time zone 'Mars/Olympus_Mons': unknown");
    EXPECT_ERR(sb_zone_load("../zoneinfo/UTC", &zone, &err), &err, SB_E_CONFIG,
               "time zone '../zoneinfo/UTC': unknown");
    EXPECT_ERR(sb_zone_load("Europe", &zone, &err), &err, SB_E_CONFIG,
               "time zone 'Europe': unknown");
    EXPECT_ERR(sb_zone_load("zone.tab", &zone, &err), &err, SB_E_CONFIG,
               "time zone 'zone.tab': unknown");
}

/* POSIX rules past the table, checked with glibc parsing the same TZ string directly. */
static void
test_posix_rules(void)
{
    static const char *const rules[] = {
        "CET-1CEST,M3.5.0,M10.5.0/3",
        "EST5EDT,M3.2.0,M11.1.0",
        "<+1030>-10:30<+11>-11,M10.1.0,M4.1.0",
        "<+1245>-12:45<+1345>,M9.5.0/2:45,M4.1.0/3:45",
        "<-04>4<-03>,M9.1.6/24,M4.1.6/24",
        "<-02>2<-01>,M3.5.0/-1,M10.5.0/0",
        "IST-1GMT0,M10.5.0,M3.5.0/1",
        "XXX3YYY,J60/1,J300/1",
        "XXX3YYY,59/1,299/1",
        "AAA-5:30",
        "EST5EDT",
    };
    unsigned char buf[512];
    char *saved = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
    for (size_t idx = 0; idx < sizeof(rules) / sizeof(rules[0]); idx++) {
        struct sb_error err = SB_ERROR_INIT;
        struct sb_zone *zone = NULL;
        /* one transition in 1970 so that the footer governs everything after */
        size_t len = make_tzif(buf, sizeof(buf), 0, rules[idx]);
        /* patch in timecnt = 1 in the second header: rebuild by hand */
        unsigned char img[600];
        size_t v1 = 44 + 6 + 4;
        memcpy(img, buf, v1);
        unsigned char header2[44];
        memcpy(header2, buf + v1, 44);
        header2[20 + 15] = 1; /* timecnt */
        memcpy(img + v1, header2, 44);
        size_t at = v1 + 44;
        memset(img + at, 0, 8); /* transition at 0 */
        at += 8;
        img[at++] = 0; /* its type */
        memcpy(img + at, buf + v1 + 44, len - v1 - 44);
        at += len - v1 - 44;
        EXPECT_OK(sb_zone_parse(img, at, rules[idx], &zone, &err), &err);
        if (!zone)
            continue;
        setenv("TZ", rules[idx], 1);
        tzset();
        for (int64_t t = utc(2026, 1, 1, 0, 0); t < utc(2028, 1, 1, 0, 0); t += 1800)
            if (compare_at(rules[idx], zone, t) < 0)
                break;
        sb_zone_free(zone);
    }
    if (saved)
        setenv("TZ", saved, 1);
    else
        unsetenv("TZ");
    tzset();
    free(saved);
}

int
main(void)
{
    RUN(test_all_zones_against_glibc);
    RUN(test_handmade);
    RUN(test_posix_rules);
    return test_summary();
}
