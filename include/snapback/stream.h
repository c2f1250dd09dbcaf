/* Streams: the one interface every stage of the pipeline speaks.
 *
 * An output stream (sb_ostream) is pushed bytes: a filter transforms them and pushes the result
 * into the stream it owns downstream, a sink stores them. close() flushes the whole chain and
 * commits it (for an atomic sink: fsync + rename); free() without a successful close() aborts
 * it (an atomic sink removes its temp file). An input stream (sb_istream) is pulled: a filter
 * reads from the stream it owns upstream. Filters own the stream they wrap: freeing the outer
 * one frees the chain. Results (hashes, sizes) are written into caller-owned structs at close
 * (ostream) or at end of stream (istream), so they outlive the chain. */
#ifndef SNAPBACK_STREAM_H
#define SNAPBACK_STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "snapback/error.h"

struct sb_ostream;
struct sb_istream;

struct sb_ostream_ops {
    int (*write)(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err);
    int (*close)(struct sb_ostream *s, struct sb_error *err);
    void (*free)(struct sb_ostream *s);
    /* Optional (NULL: not offered), so that bulk data is not copied between stages:
     * write_more: a write after which more data follows before close (a stage that must treat
     *   the last bytes of the stream specially, like the final chunk of the encryption, can
     *   then process whole blocks in place instead of keeping a copy);
     * reserve/commit: the stream lends the writer at least `min` bytes of its own buffer at
     *   *buf (*cap bytes in all) to produce into, and commit(len) then takes the first len of
     *   them as written. Nothing else may be called on the stream between the two. */
    int (*write_more)(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err);
    int (*reserve)(struct sb_ostream *s, size_t min, unsigned char **buf, size_t *cap,
                   struct sb_error *err);
    int (*commit)(struct sb_ostream *s, size_t len, struct sb_error *err);
};

struct sb_ostream {
    const struct sb_ostream_ops *ops;
};

struct sb_istream_ops {
    /* Reads up to cap bytes; *got == 0 means end of stream (all integrity checks passed). */
    int (*read)(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err);
    void (*free)(struct sb_istream *s);
    /* Optional (NULL: not offered): the next bytes of the stream in the stream's own buffer,
     * *data valid until the next call on the stream; *len == 0 at its end. */
    int (*borrow)(struct sb_istream *s, const void **data, size_t *len, struct sb_error *err);
};

struct sb_istream {
    const struct sb_istream_ops *ops;
};

int sb_ostream_write(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err);
int sb_ostream_close(struct sb_ostream *s, struct sb_error *err);
/* A write after which more data follows before close (see write_more above); a plain write
 * for streams that do not care. */
int sb_ostream_write_more(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err);
/* Borrows at least min bytes of the stream's buffer: 1 when lent (then sb_ostream_commit must
 * follow), 0 when the stream does not lend buffers or not that many bytes (use write), -1 on
 * error. */
int sb_ostream_reserve(struct sb_ostream *s, size_t min, unsigned char **buf, size_t *cap,
                       struct sb_error *err);
int sb_ostream_commit(struct sb_ostream *s, size_t len, struct sb_error *err);
void sb_ostream_free(struct sb_ostream *s);
int sb_istream_read(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err);
/* The next bytes of the stream without a copy where the stream lends its buffer, else read
 * into buf (cap bytes): *data is valid until the next call on the stream; *len == 0 at the
 * end of the stream. */
int sb_istream_borrow(struct sb_istream *s, void *buf, size_t cap, const void **data, size_t *len,
                      struct sb_error *err);
/* Reads exactly cap bytes unless the stream ends first; *got tells how many were read. */
int sb_istream_read_full(struct sb_istream *s, void *buf, size_t cap, size_t *got,
                         struct sb_error *err);
/* Reads and discards everything up to the end of the stream (which runs every check). */
int sb_istream_drain(struct sb_istream *s, struct sb_error *err);
void sb_istream_free(struct sb_istream *s);
/* Copies an input stream to an output stream in 1 MiB steps (does not close either). */
int sb_stream_copy(struct sb_istream *in, struct sb_ostream *out, uint64_t *copied,
                   struct sb_error *err);

/* --- basic streams --- */

/* An ostream over a file descriptor (not owned; never closed by the stream). */
struct sb_ostream *sb_fd_ostream_new(int fd, const char *name);
/* An istream over a file descriptor (not owned). */
struct sb_istream *sb_fd_istream_new(int fd, const char *name);
/* An ostream appending into caller memory (tests, manifests): *out grows with realloc. */
struct sb_ostream *sb_mem_ostream_new(unsigned char **out, size_t *out_len);
/* An istream over borrowed memory. */
struct sb_istream *sb_mem_istream_new(const void *data, size_t len);

/* Filters take ownership of `down` even when they fail to allocate (then they free it).
 * Counting: passes bytes through and stores the count in *count at close / end of stream. */
struct sb_ostream *sb_count_ostream_new(struct sb_ostream *down, uint64_t *count);

#endif
