/* verify: prove that snapshots can be read back, object by object, with reports for humans,
 * machines (--json) and CI systems (--junit). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/ops.h"

const struct sb_cmd_help help_verify = {
    "snapback verify [ID|latest|--all] [--sample N%] [--full] [--restore-db] [--json]\n"
    "                       [--junit FILE]",
    "Reads every object of the snapshot (default: latest) through the whole restore chain:\n"
    "stored size and BLAKE2b against the manifest, every encrypted chunk authenticated, the\n"
    "final chunk present, zstd frames complete and every tar entry walked and counted against\n"
    "the manifest. Memory stays flat; nothing is written unless --full or --restore-db asks.\n"
    "Exits 65 (corrupt, wrong key), 66 (missing) or 69 (unreachable), naming the snapshot, the\n"
    "object and the byte offset.",
    "  --all            verify every snapshot\n"
    "  --sample N%      read a random N% of the data objects (manifests are always read)\n"
    "  --full           also extract trees into a temp dir under state_dir\n"
    "  --restore-db     restore each dump into a scratch database (snapback_verify_*, dropped\n"
    "                   afterwards; SQLite: a temp file), count its tables and run the\n"
    "                   config's verify.sql_probe queries on it (a wrong answer or an SQL\n"
    "                   error exits 65); the live database is never touched\n"
    "  --json           the results as one JSON object on stdout\n"
    "  --junit FILE     the results as JUnit XML (one testcase per object and per SQL\n"
    "                   probe) for CI systems\n",
};

struct report {
    FILE *json;
    char *junit; /* accumulated XML testsuites */
    size_t junit_len, junit_cap;
    size_t snapshots, failed_snapshots, tests, failures;
    bool first_snapshot;
};

static void
junit_append(struct report *r, const char *text)
{
    size_t len = strlen(text);
    if (r->junit_len + len + 1 > r->junit_cap) {
        size_t cap = (r->junit_len + len + 1) * 2;
        char *p = realloc(r->junit, cap);
        if (!p)
            return;
        r->junit = p;
        r->junit_cap = cap;
    }
    memcpy(r->junit + r->junit_len, text, len + 1);
    r->junit_len += len;
}

static void
junit_escaped(struct report *r, const char *text)
{
    char buf[8];
    for (const char *p = text; *p; p++) {
        switch (*p) {
        case '<':
            junit_append(r, "&lt;");
            break;
        case '>':
            junit_append(r, "&gt;");
            break;
        case '&':
            junit_append(r, "&amp;");
            break;
        case '"':
            junit_append(r, "&quot;");
            break;
        default:
            if ((unsigned char)*p < 0x20 && *p != '\n' && *p != '\t')
                continue;
            buf[0] = *p;
            buf[1] = '\0';
            junit_append(r, buf);
        }
    }
}

