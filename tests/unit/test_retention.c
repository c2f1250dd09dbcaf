/* Retention (DESIGN §9): a table of policies over one fixed set of snapshots, each with the
 * set restic's `forget` keeps for the same policy (newest snapshot per period, counting
 * periods that have a snapshot, newest first; keep_within relative to the newest snapshot),
 * plus snapback's own rules: the newest and any tagged "keep" always stay. Local time is UTC
 * here (TZ is set), so the periods are fixed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapback/core.h"
#include "snapback/ops.h"
#include "snapback/zone.h"
#include "test.h"

static const char *const times[] = {
    "2026-11-24T14:00:00Z", /* 1 Tue, ISO week 48 */
    "2026-11-24T13:00:00Z", /* 2 */
    "2026-11-24T10:00:00Z", /* 3 */
    "2026-11-23T23:00:00Z", /* 4 Mon, week 48 */
    "2026-11-23T08:00:00Z", /* 5 */
    "2026-11-20T12:00:00Z", /* 6 Fri, week 47 */
    "2026-11-16T12:00:00Z", /* 7 Mon, week 47 */
    "2026-10-31T12:00:00Z", /* 8 */
    "2026-10-01T12:00:00Z", /* 9 */
    "2025-12-31T12:00:00Z", /* 10 */
};
#define N (sizeof(times) / sizeof(times[0]))

struct retention_case {
    const char *name;
    int last, hourly, daily, weekly, monthly, yearly;
    int64_t within;
    int keep_tagged;  /* 1-based index of a snapshot tagged "keep", 0 for none */
    const char *kept; /* 1-based indexes, comma-separated */
};

static const struct retention_case cases[] = {
    {"keep_last 3", 3, 0, 0, 0, 0, 0, 0, 0, "1,2,3"},
    {"keep_last 20 (more than there are)", 20, 0, 0, 0, 0, 0, 0, 0, "1,2,3,4,5,6,7,8,9,10"},
    {"keep_hourly 2", 0, 2, 0, 0, 0, 0, 0, 0, "1,2"},
    {"keep_hourly 5", 0, 5, 0, 0, 0, 0, 0, 0, "1,2,3,4,5"},
    {"keep_daily 3", 0, 0, 3, 0, 0, 0, 0, 0, "1,4,6"},
    {"keep_daily 5", 0, 0, 5, 0, 0, 0, 0, 0, "1,4,6,7,8"},
    {"keep_weekly 2", 0, 0, 0, 2, 0, 0, 0, 0, "1,6"},
    {"keep_monthly 3", 0, 0, 0, 0, 3, 0, 0, 0, "1,8,10"},
    {"keep_yearly 2", 0, 0, 0, 0, 0, 2, 0, 0, "1,10"},
    {"keep_within 1d", 0, 0, 0, 0, 0, 0, 86400, 0, "1,2,3,4"},
    {"keep_within 30d", 0, 0, 0, 0, 0, 0, 30 * 86400, 0, "1,2,3,4,5,6,7,8"},
    {"daily 2 + monthly 2", 0, 0, 2, 0, 2, 0, 0, 0, "1,4,8"},
    {"last 1 + weekly 3", 1, 0, 0, 3, 0, 0, 0, 0, "1,6,8"},
    {"tag keep survives", 1, 0, 0, 0, 0, 0, 0, 9, "1,9"},
    {"newest always (only yearly 1)", 0, 0, 0, 0, 0, 1, 0, 0, "1"},
    {"hourly 3 + daily 2 + yearly 1", 0, 3, 2, 0, 0, 1, 0, 0, "1,2,3,4"},
};

static void
test_retention_table(void)
{
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const struct retention_case *rc = &cases[c];
        struct sb_config cfg;
        memset(&cfg, 0, sizeof(cfg));
        cfg.retention.keep_last = rc->last;
        cfg.retention.keep_hourly = rc->hourly;
        cfg.retention.keep_daily = rc->daily;
        cfg.retention.keep_weekly = rc->weekly;
        cfg.retention.keep_monthly = rc->monthly;
        cfg.retention.keep_yearly = rc->yearly;
        cfg.retention.keep_within_s = rc->within;
        struct sb_prune_item items[N];
        memset(items, 0, sizeof(items));
        for (size_t idx = 0; idx < N; idx++) {
            snprintf(items[idx].id, sizeof(items[idx].id), "s%zu", idx + 1);
            if (sb_parse_time_iso(times[idx], &items[idx].created_at) < 0)
                TEST_FAIL("bad time %s", times[idx]);
            if (rc->keep_tagged == (int)idx + 1)
                snprintf(items[idx].tag, sizeof(items[idx].tag), "keep");
        }
        sb_retention_apply(&cfg, NULL, items, N);
        char kept[64] = "";
        for (size_t idx = 0; idx < N; idx++)
            if (items[idx].keep) {
                size_t len = strlen(kept);
                snprintf(kept + len, sizeof(kept) - len, "%s%zu", len ? "," : "", idx + 1);
            }
        if (strcmp(kept, rc->kept) != 0)
            TEST_FAIL("%s: kept %s, want %s", rc->name, kept, rc->kept);
    }
}

static void
test_reasons(void)
{
    struct sb_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.retention.keep_last = 2;
    cfg.retention.keep_daily = 2;
    struct sb_prune_item items[N];
    memset(items, 0, sizeof(items));
    for (size_t idx = 0; idx < N; idx++)
        sb_parse_time_iso(times[idx], &items[idx].created_at);
    sb_retention_apply(&cfg, NULL, items, N);
    EXPECT_STR(items[0].reasons, "newest, last, daily");
    EXPECT_STR(items[1].reasons, "last");
    EXPECT_STR(items[3].reasons, "daily");
    EXPECT(!items[2].keep);
}

/* Days are the schedule zone's: 23:30 and 00:30 UTC are one day in New York (UTC-5), two in
 * UTC (the process's TZ here), so keep_daily=1 keeps one or two of them. */
static void
test_zone_days(void)
{
    struct sb_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.retention.keep_daily = 2;
    struct sb_prune_item items[3];
    memset(items, 0, sizeof(items));
    sb_parse_time_iso("2026-01-02T00:30:00Z", &items[0].created_at);
    sb_parse_time_iso("2026-01-01T23:30:00Z", &items[1].created_at);
    sb_parse_time_iso("2026-01-01T12:00:00Z", &items[2].created_at);
    sb_retention_apply(&cfg, NULL, items, 3);
    EXPECT(items[0].keep && items[1].keep && !items[2].keep); /* UTC: Jan 2, Jan 1, Jan 1 */
    struct sb_zone *ny = NULL;
    struct sb_error err = SB_ERROR_INIT;
    EXPECT_OK(sb_zone_load("America/New_York", &ny, &err), &err);
    if (!ny)
        return;
    memset(items, 0, sizeof(items));
    sb_parse_time_iso("2026-01-02T00:30:00Z", &items[0].created_at);
    sb_parse_time_iso("2026-01-01T23:30:00Z", &items[1].created_at);
    sb_parse_time_iso("2026-01-01T12:00:00Z", &items[2].created_at);
    sb_retention_apply(&cfg, ny, items, 3);
    /* New York: Jan 1 19:30, Jan 1 18:30, Jan 1 07:00: one day, then nothing older */
    EXPECT(items[0].keep && !items[1].keep && !items[2].keep);
    sb_zone_free(ny);
}

int
main(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    RUN(test_retention_table);
    RUN(test_reasons);
    RUN(test_zone_days);
    return test_summary();
}
