/* Objects: the chain of DESIGN §4 assembled in one place.
 *   write: plaintext -> count -> zstd -> [thread] -> encrypt -> hash (stored bytes) -> sink
 *   read:  source -> hash check (size, BLAKE2b) -> decrypt (chunks, TAG_FINAL) -> [thread]
 *          -> zstd -> [thread] -> out
 * The thread stages let encryption, hashing and I/O run beside compression and the tar work
 * (small objects written with threads = 1, like manifests, skip it).
 * The hash check sits next to the source so a swapped or cut object is named as such, and
 * decryption authenticates every chunk before a byte of it is handed on. */
#include "snapback/format.h"

#include <errno.h>
#include <stdlib.h>

#include "snapback/core.h"

/* Blocks in flight per thread queue. Writing: chunk-sized blocks (1 MiB by default). Reading:
 * 256 KiB blocks, 32 of them per queue. A restore has two queues (decrypted -> zstd, tar ->
 * extraction), and on two cores its three threads stall each other unless each queue holds
 * enough to ride out the stretches where one stage is the slow one (many small files:
 * extraction; large files: decompression): a restore of /usr/share into tmpfs took 1.25-1.30 s
 * with 4 blocks per queue, 1.05-1.14 s with 32 (docs/PERFORMANCE.md), at 30 MiB peak RSS
 * instead of 15. */
#define WRITE_DEPTH 4
#define READ_DEPTH 32
#define READ_BLOCK (256u << 10)

struct plain_counter {
    struct sb_ostream base;
    struct sb_ostream *down;
    uint64_t n;
    struct sb_object_result *result;
    struct sb_digest stored;
    bool progress; /* an object of a store (sb_object_create): shown on the progress line */
};

static int
pc_write(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    struct plain_counter *pc = (struct plain_counter *)s;
    pc->n += len;
    if (pc->progress)
        sb_progress_add(len);
    return sb_ostream_write(pc->down, data, len, err);
}

static int
pc_close(struct sb_ostream *s, struct sb_error *err)
{
    struct plain_counter *pc = (struct plain_counter *)s;
    if (sb_ostream_close(pc->down, err) < 0)
        return -1;
    if (pc->result) {
        pc->result->plain_size = pc->n;
        pc->result->stored = pc->stored;
    }
    return 0;
}

static void
pc_free(struct sb_ostream *s)
{
    struct plain_counter *pc = (struct plain_counter *)s;
    sb_ostream_free(pc->down);
    if (pc->progress)
        sb_progress_end();
    free(pc);
}

static const struct sb_ostream_ops pc_ops = {.write = pc_write, .close = pc_close, .free = pc_free};

