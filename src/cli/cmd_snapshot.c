/* snapshot: take and store a snapshot, print its id on stdout. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/hooks.h"
#include "snapback/ops.h"

const struct sb_cmd_help help_snapshot = {
    "snapback snapshot [--tag TAG] [--only release,shared,db] [--wait[=SECONDS]]",
    "Takes a snapshot of the current release, the shared paths and the databases, stores it\n"
    "encrypted in the repository and prints its id. A release whose files did not change\n"
    "since an earlier snapshot is not stored again. Objects are written first and the\n"
    "manifest last: an interrupted snapshot leaves no partial snapshot. With an SFTP\n"
    "repository whose server cannot be reached, the snapshot is taken into the spool\n"
    "(state_dir/spool) and the exit status is 69: the next run, or 'snapback push',\n"
    "uploads it.",
    "  --tag TAG                 a label (e.g. pre-deploy); 'keep' protects it from prune\n"
    "  --only PARTS              a comma-separated subset of release, shared, db\n"
    "  --wait[=SECONDS]          when another run holds the app lock, wait for it (300 s, or\n"
    "                            SECONDS, at most 86400) instead of exiting 75 at once\n",
};

static bool
tag_valid(const char *tag)
{
    size_t len = strlen(tag);
    if (len == 0 || len > 64)
        return false;
    for (const char *p = tag; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.'))
            return false;
    return true;
}

int
cmd_snapshot(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"tag", required_argument, NULL, 't'},
        {"only", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sb_snapshot_opts opts = {0};
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "+t:o:h", longopts, "snapshot", &help_snapshot, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 't') {
            if (!tag_valid(optarg))
                return sb_error_set(err, SB_E_USAGE, 0,
                                    "snapshot: tag '%s' must be 1-64 letters, digits, '-', '_' "
                                    "or '.'",
                                    optarg);
            opts.tag = optarg;
        } else if (c == 'o' && sb_parts_parse(optarg, &opts.parts, err) < 0) {
            return -1;
        }
    }
    if (optind < cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0, "snapshot: unexpected argument '%s'",
                            cli->argv[optind]);
    double started = sb_now_monotonic();
    struct sb_repo *repo = NULL;
    struct sb_manifest *m = NULL;
    int rc = -1;
    struct sb_hook_env env = {"before_snapshot", cli->cfg->app, NULL, NULL, NULL};
    size_t pushed = 0;
    /* A remote repository whose server cannot be reached: the snapshot is taken into the
     * spool all the same (from state_dir's copy of the repository's snapback.json) and the
     * run exits 69; the next run that reaches the server, or 'snapback push', uploads it. */
    struct sb_error unreachable = SB_ERROR_INIT;
    if (sb_repo_open_reachable_or_offline(cli->cfg, &repo, &unreachable, err) < 0) {
        if (unreachable.msg[0])
            sb_error_wrap(err, "no snapshot could be taken into the spool instead");
        goto out;
    }
    if (!repo->offline && sb_spool_push(repo, &pushed, err) < 0) { /* an earlier run's first */
        if (err->code != SB_E_UNAVAILABLE) {
            sb_error_wrap(err, "the spool of an earlier run could not be uploaded; no new "
                               "snapshot was taken");
            goto out;
        }
        unreachable = *err;
        repo->offline = true;
    }
    if (repo->offline) {
        sb_warn("%s; the snapshot goes into the spool ('%s/spool') and is uploaded by the next "
                "run that reaches the server, or by 'snapback push'",
                unreachable.msg, cli->cfg->state_dir);
        sb_error_clear(err);
    }
    if (sb_hook_run(&cli->cfg->hooks.before_snapshot, &env, cli->cfg->hooks.timeout_s, err) < 0) {
        sb_error_wrap(err, "snapshot not taken");
        goto out;
    }
    if (sb_snapshot_run(cli->cfg, repo, &opts, &m, err) < 0)
        goto out;
    if (repo->offline) {
        sb_error_set(err, SB_E_UNAVAILABLE, 0,
                     "snapshot '%s' is complete in the spool ('%s/spool') but not on the server, "
                     "which could not be reached; the next snapshot or 'snapback push' uploads it",
                     m->id, cli->cfg->state_dir);
        printf("%s\n", m->id);
        fflush(stdout);
        goto out;
    }
    if (sb_spool_push(repo, &pushed, err) < 0) {
        sb_error_wrap(err,
                      "snapshot '%s' is complete in the spool ('%s/spool') but not on the "
                      "server yet; the next snapshot or 'snapback push' uploads it",
                      m->id, cli->cfg->state_dir);
        if (err->code != SB_E_UNAVAILABLE && err->code != SB_E_PERM)
            err->code = SB_E_UNAVAILABLE;
        goto out;
    }
    env.event = "after_snapshot";
    env.snapshot = m->id;
    env.release = m->has_release ? m->release.name : NULL;
    if (sb_hook_run(&cli->cfg->hooks.after_snapshot, &env, cli->cfg->hooks.timeout_s, err) < 0) {
        /* the snapshot is stored; the hook's failure is still a failure to report */
        sb_error_wrap(err, "snapshot '%s' stored, but", m->id);
        printf("%s\n", m->id);
        goto out;
    }
    char size[32];
    sb_format_size(sb_manifest_stored_size(m), size);
    sb_info("snapshot '%s' stored: %zu object(s), %s, %.1f s", m->id, m->object_count, size,
            sb_now_monotonic() - started);
    printf("%s\n", m->id);
    fflush(stdout);
    rc = 0;
out:;
    sb_cli_job_done(cli, "snapshot", rc, m ? m->id : NULL, NULL, sb_now_monotonic() - started,
                    m ? sb_manifest_stored_size(m) : 0, m ? m->object_count : 0, err);
    sb_manifest_free(m);
    sb_repo_free(repo);
    return rc;
}

const struct sb_cmd_help help_push = {
    "snapback push",
    "Uploads what an earlier snapshot left in the spool (state_dir/spool) because the remote\n"
    "repository could not be reached: objects first, manifests last. Every snapshot does this\n"
    "first too. Exits 69 when the server is still unavailable (nothing is lost).",
    NULL,
};

int
cmd_push(struct sb_cli *cli, struct sb_error *err)
{
    if (cli->argc > 1)
        return sb_error_set(err, SB_E_USAGE, 0, "push: unexpected argument '%s'", cli->argv[1]);
    double started = sb_now_monotonic();
    struct sb_repo *repo = NULL;
    size_t pushed = 0;
    int rc = -1;
    if (sb_repo_open(cli->cfg, &repo, err) < 0 || sb_spool_push(repo, &pushed, err) < 0)
        goto out;
    printf("%zu file(s) uploaded from the spool\n", pushed);
    rc = 0;
out:
    sb_cli_job_done(cli, "push", rc, NULL, NULL, sb_now_monotonic() - started, 0, pushed, err);
    sb_repo_free(repo);
    return rc;
}
