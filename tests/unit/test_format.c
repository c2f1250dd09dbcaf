/* Object format tests: the test vectors of docs/FORMAT.md, and every way an object can be
 * damaged (each byte flipped, cut at every offset, chunks swapped, wrong key), each of which
 * must be refused with SB_E_CORRUPT before any plaintext is trusted. */
#include <errno.h>
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "snapback/core.h"
#include "snapback/format.h"
#include "snapback/pipeline.h"
#include "test.h"

/* A deterministic RNG for the vectors: bytes 0x00, 0x01, 0x02, ... continuing across calls,
 * restarted by rng_reset(). Installed before sodium_init, as libsodium requires. */
static uint8_t rng_next;

static void
rng_reset(void)
{
    rng_next = 0;
}

static void
rng_buf(void *const buf, const size_t size)
{
    for (size_t idx = 0; idx < size; idx++)
        ((uint8_t *)buf)[idx] = rng_next++;
}

static uint32_t
rng_random(void)
{
    uint32_t v;
    rng_buf(&v, sizeof(v));
    return v;
}

static const char *
rng_name(void)
{
    return "snapback-test-counter";
}

static struct randombytes_implementation counter_rng = {
    .implementation_name = rng_name,
    .random = rng_random,
    .stir = NULL,
    .uniform = NULL,
    .buf = rng_buf,
    .close = NULL,
};

/* The damage tests run once per key mode: 1 (symmetric) and 2 (sealed to a recipient). */
static int g_mode = 1;
#define HDR ((size_t)(g_mode == 2 ? 119 : 111))

/* The offsets the damage tests try, in both key modes: every offset of the header, of the
 * first message's start and of the 32 bytes on each side of a message boundary (the end of one
 * message's MAC and tag, the start of the next), and every 5th inside the messages, whose
 * bytes all go through the same authenticated decryption. Each decode starts the reading
 * threads of a restore, and on a VM with slow thread creation every offset of key mode 1 took
 * 66 s per test under TSan and as long under valgrind, most of the CI's time.
 * SNAPBACK_TEST_EXHAUSTIVE=1 (by hand) tries every offset; SNAPBACK_TEST_LIGHT=1
 * (contrib/test.sh's valgrind and TSan stages; the ASan stage runs the above) every 25th
 * inside the messages. */
#define TEST_CHUNK 4096u /* the plaintext chunk size of make_multichunk's object */
static size_t
next_offset(size_t off)
{
    static int exhaustive = -1;
    static size_t stride;
    if (exhaustive < 0) {
        exhaustive = test_env_on("SNAPBACK_TEST_EXHAUSTIVE");
        stride = test_env_on("SNAPBACK_TEST_LIGHT") ? 25 : 5;
    }
    if (exhaustive || off < HDR + 64)
        return off + 1;
    size_t message = TEST_CHUNK + crypto_secretstream_xchacha20poly1305_ABYTES;
    size_t in = (off - HDR) % message;
    return in < 32 || in >= message - 32 ? off + 1 : off + stride;
}

/* Mode 1: K = 00..1f. Mode 2: the recipient's secret key a0..bf. */
static struct sb_key *
test_key(void)
{
    unsigned char bytes[SB_KEY_BYTES];
    for (size_t idx = 0; idx < sizeof(bytes); idx++)
        bytes[idx] = (unsigned char)(g_mode == 2 ? 0xa0 + idx : idx);
    struct sb_key *key = NULL;
    struct sb_error err = SB_ERROR_INIT;
    if ((g_mode == 2 ? sb_key_new_sealed_secret(bytes, &key, &err)
                     : sb_key_new_from_bytes(bytes, &key, &err)) < 0)
        abort();
    return key;
}

/* Encrypts plain into a new buffer with the chain of a real object. */
static int
encode(const struct sb_key *key, uint32_t chunk, const void *plain, size_t len, unsigned char **out,
       size_t *out_len, struct sb_object_result *res, struct sb_error *err)
{
    struct sb_ostream *mem = sb_mem_ostream_new(out, out_len);
    struct sb_ostream *w = NULL;
    struct sb_object_params params = {3, 1, chunk};
    if (sb_object_writer_new(mem, key, &params, res, &w, err) < 0)
        return -1;
    int rc = sb_ostream_write(w, plain, len, err);
    if (rc == 0)
        rc = sb_ostream_close(w, err);
    sb_ostream_free(w);
    return rc;
}

/* Decrypts an object; returns 0 and the plaintext, or -1 with err. */
static int
decode(const struct sb_key *key, const unsigned char *obj, size_t len,
       const struct sb_digest *expect, unsigned char **plain, size_t *plain_len,
       struct sb_error *err)
{
    struct sb_istream *in = NULL;
    *plain = NULL;
    *plain_len = 0;
    if (sb_object_reader_new(sb_mem_istream_new(obj, len), key, expect, &in, err) < 0)
        return -1;
    struct sb_ostream *mem = sb_mem_ostream_new(plain, plain_len);
    int rc = sb_stream_copy(in, mem, NULL, err);
    sb_ostream_free(mem);
    sb_istream_free(in);
    if (rc < 0) {
        free(*plain);
        *plain = NULL;
    }
    return rc;
}

static char *
to_hex(const unsigned char *p, size_t len)
{
    char *s = malloc(2 * len + 1);
    sb_hex_encode(p, len, s);
    return s;
}

/* docs/FORMAT.md, vector 1: key 00..1f, RNG counter from 00, chunk size 4096. */
static const char vector1_plain[] = "hello, snapback\n";
static const char vector1_hex[] =
#include "vector1.inc"
    ;

