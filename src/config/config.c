/* The config file (DESIGN §3): one JSON document per app, parsed with cJSON and converted at
 * once into a struct sb_config; the cJSON tree is freed before returning and never leaves this
 * file. Validation is strict (unknown keys, duplicate keys, wrong types, missing required keys
 * and values out of range are all errors) and stops at the first problem.
 *
 * Message conventions (all SB_E_CONFIG; out of memory is SB_E_INTERNAL):
 * - sb_config_parse() says "<json.path>: <problem>", the path written as in JavaScript:
 *   "app: required key is missing", "databases[1].engine: expected one of postgresql, mysql,
 *   sqlite", "hooks.before_rollback[1]: expected a non-empty string". Problems with the text as
 *   a whole have no path: "invalid JSON near line L column C", "empty file, expected a JSON
 *   object", "expected a JSON object at the top level", "line L column C: NUL characters are
 *   not allowed". Lines and columns count from 1; columns count characters, not bytes.
 * - sb_config_load() prefixes every message with "config '<file>': ", and says
 *   "config '<file>': cannot read: <strerror>; pass --config FILE or set SNAPBACK_CONFIG" when
 *   the file cannot be read.
 * Keys taken from the file are shown with unprintable bytes as '?' and cut after 64 bytes, so a
 * message is always one readable line. */
#include "snapback/config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "snapback/cron.h"
#include "snapback/zone.h"

#define JSON_PATH_MAX 256
#define KEY_SHOWN_MAX 64
#define NAME_MAX_LEN 64
#define CONFIG_FILE_MAX (1024 * 1024)
#define URL_FORMS "file:///path, /path or sftp://user@host[:port]/path"
#define SFTP_FORM "sftp://user@host[:port]/path"
#define DURATION_MSG "expected a duration like 90m, 2h or 1d"

static int config_fail(struct sb_error *err, const char *json_path, const char *fmt, ...)
    SB_PRINTF(3, 4);

