/* Manifests and the repository description, as JSON. A manifest lists everything a snapshot
 * is made of, with the size and BLAKE2b of every object's stored bytes, so restore and verify
 * can refuse an object that was cut, altered or swapped. Parsing is strict: a manifest that
 * decrypted fine but does not have the expected shape is corrupt (SB_E_CORRUPT). */
#include "snapback/format.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "snapback/core.h"

#define MANIFEST_FORMAT 1

static cJSON *
add_str(cJSON *obj, const char *key, const char *value)
{
    return value ? cJSON_AddStringToObject(obj, key, value) : cJSON_AddNullToObject(obj, key);
}

/* key: the JSON array text (which the parser or the snapshot checked), unless NULL */
static void
add_json(cJSON *obj, const char *key, const char *text)
{
    cJSON *value = text ? cJSON_Parse(text) : NULL;
    if (cJSON_IsArray(value))
        cJSON_AddItemToObject(obj, key, value);
    else
        cJSON_Delete(value);
}

int
sb_manifest_to_json(const struct sb_manifest *m, char **out, struct sb_error *err)
{
    char ts[32], hex[2 * SB_HASH_BYTES + 1];
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    cJSON_AddNumberToObject(root, "format", MANIFEST_FORMAT);
    add_str(root, "id", m->id);
    add_str(root, "app", m->app);
    add_str(root, "host", m->host);
    sb_format_time_iso(m->created_at, ts);
    add_str(root, "created_at", ts);
    cJSON_AddNumberToObject(root, "duration_s", m->duration_s);
    add_str(root, "tag", m->tag);
    add_str(root, "tool_version", m->tool_version);
    if (m->has_release) {
        cJSON *rel = cJSON_AddObjectToObject(root, "release");
        add_str(rel, "name", m->release.name);
        add_str(rel, "fingerprint", m->release.fingerprint);
        add_str(rel, "object", m->release.object);
        cJSON_AddNumberToObject(rel, "entries", (double)m->release.entries);
        cJSON_AddBoolToObject(rel, "reused", m->release.reused);
    } else {
        cJSON_AddNullToObject(root, "release");
    }
    cJSON *shared = cJSON_AddArrayToObject(root, "shared");
    for (size_t idx = 0; idx < m->shared_count; idx++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddItemToArray(shared, s);
        add_str(s, "path", m->shared[idx].path);
        add_str(s, "object", m->shared[idx].object);
    }
    cJSON *dbs = cJSON_AddArrayToObject(root, "databases");
    for (size_t idx = 0; idx < m->db_count; idx++) {
        cJSON *d = cJSON_CreateObject();
        cJSON_AddItemToArray(dbs, d);
        add_str(d, "name", m->dbs[idx].name);
        add_str(d, "engine", m->dbs[idx].engine);
        add_str(d, "server_version", m->dbs[idx].server_version);
        add_str(d, "format", m->dbs[idx].format);
        add_str(d, "object", m->dbs[idx].object);
        const struct sb_manifest_db *md = &m->dbs[idx];
        if (md->pg.encoding) {
            cJSON *pg = cJSON_AddObjectToObject(d, "pg_database");
            add_str(pg, "encoding", md->pg.encoding);
            add_str(pg, "collate", md->pg.collate);
            add_str(pg, "ctype", md->pg.ctype);
            add_str(pg, "locale_provider", md->pg.provider);
            add_str(pg, "icu_locale", md->pg.icu_locale);
            add_json(pg, "settings", md->pg.settings);
            if (md->pg.comment)
                add_str(pg, "comment", md->pg.comment);
            add_json(pg, "acl", md->pg.acl);
            add_json(pg, "role_settings", md->pg.role_settings);
        }
    }
    cJSON *objs = cJSON_AddArrayToObject(root, "objects");
    for (size_t idx = 0; idx < m->object_count; idx++) {
        const struct sb_manifest_object *o = &m->objects[idx];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddItemToArray(objs, j);
        add_str(j, "name", o->name);
        cJSON_AddNumberToObject(j, "stored_size", (double)o->stored_size);
        cJSON_AddNumberToObject(j, "plain_size", (double)o->plain_size);
        sb_hex_encode(o->blake2b, SB_HASH_BYTES, hex);
        add_str(j, "blake2b", hex);
    }
    char *text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!text)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    *out = text;
    return 0;
}

