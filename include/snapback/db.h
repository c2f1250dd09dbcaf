/* Database sources (DESIGN §4, issue #3): a consistent dump of each configured database is
 * streamed into the pipeline, and a dump is streamed back into a database or a file.
 *   postgresql: pg_dump -Fc -Z0 from the child's stdout; pg_restore from its stdin
 *   mysql:      mysqldump --single-transaction ... ; mysql client
 *   sqlite:     VACUUM INTO a 0600 temp file in state_dir (libsqlite3), then streamed
 * Credentials go through a 0600 temp file (PGPASSFILE, --defaults-extra-file) in state_dir,
 * removed afterwards, never argv. */
#ifndef SNAPBACK_DB_H
#define SNAPBACK_DB_H

#include <stdbool.h>

#include "snapback/config.h"
#include "snapback/stream.h"

struct sb_db_info {
    char server_version[64];
    const char *format; /* "pg_dump-custom", "mysqldump-sql", "sqlite3" */
    /* mysql: the database's default character set and collation, which mysqldump does not
     * write for a single database; the dump starts with an ALTER DATABASE that sets them. */
    char charset[64];
    char collation[64];
    /* MariaDB 10.5+: the database's COMMENT in hex ("" none), set again by the dump's head */
    char my_comment_hex[8200];
    /* mysql: the number of system-versioned tables (MariaDB), whose history needs
     * mariadb-dump --dump-history */
    unsigned versioned_tables;
    /* postgresql: the database's encoding and locale ("" when unknown); provider "libc" or
     * "icu" (PostgreSQL 15+) */
    char pg_encoding[32], pg_collate[128], pg_ctype[128], pg_provider[16], pg_icu_locale[128];
    /* postgresql: its ALTER DATABASE SET settings, a JSON array of "name=value" ("" none) */
    char pg_settings[4096];
    /* postgresql: what else a dump without CREATE DATABASE lacks, as the JSON object
     * {"comment": text|null, "acl": [{"grantee": role|null (PUBLIC), "privilege",
     * "grantable"}]|null (the default privileges), "role_settings": [{"role", "settings"}]|null}
     * ("" when not read) */
    char pg_props[16384];
};

/* postgresql: how the database a restore creates is to be made (the source's encoding and
 * locale, from the manifest); any member may be NULL. */
struct sb_db_create {
    const char *encoding, *collate, *ctype, *provider, *icu_locale;
    const char *settings; /* JSON array of "name=value": ALTER DATABASE SET on the new one */
    /* applied to a new database, not to a scratch one (verify): the database's comment, its
     * privileges (JSON array as in the manifest, NULL: the defaults) and its per-role settings
     * (ALTER ROLE ... IN DATABASE SET: JSON array of {"role", "settings"}) */
    const char *comment, *acl, *role_settings;
};

struct sb_manifest_db;
/* The sb_db_create of a database recorded in a manifest, in buf; NULL when the manifest has
 * none (not PostgreSQL, or a snapshot from before 2026-11-25). */
const struct sb_db_create *sb_db_create_of(const struct sb_manifest_db *d,
                                           struct sb_db_create *buf);

const char *sb_db_engine_name(enum sb_db_engine engine);
/* The file name suffix of a dump restored as a file: ".pgdump", ".sql", ".sqlite3". */
const char *sb_db_dump_suffix(const char *engine);
/* Connects and reads the server version (a check before any snapshot work). Errors:
 * SB_E_UNAVAILABLE (server down, client missing), SB_E_PERM (auth), SB_E_NOTFOUND. */
int sb_db_probe(const struct sb_db_config *db, const char *state_dir, struct sb_db_info *info,
                struct sb_error *err);
/* What a snapshot of db needs besides the server (info: what sb_db_probe returned): the dump
 * client installed, and for PostgreSQL a pg_dump at least as new as the server (pg_dump
 * refuses to dump a newer server). SB_E_UNAVAILABLE naming the package otherwise. */
int sb_db_check_dump_client(const struct sb_db_config *db, const struct sb_db_info *info,
                            struct sb_error *err);
/* Streams a consistent dump into out (not closed). probed is what sb_db_probe returned for
 * db (the caller probes every database before it writes anything). */
int sb_db_dump(const struct sb_db_config *db, const char *state_dir,
               const struct sb_db_info *probed, struct sb_ostream *out, struct sb_error *err);
enum sb_db_restore_mode {
    SB_DB_RESTORE_NEW,      /* into a target that must not exist yet */
    SB_DB_RESTORE_IN_PLACE, /* replace the contents of an existing target */
    SB_DB_RESTORE_SCRATCH,  /* a new, throwaway target (verify): PostgreSQL skips GRANTs */
};
/* Restores a dump read from in into target: a database name on the configured server
 * (postgresql, mysql) or a file path (sqlite). A target that exists is refused unless
 * SB_DB_RESTORE_IN_PLACE (then postgresql uses --clean --if-exists --single-transaction,
 * sqlite copies the checked dump into the live file with the online backup API, mysql loads
 * into the existing database). create (NULL: the server's defaults): the encoding and locale
 * of a PostgreSQL database the restore creates. */
int sb_db_restore(const struct sb_db_config *db, const char *target, enum sb_db_restore_mode mode,
                  const struct sb_db_create *create, const char *state_dir, struct sb_istream *in,
                  struct sb_error *err);
/* Drops a database created for a scratch restore (postgresql, mysql) or removes the file. */
int sb_db_drop(const struct sb_db_config *db, const char *target, const char *state_dir,
               struct sb_error *err);

/* Runs one SQL statement in target (a database name, or a SQLite file) and returns its rows,
 * columns separated by '|', one row per line (malloc'd). */
int sb_db_query(const struct sb_db_config *db, const char *target, const char *sql,
                const char *state_dir, char **out, struct sb_error *err);
/* Drops scratch databases whose name starts with prefix (left by a killed verify). */
int sb_db_drop_leftovers(const struct sb_db_config *db, const char *prefix, const char *state_dir,
                         struct sb_error *err);

/* Where Debian's postgresql-common installs each client version (bin/ under it). */
#define SB_PG_BINROOT "/usr/lib/postgresql"
/* The PostgreSQL client `name` (psql, pg_dump, pg_restore) to run for a connection given with
 * -h: when the first `name` in path_env (a PATH) is Debian's pg_wrapper (a Perl script,
 * 30-100 ms per start), the binary it would itself run for -h, the newest version under
 * binroot that has `name`, written to out. Otherwise out is "" and `name` is run from PATH as
 * it is (a user's own client, or no wrapper). */
void sb_pg_client_path(const char *name, const char *path_env, const char *binroot, char *out,
                       size_t cap);

#endif
