/* The repository as commands see it (DESIGN §6): snapback.json at the top (format, id, key
 * id: a wrong key is refused before any object is read), and per app the encrypted manifests
 * in snapshots/, whose presence alone defines which snapshots exist. */
#include "snapback/ops.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapback/core.h"

#define REPO_META "snapback.json"
#define REPO_FORMAT 1
#define MANIFEST_MAX (64u << 20)
#define MANIFEST_SUFFIX ".manifest"

int
sb_repo_store_new(const struct sb_config *cfg, struct sb_store **out, struct sb_error *err)
{
    if (cfg->repository.is_sftp)
        return sb_store_sftp_new(cfg, out, err);
    return sb_store_local_new(cfg->repository.path, out, err);
}

int
sb_repo_init(const struct sb_config *cfg, const struct sb_key *key, struct sb_repo_meta *meta,
             struct sb_error *err)
{
    struct sb_store *st = NULL;
    if (sb_repo_store_new(cfg, &st, err) < 0)
        return -1;
    int rc = -1;
    char *text = NULL;
    struct sb_store_stat sst;
    if (sb_store_stat(st, REPO_META, &sst, err) < 0)
        goto out;
    if (sst.exists) {
        sb_error_set(err, SB_E_CANTCREATE, 0,
                     "repository '%s' already exists; refusing to initialise it again",
                     st->display);
        goto out;
    }
    memset(meta, 0, sizeof(*meta));
    meta->format = REPO_FORMAT;
    unsigned char id[16];
    randombytes_buf(id, sizeof(id));
    sb_hex_encode(id, sizeof(id), meta->id);
    sb_key_id(key, meta->key_id);
    meta->key_mode = key->mode;
    meta->created = time(NULL);
    meta->chunk_size = SB_CHUNK_SIZE_DEFAULT;
    if (sb_repo_meta_to_json(meta, &text, err) < 0)
        goto out;
    if (sb_store_put(st, REPO_META, SB_STORE_NO_REPLACE, text, strlen(text), err) < 0) {
        sb_error_wrap(err, "repository '%s'", st->display);
        goto out;
    }
    rc = 0;
out:
    free(text);
    sb_store_free(st);
    return rc;
}

/* Which of the repository's keys id is: 0 the current one, 1 + n the n-th retired one, -1
 * none. */
static int
repo_key_index(const struct sb_repo_meta *meta, const char *id)
{
    if (!strcmp(id, meta->key_id))
        return 0;
    for (size_t idx = 0; idx < meta->retired_count; idx++)
        if (!strcmp(id, meta->retired[idx].key_id))
            return 1 + (int)idx;
    return -1;
}

/* The key to open the repository with: --key / SNAPBACK_KEY_FILE (cfg->read_key_file), else
 * key_file, else the recipient's public key (a write-only host: writes, never reads); then
 * old_key_files, the keys a rotation retired, as the ring reading tries after it. */
static int
repo_load_key(const struct sb_config *cfg, struct sb_repo *repo, struct sb_error *err)
{
    const char *path = cfg->read_key_file ? cfg->read_key_file : cfg->key_file;
    int rc = path ? sb_keyfile_load(path, &repo->key, err)
                  : sb_pubfile_load(path = cfg->recipient, &repo->key, err);
    if (rc < 0)
        return -1;
    char key_id[33];
    sb_key_id(repo->key, key_id);
    int found = repo_key_index(&repo->meta, key_id);
    if (found < 0 && !repo->meta.retired_count && (int)repo->key->mode != repo->meta.key_mode)
        return sb_error_set(
            err, SB_E_CONFIG, 0,
            repo->meta.key_mode == SB_KEY_SEALED
                ? "repository '%s' is sealed to a recipient key (created for write-only hosts) "
                  "but '%s' is a symmetric repository key; configure \"recipient\" with the "
                  ".pub file, and read with the secret .key file (--key)"
                : "repository '%s' uses a symmetric repository key but '%s' is a recipient key "
                  "(keygen --write-only); configure the repository's key_file",
            repo->store->display, path);
    if (found < 0)
        return sb_error_set(err, SB_E_CORRUPT, 0,
                            "the key in '%s' does not open repository '%s' (key id %.8s..., the "
                            "repository needs %.8s...%s); check %s",
                            path, repo->store->display, key_id, repo->meta.key_id,
                            repo->meta.retired_count ? " or one of its retired keys" : "",
                            cfg->read_key_file ? "--key / SNAPBACK_KEY_FILE"
                            : cfg->key_file    ? "key_file"
                                               : "recipient");
    repo->key_is_current = found == 0;
    struct sb_key *tail = repo->key;
    for (size_t idx = 0; idx < cfg->old_key_count; idx++) {
        struct sb_key *old = NULL;
        if (sb_keyfile_load(cfg->old_key_files[idx], &old, err) < 0)
            return sb_error_wrap(err, "old_key_files[%zu]", idx);
        sb_key_id(old, key_id);
        if (repo_key_index(&repo->meta, key_id) < 0) {
            sb_key_free(old);
            return sb_error_set(err, SB_E_CONFIG, 0,
                                "old_key_files[%zu]: '%s' (key id %.8s...) is not a key of "
                                "repository '%s' (neither its current key nor one 'snapback key "
                                "rotate' retired)",
                                idx, cfg->old_key_files[idx], key_id, repo->store->display);
        }
        tail->next = old;
        tail = old;
    }
    return 0;
}