/* --- parsing --- */

struct parse_ctx {
    struct sb_error *err;
    int failed;
};

static int
bad(struct parse_ctx *pc, const char *what)
{
    if (!pc->failed)
        sb_error_set(pc->err, SB_E_CORRUPT, 0, "malformed manifest: %s", what);
    pc->failed = 1;
    return -1;
}

static char *
get_str(struct parse_ctx *pc, const cJSON *obj, const char *key, bool nullable)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (nullable && (!item || cJSON_IsNull(item)))
        return NULL;
    if (!cJSON_IsString(item)) {
        bad(pc, key);
        return NULL;
    }
    char *s = sb_strdup(item->valuestring);
    if (!s)
        bad(pc, "out of memory");
    return s;
}

static bool
string_array(const cJSON *a)
{
    const cJSON *one;
    bool ok = cJSON_IsArray(a);
    cJSON_ArrayForEach(one, a) ok = ok && cJSON_IsString(one);
    return ok;
}

/* [{"grantee": role or null (PUBLIC), "privilege": name, "grantable": bool}, ...] */
static bool
acl_array(const cJSON *a)
{
    const cJSON *one;
    bool ok = cJSON_IsArray(a);
    cJSON_ArrayForEach(one, a)
    {
        if (!ok || !cJSON_IsObject(one)) /* members are looked up in objects only */
            return false;
        const cJSON *grantee = cJSON_GetObjectItemCaseSensitive(one, "grantee");
        ok = (cJSON_IsString(grantee) || cJSON_IsNull(grantee)) &&
             cJSON_IsString(cJSON_GetObjectItemCaseSensitive(one, "privilege")) &&
             cJSON_IsBool(cJSON_GetObjectItemCaseSensitive(one, "grantable"));
    }
    return ok;
}

/* [{"role": name, "settings": ["name=value", ...]}, ...] */
static bool
role_settings_array(const cJSON *a)
{
    const cJSON *one;
    bool ok = cJSON_IsArray(a);
    cJSON_ArrayForEach(one, a) ok = ok && cJSON_IsObject(one) &&
                                    cJSON_IsString(cJSON_GetObjectItemCaseSensitive(one, "role")) &&
                                    string_array(cJSON_GetObjectItemCaseSensitive(one, "settings"));
    return ok;
}

/* The array at key, when valid accepts it, as compact JSON text in *out (left NULL when the
 * key is absent or null); false when it is there but malformed or out of memory (*oom). */
static bool
take_json(const cJSON *obj, const char *key, bool (*valid)(const cJSON *), char **out, bool *oom)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!item || cJSON_IsNull(item))
        return true;
    if (!valid(item))
        return false;
    *oom |= !(*out = cJSON_PrintUnformatted(item));
    return true;
}

/* The array at key as compact JSON text (cJSON_free), after valid accepted it; NULL when
 * absent or null. */
static char *
get_json(struct parse_ctx *pc, const cJSON *obj, const char *key, bool (*valid)(const cJSON *),
         const char *what)
{
    char *text = NULL;
    bool oom = false;
    if (!take_json(obj, key, valid, &text, &oom))
        bad(pc, what);
    else if (oom)
        bad(pc, "out of memory");
    return text;
}

static uint64_t
get_u64(struct parse_ctx *pc, const cJSON *obj, const char *key)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble > 9007199254740992.0 ||
        floor(item->valuedouble) != item->valuedouble) {
        bad(pc, key);
        return 0;
    }
    return (uint64_t)item->valuedouble;
}

static bool
safe_object_name(const char *name)
{
    return name && sb_path_is_clean_relative(name);
}

