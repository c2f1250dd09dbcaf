/* The configuration: one JSON file per app (DESIGN §3), parsed once and strictly into an
 * immutable struct sb_config that is passed down. Unknown keys, wrong types and missing
 * required keys are errors (SB_E_CONFIG) whose message starts with the JSON path. */
#ifndef SNAPBACK_CONFIG_H
#define SNAPBACK_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "snapback/error.h"

enum sb_db_engine { SB_DB_POSTGRESQL, SB_DB_MYSQL, SB_DB_SQLITE };
enum sb_rollback_db { SB_ROLLBACK_DB_NEVER, SB_ROLLBACK_DB_ASK, SB_ROLLBACK_DB_ALWAYS };

/* A command: either a shell string (argv == NULL, shell set) or an argv vector. */
struct sb_command_spec {
    char *shell;  /* run with /bin/sh -c; NULL when argv is used */
    char **argv;  /* NULL-terminated; NULL when shell is used */
    bool present; /* false when the key is absent */
};

struct sb_db_config {
    char *name;
    enum sb_db_engine engine;
    char *host;          /* postgresql/mysql: host name or socket dir; NULL = default */
    int port;            /* 0 = default */
    char *dbname;        /* postgresql/mysql */
    char *user;          /* NULL = default */
    char *password_file; /* NULL = none */
    char *path;          /* sqlite */
};

/* verify.sql_probe[]: a query run by verify --restore-db in each scratch restore of a database. */
struct sb_sql_probe {
    char *database; /* names one of databases[] (checked when parsed) */
    char *sql;
    char *expect; /* NULL: the query must succeed and return at least one row; else the trimmed
                     first row must be exactly this text */
};

struct sb_config {
    char *source_path; /* the file it was read from */
    char *app;

    bool has_release;
    struct {
        char *root;          /* absolute */
        char *releases_dir;  /* relative to root; default "releases" */
        char *current;       /* relative to root; default "current" */
        char **shared_paths; /* relative to root, NULL-terminated, may be empty */
        size_t shared_count;
        int keep_releases; /* default 5 */
    } release;

    struct sb_db_config *databases;
    size_t database_count;

    struct {
        char *url; /* as written */
        bool is_sftp;
        char *path;                     /* local: the directory; sftp: the remote path */
        char *sftp_user;                /* sftp only */
        char *sftp_host;                /* sftp only */
        int sftp_port;                  /* sftp only; default 22 */
        char *identity_file;            /* sftp only, optional */
        char *identity_passphrase_file; /* sftp only, optional; needs identity_file */
        char *known_hosts;              /* sftp only, optional; default ~/.ssh/known_hosts */
        int timeout_s;                  /* sftp: seconds without progress; 1..3600, default 30 */
        int retries;                    /* sftp: reconnects after a drop; 0..20, default 5 */
    } repository;

    char *key_file; /* exactly one of key_file and recipient */
    char *recipient;
    char **old_key_files; /* keys retired by 'key rotate', for reading; absolute */
    size_t old_key_count;
    /* Not in the file: --key FILE / SNAPBACK_KEY_FILE, the key to read with; set by the CLI,
     * used instead of key_file or recipient (a write-only host's secret key, elsewhere). */
    char *read_key_file;
    char *state_dir;   /* absolute */
    int64_t max_age_s; /* 0 = not set */

    struct {
        int level;   /* 1..19, default 3 */
        int threads; /* 0 = all cores (default) */
    } compression;

    struct {
        char *snapshot; /* cron expressions as written, NULL when absent */
        char *prune;
        char *verify;
        char *timezone;   /* IANA zone name (checked under /usr/share/zoneinfo); NULL = local */
        int64_t jitter_s; /* 0..3600: each fire is delayed by a random 0..jitter_s seconds */
    } schedule;

    struct {
        int keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly;
        int64_t keep_within_s;
    } retention;

    struct {
        enum sb_rollback_db database; /* default never */
        bool auto_revert;             /* default true */
        int health_timeout_s;         /* default 60 */
    } rollback;

    struct {
        struct sb_command_spec before_snapshot, after_snapshot, before_rollback, after_rollback,
            health_check, on_error;
        int timeout_s; /* per hook; default 300 */
    } hooks;

    char *metrics_file; /* NULL = none */

    struct {
        struct sb_sql_probe *sql_probes; /* in config order; may be NULL when count is 0 */
        size_t sql_probe_count;
    } verify;
};

/* Parses and validates JSON text. path is used in messages. On success *out is a new config
 * owned by the caller (sb_config_free). On failure err says which JSON path is wrong. */
int sb_config_parse(const char *json, size_t len, const char *path, struct sb_config **out,
                    struct sb_error *err);
/* Reads the file and parses it. A missing file is SB_E_CONFIG with a hint. */
int sb_config_load(const char *path, struct sb_config **out, struct sb_error *err);
void sb_config_free(struct sb_config *cfg);
/* The configured database called name, or NULL (also when cfg is NULL). */
const struct sb_db_config *sb_config_find_db(const struct sb_config *cfg, const char *name);
/* Parses a duration like "90s", "90m", "2h", "1d", "2w" into seconds. */
int sb_parse_duration(const char *text, int64_t *seconds);
/* Checks that a secret file (key, password, identity) exists, is a regular file owned by the
 * current user and not readable or writable by group or others: SB_E_PERM otherwise, with the
 * chmod to run. what names the file's role in messages ("key file"). */
int sb_check_secret_file(const char *path, const char *what, struct sb_error *err);

#endif
