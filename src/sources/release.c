/* Release trees: the fingerprint that names a release object, and the tar writer.
 * A release directory is immutable once deployed (DESIGN §4), so a fingerprint of the
 * metadata of every entry (not the contents: reading a whole release every hour is what we
 * avoid) decides whether an earlier snapshot already stored it. The tree is walked by our
 * own code (tar_walk below); libarchive fills each entry and writes the tar stream into our
 * pipeline through archive_write_open2 callbacks. */
#include "snapback/sources.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <langinfo.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "snapback/core.h"
#include "tree_internal.h"

#define READ_STEP (64 * 1024u)

/* --- fingerprint --- */

/* A path below dir (in) that, with a name appended, reaches PATH_MAX: the reason comes first,
 * since the path itself fills the message. */
int
sb_fp_path_too_long(struct sb_error *err, const char *dir, const char *in)
{
    return sb_error_set(err, SB_E_IO, 0,
                        "a path in '%.200s' is longer than %d bytes, which snapback cannot "
                        "archive; move or rename what is below '%.300s%s'",
                        dir, PATH_MAX, in, strlen(in) > 300 ? "..." : "");
}

static int
cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A directory's names, visited in byte-wise order: the fingerprint's (docs/FORMAT.md). */
struct name_list {
    char **names;
    size_t n, cap;
};

/* Adds a copy of name; -1 when out of memory. */
static int
name_list_add(struct name_list *l, const char *name)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **p = realloc(l->names, cap * sizeof(*p));
        if (!p)
            return -1;
        l->names = p;
        l->cap = cap;
    }
    if (!(l->names[l->n] = sb_strdup(name)))
        return -1;
    l->n++;
    return 0;
}

static void
name_list_sort(struct name_list *l)
{
    if (l->n > 1)
        qsort(l->names, l->n, sizeof(*l->names), cmp_names);
}

static void
name_list_free(struct name_list *l)
{
    for (size_t idx = 0; idx < l->n; idx++)
        free(l->names[idx]);
    free(l->names);
}

/* The buffers live here, not in fp_dir's frame: the walk recurses once per level of depth
 * (up to about 2,000 levels below PATH_MAX), and 16 KiB of stack per level overflowed the main
 * thread's 8 MiB at about 500 (tests/integration/deep_tree.sh). */
struct fp_walk {
    crypto_generichash_state state;
    struct sb_tree_fp *out;
    struct sb_error *err;
    char *root;
    char path[PATH_MAX]; /* the current entry's path in the tree */
    char target[PATH_MAX];
    char line[SB_FP_LINE_MAX];
};

