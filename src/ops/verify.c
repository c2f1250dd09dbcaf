/* Verify (DESIGN §8): every object of a snapshot is read through the whole restore chain
 * without writing anything: stored size and BLAKE2b against the manifest, every chunk
 * authenticated, TAG_FINAL present, zstd frames complete, and every tar entry walked (names
 * checked as restore would). Each object's outcome is reported separately. With --restore-db,
 * each dump is restored into a scratch database (snapback_verify_*; SQLite: a file in
 * state_dir/tmp), probed with a table count and the configured verify.sql_probe queries, and
 * dropped whatever happened; scratch databases and files left by a killed verify are dropped by
 * the next one. */
#include "snapback/ops.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <fcntl.h>
#include <unistd.h>

#include "snapback/core.h"
#include "snapback/db.h"
#include "snapback/sources.h"

static bool
is_tree_object(const struct sb_manifest *m, const char *name)
{
    if (m->has_release && strcmp(m->release.object, name) == 0)
        return true;
    for (size_t idx = 0; idx < m->shared_count; idx++)
        if (strcmp(m->shared[idx].object, name) == 0)
            return true;
    return false;
}

static const struct sb_manifest_db *
db_of_object(const struct sb_manifest *m, const char *name)
{
    for (size_t idx = 0; idx < m->db_count; idx++)
        if (strcmp(m->dbs[idx].object, name) == 0)
            return &m->dbs[idx];
    return NULL;
}

/* --full: extract into a temp dir under state_dir and count what is there. */
static int
verify_full_tree(const struct sb_verify_opts *opts, struct sb_istream *in, uint64_t *entries,
                 struct sb_error *err)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/tmp", opts->cfg->state_dir);
    if (sb_mkdir_p(dir, 0700, err) < 0)
        return -1;
    snprintf(dir, sizeof(dir), "%s/tmp/verify-XXXXXX", opts->cfg->state_dir);
    if (!mkdtemp(dir))
        return sb_error_set(err, SB_E_CANTCREATE, errno, "cannot create a temp dir in '%s'",
                            opts->cfg->state_dir);
    int rc = sb_tree_extract(in, dir, SB_EXTRACT_WRITE, entries, err);
    struct sb_error ignored = SB_ERROR_INIT;
    sb_remove_tree(dir, &ignored);
    return rc;
}

#define SCRATCH_PREFIX "snapback_verify_"

/* Removes the scratch SQLite files (with their temp, -wal and -shm files) that a killed verify
 * left in state_dir/tmp: nothing else is named snapback_verify_* there. */
static void
drop_sqlite_leftovers(const char *state_dir)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/tmp", state_dir);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *entry;
    while ((entry = readdir(d))) {
        if (strncmp(entry->d_name, SCRATCH_PREFIX, strlen(SCRATCH_PREFIX)) != 0)
            continue;
        char path[4096 + 256];
        snprintf(path, sizeof(path), "%s/%s", dir, entry->d_name);
        sb_warn("removing scratch database file '%s' left by an interrupted verify", path);
        if (unlink(path) < 0 && errno != ENOENT)
            sb_warn("cannot remove '%s': %s", path, strerror(errno));
    }
    closedir(d);
}

/* The first line of out, without surrounding white space, control bytes shown as '?'. */
static void
first_row(const char *out, char *row, size_t cap)
{
    const char *start = out;
    size_t len = strcspn(out, "\n");
    while (len && (*start == ' ' || *start == '\t' || *start == '\r')) {
        start++;
        len--;
    }
    while (len && (start[len - 1] == ' ' || start[len - 1] == '\t' || start[len - 1] == '\r'))
        len--;
    if (len >= cap)
        len = cap - 1;
    for (size_t idx = 0; idx < len; idx++)
        row[idx] = (unsigned char)start[idx] < 0x20 ? '?' : start[idx];
    row[len] = '\0';
}

/* Runs one configured probe in the scratch restore target. A wrong answer, no rows or an SQL
 * error mean the restored data is not what the operator expects: SB_E_CORRUPT (65); a server
 * that went away or refused the login keeps its own code (69, 77). */
