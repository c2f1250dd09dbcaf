/* Cron expressions: parsing into bit sets, and finding the next fire time.
 *
 * A schedule names wall-clock times, so the search runs on the local calendar ("walls",
 * counted as seconds since 1970 as if local time were UTC) and advances field by field
 * (month, day, hour, minute) as cronie's matcher does, never minute by minute. The time line is
 * cut into segments of constant UTC offset (found with localtime_r and tm_gmtoff); inside one
 * segment a wall W is the instant W - offset, and at each offset change the DST rules decide.
 *
 * DST, as cronie does it (its cron.c "time jumped" cases), keyed on the job's kind:
 * - A fixed-time job is one whose minute and hour fields are explicit values, ranges or lists
 *   (no '*' and no '/' in either), e.g. "30 2 * * *", "0 1-3 * * *", @daily. It names clock
 *   times: in a spring-forward gap, times that fall in the skipped hour run once at the first
 *   valid time after the gap (02:30 -> 03:00 the same day); in a fall-back repeat, a time runs
 *   once, at its first occurrence (the earlier, summer-time instant).
 * - Every other job has a wildcard or a step in its minute or hour ("0 * * * *", @hourly,
 *   "* 2 * * *", "0 0-23/2 * * *", every 15 minutes) and follows real elapsed time: it fires
 *   at every instant whose local time matches, so times in a gap do not exist and are
 *   skipped, and times in a repeat fire in both occurrences.
 * Both give a strictly increasing sequence under next(next(t)), also from inside a repeat.
 *
 * Day-of-month and day-of-week follow Vixie cron: when both are restricted (neither field
 * starts with '*'), a day matches when either matches; otherwise both must match.
 *
 * A named zone (schedule.timezone) is read from its zone file by src/ops/zone.c, so nothing
 * process-global changes (no setenv("TZ") + tzset, which would not be thread-safe); the local
 * zone (NULL) is glibc's, through localtime_r. */
#include "snapback/cron.h"
#include "snapback/zone.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DAY_SECS 86400LL
/* 5 years, counting the at most 2 leap days in them. */
#define HORIZON_SECS ((5 * 365 + 2) * DAY_SECS)
/* Offset changes are looked for at this spacing, then pinned to the second. No zone changes
 * its offset twice within a day. */
#define PROBE_SECS DAY_SECS
/* The longest fall-back repeat that is looked back for when a search starts inside one. */
#define LOOKBACK_SECS (26 * 3600LL)
/* Beyond year 9999 (and before year 0) the calendar arithmetic is not meant to go. */
#define TIME_ABS_MAX 253402300799LL

struct sb_cron {
    uint64_t minutes; /* bit n set: minute n matches */
    uint32_t hours;
    uint32_t days;     /* bits 1..31 */
    uint32_t months;   /* bits 1..12 */
    uint32_t weekdays; /* bits 0..6, Sunday = 0 (7 is folded into 0) */
    bool dom_star;     /* the day-of-month field starts with '*' */
    bool dow_star;     /* the day-of-week field starts with '*' */
    bool fixed_time;   /* see the DST rules at the top */
};

