/* Extraction safety (DESIGN §10): hostile tar entries crafted here with libarchive's writer
 * ('../x', absolute paths, a symlink to '/' followed by a file through it, hard links out of
 * the tree) are refused with SB_E_CORRUPT and nothing is written outside the target. Also the
 * tree round trip through sb_tree_archive / sb_tree_extract. */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <locale.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snapback/core.h"
#include "snapback/sources.h"
#include "snapback/stream.h"
#include "test.h"

#include "../../src/sources/tree_internal.h"

struct tar_entry {
    const char *path;
    int type;            /* AE_IFREG, AE_IFDIR, AE_IFLNK, or 0 for a hard link */
    const char *link;    /* symlink target or hard link target */
    const char *content; /* regular files */
};

struct membuf {
    unsigned char *data;
    size_t len, cap;
};

static la_ssize_t
mem_write_cb(struct archive *a, void *client, const void *buf, size_t len)
{
    (void)a;
    struct membuf *mb = client;
    if (mb->len + len > mb->cap) {
        mb->cap = (mb->len + len) * 2;
        mb->data = realloc(mb->data, mb->cap);
    }
    memcpy(mb->data + mb->len, buf, len);
    mb->len += len;
    return (la_ssize_t)len;
}

static struct membuf
make_tar(const struct tar_entry *entries, size_t count)
{
    struct membuf mb = {0};
    struct archive *a = archive_write_new();
    archive_write_set_format_pax_restricted(a);
    archive_write_open2(a, &mb, NULL, mem_write_cb, NULL, NULL);
    for (size_t idx = 0; idx < count; idx++) {
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, entries[idx].path);
        archive_entry_set_mtime(e, 1700000000, 0);
        if (entries[idx].type == 0) {
            archive_entry_set_filetype(e, AE_IFREG);
            archive_entry_set_perm(e, 0644);
            archive_entry_set_hardlink(e, entries[idx].link);
            archive_entry_set_size(e, 0);
        } else {
            archive_entry_set_filetype(e, (unsigned)entries[idx].type);
            archive_entry_set_perm(e, entries[idx].type == AE_IFDIR ? 0755 : 0644);
            if (entries[idx].type == AE_IFLNK)
                archive_entry_set_symlink(e, entries[idx].link);
            size_t len = entries[idx].content ? strlen(entries[idx].content) : 0;
            archive_entry_set_size(e, (la_int64_t)len);
        }
        archive_write_header(a, e);
        if (entries[idx].content)
            archive_write_data(a, entries[idx].content, strlen(entries[idx].content));
        archive_entry_free(e);
    }
    archive_write_close(a);
    archive_write_free(a);
    return mb;
}

static char base[256];

static void
fresh_dirs(char *target, char *outside)
{
    struct sb_error err = SB_ERROR_INIT;
    sb_remove_tree(target, &err);
    sb_remove_tree(outside, &err);
    mkdir(target, 0755);
    mkdir(outside, 0755);
}

static int
extract_buf(const struct membuf *mb, const char *dest, struct sb_error *err)
{
    struct sb_istream *in = sb_mem_istream_new(mb->data, mb->len);
    int rc = sb_tree_extract(in, dest, SB_EXTRACT_WRITE, NULL, err);
    sb_istream_free(in);
    return rc;
}

static size_t
count_entries(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "find '%s' -mindepth 1 | wc -l", dir);
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    if (p) {
        if (fscanf(p, "%zu", &n) != 1)
            n = 0;
        pclose(p);
    }
    return n;
}

