/* Generic stream helpers and the simplest streams: file descriptors, memory and a counter. */
#include "snapback/stream.h"
#include "snapback/core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define COPY_STEP (1u << 20)

int
sb_ostream_write(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    if (len == 0)
        return 0;
    return s->ops->write(s, data, len, err);
}

int
sb_ostream_write_more(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    if (len == 0)
        return 0;
    if (s->ops->write_more)
        return s->ops->write_more(s, data, len, err);
    return s->ops->write(s, data, len, err);
}

int
sb_ostream_reserve(struct sb_ostream *s, size_t min, unsigned char **buf, size_t *cap,
                   struct sb_error *err)
{
    if (!s->ops->reserve)
        return 0;
    return s->ops->reserve(s, min, buf, cap, err);
}

int
sb_ostream_commit(struct sb_ostream *s, size_t len, struct sb_error *err)
{
    return s->ops->commit(s, len, err);
}

int
sb_ostream_close(struct sb_ostream *s, struct sb_error *err)
{
    return s->ops->close(s, err);
}

void
sb_ostream_free(struct sb_ostream *s)
{
    if (s)
        s->ops->free(s);
}

int
sb_istream_read(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    *got = 0;
    return s->ops->read(s, buf, cap, got, err);
}

int
sb_istream_borrow(struct sb_istream *s, void *buf, size_t cap, const void **data, size_t *len,
                  struct sb_error *err)
{
    *len = 0;
    if (s->ops->borrow)
        return s->ops->borrow(s, data, len, err);
    *data = buf;
    return s->ops->read(s, buf, cap, len, err);
}

int
sb_istream_read_full(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    size_t total = 0;
    while (total < cap) {
        size_t n = 0;
        if (s->ops->read(s, (unsigned char *)buf + total, cap - total, &n, err) < 0)
            return -1;
        if (n == 0)
            break;
        total += n;
    }
    *got = total;
    return 0;
}

int
sb_istream_drain(struct sb_istream *s, struct sb_error *err)
{
    unsigned char *buf = malloc(COPY_STEP);
    if (!buf)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate a read buffer");
    int rc = 0;
    for (;;) {
        size_t n = 0;
        if (s->ops->read(s, buf, COPY_STEP, &n, err) < 0) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
    }
    free(buf);
    return rc;
}

void
sb_istream_free(struct sb_istream *s)
{
    if (s)
        s->ops->free(s);
}

int
sb_stream_copy(struct sb_istream *in, struct sb_ostream *out, uint64_t *copied,
               struct sb_error *err)
{
    unsigned char *buf = malloc(COPY_STEP);
    if (!buf)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate a copy buffer");
    int rc = -1;
    uint64_t total = 0;
    for (;;) {
        size_t n = 0;
        const void *data = buf;
        /* a stream that lends its blocks (a thread queue) is not copied into buf; any other
         * fills it, so the writes downstream stay large */
        if (sb_check_stop(err) < 0 ||
            (in->ops->borrow ? sb_istream_borrow(in, buf, COPY_STEP, &data, &n, err)
                             : sb_istream_read_full(in, buf, COPY_STEP, &n, err)) < 0)
            goto out;
        if (n == 0)
            break;
        if (sb_ostream_write(out, data, n, err) < 0)
            goto out;
        total += n;
    }
    rc = 0;
out:
    if (copied)
        *copied = total;
    free(buf);
    return rc;
}

/* --- file descriptors --- */

struct fd_stream {
    union {
        struct sb_ostream o;
        struct sb_istream i;
    } base;
    int fd;
    char name[256];
};