static int
config_fail(struct sb_error *err, const char *json_path, const char *fmt, ...)
{
    char problem[SB_ERROR_MSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    return sb_error_set(err, SB_E_CONFIG, 0, "%s: %s", json_path, problem);
}

static int
out_of_memory(struct sb_error *err)
{
    return sb_error_set(err, SB_E_INTERNAL, 0, "out of memory");
}

static char *
dup_string(const char *text)
{
    size_t size = strlen(text) + 1;
    char *copy = malloc(size);

    if (copy)
        memcpy(copy, text, size);
    return copy;
}

static bool
is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* --- JSON paths ---------------------------------------------------------------------------- */

/* Writes "parent.key" (just "key" at the top level) into out. */
static void
path_key(char *out, size_t size, const char *parent, const char *key)
{
    size_t pos = 0;

    for (const char *p = parent; *p && pos + 1 < size; p++)
        out[pos++] = *p;
    if (parent[0] && pos + 1 < size)
        out[pos++] = '.';
    if (!key[0]) {
        for (const char *p = "\"\""; *p && pos + 1 < size; p++)
            out[pos++] = *p;
    }
    for (size_t key_idx = 0; key[key_idx] && pos + 1 < size; key_idx++) {
        if (key_idx == KEY_SHOWN_MAX) {
            for (const char *p = "..."; *p && pos + 1 < size; p++)
                out[pos++] = *p;
            break;
        }
        unsigned char c = (unsigned char)key[key_idx];
        out[pos++] = (c < 0x20 || c == 0x7f) ? '?' : key[key_idx];
    }
    out[pos] = '\0';
}

static void
path_index(char *out, size_t size, const char *parent, size_t idx)
{
    int n = snprintf(out, size, "%s[%zu]", parent, idx);

    /* Parents are short paths built here, but keep a cut one readable. */
    if (n < 0 || (size_t)n >= size)
        memcpy(out + size - 4, "...", 4);
}

/* The member key of obj (NULL when absent) and its path in path_out. */
static const cJSON *
member(const cJSON *obj, const char *parent, const char *key, char *path_out)
{
    path_key(path_out, JSON_PATH_MAX, parent, key);
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* Every key of obj must be in known (NULL-terminated, at most 32 keys) and appear once. */
static int
check_keys(const cJSON *obj, const char *parent, const char *const *known, struct sb_error *err)
{
    uint32_t seen = 0;

    for (const cJSON *child = obj->child; child; child = child->next) {
        const char *key = child->string ? child->string : "";
        char path[JSON_PATH_MAX];
        size_t known_idx = 0;

        while (known[known_idx] && strcmp(known[known_idx], key) != 0)
            known_idx++;
        path_key(path, sizeof(path), parent, key);
        if (!known[known_idx])
            return config_fail(err, path, "unknown key");
        if (seen & (UINT32_C(1) << known_idx))
            return config_fail(err, path, "duplicate key");
        seen |= UINT32_C(1) << known_idx;
    }
    return 0;
}

static size_t
array_length(const cJSON *array)
{
    size_t count = 0;

    for (const cJSON *child = array->child; child; child = child->next)
        count++;
    return count;
}

/* --- typed values ---------------------------------------------------------------------------- */

static int
conv_string(const cJSON *item, const char *path, char **out, struct sb_error *err)
{
    if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
        return config_fail(err, path, "expected a non-empty string");
    if (!(*out = dup_string(item->valuestring)))
        return out_of_memory(err);
    return 0;
}

static int
conv_abs_path(const cJSON *item, const char *path, char **out, struct sb_error *err)
{
    if (!cJSON_IsString(item) || !item->valuestring || item->valuestring[0] != '/')
        return config_fail(err, path, "expected an absolute path");
    if (!(*out = dup_string(item->valuestring)))
        return out_of_memory(err);
    return 0;
}

/* A path below release.root: relative, without ".", ".." or empty components, so that it can
 * neither escape the root nor name the same place in two spellings. */
static int
conv_rel_path(const cJSON *item, const char *path, char **out, struct sb_error *err)
{
    if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
        return config_fail(err, path, "expected a relative path");
    const char *text = item->valuestring;
    if (text[0] == '/')
        return config_fail(err, path, "must be relative to release.root, not absolute");
    for (const char *start = text;;) {
        const char *end = strchr(start, '/');
        size_t len = end ? (size_t)(end - start) : strlen(start);
        if (len == 0 || (len == 1 && start[0] == '.') ||
            (len == 2 && start[0] == '.' && start[1] == '.'))
            return config_fail(err, path, "must not contain '.', '..' or empty components");
        if (!end)
            break;
        start = end + 1;
    }
    if (!(*out = dup_string(text)))
        return out_of_memory(err);
    return 0;
}

static int
conv_int(const cJSON *item, const char *path, int min, int max, int *out, struct sb_error *err)
{
    /* Range first, so that the cast is defined; NaN never gets here (cJSON cannot produce
     * it), infinities fail the range check. */
    if (!cJSON_IsNumber(item) || !isfinite(item->valuedouble) || item->valuedouble < (double)min ||
        item->valuedouble > (double)max || (double)(int)item->valuedouble != item->valuedouble) {
        if (max == INT_MAX)
            return config_fail(err, path, "expected an integer >= %d", min);
        return config_fail(err, path, "expected an integer between %d and %d", min, max);
    }
    *out = (int)item->valuedouble;
    return 0;
}

static int
conv_bool(const cJSON *item, const char *path, bool *out, struct sb_error *err)
{
    if (!cJSON_IsBool(item))
        return config_fail(err, path, "expected true or false");
    *out = cJSON_IsTrue(item);
    return 0;
}

/* names is NULL-terminated; *out is the index of the match. */
static int
conv_enum(const cJSON *item, const char *path, const char *const *names, int *out,
          struct sb_error *err)
{
    if (cJSON_IsString(item) && item->valuestring) {
        for (int name_idx = 0; names[name_idx]; name_idx++) {
            if (strcmp(names[name_idx], item->valuestring) == 0) {
                *out = name_idx;
                return 0;
            }
        }
    }
    char list[256] = "";
    size_t pos = 0;
    for (size_t name_idx = 0; names[name_idx] && pos < sizeof(list); name_idx++) {
        int n =
            snprintf(list + pos, sizeof(list) - pos, "%s%s", name_idx ? ", " : "", names[name_idx]);
        if (n < 0)
            break;
        pos += (size_t)n;
    }
    return config_fail(err, path, "expected one of %s", list);
}

static int
conv_duration(const cJSON *item, const char *path, int64_t *out, struct sb_error *err)
{
    if (!cJSON_IsString(item) || !item->valuestring ||
        sb_parse_duration(item->valuestring, out) < 0)
        return config_fail(err, path, DURATION_MSG);
    return 0;
}

/* A name used in file names: 1..64 of [A-Za-z0-9_-], plus '.' (not first) when allow_dot. */
static bool
valid_name(const char *name, bool allow_dot)
{
    size_t len = 0;

    if (name[0] == '.')
        return false;
    for (; name[len]; len++) {
        char c = name[len];
        if (!is_alnum(c) && c != '_' && c != '-' && !(allow_dot && c == '.'))
            return false;
        if (len == NAME_MAX_LEN)
            return false;
    }
    return len > 0;
}

/* --- sections --------------------------------------------------------------------------------- */

static int
parse_release(const cJSON *obj, struct sb_config *cfg, struct sb_error *err)
{
    static const char *const keys[] = {
        "root", "releases_dir", "current", "shared_paths", "keep_releases", NULL,
    };
    const char *parent = "release";
    char path[JSON_PATH_MAX];
    const cJSON *item;

    if (!cJSON_IsObject(obj))
        return config_fail(err, parent, "expected an object");
    if (check_keys(obj, parent, keys, err) < 0)
        return -1;
    cfg->has_release = true;
    cfg->release.keep_releases = 5;

    if (!(item = member(obj, parent, "root", path)))
        return config_fail(err, path, "required key is missing");
    if (conv_abs_path(item, path, &cfg->release.root, err) < 0)
        return -1;

    if ((item = member(obj, parent, "releases_dir", path))) {
        if (conv_rel_path(item, path, &cfg->release.releases_dir, err) < 0)
            return -1;
    } else if (!(cfg->release.releases_dir = dup_string("releases"))) {
        return out_of_memory(err);
    }

    if ((item = member(obj, parent, "current", path))) {
        if (conv_rel_path(item, path, &cfg->release.current, err) < 0)
            return -1;
    } else if (!(cfg->release.current = dup_string("current"))) {
        return out_of_memory(err);
    }
    if (strcmp(cfg->release.current, cfg->release.releases_dir) == 0) {
        path_key(path, sizeof(path), parent, "current");
        return config_fail(err, path, "must differ from release.releases_dir");
    }

    const cJSON *array = member(obj, parent, "shared_paths", path);
    size_t count = 0;
    if (array) {
        if (!cJSON_IsArray(array))
            return config_fail(err, path, "expected an array of relative paths");
        count = array_length(array);
    }
    if (!(cfg->release.shared_paths = calloc(count + 1, sizeof(char *))))
        return out_of_memory(err);
    if (array) {
        char array_path[JSON_PATH_MAX];
        size_t path_idx = 0;

        memcpy(array_path, path, sizeof(array_path));
        for (const cJSON *elem = array->child; elem; elem = elem->next, path_idx++) {
            char **slot = &cfg->release.shared_paths[path_idx];

            path_index(path, sizeof(path), array_path, path_idx);
            if (conv_rel_path(elem, path, slot, err) < 0)
                return -1;
            cfg->release.shared_count = path_idx + 1;
            for (size_t prev_idx = 0; prev_idx < path_idx; prev_idx++) {
                const char *prev = cfg->release.shared_paths[prev_idx];
                size_t plen = strlen(prev), len = strlen(*slot);
                if (strcmp(prev, *slot) == 0)
                    return config_fail(err, path, "duplicate path '%s'", *slot);
                /* one inside another would be stored twice, and restoring the inner one
                 * would follow a symlink the outer one may have at that place */
                if ((len > plen && !strncmp(*slot, prev, plen) && (*slot)[plen] == '/') ||
                    (plen > len && !strncmp(prev, *slot, len) && prev[len] == '/'))
                    return config_fail(err, path,
                                       "'%s' and '%s' (shared_paths[%zu]) are nested; list only "
                                       "the outer one",
                                       *slot, prev, prev_idx);
            }
        }
    }

    if ((item = member(obj, parent, "keep_releases", path)) &&
        conv_int(item, path, 1, INT_MAX, &cfg->release.keep_releases, err) < 0)
        return -1;
    return 0;
}

static int
parse_database(const cJSON *obj, const char *parent, struct sb_config *cfg, size_t db_idx,
               struct sb_error *err)
{
    static const char *const keys[] = {
        "name", "engine", "host", "port", "dbname", "user", "password_file", "path", NULL,
    };
    static const char *const engines[] = {"postgresql", "mysql", "sqlite", NULL};
    static const char *const server_keys[] = {"host", "port",          "dbname",
                                              "user", "password_file", NULL};
    struct sb_db_config *db = &cfg->databases[db_idx];
    char path[JSON_PATH_MAX];
    const cJSON *item;
    int engine = 0;

    if (!cJSON_IsObject(obj))
        return config_fail(err, parent, "expected an object");
    if (check_keys(obj, parent, keys, err) < 0)
        return -1;

    if (!(item = member(obj, parent, "name", path)))
        return config_fail(err, path, "required key is missing");
    if (!cJSON_IsString(item) || !item->valuestring || !valid_name(item->valuestring, false))
        return config_fail(err, path, "expected a name of 1 to 64 letters, digits, '_' or '-'");
    for (size_t prev_idx = 0; prev_idx < db_idx; prev_idx++) {
        if (strcmp(cfg->databases[prev_idx].name, item->valuestring) == 0)
            return config_fail(err, path, "duplicate name '%s'", item->valuestring);
    }
    if (!(db->name = dup_string(item->valuestring)))
        return out_of_memory(err);

    if (!(item = member(obj, parent, "engine", path)))
        return config_fail(err, path, "required key is missing");
    if (conv_enum(item, path, engines, &engine, err) < 0)
        return -1;
    db->engine = (enum sb_db_engine)engine;

    if (db->engine == SB_DB_SQLITE) {
        for (size_t key_idx = 0; server_keys[key_idx]; key_idx++) {
            if (member(obj, parent, server_keys[key_idx], path))
                return config_fail(err, path, "not valid for engine sqlite");
        }
        if (!(item = member(obj, parent, "path", path)))
            return config_fail(err, path, "required key is missing");
        return conv_abs_path(item, path, &db->path, err);
    }

    if (member(obj, parent, "path", path))
        return config_fail(err, path, "not valid for engine %s", engines[engine]);
    if (!(item = member(obj, parent, "dbname", path)))
        return config_fail(err, path, "required key is missing");
    if (conv_string(item, path, &db->dbname, err) < 0)
        return -1;
    if ((item = member(obj, parent, "host", path)) && conv_string(item, path, &db->host, err) < 0)
        return -1;
    if ((item = member(obj, parent, "port", path)) &&
        conv_int(item, path, 1, 65535, &db->port, err) < 0)
        return -1;
    if ((item = member(obj, parent, "user", path)) && conv_string(item, path, &db->user, err) < 0)
        return -1;
    if ((item = member(obj, parent, "password_file", path)) &&
        conv_abs_path(item, path, &db->password_file, err) < 0)
        return -1;
    return 0;
}

static int
parse_databases(const cJSON *array, struct sb_config *cfg, struct sb_error *err)
{
    size_t count;
    size_t db_idx = 0;

    if (!cJSON_IsArray(array))
        return config_fail(err, "databases", "expected an array of objects");
    count = array_length(array);
    if (!(cfg->databases = calloc(count ? count : 1, sizeof(*cfg->databases))))
        return out_of_memory(err);
    for (const cJSON *elem = array->child; elem; elem = elem->next, db_idx++) {
        char path[JSON_PATH_MAX];

        /* Counted before it is filled, so that sb_config_free() releases a partial entry. */
        cfg->database_count = db_idx + 1;
        path_index(path, sizeof(path), "databases", db_idx);
        if (parse_database(elem, path, cfg, db_idx, err) < 0)
            return -1;
    }
    return 0;
}

static bool
valid_host_char(char c, bool bracketed)
{
    if (is_alnum(c) || c == '.' || c == '-' || c == '_')
        return true;
    return bracketed && (c == ':' || c == '%');
}

/* sftp://user@host[:port]/path; host may be a bracketed IPv6 address. No percent-decoding. */
static int
parse_sftp_url(const char *url, const char *path, struct sb_config *cfg, struct sb_error *err)
{
    const char *authority = url + strlen("sftp://");
    const char *slash = strchr(authority, '/');
    const char *at = NULL;
    const char *host, *host_end, *port_text = NULL;

    if (!slash || !slash[1])
        return config_fail(err, path, "sftp URL needs a path: " SFTP_FORM);
    for (const char *p = authority; p < slash; p++) {
        if (*p == '@')
            at = p;
    }
    if (!at || at == authority)
        return config_fail(err, path, "sftp URL needs a user: " SFTP_FORM);
    for (const char *p = authority; p < at; p++) {
        if (*p == ':')
            return config_fail(err, path,
                               "a password in the URL is not allowed; use "
                               "repository.identity_file");
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return config_fail(err, path, "invalid user name in the URL");
    }

    host = at + 1;
    if (*host == '[') {
        host++;
        host_end = memchr(host, ']', (size_t)(slash - host));
        if (!host_end)
            return config_fail(err, path, "unterminated '[' in the host of the URL");
        if (host_end + 1 != slash) {
            if (host_end[1] != ':')
                return config_fail(err, path, "expected ':port' or '/' after ']' in the URL");
            port_text = host_end + 2;
        }
    } else {
        host_end = memchr(host, ':', (size_t)(slash - host));
        if (host_end)
            port_text = host_end + 1;
        else
            host_end = slash;
    }
    if (host_end == host)
        return config_fail(err, path, "sftp URL needs a host: " SFTP_FORM);
    for (const char *p = host; p < host_end; p++) {
        if (!valid_host_char(*p, at[1] == '['))
            return config_fail(err, path, "invalid host '%.*s'", (int)(host_end - host), host);
    }

    int port = 22;
    if (port_text) {
        long value = 0;
        const char *p = port_text;

        for (; p < slash && *p >= '0' && *p <= '9' && value <= 65535; p++)
            value = value * 10 + (*p - '0');
        if (p != slash || p == port_text || value < 1 || value > 65535) {
            int shown = (int)(slash - port_text) > 16 ? 16 : (int)(slash - port_text);
            return config_fail(err, path, "port '%.*s' is not a number between 1 and 65535", shown,
                               port_text);
        }
        port = (int)value;
    }

    /* "/~/dir" (curl's form) is dir in the login's home directory: a relative path, which SFTP
     * servers resolve against it (OpenSSH's and ProFTPD's start the session there). */
    const char *remote = slash;
    if (!strcmp(slash, "/~") || !strcmp(slash, "/~/"))
        remote = ".";
    else if (!strncmp(slash, "/~/", 3))
        remote = slash + 3;
    else if (slash[1] == '~')
        return config_fail(err, path,
                           "'%s': a path in another user's home is not supported; use "
                           "/~/DIR for the login's home, or an absolute path",
                           slash);

    cfg->repository.is_sftp = true;
    cfg->repository.sftp_port = port;
    if (!(cfg->repository.sftp_user = strndup(authority, (size_t)(at - authority))) ||
        !(cfg->repository.sftp_host = strndup(host, (size_t)(host_end - host))) ||
        !(cfg->repository.path = dup_string(remote)))
        return out_of_memory(err);
    return 0;
}

static int
parse_repository_url(const cJSON *item, const char *path, struct sb_config *cfg,
                     struct sb_error *err)
{
    if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
        return config_fail(err, path, "expected " URL_FORMS);
    const char *url = item->valuestring;
    if (!(cfg->repository.url = dup_string(url)))
        return out_of_memory(err);
    if (url[0] == '/') {
        if (!(cfg->repository.path = dup_string(url)))
            return out_of_memory(err);
        return 0;
    }

    size_t scheme_len = 0;
    if ((url[0] >= 'a' && url[0] <= 'z') || (url[0] >= 'A' && url[0] <= 'Z')) {
        while (is_alnum(url[scheme_len]) || url[scheme_len] == '+' || url[scheme_len] == '-' ||
               url[scheme_len] == '.')
            scheme_len++;
    }
    if (scheme_len == 0 || url[scheme_len] != ':')
        return config_fail(err, path, "a local path must be absolute; use " URL_FORMS);

    if (scheme_len == 4 && strncasecmp(url, "file", 4) == 0) {
        if (strncmp(url + 4, "://", 3) != 0 || url[7] != '/')
            return config_fail(err, path, "expected file:///absolute/path");
        if (!(cfg->repository.path = dup_string(url + 7)))
            return out_of_memory(err);
        return 0;
    }
    if (scheme_len == 4 && strncasecmp(url, "sftp", 4) == 0) {
        if (strncmp(url + 4, "://", 3) != 0)
            return config_fail(err, path, "expected " SFTP_FORM);
        return parse_sftp_url(url, path, cfg, err);
    }
    return config_fail(err, path, "unsupported scheme '%.*s'; use " URL_FORMS,
                       scheme_len > 32 ? 32 : (int)scheme_len, url);
}

static int
parse_repository(const cJSON *obj, struct sb_config *cfg, struct sb_error *err)
{
    static const char *const keys[] = {
        "url", "identity_file", "identity_passphrase_file", "known_hosts", "timeout_s", "retries",
        NULL,
    };
    const char *parent = "repository";
    char path[JSON_PATH_MAX];
    const cJSON *item;

    if (!cJSON_IsObject(obj))
        return config_fail(err, parent, "expected an object");
    if (check_keys(obj, parent, keys, err) < 0)
        return -1;
    if (!(item = member(obj, parent, "url", path)))
        return config_fail(err, path, "required key is missing");
    if (parse_repository_url(item, path, cfg, err) < 0)
        return -1;
    /* Only used for sftp, but accepted (and checked) for a local repository too, so that
     * switching the url back and forth does not need other edits. */
    if ((item = member(obj, parent, "identity_file", path)) &&
        conv_abs_path(item, path, &cfg->repository.identity_file, err) < 0)
        return -1;
    if ((item = member(obj, parent, "identity_passphrase_file", path))) {
        if (conv_abs_path(item, path, &cfg->repository.identity_passphrase_file, err) < 0)
            return -1;
        if (!cfg->repository.identity_file)
            return config_fail(err, path, "needs repository.identity_file");
    }
    if ((item = member(obj, parent, "known_hosts", path)) &&
        conv_abs_path(item, path, &cfg->repository.known_hosts, err) < 0)
        return -1;
    if ((item = member(obj, parent, "timeout_s", path)) &&
        conv_int(item, path, 1, 3600, &cfg->repository.timeout_s, err) < 0)
        return -1;
    if ((item = member(obj, parent, "retries", path)) &&
        conv_int(item, path, 0, 20, &cfg->repository.retries, err) < 0)
        return -1;
    return 0;
}

static int
parse_compression(const cJSON *obj, struct sb_config *cfg, struct sb_error *err)
{
    static const char *const keys[] = {"level", "threads", NULL};
    const char *parent = "compression";
    char path[JSON_PATH_MAX];
    const cJSON *item;

    if (!cJSON_IsObject(obj))
        return config_fail(err, parent, "expected an object");
    if (check_keys(obj, parent, keys, err) < 0)
        return -1;
    if ((item = member(obj, parent, "level", path)) &&
        conv_int(item, path, 1, 19, &cfg->compression.level, err) < 0)
        return -1;
    if ((item = member(obj, parent, "threads", path)) &&
        conv_int(item, path, 0, 256, &cfg->compression.threads, err) < 0)
        return -1;
    return 0;
}

/* schedule.jitter: a duration up to an hour, or "0" (the default: no delay). */
#define JITTER_MAX_S 3600

static int
parse_schedule(const cJSON *obj, struct sb_config *cfg, struct sb_error *err)
{
    static const char *const keys[] = {"snapshot", "prune", "verify", "timezone", "jitter", NULL};
    const char *parent = "schedule";
    char **slots[] = {&cfg->schedule.snapshot, &cfg->schedule.prune, &cfg->schedule.verify};
    char path[JSON_PATH_MAX];
    const cJSON *item;

    if (!cJSON_IsObject(obj))
        return config_fail(err, parent, "expected an object");
    if (check_keys(obj, parent, keys, err) < 0)
        return -1;
    for (size_t key_idx = 0; key_idx < sizeof(slots) / sizeof(slots[0]); key_idx++) {
        struct sb_error cron_err = SB_ERROR_INIT;
        struct sb_cron *cron = NULL;

        if (!(item = member(obj, parent, keys[key_idx], path)))
            continue;
        if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
            return config_fail(err, path, "expected a cron expression like '0 * * * *'");
        if (sb_cron_parse(item->valuestring, &cron, &cron_err) < 0)
            return config_fail(err, path, "%s", cron_err.msg);
        sb_cron_free(cron);
        if (!(*slots[key_idx] = dup_string(item->valuestring)))
            return out_of_memory(err);
    }
    if ((item = member(obj, parent, "timezone", path))) {
        if (!cJSON_IsString(item) || !item->valuestring || !item->valuestring[0])
            return config_fail(err, path, "expected a time zone name like 'Europe/Berlin'");
        struct sb_zone *zone = NULL;
        struct sb_error zone_err = SB_ERROR_INIT;
        if (sb_zone_load(item->valuestring, &zone, &zone_err) < 0) {
            if (zone_err.code != SB_E_CONFIG) /* a damaged zone file */
                return config_fail(err, path, "%s", zone_err.msg);
            return config_fail(err, path,
                               "unknown time zone '%.100s' (no such zone file under "
                               "/usr/share/zoneinfo; use an IANA name like 'Europe/Berlin', or "
                               "install tzdata)",
                               item->valuestring);
        }
        sb_zone_free(zone);
        if (!(cfg->schedule.timezone = dup_string(item->valuestring)))
            return out_of_memory(err);
    }
    if ((item = member(obj, parent, "jitter", path))) {
        int64_t jitter = 0;
        bool zero = cJSON_IsString(item) && item->valuestring &&
                    (!strcmp(item->valuestring, "0") || !strcmp(item->valuestring, "0s"));
        if (!zero && (!cJSON_IsString(item) || !item->valuestring ||
                      sb_parse_duration(item->valuestring, &jitter) < 0 || jitter > JITTER_MAX_S))
            return config_fail(err, path,
                               "expected a duration from 0 to 1h like '30s' or '5m' (each fire "
                               "is delayed by a random amount up to it)");
        cfg->schedule.jitter_s = jitter;
    }
    return 0;
}

static int
parse_retention(const cJSON *obj, struct sb_config *cfg, struct sb_error *err)
{
    static const char *const keys[] = {
        "keep_last",    "keep_hourly", "keep_daily",  "keep_weekly",
        "keep_monthly", "keep_yearly", "keep_within", NULL,
    };
    const char *parent = "retention";
    int *slots[] = {
        &cfg->retention.keep_last,   &cfg->retention.keep_hourly,  &cfg->retention.keep_daily,
        &cfg->retention.keep_weekly, &cfg->retention.keep_monthly, &cfg->retention.keep_yearly,
    };
    char path[JSON_PATH_MAX];
    const cJSON *item;

    if (!cJSON_IsObject(obj))
        return config_fail(err, parent, "expected an object");
    if (check_keys(obj, parent, keys, err) < 0)
        return -1;
    for (size_t key_idx = 0; key_idx < sizeof(slots) / sizeof(slots[0]); key_idx++) {
        if ((item = member(obj, parent, keys[key_idx], path)) &&
            conv_int(item, path, 0, INT_MAX, slots[key_idx], err) < 0)
            return -1;
    }
    if ((item = member(obj, parent, "keep_within", path)) &&
        conv_duration(item, path, &cfg->retention.keep_within_s, err) < 0)
        return -1;
    return 0;
}

static int
parse_rollback(const cJSON *obj, struct sb_config *cfg, struct sb_error *err)
{
    static const char *const keys[] = {"database", "auto_revert", "health_timeout_s", NULL};
    static const char *const modes[] = {"never", "ask", "always", NULL};
    const char *parent = "rollback";
    char path[JSON_PATH_MAX];
    const cJSON *item;
    int mode = 0;

    if (!cJSON_IsObject(obj))
        return config_fail(err, parent, "expected an object");
    if (check_keys(obj, parent, keys, err) < 0)
        return -1;
    if ((item = member(obj, parent, "database", path))) {
        if (conv_enum(item, path, modes, &mode, err) < 0)
            return -1;
        cfg->rollback.database = (enum sb_rollback_db)mode;
    }
    if ((item = member(obj, parent, "auto_revert", path)) &&
        conv_bool(item, path, &cfg->rollback.auto_revert, err) < 0)
        return -1;
    if ((item = member(obj, parent, "health_timeout_s", path)) &&
        conv_int(item, path, 1, 86400, &cfg->rollback.health_timeout_s, err) < 0)
        return -1;
    return 0;
}

/* A string runs under /bin/sh -c; an array is an argv, exec'd directly. */
static int
conv_command(const cJSON *item, const char *path, struct sb_command_spec *spec,
             struct sb_error *err)
{
    if (cJSON_IsString(item) && item->valuestring && item->valuestring[0]) {
        if (!(spec->shell = dup_string(item->valuestring)))
            return out_of_memory(err);
        spec->present = true;
        return 0;
    }
    if (!cJSON_IsArray(item) || !item->child)
        return config_fail(err, path, "expected a command: a non-empty string or array of strings");

    size_t arg_idx = 0;
    if (!(spec->argv = calloc(array_length(item) + 1, sizeof(char *))))
        return out_of_memory(err);
    spec->present = true;
    for (const cJSON *elem = item->child; elem; elem = elem->next, arg_idx++) {
        char elem_path[JSON_PATH_MAX];

        path_index(elem_path, sizeof(elem_path), path, arg_idx);
        if (conv_string(elem, elem_path, &spec->argv[arg_idx], err) < 0)
            return -1;
    }
    return 0;
}

static int
parse_hooks(const cJSON *obj, struct sb_config *cfg, struct sb_error *err)
{
    static const char *const keys[] = {
        "before_snapshot", "after_snapshot", "before_rollback", "after_rollback",
        "health_check",    "on_error",       "timeout_s",       NULL,
    };
    const char *parent = "hooks";
    struct sb_command_spec *slots[] = {
        &cfg->hooks.before_snapshot, &cfg->hooks.after_snapshot, &cfg->hooks.before_rollback,
        &cfg->hooks.after_rollback,  &cfg->hooks.health_check,   &cfg->hooks.on_error,
    };
    char path[JSON_PATH_MAX];
    const cJSON *item;

    if (!cJSON_IsObject(obj))
        return config_fail(err, parent, "expected an object");
    if (check_keys(obj, parent, keys, err) < 0)
        return -1;
    for (size_t key_idx = 0; key_idx < sizeof(slots) / sizeof(slots[0]); key_idx++) {
        if ((item = member(obj, parent, keys[key_idx], path)) &&
            conv_command(item, path, slots[key_idx], err) < 0)
            return -1;
    }
    if ((item = member(obj, parent, "timeout_s", path)) &&
        conv_int(item, path, 1, 86400, &cfg->hooks.timeout_s, err) < 0)
        return -1;
    return 0;
}

/* old_key_files: the keys 'snapback key rotate' retired, to read older snapshots with. */
static int
parse_old_keys(const cJSON *array, const char *array_path, struct sb_config *cfg,
               struct sb_error *err)
{
    if (!cJSON_IsArray(array))
        return config_fail(err, array_path, "expected an array of absolute paths");
    size_t count = array_length(array);
    if (!(cfg->old_key_files = calloc(count + 1, sizeof(char *))))
        return out_of_memory(err);
    char path[JSON_PATH_MAX];
    size_t idx = 0;
    for (const cJSON *elem = array->child; elem; elem = elem->next, idx++) {
        path_index(path, sizeof(path), array_path, idx);
        if (conv_abs_path(elem, path, &cfg->old_key_files[idx], err) < 0)
            return -1;
        cfg->old_key_count = idx + 1;
    }
    return 0;
}

/* verify.sql_probe[]: each probe names a configured database, so databases must be parsed
 * first. expect is compared as text, so it must be a string ("1000", not 1000). */
static int
parse_sql_probe(const cJSON *obj, const char *parent, struct sb_config *cfg,
                struct sb_sql_probe *probe, struct sb_error *err)
{
    static const char *const keys[] = {"database", "sql", "expect", NULL};
    char path[JSON_PATH_MAX];
    const cJSON *item;

    if (!cJSON_IsObject(obj))
        return config_fail(err, parent, "expected an object with database, sql and expect");
    if (check_keys(obj, parent, keys, err) < 0)
        return -1;
    if (!(item = member(obj, parent, "database", path)))
        return config_fail(err, path, "required key is missing");
    if (conv_string(item, path, &probe->database, err) < 0)
        return -1;
    size_t db_idx = 0;
    while (db_idx < cfg->database_count && strcmp(cfg->databases[db_idx].name, probe->database))
        db_idx++;
    if (db_idx == cfg->database_count) {
        char shown[JSON_PATH_MAX];
        path_key(shown, sizeof(shown), "", probe->database);
        return config_fail(err, path, "no database named '%s' in databases", shown);
    }
    if (!(item = member(obj, parent, "sql", path)))
        return config_fail(err, path, "required key is missing");
    if (conv_string(item, path, &probe->sql, err) < 0)
        return -1;
    if ((item = member(obj, parent, "expect", path))) {
        if (!cJSON_IsString(item) || !item->valuestring)
            return config_fail(err, path,
                               "expected a string (the first row of the result, compared as text)");
        if (!(probe->expect = dup_string(item->valuestring)))
            return out_of_memory(err);
    }
    return 0;
}

static int
parse_verify(const cJSON *obj, struct sb_config *cfg, struct sb_error *err)
{
    static const char *const keys[] = {"sql_probe", NULL};
    const char *parent = "verify";
    char path[JSON_PATH_MAX];
    const cJSON *array;

    if (!cJSON_IsObject(obj))
        return config_fail(err, parent, "expected an object");
    if (check_keys(obj, parent, keys, err) < 0)
        return -1;
    if (!(array = member(obj, parent, "sql_probe", path)))
        return 0;
    if (!cJSON_IsArray(array))
        return config_fail(err, path, "expected an array of objects");
    size_t count = array_length(array);
    if (!(cfg->verify.sql_probes = calloc(count ? count : 1, sizeof(*cfg->verify.sql_probes))))
        return out_of_memory(err);
    size_t probe_idx = 0;
    for (const cJSON *elem = array->child; elem; elem = elem->next, probe_idx++) {
        char elem_path[JSON_PATH_MAX];

        /* Counted before it is filled, so that sb_config_free() releases a partial entry. */
        cfg->verify.sql_probe_count = probe_idx + 1;
        path_index(elem_path, sizeof(elem_path), path, probe_idx);
        if (parse_sql_probe(elem, elem_path, cfg, &cfg->verify.sql_probes[probe_idx], err) < 0)
            return -1;
    }
    return 0;
}

static int
parse_root(const cJSON *root, struct sb_config *cfg, struct sb_error *err)
{
    static const char *const keys[] = {
        "app",       "release",      "databases",     "repository", "key_file",  "recipient",
        "state_dir", "max_age",      "compression",   "schedule",   "retention", "rollback",
        "hooks",     "metrics_file", "old_key_files", "verify",     NULL,
    };
    char path[JSON_PATH_MAX];
    const cJSON *item;

    if (check_keys(root, "", keys, err) < 0)
        return -1;

    if (!(item = member(root, "", "app", path)))
        return config_fail(err, path, "required key is missing");
    if (!cJSON_IsString(item) || !item->valuestring || !valid_name(item->valuestring, true))
        return config_fail(err, path,
                           "expected a name of 1 to 64 letters, digits, '.', '_' or '-' that "
                           "does not start with '.'");
    if (!(cfg->app = dup_string(item->valuestring)))
        return out_of_memory(err);

    if ((item = member(root, "", "release", path)) && parse_release(item, cfg, err) < 0)
        return -1;
    if ((item = member(root, "", "databases", path)) && parse_databases(item, cfg, err) < 0)
        return -1;
    if (!cfg->has_release && cfg->database_count == 0)
        return config_fail(err, "release", "a config needs a release or at least one database");

    if (!(item = member(root, "", "repository", path)))
        return config_fail(err, path, "required key is missing");
    if (parse_repository(item, cfg, err) < 0)
        return -1;

    const cJSON *key_file = member(root, "", "key_file", path);
    if (key_file && conv_abs_path(key_file, path, &cfg->key_file, err) < 0)
        return -1;
    if ((item = member(root, "", "recipient", path))) {
        if (key_file)
            return config_fail(err, path, "not allowed together with key_file");
        if (conv_abs_path(item, path, &cfg->recipient, err) < 0)
            return -1;
    } else if (!key_file) {
        return config_fail(err, "key_file",
                           "required key is missing (or recipient, on a write-only host)");
    }
    if ((item = member(root, "", "old_key_files", path)) &&
        parse_old_keys(item, path, cfg, err) < 0)
        return -1;

    if (!(item = member(root, "", "state_dir", path)))
        return config_fail(err, path, "required key is missing");
    if (conv_abs_path(item, path, &cfg->state_dir, err) < 0)
        return -1;

    if ((item = member(root, "", "max_age", path)) &&
        conv_duration(item, path, &cfg->max_age_s, err) < 0)
        return -1;
    if ((item = member(root, "", "compression", path)) && parse_compression(item, cfg, err) < 0)
        return -1;
    if ((item = member(root, "", "schedule", path)) && parse_schedule(item, cfg, err) < 0)
        return -1;
    if ((item = member(root, "", "retention", path)) && parse_retention(item, cfg, err) < 0)
        return -1;
    if ((item = member(root, "", "rollback", path)) && parse_rollback(item, cfg, err) < 0)
        return -1;
    if ((item = member(root, "", "hooks", path)) && parse_hooks(item, cfg, err) < 0)
        return -1;
    if ((item = member(root, "", "metrics_file", path)) &&
        conv_abs_path(item, path, &cfg->metrics_file, err) < 0)
        return -1;
    if ((item = member(root, "", "verify", path)) && parse_verify(item, cfg, err) < 0)
        return -1;
    return 0;
}

/* --- the text as a whole ---------------------------------------------------------------------- */

/* 1-based line and column (in UTF-8 characters) of offset pos. */
static void
text_position(const char *text, size_t pos, unsigned long *line, unsigned long *column)
{
    *line = 1;
    *column = 1;
    for (size_t byte_idx = 0; byte_idx < pos; byte_idx++) {
        unsigned char c = (unsigned char)text[byte_idx];
        if (c == '\n') {
            (*line)++;
            *column = 1;
        } else if ((c & 0xC0) != 0x80) {
            (*column)++;
        }
    }
}

/* cJSON strings are C strings: a NUL byte, raw or as \u0000, would silently cut a value short
 * ("/etc/key\u0000.old" would read as "/etc/key"), so refuse it. Outside strings a valid
 * document has no backslashes, so tracking quotes and escapes is enough. */
static int
check_no_nul(const char *text, size_t len, struct sb_error *err)
{
    bool in_string = false;

    for (size_t pos = 0; pos < len; pos++) {
        bool is_nul = text[pos] == '\0';

        if (in_string && text[pos] == '\\' && pos + 1 < len) {
            is_nul = len - pos >= 6 && memcmp(text + pos + 1, "u0000", 5) == 0;
            if (!is_nul) {
                pos++;
                continue;
            }
        } else if (text[pos] == '"') {
            in_string = !in_string;
        }
        if (is_nul) {
            unsigned long line, column;
            char where[64];

            text_position(text, pos, &line, &column);
            snprintf(where, sizeof(where), "line %lu column %lu", line, column);
            return config_fail(err, where, "NUL characters are not allowed");
        }
    }
    return 0;
}

int
sb_config_parse(const char *json, size_t len, const char *path, struct sb_config **out,
                struct sb_error *err)
{
    int rc = -1;
    char *text = NULL;
    cJSON *root = NULL;
    struct sb_config *cfg = NULL;
    const char *parse_end = NULL;
    size_t pos = 0;

    if (!out || (!json && len)) {
        sb_error_set(err, SB_E_INTERNAL, 0, "sb_config_parse: invalid arguments");
        goto out;
    }
    *out = NULL;
    while (pos < len &&
           (json[pos] == ' ' || json[pos] == '\t' || json[pos] == '\r' || json[pos] == '\n'))
        pos++;
    if (pos == len) {
        sb_error_set(err, SB_E_CONFIG, 0, "empty file, expected a JSON object");
        goto out;
    }
    if (check_no_nul(json, len, err) < 0)
        goto out;

    /* cJSON only rejects trailing garbage when the buffer it is given ends with the NUL. */
    if (!(text = malloc(len + 1))) {
        out_of_memory(err);
        goto out;
    }
    memcpy(text, json, len);
    text[len] = '\0';
    /* An allocation failure inside cJSON also lands here and reads as invalid JSON. */
    if (!(root = cJSON_ParseWithLengthOpts(text, len + 1, &parse_end, 1))) {
        unsigned long line, column;
        size_t err_pos = parse_end ? (size_t)(parse_end - text) : 0;
        size_t last = len;

        /* cJSON stops at the end of the text for an unterminated value or a trailing comma
         * in an object; the last character that is not white space is nearer the mistake. */
        while (last > 0 && (text[last - 1] == ' ' || text[last - 1] == '\t' ||
                            text[last - 1] == '\r' || text[last - 1] == '\n'))
            last--;
        if (err_pos >= last)
            err_pos = last > 0 ? last - 1 : 0;
        text_position(text, err_pos, &line, &column);
        sb_error_set(err, SB_E_CONFIG, 0, "invalid JSON near line %lu column %lu", line, column);
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        sb_error_set(err, SB_E_CONFIG, 0, "expected a JSON object at the top level");
        goto out;
    }

    if (!(cfg = calloc(1, sizeof(*cfg)))) {
        out_of_memory(err);
        goto out;
    }
    if (path && !(cfg->source_path = dup_string(path))) {
        out_of_memory(err);
        goto out;
    }
    cfg->compression.level = 3;
    cfg->rollback.database = SB_ROLLBACK_DB_NEVER;
    cfg->rollback.auto_revert = true;
    cfg->rollback.health_timeout_s = 60;
    cfg->hooks.timeout_s = 300;
    cfg->repository.timeout_s = 30;
    cfg->repository.retries = 5;
    if (parse_root(root, cfg, err) < 0)
        goto out;

    *out = cfg;
    cfg = NULL;
    rc = 0;
out:
    sb_config_free(cfg);
    cJSON_Delete(root);
    free(text);
    return rc;
}

int
sb_config_load(const char *path, struct sb_config **out, struct sb_error *err)
{
    int rc = -1;
    int fd = -1;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    int sys_errno = 0;
    struct stat st;

    if (out)
        *out = NULL;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0) {
        sys_errno = errno;
        goto read_failed;
    }
    if (S_ISDIR(st.st_mode)) {
        sys_errno = EISDIR;
        goto read_failed;
    }
    /* Read one byte past the limit, so that a file of exactly the limit is accepted. */
    for (;;) {
        if (len == cap) {
            size_t new_cap = cap ? cap * 2 : 16384;
            char *grown;

            if (new_cap > CONFIG_FILE_MAX + 1)
                new_cap = CONFIG_FILE_MAX + 1;
            if (!(grown = realloc(buf, new_cap))) {
                out_of_memory(err);
                goto out;
            }
            buf = grown;
            cap = new_cap;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sys_errno = errno;
            goto read_failed;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > CONFIG_FILE_MAX) {
            sb_error_set(err, SB_E_CONFIG, 0,
                         "config '%s': larger than 1 MiB; is this the right file?", path);
            goto out;
        }
    }
    if (sb_config_parse(buf, len, path, out, err) < 0) {
        sb_error_wrap(err, "config '%s'", path);
        goto out;
    }
    rc = 0;
    goto out;

read_failed:
    sb_error_set(err, SB_E_CONFIG, 0,
                 "config '%s': cannot read: %s; pass --config FILE or set SNAPBACK_CONFIG", path,
                 strerror(sys_errno));
    if (err)
        err->sys_errno = sys_errno;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    return rc;
}

static void
command_release(struct sb_command_spec *spec)
{
    free(spec->shell);
    if (spec->argv) {
        for (size_t arg_idx = 0; spec->argv[arg_idx]; arg_idx++)
            free(spec->argv[arg_idx]);
        free(spec->argv);
    }
}

const struct sb_db_config *
sb_config_find_db(const struct sb_config *cfg, const char *name)
{
    for (size_t idx = 0; cfg && idx < cfg->database_count; idx++)
        if (!strcmp(cfg->databases[idx].name, name))
            return &cfg->databases[idx];
    return NULL;
}

void
sb_config_free(struct sb_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->source_path);
    free(cfg->app);
    free(cfg->release.root);
    free(cfg->release.releases_dir);
    free(cfg->release.current);
    if (cfg->release.shared_paths) {
        for (size_t path_idx = 0; cfg->release.shared_paths[path_idx]; path_idx++)
            free(cfg->release.shared_paths[path_idx]);
        free(cfg->release.shared_paths);
    }
    for (size_t db_idx = 0; db_idx < cfg->database_count; db_idx++) {
        struct sb_db_config *db = &cfg->databases[db_idx];
        free(db->name);
        free(db->host);
        free(db->dbname);
        free(db->user);
        free(db->password_file);
        free(db->path);
    }
    free(cfg->databases);
    free(cfg->repository.url);
    free(cfg->repository.path);
    free(cfg->repository.sftp_user);
    free(cfg->repository.sftp_host);
    free(cfg->repository.identity_file);
    free(cfg->repository.identity_passphrase_file);
    free(cfg->repository.known_hosts);
    free(cfg->key_file);
    free(cfg->recipient);
    for (size_t idx = 0; idx < cfg->old_key_count; idx++)
        free(cfg->old_key_files[idx]);
    free(cfg->old_key_files);
    free(cfg->read_key_file);
    free(cfg->state_dir);
    free(cfg->schedule.snapshot);
    free(cfg->schedule.prune);
    free(cfg->schedule.verify);
    free(cfg->schedule.timezone);
    command_release(&cfg->hooks.before_snapshot);
    command_release(&cfg->hooks.after_snapshot);
    command_release(&cfg->hooks.before_rollback);
    command_release(&cfg->hooks.after_rollback);
    command_release(&cfg->hooks.health_check);
    command_release(&cfg->hooks.on_error);
    free(cfg->metrics_file);
    for (size_t probe_idx = 0; probe_idx < cfg->verify.sql_probe_count; probe_idx++) {
        free(cfg->verify.sql_probes[probe_idx].database);
        free(cfg->verify.sql_probes[probe_idx].sql);
        free(cfg->verify.sql_probes[probe_idx].expect);
    }
    free(cfg->verify.sql_probes);
    free(cfg);
}