static void
report_snapshot(struct report *r, const char *id, const struct sb_verify_result *res,
                const char *manifest_error)
{
    size_t failed = manifest_error ? 1 : res->failed;
    size_t count = manifest_error ? 1 : res->count + res->probe_count;
    r->snapshots++;
    r->tests += count;
    r->failures += failed;
    if (failed)
        r->failed_snapshots++;
    /* human */
    if (!r->json) {
        if (manifest_error) {
            printf("snapshot %s: FAILED: %s\n", id, manifest_error);
        } else {
            for (size_t idx = 0; idx < res->count; idx++) {
                const struct sb_verify_object *v = &res->objects[idx];
                char plain[32];
                sb_format_size(v->plain_bytes, plain);
                if (v->skipped)
                    printf("  skipped %s (not in the sample)\n", v->name);
                else if (v->ok)
                    printf("  ok      %s (%s, %llu %s%s%s)\n", v->name, plain,
                           (unsigned long long)v->entries, v->entries == 1 ? "entry" : "entries",
                           v->probe[0] ? ", " : "", v->probe);
                else
                    printf("  FAILED  %s: %s\n", v->name, v->error);
            }
            for (size_t idx = 0; idx < res->probe_count; idx++) {
                const struct sb_verify_probe *p = &res->probes[idx];
                if (p->skipped)
                    printf("  skipped SQL probe %s: %s (%s)\n", p->probe->database, p->probe->sql,
                           p->error);
                else if (p->ok)
                    printf("  ok      SQL probe %s: %s = '%s'\n", p->probe->database, p->probe->sql,
                           p->got);
                else
                    printf("  FAILED  SQL probe: %s\n", p->error);
            }
            if (res->probe_count)
                printf("snapshot %s: %s (%zu object(s), %zu SQL probe(s), %zu failed)\n", id,
                       failed ? "FAILED" : "ok", res->count, res->probe_count, failed);
            else
                printf("snapshot %s: %s (%zu object(s), %zu failed)\n", id,
                       failed ? "FAILED" : "ok", count, failed);
        }
    } else {
        fprintf(r->json, "%s{\"id\":", r->first_snapshot ? "" : ",");
        sb_cli_json_string(r->json, id);
        fprintf(r->json, ",\"ok\":%s", failed ? "false" : "true");
        if (manifest_error) {
            fprintf(r->json, ",\"error\":");
            sb_cli_json_string(r->json, manifest_error);
            fprintf(r->json, ",\"objects\":[]}");
        } else {
            fprintf(r->json, ",\"objects\":[");
            for (size_t idx = 0; idx < res->count; idx++) {
                const struct sb_verify_object *v = &res->objects[idx];
                fprintf(r->json, "%s{\"name\":", idx ? "," : "");
                sb_cli_json_string(r->json, v->name);
                fprintf(r->json, ",\"ok\":%s,\"skipped\":%s,\"plain_bytes\":%llu,\"entries\":%llu",
                        v->ok ? "true" : "false", v->skipped ? "true" : "false",
                        (unsigned long long)v->plain_bytes, (unsigned long long)v->entries);
                if (v->probe[0]) {
                    fprintf(r->json, ",\"probe\":");
                    sb_cli_json_string(r->json, v->probe);
                }
                if (!v->ok) {
                    fprintf(r->json, ",\"error\":");
                    sb_cli_json_string(r->json, v->error);
                }
                fprintf(r->json, "}");
            }
            fprintf(r->json, "],\"probes\":[");
            for (size_t idx = 0; idx < res->probe_count; idx++) {
                const struct sb_verify_probe *p = &res->probes[idx];
                fprintf(r->json, "%s{\"database\":", idx ? "," : "");
                sb_cli_json_string(r->json, p->probe->database);
                fprintf(r->json, ",\"sql\":");
                sb_cli_json_string(r->json, p->probe->sql);
                fprintf(r->json, ",\"expect\":");
                if (p->probe->expect)
                    sb_cli_json_string(r->json, p->probe->expect);
                else
                    fprintf(r->json, "null");
                fprintf(r->json, ",\"object\":");
                if (p->object)
                    sb_cli_json_string(r->json, p->object);
                else
                    fprintf(r->json, "null");
                fprintf(r->json, ",\"ok\":%s,\"skipped\":%s", p->ok ? "true" : "false",
                        p->skipped ? "true" : "false");
                if (!p->skipped && p->ok) {
                    fprintf(r->json, ",\"got\":");
                    sb_cli_json_string(r->json, p->got);
                }
                if (!p->ok || p->skipped) {
                    fprintf(r->json, ",\"error\":");
                    sb_cli_json_string(r->json, p->error);
                }
                fprintf(r->json, "}");
            }
            fprintf(r->json, "]}");
        }
        r->first_snapshot = false;
    }
    /* junit: one testsuite per snapshot */
    char line[256];
    snprintf(line, sizeof(line),
             "  <testsuite name=\"snapshot %s\" tests=\"%zu\" failures=\"%zu\">\n", id, count,
             failed);
    junit_append(r, line);
    if (manifest_error) {
        junit_append(r, "    <testcase classname=\"snapback.verify\" name=\"manifest\">\n"
                        "      <failure message=\"");
        junit_escaped(r, manifest_error);
        junit_append(r, "\"/>\n    </testcase>\n");
    }
    for (size_t idx = 0; !manifest_error && idx < res->count; idx++) {
        const struct sb_verify_object *v = &res->objects[idx];
        junit_append(r, "    <testcase classname=\"snapback.verify\" name=\"");
        junit_escaped(r, v->name);
        junit_append(r, "\">");
        if (v->skipped)
            junit_append(r, "<skipped message=\"not in the sample\"/>");
        else if (!v->ok) {
            junit_append(r, "\n      <failure message=\"");
            junit_escaped(r, v->error);
            junit_append(r, "\"/>\n    ");
        }
        junit_append(r, "</testcase>\n");
    }
    for (size_t idx = 0; !manifest_error && idx < res->probe_count; idx++) {
        const struct sb_verify_probe *p = &res->probes[idx];
        junit_append(r, "    <testcase classname=\"snapback.verify.sql_probe\" name=\"");
        junit_escaped(r, p->probe->database);
        junit_append(r, ": ");
        junit_escaped(r, p->probe->sql);
        junit_append(r, "\">");
        if (p->skipped) {
            junit_append(r, "<skipped message=\"");
            junit_escaped(r, p->error);
            junit_append(r, "\"/>");
        } else if (!p->ok) {
            junit_append(r, "\n      <failure message=\"");
            junit_escaped(r, p->error);
            junit_append(r, "\"/>\n    ");
        }
        junit_append(r, "</testcase>\n");
    }
    junit_append(r, "  </testsuite>\n");
}