struct field_spec {
    const char *name;
    int min, max;
    const char *const *names; /* 3-letter names for min, min + 1, ...; NULL when none */
    size_t name_count;
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec"};
static const char *const weekday_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

enum { FIELD_MINUTE, FIELD_HOUR, FIELD_DOM, FIELD_MONTH, FIELD_DOW, FIELD_COUNT };

static const struct field_spec field_specs[FIELD_COUNT] = {
    {"minute", 0, 59, NULL, 0},
    {"hour", 0, 23, NULL, 0},
    {"day-of-month", 1, 31, NULL, 0},
    {"month", 1, 12, month_names, 12},
    {"day-of-week", 0, 7, weekday_names, 7},
};

static const struct {
    const char *name;
    const char *fields;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* One field's text while it is parsed: for error messages and the cursor. */
struct field_text {
    const struct field_spec *spec;
    const char *start;
    int len;
    const char *pos;
    const char *end;
};

static bool
is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static char
ascii_lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
is_alpha(char c)
{
    c = ascii_lower(c);
    return c >= 'a' && c <= 'z';
}

static int
field_error(const struct field_text *ft, const char *what, struct sb_error *err)
{
    return sb_error_set(err, SB_E_CONFIG, 0, "%s field '%.*s': %s", ft->spec->name, ft->len,
                        ft->start, what);
}

/* Reads digits at ft->pos into *value, saturating far above any field's range. */
static int
parse_number(struct field_text *ft, int *value)
{
    int acc = 0;
    if (ft->pos == ft->end || !is_digit(*ft->pos))
        return -1;
    while (ft->pos < ft->end && is_digit(*ft->pos)) {
        if (acc < 1000000)
            acc = acc * 10 + (*ft->pos - '0');
        ft->pos++;
    }
    *value = acc;
    return 0;
}

/* A number or (in month and day-of-week) a 3-letter name, checked against the range. */
static int
parse_value(struct field_text *ft, int *value, struct sb_error *err)
{
    const struct field_spec *spec = ft->spec;
    if (ft->pos < ft->end && is_alpha(*ft->pos)) {
        const char *word = ft->pos;
        while (ft->pos < ft->end && is_alpha(*ft->pos))
            ft->pos++;
        if (!spec->names)
            return field_error(ft, "expected a number", err);
        size_t word_len = (size_t)(ft->pos - word);
        for (size_t name_idx = 0; word_len == 3 && name_idx < spec->name_count; name_idx++) {
            const char *name = spec->names[name_idx];
            if (ascii_lower(word[0]) == name[0] && ascii_lower(word[1]) == name[1] &&
                ascii_lower(word[2]) == name[2]) {
                *value = spec->min + (int)name_idx;
                return 0;
            }
        }
        return field_error(ft, "unknown name", err);
    }
    if (parse_number(ft, value) != 0)
        return field_error(ft, spec->names ? "expected a number or a name" : "expected a number",
                           err);
    if (*value < spec->min || *value > spec->max) {
        char what[64];
        snprintf(what, sizeof(what), "value out of range %d-%d", spec->min, spec->max);
        return field_error(ft, what, err);
    }
    return 0;
}

static int
parse_step(struct field_text *ft, int *step, struct sb_error *err)
{
    if (parse_number(ft, step) != 0)
        return field_error(ft, "step must be a number", err);
    if (*step < 1)
        return field_error(ft, "step must be at least 1", err);
    if (*step > ft->spec->max) {
        char what[64];
        snprintf(what, sizeof(what), "step must be at most %d", ft->spec->max);
        return field_error(ft, what, err);
    }
    return 0;
}

/* One list item: '*', 'a', 'a-b', each optionally with '/step' ('a/n' means a to the end). */
static int
parse_item(struct field_text *ft, uint64_t *bits, struct sb_error *err)
{
    int first, last, step = 1;
    if (ft->pos == ft->end || *ft->pos == ',')
        return field_error(ft, "empty list item", err);
    if (*ft->pos == '*') {
        ft->pos++;
        first = ft->spec->min;
        last = ft->spec->max;
    } else {
        if (parse_value(ft, &first, err) != 0)
            return -1;
        last = first;
        if (ft->pos < ft->end && *ft->pos == '-') {
            ft->pos++;
            if (parse_value(ft, &last, err) != 0)
                return -1;
            if (first > last)
                return field_error(ft, "range start is after range end", err);
        } else if (ft->pos < ft->end && *ft->pos == '/') {
            last = ft->spec->max;
        }
    }
    if (ft->pos < ft->end && *ft->pos == '/') {
        ft->pos++;
        if (parse_step(ft, &step, err) != 0)
            return -1;
    }
    if (ft->pos < ft->end && *ft->pos != ',') {
        const char *rest = ft->pos;
        while (ft->pos < ft->end && *ft->pos != ',')
            ft->pos++;
        char what[SB_ERROR_MSG_MAX / 2];
        snprintf(what, sizeof(what), "unexpected '%.*s'", (int)(ft->pos - rest), rest);
        return field_error(ft, what, err);
    }
    for (int value = first; value <= last; value += step)
        *bits |= 1ULL << value;
    return 0;
}

static int
parse_field(const struct field_spec *spec, const char *start, size_t len, uint64_t *bits,
            struct sb_error *err)
{
    struct field_text ft = {spec, start, (int)len, start, start + len};
    *bits = 0;
    for (;;) {
        if (parse_item(&ft, bits, err) != 0)
            return -1;
        if (ft.pos == ft.end)
            return 0;
        ft.pos++; /* the ',' */
        if (ft.pos == ft.end)
            return field_error(&ft, "empty list item", err);
    }
}

static bool
has_char(const char *start, size_t len, char c)
{
    return memchr(start, c, len) != NULL;
}

/* Parses the five fields in text into cron. */
static int
parse_fields(const char *text, struct sb_cron *cron, struct sb_error *err)
{
    const char *starts[FIELD_COUNT];
    size_t lens[FIELD_COUNT];
    int count = 0;
    for (const char *pos = text; *pos;) {
        while (is_blank(*pos))
            pos++;
        if (!*pos)
            break;
        const char *start = pos;
        while (*pos && !is_blank(*pos))
            pos++;
        if (count < FIELD_COUNT) {
            starts[count] = start;
            lens[count] = (size_t)(pos - start);
        }
        count++;
    }
    if (count != FIELD_COUNT)
        return sb_error_set(err, SB_E_CONFIG, 0, "expected %d fields, got %d", FIELD_COUNT, count);

    uint64_t bits[FIELD_COUNT];
    for (int field_idx = 0; field_idx < FIELD_COUNT; field_idx++) {
        if (parse_field(&field_specs[field_idx], starts[field_idx], lens[field_idx],
                        &bits[field_idx], err) != 0)
            return -1;
    }
    cron->minutes = bits[FIELD_MINUTE];
    cron->hours = (uint32_t)bits[FIELD_HOUR];
    cron->days = (uint32_t)bits[FIELD_DOM];
    cron->months = (uint32_t)bits[FIELD_MONTH];
    cron->weekdays = (uint32_t)((bits[FIELD_DOW] | (bits[FIELD_DOW] >> 7)) & 0x7f);
    cron->dom_star = starts[FIELD_DOM][0] == '*';
    cron->dow_star = starts[FIELD_DOW][0] == '*';
    cron->fixed_time = true;
    for (int field_idx = FIELD_MINUTE; field_idx <= FIELD_HOUR; field_idx++) {
        if (has_char(starts[field_idx], lens[field_idx], '*') ||
            has_char(starts[field_idx], lens[field_idx], '/'))
            cron->fixed_time = false;
    }
    return 0;
}

/* Expands a macro ("@daily") into its fields. */
static int
expand_macro(const char *text, const char **fields, struct sb_error *err)
{
    size_t len = 0;
    while (text[len] && !is_blank(text[len]))
        len++;
    for (size_t rest = len; text[rest]; rest++) {
        if (!is_blank(text[rest]))
            return sb_error_set(err, SB_E_CONFIG, 0, "macro '%.*s' cannot be followed by fields",
                                (int)len, text);
    }
    for (size_t macro_idx = 0; macro_idx < sizeof(macros) / sizeof(macros[0]); macro_idx++) {
        const char *name = macros[macro_idx].name;
        if (strlen(name) != len)
            continue;
        size_t char_idx = 0;
        while (char_idx < len && ascii_lower(text[char_idx]) == name[char_idx])
            char_idx++;
        if (char_idx == len) {
            *fields = macros[macro_idx].fields;
            return 0;
        }
    }
    return sb_error_set(err, SB_E_CONFIG, 0, "unknown macro '%.*s'", (int)len, text);
}

int
sb_cron_parse(const char *expr, struct sb_cron **out, struct sb_error *err)
{
    int rc = -1;
    struct sb_cron *cron = NULL;
    const char *text = expr ? expr : "";

    *out = NULL;
    while (is_blank(*text))
        text++;
    if (*text == '@' && expand_macro(text, &text, err) != 0)
        goto out;
    if (!(cron = calloc(1, sizeof(*cron)))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate a cron expression");
        goto out;
    }
    if (parse_fields(text, cron, err) != 0)
        goto out;
    *out = cron;
    cron = NULL;
    rc = 0;
out:
    free(cron);
    return rc;
}

void
sb_cron_free(struct sb_cron *cron)
{
    free(cron);
}

/* Calendar arithmetic on the proleptic Gregorian calendar (H. Hinnant's algorithms). */

static int64_t
floor_div(int64_t a, int64_t b)
{
    return a / b - ((a % b != 0) && ((a < 0) != (b < 0)));
}

static int64_t
ceil_minute(int64_t secs)
{
    return -floor_div(-secs, 60) * 60;
}

static void
civil_from_days(int64_t days, int64_t *year, int *month, int *day)
{
    days += 719468;
    int64_t era = floor_div(days, 146097);
    int64_t doe = days - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *day = (int)(doy - (153 * mp + 2) / 5 + 1);
    *month = (int)(mp < 10 ? mp + 3 : mp - 9);
    *year = yoe + era * 400 + (*month <= 2);
}

static int
days_in_month(int64_t year, int month)
{
    static const int lengths[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : lengths[month - 1];
}

static bool
day_matches(const struct sb_cron *cron, int64_t year, int month, int day)
{
    int64_t days = sb_days_from_civil(year, month, day);
    int weekday = (int)(days + 4 - floor_div(days + 4, 7) * 7); /* 1970-01-01 was a Thursday */
    bool dom_ok = (cron->days >> day) & 1, dow_ok = (cron->weekdays >> weekday) & 1;
    if (cron->dom_star || cron->dow_star)
        return dom_ok && dow_ok;
    return dom_ok || dow_ok;
}

/* The first wall time >= wall_lo (minute-aligned) that matches, advancing the largest
 * mismatching field and resetting the smaller ones, as cronie does. false past wall_limit. */
static bool
next_match(const struct sb_cron *cron, int64_t wall_lo, int64_t wall_limit, int64_t *wall)
{
    int64_t year, days = floor_div(wall_lo, DAY_SECS);
    int month, day;
    int secs = (int)(wall_lo - days * DAY_SECS);
    int hour = secs / 3600, minute = secs % 3600 / 60;
    civil_from_days(days, &year, &month, &day);

    for (;;) {
        int64_t candidate =
            sb_days_from_civil(year, month, day) * DAY_SECS + hour * 3600 + minute * 60;
        if (candidate > wall_limit)
            return false;
        if (!((cron->months >> month) & 1)) {
            day = 1;
            hour = minute = 0;
            if (++month > 12) {
                month = 1;
                year++;
            }
            continue;
        }
        if (!day_matches(cron, year, month, day)) {
            day++;
            hour = minute = 0;
        } else if (!((cron->hours >> hour) & 1)) {
            hour++;
            minute = 0;
        } else if (!((cron->minutes >> minute) & 1)) {
            minute++;
        } else {
            *wall = candidate;
            return true;
        }
        if (minute > 59) {
            minute = 0;
            hour++;
        }
        if (hour > 23) {
            hour = 0;
            day++;
        }
        if (day > days_in_month(year, month)) {
            day = 1;
            month++;
        }
        if (month > 12) {
            month = 1;
            year++;
        }
    }
}

/* The UTC offset (seconds east) in force at instant t: in `zone`, or in the process's local
 * zone when it is NULL. */
static int
utc_offset(const struct sb_zone *zone, int64_t t, int64_t *offset, struct sb_error *err)
{
    if (zone) {
        *offset = sb_zone_offset(zone, t);
        return 0;
    }
    time_t when = (time_t)t;
    struct tm tm;
    if (!localtime_r(&when, &tm))
        return sb_error_set(err, SB_E_INTERNAL, errno, "cannot convert time %lld to local time",
                            (long long)t);
    *offset = tm.tm_gmtoff;
    return 0;
}

/* The first instant in (from, to] whose offset differs from `offset` (the offset at from), in
 * *change; *found is false when there is none. */
static int
find_change(const struct sb_zone *zone, int64_t from, int64_t to, int64_t offset, bool *found,
            int64_t *change, struct sb_error *err)
{
    int64_t lo = from, probe_offset = offset;
    *found = false;
    while (lo < to) {
        int64_t hi = to - lo > PROBE_SECS ? lo + PROBE_SECS : to;
        if (utc_offset(zone, hi, &probe_offset, err) != 0)
            return -1;
        if (probe_offset != offset) {
            while (hi - lo > 1) {
                int64_t mid = lo + (hi - lo) / 2;
                if (utc_offset(zone, mid, &probe_offset, err) != 0)
                    return -1;
                if (probe_offset == offset)
                    lo = mid;
                else
                    hi = mid;
            }
            *found = true;
            *change = hi;
            return 0;
        }
        lo = hi;
    }
    return 0;
}

/* For a fixed-time job searching from instant t (offset `offset`): the lowest wall time not
 * already passed. Right after a fall-back, walls up to the old offset's were already lived. */
static int
fixed_time_floor(const struct sb_zone *zone, int64_t t, int64_t offset, int64_t *floor_wall,
                 struct sb_error *err)
{
    int64_t before = t - LOOKBACK_SECS, before_offset = 0, change = 0, prev_offset = 0;
    bool found;
    *floor_wall = INT64_MIN;
    if (utc_offset(zone, before, &before_offset, err) != 0)
        return -1;
    if (before_offset == offset)
        return 0;
    /* find_change from `before` finds where its offset ends, i.e. where ours begins. */
    if (find_change(zone, before, t, before_offset, &found, &change, err) != 0)
        return -1;
    if (!found)
        return 0;
    if (utc_offset(zone, change - 1, &prev_offset, err) != 0)
        return -1;
    if (prev_offset > offset)
        *floor_wall = ceil_minute(change + prev_offset);
    return 0;
}

static int64_t
max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* The search itself, in `zone` (NULL: the local zone). */
static int
search_next(const struct sb_zone *zone, const struct sb_cron *cron, int64_t after, int64_t *next,
            struct sb_error *err)
{
    int64_t t = after, offset = 0, floor_wall = 0;
    if (utc_offset(zone, t, &offset, err) != 0)
        return -1;
    int64_t wall_lo = (floor_div(t + offset, 60) + 1) * 60; /* strictly after */
    int64_t wall_limit = wall_lo + HORIZON_SECS;
    if (cron->fixed_time) {
        if (fixed_time_floor(zone, t, offset, &floor_wall, err) != 0)
            return -1;
        wall_lo = max64(wall_lo, floor_wall);
    }

    /* Each round either answers or crosses one offset change; there are few in 5 years. */
    for (int round = 0; round < 1000; round++) {
        int64_t wall = 0, change = 0, new_offset = 0;
        bool found;
        if (!next_match(cron, wall_lo, wall_limit, &wall))
            break;
        int64_t candidate = wall - offset;
        if (find_change(zone, t, candidate, offset, &found, &change, err) != 0)
            return -1;
        if (!found) {
            *next = candidate;
            return 0;
        }
        /* No match in this segment's walls [wall_lo, change + offset): cross the change. */
        if (utc_offset(zone, change, &new_offset, err) != 0)
            return -1;
        if (new_offset > offset) {
            /* Spring forward: walls [change + offset, change + new_offset) never happen. */
            if (cron->fixed_time && wall < change + new_offset) {
                *next = change;
                return 0;
            }
            wall_lo = max64(wall_lo, ceil_minute(change + new_offset));
        } else if (!cron->fixed_time) {
            /* Fall back: walls [change + new_offset, change + offset) come again, and a job
             * that follows real time runs in them again. A fixed-time job keeps wall_lo: its
             * walls below the first match W already had their first occurrence. */
            wall_lo = ceil_minute(change + new_offset);
        }
        t = change;
        offset = new_offset;
    }
    return sb_error_set(err, SB_E_CONFIG, 0, "expression never fires");
}

bool
sb_cron_zone_exists(const char *tz)
{
    struct sb_zone *zone = NULL;
    struct sb_error err = SB_ERROR_INIT;
    if (!tz || sb_zone_load(tz, &zone, &err) < 0)
        return false;
    sb_zone_free(zone);
    return true;
}

int
sb_cron_next(const struct sb_cron *cron, time_t after, const char *tz, time_t *next,
             struct sb_error *err)
{
    struct sb_zone *zone = NULL;
    int64_t found = 0;

    if ((int64_t)after > TIME_ABS_MAX || (int64_t)after < -TIME_ABS_MAX)
        return sb_error_set(err, SB_E_INTERNAL, 0, "time %lld is out of range", (long long)after);
    if (tz && sb_zone_load(tz, &zone, err) < 0)
        return -1;
    if (!zone)
        tzset(); /* the local zone: pick up a changed TZ */
    int rc = search_next(zone, cron, (int64_t)after, &found, err);
    sb_zone_free(zone);
    if (rc == 0)
        *next = (time_t)found;
    return rc;
}
