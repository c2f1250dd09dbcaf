/* zstd stages: streaming compression (multithreaded with ZSTD_c_nbWorkers) and
 * decompression. Buffers are zstd's recommended stream sizes, so memory does not depend on the
 * size of the data; the job size is bounded to keep multithreaded compression under budget. */
#include "snapback/pipeline.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <zstd.h>

/* Job size: 4 MiB with up to 2 workers, 2 MiB with more. With 2 workers a /usr/share snapshot
 * took 3.13 s (median of 8) against 3.27 s with 2 MiB jobs (each job first loads an overlap of
 * the window, a larger share of a small job), at 50-52 MiB peak RSS against 36; each worker
 * holds about one job's input and output, so 4 workers with 4 MiB jobs peaked at 70 MiB and
 * with 2 MiB jobs at 45 MiB (8 workers: 57 MiB). zstd's default for level 3 (8 MiB) peaks at
 * 77-85 MiB with 2 workers, over the 64 MiB budget (docs/PERFORMANCE.md). */
#define ZSTD_JOB_SIZE_FEW (4u << 20)
#define ZSTD_JOB_SIZE_MANY (2u << 20)
#define ZSTD_AUTO_WORKERS_MAX 8 /* compression.threads 0: one worker per core, at most this */
#define ZSTD_WINDOW_LOG_MAX 27

struct zstd_ostream {
    struct sb_ostream base;
    struct sb_ostream *down;
    ZSTD_CCtx *cctx;
    unsigned char *out;
    size_t out_cap;
};

/* Compressed bytes go straight into the buffer of the stage below when it lends one (a thread
 * queue), else through our own output buffer. */
static int
zstd_pump(struct zstd_ostream *zs, ZSTD_inBuffer *in, ZSTD_EndDirective mode, struct sb_error *err)
{
    for (;;) {
        unsigned char *dst = NULL;
        size_t cap = 0;
        int lent = sb_ostream_reserve(zs->down, 1, &dst, &cap, err);
        if (lent < 0)
            return -1;
        ZSTD_outBuffer out = {lent ? dst : zs->out, lent ? cap : zs->out_cap, 0};
        size_t left = ZSTD_compressStream2(zs->cctx, &out, in, mode);
        if (ZSTD_isError(left)) {
            if (lent)
                (void)sb_ostream_commit(zs->down, 0, err);
            return sb_error_set(err, SB_E_INTERNAL, 0, "zstd compression failed: %s",
                                ZSTD_getErrorName(left));
        }
        if (lent) {
            if (sb_ostream_commit(zs->down, out.pos, err) < 0)
                return -1;
        } else if (out.pos && sb_ostream_write(zs->down, zs->out, out.pos, err) < 0) {
            return -1;
        }
        if (mode == ZSTD_e_continue) {
            if (in->pos == in->size)
                return 0;
        } else if (left == 0) {
            return 0;
        }
    }
}

static int
zstd_owrite(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    struct zstd_ostream *zs = (struct zstd_ostream *)s;
    ZSTD_inBuffer in = {data, len, 0};
    return zstd_pump(zs, &in, ZSTD_e_continue, err);
}

static int
zstd_oclose(struct sb_ostream *s, struct sb_error *err)
{
    struct zstd_ostream *zs = (struct zstd_ostream *)s;
    ZSTD_inBuffer in = {NULL, 0, 0};
    if (zstd_pump(zs, &in, ZSTD_e_end, err) < 0)
        return -1;
    return sb_ostream_close(zs->down, err);
}

static void
zstd_ofree(struct sb_ostream *s)
{
    struct zstd_ostream *zs = (struct zstd_ostream *)s;
    sb_ostream_free(zs->down);
    ZSTD_freeCCtx(zs->cctx);
    free(zs->out);
    free(zs);
}

static const struct sb_ostream_ops zstd_ostream_ops = {
    .write = zstd_owrite, .close = zstd_oclose, .free = zstd_ofree};

/* "0 = all cores" (DESIGN §3), at most ZSTD_AUTO_WORKERS_MAX: every worker holds a job's
 * input and output and its own match tables, so memory grows with the workers (peak RSS of a
 * 1 GiB snapshot: 52 MiB with 2, 56 MiB with 8, 70 MiB with 16, 107 MiB with 32), while
 * beyond 8 the one walking thread cannot feed them anyway. An explicit compression.threads
 * is taken as given. */
int
sb_zstd_workers(int threads, long cores)
{
    if (threads > 0)
        return threads;
    if (cores <= 0)
        return 1;
    return cores > ZSTD_AUTO_WORKERS_MAX ? ZSTD_AUTO_WORKERS_MAX : (int)cores;
}

