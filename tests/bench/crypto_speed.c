/* Benchmark (run by hand, never by meson test): the speed of the primitives every stored byte
 * goes through, on this CPU: BLAKE2b-256 (crypto_generichash) and XChaCha20-Poly1305
 * secretstream, over 1 MiB buffers as the pipeline uses them, plus memcpy for scale.
 *
 *   cc -O2 -o /tmp/crypto_speed tests/bench/crypto_speed.c -lsodium && /tmp/crypto_speed */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(void)
{
    enum { LEN = 1 << 20, ROUNDS = 1024 };
    if (sodium_init() < 0)
        return 1;
    unsigned char *in = malloc(LEN), *out = malloc(LEN + 64);
    if (!in || !out)
        return 1;
    randombytes_buf(in, LEN);
    double mb = (double)LEN * ROUNDS / 1e6;

    crypto_generichash_state hs;
    unsigned char digest[32];
    double t = now();
    crypto_generichash_init(&hs, NULL, 0, sizeof(digest));
    for (int r = 0; r < ROUNDS; r++)
        crypto_generichash_update(&hs, in, LEN);
    crypto_generichash_final(&hs, digest, sizeof(digest));
    printf("BLAKE2b-256:                   %6.0f MB/s\n", mb / (now() - t));

    unsigned char key[crypto_secretstream_xchacha20poly1305_KEYBYTES];
    unsigned char header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    crypto_secretstream_xchacha20poly1305_state ss;
    crypto_secretstream_xchacha20poly1305_keygen(key);
    crypto_secretstream_xchacha20poly1305_init_push(&ss, header, key);
    t = now();
    for (int r = 0; r < ROUNDS; r++)
        crypto_secretstream_xchacha20poly1305_push(&ss, out, NULL, in, LEN, NULL, 0, 0);
    printf("XChaCha20-Poly1305 secretstream: %4.0f MB/s\n", mb / (now() - t));

    t = now();
    for (int r = 0; r < ROUNDS; r++) {
        memcpy(out, in, LEN);
        in[r % LEN] ^= out[(r * 7) % LEN]; /* keep the copy from being optimised away */
    }
    printf("memcpy (cache-warm):           %6.0f MB/s\n", mb / (now() - t));
    free(in);
    free(out);
    return 0;
}