static void
test_hostile_entries_refused(void)
{
    char target[300], outside[300];
    snprintf(target, sizeof(target), "%s/target", base);
    snprintf(outside, sizeof(outside), "%s/outside", base);
    char abs_outside_file[400], link_to_outside[400];
    snprintf(abs_outside_file, sizeof(abs_outside_file), "%s/abs-file", outside);
    snprintf(link_to_outside, sizeof(link_to_outside), "%s", outside);

    struct {
        const char *name;
        struct tar_entry entries[3];
        size_t count;
        const char *msg;
    } cases[] = {
        {"dotdot",
         {{"../outside/x", AE_IFREG, NULL, "pwned"}},
         1,
         "refusing archive entry '../outside/x': path leaves the target directory (the archive "
         "is hostile or corrupt)"},
        {"dotdot-inner",
         {{"a/../../outside/x", AE_IFREG, NULL, "pwned"}},
         1,
         "refusing archive entry 'a/../../outside/x': path leaves the target directory (the "
         "archive is hostile or corrupt)"},
        {"absolute", {{abs_outside_file, AE_IFREG, NULL, "pwned"}}, 1, NULL},
        {"symlink-then-file",
         {{"lnk", AE_IFLNK, link_to_outside, NULL}, {"lnk/pwned", AE_IFREG, NULL, "pwned"}},
         2,
         NULL},
        {"symlink-root-then-file",
         {{"root", AE_IFLNK, "/", NULL}, {"root/tmp/snapback-pwned", AE_IFREG, NULL, "x"}},
         2,
         NULL},
        {"hardlink-absolute",
         {{"h", 0, "/etc/passwd", NULL}},
         1,
         "entry 'h': refusing archive entry '/etc/passwd': absolute hard link target (the "
         "archive is hostile or corrupt)"},
        {"hardlink-dotdot",
         {{"h", 0, "../outside/victim", NULL}},
         1,
         "entry 'h': refusing archive entry '../outside/victim': hard link target leaves the "
         "target directory (the archive is hostile or corrupt)"},
        {"hardlink-through-symlink",
         {{"lnk", AE_IFLNK, link_to_outside, NULL},
          {"h", 0, "lnk/victim", NULL},
          {"h", AE_IFREG, NULL, "overwritten"}},
         3,
         NULL},
    };
    for (size_t idx = 0; idx < sizeof(cases) / sizeof(cases[0]); idx++) {
        fresh_dirs(target, outside);
        /* a victim file outside, which a hard link attack would try to overwrite */
        char victim[400];
        snprintf(victim, sizeof(victim), "%s/victim", outside);
        FILE *f = fopen(victim, "w");
        fputs("original", f);
        fclose(f);
        struct membuf mb = make_tar(cases[idx].entries, cases[idx].count);
        struct sb_error err = SB_ERROR_INIT;
        int rc = extract_buf(&mb, target, &err);
        if (rc == 0)
            TEST_FAIL("case %s: extraction succeeded", cases[idx].name);
        else if (err.code != SB_E_CORRUPT)
            TEST_FAIL("case %s: code %d (%s)", cases[idx].name, err.code, err.msg);
        else if (cases[idx].msg && strcmp(err.msg, cases[idx].msg) != 0)
            TEST_FAIL("case %s: message\n    got  '%s'\n    want '%s'", cases[idx].name, err.msg,
                      cases[idx].msg);
        /* nothing outside changed: only the victim is there, unchanged */
        EXPECT_INT(count_entries(outside), 1);
        char buf[32] = "";
        f = fopen(victim, "r");
        if (f) {
            size_t n = fread(buf, 1, sizeof(buf) - 1, f);
            buf[n] = '\0';
            fclose(f);
        }
        if (strcmp(buf, "original") != 0)
            TEST_FAIL("case %s: victim changed to '%s'", cases[idx].name, buf);
        EXPECT(access("/tmp/snapback-pwned", F_OK) != 0);
        free(mb.data);
    }
}

