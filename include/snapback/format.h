/* The on-disk formats: key files, objects (docs/FORMAT.md), manifests and the repository
 * description (snapback.json). cJSON stays inside these files: callers get our structs. */
#ifndef SNAPBACK_FORMAT_H
#define SNAPBACK_FORMAT_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "snapback/pipeline.h"
#include "snapback/store.h"

/* --- key files: "snapback-key-v1\n<base64 of 32 bytes>\n" (symmetric), "snapback-secret-v1"
 * (a recipient's secret key), both mode 0600; "snapback-recipient-v1" (public), 0644 --- */

/* Creates path with mode 0600, refusing to overwrite it (SB_E_CANTCREATE). */
int sb_keyfile_write_new(const char *path, const struct sb_key *key, struct sb_error *err);
/* Writes the public half of a sealed key (mode 0644, no overwrite). */
int sb_pubfile_write_new(const char *path, const struct sb_key *key, struct sb_error *err);
/* Checks owner and mode (SB_E_PERM when group/world accessible or not ours), then loads a
 * symmetric or a recipient's secret key; a public key file is refused (SB_E_CONFIG). */
int sb_keyfile_load(const char *path, struct sb_key **out, struct sb_error *err);
/* Loads a recipient's public key; a file holding a secret is refused (SB_E_CONFIG). */
int sb_pubfile_load(const char *path, struct sb_key **out, struct sb_error *err);

/* --- objects --- */

struct sb_object_params {
    int level;   /* zstd level */
    int threads; /* zstd workers, 0 = all cores */
    uint32_t chunk_size;
};

struct sb_object_result {
    struct sb_digest stored; /* BLAKE2b and size of the stored bytes */
    uint64_t plain_size;     /* bytes before compression */
};

/* Opens an object for writing in the store at path: the returned stream compresses,
 * encrypts, hashes and writes atomically; *result is filled when it is closed. */
int sb_object_create(struct sb_store *st, const char *path, const struct sb_key *key,
                     const struct sb_object_params *params, struct sb_object_result *result,
                     struct sb_ostream **out, struct sb_error *err);
/* Same chain over any sink (tests, test vectors). Takes ownership of sink. */
int sb_object_writer_new(struct sb_ostream *sink, const struct sb_key *key,
                         const struct sb_object_params *params, struct sb_object_result *result,
                         struct sb_ostream **out, struct sb_error *err);
/* Opens an object for reading: the returned stream yields the plaintext; at its end the
 * final chunk, the size and (when expect is not NULL) the BLAKE2b have been checked. */
int sb_object_open(struct sb_store *st, const char *path, const struct sb_key *key,
                   const struct sb_digest *expect, struct sb_istream **out, struct sb_error *err);
/* The same for a small object that is read whole (a manifest): the same checks, without the
 * read-ahead thread. */
int sb_object_open_small(struct sb_store *st, const char *path, const struct sb_key *key,
                         const struct sb_digest *expect, struct sb_istream **out,
                         struct sb_error *err);
/* Same over any source. Takes ownership of source. */
int sb_object_reader_new(struct sb_istream *source, const struct sb_key *key,
                         const struct sb_digest *expect, struct sb_istream **out,
                         struct sb_error *err);

/* --- manifests --- */

struct sb_manifest_object {
    char *name; /* relative to <repo>/<app>/ */
    uint64_t stored_size;
    uint64_t plain_size;
    unsigned char blake2b[SB_HASH_BYTES];
};

struct sb_manifest_shared {
    char *path;   /* relative to the release root */
    char *object; /* name of its object */
};

struct sb_manifest_db {
    char *name, *engine, *server_version, *format, *object;
    /* postgresql: the database's encoding and locale when it was dumped (NULL when not
     * recorded: snapshots before 2026-11-25), which a dump without CREATE DATABASE lacks */
    struct {
        char *encoding, *collate, *ctype, *provider, *icu_locale;
        char *settings; /* its ALTER DATABASE SET settings: a JSON array of "name=value" */
        char *comment;  /* COMMENT ON DATABASE (NULL: none) */
        /* its privileges, the JSON array of docs/FORMAT.md (NULL: the default ones), and the
         * settings of roles in it (JSON array of {"role", "settings"}, NULL: none) */
        char *acl, *role_settings;
    } pg;
};

struct sb_manifest {
    char *id, *app, *host, *tag, *tool_version;
    time_t created_at;
    double duration_s;
    bool has_release;
    struct {
        char *name, *fingerprint, *object;
        uint64_t entries;
        bool reused; /* stored by an earlier snapshot */
    } release;
    struct sb_manifest_shared *shared;
    size_t shared_count;
    struct sb_manifest_db *dbs;
    size_t db_count;
    struct sb_manifest_object *objects;
    size_t object_count;
};

/* Serialises to JSON (malloc'd, NUL-terminated). */
int sb_manifest_to_json(const struct sb_manifest *m, char **out, struct sb_error *err);
/* Parses and validates a manifest (SB_E_CORRUPT when malformed). */
int sb_manifest_from_json(const char *json, size_t len, struct sb_manifest **out,
                          struct sb_error *err);
void sb_manifest_free(struct sb_manifest *m);
/* Sets d->pg.comment, acl and role_settings from a JSON object with those keys (what the
 * PostgreSQL probe read, struct sb_db_info.pg_props), each checked as the parser checks it.
 * Returns the keys that were present but malformed and so left out (a comma-separated
 * static string, "" when none), or NULL when out of memory. */
const char *sb_manifest_db_set_pg_props(struct sb_manifest_db *d, const char *json);
const struct sb_manifest_object *sb_manifest_find_object(const struct sb_manifest *m,
                                                         const char *name);
/* Adds a copy of obj to m->objects. */
int sb_manifest_add_object(struct sb_manifest *m, const struct sb_manifest_object *obj,
                           struct sb_error *err);
/* Total stored bytes of the snapshot's objects. */
uint64_t sb_manifest_stored_size(const struct sb_manifest *m);

/* --- repository description (snapback.json, no secrets) --- */

#define SB_RETIRED_KEYS_MAX 32

struct sb_repo_meta {
    int format;
    char id[33];
    char key_id[33];
    int key_mode; /* 1 symmetric, 2 sealed to a recipient (write-only hosts) */
    /* keys replaced by 'snapback key rotate', oldest first: snapshots written before a
     * rotation are read with them (the config's old_key_files) */
    size_t retired_count;
    struct {
        char key_id[33];
        int key_mode;
    } retired[SB_RETIRED_KEYS_MAX];
    time_t created;
    uint32_t chunk_size;
};

int sb_repo_meta_to_json(const struct sb_repo_meta *meta, char **out, struct sb_error *err);
int sb_repo_meta_from_json(const char *json, struct sb_repo_meta *out, struct sb_error *err);

#endif