static void
test_vector1_encode(void)
{
    struct sb_key *key = test_key();
    struct sb_error err = SB_ERROR_INIT;
    unsigned char *obj = NULL;
    size_t len = 0;
    struct sb_object_result res;
    rng_reset();
    EXPECT_OK(encode(key, 4096, vector1_plain, strlen(vector1_plain), &obj, &len, &res, &err),
              &err);
    char *hex = to_hex(obj, len);
    EXPECT_STR(hex, vector1_hex);
    EXPECT_INT(res.plain_size, strlen(vector1_plain));
    EXPECT_INT(res.stored.size, len);
    free(hex);
    free(obj);
    sb_key_free(key);
}

static void
test_vector1_decode(void)
{
    struct sb_key *key = test_key();
    struct sb_error err = SB_ERROR_INIT;
    size_t len = strlen(vector1_hex) / 2;
    unsigned char *obj = malloc(len);
    EXPECT_INT(sb_hex_decode(vector1_hex, obj, len), 0);
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    EXPECT_OK(decode(key, obj, len, NULL, &plain, &plain_len, &err), &err);
    EXPECT_INT(plain_len, strlen(vector1_plain));
    EXPECT(plain && memcmp(plain, vector1_plain, plain_len) == 0);
    free(plain);
    free(obj);
    sb_key_free(key);
}

static void
test_header_layout(void)
{
    struct sb_key *key = test_key();
    struct sb_error err = SB_ERROR_INIT;
    unsigned char *obj = NULL;
    size_t len = 0;
    struct sb_object_result res;
    EXPECT_OK(encode(key, 4096, "", 0, &obj, &len, &res, &err), &err);
    /* magic, version, compression, key mode, chunk size LE */
    EXPECT(memcmp(obj, "SNAPBK\0\1", 8) == 0);
    EXPECT_INT(obj[8], 1);
    EXPECT_INT(obj[9], 1);
    EXPECT_INT(obj[10], 1);
    EXPECT_INT(obj[11] | obj[12] << 8 | obj[13] << 16 | obj[14] << 24, 4096);
    /* header 111 bytes, then one final message: zstd frame of empty input + 17 */
    EXPECT(len > 111 + 17);
    free(obj);
    sb_key_free(key);
}

static unsigned char *
random_data(size_t len)
{
    unsigned char *p = malloc(len);
    randombytes_buf_deterministic(p, len,
                                  (const unsigned char *)"0123456789abcdef0123456789abcdef");
    return p;
}

static void
test_roundtrip_sizes(void)
{
    struct sb_key *key = test_key();
    static const size_t sizes[] = {0, 1, 4095, 4096, 4097, 8192, 100000, 3 << 20};
    for (size_t idx = 0; idx < sizeof(sizes) / sizeof(sizes[0]); idx++) {
        struct sb_error err = SB_ERROR_INIT;
        unsigned char *data = random_data(sizes[idx] ? sizes[idx] : 1);
        unsigned char *obj = NULL, *plain = NULL;
        size_t len = 0, plain_len = 0;
        struct sb_object_result res;
        EXPECT_OK(encode(key, 4096, data, sizes[idx], &obj, &len, &res, &err), &err);
        EXPECT_OK(decode(key, obj, len, &res.stored, &plain, &plain_len, &err), &err);
        EXPECT_INT(plain_len, sizes[idx]);
        EXPECT(plain_len == 0 || memcmp(plain, data, plain_len) == 0);
        free(data);
        free(obj);
        free(plain);
    }
    sb_key_free(key);
}

/* An object whose stored form spans several 4 KiB chunks (incompressible data). */
static void
make_multichunk(const struct sb_key *key, unsigned char **obj, size_t *len,
                struct sb_object_result *res)
{
    struct sb_error err = SB_ERROR_INIT;
    unsigned char *data = random_data(3 * TEST_CHUNK + 100);
    if (encode(key, TEST_CHUNK, data, 3 * TEST_CHUNK + 100, obj, len, res, &err) < 0)
        abort();
    free(data);
}

static void
test_every_flip_detected(void)
{
    struct sb_key *key = test_key();
    unsigned char *obj = NULL;
    size_t len = 0;
    struct sb_object_result res;
    make_multichunk(key, &obj, &len, &res);
    size_t undetected = 0, wrong_code = 0;
    for (size_t off = 0; off < len; off = next_offset(off)) {
        /* every offset without the manifest hash (the format alone must catch it), every
         * 7th with it as well */
        for (int with_hash = 0; with_hash < (off % 7 == 0 ? 2 : 1); with_hash++) {
            obj[off] ^= 0x01;
            struct sb_error err = SB_ERROR_INIT;
            unsigned char *plain = NULL;
            size_t plain_len = 0;
            if (decode(key, obj, len, with_hash ? &res.stored : NULL, &plain, &plain_len, &err) ==
                0) {
                undetected++;
                free(plain);
            } else if (err.code != SB_E_CORRUPT) {
                wrong_code++;
            }
            obj[off] ^= 0x01;
        }
    }
    EXPECT_INT(undetected, 0);
    EXPECT_INT(wrong_code, 0);
    free(obj);
    sb_key_free(key);
}

static void
test_every_truncation_detected(void)
{
    struct sb_key *key = test_key();
    unsigned char *obj = NULL;
    size_t len = 0;
    struct sb_object_result res;
    make_multichunk(key, &obj, &len, &res);
    size_t undetected = 0;
    for (size_t cut = 0; cut < len; cut = next_offset(cut)) {
        struct sb_error err = SB_ERROR_INIT;
        unsigned char *plain = NULL;
        size_t plain_len = 0;
        /* without the manifest's size: the format alone must catch it */
        if (decode(key, obj, cut, NULL, &plain, &plain_len, &err) == 0) {
            undetected++;
            free(plain);
        } else if (err.code != SB_E_CORRUPT) {
            TEST_FAIL("cut at %zu: code %d: %s", cut, err.code, err.msg);
        }
    }
    EXPECT_INT(undetected, 0);
    /* cut exactly at a chunk boundary: the message names the truncation */
    struct sb_error err = SB_ERROR_INIT;
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    size_t boundary = HDR + (4096 + 17);
    char want[128];
    snprintf(want, sizeof(want), "truncated: the object ends at byte %zu before its final chunk",
             boundary);
    EXPECT_ERR(decode(key, obj, boundary, NULL, &plain, &plain_len, &err), &err, SB_E_CORRUPT,
               want);
    /* appended garbage */
    unsigned char *longer = malloc(len + 1);
    memcpy(longer, obj, len);
    longer[len] = 0;
    EXPECT_ERR(decode(key, longer, len + 1, NULL, &plain, &plain_len, &err), &err, SB_E_CORRUPT,
               NULL);
    free(longer);
    free(obj);
    sb_key_free(key);
}

