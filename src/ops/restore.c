/* Restore (DESIGN §2, §10): everything is extracted into a fresh temp directory beside the
 * target and renamed into place only when every object has been read to its end and passed
 * every check, so a corrupt, tampered or hostile snapshot leaves nothing at the target. The
 * result has the app's layout: releases/NAME/, current -> releases/NAME, <shared paths>/. */
#include "snapback/ops.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapback/core.h"
#include "snapback/db.h"
#include "snapback/sources.h"

static int extract_object(struct sb_repo *repo, const struct sb_manifest *m, const char *name,
                          const char *dest, const struct sb_extract_filter *filter,
                          struct sb_restore_result *res, struct sb_error *err);

int
sb_restore_tree_object(struct sb_repo *repo, const struct sb_manifest *m, const char *name,
                       const char *dest, struct sb_error *err)
{
    struct sb_restore_result res = {0, 0};
    return extract_object(repo, m, name, dest, NULL, &res, err);
}

static int
extract_object(struct sb_repo *repo, const struct sb_manifest *m, const char *name,
               const char *dest, const struct sb_extract_filter *filter,
               struct sb_restore_result *res, struct sb_error *err)
{
    const struct sb_manifest_object *o = sb_manifest_find_object(m, name);
    if (!o)
        return sb_error_set(err, SB_E_CORRUPT, 0, "object '%s' is not listed in the manifest",
                            name);
    struct sb_digest expect;
    memcpy(expect.hash, o->blake2b, SB_HASH_BYTES);
    expect.size = o->stored_size;
    char *path = sb_repo_object_path(repo, name);
    struct sb_istream *in = NULL;
    int rc = -1;
    if (!path)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    if (sb_mkdir_p(dest, 0755, err) < 0)
        goto out;
    if (sb_object_open(repo->store, path, repo->key, &expect, &in, err) < 0)
        goto wrap;
    uint64_t entries = 0;
    if (sb_tree_extract_some(in, dest, SB_EXTRACT_WRITE, filter, &entries, err) < 0)
        goto wrap;
    res->entries += entries;
    res->bytes += o->plain_size;
    rc = 0;
    goto out;
wrap:
    sb_error_wrap(err, "object '%s'", path);
out:
    sb_istream_free(in);
    free(path);
    return rc;
}

static int
open_object(struct sb_repo *repo, const struct sb_manifest *m, const char *name,
            struct sb_istream **in, char **path, struct sb_error *err)
{
    const struct sb_manifest_object *o = sb_manifest_find_object(m, name);
    if (!o)
        return sb_error_set(err, SB_E_CORRUPT, 0, "object '%s' is not listed in the manifest",
                            name);
    struct sb_digest expect;
    memcpy(expect.hash, o->blake2b, SB_HASH_BYTES);
    expect.size = o->stored_size;
    if (!(*path = sb_repo_object_path(repo, name)))
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    if (sb_object_open(repo->store, *path, repo->key, &expect, in, err) < 0)
        return sb_error_wrap(err, "object '%s'", *path);
    return 0;
}

/* A dump as a file under dir/databases/ (the restore target's temp dir). */
static int
dump_to_file(struct sb_repo *repo, const struct sb_manifest *m, const struct sb_manifest_db *d,
             const char *dir, struct sb_restore_result *res, struct sb_error *err)
{
    struct sb_istream *in = NULL;
    char *path = NULL, *dbdir = sb_path_join(dir, "databases"), *file = NULL;
    int rc = -1, fd = -1;
    struct sb_ostream *out = NULL;
    if (!dbdir || sb_mkdir_p(dbdir, 0700, err) < 0)
        goto out;
    char name[300];
    snprintf(name, sizeof(name), "%s%s", d->name, sb_db_dump_suffix(d->engine));
    if (!sb_path_is_clean_relative(name) || strchr(name, '/')) {
        sb_error_set(err, SB_E_CORRUPT, 0, "database name '%s' in the manifest is unsafe", d->name);
        goto out;
    }
    if (!(file = sb_path_join(dbdir, name)))
        goto out;
    if (open_object(repo, m, d->object, &in, &path, err) < 0)
        goto out;
    fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        sb_error_set(err, SB_E_CANTCREATE, errno, "cannot create '%s'", file);
        goto out;
    }
    uint64_t n = 0;
    if (!(out = sb_fd_ostream_new(fd, file)) || sb_stream_copy(in, out, &n, err) < 0 ||
        sb_istream_drain(in, err) < 0) {
        sb_error_wrap(err, "object '%s'", path);
        goto out;
    }
    if (fsync(fd) < 0) {
        sb_error_set(err, SB_E_IO, errno, "cannot fsync '%s'", file);
        goto out;
    }
    res->bytes += n;
    res->entries++;
    rc = 0;
