/* The spool (DESIGN §6): with a remote repository, a snapshot is written into
 * state_dir/spool first, with the repository's layout, and then uploaded: objects first,
 * manifests last, each file removed from the spool only once it is complete (renamed into
 * place) on the server. A dropped connection therefore loses nothing: what was not uploaded
 * stays in the spool, the command exits 69, and the next run (any snapshot, or `snapback
 * push`) uploads it before doing anything else. The server never shows a manifest whose
 * objects are not all there. */
#include "snapback/ops.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapback/core.h"

struct sb_store *
sb_repo_write_store(struct sb_repo *repo)
{
    return repo->spool ? repo->spool : repo->store;
}

static bool
is_partial(const char *name)
{
    size_t len = strlen(name);
    return len > 8 && !strcmp(name + len - 8, ".partial");
}

/* A manifest that is on the server already (a run killed between its upload and its removal
 * from the spool) counts as uploaded when the server's copy is the same bytes. */
static int
same_on_server(struct sb_repo *repo, const char *path, bool *same, struct sb_error *err)
{
    char *local = NULL, *remote = NULL;
    size_t llen = 0, rlen = 0;
    *same = false;
    int rc = -1;
    if (sb_store_get(repo->spool, path, 64u << 20, &local, &llen, err) == 0 &&
        sb_store_get(repo->store, path, 64u << 20, &remote, &rlen, err) == 0) {
        *same = llen == rlen && memcmp(local, remote, llen) == 0;
        rc = 0;
    }
    free(local);
    free(remote);
    return rc;
}

static int
push_file(struct sb_repo *repo, const char *path, unsigned flags, struct sb_error *err)
{
    struct sb_istream *in = NULL;
    struct sb_ostream *out = NULL;
    int rc = -1;
    if (sb_store_open_read(repo->spool, path, &in, err) < 0)
        goto out;
    if (sb_store_open_write(repo->store, path, flags, &out, err) < 0) {
        bool same = false;
        if (err->code == SB_E_CANTCREATE && (flags & SB_STORE_NO_REPLACE)) {
            struct sb_error cerr = SB_ERROR_INIT;
            if (same_on_server(repo, path, &same, &cerr) < 0)
                *err = cerr;
        }
        if (!same)
            goto out;
        sb_info("'%s' is already on the server", path);
        rc = 0;
        goto out;
    }
    if (sb_stream_copy(in, out, NULL, err) < 0)
        goto out;
    if (sb_ostream_close(out, err) < 0) {
        bool same = false;
        struct sb_error cerr = SB_ERROR_INIT;
        if (err->code != SB_E_CANTCREATE || !(flags & SB_STORE_NO_REPLACE) ||
            same_on_server(repo, path, &same, &cerr) < 0 || !same)
            goto out;
    }
    rc = 0;
out:
    sb_ostream_free(out);
    sb_istream_free(in);
    if (rc == 0 && sb_store_remove(repo->spool, path, err) < 0)
        rc = -1;
    if (rc < 0)
        sb_error_wrap(err, "upload of '%s' from the spool", path);
    return rc;
}

/* Uploads the files of one spool directory (not recursive). */
static int
push_dir(struct sb_repo *repo, const char *dir, unsigned flags, size_t *pushed,
         struct sb_error *err)
{
    char **names = NULL;
    size_t n = 0;
    if (sb_store_list(repo->spool, dir, &names, &n, err) < 0)
        return -1;
    int rc = 0;
    for (size_t idx = 0; idx < n && rc == 0; idx++) {
        char *path = sb_path_join(dir, names[idx]);
        struct sb_store_stat st;
        if (!path) {
            rc = sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        } else if (is_partial(names[idx])) {
            sb_store_remove(repo->spool, path, NULL); /* left by a killed run */
        } else if ((rc = sb_store_stat(repo->spool, path, &st, err)) == 0 && !st.is_dir) {
            rc = push_file(repo, path, flags, err);
            if (rc == 0)
                (*pushed)++;
        }
        free(path);
    }
    sb_store_names_free(names, n);
    return rc;
}

int
sb_spool_push(struct sb_repo *repo, size_t *pushed, struct sb_error *err)
{
    *pushed = 0;
    if (!repo->spool)
        return 0;
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/releases", repo->app);
    if (push_dir(repo, dir, 0, pushed, err) < 0)
        return -1;
    snprintf(dir, sizeof(dir), "%s/data", repo->app);
    char **ids = NULL;
    size_t n = 0;
    if (sb_store_list(repo->spool, dir, &ids, &n, err) < 0)
        return -1;
    int rc = 0;
    for (size_t idx = 0; idx < n && rc == 0; idx++) {
        char sub[600];
        snprintf(sub, sizeof(sub), "%s/%s", dir, ids[idx]);
        rc = push_dir(repo, sub, 0, pushed, err);
        if (rc == 0)
            sb_store_remove(repo->spool, sub, NULL); /* the empty directory */
    }
    sb_store_names_free(ids, n);
    if (rc < 0)
        return -1;
    /* manifests last: a snapshot appears on the server only with all its objects there */
    snprintf(dir, sizeof(dir), "%s/snapshots", repo->app);
    if (push_dir(repo, dir, SB_STORE_NO_REPLACE, pushed, err) < 0)
        return -1;
    if (*pushed)
        sb_info("uploaded %zu file(s) from the spool", *pushed);
    return 0;
}

static int
count_files(struct sb_store *st, const char *dir, size_t *count, struct sb_error *err)
{
    char **names = NULL;
    size_t n = 0;
    if (sb_store_list(st, dir, &names, &n, err) < 0)
        return -1;
    int rc = 0;
    for (size_t idx = 0; idx < n && rc == 0; idx++) {
        char *path = sb_path_join(dir, names[idx]);
        struct sb_store_stat s;
        if (!path)
            rc = sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        else if ((rc = sb_store_stat(st, path, &s, err)) == 0) {
            if (s.is_dir)
                rc = count_files(st, path, count, err);
            else if (!is_partial(names[idx]))
                (*count)++;
        }
        free(path);
    }
    sb_store_names_free(names, n);
    return rc;
}

int
sb_spool_pending(const struct sb_config *cfg, size_t *count, struct sb_error *err)
{
    *count = 0;
    if (!cfg->repository.is_sftp)
        return 0;
    char *spool = sb_path_join(cfg->state_dir, "spool");
    struct sb_store *st = NULL;
    int rc = -1;
    if (spool && sb_store_local_new(spool, &st, err) == 0)
        rc = count_files(st, cfg->app, count, err);
    sb_store_free(st);
    free(spool);
    return rc;
}