static char *
put_dec(char *p, unsigned long long v)
{
    char tmp[24];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *
put_sdec(char *p, long long v)
{
    if (v >= 0)
        return put_dec(p, (unsigned long long)v);
    *p++ = '-';
    return put_dec(p, 0ull - (unsigned long long)v);
}

/* The numbers by hand: snprintf of the line was 0.22 µs of the 1-2 µs each entry costs in
 * each of a snapshot's two walks (docs/PERFORMANCE.md). The bytes are those of
 * "%s%c%o %lld %lld.%09ld %lu %lu" (a unit test compares the two on random input); a line
 * that might not fit, and a nanosecond count out of range, take snprintf itself. */
static size_t
fp_numbers(char *line, size_t cap, const char *path, const struct stat *st)
{
    size_t plen = strlen(path);
    long nsec = st->st_mtim.tv_nsec;
    if (plen + 128 > cap || nsec < 0 || nsec > 999999999L) {
        int len =
            snprintf(line, cap, "%s%c%o %lld %lld.%09ld %lu %lu", path, 0, (unsigned)st->st_mode,
                     (long long)st->st_size, (long long)st->st_mtim.tv_sec, nsec,
                     (unsigned long)st->st_uid, (unsigned long)st->st_gid);
        return len < 0 ? 0 : (size_t)len < cap ? (size_t)len : cap - 1;
    }
    char *p = line;
    memcpy(p, path, plen);
    p += plen;
    *p++ = '\0';
    char tmp[12];
    int n = 0;
    unsigned mode = (unsigned)st->st_mode;
    do {
        tmp[n++] = (char)('0' + (mode & 7));
        mode >>= 3;
    } while (mode);
    while (n)
        *p++ = tmp[--n];
    *p++ = ' ';
    p = put_sdec(p, (long long)st->st_size);
    *p++ = ' ';
    p = put_sdec(p, (long long)st->st_mtim.tv_sec);
    *p++ = '.';
    for (long div = 100000000L; div; div /= 10)
        *p++ = (char)('0' + nsec / div % 10);
    *p++ = ' ';
    p = put_dec(p, (unsigned long)st->st_uid);
    *p++ = ' ';
    p = put_dec(p, (unsigned long)st->st_gid);
    *p = '\0';
    return (size_t)(p - line);
}

/* The fingerprint line of one entry: "PATH\0MODE SIZE MTIME UID GID" then the symlink target
 * (if any) and "\n"; returns its length (docs/FORMAT.md). The owner is in it (DESIGN §4 names
 * path, size, mtime and mode): a `chown -R` that fixes a release deployed as the wrong user
 * leaves every mtime as it was, and without it the repository would keep, and a rollback
 * bring back, the old owners. */
size_t
sb_fp_line(char *line, size_t cap, const char *path, const struct stat *st, const char *target,
           size_t target_len)
{
    size_t n = fp_numbers(line, cap, path, st);
    if (target && target_len && n + target_len < cap) {
        memcpy(line + n, target, target_len);
        n += target_len;
    }
    if (n + 1 < cap)
        line[n++] = '\n';
    return n;
}

void
sb_fp_digest_add(struct sb_tree_digest *d, const char *line, size_t len)
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

/* Hashes the entries of the directory open as dir_fd (taken over and closed), whose path in
 * the tree is w->path (empty for the root), in byte-wise order of their names, each
 * directory's contents right after its own line. */
static int
fp_dir(struct fp_walk *w, int dir_fd)
{
    DIR *d = fdopendir(dir_fd);
    if (!d) {
        close(dir_fd);
        return sb_error_set(w->err, SB_E_IO, errno, "cannot read directory '%s/%s'", w->root,
                            w->path);
    }
    int rc = -1;
    struct name_list list = {NULL, 0, 0};
    char **names;
    size_t len = strlen(w->path);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") &&
            name_list_add(&list, de->d_name) < 0)
            goto oom;
    }
    name_list_sort(&list);
    names = list.names;
    for (size_t idx = 0; idx < list.n; idx++) {
        struct stat st;
        size_t nlen = strlen(names[idx]), at = len ? len + 1 : 0;
        if (at + nlen >= sizeof(w->path)) {
            sb_fp_path_too_long(w->err, w->root, w->path);
            goto out;
        }
        if (len)
            w->path[len] = '/';
        memcpy(w->path + at, names[idx], nlen + 1);
        if (fstatat(dirfd(d), names[idx], &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno == ENOENT)
                sb_error_set(w->err, SB_E_TEMPFAIL, errno,
                             "'%s/%s' vanished while the release was read (releases must not "
                             "change once deployed); run the snapshot again",
                             w->root, w->path);
            else
                sb_error_set(w->err, SB_E_IO, errno, "cannot stat '%s/%s'", w->root, w->path);
            goto out;
        }
        ssize_t tl = 0;
        if (S_ISLNK(st.st_mode))
            tl = readlinkat(dirfd(d), names[idx], w->target, sizeof(w->target));
        size_t line_len =
            sb_fp_line(w->line, sizeof(w->line), w->path, &st, w->target, tl > 0 ? (size_t)tl : 0);
        crypto_generichash_update(&w->state, (const unsigned char *)w->line, line_len);
        sb_fp_digest_add(&w->out->digest, w->line, line_len);
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
                                 w->root, w->path);
                else
                    sb_error_set(w->err, sb_error_from_errno(errno), errno, "cannot open '%s/%s'",
                                 w->root, w->path);
                goto out;
            }
            if (fp_dir(w, fd) < 0)
                goto out;
        }
        w->path[len] = '\0';
    }
    rc = 0;
    goto out;
oom:
    sb_error_set(w->err, SB_E_INTERNAL, ENOMEM, "out of memory");
out:
    name_list_free(&list);
    closedir(d);
    return rc;
}

int
sb_tree_fingerprint(const char *dir, struct sb_tree_fp *out, struct sb_error *err)
{
    memset(out, 0, sizeof(*out));
    /* aligned: the BLAKE2b state in it is declared 64-byte aligned */
    size_t align = _Alignof(struct fp_walk);
    struct fp_walk *w = aligned_alloc(align, (sizeof(*w) + align - 1) / align * align);
    if (!w)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    memset(w, 0, sizeof(*w));
    w->out = out;
    w->err = err;
    w->root = (char *)dir;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        free(w);
        return sb_error_set(err, sb_error_from_errno(errno), errno, "cannot open directory '%s'",
                            dir);
    }
    crypto_generichash_init(&w->state, NULL, 0, 16);
    int rc = fp_dir(w, fd);
    unsigned char hash[16];
    crypto_generichash_final(&w->state, hash, sizeof(hash));
    free(w);
    if (rc < 0)
        return -1;
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