/* Chunks bigger than the decrypt stage's first buffers (32 KiB, src/pipeline/crypt.c): the
 * buffers grow on the first full chunk. Round trips, a first chunk of exactly 32 KiB (the
 * growth then reads nothing more), and cuts and flips around the growth point and inside the
 * grown chunks, each refused as corrupt. */
static void
test_chunks_beyond_first_buffers(void)
{
    struct sb_key *key = test_key();
    enum { CHUNK = 256 << 10, FIRST = 32 << 10, TAG = 17 };
    struct sb_error err = SB_ERROR_INIT;
    struct sb_object_result res;
    unsigned char *obj = NULL, *plain = NULL;
    size_t len = 0, plain_len = 0;
    unsigned char *data = random_data(600 << 10);
    EXPECT_OK(encode(key, CHUNK, data, 600 << 10, &obj, &len, &res, &err), &err);
    EXPECT(len > HDR + 2 * (size_t)(CHUNK + TAG));
    EXPECT_OK(decode(key, obj, len, &res.stored, &plain, &plain_len, &err), &err);
    EXPECT_INT(plain_len, 600 << 10);
    EXPECT(plain && memcmp(plain, data, plain_len) == 0);
    free(plain);
    const size_t cuts[] = {
        HDR + FIRST + TAG - 1, HDR + FIRST + TAG, HDR + FIRST + TAG + 1,     HDR + 100000,
        HDR + CHUNK + TAG - 1, HDR + CHUNK + TAG, HDR + CHUNK + TAG + FIRST, len - 1};
    for (size_t idx = 0; idx < sizeof(cuts) / sizeof(cuts[0]); idx++) {
        err = (struct sb_error)SB_ERROR_INIT;
        if (decode(key, obj, cuts[idx], NULL, &plain, &plain_len, &err) == 0) {
            TEST_FAIL("cut at %zu of %zu: not detected", cuts[idx], len);
            free(plain);
        } else if (err.code != SB_E_CORRUPT) {
            TEST_FAIL("cut at %zu: code %d: %s", cuts[idx], err.code, err.msg);
        }
    }
    const size_t flips[] = {HDR + 10, HDR + FIRST + TAG + 5, HDR + 200000,
                            HDR + CHUNK + TAG + FIRST + 100, len - 1};
    for (size_t idx = 0; idx < sizeof(flips) / sizeof(flips[0]); idx++) {
        obj[flips[idx]] ^= 0x40;
        err = (struct sb_error)SB_ERROR_INIT;
        if (decode(key, obj, len, NULL, &plain, &plain_len, &err) == 0) {
            TEST_FAIL("flip at %zu: not detected", flips[idx]);
            free(plain);
        } else if (err.code != SB_E_CORRUPT) {
            TEST_FAIL("flip at %zu: code %d: %s", flips[idx], err.code, err.msg);
        }
        obj[flips[idx]] ^= 0x40;
    }
    free(obj);
    /* a one-chunk object whose chunk is exactly the first buffers' size */
    bool exact = false;
    for (size_t n = FIRST - 64; n <= FIRST && !exact; n++) {
        obj = NULL;
        EXPECT_OK(encode(key, CHUNK, data, n, &obj, &len, &res, &err), &err);
        if (len == HDR + FIRST + TAG) {
            exact = true;
            EXPECT_OK(decode(key, obj, len, &res.stored, &plain, &plain_len, &err), &err);
            EXPECT_INT(plain_len, n);
            EXPECT(plain && memcmp(plain, data, n) == 0);
            free(plain);
            EXPECT_ERR(decode(key, obj, len - 1, NULL, &plain, &plain_len, &err), &err,
                       SB_E_CORRUPT, NULL);
        }
        free(obj);
    }
    EXPECT(exact);
    free(data);
    sb_key_free(key);
}

static void
test_chunk_swap_detected(void)
{
    struct sb_key *key = test_key();
    unsigned char *obj = NULL;
    size_t len = 0;
    struct sb_object_result res;
    make_multichunk(key, &obj, &len, &res);
    size_t msg = 4096 + 17;
    unsigned char *tmp = malloc(msg);
    memcpy(tmp, obj + HDR, msg);
    memmove(obj + HDR, obj + HDR + msg, msg);
    memcpy(obj + HDR + msg, tmp, msg);
    struct sb_error err = SB_ERROR_INIT;
    unsigned char *plain = NULL;
    size_t plain_len = 0;
    char want[128];
    snprintf(want, sizeof(want),
             "chunk 0 at byte %zu fails authentication: the data is corrupt or was tampered with",
             HDR);
    EXPECT_ERR(decode(key, obj, len, NULL, &plain, &plain_len, &err), &err, SB_E_CORRUPT, want);
    free(tmp);
    free(obj);
    sb_key_free(key);
}

static void
test_object_swap_detected(void)
{
    /* two valid objects under the same key: the manifest's hash tells them apart */
    struct sb_key *key = test_key();
    struct sb_error err = SB_ERROR_INIT;
    unsigned char *a = NULL, *b = NULL, *plain = NULL;
    size_t alen = 0, blen = 0, plain_len = 0;
    struct sb_object_result ra, rb;
    EXPECT_OK(encode(key, 4096, "object a", 8, &a, &alen, &ra, &err), &err);
    EXPECT_OK(encode(key, 4096, "object b", 8, &b, &blen, &rb, &err), &err);
    EXPECT_INT(alen, blen);
    sb_error_clear(&err);
    EXPECT(decode(key, b, blen, &ra.stored, &plain, &plain_len, &err) < 0);
    EXPECT_INT(err.code, SB_E_CORRUPT);
    EXPECT(strstr(err.msg, "altered or swapped") != NULL);
    free(a);
    free(b);
    sb_key_free(key);
}