int
sb_repo_rotate_key(struct sb_repo *repo, const struct sb_key *new_key, struct sb_error *err)
{
    struct sb_repo_meta meta = repo->meta;
    char new_id[33];
    sb_key_id(new_key, new_id);
    if (repo_key_index(&meta, new_id) >= 0)
        return sb_error_set(err, SB_E_USAGE, 0,
                            "key %.8s... is already a key of repository '%s'; rotate to a new "
                            "key",
                            new_id, repo->store->display);
    if (meta.retired_count >= SB_RETIRED_KEYS_MAX)
        return sb_error_set(err, SB_E_USAGE, 0, "repository '%s' has retired %d keys already",
                            repo->store->display, SB_RETIRED_KEYS_MAX);
    memcpy(meta.retired[meta.retired_count].key_id, meta.key_id, sizeof(meta.key_id));
    meta.retired[meta.retired_count++].key_mode = meta.key_mode;
    memcpy(meta.key_id, new_id, sizeof(meta.key_id));
    meta.key_mode = new_key->mode;
    char *text = NULL;
    if (sb_repo_meta_to_json(&meta, &text, err) < 0)
        return -1;
    /* replaced as a whole (NAME.partial, fsync, rename): a reader sees the old or the new */
    int rc = sb_store_put(repo->store, REPO_META, 0, text, strlen(text), err);
    free(text);
    if (rc < 0)
        return sb_error_wrap(err, "repository '%s'", repo->store->display);
    repo->meta = meta;
    return 0;
}

/* The checks and settings every open shares, from the text of snapback.json. */
static int
repo_finish_open(const struct sb_config *cfg, struct sb_repo *repo, const char *text,
                 struct sb_error *err)
{
    if (sb_repo_meta_from_json(text, &repo->meta, err) < 0)
        return sb_error_wrap(err, "repository '%s'", repo->store->display);
    if (repo->meta.format != REPO_FORMAT)
        return sb_error_set(err, SB_E_CORRUPT, 0,
                            "repository '%s' has format %d; this snapback reads format %d",
                            repo->store->display, repo->meta.format, REPO_FORMAT);
    if (repo_load_key(cfg, repo, err) < 0)
        return -1;
    /* per repository: a state_dir pointed at another repository never mixes their catalogs */
    char catalog[64];
    snprintf(catalog, sizeof(catalog), "catalog/%s", repo->meta.id);
    if (!(repo->catalog_dir = sb_path_join(cfg->state_dir, catalog)))
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    repo->params.level = cfg->compression.level;
    repo->params.threads = cfg->compression.threads;
    repo->params.chunk_size = repo->meta.chunk_size;
    if (cfg->repository.is_sftp) {
        char *spool = sb_path_join(cfg->state_dir, "spool");
        int r = spool ? sb_store_local_new(spool, &repo->spool, err)
                      : sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        free(spool);
        if (r < 0)
            return -1;
    }
    return 0;
}

static struct sb_repo *
repo_new(const struct sb_config *cfg, struct sb_error *err)
{
    struct sb_repo *repo = calloc(1, sizeof(*repo));
    if (!repo) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        return NULL;
    }
    if (sb_repo_store_new(cfg, &repo->store, err) < 0)
        goto fail;
    if (!(repo->app = sb_strdup(cfg->app))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto fail;
    }
    return repo;
fail:
    sb_repo_free(repo);
    return NULL;
}

