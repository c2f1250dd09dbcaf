/* Release trees: the fingerprint that names a release object, and the tar writer.
 * A release directory is immutable once deployed (DESIGN §4), so a fingerprint of the
 * metadata of every entry (not the contents: reading a whole release every hour is what we
 * avoid) decides whether an earlier snapshot already stored it. The tar stream is written by
 * libarchive into our pipeline through archive_write_open2 callbacks. */
#include "snapback/sources.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapback/core.h"

#define READ_STEP (1u << 20)

/* --- fingerprint --- */

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

struct fp_walk {
    crypto_generichash_state state;
    struct sb_tree_fp *out;
    struct sb_error *err;
    char *root;
};

/* The fingerprint line of one entry: "PATH\0MODE SIZE MTIME" then the symlink target (if
 * any) and "\n"; returns its length. */
static size_t
fp_line(char *line, size_t cap, const char *path, unsigned mode, long long size, long long sec,
        long nsec, const char *target, size_t target_len)
{
    int len = snprintf(line, cap, "%s%c%o %lld %lld.%09ld", path, 0, mode, size, sec, nsec);
    size_t n = len < 0 ? 0 : (size_t)len < cap ? (size_t)len : cap - 1;
    if (target && target_len && n + target_len < cap) {
        memcpy(line + n, target, target_len);
        n += target_len;
    }
    if (n + 1 < cap)
        line[n++] = '\n';
    return n;
}

static void
digest_add(struct sb_tree_digest *d, const char *line, size_t len)
{
    unsigned char h[16];
    crypto_generichash(h, sizeof(h), (const unsigned char *)line, len, NULL, 0);
    uint64_t lo = 0, hi = 0;
    for (int idx = 7; idx >= 0; idx--) {
        lo = lo << 8 | h[idx];
        hi = hi << 8 | h[8 + idx];
    }
    uint64_t old = d->sum[0];
    d->sum[0] += lo;
    d->sum[1] += hi + (d->sum[0] < old);
    d->entries++;
}

bool
sb_tree_digest_equal(const struct sb_tree_digest *a, const struct sb_tree_digest *b)
{
    return a->sum[0] == b->sum[0] && a->sum[1] == b->sum[1] && a->entries == b->entries;
}