out:
    sb_ostream_free(out);
    if (fd >= 0)
        close(fd);
    sb_istream_free(in);
    free(path);
    free(dbdir);
    free(file);
    return rc;
}

/* Restores one dump into a database (or SQLite file). */
static int
dump_to_database(struct sb_repo *repo, const struct sb_manifest *m, const struct sb_manifest_db *d,
                 const struct sb_restore_opts *opts, const char *target, bool in_place,
                 struct sb_error *err)
{
    const struct sb_db_config *db = sb_config_find_db(opts->cfg, d->name);
    if (!db)
        return sb_error_set(err, SB_E_CONFIG, 0,
                            "database '%s' of the snapshot is not in the config; add it to "
                            "'databases' so snapback knows how to connect",
                            d->name);
    if (strcmp(sb_db_engine_name(db->engine), d->engine) != 0)
        return sb_error_set(err, SB_E_CONFIG, 0,
                            "database '%s' is %s in the snapshot but %s in the config", d->name,
                            d->engine, sb_db_engine_name(db->engine));
    struct sb_db_info live;
    if (db->engine != SB_DB_SQLITE && sb_db_probe(db, opts->cfg->state_dir, &live, err) < 0)
        return sb_error_wrap(err, "database '%s'", d->name);
    if (db->engine != SB_DB_SQLITE && d->server_version &&
        strverscmp(live.server_version, d->server_version) < 0)
        sb_warn("database '%s' was dumped from server version %s and is restored into %s, an "
                "older one: the restore may fail",
                d->name, d->server_version, live.server_version);
    struct sb_istream *in = NULL;
    char *path = NULL;
    int rc = -1;
    if (open_object(repo, m, d->object, &in, &path, err) < 0)
        goto out;
    struct sb_db_create create;
    if (sb_db_restore(db, target, in_place ? SB_DB_RESTORE_IN_PLACE : SB_DB_RESTORE_NEW,
                      sb_db_create_of(d, &create), opts->cfg->state_dir, in, err) < 0) {
        sb_error_wrap(err, "database '%s' into '%s'", d->name, target);
        goto out;
    }
    sb_info("restored database '%s' into '%s'%s", d->name, target, in_place ? " (in place)" : "");
    rc = 0;
out:
    sb_istream_free(in);
    free(path);
    return rc;
}

