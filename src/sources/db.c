/* Database dumps and restores for PostgreSQL, MariaDB/MySQL and SQLite (include/snapback/
 * db.h). Client programs run as children whose output is streamed, never staged in a temp
 * file; SQLite, which has no server to stream from, is copied consistently with VACUUM INTO
 * (or the backup API) to a 0600 file in state_dir, streamed, and removed. Failures are classified
 * from the client's stderr so the exit code says what to do: 69 server down or client missing, 77
 * refused. */
#include "snapback/db.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapback/core.h"
#include "snapback/format.h"
#include "snapback/proc.h"

#define ARGV_MAX 40 /* the longest: psql in place, 29 with every connection option */

const struct sb_db_create *
sb_db_create_of(const struct sb_manifest_db *d, struct sb_db_create *buf)
{
    if (!d->pg.encoding)
        return NULL;
    *buf = (struct sb_db_create){.encoding = d->pg.encoding,
                                 .collate = d->pg.collate,
                                 .ctype = d->pg.ctype,
                                 .provider = d->pg.provider,
                                 .icu_locale = d->pg.icu_locale,
                                 .settings = d->pg.settings,
                                 .comment = d->pg.comment,
                                 .acl = d->pg.acl,
                                 .role_settings = d->pg.role_settings};
    return buf;
}

const char *
sb_db_engine_name(enum sb_db_engine engine)
{
    switch (engine) {
    case SB_DB_POSTGRESQL:
        return "postgresql";
    case SB_DB_MYSQL:
        return "mysql";
    case SB_DB_SQLITE:
        return "sqlite";
    }
    return "unknown";
}

const char *
sb_db_dump_suffix(const char *engine)
{
    if (!strcmp(engine, "postgresql"))
        return ".pgdump";
    if (!strcmp(engine, "mysql"))
        return ".sql";
    return ".sqlite3";
}

/* --- credentials --- */

/* A 0600 temp file in state_dir/tmp holding text (a password file for a client). */
/* A run killed with SIGKILL cannot remove its credentials file (a MySQL option file holds the
 * password): the next run removes it once the process that made it is gone, which its name
 * (cred-PID-XXXXXX) tells. A file whose process still runs (a concurrent verify or snapshot)
 * is left alone. */
static void
sweep_stale_credentials(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *entry;
    while ((entry = readdir(d))) {
        long pid = 0;
        char rest = '\0';
        if (sscanf(entry->d_name, "cred-%ld-%c", &pid, &rest) != 2 || pid <= 0 ||
            pid == (long)getpid())
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        if (unlinkat(dirfd(d), entry->d_name, 0) == 0)
            sb_warn("removed the credentials file '%s/%s' left by an interrupted run (pid %ld)",
                    dir, entry->d_name, pid);
    }
    closedir(d);
}

