/* Encryption stages and keys (DESIGN §5, docs/FORMAT.md). Every object gets a random file
 * key, wrapped with crypto_secretbox under a key derived from the repository key (key mode 1)
 * or sealed with crypto_box_seal to a recipient's X25519 public key (key mode 2), and its
 * content is a crypto_secretstream_xchacha20poly1305 stream of fixed-size chunks whose first
 * message authenticates the header bytes as additional data. The final chunk carries
 * TAG_FINAL, so a cut anywhere, even on a chunk boundary, is detected. Keys live only in
 * sodium_malloc memory and are wiped when freed; libsodium types stay in this file. */
#include "snapback/pipeline.h"
#include "snapback/core.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#define MAGIC "SNAPBK\0\1"
#define MAGIC_LEN 8
#define FORMAT_VERSION 1
#define COMPRESSION_ZSTD 1
#define KEY_MODE_SYMMETRIC 1
#define KEY_MODE_SEALED 2
#define WRAPPED_KEY_LEN (crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + SB_KEY_BYTES)
#define SEALED_KEY_LEN (crypto_box_SEALBYTES + SB_KEY_BYTES)
#define SS_HEADER_LEN crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define FIXED_LEN (MAGIC_LEN + 3 + 4)
#define HEADER_LEN (FIXED_LEN + WRAPPED_KEY_LEN + SS_HEADER_LEN)       /* 111, key mode 1 */
#define SEALED_HEADER_LEN (FIXED_LEN + SEALED_KEY_LEN + SS_HEADER_LEN) /* 119, key mode 2 */
#define HEADER_MAX SEALED_HEADER_LEN
#define RECIPIENT_ID_PREFIX "snapback-recipient"
#define ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
_Static_assert(ABYTES == SB_CHUNK_OVERHEAD, "SB_CHUNK_OVERHEAD is the secretstream overhead");

#define KDF_CONTEXT "snapback"
#define KDF_ID_WRAP 1
#define KDF_ID_KEYID 2

int
sb_crypto_init(struct sb_error *err)
{
    if (sodium_init() < 0)
        return sb_error_set(err, SB_E_INTERNAL, 0, "cannot initialise libsodium");
    return 0;
}

static struct sb_key *
key_alloc(enum sb_key_mode mode, struct sb_error *err)
{
    struct sb_key *key = calloc(1, sizeof(*key));
    if (!key) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        return NULL;
    }
    key->mode = mode;
    key->bytes = sodium_malloc(SB_KEY_BYTES);
    if (!key->bytes) {
        free(key);
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate protected memory for a key");
        return NULL;
    }
    return key;
}

int
sb_key_new_random(struct sb_key **out, struct sb_error *err)
{
    if (sb_crypto_init(err) < 0)
        return -1;
    struct sb_key *key = key_alloc(SB_KEY_SYMMETRIC, err);
    if (!key)
        return -1;
    randombytes_buf(key->bytes, SB_KEY_BYTES);
    *out = key;
    return 0;
}

int
sb_key_new_from_bytes(const unsigned char *bytes, struct sb_key **out, struct sb_error *err)
{
    if (sb_crypto_init(err) < 0)
        return -1;
    struct sb_key *key = key_alloc(SB_KEY_SYMMETRIC, err);
    if (!key)
        return -1;
    memcpy(key->bytes, bytes, SB_KEY_BYTES);
    *out = key;
    return 0;
}

int
sb_key_new_sealed_pair(struct sb_key **out, struct sb_error *err)
{
    if (sb_crypto_init(err) < 0)
        return -1;
    struct sb_key *key = key_alloc(SB_KEY_SEALED, err);
    if (!key)
        return -1;
    crypto_box_keypair(key->pub, key->bytes);
    *out = key;
    return 0;
}

int
sb_key_new_sealed_secret(const unsigned char *secret, struct sb_key **out, struct sb_error *err)
{
    if (sb_crypto_init(err) < 0)
        return -1;
    struct sb_key *key = key_alloc(SB_KEY_SEALED, err);
    if (!key)
        return -1;
    memcpy(key->bytes, secret, SB_KEY_BYTES);
    crypto_scalarmult_base(key->pub, key->bytes);
    *out = key;
    return 0;
}

