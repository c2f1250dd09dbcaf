/* Key files (docs/FORMAT.md §1). A symmetric repository key is "snapback-key-v1\n<base64>\n",
 * a write-only recipient pair is a secret "snapback-secret-v1" file and a public
 * "snapback-recipient-v1" file. Secret files are mode 0600 and refused when others can read
 * them; every file is created with O_EXCL so an existing key is never overwritten. Secrets
 * are read into sodium_malloc memory and wiped; never printed, logged or put in argv. */
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
#define SECRET_HEADER "snapback-secret-v1\n"
#define RECIPIENT_HEADER "snapback-recipient-v1\n"
#define KEY_FILE_MAX 256

/* Writes "HEADER<base64 of 32 bytes>\n" to a new file of the given mode (O_EXCL). */
static int
key_text_write_new(const char *path, const char *header, const unsigned char *bytes, mode_t mode,
                   const char *what, struct sb_error *err)
{
    char *text = sodium_malloc(KEY_FILE_MAX);
    if (!text)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate protected memory");
    int rc = -1, fd = -1;
    size_t hlen = strlen(header);
    memcpy(text, header, hlen);
    sodium_bin2base64(text + hlen, KEY_FILE_MAX - hlen - 1, bytes, SB_KEY_BYTES,
                      sodium_base64_VARIANT_ORIGINAL);
    size_t len = strlen(text);
    text[len++] = '\n';

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0) {
        if (errno == EEXIST)
            sb_error_set(err, SB_E_CANTCREATE, 0,
                         "%s '%s' already exists; refusing to overwrite a key (move it "
                         "away first if you really mean to replace it)",
                         what, path);
        else
            sb_error_set(err, sb_error_from_errno(errno), errno, "cannot create %s '%s'", what,
                         path);
        goto out;
    }
    if (fchmod(fd, mode) < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
        sb_error_set(err, SB_E_IO, errno, "cannot write %s '%s'", what, path);
        close(fd);
        fd = -1;
        unlink(path);
        goto out;
    }
    if (close(fd) < 0) {
        fd = -1;
        sb_error_set(err, SB_E_IO, errno, "cannot write %s '%s'", what, path);
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
sb_keyfile_write_new(const char *path, const struct sb_key *key, struct sb_error *err)
{
    if (!sb_key_can_read(key))
        return sb_error_set(err, SB_E_INTERNAL, 0, "a public key is not written as a key file");
    return key_text_write_new(path, key->mode == SB_KEY_SEALED ? SECRET_HEADER : KEY_HEADER,
                              key->bytes, 0600, "key file", err);
}

int
sb_pubfile_write_new(const char *path, const struct sb_key *key, struct sb_error *err)
{
    if (key->mode != SB_KEY_SEALED)
        return sb_error_set(err, SB_E_INTERNAL, 0, "a symmetric key has no public half");
    return key_text_write_new(path, RECIPIENT_HEADER, key->pub, 0644, "public key file", err);
}

/* Reads a key text file into raw (32 bytes, sodium memory); *kind is the header matched. */
enum key_kind { KIND_SYMMETRIC, KIND_SECRET, KIND_RECIPIENT };

static int
key_text_read(const char *path, unsigned char *raw, enum key_kind *kind, struct sb_error *err)
{
    char *text = sodium_malloc(KEY_FILE_MAX + 1);
    int rc = -1, fd = -1;
    if (!text)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate protected memory");
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
    static const char *const headers[] = {KEY_HEADER, SECRET_HEADER, RECIPIENT_HEADER};
    size_t hlen = 0;
    for (size_t idx = 0; idx < 3 && !hlen; idx++) {
        size_t l = strlen(headers[idx]);
        if (len <= KEY_FILE_MAX && len >= l && memcmp(text, headers[idx], l) == 0) {
            hlen = l;
            *kind = (enum key_kind)idx;
        }
    }
    if (!hlen) {
        sb_error_set(err, SB_E_CONFIG, 0,
                     "key file '%s' is not a snapback key (expected a first line "
                     "'snapback-key-v1', 'snapback-secret-v1' or 'snapback-recipient-v1'); "
                     "create one with 'snapback keygen'",
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
    unsigned char *raw = sodium_malloc(SB_KEY_BYTES);
    if (!raw)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate protected memory");
    enum key_kind kind;
    int rc = key_text_read(path, raw, &kind, err);
    if (rc == 0 && kind == KIND_RECIPIENT)
        rc = sb_error_set(err, SB_E_CONFIG, 0,
                          "'%s' is a recipient's public key, which cannot read snapshots; give "
                          "it as \"recipient\" in the config, and the secret key (the .key file "
                          "'snapback keygen --write-only' wrote beside it) here",
                          path);
    if (rc == 0)
        rc = kind == KIND_SECRET ? sb_key_new_sealed_secret(raw, out, err)
                                 : sb_key_new_from_bytes(raw, out, err);
    sodium_free(raw);
    return rc;
}

int
sb_pubfile_load(const char *path, struct sb_key **out, struct sb_error *err)
{
    if (sb_crypto_init(err) < 0)
        return -1;
    unsigned char *raw = sodium_malloc(SB_KEY_BYTES);
    if (!raw)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "cannot allocate protected memory");
    enum key_kind kind;
    int rc = key_text_read(path, raw, &kind, err);
    if (rc == 0 && kind != KIND_RECIPIENT)
        rc = sb_error_set(err, SB_E_CONFIG, 0,
                          "recipient '%s' holds a secret key, not a public one: a write-only "
                          "host must hold only the .pub file of 'snapback keygen --write-only' "
                          "(move the secret key off this host)",
                          path);
    if (rc == 0)
        rc = sb_key_new_sealed_public(raw, out, err);
    sodium_free(raw);
    return rc;
}
