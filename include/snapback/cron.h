/* Cron expressions for the scheduler (DESIGN §9): 5 fields (minute hour day-of-month month
 * day-of-week) with '*', lists, ranges, steps and names (jan..dec, sun..sat), and the macros
 * @hourly @daily @weekly @monthly @yearly (@annually). Next fire times are computed in the
 * local time zone or a named one, with DST gaps and repeats handled as cronie does. */
#ifndef SNAPBACK_CRON_H
#define SNAPBACK_CRON_H

#include <stdbool.h>
#include <time.h>

#include "snapback/error.h"

struct sb_cron;

/* Parses expr. On error (SB_E_CONFIG) the message names the field, e.g.
 * "minute field '61': value out of range 0-59". *out is owned by the caller. */
int sb_cron_parse(const char *expr, struct sb_cron **out, struct sb_error *err);
/* The first fire time strictly after `after`. tz is an IANA zone name ("Europe/Berlin") or
 * NULL for the process's local zone. */
int sb_cron_next(const struct sb_cron *cron, time_t after, const char *tz, time_t *next,
                 struct sb_error *err);
void sb_cron_free(struct sb_cron *cron);
/* Whether tz names a time zone file (TZif) under /usr/share/zoneinfo; relative names only,
 * without "..". */
bool sb_cron_zone_exists(const char *tz);

#endif