int
sb_key_new_sealed_public(const unsigned char *pub, struct sb_key **out, struct sb_error *err)
{
    if (sb_crypto_init(err) < 0)
        return -1;
    struct sb_key *key = calloc(1, sizeof(*key));
    if (!key)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    key->mode = SB_KEY_SEALED;
    memcpy(key->pub, pub, SB_KEY_BYTES);
    *out = key;
    return 0;
}

bool
sb_key_can_read(const struct sb_key *key)
{
    return key->bytes != NULL;
}

void
sb_key_free(struct sb_key *key)
{
    while (key) {
        struct sb_key *next = key->next;
        if (key->bytes)
            sodium_free(key->bytes); /* wipes before freeing */
        free(key);
        key = next;
    }
}

void
sb_key_id(const struct sb_key *key, char out[33])
{
    unsigned char id[16];
    if (key->mode == SB_KEY_SEALED) {
        crypto_generichash_state st;
        crypto_generichash_init(&st, NULL, 0, sizeof(id));
        crypto_generichash_update(&st, (const unsigned char *)RECIPIENT_ID_PREFIX,
                                  strlen(RECIPIENT_ID_PREFIX));
        crypto_generichash_update(&st, key->pub, SB_KEY_BYTES);
        crypto_generichash_final(&st, id, sizeof(id));
    } else {
        crypto_kdf_derive_from_key(id, sizeof(id), KDF_ID_KEYID, KDF_CONTEXT, key->bytes);
    }
    sb_hex_encode(id, sizeof(id), out);
}

/* --- encryption --- */

struct encrypt_ostream {
    struct sb_ostream base;
    struct sb_ostream *down;
    crypto_secretstream_xchacha20poly1305_state *state; /* sodium_malloc'd */
    unsigned char header[HEADER_MAX];
    size_t header_len;
    bool first;
    uint32_t chunk_size;
    unsigned char *plain; /* chunk_size bytes */
    size_t plain_len;
    unsigned char *cipher; /* chunk_size + ABYTES bytes */
};

/* Encrypts one chunk from `plain` and hands it on: straight into the buffer of the stage below
 * when it lends one (a thread queue), else through our cipher buffer. */
static int
encrypt_chunk(struct encrypt_ostream *es, const unsigned char *plain, size_t len, unsigned char tag,
              struct sb_error *err)
{
    unsigned long long clen = 0;
    const unsigned char *ad = es->first ? es->header : NULL;
    size_t adlen = es->first ? es->header_len : 0;
    unsigned char *dst = NULL;
    size_t cap = 0;
    int lent = sb_ostream_reserve(es->down, len + ABYTES, &dst, &cap, err);
    if (lent < 0)
        return -1;
    crypto_secretstream_xchacha20poly1305_push(es->state, lent ? dst : es->cipher, &clen, plain,
                                               len, ad, adlen, tag);
    es->first = false;
    if (lent)
        return sb_ostream_commit(es->down, (size_t)clen, err);
    return sb_ostream_write(es->down, es->cipher, (size_t)clen, err);
}

static int
encrypt_flush(struct encrypt_ostream *es, unsigned char tag, struct sb_error *err)
{
    size_t len = es->plain_len;
    es->plain_len = 0;
    return encrypt_chunk(es, es->plain, len, tag, err);
}

/* more: the caller promises more data after this (sb_ostream_write_more). */
static int
encrypt_input(struct sb_ostream *s, const void *data, size_t len, bool more, struct sb_error *err)
{
    struct encrypt_ostream *es = (struct encrypt_ostream *)s;
    const unsigned char *p = data;
    while (len > 0) {
        /* A full chunk is only sent once more data is known to follow, so the final chunk
         * (which may be full) is always the one sent by close. */
        if (es->plain_len == es->chunk_size &&
            encrypt_flush(es, crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, err) < 0)
            return -1;
        /* Whole chunks that are known not to be the last are encrypted in place. */
        while (es->plain_len == 0 && len >= es->chunk_size && (len > es->chunk_size || more)) {
            if (encrypt_chunk(es, p, es->chunk_size,
                              crypto_secretstream_xchacha20poly1305_TAG_MESSAGE, err) < 0)
                return -1;
            p += es->chunk_size;
            len -= es->chunk_size;
        }
        if (len == 0)
            break;
        size_t n = es->chunk_size - es->plain_len;
        if (n > len)
            n = len;
        memcpy(es->plain + es->plain_len, p, n);
        es->plain_len += n;
        p += n;
        len -= n;
    }
    return 0;
}

