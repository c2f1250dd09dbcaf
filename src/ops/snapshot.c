/* Taking a snapshot (DESIGN §4, §6): the release (stored once per fingerprint), each shared
 * path, then the manifest, last. A snapshot exists exactly when its manifest does, so a run
 * killed at any moment leaves at most orphan objects, never a snapshot with missing parts. */
#include "snapback/ops.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapback/core.h"
#include "snapback/db.h"
#include "snapback/sources.h"
#include "snapback_version.h"

/* A new snapshot id: UTC time and 4 hex digits. Ids must sort in the order snapshots were
 * taken ("latest" is the greatest), so within the second of the newest existing id the
 * suffix continues after its suffix instead of being random. Runs under the app lock. */
static int
make_id(struct sb_repo *repo, char out[32], struct sb_error *err)
{
    char **ids = NULL;
    size_t n = 0;
    if (sb_repo_list_ids(repo, &ids, &n, err) < 0)
        return -1;
    int rc = -1;
    for (int attempt = 0; attempt < 3; attempt++) {
        char ts[20];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
        unsigned char rnd[2];
        randombytes_buf(rnd, sizeof(rnd));
        unsigned suffix = (unsigned)rnd[0] << 8 | rnd[1];
        if (n > 0 && strncmp(ids[n - 1], ts, 16) == 0) {
            unsigned last = (unsigned)strtoul(ids[n - 1] + 17, NULL, 16);
            suffix = last + 1 + (rnd[1] & 15u);
            if (suffix > 0xffff) {
                sleep(1);
                continue;
            }
        } else if (n > 0 && strncmp(ids[n - 1], ts, 16) > 0) {
            sb_warn("the newest snapshot '%s' is dated after the clock's time %s: check the "
                    "system clock; 'latest' will not mean this snapshot",
                    ids[n - 1], ts);
        }
        snprintf(out, 32, "%s-%04x", ts, suffix);
        rc = 0;
        break;
    }
    if (rc < 0)
        sb_error_set(err, SB_E_TEMPFAIL, 0, "cannot find a free snapshot id; retry");
    sb_store_names_free(ids, n);
    return rc;
}

/* Archives the tree at dir into the object `name` of the app; *obj receives its sizes and hash
 * (its name is left NULL), *seen (when not NULL) the fingerprint of the archive walk.
 * bytes: the size of its files when a fingerprint walk already told (for the progress line),
 * else 0. */
static int
archive_tree(struct sb_repo *repo, const char *dir, enum sb_tree_mode mode, const char *name,
             uint64_t bytes, struct sb_tree_fp *seen, uint64_t *entries,
             struct sb_manifest_object *obj, struct sb_error *err)
{
    char *path = sb_repo_object_path(repo, name);
    struct sb_ostream *out = NULL;
    struct sb_object_result res;
    int rc = -1;
    if (!path)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    struct sb_tree_fp size;
    struct sb_error ignored = SB_ERROR_INIT;
    if (sb_progress_enabled() && !bytes && sb_tree_digest_walk(dir, 0, &size, &ignored) == 0)
        bytes = size.bytes;
    if (sb_progress_enabled() && bytes)
        sb_progress_expect(bytes); /* the tar is a little more: headers */
    if (sb_object_create(sb_repo_write_store(repo), path, repo->key, &repo->params, &res, &out,
                         err) < 0)
        goto out;
    if (sb_tree_archive(dir, mode, out, entries, seen, err) < 0)
        goto out;
    if (sb_ostream_close(out, err) < 0)
        goto out;
    *obj = (struct sb_manifest_object){NULL, res.stored.size, res.plain_size, {0}};
    memcpy(obj->blake2b, res.stored.hash, SB_HASH_BYTES);
    rc = 0;
out:
    sb_ostream_free(out); /* aborts (removes the partial file) unless closed */
    free(path);
    return rc;
}

static int
record_object(struct sb_manifest *m, const char *name, struct sb_manifest_object *obj,
              struct sb_error *err)
{
    char stored[32], plain[32];
    sb_format_size(obj->stored_size, stored);
    sb_format_size(obj->plain_size, plain);
    sb_info("stored '%s': %s of tar in %s", name, plain, stored);
    obj->name = (char *)name;
    int rc = sb_manifest_add_object(m, obj, err);
    obj->name = NULL;
    return rc;
}

