/* restore: bring a snapshot back into a new directory. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/ops.h"

const struct sb_cmd_help help_restore = {
    "snapback restore ID|latest [--target DIR] [--only release,shared,db]\n"
    "                        [--path PATH]... [--db-target NAME=TARGET]... [--in-place]",
    "Restores a snapshot into DIR, which must not exist or be empty: DIR/releases/NAME/,\n"
    "DIR/current -> releases/NAME and DIR/<shared path>/. Everything is extracted into a\n"
    "temp directory beside DIR and renamed into place only once every object passed every\n"
    "check, so a damaged snapshot leaves nothing behind. Entries that would escape DIR\n"
    "(absolute paths, '..', links out) are refused. Database dumps go to\n"
    "DIR/databases/NAME.pgdump|.sql|.sqlite3 unless --db-target or --in-place sends them\n"
    "into a database.",
    "  --target DIR               where to restore files (required unless only databases\n"
    "                             are restored into databases)\n"
    "  --only PARTS               a comma-separated subset of release, shared, db\n"
    "  --path PATH                only this file or directory (and what is below it), as a\n"
    "                             path in the restored layout: releases/NAME/..., current/...\n"
    "                             or a shared path/...; repeatable; every entry is still\n"
    "                             read and checked, and a PATH that matches nothing fails\n"
    "  --db-target NAME=TARGET    restore database NAME into TARGET: a new database on the\n"
    "                             configured server (postgresql, mysql) or a new file\n"
    "                             (sqlite); repeatable\n"
    "  --in-place                 restore the databases into the live ones (only with\n"
    "                             --only db; PostgreSQL: pg_restore --clean --if-exists\n"
    "                             --single-transaction; SQLite: temp file renamed over it)\n",
};

int
cmd_restore(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"target", required_argument, NULL, 't'},
        {"only", required_argument, NULL, 'o'},
        {"db-target", required_argument, NULL, 'd'},
        {"in-place", no_argument, NULL, 'i'},
        {"path", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sb_restore_opts opts = {0};
    struct sb_db_target targets[32];
    const char *paths[SB_RESTORE_PATHS_MAX];
    opts.cfg = cli->cfg;
    opts.db_targets = targets;
    opts.paths = paths;
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "t:o:d:ip:h", longopts, "restore", &help_restore, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 't') {
            opts.target = optarg;
        } else if (c == 'o') {
            if (sb_parts_parse(optarg, &opts.parts, err) < 0)
                return -1;
        } else if (c == 'i') {
            opts.in_place = true;
        } else if (c == 'p') {
            if (sb_cli_layout_path(optarg, "restore", "--path ", err) < 0)
                return -1;
            if (opts.path_count == SB_RESTORE_PATHS_MAX)
                return sb_error_set(err, SB_E_USAGE, 0, "restore: at most %d --path",
                                    SB_RESTORE_PATHS_MAX);
            paths[opts.path_count++] = optarg;
        } else if (c == 'd') {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || !eq[1])
                return sb_error_set(err, SB_E_USAGE, 0,
                                    "restore: --db-target takes NAME=TARGET, e.g. "
                                    "main=shop_restored");
            if (opts.db_target_count == sizeof(targets) / sizeof(targets[0]))
                return sb_error_set(err, SB_E_USAGE, 0, "restore: too many --db-target");
            *eq = '\0';
            targets[opts.db_target_count].name = optarg;
            targets[opts.db_target_count].target = eq + 1;
            opts.db_target_count++;
        }
    }
    if (optind + 1 != cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0,
                            "restore: give exactly one snapshot id (or 'latest')");
    if (opts.in_place && opts.parts != SB_PART_DB)
        return sb_error_set(err, SB_E_USAGE, 0,
                            "restore: --in-place only restores databases: add --only db (a "
                            "release goes back with 'snapback rollback')");
    if (opts.path_count && ((opts.parts & SB_PART_DB) || opts.db_target_count || opts.in_place))
        return sb_error_set(err, SB_E_USAGE, 0,
                            "restore: --path selects files of the release and shared paths; it "
                            "does not combine with --only db, --db-target or --in-place");
    if (opts.target && !*opts.target)
        return sb_error_set(err, SB_E_USAGE, 0, "restore: --target needs a directory");
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
    printf("restored snapshot '%s'%s%s: %llu %s, %s of archives and dumps\n", m->id,
           opts.target ? " into " : "", opts.target ? opts.target : "",
           (unsigned long long)res.entries, res.entries == 1 ? "entry" : "entries", size);
    rc = 0;
out:;
    sb_cli_job_done(cli, "restore", rc, id, opts.target, sb_now_monotonic() - started, 0, 0, err);
    free(id);
    sb_manifest_free(m);
    sb_repo_free(repo);
    return rc;
}