int
sb_parse_duration(const char *text, int64_t *seconds)
{
    int64_t value = 0, unit;
    const char *p = text;

    if (!text || !seconds || *p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        int digit = *p - '0';
        if (value > (INT64_MAX - digit) / 10)
            return -1;
        value = value * 10 + digit;
    }
    switch (*p) {
    case 's':
        unit = 1;
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    case 'w':
        unit = 7 * 86400;
        break;
    default:
        return -1;
    }
    if (p[1] != '\0' || value == 0 || value > INT64_MAX / unit)
        return -1;
    *seconds = value * unit;
    return 0;
}

int
sb_check_secret_file(const char *path, const char *what, struct sb_error *err)
{
    struct stat st;
    uid_t euid = geteuid();

    if (stat(path, &st) != 0) {
        int sys_errno = errno;
        return sb_error_set(err, sb_error_from_errno(sys_errno), sys_errno, "%s '%s': cannot open",
                            what, path);
    }
    if (!S_ISREG(st.st_mode))
        return sb_error_set(err, SB_E_PERM, 0, "%s '%s' is not a regular file", what, path);
    if (st.st_uid != euid)
        return sb_error_set(err, SB_E_PERM, 0,
                            "%s '%s' is owned by uid %lu, not by the user running snapback "
                            "(uid %lu); chown it",
                            what, path, (unsigned long)st.st_uid, (unsigned long)euid);
    if (st.st_mode & 077)
        return sb_error_set(err, SB_E_PERM, 0,
                            "%s '%s' is accessible by group or others (mode %04o); run: chmod "
                            "600 '%s'",
                            what, path, (unsigned)(st.st_mode & 07777), path);
    return 0;
}
