/* Time zones read from their TZif files (RFC 8536) under /usr/share/zoneinfo, so that the
 * scheduler can compute UTC offsets in a named zone (schedule.timezone) without touching the
 * process's TZ: no setenv/tzset, nothing global, safe beside other threads. */
#ifndef SNAPBACK_ZONE_H
#define SNAPBACK_ZONE_H

#include <stdbool.h>
#include <stdint.h>

#include "snapback/error.h"

struct sb_zone;

/* Loads the zone named `name` (an IANA name such as "Europe/Berlin": relative, without
 * ".."). SB_E_CONFIG "time zone 'NAME': unknown" when there is no such zone file, SB_E_CORRUPT
 * when the file is not valid TZif. *out is the caller's (sb_zone_free). */
int sb_zone_load(const char *name, struct sb_zone **out, struct sb_error *err);
/* Parses a TZif image already in memory (for tests); `name` is for messages. */
int sb_zone_parse(const unsigned char *data, size_t len, const char *name, struct sb_zone **out,
                  struct sb_error *err);
/* The UTC offset (seconds east) in force at instant t. */
int64_t sb_zone_offset(const struct sb_zone *zone, int64_t t);
void sb_zone_free(struct sb_zone *zone);
/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
int64_t sb_days_from_civil(int64_t year, int month, int day);

#endif
