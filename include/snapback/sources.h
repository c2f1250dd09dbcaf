/* Sources and extractors: a directory tree to a tar stream and back (libarchive stays in
 * these files), and the tree fingerprint that lets an unchanged release be stored once. */
#ifndef SNAPBACK_SOURCES_H
#define SNAPBACK_SOURCES_H

#include <stdbool.h>
#include <stdint.h>

#include "snapback/stream.h"

/* The metadata of a tree in any order: the sum (mod 2^128) of a hash of every entry's
 * fingerprint line, and the number of entries. Two walks that saw the same entries with the
 * same metadata have equal digests, whatever order they read the directories in. */
struct sb_tree_digest {
    uint64_t sum[2];
    uint64_t entries;
};

struct sb_tree_fp {
    char hex[33];     /* 16 bytes of BLAKE2b, hex */
    uint64_t entries; /* entries below the root */
    uint64_t bytes;   /* sum of regular file sizes */
    struct sb_tree_digest digest;
};

/* Fingerprint of (relative path, type, size, mtime, mode, symlink target) of every entry
 * under dir, in sorted order, without reading file contents. */
int sb_tree_fingerprint(const char *dir, struct sb_tree_fp *out, struct sb_error *err);

/* The same walk without the ordered hash: fills out->digest, entries and bytes (out->hex is
 * left empty), in threads (0: one per core, at most 4) that share the tree's directories, in
 * no particular order. What a check that a tree is as it was needs: equal digests mean the
 * same entries with the same metadata. Errors as sb_tree_fingerprint's. */
int sb_tree_digest_walk(const char *dir, int threads, struct sb_tree_fp *out, struct sb_error *err);

/* How sb_tree_archive treats a tree that changes under it. */
enum sb_tree_mode {
    /* A release: immutable once deployed. An entry that vanishes, or a file that shrinks
     * while it is read, fails the archive with SB_E_TEMPFAIL (run it again). */
    SB_TREE_STRICT,
    /* A shared path (uploads, caches): written by the app while we read it. An entry that
     * vanishes before it is read is skipped with a warning (it no longer exists, so there is
     * nothing to lose); a file that shrinks while it is read is stored padded with zeros to
     * the size its header declared, with a warning naming it. */
    SB_TREE_VOLATILE,
};

/* Writes the tree under dir as a pax tar stream into out (not closed). Paths in the archive
 * are relative to dir; the root itself is the entry "." (not counted in *entries). Hard links
 * within the tree are kept; symlinks are stored as symlinks. *entries receives the number of
 * entries written. With seen (not NULL), the tree is archived in the fingerprint's order and
 * *seen receives the fingerprint of the metadata each entry had when it was archived (its
 * stat before its data was read): the hex sb_tree_fingerprint gives for that state, and the
 * digest, to compare with a digest walk taken after the archive. A file that grows while it
 * is read is stored with the size its stat gave (a prefix of what it became). */
int sb_tree_archive(const char *dir, enum sb_tree_mode mode, struct sb_ostream *out,
                    uint64_t *entries, struct sb_tree_fp *seen, struct sb_error *err);
bool sb_tree_digest_equal(const struct sb_tree_digest *a, const struct sb_tree_digest *b);

enum sb_extract_mode {
    SB_EXTRACT_WRITE, /* write to dest */
    SB_EXTRACT_LIST,  /* read every entry and its data, write nothing (verify) */
};

/* Reads a tar stream from in and recreates it under dest (an existing, empty directory),
 * or only walks it. Refuses, with SB_E_CORRUPT, entries with absolute paths, '..'
 * components, hard links out of the tree and writes through symlinks. Reads in to its end
 * (so every integrity check of the stream runs). */
int sb_tree_extract(struct sb_istream *in, const char *dest, enum sb_extract_mode mode,
                    uint64_t *entries, struct sb_error *err);
/* Which entries sb_tree_extract_some writes: those whose path is one of paths or below one
 * ("" is the whole tree). Paths are clean relative paths (no '.', '..', empty components, or
 * trailing '/'). matched (count entries, zeroed by the caller) receives how many entries
 * each path selected. A selected hard link whose target is left out is SB_E_USAGE. */
struct sb_tree_entry; /* below */
struct sb_extract_filter {
    const char *const *paths;
    size_t count;
    size_t *matched;
    /* SB_EXTRACT_LIST: called for every selected entry (snapback ls), or NULL; returning
     * false stops the walk (an SB_E_IO error) */
    bool (*visit)(const struct sb_tree_entry *entry, void *arg);
    void *visit_arg;
};
/* An archived entry as sb_extract_filter.visit sees it. */
struct sb_tree_entry {
    const char *path; /* relative to the object's root; "" is the root itself */
    char type;        /* '-' file, 'd', 'l' symlink, 'h' hard link, 'c', 'b', 'p' */
    unsigned mode;    /* permission bits, 07777 */
    long long uid, gid;
    const char *user, *group; /* the names as archived, or NULL */
    long long size;           /* of a regular file's data */
    long long mtime;          /* seconds since the epoch (UTC) */
    long mtime_nsec;
    const char *link; /* a symlink's or hard link's target, or NULL */
};
/* sb_tree_extract with a filter (NULL: everything). Every entry is still read and checked. */
int sb_tree_extract_some(struct sb_istream *in, const char *dest, enum sb_extract_mode mode,
                         const struct sb_extract_filter *filter, uint64_t *entries,
                         struct sb_error *err);

#endif
