/* rollback and releases: go back to an earlier release (and its database), and see what
 * there is to go back to. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/ops.h"

const struct sb_cmd_help help_rollback = {
    "snapback rollback --to previous|RELEASE|SNAPSHOT_ID [--with-database|--without-database]\n"
    "                         [--dry-run] [--no-safety-snapshot] [--wait[=SECONDS]]",
    "Switches `current` back to an earlier release: 'previous' is the release before current\n"
    "in the releases directory (sorted by name, as Capistrano does). A release no longer on\n"
    "disk is restored from the repository first. With --with-database (or rollback.database:\n"
    "\"always\"), the databases come back, in place, from the newest snapshot taken while that\n"
    "release was current (or from SNAPSHOT_ID). Steps: plan (--dry-run stops here), safety\n"
    "snapshot tagged pre-rollback, before_rollback hook (a failure aborts), release, database,\n"
    "atomic switch of current, after_rollback hook, health_check until it passes or\n"
    "rollback.health_timeout_s runs out; then, with rollback.auto_revert, the previous release\n"
    "and database are put back and the command fails. Roll forward with --to RELEASE.\n"
    "A rollback killed after its switch is finished by running it again (--to previous or\n"
    "--to the release it switched to): after_rollback and the health check run then.",
    "  --to TARGET              previous, a release name, or a snapshot id\n"
    "  --with-database          also restore the databases (in place)\n"
    "  --without-database       do not, whatever rollback.database says\n"
    "  --dry-run                print the plan and change nothing\n"
    "  --no-safety-snapshot     skip the pre-rollback snapshot (the rollback cannot be undone)\n"
    "  --wait[=SECONDS]         when another run holds the app lock, wait for it (300 s, or\n"
    "                           SECONDS, at most 86400) instead of exiting 75 at once\n",
};

const struct sb_cmd_help help_releases = {
    "snapback releases",
    "Lists the releases: those on disk (sorted by name, `current` marked with '*') and those\n"
    "only in the repository, with the number of snapshots that contain each.",
    NULL,
};

int
cmd_rollback(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"to", required_argument, NULL, 't'},
        {"with-database", no_argument, NULL, 'd'},
        {"without-database", no_argument, NULL, 'D'},
        {"dry-run", no_argument, NULL, 'n'},
        {"no-safety-snapshot", no_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sb_rollback_opts opts = {NULL, -1, false};
    bool dry_run = false;
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "t:dDnSh", longopts, "rollback", &help_rollback, err)) != -1) {
        switch (c) {
        case 'h':
            return 0;
        case '?':
            return -1;
        case 't':
            opts.to = optarg;
            break;
        case 'd':
        case 'D':
            if (opts.with_database >= 0)
                return sb_error_set(err, SB_E_USAGE, 0,
                                    "rollback: --with-database and --without-database exclude "
                                    "each other");
            opts.with_database = c == 'd';
            break;
        case 'n':
            dry_run = true;
            break;
        case 'S':
            opts.no_safety_snapshot = true;
            break;
        }
    }
    if (optind < cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0, "rollback: unexpected argument '%s'",
                            cli->argv[optind]);
    if (!opts.to)
        return sb_error_set(err, SB_E_USAGE, 0,
                            "rollback: --to previous|RELEASE|SNAPSHOT_ID is required");
    double started = sb_now_monotonic();
    struct sb_repo *repo = NULL;
    struct sb_rollback_plan plan = {0};
    struct sb_rollback_result res = {{0}, false, false, false};
    int rc = -1;
    bool planned = false;
    if (sb_repo_open(cli->cfg, &repo, err) < 0)
        goto out;
    if (sb_rollback_plan_make(cli->cfg, repo, &opts, &plan, err) < 0)
        goto out;
    planned = true;
    printf("rollback plan for app '%s':\n", cli->cfg->app);
    if (plan.resume) {
        printf("  resume:    the rollback %s -> %s was interrupted after its switch; %s is\n"
               "             live, after_rollback and the health check are left to run\n",
               plan.from_release, plan.to_release, plan.to_release);
        printf("  revert:    to %s%s if unhealthy and rollback.auto_revert is on\n",
               plan.from_release, plan.with_database ? " and its database" : "");
    } else {
        printf("  release:   %s -> %s%s\n", plan.from_release, plan.to_release,
               plan.release_on_disk ? "" : " (restored from the repository first)");
        if (!plan.release_on_disk)
            printf("             from snapshot %s\n", plan.release_snapshot);
        if (plan.with_database)
            printf("  databases: %zu restored in place from snapshot %s\n", plan.db_count,
                   plan.db_snapshot);
        else
            printf("  databases: unchanged\n");
        printf("  safety:    %s\n", opts.no_safety_snapshot ? "no safety snapshot (--no-safety-"
                                                              "snapshot)"
                                                            : "snapshot tagged pre-rollback first");
    }
    printf("  hooks:     before_rollback %s, after_rollback %s, health_check %s\n",
           cli->cfg->hooks.before_rollback.present ? "yes" : "-",
           cli->cfg->hooks.after_rollback.present ? "yes" : "-",
           cli->cfg->hooks.health_check.present ? "yes" : "-");
    fflush(stdout);
    if (dry_run) {
        printf("dry run: nothing was changed\n");
        rc = 0;
        goto out;
    }
    if (sb_rollback_execute(cli->cfg, repo, &opts, &plan, &res, err) < 0)
        goto out;
    printf("rolled back: current -> %s%s%s%s\n", plan.to_release,
           res.database_restored ? ", databases restored" : "",
           res.safety_snapshot[0] ? "; undo with: snapback rollback --to " : "",
           res.safety_snapshot[0] ? res.safety_snapshot : "");
    rc = 0;
out:;
    if (!dry_run && planned) {
        char detail[600];
        snprintf(detail, sizeof(detail), "%s -> %s%s%s", plan.from_release, plan.to_release,
                 res.database_restored ? " with database" : "", res.reverted ? ", reverted" : "");
        sb_cli_job_done(cli, "rollback", rc, res.safety_snapshot[0] ? res.safety_snapshot : NULL,
                        detail, sb_now_monotonic() - started, 0, 0, err);
    }
    sb_rollback_plan_release(&plan);
    sb_repo_free(repo);
    return rc;
}

int
cmd_releases(struct sb_cli *cli, struct sb_error *err)
{
    if (cli->argc > 1)
        return sb_error_set(err, SB_E_USAGE, 0, "releases: unexpected argument '%s'", cli->argv[1]);
    char **names = NULL, **ids = NULL, *current = NULL;
    size_t n = 0, nids = 0;
    struct sb_repo *repo = NULL;
    int rc = -1;
    /* repo-only releases and snapshot counts */
    char **repo_names = NULL;
    size_t *repo_counts = NULL, nrepo = 0;
    if (sb_release_current(cli->cfg, &current, err) < 0 ||
        sb_release_list(cli->cfg, &names, &n, err) < 0 || sb_repo_open(cli->cfg, &repo, err) < 0 ||
        sb_repo_list_ids(repo, &ids, &nids, err) < 0)
        goto out;
    repo_names = calloc(nids + 1, sizeof(*repo_names));
    repo_counts = calloc(nids + 1, sizeof(*repo_counts));
    if (!repo_names || !repo_counts) {
        sb_error_set(err, SB_E_INTERNAL, 0, "out of memory");
        goto out;
    }
    for (size_t idx = 0; idx < nids; idx++) {
        struct sb_manifest *m = NULL;
        struct sb_error merr = SB_ERROR_INIT;
        if (sb_repo_load_manifest_cached(repo, ids[idx], &m, &merr) < 0) {
            sb_warn("%s", merr.msg);
            continue;
        }
        if (m->has_release) {
            size_t r = 0;
            while (r < nrepo && strcmp(repo_names[r], m->release.name))
                r++;
            if (r == nrepo)
                repo_names[nrepo++] = sb_strdup(m->release.name);
            repo_counts[r]++;
        }
        sb_manifest_free(m);
    }
    for (size_t idx = 0; idx < n; idx++) {
        size_t count = 0;
        for (size_t r = 0; r < nrepo; r++)
            if (repo_names[r] && !strcmp(repo_names[r], names[idx]))
                count = repo_counts[r];
        printf("%s %-32s  on disk      %zu snapshot(s)\n", strcmp(names[idx], current) ? " " : "*",
               names[idx], count);
    }
    for (size_t r = 0; r < nrepo; r++) {
        bool local = false;
        for (size_t idx = 0; idx < n; idx++)
            local = local || (repo_names[r] && !strcmp(repo_names[r], names[idx]));
        if (!local && repo_names[r])
            printf("  %-32s  repository   %zu snapshot(s)\n", repo_names[r], repo_counts[r]);
    }
    rc = 0;
out:
    for (size_t r = 0; r < nrepo; r++)
        free(repo_names[r]);
    free(repo_names);
    free(repo_counts);
    sb_store_names_free(names, n);
    sb_store_names_free(ids, nids);
    free(current);
    sb_repo_free(repo);
    return rc;
}
