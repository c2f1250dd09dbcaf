/* Releases and rollback (DESIGN §7). The live release is whatever `current` points to; a
 * rollback makes the target release present (restoring it from the repository when it is no
 * longer on disk), optionally brings the database back to a snapshot taken while that release
 * was live, switches `current` with one rename(2), and checks the app's health, putting the
 * previous state back when the check fails. A safety snapshot taken first makes the rollback
 * itself undoable. */
#include "snapback/ops.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapback/core.h"
#include "snapback/hooks.h"

#define HEALTH_RETRY_S 2

int
sb_release_current(const struct sb_config *cfg, char **name, struct sb_error *err)
{
    char *link = sb_path_join(cfg->release.root, cfg->release.current);
    char *releases = sb_path_join(cfg->release.root, cfg->release.releases_dir);
    char target[PATH_MAX], real_target[PATH_MAX], real_releases[PATH_MAX];
    int rc = -1;
    if (!link || !releases) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 0) {
        if (errno == EINVAL)
            sb_error_set(err, SB_E_CONFIG, 0,
                         "'%s' is not a symlink; release.current must name the symlink to the "
                         "live release",
                         link);
        else
            sb_error_set(err, errno == ENOENT ? SB_E_CONFIG : sb_error_from_errno(errno), errno,
                         "cannot read symlink '%s' (release.current)", link);
        goto out;
    }
    target[n] = '\0';
    if (!realpath(link, real_target)) {
        sb_error_set(err, SB_E_CONFIG, errno, "'%s' points to '%s', which cannot be resolved", link,
                     target);
        goto out;
    }
    if (!realpath(releases, real_releases)) {
        sb_error_set(err, SB_E_CONFIG, errno, "releases directory '%s'", releases);
        goto out;
    }
    size_t rl = strlen(real_releases);
    if (strncmp(real_target, real_releases, rl) != 0 || real_target[rl] != '/' ||
        strchr(real_target + rl + 1, '/') != NULL) {
        sb_error_set(err, SB_E_CONFIG, 0,
                     "'%s' points to '%s', which is not a release directly inside '%s'", link,
                     target, releases);
        goto out;
    }
    if (!(*name = sb_strdup(real_target + rl + 1))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    rc = 0;
out:
    free(link);
    free(releases);
    return rc;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
sb_release_list(const struct sb_config *cfg, char ***names, size_t *count, struct sb_error *err)
{
    *names = NULL;
    *count = 0;
    char *dir = sb_path_join(cfg->release.root, cfg->release.releases_dir);
    if (!dir)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (!d) {
        sb_error_set(err, SB_E_CONFIG, errno, "cannot list releases directory '%s'", dir);
        free(dir);
        return -1;
    }
    int rc = 0;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        struct stat st;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (*count == cap) {
            cap = cap ? cap * 2 : 16;
            char **p = realloc(*names, cap * sizeof(*p));
            if (!p) {
                rc = sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
                break;
            }
            *names = p;
        }
        if (!((*names)[*count] = sb_strdup(de->d_name))) {
            rc = sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            break;
        }
        (*count)++;
    }
    closedir(d);
    free(dir);
    if (rc == 0 && *count)
        qsort(*names, *count, sizeof(**names), name_cmp);
    return rc;
}