static int
secret_file_new(const char *state_dir, const char *text, char path[PATH_MAX], struct sb_error *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/tmp", state_dir);
    if (sb_mkdir_p(dir, 0700, err) < 0)
        return -1;
    sweep_stale_credentials(dir);
    if (snprintf(path, PATH_MAX, "%s/cred-%ld-XXXXXX", dir, (long)getpid()) >= PATH_MAX)
        return sb_error_set(err, SB_E_USAGE, 0, "state_dir '%s' is too long", state_dir);
    int fd = mkstemp(path);
    if (fd < 0)
        return sb_error_set(err, SB_E_CANTCREATE, errno, "cannot create a credentials file in '%s'",
                            dir);
    size_t len = strlen(text);
    if (fchmod(fd, 0600) < 0 || write(fd, text, len) != (ssize_t)len) {
        sb_error_set(err, SB_E_IO, errno, "cannot write credentials file '%s'", path);
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

/* Reads the first line of password_file (checked like every secret) into sodium memory. */
static int
read_password(const struct sb_db_config *db, char **out, struct sb_error *err)
{
    *out = NULL;
    if (!db->password_file)
        return 0;
    if (sb_check_secret_file(db->password_file, "password file", err) < 0)
        return -1;
    char *text = NULL;
    size_t len = 0;
    if (sb_read_file(db->password_file, 4096, &text, &len, err) < 0)
        return -1;
    char *nl = strpbrk(text, "\r\n");
    if (nl)
        *nl = '\0';
    size_t plen = strlen(text);
    char *pw = sodium_malloc(plen + 1);
    if (pw)
        memcpy(pw, text, plen + 1);
    sodium_memzero(text, len);
    free(text);
    if (!pw)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    *out = pw;
    return 0;
}

/* Appends s to buf escaping ':' and '\' as .pgpass requires. */
static void
pgpass_escape(char *buf, size_t cap, const char *s)
{
    size_t pos = strlen(buf);
    for (; *s && pos + 2 < cap; s++) {
        if (*s == ':' || *s == '\\')
            buf[pos++] = '\\';
        buf[pos++] = *s;
    }
    buf[pos] = '\0';
}

/* Appends s at pos inside a double-quoted MariaDB/MySQL option-file value: backslash, quote
 * and control characters are escaped as the option-file parser reads them (\\ \" \n \r \t).
 * Returns the new length (cut at cap). */
static size_t
option_escape(char *buf, size_t cap, size_t pos, const char *s)
{
    for (; *s && pos + 3 < cap; s++) {
        char c = *s;
        const char *esc = c == '\\'   ? "\\\\"
                          : c == '"'  ? "\\\""
                          : c == '\n' ? "\\n"
                          : c == '\r' ? "\\r"
                          : c == '\t' ? "\\t"
                                      : NULL;
        if (esc) {
            buf[pos++] = esc[0];
            buf[pos++] = esc[1];
        } else {
            buf[pos++] = c;
        }
    }
    buf[pos] = '\0';
    return pos;
}

/* The PostgreSQL clients, by index into client_env.pg_path. */
enum pg_client { PG_PSQL, PG_DUMP, PG_RESTORE, PG_CLIENTS };
static const char *const pg_client_names[PG_CLIENTS] = {"psql", "pg_dump", "pg_restore"};

struct client_env {
    char cred_path[PATH_MAX];
    char env_entry[PATH_MAX + 32];
    const char *env[4]; /* NULL-terminated */
    bool has_cred;
    char pg_path[PG_CLIENTS][PATH_MAX]; /* sb_pg_client_path's choice, "" for PATH's */
};

/* argv[0] for a PostgreSQL client: the binary pg_wrapper would run, or the name in PATH. */
static const char *
pg_client(const struct client_env *ce, enum pg_client c)
{
    return ce->pg_path[c][0] ? ce->pg_path[c] : pg_client_names[c];
}

static void
client_env_release(struct client_env *ce)
{
    if (ce->has_cred)
        unlink(ce->cred_path);
    ce->has_cred = false;
}

static int
client_env_init(const struct sb_db_config *db, const char *state_dir, struct client_env *ce,
                struct sb_error *err)
{
    memset(ce, 0, sizeof(*ce));
    char *pw = NULL;
    if (read_password(db, &pw, err) < 0)
        return -1;
    char *text = sodium_malloc(8192);
    if (!text) {
        if (pw)
            sodium_free(pw);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    text[0] = '\0';
    int rc = 0;
    size_t env_idx = 0;
    if (db->engine == SB_DB_POSTGRESQL) {
        if (pw) {
            snprintf(text, 8192, "*:*:*:*:");
            pgpass_escape(text, 8192, pw);
            strncat(text, "\n", 8191 - strlen(text));
            rc = secret_file_new(state_dir, text, ce->cred_path, err);
            if (rc == 0) {
                ce->has_cred = true;
                snprintf(ce->env_entry, sizeof(ce->env_entry), "PGPASSFILE=%s", ce->cred_path);
                ce->env[env_idx++] = ce->env_entry;
            }
        }
        ce->env[env_idx++] = "PGCONNECT_TIMEOUT=15";
        /* Without pg_wrapper in between: what it would run for -h, and the one setting it
         * makes for every client (libpq's pg_service.conf in postgresql-common's dir). */
        bool direct = false;
        for (int c = 0; db->host && c < PG_CLIENTS; c++) {
            sb_pg_client_path(pg_client_names[c], getenv("PATH"), SB_PG_BINROOT, ce->pg_path[c],
                              sizeof(ce->pg_path[c]));
            direct = direct || ce->pg_path[c][0];
        }
        if (direct && !getenv("PGSYSCONFDIR"))
            ce->env[env_idx++] = "PGSYSCONFDIR=/etc/postgresql-common";
    } else if (db->engine == SB_DB_MYSQL) {
        /* An option file, always: it also carries user, host and socket. */
        size_t pos = (size_t)snprintf(text, 8192, "[client]\n");
        if (db->user) {
            pos += (size_t)snprintf(text + pos, 8192 - pos, "user=\"");
            pos = option_escape(text, 8192, pos, db->user);
            pos += (size_t)snprintf(text + pos, 8192 - pos, "\"\n");
        }
        if (pw) {
            pos += (size_t)snprintf(text + pos, 8192 - pos, "password=\"");
            pos = option_escape(text, 8192, pos, pw);
            pos += (size_t)snprintf(text + pos, 8192 - pos, "\"\n");
        }
        if (db->host && db->host[0] == '/')
            pos += (size_t)snprintf(text + pos, 8192 - pos, "socket=%s\n", db->host);
        else if (db->host)
            pos += (size_t)snprintf(text + pos, 8192 - pos, "host=%s\n", db->host);
        if (db->port)
            pos += (size_t)snprintf(text + pos, 8192 - pos, "port=%d\n", db->port);
        /* Only the mysql/mariadb client knows connect-timeout: mariadb-dump refuses an option
         * it does not know in [client], so it goes in the client's own group. So does the
         * session setup: a server-wide max_statement_time (MariaDB's guard against the app's
         * runaway queries) would kill a restore's statement that waits for the app's locks
         * or loads a big table; mariadb-dump lifts it in its own session. MySQL has no such
         * variable and skips the MariaDB-only comment. */
        snprintf(text + pos, 8192 - pos,
                 "[mysql]\nconnect-timeout=15\ninit-command=SET @snapback_session = 1 "
                 "/*M!100108 , SESSION max_statement_time = 0 */\n");
        rc = secret_file_new(state_dir, text, ce->cred_path, err);
        if (rc == 0)
            ce->has_cred = true;
    }
    sodium_free(text);
    if (pw)
        sodium_free(pw);
    return rc;
}

/* PostgreSQL connection options (no password: that is in PGPASSFILE). */
static size_t
pg_conn_args(const struct sb_db_config *db, const char **argv, size_t argc, char *port_buf)
{
    argv[argc++] = "-w"; /* never prompt */
    if (db->host) {
        argv[argc++] = "-h";
        argv[argc++] = db->host;
    }
    if (db->port) {
        sprintf(port_buf, "%d", db->port);
        argv[argc++] = "-p";
        argv[argc++] = port_buf;
    }
    if (db->user) {
        argv[argc++] = "-U";
        argv[argc++] = db->user;
    }
    return argc;
}

#define PSQL_ROWS 1u /* -A -t: unaligned rows, no header or footer */
#define PSQL_TABS 4u /* -F TAB: columns separated by tabs (with PSQL_ROWS) */

/* The database's and the role's own settings apply to every session snapback opens: a
 * statement or lock timeout meant for the web app's queries, or a database made read-only by
 * default, would fail the probe, or the drops of an in-place restore. So each psql session
 * starts by overriding them, as pg_dump and pg_restore do in theirs (transaction_timeout only
 * where the server has it: PostgreSQL 17 on). SET, not PGOPTIONS:
 * connection poolers (PgBouncer) refuse a startup packet with options. */
#define PSQL_SESSION_SETUP                                                                         \
    "SET statement_timeout = 0; SET lock_timeout = 0; SET idle_in_transaction_session_timeout = "  \
    "0; SET default_transaction_read_only = off; DO $snapback$ BEGIN IF "                          \
    "current_setting('transaction_timeout', true) IS NOT NULL THEN SET transaction_timeout = 0; "  \
    "END IF; END $snapback$"

/* psql -X (no psqlrc) -q -v ON_ERROR_STOP=1, the connection options, -d dbname and -c
 * PSQL_SESSION_SETUP; the caller appends -c/-f and the NULL. */
static size_t
psql_args(const struct sb_db_config *db, const struct client_env *ce, const char *dbname,
          unsigned flags, const char **argv, char *port_buf)
{
    size_t argc = 0;
    argv[argc++] = pg_client(ce, PG_PSQL);
    argv[argc++] = "-X";
    argv[argc++] = "-v";
    argv[argc++] = "ON_ERROR_STOP=1";
    if (flags & PSQL_ROWS) {
        argv[argc++] = "-A";
        argv[argc++] = "-t";
    }
    if (flags & PSQL_TABS) {
        argv[argc++] = "-F";
        argv[argc++] = "\t";
    }
    argv[argc++] = "-q"; /* no command tags (the SETs') among the rows */
    argc = pg_conn_args(db, argv, argc, port_buf);
    argv[argc++] = "-d";
    argv[argc++] = dbname;
    argv[argc++] = "-c";
    argv[argc++] = PSQL_SESSION_SETUP;
    return argc;
}

/* Gives a client's failure the code that tells the operator what to do. */
static void
classify(struct sb_error *err, const char *output)
{
    static const char *const unavailable[] = {
        "could not connect",         "Connection refused",
        "No such file or directory", "could not translate host name",
        "is the server running",     "Can't connect",
        "Unknown MySQL server host", "timeout expired",
        "Lost connection",
    };
    static const char *const refused[] = {
        "password authentication failed",
        "no password supplied",
        "Peer authentication failed",
        "Access denied",
        "permission denied",
        "authentication failed",
        "pg_hba.conf rejects",
        "does not exist\n" /* a role */,
    };
    if (!output)
        return;
    /* An SQL statement of the dump failed on the target (pg_restore, psql): the server is up
     * and the login worked, so none of the words below mean what they do at connection time
     * ('role "x" does not exist' in a GRANT, "permission denied" for an extension). */
    if (strstr(output, "could not execute query") || strstr(output, "ERROR:  ")) {
        if (strstr(output, "role \"") && strstr(output, "does not exist"))
            sb_error_wrap(err, "the dump refers to a role this server does not have (create "
                               "it first, or restore on the server the dump came from)");
        if (strstr(output, "pg_dump: ") && strstr(output, "affected by row-level security")) {
            err->code = SB_E_PERM;
            sb_error_wrap(err, "a table forces row-level security on its owner, so its "
                               "policies would hide rows from the dump and pg_dump refuses: "
                               "give the database user BYPASSRLS (ALTER ROLE ... BYPASSRLS, "
                               "as a superuser), or snapshot as a superuser");
        }
        if (strstr(output, "pg_dump: ") && strstr(output, "permission denied for ")) {
            err->code = SB_E_PERM;
            sb_error_wrap(err, "the database user may not read every object of the database "
                               "(pg_dump needs SELECT on all its tables and sequences: GRANT "
                               "them, or GRANT pg_read_all_data, or snapshot as their owner)");
        }
        return;
    }
    /* MariaDB/MySQL objects defined by another user: their definitions cannot be read by
     * the dump user, or their DEFINER cannot be set by the restore user */
    if (strstr(output, "insufficient privileges to SHOW CREATE")) {
        err->code = SB_E_PERM;
        sb_error_wrap(err, "the database has routines defined by another user, which the dump "
                           "user may not read (GRANT SELECT ON mysql.proc TO it; MariaDB 11.3+: "
                           "SHOW CREATE ROUTINE, MySQL 8: SHOW_ROUTINE), or snapshot as their "
                           "definer");
        return;
    }
    if (strstr(output, "ERROR 1227") &&
        (strstr(output, "SET USER") || strstr(output, "SET_USER_ID"))) {
        err->code = SB_E_PERM;
        sb_error_wrap(err, "the dump names another user as the DEFINER of a view, trigger, "
                           "routine or event: restore as a user with the SET USER privilege "
                           "(MySQL 8: SET_USER_ID), or as that user");
        return;
    }
    for (size_t idx = 0; idx < sizeof(refused) / sizeof(refused[0]); idx++)
        if (strstr(output, refused[idx]) &&
            (idx != sizeof(refused) / sizeof(refused[0]) - 1 || strstr(output, "role"))) {
            err->code = SB_E_PERM;
            return;
        }
    for (size_t idx = 0; idx < sizeof(unavailable) / sizeof(unavailable[0]); idx++)
        if (strstr(output, unavailable[idx])) {
            err->code = SB_E_UNAVAILABLE;
            return;
        }
    /* A client older than the server (pg_dump) or than the archive (pg_restore). */
    if (strstr(output, "server version mismatch") ||
        (strstr(output, "pg_restore: ") && strstr(output, "unsupported version"))) {
        err->code = SB_E_UNAVAILABLE;
        sb_error_wrap(err,
                      "the PostgreSQL client is older than the %s: install the "
                      "postgresql-client of that version (apt.postgresql.org has them all)",
                      strstr(output, "server version mismatch") ? "server"
                                                                : "pg_dump that made "
                                                                  "the dump");
        return;
    }
    if (strstr(output, "database \"") && strstr(output, "does not exist"))
        err->code = SB_E_NOTFOUND;
    if (strstr(output, "Unknown database"))
        err->code = SB_E_NOTFOUND;
}

/* A version directory of postgresql-common ("15", "9.6") as a number to compare, or -1. */
static long
pg_version_dir(const char *name)
{
    char *end = NULL;
    if (name[0] < '0' || name[0] > '9')
        return -1;
    long major = strtol(name, &end, 10), minor = 0;
    if (*end == '.') {
        const char *m = end + 1;
        if (*m < '0' || *m > '9')
            return -1;
        minor = strtol(m, &end, 10);
    }
    if (*end || major > 9999 || minor > 99)
        return -1;
    return major * 100 + minor;
}

/* Debian's pg_wrapper, given -h (snapback always passes the config's host when it has one),
 * runs the newest installed version's binary (postgresql-common's get_newest_version); so
 * does this, without the Perl start. Measured: 30-100 ms per client start, and a snapshot
 * starts three clients, a restore five (docs/DATABASES.md). */
void
sb_pg_client_path(const char *name, const char *path_env, const char *binroot, char *out,
                  size_t cap)
{
    out[0] = '\0';
    if (!path_env || !cap)
        return;
    char *first = sb_proc_which(name, path_env);
    char real[PATH_MAX];
    bool wrapper = false;
    if (first && realpath(first, real)) {
        size_t len = strlen(real);
        static const char suffix[] = "/postgresql-common/pg_wrapper";
        wrapper = len >= sizeof(suffix) - 1 && !strcmp(real + len - (sizeof(suffix) - 1), suffix);
    }
    free(first);
    DIR *d = wrapper ? opendir(binroot) : NULL;
    if (!d)
        return;
    long best = -1;
    struct dirent *de;
    while ((de = readdir(d))) {
        long v = pg_version_dir(de->d_name);
        if (v <= best)
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s/bin/%s", binroot, de->d_name, name) >=
                (int)sizeof(path) ||
            access(path, X_OK) != 0)
            continue;
        if (strlen(path) < cap) {
            best = v;
            memcpy(out, path, strlen(path) + 1);
        }
    }
    closedir(d);
}

static int
missing_client(const char *program, const char *package, struct sb_error *err)
{
    if (sb_proc_available(program))
        return 0;
    return sb_error_set(err, SB_E_UNAVAILABLE, 0,
                        "'%s' is not installed or not in PATH; install the Debian package '%s'",
                        program, package);
}

/* Runs a client to completion, classifying its failure. */
static int
run_client(const char *const *argv, const struct client_env *ce, char **output,
           struct sb_error *err)
{
    int rc = sb_proc_run(argv, ce->env, output, err);
    if (rc < 0)
        classify(err, *output);
    return rc;
}

/* Runs one SQL statement with psql (psql_args flags) and returns its output. */
static int
psql_query(const struct sb_db_config *db, const struct client_env *ce, const char *dbname,
           unsigned flags, const char *sql, char **out, struct sb_error *err)
{
    const char *argv[ARGV_MAX];
    char port[16];
    size_t argc = psql_args(db, ce, dbname, flags, argv, port);
    argv[argc++] = "-c";
    argv[argc++] = sql;
    argv[argc] = NULL;
    *out = NULL;
    return run_client(argv, ce, out, err);
}

/* --- PostgreSQL --- */

static int
pg_probe(const struct sb_db_config *db, const struct client_env *ce, struct sb_db_info *info,
         struct sb_error *err)
{
    if (missing_client("psql", "postgresql-client", err) < 0)
        return -1;
    char *out = NULL;
    /* to_jsonb: datlocprovider and daticulocale exist from PostgreSQL 15 on only, and 17
     * renamed daticulocale to datlocale (which also holds the builtin provider's locale) */
    int rc = psql_query(db, ce, db->dbname, PSQL_ROWS | PSQL_TABS,
                        "SELECT current_setting('server_version'), "
                        "pg_encoding_to_char(d.encoding), d.datcollate, d.datctype, "
                        "coalesce(to_jsonb(d)->>'datlocprovider', 'c'), "
                        "coalesce(to_jsonb(d)->>'daticulocale', to_jsonb(d)->>'datlocale', ''), "
                        "coalesce((SELECT "
                        "array_to_json(s.setconfig)::text FROM pg_db_role_setting s WHERE "
                        "s.setdatabase = d.oid AND s.setrole = 0), ''), "
                        /* jsonb: json_agg puts newlines between its elements */
                        "jsonb_build_object('comment', "
                        "pg_catalog.shobj_description(d.oid, 'pg_database'), 'acl', CASE WHEN "
                        "d.datacl IS NULL THEN NULL ELSE coalesce((SELECT "
                        "jsonb_agg(jsonb_build_object('grantee', CASE WHEN a.grantee = 0 THEN "
                        "NULL ELSE pg_get_userbyid(a.grantee) END, 'privilege', a.privilege_type, "
                        "'grantable', a.is_grantable) ORDER BY a.grantee, a.privilege_type) FROM "
                        "aclexplode(d.datacl) a), '[]') END, 'role_settings', (SELECT "
                        "jsonb_agg(jsonb_build_object('role', pg_get_userbyid(s.setrole), "
                        "'settings', s.setconfig) ORDER BY pg_get_userbyid(s.setrole)) FROM "
                        "pg_db_role_setting s WHERE s.setdatabase = d.oid AND s.setrole <> 0))"
                        " FROM pg_database d WHERE d.datname = current_database()",
                        &out, err);
    if (rc == 0) {
        /* version (up to its first space) \t encoding \t collate \t ctype \t provider \t icu
         * \t settings \t props */
        char provider[16] = "";
        struct {
            char *dest;
            size_t cap;
        } fields[] = {{info->server_version, sizeof(info->server_version)},
                      {info->pg_encoding, sizeof(info->pg_encoding)},
                      {info->pg_collate, sizeof(info->pg_collate)},
                      {info->pg_ctype, sizeof(info->pg_ctype)},
                      {provider, sizeof(provider)},
                      {info->pg_icu_locale, sizeof(info->pg_icu_locale)},
                      {info->pg_settings, sizeof(info->pg_settings)},
                      {info->pg_props, sizeof(info->pg_props)}};
        const char *field = out;
        for (size_t idx = 0; idx < sizeof(fields) / sizeof(fields[0]) && field; idx++) {
            size_t len = strcspn(field, "\t\n");
            size_t keep = idx == 0 ? strcspn(field, " \t\n") : len;
            snprintf(fields[idx].dest, fields[idx].cap, "%.*s", (int)keep, field);
            field = field[len] == '\t' ? field + len + 1 : NULL;
        }
        snprintf(info->pg_provider, sizeof(info->pg_provider), "%s",
                 !strcmp(provider, "i")   ? "icu"
                 : !strcmp(provider, "b") ? "builtin"
                                          : "libc");
        if (strlen(info->pg_settings) >= sizeof(info->pg_settings) - 1) {
            sb_warn("database '%s': its ALTER DATABASE settings are too long to record; a "
                    "restore into a new database will not have them",
                    db->name);
            info->pg_settings[0] = '\0';
        }
        if (strlen(info->pg_props) >= sizeof(info->pg_props) - 1) {
            sb_warn("database '%s': its comment, privileges and per-role settings are too long "
                    "to record; a restore into a new database will not have them",
                    db->name);
            info->pg_props[0] = '\0';
        }
    }
    free(out);
    return rc;
}

static int
pg_dump_run(const struct sb_db_config *db, const struct client_env *ce, struct sb_ostream *out,
            struct sb_error *err)
{
    if (missing_client("pg_dump", "postgresql-client", err) < 0)
        return -1;
    const char *argv[ARGV_MAX];
    char port[16];
    size_t argc = 0;
    argv[argc++] = pg_client(ce, PG_DUMP);
    argv[argc++] = "-Fc";
    argv[argc++] = "-Z0";
    argc = pg_conn_args(db, argv, argc, port);
    argv[argc++] = "-d";
    argv[argc++] = db->dbname;
    argv[argc] = NULL;
    struct sb_proc *p = NULL;
    if (sb_proc_spawn(argv, ce->env, SB_PROC_STDOUT, &p, err) < 0)
        return -1;
    uint64_t copied = 0;
    int rc = sb_stream_copy(sb_proc_stdout(p), out, &copied, err);
    struct sb_error perr = SB_ERROR_INIT;
    /* The child's status decides first: a dump cut short by its death is a failed dump. */
    if (sb_proc_finish(p, &perr) < 0) {
        classify(&perr, sb_proc_output(p));
        *err = perr;
        rc = -1;
    } else if (rc == 0 && copied == 0) {
        rc = sb_error_set(err, SB_E_IO, 0, "pg_dump produced no output");
    }
    sb_proc_free(p);
    return rc;
}

static int
pg_database_exists(const struct sb_db_config *db, const struct client_env *ce, const char *name,
                   bool *exists, struct sb_error *err)
{
    char query[600];
    size_t q = 0;
    q += (size_t)snprintf(query + q, sizeof(query) - q,
                          "SELECT count(*) FROM pg_database WHERE "
                          "datname = '");
    for (const char *c = name; *c && q + 3 < sizeof(query); c++) {
        if (*c == '\'')
            query[q++] = '\'';
        query[q++] = *c;
    }
    snprintf(query + q, sizeof(query) - q, "'");
    char *out = NULL;
    int rc = psql_query(db, ce, "postgres", PSQL_ROWS, query, &out, err);
    if (rc == 0)
        *exists = out && atoi(out) > 0;
    free(out);
    return rc;
}

/* name as an SQL identifier between quote characters ('"' PostgreSQL, '`' MySQL), the quote
 * doubled inside; cut to fit cap. */
static void
quote_ident(char *buf, size_t cap, const char *name, char quote)
{
    size_t pos = 0;
    buf[pos++] = quote;
    for (const char *c = name; *c && pos + 3 < cap; c++) {
        if (*c == quote)
            buf[pos++] = quote;
        buf[pos++] = *c;
    }
    buf[pos++] = quote;
    buf[pos] = '\0';
}

static int
pg_admin_sql(const struct sb_db_config *db, const struct client_env *ce, const char *sql,
             struct sb_error *err)
{
    char *out = NULL;
    int rc = psql_query(db, ce, "postgres", 0, sql, &out, err);
    free(out);
    return rc;
}

/* --- PostgreSQL in place: the restore is exactly the snapshot ---
 * pg_restore --clean drops only what the dump contains, so what a migration created after the
 * snapshot (a table, a view, a schema) would stay, and a view or a foreign key of such an
 * object on a restored table makes the DROP of that table fail. So the dump's table of
 * contents is read first (pg_restore -l, which reads only the archive's head: those bytes are
 * kept in memory and fed again to the restore), the live database's relations and schemas that
 * the dump does not have are listed, and one psql transaction drops them and then runs
 * pg_restore's SQL: all or nothing. */

#define TOC_HEAD_MAX (256u << 20)

struct pg_toc {
    char **keys; /* "KIND\tschema\tname" of relations, "n\t\tschema" of schemas */
    size_t count, cap;
};

static void
pg_toc_free(struct pg_toc *toc)
{
    for (size_t idx = 0; idx < toc->count; idx++)
        free(toc->keys[idx]);
    free(toc->keys);
}

static int
pg_toc_add(struct pg_toc *toc, char kind, const char *schema, size_t slen, const char *name,
           size_t nlen)
{
    if (toc->count == toc->cap) {
        size_t cap = toc->cap ? toc->cap * 2 : 64;
        char **keys = realloc(toc->keys, cap * sizeof(*keys));
        if (!keys)
            return -1;
        toc->keys = keys;
        toc->cap = cap;
    }
    size_t len = slen + nlen + 4;
    char *key = malloc(len);
    if (!key)
        return -1;
    snprintf(key, len, "%c\t%.*s\t%.*s", kind, (int)slen, schema, (int)nlen, name);
    toc->keys[toc->count++] = key;
    return 0;
}

static bool
pg_toc_has(const struct pg_toc *toc, const char *key)
{
    for (size_t idx = 0; idx < toc->count; idx++)
        if (!strcmp(toc->keys[idx], key))
            return true;
    return false;
}

/* One line of pg_restore -l: "ID; CATALOG OID TYPE SCHEMA NAME OWNER". Relations are keyed by
 * kind r (table), v (view), m (materialized view), S (sequence), f (foreign table). */
static int
pg_toc_parse_line(struct pg_toc *toc, const char *line)
{
    static const struct {
        const char *type;
        char kind;
    } kinds[] = {{"TABLE ", 'r'},    {"VIEW ", 'v'},          {"MATERIALIZED VIEW ", 'm'},
                 {"SEQUENCE ", 'S'}, {"FOREIGN TABLE ", 'f'}, {"SCHEMA ", 'n'}};
    static const char *const not_objects[] = {"TABLE DATA ", "SEQUENCE SET ", "SEQUENCE OWNED BY ",
                                              "MATERIALIZED VIEW DATA "};
    const char *p = strchr(line, ';');
    if (!p || line[0] == ';')
        return 0;
    p++;
    for (int field = 0; field < 2; field++) { /* catalog oid, object oid */
        p += strspn(p, " ");
        p += strcspn(p, " ");
    }
    p += strspn(p, " ");
    for (size_t idx = 0; idx < sizeof(not_objects) / sizeof(not_objects[0]); idx++)
        if (!strncmp(p, not_objects[idx], strlen(not_objects[idx])))
            return 0;
    for (size_t idx = 0; idx < sizeof(kinds) / sizeof(kinds[0]); idx++) {
        size_t tl = strlen(kinds[idx].type);
        if (strncmp(p, kinds[idx].type, tl) != 0)
            continue;
        const char *schema = p + tl;
        const char *name = strchr(schema, ' ');
        const char *owner = strrchr(schema, ' ');
        if (!name || owner <= name)
            return 0;
        name++;
        if (kinds[idx].kind == 'n') /* "SCHEMA - name owner" */
            return pg_toc_add(toc, 'n', "", 0, name, (size_t)(owner - name));
        return pg_toc_add(toc, kinds[idx].kind, schema, (size_t)(name - 1 - schema), name,
                          (size_t)(owner - name));
    }
    return 0;
}

/* Reads the dump's table of contents: the head of in goes to pg_restore -l (which stops after
 * the TOC) and is kept in *head for the restore; *list_text receives pg_restore -l's list. */
static int
pg_toc_read(const struct client_env *ce, const char *state_dir, struct sb_istream *in,
            unsigned char **head, size_t *head_len, bool *in_done, struct pg_toc *toc,
            char **list_text, struct sb_error *err)
{
    char dir[PATH_MAX], list[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/tmp", state_dir);
    if (sb_mkdir_p(dir, 0700, err) < 0)
        return -1;
    if (snprintf(list, sizeof(list), "%s/toc-XXXXXX", dir) >= (int)sizeof(list))
        return sb_error_set(err, SB_E_USAGE, 0, "state_dir '%s' is too long", state_dir);
    int fd = mkstemp(list);
    if (fd < 0)
        return sb_error_set(err, SB_E_CANTCREATE, errno, "cannot create a temp file in '%s'", dir);
    close(fd);
    const char *argv[] = {pg_client(ce, PG_RESTORE), "-l", "-f", list, NULL};
    struct sb_proc *p = NULL;
    unsigned char *buf = NULL;
    size_t len = 0;
    char *text = NULL;
    size_t tlen = 0;
    int rc = -1;
    *in_done = false;
    if (sb_proc_spawn(argv, ce->env, SB_PROC_STDIN, &p, err) < 0)
        goto out;
    for (;;) {
        if (len + (1u << 20) > TOC_HEAD_MAX) {
            sb_error_set(err, SB_E_UNAVAILABLE, 0,
                         "the dump's table of contents is larger than %u MiB", TOC_HEAD_MAX >> 20);
            goto out;
        }
        unsigned char *grown = realloc(buf, len + (1u << 20));
        if (!grown) {
            sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            goto out;
        }
        buf = grown;
        size_t n = 0;
        if (sb_istream_read(in, buf + len, 1u << 20, &n, err) < 0)
            goto out;
        if (n == 0) {
            *in_done = true;
            break;
        }
        struct sb_error werr = SB_ERROR_INIT;
        if (sb_ostream_write(sb_proc_stdin(p), buf + len, n, &werr) < 0) {
            len += n; /* pg_restore -l has what it needs and is gone (EPIPE) */
            break;
        }
        len += n;
    }
    struct sb_error cerr = SB_ERROR_INIT;
    sb_ostream_close(sb_proc_stdin(p), &cerr);
    struct sb_error perr = SB_ERROR_INIT;
    if (sb_proc_finish(p, &perr) < 0) {
        classify(&perr, sb_proc_output(p));
        *err = perr;
        sb_error_wrap(err, "reading the dump's table of contents");
        goto out;
    }
    if (sb_read_file(list, 64u << 20, &text, &tlen, err) < 0)
        goto out;
    *list_text = strdup(text); /* strtok_r below cuts text */
    if (!*list_text) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        if (pg_toc_parse_line(toc, line) < 0) {
            sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            goto out;
        }
    *head = buf;
    *head_len = len;
    buf = NULL;
    rc = 0;
out:
    sb_proc_free(p);
    free(buf);
    free(text);
    unlink(list);
    return rc;
}

/* The routines and the enums, ranges, domains and standalone composite types of the
 * restoring role in the user's schemas, extension members aside. Only the role's own: one a
 * DBA made after the snapshot stays (the role may not drop it). */
#define PG_USER_ROUTINES                                                                           \
    "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname NOT IN "         \
    "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' AND "                    \
    "pg_has_role(p.proowner, 'USAGE') AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE "            \
    "d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')"
#define PG_USER_TYPES                                                                              \
    "FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname NOT IN "         \
    "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' AND "                    \
    "pg_has_role(t.typowner, 'USAGE') AND (t.typtype IN ('e', 'r', 'd') OR (t.typtype = 'c' "      \
    "AND (SELECT c.relkind FROM pg_class c WHERE c.oid = t.typrelid) = 'c')) AND NOT EXISTS "      \
    "(SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid "        \
    "AND d.deptype = 'e')"

/* The other objects of the restoring role a migration may make in the user's schemas
 * (extension members aside), as kind and name for DROP kind IF EXISTS name CASCADE: collations,
 * text search configurations and dictionaries, conversions, and operators (one on a routine
 * of the role's goes with it; one on a built-in function would stay). Left in a schema the
 * dump has, each made pg_restore's DROP SCHEMA fail. */
#define PG_USER_NAMED(kind, catalog, name, owner, nsp)                                             \
    "SELECT '" kind "' AS kind, format('%I.%I', n.nspname, x." name ") AS name FROM " catalog      \
    " x JOIN pg_namespace n ON n.oid = x." nsp " WHERE " PG_USER_OWNED(catalog, owner)
#define PG_USER_OWNED(catalog, owner)                                                              \
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%' AND "   \
    "pg_has_role(x." owner ", 'USAGE') AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE "           \
    "d.classid = '" catalog "'::regclass AND d.objid = x.oid AND d.deptype = 'e')"
#define PG_USER_COLLATIONS                                                                         \
    PG_USER_NAMED("COLLATION", "pg_collation", "collname", "collowner", "collnamespace")
#define PG_USER_TS_CONFIGS                                                                         \
    PG_USER_NAMED("TEXT SEARCH CONFIGURATION", "pg_ts_config", "cfgname", "cfgowner",              \
                  "cfgnamespace")
#define PG_USER_TS_DICTS                                                                           \
    PG_USER_NAMED("TEXT SEARCH DICTIONARY", "pg_ts_dict", "dictname", "dictowner", "dictnamespace")
#define PG_USER_CONVERSIONS                                                                        \
    PG_USER_NAMED("CONVERSION", "pg_conversion", "conname", "conowner", "connamespace")
#define PG_USER_OPERATORS                                                                          \
    "SELECT 'OPERATOR', x.oid::regoperator::text FROM pg_operator x JOIN pg_namespace n ON "       \
    "n.oid = x.oprnamespace WHERE " PG_USER_OWNED("pg_operator", "oprowner")
#define PG_USER_OTHERS                                                                             \
    PG_USER_COLLATIONS " UNION ALL " PG_USER_TS_CONFIGS " UNION ALL " PG_USER_TS_DICTS             \
                       " UNION ALL " PG_USER_CONVERSIONS " UNION ALL " PG_USER_OPERATORS

/* The user relations of a database: not in a system schema, not a member of an extension,
 * not a sequence a column owns, not a partition (it goes with its parent). objsubid = 0: a
 * partitioned table's key columns depend on the table itself ('i'), which is no reason to
 * leave it. */
#define PG_USER_RELATIONS                                                                          \
    "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', "      \
    "'p', 'v', 'm', 'S', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND "      \
    "n.nspname NOT LIKE 'pg\\_%' AND NOT c.relispartition AND NOT EXISTS (SELECT 1 FROM "          \
    "pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.objsubid = 0 "   \
    "AND d.deptype IN ('e', 'a', 'i'))"

/* The SQL run before pg_restore's own clean section, in the same transaction. pg_restore
 * --clean alone is not enough:
 *  - it drops only what the dump has, so a table a migration created after the snapshot
 *    would stay;
 *  - its drops of a partitioned table's pieces fail ("cannot drop inherited constraint
 *    events_2026_pkey": it drops a partition's attached primary key before the parent's);
 *  - it unlinks only the large objects the dump has; one created after the snapshot would be
 *    left, referenced by nothing (a dump of a database holds all its large objects, so all
 *    others come back with their OIDs).
 *  - a function, type or domain a migration made in a schema the dump has makes its DROP
 *    SCHEMA fail, and one in public would stay.
 * So every user relation, then every routine, enum, range, domain and composite type of the
 * role's (not extension members), then its collations, text search configurations and
 * dictionaries, conversions and operators are dropped first (CASCADE), by a DO block whose size
 * does not grow with the database (it is one psql argument); pg_restore's "DROP ... IF EXISTS" then
 * find nothing and skip. Then every schema the dump does not have, and every large object the
 * restoring role may remove. What the dump does not have is named in an info line. The live
 * database's extensions that another role owns go into live_ext (pg_write_list keeps them). */
static int
pg_leftover_drops(const struct sb_db_config *db, const struct client_env *ce, const char *target,
                  const struct pg_toc *toc, struct pg_toc *live_ext, char **sql,
                  struct sb_error *err)
{
    static const char *const leftovers_sql =
        "SELECT c.relkind::text, n.nspname, c.relname " PG_USER_RELATIONS
        " UNION ALL SELECT 'n', '', n.nspname FROM pg_namespace n WHERE n.nspname NOT IN "
        "('pg_catalog', 'information_schema', 'public') AND n.nspname NOT LIKE 'pg\\_%' AND NOT "
        "EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND "
        "d.objid = n.oid AND d.deptype = 'e') UNION ALL SELECT 'x', '', extname FROM pg_extension "
        "WHERE NOT pg_has_role(extowner, 'USAGE')";
    static const char *const drop_relations_sql =
        "DO $snapback$ DECLARE r record; BEGIN FOR r IN SELECT c.relkind, n.nspname, "
        "c.relname " PG_USER_RELATIONS " LOOP EXECUTE format('DROP %s IF EXISTS %I.%I CASCADE', "
        "CASE r.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN "
        "'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END, r.nspname, r.relname); END "
        "LOOP; FOR r IN SELECT p.oid::regprocedure AS sig " PG_USER_ROUTINES " LOOP EXECUTE "
        "format('DROP ROUTINE IF EXISTS %s CASCADE', r.sig); END LOOP; FOR r IN SELECT "
        "t.typtype, t.oid::regtype AS name " PG_USER_TYPES " LOOP EXECUTE format('DROP %s IF "
        "EXISTS %s CASCADE', CASE r.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END, r.name); END "
        "LOOP; FOR r IN " PG_USER_OTHERS " LOOP EXECUTE format('DROP %s IF EXISTS %s CASCADE', "
        "r.kind, r.name); END LOOP; END $snapback$;\n";
    static const char *const unlink_sql =
        "SELECT pg_catalog.lo_unlink(oid) FROM pg_catalog.pg_largeobject_metadata WHERE "
        "pg_catalog.pg_has_role(lomowner, 'USAGE');\n";
    char *out = NULL;
    if (psql_query(db, ce, target, PSQL_ROWS | PSQL_TABS, leftovers_sql, &out, err) < 0) {
        free(out);
        return -1;
    }
    size_t cap = strlen(drop_relations_sql) + strlen(unlink_sql) + 256;
    size_t len = strlen(drop_relations_sql);
    char *text = malloc(cap);
    int rc = text ? 0 : sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    if (text)
        memcpy(text, drop_relations_sql, len + 1);
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        char kind = line[0];
        if (kind == 'p')
            kind = 'r'; /* pg_restore -l says TABLE for a partitioned table too */
        char key[600];
        snprintf(key, sizeof(key), "%c%s", kind, line + 1);
        char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
        if (!tab1 || !tab2 || strlen(line) > 500)
            continue;
        if (kind == 'x') {
            if (pg_toc_add(live_ext, 'x', "", 0, tab2 + 1, strlen(tab2 + 1)) < 0)
                rc = sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            continue;
        }
        if (pg_toc_has(toc, key))
            continue;
        *tab2 = '\0';
        const char *what = kind == 'n'   ? "schema"
                           : kind == 'v' ? "VIEW"
                           : kind == 'm' ? "MATERIALIZED VIEW"
                           : kind == 'S' ? "SEQUENCE"
                           : kind == 'f' ? "FOREIGN TABLE"
                                         : "TABLE";
        sb_info("database '%s': dropping %s %s%s%s, which the snapshot does not have", target, what,
                kind == 'n' ? "" : tab1 + 1, kind == 'n' ? "" : ".", tab2 + 1);
        if (kind != 'n')
            continue; /* dropped by the DO block */
        char name[300], stmt[400];
        quote_ident(name, sizeof(name), tab2 + 1, '"');
        snprintf(stmt, sizeof(stmt), "DROP SCHEMA IF EXISTS %s CASCADE;\n", name);
        size_t sl = strlen(stmt);
        if (len + sl + strlen(unlink_sql) + 1 > cap) {
            cap = (len + sl + strlen(unlink_sql) + 1) * 2;
            char *grown = realloc(text, cap);
            if (!grown) {
                rc = sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
                break;
            }
            text = grown;
        }
        memcpy(text + len, stmt, sl + 1);
        len += sl;
    }
    free(out);
    if (rc < 0) {
        free(text);
        return -1;
    }
    memcpy(text + len, unlink_sql, strlen(unlink_sql) + 1); /* cap keeps room for it */
    *sql = text;
    return 0;
}

/* Writes pg_restore -l's list to a 0600 temp file *path in state_dir/tmp for pg_restore -L,
 * with the entries of every extension in live_ext (the live database's extensions another
 * role owns: one a DBA created as superuser) commented out: its EXTENSION entry (pg_restore
 * --clean would DROP it, which only its owner may do) and its COMMENT (the same). Such an
 * extension stays as it is on the server; CREATE EXTENSION IF NOT EXISTS would have kept it
 * anyway. The restoring role's own extensions are dropped and made again, as pg_restore
 * --clean does (an extension's configuration table, PostGIS's spatial_ref_sys, then gets the
 * dump's rows instead of doubling them); one the live database lacks comes from the dump. */
static int
pg_write_list(const char *state_dir, const char *text, const struct pg_toc *live_ext, char *path,
              size_t cap, struct sb_error *err)
{
    if (snprintf(path, cap, "%s/tmp/list-XXXXXX", state_dir) >= (int)cap)
        return sb_error_set(err, SB_E_USAGE, 0, "state_dir '%s' is too long", state_dir);
    int fd = mkstemp(path);
    if (fd < 0) {
        path[0] = '\0';
        return sb_error_set(err, SB_E_CANTCREATE, errno, "cannot create a temp file in '%s/tmp'",
                            state_dir);
    }
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return sb_error_set(err, SB_E_INTERNAL, errno, "cannot write '%s'", path);
    }
    for (const char *line = text; *line;) {
        size_t len = strcspn(line, "\n");
        /* "ID; CATALOG OID EXTENSION - NAME " and "ID; 0 0 COMMENT - EXTENSION NAME " */
        const char *ext = NULL;
        const char *semi = memchr(line, ';', len);
        if (semi && line[0] != ';') {
            const char *p = semi + 1;
            for (int field = 0; field < 2; field++) {
                p += strspn(p, " ");
                p += strcspn(p, " \n");
            }
            p += strspn(p, " ");
            if (!strncmp(p, "EXTENSION - ", 12))
                ext = p + 12;
            else if (!strncmp(p, "COMMENT - EXTENSION ", 20))
                ext = p + 20;
        }
        bool keep_live = false;
        if (ext) {
            char key[300];
            size_t nlen = strcspn(ext, " \n");
            snprintf(key, sizeof(key), "x\t\t%.*s", (int)nlen, ext);
            keep_live = pg_toc_has(live_ext, key);
        }
        fprintf(f, "%s%.*s\n", keep_live ? ";" : "", (int)len, line);
        line += len + (line[len] == '\n');
    }
    if (fflush(f) != 0 || ferror(f)) {
        fclose(f);
        return sb_error_set(err, SB_E_IO, errno, "cannot write '%s'", path);
    }
    fclose(f);
    return 0;
}

/* In place: one psql transaction runs the drops, then pg_restore's SQL (pg_restore -f -
 * --clean --if-exists, fed the dump's head again and then the rest of in). psql commits only
 * when we say so: its last input is /dev/fd/3, a pipe into which we write COMMIT after the
 * whole object passed every check and pg_restore exited 0. On any failure the pipe is closed
 * empty: psql ends, and the server rolls the open transaction back. (psql --single-transaction
 * would commit whatever it had read when its input ended early: a dump cut by a corrupt
 * object would have been committed half-restored.) */
static int
pg_restore_in_place(const struct sb_db_config *db, const struct client_env *ce, const char *target,
                    const char *state_dir, struct sb_istream *in, struct sb_error *err)
{
    struct pg_toc toc = {0}, live_ext = {0};
    unsigned char *head = NULL;
    size_t head_len = 0;
    bool in_done = false;
    char *drops = NULL, *list_text = NULL;
    char list[PATH_MAX] = "";
    struct sb_proc *psql = NULL, *restore = NULL;
    int commit[2] = {-1, -1};
    int rc = -1;
    if (pg_toc_read(ce, state_dir, in, &head, &head_len, &in_done, &toc, &list_text, err) < 0 ||
        pg_leftover_drops(db, ce, target, &toc, &live_ext, &drops, err) < 0 ||
        pg_write_list(state_dir, list_text, &live_ext, list, sizeof(list), err) < 0)
        goto out;
    const char *argv[ARGV_MAX];
    char port[16];
    size_t argc = psql_args(db, ce, target, 0, argv, port);
    argv[argc++] = "-o";
    argv[argc++] = "/dev/null";
    /* notices ("... does not exist, skipping", "drop cascades to ...") would fill psql's
     * stderr pipe while we feed pg_restore, and nobody reads it until the end */
    argv[argc++] = "-c";
    argv[argc++] = "SET client_min_messages = warning";
    argv[argc++] = "-c";
    argv[argc++] = "BEGIN";
    if (drops[0]) {
        argv[argc++] = "-c";
        argv[argc++] = drops;
    }
    argv[argc++] = "-f";
    argv[argc++] = "-";
    argv[argc++] = "-f";
    argv[argc++] = "/dev/fd/3";
    argv[argc] = NULL;
    if (pipe2(commit, O_CLOEXEC) < 0) {
        sb_error_set(err, SB_E_INTERNAL, errno, "cannot create a pipe for psql");
        goto out;
    }
    int spawned = sb_proc_spawn_fd3(argv, ce->env, SB_PROC_STDIN, commit[0], &psql, err);
    close(commit[0]);
    commit[0] = -1;
    if (spawned < 0)
        goto out;
    const char *rargv[] = {
        pg_client(ce, PG_RESTORE), "-f", "-", "--clean", "--if-exists", "--no-owner", "-L", list,
        "--exit-on-error",         NULL};
    if (sb_proc_spawn_into(rargv, ce->env, psql, &restore, err) < 0)
        goto out;
    rc = sb_ostream_write(sb_proc_stdin(restore), head, head_len, err);
    if (rc == 0 && !in_done)
        rc = sb_stream_copy(in, sb_proc_stdin(restore), NULL, err);
    if (rc == 0)
        rc = sb_istream_drain(in, err); /* run every check of the object to its end */
    struct sb_error rerr = SB_ERROR_INIT, perr = SB_ERROR_INIT;
    struct sb_error cerr = SB_ERROR_INIT;
    sb_ostream_close(sb_proc_stdin(restore), &cerr);
    int r1 = sb_proc_finish(restore, &rerr);
    if (rc == 0 && r1 == 0) {
        static const char commit_sql[] = "COMMIT;\n";
        if (write(commit[1], commit_sql, sizeof(commit_sql) - 1) !=
            (ssize_t)(sizeof(commit_sql) - 1))
            rc = sb_error_set(err, SB_E_IO, errno, "cannot tell psql to commit");
    }
    close(commit[1]); /* empty: psql ends without COMMIT, and the transaction is rolled back */
    commit[1] = -1;
    int r2 = sb_proc_finish(psql, &perr);
    /* The cause first: psql failing (pg_restore then hits a closed pipe, and so do we), else
     * our own error (a damaged object: pg_restore then only saw its input end), else
     * pg_restore's. */
    if (r2 < 0) {
        classify(&perr, sb_proc_output(psql));
        *err = perr;
        rc = -1;
    } else if (rc == 0 && r1 < 0) {
        classify(&rerr, sb_proc_output(restore));
        *err = rerr;
        rc = -1;
    }
    if (rc < 0)
        sb_error_wrap(err, "the live database '%s' was left as it was (rolled back)", target);
out:
    if (commit[1] >= 0)
        close(commit[1]); /* before psql is stopped: never a COMMIT on failure */
    if (commit[0] >= 0)
        close(commit[0]);
    sb_proc_free(restore);
    sb_proc_free(psql);
    pg_toc_free(&toc);
    pg_toc_free(&live_ext);
    if (list[0])
        unlink(list);
    free(list_text);
    free(head);
    free(drops);
    return rc;
}

/* A locale or encoding name as PostgreSQL reports it, safe inside '...' (letters, digits and
 * "_.-@"). */
static bool
pg_locale_name_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 100)
        return false;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-@") ==
           strlen(s);
}