/* The walk is ours, not archive_read_disk's: one fstatat and one openat per file, relative to
 * the directory's descriptor, with xattrs and ACLs read through that descriptor by
 * archive_read_disk_entry_from_file. libarchive's own walk costs about twice the system calls
 * per file (a second open for the metadata, two fchdir, an fcntl), a third of a snapshot's
 * walk time on a tree of small files (docs/PERFORMANCE.md). */
struct tar_walk {
    const char *root;
    size_t root_len;
    enum sb_tree_mode mode;
    struct archive *disk; /* never opened: entry_from_file and its uname/gname caches */
    int disk_flags;       /* its behavior flags (set_metadata_reads) */
    bool no_noatime;      /* an open with O_NOATIME was refused: not asked for again */
    bool raw_fallback;    /* names: ASCII as they are, others raw under hdrcharset=BINARY */
    struct archive *tar;
    struct tar_sink *ts;
    struct archive_entry_linkresolver *resolver;
    struct archive_entry *entry;
    struct sb_tree_fp *seen;            /* NULL: no fingerprint of the walk asked for */
    crypto_generichash_state *fp_state; /* with seen: the ordered fingerprint hash */
    uint64_t count;
    char *buf;
    struct sb_error *err;
    char full[PATH_MAX]; /* root "/" the entry's path in the tree */
    /* scratch of walk_entry, here and not in its frame: it recurses once per level of depth */
    char line[SB_FP_LINE_MAX];
    char point[PATH_MAX + 8];
};

static bool
has_non_ascii(const char *s)
{
    for (; s && *s; s++)
        if ((unsigned char)*s > 0x7f)
            return true;
    return false;
}

/* Whether archive_write_header's ARCHIVE_WARN is the pax writer storing this entry's names as
 * raw bytes: in the C locale it cannot translate a name with a byte above 0x7f, says so, and
 * writes the entry with hdrcharset=BINARY, which restores the exact bytes. Any other warning
 * (an ACL whose text it cannot translate, ...) is a failure, as before. */
static bool
raw_name_fallback(const struct tar_walk *w, struct archive_entry *e)
{
    if (!w->raw_fallback ||
        !(has_non_ascii(archive_entry_pathname(e)) || has_non_ascii(archive_entry_hardlink(e)) ||
          has_non_ascii(archive_entry_symlink(e)) || has_non_ascii(archive_entry_uname(e)) ||
          has_non_ascii(archive_entry_gname(e))))
        return false;
    static const char *const names[] = {"pathname", "linkname", "uname", "gname"};
    const char *msg = archive_error_string(w->tar);
    const char *prefix = "Can't translate ";
    if (!msg || strncmp(msg, prefix, strlen(prefix)) != 0)
        return false;
    msg += strlen(prefix);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strncmp(msg, names[i], strlen(names[i])) == 0 && msg[strlen(names[i])] == ' ')
            return true;
    return false;
}

/* In the C locale the pax writer cannot store an ACL entry whose user or group name has a
 * byte above 0x7f: it would drop the whole ACL and fail the entry ("Can't translate
 * SCHILY.acl.access to UTF-8"), and ACLs have no raw fallback as names do. Such an ACL entry
 * is stored by its numeric id ("user:4242:r--"), which a restore applies as it is: the same
 * user on this host, and on another host the same uid, as `tar --numeric-owner` would. On
 * allocation failure the entry is left as it is and writing its header fails with libarchive's
 * message. */
static void
acl_ascii_names(const struct tar_walk *w, struct archive_entry *e)
{
    static const int kinds[] = {ARCHIVE_ENTRY_ACL_TYPE_ACCESS, ARCHIVE_ENTRY_ACL_TYPE_DEFAULT};
    struct acl_item {
        int type, perm, tag, id;
        char *name;
    } *items = NULL;
    size_t n = 0, cap = 0;
    bool rewrite = false;
    for (size_t k = 0; k < 2; k++) {
        if (archive_entry_acl_reset(e, kinds[k]) <= 0)
            continue;
        int type, perm, tag, id;
        const char *name;
        while (archive_entry_acl_next(e, kinds[k], &type, &perm, &tag, &id, &name) == ARCHIVE_OK) {
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                struct acl_item *p = realloc(items, cap * sizeof(*p));
                if (!p)
                    goto out;
                items = p;
            }
            bool raw = has_non_ascii(name);
            rewrite |= raw;
            items[n] = (struct acl_item){type, perm, tag, id, NULL};
            if (name && !raw && !(items[n].name = sb_strdup(name)))
                goto out;
            n++;
        }
    }
    if (!rewrite)
        goto out;
    archive_entry_acl_clear(e);
    for (size_t i = 0; i < n; i++)
        archive_entry_acl_add_entry(e, items[i].type, items[i].perm, items[i].tag, items[i].id,
                                    items[i].name);
    sb_debug("'%s/%s': an ACL entry's user or group name is not ASCII: stored by id", w->root,
             archive_entry_pathname(e));
