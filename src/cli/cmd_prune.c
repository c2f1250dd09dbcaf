/* prune and status: apply the retention policy; report the freshness of the backups. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/ops.h"

const struct sb_cmd_help help_prune = {
    "snapback prune [--dry-run]",
    "Applies the config's retention policy like restic's forget (keep_last, keep_hourly,\n"
    "keep_daily, keep_weekly, keep_monthly, keep_yearly, keep_within; periods in local time),\n"
    "printing every snapshot with the rules that keep it. The newest snapshot and any tagged\n"
    "'keep' always stay. Then deletes the removed snapshots' manifests first and objects after,\n"
    "and every unreferenced object or partial file older than 6 hours (orphans of interrupted\n"
    "runs). A crash at any point leaves every remaining snapshot complete.",
    "  --dry-run   print the decisions, delete nothing\n",
};

const struct sb_cmd_help help_status = {
    "snapback status [--json]",
    "Shows the newest snapshot and its age, and the last snapshot, prune, verify and rollback\n"
    "runs from the journal with their outcome. Exits 1 when the newest snapshot is older than\n"
    "the config's max_age (for monitoring), 66 when there is none, 69 when the SFTP server\n"
    "cannot be reached (this host's record is shown all the same).",
    "  --json   one JSON object on stdout\n",
};

int
cmd_prune(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"dry-run", no_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool dry_run = false;
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "nh", longopts, "prune", &help_prune, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 'n')
            dry_run = true;
    }
    if (optind < cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0, "prune: unexpected argument '%s'",
                            cli->argv[optind]);
    double started = sb_now_monotonic();
    struct sb_repo *repo = NULL;
    struct sb_prune_result res = {0};
    int rc = -1;
    if (sb_repo_open(cli->cfg, &repo, err) < 0 || sb_prune_plan(cli->cfg, repo, &res, err) < 0)
        goto out;
    for (size_t idx = 0; idx < res.count; idx++) {
        const struct sb_prune_item *it = &res.items[idx];
        char ts[32];
        struct tm tm;
        localtime_r(&it->created_at, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M", &tm);
        printf("%-6s  %-22s  %s  %-12s  %s\n", it->keep ? "keep" : "remove", it->id, ts,
               it->tag[0] ? it->tag : "-", it->keep ? it->reasons : "");
    }
    printf("%zu snapshot(s), %zu to keep, %zu to remove\n", res.count, res.count - res.removed,
           res.removed);
    if (dry_run) {
        printf("dry run: nothing was deleted\n");
        rc = 0;
        goto out;
    }
    if (sb_prune_execute(repo, &res, err) < 0)
        goto out;
    char freed[32];
    sb_format_size(res.bytes_freed, freed);
    printf("deleted %zu snapshot(s) and %llu object(s), %s freed\n", res.snapshots_deleted,
           (unsigned long long)res.objects_deleted, freed);
    rc = 0;
out:
    if (!dry_run) {
        char detail[128];
        snprintf(detail, sizeof(detail), "%zu snapshots and %llu objects deleted",
                 res.snapshots_deleted, (unsigned long long)res.objects_deleted);
        sb_cli_job_done(cli, "prune", rc, NULL, detail, sb_now_monotonic() - started,
                        res.bytes_freed, res.objects_deleted, err);
    }
    sb_prune_result_release(&res);
    sb_repo_free(repo);
    return rc;
}

static void
json_str(const char *key, const char *value, bool comma)
{
    printf("\"%s\":", key);
    sb_cli_json_string(stdout, value);
    printf("%s", comma ? "," : "");
}

static void
print_job(const char *name, const struct sb_journal_entry *last, const struct sb_journal_entry *ok,
          bool json, bool comma)
{
    char ts[32] = "never", ok_ts[32] = "never";
    if (last->present)
        sb_format_time_iso(last->time, ts);
    if (ok->present)
        sb_format_time_iso(ok->time, ok_ts);
    if (json) {
        printf("\"%s\":{", name);
        if (last->present) {
            json_str("last_time", ts, true);
            json_str("last_outcome", last->outcome, true);
            json_str("last_detail", last->detail, true);
        }
        if (ok->present)
            json_str("last_success", ok_ts, false);
        else
            printf("\"last_success\":null");
        printf("}%s", comma ? "," : "");
        return;
    }
    if (!last->present) {
        printf("%-9s never run\n", name);
        return;
    }
    printf("%-9s last %s (%s)%s%s\n", name, ts, last->outcome, last->detail[0] ? ": " : "",
           last->detail);
    if (strcmp(last->outcome, "ok") != 0)
        printf("%-9s last success %s\n", "", ok_ts);
}

int
cmd_status(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "jh", longopts, "status", &help_status, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 'j')
            json = true;
    }
    if (optind < cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0, "status: unexpected argument '%s'",
                            cli->argv[optind]);
    struct sb_repo *repo = NULL;
    struct sb_manifest *m = NULL;
    char *id = NULL;
    int rc = -1;
    static const char *const jobs[] = {"snapshot", "prune", "verify", "rollback"};
    struct sb_journal_entry last[4], ok[4];
    for (size_t idx = 0; idx < 4; idx++)
        if (sb_journal_last(cli->cfg->state_dir, jobs[idx], &last[idx], &ok[idx], err) < 0)
            return -1;
    /* A remote repository whose server is down: what this host knows (its catalog, the
     * journal, the spool) is still worth showing, and the exit status says the server is
     * unreachable (69). */
    struct sb_error unreachable = SB_ERROR_INIT;
    if (sb_repo_open_reachable_or_offline(cli->cfg, &repo, &unreachable, err) < 0)
        goto out;
    struct sb_error rerr = SB_ERROR_INIT;
    if (sb_repo_resolve_id(repo, "latest", &id, &rerr) == 0 &&
        sb_repo_load_manifest_cached(repo, id, &m, err) < 0)
        goto out;
    size_t pending = 0;
    struct sb_error perr = SB_ERROR_INIT;
    if (sb_spool_pending(cli->cfg, &pending, &perr) < 0)
        sb_warn("%s", perr.msg);
    time_t now = time(NULL);
    long long age = m ? (long long)(now - m->created_at) : -1;
    bool stale = !m || (cli->cfg->max_age_s && age > cli->cfg->max_age_s);
    char ts[32] = "";
    if (m)
        sb_format_time_iso(m->created_at, ts);
    if (json) {
        printf("{");
        json_str("app", cli->cfg->app, true);
        if (m) {
            printf("\"newest\":{");
            json_str("id", m->id, true);
            json_str("created_at", ts, true);
            printf("\"age_s\":%lld},", age);
        } else {
            printf("\"newest\":null,");
        }
        printf("\"max_age_s\":%lld,\"stale\":%s,\"pending_uploads\":%zu,",
               (long long)cli->cfg->max_age_s, stale ? "true" : "false", pending);
        for (size_t idx = 0; idx < 4; idx++)
            print_job(jobs[idx], &last[idx], &ok[idx], true, idx < 3);
        if (repo->offline) {
            printf(",\"remote_unreachable\":");
            sb_cli_json_string(stdout, unreachable.msg);
        }
        printf("}\n");
    } else {
        printf("app       %s\n", cli->cfg->app);
        if (repo->offline)
            printf("remote    UNREACHABLE: %s (what follows is this host's record)\n",
                   unreachable.msg);
        if (m)
            printf("newest    %s (%s, %lldh%02lldm ago)%s\n", m->id, ts, age / 3600,
                   (age % 3600) / 60, stale ? "  STALE: older than max_age" : "");
        else
            printf("newest    none\n");
        printf("pending   %zu file(s) in the spool%s\n", pending,
               pending ? " (run 'snapback push')" : "");
        for (size_t idx = 0; idx < 4; idx++)
            print_job(jobs[idx], &last[idx], &ok[idx], false, false);
    }
    if (repo->offline) {
        *err = unreachable;
        goto out;
    }
    if (!m) {
        sb_error_set(err, SB_E_NOTFOUND, 0, "app '%s' has no snapshot yet", cli->cfg->app);
        goto out;
    }
    if (stale) {
        sb_error_set(err, SB_E_STALE, 0,
                     "the newest snapshot '%s' is %lld s old, more than max_age (%lld s)", m->id,
                     age, (long long)cli->cfg->max_age_s);
        goto out;
    }
    rc = 0;
out:
    free(id);
    sb_manifest_free(m);
    sb_repo_free(repo);
    return rc;
}