/* ALTER DATABASE ident SET (role_ident NULL), or ALTER ROLE role_ident IN DATABASE ident SET,
 * for each "name=value" of the JSON array list: the settings the source had (search_path,
 * TimeZone, ...), which a dump without CREATE DATABASE does not carry. set_config takes the
 * value as the server stored it, then FROM CURRENT makes it the database's. Each setting is
 * its own transaction: one the server refuses (unknown here, for superusers only as an
 * extension's, or another role's setting the restoring role may not make) is a warning
 * naming it, and the others are set. */
static void
pg_apply_settings(const struct sb_db_config *db, const struct client_env *ce, const char *target,
                  const char *ident, const cJSON *list, const char *role, const char *role_ident)
{
    const cJSON *one;
    const char *how = role ? "ALTER ROLE ... IN DATABASE ... SET" : "ALTER DATABASE ... SET";
    cJSON_ArrayForEach(one, list)
    {
        const char *text = cJSON_GetStringValue(one);
        const char *eq = text ? strchr(text, '=') : NULL;
        size_t nlen = eq ? (size_t)(eq - text) : 0;
        char *sql = NULL;
        if (nlen && nlen <= 100 &&
            strspn(text, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.") ==
                nlen)
            sql = malloc(2 * strlen(eq) + 2 * nlen + strlen(ident) +
                         (role_ident ? strlen(role_ident) : 0) + 160);
        if (!sql) {
            sb_warn("database '%s': the source's setting '%s'%s%s cannot be applied; set it by "
                    "hand (%s)",
                    target, text ? text : "?", role ? " of role " : "", role ? role : "", how);
            continue;
        }
        size_t len =
            (size_t)sprintf(sql, "SELECT pg_catalog.set_config('%.*s', '", (int)nlen, text);
        for (const char *c = eq + 1; *c; c++) { /* a literal: quotes doubled */
            if (*c == '\'')
                sql[len++] = '\'';
            sql[len++] = *c;
        }
        len += (size_t)sprintf(sql + len, "', false);\n");
        if (role_ident)
            sprintf(sql + len, "ALTER ROLE %s IN DATABASE %s SET %.*s FROM CURRENT;\n", role_ident,
                    ident, (int)nlen, text);
        else
            sprintf(sql + len, "ALTER DATABASE %s SET %.*s FROM CURRENT;\n", ident, (int)nlen,
                    text);
        struct sb_error err = SB_ERROR_INIT;
        if (pg_admin_sql(db, ce, sql, &err) < 0)
            sb_warn("database '%s': the source's setting '%s'%s%s could not be set: %s; set it "
                    "by hand (%s)",
                    target, text, role ? " of role " : "", role ? role : "", err.msg, how);
        free(sql);
    }
}

/* The comment a dump without CREATE DATABASE does not carry: a literal with its quotes
 * doubled, read as written whatever the server's default for backslashes. */
static void
pg_apply_comment(const struct sb_db_config *db, const struct client_env *ce, const char *target,
                 const char *ident, const char *comment)
{
    char *sql = malloc(2 * strlen(comment) + strlen(ident) + 100);
    if (!sql) {
        sb_warn("database '%s': out of memory: the source's comment was not set", target);
        return;
    }
    size_t len = (size_t)sprintf(sql,
                                 "SET standard_conforming_strings = on;\nCOMMENT ON "
                                 "DATABASE %s IS '",
                                 ident);
    for (const char *c = comment; *c; c++) {
        if (*c == '\'')
            sql[len++] = '\'';
        sql[len++] = *c;
    }
    sprintf(sql + len, "';\n");
    struct sb_error err = SB_ERROR_INIT;
    if (pg_admin_sql(db, ce, sql, &err) < 0)
        sb_warn("database '%s': the source's comment could not be set: %s; set it by hand "
                "(COMMENT ON DATABASE)",
                target, err.msg);
    free(sql);
}

static bool
same_grantee(const cJSON *a, const cJSON *b)
{
    const char *sa = cJSON_GetStringValue(a), *sb = cJSON_GetStringValue(b);
    return sa && sb ? strcmp(sa, sb) == 0 : !sa && !sb;
}

/* The source's privileges on the database (entries as aclexplode lists them; the manifest
 * parser checked their shape), where a dump without CREATE DATABASE has none: PUBLIC's default
 * ones revoked, then one GRANT per grantee and grant option. A source that revoked CONNECT from
 * PUBLIC gets a copy that does too: when that REVOKE fails the warning says that anyone may
 * connect. */
static void
pg_apply_acl(const struct sb_db_config *db, const struct client_env *ce, const char *target,
             const char *ident, const char *acl_text)
{
    cJSON *acl = cJSON_Parse(acl_text);
    char sql[800];
    struct sb_error err = SB_ERROR_INIT;
    snprintf(sql, sizeof(sql), "REVOKE ALL ON DATABASE %s FROM PUBLIC", ident);
    if (pg_admin_sql(db, ce, sql, &err) < 0)
        sb_warn("database '%s': the default privileges of PUBLIC could not be revoked as in the "
                "source, so any role may connect to it: %s; revoke them by hand (%s)",
                target, err.msg, sql);
    int n = cJSON_GetArraySize(acl);
    for (int idx = 0; idx < n; idx++) {
        const cJSON *entry = cJSON_GetArrayItem(acl, idx);
        const cJSON *grantee = cJSON_GetObjectItemCaseSensitive(entry, "grantee");
        bool option = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(entry, "grantable"));
        bool seen = false;
        for (int prev = 0; prev < idx && !seen; prev++) {
            const cJSON *p = cJSON_GetArrayItem(acl, prev);
            seen = same_grantee(grantee, cJSON_GetObjectItemCaseSensitive(p, "grantee")) &&
                   option == cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "grantable"));
        }
        if (seen)
            continue; /* granted with an earlier entry's */
        char privs[64] = "", who[300];
        for (int next = idx; next < n; next++) {
            const cJSON *e = cJSON_GetArrayItem(acl, next);
            const char *priv =
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "privilege"));
            if (!same_grantee(grantee, cJSON_GetObjectItemCaseSensitive(e, "grantee")) ||
                option != cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "grantable")))
                continue;
            if (!priv ||
                (strcmp(priv, "CONNECT") && strcmp(priv, "CREATE") && strcmp(priv, "TEMPORARY"))) {
                sb_warn("database '%s': the source's privilege '%s' is not one snapback knows; "
                        "grant it by hand",
                        target, priv ? priv : "?");
                continue;
            }
            if (!strstr(privs, priv))
                snprintf(privs + strlen(privs), sizeof(privs) - strlen(privs), "%s%s",
                         privs[0] ? ", " : "", priv);
        }
        if (!privs[0])
            continue;
        const char *role = cJSON_GetStringValue(grantee);
        if (role)
            quote_ident(who, sizeof(who), role, '"');
        else
            snprintf(who, sizeof(who), "PUBLIC");
        snprintf(sql, sizeof(sql), "GRANT %s ON DATABASE %s TO %s%s", privs, ident, who,
                 option ? " WITH GRANT OPTION" : "");
        err = (struct sb_error)SB_ERROR_INIT;
        if (pg_admin_sql(db, ce, sql, &err) < 0)
            sb_warn("database '%s': the source's privileges could not all be granted: %s; grant "
                    "them by hand (%s)",
                    target, err.msg, sql);
    }
    cJSON_Delete(acl);
}

