/* list and show: the snapshots of the app, newest first, as a table or JSON. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/ops.h"

const struct sb_cmd_help help_list = {
    "snapback list [--json]",
    "Lists the app's snapshots, newest first: id, time (UTC), tag, release, databases and\n"
    "stored size. Every manifest is authenticated with the key as it is read.",
    "  --json   one JSON array of manifests on stdout\n",
};

const struct sb_cmd_help help_show = {
    "snapback show ID|latest [--json]",
    "Shows one snapshot: its release, shared paths, databases and every object with its\n"
    "stored size, plaintext size and BLAKE2b. ID may be a unique prefix of at least 4\n"
    "characters.",
    "  --json   the manifest as JSON on stdout\n",
};

static int
parse_json_flag(struct sb_cli *cli, const char *name, const struct sb_cmd_help *help, bool *json,
                struct sb_error *err)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "jh", longopts, name, help, err)) != -1) {
        if (c == 'h')
            return 1;
        if (c == '?')
            return -1;
        if (c == 'j')
            *json = true;
    }
    return 0;
}

static void
print_row(const struct sb_manifest *m)
{
    char ts[32], size[32], dbs[128] = "-";
    struct tm tm;
    gmtime_r(&m->created_at, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    sb_format_size(sb_manifest_stored_size(m), size);
    if (m->db_count) {
        dbs[0] = '\0';
        for (size_t idx = 0; idx < m->db_count; idx++) {
            size_t len = strlen(dbs);
            snprintf(dbs + len, sizeof(dbs) - len, "%s%s", idx ? "," : "", m->dbs[idx].name);
        }
    }
    printf("%-22s  %-19s  %-12s  %-24s  %-12s  %10s\n", m->id, ts, m->tag ? m->tag : "-",
           m->has_release ? m->release.name : "-", dbs, size);
}

/* The server of a remote repository is down: list and show answer from this host's catalog
 * (the manifests of the snapshots it took, spooled ones included) and exit 69, as status
 * does. Snapshots other hosts took, and what prune removed meanwhile, are not seen. */
static void
warn_offline(const struct sb_error *unreachable, const char *what)
{
    sb_warn("%s; %s (other hosts' snapshots and changes on the server are not seen)",
            unreachable->msg, what);
}

int
cmd_list(struct sb_cli *cli, struct sb_error *err)
{
    bool json = false;
    int r = parse_json_flag(cli, "list", &help_list, &json, err);
    if (r != 0)
        return r > 0 ? 0 : -1;
    if (optind < cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0, "list: unexpected argument '%s'",
                            cli->argv[optind]);
    struct sb_repo *repo = NULL;
    char **ids = NULL;
    size_t n = 0;
    int rc = -1;
    struct sb_error unreachable = SB_ERROR_INIT;
    if (sb_repo_open_reachable_or_offline(cli->cfg, &repo, &unreachable, err) < 0)
        goto out;
    if (repo->offline)
        warn_offline(&unreachable, "listing the snapshots this host took, from its catalog");
    if (sb_repo_list_ids(repo, &ids, &n, err) < 0)
        goto out;
    if (json)
        printf("[");
    else if (n > 0)
        printf("%-22s  %-19s  %-12s  %-24s  %-12s  %10s\n", "ID", "TIME (UTC)", "TAG", "RELEASE",
               "DATABASES", "SIZE");
    size_t bad = 0, printed = 0;
    for (size_t idx = n; idx-- > 0;) {
        struct sb_manifest *m = NULL;
        struct sb_error merr = SB_ERROR_INIT;
        if (sb_repo_load_manifest_cached(repo, ids[idx], &m, &merr) < 0) {
            sb_log(SB_LOG_ERROR, "manifest", "%s", merr.msg);
            if (bad++ == 0)
                *err = merr;
            continue;
        }
        if (json) {
            char *text = NULL;
            if (sb_manifest_to_json(m, &text, err) < 0) {
                sb_manifest_free(m);
                goto out;
            }
            printf("%s%s", printed++ ? "," : "", text);
            free(text);
        } else {
            print_row(m);
        }
        sb_manifest_free(m);
    }
    if (json)
        printf("]\n");
    else if (n == 0)
        fprintf(stderr, "snapback: no snapshots of app '%s' yet\n", cli->cfg->app);
    if (bad) {
        sb_error_wrap(err, "%zu of %zu manifests cannot be read", bad, n);
        goto out;
    }
    if (repo->offline) {
        *err = unreachable;
        goto out;
    }
    rc = 0;
out:
    sb_store_names_free(ids, n);
    sb_repo_free(repo);
    return rc;
}