static void
test_verify_mode_refuses_too(void)
{
    struct tar_entry e[] = {{"../x", AE_IFREG, NULL, "x"}};
    struct membuf mb = make_tar(e, 1);
    struct sb_istream *in = sb_mem_istream_new(mb.data, mb.len);
    struct sb_error err = SB_ERROR_INIT;
    EXPECT_ERR(sb_tree_extract(in, NULL, SB_EXTRACT_LIST, NULL, &err), &err, SB_E_CORRUPT,
               "refusing archive entry '../x': path leaves the target directory (the archive is "
               "hostile or corrupt)");
    sb_istream_free(in);
    free(mb.data);
    /* a symlink and then an entry through it: refused without writing anything too */
    struct tar_entry through[] = {{"lnk", AE_IFLNK, "/", NULL}, {"lnk/etc/x", AE_IFREG, NULL, "x"}};
    mb = make_tar(through, 2);
    in = sb_mem_istream_new(mb.data, mb.len);
    EXPECT_ERR(sb_tree_extract(in, NULL, SB_EXTRACT_LIST, NULL, &err), &err, SB_E_CORRUPT,
               "refusing archive entry 'lnk/etc/x': its path goes through the symlink 'lnk' (the "
               "archive is hostile or corrupt)");
    sb_istream_free(in);
    free(mb.data);
    struct tar_entry hard[] = {{"d/lnk", AE_IFLNK, "/etc", NULL}, {"h", 0, "d/lnk/passwd", NULL}};
    mb = make_tar(hard, 2);
    in = sb_mem_istream_new(mb.data, mb.len);
    EXPECT_ERR(sb_tree_extract(in, NULL, SB_EXTRACT_LIST, NULL, &err), &err, SB_E_CORRUPT,
               "refusing archive entry 'd/lnk/passwd': its hard link target goes through the "
               "symlink 'd/lnk' (the archive is hostile or corrupt)");
    sb_istream_free(in);
    free(mb.data);
}

static void
test_garbage_is_not_tar(void)
{
    static const char garbage[] = "this is not a tar archive at all, not even close........";
    struct sb_istream *in = sb_mem_istream_new(garbage, sizeof(garbage));
    struct sb_error err = SB_ERROR_INIT;
    EXPECT(sb_tree_extract(in, NULL, SB_EXTRACT_LIST, NULL, &err) < 0);
    EXPECT_INT(err.code, SB_E_CORRUPT);
    sb_istream_free(in);
}

static void
write_file(const char *path, const char *content, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0)
        return;
    if (write(fd, content, strlen(content)) < 0)
        TEST_FAIL("write %s", path);
    fchmod(fd, mode);
    close(fd);
}

static void
test_tree_roundtrip(void)
{
    char src[300], dst[300], path[400];
    snprintf(src, sizeof(src), "%s/src", base);
    snprintf(dst, sizeof(dst), "%s/dst", base);
    struct sb_error err = SB_ERROR_INIT;
    sb_remove_tree(src, &err);
    sb_remove_tree(dst, &err);
    mkdir(src, 0755);
    mkdir(dst, 0755);
    snprintf(path, sizeof(path), "%s/dir", src);
    mkdir(path, 0750);
    snprintf(path, sizeof(path), "%s/dir/file with space é", src);
    write_file(path, "content", 0640);
    snprintf(path, sizeof(path), "%s/empty", src);
    write_file(path, "", 0600);
    snprintf(path, sizeof(path), "%s/link", src);
    EXPECT(symlink("dir/file with space é", path) == 0);
    char a[400], b[400];
    snprintf(a, sizeof(a), "%s/empty", src);
    snprintf(b, sizeof(b), "%s/hard", src);
    EXPECT(link(a, b) == 0);

    struct sb_tree_fp fp1, fp2;
    EXPECT_OK(sb_tree_fingerprint(src, &fp1, &err), &err);
    EXPECT_INT(fp1.entries, 5);
    EXPECT_INT(fp1.bytes, 7);

    unsigned char *tar = NULL;
    size_t len = 0;
    struct sb_ostream *out = sb_mem_ostream_new(&tar, &len);
    uint64_t written = 0, read_back = 0;
    EXPECT_OK(sb_tree_archive(src, SB_TREE_STRICT, out, &written, NULL, &err), &err);
    sb_ostream_free(out);
    EXPECT_INT(written, 5);
    struct sb_istream *in = sb_mem_istream_new(tar, len);
    EXPECT_OK(sb_tree_extract(in, dst, SB_EXTRACT_WRITE, &read_back, &err), &err);
    sb_istream_free(in);
    EXPECT_INT(read_back, 5);
    /* same metadata fingerprint: paths, types, sizes, modes, mtimes, link targets */
    EXPECT_OK(sb_tree_fingerprint(dst, &fp2, &err), &err);
    EXPECT_STR(fp2.hex, fp1.hex);
    struct stat s1, s2;
    snprintf(a, sizeof(a), "%s/empty", dst);
    snprintf(b, sizeof(b), "%s/hard", dst);
    EXPECT(stat(a, &s1) == 0 && stat(b, &s2) == 0 && s1.st_ino == s2.st_ino);
    free(tar);

    /* the fingerprint changes with a touched file */
    snprintf(path, sizeof(path), "%s/empty", src);
    write_file(path, "x", 0600);
    EXPECT_OK(sb_tree_fingerprint(src, &fp2, &err), &err);
    EXPECT(strcmp(fp1.hex, fp2.hex) != 0);
}