/* Archives the tree at dir into the object `name` of the app, and records it in m. */
static int
store_tree(struct sb_repo *repo, struct sb_manifest *m, const char *dir, enum sb_tree_mode mode,
           const char *name, uint64_t bytes, uint64_t *entries, struct sb_error *err)
{
    struct sb_manifest_object obj;
    if (archive_tree(repo, dir, mode, name, bytes, NULL, entries, &obj, err) < 0)
        return -1;
    return record_object(m, name, &obj, err);
}

static void
remove_object(struct sb_repo *repo, const char *name)
{
    char *path = sb_repo_object_path(repo, name);
    if (path)
        sb_store_remove(sb_repo_write_store(repo), path, NULL);
    free(path);
}

static int
release_changed(const char *dir, struct sb_error *err)
{
    return sb_error_set(err, SB_E_TEMPFAIL, 0,
                        "release '%s' changed while it was archived (releases must not change "
                        "once deployed); run the snapshot again",
                        dir);
}

/* Checks, with a digest walk, that the release at dir still has the metadata the archive
 * walk saw (seen); else fails as release_changed. */
static int
release_unchanged(const char *dir, const struct sb_tree_fp *seen, struct sb_error *err)
{
    struct sb_tree_fp now;
    if (sb_tree_digest_walk(dir, 0, &now, err) < 0)
        return -1;
    if (!sb_tree_digest_equal(&seen->digest, &now.digest))
        return release_changed(dir, err);
    return 0;
}

/* Finds a manifest that already references the release object and still exists, newest
 * first, and copies its entry. Returns 1 when found, 0 when not, -1 on error. With object
 * NULL, only tells (*named) whether any snapshot has a release called `release`. */
static int
find_stored_release(struct sb_repo *repo, const char *release, const char *object,
                    struct sb_manifest_object *found, uint64_t *entries, bool *named,
                    struct sb_error *err)
{
    char **ids = NULL;
    size_t n = 0;
    if (sb_repo_list_ids(repo, &ids, &n, err) < 0)
        return -1;
    int rc = 0;
    /* newest first, and only as far as needed: a release is almost always in the newest
     * snapshot, so a repository of thousands of snapshots costs one manifest here */
    for (size_t idx = n; idx-- > 0 && rc == 0 && !(object == NULL && *named);) {
        struct sb_manifest *prev = NULL;
        struct sb_error ignored = SB_ERROR_INIT;
        if (sb_repo_load_manifest_cached(repo, ids[idx], &prev, &ignored) < 0) {
            sb_warn("skipping unreadable manifest of snapshot '%s': %s", ids[idx], ignored.msg);
            continue;
        }
        if (prev->has_release && prev->release.name && strcmp(prev->release.name, release) == 0)
            *named = true;
        const struct sb_manifest_object *o = object ? sb_manifest_find_object(prev, object) : NULL;
        if (o && prev->has_release && strcmp(prev->release.object, object) == 0) {
            char *path = sb_repo_object_path(repo, object);
            struct sb_store_stat st;
            if (!path) {
                rc = sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            } else if (sb_store_stat(repo->store, path, &st, err) < 0) {
                rc = -1;
            } else if (st.exists && st.size == o->stored_size) {
                *found = *o;
                found->name = NULL;
                *entries = prev->release.entries;
                rc = 1;
            }
            free(path);
        }
        sb_manifest_free(prev);
    }
    sb_store_names_free(ids, n);
    return rc;
}

/* Two hosts that snapshot one app at the same time are not kept apart: the lock is in
 * state_dir (docs/ARCHITECTURE.md, "One writer per app and repository"). Says so when the
 * newest snapshot of the app was taken on another host within OTHER_HOST_WINDOW_S. Hosts that
 * take turns (a failover, a scheduled container whose host name changes every run) are not
 * at risk and are not warned about. */
