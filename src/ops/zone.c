/* Time zones from TZif files (RFC 8536), for schedule.timezone. The scheduler needs one thing
 * of a zone: the UTC offset at an instant. glibc gives that only for the process's zone (TZ),
 * and switching TZ is process-global and not thread-safe, so the zone file is read here:
 * the version 2+ data block (64-bit transition times; a version 1 file is read from its
 * 32-bit block), and for instants at or after the last transition the POSIX TZ string of the
 * footer ("CET-1CEST,M3.5.0,M10.5.0/3"), as glibc does. Leap-second records are skipped:
 * zone files under "right/" count them, and the scheduler does not use those.
 * tests/unit/test_zone.c compares every zone on the system against glibc's localtime_r. */
#include "snapback/zone.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ZONEINFO_DIR "/usr/share/zoneinfo/"
#define ZONE_NAME_MAX 255
#define ZONE_FILE_MAX (1024 * 1024)
#define HEADER_LEN 44
#define DAY_SECS 86400LL

/* One end of daylight saving time in a POSIX TZ rule. */
struct rule_date {
    char kind;    /* 'J': Julian day 1..365 without Feb 29; 'D': day 0..365; 'M': m.w.d */
    int n;        /* J and D */
    int m, w, d;  /* M: month 1..12, week 1..5 (5 = last), weekday 0..6 (Sunday = 0) */
    int64_t time; /* seconds after local midnight (may be negative or past 24 h) */
};

struct posix_tz {
    bool present;
    bool has_dst;
    int64_t std_off, dst_off; /* seconds east of UTC */
    struct rule_date start, end;
};

struct sb_zone {
    int64_t *times; /* transitions, ascending */
    unsigned char *types;
    size_t time_count;
    int32_t *offsets; /* per local time type */
    size_t type_count;
    int32_t before_offset; /* before the first transition: the first non-DST type's */
    struct posix_tz footer;
};

/* --- calendar (proleptic Gregorian; H. Hinnant's algorithms) --- */

