/* verify: prove that a snapshot can be read back, object by object. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/ops.h"

const struct sb_cmd_help help_verify = {
    "snapback verify [ID|latest] [--all]",
    "Reads every object of the snapshot (default: latest) through the whole restore chain\n"
    "without writing anything: stored size and BLAKE2b against the manifest, every encrypted\n"
    "chunk authenticated, the final chunk present, zstd frames complete and every tar entry\n"
    "walked. Exits 65 naming the object and the byte offset when anything is wrong.",
    "  --all   verify every snapshot\n",
};

static int
verify_one(struct sb_repo *repo, const char *id, size_t *failed, struct sb_error *err)
{
    struct sb_manifest *m = NULL;
    struct sb_verify_result res;
    if (sb_repo_load_manifest(repo, id, &m, err) < 0) {
        printf("snapshot %s: FAILED: %s\n", id, err->msg);
        (*failed)++;
        return 0;
    }
    if (sb_verify_run(repo, m, &res, err) < 0) {
        sb_manifest_free(m);
        return -1;
    }
    for (size_t idx = 0; idx < res.count; idx++) {
        const struct sb_verify_object *v = &res.objects[idx];
        char plain[32];
        sb_format_size(v->plain_bytes, plain);
        if (v->ok)
            printf("  ok      %s (%s, %llu entries)\n", v->name, plain,
                   (unsigned long long)v->entries);
        else
            printf("  FAILED  %s: %s\n", v->name, v->error);
    }
    printf("snapshot %s: %s (%zu object(s), %zu failed)\n", id, res.failed ? "FAILED" : "ok",
           res.count, res.failed);
    if (res.failed)
        (*failed)++;
    sb_verify_result_release(&res);
    sb_manifest_free(m);
    return 0;
}

int
cmd_verify(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"all", no_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool all = false;
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "ah", longopts, "verify", &help_verify, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 'a')
            all = true;
    }
    if (optind + 1 < cli->argc || (all && optind < cli->argc))
        return sb_error_set(err, SB_E_USAGE, 0, "verify: give one snapshot id, 'latest' or --all");
    double started = sb_now_monotonic();
    const char *spec = optind < cli->argc ? cli->argv[optind] : "latest";
    struct sb_repo *repo = NULL;
    char **ids = NULL;
    size_t n = 0, failed = 0;
    char *id = NULL;
    int rc = -1;
    struct sb_error first = SB_ERROR_INIT;
    if (sb_repo_open(cli->cfg, &repo, err) < 0)
        goto out;
    if (all) {
        if (sb_repo_list_ids(repo, &ids, &n, err) < 0)
            goto out;
        for (size_t idx = n; idx-- > 0;) {
            struct sb_error oerr = SB_ERROR_INIT;
            if (verify_one(repo, ids[idx], &failed, &oerr) < 0) {
                *err = oerr;
                goto out;
            }
            if (failed && first.code == SB_OK)
                first = oerr;
        }
    } else {
        if (sb_repo_resolve_id(repo, spec, &id, err) < 0)
            goto out;
        if (verify_one(repo, id, &failed, &first) < 0) {
            *err = first;
            goto out;
        }
    }
    if (failed) {
        *err = first;
        if (err->code == SB_OK)
            err->code = SB_E_CORRUPT;
        sb_error_wrap(err, "verify failed for %zu snapshot(s); first problem", failed);
        goto out;
    }
    rc = 0;
out:;
    sb_cli_job_done(cli, "verify", rc, all ? NULL : id, NULL, sb_now_monotonic() - started, 0, 0,
                    err);
    free(id);
    sb_store_names_free(ids, n);
    sb_repo_free(repo);
    return rc;
}