static int
encrypt_write(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    return encrypt_input(s, data, len, false, err);
}

static int
encrypt_write_more(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    return encrypt_input(s, data, len, true, err);
}

static int
encrypt_close(struct sb_ostream *s, struct sb_error *err)
{
    struct encrypt_ostream *es = (struct encrypt_ostream *)s;
    if (encrypt_flush(es, crypto_secretstream_xchacha20poly1305_TAG_FINAL, err) < 0)
        return -1;
    return sb_ostream_close(es->down, err);
}

static void
encrypt_free(struct sb_ostream *s)
{
    struct encrypt_ostream *es = (struct encrypt_ostream *)s;
    sb_ostream_free(es->down);
    sodium_free(es->state);
    if (es->plain)
        sodium_free(es->plain);
    free(es->cipher);
    free(es);
}

static const struct sb_ostream_ops encrypt_ops = {.write = encrypt_write,
                                                  .close = encrypt_close,
                                                  .free = encrypt_free,
                                                  .write_more = encrypt_write_more};

static void
put_u32le(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static uint32_t
get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool
chunk_size_valid(uint32_t size)
{
    return size >= SB_CHUNK_SIZE_MIN && size <= SB_CHUNK_SIZE_MAX && (size & (size - 1)) == 0;
}

struct sb_ostream *
sb_encrypt_ostream_new(struct sb_ostream *down, const struct sb_key *key, uint32_t chunk_size,
                       struct sb_error *err)
{
    unsigned char *file_key = NULL, *wrap_key = NULL;
    struct encrypt_ostream *es = calloc(1, sizeof(*es));
    if (!es) {
        sb_ostream_free(down);
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        return NULL;
    }
    es->base.ops = &encrypt_ops;
    es->down = down;
    es->first = true;
    if (!chunk_size_valid(chunk_size)) {
        sb_error_set(err, SB_E_INTERNAL, 0, "invalid chunk size %u", chunk_size);
        goto fail;
    }
    es->chunk_size = chunk_size;
    es->state = sodium_malloc(sizeof(*es->state));
    es->plain = sodium_malloc(chunk_size);
    es->cipher = malloc(chunk_size + ABYTES);
    file_key = sodium_malloc(SB_KEY_BYTES);
    wrap_key = sodium_malloc(SB_KEY_BYTES);
    if (!es->state || !es->plain || !es->cipher || !file_key || !wrap_key) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate encryption buffers");
        goto fail;
    }

    unsigned char *h = es->header;
    memcpy(h, MAGIC, MAGIC_LEN);
    h[8] = FORMAT_VERSION;
    h[9] = COMPRESSION_ZSTD;
    h[10] = key->mode == SB_KEY_SEALED ? KEY_MODE_SEALED : KEY_MODE_SYMMETRIC;
    put_u32le(h + 11, chunk_size);
    unsigned char *ss_header;
    crypto_secretstream_xchacha20poly1305_keygen(file_key);
    if (key->mode == SB_KEY_SEALED) {
        /* the file key sealed to the recipient: an ephemeral key pair, so the writer
         * cannot open it again */
        es->header_len = SEALED_HEADER_LEN;
        if (crypto_box_seal(h + FIXED_LEN, file_key, SB_KEY_BYTES, key->pub) != 0) {
            sb_error_set(err, SB_E_INTERNAL, 0, "cannot seal the file key to the recipient");
            goto fail;
        }
        ss_header = h + FIXED_LEN + SEALED_KEY_LEN;
    } else {
        es->header_len = HEADER_LEN;
        unsigned char *nonce = h + FIXED_LEN;
        unsigned char *boxed = nonce + crypto_secretbox_NONCEBYTES;
        randombytes_buf(nonce, crypto_secretbox_NONCEBYTES);
        crypto_kdf_derive_from_key(wrap_key, SB_KEY_BYTES, KDF_ID_WRAP, KDF_CONTEXT, key->bytes);
        crypto_secretbox_easy(boxed, file_key, SB_KEY_BYTES, nonce, wrap_key);
        ss_header = h + FIXED_LEN + WRAPPED_KEY_LEN;
    }
    crypto_secretstream_xchacha20poly1305_init_push(es->state, ss_header, file_key);
    sodium_free(file_key);
    sodium_free(wrap_key);
    file_key = wrap_key = NULL;

    if (sb_ostream_write(down, es->header, es->header_len, err) < 0)
        goto fail;
    return &es->base;
fail:
    if (file_key)
        sodium_free(file_key);
    if (wrap_key)
        sodium_free(wrap_key);
    encrypt_free(&es->base);
    return NULL;
}

