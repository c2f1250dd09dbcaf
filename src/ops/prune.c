/* Prune (DESIGN §9): the retention policy decides which snapshots stay, as restic's `forget`
 * does (keep_last, keep_hourly/daily/weekly/monthly/yearly: the newest snapshot of each of
 * the last N periods that have one, in local time; keep_within: everything within that
 * duration of the newest snapshot). The newest snapshot and those tagged "keep" always stay.
 * Manifests are deleted first and objects after, so a crash mid-prune never leaves a
 * snapshot with missing objects; objects that no surviving manifest references are deleted
 * once older than a grace period (an orphan younger than that may belong to a snapshot in
 * progress on another host). */
#include "snapback/ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapback/core.h"
#include "snapback/zone.h"

#define ORPHAN_GRACE_S (6 * 3600)

struct bucket_rule {
    const char *name;
    int count;
    int period; /* 0 hour, 1 day, 2 ISO week, 3 month, 4 year */
};

/* A key that is equal for two times in the same period (local time, as restic does). */
static void
period_key(const struct tm *tm, int period, char *key, size_t cap)
{
    switch (period) {
    case 0:
        strftime(key, cap, "%Y-%m-%d %H", tm);
        break;
    case 1:
        strftime(key, cap, "%Y-%m-%d", tm);
        break;
    case 2:
        strftime(key, cap, "%G-%V", tm);
        break;
    case 3:
        strftime(key, cap, "%Y-%m", tm);
        break;
    default:
        strftime(key, cap, "%Y", tm);
        break;
    }
}

static int
keep_add(struct sb_prune_item *item, const char *reason)
{
    size_t len = strlen(item->reasons);
    snprintf(item->reasons + len, sizeof(item->reasons) - len, "%s%s", len ? ", " : "", reason);
    item->keep = true;
    return 0;
}

void
sb_retention_apply(const struct sb_config *cfg, const struct sb_zone *zone,
                   struct sb_prune_item *items, size_t n)
{
    if (n == 0)
        return;
    int keep_last = cfg->retention.keep_last;
    int64_t keep_within = cfg->retention.keep_within_s;
    keep_add(&items[0], "newest");
    for (size_t idx = 0; idx < n; idx++) {
        struct sb_prune_item *it = &items[idx];
        if (!strcmp(it->tag, "keep"))
            keep_add(it, "tag keep");
        if ((int)idx < keep_last)
            keep_add(it, "last");
        if (keep_within && items[0].created_at - it->created_at <= keep_within)
            keep_add(it, "within");
    }
    const struct bucket_rule rules[] = {
        {"hourly", cfg->retention.keep_hourly, 0}, {"daily", cfg->retention.keep_daily, 1},
        {"weekly", cfg->retention.keep_weekly, 2}, {"monthly", cfg->retention.keep_monthly, 3},
        {"yearly", cfg->retention.keep_yearly, 4},
    };
    for (size_t rule = 0; rule < sizeof(rules) / sizeof(rules[0]); rule++) {
        int left = rules[rule].count;
        char last[32] = "";
        for (size_t idx = 0; idx < n && left > 0; idx++) {
            struct tm tm;
            char key[32];
            if (zone) {
                time_t local = (time_t)(items[idx].created_at +
                                        sb_zone_offset(zone, (int64_t)items[idx].created_at));
                gmtime_r(&local, &tm);
            } else {
                localtime_r(&items[idx].created_at, &tm);
            }
            period_key(&tm, rules[rule].period, key, sizeof(key));
            if (strcmp(key, last) == 0)
                continue; /* an older snapshot of a period already kept */
            snprintf(last, sizeof(last), "%s", key);
            keep_add(&items[idx], rules[rule].name);
            left--;
        }
    }
}