static int
run_sql_probe(const struct sb_verify_opts *opts, const struct sb_db_config *db, const char *target,
              struct sb_verify_probe *p, struct sb_error *err)
{
    const struct sb_sql_probe *q = p->probe;
    char *out = NULL;
    struct sb_error qerr = SB_ERROR_INIT;
    int rc = sb_db_query(db, target, q->sql, opts->cfg->state_dir, &out, &qerr);
    p->skipped = false;
    if (rc < 0) {
        enum sb_code code =
            qerr.code == SB_E_UNAVAILABLE || qerr.code == SB_E_PERM ? qerr.code : SB_E_CORRUPT;
        sb_error_set(err, code, qerr.sys_errno,
                     "database '%s': SQL probe '%.200s' (verify.sql_probe[%zu]) failed: %s; fix "
                     "the query in the config, or find out why the restored data lacks what it "
                     "reads",
                     q->database, q->sql, p->config_idx, qerr.msg);
    } else if (!out || !out[0]) {
        rc = sb_error_set(err, SB_E_CORRUPT, 0,
                          "database '%s': SQL probe '%.200s' (verify.sql_probe[%zu]) returned no "
                          "rows%s%s%s; the restored data is not what the probe expects",
                          q->database, q->sql, p->config_idx, q->expect ? ", expected '" : "",
                          q->expect ? q->expect : "", q->expect ? "'" : "");
    } else {
        first_row(out, p->got, sizeof(p->got));
        if (q->expect && strcmp(p->got, q->expect) != 0)
            rc = sb_error_set(err, SB_E_CORRUPT, 0,
                              "database '%s': SQL probe '%.200s' (verify.sql_probe[%zu]) "
                              "returned '%s', expected '%s'; the restored data is not what the "
                              "probe expects",
                              q->database, q->sql, p->config_idx, p->got, q->expect);
    }
    free(out);
    p->ok = rc == 0;
    if (rc < 0)
        snprintf(p->error, sizeof(p->error), "%s", err->msg);
    return rc;
}

/* Marks the configured probes of database name as not run, saying why. */
static void
probes_not_run(struct sb_verify_result *res, const char *name, const char *object, const char *why)
{
    for (size_t idx = 0; idx < res->probe_count; idx++) {
        struct sb_verify_probe *p = &res->probes[idx];
        if (strcmp(p->probe->database, name) != 0)
            continue;
        p->object = object;
        p->skipped = true;
        p->ok = true;
        snprintf(p->error, sizeof(p->error), "not run: %s", why);
    }
}

/* --restore-db: the dump into a scratch database (or temp SQLite file), the probes, a drop.
 * The first failing configured probe goes into perr (err is for the object itself). */
