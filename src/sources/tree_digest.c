/* The digest walk (sources.h): the order-independent digest of a tree's fingerprint lines,
 * walked by several threads. It is what a snapshot checks a release against once it has been
 * archived (nothing may have changed meanwhile), the last stretch of a snapshot that used to
 * run on one core while the others idled (docs/PERFORMANCE.md).
 *
 * Each worker walks depth first, recursing into subdirectories itself, and hands a
 * subdirectory to the shared stack only while another worker waits for work: memory and
 * descriptors stay bounded (a few shared directories, one open directory per level and
 * worker) and workers trade work only when one of them would otherwise idle. */
#include "snapback/sources.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapback/core.h"
#include "tree_internal.h"

#define DW_THREADS_MAX 4
#define DW_SHARED_MAX 8

struct dw_item {
    int fd;     /* the directory, open */
    char *path; /* its path in the tree, "" for the root */
};

struct dw_shared {
    pthread_mutex_t mu;
    pthread_cond_t changed;
    struct dw_item items[DW_SHARED_MAX];
    size_t n;
    int workers;
    atomic_int idle; /* workers waiting for a directory (written under mu) */
    bool done;
    atomic_bool failed;
    struct sb_error err; /* the first failure */
    const char *root;
};

struct dw_worker {
    struct dw_shared *sh;
    struct sb_tree_fp acc;
    struct sb_error err;
    char path[PATH_MAX];
    char target[PATH_MAX];
    char line[SB_FP_LINE_MAX];
};

/* Hands the directory fd (path w->path) to a waiting worker; false when none waits or the
 * stack is full (the caller walks it itself). */
static bool
dw_share(struct dw_worker *w, int fd)
{
    struct dw_shared *sh = w->sh;
    if (atomic_load_explicit(&sh->idle, memory_order_relaxed) == 0)
        return false;
    char *path = sb_strdup(w->path);
    if (!path)
        return false;
    bool shared = false;
    pthread_mutex_lock(&sh->mu);
    if (sh->idle > 0 && sh->n < DW_SHARED_MAX) {
        sh->items[sh->n++] = (struct dw_item){fd, path};
        pthread_cond_signal(&sh->changed);
        shared = true;
    }
    pthread_mutex_unlock(&sh->mu);
    if (!shared)
        free(path);
    return shared;
}

/* Digests the entries of the directory open as dir_fd (taken over and closed), whose path in
 * the tree is w->path, and everything below it that it does not share. */
static int
dw_dir(struct dw_worker *w, int dir_fd)
{
    const char *root = w->sh->root;
    DIR *d = fdopendir(dir_fd);
    if (!d) {
        int e = errno;
        close(dir_fd);
        return sb_error_set(&w->err, SB_E_IO, e, "cannot read directory '%s/%s'", root, w->path);
    }
    size_t len = strlen(w->path);
    int rc = -1;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) {
                sb_error_set(&w->err, SB_E_IO, errno, "cannot read directory '%s/%s'", root,
                             w->path);
                goto out;
            }
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (atomic_load_explicit(&w->sh->failed, memory_order_relaxed))
            goto out;
        size_t nlen = strlen(de->d_name), at = len ? len + 1 : 0;
        if (at + nlen >= sizeof(w->path)) {
            sb_fp_path_too_long(&w->err, root, w->path);
            goto out;
        }
        if (len)
            w->path[len] = '/';
        memcpy(w->path + at, de->d_name, nlen + 1);
        struct stat st;
        if (sb_test_fail_point("digest-stat") ||
            fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                sb_error_set(&w->err, SB_E_TEMPFAIL, errno,
                             "'%s/%s' vanished while the release was read (releases must not "
                             "change once deployed); run the snapshot again",
                             root, w->path);
            else
                sb_error_set(&w->err, SB_E_IO, errno, "cannot stat '%s/%s'", root, w->path);
            goto out;
        }
        ssize_t tl = 0;
        if (S_ISLNK(st.st_mode))
            tl = readlinkat(dirfd(d), de->d_name, w->target, sizeof(w->target));
        size_t line_len =
            sb_fp_line(w->line, sizeof(w->line), w->path, &st, w->target, tl > 0 ? (size_t)tl : 0);
        sb_fp_digest_add(&w->acc.digest, w->line, line_len);
        w->acc.entries++;
        if (S_ISREG(st.st_mode))
            w->acc.bytes += (uint64_t)st.st_size;
        if (S_ISDIR(st.st_mode)) {
            int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) {
                if (errno == EACCES || errno == EPERM)
                    sb_error_set(&w->err, SB_E_PERM, errno,
                                 "cannot open '%s/%s'; run snapback as a user who can read every "
                                 "file under it (often the app's deploy user, or root), or fix "
                                 "the permissions",
                                 root, w->path);
                else
                    sb_error_set(&w->err, sb_error_from_errno(errno), errno, "cannot open '%s/%s'",
                                 root, w->path);
                goto out;
            }
            if (!dw_share(w, fd) && dw_dir(w, fd) < 0)
                goto out;
        }
        w->path[len] = '\0';
    }
    rc = 0;