#define OTHER_HOST_WINDOW_S 900
static void
warn_other_host(struct sb_repo *repo, const struct sb_manifest *m)
{
    char **ids = NULL;
    size_t n = 0;
    struct sb_error ignored = SB_ERROR_INIT;
    struct sb_manifest *newest = NULL;
    if (!repo->offline && sb_repo_list_ids(repo, &ids, &n, &ignored) == 0 && n > 0 &&
        sb_repo_load_manifest_cached(repo, ids[n - 1], &newest, &ignored) == 0 && newest->host &&
        m->host && strcmp(newest->host, m->host) != 0 &&
        m->created_at - newest->created_at < OTHER_HOST_WINDOW_S)
        sb_warn("snapshot '%s' of app '%s' was taken on host '%s' %lld s ago, and this is "
                "'%s': two hosts that snapshot one app at the same time are not kept apart "
                "(the lock is per state_dir) and can replace each other's release objects; "
                "give each host its own \"app\", or schedule them apart",
                newest->id, m->app, newest->host, (long long)(m->created_at - newest->created_at),
                m->host);
    sb_manifest_free(newest);
    sb_store_names_free(ids, n);
}

static int
snapshot_release(const struct sb_config *cfg, struct sb_repo *repo, struct sb_manifest *m,
                 struct sb_error *err)
{
    char *name = NULL, *dir = NULL, *releases = NULL;
    char object[PATH_MAX];
    int rc = -1;
    if (sb_release_current(cfg, &name, err) < 0)
        goto out;
    releases = sb_path_join(cfg->release.root, cfg->release.releases_dir);
    dir = releases ? sb_path_join(releases, name) : NULL;
    if (!dir) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    /* After a key rotation, a release stored under an older key is not reused: the current
     * key's objects carry its id, so they never take the name of an older key's object. */
    char key_tag[16] = "";
    if (repo->meta.retired_count)
        snprintf(key_tag, sizeof(key_tag), "-k%.8s", repo->meta.key_id);
    struct sb_manifest_object existing;
    uint64_t entries = 0;
    bool named = false;
    /* Offline, nothing on the server can be checked: the release is archived again, and its
     * object is named after this snapshot too, so that its upload never replaces an object
     * earlier snapshots reference (their manifests hold its hash). */
    char offline_tag[40] = "";
    if (repo->offline)
        snprintf(offline_tag, sizeof(offline_tag), "-%s", m->id);
    if (!repo->offline &&
        find_stored_release(repo, name, NULL, &existing, &entries, &named, err) < 0)
        goto out;
    m->has_release = true;
    m->release.name = name;
    name = NULL;
    if (!named) {
        /* No snapshot has a release of this name (the first snapshot after a deploy): there is
         * nothing to reuse, so the tree is archived at once, under a name of this snapshot,
         * in the fingerprint's order, which gives the fingerprint of the metadata each entry
         * had when it was archived; it names the object. A digest walk afterwards (in
         * threads) must find the same metadata: a file written, added or removed meanwhile
         * fails the snapshot as below. One walk instead of two (docs/PERFORMANCE.md). */
        char pending[PATH_MAX];
        snprintf(pending, sizeof(pending), "releases/%s-new-%s%s.snpb", m->release.name, m->id,
                 key_tag);
        struct sb_tree_fp seen;
        struct sb_manifest_object obj;
        if (archive_tree(repo, dir, SB_TREE_STRICT, pending, 0, &seen, &m->release.entries, &obj,
                         err) < 0) {
            sb_error_wrap(err, "release '%s'", m->release.name);
            goto out;
        }
        sb_test_kill_point("release-archived");
        sb_test_pause_point("release-archived");
        if (release_unchanged(dir, &seen, err) < 0) {
            remove_object(repo, pending);
            goto out;
        }
        snprintf(object, sizeof(object), "releases/%s-%s%s%s.snpb", m->release.name, seen.hex,
                 offline_tag, key_tag);
        char *from = sb_repo_object_path(repo, pending), *to = sb_repo_object_path(repo, object);
        int renamed = from && to ? sb_store_rename(sb_repo_write_store(repo), from, to, err)
                                 : sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        free(from);
        free(to);
        if (renamed < 0) {
            remove_object(repo, pending);
            goto out;
        }
        m->release.fingerprint = sb_strdup(seen.hex);
        m->release.object = sb_strdup(object);
        if (!m->release.fingerprint || !m->release.object) {
            sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            goto out;
        }
        if (record_object(m, object, &obj, err) < 0)
            goto out;
        rc = 0;
        goto out;
    }
    struct sb_tree_fp fp;
    if (sb_tree_fingerprint(dir, &fp, err) < 0)
        goto out;
    snprintf(object, sizeof(object), "releases/%s-%s%s.snpb", m->release.name, fp.hex, key_tag);
    m->release.fingerprint = sb_strdup(fp.hex);
    m->release.object = sb_strdup(object);
    if (!m->release.fingerprint || !m->release.object) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    int found =
        find_stored_release(repo, m->release.name, object, &existing, &entries, &named, err);
    if (found < 0)
        goto out;
    if (found) {
        existing.name = object;
        if (sb_manifest_add_object(m, &existing, err) < 0)
            goto out;
        m->release.entries = entries;
        m->release.reused = true;
        sb_info("release '%s' is unchanged since an earlier snapshot: not stored again",
                m->release.name);
        rc = 0;
        goto out;
    }
    struct sb_tree_fp seen;
    struct sb_manifest_object obj;
    if (archive_tree(repo, dir, SB_TREE_STRICT, object, fp.bytes, &seen, &m->release.entries, &obj,
                     err) < 0) {
        sb_error_wrap(err, "release '%s'", m->release.name);
        goto out;
    }
    sb_test_kill_point("release-archived");
    sb_test_pause_point("release-archived");
    /* A release is immutable once deployed; if it changed while we read it, the object may
     * mix two states, so we refuse it rather than store a lie under this fingerprint: the
     * archive must have seen what the fingerprint walk saw before it, and nothing may have
     * changed since. */
    if (strcmp(seen.hex, fp.hex) != 0 ? release_changed(dir, err) < 0
                                      : release_unchanged(dir, &seen, err) < 0) {
        remove_object(repo, object);
        goto out;
    }
    if (record_object(m, object, &obj, err) < 0)
        goto out;
    rc = 0;
out:
    free(name);
    free(dir);
    free(releases);
    return rc;
}