/* --- decryption --- */

#define DECRYPT_FIRST_CAP (32u << 10)

/* The secretstream state and the keys needed only to open the header, in one guarded
 * allocation (sodium_malloc maps, locks and guards each one: a 'list' reads one object per
 * snapshot). */
struct decrypt_secrets {
    crypto_secretstream_xchacha20poly1305_state state;
    unsigned char file_key[SB_KEY_BYTES];
    unsigned char wrap_key[SB_KEY_BYTES];
};

struct decrypt_istream {
    struct sb_istream base;
    struct sb_istream *up;
    struct decrypt_secrets *secrets;                    /* sodium_malloc'd */
    crypto_secretstream_xchacha20poly1305_state *state; /* in secrets */
    unsigned char header[HEADER_MAX];
    size_t header_len;
    uint32_t chunk_size;
    /* Sized for a small object first (cap: the plaintext bytes they hold): most objects read
     * are manifests of a few KiB, and a chunk_size of sodium_malloc'd (mlocked) plaintext
     * buffer per object cost more than the rest of a 'list' together. Both grow to the full
     * chunk the first time a chunk fills the small ones. */
    size_t cap;
    unsigned char *cipher; /* cap + ABYTES bytes */
    unsigned char *plain;  /* cap bytes */
    size_t plain_len, plain_pos;
    uint64_t stored_offset; /* offset of the next message in the stored object */
    uint64_t chunk_idx;
    bool final_seen, done;
};

/* Replaces the small buffers with ones for a whole chunk, keeping the n cipher bytes read. */
static int
decrypt_grow(struct decrypt_istream *ds, size_t n, struct sb_error *err)
{
    unsigned char *cipher = malloc((size_t)ds->chunk_size + ABYTES);
    unsigned char *plain = sodium_malloc(ds->chunk_size);
    if (!cipher || !plain) {
        free(cipher);
        if (plain)
            sodium_free(plain);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate decryption buffers");
    }
    memcpy(cipher, ds->cipher, n);
    free(ds->cipher);
    sodium_free(ds->plain); /* holds nothing: every byte of it was read */
    ds->cipher = cipher;
    ds->plain = plain;
    ds->cap = ds->chunk_size;
    return 0;
}

static int
decrypt_next_chunk(struct decrypt_istream *ds, struct sb_error *err)
{
    size_t want = ds->chunk_size + ABYTES;
    size_t n = 0;
    if (sb_istream_read_full(ds->up, ds->cipher, ds->cap + ABYTES, &n, err) < 0)
        return -1;
    if (n == ds->cap + ABYTES && n < want) {
        size_t more = 0;
        if (decrypt_grow(ds, n, err) < 0 ||
            sb_istream_read_full(ds->up, ds->cipher + n, want - n, &more, err) < 0)
            return -1;
        n += more;
    }
    if (n == 0)
        return sb_error_set(err, SB_E_CORRUPT, 0,
                            "truncated: the object ends at byte %llu before its final chunk",
                            (unsigned long long)ds->stored_offset);
    if (n < ABYTES)
        return sb_error_set(
            err, SB_E_CORRUPT, 0, "truncated: chunk %llu at byte %llu is only %zu bytes long",
            (unsigned long long)ds->chunk_idx, (unsigned long long)ds->stored_offset, n);
    unsigned long long plen = 0;
    unsigned char tag = 0;
    const unsigned char *ad = ds->chunk_idx == 0 ? ds->header : NULL;
    size_t adlen = ds->chunk_idx == 0 ? ds->header_len : 0;
    if (crypto_secretstream_xchacha20poly1305_pull(ds->state, ds->plain, &plen, &tag, ds->cipher, n,
                                                   ad, adlen) != 0)
        return sb_error_set(err, SB_E_CORRUPT, 0,
                            "chunk %llu at byte %llu fails authentication: the data is corrupt "
                            "or was tampered with",
                            (unsigned long long)ds->chunk_idx,
                            (unsigned long long)ds->stored_offset);
    if (tag == crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
        ds->final_seen = true;
    } else if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE || n < want) {
        return sb_error_set(
            err, SB_E_CORRUPT, 0, "truncated: chunk %llu at byte %llu is short and not final",
            (unsigned long long)ds->chunk_idx, (unsigned long long)ds->stored_offset);
    }
    ds->stored_offset += n;
    ds->chunk_idx++;
    ds->plain_len = (size_t)plen;
    ds->plain_pos = 0;
    if (ds->final_seen) {
        /* Nothing may follow the final chunk; reading the end also runs the checks of the
         * stages before us (size and hash). */
        unsigned char extra;
        size_t got = 0;
        if (sb_istream_read(ds->up, &extra, 1, &got, err) < 0)
            return -1;
        if (got != 0)
            return sb_error_set(err, SB_E_CORRUPT, 0,
                                "unexpected data after the final chunk at byte %llu",
                                (unsigned long long)ds->stored_offset);
    }
    return 0;
}

