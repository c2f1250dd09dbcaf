/* Logging: human text on stderr by default, or one JSON object per line (--log-format json)
 * with level, time, event, app, snapshot and message, for log shippers. Nothing here ever
 * receives a secret: callers log names and paths, never key material or passwords. */
#include "snapback/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum sb_log_level min_level = SB_LOG_INFO;
static enum sb_log_format log_format = SB_LOG_TEXT;
/* Copies, so the context outlives the config it came from (the final error of a run is
 * logged after the config was freed). */
static char ctx_app_buf[128], ctx_snapshot_buf[64];
static const char *ctx_app;
static const char *ctx_snapshot;

void
sb_log_setup(enum sb_log_level level, enum sb_log_format format)
{
    min_level = level;
    log_format = format;
}

void
sb_log_set_context(const char *app, const char *snapshot)
{
    ctx_app = NULL;
    ctx_snapshot = NULL;
    if (app) {
        snprintf(ctx_app_buf, sizeof(ctx_app_buf), "%s", app);
        ctx_app = ctx_app_buf;
    }
    if (snapshot) {
        snprintf(ctx_snapshot_buf, sizeof(ctx_snapshot_buf), "%s", snapshot);
        ctx_snapshot = ctx_snapshot_buf;
    }
}

bool
sb_log_enabled(enum sb_log_level level)
{
    return level >= min_level;
}

static const char *const level_names[] = {"debug", "info", "warning", "error"};

static void
json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

static unsigned warning_count;

unsigned
sb_log_warning_count(void)
{
    return warning_count;
}

void
sb_log(enum sb_log_level level, const char *event, const char *fmt, ...)
{
    if (level == SB_LOG_WARN)
        warning_count++;
    if (level < min_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sb_progress_clear();
    if (log_format == SB_LOG_JSON) {
        char ts[32];
        sb_format_time_iso(time(NULL), ts);
        fprintf(stderr, "{\"time\":\"%s\",\"level\":\"%s\"", ts, level_names[level]);
        if (event) {
            fputs(",\"event\":", stderr);
            json_string(stderr, event);
        }
        if (ctx_app) {
            fputs(",\"app\":", stderr);
            json_string(stderr, ctx_app);
        }
        if (ctx_snapshot) {
            fputs(",\"snapshot\":", stderr);
            json_string(stderr, ctx_snapshot);
        }
        fputs(level >= SB_LOG_ERROR ? ",\"error\":" : ",\"message\":", stderr);
        json_string(stderr, msg);
        fputs("}\n", stderr);
    } else {
        if (level == SB_LOG_INFO)
            fprintf(stderr, "snapback: %s\n", msg);
        else
            fprintf(stderr, "snapback: %s: %s\n", level_names[level], msg);
    }
    fflush(stderr);
}
