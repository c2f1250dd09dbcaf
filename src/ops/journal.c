/* The journal: state_dir/journal.jsonl, one JSON object per line for every snapshot,
 * restore, verify (and later upload, prune, rollback), with its outcome. It is appended with
 * O_APPEND and fsynced; a torn last line after a crash is skipped by readers. */
#include "snapback/ops.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "snapback/core.h"

int
sb_journal_append(const char *state_dir, const char *event, const char *outcome,
                  const char *snapshot, const char *detail, double duration_s,
                  struct sb_error *err)
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