/* Writes the JUnit document; run_error, when set, is a failure of the run itself (no snapshot
 * could be verified), reported as one failing testcase. */
static int
write_junit(const char *path, struct report *r, const char *run_error, struct sb_error *err)
{
    if (run_error) {
        r->tests++;
        r->failures++;
        junit_append(r, "  <testsuite name=\"snapback verify\" tests=\"1\" failures=\"1\">\n"
                        "    <testcase classname=\"snapback.verify\" name=\"repository\">\n"
                        "      <failure message=\"");
        junit_escaped(r, run_error);
        junit_append(r, "\"/>\n    </testcase>\n  </testsuite>\n");
    }
    char head[256];
    snprintf(head, sizeof(head),
             "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"snapback verify\" "
             "tests=\"%zu\" failures=\"%zu\">\n",
             r->tests, r->failures);
    size_t total = strlen(head) + r->junit_len + 16;
    char *doc = malloc(total);
    if (!doc)
        return sb_error_set(err, SB_E_INTERNAL, 0, "out of memory");
    snprintf(doc, total, "%s%s</testsuites>\n", head, r->junit ? r->junit : "");
    int wr = sb_write_file_atomic(path, doc, strlen(doc), 0644, err);
    free(doc);
    if (wr < 0)
        return sb_error_wrap(err, "--junit");
    return 0;
}

static int
verify_one(struct sb_repo *repo, const char *id, const struct sb_verify_opts *opts,
           struct report *r, struct sb_error *first, struct sb_error *err)
{
    struct sb_manifest *m = NULL;
    struct sb_verify_result res = {0};
    struct sb_error oerr = SB_ERROR_INIT;
    if (sb_repo_load_manifest(repo, id, &m, &oerr) < 0) {
        report_snapshot(r, id, &res, oerr.msg);
        if (first->code == SB_OK)
            *first = oerr;
        return 0;
    }
    if (sb_verify_run(repo, m, opts, &res, &oerr) < 0) {
        *err = oerr;
        sb_manifest_free(m);
        return -1;
    }
    report_snapshot(r, id, &res, NULL);
    if (res.failed && first->code == SB_OK) {
        *first = oerr;
        sb_error_wrap(first, "snapshot '%s'", id);
    }
    sb_verify_result_release(&res);
    sb_manifest_free(m);
    return 0;
}