static int
snapshot_shared(const struct sb_config *cfg, struct sb_repo *repo, struct sb_manifest *m,
                struct sb_error *err)
{
    m->shared =
        calloc(cfg->release.shared_count ? cfg->release.shared_count : 1, sizeof(*m->shared));
    if (!m->shared)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    for (size_t idx = 0; idx < cfg->release.shared_count; idx++) {
        const char *rel = cfg->release.shared_paths[idx];
        char object[128];
        snprintf(object, sizeof(object), "data/%s/shared-%zu.snpb", m->id, idx);
        char *dir = sb_path_join(cfg->release.root, rel);
        if (!dir)
            return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        /* followed when it is a symlink (shared/uploads linked to a mount): its contents are
         * archived, and restored as a directory */
        struct stat st;
        if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
            sb_error_set(err, SB_E_NOTFOUND, 0,
                         "shared path '%s' is not a directory; fix release.shared_paths[%zu]", dir,
                         idx);
            free(dir);
            return -1;
        }
        uint64_t entries = 0;
        int rc = store_tree(repo, m, dir, SB_TREE_VOLATILE, object, 0, &entries, err);
        free(dir);
        if (rc < 0)
            return sb_error_wrap(err, "shared path '%s'", rel);
        struct sb_manifest_shared *s = &m->shared[m->shared_count++];
        s->path = sb_strdup(rel);
        s->object = sb_strdup(object);
        if (!s->path || !s->object)
            return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    return 0;
}

/* Every database is checked (reachable, credentials accepted, client installed) before any
 * object is written, so a server that is down fails the snapshot at once with exit 69. */
static int
probe_databases(const struct sb_config *cfg, struct sb_db_info *infos, struct sb_error *err)
{
    for (size_t idx = 0; idx < cfg->database_count; idx++)
        if (sb_db_probe(&cfg->databases[idx], cfg->state_dir, &infos[idx], err) < 0 ||
            sb_db_check_dump_client(&cfg->databases[idx], &infos[idx], err) < 0)
            return sb_error_wrap(err, "database '%s'", cfg->databases[idx].name);
    return 0;
}

