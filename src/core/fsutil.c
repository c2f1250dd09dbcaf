/* File system helpers. The rule they enforce is zstd's: a file appears under its final name
 * only complete and durable (temp name, fsync, rename, fsync of the directory), so a crash at
 * any moment leaves the old state or the new one, never a half-written file. */
#include "snapback/core.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char *
sb_path_join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la > 1 && a[la - 1] == '/')
        la--;
    while (*b == '/') {
        b++;
        lb--;
    }
    char *out = malloc(la + lb + 2);
    if (!out)
        return NULL;
    memcpy(out, a, la);
    size_t pos = la;
    if (lb && !(la == 1 && a[0] == '/'))
        out[pos++] = '/';
    memcpy(out + pos, b, lb);
    out[pos + lb] = '\0';
    return out;
}

bool
sb_path_is_clean_relative(const char *rel)
{
    if (!rel || !*rel || rel[0] == '/')
        return false;
    const char *p = rel;
    while (*p) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        if (len == 0)
            return false;
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        if (!slash)
            break;
        p = slash + 1;
        if (!*p)
            return false;
    }
    return true;
}

int
sb_fsync_dir(const char *dir, struct sb_error *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return sb_error_set(err, sb_error_from_errno(errno), errno, "cannot open directory '%s'",
                            dir);
    int rc = 0;
    if (fsync(fd) < 0 && errno != EINVAL)
        rc = sb_error_set(err, SB_E_IO, errno, "cannot fsync directory '%s'", dir);
    close(fd);
    return rc;
}

int
sb_fsync_parent(const char *path, struct sb_error *err)
{
    char *copy = sb_strdup(path);
    if (!copy)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    char *slash = strrchr(copy, '/');
    int rc;
    if (!slash)
        rc = sb_fsync_dir(".", err);
    else if (slash == copy)
        rc = sb_fsync_dir("/", err);
    else {
        *slash = '\0';
        rc = sb_fsync_dir(copy, err);
    }
    free(copy);
    return rc;
}

int
sb_mkdir_p(const char *path, mode_t mode, struct sb_error *err)
{
    char *copy = sb_strdup(path);
    if (!copy)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    int rc = -1;
    size_t len = strlen(copy);
    for (size_t idx = 1; idx <= len; idx++) {
        if (copy[idx] != '/' && copy[idx] != '\0')
            continue;
        char saved = copy[idx];
        copy[idx] = '\0';
        if (mkdir(copy, mode) == 0) {
            if (sb_fsync_parent(copy, err) < 0)
                goto out;
        } else if (errno != EEXIST) {
            sb_error_set(err, errno == ENOSPC ? SB_E_IO : SB_E_CANTCREATE, errno,
                         "cannot create directory '%s'", copy);
            goto out;
        } else {
            struct stat st;
            if (stat(copy, &st) == 0 && !S_ISDIR(st.st_mode)) {
                sb_error_set(err, SB_E_CANTCREATE, ENOTDIR, "cannot create directory '%s'", copy);
                goto out;
            }
        }
        copy[idx] = saved;
    }
    rc = 0;
out:
    free(copy);
    return rc;
}

int
sb_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                     struct sb_error *err)
{
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    snprintf(tmp, plen + 16, "%s.tmp-XXXXXX", path);
    int rc = -1;
    int fd = mkstemp(tmp);
    if (fd < 0) {
        sb_error_set(err, errno == ENOSPC ? SB_E_IO : SB_E_CANTCREATE, errno, "cannot create '%s'",
                     tmp);
        free(tmp);
        return -1;
    }
    if (fchmod(fd, mode) < 0) {
        sb_error_set(err, SB_E_IO, errno, "cannot chmod '%s'", tmp);
        goto out;
    }
    const unsigned char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            sb_error_set(err, SB_E_IO, errno, "cannot write '%s'", tmp);
            goto out;
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) < 0) {
        sb_error_set(err, SB_E_IO, errno, "cannot fsync '%s'", tmp);
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        sb_error_set(err, SB_E_IO, errno, "cannot close '%s'", tmp);
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) < 0) {
        sb_error_set(err, SB_E_IO, errno, "cannot rename '%s' to '%s'", tmp, path);
        goto out;
    }
    if (sb_fsync_parent(path, err) < 0)
        goto out_renamed;
    rc = 0;
    goto out_renamed;
out:
    if (fd >= 0)
        close(fd);
    unlink(tmp);
out_renamed:
    free(tmp);
    return rc;
}

int
sb_read_file(const char *path, size_t max, char **out, size_t *out_len, struct sb_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sb_error_set(err, sb_error_from_errno(errno), errno, "cannot open '%s'", path);
    int rc = -1;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max) {
                sb_error_set(err, SB_E_IO, 0, "'%s' is larger than %zu bytes", path, max);
                goto out;
            }
            char *p = realloc(buf, cap * 2);
            if (!p) {
                sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
                goto out;
            }
            buf = p;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            sb_error_set(err, SB_E_IO, errno, "cannot read '%s'", path);
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > max) {
        sb_error_set(err, SB_E_IO, 0, "'%s' is larger than %zu bytes", path, max);
        goto out;
    }
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
    if (out_len)
        *out_len = len;
    rc = 0;
out:
    free(buf);
    close(fd);
    return rc;
}

static int
remove_at(int parent_fd, const char *name, const char *display, struct sb_error *err)
{
    struct stat st;
    if (fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return sb_error_set(err, SB_E_IO, errno, "cannot stat '%s'", display);
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(parent_fd, name, 0) < 0 && errno != ENOENT)
            return sb_error_set(err, SB_E_IO, errno, "cannot remove '%s'", display);
        return 0;
    }
    int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return sb_error_set(err, SB_E_IO, errno, "cannot open '%s'", display);
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return sb_error_set(err, SB_E_IO, errno, "cannot open '%s'", display);
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        rc = remove_at(dirfd(d), de->d_name, display, err);
    }
    closedir(d);
    if (rc == 0 && unlinkat(parent_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        rc = sb_error_set(err, SB_E_IO, errno, "cannot remove directory '%s'", display);
    return rc;
}

int
sb_remove_tree(const char *path, struct sb_error *err)
{
    return remove_at(AT_FDCWD, path, path, err);
}