int
sb_release_switch(const struct sb_config *cfg, const char *name, struct sb_error *err)
{
    char link[PATH_MAX], tmp[PATH_MAX], old[PATH_MAX], target[PATH_MAX];
    snprintf(link, sizeof(link), "%s/%s", cfg->release.root, cfg->release.current);
    ssize_t n = readlink(link, old, sizeof(old) - 1);
    bool absolute = n > 0 && old[0] == '/';
    /* Keep the style of the existing link; a relative one is only right when `current`
     * sits directly in the root. */
    if (absolute || strchr(cfg->release.current, '/'))
        snprintf(target, sizeof(target), "%s/%s/%s", cfg->release.root, cfg->release.releases_dir,
                 name);
    else
        snprintf(target, sizeof(target), "%s/%s", cfg->release.releases_dir, name);
    if (snprintf(tmp, sizeof(tmp), "%s.snapback-tmp-%ld", link, (long)getpid()) >= (int)sizeof(tmp))
        return sb_error_set(err, SB_E_CONFIG, 0, "path '%s' is too long", link);
    unlink(tmp);
    if (symlink(target, tmp) < 0)
        return sb_error_set(err, SB_E_CANTCREATE, errno, "cannot create symlink '%s'", tmp);
    if (rename(tmp, link) < 0) {
        int e = errno;
        unlink(tmp);
        return sb_error_set(err, SB_E_IO, e, "cannot switch '%s' to '%s'", link, target);
    }
    return sb_fsync_parent(link, err);
}

/* --- planning --- */

static void
join_names(char **names, size_t n, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t idx = 0; idx < n; idx++) {
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%s", idx ? ", " : "", names[idx]);
    }
    if (n == 0)
        snprintf(out, cap, "none");
}

/* The newest snapshot whose release is `release` (with databases when need_db). */
static int
find_snapshot_for_release(struct sb_repo *repo, const char *release, bool need_db, char **id,
                          size_t *db_count, struct sb_error *err)
{
    char **ids = NULL;
    size_t n = 0;
    *id = NULL;
    if (sb_repo_list_ids(repo, &ids, &n, err) < 0)
        return -1;
    int rc = 0;
    for (size_t idx = n; idx-- > 0 && !*id;) {
        struct sb_manifest *m = NULL;
        struct sb_error merr = SB_ERROR_INIT;
        if (sb_repo_load_manifest_cached(repo, ids[idx], &m, &merr) < 0) {
            sb_warn("skipping snapshot '%s': %s", ids[idx], merr.msg);
            continue;
        }
        if (m->has_release && !strcmp(m->release.name, release) && (!need_db || m->db_count)) {
            if (!(*id = sb_strdup(m->id)))
                rc = sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            if (db_count)
                *db_count = m->db_count;
        }
        sb_manifest_free(m);
    }
    sb_store_names_free(ids, n);
    return rc;
}

static bool
wants_database(const struct sb_config *cfg, const struct sb_rollback_opts *opts)
{
    if (opts->with_database >= 0)
        return opts->with_database == 1;
    if (cfg->rollback.database == SB_ROLLBACK_DB_ALWAYS)
        return true;
    if (cfg->rollback.database == SB_ROLLBACK_DB_ASK && isatty(STDIN_FILENO)) {
        fprintf(stderr, "also restore the database(s)? [y/N] ");
        char answer[16] = "";
        if (fgets(answer, sizeof(answer), stdin) && (answer[0] == 'y' || answer[0] == 'Y'))
            return true;
    }
    return false;
}

#define JOURNAL_WITH_DB " with database"

/* The rollback a kill interrupted after its switch: the newest rollback line of the journal
 * is its "started" line ("FROM -> TO[ with database]", written before its first change) and
 * TO is live. Sets *found and fills from/to/safety/with_database of plan then. A rollback
 * killed before its switch needs nothing: running it again redoes it from the start. */
