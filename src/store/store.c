/* The store interface's dispatch and the helpers built on it, shared by every backend. */
#include "snapback/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snapback/core.h"

/* A replacing rename on an SFTP server without posix-rename (OpenSSH speaks SFTP 3) is three
 * steps: NAME -> NAME.replaced-RANDOM, NAME.partial -> NAME, remove the aside copy. A crash or
 * a dropped connection between the first two leaves NAME missing and its old content aside.
 * Whoever next finds NAME missing puts the aside copy back (the replacement is rolled back; the
 * writer had not finished, so nothing referenced the new content yet). Returns 1 when it put
 * one back, 0 when there was none. */
static int
recover_replaced(struct sb_store *st, const char *path, struct sb_error *err)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path)) : sb_strdup("");
    const char *base = slash ? slash + 1 : path;
    char **names = NULL;
    size_t count = 0;
    int rc = 0;
    if (!dir)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    struct sb_error lerr = SB_ERROR_INIT;
    if (sb_store_list(st, dir, &names, &count, &lerr) < 0) {
        free(dir);
        return 0; /* no directory, no aside copy: NAME is simply missing */
    }
    size_t blen = strlen(base);
    const char *found = NULL;
    for (size_t idx = 0; idx < count; idx++)
        if (!strncmp(names[idx], base, blen) && !strncmp(names[idx] + blen, ".replaced-", 10) &&
            (!found || strcmp(names[idx], found) > 0))
            found = names[idx];
    if (found) {
        char *aside = *dir ? sb_path_join(dir, found) : sb_strdup(found);
        if (!aside) {
            rc = sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        } else if (st->ops->rename(st, aside, path, err) < 0) {
            sb_error_wrap(err,
                          "'%s' is missing and its interrupted replacement '%s' could not be "
                          "put back",
                          path, aside);
            rc = -1;
        } else {
            sb_warn("'%s' on %s was missing after an interrupted replacement: put '%s' back", path,
                    st->display, found);
            rc = 1;
        }
        free(aside);
    }
    sb_store_names_free(names, count);
    free(dir);
    return rc;
}

int
sb_store_open_read(struct sb_store *st, const char *path, struct sb_istream **out,
                   struct sb_error *err)
{
    int rc = st->ops->open_read(st, path, out, err);
    if (rc < 0 && err->code == SB_E_NOTFOUND) {
        struct sb_error saved = *err;
        int r = recover_replaced(st, path, err);
        if (r < 0)
            return -1;
        if (r == 0) {
            *err = saved;
            return -1;
        }
        rc = st->ops->open_read(st, path, out, err);
    }
    return rc;
}

int
sb_store_open_write(struct sb_store *st, const char *path, unsigned flags, struct sb_ostream **out,
                    struct sb_error *err)
{
    return st->ops->open_write(st, path, flags, out, err);
}

int
sb_store_list(struct sb_store *st, const char *dir, char ***names, size_t *count,
              struct sb_error *err)
{
    return st->ops->list(st, dir, names, count, err);
}

int
sb_store_stat(struct sb_store *st, const char *path, struct sb_store_stat *out,
              struct sb_error *err)
{
    if (st->ops->stat(st, path, out, err) < 0)
        return -1;
    if (out->exists || strstr(path, ".replaced-") || strstr(path, ".partial"))
        return 0;
    int r = recover_replaced(st, path, err);
    if (r <= 0)
        return r;
    return st->ops->stat(st, path, out, err);
}

int
sb_store_remove(struct sb_store *st, const char *path, struct sb_error *err)
{
    return st->ops->remove(st, path, err);
}

int
sb_store_rename(struct sb_store *st, const char *from, const char *to, struct sb_error *err)
{
    return st->ops->rename(st, from, to, err);
}

int
sb_store_put(struct sb_store *st, const char *path, unsigned flags, const void *data, size_t len,
             struct sb_error *err)
{
    struct sb_ostream *out = NULL;
    if (sb_store_open_write(st, path, flags, &out, err) < 0)
        return -1;
    int rc = -1;
    if (sb_ostream_write(out, data, len, err) < 0)
        goto out;
    if (sb_ostream_close(out, err) < 0)
        goto out;
    rc = 0;
out:
    sb_ostream_free(out);
    return rc;
}

int
sb_store_get(struct sb_store *st, const char *path, size_t max, char **out, size_t *len,
             struct sb_error *err)
{
    struct sb_istream *in = NULL;
    *out = NULL;
    if (sb_store_open_read(st, path, &in, err) < 0)
        return -1;
    int rc = -1;
    char *buf = malloc(max + 1);
    if (!buf) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    size_t n = 0;
    if (sb_istream_read_full(in, buf, max + 1, &n, err) < 0)
        goto out;
    if (n > max) {
        sb_error_set(err, SB_E_CORRUPT, 0, "'%s' is larger than %zu bytes", path, max);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    buf = NULL;
    if (len)
        *len = n;
    rc = 0;
out:
    free(buf);
    sb_istream_free(in);
    return rc;
}

void
sb_store_free(struct sb_store *st)
{
    if (st)
        st->ops->free(st);
}

void
sb_store_names_free(char **names, size_t count)
{
    if (!names)
        return;
    for (size_t idx = 0; idx < count; idx++)
        free(names[idx]);
    free(names);
}
