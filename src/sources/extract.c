/* Extraction of a tar stream into a directory, safely. The destination is a fresh temporary
 * directory (callers rename it into place), so nothing placed there beforehand can redirect
 * writes. Every entry is checked by us (relative, no '..', hard-link targets likewise) and
 * again by libarchive's SECURE_NODOTDOT, SECURE_SYMLINKS and SECURE_NOABSOLUTEPATHS. To use
 * those flags with relative names, extraction runs with the working directory set to dest
 * and restores it afterwards: snapback is single-threaded while it extracts. */
#include "snapback/sources.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "snapback/core.h"

#define READ_STEP (1u << 20)

struct tar_source {
    struct sb_istream *in;
    struct sb_error *err;
    unsigned char *buf;
    int failed;
};

static la_ssize_t
tar_read_cb(struct archive *a, void *client, const void **out)
{
    struct tar_source *ts = client;
    size_t n = 0;
    /* libarchive keeps a block only until its next call here: a thread queue's block can be
     * lent rather than copied */
    if (sb_istream_borrow(ts->in, ts->buf, READ_STEP, out, &n, ts->err) < 0) {
        ts->failed = 1;
        archive_set_error(a, EIO, "stream read failed");
        return -1;
    }
    return (la_ssize_t)n;
}

/* Entry names we accept: relative, no '.' or '..' components; a trailing '/' (directories
 * written by other tools) and a leading "./" are tolerated. */
static int
check_name(const char *name, const char *what, struct sb_error *err)
{
    if (!name || !*name)
        return sb_error_set(err, SB_E_CORRUPT, 0, "refusing an archive entry with an empty %s",
                            what);
    /* the symlink checks compare whole names in 4096-byte buffers; Linux paths are shorter */
    if (strlen(name) >= 4096)
        return sb_error_set(err, SB_E_CORRUPT, 0,
                            "refusing archive entry '%.64s...': its %s is longer than 4095 bytes",
                            name, what);
    char *copy = sb_strdup(name);
    if (!copy)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    char *p = copy;
    while (p[0] == '.' && p[1] == '/')
        p += 2;
    size_t len = strlen(p);
    while (len > 1 && p[len - 1] == '/')
        p[--len] = '\0';
    int rc = 0;
    if (name[0] == '/')
        rc = sb_error_set(err, SB_E_CORRUPT, 0,
                          "refusing archive entry '%s': absolute %s (the archive is hostile or "
                          "corrupt)",
                          name, what);
    else if (!sb_path_is_clean_relative(p))
        rc = sb_error_set(err, SB_E_CORRUPT, 0,
                          "refusing archive entry '%s': %s leaves the target directory (the "
                          "archive is hostile or corrupt)",
                          name, what);
    free(copy);
    return rc;
}

/* The symlinks the archive created so far (and hard links to them, which are symlinks too),
 * so that an entry (or a hard-link target) whose path goes through one, or that lands on
 * one, is refused in every mode, verify included: restoring it would write through the link.
 * This is the only symlink check when writing: dest is a fresh directory snapback created
 * (mkdtemp, or a new directory inside one) that no other user can write to, so the only
 * symlinks under it are the archive's own, and every entry name is already clean (relative,
 * no '.', '..' or empty components: check_name). libarchive's SECURE_SYMLINKS, which lstats
 * every component of every path on disk, cost a third of the restore time of a tree of
 * small files (docs/PERFORMANCE.md). Memory grows with the number of symlinks, not with the
 * data. */
struct link_set {
    char **slots;
    size_t cap, count;
};

static uint64_t
name_hash(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t idx = 0; idx < len; idx++)
        h = (h ^ (unsigned char)s[idx]) * 1099511628211ull;
    return h;
}

static char **
link_slot(struct link_set *ls, const char *name, size_t len)
{
    size_t idx = (size_t)(name_hash(name, len) & (ls->cap - 1));
    while (ls->slots[idx] &&
           (strlen(ls->slots[idx]) != len || memcmp(ls->slots[idx], name, len) != 0))
        idx = (idx + 1) & (ls->cap - 1);
    return &ls->slots[idx];
}

static bool
link_set_has(const struct link_set *ls, const char *name, size_t len)
{
    if (!ls->count)
        return false;
    return *link_slot((struct link_set *)ls, name, len) != NULL;
}