/* What else a dump without CREATE DATABASE lacks, for a database a restore creates: its
 * settings and, unless it is verify's scratch database (whose server seldom has the app's
 * roles), its comment, privileges and the settings of roles in it. Each one that fails is a
 * warning that says what to do by hand. */
static void
pg_apply_props(const struct sb_db_config *db, const struct client_env *ce, const char *target,
               const char *ident, const struct sb_db_create *create, bool scratch)
{
    if (create->settings) {
        cJSON *list = cJSON_Parse(create->settings);
        if (!cJSON_IsArray(list))
            sb_warn("database '%s': the source's database settings were recorded in a form "
                    "snapback cannot read (%s); set them by hand (ALTER DATABASE ... SET)",
                    target, create->settings);
        pg_apply_settings(db, ce, target, ident, list, NULL, NULL);
        cJSON_Delete(list);
    }
    if (scratch)
        return;
    if (create->comment)
        pg_apply_comment(db, ce, target, ident, create->comment);
    if (create->acl)
        pg_apply_acl(db, ce, target, ident, create->acl);
    cJSON *roles = create->role_settings ? cJSON_Parse(create->role_settings) : NULL;
    const cJSON *one;
    cJSON_ArrayForEach(one, roles)
    {
        const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(one, "role"));
        char role_ident[300];
        quote_ident(role_ident, sizeof(role_ident), role ? role : "", '"');
        pg_apply_settings(db, ce, target, ident, cJSON_GetObjectItemCaseSensitive(one, "settings"),
                          role ? role : "?", role_ident);
    }
    cJSON_Delete(roles);
}