static int
snapshot_databases(const struct sb_config *cfg, const struct sb_db_info *infos,
                   struct sb_repo *repo, struct sb_manifest *m, struct sb_error *err)
{
    m->dbs = calloc(cfg->database_count ? cfg->database_count : 1, sizeof(*m->dbs));
    if (!m->dbs)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    for (size_t idx = 0; idx < cfg->database_count; idx++) {
        const struct sb_db_config *db = &cfg->databases[idx];
        char object[160];
        snprintf(object, sizeof(object), "data/%s/db-%s.snpb", m->id, db->name);
        char *path = sb_repo_object_path(repo, object);
        struct sb_ostream *out = NULL;
        struct sb_object_result res;
        const struct sb_db_info info = infos[idx];
        int rc = -1;
        if (!path) {
            sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            goto next;
        }
        if (sb_object_create(sb_repo_write_store(repo), path, repo->key, &repo->params, &res, &out,
                             err) < 0)
            goto next;
        if (sb_db_dump(db, cfg->state_dir, &info, out, err) < 0)
            goto next;
        if (sb_ostream_close(out, err) < 0)
            goto next;
        struct sb_manifest_object obj = {object, res.stored.size, res.plain_size, {0}};
        memcpy(obj.blake2b, res.stored.hash, SB_HASH_BYTES);
        if (sb_manifest_add_object(m, &obj, err) < 0)
            goto next;
        struct sb_manifest_db *d = &m->dbs[m->db_count++];
        d->name = sb_strdup(db->name);
        d->engine = sb_strdup(sb_db_engine_name(db->engine));
        d->server_version = sb_strdup(info.server_version);
        d->format = sb_strdup(info.format);
        d->object = sb_strdup(object);
        if (db->engine == SB_DB_POSTGRESQL && info.pg_encoding[0]) {
            d->pg.encoding = sb_strdup(info.pg_encoding);
            d->pg.collate = sb_strdup(info.pg_collate);
            d->pg.ctype = sb_strdup(info.pg_ctype);
            d->pg.provider = sb_strdup(info.pg_provider);
            d->pg.icu_locale = info.pg_icu_locale[0] ? sb_strdup(info.pg_icu_locale) : NULL;
            d->pg.settings = info.pg_settings[0] ? sb_strdup(info.pg_settings) : NULL;
            const char *dropped =
                info.pg_props[0] ? sb_manifest_db_set_pg_props(d, info.pg_props) : "";
            if (!dropped) {
                sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
                goto next;
            }
            if (dropped[0])
                sb_warn("database '%s': its %s as read from the server could not be recorded; a "
                        "restore into a new database will not have them",
                        db->name, dropped);
        }
        if (!d->name || !d->engine || !d->server_version || !d->format || !d->object) {
            sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            goto next;
        }
        char stored[32], plain[32];
        sb_format_size(res.stored.size, stored);
        sb_format_size(res.plain_size, plain);
        sb_info("stored database '%s' (%s %s): %s of dump in %s", db->name, d->engine,
                info.server_version, plain, stored);
        rc = 0;
    next:
        sb_ostream_free(out);
        free(path);
        if (rc < 0)
            return sb_error_wrap(err, "database '%s'", db->name);
    }
    return 0;
}