out:
    for (size_t i = 0; i < n; i++)
        free(items[i].name);
    free(items);
}

/* The current entry's path in the tree ("." for the root). */
static const char *
walk_rel(const struct tar_walk *w)
{
    return w->full[w->root_len] ? w->full + w->root_len + 1 : ".";
}

/* An entry that vanished (or was replaced by another kind of file) between the directory's
 * listing and its open: skipped with a warning in a volatile tree, a changed release
 * otherwise. Returns 0 to skip it, -1 with err set. */
static int
entry_gone(struct tar_walk *w, const char *how)
{
    if (w->mode == SB_TREE_VOLATILE) {
        sb_warn("in '%s': %s: it %s while the tree was archived and is skipped", w->root,
                walk_rel(w), how);
        return 0;
    }
    return sb_error_set(w->err, SB_E_TEMPFAIL, 0,
                        "in '%s': %s: it %s while the release was archived (releases must not "
                        "change once deployed); run the snapshot again",
                        w->root, walk_rel(w), how);
}

/* A failed system call on the current entry: vanished (ENOENT), replaced (ELOOP, ENOTDIR: a
 * symlink or a file where the listing had a file or a directory), unreadable (77, with what
 * to do) or an I/O error. Returns 0 to skip the entry, -1 with err set. */
static int
walk_failed(struct tar_walk *w, int e, const char *what)
{
    if (e == ENOENT)
        return entry_gone(w, "vanished");
    if (e == ELOOP || e == ENOTDIR)
        return entry_gone(w, "was replaced");
    if (e == EACCES || e == EPERM)
        return sb_error_set(w->err, SB_E_PERM, e,
                            "cannot %s '%s'; run snapback as a user who can read every file "
                            "under it (often the app's deploy user, or root), or fix the "
                            "permissions",
                            what, w->full);
    return sb_error_set(w->err, SB_E_IO, e, "cannot %s '%s'", what, w->full);
}

static int walk_dir(struct tar_walk *w, int dir_fd);

/* Copies up to size bytes of fd into the tar entry just started; returns the bytes copied
 * (fewer when the file shrank), -1 with err set. */
static int64_t
copy_data(struct tar_walk *w, int fd, int64_t size)
{
    int64_t at = 0;
    while (at < size) {
        size_t want = size - at < READ_STEP ? (size_t)(size - at) : READ_STEP;
        ssize_t n = read(fd, w->buf, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sb_error_set(w->err, SB_E_IO, errno, "cannot read '%s'", w->full);
            return -1;
        }
        if (n == 0)
            break;
        if (archive_write_data(w->tar, w->buf, (size_t)n) < 0) {
            if (!w->ts->failed)
                sb_error_set(w->err, SB_E_IO, 0, "cannot archive '%s': %s", w->full,
                             archive_error_string(w->tar));
            return -1;
        }
        at += n;
    }
    return at;
}

/* Feeds n zero bytes (a hole of a sparse file) into the entry: the pax writer skips the bytes
 * of the holes its sparse map declares, so nothing is read from the file for them. */
static int
feed_zeros(struct tar_walk *w, int64_t n)
{
    static const char zeros[16384];
    while (n > 0) {
        size_t step = n < (int64_t)sizeof(zeros) ? (size_t)n : sizeof(zeros);
        if (archive_write_data(w->tar, zeros, step) < 0) {
            if (!w->ts->failed)
                sb_error_set(w->err, SB_E_IO, 0, "cannot archive '%s': %s", w->full,
                             archive_error_string(w->tar));
            return -1;
        }
        n -= (int64_t)step;
    }
    return 0;
}

/* A file with fewer blocks than its size may have holes (a database file, a VM image, a
 * preallocated log): its data regions (lseek SEEK_DATA/SEEK_HOLE) become the entry's sparse
 * map, stored as GNU sparse pax 1.0 and restored with the holes (libarchive seeks over them).
 * The only cost for other files is the st_blocks test. Leaves the file at offset 0; no map
 * when the filesystem cannot tell (then the file is stored whole, as before). */