static void
test_wrong_key(void)
{
    struct sb_key *key = test_key(), *other = NULL;
    struct sb_error err = SB_ERROR_INIT;
    EXPECT_OK(g_mode == 2 ? sb_key_new_sealed_pair(&other, &err) : sb_key_new_random(&other, &err),
              &err);
    unsigned char *obj = NULL, *plain = NULL;
    size_t len = 0, plain_len = 0;
    struct sb_object_result res;
    EXPECT_OK(encode(key, 4096, "secret", 6, &obj, &len, &res, &err), &err);
    EXPECT_ERR(decode(other, obj, len, NULL, &plain, &plain_len, &err), &err, SB_E_CORRUPT,
               g_mode == 2 ? "cannot open the sealed file key (bytes 15-94): wrong secret key, or "
                             "the header is corrupt"
                           : "cannot unwrap the file key (bytes 15-86): wrong key, or the header "
                             "is corrupt");
    EXPECT(plain == NULL);
    char id1[33], id2[33];
    sb_key_id(key, id1);
    sb_key_id(other, id2);
    EXPECT(strcmp(id1, id2) != 0);
    free(obj);
    sb_key_free(key);
    sb_key_free(other);
}

static void
test_bad_headers(void)
{
    struct sb_key *key = test_key();
    struct sb_error err = SB_ERROR_INIT;
    unsigned char *obj = NULL, *plain = NULL;
    size_t len = 0, plain_len = 0;
    struct sb_object_result res;
    EXPECT_OK(encode(key, 4096, "x", 1, &obj, &len, &res, &err), &err);
    EXPECT_ERR(decode(key, obj, 0, NULL, &plain, &plain_len, &err), &err, SB_E_CORRUPT,
               "not a snapback object (bad magic at byte 0)");
    obj[8] = 2;
    EXPECT_ERR(decode(key, obj, len, NULL, &plain, &plain_len, &err), &err, SB_E_CORRUPT,
               "unsupported object format version 2 at byte 8 (this snapback reads version 1)");
    obj[8] = 1;
    obj[12] = 0xff;
    EXPECT_ERR(decode(key, obj, len, NULL, &plain, &plain_len, &err), &err, SB_E_CORRUPT,
               "invalid chunk size 65280 at byte 11");
    obj[12] = 0x10;
    obj[10] = 2;
    EXPECT_ERR(decode(key, obj, len, NULL, &plain, &plain_len, &err), &err, SB_E_CORRUPT,
               "the object is sealed to a recipient key (key mode 2, byte 10) but the key given "
               "is a symmetric repository key; give the recipient's secret key");
    obj[10] = 3;
    EXPECT_ERR(decode(key, obj, len, NULL, &plain, &plain_len, &err), &err, SB_E_CORRUPT,
               "unknown key mode 3 at byte 10");
    free(obj);
    sb_key_free(key);
}

/* docs/FORMAT.md, vector 2 (key mode 2): the recipient's secret key a0..bf, RNG counter
 * from 00 (file key 00..1f, ephemeral secret 20..3f, secretstream header 40..57). */
static const char vector2_hex[] =
#include "vector2.inc"
    ;

static void
test_vector2(void)
{
    g_mode = 2;
    struct sb_key *key = test_key();
    struct sb_error err = SB_ERROR_INIT;
    unsigned char *obj = NULL, *plain = NULL;
    size_t len = 0, plain_len = 0;
    struct sb_object_result res;
    rng_reset();
    EXPECT_OK(encode(key, 4096, vector1_plain, strlen(vector1_plain), &obj, &len, &res, &err),
              &err);
    char *hex = to_hex(obj, len);
    EXPECT_STR(hex, vector2_hex);
    EXPECT_INT(len, 119 + 16 + 9 + 17); /* header, a zstd raw-block frame of 16 bytes, ABYTES */
    EXPECT_INT(obj[10], 2);
    EXPECT_OK(decode(key, obj, len, &res.stored, &plain, &plain_len, &err), &err);
    EXPECT(plain_len == strlen(vector1_plain) && memcmp(plain, vector1_plain, plain_len) == 0);
    free(hex);
    free(plain);
    free(obj);
    sb_key_free(key);
    g_mode = 1;
}

