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

/* --- SFTP (src/store/sftp.c) --- */
struct sb_config;

/* A store on repository.path of an SFTP server (repository.url sftp://user@host[:port]/path).
 * It connects at the first operation: host key checked against known_hosts (unknown or
 * changed: SB_E_PERM), login with identity_file or the ssh-agent (refused: SB_E_PERM),
 * network failures and timeouts SB_E_UNAVAILABLE. Streams must be freed before the store. */
int sb_store_sftp_new(const struct sb_config *cfg, struct sb_store **out, struct sb_error *err);

/* config check: each step of reaching an SFTP repository, without changing anything there
 * except a test file created and removed in repository.path. */
enum sb_sftp_step {
    SB_SFTP_STEP_CONNECT, /* TCP and SSH handshake */
    SB_SFTP_STEP_HOSTKEY, /* the host key is in known_hosts */
    SB_SFTP_STEP_LOGIN,   /* public-key login and the SFTP subsystem */
    SB_SFTP_STEP_WRITE,   /* repository.path exists and the user can create files in it */
    SB_SFTP_STEP_DONE,
};

struct sb_sftp_probe {
    enum sb_sftp_step failed_at; /* the step that failed, SB_SFTP_STEP_DONE when none did */
    char server[300];            /* "host:port" */
    char banner[256];            /* the server's SSH version string */
    char host_key[128];          /* "ED25519 SHA256:..." */
    char known_hosts[4096];      /* the file the key was looked up in */
    char login[4200];            /* "identity file '...'" or "a key of the ssh-agent (...)" */
    char path[4096];             /* repository.path */
    char test_file[64];          /* the name of the test file */
};

/* Returns 0 when every step passed; else -1 with err for the step in out->failed_at. */
int sb_sftp_probe(const struct sb_config *cfg, struct sb_sftp_probe *out, struct sb_error *err);

/* remote trust: the server's host key and whether known_hosts knows it. */
struct sb_sftp_hostkey {
    char type[16];          /* "ED25519", "ECDSA", "RSA" */
    char fingerprint[64];   /* "SHA256:..." as OpenSSH prints it */
    char server[300];       /* "host:port" */
    char name[300];         /* as written in known_hosts: "host" (port 22) or "[host]:port" */
    char known_hosts[4096]; /* repository.known_hosts or ~/.ssh/known_hosts */
    bool known;             /* known_hosts has this key for the host */
    bool changed;           /* known_hosts has another key of this type for the host */
    unsigned revoked_line;  /* known_hosts marks this key @revoked on that line (else 0) */
    char found_in[4096];    /* the file of that line, or of the key (known, changed) */
    unsigned char *key;     /* the raw key (owned; sb_sftp_hostkey_release) */
    size_t key_len;
    int key_kind;
};

/* Connects and reads the host key, without judging it and without logging in. */
int sb_sftp_hostkey_fetch(const struct sb_config *cfg, struct sb_sftp_hostkey *out,
                          struct sb_error *err);
/* Appends the key to hk->known_hosts (its dir created 0700, the file 0600 when new), keeping
 * every existing line; the file is replaced atomically (temp file, fsync, rename). */
int sb_sftp_hostkey_trust(const struct sb_sftp_hostkey *hk, struct sb_error *err);
void sb_sftp_hostkey_release(struct sb_sftp_hostkey *hk);

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