/* state_dir/remote.json: {"url": repository.url, "meta": the text of its snapback.json}, kept
 * by every successful open of a remote repository for sb_repo_open_offline. Rewritten (atomic,
 * 0600) only when it changed. A failure only costs the offline fallback: a warning. */
static void
remember_remote(const struct sb_config *cfg, const char *text)
{
    char *path = sb_path_join(cfg->state_dir, "remote.json");
    cJSON *obj = cJSON_CreateObject();
    char *json = NULL, *old = NULL;
    struct sb_error err = SB_ERROR_INIT;
    if (!path || !obj || !cJSON_AddStringToObject(obj, "url", cfg->repository.url) ||
        !cJSON_AddStringToObject(obj, "meta", text) || !(json = cJSON_PrintUnformatted(obj)))
        goto out;
    if (sb_read_file(path, 1u << 20, &old, NULL, &err) == 0 && !strcmp(old, json))
        goto out;
    sb_error_clear(&err);
    if (sb_mkdir_p(cfg->state_dir, 0700, &err) < 0 ||
        sb_write_file_atomic(path, json, strlen(json), 0600, &err) < 0)
        sb_warn("cannot keep a copy of the repository's snapback.json (a snapshot while the "
                "server is down needs it): %s",
                err.msg);
out:
    free(old);
    free(json);
    cJSON_Delete(obj);
    free(path);
}

int
sb_repo_open(const struct sb_config *cfg, struct sb_repo **out, struct sb_error *err)
{
    char *text = NULL;
    struct sb_repo *repo = repo_new(cfg, err);
    if (!repo)
        return -1;
    if (sb_store_get(repo->store, REPO_META, 1u << 16, &text, NULL, err) < 0) {
        if (err->code == SB_E_NOTFOUND)
            sb_error_set(err, SB_E_NOTFOUND, 0,
                         "no snapback repository at '%s' (no snapback.json); create one with "
                         "'snapback init'",
                         repo->store->display);
        goto fail;
    }
    if (repo_finish_open(cfg, repo, text, err) < 0)
        goto fail;
    if (cfg->repository.is_sftp)
        remember_remote(cfg, text);
    free(text);
    *out = repo;
    return 0;
fail:
    free(text);
    sb_repo_free(repo);
    return -1;
}

int
sb_repo_open_offline(const struct sb_config *cfg, struct sb_repo **out, struct sb_error *err)
{
    char *path = sb_path_join(cfg->state_dir, "remote.json");
    char *text = NULL;
    cJSON *obj = NULL;
    struct sb_repo *repo = NULL;
    int rc = -1;
    if (!path)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    if (sb_read_file(path, 1u << 20, &text, NULL, err) < 0) {
        sb_error_set(err, SB_E_UNAVAILABLE, 0,
                     "no copy of the repository's snapback.json in '%s' (it is kept by the "
                     "first run that reaches the server)",
                     path);
        goto out;
    }
    obj = cJSON_Parse(text);
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(obj, "url");
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(obj, "meta");
    if (!cJSON_IsString(url) || !cJSON_IsString(meta)) {
        sb_error_set(err, SB_E_UNAVAILABLE, 0,
                     "'%s' is damaged; the next run that reaches the "
                     "server writes it again",
                     path);
        goto out;
    }
    if (strcmp(url->valuestring, cfg->repository.url) != 0) {
        sb_error_set(err, SB_E_UNAVAILABLE, 0,
                     "'%s' is the copy of another repository ('%s'); the next run that reaches "
                     "'%s' writes it again",
                     path, url->valuestring, cfg->repository.url);
        goto out;
    }
    if (!(repo = repo_new(cfg, err)) || repo_finish_open(cfg, repo, meta->valuestring, err) < 0)
        goto out;
    repo->offline = true;
    *out = repo;
    repo = NULL;
    rc = 0;
out:
    sb_repo_free(repo);
    cJSON_Delete(obj);
    free(text);
    free(path);
    return rc;
}

int
sb_repo_open_reachable_or_offline(const struct sb_config *cfg, struct sb_repo **out,
                                  struct sb_error *unreachable, struct sb_error *err)
{
    if (sb_repo_open(cfg, out, err) == 0)
        return 0;
    if (err->code != SB_E_UNAVAILABLE || !cfg->repository.is_sftp)
        return -1;
    *unreachable = *err;
    struct sb_error oerr = SB_ERROR_INIT;
    if (sb_repo_open_offline(cfg, out, &oerr) == 0) {
        sb_error_clear(err);
        return 0;
    }
    return sb_error_set(err, SB_E_UNAVAILABLE, 0, "%s; %s", unreachable->msg, oerr.msg);
}

