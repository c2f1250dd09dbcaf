/* Shared by the fingerprint walks (release.c, tree_digest.c): the fingerprint line of one
 * entry and the order-independent digest of a tree's lines (docs/FORMAT.md). */
#ifndef SNAPBACK_SOURCES_TREE_INTERNAL_H
#define SNAPBACK_SOURCES_TREE_INTERNAL_H

#include <limits.h>
#include <stddef.h>
#include <sys/stat.h>

#include "snapback/sources.h"

/* room for a fingerprint line: a path, a symlink target and the numbers */
#define SB_FP_LINE_MAX (2 * PATH_MAX + 200)

/* The fingerprint line of one entry: "PATH\0MODE SIZE MTIME UID GID" then the symlink target
 * (if any) and "\n"; returns its length. */
size_t sb_fp_line(char *line, size_t cap, const char *path, const struct stat *st,
                  const char *target, size_t target_len);

/* Adds one line to an order-independent digest. */
void sb_fp_digest_add(struct sb_tree_digest *d, const char *line, size_t len);

/* The error for a path below dir (in) that, with a name appended, reaches PATH_MAX. */
int sb_fp_path_too_long(struct sb_error *err, const char *dir, const char *in);

#endif
