/* config check: validate the config and everything it points to, changing nothing. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/db.h"
#include "snapback/proc.h"
#include "snapback/format.h"
#include "snapback/ops.h"
#include "snapback/store.h"

const struct sb_cmd_help help_config = {
    "snapback config check",
    "Validates the config (every key, type and value, errors name the JSON path), the key\n"
    "file (owner, mode 0600, format), the repository (reachable, initialised, opened by the\n"
    "key), the release layout (current -> releases/NAME) and the shared paths. Changes\n"
    "nothing. Exits with the code of the first problem found. For an SFTP repository it\n"
    "also connects, checks the host key against known_hosts, logs in, and checks that the\n"
    "user can write in the repository path by creating and removing a\n"
    "'.snapback-write-test-RANDOM' file there.",
    NULL,
};

struct check_state {
    struct sb_error first;
    int failed;
};

static void
report(struct check_state *cs, const char *what, int rc, const struct sb_error *err)
{
    if (rc == 0) {
        printf("ok    %s\n", what);
        return;
    }
    printf("FAIL  %s: %s\n", what, err->msg);
    if (cs->failed++ == 0)
        cs->first = *err;
}

/* The SFTP steps, one line each, up to the first that fails. Returns -1 when one did. */
static int
check_remote(const struct sb_config *cfg, struct check_state *cs)
{
    struct sb_sftp_probe probe;
    struct sb_error e = SB_ERROR_INIT;
    char what[9000];
    int rc = sb_sftp_probe(cfg, &probe, &e);

    snprintf(what, sizeof(what), "remote %s is reachable%s%s%s", probe.server,
             probe.banner[0] ? " (" : "", probe.banner, probe.banner[0] ? ")" : "");
    report(cs, what, probe.failed_at == SB_SFTP_STEP_CONNECT ? -1 : 0, &e);
    if (probe.failed_at == SB_SFTP_STEP_CONNECT)
        return -1;
    snprintf(what, sizeof(what), "host key %s is known in '%s'", probe.host_key, probe.known_hosts);
    report(cs, what, probe.failed_at == SB_SFTP_STEP_HOSTKEY ? -1 : 0, &e);
    if (probe.failed_at == SB_SFTP_STEP_HOSTKEY)
        return -1;
    if (probe.failed_at == SB_SFTP_STEP_LOGIN)
        snprintf(what, sizeof(what), "login as '%s'", cfg->repository.sftp_user);
    else
        snprintf(what, sizeof(what), "login as '%s' with %s", cfg->repository.sftp_user,
                 probe.login);
    report(cs, what, probe.failed_at == SB_SFTP_STEP_LOGIN ? -1 : 0, &e);
    if (probe.failed_at == SB_SFTP_STEP_LOGIN)
        return -1;
    if (rc == 0)
        snprintf(what, sizeof(what), "remote path '%s' is writable (created and removed '%s')",
                 probe.path, probe.test_file);
    else
        snprintf(what, sizeof(what), "remote path '%s' is writable", probe.path);
    report(cs, what, rc, &e);
    return rc;
}

int
cmd_config(struct sb_cli *cli, struct sb_error *err)
{
    if (cli->argc != 2 || strcmp(cli->argv[1], "check") != 0)
        return sb_error_set(err, SB_E_USAGE, 0, "config: the only subcommand is 'check'");
    const struct sb_config *cfg = cli->cfg;
    struct check_state cs = {SB_ERROR_INIT, 0};
    struct sb_error e = SB_ERROR_INIT;
    char what[512];

    snprintf(what, sizeof(what), "config '%s' is valid", cfg->source_path);
    report(&cs, what, 0, &e);

    if (cfg->key_file) {
        struct sb_key *key = NULL;
        sb_error_clear(&e);
        int rc = sb_keyfile_load(cfg->key_file, &key, &e);
        sb_key_free(key);
        snprintf(what, sizeof(what), "key file '%s' (owner, mode, format)", cfg->key_file);
        report(&cs, what, rc, &e);
    } else if (cfg->recipient) {
        struct sb_key *key = NULL;
        sb_error_clear(&e);
        int rc = sb_pubfile_load(cfg->recipient, &key, &e);
        sb_key_free(key);
        snprintf(what, sizeof(what), "recipient '%s' is a public key (write-only host)",
                 cfg->recipient);
        report(&cs, what, rc, &e);
    }

    int rc = 0;
    if (cfg->repository.is_sftp)
        rc = check_remote(cfg, &cs);
    if (rc == 0) {
        struct sb_repo *repo = NULL;
        sb_error_clear(&e);
        rc = sb_repo_open(cfg, &repo, &e);
        snprintf(what, sizeof(what), "repository '%s' opens with the key", cfg->repository.url);
        report(&cs, what, rc, &e);
        sb_repo_free(repo);
    }

    if (cfg->has_release) {
        char *link = sb_path_join(cfg->release.root, cfg->release.current);
        char target[4096];
        sb_error_clear(&e);
        ssize_t n = link ? readlink(link, target, sizeof(target) - 1) : -1;
        if (n < 0)
            rc =
                sb_error_set(&e, SB_E_CONFIG, 0, "'%s' is not a readable symlink (release.current)",
                             link ? link : "?");
        else
            rc = 0;
        snprintf(what, sizeof(what), "release symlink '%s'", link ? link : "?");
        report(&cs, what, rc, &e);
        free(link);
        for (size_t idx = 0; idx < cfg->release.shared_count; idx++) {
            char *p = sb_path_join(cfg->release.root, cfg->release.shared_paths[idx]);
            struct stat st;
            sb_error_clear(&e);
            if (!p || stat(p, &st) < 0 || !S_ISDIR(st.st_mode))
                rc = sb_error_set(&e, SB_E_NOTFOUND, 0, "not a directory");
            else
                rc = 0;
            snprintf(what, sizeof(what), "shared path '%s'", p ? p : "?");
            report(&cs, what, rc, &e);
            free(p);
        }
    }
    /* each database: client installed, server reachable, credentials accepted, and for
     * pg_dump/mysqldump the dump client too (what a snapshot needs, checked up front) */
    for (size_t idx = 0; idx < cfg->database_count; idx++) {
        const struct sb_db_config *db = &cfg->databases[idx];
        struct sb_db_info info;
        sb_error_clear(&e);
        rc = sb_db_probe(db, cfg->state_dir, &info, &e);
        if (rc == 0)
            rc = sb_db_check_dump_client(db, &info, &e);
        snprintf(what, sizeof(what), "database '%s' (%s%s%s)", db->name,
                 sb_db_engine_name(db->engine), rc == 0 ? " " : "",
                 rc == 0 ? info.server_version : "");
        report(&cs, what, rc, &e);
    }
    if (cs.failed) {
        *err = cs.first;
        return sb_error_wrap(err, "config check: %d problem(s); the first", cs.failed);
    }
    printf("all checks passed\n");
    return 0;
}