/* CREATE DATABASE for a restore. A dump without CREATE DATABASE (pg_dump -Fc of one database)
 * does not carry the database's encoding and locale, so a new database would sort and
 * compare text as the server's default does, not as the source did: when the manifest
 * recorded them (create), the database is made from template0 with them. A server that
 * refuses them (that locale not installed, ICU before PostgreSQL 15) gets the default, with a
 * warning saying what differs. */
static int
pg_create_database(const struct sb_db_config *db, const struct client_env *ce, const char *target,
                   const char *ident, const struct sb_db_create *create, struct sb_error *err)
{
    char sql[900];
    /* icu (PostgreSQL 15+) and builtin (17+) providers name their locale apart from libc's */
    const char *provider = create && create->provider ? create->provider : "libc";
    bool other = strcmp(provider, "libc") != 0;
    bool known = !other || !strcmp(provider, "icu") || !strcmp(provider, "builtin");
    if (create &&
        !(known && pg_locale_name_ok(create->encoding) && pg_locale_name_ok(create->collate) &&
          pg_locale_name_ok(create->ctype) && (!other || pg_locale_name_ok(create->icu_locale))))
        sb_warn("database '%s': the source's encoding and locale as recorded (%s, collate %s, "
                "ctype %s, provider %s %s) cannot be used: created with the server's defaults, "
                "so text may sort and compare differently than in the source",
                target, create->encoding ? create->encoding : "-",
                create->collate ? create->collate : "-", create->ctype ? create->ctype : "-",
                provider, create->icu_locale ? create->icu_locale : "");
    else if (create) {
        int n = snprintf(sql, sizeof(sql),
                         "CREATE DATABASE %s TEMPLATE template0 ENCODING '%s' LC_COLLATE '%s' "
                         "LC_CTYPE '%s'",
                         ident, create->encoding, create->collate, create->ctype);
        if (other && n > 0 && (size_t)n < sizeof(sql))
            snprintf(sql + n, sizeof(sql) - (size_t)n, " LOCALE_PROVIDER %s %s_LOCALE '%s'",
                     provider, strcmp(provider, "icu") ? "BUILTIN" : "ICU", create->icu_locale);
        struct sb_error cerr = SB_ERROR_INIT;
        if (pg_admin_sql(db, ce, sql, &cerr) == 0)
            return 0;
        if (cerr.code == SB_E_PERM || cerr.code == SB_E_UNAVAILABLE) {
            *err = cerr;
            return -1;
        }
        sb_warn("database '%s': the server refused the source's encoding and locale (%s, "
                "collate %s, ctype %s%s%s): created with the server's defaults, so text may "
                "sort and compare differently than in the source: %s",
                target, create->encoding, create->collate, create->ctype, other ? ", locale " : "",
                other ? create->icu_locale : "", cerr.msg);
    }
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", ident);
    return pg_admin_sql(db, ce, sql, err);
}

/* A CREATE DATABASE refused. For verify's scratch database the user may lack only that
 * privilege (an app user with rights on its own databases): say which one it needs. */
static int
create_database_failed(struct sb_error *err, const char *target, enum sb_db_restore_mode mode,
                       const char *how)
{
    if (err->code != SB_E_PERM || mode != SB_DB_RESTORE_SCRATCH)
        return sb_error_wrap(err, "cannot create database '%s'", target);
    char inner[SB_ERROR_MSG_MAX];
    snprintf(inner, sizeof(inner), "%s", err->msg);
    return sb_error_set(err, SB_E_PERM, 0,
                        "cannot create the scratch database '%s' (verify --restore-db needs a "
                        "user that may create and drop databases named snapback_verify_*: %s): %s",
                        target, how, inner);
}

static int
pg_restore_run(const struct sb_db_config *db, const struct client_env *ce, const char *target,
               enum sb_db_restore_mode mode, const struct sb_db_create *create,
               const char *state_dir, struct sb_istream *in, struct sb_error *err)
{
    bool in_place = mode == SB_DB_RESTORE_IN_PLACE;
    if (missing_client("pg_restore", "postgresql-client", err) < 0)
        return -1;
    bool exists = false;
    if (pg_database_exists(db, ce, target, &exists, err) < 0)
        return -1;
    char sql[600], ident[300];
    quote_ident(ident, sizeof(ident), target, '"');
    if (exists && !in_place)
        return sb_error_set(err, SB_E_CANTCREATE, 0,
                            "database '%s' already exists; restore into a new name, or pass "
                            "--in-place to replace its contents",
                            target);
    if (!exists) {
        if (pg_create_database(db, ce, target, ident, create, err) < 0)
            return create_database_failed(err, target, mode, "give its role CREATEDB");
    } else if (in_place) {
        return pg_restore_in_place(db, ce, target, state_dir, in, err);
    }
    const char *argv[ARGV_MAX];
    char port[16];
    size_t argc = 0;
    argv[argc++] = pg_client(ce, PG_RESTORE);
    argv[argc++] = "--exit-on-error";
    argv[argc++] = "--no-owner";
    /* A scratch restore proves the data restores; the server it runs on (a CI job's) seldom
     * has the app's roles or tablespaces, so their GRANTs and SET default_tablespace would
     * fail it for nothing. */
    if (mode == SB_DB_RESTORE_SCRATCH) {
        argv[argc++] = "--no-privileges";
        argv[argc++] = "--no-tablespaces";
    }
    argc = pg_conn_args(db, argv, argc, port);
    argv[argc++] = "-d";
    argv[argc++] = target;
    argv[argc] = NULL;
    struct sb_proc *p = NULL;
    if (sb_proc_spawn(argv, ce->env, SB_PROC_STDIN, &p, err) < 0)
        return -1;
    int rc = sb_stream_copy(in, sb_proc_stdin(p), NULL, err);
    if (rc == 0)
        rc = sb_istream_drain(in, err); /* run every check of the object to its end */
    struct sb_error perr = SB_ERROR_INIT;
    if (rc == 0) {
        if (sb_proc_finish(p, &perr) < 0) {
            classify(&perr, sb_proc_output(p));
            *err = perr;
            rc = -1;
        }
    }
    sb_proc_free(p);
    /* Once the data is in: a setting such as default_transaction_read_only, or a statement
     * timeout of a role, would otherwise apply to pg_restore's session as well. */
    if (rc == 0 && create)
        pg_apply_props(db, ce, target, ident, create, mode == SB_DB_RESTORE_SCRATCH);
    if (rc < 0 && mode == SB_DB_RESTORE_NEW) {
        /* ours, and half restored: gone, so that the next attempt can use the name (a
         * scratch database is dropped by verify, which also reports a failed drop) */
        struct sb_error derr = SB_ERROR_INIT;
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", ident);
        if (pg_admin_sql(db, ce, sql, &derr) < 0)
            sb_warn("cannot drop the partly restored database '%s' (drop it by hand): %s", target,
                    derr.msg);
        else
            sb_warn("dropped the partly restored database '%s'", target);
    }
    return rc;
}

/* --- MariaDB / MySQL --- */

static const char *
mysql_program(const char *mariadb_name, const char *mysql_name)
{
    return sb_proc_available(mariadb_name) ? mariadb_name : mysql_name;
}

static size_t
mysql_base_args(const struct client_env *ce, const char *program, const char **argv, char *defaults)
{
    size_t argc = 0;
    argv[argc++] = program;
    snprintf(defaults, PATH_MAX + 32, "--defaults-extra-file=%s", ce->cred_path);
    argv[argc++] = defaults;
    return argc;
}