static int
find_interrupted(const struct sb_config *cfg, const char *current, struct sb_rollback_plan *plan,
                 bool *found, struct sb_error *err)
{
    struct sb_journal_entry last, last_ok;
    *found = false;
    if (sb_journal_last(cfg->state_dir, "rollback", &last, &last_ok, err) < 0)
        return sb_error_wrap(err, "state_dir '%s'", cfg->state_dir);
    const char *arrow = strstr(last.detail, " -> ");
    if (!last.present || strcmp(last.outcome, "started") != 0 || !arrow)
        return 0;
    const char *to = arrow + 4;
    size_t to_len = strlen(to), suffix = strlen(JOURNAL_WITH_DB);
    bool with_db = to_len > suffix && !strcmp(to + to_len - suffix, JOURNAL_WITH_DB);
    if (with_db)
        to_len -= suffix;
    if (strlen(current) != to_len || strncmp(to, current, to_len) != 0)
        return 0;
    char *from = strndup(last.detail, (size_t)(arrow - last.detail));
    char *safety = last.snapshot[0] ? sb_strdup(last.snapshot) : NULL;
    char *to_copy = sb_strdup(current);
    if (!from || !to_copy || (last.snapshot[0] && !safety)) {
        free(from);
        free(safety);
        free(to_copy);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    free(plan->from_release);
    plan->from_release = from;
    plan->to_release = to_copy;
    plan->resume_safety = safety;
    plan->with_database = with_db;
    *found = true;
    return 0;
}

int
sb_rollback_plan_make(const struct sb_config *cfg, struct sb_repo *repo,
                      const struct sb_rollback_opts *opts, struct sb_rollback_plan *plan,
                      struct sb_error *err)
{
    memset(plan, 0, sizeof(*plan));
    char **names = NULL;
    size_t n = 0;
    int rc = -1;
    char list[2048];
    if (!cfg->has_release) {
        sb_error_set(err, SB_E_CONFIG, 0, "release: rollback needs a release in the config");
        goto out;
    }
    if (sb_release_current(cfg, &plan->from_release, err) < 0 ||
        sb_release_list(cfg, &names, &n, err) < 0)
        goto out;
    join_names(names, n, list, sizeof(list));
    if (!strcmp(opts->to, "previous") || !strcmp(opts->to, plan->from_release)) {
        bool found = false;
        if (find_interrupted(cfg, plan->from_release, plan, &found, err) < 0)
            goto out;
        if (found) {
            bool revert_on_disk = false;
            for (size_t idx = 0; idx < n; idx++)
                revert_on_disk = revert_on_disk || !strcmp(names[idx], plan->from_release);
            if (!revert_on_disk) {
                sb_error_set(err, SB_E_NOTFOUND, 0,
                             "the rollback '%s' -> '%s' was interrupted after its switch, and "
                             "'%s' is no longer on disk to revert to; nothing was changed "
                             "(check the app; name another release with --to)",
                             plan->from_release, plan->to_release, plan->from_release);
                goto out;
            }
            plan->resume = true;
            plan->release_on_disk = true;
            rc = 0;
            goto out;
        }
    }
    bool on_disk = false;
    for (size_t idx = 0; idx < n; idx++)
        on_disk = on_disk || !strcmp(names[idx], opts->to);
    if (!strcmp(opts->to, "previous")) {
        size_t cur = n;
        for (size_t idx = 0; idx < n; idx++)
            if (!strcmp(names[idx], plan->from_release))
                cur = idx;
        if (cur == n || cur == 0) {
            sb_error_set(err, SB_E_NOTFOUND, 0,
                         "there is no release before '%s' to roll back to (releases: %s)",
                         plan->from_release, list);
            goto out;
        }
        plan->to_release = sb_strdup(names[cur - 1]);
        plan->release_on_disk = true;
    } else if (on_disk) {
        plan->to_release = sb_strdup(opts->to);
        plan->release_on_disk = true;
    } else {
        /* a snapshot id (or a unique prefix), else a release known only to the repository */
        char *id = NULL;
        struct sb_error ierr = SB_ERROR_INIT;
        if (strlen(opts->to) >= 4 && sb_repo_resolve_id(repo, opts->to, &id, &ierr) == 0) {
            struct sb_manifest *m = NULL;
            if (sb_repo_load_manifest(repo, id, &m, err) < 0) {
                free(id);
                goto out;
            }
            if (!m->has_release) {
                sb_error_set(err, SB_E_NOTFOUND, 0, "snapshot '%s' has no release", id);
                sb_manifest_free(m);
                free(id);
                goto out;
            }
            plan->to_release = sb_strdup(m->release.name);
            for (size_t idx = 0; idx < n; idx++)
                plan->release_on_disk =
                    plan->release_on_disk || !strcmp(names[idx], m->release.name);
            if (!plan->release_on_disk)
                plan->release_snapshot = sb_strdup(id);
            plan->db_snapshot = id; /* --to SNAPSHOT: its own databases */
            plan->db_count = m->db_count;
            sb_manifest_free(m);
        } else {
            char *sid = NULL;
            if (find_snapshot_for_release(repo, opts->to, false, &sid, NULL, err) < 0)
                goto out;
            if (!sid) {
                sb_error_set(err, SB_E_NOTFOUND, 0,
                             "'%s' is neither a release on disk (releases: %s) nor a snapshot "
                             "or release in the repository",
                             opts->to, list);
                goto out;
            }
            plan->to_release = sb_strdup(opts->to);
            plan->release_snapshot = sid;
        }
    }
    if (!plan->to_release) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    if (!strcmp(plan->to_release, plan->from_release)) {
        sb_error_set(err, SB_E_USAGE, 0, "release '%s' is already current", plan->to_release);
        goto out;
    }
    plan->with_database = wants_database(cfg, opts);
    if (plan->with_database) {
        if (!plan->db_snapshot) {
            if (find_snapshot_for_release(repo, plan->to_release, true, &plan->db_snapshot,
                                          &plan->db_count, err) < 0)
                goto out;
        }
        if (!plan->db_snapshot || plan->db_count == 0) {
            sb_error_set(err, SB_E_NOTFOUND, 0,
                         "no snapshot with a database was taken while release '%s' was "
                         "current; nothing was changed (roll back without --with-database, "
                         "or pick a snapshot with --to)",
                         plan->to_release);
            goto out;
        }
        if (cfg->database_count == 0) {
            sb_error_set(err, SB_E_CONFIG, 0,
                         "databases: the config lists no database to restore into");
            goto out;
        }
    } else {
        free(plan->db_snapshot);
        plan->db_snapshot = NULL;
    }
    rc = 0;
out:
    sb_store_names_free(names, n);
    if (rc < 0)
        sb_rollback_plan_release(plan);
    return rc;
}

void
sb_rollback_plan_release(struct sb_rollback_plan *plan)
{
    free(plan->from_release);
    free(plan->to_release);
    free(plan->release_snapshot);
    free(plan->db_snapshot);
    free(plan->resume_safety);
    memset(plan, 0, sizeof(*plan));
}

/* --- execution --- */

/* Restores a release that is no longer on disk into releases/.NAME.tmp, then renames it. */
static int
bring_release_back(const struct sb_config *cfg, struct sb_repo *repo, const char *snapshot,
                   const char *name, struct sb_error *err)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s/%s/.%s.tmp", cfg->release.root, cfg->release.releases_dir, name);
    snprintf(final, sizeof(final), "%s/%s/%s", cfg->release.root, cfg->release.releases_dir, name);
    struct sb_manifest *m = NULL;
    int rc = -1;
    if (sb_remove_tree(tmp, err) < 0) /* left by an interrupted run */
        return -1;
    if (sb_repo_load_manifest(repo, snapshot, &m, err) < 0)
        return -1;
    if (mkdir(tmp, 0755) < 0) {
        sb_error_set(err, SB_E_CANTCREATE, errno, "cannot create '%s'", tmp);
        goto out;
    }
    if (sb_restore_tree_object(repo, m, m->release.object, tmp, err) < 0)
        goto out;
    if (rename(tmp, final) < 0) {
        sb_error_set(err, SB_E_IO, errno, "cannot rename '%s' to '%s'", tmp, final);
        goto out;
    }
    rc = sb_fsync_parent(final, err);
    sb_info("release '%s' restored from snapshot '%s'", name, snapshot);
out:
    if (rc < 0) {
        struct sb_error ignored = SB_ERROR_INIT;
        sb_remove_tree(tmp, &ignored);
    }
    sb_manifest_free(m);
    return rc;
}

