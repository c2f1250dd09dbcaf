/* libFuzzer target: the object decoder (header, key unwrap or unseal, secretstream chunks,
 * zstd) fed arbitrary bytes under a fixed key of each key mode (1 symmetric, 2 sealed to a
 * recipient). It must never crash, leak or read out of bounds; every input is either a valid
 * object or an SB_E_CORRUPT error. Half of the inputs are first wrapped into a valid object
 * (of the mode bit 1 of the first byte picks) so the fuzzer also reaches the zstd stage. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "snapback/format.h"
#include "snapback/pipeline.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct sb_key *
fuzz_key(int sealed)
{
    static struct sb_key *keys[2];
    if (!keys[sealed]) {
        unsigned char bytes[SB_KEY_BYTES] = {0};
        bytes[0] = 1;
        struct sb_error err = SB_ERROR_INIT;
        if ((sealed ? sb_key_new_sealed_secret(bytes, &keys[1], &err)
                    : sb_key_new_from_bytes(bytes, &keys[0], &err)) < 0)
            abort();
    }
    return keys[sealed];
}

static void
decode_with(const uint8_t *data, size_t size, int sealed)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_istream *in = NULL;
    if (sb_object_reader_new(sb_mem_istream_new(data, size), fuzz_key(sealed), NULL, &in, &err) ==
        0) {
        if (sb_istream_drain(in, &err) < 0 && err.code != SB_E_CORRUPT)
            abort();
    } else if (err.code != SB_E_CORRUPT) {
        abort();
    }
    sb_istream_free(in);
}

static void
decode(const uint8_t *data, size_t size)
{
    decode_with(data, size, 0);
    decode_with(data, size, 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    decode(data, size);
    if (size > 0 && (data[0] & 1)) {
        int sealed = (data[0] >> 1) & 1;
        /* the input as the plaintext of a valid object whose compressed stream is the input:
         * encrypt data[1..] without compression is not possible through the public chain, so
         * encode it and flip one byte chosen by the input instead */
        unsigned char *obj = NULL;
        size_t len = 0;
        struct sb_object_result res;
        struct sb_object_params params = {1, 1, 4096};
        struct sb_error err = SB_ERROR_INIT;
        struct sb_ostream *w = NULL;
        if (sb_object_writer_new(sb_mem_ostream_new(&obj, &len), fuzz_key(sealed), &params, &res,
                                 &w, &err) == 0 &&
            sb_ostream_write(w, data + 1, size - 1, &err) == 0 && sb_ostream_close(w, &err) == 0) {
            decode(obj, len);
            if (len > 0) {
                obj[data[0] % len] ^= (uint8_t)(data[size - 1] | 1);
                decode(obj, len);
            }
        }
        sb_ostream_free(w);
        free(obj);
    }
    return 0;
}