/* The public half writes objects it cannot read; the key ids of both halves agree. */
static void
test_sealed_public_cannot_read(void)
{
    g_mode = 2;
    struct sb_key *secret = test_key(), *pub = NULL, *sym = NULL;
    g_mode = 1;
    struct sb_error err = SB_ERROR_INIT;
    EXPECT_OK(sb_key_new_sealed_public(secret->pub, &pub, &err), &err);
    EXPECT(!sb_key_can_read(pub));
    EXPECT(sb_key_can_read(secret));
    char id_secret[33], id_pub[33], id_sym[33];
    sb_key_id(secret, id_secret);
    sb_key_id(pub, id_pub);
    sym = test_key();
    sb_key_id(sym, id_sym);
    EXPECT_STR(id_pub, id_secret);
    EXPECT(strcmp(id_pub, id_sym) != 0);
    unsigned char *obj = NULL, *plain = NULL;
    size_t len = 0, plain_len = 0;
    struct sb_object_result res;
    EXPECT_OK(encode(pub, 4096, "sentinel 4242", 13, &obj, &len, &res, &err), &err);
    EXPECT(memmem(obj, len, "sentinel", 8) == NULL);
    EXPECT_ERR(decode(pub, obj, len, NULL, &plain, &plain_len, &err), &err, SB_E_PERM,
               "the object is sealed to this host's public key, which can write snapshots but "
               "never read them: reading needs the secret key (pass --key FILE or set "
               "SNAPBACK_KEY_FILE, on a machine that holds it)");
    EXPECT_ERR(decode(sym, obj, len, NULL, &plain, &plain_len, &err), &err, SB_E_CORRUPT,
               "the object is sealed to a recipient key (key mode 2, byte 10) but the key given "
               "is a symmetric repository key; give the recipient's secret key");
    EXPECT_OK(decode(secret, obj, len, &res.stored, &plain, &plain_len, &err), &err);
    EXPECT(plain_len == 13 && memcmp(plain, "sentinel 4242", 13) == 0);
    free(plain);
    plain = NULL;
    /* a symmetric object given to a recipient key */
    unsigned char *sobj = NULL;
    size_t slen = 0;
    EXPECT_OK(encode(sym, 4096, "x", 1, &sobj, &slen, &res, &err), &err);
    EXPECT_ERR(decode(secret, sobj, slen, NULL, &plain, &plain_len, &err), &err, SB_E_CORRUPT,
               "the object is encrypted with a symmetric repository key (key mode 1, byte 10) "
               "but the key given is a recipient key");
    free(sobj);
    free(obj);
    sb_key_free(secret);
    sb_key_free(pub);
    sb_key_free(sym);
}

#define SEALED(fn)                                                                                 \
    static void sealed_##fn(void)                                                                  \
    {                                                                                              \
        g_mode = 2;                                                                                \
        fn();                                                                                      \
        g_mode = 1;                                                                                \
    }
SEALED(test_roundtrip_sizes)
SEALED(test_every_flip_detected)
SEALED(test_every_truncation_detected)
SEALED(test_chunk_swap_detected)
SEALED(test_object_swap_detected)
SEALED(test_wrong_key)