void
sb_repo_free(struct sb_repo *repo)
{
    if (!repo)
        return;
    sb_store_free(repo->store);
    sb_store_free(repo->spool);
    sb_key_free(repo->key);
    free(repo->app);
    free(repo->catalog_dir);
    free(repo);
}

bool
sb_snapshot_id_valid(const char *id)
{
    /* 20261124T143000Z-7f3a */
    static const char shape[] = "ddddddddTddddddZ-xxxx";
    if (!id || strlen(id) != sizeof(shape) - 1)
        return false;
    for (size_t idx = 0; shape[idx]; idx++) {
        char c = id[idx];
        switch (shape[idx]) {
        case 'd':
            if (c < '0' || c > '9')
                return false;
            break;
        case 'x':
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                return false;
            break;
        default:
            if (c != shape[idx])
                return false;
        }
    }
    return true;
}

char *
sb_repo_object_path(const struct sb_repo *repo, const char *name)
{
    return sb_path_join(repo->app, name);
}

/* Offline (the server unreachable), the ids this host's catalog knows: the snapshots it wrote
 * (the only ones that can share its clock's second with a new one). Sorted. */
static int
catalog_ids(struct sb_repo *repo, char ***ids, size_t *n, struct sb_error *err)
{
    *ids = NULL;
    *n = 0;
    char *dir = sb_path_join(repo->catalog_dir, repo->app);
    if (!dir)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    struct sb_store *cat = NULL;
    int rc = sb_store_local_new(dir, &cat, err);
    free(dir);
    char **names = NULL;
    size_t count = 0;
    if (rc == 0)
        rc = sb_store_list(cat, "", &names, &count, err);
    sb_store_free(cat);
    if (rc < 0)
        return err->code == SB_E_NOTFOUND ? (sb_error_clear(err), 0) : -1;
    size_t kept = 0;
    for (size_t idx = 0; idx < count; idx++) {
        size_t len = strlen(names[idx]);
        if (len > 5 && !strcmp(names[idx] + len - 5, ".json")) {
            names[idx][len - 5] = '\0';
            if (sb_snapshot_id_valid(names[idx])) {
                names[kept++] = names[idx];
                continue;
            }
        }
        free(names[idx]);
    }
    *ids = names;
    *n = kept;
    return 0;
}

int
sb_repo_list_ids(struct sb_repo *repo, char ***ids, size_t *count, struct sb_error *err)
{
    if (repo->offline)
        return catalog_ids(repo, ids, count, err);
    char **names = NULL;
    size_t n = 0;
    *ids = NULL;
    *count = 0;
    char *dir = sb_path_join(repo->app, "snapshots");
    if (!dir)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    int rc = sb_store_list(repo->store, dir, &names, &n, err);
    free(dir);
    if (rc < 0)
        return -1;
    size_t kept = 0;
    size_t slen = strlen(MANIFEST_SUFFIX);
    for (size_t idx = 0; idx < n; idx++) {
        size_t len = strlen(names[idx]);
        if (len > slen && strcmp(names[idx] + len - slen, MANIFEST_SUFFIX) == 0) {
            names[idx][len - slen] = '\0';
            if (sb_snapshot_id_valid(names[idx])) {
                names[kept++] = names[idx];
                continue;
            }
        }
        free(names[idx]); /* partial files and strangers */
    }
    *ids = names;
    *count = kept;
    return 0;
}

/* --- the catalog (state_dir/catalog/APP/ID.json, 0600): the manifests this host wrote, so a
 * write-only host, which cannot decrypt the repository's manifests, can still list, report
 * and prune. It holds metadata only (names, sizes, hashes), never data or keys. --- */

static char *
catalog_path(const struct sb_repo *repo, const char *id)
{
    char name[160];
    snprintf(name, sizeof(name), "%s/%s.json", repo->app, id);
    return sb_path_join(repo->catalog_dir, name);
}

int
sb_catalog_put(struct sb_repo *repo, const char *id, const char *json, struct sb_error *err)
{
    char *path = catalog_path(repo, id);
    char *dir = sb_path_join(repo->catalog_dir, repo->app);
    int rc = -1;
    if (!path || !dir)
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    else if (sb_mkdir_p(dir, 0700, err) == 0 &&
             sb_write_file_atomic(path, json, strlen(json), 0600, err) == 0)
        rc = 0;
    free(path);
    free(dir);
    return rc;
}