struct sb_ostream *
sb_zstd_ostream_new(struct sb_ostream *down, int level, int threads, struct sb_error *err)
{
    struct zstd_ostream *zs = calloc(1, sizeof(*zs));
    if (!zs) {
        sb_ostream_free(down);
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        return NULL;
    }
    zs->base.ops = &zstd_ostream_ops;
    zs->down = down;
    zs->out_cap = ZSTD_CStreamOutSize();
    zs->out = malloc(zs->out_cap);
    zs->cctx = ZSTD_createCCtx();
    if (!zs->out || !zs->cctx) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate a zstd context");
        goto fail;
    }
    threads = sb_zstd_workers(threads, sysconf(_SC_NPROCESSORS_ONLN));
    if (ZSTD_isError(ZSTD_CCtx_setParameter(zs->cctx, ZSTD_c_compressionLevel, level))) {
        sb_error_set(err, SB_E_CONFIG, 0, "zstd refuses compression level %d", level);
        goto fail;
    }
    ZSTD_CCtx_setParameter(zs->cctx, ZSTD_c_checksumFlag, 0);
    /* One worker gives the same ratio in another thread; fall back silently when zstd was
     * built without multithreading (the parameter is then refused). */
    if (threads > 1 && !ZSTD_isError(ZSTD_CCtx_setParameter(zs->cctx, ZSTD_c_nbWorkers, threads)))
        ZSTD_CCtx_setParameter(zs->cctx, ZSTD_c_jobSize,
                               threads <= 2 ? ZSTD_JOB_SIZE_FEW : ZSTD_JOB_SIZE_MANY);
    return &zs->base;
fail:
    zstd_ofree(&zs->base);
    return NULL;
}

struct zstd_istream {
    struct sb_istream base;
    struct sb_istream *up;
    ZSTD_DCtx *dctx;
    unsigned char *in;
    size_t in_cap;
    ZSTD_inBuffer inbuf;
    size_t last_ret; /* 0 when the last frame is complete */
    bool up_eof;
};

static int
zstd_iread(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    struct zstd_istream *zs = (struct zstd_istream *)s;
    ZSTD_outBuffer out = {buf, cap, 0};
    while (out.pos == 0) {
        if (zs->inbuf.pos == zs->inbuf.size) {
            if (zs->up_eof) {
                if (zs->last_ret != 0)
                    return sb_error_set(err, SB_E_CORRUPT, 0,
                                        "the compressed stream ends in the middle of a frame");
                break;
            }
            /* A thread stage above lends its block (no copy); it stays lent until this
             * stream asks for more, when zstd has taken all of it. */
            const void *data = NULL;
            size_t n = 0;
            if (sb_istream_borrow(zs->up, zs->in, zs->in_cap, &data, &n, err) < 0)
                return -1;
            if (n == 0) {
                zs->up_eof = true;
                continue;
            }
            zs->inbuf.src = data;
            zs->inbuf.size = n;
            zs->inbuf.pos = 0;
        }
        size_t ret = ZSTD_decompressStream(zs->dctx, &out, &zs->inbuf);
        if (ZSTD_isError(ret))
            return sb_error_set(err, SB_E_CORRUPT, 0, "zstd decompression failed: %s",
                                ZSTD_getErrorName(ret));
        zs->last_ret = ret;
    }
    *got = out.pos;
    return 0;
}

static void
zstd_ifree(struct sb_istream *s)
{
    struct zstd_istream *zs = (struct zstd_istream *)s;
    sb_istream_free(zs->up);
    ZSTD_freeDCtx(zs->dctx);
    free(zs->in);
    free(zs);
}

static const struct sb_istream_ops zstd_istream_ops = {.read = zstd_iread, .free = zstd_ifree};

struct sb_istream *
sb_zstd_istream_new(struct sb_istream *up, struct sb_error *err)
{
    struct zstd_istream *zs = calloc(1, sizeof(*zs));
    if (!zs) {
        sb_istream_free(up);
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        return NULL;
    }
    zs->base.ops = &zstd_istream_ops;
    zs->up = up;
    zs->in_cap = ZSTD_DStreamInSize();
    zs->in = malloc(zs->in_cap);
    zs->dctx = ZSTD_createDCtx();
    if (!zs->in || !zs->dctx) {
        zstd_ifree(&zs->base);
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate a zstd context");
        return NULL;
    }
    /* Refuse frames that would need more than 128 MiB of window: memory stays bounded even
     * for hostile input. */
    ZSTD_DCtx_setParameter(zs->dctx, ZSTD_d_windowLogMax, ZSTD_WINDOW_LOG_MAX);
    zs->inbuf.src = zs->in;
    zs->last_ret = 1; /* an empty stream is not a valid zstd stream */
    return &zs->base;
}