static int
link_set_add(struct link_set *ls, const char *name)
{
    if ((ls->count + 1) * 2 > ls->cap) {
        struct link_set bigger = {NULL, ls->cap ? ls->cap * 2 : 64, 0};
        if (!(bigger.slots = calloc(bigger.cap, sizeof(char *))))
            return -1;
        for (size_t idx = 0; idx < ls->cap; idx++)
            if (ls->slots[idx]) {
                *link_slot(&bigger, ls->slots[idx], strlen(ls->slots[idx])) = ls->slots[idx];
                bigger.count++;
            }
        free(ls->slots);
        *ls = bigger;
    }
    char **slot = link_slot(ls, name, strlen(name));
    if (*slot)
        return 0;
    if (!(*slot = sb_strdup(name)))
        return -1;
    ls->count++;
    return 0;
}

static void
link_set_release(struct link_set *ls)
{
    for (size_t idx = 0; idx < ls->cap; idx++)
        free(ls->slots[idx]);
    free(ls->slots);
}

/* name without "./" in front and "/" at the end */
static const char *
normalise(const char *name, char *buf, size_t cap)
{
    while (name[0] == '.' && name[1] == '/')
        name += 2;
    snprintf(buf, cap, "%s", name);
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = '\0';
    return buf;
}

/* Refuses name when a proper prefix of it is a symlink of the archive (writing it would go
 * through the link) and, with whole, when name itself is one (an entry that lands on a
 * symlink: a directory entry would change the mode and times of what the link points at). */
static int
check_through_links(const struct link_set *ls, const char *name, const char *what, bool whole,
                    struct sb_error *err)
{
    char buf[4096];
    const char *n = normalise(name, buf, sizeof(buf));
    for (const char *slash = strchr(n, '/'); slash; slash = strchr(slash + 1, '/'))
        if (link_set_has(ls, n, (size_t)(slash - n)))
            return sb_error_set(err, SB_E_CORRUPT, 0,
                                "refusing archive entry '%s': its %s goes through the symlink "
                                "'%.*s' (the archive is hostile or corrupt)",
                                name, what, (int)(slash - n), n);
    if (whole && link_set_has(ls, n, strlen(n)))
        return sb_error_set(err, SB_E_CORRUPT, 0,
                            "refusing archive entry '%s': its %s is a symlink an earlier entry "
                            "created (the archive is hostile or corrupt)",
                            name, what);
    return 0;
}

/* Reads past an entry's data (verify, or an entry restore --path leaves out): every check of
 * the stream below still runs on it. */
static int
skip_data(struct archive *tar, const struct tar_source *ts, const char *name, struct sb_error *err)
{
    if (archive_read_data_skip(tar) == ARCHIVE_OK)
        return 0;
    if (!ts->failed)
        sb_error_set(err, SB_E_CORRUPT, 0, "cannot read the data of '%s': %s", name,
                     archive_error_string(tar));
    return -1;
}

/* Whether the filter selects name ("" selects everything, the root "." included; a path
 * selects itself and what is below it); counts the match. */
static bool
filter_selects(const struct sb_extract_filter *f, const char *name, bool is_root)
{
    if (!f)
        return true;
    char buf[4096];
    const char *n = is_root ? "" : normalise(name, buf, sizeof(buf));
    bool hit = false;
    for (size_t idx = 0; idx < f->count; idx++) {
        const char *p = f->paths[idx];
        size_t len = strlen(p);
        if (!*p || (!is_root && !strncmp(n, p, len) && (n[len] == '\0' || n[len] == '/'))) {
            if (f->matched)
                f->matched[idx]++;
            hit = true;
        }
    }
    return hit;
}

/* Hands an entry to filter->visit, its path without a leading "./" or trailing '/'; returns
 * what the visitor does (false: stop). */
static bool
visit_entry(const struct sb_extract_filter *filter, struct archive_entry *entry, const char *name,
            const char *hardlink)
{
    char buf[4096];
    struct sb_tree_entry e = {0};
    e.path = *name ? normalise(name, buf, sizeof(buf)) : "";
    switch (archive_entry_filetype(entry)) {
    case AE_IFDIR:
        e.type = 'd';
        break;
    case AE_IFLNK:
        e.type = 'l';
        e.link = archive_entry_symlink(entry);
        break;
    case AE_IFCHR:
        e.type = 'c';
        break;
    case AE_IFBLK:
        e.type = 'b';
        break;
    case AE_IFIFO:
        e.type = 'p';
        break;
    default:
        e.type = '-';
        e.size = archive_entry_size(entry);
    }
    if (hardlink) {
        e.type = 'h';
        e.link = hardlink;
        e.size = 0;
    }
    e.mode = (unsigned)archive_entry_perm(entry) & 07777;
    e.uid = archive_entry_uid(entry);
    e.gid = archive_entry_gid(entry);
    e.user = archive_entry_uname(entry);
    e.group = archive_entry_gname(entry);
    e.mtime = archive_entry_mtime_is_set(entry) ? archive_entry_mtime(entry) : 0;
    e.mtime_nsec = archive_entry_mtime_is_set(entry) ? archive_entry_mtime_nsec(entry) : 0;
    return filter->visit(&e, filter->visit_arg);
}

