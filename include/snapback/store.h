/* Storage backends behind one interface (DESIGN §6, STYLE "Storage"): a repository is a tree
 * of files addressed by relative paths ("shop/snapshots/ID.manifest"), identical on local disk
 * and over SFTP. Writes are atomic: open_write returns an ostream that writes NAME.partial;
 * closing it makes the data durable and renames it to NAME; freeing it without a successful
 * close removes the partial file. */
#ifndef SNAPBACK_STORE_H
#define SNAPBACK_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "snapback/stream.h"

#define SB_STORE_NO_REPLACE 1u /* open_write: fail with SB_E_CANTCREATE if NAME exists */

struct sb_store;

struct sb_store_stat {
    bool exists;
    bool is_dir;
    uint64_t size;
    time_t mtime;
};

struct sb_store_ops {
    int (*open_read)(struct sb_store *st, const char *path, struct sb_istream **out,
                     struct sb_error *err);
    int (*open_write)(struct sb_store *st, const char *path, unsigned flags,
                      struct sb_ostream **out, struct sb_error *err);
    /* Names directly inside dir (no "." or ".."), sorted; a missing dir is an empty list. */
    int (*list)(struct sb_store *st, const char *dir, char ***names, size_t *count,
                struct sb_error *err);
    int (*stat)(struct sb_store *st, const char *path, struct sb_store_stat *out,
                struct sb_error *err);
    /* Removes a file, or an empty directory; a missing path is not an error. */
    int (*remove)(struct sb_store *st, const char *path, struct sb_error *err);
    int (*rename)(struct sb_store *st, const char *from, const char *to, struct sb_error *err);
    void (*free)(struct sb_store *st);
};

struct sb_store {
    const struct sb_store_ops *ops;
    char *display; /* for messages: "/srv/backups" or "sftp://user@host:22/srv/backups" */
};

/* A store on a local directory. The directory need not exist yet (init creates it). */
int sb_store_local_new(const char *root, struct sb_store **out, struct sb_error *err);

int sb_store_open_read(struct sb_store *st, const char *path, struct sb_istream **out,
                       struct sb_error *err);
int sb_store_open_write(struct sb_store *st, const char *path, unsigned flags,
                        struct sb_ostream **out, struct sb_error *err);
int sb_store_list(struct sb_store *st, const char *dir, char ***names, size_t *count,
                  struct sb_error *err);
int sb_store_stat(struct sb_store *st, const char *path, struct sb_store_stat *out,
                  struct sb_error *err);
int sb_store_remove(struct sb_store *st, const char *path, struct sb_error *err);
int sb_store_rename(struct sb_store *st, const char *from, const char *to, struct sb_error *err);
/* Writes a small buffer as one atomic object. */
int sb_store_put(struct sb_store *st, const char *path, unsigned flags, const void *data,
                 size_t len, struct sb_error *err);
/* Reads a whole small file (at most max bytes); *out is NUL-terminated, malloc'd. */
int sb_store_get(struct sb_store *st, const char *path, size_t max, char **out, size_t *len,
                 struct sb_error *err);
void sb_store_free(struct sb_store *st);
void sb_store_names_free(char **names, size_t count);

#endif