static int
restore_databases(const struct sb_config *cfg, struct sb_repo *repo, const char *snapshot,
                  struct sb_error *err)
{
    struct sb_manifest *m = NULL;
    if (sb_repo_load_manifest(repo, snapshot, &m, err) < 0)
        return -1;
    struct sb_restore_opts ropts = {0};
    ropts.parts = SB_PART_DB;
    ropts.cfg = cfg;
    ropts.in_place = true;
    struct sb_restore_result res;
    int rc = sb_restore_run(repo, m, &ropts, &res, err);
    sb_manifest_free(m);
    return rc;
}

static int
health_check(const struct sb_config *cfg, const struct sb_hook_env *base, struct sb_error *err)
{
    if (!cfg->hooks.health_check.present)
        return 0;
    struct sb_hook_env env = *base;
    env.event = "health_check";
    double deadline = sb_now_monotonic() + cfg->rollback.health_timeout_s;
    for (int attempt = 1;; attempt++) {
        double left = deadline - sb_now_monotonic();
        int timeout = (int)left + 1;
        if (timeout > cfg->hooks.timeout_s)
            timeout = cfg->hooks.timeout_s;
        sb_error_clear(err);
        if (sb_hook_run(&cfg->hooks.health_check, &env, timeout, err) == 0) {
            sb_info("health check passed (attempt %d)", attempt);
            return 0;
        }
        if (sb_check_stop(NULL) < 0 || sb_now_monotonic() + HEALTH_RETRY_S >= deadline)
            break;
        sleep(HEALTH_RETRY_S);
    }
    return sb_error_wrap(err, "health check still failing after %d s",
                         cfg->rollback.health_timeout_s);
}