int
sb_manifest_from_json(const char *json, size_t len, struct sb_manifest **out, struct sb_error *err)
{
    struct parse_ctx pc = {err, 0};
    struct sb_manifest *m = calloc(1, sizeof(*m));
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!m) {
        cJSON_Delete(root);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    if (!cJSON_IsObject(root)) {
        bad(&pc, "not a JSON object");
        goto out;
    }
    if (get_u64(&pc, root, "format") != MANIFEST_FORMAT) {
        bad(&pc, "unsupported format");
        goto out;
    }
    m->id = get_str(&pc, root, "id", false);
    m->app = get_str(&pc, root, "app", false);
    m->host = get_str(&pc, root, "host", true);
    m->tag = get_str(&pc, root, "tag", true);
    m->tool_version = get_str(&pc, root, "tool_version", true);
    char *created = get_str(&pc, root, "created_at", false);
    if (created && sb_parse_time_iso(created, &m->created_at) < 0)
        bad(&pc, "created_at");
    free(created);
    const cJSON *dur = cJSON_GetObjectItemCaseSensitive(root, "duration_s");
    if (cJSON_IsNumber(dur))
        m->duration_s = dur->valuedouble;

    const cJSON *rel = cJSON_GetObjectItemCaseSensitive(root, "release");
    if (cJSON_IsObject(rel)) {
        m->has_release = true;
        m->release.name = get_str(&pc, rel, "name", false);
        m->release.fingerprint = get_str(&pc, rel, "fingerprint", false);
        m->release.object = get_str(&pc, rel, "object", false);
        m->release.entries = get_u64(&pc, rel, "entries");
        m->release.reused = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rel, "reused"));
        if (m->release.object && !safe_object_name(m->release.object))
            bad(&pc, "release.object");
    } else if (rel && !cJSON_IsNull(rel)) {
        bad(&pc, "release");
    }

    const cJSON *shared = cJSON_GetObjectItemCaseSensitive(root, "shared");
    const cJSON *dbs = cJSON_GetObjectItemCaseSensitive(root, "databases");
    const cJSON *objs = cJSON_GetObjectItemCaseSensitive(root, "objects");
    if (!cJSON_IsArray(shared) || !cJSON_IsArray(dbs) || !cJSON_IsArray(objs)) {
        bad(&pc, "shared, databases or objects");
        goto out;
    }
    size_t n = (size_t)cJSON_GetArraySize(shared);
    m->shared = calloc(n ? n : 1, sizeof(*m->shared));
    const cJSON *item;
    cJSON_ArrayForEach(item, shared)
    {
        if (!m->shared)
            break;
        struct sb_manifest_shared *s = &m->shared[m->shared_count++];
        s->path = get_str(&pc, item, "path", false);
        s->object = get_str(&pc, item, "object", false);
        if (!safe_object_name(s->object) || !sb_path_is_clean_relative(s->path))
            bad(&pc, "shared[].path or object");
    }
    n = (size_t)cJSON_GetArraySize(dbs);
    m->dbs = calloc(n ? n : 1, sizeof(*m->dbs));
    cJSON_ArrayForEach(item, dbs)
    {
        if (!m->dbs)
            break;
        struct sb_manifest_db *d = &m->dbs[m->db_count++];
        d->name = get_str(&pc, item, "name", false);
        d->engine = get_str(&pc, item, "engine", false);
        d->server_version = get_str(&pc, item, "server_version", true);
        d->format = get_str(&pc, item, "format", true);
        d->object = get_str(&pc, item, "object", false);
        if (!safe_object_name(d->object))
            bad(&pc, "databases[].object");
        const cJSON *pg = cJSON_GetObjectItemCaseSensitive(item, "pg_database");
        if (pg && !cJSON_IsNull(pg)) {
            if (!cJSON_IsObject(pg)) {
                bad(&pc, "databases[].pg_database");
            } else {
                d->pg.encoding = get_str(&pc, pg, "encoding", false);
                d->pg.collate = get_str(&pc, pg, "collate", true);
                d->pg.ctype = get_str(&pc, pg, "ctype", true);
                d->pg.provider = get_str(&pc, pg, "locale_provider", true);
                d->pg.icu_locale = get_str(&pc, pg, "icu_locale", true);
                d->pg.comment = get_str(&pc, pg, "comment", true);
                d->pg.settings =
                    get_json(&pc, pg, "settings", string_array, "databases[].pg_database.settings");
                d->pg.acl = get_json(&pc, pg, "acl", acl_array, "databases[].pg_database.acl");
                d->pg.role_settings = get_json(&pc, pg, "role_settings", role_settings_array,
                                               "databases[].pg_database.role_settings");
            }
        }
    }
    n = (size_t)cJSON_GetArraySize(objs);
    m->objects = calloc(n ? n : 1, sizeof(*m->objects));
    cJSON_ArrayForEach(item, objs)
    {
        if (!m->objects)
            break;
        struct sb_manifest_object *o = &m->objects[m->object_count++];
        o->name = get_str(&pc, item, "name", false);
        o->stored_size = get_u64(&pc, item, "stored_size");
        o->plain_size = get_u64(&pc, item, "plain_size");
        char *hex = get_str(&pc, item, "blake2b", false);
        if (!hex || sb_hex_decode(hex, o->blake2b, SB_HASH_BYTES) < 0)
            bad(&pc, "objects[].blake2b");
        free(hex);
        if (!safe_object_name(o->name))
            bad(&pc, "objects[].name");
    }
    if (!m->shared || !m->dbs || !m->objects)
        bad(&pc, "out of memory");
    /* Every object a part refers to must be listed with its hash. */
    if (!pc.failed && m->has_release && !sb_manifest_find_object(m, m->release.object))
        bad(&pc, "release object is not listed in objects");
    for (size_t idx = 0; !pc.failed && idx < m->shared_count; idx++)
        if (!sb_manifest_find_object(m, m->shared[idx].object))
            bad(&pc, "shared object is not listed in objects");
    for (size_t idx = 0; !pc.failed && idx < m->db_count; idx++)
        if (!sb_manifest_find_object(m, m->dbs[idx].object))
            bad(&pc, "database object is not listed in objects");