int
sb_catalog_remove(struct sb_repo *repo, const char *id, struct sb_error *err)
{
    char *path = catalog_path(repo, id);
    if (!path)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    int rc = 0;
    if (unlink(path) < 0 && errno != ENOENT)
        rc = sb_error_set(err, SB_E_IO, errno, "cannot remove catalog entry '%s'", path);
    free(path);
    return rc;
}

int
sb_catalog_sweep(struct sb_repo *repo, char **ids, size_t nids, time_t older_than,
                 struct sb_error *err)
{
    char *dir = sb_path_join(repo->catalog_dir, repo->app);
    if (!dir)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        int rc = e == ENOENT ? 0 : sb_error_set(err, SB_E_IO, e, "cannot read catalog '%s'", dir);
        free(dir);
        return rc;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        char id[64];
        snprintf(id, sizeof(id), "%.*s", (int)(len - 5), de->d_name);
        bool listed = false;
        for (size_t idx = 0; idx < nids && !listed; idx++)
            listed = !strcmp(ids[idx], id);
        struct stat st;
        if (listed || fstatat(dirfd(d), de->d_name, &st, 0) < 0 || st.st_mtime >= older_than)
            continue;
        if (unlinkat(dirfd(d), de->d_name, 0) == 0)
            sb_info("removed the catalog entry of snapshot '%s', which has no manifest", id);
    }
    closedir(d);
    free(dir);
    return 0;
}

static int
catalog_load(struct sb_repo *repo, const char *id, struct sb_manifest **out, struct sb_error *err)
{
    char *path = catalog_path(repo, id);
    char *text = NULL;
    size_t len = 0;
    int rc = -1;
    if (!path)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    if (sb_read_file(path, MANIFEST_MAX, &text, &len, err) < 0) {
        if (err->code == SB_E_NOTFOUND)
            sb_error_set(err, SB_E_PERM, 0,
                         "snapshot '%s' is not in this host's catalog ('%s'): it was written "
                         "elsewhere or the catalog was lost, and its manifest is sealed to the "
                         "recipient; reading it needs the secret key (pass --key FILE or set "
                         "SNAPBACK_KEY_FILE)",
                         id, path);
        goto out;
    }
    struct sb_manifest *m = NULL;
    if (sb_manifest_from_json(text, len, &m, err) < 0) {
        sb_error_wrap(err, "catalog entry '%s'", path);
        goto out;
    }
    if (strcmp(m->id, id) != 0 || strcmp(m->app, repo->app) != 0) {
        sb_error_set(err, SB_E_CORRUPT, 0, "catalog entry '%s' belongs to snapshot '%s'", path,
                     m->id);
        sb_manifest_free(m);
        goto out;
    }
    *out = m;
    rc = 0;
out:
    free(text);
    free(path);
    return rc;
}

int
sb_repo_load_manifest_cached(struct sb_repo *repo, const char *id, struct sb_manifest **out,
                             struct sb_error *err)
{
    /* a local repository's manifest costs no more than the catalog's copy, and reading it
     * lets list and show notice a damaged one */
    if (!repo->offline && !repo->spool && sb_key_can_read(repo->key))
        return sb_repo_load_manifest(repo, id, out, err);
    char *path = catalog_path(repo, id);
    if (!path)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    bool cached = access(path, F_OK) == 0;
    free(path);
    if (repo->offline) {
        /* the server is down: the catalog is all there is (and catalog_ids listed only what
         * it holds) */
        if (cached)
            return catalog_load(repo, id, out, err);
        return sb_error_set(err, SB_E_UNAVAILABLE, 0,
                            "snapshot '%s' is not in this host's catalog (it holds the "
                            "snapshots this host took), and the repository cannot be reached",
                            id);
    }
    if (cached && catalog_load(repo, id, out, err) == 0)
        return 0;
    if (cached)
        sb_warn("%s; reading the repository's manifest instead", err->msg);
    return sb_repo_load_manifest(repo, id, out, err);
}

