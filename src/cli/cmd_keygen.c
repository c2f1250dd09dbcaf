/* keygen and init: create the key file and the repository, refusing to overwrite either. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/format.h"
#include "snapback/ops.h"

const struct sb_cmd_help help_keygen = {
    "snapback keygen [--key-file FILE]",
    "Writes a new random 32-byte repository key to FILE (mode 0600), refusing to overwrite an\n"
    "existing file. Without --key-file, the config's key_file is used. Keep a copy of the key\n"
    "somewhere safe and away from the repository: without it no snapshot can be read.",
    "  --key-file FILE   where to write the key\n",
};

const struct sb_cmd_help help_init = {
    "snapback init [--key-file FILE]",
    "Creates the repository named by the config's repository.url and, when the key file does\n"
    "not exist yet, a new key (mode 0600). Refuses to overwrite an existing repository or\n"
    "key file; an existing key file is used as it is.",
    "  --key-file FILE   key file to use or create (default: the config's key_file)\n",
};

static int
write_new_key(const char *path, struct sb_error *err)
{
    struct sb_key *key = NULL;
    if (sb_key_new_random(&key, err) < 0)
        return -1;
    int rc = sb_keyfile_write_new(path, key, err);
    sb_key_free(key);
    return rc;
}

int
cmd_keygen(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"key-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key_file = NULL;
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "+k:h", longopts, "keygen", &help_keygen, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 'k')
            key_file = optarg;
    }
    if (optind < cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0, "keygen: unexpected argument '%s'",
                            cli->argv[optind]);
    if (!key_file && cli->cfg)
        key_file = cli->cfg->key_file;
    if (!key_file)
        return sb_error_set(err, SB_E_USAGE, 0,
                            "keygen: give --key-file FILE (or --config with a key_file)");
    if (write_new_key(key_file, err) < 0)
        return -1;
    printf("wrote a new key to '%s' (mode 0600)\n", key_file);
    fprintf(stderr, "snapback: keep a copy of this key safe and apart from the repository: "
                    "snapshots cannot be read without it\n");
    return 0;
}

int
cmd_init(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"key-file", required_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key_file = cli->cfg->key_file;
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "+k:h", longopts, "init", &help_init, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 'k')
            key_file = optarg;
    }
    if (optind < cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0, "init: unexpected argument '%s'",
                            cli->argv[optind]);
    if (!key_file)
        return sb_error_set(err, SB_E_CONFIG, 0,
                            "init: this config has no key_file (write-only hosts cannot create "
                            "a repository)");
    bool created_key = false;
    if (access(key_file, F_OK) < 0) {
        if (errno != ENOENT)
            return sb_error_set(err, sb_error_from_errno(errno), errno, "key file '%s'", key_file);
        if (write_new_key(key_file, err) < 0)
            return -1;
        created_key = true;
    }
    struct sb_key *key = NULL;
    if (sb_keyfile_load(key_file, &key, err) < 0)
        return -1;
    struct sb_repo_meta meta;
    int rc = sb_repo_init(cli->cfg, key, &meta, err);
    sb_key_free(key);
    if (rc < 0) {
        if (created_key)
            unlink(key_file); /* nothing was encrypted with it */
        return -1;
    }
    if (created_key)
        printf("wrote a new key to '%s' (mode 0600)\n", key_file);
    printf("created repository '%s' (id %s)\n", cli->cfg->repository.url, meta.id);
    if (created_key)
        fprintf(stderr,
                "snapback: keep a copy of '%s' safe and apart from the repository: "
                "snapshots cannot be read without it\n",
                key_file);
    struct sb_error jerr = SB_ERROR_INIT;
    if (sb_journal_append(cli->cfg->state_dir, "init", "ok", NULL, meta.id, 0, &jerr) < 0)
        sb_warn("%s", jerr.msg);
    return 0;
}
