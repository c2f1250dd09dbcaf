/* Sources and extractors: a directory tree to a tar stream and back (libarchive stays in
 * these files), and the tree fingerprint that lets an unchanged release be stored once. */
#ifndef SNAPBACK_SOURCES_H
#define SNAPBACK_SOURCES_H

#include <stdint.h>

#include "snapback/stream.h"

struct sb_tree_fp {
    char hex[33];     /* 16 bytes of BLAKE2b, hex */
    uint64_t entries; /* entries below the root */
    uint64_t bytes;   /* sum of regular file sizes */
};

/* Fingerprint of (relative path, type, size, mtime, mode, symlink target) of every entry
 * under dir, in sorted order, without reading file contents. */
int sb_tree_fingerprint(const char *dir, struct sb_tree_fp *out, struct sb_error *err);

/* Writes the tree under dir as a pax tar stream into out (not closed). Paths in the archive
 * are relative to dir; the root itself is the entry "." (not counted in *entries). Hard links
 * within the tree are kept; symlinks are stored as symlinks. *entries receives the number of
 * entries written. */
int sb_tree_archive(const char *dir, struct sb_ostream *out, uint64_t *entries,
                    struct sb_error *err);

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

#endif