out:
    w->path[len] = '\0';
    closedir(d);
    return rc;
}

static void *
dw_run(void *arg)
{
    struct dw_worker *w = arg;
    struct dw_shared *sh = w->sh;
    pthread_mutex_lock(&sh->mu);
    for (;;) {
        while (sh->n == 0 && !sh->done && !sh->failed) {
            /* the last worker to run out of work: nobody can share any more */
            if (sh->idle + 1 == sh->workers) {
                sh->done = true;
                pthread_cond_broadcast(&sh->changed);
                break;
            }
            sh->idle++;
            pthread_cond_wait(&sh->changed, &sh->mu);
            sh->idle--;
        }
        if (sh->failed || (sh->done && sh->n == 0))
            break;
        struct dw_item it = sh->items[--sh->n];
        pthread_mutex_unlock(&sh->mu);
        size_t len = strlen(it.path);
        memcpy(w->path, it.path, len + 1); /* shorter than PATH_MAX: it was in a path */
        free(it.path);
        int rc = dw_dir(w, it.fd);
        pthread_mutex_lock(&sh->mu);
        if (rc < 0 && !sh->failed) {
            sh->err = w->err;
            atomic_store(&sh->failed, true);
            pthread_cond_broadcast(&sh->changed);
        }
    }
    pthread_mutex_unlock(&sh->mu);
    return NULL;
}

int
sb_tree_digest_walk(const char *dir, int threads, struct sb_tree_fp *out, struct sb_error *err)
{
    memset(out, 0, sizeof(*out));
    if (threads <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > 0 ? (int)cores : 1;
    }
    if (threads > DW_THREADS_MAX)
        threads = DW_THREADS_MAX;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sb_error_set(err, sb_error_from_errno(errno), errno, "cannot open directory '%s'",
                            dir);
    struct dw_shared *sh = calloc(1, sizeof(*sh));
    struct dw_worker *ws = calloc((size_t)threads, sizeof(*ws));
    char *root_path = sb_strdup("");
    if (!sh || !ws || !root_path) {
        close(fd);
        free(sh);
        free(ws);
        free(root_path);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    pthread_mutex_init(&sh->mu, NULL);
    pthread_cond_init(&sh->changed, NULL);
    sh->root = dir;
    sh->workers = threads;
    sh->items[sh->n++] = (struct dw_item){fd, root_path};
    pthread_t tids[DW_THREADS_MAX];
    int started = 0;
    for (int idx = 0; idx < threads; idx++)
        ws[idx].sh = sh;
    /* the caller is worker 0; without a thread for a helper, it walks with fewer helpers */
    int create_rc = 0;
    for (int idx = 1; idx < threads; idx++) {
        create_rc = sb_test_fail_point("digest-thread")
                        ? errno
                        : pthread_create(&tids[idx], NULL, dw_run, &ws[idx]);
        if (create_rc != 0) {
            pthread_mutex_lock(&sh->mu);
            sh->workers = idx;
            pthread_mutex_unlock(&sh->mu);
            break;
        }
        started = idx;
    }
    dw_run(&ws[0]);
    for (int idx = 1; idx <= started; idx++)
        pthread_join(tids[idx], NULL);
    if (create_rc != 0)
        sb_debug("digest walk of '%s': %d thread(s) of %d; no thread for another helper: %s", dir,
                 started + 1, threads, strerror(create_rc));
    else
        sb_debug("digest walk of '%s': %d thread(s)", dir, threads);
    int rc = 0;
    if (sh->failed) {
        *err = sh->err;
        rc = -1;
    }
    for (size_t idx = 0; idx < sh->n; idx++) { /* left after a failure */
        close(sh->items[idx].fd);
        free(sh->items[idx].path);
    }
    for (int idx = 0; idx < threads; idx++) {
        struct sb_tree_fp *a = &ws[idx].acc;
        uint64_t old = out->digest.sum[0];
        out->digest.sum[0] += a->digest.sum[0];
        out->digest.sum[1] += a->digest.sum[1] + (out->digest.sum[0] < old);
        out->digest.entries += a->digest.entries;
        out->entries += a->entries;
        out->bytes += a->bytes;
    }
    pthread_cond_destroy(&sh->changed);
    pthread_mutex_destroy(&sh->mu);
    free(sh);
    free(ws);
    return rc;
}