static void
test_manifest_roundtrip_and_malformed(void)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_manifest m = {0};
    m.id = (char *)"20261124T143000Z-7f3a";
    m.app = (char *)"shop";
    m.host = (char *)"web1";
    m.created_at = 1795530600;
    m.has_release = true;
    m.release.name = (char *)"20261123T090000Z";
    m.release.fingerprint = (char *)"00112233445566778899aabbccddeeff";
    m.release.object = (char *)"releases/20261123T090000Z-00112233445566778899aabbccddeeff.snpb";
    m.release.entries = 12;
    struct sb_manifest_object objs[2] = {{m.release.object, 100, 200, {1, 2, 3}},
                                         {(char *)"data/x/db-main.snpb", 5, 6, {0}}};
    m.objects = objs;
    m.object_count = 2;
    struct sb_manifest_db db = {(char *)"main",
                                (char *)"postgresql",
                                (char *)"15.8",
                                (char *)"pg_dump-custom",
                                objs[1].name,
                                {(char *)"UTF8", (char *)"C.UTF-8", (char *)"C.UTF-8",
                                 (char *)"icu", (char *)"de-DE",
                                 (char *)"[\"search_path=app, public\",\"TimeZone=UTC\"]",
                                 (char *)"it's \"the\" shop\n\t$$",
                                 (char *)"[{\"grantee\":null,\"privilege\":\"TEMPORARY\","
                                         "\"grantable\":false},{\"grantee\":\"reader\","
                                         "\"privilege\":\"CONNECT\",\"grantable\":true}]",
                                 (char *)"[{\"role\":\"shop\",\"settings\":[\"work_mem=7MB\"]}]"}};
    m.dbs = &db;
    m.db_count = 1;
    char *json = NULL;
    EXPECT_OK(sb_manifest_to_json(&m, &json, &err), &err);
    struct sb_manifest *back = NULL;
    EXPECT_OK(sb_manifest_from_json(json, strlen(json), &back, &err), &err);
    if (back) {
        EXPECT_STR(back->id, m.id);
        EXPECT_STR(back->release.object, m.release.object);
        EXPECT_INT(back->objects[0].stored_size, 100);
        EXPECT_INT(back->objects[0].blake2b[2], 3);
        EXPECT_INT(back->created_at, m.created_at);
        EXPECT_INT(back->db_count, 1);
        EXPECT_STR(back->dbs[0].pg.encoding, "UTF8");
        EXPECT_STR(back->dbs[0].pg.provider, "icu");
        EXPECT_STR(back->dbs[0].pg.icu_locale, "de-DE");
        EXPECT_STR(back->dbs[0].pg.settings, "[\"search_path=app, public\",\"TimeZone=UTC\"]");
        EXPECT_STR(back->dbs[0].pg.comment, db.pg.comment);
        EXPECT_STR(back->dbs[0].pg.acl, db.pg.acl);
        EXPECT_STR(back->dbs[0].pg.role_settings, db.pg.role_settings);
    }
    /* what the probe read goes through the parser's checks: a malformed part is left out */
    struct sb_manifest_db probed = {0};
    EXPECT_STR(sb_manifest_db_set_pg_props(
                   &probed, "{\"comment\": \"c\", \"acl\": [{\"grantee\": 0}], \"role_settings\": "
                            "[{\"role\": \"r\", \"settings\": [\"a=1\"]}]}"),
               "acl");
    EXPECT_STR(probed.pg.comment, "c");
    EXPECT(probed.pg.acl == NULL);
    EXPECT_STR(probed.pg.role_settings, "[{\"role\":\"r\",\"settings\":[\"a=1\"]}]");
    free(probed.pg.comment);
    cJSON_free(probed.pg.role_settings);
    probed = (struct sb_manifest_db){0};
    EXPECT_STR(sb_manifest_db_set_pg_props(&probed, "{\"comment\": 1, \"acl\": null, "
                                                    "\"role_settings\": [{\"role\": \"r\"}]}"),
               "comment, role_settings");
    EXPECT_STR(sb_manifest_db_set_pg_props(&probed, "not json"), "comment, acl, role_settings");
    EXPECT(!probed.pg.comment && !probed.pg.acl && !probed.pg.role_settings);
    sb_manifest_free(back);
    free(json);
    static const struct {
        const char *json, *msg;
    } bad[] = {
        {"[]", "malformed manifest: not a JSON object"},
        {"{\"format\":2}", "malformed manifest: unsupported format"},
        {"{\"format\":1,\"id\":\"x\",\"app\":\"a\",\"created_at\":\"2026-11-24T14:30:00Z\","
         "\"release\":null,\"shared\":[],\"databases\":[],\"objects\":[{\"name\":\"../x\","
         "\"stored_size\":1,\"plain_size\":1,\"blake2b\":\""
         "0000000000000000000000000000000000000000000000000000000000000000\"}]}",
         "malformed manifest: objects[].name"},
        {"{\"format\":1,\"id\":\"x\",\"app\":\"a\",\"created_at\":\"2026-11-24T14:30:00Z\","
         "\"release\":null,\"shared\":[{\"path\":\"p\",\"object\":\"data/x\"}],\"databases\":[],"
         "\"objects\":[]}",
         "malformed manifest: shared object is not listed in objects"},
        {"{\"format\":1,\"id\":\"x\",\"app\":\"a\",\"created_at\":\"yesterday\",\"release\":null,"
         "\"shared\":[],\"databases\":[],\"objects\":[]}",
         "malformed manifest: created_at"},
        {"{\"format\":1,\"id\":\"x\",\"app\":\"a\",\"created_at\":\"2026-11-24T14:30:00Z\","
         "\"release\":null,\"shared\":[],\"databases\":[],\"objects\":[{\"name\":\"a\","
         "\"stored_size\":-1,\"plain_size\":1,\"blake2b\":\"00\"}]}",
         "malformed manifest: stored_size"},
        {"{\"format\":1,\"id\":\"x\",\"app\":\"a\",\"created_at\":\"2026-11-24T14:30:00Z\","
         "\"release\":null,\"shared\":[],\"databases\":[{\"name\":\"m\",\"engine\":\"postgresql\","
         "\"object\":\"data/x\",\"pg_database\":\"UTF8\"}],\"objects\":[]}",
         "malformed manifest: databases[].pg_database"},
        {"{\"format\":1,\"id\":\"x\",\"app\":\"a\",\"created_at\":\"2026-11-24T14:30:00Z\","
         "\"release\":null,\"shared\":[],\"databases\":[{\"name\":\"m\",\"engine\":\"postgresql\","
         "\"object\":\"data/x\",\"pg_database\":{\"encoding\":\"UTF8\",\"acl\":[{\"grantee\":"
         "null,\"privilege\":\"CONNECT\",\"grantable\":\"no\"}]}}],\"objects\":[]}",
         "malformed manifest: databases[].pg_database.acl"},
        {"{\"format\":1,\"id\":\"x\",\"app\":\"a\",\"created_at\":\"2026-11-24T14:30:00Z\","
         "\"release\":null,\"shared\":[],\"databases\":[{\"name\":\"m\",\"engine\":\"postgresql\","
         "\"object\":\"data/"
         "x\",\"pg_database\":{\"encoding\":\"UTF8\",\"acl\":[[\"grantee\"],1]}}],"
         "\"objects\":[]}",
         "malformed manifest: databases[].pg_database.acl"},
        {"{\"format\":1,\"id\":\"x\",\"app\":\"a\",\"created_at\":\"2026-11-24T14:30:00Z\","
         "\"release\":null,\"shared\":[],\"databases\":[{\"name\":\"m\",\"engine\":\"postgresql\","
         "\"object\":\"data/x\",\"pg_database\":{\"encoding\":\"UTF8\",\"role_settings\":[{"
         "\"role\":\"r\",\"settings\":\"a=1\"}]}}],\"objects\":[]}",
         "malformed manifest: databases[].pg_database.role_settings"},
        {"{\"format\":1,\"id\":\"x\",\"app\":\"a\",\"created_at\":\"2026-11-24T14:30:00Z\","
         "\"release\":null,\"shared\":[],\"databases\":[{\"name\":\"m\",\"engine\":\"postgresql\","
         "\"object\":\"data/x\",\"pg_database\":{\"encoding\":\"UTF8\",\"comment\":[]}}],"
         "\"objects\":[]}",
         "malformed manifest: comment"},
    };
    for (size_t idx = 0; idx < sizeof(bad) / sizeof(bad[0]); idx++) {
        struct sb_manifest *mm = NULL;
        EXPECT_ERR(sb_manifest_from_json(bad[idx].json, strlen(bad[idx].json), &mm, &err), &err,
                   SB_E_CORRUPT, bad[idx].msg);
    }
}

/* The threaded chain (thread queue -> encryption -> thread queue, blocks lent and whole chunks
 * encrypted in place) must store exactly the bytes of the serial one: same chunks, the final
 * chunk the same (full when the data is a multiple of the chunk size, never an extra empty
 * one), for every way the data can arrive. */
static int
encrypt_chain(const struct sb_key *key, bool threaded, const unsigned char *data, size_t len,
              size_t step, unsigned char **out, size_t *out_len)
{
    struct sb_error err = SB_ERROR_INIT;
    rng_reset();
    struct sb_ostream *s = sb_mem_ostream_new(out, out_len);
    if (threaded && !(s = sb_thread_ostream_new(s, 4096 + SB_CHUNK_OVERHEAD, 2, &err)))
        return -1;
    if (!(s = sb_encrypt_ostream_new(s, key, 4096, &err)))
        return -1;
    if (threaded && !(s = sb_thread_ostream_new(s, 4096, 3, &err)))
        return -1;
    int rc = 0;
    for (size_t at = 0; rc == 0 && at < len; at += step)
        rc = sb_ostream_write(s, data + at, len - at < step ? len - at : step, &err);
    if (rc == 0)
        rc = sb_ostream_close(s, &err);
    sb_ostream_free(s);
    return rc;
}