static int
fp_dir(struct fp_walk *w, int dir_fd, const char *rel)
{
    DIR *d = fdopendir(dir_fd);
    if (!d) {
        close(dir_fd);
        return sb_error_set(w->err, SB_E_IO, errno, "cannot read directory '%s/%s'", w->root, rel);
    }
    int rc = -1;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof(*p));
            if (!p)
                goto oom;
            names = p;
        }
        if (!(names[n] = sb_strdup(de->d_name)))
            goto oom;
        n++;
    }
    if (n > 1)
        qsort(names, n, sizeof(*names), cmp_names);
    for (size_t idx = 0; idx < n; idx++) {
        struct stat st;
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s%s%s", rel, *rel ? "/" : "", names[idx]);
        if (fstatat(dirfd(d), names[idx], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                sb_error_set(w->err, SB_E_TEMPFAIL, errno,
                             "'%s/%s' vanished while the release was read (releases must not "
                             "change once deployed); run the snapshot again",
                             w->root, path);
            else
                sb_error_set(w->err, SB_E_IO, errno, "cannot stat '%s/%s'", w->root, path);
            goto out;
        }
        char target[PATH_MAX];
        ssize_t tl = 0;
        if (S_ISLNK(st.st_mode))
            tl = readlinkat(dirfd(d), names[idx], target, sizeof(target));
        char line[2 * PATH_MAX + 200];
        size_t len = fp_line(line, sizeof(line), path, (unsigned)st.st_mode, (long long)st.st_size,
                             (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, target,
                             tl > 0 ? (size_t)tl : 0);
        crypto_generichash_update(&w->state, (const unsigned char *)line, len);
        digest_add(&w->out->digest, line, len);
        w->out->entries++;
        if (S_ISREG(st.st_mode))
            w->out->bytes += (uint64_t)st.st_size;
        if (S_ISDIR(st.st_mode)) {
            int fd = openat(dirfd(d), names[idx], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) {
                if (errno == EACCES || errno == EPERM)
                    sb_error_set(w->err, SB_E_PERM, errno,
                                 "cannot open '%s/%s'; run snapback as a user who can read every "
                                 "file under it (often the app's deploy user, or root), or fix "
                                 "the permissions",
                                 w->root, path);
                else
                    sb_error_set(w->err, sb_error_from_errno(errno), errno, "cannot open '%s/%s'",
                                 w->root, path);
                goto out;
            }
            if (fp_dir(w, fd, path) < 0)
                goto out;
        }
    }
    rc = 0;
    goto out;
oom:
    sb_error_set(w->err, SB_E_INTERNAL, ENOMEM, "out of memory");
out:
    for (size_t idx = 0; idx < n; idx++)
        free(names[idx]);
    free(names);
    closedir(d);
    return rc;
}

int
sb_tree_fingerprint(const char *dir, struct sb_tree_fp *out, struct sb_error *err)
{
    memset(out, 0, sizeof(*out));
    struct fp_walk w = {.out = out, .err = err, .root = (char *)dir};
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sb_error_set(err, sb_error_from_errno(errno), errno, "cannot open directory '%s'",
                            dir);
    crypto_generichash_init(&w.state, NULL, 0, 16);
    if (fp_dir(&w, fd, "") < 0)
        return -1;
    unsigned char hash[16];
    crypto_generichash_final(&w.state, hash, sizeof(hash));
    sb_hex_encode(hash, sizeof(hash), out->hex);
    return 0;
}

/* --- tar writer --- */

struct tar_sink {
    struct sb_ostream *out;
    struct sb_error *err;
    int failed;
};

static la_ssize_t
tar_write_cb(struct archive *a, void *client, const void *buf, size_t len)
{
    struct tar_sink *ts = client;
    if (sb_ostream_write(ts->out, buf, len, ts->err) < 0) {
        ts->failed = 1;
        archive_set_error(a, EIO, "pipeline write failed");
        return -1;
    }
    return (la_ssize_t)len;
}

/* The errno of the walk's failure. Most failures carry it; a directory the walk could not
 * enter (removed between its entry and its visit, or unreadable) is reported as "PATH:
 * Couldn't visit directory" with none (libarchive 3.6), so the directory of exactly that
 * message is opened again to learn why. 0 when unknown. */
static int
walk_errno(struct archive *disk)
{
    int e = archive_errno(disk);
    if (e > 0)
        return e;
    static const char suffix[] = ": Couldn't visit directory";
    const char *msg = archive_error_string(disk);
    size_t len = msg ? strlen(msg) : 0, slen = sizeof(suffix) - 1;
    if (len <= slen || len - slen >= PATH_MAX || strcmp(msg + len - slen, suffix) != 0)
        return 0;
    char path[PATH_MAX];
    memcpy(path, msg, len - slen);
    path[len - slen] = '\0';
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    return errno;
}

/* The walk or a read failed (not a vanished entry): one the user can fix (permissions) gets
 * 77 and says how. */
static int
walk_failed(struct archive *disk, const char *dir, const char *rel, struct sb_error *err)
{
    int e = walk_errno(disk);
    const char *msg = archive_error_string(disk);
    if (e == EACCES || e == EPERM)
        return sb_error_set(err, SB_E_PERM, e,
                            "cannot read the tree '%s': %s; run snapback as a user who can "
                            "read every file under it (often the app's deploy user, or root), "
                            "or fix the permissions",
                            dir, msg ? msg : "permission denied");
    if (rel)
        return sb_error_set(err, SB_E_IO, e, "cannot read '%s/%s': %s", dir, rel,
                            msg ? msg : "read error");
    return sb_error_set(err, SB_E_IO, e, "cannot read the tree '%s': %s", dir,
                        msg ? msg : "read error");
}

/* An entry that no longer exists (ENOENT from the walk or the first read of a file's data):
 * skipped with a warning in a volatile tree, a changed release otherwise. Returns 0 to skip
 * it, -1 with err set. */
static int
entry_vanished(struct archive *disk, const char *dir, enum sb_tree_mode mode, struct sb_error *err)
{
    if (mode == SB_TREE_VOLATILE) {
        sb_warn("in '%s': %s: it vanished while the tree was archived and is skipped", dir,
                archive_error_string(disk));
        return 0;
    }
    return sb_error_set(err, SB_E_TEMPFAIL, ENOENT,
                        "in '%s': %s: it vanished while the release was archived (releases "
                        "must not change once deployed); run the snapshot again",
                        dir, archive_error_string(disk));
}

int
sb_tree_archive(const char *dir, enum sb_tree_mode mode, struct sb_ostream *out, uint64_t *entries,
                struct sb_tree_digest *seen, struct sb_error *err)
{
    struct tar_sink ts = {out, err, 0};
    struct archive *disk = archive_read_disk_new();
    struct archive *tar = archive_write_new();
    struct archive_entry_linkresolver *resolver = archive_entry_linkresolver_new();
    struct archive_entry *entry = NULL;
    char *buf = malloc(READ_STEP);
    int rc = -1;
    uint64_t count = 0;
    size_t dir_len = strlen(dir);
    while (dir_len > 1 && dir[dir_len - 1] == '/')
        dir_len--;
    if (!disk || !tar || !resolver || !buf) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    archive_read_disk_set_symlink_physical(disk);
    archive_read_disk_set_standard_lookup(disk);
    /* No file flags (chattr: an ioctl per file, and flags such as immutable have no place in
     * a restored release) and no sparse-file probing (two lseeks per file; a sparse file is
     * stored as its full data, whose zeros zstd compresses to almost nothing). xattrs and
     * ACLs are kept. */
    archive_read_disk_set_behavior(disk, ARCHIVE_READDISK_NO_FFLAGS | ARCHIVE_READDISK_NO_SPARSE);
    /* Full pax (not pax_restricted, which drops sub-second mtimes), so a restored tree has
     * the exact mtimes: the release fingerprint of a restored release then matches. */
    archive_write_set_format_pax(tar);
    /* File names are bytes, not text in the locale's charset: store them as they are, so a
     * name that is not valid in the current locale (cron runs in "C") still round-trips. */
    if (archive_write_set_format_option(tar, "pax", "hdrcharset", "BINARY") != ARCHIVE_OK) {
        sb_error_set(err, SB_E_INTERNAL, 0, "libarchive refuses hdrcharset=BINARY: %s",
                     archive_error_string(tar));
        goto out;
    }
    archive_write_set_bytes_per_block(tar, 0);
    archive_entry_linkresolver_set_strategy(resolver, archive_format(tar));
    if (archive_write_open2(tar, &ts, NULL, tar_write_cb, NULL, NULL) != ARCHIVE_OK) {
        sb_error_set(err, SB_E_INTERNAL, 0, "cannot start a tar stream: %s",
                     archive_error_string(tar));
        goto out;
    }
    if (archive_read_disk_open(disk, dir) != ARCHIVE_OK) {
        sb_error_set(err, SB_E_IO, archive_errno(disk), "cannot open directory '%s'", dir);
        goto out;
    }
    for (;;) {
        if (sb_check_stop(err) < 0)
            goto out;
        archive_entry_free(entry);
        entry = archive_entry_new();
        int r = archive_read_next_header2(disk, entry);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            if (r == ARCHIVE_FAILED && walk_errno(disk) == ENOENT) {
                if (entry_vanished(disk, dir, mode, err) < 0)
                    goto out;
                continue;
            }
            walk_failed(disk, dir, NULL, err);
            goto out;
        }
        if (sb_test_pause_armed()) {
            /* test hook: "entry:PATH" pauses after the walk's stat of PATH, before it is
             * read or (a directory) visited */
            char point[PATH_MAX + 8];
            const char *full = archive_entry_pathname(entry);
            const char *rel = full && strlen(full) > dir_len ? full + dir_len + 1 : ".";
            snprintf(point, sizeof(point), "entry:%s", rel);
            sb_test_pause_point(point);
        }
        archive_read_disk_descend(disk);
        const char *full = archive_entry_pathname(entry);
        if (!full || strncmp(full, dir, dir_len) != 0)
            continue;
        const char *rel = full + dir_len;
        while (*rel == '/')
            rel++;
        bool is_root = !*rel;
        if (is_root)
            rel = "."; /* the root: its mode, owner and mtime are restored too */
        char *relcopy = sb_strdup(rel);
        if (!relcopy) {
            sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            goto out;
        }
        archive_entry_copy_pathname(entry, relcopy);
        free(relcopy);
        /* atime changes on every read and ctime cannot be restored: neither is kept. */
        archive_entry_unset_atime(entry);
        archive_entry_unset_ctime(entry);
        archive_entry_unset_birthtime(entry);
        if (seen && !is_root) {
            /* the metadata as archived: the stat libarchive took before reading the data */
            const char *target =
                archive_entry_filetype(entry) == AE_IFLNK ? archive_entry_symlink(entry) : NULL;
            char line[2 * PATH_MAX + 200];
            size_t len =
                fp_line(line, sizeof(line), archive_entry_pathname(entry),
                        (unsigned)archive_entry_mode(entry), (long long)archive_entry_size(entry),
                        (long long)archive_entry_mtime(entry), archive_entry_mtime_nsec(entry),
                        target, target ? strlen(target) : 0);
            digest_add(seen, line, len);
        }
        /* A socket cannot be stored (pax has no type for it) and means nothing once its
         * listener is gone: like tar, skip it with a warning rather than fail the snapshot
         * over a stale tmp/sockets/app.sock. It stays in the metadata digest above, which
         * the fingerprint walk also counts it in. */
        if (archive_entry_filetype(entry) == AE_IFSOCK) {
            sb_warn("'%s/%s' is a socket: not archived", dir, archive_entry_pathname(entry));
            continue;
        }
        /* The first block of a file's data is read before its header is written: a file
         * that vanished between the walk's stat and its open is then skipped (or fails a
         * release) with nothing of it in the archive. Blocks come straight from libarchive's
         * read buffer (no copy into ours). */
        const void *block = NULL;
        size_t n = 0;
        la_int64_t offset = 0;
        int r2 = ARCHIVE_EOF;
        int64_t declared =
            archive_entry_filetype(entry) == AE_IFREG ? archive_entry_size(entry) : 0;
        if (declared > 0) {
            r2 = archive_read_data_block(disk, &block, &n, &offset);
            if (r2 == ARCHIVE_FAILED && archive_errno(disk) == ENOENT) {
                if (entry_vanished(disk, dir, mode, err) < 0)
                    goto out;
                continue;
            }
        }
        struct archive_entry *spare = NULL;
        struct archive_entry *to_write = entry;
        archive_entry_linkify(resolver, &to_write, &spare);
        if (!to_write)
            continue;
        if (archive_write_header(tar, to_write) != ARCHIVE_OK) {
            if (!ts.failed)
                sb_error_set(err, SB_E_IO, 0, "cannot archive '%s/%s': %s", dir,
                             archive_entry_pathname(to_write), archive_error_string(tar));
            goto out;
        }
        if (!is_root)
            count++;
        /* A later hard link of a file is stored as a link (size 0): its data is not read. */
        int64_t size =
            archive_entry_filetype(to_write) == AE_IFREG ? archive_entry_size(to_write) : 0;
        if (size > 0) {
            /* The disk reader does not probe for holes (NO_SPARSE), so blocks are
             * contiguous; a gap would still be written as the zeros it stands for. Reading
             * stops at the size the header declared: a file that grows meanwhile (a log) is
             * stored as the prefix its stat described. */
            int64_t at = 0;
            for (;;) {
                if (r2 == ARCHIVE_EOF)
                    break;
                if (r2 != ARCHIVE_OK && r2 != ARCHIVE_WARN) {
                    walk_failed(disk, dir, archive_entry_pathname(to_write), err);
                    goto out;
                }
                while (at < offset && at < size) {
                    int64_t gap = (offset < size ? offset : size) - at;
                    size_t z = gap < READ_STEP ? (size_t)gap : READ_STEP;
                    memset(buf, 0, z);
                    if (archive_write_data(tar, buf, z) < 0)
                        goto write_failed;
                    at += (int64_t)z;
                }
                if ((int64_t)n > size - at)
                    n = (size_t)(size - at);
                if (n > 0 && archive_write_data(tar, block, n) < 0)
                    goto write_failed;
                at += (int64_t)n;
                if (at >= size)
                    break;
                r2 = archive_read_data_block(disk, &block, &n, &offset);
            }
            if (at < size) {
                /* It shrank while it was read: the header promised `size` bytes, and
                 * archive_write_finish_entry pads the rest with zeros. */
                if (mode == SB_TREE_STRICT) {
                    sb_error_set(err, SB_E_TEMPFAIL, 0,
                                 "'%s/%s' shrank from %lld to %lld bytes while the release was "
                                 "archived (releases must not change once deployed); run the "
                                 "snapshot again",
                                 dir, archive_entry_pathname(to_write), (long long)size,
                                 (long long)at);
                    goto out;
                }
                sb_warn("'%s/%s' shrank from %lld to %lld bytes while it was read: stored with "
                        "its last %lld bytes as zeros; the next snapshot will have it as it is "
                        "then",
                        dir, archive_entry_pathname(to_write), (long long)size, (long long)at,
                        (long long)(size - at));
            } else if (mode == SB_TREE_VOLATILE) {
                /* Replaced (a new upload renamed over it) or rewritten in place between the
                 * walk's stat and the end of the read: the copy may mix two versions. A file
                 * that only grew (a log) is a clean prefix and not reported. A release needs
                 * no such check: the walk after the archive compares every entry. */
                struct stat now;
                const char *src = archive_entry_sourcepath(to_write);
                if (src && lstat(src, &now) == 0 &&
                    ((ino_t)archive_entry_ino64(to_write) != now.st_ino ||
                     (now.st_size == size &&
                      (now.st_mtim.tv_sec != archive_entry_mtime(to_write) ||
                       now.st_mtim.tv_nsec != archive_entry_mtime_nsec(to_write)))))
                    sb_warn("'%s/%s' changed while it was read: the stored copy may mix two "
                            "versions of it; the next snapshot will have it whole",
                            dir, archive_entry_pathname(to_write));
            }
        }
        if (archive_write_finish_entry(tar) != ARCHIVE_OK && ts.failed)
            goto out;
    }
    if (archive_write_close(tar) != ARCHIVE_OK) {
        if (!ts.failed)
            sb_error_set(err, SB_E_IO, 0, "cannot finish the tar stream: %s",
                         archive_error_string(tar));
        goto out;
    }
    if (entries)
        *entries = count;
    rc = 0;
    goto out;
write_failed:
    if (!ts.failed)
        sb_error_set(err, SB_E_IO, 0, "cannot archive '%s/%s': %s", dir,
                     archive_entry_pathname(entry), archive_error_string(tar));
out:
    archive_entry_free(entry);
    archive_entry_linkresolver_free(resolver);
    if (disk)
        archive_read_free(disk);
    if (tar)
        archive_write_free(tar);
    free(buf);
    return rc;
}