static int
fd_write(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    struct fd_stream *fs = (struct fd_stream *)s;
    const unsigned char *p = data;
    while (len > 0) {
        ssize_t n = write(fs->fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sb_error_set(err, errno == ENOSPC ? SB_E_IO : sb_error_from_errno(errno), errno,
                                "cannot write to '%s'", fs->name);
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
fd_oclose(struct sb_ostream *s, struct sb_error *err)
{
    (void)s;
    (void)err;
    return 0;
}

static void
fd_ofree(struct sb_ostream *s)
{
    free(s);
}

static const struct sb_ostream_ops fd_ostream_ops = {
    .write = fd_write, .close = fd_oclose, .free = fd_ofree};

static void
copy_name(char *dst, size_t cap, const char *name)
{
    snprintf(dst, cap, "%s", name ? name : "(stream)");
}

struct sb_ostream *
sb_fd_ostream_new(int fd, const char *name)
{
    struct fd_stream *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return NULL;
    fs->base.o.ops = &fd_ostream_ops;
    fs->fd = fd;
    copy_name(fs->name, sizeof(fs->name), name);
    return &fs->base.o;
}

static int
fd_read(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    struct fd_stream *fs = (struct fd_stream *)s;
    for (;;) {
        ssize_t n = read(fs->fd, buf, cap);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return sb_error_set(err, SB_E_IO, errno, "cannot read '%s'", fs->name);
        }
        *got = (size_t)n;
        return 0;
    }
}

static void
fd_ifree(struct sb_istream *s)
{
    free(s);
}

static const struct sb_istream_ops fd_istream_ops = {.read = fd_read, .free = fd_ifree};

struct sb_istream *
sb_fd_istream_new(int fd, const char *name)
{
    struct fd_stream *fs = calloc(1, sizeof(*fs));
    if (!fs)
        return NULL;
    fs->base.i.ops = &fd_istream_ops;
    fs->fd = fd;
    copy_name(fs->name, sizeof(fs->name), name);
    return &fs->base.i;
}

/* --- memory --- */

struct mem_ostream {
    struct sb_ostream base;
    unsigned char **out;
    size_t *out_len;
    size_t cap;
};

static int
mem_write(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    struct mem_ostream *ms = (struct mem_ostream *)s;
    if (*ms->out_len + len > ms->cap) {
        size_t cap = ms->cap ? ms->cap : 4096;
        while (cap < *ms->out_len + len)
            cap *= 2;
        unsigned char *p = realloc(*ms->out, cap);
        if (!p)
            return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot grow a memory buffer");
        *ms->out = p;
        ms->cap = cap;
    }
    memcpy(*ms->out + *ms->out_len, data, len);
    *ms->out_len += len;
    return 0;
}

static int
mem_close(struct sb_ostream *s, struct sb_error *err)
{
    (void)s;
    (void)err;
    return 0;
}

static void
mem_free(struct sb_ostream *s)
{
    free(s);
}

static const struct sb_ostream_ops mem_ostream_ops = {
    .write = mem_write, .close = mem_close, .free = mem_free};

struct sb_ostream *
sb_mem_ostream_new(unsigned char **out, size_t *out_len)
{
    struct mem_ostream *ms = calloc(1, sizeof(*ms));
    if (!ms)
        return NULL;
    ms->base.ops = &mem_ostream_ops;
    ms->out = out;
    ms->out_len = out_len;
    *out = NULL;
    *out_len = 0;
    return &ms->base;
}

struct mem_istream {
    struct sb_istream base;
    const unsigned char *data;
    size_t len, pos;
};

static int
mem_read(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    (void)err;
    struct mem_istream *ms = (struct mem_istream *)s;
    size_t n = ms->len - ms->pos;
    if (n > cap)
        n = cap;
    memcpy(buf, ms->data + ms->pos, n);
    ms->pos += n;
    *got = n;
    return 0;
}

static void
mem_ifree(struct sb_istream *s)
{
    free(s);
}

static const struct sb_istream_ops mem_istream_ops = {.read = mem_read, .free = mem_ifree};

struct sb_istream *
sb_mem_istream_new(const void *data, size_t len)
{
    struct mem_istream *ms = calloc(1, sizeof(*ms));
    if (!ms)
        return NULL;
    ms->base.ops = &mem_istream_ops;
    ms->data = data;
    ms->len = len;
    return &ms->base;
}

/* --- counter --- */

struct count_ostream {
    struct sb_ostream base;
    struct sb_ostream *down;
    uint64_t n;
    uint64_t *result;
};

static int
count_write(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    struct count_ostream *cs = (struct count_ostream *)s;
    cs->n += len;
    return sb_ostream_write(cs->down, data, len, err);
}

static int
count_close(struct sb_ostream *s, struct sb_error *err)
{
    struct count_ostream *cs = (struct count_ostream *)s;
    if (sb_ostream_close(cs->down, err) < 0)
        return -1;
    if (cs->result)
        *cs->result = cs->n;
    return 0;
}

static void
count_free(struct sb_ostream *s)
{
    struct count_ostream *cs = (struct count_ostream *)s;
    sb_ostream_free(cs->down);
    free(cs);
}

static const struct sb_ostream_ops count_ostream_ops = {
    .write = count_write, .close = count_close, .free = count_free};

struct sb_ostream *
sb_count_ostream_new(struct sb_ostream *down, uint64_t *count)
{
    struct count_ostream *cs = calloc(1, sizeof(*cs));
    if (!cs) {
        sb_ostream_free(down);
        return NULL;
    }
    cs->base.ops = &count_ostream_ops;
    cs->down = down;
    cs->result = count;
    return &cs->base;
}