static void
test_threaded_chain_matches_serial(void)
{
    struct sb_key *key = test_key();
    static const size_t sizes[] = {0, 1, 4095, 4096, 4097, 3 * 4096, 3 * 4096 + 5, 40 * 4096};
    static const size_t steps[] = {1000, 4096, 4097, 8192, 1 << 20};
    unsigned char *data = random_data(40 * 4096);
    size_t mismatches = 0, failures = 0;
    for (size_t si = 0; si < sizeof(sizes) / sizeof(*sizes); si++) {
        for (size_t st = 0; st < sizeof(steps) / sizeof(*steps); st++) {
            unsigned char *a = NULL, *b = NULL;
            size_t alen = 0, blen = 0;
            if (encrypt_chain(key, false, data, sizes[si], steps[st], &a, &alen) < 0 ||
                encrypt_chain(key, true, data, sizes[si], steps[st], &b, &blen) < 0)
                failures++;
            else if (alen != blen || memcmp(a, b, alen) != 0)
                mismatches++;
            /* a multiple of the chunk size ends in a full final chunk */
            if (sizes[si] % 4096 == 0 && sizes[si] > 0)
                EXPECT_INT(blen, HDR + sizes[si] / 4096 * (4096 + SB_CHUNK_OVERHEAD));
            free(a);
            free(b);
        }
    }
    EXPECT_INT(failures, 0);
    EXPECT_INT(mismatches, 0);
    free(data);
    sb_key_free(key);
}

/* A sink that fails like a full disk after `room` bytes. */
struct full_sink {
    struct sb_ostream base;
    size_t room, used;
};

static int
full_write(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    (void)data;
    struct full_sink *fs = (struct full_sink *)s;
    if (fs->used + len > fs->room)
        return sb_error_set(err, SB_E_IO, ENOSPC, "cannot write 'sink' (free some space)");
    fs->used += len;
    return 0;
}

static int
full_close(struct sb_ostream *s, struct sb_error *err)
{
    (void)s;
    (void)err;
    return 0;
}

static void
full_free(struct sb_ostream *s)
{
    free(s);
}

static const struct sb_ostream_ops full_ops = {
    .write = full_write, .close = full_close, .free = full_free};

/* A full disk under every thread of the chain: the error reaches the writer (from a write or
 * from close), with the sink's message, for every point at which the disk fills up; nothing
 * hangs or leaks. */
static void
test_full_disk_through_threads(void)
{
    struct sb_key *key = test_key();
    static const size_t rooms[] = {0, 50, 200, 4096, 5000, 50000, 200000};
    unsigned char *data = random_data(300 * 1024);
    size_t wrong = 0;
    for (int threads = 1; threads <= 2; threads++) {
        for (size_t idx = 0; idx < sizeof(rooms) / sizeof(*rooms); idx++) {
            struct full_sink *sink = calloc(1, sizeof(*sink));
            sink->base.ops = &full_ops;
            sink->room = rooms[idx];
            struct sb_ostream *w = NULL;
            struct sb_object_result res;
            struct sb_object_params params = {3, threads, 4096};
            struct sb_error err = SB_ERROR_INIT;
            int rc = sb_object_writer_new(&sink->base, key, &params, &res, &w, &err);
            for (size_t at = 0; rc == 0 && at < 300 * 1024; at += 8192)
                rc = sb_ostream_write(w, data + at, 300 * 1024 - at < 8192 ? 300 * 1024 - at : 8192,
                                      &err);
            if (rc == 0)
                rc = sb_ostream_close(w, &err);
            if (rc == 0 || err.code != SB_E_IO || err.sys_errno != ENOSPC ||
                !strstr(err.msg, "free some space"))
                wrong++;
            sb_ostream_free(w);
        }
    }
    EXPECT_INT(wrong, 0);
    free(data);
    sb_key_free(key);
}

/* An istream that fails like a read error after `left` bytes of data. */
struct failing_source {
    struct sb_istream base;
    const unsigned char *data;
    size_t left;
};

static int
failing_read(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    struct failing_source *fs = (struct failing_source *)s;
    if (fs->left == 0)
        return sb_error_set(err, SB_E_IO, EIO, "cannot read 'source' (test)");
    size_t n = cap < fs->left ? cap : fs->left;
    n = n > 777 ? 777 : n;
    memcpy(buf, fs->data, n);
    fs->data += n;
    fs->left -= n;
    *got = n;
    return 0;
}

static void
failing_free(struct sb_istream *s)
{
    free(s);
}

static const struct sb_istream_ops failing_ops = {.read = failing_read, .free = failing_free};

/* A thread queue lends its blocks (sb_istream_borrow) instead of copying them: reads and
 * borrows in any mix give the stream's bytes in order, exactly once; the end of the stream
 * is a zero length; a read error upstream reaches the consumer with its message after the
 * data that came before it. */