/* Runs sql with the mariadb (or mysql) client, in database dbname unless NULL; *out receives
 * its rows, tab-separated. */
static int
mysql_query(const struct client_env *ce, const char *dbname, const char *sql, char **out,
            struct sb_error *err)
{
    const char *prog = mysql_program("mariadb", "mysql");
    const char *argv[ARGV_MAX];
    char defaults[PATH_MAX + 32];
    size_t argc = mysql_base_args(ce, prog, argv, defaults);
    argv[argc++] = "-N";
    argv[argc++] = "-B";
    argv[argc++] = "-e";
    argv[argc++] = sql;
    if (dbname)
        argv[argc++] = dbname;
    argv[argc] = NULL;
    return run_client(argv, ce, out, err);
}

static int
mysql_probe(const struct sb_db_config *db, const struct client_env *ce, struct sb_db_info *info,
            struct sb_error *err)
{
    if (missing_client(mysql_program("mariadb", "mysql"), "mariadb-client", err) < 0)
        return -1;
    char *out = NULL;
    int rc = mysql_query(ce, db->dbname,
                         "SELECT VERSION(), @@character_set_database, @@collation_database, "
                         "(SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = "
                         "DATABASE() AND table_type = 'SYSTEM VERSIONED')",
                         &out, err);
    if (rc == 0) {
        /* VERSION() \t charset \t collation \t versioned tables; names are [A-Za-z0-9_] or
         * they are not used */
        char *field = out;
        char versioned[64] = "";
        char *dest[] = {info->server_version, info->charset, info->collation, versioned};
        for (size_t idx = 0; idx < 4 && field; idx++) {
            size_t len = strcspn(field, "\t\n");
            snprintf(dest[idx], 64, "%.*s", (int)len, field);
            field = field[len] == '\t' ? field + len + 1 : NULL;
        }
        info->versioned_tables = (unsigned)strtoul(versioned, NULL, 10);
        for (size_t idx = 1; idx < 3; idx++)
            if (strspn(dest[idx],
                       "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") !=
                strlen(dest[idx]))
                dest[idx][0] = '\0';
    }
    free(out);
    /* MariaDB 10.5+ keeps a COMMENT per database (MySQL has none, and MariaDB before 10.5 not
     * the column): read in hex, so that no byte of it needs quoting here; when the query
     * fails, the dump simply has no comment to set. */
    if (rc == 0 && strstr(info->server_version, "MariaDB")) {
        struct sb_error ignored = SB_ERROR_INIT;
        char *hex = NULL;
        if (mysql_query(ce, db->dbname,
                        "SELECT HEX(SCHEMA_COMMENT) FROM information_schema.SCHEMATA WHERE "
                        "SCHEMA_NAME = DATABASE()",
                        &hex, &ignored) == 0 &&
            hex) {
            size_t len = strspn(hex, "0123456789ABCDEF");
            if (len % 2 == 0 && len < sizeof(info->my_comment_hex))
                snprintf(info->my_comment_hex, sizeof(info->my_comment_hex), "%.*s", (int)len, hex);
        }
        free(hex);
    }
    return rc;
}

/* Whether the dump of a database with system-versioned tables can carry their history
 * (the rows FOR SYSTEM_TIME ALL; without it a restore keeps only the current rows, stamped
 * with the time of the restore). mariadb-dump has --dump-history since 10.11, for tables
 * versioned by timestamp only: it refuses the whole dump when one table is versioned by
 * transaction id, so then the history is left out, with a warning, rather than the dump.
 * Returns 1 to pass --dump-history, 0 not to, -1 on error. */
static int
mysql_dump_history(const struct sb_db_config *db, const struct client_env *ce, const char *prog,
                   unsigned versioned, struct sb_error *err)
{
    const char *help_argv[] = {prog, "--no-defaults", "--help", NULL};
    char *help = NULL;
    int rc = sb_proc_run(help_argv, ce->env, &help, err);
    /* the output kept is the help's tail: the table of option values, one per line */
    bool has_option = rc == 0 && help && strstr(help, "\ndump-history ");
    free(help);
    if (rc < 0)
        return -1;
    if (!has_option) {
        sb_warn("database '%s': the history of its %u system-versioned table(s) is not in the "
                "snapshot, only their current rows: %s has no --dump-history (install "
                "mariadb-client 10.11 or later)",
                db->name, versioned, prog);
        return 0;
    }
    char *out = NULL;
    rc = mysql_query(ce, db->dbname,
                     "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = "
                     "DATABASE() AND generation_expression = 'ROW START' AND data_type = 'bigint'",
                     &out, err);
    unsigned long by_trx = rc == 0 && out ? strtoul(out, NULL, 10) : 0;
    free(out);
    if (rc < 0)
        return -1;
    if (by_trx > 0) {
        sb_warn("database '%s': the history of its %u system-versioned table(s) is not in the "
                "snapshot, only their current rows: %lu of them are versioned by transaction "
                "id, which mariadb-dump --dump-history cannot dump (version them by timestamp "
                "to keep their history in snapshots)",
                db->name, versioned, by_trx);
        return 0;
    }
    sb_debug("database '%s': %u system-versioned table(s), dumped with their history", db->name,
             versioned);
    return 1;
}

static int
mysql_dump_run(const struct sb_db_config *db, const struct client_env *ce,
               const struct sb_db_info *probed, struct sb_ostream *out, struct sb_error *err)
{
    const char *prog = mysql_program("mariadb-dump", "mysqldump");
    if (missing_client(prog, "mariadb-client", err) < 0)
        return -1;
    const char *argv[ARGV_MAX];
    char defaults[PATH_MAX + 32];
    size_t argc = mysql_base_args(ce, prog, argv, defaults);
    argv[argc++] = "--single-transaction";
    argv[argc++] = "--routines";
    argv[argc++] = "--triggers";
    argv[argc++] = "--events";
    argv[argc++] = "--hex-blob";
    argv[argc++] = "--default-character-set=utf8mb4";
    if (probed->versioned_tables > 0) {
        int history = mysql_dump_history(db, ce, prog, probed->versioned_tables, err);
        if (history < 0)
            return -1;
        if (history)
            argv[argc++] = "--dump-history";
    }
    argv[argc++] = db->dbname;
    argv[argc] = NULL;
    /* A dump of one database carries no CREATE DATABASE, so its default character set and
     * collation would be lost on a restore into a new database: the dump starts with them,
     * for the database the client loads into (also when a user feeds the file to mysql). */
    if (probed->charset[0] && probed->collation[0]) {
        char header[256];
        int len = snprintf(header, sizeof(header),
                           "-- snapback: the database's defaults when it was dumped\n"
                           "ALTER DATABASE CHARACTER SET %s COLLATE %s;\n",
                           probed->charset, probed->collation);
        if (sb_ostream_write(out, header, (size_t)len, err) < 0)
            return -1;
    }
    /* Its COMMENT (MariaDB): ALTER DATABASE takes only a string literal, so the statement is
     * built from the hex with QUOTE(), under an sql_mode without NO_BACKSLASH_ESCAPES (QUOTE
     * escapes with backslashes), and run as a prepared statement. */
    if (probed->my_comment_hex[0]) {
        static const char head[] =
            "-- snapback: the database's comment when it was dumped\n"
            "SET @snapback_mode = @@SESSION.sql_mode, SESSION sql_mode = '';\n"
            "SET @snapback_sql = CONCAT('ALTER DATABASE COMMENT = ', QUOTE(CONVERT(X'";
        static const char tail[] =
            "' USING utf8mb4)));\n"
            "PREPARE snapback_comment FROM @snapback_sql;\nEXECUTE snapback_comment;\n"
            "DEALLOCATE PREPARE snapback_comment;\nSET SESSION sql_mode = @snapback_mode;\n";
        if (sb_ostream_write(out, head, sizeof(head) - 1, err) < 0 ||
            sb_ostream_write(out, probed->my_comment_hex, strlen(probed->my_comment_hex), err) <
                0 ||
            sb_ostream_write(out, tail, sizeof(tail) - 1, err) < 0)
            return -1;
    }
    struct sb_proc *p = NULL;
    if (sb_proc_spawn(argv, ce->env, SB_PROC_STDOUT, &p, err) < 0)
        return -1;
    uint64_t copied = 0;
    int rc = sb_stream_copy(sb_proc_stdout(p), out, &copied, err);
    struct sb_error perr = SB_ERROR_INIT;
    if (sb_proc_finish(p, &perr) < 0) {
        classify(&perr, sb_proc_output(p));
        *err = perr;
        rc = -1;
    } else if (rc == 0 && copied == 0) {
        rc = sb_error_set(err, SB_E_IO, 0, "%s produced no output", prog);
    }
    sb_proc_free(p);
    return rc;
}

static int
mysql_sql(const struct client_env *ce, const char *sql, char **out, struct sb_error *err)
{
    return mysql_query(ce, NULL, sql, out, err);
}

/* In place, the result must be exactly the snapshot: a one-database dump drops and recreates
 * only the tables it contains, so what a migration created after it (a table, a view, a
 * routine, an event) would stay. The client is first fed statements that drop every table,
 * view, sequence, routine and event of the database (foreign key checks off), then the dump.
 * MySQL DDL commits as it goes, so this is not one transaction: a load that fails half-way
 * leaves a partial database (as the dump's own DROP TABLEs did before); run it again, or the
 * rollback's auto-revert restores its safety snapshot. */