static void
map_sparse(struct archive_entry *entry, int fd, const struct stat *st)
{
    if (!S_ISREG(st->st_mode) || st->st_size <= 0 ||
        (int64_t)st->st_blocks * 512 >= (int64_t)st->st_size)
        return;
    off_t size = st->st_size, at = 0;
    int blocks = 0;
    bool all_hole = false;
    while (at < size) {
        off_t data = sb_test_fail_point("sparse-seek") ? -1 : lseek(fd, at, SEEK_DATA);
        if (data < 0 && errno == ENXIO) {
            all_hole = at == 0;
            break; /* only a hole from here to the end */
        }
        if (data < 0) {
            /* a partial map would drop the rest as a hole: store the file whole */
            archive_entry_sparse_clear(entry);
            break;
        }
        if (data >= size)
            break; /* it grew meanwhile: nothing more within the size of its stat */
        off_t hole = lseek(fd, data, SEEK_HOLE);
        if (hole < 0 || hole > size)
            hole = size;
        if (data == 0 && hole == size && blocks == 0)
            break; /* one extent: not sparse after all */
        archive_entry_sparse_add_entry(entry, data, hole - data);
        blocks++;
        at = hole;
    }
    if (all_hole)
        archive_entry_sparse_add_entry(entry, 0, 0); /* no data at all */
    if (lseek(fd, 0, SEEK_SET) != 0)
        archive_entry_sparse_clear(entry);
}

/* Copies the regions of a sparse entry (its map from map_sparse), holes as zeros; returns the
 * logical bytes covered (fewer than size when the file shrank), -1 with err set. */
static int64_t
copy_sparse(struct tar_walk *w, struct archive_entry *entry, int fd, int64_t size)
{
    int64_t at = 0;
    la_int64_t off, len;
    archive_entry_sparse_reset(entry);
    while (archive_entry_sparse_next(entry, &off, &len) == ARCHIVE_OK) {
        if (off < at || off > size || len > size - off)
            break; /* a map that does not fit the size (cannot happen): rest as zeros */
        if (feed_zeros(w, off - at) < 0)
            return -1;
        at = off;
        if (len == 0)
            continue;
        if (lseek(fd, off, SEEK_SET) != off) {
            sb_error_set(w->err, SB_E_IO, errno, "cannot read '%s'", w->full);
            return -1;
        }
        int64_t got = copy_data(w, fd, len);
        if (got < 0)
            return -1;
        at += got;
        if (got < len)
            return at; /* shrank */
    }
    if (feed_zeros(w, size - at) < 0)
        return -1;
    return size;
}

/* After a shared file was read: replaced (a new upload renamed over it) or rewritten in place
 * since its stat, the copy may mix two versions. A file that only grew (a log) is a clean
 * prefix and not reported. A release needs no such check: the walk after the archive
 * compares every entry. */