static int64_t
floor_div(int64_t a, int64_t b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

int64_t
sb_days_from_civil(int64_t year, int month, int day)
{
    year -= month <= 2;
    int64_t era = floor_div(year, 400);
    int64_t yoe = year - era * 400;
    int64_t doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int64_t
year_from_days(int64_t days)
{
    days += 719468;
    int64_t era = floor_div(days, 146097);
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    return yoe + era * 400 + (mp >= 10);
}

static bool
is_leap(int64_t year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int
month_days(int64_t year, int month)
{
    static const int lengths[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && is_leap(year) ? 29 : lengths[month - 1];
}

/* The local-midnight day (days since 1970-01-01) a rule date falls on in `year`. */
static int64_t
rule_day(const struct rule_date *r, int64_t year)
{
    int64_t jan1 = sb_days_from_civil(year, 1, 1);
    if (r->kind == 'J')
        return jan1 + r->n - 1 + (is_leap(year) && r->n >= 60);
    if (r->kind == 'D')
        return jan1 + r->n;
    int64_t first = sb_days_from_civil(year, r->m, 1);
    int first_wday = (int)(first + 4 - floor_div(first + 4, 7) * 7); /* 1970-01-01: Thursday */
    int64_t day = first + (r->d - first_wday + 7) % 7 + (int64_t)(r->w - 1) * 7;
    while (day >= first + month_days(year, r->m))
        day -= 7;
    return day;
}

/* --- POSIX TZ strings --- */

static bool
is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static const char *
parse_name(const char *p)
{
    if (*p == '<') {
        const char *close = strchr(p, '>');
        return close && close - p >= 4 ? close + 1 : NULL;
    }
    const char *start = p;
    while (is_alpha(*p))
        p++;
    return p - start >= 3 ? p : NULL;
}

/* [+-]hh[:mm[:ss]] with hh up to max_hours; *secs is signed as written. */
static const char *
parse_hms(const char *p, int max_hours, int64_t *secs)
{
    int sign = 1;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    int64_t parts[3] = {0, 0, 0};
    for (int part_idx = 0; part_idx < 3; part_idx++) {
        if (part_idx > 0) {
            if (*p != ':')
                break;
            p++;
        }
        if (!is_digit(*p))
            return NULL;
        int64_t value = 0;
        for (int digits = 0; is_digit(*p); digits++, p++) {
            if (digits >= 3)
                return NULL;
            value = value * 10 + (*p - '0');
        }
        parts[part_idx] = value;
    }
    if (parts[0] > max_hours || parts[1] > 59 || parts[2] > 59)
        return NULL;
    *secs = sign * (parts[0] * 3600 + parts[1] * 60 + parts[2]);
    return p;
}

static const char *
parse_number(const char *p, int lo, int hi, int *out)
{
    int value = 0, digits = 0;
    for (; is_digit(*p) && digits < 4; p++, digits++)
        value = value * 10 + (*p - '0');
    if (!digits || value < lo || value > hi)
        return NULL;
    *out = value;
    return p;
}

static const char *
parse_rule_date(const char *p, struct rule_date *r)
{
    memset(r, 0, sizeof(*r));
    r->time = 7200; /* 02:00 unless given */
    if (*p == 'J') {
        r->kind = 'J';
        p = parse_number(p + 1, 1, 365, &r->n);
    } else if (*p == 'M') {
        r->kind = 'M';
        if ((p = parse_number(p + 1, 1, 12, &r->m)) && *p == '.' &&
            (p = parse_number(p + 1, 1, 5, &r->w)) && *p == '.')
            p = parse_number(p + 1, 0, 6, &r->d);
        else
            p = NULL;
    } else {
        r->kind = 'D';
        p = parse_number(p, 0, 365, &r->n);
    }
    if (p && *p == '/')
        p = parse_hms(p + 1, 167, &r->time);
    return p;
}

/* Parses the footer's TZ string (without its newlines). An empty string means none. */
static int
parse_posix_tz(const char *s, struct posix_tz *tz)
{
    int64_t secs = 0;
    const char *p = s;
    memset(tz, 0, sizeof(*tz));
    if (!*s)
        return 0;
    if (!(p = parse_name(p)) || !(p = parse_hms(p, 24, &secs)))
        return -1;
    tz->present = true;
    tz->std_off = -secs;
    tz->dst_off = tz->std_off;
    if (!*p)
        return 0;
    if (!(p = parse_name(p)))
        return -1;
    tz->has_dst = true;
    tz->dst_off = tz->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = parse_hms(p, 24, &secs)))
            return -1;
        tz->dst_off = -secs;
    }
    if (!*p) {
        /* no rule: POSIX leaves it to the implementation; glibc uses the US rule */
        parse_rule_date("M3.2.0", &tz->start);
        parse_rule_date("M11.1.0", &tz->end);
        return 0;
    }
    if (*p != ',' || !(p = parse_rule_date(p + 1, &tz->start)) || *p != ',' ||
        !(p = parse_rule_date(p + 1, &tz->end)) || *p)
        return -1;
    return 0;
}

static int64_t
posix_offset(const struct posix_tz *tz, int64_t t)
{
    if (!tz->has_dst)
        return tz->std_off;
    /* the rule's year is taken from the UTC date, as glibc does */
    int64_t year = year_from_days(floor_div(t, DAY_SECS));
    int64_t start = rule_day(&tz->start, year) * DAY_SECS + tz->start.time - tz->std_off;
    int64_t end = rule_day(&tz->end, year) * DAY_SECS + tz->end.time - tz->dst_off;
    bool dst = start < end ? (t >= start && t < end) : (t >= start || t < end);
    return dst ? tz->dst_off : tz->std_off;
}

/* --- TZif --- */

static uint32_t
be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t
be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct tzif_counts {
    size_t isut, isstd, leap, time, type, chars;
};

static bool
read_header(const unsigned char *data, size_t len, size_t at, struct tzif_counts *c)
{
    if (len < at || len - at < HEADER_LEN || memcmp(data + at, "TZif", 4) != 0)
        return false;
    const unsigned char *p = data + at + 20;
    c->isut = be32(p);
    c->isstd = be32(p + 4);
    c->leap = be32(p + 8);
    c->time = be32(p + 12);
    c->type = be32(p + 16);
    c->chars = be32(p + 20);
    return c->type >= 1 && c->type <= 256 && c->chars >= 1 && c->time <= 100000 &&
           c->leap <= 100000 && (c->isut == 0 || c->isut == c->type) &&
           (c->isstd == 0 || c->isstd == c->type);
}

static size_t
block_len(const struct tzif_counts *c, size_t time_size)
{
    return c->time * time_size + c->time + c->type * 6 + c->chars + c->leap * (time_size + 4) +
           c->isstd + c->isut;
}

static int
corrupt(struct sb_error *err, const char *name, const char *what)
{
    return sb_error_set(err, SB_E_CORRUPT, 0,
                        "time zone '%s': the zone file is not valid TZif (%s); reinstall tzdata",
                        name, what);
}

int
sb_zone_parse(const unsigned char *data, size_t len, const char *name, struct sb_zone **out,
              struct sb_error *err)
{
    struct tzif_counts c;
    struct sb_zone *zone = NULL;
    size_t at = 0, time_size = 4;
    char *footer = NULL;
    int rc = -1;

    *out = NULL;
    if (!read_header(data, len, 0, &c))
        return corrupt(err, name, "bad header");
    if (data[4] >= '2') {
        /* skip the 32-bit block to the 64-bit one */
        at = HEADER_LEN + block_len(&c, 4);
        if (!read_header(data, len, at, &c))
            return corrupt(err, name, "bad second header");
        time_size = 8;
    }
    at += HEADER_LEN;
    if (len - at < block_len(&c, time_size))
        return corrupt(err, name, "truncated");
    if (!(zone = calloc(1, sizeof(*zone))) ||
        !(zone->times = calloc(c.time ? c.time : 1, sizeof(*zone->times))) ||
        !(zone->types = calloc(c.time ? c.time : 1, 1)) ||
        !(zone->offsets = calloc(c.type, sizeof(*zone->offsets)))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    const unsigned char *p = data + at;
    zone->time_count = c.time;
    zone->type_count = c.type;
    for (size_t idx = 0; idx < c.time; idx++, p += time_size) {
        zone->times[idx] = time_size == 8 ? be64(p) : (int64_t)(int32_t)be32(p);
        if (idx > 0 && zone->times[idx] <= zone->times[idx - 1]) {
            corrupt(err, name, "transitions out of order");
            goto out;
        }
    }
    for (size_t idx = 0; idx < c.time; idx++, p++) {
        if (*p >= c.type) {
            corrupt(err, name, "bad type index");
            goto out;
        }
        zone->types[idx] = *p;
    }
    size_t first_std = c.type;
    for (size_t idx = 0; idx < c.type; idx++, p += 6) {
        int32_t off = (int32_t)be32(p);
        if (off < -89999 || off > 93599) {
            corrupt(err, name, "offset out of range");
            goto out;
        }
        zone->offsets[idx] = off;
        if (!p[4] && first_std == c.type)
            first_std = idx;
    }
    /* as glibc: before the first transition (or without any), the first standard-time type,
     * or type 0 when all are DST (RFC 8536 says type 0; they differ in no zone shipped) */
    zone->before_offset = zone->offsets[first_std < c.type ? first_std : 0];
    p += c.chars + c.leap * (time_size + 4) + c.isstd + c.isut;
    if (time_size == 8) {
        /* the footer: "\nTZ-STRING\n" */
        size_t left = len - (size_t)(p - data);
        const unsigned char *nl = left > 1 && *p == '\n' ? memchr(p + 1, '\n', left - 1) : NULL;
        if (!nl) {
            corrupt(err, name, "no footer");
            goto out;
        }
        if (!(footer = strndup((const char *)p + 1, (size_t)(nl - p - 1)))) {
            sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            goto out;
        }
        if (parse_posix_tz(footer, &zone->footer) < 0) {
            corrupt(err, name, "bad TZ string in the footer");
            goto out;
        }
    }
    *out = zone;
    zone = NULL;
    rc = 0;
out:
    free(footer);
    sb_zone_free(zone);
    return rc;
}

int
sb_zone_load(const char *name, struct sb_zone **out, struct sb_error *err)
{
    char path[sizeof(ZONEINFO_DIR) + ZONE_NAME_MAX];
    unsigned char *data = NULL;
    size_t len = 0, cap = 0;
    struct stat st;
    int rc = -1, fd = -1;

    *out = NULL;
    size_t name_len = name ? strlen(name) : 0;
    if (name_len == 0 || name_len > ZONE_NAME_MAX || name[0] == '/' || strstr(name, ".."))
        return sb_error_set(err, SB_E_CONFIG, 0, "time zone '%s': unknown", name ? name : "");
    snprintf(path, sizeof(path), "%s%s", ZONEINFO_DIR, name);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0 ||
        !S_ISREG(st.st_mode)) {
        sb_error_set(err, SB_E_CONFIG, 0, "time zone '%s': unknown", name);
        goto out;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= ZONE_FILE_MAX) {
                corrupt(err, name, "larger than 1 MiB");
                goto out;
            }
            size_t new_cap = cap ? cap * 2 : 8192;
            unsigned char *grown = realloc(data, new_cap);
            if (!grown) {
                sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
                goto out;
            }
            data = grown;
            cap = new_cap;
        }
        ssize_t n = read(fd, data + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sb_error_set(err, SB_E_IO, errno, "time zone '%s': cannot read '%s'", name, path);
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len < 4 || memcmp(data, "TZif", 4) != 0) {
        /* not a zone file at all (zone.tab, leap-seconds.list, a directory's README) */
        sb_error_set(err, SB_E_CONFIG, 0, "time zone '%s': unknown", name);
        goto out;
    }
    rc = sb_zone_parse(data, len, name, out, err);
out:
    if (fd >= 0)
        close(fd);
    free(data);
    return rc;
}

int64_t
sb_zone_offset(const struct sb_zone *zone, int64_t t)
{
    size_t count = zone->time_count;
    if (count == 0 || t < zone->times[0])
        return zone->before_offset;
    if (zone->footer.present && t >= zone->times[count - 1])
        return posix_offset(&zone->footer, t);
    size_t lo = 0, hi = count; /* times[lo] <= t < times[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (zone->times[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    return zone->offsets[zone->types[lo]];
}

void
sb_zone_free(struct sb_zone *zone)
{
    if (!zone)
        return;
    free(zone->times);
    free(zone->types);
    free(zone->offsets);
    free(zone);
}
