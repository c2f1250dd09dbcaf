/* The filter stages of DESIGN §4: zstd, secretstream encryption and BLAKE2b hashing, each an
 * sb_ostream (snapshot direction) and an sb_istream (restore direction). Constructors take
 * ownership of the stream they wrap, even when they fail. */
#ifndef SNAPBACK_PIPELINE_H
#define SNAPBACK_PIPELINE_H

#include <stdbool.h>
#include <stdint.h>

#include "snapback/stream.h"

#define SB_KEY_BYTES 32
#define SB_HASH_BYTES 32
#define SB_CHUNK_SIZE_DEFAULT (1u << 20)
#define SB_CHUNK_SIZE_MIN (1u << 12)
#define SB_CHUNK_SIZE_MAX (1u << 24)
/* bytes a stored chunk has over its plaintext: the secretstream tag byte and MAC */
#define SB_CHUNK_OVERHEAD 17u

/* A key (docs/FORMAT.md §1). Symmetric (key mode 1): the 32-byte repository key K, which
 * writes and reads. Sealed (key mode 2, write-only hosts): an X25519 recipient key pair; with
 * only the public half it writes objects it can never read again, with the secret half it
 * reads them. Secret bytes live in sodium_malloc memory (guarded, locked, wiped on free). */
enum sb_key_mode {
    SB_KEY_SYMMETRIC = 1,
    SB_KEY_SEALED = 2,
};

struct sb_key {
    enum sb_key_mode mode;
    unsigned char *bytes;            /* symmetric: K; sealed: the secret key, or NULL */
    unsigned char pub[SB_KEY_BYTES]; /* sealed: the recipient's public key */
    /* Owned: older keys (retired by 'snapback key rotate') that reading tries after this one;
     * writing always uses the first key. sb_key_free frees the whole ring. */
    struct sb_key *next;
};

struct sb_digest {
    unsigned char hash[SB_HASH_BYTES];
    uint64_t size;
};

/* Initialises libsodium once; -1 when it cannot. */
int sb_crypto_init(struct sb_error *err);

int sb_key_new_random(struct sb_key **out, struct sb_error *err);
/* Copies 32 bytes into a new key. */
int sb_key_new_from_bytes(const unsigned char *bytes, struct sb_key **out, struct sb_error *err);
/* Frees key and every key of its ring. */
void sb_key_free(struct sb_key *key);
/* A new random X25519 recipient key pair (key mode 2). */
int sb_key_new_sealed_pair(struct sb_key **out, struct sb_error *err);
/* A recipient key from its secret half (the public half is derived). */
int sb_key_new_sealed_secret(const unsigned char *secret, struct sb_key **out,
                             struct sb_error *err);
/* A recipient key that can only write: the public half. */
int sb_key_new_sealed_public(const unsigned char *pub, struct sb_key **out, struct sb_error *err);
/* Whether objects written with key can be read with it (false for a public recipient key). */
bool sb_key_can_read(const struct sb_key *key);
/* The key id: hex of 16 bytes derived from the key (symmetric: a KDF subkey; sealed: a hash
 * of the public key, the same for both halves), safe to store in the open. */
void sb_key_id(const struct sb_key *key, char out[33]);

/* zstd: level 1..19, threads 0 = all cores (at most 8: sb_zstd_workers). */
struct sb_ostream *sb_zstd_ostream_new(struct sb_ostream *down, int level, int threads,
                                       struct sb_error *err);
struct sb_istream *sb_zstd_istream_new(struct sb_istream *up, struct sb_error *err);
/* The zstd workers for compression.threads on a machine with that many cores online. */
int sb_zstd_workers(int threads, long cores);

/* Encryption (DESIGN §5; key mode 1 or 2 after the key): writes the object header at once,
 * then secretstream messages of chunk_size plaintext bytes; the last one is TAG_FINAL. */
struct sb_ostream *sb_encrypt_ostream_new(struct sb_ostream *down, const struct sb_key *key,
                                          uint32_t chunk_size, struct sb_error *err);
/* Decryption: reads and checks the header at once (wrong key, bad magic...), then
 * authenticates every chunk and requires TAG_FINAL followed by the end of the stream. */
struct sb_istream *sb_decrypt_istream_new(struct sb_istream *up, const struct sb_key *key,
                                          struct sb_error *err);

/* BLAKE2b-256 of the bytes going through; the digest is stored in *result at close. */
struct sb_ostream *sb_hash_ostream_new(struct sb_ostream *down, struct sb_digest *result);
/* BLAKE2b-256 of the bytes read; at the end of the stream, when expect is not NULL, a size
 * or hash that differs is an SB_E_CORRUPT error; the digest goes to *result when not NULL. */
struct sb_istream *sb_hash_istream_new(struct sb_istream *up, const struct sb_digest *expect,
                                       struct sb_digest *result);

/* A bounded queue of depth blocks of block_size bytes, written downstream by a worker thread
 * (snapshot: encrypt + hash + store run beside tar + zstd). Errors of the worker surface at
 * the next write or at close. */
struct sb_ostream *sb_thread_ostream_new(struct sb_ostream *down, size_t block_size, size_t depth,
                                         struct sb_error *err);
/* A worker thread reads upstream ahead of the caller (restore: read + hash + decrypt run
 * beside zstd + file writing). */
struct sb_istream *sb_thread_istream_new(struct sb_istream *up, size_t block_size, size_t depth,
                                         struct sb_error *err);

#endif