static void
warn_if_rewritten(struct tar_walk *w, int dir_fd, const char *name, const struct stat *st)
{
    struct stat now;
    if (fstatat(dir_fd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
        (now.st_ino != st->st_ino ||
         (now.st_size == st->st_size && (now.st_mtim.tv_sec != st->st_mtim.tv_sec ||
                                         now.st_mtim.tv_nsec != st->st_mtim.tv_nsec))))
        sb_warn("'%s' changed while it was read: the stored copy may mix two versions of it; "
                "the next snapshot will have it whole",
                w->full);
}

/* Which metadata entry_from_file reads: xattrs and ACLs only where the entry has any. One
 * listxattr (ACLs are the xattrs system.posix_acl_*) replaces the ACL probe libacl makes for
 * every file (an fgetxattr and an fstat, and for a directory a getxattr and a stat by path).
 * The entry is fd, or (a symlink, FIFO or device, never opened) path when fd < 0. */
static void
set_metadata_reads(struct tar_walk *w, int fd, const char *path)
{
    char list[4096];
    ssize_t n = fd >= 0 ? flistxattr(fd, list, sizeof(list))
                : path  ? llistxattr(path, list, sizeof(list))
                        : 0;
    /* ERANGE (a long list) or an error: let libarchive look; a filesystem without xattrs
     * (ENOTSUP) has none to read */
    bool unknown = n < 0 && errno != ENOTSUP;
    bool acl = unknown, xattr = unknown;
    for (ssize_t at = 0; at < n;) {
        const char *name = list + at;
        size_t len = strnlen(name, (size_t)(n - at));
        if (!strcmp(name, "system.posix_acl_access") || !strcmp(name, "system.posix_acl_default"))
            acl = true;
        else
            xattr = true;
        at += (ssize_t)len + 1;
    }
    int flags = ARCHIVE_READDISK_NO_FFLAGS | ARCHIVE_READDISK_NO_SPARSE |
                (acl ? 0 : ARCHIVE_READDISK_NO_ACL) | (xattr ? 0 : ARCHIVE_READDISK_NO_XATTR);
    if (flags != w->disk_flags) {
        archive_read_disk_set_behavior(w->disk, flags);
        w->disk_flags = flags;
    }
}

/* Archives the entry name of dir_fd (w->full already names it; name NULL: the root, dir_fd
 * itself), then its contents when it is a directory. Returns 0 (also for an entry skipped
 * with a warning), -1 with err set. */
static int
walk_entry(struct tar_walk *w, int dir_fd, const char *name)
{
    struct stat st;
    bool is_root = name == NULL;
    if ((is_root ? fstat(dir_fd, &st) : fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW)) < 0)
        return walk_failed(w, errno, "stat");
    if (sb_test_pause_armed()) {
        /* test hook "entry:PATH": pauses after the stat of PATH, before it is opened */
        snprintf(w->point, sizeof(w->point), "entry:%s", walk_rel(w));
        sb_test_pause_point(w->point);
    }
    int fd = -1;
    if (is_root) {
        fd = dup(dir_fd);
        if (fd < 0)
            return sb_error_set(w->err, SB_E_IO, errno, "cannot open directory '%s'", w->root);
    } else if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) {
        /* O_NONBLOCK: a file replaced by a FIFO meanwhile must not hang the walk; O_NOFOLLOW
         * and O_DIRECTORY: nor may a symlink put there take us out of the tree. */
        int flags = O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC |
                    (S_ISDIR(st.st_mode) ? O_DIRECTORY : 0);
        /* O_NOATIME (as borg does): reading a release must not dirty the inode of every file
         * (relatime still writes the atime of each file once after a deploy). Only the owner
         * or root may ask for it; after a refusal the walk stops asking. */
        fd = openat(dir_fd, name, flags | (w->no_noatime ? 0 : O_NOATIME));
        if (fd < 0 && errno == EPERM && !w->no_noatime) {
            w->no_noatime = true;
            fd = openat(dir_fd, name, flags);
        }
        if (fd < 0)
            return walk_failed(w, errno, S_ISDIR(st.st_mode) ? "open directory" : "read");
    }
    set_metadata_reads(w, fd, fd < 0 ? w->full : NULL);
    struct archive_entry *entry = w->entry;
    archive_entry_clear(entry);
    archive_entry_copy_pathname(entry, walk_rel(w));
    /* entry_from_file reads a symlink's target, and a directory's default ACL, by path */
    archive_entry_copy_sourcepath(entry, w->full);
    int r = archive_read_disk_entry_from_file(w->disk, entry, fd, &st);
    if (r >= ARCHIVE_WARN && fd >= 0)
        map_sparse(entry, fd, &st);
    if (r < ARCHIVE_WARN) {
        int e = archive_errno(w->disk);
        if (fd >= 0)
            close(fd);
        if (e > 0)
            return walk_failed(w, e, "read");
        return sb_error_set(w->err, SB_E_IO, 0, "cannot read '%s': %s", w->full,
                            archive_error_string(w->disk));
    }
    /* atime changes on every read and ctime cannot be restored: neither is kept. */
    archive_entry_unset_atime(entry);
    archive_entry_unset_ctime(entry);
    archive_entry_unset_birthtime(entry);
    archive_entry_copy_sourcepath(entry, NULL);
    if (w->raw_fallback)
        acl_ascii_names(w, entry);
    if (w->seen && !is_root) {
        /* the metadata as archived: the stat taken before the data was read. The walk is in
         * the fingerprint's order (walk_dir), so these lines also make the fingerprint. */
        const char *target = S_ISLNK(st.st_mode) ? archive_entry_symlink(entry) : NULL;
        size_t len = sb_fp_line(w->line, sizeof(w->line), walk_rel(w), &st, target,
                                target ? strlen(target) : 0);
        crypto_generichash_update(w->fp_state, (const unsigned char *)w->line, len);
        sb_fp_digest_add(&w->seen->digest, w->line, len);
        w->seen->entries++;
        if (S_ISREG(st.st_mode))
            w->seen->bytes += (uint64_t)st.st_size;
    }
    /* A socket cannot be stored (pax has no type for it) and means nothing once its listener
     * is gone: like tar, skip it with a warning rather than fail the snapshot over a stale
     * tmp/sockets/app.sock. It stays in the metadata digest above, which the fingerprint walk
     * also counts it in. */
    if (S_ISSOCK(st.st_mode)) {
        sb_warn("'%s' is a socket: not archived", w->full);
        return 0;
    }
    struct archive_entry *spare = NULL, *to_write = entry;
    archive_entry_linkify(w->resolver, &to_write, &spare);
    int rc = -1;
    if (!to_write) {
        rc = 0;
        goto out;
    }
    int hr = archive_write_header(w->tar, to_write);
    if (hr != ARCHIVE_OK && !(hr == ARCHIVE_WARN && raw_name_fallback(w, to_write))) {
        if (!w->ts->failed)
            sb_error_set(w->err, SB_E_IO, 0, "cannot archive '%s': %s", w->full,
                         archive_error_string(w->tar));
        goto out;
    }
    if (!is_root)
        w->count++;
    /* A later hard link of a file is stored as a link (size 0): its data is not read.
     * Reading stops at the size the stat gave: a file that grows meanwhile (a log) is stored
     * as the prefix its stat described. */
    int64_t size = S_ISREG(st.st_mode) ? archive_entry_size(to_write) : 0;
    if (size > 0) {
        int64_t got = archive_entry_sparse_count(to_write) > 0 ? copy_sparse(w, to_write, fd, size)
                                                               : copy_data(w, fd, size);
        if (got < 0)
            goto out;
        if (got < size) {
            /* It shrank while it was read: the header promised `size` bytes, and
             * archive_write_finish_entry pads the rest with zeros. */
            if (w->mode == SB_TREE_STRICT) {
                sb_error_set(w->err, SB_E_TEMPFAIL, 0,
                             "'%s' shrank from %lld to %lld bytes while the release was "
                             "archived (releases must not change once deployed); run the "
                             "snapshot again",
                             w->full, (long long)size, (long long)got);
                goto out;
            }
            sb_warn("'%s' shrank from %lld to %lld bytes while it was read: stored with its "
                    "last %lld bytes as zeros; the next snapshot will have it as it is then",
                    w->full, (long long)size, (long long)got, (long long)(size - got));
        } else if (w->mode == SB_TREE_VOLATILE) {
            warn_if_rewritten(w, dir_fd, name, &st);
        }
    }
    if (archive_write_finish_entry(w->tar) != ARCHIVE_OK && w->ts->failed)
        goto out;
    if (S_ISDIR(st.st_mode)) {
        int child = fd;
        fd = -1;
        rc = walk_dir(w, child);
        goto out;
    }
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Archives the entry name of the directory d, whose path w->full names; len: the length of
 * the directory's own path in w->full. */