out:
    cJSON_Delete(root);
    if (pc.failed) {
        sb_manifest_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

void
sb_manifest_free(struct sb_manifest *m)
{
    if (!m)
        return;
    free(m->id);
    free(m->app);
    free(m->host);
    free(m->tag);
    free(m->tool_version);
    free(m->release.name);
    free(m->release.fingerprint);
    free(m->release.object);
    for (size_t idx = 0; idx < m->shared_count; idx++) {
        free(m->shared[idx].path);
        free(m->shared[idx].object);
    }
    free(m->shared);
    for (size_t idx = 0; idx < m->db_count; idx++) {
        free(m->dbs[idx].name);
        free(m->dbs[idx].engine);
        free(m->dbs[idx].server_version);
        free(m->dbs[idx].format);
        free(m->dbs[idx].object);
        free(m->dbs[idx].pg.encoding);
        free(m->dbs[idx].pg.collate);
        free(m->dbs[idx].pg.ctype);
        free(m->dbs[idx].pg.provider);
        free(m->dbs[idx].pg.icu_locale);
        cJSON_free(m->dbs[idx].pg.settings);
        free(m->dbs[idx].pg.comment);
        cJSON_free(m->dbs[idx].pg.acl);
        cJSON_free(m->dbs[idx].pg.role_settings);
    }
    free(m->dbs);
    for (size_t idx = 0; idx < m->object_count; idx++)
        free(m->objects[idx].name);
    free(m->objects);
    free(m);
}

const struct sb_manifest_object *
sb_manifest_find_object(const struct sb_manifest *m, const char *name)
{
    if (!name)
        return NULL;
    for (size_t idx = 0; idx < m->object_count; idx++)
        if (m->objects[idx].name && strcmp(m->objects[idx].name, name) == 0)
            return &m->objects[idx];
    return NULL;
}

int
sb_manifest_add_object(struct sb_manifest *m, const struct sb_manifest_object *obj,
                       struct sb_error *err)
{
    struct sb_manifest_object *p = realloc(m->objects, (m->object_count + 1) * sizeof(*m->objects));
    if (!p)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    m->objects = p;
    p[m->object_count] = *obj;
    if (!(p[m->object_count].name = sb_strdup(obj->name)))
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    m->object_count++;
    return 0;
}

uint64_t
sb_manifest_stored_size(const struct sb_manifest *m)
{
    uint64_t total = 0;
    for (size_t idx = 0; idx < m->object_count; idx++)
        total += m->objects[idx].stored_size;
    return total;
}

/* --- repository description --- */

int
sb_repo_meta_to_json(const struct sb_repo_meta *meta, char **out, struct sb_error *err)
{
    char ts[32];
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    cJSON_AddStringToObject(root, "snapback_repository", "https://snapback/docs/FORMAT.md");
    cJSON_AddNumberToObject(root, "format", meta->format);
    cJSON_AddStringToObject(root, "id", meta->id);
    sb_format_time_iso(meta->created, ts);
    cJSON_AddStringToObject(root, "created", ts);
    cJSON_AddStringToObject(root, "key_id", meta->key_id);
    cJSON_AddNumberToObject(root, "key_mode", meta->key_mode);
    cJSON_AddNumberToObject(root, "chunk_size", meta->chunk_size);
    if (meta->retired_count) {
        cJSON *list = cJSON_AddArrayToObject(root, "retired_keys");
        for (size_t idx = 0; list && idx < meta->retired_count; idx++) {
            cJSON *k = cJSON_CreateObject();
            if (!k || !cJSON_AddItemToArray(list, k)) {
                cJSON_Delete(k);
                break;
            }
            cJSON_AddStringToObject(k, "key_id", meta->retired[idx].key_id);
            cJSON_AddNumberToObject(k, "key_mode", meta->retired[idx].key_mode);
        }
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    *out = text;
    return 0;
}

int
sb_repo_meta_from_json(const char *json, struct sb_repo_meta *out, struct sb_error *err)
{
    struct parse_ctx pc = {err, 0};
    memset(out, 0, sizeof(*out));
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return sb_error_set(err, SB_E_CORRUPT, 0, "snapback.json is not valid JSON");
    }
    out->format = (int)get_u64(&pc, root, "format");
    out->chunk_size = (uint32_t)get_u64(&pc, root, "chunk_size");
    /* key_mode came with write-only hosts; a repository without it is symmetric */
    out->key_mode = cJSON_GetObjectItemCaseSensitive(root, "key_mode")
                        ? (int)get_u64(&pc, root, "key_mode")
                        : SB_KEY_SYMMETRIC;
    if (out->key_mode != SB_KEY_SYMMETRIC && out->key_mode != SB_KEY_SEALED)
        bad(&pc, "key_mode");
    const cJSON *retired = cJSON_GetObjectItemCaseSensitive(root, "retired_keys");
    if (retired && (!cJSON_IsArray(retired) || cJSON_GetArraySize(retired) > SB_RETIRED_KEYS_MAX))
        bad(&pc, "retired_keys");
    const cJSON *rk = NULL;
    const cJSON *retired_list = cJSON_IsArray(retired) ? retired : NULL;
    cJSON_ArrayForEach(rk, retired_list)
    {
        if (out->retired_count >= SB_RETIRED_KEYS_MAX)
            break;
        char *rid = get_str(&pc, rk, "key_id", false);
        int rmode = (int)get_u64(&pc, rk, "key_mode");
        if (!rid || strlen(rid) != 32 || (rmode != SB_KEY_SYMMETRIC && rmode != SB_KEY_SEALED)) {
            bad(&pc, "retired_keys");
        } else {
            memcpy(out->retired[out->retired_count].key_id, rid, 33);
            out->retired[out->retired_count++].key_mode = rmode;
        }
        free(rid);
    }
    char *id = get_str(&pc, root, "id", false);
    char *key_id = get_str(&pc, root, "key_id", false);
    char *created = get_str(&pc, root, "created", false);
    if (id && strlen(id) < sizeof(out->id))
        memcpy(out->id, id, strlen(id) + 1);
    if (key_id && strlen(key_id) == 32)
        memcpy(out->key_id, key_id, 33);
    else
        bad(&pc, "key_id");
    if (created)
        sb_parse_time_iso(created, &out->created);
    free(id);
    free(key_id);
    free(created);
    cJSON_Delete(root);
    if (pc.failed) {
        sb_error_wrap(err, "snapback.json");
        return -1;
    }
    return 0;
}

const char *
sb_manifest_db_set_pg_props(struct sb_manifest_db *d, const char *json)
{
    static const char *const dropped[] = {"",
                                          "comment",
                                          "acl",
                                          "comment, acl",
                                          "role_settings",
                                          "comment, role_settings",
                                          "acl, role_settings",
                                          "comment, acl, role_settings"};
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return dropped[7];
    }
    unsigned mask = 0;
    bool oom = false;
    const cJSON *comment = cJSON_GetObjectItemCaseSensitive(root, "comment");
    if (cJSON_IsString(comment))
        oom |= !(d->pg.comment = sb_strdup(comment->valuestring));
    else if (comment && !cJSON_IsNull(comment))
        mask |= 1;
    mask |= take_json(root, "acl", acl_array, &d->pg.acl, &oom) ? 0 : 2;
    mask |=
        take_json(root, "role_settings", role_settings_array, &d->pg.role_settings, &oom) ? 0 : 4;
    cJSON_Delete(root);
    return oom ? NULL : dropped[mask];
}