/* Step 7: after_rollback, the health check, and with auto_revert the previous release (and
 * database, from the safety snapshot) put back when the check fails. */
static int
finish(const struct sb_config *cfg, struct sb_repo *repo, const struct sb_rollback_plan *plan,
       struct sb_rollback_result *res, struct sb_error *err)
{
    struct sb_hook_env env = {"after_rollback", cfg->app, plan->db_snapshot, plan->to_release,
                              NULL};
    int rc = sb_hook_run(&cfg->hooks.after_rollback, &env, cfg->hooks.timeout_s, err);
    if (rc == 0)
        rc = health_check(cfg, &env, err);
    if (rc == 0)
        return 0;
    if (!cfg->rollback.auto_revert)
        return sb_error_wrap(err, "rollback to '%s' done but unhealthy (auto_revert is off)",
                             plan->to_release);
    /* put the previous state back */
    struct sb_error first = *err;
    sb_warn("%s; reverting to release '%s'", first.msg, plan->from_release);
    struct sb_error rerr = SB_ERROR_INIT;
    if (sb_release_switch(cfg, plan->from_release, &rerr) < 0) {
        *err = rerr;
        return sb_error_wrap(err, "REVERT FAILED after an unhealthy rollback; fix by hand");
    }
    if (res->database_restored) {
        if (!res->safety_snapshot[0] ||
            restore_databases(cfg, repo, res->safety_snapshot, &rerr) < 0) {
            *err = rerr;
            return sb_error_wrap(err,
                                 "release reverted to '%s' but the DATABASE could not be "
                                 "put back%s",
                                 plan->from_release,
                                 res->safety_snapshot[0] ? "" : " (no safety snapshot)");
        }
    }
    env.event = "after_rollback";
    env.release = plan->from_release;
    if (sb_hook_run(&cfg->hooks.after_rollback, &env, cfg->hooks.timeout_s, &rerr) < 0)
        sb_warn("%s", rerr.msg);
    res->reverted = true;
    res->switched = false;
    *err = first;
    if (err->code == SB_E_IO)
        err->code = SB_E_UNAVAILABLE;
    return sb_error_wrap(err,
                         "rollback to '%s' reverted: the previous release '%s'%s is live "
                         "again",
                         plan->to_release, plan->from_release,
                         res->database_restored ? " and its database" : "");
}