static int
walk_child(struct tar_walk *w, DIR *d, size_t len, const char *name)
{
    size_t nlen = strlen(name);
    if (len + 1 + nlen >= sizeof(w->full)) {
        sb_fp_path_too_long(w->err, w->root, walk_rel(w));
        return -1;
    }
    w->full[len] = '/';
    memcpy(w->full + len + 1, name, nlen + 1);
    int r = walk_entry(w, dirfd(d), name);
    w->full[len] = '\0';
    return r;
}

/* Archives every entry of the directory open as dir_fd (taken over and closed). A tree whose
 * fingerprint is asked for (w->seen: a release) is walked in the fingerprint's order, names
 * sorted byte-wise and each directory's contents right after it, as sb_tree_fingerprint does:
 * its listing is held meanwhile, as the fingerprint walk holds it. Any other tree (a shared
 * path, which may hold a million uploads in one directory) is walked in the order of its
 * listing, holding only one read position per level. */
static int
walk_dir(struct tar_walk *w, int dir_fd)
{
    DIR *d = fdopendir(dir_fd);
    if (!d) {
        int e = errno;
        close(dir_fd);
        return walk_failed(w, e, "read directory");
    }
    size_t len = strlen(w->full);
    struct name_list list = {NULL, 0, 0};
    int rc = -1;
    for (;;) {
        if (sb_check_stop(w->err) < 0)
            goto out;
        errno = 0;
        struct dirent *de = sb_test_fail_point("walk-readdir") ? NULL : readdir(d);
        if (!de) {
            if (errno) {
                w->full[len] = '\0';
                if (walk_failed(w, errno, "read directory") < 0)
                    goto out; /* else: removed while it was read, and the tree is volatile */
            }
            break;
        }
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (!w->seen) {
            if (walk_child(w, d, len, de->d_name) < 0)
                goto out;
            continue;
        }
        if (name_list_add(&list, de->d_name) < 0) {
            sb_error_set(w->err, SB_E_INTERNAL, ENOMEM, "out of memory");
            goto out;
        }
    }
    name_list_sort(&list);
    for (size_t idx = 0; idx < list.n; idx++) {
        if (sb_check_stop(w->err) < 0 || walk_child(w, d, len, list.names[idx]) < 0)
            goto out;
    }
    rc = 0;
out:
    name_list_free(&list);
    closedir(d);
    return rc;
}