int
cmd_verify(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"all", no_argument, NULL, 'a'},  {"sample", required_argument, NULL, 's'},
        {"full", no_argument, NULL, 'f'}, {"restore-db", no_argument, NULL, 'r'},
        {"json", no_argument, NULL, 'j'}, {"junit", required_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0},
    };
    bool all = false, json = false;
    const char *junit = NULL;
    struct sb_verify_opts opts = {1.0, false, false, cli->cfg};
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "as:frjJ:h", longopts, "verify", &help_verify, err)) != -1) {
        switch (c) {
        case 'h':
            return 0;
        case '?':
            return -1;
        case 'a':
            all = true;
            break;
        case 'f':
            opts.full = true;
            break;
        case 'r':
            opts.restore_db = true;
            break;
        case 'j':
            json = true;
            break;
        case 'J':
            junit = optarg;
            break;
        case 's': {
            char *end = NULL;
            double pct = strtod(optarg, &end);
            if (!end || end == optarg || (*end && strcmp(end, "%") != 0) || pct <= 0 || pct > 100)
                return sb_error_set(err, SB_E_USAGE, 0,
                                    "verify: --sample takes a percentage between 0 and 100, "
                                    "e.g. 10%%");
            opts.sample = pct / 100.0;
            break;
        }
        }
    }
    if (optind + 1 < cli->argc || (all && optind < cli->argc))
        return sb_error_set(err, SB_E_USAGE, 0, "verify: give one snapshot id, 'latest' or --all");
    double started = sb_now_monotonic();
    const char *spec = optind < cli->argc ? cli->argv[optind] : "latest";
    struct sb_repo *repo = NULL;
    char **ids = NULL;
    size_t n = 0;
    char *id = NULL;
    int rc = -1;
    struct sb_error first = SB_ERROR_INIT;
    struct report rep = {json ? stdout : NULL, NULL, 0, 0, 0, 0, 0, 0, true};
    bool json_done = false, junit_done = false;
    if (json)
        printf("{\"snapshots\":[");
    if (sb_repo_open(cli->cfg, &repo, err) < 0)
        goto out;
    if (all) {
        if (sb_repo_list_ids(repo, &ids, &n, err) < 0)
            goto out;
        for (size_t idx = n; idx-- > 0;)
            if (verify_one(repo, ids[idx], &opts, &rep, &first, err) < 0)
                goto out;
    } else {
        if (sb_repo_resolve_id(repo, spec, &id, err) < 0)
            goto out;
        if (verify_one(repo, id, &opts, &rep, &first, err) < 0)
            goto out;
    }
    if (json)
        printf("],\"ok\":%s,\"failed\":%zu}\n", rep.failed_snapshots ? "false" : "true",
               rep.failed_snapshots);
    json_done = true;
    if (junit && write_junit(junit, &rep, NULL, err) < 0)
        goto out;
    junit_done = true;
    if (rep.failed_snapshots) {
        *err = first;
        if (err->code == SB_OK)
            err->code = SB_E_CORRUPT;
        sb_error_wrap(err, "verify failed for %zu snapshot(s); first problem",
                      rep.failed_snapshots);
        goto out;
    }
    rc = 0;
out:
    /* A run that stopped early (repository unreachable, wrong key, no such snapshot) still
     * leaves complete reports that say why, so that CI shows the failure. */
    if (rc < 0 && json && !json_done) {
        printf("],\"ok\":false,\"failed\":%zu,\"error\":", rep.failed_snapshots);
        sb_cli_json_string(stdout, err->msg);
        printf("}\n");
    }
    if (rc < 0 && junit && !junit_done) {
        struct sb_error jerr = SB_ERROR_INIT;
        if (write_junit(junit, &rep, err->msg, &jerr) < 0)
            sb_warn("--junit: %s", jerr.msg);
    }
    fflush(stdout);
    sb_cli_job_done(cli, "verify", rc, all ? NULL : id, NULL, sb_now_monotonic() - started, 0, 0,
                    err);
    free(rep.junit);
    free(id);
    sb_store_names_free(ids, n);
    sb_repo_free(repo);
    return rc;
}