int
sb_repo_load_manifest(struct sb_repo *repo, const char *id, struct sb_manifest **out,
                      struct sb_error *err)
{
    if (!sb_key_can_read(repo->key))
        return catalog_load(repo, id, out, err);
    char name[128];
    snprintf(name, sizeof(name), "%s/snapshots/%s%s", repo->app, id, MANIFEST_SUFFIX);
    struct sb_istream *in = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    struct sb_ostream *mem = NULL;
    int rc = -1;
    if (sb_object_open_small(repo->store, name, repo->key, NULL, &in, err) < 0) {
        if (err->code == SB_E_NOTFOUND)
            sb_error_set(err, SB_E_NOTFOUND, 0,
                         "no snapshot '%s' in repository '%s'; 'snapback list' shows them", id,
                         repo->store->display);
        else if (repo->meta.retired_count && strstr(err->msg, "file key"))
            sb_error_wrap(err,
                          "manifest '%s' (written before a key rotation? add the retired key "
                          "to old_key_files)",
                          name);
        else
            sb_error_wrap(err, "manifest '%s'", name);
        goto out;
    }
    if (!(mem = sb_mem_ostream_new(&buf, &len))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    /* Bounded: a manifest is small; a huge one is an attack on memory. */
    unsigned char step[65536];
    for (;;) {
        size_t n = 0;
        if (sb_istream_read(in, step, sizeof(step), &n, err) < 0) {
            sb_error_wrap(err, "manifest '%s'", name);
            goto out;
        }
        if (n == 0)
            break;
        if (len + n > MANIFEST_MAX) {
            sb_error_set(err, SB_E_CORRUPT, 0, "manifest '%s' is larger than %u bytes", name,
                         MANIFEST_MAX);
            goto out;
        }
        if (sb_ostream_write(mem, step, n, err) < 0)
            goto out;
    }
    struct sb_manifest *m = NULL;
    if (sb_manifest_from_json((const char *)buf, len, &m, err) < 0) {
        sb_error_wrap(err, "manifest '%s'", name);
        goto out;
    }
    /* A manifest renamed or copied under another snapshot's name is refused. */
    if (strcmp(m->id, id) != 0 || strcmp(m->app, repo->app) != 0) {
        sb_error_set(err, SB_E_CORRUPT, 0,
                     "manifest '%s' belongs to snapshot '%s' of app '%s': it was moved or "
                     "swapped",
                     name, m->id, m->app);
        sb_manifest_free(m);
        goto out;
    }
    *out = m;
    rc = 0;
out:
    sb_ostream_free(mem);
    free(buf);
    sb_istream_free(in);
    return rc;
}

int
sb_repo_resolve_id(struct sb_repo *repo, const char *spec, char **id, struct sb_error *err)
{
    char **ids = NULL;
    size_t n = 0;
    if (sb_repo_list_ids(repo, &ids, &n, err) < 0)
        return -1;
    int rc = -1;
    const char *found = NULL;
    /* Offline, the ids are this host's catalog: a miss there says nothing about the server,
     * so it is "cannot be reached" (69), not "no such snapshot" (66). */
    if (strcmp(spec, "latest") == 0) {
        if (n == 0 && repo->offline) {
            sb_error_set(err, SB_E_UNAVAILABLE, 0,
                         "this host's catalog has no snapshot of app '%s', and the repository "
                         "'%s' cannot be reached",
                         repo->app, repo->store->display);
            goto out;
        }
        if (n == 0) {
            sb_error_set(err, SB_E_NOTFOUND, 0,
                         "repository '%s' has no snapshot of app '%s' yet; take one with "
                         "'snapback snapshot'",
                         repo->store->display, repo->app);
            goto out;
        }
        found = ids[n - 1];
    } else {
        size_t matches = 0, slen = strlen(spec);
        for (size_t idx = 0; idx < n; idx++) {
            if (strcmp(ids[idx], spec) == 0) {
                found = ids[idx];
                matches = 1;
                break;
            }
            if (slen >= 4 && strncmp(ids[idx], spec, slen) == 0) {
                found = ids[idx];
                matches++;
            }
        }
        if (matches == 0 && repo->offline) {
            sb_error_set(err, SB_E_UNAVAILABLE, 0,
                         "snapshot '%s' is not in this host's catalog (it holds the snapshots "
                         "this host took), and the repository '%s' cannot be reached",
                         spec, repo->store->display);
            goto out;
        }
        if (matches == 0) {
            sb_error_set(err, SB_E_NOTFOUND, 0,
                         "no snapshot '%s' in repository '%s'; 'snapback list' shows them", spec,
                         repo->store->display);
            goto out;
        }
        if (matches > 1) {
            sb_error_set(err, SB_E_USAGE, 0, "snapshot prefix '%s' is ambiguous; give more of it",
                         spec);
            goto out;
        }
    }
    if (!(*id = sb_strdup(found))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    rc = 0;
out:
    sb_store_names_free(ids, n);
    return rc;
}