static int
verify_restore_db_locked(const struct sb_verify_opts *opts, const struct sb_manifest *m,
                         const struct sb_manifest_db *d, struct sb_istream *in,
                         struct sb_verify_object *v, struct sb_verify_result *res,
                         struct sb_error *perr, struct sb_error *err)
{
    const struct sb_db_config *db = sb_config_find_db(opts->cfg, d->name);
    if (!db)
        return sb_error_set(err, SB_E_CONFIG, 0,
                            "database '%s' is not in the config: snapback does not know which "
                            "server to restore it into for --restore-db",
                            d->name);
    char target[4096];
    if (db->engine == SB_DB_SQLITE) {
        snprintf(target, sizeof(target), "%s/tmp", opts->cfg->state_dir);
        if (sb_mkdir_p(target, 0700, err) < 0)
            return -1;
        drop_sqlite_leftovers(opts->cfg->state_dir);
        snprintf(target, sizeof(target), "%s/tmp/" SCRATCH_PREFIX "%s_%s.sqlite3",
                 opts->cfg->state_dir, m->id, d->name);
        unlink(target);
    } else {
        struct sb_error lerr = SB_ERROR_INIT;
        if (sb_db_drop_leftovers(db, SCRATCH_PREFIX, opts->cfg->state_dir, &lerr) < 0)
            sb_warn("cannot clean up old scratch databases: %s", lerr.msg);
        char id[32];
        snprintf(id, sizeof(id), "%s", m->id);
        for (char *c = id; *c; c++)
            if (*c == '-')
                *c = '_';
        snprintf(target, sizeof(target), SCRATCH_PREFIX "%s_%s", id, d->name);
        for (char *c = target; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
    }
    struct sb_db_create create;
    int rc = sb_db_restore(db, target, SB_DB_RESTORE_SCRATCH, sb_db_create_of(d, &create),
                           opts->cfg->state_dir, in, err);
    if (rc == 0) {
        const char *probe = db->engine == SB_DB_POSTGRESQL
                                ? "SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname "
                                  "NOT IN ('pg_catalog', 'information_schema')"
                            : db->engine == SB_DB_MYSQL
                                ? "SELECT count(*) FROM information_schema.tables WHERE "
                                  "table_schema = DATABASE()"
                                : "SELECT count(*) FROM sqlite_master WHERE type = 'table'";
        char *out = NULL;
        rc = sb_db_query(db, target, probe, opts->cfg->state_dir, &out, err);
        if (rc == 0) {
            size_t len = strcspn(out, "\n");
            snprintf(v->probe, sizeof(v->probe), "%.*s table(s) restored", (int)len, out);
        }
        free(out);
    }
    if (rc == 0) {
        for (size_t idx = 0; idx < res->probe_count; idx++) {
            struct sb_verify_probe *p = &res->probes[idx];
            struct sb_error qerr = SB_ERROR_INIT;
            if (strcmp(p->probe->database, d->name) != 0)
                continue;
            p->object = v->name;
            if (run_sql_probe(opts, db, target, p, &qerr) < 0) {
                res->failed++;
                if (perr->code == SB_OK)
                    *perr = qerr;
            }
        }
    } else {
        probes_not_run(res, d->name, v->name, "restoring the dump or counting its tables failed");
    }
    /* Always dropped, also when a probe failed. */
    struct sb_error derr = SB_ERROR_INIT;
    if (sb_db_drop(db, target, opts->cfg->state_dir, &derr) < 0) {
        sb_warn("cannot drop scratch database '%s': %s", target, derr.msg);
        if (rc == 0) {
            *err = derr;
            rc = -1;
        }
    }
    return rc;
}

/* Two runs of --restore-db for the same app (a scheduled verify and one by hand) take turns:
 * each drops the scratch databases a killed run left (snapback_verify_*), which must not be
 * the other's live ones. A blocking flock on state_dir/verify-db.lock, released by close. */
static int
verify_restore_db(const struct sb_verify_opts *opts, const struct sb_manifest *m,
                  const struct sb_manifest_db *d, struct sb_istream *in, struct sb_verify_object *v,
                  struct sb_verify_result *res, struct sb_error *perr, struct sb_error *err)
{
    char *path = sb_path_join(opts->cfg->state_dir, "verify-db.lock");
    if (!path)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        sb_error_set(err, sb_error_from_errno(errno), errno, "cannot open '%s'", path);
        free(path);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        sb_info("waiting for another 'verify --restore-db' of this app to finish (%s)", path);
        while (flock(fd, LOCK_EX) < 0) {
            if (errno != EINTR || sb_check_stop(err) < 0) {
                if (errno != EINTR)
                    sb_error_set(err, SB_E_IO, errno, "cannot lock '%s'", path);
                close(fd);
                free(path);
                return -1;
            }
        }
    }
    free(path);
    int rc = verify_restore_db_locked(opts, m, d, in, v, res, perr, err);
    close(fd);
    return rc;
}