static int
target_usable(const char *target, bool *exists, struct sb_error *err)
{
    struct stat st;
    *exists = false;
    if (lstat(target, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return sb_error_set(err, sb_error_from_errno(errno), errno, "restore target '%s'", target);
    }
    if (!S_ISDIR(st.st_mode))
        return sb_error_set(err, SB_E_CANTCREATE, 0,
                            "restore target '%s' exists and is not a directory; choose a new "
                            "--target",
                            target);
    char **names = NULL;
    size_t n = 0;
    struct sb_store *st_dir = NULL;
    if (sb_store_local_new(target, &st_dir, err) < 0)
        return -1;
    int rc = sb_store_list(st_dir, "", &names, &n, err);
    sb_store_free(st_dir);
    sb_store_names_free(names, n);
    if (rc < 0)
        return -1;
    if (n > 0)
        return sb_error_set(err, SB_E_CANTCREATE, 0,
                            "restore target '%s' is not empty; restore never writes over "
                            "existing files: choose a new --target",
                            target);
    *exists = true;
    return 0;
}

/* restore --path: the paths asked for, in the restored layout, mapped onto one tree object
 * stored at `base` (releases/NAME, or a shared path) and known also as `alias` (current, or
 * NULL): a path at or above base takes the whole object (""), one below it the rest of it. */
struct path_map {
    const char *paths[SB_RESTORE_PATHS_MAX];
    size_t origin[SB_RESTORE_PATHS_MAX]; /* index in opts->paths */
    size_t matched[SB_RESTORE_PATHS_MAX];
    size_t count;
    struct sb_extract_filter filter;
};

static bool
path_under(const char *p, const char *base, const char **rest)
{
    size_t len = strlen(base);
    if (strncmp(p, base, len) != 0 || (p[len] != '\0' && p[len] != '/'))
        return false;
    *rest = p[len] ? p + len + 1 : "";
    return true;
}

static void
path_map_build(const struct sb_restore_opts *opts, const char *base, const char *alias,
               struct path_map *pm, bool *taken)
{
    memset(pm, 0, sizeof(*pm));
    for (size_t idx = 0; idx < opts->path_count; idx++) {
        const char *p = opts->paths[idx], *rest = NULL;
        size_t plen = strlen(p);
        if (!strncmp(base, p, plen) && base[plen] == '/')
            rest = ""; /* an ancestor of base: all of it */
        else if (!path_under(p, base, &rest) && !(alias && path_under(p, alias, &rest)))
            continue;
        pm->paths[pm->count] = rest;
        pm->origin[pm->count++] = idx;
        taken[idx] = true;
    }
    pm->filter = (struct sb_extract_filter){pm->paths, pm->count, pm->matched, NULL, NULL};
}

static void
path_map_tally(const struct path_map *pm, size_t *found)
{
    for (size_t idx = 0; idx < pm->count; idx++)
        found[pm->origin[idx]] += pm->matched[idx];
}

/* Maps opts' paths onto the release (release_map) and the shared paths (shared_maps, one per
 * shared path) of m, for the parts asked for; a path in none of them is SB_E_NOTFOUND, named
 * after `what` ("--path " for restore). */
static int
path_maps_build(const struct sb_restore_opts *opts, const struct sb_manifest *m, unsigned parts,
                struct path_map *release_map, struct path_map *shared_maps, const char *what,
                struct sb_error *err)
{
    bool taken[SB_RESTORE_PATHS_MAX] = {false};
    if (m->has_release && (parts & SB_PART_RELEASE)) {
        char base[PATH_MAX];
        snprintf(base, sizeof(base), "releases/%s", m->release.name);
        path_map_build(opts, base, "current", release_map, taken);
    }
    for (size_t idx = 0; (parts & SB_PART_SHARED) && idx < m->shared_count; idx++)
        path_map_build(opts, m->shared[idx].path, NULL, &shared_maps[idx], taken);
    for (size_t idx = 0; idx < opts->path_count; idx++)
        if (!taken[idx])
            return sb_error_set(err, SB_E_NOTFOUND, 0,
                                "%s'%s' is in no part of snapshot '%s': its release is "
                                "'releases/%s' (or 'current'), its shared paths are below "
                                "release.root as configured; 'snapback show %s' lists them",
                                what, opts->paths[idx], m->id,
                                m->has_release ? m->release.name : "(none)", m->id);
    return 0;
}

int
sb_restore_run(struct sb_repo *repo, const struct sb_manifest *m,
               const struct sb_restore_opts *opts, struct sb_restore_result *res,
               struct sb_error *err)
{
    unsigned parts = opts->parts ? opts->parts : SB_PART_ALL;
    char tmp[PATH_MAX];
    bool exists = false, tmp_made = false;
    int rc = -1;
    memset(res, 0, sizeof(*res));
    for (size_t idx = 0; idx < opts->db_target_count; idx++) {
        bool found = false;
        for (size_t d = 0; d < m->db_count; d++)
            found = found || !strcmp(m->dbs[d].name, opts->db_targets[idx].name);
        if (!found)
            return sb_error_set(err, SB_E_NOTFOUND, 0,
                                "snapshot '%s' has no database '%s' (--db-target)", m->id,
                                opts->db_targets[idx].name);
    }
    /* --path: only those files; no database (the CLI refuses --only db with it) */
    struct path_map *release_map = NULL, *shared_maps = NULL;
    size_t path_hits[SB_RESTORE_PATHS_MAX] = {0};
    if (opts->path_count) {
        if (opts->path_count > SB_RESTORE_PATHS_MAX)
            return sb_error_set(err, SB_E_USAGE, 0, "restore: at most %d --path",
                                SB_RESTORE_PATHS_MAX);
        parts &= ~(unsigned)SB_PART_DB;
        release_map = calloc(1, sizeof(*release_map));
        shared_maps = calloc(m->shared_count ? m->shared_count : 1, sizeof(*shared_maps));
        if (!release_map || !shared_maps) {
            free(release_map);
            free(shared_maps);
            return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        }
        if (path_maps_build(opts, m, parts, release_map, shared_maps, "--path ", err) < 0) {
            free(release_map);
            free(shared_maps);
            return sb_error_wrap(err, "restore of snapshot '%s'", m->id);
        }
    }
    /* Databases that go into a database: first, so a refused connection changes nothing. */
    bool files_wanted = false;
    if (parts & SB_PART_DB) {
        for (size_t d = 0; d < m->db_count; d++) {
            const char *target = NULL;
            for (size_t idx = 0; idx < opts->db_target_count; idx++)
                if (!strcmp(opts->db_targets[idx].name, m->dbs[d].name))
                    target = opts->db_targets[idx].target;
            bool in_place = false;
            if (!target && opts->in_place) {
                const struct sb_db_config *db = sb_config_find_db(opts->cfg, m->dbs[d].name);
                if (db)
                    target = db->engine == SB_DB_SQLITE ? db->path : db->dbname;
                in_place = true;
            }
            if (!target) {
                files_wanted = true;
                continue;
            }
            if (dump_to_database(repo, m, &m->dbs[d], opts, target, in_place, err) < 0)
                goto out_early;
            res->entries++;
            const struct sb_manifest_object *o = sb_manifest_find_object(m, m->dbs[d].object);
            if (o)
                res->bytes += o->plain_size;
        }
    }
    if (((parts & SB_PART_RELEASE) && m->has_release) ||
        ((parts & SB_PART_SHARED) && m->shared_count))
        files_wanted = true;
    if (!files_wanted)
        return 0;
    if (!opts->target) {
        sb_error_set(err, SB_E_USAGE, 0,
                     "--target DIR is required to restore files (release, shared paths, or "
                     "database dumps without --db-target)");
        goto out_early;
    }
    if (target_usable(opts->target, &exists, err) < 0)
        goto out_early;
    size_t tlen = strlen(opts->target);
    while (tlen > 1 && opts->target[tlen - 1] == '/')
        tlen--;
    if (snprintf(tmp, sizeof(tmp), "%.*s.snapback-tmp-XXXXXX", (int)tlen, opts->target) >=
        (int)sizeof(tmp))
        return sb_error_set(err, SB_E_USAGE, 0, "restore target path is too long");
    if (!mkdtemp(tmp))
        return sb_error_set(err, errno == ENOSPC ? SB_E_IO : SB_E_CANTCREATE, errno,
                            "cannot create a temp directory beside '%s'", opts->target);
    tmp_made = true;
    chmod(tmp, 0755);
    if ((parts & SB_PART_RELEASE) && m->has_release) {
        if (!sb_path_is_clean_relative(m->release.name) || strchr(m->release.name, '/')) {
            sb_error_set(err, SB_E_CORRUPT, 0, "release name '%s' in the manifest is unsafe",
                         m->release.name);
            goto out;
        }
        char *target = sb_path_join("releases", m->release.name);
        char *rel = target ? sb_path_join(tmp, target) : NULL;
        char *link = sb_path_join(tmp, "current");
        int r = -1;
        if (!target || !rel || !link)
            sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        else if (release_map && !release_map->count)
            r = 0; /* --path asks for nothing of the release */
        else if (extract_object(repo, m, m->release.object, rel,
                                release_map ? &release_map->filter : NULL, res, err) == 0) {
            if (release_map)
                path_map_tally(release_map, path_hits);
            if (symlink(target, link) < 0)
                sb_error_set(err, SB_E_IO, errno, "cannot create symlink '%s'", link);
            else
                r = 0;
        }
        free(target);
        free(rel);
        free(link);
        if (r < 0)
            goto out;
    }
    if (parts & SB_PART_SHARED) {
        for (size_t idx = 0; idx < m->shared_count; idx++) {
            char *dest = sb_path_join(tmp, m->shared[idx].path);
            if (!dest) {
                sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
                goto out;
            }
            int r = shared_maps && !shared_maps[idx].count
                        ? 0
                        : extract_object(repo, m, m->shared[idx].object, dest,
                                         shared_maps ? &shared_maps[idx].filter : NULL, res, err);
            if (r == 0 && shared_maps)
                path_map_tally(&shared_maps[idx], path_hits);
            free(dest);
            if (r < 0)
                goto out;
        }
    }
    if (parts & SB_PART_DB) {
        for (size_t d = 0; d < m->db_count; d++) {
            bool into_db = opts->in_place;
            for (size_t idx = 0; idx < opts->db_target_count; idx++)
                into_db = into_db || !strcmp(opts->db_targets[idx].name, m->dbs[d].name);
            if (!into_db && dump_to_file(repo, m, &m->dbs[d], tmp, res, err) < 0)
                goto out;
        }
    }
    for (size_t idx = 0; idx < opts->path_count; idx++)
        if (!path_hits[idx]) {
            sb_error_set(err, SB_E_NOTFOUND, 0,
                         "--path '%s': no such file or directory in snapshot '%s' (nothing "
                         "was restored)",
                         opts->paths[idx], m->id);
            goto out;
        }
    if (sb_fsync_dir(tmp, err) < 0)
        goto out;
    if (exists && rmdir(opts->target) < 0) {
        sb_error_set(err, SB_E_CANTCREATE, errno, "cannot replace empty directory '%s'",
                     opts->target);
        goto out;
    }
    if (rename(tmp, opts->target) < 0) {
        sb_error_set(err, SB_E_CANTCREATE, errno, "cannot rename '%s' to '%s'", tmp, opts->target);
        goto out;
    }
    tmp_made = false;
    if (sb_fsync_parent(opts->target, err) < 0)
        goto out;
    rc = 0;
out:
    if (tmp_made) {
        struct sb_error ignored = SB_ERROR_INIT;
        if (sb_remove_tree(tmp, &ignored) < 0)
            sb_warn("could not remove the temp directory '%s': %s", tmp, ignored.msg);
    }
    if (rc < 0)
        sb_error_wrap(err, "restore of snapshot '%s'", m->id);
    free(release_map);
    free(shared_maps);
    return rc;
out_early:
    free(release_map);
    free(shared_maps);
    return sb_error_wrap(err, "restore of snapshot '%s'", m->id);
}

/* --- snapback ls ------------------------------------------------------------------------- */

struct ls_prefix {
    const char *base; /* releases/NAME or the shared path */
    const struct sb_ls_opts *opts;
    char path[PATH_MAX];
};

/* An object's entry, named as restore --target lays it out. */
static bool
ls_visit(const struct sb_tree_entry *entry, void *arg)
{
    struct ls_prefix *lp = arg;
    struct sb_tree_entry e = *entry;
    snprintf(lp->path, sizeof(lp->path), "%s%s%s", lp->base, *entry->path ? "/" : "", entry->path);
    e.path = lp->path;
    return lp->opts->visit(&e, lp->opts->arg);
}

/* Lists one tree object's entries (those pm selects; all without pm) under base. */
static int
ls_object(struct sb_repo *repo, const struct sb_manifest *m, const char *object, const char *base,
          struct path_map *pm, const struct sb_ls_opts *opts, struct sb_error *err)
{
    static const char *const all[] = {""};
    struct ls_prefix lp = {base, opts, ""};
    struct sb_extract_filter whole = {all, 1, NULL, ls_visit, &lp};
    struct sb_extract_filter *filter = pm ? &pm->filter : &whole;
    filter->visit = ls_visit;
    filter->visit_arg = &lp;
    struct sb_istream *in = NULL;
    char *path = NULL;
    int rc = open_object(repo, m, object, &in, &path, err);
    if (rc == 0 && sb_tree_extract_some(in, NULL, SB_EXTRACT_LIST, filter, NULL, err) < 0)
        rc = sb_error_wrap(err, "object '%s'", path);
    sb_istream_free(in);
    free(path);
    return rc;
}

int
sb_ls_run(struct sb_repo *repo, const struct sb_manifest *m, const struct sb_ls_opts *opts,
          struct sb_error *err)
{
    unsigned parts = opts->parts ? opts->parts : SB_PART_ALL;
    if (opts->path_count > SB_RESTORE_PATHS_MAX)
        return sb_error_set(err, SB_E_USAGE, 0, "ls: at most %d paths", SB_RESTORE_PATHS_MAX);
    /* the paths mapped onto the objects exactly as restore --path maps them */
    struct sb_restore_opts ropts = {0};
    ropts.paths = opts->paths;
    ropts.path_count = opts->path_count;
    size_t hits[SB_RESTORE_PATHS_MAX] = {0};
    struct path_map *maps = calloc(m->shared_count + 1, sizeof(*maps));
    if (!maps)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    int rc = -1;
    char base[PATH_MAX] = "";
    if (m->has_release) {
        if (!sb_path_is_clean_relative(m->release.name) || strchr(m->release.name, '/')) {
            sb_error_set(err, SB_E_CORRUPT, 0, "release name '%s' in the manifest is unsafe",
                         m->release.name);
            goto out;
        }
        snprintf(base, sizeof(base), "releases/%s", m->release.name);
    }
    if (opts->path_count &&
        path_maps_build(&ropts, m, parts, &maps[m->shared_count], maps, "", err) < 0)
        goto out;
    if (m->has_release && (parts & SB_PART_RELEASE)) {
        struct path_map *pm = opts->path_count ? &maps[m->shared_count] : NULL;
        if (!opts->path_count) {
            /* the link restore makes */
            struct sb_tree_entry cur = {
                "current", 'l', 0777, -1, -1, NULL, NULL, 0, (long long)m->created_at, 0, base};
            if (!opts->visit(&cur, opts->arg)) {
                sb_error_set(err, SB_E_IO, 0, "the listing was stopped");
                goto out;
            }
        }
        if ((!pm || pm->count) && ls_object(repo, m, m->release.object, base, pm, opts, err) < 0)
            goto out;
        if (pm)
            path_map_tally(pm, hits);
    }
    for (size_t idx = 0; (parts & SB_PART_SHARED) && idx < m->shared_count; idx++) {
        struct path_map *pm = opts->path_count ? &maps[idx] : NULL;
        if (!sb_path_is_clean_relative(m->shared[idx].path)) {
            sb_error_set(err, SB_E_CORRUPT, 0, "shared path '%s' in the manifest is unsafe",
                         m->shared[idx].path);
            goto out;
        }
        if ((!pm || pm->count) &&
            ls_object(repo, m, m->shared[idx].object, m->shared[idx].path, pm, opts, err) < 0)
            goto out;
        if (pm)
            path_map_tally(pm, hits);
    }
    /* the dumps, as the files a restore --target writes (not read: their size is recorded) */
    for (size_t d = 0; (parts & SB_PART_DB) && !opts->path_count && d < m->db_count; d++) {
        const struct sb_manifest_object *o = sb_manifest_find_object(m, m->dbs[d].object);
        char path[600];
        snprintf(path, sizeof(path), "databases/%s%s", m->dbs[d].name,
                 sb_db_dump_suffix(m->dbs[d].engine));
        struct sb_tree_entry dump = {path,
                                     '-',
                                     0600,
                                     -1,
                                     -1,
                                     NULL,
                                     NULL,
                                     o ? (long long)o->plain_size : 0,
                                     (long long)m->created_at,
                                     0,
                                     NULL};
        if (!opts->visit(&dump, opts->arg)) {
            sb_error_set(err, SB_E_IO, 0, "the listing was stopped");
            goto out;
        }
    }
    for (size_t idx = 0; idx < opts->path_count; idx++)
        if (!hits[idx]) {
            sb_error_set(err, SB_E_NOTFOUND, 0, "'%s': no such file or directory in snapshot '%s'",
                         opts->paths[idx], m->id);
            goto out;
        }
    rc = 0;
out:
    free(maps);
    return rc;
}