static int
mysql_drop_all_sql(const struct client_env *ce, const char *target, char **sql,
                   struct sb_error *err)
{
    char query[1200];
    snprintf(query, sizeof(query),
             "SELECT CONCAT(CASE table_type WHEN 'VIEW' THEN 'DROP VIEW IF EXISTS ' WHEN "
             "'SEQUENCE' THEN 'DROP SEQUENCE IF EXISTS ' ELSE 'DROP TABLE IF EXISTS ' END, "
             "'`', REPLACE(table_name, '`', '``'), '`;') FROM information_schema.tables WHERE "
             "table_schema = '%s' UNION ALL SELECT CONCAT('DROP ', routine_type, ' IF EXISTS `', "
             "REPLACE(routine_name, '`', '``'), '`;') FROM information_schema.routines WHERE "
             "routine_schema = '%s' UNION ALL SELECT CONCAT('DROP EVENT IF EXISTS `', "
             "REPLACE(event_name, '`', '``'), '`;') FROM information_schema.events WHERE "
             "event_schema = '%s'",
             target, target, target);
    char *out = NULL;
    if (mysql_sql(ce, query, &out, err) < 0) {
        free(out);
        return -1;
    }
    size_t len = strlen(out);
    const char *pre = "SET FOREIGN_KEY_CHECKS=0;\n", *post = "SET FOREIGN_KEY_CHECKS=1;\n";
    char *text = malloc(strlen(pre) + len + strlen(post) + 2);
    if (!text) {
        free(out);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    snprintf(text, strlen(pre) + len + strlen(post) + 2, "%s%s%s%s", pre, out,
             len && out[len - 1] != '\n' ? "\n" : "", post);
    free(out);
    *sql = text;
    return 0;
}

static int
mysql_restore_run(const struct client_env *ce, const char *target, enum sb_db_restore_mode mode,
                  struct sb_istream *in, struct sb_error *err)
{
    bool in_place = mode == SB_DB_RESTORE_IN_PLACE;
    const char *prog = mysql_program("mariadb", "mysql");
    if (missing_client(prog, "mariadb-client", err) < 0)
        return -1;
    char ident[300], sql[700], *out = NULL;
    quote_ident(ident, sizeof(ident), target, '`');
    snprintf(sql, sizeof(sql), "SHOW DATABASES LIKE '%s'", target);
    if (strchr(target, '\'') || strchr(target, '\\'))
        return sb_error_set(err, SB_E_USAGE, 0, "database name '%s' has quotes or backslashes",
                            target);
    if (mysql_sql(ce, sql, &out, err) < 0) {
        free(out);
        return -1;
    }
    bool exists = out && strlen(out) > 0 && strcspn(out, "\n") > 0;
    free(out);
    out = NULL;
    if (exists && !in_place)
        return sb_error_set(err, SB_E_CANTCREATE, 0,
                            "database '%s' already exists; restore into a new name, or pass "
                            "--in-place to load into it",
                            target);
    if (!exists) {
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", ident);
        int rc = mysql_sql(ce, sql, &out, err);
        free(out);
        if (rc < 0)
            return create_database_failed(err, target, mode,
                                          "GRANT ALL ON `snapback\\_verify\\_%`.* TO the user");
    }
    char *drops = NULL;
    if (exists && mysql_drop_all_sql(ce, target, &drops, err) < 0)
        return sb_error_wrap(err, "cannot list the objects of database '%s'", target);
    const char *argv[ARGV_MAX];
    char defaults[PATH_MAX + 32];
    size_t argc = mysql_base_args(ce, prog, argv, defaults);
    argv[argc++] = target;
    argv[argc] = NULL;
    struct sb_proc *p = NULL;
    if (sb_proc_spawn(argv, ce->env, SB_PROC_STDIN, &p, err) < 0) {
        free(drops);
        return -1;
    }
    int rc = drops ? sb_ostream_write(sb_proc_stdin(p), drops, strlen(drops), err) : 0;
    free(drops);
    if (rc == 0)
        rc = sb_stream_copy(in, sb_proc_stdin(p), NULL, err);
    if (rc == 0)
        rc = sb_istream_drain(in, err);
    struct sb_error perr = SB_ERROR_INIT;
    if (rc == 0 && sb_proc_finish(p, &perr) < 0) {
        classify(&perr, sb_proc_output(p));
        *err = perr;
        rc = -1;
    }
    sb_proc_free(p);
    if (rc < 0 && mode == SB_DB_RESTORE_NEW) {
        /* ours, and half restored: gone, so that the next attempt can use the name */
        struct sb_error derr = SB_ERROR_INIT;
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", ident);
        int dropped = mysql_sql(ce, sql, &out, &derr);
        free(out);
        if (dropped < 0)
            sb_warn("cannot drop the partly restored database '%s' (drop it by hand): %s", target,
                    derr.msg);
        else
            sb_warn("dropped the partly restored database '%s'", target);
    }
    return rc;
}

/* --- SQLite --- */

static enum sb_code
sqlite_code(int rc)
{
    switch (rc & 0xff) { /* the primary code of an extended one */
    case SQLITE_CANTOPEN:
        return SB_E_NOTFOUND;
    case SQLITE_PERM:
    case SQLITE_AUTH:
    case SQLITE_READONLY:
        return SB_E_PERM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return SB_E_CORRUPT;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return SB_E_TEMPFAIL;
    default:
        return SB_E_IO;
    }
}

static int
sqlite_error(struct sb_error *err, sqlite3 *handle, int rc, const char *what, const char *path)
{
    return sb_error_set(err, sqlite_code(rc), 0, "%s '%s': %s", what, path,
                        handle ? sqlite3_errmsg(handle) : sqlite3_errstr(rc));
}

/* Removes path and the -journal, -wal and -shm SQLite may have made beside it. */
static void
sqlite_remove_with_logs(const char *path)
{
    static const char *const suffixes[] = {"", "-journal", "-wal", "-shm"};
    for (size_t idx = 0; idx < sizeof(suffixes) / sizeof(suffixes[0]); idx++) {
        char side[PATH_MAX + 16];
        snprintf(side, sizeof(side), "%s%s", path, suffixes[idx]);
        unlink(side);
    }
}

/* Copies the database open as src into the new file tmp with the online backup API: one step
 * (-1) copies every page inside one read transaction, so the copy is one committed state, as
 * VACUUM INTO's is, but not compacted (the freelist comes along). The copy of a WAL database
 * says WAL in its header; it is switched to a rollback journal, so the dump is a plain file
 * like VACUUM INTO's (the -wal that conversion makes is checkpointed and removed). */
static int
sqlite_copy_pages(sqlite3 *src, const char *path, const char *tmp, struct sb_error *err)
{
    sqlite3 *dst = NULL;
    int r = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (r != SQLITE_OK) {
        sqlite_error(err, dst, r, "cannot create the copy", tmp);
        sqlite3_close(dst);
        return -1;
    }
    /* a temp file: a crash discards it, so no fsyncs */
    r = sqlite3_exec(dst, "PRAGMA synchronous = OFF", NULL, NULL, NULL);
    sqlite3_backup *b = r == SQLITE_OK ? sqlite3_backup_init(dst, "main", src, "main") : NULL;
    if (!b) {
        sqlite_error(err, dst, sqlite3_errcode(dst), "cannot start copying", path);
        sqlite3_close(dst);
        return -1;
    }
    r = sqlite3_backup_step(b, -1); /* the source's busy timeout applies to its read lock */
    int fin = sqlite3_backup_finish(b);
    if (r == SQLITE_DONE && fin == SQLITE_OK)
        r = sqlite3_exec(dst, "PRAGMA journal_mode = DELETE", NULL, NULL, NULL);
    else
        r = r != SQLITE_DONE ? r : fin;
    int rc = 0;
    if (r != SQLITE_OK)
        rc = sb_error_set(err, sqlite_code(r), 0, "cannot copy SQLite database '%s': %s", path,
                          sqlite3_errstr(r));
    sqlite3_close(dst);
    return rc;
}

static int
sqlite_dump_run(const struct sb_db_config *db, const char *state_dir, struct sb_ostream *out,
                struct sb_error *err)
{
    char dir[PATH_MAX], tmp[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s/tmp", state_dir);
    if (sb_mkdir_p(dir, 0700, err) < 0)
        return -1;
    if (snprintf(tmp, sizeof(tmp), "%s/sqlite-%s-XXXXXX", dir, db->name) >= (int)sizeof(tmp))
        return sb_error_set(err, SB_E_USAGE, 0, "state_dir '%s' is too long", state_dir);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return sb_error_set(err, SB_E_CANTCREATE, errno, "cannot create a temp file in '%s'", dir);
    close(fd);
    unlink(tmp); /* VACUUM INTO wants a new file; the name is ours in a 0700 dir */
    sqlite3 *src = NULL;
    int rc = -1;
    struct stat st;
    if (stat(db->path, &st) < 0) {
        sb_error_set(err, SB_E_NOTFOUND, errno, "SQLite database '%s'", db->path);
        goto out;
    }
    int r = sqlite3_open_v2(db->path, &src, SQLITE_OPEN_READONLY, NULL);
    if (r != SQLITE_OK) {
        sqlite_error(err, src, r, "cannot open SQLite database", db->path);
        goto out;
    }
    sqlite3_busy_timeout(src, 30000);
    sqlite3_stmt *stmt = NULL;
    r = sqlite3_prepare_v2(src, "VACUUM INTO ?1", -1, &stmt, NULL);
    if (r == SQLITE_OK) {
        sqlite3_bind_text(stmt, 1, tmp, -1, SQLITE_TRANSIENT);
        r = sqlite3_step(stmt);
        if (r == SQLITE_DONE)
            r = SQLITE_OK;
    }
    sqlite3_finalize(stmt);
    if (r == SQLITE_ERROR) {
        /* VACUUM INTO rebuilds every index, so it needs what the schema names; a collation
         * only the application defines (sqlite3_create_collation) fails it. The backup API
         * copies the pages as they are, in one read transaction as well. */
        sb_info("SQLite database '%s': VACUUM INTO refused (%s); copying it page by page with "
                "the backup API instead",
                db->path, sqlite3_errmsg(src));
        sqlite_remove_with_logs(tmp);
        r = sqlite_copy_pages(src, db->path, tmp, err);
        if (r < 0)
            goto out;
    } else if (r != SQLITE_OK) {
        sqlite_error(err, src, r, "cannot copy SQLite database", db->path);
        goto out;
    }
    chmod(tmp, 0600);
    fd = open(tmp, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sb_error_set(err, SB_E_IO, errno, "cannot open '%s'", tmp);
        goto out;
    }
    struct sb_istream *in = sb_fd_istream_new(fd, tmp);
    if (!in) {
        close(fd);
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    rc = sb_stream_copy(in, out, NULL, err);
    sb_istream_free(in);
    close(fd);
out:
    if (src)
        sqlite3_close(src);
    sqlite_remove_with_logs(tmp);
    return rc;
}

/* A -wal or -journal beside a path would be replayed into whatever file gets that name. */
static int
sqlite_refuse_stale_logs(const char *target, struct sb_error *err)
{
    static const char *const suffixes[] = {"-wal", "-journal"};
    for (size_t idx = 0; idx < 2; idx++) {
        char log_path[PATH_MAX];
        struct stat st;
        snprintf(log_path, sizeof(log_path), "%s%s", target, suffixes[idx]);
        if (lstat(log_path, &st) == 0)
            return sb_error_set(err, SB_E_CANTCREATE, 0,
                                "'%s' exists without its database (left by a crashed writer?): "
                                "SQLite would replay it into the restored file; move it away or "
                                "restore to another path",
                                log_path);
    }
    return 0;
}

/* Runs one integrity_check statement on h: SQLITE_OK with its first row in verdict ("ok"
 * when sound), or the SQLite error, its message in verdict. */
static int
sqlite_integrity(sqlite3 *h, const char *sql, char *verdict, size_t cap)
{
    sqlite3_stmt *stmt = NULL;
    int r = sqlite3_prepare_v2(h, sql, -1, &stmt, NULL);
    if (r == SQLITE_OK) {
        r = sqlite3_step(stmt);
        if (r == SQLITE_ROW) {
            const char *v = (const char *)sqlite3_column_text(stmt, 0);
            snprintf(verdict, cap, "%s", v ? v : "?");
            r = SQLITE_OK;
        } else if (r == SQLITE_DONE) {
            r = SQLITE_CORRUPT; /* integrity_check always returns a row */
            snprintf(verdict, cap, "integrity_check returned nothing");
        } else {
            snprintf(verdict, cap, "%s", sqlite3_errmsg(h));
        }
    } else {
        snprintf(verdict, cap, "%s", sqlite3_errmsg(h));
    }
    sqlite3_finalize(stmt);
    return r;
}

#define SQLITE_NO_COLLATION "no such collation sequence: "

/* integrity_check cannot compare the keys of an index whose collation only the application
 * defines (sqlite3_create_collation): SQLite refuses the whole check. Then every table is
 * checked on its own (PRAGMA integrity_check(TABLE): the table and its indexes), the tables
 * that need such a collation are skipped with a warning naming them, and the others must be
 * sound. The copy's bytes are the ones the snapshot stored (its hashes were checked); what
 * is skipped is the check of the source database itself. */
static int
sqlite_check_tables(sqlite3 *h, const char *shown, const char *why, struct sb_error *err)
{
    sqlite3_stmt *list = NULL;
    int r = sqlite3_prepare_v2(
        h, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name", -1, &list, NULL);
    if (r != SQLITE_OK)
        return sqlite_error(err, h, r, "cannot list the tables of the restored SQLite database",
                            shown);
    char skipped[512] = "";
    size_t n_skipped = 0;
    int rc = 0;
    while (rc == 0 && (r = sqlite3_step(list)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(list, 0);
        char *sql = sqlite3_mprintf("PRAGMA integrity_check(\"%w\")", name ? name : "");
        if (!sql) {
            rc = sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            break;
        }
        char verdict[512];
        int c = sqlite_integrity(h, sql, verdict, sizeof(verdict));
        sqlite3_free(sql);
        if (c == SQLITE_ERROR &&
            strncmp(verdict, SQLITE_NO_COLLATION, strlen(SQLITE_NO_COLLATION)) == 0) {
            size_t used = strlen(skipped);
            if (n_skipped++ < 20)
                snprintf(skipped + used, sizeof(skipped) - used, "%s'%s'", used ? ", " : "", name);
        } else if (c == SQLITE_OK && strcmp(verdict, "ok") != 0) {
            rc = sb_error_set(err, SB_E_CORRUPT, 0,
                              "restored SQLite database '%s' fails integrity_check of table "
                              "'%s': %s",
                              shown, name, verdict);
        } else if (c != SQLITE_OK) {
            rc = sb_error_set(err, sqlite_code(c), 0,
                              "cannot check table '%s' of the restored SQLite database '%s': %s",
                              name, shown, verdict);
        }
    }
    if (rc == 0 && r != SQLITE_DONE)
        rc = sqlite_error(err, h, r, "cannot list the tables of the restored SQLite database",
                          shown);
    sqlite3_finalize(list);
    if (rc == 0 && n_skipped)
        sb_warn("restored SQLite database '%s': integrity_check skipped %zu table(s) (%s%s): %s, "
                "which only the application defines; the other tables are sound, and the copy's "
                "bytes are those the snapshot stored",
                shown, n_skipped, skipped, n_skipped > 20 ? ", ..." : "", why);
    return rc;
}

/* PRAGMA integrity_check on the restored copy at path (named shown in messages). */
static int
sqlite_check_file(const char *path, const char *shown, struct sb_error *err)
{
    sqlite3 *check = NULL;
    int r = sqlite3_open_v2(path, &check, SQLITE_OPEN_READONLY, NULL);
    char verdict[512];
    int rc = 0;
    if (r == SQLITE_OK)
        r = sqlite_integrity(check, "PRAGMA integrity_check", verdict, sizeof(verdict));
    else
        snprintf(verdict, sizeof(verdict), "%s", check ? sqlite3_errmsg(check) : sqlite3_errstr(r));
    if (r == SQLITE_OK && strcmp(verdict, "ok") != 0)
        rc =
            sb_error_set(err, SB_E_CORRUPT, 0,
                         "restored SQLite database '%s' fails integrity_check: %s", shown, verdict);
    else if (r == SQLITE_ERROR &&
             strncmp(verdict, SQLITE_NO_COLLATION, strlen(SQLITE_NO_COLLATION)) == 0)
        rc = sqlite_check_tables(check, shown, verdict, err);
    else if (r != SQLITE_OK)
        rc = sb_error_set(err, sqlite_code(r), 0,
                          "cannot check the restored SQLite database '%s': %s", shown, verdict);
    sqlite3_close(check);
    return rc;
}

/* Copies the checked file src into the live database target with the online backup API, in
 * one write transaction of the live database: SQLite first recovers a hot journal or a -wal a
 * crashed writer left, then waits for the app's own transactions (busy timeout), and readers
 * see the old or the new contents, never a mix. The file keeps its inode, owner and mode, and
 * connections the app holds open see the restored data (a rename would leave them on the old
 * inode, writing into a file nobody reads any more). */
static int
sqlite_backup_into(const char *src, const char *target, struct sb_error *err)
{
    sqlite3 *from = NULL, *to = NULL;
    int rc = -1;
    int r = sqlite3_open_v2(src, &from, SQLITE_OPEN_READONLY, NULL);
    if (r != SQLITE_OK) {
        sqlite_error(err, from, r, "cannot open the restored copy", src);
        goto out;
    }
    r = sqlite3_open_v2(target, &to, SQLITE_OPEN_READWRITE, NULL);
    if (r != SQLITE_OK) {
        sqlite_error(err, to, r, "cannot open the live SQLite database", target);
        goto out;
    }
    sqlite3_busy_timeout(to, 60000);
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    if (!b) {
        sqlite_error(err, to, sqlite3_errcode(to), "cannot start copying into", target);
        goto out;
    }
    r = sqlite3_backup_step(b, -1); /* waits up to the busy timeout for the app's locks */
    int fin = sqlite3_backup_finish(b);
    if (r != SQLITE_DONE || fin != SQLITE_OK) {
        int code = r != SQLITE_DONE ? r : fin;
        if (code == SQLITE_READONLY)
            sb_error_set(err, SB_E_CANTCREATE, 0,
                         "cannot restore into the live SQLite database '%s': %s (in WAL mode "
                         "its page size must equal the snapshot's; restore to a new path and "
                         "move it into place with the app stopped)",
                         target, sqlite3_errstr(code));
        else
            sqlite_error(err, to, code, "cannot restore into the live SQLite database", target);
        goto out;
    }
    rc = 0;
out:
    sqlite3_close(from);
    sqlite3_close(to);
    return rc;
}

/* A dump is written to a temp file beside the target (fsync'd, integrity-checked), then
 * renamed into place when the target does not exist, or copied into the live database with
 * the backup API (--in-place). */
static int
sqlite_restore_run(const char *target, bool in_place, struct sb_istream *in, struct sb_error *err)
{
    struct stat st;
    bool exists = lstat(target, &st) == 0;
    if (exists && !in_place)
        return sb_error_set(err, SB_E_CANTCREATE, 0,
                            "'%s' already exists; restore to a new path, or pass --in-place to "
                            "replace it",
                            target);
    if (!exists && sqlite_refuse_stale_logs(target, err) < 0)
        return -1;
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s.snapback-tmp-XXXXXX", target) >= (int)sizeof(tmp))
        return sb_error_set(err, SB_E_USAGE, 0, "path '%s' is too long", target);
    int fd = mkstemp(tmp);
    if (fd < 0)
        return sb_error_set(err, errno == ENOSPC ? SB_E_IO : SB_E_CANTCREATE, errno,
                            "cannot create a temp file beside '%s'", target);
    int rc = -1;
    struct sb_ostream *out = sb_fd_ostream_new(fd, tmp);
    if (!out) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    if (sb_stream_copy(in, out, NULL, err) < 0 || sb_istream_drain(in, err) < 0)
        goto out;
    if (fsync(fd) < 0) {
        sb_error_set(err, SB_E_IO, errno, "cannot fsync '%s'", tmp);
        goto out;
    }
    if (sqlite_check_file(tmp, target, err) < 0)
        goto out;
    if (exists) {
        if (sqlite_backup_into(tmp, target, err) < 0)
            goto out;
        rc = 0;
        goto out; /* the temp file goes */
    }
    if (rename(tmp, target) < 0) {
        sb_error_set(err, SB_E_IO, errno, "cannot rename '%s' to '%s'", tmp, target);
        goto out;
    }
    tmp[0] = '\0';
    rc = sb_fsync_parent(target, err);
out:
    sb_ostream_free(out);
    close(fd);
    if (tmp[0]) {
        unlink(tmp);
        /* opening the copy in WAL mode may have made its -wal and -shm */
        char side[PATH_MAX + 8];
        snprintf(side, sizeof(side), "%s-wal", tmp);
        unlink(side);
        snprintf(side, sizeof(side), "%s-shm", tmp);
        unlink(side);
    }
    return rc;
}

/* --- dispatch --- */

int
sb_db_probe(const struct sb_db_config *db, const char *state_dir, struct sb_db_info *info,
            struct sb_error *err)
{
    memset(info, 0, sizeof(*info));
    if (db->engine == SB_DB_SQLITE) {
        info->format = "sqlite3";
        snprintf(info->server_version, sizeof(info->server_version), "%s", sqlite3_libversion());
        sqlite3 *h = NULL;
        int r = sqlite3_open_v2(db->path, &h, SQLITE_OPEN_READONLY, NULL);
        if (r == SQLITE_OK) {
            sqlite3_busy_timeout(h, 30000); /* the app may hold a write lock for a moment */
            r = sqlite3_exec(h, "SELECT count(*) FROM sqlite_master", NULL, NULL, NULL);
        }
        int rc =
            r == SQLITE_OK ? 0 : sqlite_error(err, h, r, "cannot read SQLite database", db->path);
        sqlite3_close(h);
        return rc;
    }
    struct client_env ce;
    if (client_env_init(db, state_dir, &ce, err) < 0)
        return -1;
    int rc;
    if (db->engine == SB_DB_POSTGRESQL) {
        info->format = "pg_dump-custom";
        rc = pg_probe(db, &ce, info, err);
    } else {
        info->format = "mysqldump-sql";
        rc = mysql_probe(db, &ce, info, err);
    }
    client_env_release(&ce);
    return rc;
}

/* The major version of "15.18", "16beta2" or "9.6.24" as a number that compares across the
 * two numbering schemes: 1500, 1600, 906 (0 when there is none). */
static int
pg_major(const char *version)
{
    char *end = NULL;
    long major = strtol(version, &end, 10);
    if (end == version || major <= 0 || major > 999)
        return 0;
    if (major >= 10)
        return (int)major * 100;
    return (int)(major * 100 + (*end == '.' ? strtol(end + 1, NULL, 10) % 100 : 0));
}

int
sb_db_check_dump_client(const struct sb_db_config *db, const struct sb_db_info *info,
                        struct sb_error *err)
{
    if (db->engine == SB_DB_SQLITE)
        return 0;
    if (db->engine == SB_DB_MYSQL) {
        if (sb_proc_available("mariadb-dump"))
            return 0;
        return missing_client("mysqldump", "mariadb-client", err);
    }
    if (missing_client("pg_dump", "postgresql-client", err) < 0)
        return -1;
    /* "pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)". A pg_dump that does not say is
     * left to fail on its own (its message is classified below). */
    /* the pg_dump the snapshot will run (client_env_init's choice) */
    char direct[PATH_MAX] = "";
    if (db->host)
        sb_pg_client_path("pg_dump", getenv("PATH"), SB_PG_BINROOT, direct, sizeof(direct));
    const char *argv[] = {direct[0] ? direct : "pg_dump", "--version", NULL};
    char *out = NULL;
    struct sb_error verr = SB_ERROR_INIT;
    int client = 0, server = pg_major(info->server_version);
    if (sb_proc_run(argv, NULL, &out, &verr) == 0 && out) {
        const char *v = strstr(out, ") ");
        client = v ? pg_major(v + 2) : 0;
    }
    char line[128];
    snprintf(line, sizeof(line), "%.*s", out ? (int)strcspn(out, "\n") : 0, out ? out : "");
    free(out);
    if (client <= 0 || server < 1000 || client >= server)
        return 0;
    server /= 100;
    return sb_error_set(err, SB_E_UNAVAILABLE, 0,
                        "'%s' cannot dump the PostgreSQL %s server of database '%s': pg_dump "
                        "refuses servers newer than itself; install postgresql-client-%d (from "
                        "apt.postgresql.org if Debian has no such package) so that pg_dump is "
                        "version %d or newer",
                        line, info->server_version, db->name, server, server);
}

int
sb_db_dump(const struct sb_db_config *db, const char *state_dir, const struct sb_db_info *probed,
           struct sb_ostream *out, struct sb_error *err)
{
    if (db->engine == SB_DB_SQLITE)
        return sqlite_dump_run(db, state_dir, out, err);
    struct client_env ce;
    if (client_env_init(db, state_dir, &ce, err) < 0)
        return -1;
    int rc = db->engine == SB_DB_POSTGRESQL ? pg_dump_run(db, &ce, out, err)
                                            : mysql_dump_run(db, &ce, probed, out, err);
    client_env_release(&ce);
    return rc;
}

int
sb_db_restore(const struct sb_db_config *db, const char *target, enum sb_db_restore_mode mode,
              const struct sb_db_create *create, const char *state_dir, struct sb_istream *in,
              struct sb_error *err)
{
    bool in_place = mode == SB_DB_RESTORE_IN_PLACE;
    if (db->engine == SB_DB_SQLITE)
        return sqlite_restore_run(target, in_place, in, err);
    struct client_env ce;
    if (client_env_init(db, state_dir, &ce, err) < 0)
        return -1;
    int rc = db->engine == SB_DB_POSTGRESQL
                 ? pg_restore_run(db, &ce, target, mode, create, state_dir, in, err)
                 : mysql_restore_run(&ce, target, mode, in, err);
    client_env_release(&ce);
    return rc;
}

int
sb_db_drop(const struct sb_db_config *db, const char *target, const char *state_dir,
           struct sb_error *err)
{
    if (db->engine == SB_DB_SQLITE) {
        if (unlink(target) < 0 && errno != ENOENT)
            return sb_error_set(err, SB_E_IO, errno, "cannot remove '%s'", target);
        return 0;
    }
    struct client_env ce;
    if (client_env_init(db, state_dir, &ce, err) < 0)
        return -1;
    char sql[700], ident[300];
    int rc;
    if (db->engine == SB_DB_POSTGRESQL) {
        quote_ident(ident, sizeof(ident), target, '"');
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", ident);
        rc = pg_admin_sql(db, &ce, sql, err);
    } else {
        char *out = NULL;
        quote_ident(ident, sizeof(ident), target, '`');
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", ident);
        rc = mysql_sql(&ce, sql, &out, err);
        free(out);
    }
    client_env_release(&ce);
    return rc;
}

/* --- queries (verify probes) --- */

static int
sqlite_query(const char *path, const char *sql, char **out, struct sb_error *err)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *stmt = NULL;
    *out = NULL;
    int r = sqlite3_open_v2(path, &h, SQLITE_OPEN_READONLY, NULL);
    if (r == SQLITE_OK)
        r = sqlite3_prepare_v2(h, sql, -1, &stmt, NULL);
    if (r != SQLITE_OK) {
        sqlite_error(err, h, r, "cannot run the probe on", path);
        sqlite3_finalize(stmt);
        sqlite3_close(h);
        return -1;
    }
    size_t cap = 256, len = 0;
    char *buf = malloc(cap);
    int rc = 0;
    while (buf && (r = sqlite3_step(stmt)) == SQLITE_ROW) {
        int cols = sqlite3_column_count(stmt);
        for (int c = 0; c < cols; c++) {
            const char *v = (const char *)sqlite3_column_text(stmt, c);
            size_t vl = v ? strlen(v) : 0;
            if (len + vl + 2 >= cap) {
                cap = (len + vl + 2) * 2;
                char *p = realloc(buf, cap);
                if (!p) {
                    free(buf);
                    buf = NULL;
                    break;
                }
                buf = p;
            }
            memcpy(buf + len, v ? v : "", vl);
            len += vl;
            buf[len++] = c + 1 < cols ? '|' : '\n';
        }
    }
    if (!buf)
        rc = sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    else if (r != SQLITE_DONE)
        rc = sqlite_error(err, h, r, "the probe failed on", path);
    if (buf)
        buf[len] = '\0';
    sqlite3_finalize(stmt);
    sqlite3_close(h);
    if (rc < 0)
        free(buf);
    else
        *out = buf;
    return rc;
}

int
sb_db_query(const struct sb_db_config *db, const char *target, const char *sql,
            const char *state_dir, char **out, struct sb_error *err)
{
    *out = NULL;
    if (db->engine == SB_DB_SQLITE)
        return sqlite_query(target, sql, out, err);
    struct client_env ce;
    if (client_env_init(db, state_dir, &ce, err) < 0)
        return -1;
    int rc;
    const char *argv[ARGV_MAX];
    size_t argc = 0;
    if (db->engine == SB_DB_POSTGRESQL) {
        rc = psql_query(db, &ce, target, PSQL_ROWS, sql, out, err);
    } else {
        char defaults[PATH_MAX + 32];
        argc = mysql_base_args(&ce, mysql_program("mariadb", "mysql"), argv, defaults);
        argv[argc++] = "-N";
        argv[argc++] = "-B";
        argv[argc++] = "-e";
        argv[argc++] = sql;
        if (*target)
            argv[argc++] = target;
        argv[argc] = NULL;
        rc = run_client(argv, &ce, out, err);
        /* -B separates columns with tabs (a tab inside a value is written as "\t"): make
         * them the '|' that psql -A and the SQLite probe use, so that a verify.sql_probe
         * expect reads the same on every engine. */
        for (char *c = rc == 0 && *out ? *out : NULL; c && *c; c++)
            if (*c == '\t')
                *c = '|';
    }
    client_env_release(&ce);
    return rc;
}

int
sb_db_drop_leftovers(const struct sb_db_config *db, const char *prefix, const char *state_dir,
                     struct sb_error *err)
{
    if (db->engine == SB_DB_SQLITE)
        return 0; /* scratch SQLite files live in state_dir/tmp and are removed there */
    const char *list_sql = db->engine == SB_DB_POSTGRESQL
                               ? "SELECT datname FROM pg_database WHERE datname LIKE "
                                 "'snapback\\_verify\\_%'"
                               : "SHOW DATABASES LIKE 'snapback\\_verify\\_%'";
    char *out = NULL;
    if (sb_db_query(db, db->engine == SB_DB_POSTGRESQL ? "postgres" : "", list_sql, state_dir, &out,
                    err) < 0) {
        free(out);
        return -1;
    }
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, prefix, strlen(prefix)) != 0)
            continue;
        sb_warn("dropping scratch database '%s' left by an interrupted verify", line);
        rc = sb_db_drop(db, line, state_dir, err);
    }
    free(out);
    return rc;
}
