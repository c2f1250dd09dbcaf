/* BLAKE2b-256 stages: the hash of the stored bytes of every object goes into the manifest, and
 * on the way back the same hash and the size are checked at the end of the stream, so an
 * object swapped, cut or altered is refused. */
#include "snapback/pipeline.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "snapback/core.h"

struct hash_ostream {
    struct sb_ostream base;
    struct sb_ostream *down;
    crypto_generichash_state state;
    uint64_t size;
    struct sb_digest *result;
};

static int
hash_write(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    struct hash_ostream *hs = (struct hash_ostream *)s;
    crypto_generichash_update(&hs->state, data, len);
    hs->size += len;
    return sb_ostream_write(hs->down, data, len, err);
}

static int
hash_close(struct sb_ostream *s, struct sb_error *err)
{
    struct hash_ostream *hs = (struct hash_ostream *)s;
    struct sb_digest d;
    crypto_generichash_final(&hs->state, d.hash, sizeof(d.hash));
    d.size = hs->size;
    if (sb_ostream_close(hs->down, err) < 0)
        return -1;
    if (hs->result)
        *hs->result = d;
    return 0;
}

static void
hash_free(struct sb_ostream *s)
{
    struct hash_ostream *hs = (struct hash_ostream *)s;
    sb_ostream_free(hs->down);
    free(hs);
}

static const struct sb_ostream_ops hash_ostream_ops = {
    .write = hash_write, .close = hash_close, .free = hash_free};

struct sb_ostream *
sb_hash_ostream_new(struct sb_ostream *down, struct sb_digest *result)
{
    struct hash_ostream *hs = calloc(1, sizeof(*hs));
    if (!hs) {
        sb_ostream_free(down);
        return NULL;
    }
    hs->base.ops = &hash_ostream_ops;
    hs->down = down;
    hs->result = result;
    crypto_generichash_init(&hs->state, NULL, 0, SB_HASH_BYTES);
    return &hs->base;
}

struct hash_istream {
    struct sb_istream base;
    struct sb_istream *up;
    crypto_generichash_state state;
    uint64_t size;
    bool has_expect, done;
    struct sb_digest expect;
    struct sb_digest *result;
};

static int
hash_read(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    struct hash_istream *hs = (struct hash_istream *)s;
    if (hs->done) {
        *got = 0;
        return 0;
    }
    size_t n = 0;
    if (sb_istream_read(hs->up, buf, cap, &n, err) < 0)
        return -1;
    if (n > 0) {
        hs->size += n;
        if (hs->has_expect && hs->size > hs->expect.size)
            return sb_error_set(err, SB_E_CORRUPT, 0,
                                "the object is longer than the %llu bytes the manifest records",
                                (unsigned long long)hs->expect.size);
        crypto_generichash_update(&hs->state, buf, n);
        *got = n;
        return 0;
    }
    struct sb_digest d;
    crypto_generichash_final(&hs->state, d.hash, sizeof(d.hash));
    d.size = hs->size;
    hs->done = true;
    if (hs->has_expect) {
        if (d.size != hs->expect.size)
            return sb_error_set(err, SB_E_CORRUPT, 0,
                                "the object is %llu bytes, the manifest records %llu: truncated "
                                "or replaced",
                                (unsigned long long)d.size, (unsigned long long)hs->expect.size);
        if (sodium_memcmp(d.hash, hs->expect.hash, SB_HASH_BYTES) != 0) {
            char got_hex[2 * SB_HASH_BYTES + 1], want_hex[2 * SB_HASH_BYTES + 1];
            sb_hex_encode(d.hash, SB_HASH_BYTES, got_hex);
            sb_hex_encode(hs->expect.hash, SB_HASH_BYTES, want_hex);
            return sb_error_set(err, SB_E_CORRUPT, 0,
                                "BLAKE2b of the stored bytes is %.16s..., the manifest records "
                                "%.16s...: the object was altered or swapped",
                                got_hex, want_hex);
        }
    }
    if (hs->result)
        *hs->result = d;
    *got = 0;
    return 0;
}

static void
hash_ifree(struct sb_istream *s)
{
    struct hash_istream *hs = (struct hash_istream *)s;
    sb_istream_free(hs->up);
    free(hs);
}

static const struct sb_istream_ops hash_istream_ops = {.read = hash_read, .free = hash_ifree};

struct sb_istream *
sb_hash_istream_new(struct sb_istream *up, const struct sb_digest *expect, struct sb_digest *result)
{
    struct hash_istream *hs = calloc(1, sizeof(*hs));
    if (!hs) {
        sb_istream_free(up);
        return NULL;
    }
    hs->base.ops = &hash_istream_ops;
    hs->up = up;
    hs->result = result;
    if (expect) {
        hs->has_expect = true;
        hs->expect = *expect;
    }
    crypto_generichash_init(&hs->state, NULL, 0, SB_HASH_BYTES);
    return &hs->base;
}