/* The three walks agree. A release is archived in the fingerprint's order, so the archive walk
 * gives the fingerprint sb_tree_fingerprint gives (the object's name: a later snapshot finds it
 * by that walk's hex), and the digest walk, in 1, 2 or 4 threads, the same digest, entries and
 * bytes; any change to the tree changes the digest. The tree has names that sort differently
 * byte-wise than in any listing order (upper case, dots, spaces, bytes above 0x7f), nested
 * directories for the threads to share, symlinks, a hard link and a socket. */
static void
fp_expect_agree(const char *src, const struct sb_tree_fp *fp)
{
    struct sb_error err = SB_ERROR_INIT;
    unsigned char *tar = NULL;
    size_t len = 0;
    struct sb_ostream *out = sb_mem_ostream_new(&tar, &len);
    struct sb_tree_fp seen;
    uint64_t written = 0;
    EXPECT_OK(sb_tree_archive(src, SB_TREE_STRICT, out, &written, &seen, &err), &err);
    sb_ostream_free(out);
    free(tar);
    EXPECT_STR(seen.hex, fp->hex);
    EXPECT(sb_tree_digest_equal(&seen.digest, &fp->digest));
    EXPECT_INT(seen.entries, fp->entries);
    EXPECT_INT(seen.bytes, fp->bytes);
    EXPECT_INT(written, fp->entries - 1); /* the socket is not archived */
    for (int threads = 1; threads <= 4; threads *= 2) {
        struct sb_tree_fp dw;
        EXPECT_OK(sb_tree_digest_walk(src, threads, &dw, &err), &err);
        EXPECT(sb_tree_digest_equal(&dw.digest, &fp->digest));
        EXPECT_INT(dw.entries, fp->entries);
        EXPECT_INT(dw.bytes, fp->bytes);
        EXPECT_STR(dw.hex, "");
    }
}