int
sb_object_writer_new(struct sb_ostream *sink, const struct sb_key *key,
                     const struct sb_object_params *params, struct sb_object_result *result,
                     struct sb_ostream **out, struct sb_error *err)
{
    struct plain_counter *pc = calloc(1, sizeof(*pc));
    if (!pc) {
        sb_ostream_free(sink);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    pc->base.ops = &pc_ops;
    pc->result = result;
    struct sb_ostream *s = sb_hash_ostream_new(sink, &pc->stored);
    if (!s) {
        free(pc);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    uint32_t chunk = params->chunk_size ? params->chunk_size : SB_CHUNK_SIZE_DEFAULT;
    /* With threads, encryption and hashing + storing each get a thread of their own (on two
     * cores BLAKE2b and XChaCha20-Poly1305 are each about as costly as zstd on data that does
     * not compress), and blocks are chunk-sized so that nothing is copied between stages:
     * zstd writes into the first queue, the encryption reads whole chunks from it in place
     * and writes into the second. */
    if (params->threads != 1 &&
        !(s = sb_thread_ostream_new(s, chunk + SB_CHUNK_OVERHEAD, WRITE_DEPTH, err))) {
        free(pc);
        return -1;
    }
    if (!(s = sb_encrypt_ostream_new(s, key, chunk, err))) {
        free(pc);
        return -1;
    }
    if (params->threads != 1 && !(s = sb_thread_ostream_new(s, chunk, WRITE_DEPTH, err))) {
        free(pc);
        return -1;
    }
    if (!(s = sb_zstd_ostream_new(s, params->level, params->threads, err))) {
        free(pc);
        return -1;
    }
    pc->down = s;
    *out = &pc->base;
    return 0;
}

int
sb_object_create(struct sb_store *st, const char *path, const struct sb_key *key,
                 const struct sb_object_params *params, struct sb_object_result *result,
                 struct sb_ostream **out, struct sb_error *err)
{
    struct sb_ostream *sink = NULL;
    if (sb_store_open_write(st, path, 0, &sink, err) < 0)
        return -1;
    if (sb_object_writer_new(sink, key, params, result, out, err) < 0)
        return -1;
    ((struct plain_counter *)*out)->progress = true;
    sb_progress_begin(path, 0); /* the total is what the caller announced (sb_progress_expect) */
    return 0;
}

/* Counts the stored bytes read, for the progress line (in the read-ahead thread). */
struct progress_istream {
    struct sb_istream base;
    struct sb_istream *up;
};

static int
progress_read(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    struct progress_istream *ps = (struct progress_istream *)s;
    int rc = sb_istream_read(ps->up, buf, cap, got, err);
    if (rc == 0)
        sb_progress_add(*got);
    return rc;
}

static void
progress_free(struct sb_istream *s)
{
    struct progress_istream *ps = (struct progress_istream *)s;
    sb_istream_free(ps->up);
    sb_progress_end();
    free(ps);
}

static const struct sb_istream_ops progress_istream_ops = {.read = progress_read,
                                                           .free = progress_free};

/* The read chain; read_ahead: with the thread stage (a small object read whole does without
 * it: one thread per manifest was most of what a 'list' of many snapshots cost). */
static int
object_reader(struct sb_istream *source, const struct sb_key *key, const struct sb_digest *expect,
              bool read_ahead, struct sb_istream **out, struct sb_error *err)
{
    struct sb_istream *s = sb_hash_istream_new(source, expect, NULL);
    if (!s)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    if (!(s = sb_decrypt_istream_new(s, key, err)))
        return -1;
    if (read_ahead && !(s = sb_thread_istream_new(s, READ_BLOCK, READ_DEPTH, err)))
        return -1;
    if (!(s = sb_zstd_istream_new(s, err)))
        return -1;
    if (read_ahead && !(s = sb_thread_istream_new(s, READ_BLOCK, READ_DEPTH, err)))
        return -1;
    *out = s;
    return 0;
}

int
sb_object_reader_new(struct sb_istream *source, const struct sb_key *key,
                     const struct sb_digest *expect, struct sb_istream **out, struct sb_error *err)
{
    return object_reader(source, key, expect, true, out, err);
}

static int
object_open(struct sb_store *st, const char *path, const struct sb_key *key,
            const struct sb_digest *expect, bool read_ahead, struct sb_istream **out,
            struct sb_error *err)
{
    struct sb_istream *source = NULL;
    if (sb_store_open_read(st, path, &source, err) < 0)
        return -1;
    if (sb_progress_enabled()) {
        struct progress_istream *ps = calloc(1, sizeof(*ps));
        if (!ps) {
            sb_istream_free(source);
            return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        }
        ps->base.ops = &progress_istream_ops;
        ps->up = source;
        source = &ps->base;
        sb_progress_begin(path, expect ? expect->size : 0);
    }
    return object_reader(source, key, expect, read_ahead, out, err);
}

int
sb_object_open(struct sb_store *st, const char *path, const struct sb_key *key,
               const struct sb_digest *expect, struct sb_istream **out, struct sb_error *err)
{
    return object_open(st, path, key, expect, true, out, err);
}

int
sb_object_open_small(struct sb_store *st, const char *path, const struct sb_key *key,
                     const struct sb_digest *expect, struct sb_istream **out, struct sb_error *err)
{
    return object_open(st, path, key, expect, false, out, err);
}