int
sb_rollback_execute(const struct sb_config *cfg, struct sb_repo *repo,
                    const struct sb_rollback_opts *opts, const struct sb_rollback_plan *plan,
                    struct sb_rollback_result *res, struct sb_error *err)
{
    memset(res, 0, sizeof(*res));
    struct sb_hook_env env = {"before_rollback", cfg->app, plan->db_snapshot, plan->to_release,
                              NULL};
    if (plan->resume) {
        /* steps 2-6 were done by the interrupted run */
        if (plan->resume_safety)
            snprintf(res->safety_snapshot, sizeof(res->safety_snapshot), "%s", plan->resume_safety);
        res->switched = true;
        res->database_restored = plan->with_database;
        sb_info("resuming the rollback '%s' -> '%s' interrupted after its switch",
                plan->from_release, plan->to_release);
        return finish(cfg, repo, plan, res, err);
    }
    /* 2. a safety snapshot of the present state, so the rollback can be undone */
    if (!opts->no_safety_snapshot) {
        struct sb_snapshot_opts sopts = {"pre-rollback", SB_PART_RELEASE | SB_PART_SHARED};
        if (plan->with_database)
            sopts.parts |= SB_PART_DB;
        struct sb_manifest *m = NULL;
        if (sb_snapshot_run(cfg, repo, &sopts, &m, err) < 0)
            return sb_error_wrap(err, "safety snapshot (nothing was changed; "
                                      "--no-safety-snapshot skips it)");
        snprintf(res->safety_snapshot, sizeof(res->safety_snapshot), "%s", m->id);
        sb_manifest_free(m);
        /* With an SFTP repository the snapshot is written to the spool; reads (the undo, the
         * auto-revert's database restore) go to the server, so it must be there first. */
        size_t pushed = 0;
        if (sb_spool_push(repo, &pushed, err) < 0)
            return sb_error_wrap(err,
                                 "safety snapshot '%s' is complete in the spool but not on the "
                                 "server, so the rollback could not be undone; nothing was "
                                 "changed (retry, or --no-safety-snapshot skips it)",
                                 res->safety_snapshot);
        sb_info("safety snapshot '%s' taken", res->safety_snapshot);
    }
    /* 3. before_rollback: a failure aborts before anything changed */
    if (sb_hook_run(&cfg->hooks.before_rollback, &env, cfg->hooks.timeout_s, err) < 0)
        return sb_error_wrap(err, "rollback aborted, nothing was changed");
    /* from here on a kill leaves work to finish: say what this run is about to do */
    char detail[600];
    snprintf(detail, sizeof(detail), "%s -> %s%s", plan->from_release, plan->to_release,
             plan->with_database ? JOURNAL_WITH_DB : "");
    if (sb_journal_append(cfg->state_dir, "rollback", "started",
                          res->safety_snapshot[0] ? res->safety_snapshot : NULL, detail, 0,
                          err) < 0)
        return sb_error_wrap(err, "rollback aborted, nothing was changed");
    /* 4. the target release on disk */
    if (!plan->release_on_disk &&
        bring_release_back(cfg, repo, plan->release_snapshot, plan->to_release, err) < 0)
        return sb_error_wrap(err, "rollback aborted, current still points to '%s'",
                             plan->from_release);
    /* 5. the database */
    if (plan->with_database) {
        if (restore_databases(cfg, repo, plan->db_snapshot, err) < 0)
            return sb_error_wrap(err,
                                 "rollback aborted before switching releases; the "
                                 "database restore runs in one transaction per database "
                                 "(PostgreSQL), current still points to '%s'",
                                 plan->from_release);
        res->database_restored = true;
    }
    /* 6. the switch */
    if (sb_release_switch(cfg, plan->to_release, err) < 0)
        return -1;
    res->switched = true;
    sb_info("current now points to release '%s' (was '%s')", plan->to_release, plan->from_release);
    /* 7. after_rollback, then health */
    return finish(cfg, repo, plan, res, err);
}