static void
test_tree_walks_agree(void)
{
    char src[300], path[600];
    snprintf(src, sizeof(src), "%s/walks", base);
    struct sb_error err = SB_ERROR_INIT;
    sb_remove_tree(src, &err);
    mkdir(src, 0755);
    static const char *const names[] = {"b",   "B",         "a b",  "a", ".hidden",
                                        "a.b", "z\xc3\xa9", "\xff", "A"};
    size_t nn = sizeof(names) / sizeof(names[0]);
    for (size_t i = 0; i < nn; i++) {
        snprintf(path, sizeof(path), "%s/%s", src, names[i]);
        EXPECT(mkdir(path, 0755) == 0);
        for (size_t j = 0; j < nn; j++) {
            snprintf(path, sizeof(path), "%s/%s/%s", src, names[i], names[j]);
            if (j % 3 == 0) {
                EXPECT(mkdir(path, 0700) == 0);
                snprintf(path, sizeof(path), "%s/%s/%s/%s", src, names[i], names[j], names[i]);
            }
            write_file(path, names[j], j % 2 ? 0644 : 0600);
        }
        snprintf(path, sizeof(path), "%s/%s/link", src, names[i]);
        EXPECT(symlink(names[i], path) == 0);
    }
    char a[600], b[600];
    snprintf(a, sizeof(a), "%s/a/B", src);
    snprintf(b, sizeof(b), "%s/hard", src);
    EXPECT(link(a, b) == 0);
    snprintf(path, sizeof(path), "%s/dangling", src);
    EXPECT(symlink("/nonexistent/x", path) == 0);
    snprintf(path, sizeof(path), "%s/sock", src);
    int sk = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    EXPECT(strlen(path) < sizeof(sa.sun_path));
    memcpy(sa.sun_path, path, strlen(path) + 1 < sizeof(sa.sun_path) ? strlen(path) + 1 : 0);
    EXPECT(sk >= 0 && bind(sk, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    close(sk);

    struct sb_tree_fp fp;
    EXPECT_OK(sb_tree_fingerprint(src, &fp, &err), &err);
    fp_expect_agree(src, &fp);

    /* every kind of change moves the digest: a mode, a size, an mtime, an entry added and
     * one removed, deep in the tree */
    struct sb_tree_fp dw;
    snprintf(path, sizeof(path), "%s/\xff/a/\xff", src);
    EXPECT(chmod(path, 0640) == 0);
    EXPECT_OK(sb_tree_digest_walk(src, 2, &dw, &err), &err);
    EXPECT(!sb_tree_digest_equal(&dw.digest, &fp.digest));
    EXPECT(chmod(path, 0644) == 0);
    EXPECT_OK(sb_tree_digest_walk(src, 2, &dw, &err), &err);
    EXPECT(sb_tree_digest_equal(&dw.digest, &fp.digest));
    write_file(path, "longer", 0644);
    EXPECT_OK(sb_tree_digest_walk(src, 2, &dw, &err), &err);
    EXPECT(!sb_tree_digest_equal(&dw.digest, &fp.digest));
    struct timeval tv[2] = {{1000000000, 0}, {1000000000, 1}};
    EXPECT(utimes(path, tv) == 0);
    struct sb_tree_fp fp2;
    EXPECT_OK(sb_tree_fingerprint(src, &fp2, &err), &err);
    EXPECT(strcmp(fp2.hex, fp.hex) != 0);
    fp_expect_agree(src, &fp2);
    snprintf(path, sizeof(path), "%s/B/a/new", src);
    write_file(path, "", 0600);
    EXPECT_OK(sb_tree_digest_walk(src, 4, &dw, &err), &err);
    EXPECT(!sb_tree_digest_equal(&dw.digest, &fp2.digest));
    EXPECT_INT(dw.entries, fp2.entries + 1);
    EXPECT(unlink(path) == 0);
    snprintf(path, sizeof(path), "%s/B/a b", src);
    EXPECT(unlink(path) == 0);
    EXPECT_OK(sb_tree_digest_walk(src, 4, &dw, &err), &err);
    EXPECT_INT(dw.entries, fp2.entries - 1);

    /* a tree that is not there */
    snprintf(path, sizeof(path), "%s/missing", src);
    EXPECT(sb_tree_digest_walk(path, 2, &dw, &err) < 0);
    EXPECT_INT(err.code, SB_E_NOTFOUND);
    EXPECT(strstr(err.msg, "missing") != NULL);
    sb_remove_tree(src, &err);
}

/* Names are bytes (docs/FORMAT.md): an entry whose path, link target, owner and group names are
 * ASCII has a plain ustar header (no extended header when its mtime is whole seconds), and an
 * entry with any other byte carries hdrcharset=BINARY and its names as they are. Valid UTF-8 in
 * NFC and NFD, bytes that are not UTF-8, CESU-8 surrogates and an overlong sequence all come
 * back byte for byte, as names and as link targets. In a UTF-8 locale (a library that called
 * setlocale) every entry is marked BINARY and the names come back the same. */
struct tar_scan {
    int plain;          /* entries without an extended header */
    int binary;         /* entries whose extended header says hdrcharset=BINARY */
    int other;          /* entries with an extended header that does not */
    int ascii_binary;   /* ... of which "ascii" or "whole": marked BINARY */
    int ascii_extended; /* "whole" (ASCII, whole-second mtime) with an extended header */
};

static struct tar_scan
scan_tar(const unsigned char *tar, size_t len)
{
    struct tar_scan sc = {0};
    size_t off = 0;
    bool ext = false, bin = false;
    while (off + 512 <= len && tar[off] != 0) {
        const unsigned char *h = tar + off;
        char sizebuf[13] = {0};
        memcpy(sizebuf, h + 124, 12);
        size_t size = (size_t)strtoull(sizebuf, NULL, 8);
        size_t body = (size + 511) / 512 * 512;
        if (h[156] == 'x') {
            ext = true;
            bin = memmem(tar + off + 512, size, "hdrcharset=BINARY", 17) != NULL;
        } else {
            char name[101] = {0};
            memcpy(name, h, 100);
            const char *base_name = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
            bool ascii = strcmp(base_name, "ascii") == 0 || strcmp(base_name, "whole") == 0;
            if (!ext)
                sc.plain++;
            else if (bin)
                sc.binary++;
            else
                sc.other++;
            if (ascii && bin)
                sc.ascii_binary++;
            if (strcmp(base_name, "whole") == 0 && ext)
                sc.ascii_extended++;
            ext = bin = false;
        }
        off += 512 + body;
    }
    return sc;
}

static void
archive_and_restore(const char *src, const char *dst, struct tar_scan *sc)
{
    struct sb_error err = SB_ERROR_INIT;
    sb_remove_tree(dst, &err);
    mkdir(dst, 0755);
    unsigned char *tar = NULL;
    size_t len = 0;
    struct sb_ostream *out = sb_mem_ostream_new(&tar, &len);
    uint64_t written = 0;
    EXPECT_OK(sb_tree_archive(src, SB_TREE_STRICT, out, &written, NULL, &err), &err);
    sb_ostream_free(out);
    *sc = scan_tar(tar, len);
    struct sb_istream *in = sb_mem_istream_new(tar, len);
    EXPECT_OK(sb_tree_extract(in, dst, SB_EXTRACT_WRITE, NULL, &err), &err);
    sb_istream_free(in);
    free(tar);
}

static void
test_names_are_bytes(void)
{
    static const char *const names[] = {
        "ascii",
        "whole",
        "caf\xc3\xa9-nfc",
        "cafe\xcc\x81-nfd",
        "not-utf8-\xff\xfe",
        "latin1-caf\xe9",
        "cesu-\xed\xa0\xbd\xed\xb8\x80",
        "overlong-\xc0\xaf",
        "emoji-\xf0\x9f\x9a\x80",
    };
    const size_t n = sizeof(names) / sizeof(names[0]);
    char src[300], dst[300], path[600], target[600];
    snprintf(src, sizeof(src), "%s/names-src", base);
    snprintf(dst, sizeof(dst), "%s/names-dst", base);
    struct sb_error err = SB_ERROR_INIT;
    sb_remove_tree(src, &err);
    mkdir(src, 0755);
    for (size_t i = 0; i < n; i++) {
        snprintf(path, sizeof(path), "%s/%s", src, names[i]);
        write_file(path, names[i], 0644);
    }
    /* link targets and hard links with such bytes; a long name with them (a pax path) */
    snprintf(path, sizeof(path), "%s/link-nfd", src);
    EXPECT(symlink("cafe\xcc\x81-nfd", path) == 0);
    snprintf(path, sizeof(path), "%s/link-\xe9", src);
    EXPECT(symlink("not-utf8-\xff\xfe", path) == 0);
    snprintf(target, sizeof(target), "%s/not-utf8-\xff\xfe", src);
    snprintf(path, sizeof(path), "%s/hard-\xff", src);
    EXPECT(link(target, path) == 0);
    char longname[200];
    memset(longname, 'l', 150);
    memcpy(longname + 150, "-\xc3\xa9\xff", 5); /* with its NUL */
    snprintf(path, sizeof(path), "%s/%s", src, longname);
    write_file(path, "long", 0644);
    /* "whole": ASCII with a whole-second mtime, the case that needs no extended header */
    snprintf(path, sizeof(path), "%s/whole", src);
    struct timeval tv[2] = {{1700000000, 0}, {1700000000, 0}};
    EXPECT(utimes(path, tv) == 0);
    const int entries = (int)n + 4;

    struct sb_tree_fp fp_src, fp_dst;
    EXPECT_OK(sb_tree_fingerprint(src, &fp_src, &err), &err);
    struct tar_scan sc;
    archive_and_restore(src, dst, &sc);
    EXPECT_OK(sb_tree_fingerprint(dst, &fp_dst, &err), &err);
    EXPECT_STR(fp_dst.hex, fp_src.hex);
    EXPECT_INT(sc.ascii_binary, 0);
    EXPECT_INT(sc.ascii_extended, 0);
    EXPECT_INT(sc.plain, 1);            /* "whole" (the others have sub-second mtimes) */
    EXPECT_INT(sc.binary, entries - 2); /* all but "ascii", "whole" and the root "." */
    EXPECT_INT(sc.other, 2);            /* "ascii" and ".": only an mtime record */
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        snprintf(path, sizeof(path), "%s/%s", dst, names[i]);
        if (lstat(path, &st) != 0)
            TEST_FAIL("'%s' is not restored under its exact bytes", names[i]);
    }
    char got[64];
    snprintf(path, sizeof(path), "%s/link-\xe9", dst);
    ssize_t l = readlink(path, got, sizeof(got) - 1);
    EXPECT(l == (ssize_t)strlen("not-utf8-\xff\xfe") &&
           memcmp(got, "not-utf8-\xff\xfe", (size_t)l) == 0);

    /* a UTF-8 locale: every entry is marked BINARY, the bytes still round-trip */
    if (setlocale(LC_CTYPE, "C.UTF-8") == NULL) {
        fprintf(stderr, "  (no C.UTF-8 locale here: the UTF-8 locale case is not run)\n");
        return;
    }
    archive_and_restore(src, dst, &sc);
    setlocale(LC_CTYPE, "C");
    EXPECT_OK(sb_tree_fingerprint(dst, &fp_dst, &err), &err);
    EXPECT_STR(fp_dst.hex, fp_src.hex);
    EXPECT_INT(sc.binary, entries + 1);
    EXPECT_INT(sc.plain + sc.other, 0);
}

/* Both walks that check a release fail on a directory they cannot open with SB_E_PERM and a
 * message that names it and says what to do; the digest walk in 1 and 4 threads alike. As
 * root (where modes do not stop anyone) the walks run in a child that has become nobody. */
static int
walk_denied_codes(const char *src)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_tree_fp fp;
    int bad = 0;
    if (sb_tree_fingerprint(src, &fp, &err) == 0 || err.code != SB_E_PERM ||
        !strstr(err.msg, "/locked'; run snapback as a user who can read"))
        bad |= 1;
    for (int threads = 1; threads <= 4; threads *= 4) {
        err = (struct sb_error)SB_ERROR_INIT;
        if (sb_tree_digest_walk(src, threads, &fp, &err) == 0 || err.code != SB_E_PERM ||
            !strstr(err.msg, "/locked'; run snapback as a user who can read"))
            bad |= threads == 1 ? 2 : 4;
    }
    return bad;
}