static void
test_thread_istream_borrow(void)
{
    size_t total = 300000;
    unsigned char *data = random_data(total);
    unsigned char *got = malloc(total), buf[64];
    struct sb_error err = SB_ERROR_INIT;
    struct sb_istream *in = sb_thread_istream_new(sb_mem_istream_new(data, total), 4096, 3, &err);
    EXPECT(in != NULL);
    size_t at = 0, step = 0;
    for (;;) {
        size_t n = 0;
        const void *p = NULL;
        if (step++ % 3 == 2) {
            EXPECT_OK(sb_istream_read(in, buf, 1 + step % sizeof(buf), &n, &err), &err);
            p = buf;
        } else {
            EXPECT_OK(sb_istream_borrow(in, buf, sizeof(buf), &p, &n, &err), &err);
            EXPECT(n == 0 || p != buf); /* lent, not copied */
        }
        if (n == 0)
            break;
        EXPECT(at + n <= total);
        if (at + n > total)
            break;
        memcpy(got + at, p, n);
        at += n;
    }
    EXPECT_INT(at, total);
    EXPECT(memcmp(got, data, total) == 0);
    sb_istream_free(in);

    /* a stream that does not lend: borrow reads into the caller's buffer */
    in = sb_mem_istream_new(data, 10);
    const void *p = NULL;
    size_t n = 0;
    EXPECT_OK(sb_istream_borrow(in, buf, sizeof(buf), &p, &n, &err), &err);
    EXPECT(p == buf && n == 10 && memcmp(buf, data, 10) == 0);
    sb_istream_free(in);

    struct failing_source *fs = calloc(1, sizeof(*fs));
    fs->base.ops = &failing_ops;
    fs->data = data;
    fs->left = 10000;
    in = sb_thread_istream_new(&fs->base, 4096, 3, &err);
    EXPECT(in != NULL);
    at = 0;
    int rc = 0;
    while (rc == 0) {
        rc = sb_istream_borrow(in, buf, sizeof(buf), &p, &n, &err);
        if (rc == 0 && n == 0)
            break;
        if (rc == 0)
            at += n;
    }
    EXPECT_INT(rc, -1);
    EXPECT_INT(at, 8192); /* the two whole blocks read before the error */
    EXPECT_INT(err.code, SB_E_IO);
    EXPECT(strstr(err.msg, "'source'") != NULL);
    sb_istream_free(in);
    free(got);
    free(data);
}

/* Reads all of in, sleeping sleep_us between calls; returns the bytes read, or -1 on error. */
static long
drain(struct sb_istream *in, unsigned char *got, size_t cap, unsigned sleep_us,
      struct sb_error *err)
{
    size_t at = 0;
    for (;;) {
        const void *p = NULL;
        size_t n = 0;
        unsigned char buf[64];
        if (sb_istream_borrow(in, buf, sizeof(buf), &p, &n, err) < 0)
            return -1;
        if (n == 0)
            return (long)at;
        if (at + n > cap)
            return -1;
        memcpy(got + at, p, n);
        at += n;
        if (sleep_us) {
            struct timespec ts = {0, (long)sleep_us * 1000};
            nanosleep(&ts, NULL);
        }
    }
}

/* The queue wakes a sleeping side only for half a queue of work, or at the end of the stream,
 * or on an error (thread.c, batch): with any depth, a stream shorter than half the queue, a
 * consumer slower than the producer (the producer sleeps on a full queue) and an error before
 * half the queue is filled all arrive, in order, without a hang. */
static void
test_thread_istream_batches(void)
{
    const size_t depths[] = {1, 2, 3, 8, 32};
    const size_t totals[] = {0, 100, 4096 * 5, 300000};
    unsigned char *data = random_data(300000);
    unsigned char *got = malloc(300000);
    struct sb_error err = SB_ERROR_INIT;
    for (size_t d = 0; d < sizeof(depths) / sizeof(depths[0]); d++) {
        for (size_t t = 0; t < sizeof(totals) / sizeof(totals[0]); t++) {
            struct sb_istream *in =
                sb_thread_istream_new(sb_mem_istream_new(data, totals[t]), 4096, depths[d], &err);
            EXPECT(in != NULL);
            long n = drain(in, got, 300000, t == 3 && d >= 3 ? 200 : 0, &err);
            EXPECT_INT(n, (long)totals[t]);
            EXPECT(n < 0 || memcmp(got, data, (size_t)n) == 0);
            sb_istream_free(in);
        }
        struct failing_source *fs = calloc(1, sizeof(*fs));
        fs->base.ops = &failing_ops;
        fs->data = data;
        fs->left = 10000; /* two whole blocks, then the error */
        struct sb_istream *in = sb_thread_istream_new(&fs->base, 4096, depths[d], &err);
        EXPECT(in != NULL);
        sb_error_clear(&err);
        EXPECT_INT(drain(in, got, 300000, 0, &err), -1);
        EXPECT_INT(err.code, SB_E_IO);
        sb_istream_free(in);
    }
    free(got);
    free(data);
}

static void
test_zstd_workers(void)
{
    /* compression.threads 0: one worker per core, at most 8 (memory grows with the workers) */
    EXPECT_INT(sb_zstd_workers(0, 2), 2);
    EXPECT_INT(sb_zstd_workers(0, 8), 8);
    EXPECT_INT(sb_zstd_workers(0, 64), 8);
    EXPECT_INT(sb_zstd_workers(0, -1), 1);
    EXPECT_INT(sb_zstd_workers(16, 2), 16); /* an explicit count is taken as given */
    EXPECT_INT(sb_zstd_workers(1, 64), 1);
}

int
main(void)
{
    randombytes_set_implementation(&counter_rng);
    struct sb_error err = SB_ERROR_INIT;
    if (sb_crypto_init(&err) < 0)
        return 1;
    RUN(test_vector1_encode);
    RUN(test_vector1_decode);
    RUN(test_header_layout);
    RUN(test_roundtrip_sizes);
    RUN(test_threaded_chain_matches_serial);
    RUN(test_full_disk_through_threads);
    RUN(test_thread_istream_borrow);
    RUN(test_thread_istream_batches);
    RUN(test_every_flip_detected);
    RUN(test_every_truncation_detected);
    RUN(test_chunks_beyond_first_buffers);
    RUN(test_chunk_swap_detected);
    RUN(test_object_swap_detected);
    RUN(test_wrong_key);
    RUN(test_bad_headers);
    RUN(test_vector2);
    RUN(test_sealed_public_cannot_read);
    RUN(sealed_test_roundtrip_sizes);
    RUN(sealed_test_every_flip_detected);
    RUN(sealed_test_every_truncation_detected);
    RUN(sealed_test_chunk_swap_detected);
    RUN(sealed_test_object_swap_detected);
    RUN(sealed_test_wrong_key);
    RUN(test_manifest_roundtrip_and_malformed);
    RUN(test_zstd_workers);
    return test_summary();
}