static int
decrypt_read(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    struct decrypt_istream *ds = (struct decrypt_istream *)s;
    while (ds->plain_pos == ds->plain_len) {
        if (ds->final_seen) {
            *got = 0;
            return 0;
        }
        if (decrypt_next_chunk(ds, err) < 0)
            return -1;
    }
    size_t n = ds->plain_len - ds->plain_pos;
    if (n > cap)
        n = cap;
    memcpy(buf, ds->plain + ds->plain_pos, n);
    ds->plain_pos += n;
    *got = n;
    return 0;
}

static void
decrypt_free(struct sb_istream *s)
{
    struct decrypt_istream *ds = (struct decrypt_istream *)s;
    sb_istream_free(ds->up);
    if (ds->secrets)
        sodium_free(ds->secrets);
    if (ds->plain)
        sodium_free(ds->plain);
    free(ds->cipher);
    free(ds);
}

static const struct sb_istream_ops decrypt_ops = {.read = decrypt_read, .free = decrypt_free};

struct sb_istream *
sb_decrypt_istream_new(struct sb_istream *up, const struct sb_key *key, struct sb_error *err)
{
    struct decrypt_istream *ds = calloc(1, sizeof(*ds));
    if (!ds) {
        sb_istream_free(up);
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        return NULL;
    }
    ds->base.ops = &decrypt_ops;
    ds->up = up;
    size_t n = 0;
    if (sb_istream_read_full(up, ds->header, FIXED_LEN, &n, err) < 0)
        goto fail;
    unsigned char *h = ds->header;
    if (n < FIXED_LEN || memcmp(h, MAGIC, MAGIC_LEN) != 0) {
        sb_error_set(err, SB_E_CORRUPT, 0, "not a snapback object (bad magic at byte 0)");
        goto fail;
    }
    if (h[8] != FORMAT_VERSION) {
        sb_error_set(err, SB_E_CORRUPT, 0,
                     "unsupported object format version %u at byte 8 (this snapback reads "
                     "version %u)",
                     h[8], FORMAT_VERSION);
        goto fail;
    }
    if (h[9] != COMPRESSION_ZSTD) {
        sb_error_set(err, SB_E_CORRUPT, 0, "unknown compression %u at byte 9", h[9]);
        goto fail;
    }
    if (h[10] != KEY_MODE_SYMMETRIC && h[10] != KEY_MODE_SEALED) {
        sb_error_set(err, SB_E_CORRUPT, 0, "unknown key mode %u at byte 10", h[10]);
        goto fail;
    }
    bool sealed = h[10] == KEY_MODE_SEALED;
    enum sb_key_mode want = sealed ? SB_KEY_SEALED : SB_KEY_SYMMETRIC;
    /* The key ring (key, then the keys a rotation retired): the first of the object's mode
     * that opens the file key. */
    bool mode_found = false, readable_found = false;
    for (const struct sb_key *k = key; k; k = k->next) {
        mode_found |= k->mode == want;
        readable_found |= k->mode == want && sb_key_can_read(k);
    }
    if (!mode_found) {
        sb_error_set(err, SB_E_CORRUPT, 0,
                     sealed ? "the object is sealed to a recipient key (key mode 2, byte 10) but "
                              "the key given is a symmetric repository key; give the "
                              "recipient's secret key"
                            : "the object is encrypted with a symmetric repository key (key mode "
                              "1, byte 10) but the key given is a recipient key");
        goto fail;
    }
    if (!readable_found) {
        sb_error_set(err, SB_E_PERM, 0,
                     "the object is sealed to this host's public key, which can write "
                     "snapshots but never read them: reading needs the secret key (pass "
                     "--key FILE or set SNAPBACK_KEY_FILE, on a machine that holds it)");
        goto fail;
    }
    ds->header_len = sealed ? SEALED_HEADER_LEN : HEADER_LEN;
    uint32_t chunk_size = get_u32le(h + 11);
    if (!chunk_size_valid(chunk_size)) {
        sb_error_set(err, SB_E_CORRUPT, 0, "invalid chunk size %u at byte 11", chunk_size);
        goto fail;
    }
    ds->chunk_size = chunk_size;
    if (sb_istream_read_full(up, h + FIXED_LEN, ds->header_len - FIXED_LEN, &n, err) < 0)
        goto fail;
    if (n < ds->header_len - FIXED_LEN) {
        sb_error_set(err, SB_E_CORRUPT, 0, "truncated: the object ends inside its header");
        goto fail;
    }
    ds->stored_offset = ds->header_len;
    ds->secrets = sodium_malloc(sizeof(*ds->secrets));
    ds->cap = chunk_size < DECRYPT_FIRST_CAP ? chunk_size : DECRYPT_FIRST_CAP;
    ds->plain = sodium_malloc(ds->cap);
    ds->cipher = malloc(ds->cap + ABYTES);
    if (!ds->secrets || !ds->plain || !ds->cipher) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate decryption buffers");
        goto fail;
    }
    ds->state = &ds->secrets->state;
    unsigned char *file_key = ds->secrets->file_key, *wrap_key = ds->secrets->wrap_key;
    bool opened = false;
    for (const struct sb_key *k = key; k && !opened; k = k->next) {
        if (k->mode != want || !sb_key_can_read(k))
            continue;
        if (sealed) {
            opened = crypto_box_seal_open(file_key, h + FIXED_LEN, SEALED_KEY_LEN, k->pub,
                                          k->bytes) == 0;
        } else {
            const unsigned char *nonce = h + FIXED_LEN;
            const unsigned char *boxed = nonce + crypto_secretbox_NONCEBYTES;
            crypto_kdf_derive_from_key(wrap_key, SB_KEY_BYTES, KDF_ID_WRAP, KDF_CONTEXT, k->bytes);
            opened = crypto_secretbox_open_easy(file_key, boxed,
                                                crypto_secretbox_MACBYTES + SB_KEY_BYTES, nonce,
                                                wrap_key) == 0;
        }
    }
    if (!opened) {
        if (sealed)
            sb_error_set(err, SB_E_CORRUPT, 0,
                         "cannot open the sealed file key (bytes %d-%d): wrong secret key, or "
                         "the header is corrupt",
                         FIXED_LEN, FIXED_LEN + (int)SEALED_KEY_LEN - 1);
        else
            sb_error_set(err, SB_E_CORRUPT, 0,
                         "cannot unwrap the file key (bytes %d-%d): wrong key, or the header is "
                         "corrupt",
                         FIXED_LEN, FIXED_LEN + (int)WRAPPED_KEY_LEN - 1);
        goto fail;
    }
    if (crypto_secretstream_xchacha20poly1305_init_pull(
            ds->state, h + ds->header_len - SS_HEADER_LEN, file_key) != 0) {
        sb_error_set(err, SB_E_CORRUPT, 0, "invalid secretstream header");
        goto fail;
    }
    sodium_memzero(file_key, SB_KEY_BYTES);
    sodium_memzero(wrap_key, SB_KEY_BYTES);
    return &ds->base;
fail:
    decrypt_free(&ds->base); /* sodium_free wipes the keys */
    return NULL;
}