static void
test_walks_permission_denied(void)
{
    char src[300], path[600];
    snprintf(src, sizeof(src), "%s/denied", base);
    struct sb_error err = SB_ERROR_INIT;
    sb_remove_tree(src, &err);
    EXPECT(mkdir(src, 0755) == 0);
    for (int i = 0; i < 20; i++) { /* enough directories for the helpers to take some */
        snprintf(path, sizeof(path), "%s/d%02d", src, i);
        EXPECT(mkdir(path, 0755) == 0);
    }
    snprintf(path, sizeof(path), "%s/d13/locked", src);
    EXPECT(mkdir(path, 0000) == 0);
    EXPECT(chmod(path, 0000) == 0);
    if (geteuid() != 0) {
        EXPECT_INT(walk_denied_codes(src), 0);
    } else {
        struct stat st;
        EXPECT(stat(base, &st) == 0);
        EXPECT(chmod(base, 0711) == 0); /* nobody must reach src */
        pid_t pid = fork();
        EXPECT(pid >= 0);
        if (pid == 0) {
            if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
                _exit(100);
            _exit(walk_denied_codes(src));
        }
        int status = 0;
        EXPECT(waitpid(pid, &status, 0) == pid);
        EXPECT(WIFEXITED(status));
        EXPECT_INT(WEXITSTATUS(status), 0);
        EXPECT(chmod(base, st.st_mode & 07777) == 0);
    }
    EXPECT(chmod(path, 0755) == 0);
    sb_remove_tree(src, &err);
}

