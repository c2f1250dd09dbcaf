/* restore: bring a snapshot back into a new directory. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/ops.h"

const struct sb_cmd_help help_restore = {
    "snapback restore ID|latest --target DIR [--only release,shared,db]",
    "Restores a snapshot into DIR, which must not exist or be empty: DIR/releases/NAME/,\n"
    "DIR/current -> releases/NAME and DIR/<shared path>/. Everything is extracted into a\n"
    "temp directory beside DIR and renamed into place only once every object passed every\n"
    "check, so a damaged snapshot leaves nothing behind. Entries that would escape DIR\n"
    "(absolute paths, '..', links out) are refused.",
    "  --target DIR   where to restore (required)\n"
    "  --only PARTS   a comma-separated subset of release, shared, db\n",
};

int
cmd_restore(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"target", required_argument, NULL, 't'},
        {"only", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sb_restore_opts opts = {0};
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "t:o:h", longopts, "restore", &help_restore, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 't')
            opts.target = optarg;
        else if (c == 'o' && sb_parts_parse(optarg, &opts.parts, err) < 0)
            return -1;
    }
    if (optind + 1 != cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0,
                            "restore: give exactly one snapshot id (or 'latest')");
    if (!opts.target || !*opts.target)
        return sb_error_set(err, SB_E_USAGE, 0,
                            "restore: --target DIR is required (restore never writes over live "
                            "data)");
    double started = sb_now_monotonic();
    struct sb_repo *repo = NULL;
    struct sb_manifest *m = NULL;
    char *id = NULL;
    int rc = -1;
    if (sb_repo_open(cli->cfg, &repo, err) < 0 ||
        sb_repo_resolve_id(repo, cli->argv[optind], &id, err) < 0 ||
        sb_repo_load_manifest(repo, id, &m, err) < 0)
        goto out;
    struct sb_restore_result res;
    if (sb_restore_run(repo, m, &opts, &res, err) < 0)
        goto out;
    char size[32];
    sb_format_size(res.bytes, size);
    printf("restored snapshot '%s' into '%s': %llu entries, %s of archives\n", m->id, opts.target,
           (unsigned long long)res.entries, size);
    rc = 0;
out:;
    struct sb_error jerr = SB_ERROR_INIT;
    if (sb_journal_append(cli->cfg->state_dir, "restore", rc == 0 ? "ok" : "failed", id,
                          rc == 0 ? opts.target : err->msg, sb_now_monotonic() - started,
                          &jerr) < 0)
        sb_warn("%s", jerr.msg);
    free(id);
    sb_manifest_free(m);
    sb_repo_free(repo);
    return rc;
}
