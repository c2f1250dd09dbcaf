/* Metrics (DESIGN §9): after every job, the Prometheus text file named by metrics_file is
 * rewritten atomically (node_exporter's textfile collector reads it): per job, the time of
 * the last run and of the last success, its duration, bytes stored, objects written, the
 * warnings it logged, and a failures counter. Counters live in state_dir/metrics.json so they
 * survive between runs. */
#include "snapback/ops.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapback/core.h"

static const char *const jobs[] = {"snapshot", "prune", "verify", "rollback", "restore"};
#define JOB_COUNT (sizeof(jobs) / sizeof(jobs[0]))

static double
num(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static void
set_num(cJSON *obj, const char *key, double value)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (v)
        cJSON_SetNumberValue(v, value);
    else
        cJSON_AddNumberToObject(obj, key, value);
}

int
sb_metrics_record(const struct sb_config *cfg, const char *job, bool ok, double duration_s,
                  uint64_t bytes, uint64_t objects, unsigned warnings, struct sb_error *err)
{
    if (!cfg->metrics_file)
        return 0;
    char *state_path = sb_path_join(cfg->state_dir, "metrics.json");
    char *text = NULL, *out = NULL;
    cJSON *root = NULL;
    int rc = -1;
    if (!state_path) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    struct sb_error rerr = SB_ERROR_INIT;
    if (sb_read_file(state_path, 1 << 20, &text, NULL, &rerr) == 0)
        root = cJSON_Parse(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        root = cJSON_CreateObject();
    }
    cJSON *j = cJSON_GetObjectItemCaseSensitive(root, job);
    if (!cJSON_IsObject(j)) {
        cJSON_DeleteItemFromObjectCaseSensitive(root, job);
        j = cJSON_AddObjectToObject(root, job);
    }
    if (!j) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    double now = (double)time(NULL);
    set_num(j, "last_run", now);
    set_num(j, "last_duration", duration_s);
    set_num(j, "last_warnings", (double)warnings);
    if (ok) {
        set_num(j, "last_success", now);
        set_num(j, "last_bytes", (double)bytes);
        set_num(j, "last_objects", (double)objects);
        set_num(j, "runs_ok", num(j, "runs_ok") + 1);
    } else {
        set_num(j, "failures", num(j, "failures") + 1);
    }
    free(text);
    text = cJSON_PrintUnformatted(root);
    if (!text || sb_mkdir_p(cfg->state_dir, 0700, err) < 0 ||
        sb_write_file_atomic(state_path, text, strlen(text), 0600, err) < 0)
        goto out;

    size_t cap = 8192, len = 0;
    out = malloc(cap);
    if (!out) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    static const struct {
        const char *key, *name, *type, *help;
    } series[] = {
        {"last_run", "snapback_last_run_timestamp_seconds", "gauge", "Time of the last run."},
        {"last_success", "snapback_last_success_timestamp_seconds", "gauge",
         "Time of the last successful run."},
        {"last_duration", "snapback_last_duration_seconds", "gauge", "Duration of the last run."},
        {"last_bytes", "snapback_last_stored_bytes", "gauge",
         "Bytes stored by the last successful run."},
        {"last_objects", "snapback_last_objects", "gauge",
         "Objects written by the last successful run."},
        {"last_warnings", "snapback_last_warnings", "gauge",
         "Warnings the last run logged (files that vanished or changed while read, ...)."},
        {"failures", "snapback_failures_total", "counter", "Failed runs."},
    };
    for (size_t s = 0; s < sizeof(series) / sizeof(series[0]); s++) {
        len += (size_t)snprintf(out + len, cap - len, "# HELP %s %s\n# TYPE %s %s\n",
                                series[s].name, series[s].help, series[s].name, series[s].type);
        for (size_t k = 0; k < JOB_COUNT; k++) {
            const cJSON *jj = cJSON_GetObjectItemCaseSensitive(root, jobs[k]);
            if (!cJSON_IsObject(jj))
                continue;
            len += (size_t)snprintf(out + len, cap - len, "%s{app=\"%s\",job=\"%s\"} %.3f\n",
                                    series[s].name, cfg->app, jobs[k], num(jj, series[s].key));
            if (len >= cap - 256)
                break;
        }
    }
    if (sb_write_file_atomic(cfg->metrics_file, out, len, 0644, err) < 0) {
        sb_error_wrap(err, "metrics_file");
        goto out;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    free(text);
    free(out);
    free(state_path);
    return rc;
}