int
sb_tree_extract(struct sb_istream *in, const char *dest, enum sb_extract_mode mode,
                uint64_t *entries, struct sb_error *err)
{
    return sb_tree_extract_some(in, dest, mode, NULL, entries, err);
}

int
sb_tree_extract_some(struct sb_istream *in, const char *dest, enum sb_extract_mode mode,
                     const struct sb_extract_filter *filter, uint64_t *entries,
                     struct sb_error *err)
{
    struct tar_source ts = {in, err, malloc(READ_STEP), 0};
    struct archive *tar = archive_read_new();
    struct archive *disk = NULL;
    struct archive_entry *entry;
    int rc = -1, saved_cwd = -1;
    uint64_t count = 0;
    bool in_dest = false, root_time_set = false;
    struct link_set links = {NULL, 0, 0};
    struct timespec root_mtime = {0, 0};
    if (!ts.buf || !tar) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    archive_read_support_format_tar(tar);
    if (mode == SB_EXTRACT_WRITE) {
        disk = archive_write_disk_new();
        if (!disk) {
            sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            goto out;
        }
        /* No ARCHIVE_EXTRACT_SECURE_SYMLINKS: the link set above does that job without a
         * syscall per path component (see struct link_set). */
        int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_ACL |
                    ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                    ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;
        if (geteuid() == 0)
            flags |= ARCHIVE_EXTRACT_OWNER;
        archive_write_disk_set_options(disk, flags);
        archive_write_disk_set_standard_lookup(disk);
        saved_cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (saved_cwd < 0) {
            sb_error_set(err, SB_E_IO, errno, "cannot open the working directory");
            goto out;
        }
        if (chdir(dest) < 0) {
            sb_error_set(err, sb_error_from_errno(errno), errno, "cannot enter '%s'", dest);
            goto out;
        }
        in_dest = true;
    }
    if (archive_read_open(tar, &ts, NULL, tar_read_cb, NULL) != ARCHIVE_OK) {
        if (!ts.failed)
            sb_error_set(err, SB_E_CORRUPT, 0, "not a tar stream: %s", archive_error_string(tar));
        goto out;
    }
    for (;;) {
        if (sb_check_stop(err) < 0)
            goto out;
        int r = archive_read_next_header(tar, &entry);
        if (r == ARCHIVE_EOF)
            break;
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            if (!ts.failed)
                sb_error_set(err, SB_E_CORRUPT, 0, "bad tar entry after %llu entries: %s",
                             (unsigned long long)count, archive_error_string(tar));
            goto out;
        }
        const char *name = archive_entry_pathname(entry);
        /* "." is the archived directory itself (its mode and mtime): a directory only */
        bool is_root = name && (!strcmp(name, ".") || !strcmp(name, "./"));
        if (is_root && archive_entry_filetype(entry) != AE_IFDIR) {
            sb_error_set(err, SB_E_CORRUPT, 0,
                         "refusing archive entry '.': not a directory (the archive is hostile "
                         "or corrupt)");
            goto out;
        }
        if (!is_root && check_name(name, "path", err) < 0)
            goto out;
        const char *hardlink = archive_entry_hardlink(entry);
        if (hardlink && check_name(hardlink, "hard link target", err) < 0) {
            sb_error_wrap(err, "entry '%s'", name);
            goto out;
        }
        if (!is_root && (check_through_links(&links, name, "path", true, err) < 0 ||
                         (hardlink && check_through_links(&links, hardlink, "hard link target",
                                                          false, err) < 0)))
            goto out;
        /* a hard link to a symlink is a symlink to the same place */
        bool link_to_link = false;
        if (hardlink) {
            char hbuf[4096];
            const char *h = normalise(hardlink, hbuf, sizeof(hbuf));
            link_to_link = link_set_has(&links, h, strlen(h));
        }
        if (!is_root &&
            ((archive_entry_filetype(entry) == AE_IFLNK && !hardlink) || link_to_link)) {
            char buf[4096];
            if (link_set_add(&links, normalise(name, buf, sizeof(buf))) < 0) {
                sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
                goto out;
            }
        }
        if (!filter_selects(filter, name, is_root)) {
            /* left out (restore --path): its data is read past, every check still runs */
            if (skip_data(tar, &ts, name, err) < 0)
                goto out;
            continue;
        }
        if (filter && hardlink &&
            !filter_selects(
                &(struct sb_extract_filter){filter->paths, filter->count, NULL, NULL, NULL},
                hardlink, false)) {
            sb_error_set(err, SB_E_USAGE, 0,
                         "'%s' is a hard link to '%s', which the paths asked for leave out; "
                         "ask for both",
                         name, hardlink);
            goto out;
        }
        if (!is_root)
            count++;
        else if (archive_entry_mtime_is_set(entry)) {
            root_time_set = true;
            root_mtime.tv_sec = archive_entry_mtime(entry);
            root_mtime.tv_nsec = archive_entry_mtime_nsec(entry);
        }
        if (mode == SB_EXTRACT_LIST) {
            if (filter && filter->visit &&
                !visit_entry(filter, entry, is_root ? "" : name, hardlink)) {
                sb_error_set(err, SB_E_IO, 0, "the listing was stopped");
                goto out;
            }
            if (skip_data(tar, &ts, name, err) < 0)
                goto out;
            continue;
        }
        r = archive_write_header(disk, entry);
        if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
            int e = archive_errno(disk);
            sb_error_set(err, e == ENOSPC || e == EDQUOT ? SB_E_IO : SB_E_CORRUPT, 0,
                         "refusing or unable to restore '%s': %s%s", name,
                         archive_error_string(disk),
                         e == ENOSPC || e == EDQUOT
                             ? "; free some space there or restore to another --target (nothing "
                               "was left behind)"
                             : "");
            goto out;
        }
        if (archive_entry_size(entry) > 0) {
            const void *block;
            size_t size;
            la_int64_t offset;
            for (;;) {
                r = archive_read_data_block(tar, &block, &size, &offset);
                if (r == ARCHIVE_EOF)
                    break;
                if (r != ARCHIVE_OK) {
                    if (!ts.failed)
                        sb_error_set(err, SB_E_CORRUPT, 0, "cannot read the data of '%s': %s", name,
                                     archive_error_string(tar));
                    goto out;
                }
                if (archive_write_data_block(disk, block, size, offset) != ARCHIVE_OK) {
                    int e = archive_errno(disk);
                    sb_error_set(err, SB_E_IO, e, "cannot write '%s/%s': %s%s", dest, name,
                                 archive_error_string(disk),
                                 e == ENOSPC || e == EDQUOT
                                     ? "; free some space there or restore to another --target "
                                       "(nothing was left behind)"
                                     : "");
                    goto out;
                }
            }
        }
        /* ARCHIVE_WARN: the data is written and only some metadata could not be set here,
         * in practice an xattr or ACL (trusted.* or security.* without the privilege, a
         * filesystem without xattrs or ACLs). That must not cost the whole restore (or a
         * rollback): a warning names the file, as tar and restic do. */
        r = archive_write_finish_entry(disk);
        if (r == ARCHIVE_WARN) {
            /* named as in the restored layout, not under the temporary directory */
            const char *tmp = strstr(dest, ".snapback-tmp-");
            const char *shown = tmp ? strchr(tmp, '/') : NULL;
            sb_warn("'%s%s%s' is restored without some of its metadata: %s",
                    tmp ? (shown ? shown + 1 : "") : dest, tmp && !shown ? "" : "/", name,
                    archive_error_string(disk));
        } else if (r != ARCHIVE_OK) {
            sb_error_set(err, SB_E_IO, archive_errno(disk), "cannot finish '%s/%s': %s", dest, name,
                         archive_error_string(disk));
            goto out;
        }
    }
    if (disk && archive_write_close(disk) != ARCHIVE_OK) {
        sb_error_set(err, SB_E_IO, archive_errno(disk), "cannot finish restoring into '%s': %s",
                     dest, archive_error_string(disk));
        goto out;
    }
    /* libarchive sets the mode of "." but not its times: do it after everything inside was
     * written (which changes a directory's mtime). */
    if (disk && root_time_set) {
        struct timespec times[2] = {{0, UTIME_OMIT}, root_mtime};
        if (utimensat(AT_FDCWD, ".", times, 0) < 0) {
            sb_error_set(err, SB_E_IO, errno, "cannot set the time of '%s'", dest);
            goto out;
        }
    }
    /* The tar end marker may come before the end of the stream: read the rest, which runs
     * the checks of every stage below (final chunk, size, BLAKE2b). */
    if (sb_istream_drain(in, err) < 0)
        goto out;
    if (entries)
        *entries = count;
    rc = 0;
out:
    if (in_dest && fchdir(saved_cwd) < 0 && rc == 0)
        rc = sb_error_set(err, SB_E_IO, errno, "cannot return to the working directory");
    if (saved_cwd >= 0)
        close(saved_cwd);
    link_set_release(&links);
    if (disk)
        archive_write_free(disk);
    if (tar)
        archive_read_free(tar);
    free(ts.buf);
    return rc;
}