/* The fingerprint line as it was formatted before the numbers were written by hand: the
 * lines name release objects (docs/FORMAT.md), so the bytes must never change. */
static size_t
ref_fp_line(char *line, size_t cap, const char *path, const struct stat *st, const char *target,
            size_t target_len)
{
    int len = snprintf(line, cap, "%s%c%o %lld %lld.%09ld %lu %lu", path, 0, (unsigned)st->st_mode,
                       (long long)st->st_size, (long long)st->st_mtim.tv_sec, st->st_mtim.tv_nsec,
                       (unsigned long)st->st_uid, (unsigned long)st->st_gid);
    size_t n = len < 0 ? 0 : (size_t)len < cap ? (size_t)len : cap - 1;
    if (target && target_len && n + target_len < cap) {
        memcpy(line + n, target, target_len);
        n += target_len;
    }
    if (n + 1 < cap)
        line[n++] = '\n';
    return n;
}

static uint64_t
xorshift(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* sb_fp_line gives exactly the bytes of ref_fp_line: extreme and random numbers (negative
 * sizes and times, nanoseconds out of range), paths of every length up to PATH_MAX, small
 * buffers (truncation), with and without a symlink target. */
static void
test_fp_line_bytes(void)
{
    static char path[PATH_MAX], target[PATH_MAX], got[SB_FP_LINE_MAX], want[SB_FP_LINE_MAX];
    const long long edges[] = {0,
                               1,
                               -1,
                               9,
                               10,
                               99,
                               100,
                               4095,
                               1000000000LL,
                               -1000000000LL,
                               INT64_MAX,
                               INT64_MIN,
                               (long long)UINT32_MAX};
    const long nsecs[] = {0, 1, 9, 10, 123456789, 999999999, -1, 1000000000, LONG_MIN, LONG_MAX};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int mismatches = 0;
    for (int round = 0; round < 200000 && mismatches < 5; round++) {
        struct stat st;
        memset(&st, 0, sizeof(st));
        uint64_t r = xorshift(&x);
        st.st_mode = (mode_t)(round % 3 ? (r & 0177777) : r >> 32);
        st.st_size = (off_t)(round % 5 ? (long long)(r % 100000) : edges[r % 13]);
        st.st_mtim.tv_sec =
            (time_t)(round % 7 ? (long long)(xorshift(&x) >> 33) : edges[xorshift(&x) % 13]);
        st.st_mtim.tv_nsec = round % 11 ? (long)(xorshift(&x) % 1000000000) : nsecs[r % 10];
        st.st_uid = (uid_t)(round % 2 ? r % 70000 : r >> 16);
        st.st_gid = (gid_t)(round % 2 ? r % 70000 : r >> 40);
        size_t plen = round % 97 ? xorshift(&x) % 64 : xorshift(&x) % PATH_MAX;
        for (size_t idx = 0; idx < plen; idx++)
            path[idx] = (char)(1 + xorshift(&x) % 255);
        path[plen] = '\0';
        size_t tlen = round % 4 ? 0 : xorshift(&x) % (round % 89 ? 40 : PATH_MAX);
        for (size_t idx = 0; idx < tlen; idx++)
            target[idx] = (char)(1 + xorshift(&x) % 255);
        size_t cap = round % 13 ? SB_FP_LINE_MAX : 1 + xorshift(&x) % (plen + 200);
        memset(got, 'x', sizeof(got));
        memset(want, 'y', sizeof(want));
        size_t n1 = sb_fp_line(got, cap, path, &st, tlen ? target : NULL, tlen);
        size_t n2 = ref_fp_line(want, cap, path, &st, tlen ? target : NULL, tlen);
        if (n1 != n2 || memcmp(got, want, n1) != 0) {
            mismatches++;
            fprintf(stderr, "round %d: cap %zu, path length %zu: %zu bytes against %zu\n", round,
                    cap, plen, n1, n2);
        }
    }
    EXPECT_INT(mismatches, 0);
}

int
main(void)
{
    snprintf(base, sizeof(base), "/tmp/snapback-test-extract-XXXXXX");
    if (!mkdtemp(base))
        return 1;
    RUN(test_hostile_entries_refused);
    RUN(test_verify_mode_refuses_too);
    RUN(test_garbage_is_not_tar);
    RUN(test_tree_roundtrip);
    RUN(test_tree_walks_agree);
    RUN(test_walks_permission_denied);
    RUN(test_names_are_bytes);
    RUN(test_fp_line_bytes);
    struct sb_error err = SB_ERROR_INIT;
    sb_remove_tree(base, &err);
    return test_summary();
}
