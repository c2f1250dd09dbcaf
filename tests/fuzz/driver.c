/* A stand-in for libFuzzer when the compiler is not clang: runs the target over every file
 * given on the command line (a corpus) and then over pseudo-random mutations of them for a
 * bounded number of iterations, so the fuzz suite still exercises the decoders in gcc and
 * Valgrind builds. With clang, the real libFuzzer is linked instead of this file. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t state = 0x9e3779b97f4a7c15ull;

static uint64_t
next_rand(void)
{
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

static unsigned char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    unsigned char *buf = malloc(1 << 20);
    *len = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    return buf;
}

int
main(int argc, char **argv)
{
    long iterations = 3000;
    const char *env = getenv("FUZZ_ITERATIONS");
    if (env)
        iterations = strtol(env, NULL, 10);
    unsigned char *seeds[64];
    size_t seed_len[64], nseeds = 0;
    for (int idx = 1; idx < argc && nseeds < 64; idx++) {
        struct stat st;
        if (stat(argv[idx], &st) < 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            DIR *d = opendir(argv[idx]);
            struct dirent *de;
            while (d && (de = readdir(d)) != NULL && nseeds < 64) {
                if (de->d_name[0] == '.')
                    continue;
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", argv[idx], de->d_name);
                if ((seeds[nseeds] = read_file(path, &seed_len[nseeds])) != NULL)
                    nseeds++;
            }
            if (d)
                closedir(d);
        } else if ((seeds[nseeds] = read_file(argv[idx], &seed_len[nseeds])) != NULL) {
            nseeds++;
        }
    }
    for (size_t idx = 0; idx < nseeds; idx++)
        LLVMFuzzerTestOneInput(seeds[idx], seed_len[idx]);
    unsigned char buf[4096];
    for (long iter = 0; iter < iterations; iter++) {
        size_t len;
        if (nseeds && (next_rand() & 3)) {
            size_t pick = next_rand() % nseeds;
            len = seed_len[pick] < sizeof(buf) ? seed_len[pick] : sizeof(buf);
            memcpy(buf, seeds[pick], len);
            int flips = 1 + (int)(next_rand() % 8);
            for (int f = 0; f < flips && len; f++)
                buf[next_rand() % len] = (unsigned char)next_rand();
            if (next_rand() % 4 == 0 && len)
                len = next_rand() % len;
        } else {
            len = next_rand() % 512;
            for (size_t idx = 0; idx < len; idx++)
                buf[idx] = (unsigned char)next_rand();
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    for (size_t idx = 0; idx < nseeds; idx++)
        free(seeds[idx]);
    printf("%ld iterations over %zu seeds: no crash\n", iterations, nseeds);
    return 0;
}
