/* The store interface's dispatch and the helpers built on it, shared by every backend. */
#include "snapback/store.h"

#include <errno.h>
#include <stdlib.h>

int
sb_store_open_read(struct sb_store *st, const char *path, struct sb_istream **out,
                   struct sb_error *err)
{
    return st->ops->open_read(st, path, out, err);
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