int
sb_prune_plan(const struct sb_config *cfg, struct sb_repo *repo, struct sb_prune_result *res,
              struct sb_error *err)
{
    memset(res, 0, sizeof(*res));
    int keep_last = cfg->retention.keep_last;
    int64_t keep_within = cfg->retention.keep_within_s;
    if (!keep_last && !cfg->retention.keep_hourly && !cfg->retention.keep_daily &&
        !cfg->retention.keep_weekly && !cfg->retention.keep_monthly &&
        !cfg->retention.keep_yearly && !keep_within)
        return sb_error_set(err, SB_E_CONFIG, 0,
                            "retention: no rule is set; refusing to prune (set keep_last, "
                            "keep_daily, ... in the config)");
    char **ids = NULL;
    size_t n = 0;
    if (sb_repo_list_ids(repo, &ids, &n, err) < 0)
        return -1;
    res->items = calloc(n ? n : 1, sizeof(*res->items));
    if (!res->items) {
        sb_store_names_free(ids, n);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    /* newest first, as the rules count from the newest */
    for (size_t idx = 0; idx < n; idx++) {
        struct sb_prune_item *it = &res->items[idx];
        struct sb_manifest *m = NULL;
        snprintf(it->id, sizeof(it->id), "%s", ids[n - 1 - idx]);
        if (sb_repo_load_manifest_cached(repo, it->id, &m, err) < 0) {
            /* An unreadable manifest might reference anything: deleting objects is unsafe. */
            sb_error_wrap(err,
                          "prune stopped, nothing deleted: snapshot '%s' cannot be read "
                          "(run 'snapback verify %s')",
                          it->id, it->id);
            res->count = idx;
            sb_store_names_free(ids, n);
            return -1;
        }
        it->created_at = m->created_at;
        snprintf(it->tag, sizeof(it->tag), "%s", m->tag ? m->tag : "");
        sb_manifest_free(m);
    }
    res->count = n;
    sb_store_names_free(ids, n);
    if (n == 0)
        return 0;

    /* periods in the schedule's time zone when one is set, as the daemon fires in it */
    struct sb_zone *zone = NULL;
    if (cfg->schedule.timezone && sb_zone_load(cfg->schedule.timezone, &zone, err) < 0) {
        sb_store_names_free(ids, n);
        return sb_error_wrap(err, "schedule.timezone");
    }
    sb_retention_apply(cfg, zone, res->items, n);
    sb_zone_free(zone);
    for (size_t idx = 0; idx < n; idx++)
        if (!res->items[idx].keep)
            res->removed++;
    return 0;
}

static int
add_name(char ***list, size_t *count, size_t *cap, const char *name)
{
    if (*count == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        char **p = realloc(*list, *cap * sizeof(*p));
        if (!p)
            return -1;
        *list = p;
    }
    if (!((*list)[*count] = sb_strdup(name)))
        return -1;
    (*count)++;
    return 0;
}

static bool
in_list(char **list, size_t count, const char *name)
{
    for (size_t idx = 0; idx < count; idx++)
        if (!strcmp(list[idx], name))
            return true;
    return false;
}

/* Whether this run deleted the manifest of snapshot id. */
static bool
removed_now(const struct sb_prune_result *res, const char *id)
{
    for (size_t idx = 0; idx < res->count; idx++)
        if (!res->items[idx].keep && !strcmp(res->items[idx].id, id))
            return true;
    return false;
}

/* Removes one stored object if unreferenced and, with grace, old enough. */
static int
sweep_one(struct sb_repo *repo, const char *rel, char **refs, size_t nrefs, time_t now, bool grace,
          struct sb_prune_result *res, struct sb_error *err)
{
    size_t len = strlen(rel);
    /* leftovers of killed uploads: NAME.partial, and NAME.replaced-* of the SFTP store */
    bool partial = (len > 8 && !strcmp(rel + len - 8, ".partial")) || strstr(rel, ".replaced-");
    if (!partial && in_list(refs, nrefs, rel))
        return 0;
    const char *aside = strstr(rel, ".replaced-");
    if (aside) {
        /* NAME.replaced-* is the only copy when the replacement of NAME was cut short: a stat
         * of NAME puts it back (sb_store_stat), and then there is nothing to sweep */
        char *base = strndup(rel, (size_t)(aside - rel));
        char *base_path = base ? sb_repo_object_path(repo, base) : NULL;
        struct sb_store_stat bst;
        int r = base_path ? sb_store_stat(repo->store, base_path, &bst, err)
                          : sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        free(base);
        free(base_path);
        if (r < 0)
            return -1;
    }
    char *path = sb_repo_object_path(repo, rel);
    struct sb_store_stat st;
    int rc = -1;
    if (!path)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    if (sb_store_stat(repo->store, path, &st, err) < 0)
        goto out;
    if (!st.exists || st.is_dir || (grace && now - st.mtime < ORPHAN_GRACE_S)) {
        rc = 0;
        goto out;
    }
    if (sb_store_remove(repo->store, path, err) < 0)
        goto out;
    sb_test_kill_point("prune-remove");
    res->objects_deleted++;
    res->bytes_freed += st.size;
    rc = 0;
out:
    free(path);
    return rc;
}

int
sb_prune_execute(struct sb_repo *repo, struct sb_prune_result *res, struct sb_error *err)
{
    /* 1. manifests of removed snapshots: from then on those snapshots no longer exist */
    for (size_t idx = 0; idx < res->count; idx++) {
        if (res->items[idx].keep)
            continue;
        char name[128];
        snprintf(name, sizeof(name), "%s/snapshots/%s.manifest", repo->app, res->items[idx].id);
        if (sb_store_remove(repo->store, name, err) < 0)
            return sb_error_wrap(err, "prune");
        sb_test_kill_point("prune-remove");
        if (sb_catalog_remove(repo, res->items[idx].id, err) < 0)
            return sb_error_wrap(err, "prune");
        sb_test_kill_point("prune-remove");
        res->snapshots_deleted++;
    }
    /* 2. the objects every surviving manifest references (all of them, not only the ones
     * this policy looked at: re-read the repository) */
    char **ids = NULL, **refs = NULL, **names = NULL, **sub = NULL;
    size_t nids = 0, nrefs = 0, crefs = 0, nnames = 0, nsub = 0;
    int rc = -1;
    if (sb_repo_list_ids(repo, &ids, &nids, err) < 0)
        goto out;
    for (size_t idx = 0; idx < nids; idx++) {
        struct sb_manifest *m = NULL;
        if (sb_repo_load_manifest_cached(repo, ids[idx], &m, err) < 0) {
            sb_error_wrap(err, "prune deleted manifests but stopped before deleting objects");
            goto out;
        }
        for (size_t o = 0; o < m->object_count; o++)
            if (add_name(&refs, &nrefs, &crefs, m->objects[o].name) < 0) {
                sb_manifest_free(m);
                sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
                goto out;
            }
        sb_manifest_free(m);
    }
    /* 3. sweep releases/ and data/<ID>/ (and catalog entries of snapshots that never got
     * their manifest) */
    time_t now = time(NULL);
    if (sb_catalog_sweep(repo, ids, nids, now - ORPHAN_GRACE_S, err) < 0)
        goto out;
    char dir[256];
    snprintf(dir, sizeof(dir), "%s/releases", repo->app);
    if (sb_store_list(repo->store, dir, &names, &nnames, err) < 0)
        goto out;
    for (size_t idx = 0; idx < nnames; idx++) {
        char rel[512];
        snprintf(rel, sizeof(rel), "releases/%s", names[idx]);
        if (sweep_one(repo, rel, refs, nrefs, now, true, res, err) < 0)
            goto out;
    }
    sb_store_names_free(names, nnames);
    names = NULL;
    nnames = 0;
    snprintf(dir, sizeof(dir), "%s/data", repo->app);
    if (sb_store_list(repo->store, dir, &names, &nnames, err) < 0)
        goto out;
    for (size_t idx = 0; idx < nnames; idx++) {
        char subdir[512];
        snprintf(subdir, sizeof(subdir), "%s/data/%s", repo->app, names[idx]);
        if (sb_store_list(repo->store, subdir, &sub, &nsub, err) < 0)
            goto out;
        size_t left = nsub;
        /* The data of a snapshot whose manifest this run deleted goes at once: no other
         * snapshot references another's data/<ID>/, and a snapshot in progress has an ID no
         * manifest has yet. Without this, prune on a full disk freed nothing for hours. */
        bool grace = !removed_now(res, names[idx]);
        for (size_t s = 0; s < nsub; s++) {
            char rel[768];
            snprintf(rel, sizeof(rel), "data/%s/%s", names[idx], sub[s]);
            uint64_t before = res->objects_deleted;
            if (sweep_one(repo, rel, refs, nrefs, now, grace, res, err) < 0)
                goto out;
            if (res->objects_deleted > before)
                left--;
        }
        sb_store_names_free(sub, nsub);
        sub = NULL;
        nsub = 0;
        if (left == 0) /* an empty data/<ID>/ */
        {
            sb_store_remove(repo->store, subdir, NULL);
            sb_test_kill_point("prune-remove");
        }
    }
    /* stale partial manifests */
    sb_store_names_free(names, nnames);
    names = NULL;
    nnames = 0;
    snprintf(dir, sizeof(dir), "%s/snapshots", repo->app);
    if (sb_store_list(repo->store, dir, &names, &nnames, err) < 0)
        goto out;
    for (size_t idx = 0; idx < nnames; idx++) {
        size_t len = strlen(names[idx]);
        if ((len > 8 && !strcmp(names[idx] + len - 8, ".partial")) ||
            strstr(names[idx], ".replaced-")) {
            char rel[512];
            snprintf(rel, sizeof(rel), "snapshots/%s", names[idx]);
            if (sweep_one(repo, rel, refs, nrefs, now, true, res, err) < 0)
                goto out;
        }
    }
    rc = 0;
out:
    sb_store_names_free(ids, nids);
    sb_store_names_free(refs, nrefs);
    sb_store_names_free(names, nnames);
    sb_store_names_free(sub, nsub);
    return rc;
}

void
sb_prune_result_release(struct sb_prune_result *res)
{
    free(res->items);
    memset(res, 0, sizeof(*res));
}
