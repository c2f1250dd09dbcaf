/* The journal: state_dir/journal.jsonl, one JSON object per line for every snapshot,
 * restore, verify (and later upload, prune, rollback), with its outcome. It is appended with
 * O_APPEND and fsynced; a torn last line after a crash is skipped by readers. */
#include "snapback/ops.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snapback/core.h"

int
sb_journal_append(const char *state_dir, const char *event, const char *outcome,
                  const char *snapshot, const char *detail, double duration_s, struct sb_error *err)
{
    char ts[32];
    sb_format_time_iso(time(NULL), ts);
    cJSON *line = cJSON_CreateObject();
    if (!line)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    cJSON_AddStringToObject(line, "time", ts);
    cJSON_AddStringToObject(line, "event", event);
    cJSON_AddStringToObject(line, "outcome", outcome);
    if (snapshot)
        cJSON_AddStringToObject(line, "snapshot", snapshot);
    if (detail)
        cJSON_AddStringToObject(line, "detail", detail);
    cJSON_AddNumberToObject(line, "duration_s", (double)(long long)(duration_s * 1000) / 1000.0);
    char *text = cJSON_PrintUnformatted(line);
    cJSON_Delete(line);
    if (!text)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    int rc = -1;
    char *path = sb_path_join(state_dir, "journal.jsonl");
    int fd = -1;
    if (!path) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    if (sb_mkdir_p(state_dir, 0700, err) < 0)
        goto out;
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        sb_error_set(err, sb_error_from_errno(errno), errno, "cannot open journal '%s'", path);
        goto out;
    }
    size_t len = strlen(text);
    text[len] = '\n';
    if (write(fd, text, len + 1) != (ssize_t)(len + 1) || fsync(fd) < 0) {
        sb_error_set(err, SB_E_IO, errno, "cannot append to journal '%s'", path);
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(path);
    free(text);
    return rc;
}

/* Reads the last 1 MiB of the journal and keeps, for each event asked, its newest entry (and
 * its newest successful one). Torn or foreign lines are skipped. */
int
sb_journal_last(const char *state_dir, const char *event, struct sb_journal_entry *last,
                struct sb_journal_entry *last_ok, struct sb_error *err)
{
    memset(last, 0, sizeof(*last));
    memset(last_ok, 0, sizeof(*last_ok));
    char *path = sb_path_join(state_dir, "journal.jsonl");
    if (!path)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    free(path);
    if (fd < 0)
        return errno == ENOENT ? 0 : sb_error_set(err, SB_E_IO, errno, "cannot read the journal");
    off_t size = lseek(fd, 0, SEEK_END);
    off_t start = size > (1 << 20) ? size - (1 << 20) : 0;
    size_t len = (size_t)(size - start);
    char *buf = malloc(len + 1);
    if (!buf || pread(fd, buf, len, start) != (ssize_t)len) {
        free(buf);
        close(fd);
        return sb_error_set(err, SB_E_IO, errno, "cannot read the journal");
    }
    close(fd);
    buf[len] = '\0';
    char *save = NULL;
    for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
        if (cJSON_IsString(ev) && !strcmp(ev->valuestring, event)) {
            struct sb_journal_entry e;
            memset(&e, 0, sizeof(e));
            e.present = true;
            const cJSON *f;
            if (cJSON_IsString(f = cJSON_GetObjectItemCaseSensitive(j, "time")))
                sb_parse_time_iso(f->valuestring, &e.time);
            if (cJSON_IsString(f = cJSON_GetObjectItemCaseSensitive(j, "outcome")))
                snprintf(e.outcome, sizeof(e.outcome), "%s", f->valuestring);
            if (cJSON_IsString(f = cJSON_GetObjectItemCaseSensitive(j, "snapshot")))
                snprintf(e.snapshot, sizeof(e.snapshot), "%s", f->valuestring);
            if (cJSON_IsString(f = cJSON_GetObjectItemCaseSensitive(j, "detail")))
                snprintf(e.detail, sizeof(e.detail), "%s", f->valuestring);
            if (cJSON_IsNumber(f = cJSON_GetObjectItemCaseSensitive(j, "duration_s")))
                e.duration_s = f->valuedouble;
            *last = e;
            if (!strcmp(e.outcome, "ok"))
                *last_ok = e;
        }
        cJSON_Delete(j);
    }
    free(buf);
    return 0;
}
