/* Key files. The key is 32 random bytes stored as "snapback-key-v1\n<base64>\n" in a file of
 * mode 0600, created with O_EXCL so an existing key is never overwritten. The file is read
 * into sodium_malloc memory and wiped; the key is never printed, logged or put in argv. */
#include "snapback/format.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapback/config.h"
#include "snapback/core.h"

#define KEY_HEADER "snapback-key-v1\n"
#define KEY_FILE_MAX 256

int
sb_keyfile_write_new(const char *path, const struct sb_key *key, struct sb_error *err)
{
    char *text = sodium_malloc(KEY_FILE_MAX);
    if (!text)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate protected memory");
    int rc = -1, fd = -1;
    size_t hlen = strlen(KEY_HEADER);
    memcpy(text, KEY_HEADER, hlen);
    sodium_bin2base64(text + hlen, KEY_FILE_MAX - hlen - 1, key->bytes, SB_KEY_BYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    size_t len = strlen(text);
    text[len++] = '\n';

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            sb_error_set(err, SB_E_CANTCREATE, 0,
                         "key file '%s' already exists; refusing to overwrite a key (move it "
                         "away first if you really mean to replace it)",
                         path);
        else
            sb_error_set(err, sb_error_from_errno(errno), errno, "cannot create key file '%s'",
                         path);
        goto out;
    }
    if (fchmod(fd, 0600) < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
        sb_error_set(err, SB_E_IO, errno, "cannot write key file '%s'", path);
        close(fd);
        fd = -1;
        unlink(path);
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        sb_error_set(err, SB_E_IO, errno, "cannot write key file '%s'", path);
        unlink(path);
        goto out;
    }
    fd = -1;
    if (sb_fsync_parent(path, err) < 0)
        goto out;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    sodium_free(text);
    return rc;
}

int
sb_keyfile_load(const char *path, struct sb_key **out, struct sb_error *err)
{
    if (sb_crypto_init(err) < 0)
        return -1;
    if (sb_check_secret_file(path, "key file", err) < 0)
        return -1;
    char *text = sodium_malloc(KEY_FILE_MAX + 1);
    unsigned char *raw = sodium_malloc(SB_KEY_BYTES);
    int rc = -1, fd = -1;
    if (!text || !raw) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate protected memory");
        goto out;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sb_error_set(err, sb_error_from_errno(errno), errno, "cannot open key file '%s'", path);
        goto out;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, text + len, KEY_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sb_error_set(err, SB_E_IO, errno, "cannot read key file '%s'", path);
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > KEY_FILE_MAX)
            break;
    }
    size_t hlen = strlen(KEY_HEADER);
    if (len > KEY_FILE_MAX || len < hlen || memcmp(text, KEY_HEADER, hlen) != 0) {
        sb_error_set(err, SB_E_CONFIG, 0,
                     "key file '%s' is not a snapback key (expected a first line "
                     "'snapback-key-v1'); create one with 'snapback keygen'",
                     path);
        goto out;
    }
    size_t bin_len = 0;
    const char *end = NULL;
    if (sodium_base642bin(raw, SB_KEY_BYTES, text + hlen, len - hlen, "\n\r ", &bin_len, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        bin_len != SB_KEY_BYTES || (size_t)(end - text) != len) {
        sb_error_set(err, SB_E_CONFIG, 0,
                     "key file '%s' is damaged: its second line must be 32 bytes in base64", path);
        goto out;
    }
    rc = sb_key_new_from_bytes(raw, out, err);
out:
    if (fd >= 0)
        close(fd);
    if (text)
        sodium_free(text);
    if (raw)
        sodium_free(raw);
    return rc;
}