static int
write_manifest(struct sb_repo *repo, const struct sb_manifest *m, struct sb_error *err)
{
    char *json = NULL, *path = NULL;
    struct sb_ostream *out = NULL;
    struct sb_object_result res;
    int rc = -1;
    char name[128];
    snprintf(name, sizeof(name), "snapshots/%s.manifest", m->id);
    if (sb_manifest_to_json(m, &json, err) < 0)
        goto out;
    /* the catalog first: an entry without a manifest is ignored (snapshots are what the
     * repository lists); a manifest without its entry would be unreadable on a write-only
     * host */
    if (sb_catalog_put(repo, m->id, json, err) < 0)
        goto out;
    if (!(path = sb_repo_object_path(repo, name))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    struct sb_object_params params = repo->params;
    params.threads = 1;
    struct sb_ostream *sink = NULL;
    if (sb_store_open_write(sb_repo_write_store(repo), path, SB_STORE_NO_REPLACE, &sink, err) < 0)
        goto out;
    if (sb_object_writer_new(sink, repo->key, &params, &res, &out, err) < 0)
        goto out;
    if (sb_ostream_write(out, json, strlen(json), err) < 0 || sb_ostream_close(out, err) < 0)
        goto out;
    rc = 0;
out:
    sb_ostream_free(out);
    free(json);
    free(path);
    return rc;
}

int
sb_snapshot_run(const struct sb_config *cfg, struct sb_repo *repo,
                const struct sb_snapshot_opts *opts, struct sb_manifest **out, struct sb_error *err)
{
    double started = sb_now_monotonic();
    unsigned parts = opts->parts ? opts->parts : SB_PART_ALL;
    struct sb_manifest *m = calloc(1, sizeof(*m));
    char id[32], host[256] = "";
    struct sb_db_info *infos = NULL;
    int rc = -1;
    if (!m)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    if (!repo->key_is_current) {
        free(m);
        return sb_error_set(err, SB_E_CONFIG, 0,
                            "the key given was retired by 'snapback key rotate': it reads older "
                            "snapshots but new ones are written with the repository's current "
                            "key (key id %.8s...); configure it as key_file (or recipient)",
                            repo->meta.key_id);
    }
    if (make_id(repo, id, err) < 0) {
        sb_manifest_free(m);
        return -1;
    }
    gethostname(host, sizeof(host) - 1);
    m->id = sb_strdup(id);
    m->app = sb_strdup(cfg->app);
    m->host = sb_strdup(host);
    m->tag = opts->tag ? sb_strdup(opts->tag) : NULL;
    m->tool_version = sb_strdup(SNAPBACK_VERSION);
    m->created_at = time(NULL);
    if (!m->id || !m->app || !m->host || !m->tool_version || (opts->tag && !m->tag)) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    sb_log_set_context(cfg->app, m->id);
    bool want_release = cfg->has_release && (parts & (SB_PART_RELEASE | SB_PART_SHARED));
    bool want_db = cfg->database_count > 0 && (parts & SB_PART_DB);
    if (!want_release && !want_db) {
        sb_error_set(err, SB_E_USAGE, 0, "nothing to snapshot: the config has no %s",
                     (parts & SB_PART_DB) ? "database" : "release");
        goto out;
    }
    if (want_db && !(infos = calloc(cfg->database_count, sizeof(*infos)))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    if (want_db && probe_databases(cfg, infos, err) < 0)
        goto out;
    warn_other_host(repo, m);
    if (cfg->has_release && (parts & SB_PART_RELEASE) && snapshot_release(cfg, repo, m, err) < 0)
        goto out;
    if (cfg->has_release && (parts & SB_PART_SHARED) && snapshot_shared(cfg, repo, m, err) < 0)
        goto out;
    if (want_db && snapshot_databases(cfg, infos, repo, m, err) < 0)
        goto out;
    if (!m->dbs && !(m->dbs = calloc(1, sizeof(*m->dbs)))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    if (!m->shared && !(m->shared = calloc(1, sizeof(*m->shared)))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    m->duration_s = (double)(long long)((sb_now_monotonic() - started) * 1000) / 1000.0;
    if (write_manifest(repo, m, err) < 0) {
        sb_error_wrap(err, "manifest");
        goto out;
    }
    *out = m;
    m = NULL;
    rc = 0;
out:
    if (rc < 0 && m && m->id)
        sb_error_wrap(err, "snapshot '%s'", m->id);
    sb_log_set_context(cfg->app, NULL);
    sb_manifest_free(m);
    free(infos);
    return rc;
}

int
sb_parts_parse(const char *text, unsigned *parts, struct sb_error *err)
{
    *parts = 0;
    char *copy = sb_strdup(text);
    if (!copy)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (!strcmp(tok, "release"))
            *parts |= SB_PART_RELEASE;
        else if (!strcmp(tok, "shared"))
            *parts |= SB_PART_SHARED;
        else if (!strcmp(tok, "db"))
            *parts |= SB_PART_DB;
        else {
            rc = sb_error_set(err, SB_E_USAGE, 0,
                              "--only: unknown part '%s'; use a list of release, shared, db", tok);
            break;
        }
    }
    if (rc == 0 && *parts == 0)
        rc = sb_error_set(err, SB_E_USAGE, 0, "--only: give at least one of release, shared, db");
    free(copy);
    return rc;
}