int
sb_verify_run(struct sb_repo *repo, const struct sb_manifest *m, const struct sb_verify_opts *opts,
              struct sb_verify_result *res, struct sb_error *err)
{
    memset(res, 0, sizeof(*res));
    res->objects = calloc(m->object_count ? m->object_count : 1, sizeof(*res->objects));
    if (!res->objects)
        return sb_error_set(err, SB_E_INTERNAL, 0, "out of memory");
    if (opts->restore_db && opts->cfg && opts->cfg->verify.sql_probe_count) {
        size_t n = opts->cfg->verify.sql_probe_count;
        if (!(res->probes = calloc(n, sizeof(*res->probes))))
            return sb_error_set(err, SB_E_INTERNAL, 0, "out of memory");
        res->probe_count = n;
        for (size_t idx = 0; idx < n; idx++) {
            res->probes[idx].probe = &opts->cfg->verify.sql_probes[idx];
            res->probes[idx].config_idx = idx;
            res->probes[idx].skipped = true;
            res->probes[idx].ok = true;
            snprintf(res->probes[idx].error, sizeof(res->probes[idx].error),
                     "not run: the snapshot has no dump of database '%s'",
                     res->probes[idx].probe->database);
        }
    }
    bool first_error = true;
    for (size_t idx = 0; idx < m->object_count; idx++) {
        const struct sb_manifest_object *o = &m->objects[idx];
        struct sb_verify_object *v = &res->objects[res->count++];
        struct sb_error oerr = SB_ERROR_INIT;
        struct sb_istream *in = NULL;
        struct sb_digest expect;
        memcpy(expect.hash, o->blake2b, SB_HASH_BYTES);
        expect.size = o->stored_size;
        v->name = sb_repo_object_path(repo, o->name);
        if (!v->name)
            return sb_error_set(err, SB_E_INTERNAL, 0, "out of memory");
        v->plain_bytes = o->plain_size;
        if (opts->sample < 1.0 &&
            (double)randombytes_uniform(1000000) >= opts->sample * 1000000.0) {
            v->skipped = true;
            v->ok = true;
            const struct sb_manifest_db *sd = db_of_object(m, o->name);
            if (sd)
                probes_not_run(res, sd->name, v->name, "the dump is not in the sample");
            continue;
        }
        const struct sb_manifest_db *d = db_of_object(m, o->name);
        struct sb_error perr = SB_ERROR_INIT;
        int rc = sb_object_open(repo->store, v->name, repo->key, &expect, &in, &oerr);
        if (rc < 0 && d)
            probes_not_run(res, d->name, v->name, "the dump could not be read");
        if (rc == 0) {
            if (is_tree_object(m, o->name) && opts->full)
                rc = verify_full_tree(opts, in, &v->entries, &oerr);
            else if (is_tree_object(m, o->name))
                rc = sb_tree_extract(in, NULL, SB_EXTRACT_LIST, &v->entries, &oerr);
            else if (d && opts->restore_db)
                rc = verify_restore_db(opts, m, d, in, v, res, &perr, &oerr);
            else
                rc = sb_istream_drain(in, &oerr);
        }
        if (rc == 0 && m->has_release && !strcmp(o->name, m->release.object) &&
            v->entries != m->release.entries)
            rc = sb_error_set(
                &oerr, SB_E_CORRUPT, 0, "the release has %llu entries, the manifest records %llu",
                (unsigned long long)v->entries, (unsigned long long)m->release.entries);
        sb_istream_free(in);
        v->ok = rc == 0;
        if (!v->ok) {
            res->failed++;
            snprintf(v->error, sizeof(v->error), "%s", oerr.msg);
            if (first_error) {
                *err = oerr;
                sb_error_wrap(err, "object '%s'", v->name);
                first_error = false;
            }
        } else if (perr.code != SB_OK && first_error) {
            *err = perr;
            sb_error_wrap(err, "object '%s'", v->name);
            first_error = false;
        }
    }
    return 0;
}

void
sb_verify_result_release(struct sb_verify_result *res)
{
    for (size_t idx = 0; idx < res->count; idx++)
        free(res->objects[idx].name);
    free(res->objects);
    free(res->probes);
    memset(res, 0, sizeof(*res));
}