/* What a restore into a new PostgreSQL database sets besides the data (docs/FORMAT.md,
 * pg_database): "; 3 settings, a comment, 4 privileges, settings of 1 role". */
static void
print_pg_props(const struct sb_manifest_db *d)
{
    const char *texts[] = {d->pg.settings, d->pg.acl, d->pg.role_settings};
    const char *what[] = {"setting", "privilege", "role"};
    const char *sep = "; ";
    for (size_t idx = 0; idx < 3; idx++) {
        cJSON *list = texts[idx] ? cJSON_Parse(texts[idx]) : NULL;
        int n = cJSON_GetArraySize(list);
        cJSON_Delete(list);
        if (idx == 1 && d->pg.comment) {
            printf("%sa comment", sep);
            sep = ", ";
        }
        if (!texts[idx] || (n == 0 && idx != 1))
            continue;
        printf(idx == 2 ? "%ssettings of %d %s%s" : "%s%d %s%s", sep, n, what[idx],
               n == 1 ? "" : "s");
        sep = ", ";
    }
}

int
cmd_show(struct sb_cli *cli, struct sb_error *err)
{
    bool json = false;
    int r = parse_json_flag(cli, "show", &help_show, &json, err);
    if (r != 0)
        return r > 0 ? 0 : -1;
    if (optind + 1 != cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0,
                            "show: give exactly one snapshot id (or 'latest'); see 'snapback "
                            "list'");
    struct sb_repo *repo = NULL;
    struct sb_manifest *m = NULL;
    char *id = NULL, *text = NULL;
    int rc = -1;
    struct sb_error unreachable = SB_ERROR_INIT;
    if (sb_repo_open_reachable_or_offline(cli->cfg, &repo, &unreachable, err) < 0)
        goto out;
    if (repo->offline)
        warn_offline(&unreachable, "showing this host's catalog copy of the manifest");
    if (sb_repo_resolve_id(repo, cli->argv[optind], &id, err) < 0 ||
        sb_repo_load_manifest_cached(repo, id, &m, err) < 0)
        goto out;
    if (json) {
        if (sb_manifest_to_json(m, &text, err) < 0)
            goto out;
        printf("%s\n", text);
        if (repo->offline) {
            *err = unreachable;
            goto out;
        }
        rc = 0;
        goto out;
    }
    char ts[32], size[32];
    sb_format_time_iso(m->created_at, ts);
    sb_format_size(sb_manifest_stored_size(m), size);
    printf("snapshot   %s\napp        %s\nhost       %s\ncreated    %s (%.1f s)\n"
           "tag        %s\nversion    %s\nsize       %s stored\n",
           m->id, m->app, m->host ? m->host : "-", ts, m->duration_s, m->tag ? m->tag : "-",
           m->tool_version ? m->tool_version : "-", size);
    if (m->has_release)
        printf("release    %s (fingerprint %s, %llu entries%s)\n", m->release.name,
               m->release.fingerprint, (unsigned long long)m->release.entries,
               m->release.reused ? ", stored by an earlier snapshot" : "");
    for (size_t idx = 0; idx < m->shared_count; idx++)
        printf("shared     %s\n", m->shared[idx].path);
    for (size_t idx = 0; idx < m->db_count; idx++) {
        const struct sb_manifest_db *d = &m->dbs[idx];
        printf("database   %s (%s %s, %s", d->name, d->engine,
               d->server_version ? d->server_version : "", d->format ? d->format : "");
        if (d->pg.encoding)
            printf("; %s, collate %s, ctype %s%s%s", d->pg.encoding,
                   d->pg.collate ? d->pg.collate : "-", d->pg.ctype ? d->pg.ctype : "-",
                   d->pg.icu_locale ? ", ICU " : "", d->pg.icu_locale ? d->pg.icu_locale : "");
        print_pg_props(d);
        printf(")\n");
    }
    printf("objects:\n");
    for (size_t idx = 0; idx < m->object_count; idx++) {
        char hex[2 * SB_HASH_BYTES + 1], stored[32], plain[32];
        sb_hex_encode(m->objects[idx].blake2b, SB_HASH_BYTES, hex);
        sb_format_size(m->objects[idx].stored_size, stored);
        sb_format_size(m->objects[idx].plain_size, plain);
        printf("  %-48s %10s stored  %10s plain  blake2b %.16s\n", m->objects[idx].name, stored,
               plain, hex);
    }
    if (repo->offline) {
        *err = unreachable;
        goto out;
    }
    rc = 0;
out:
    free(text);
    free(id);
    sb_manifest_free(m);
    sb_repo_free(repo);
    return rc;
}