int
sb_tree_archive(const char *dir, enum sb_tree_mode mode, struct sb_ostream *out, uint64_t *entries,
                struct sb_tree_fp *seen, struct sb_error *err)
{
    struct tar_sink ts = {out, err, 0};
    struct tar_walk *w = calloc(1, sizeof(*w));
    int rc = -1, root_fd = -1;
    if (!w) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        return -1;
    }
    w->root = dir;
    w->mode = mode;
    w->ts = &ts;
    w->seen = seen;
    w->err = err;
    w->root_len = strlen(dir);
    while (w->root_len > 1 && dir[w->root_len - 1] == '/')
        w->root_len--;
    if (w->root_len >= sizeof(w->full)) {
        sb_fp_path_too_long(err, dir, "");
        goto out;
    }
    memcpy(w->full, dir, w->root_len);
    w->full[w->root_len] = '\0';
    w->disk = archive_read_disk_new();
    w->tar = archive_write_new();
    w->resolver = archive_entry_linkresolver_new();
    w->entry = archive_entry_new();
    w->buf = malloc(READ_STEP);
    if (seen) {
        memset(seen, 0, sizeof(*seen));
        /* aligned: the BLAKE2b state is declared 64-byte aligned */
        size_t align = _Alignof(crypto_generichash_state);
        w->fp_state = aligned_alloc(align, (sizeof(*w->fp_state) + align - 1) / align * align);
        if (w->fp_state)
            crypto_generichash_init(w->fp_state, NULL, 0, 16);
    }
    if (!w->disk || !w->tar || !w->resolver || !w->entry || !w->buf || (seen && !w->fp_state)) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    archive_read_disk_set_symlink_physical(w->disk);
    archive_read_disk_set_standard_lookup(w->disk);
    /* No file flags (chattr: an ioctl per file, and flags such as immutable have no place in
     * a restored release) and not libarchive's sparse-file probe (lseeks for every file;
     * map_sparse probes only files with fewer blocks than bytes). xattrs and ACLs are kept
     * (set_metadata_reads). */
    w->disk_flags = ARCHIVE_READDISK_NO_FFLAGS | ARCHIVE_READDISK_NO_SPARSE;
    archive_read_disk_set_behavior(w->disk, w->disk_flags);
    /* Full pax (not pax_restricted, which drops sub-second mtimes), so a restored tree has
     * the exact mtimes: the release fingerprint of a restored release then matches. */
    archive_write_set_format_pax(w->tar);
    /* File names are bytes, not text in the locale's charset: they must come back exactly as
     * they were, whatever the locale of the restore. snapback never calls setlocale, so it
     * runs in the C locale, where libarchive cannot translate a byte above 0x7f: an entry
     * whose names are all ASCII gets a plain ustar header, and an entry with any other byte
     * falls back to hdrcharset=BINARY with its names as raw bytes (raw_name_fallback).
     * Should the locale be another one (a library called setlocale), libarchive would
     * translate names instead, so every entry is marked BINARY: an extended header for each
     * entry, 1 KiB more tar per file (docs/FORMAT.md, docs/PERFORMANCE.md). */
    const char *codeset = nl_langinfo(CODESET);
    w->raw_fallback = strcmp(codeset, "ANSI_X3.4-1968") == 0 || strcmp(codeset, "ASCII") == 0;
    if (!w->raw_fallback &&
        archive_write_set_format_option(w->tar, "pax", "hdrcharset", "BINARY") != ARCHIVE_OK) {
        sb_error_set(err, SB_E_INTERNAL, 0, "libarchive refuses hdrcharset=BINARY: %s",
                     archive_error_string(w->tar));
        goto out;
    }
    archive_write_set_bytes_per_block(w->tar, 0);
    archive_entry_linkresolver_set_strategy(w->resolver, archive_format(w->tar));
    if (archive_write_open2(w->tar, &ts, NULL, tar_write_cb, NULL, NULL) != ARCHIVE_OK) {
        sb_error_set(err, SB_E_INTERNAL, 0, "cannot start a tar stream: %s",
                     archive_error_string(w->tar));
        goto out;
    }
    /* The root is followed when it is a symlink (a shared path linked to a mount), as the
     * fingerprint walk does; its mode, owner and mtime are restored too (entry "."). */
    root_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (root_fd < 0) {
        int e = errno;
        if (e == EACCES || e == EPERM)
            walk_failed(w, e, "open directory");
        else
            sb_error_set(err, sb_error_from_errno(e), e, "cannot open directory '%s'", dir);
        goto out;
    }
    if (walk_entry(w, root_fd, NULL) < 0)
        goto out;
    if (archive_write_close(w->tar) != ARCHIVE_OK) {
        if (!ts.failed)
            sb_error_set(err, SB_E_IO, 0, "cannot finish the tar stream: %s",
                         archive_error_string(w->tar));
        goto out;
    }
    if (entries)
        *entries = w->count;
    if (seen) {
        unsigned char hash[16];
        crypto_generichash_final(w->fp_state, hash, sizeof(hash));
        sb_hex_encode(hash, sizeof(hash), seen->hex);
    }
    rc = 0;
out:
    free(w->fp_state);
    if (root_fd >= 0)
        close(root_fd);
    archive_entry_free(w->entry);
    archive_entry_linkresolver_free(w->resolver);
    if (w->disk)
        archive_read_free(w->disk);
    if (w->tar)
        archive_write_free(w->tar);
    free(w->buf);
    free(w);
    return rc;
}
