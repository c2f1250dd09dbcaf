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
    "snapback keygen [--key-file FILE] [--write-only]",
    "Writes a new random 32-byte repository key to FILE (mode 0600), refusing to overwrite an\n"
    "existing file. Without --key-file, the config's key_file is used. Keep a copy of the key\n"
    "somewhere safe and away from the repository: without it no snapshot can be read.\n"
    "\n"
    "--write-only writes a recipient key pair instead: the secret key to FILE (NAME.key, mode\n"
    "0600) and the public key beside it (NAME.pub). The .pub goes on the app server as the\n"
    "config's \"recipient\": it writes snapshots it can never read. The .key stays offline or\n"
    "in a CI secret store, and reads them (--key FILE or $SNAPBACK_KEY_FILE). Without\n"
    "--key-file, the config's recipient names the .pub and the .key goes beside it.",
    "  --key-file FILE   where to write the key (with --write-only: the secret key)\n"
    "  --write-only      a recipient key pair for write-only hosts\n",
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

/* NAME.key -> NAME.pub, NAME.pub -> NAME.key; any other name gets the suffix added. */
static int
swap_suffix(const char *path, const char *from, const char *to, char *out, size_t cap,
            struct sb_error *err)
{
    size_t len = strlen(path), flen = strlen(from);
    int n = len > flen && !strcmp(path + len - flen, from)
                ? snprintf(out, cap, "%.*s%s", (int)(len - flen), path, to)
                : snprintf(out, cap, "%s%s", path, to);
    if (n < 0 || (size_t)n >= cap)
        return sb_error_set(err, SB_E_USAGE, 0, "path '%s' is too long", path);
    return 0;
}

static int
keygen_write_only(const char *secret_path, const char *pub_path, struct sb_error *err)
{
    struct sb_key *key = NULL;
    if (access(pub_path, F_OK) == 0)
        return sb_error_set(err, SB_E_CANTCREATE, 0,
                            "public key file '%s' already exists; refusing to overwrite a key",
                            pub_path);
    if (sb_key_new_sealed_pair(&key, err) < 0)
        return -1;
    int rc = sb_keyfile_write_new(secret_path, key, err);
    if (rc == 0 && (rc = sb_pubfile_write_new(pub_path, key, err)) < 0)
        unlink(secret_path); /* a secret without its public half is of no use */
    char id[33];
    sb_key_id(key, id);
    sb_key_free(key);
    if (rc < 0)
        return -1;
    printf("wrote a recipient key pair (key id %.8s...):\n"
           "  secret key '%s' (mode 0600): reads snapshots; keep it OFF the app server\n"
           "  public key '%s': the config's \"recipient\" on the app server\n",
           id, secret_path, pub_path);
    fprintf(stderr,
            "snapback: keep a copy of '%s' safe: without it no snapshot sealed to '%s' "
            "can be read\n",
            secret_path, pub_path);
    return 0;
}

int
cmd_keygen(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"key-file", required_argument, NULL, 'k'},
        {"write-only", no_argument, NULL, 'w'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *key_file = NULL;
    bool write_only = false;
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "+k:wh", longopts, "keygen", &help_keygen, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 'k')
            key_file = optarg;
        if (c == 'w')
            write_only = true;
    }
    if (optind < cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0, "keygen: unexpected argument '%s'",
                            cli->argv[optind]);
    if (write_only) {
        char secret[4096], pub[4096];
        if (key_file) {
            snprintf(secret, sizeof(secret), "%s", key_file);
            if (swap_suffix(key_file, ".key", ".pub", pub, sizeof(pub), err) < 0)
                return -1;
        } else if (cli->cfg && cli->cfg->recipient) {
            snprintf(pub, sizeof(pub), "%s", cli->cfg->recipient);
            if (swap_suffix(pub, ".pub", ".key", secret, sizeof(secret), err) < 0)
                return -1;
        } else {
            return sb_error_set(err, SB_E_USAGE, 0,
                                "keygen --write-only: give --key-file NAME.key (or --config with "
                                "a recipient)");
        }
        return keygen_write_only(secret, pub, err);
    }
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
    if (!key_file && cli->cfg->recipient) {
        /* a write-only host: the repository is sealed to the recipient's public key */
        struct sb_key *pub = NULL;
        if (sb_pubfile_load(cli->cfg->recipient, &pub, err) < 0)
            return -1;
        struct sb_repo_meta meta;
        int rc = sb_repo_init(cli->cfg, pub, &meta, err);
        sb_key_free(pub);
        if (rc < 0)
            return -1;
        printf("created repository '%s' (id %s), sealed to recipient '%s': this host can write "
               "snapshots but not read them\n",
               cli->cfg->repository.url, meta.id, cli->cfg->recipient);
        struct sb_error jerr = SB_ERROR_INIT;
        if (sb_journal_append(cli->cfg->state_dir, "init", "ok", NULL, meta.id, 0, &jerr) < 0)
            sb_warn("%s", jerr.msg);
        return 0;
    }
    if (!key_file)
        return sb_error_set(err, SB_E_CONFIG, 0, "init: this config has no key_file");
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

const struct sb_cmd_help help_key = {
    "snapback key rotate (--new-key-file FILE [--write-only] | --recipient FILE.pub)",
    "Makes a new key the repository's current key. New snapshots are written with it; the\n"
    "old key is recorded in snapback.json as retired, and snapshots written with it stay\n"
    "readable with it: add it to the config's old_key_files. --new-key-file writes a new\n"
    "symmetric key (or, with --write-only, a recipient pair FILE + its .pub); --recipient\n"
    "takes a public key made elsewhere (keygen --write-only on a safe machine). A release\n"
    "stored under the old key is stored again under the new one by the next snapshot.\n"
    "Then point key_file (or recipient) at the new key. Works in both key modes and from one\n"
    "to the other (e.g. a symmetric repository becoming write-only).",
    "  --new-key-file FILE  create the new key here (mode 0600; never overwrites)\n"
    "  --write-only         the new key is a recipient pair (FILE and FILE's .pub)\n"
    "  --recipient FILE     the new key is this existing public key (write-only hosts)\n",
};

int
cmd_key(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"new-key-file", required_argument, NULL, 'n'},
        {"write-only", no_argument, NULL, 'w'},
        {"recipient", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *new_file = NULL, *recipient = NULL;
    bool write_only = false;
    int c;
    if (cli->argc < 2 || strcmp(cli->argv[1], "rotate") != 0)
        return sb_error_set(err, SB_E_USAGE, 0,
                            "key: the only subcommand is 'rotate'; see 'snapback key --help'");
    struct sb_cli sub = *cli; /* the options follow the subcommand */
    sub.argc--;
    sub.argv++;
    optind = 1;
    while ((c = sb_cli_getopt(&sub, "+n:wr:h", longopts, "key", &help_key, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 'n')
            new_file = optarg;
        if (c == 'w')
            write_only = true;
        if (c == 'r')
            recipient = optarg;
    }
    if (optind < sub.argc)
        return sb_error_set(err, SB_E_USAGE, 0, "key rotate: unexpected argument '%s'",
                            sub.argv[optind]);
    if (!new_file == !recipient || (recipient && write_only))
        return sb_error_set(err, SB_E_USAGE, 0,
                            "key rotate: give --new-key-file FILE [--write-only], or "
                            "--recipient FILE.pub");
    struct sb_repo *repo = NULL;
    struct sb_key *key = NULL;
    char pub[4096] = "";
    bool created = false;
    int rc = -1;
    if (sb_repo_open(cli->cfg, &repo, err) < 0)
        goto out;
    if (!repo->key_is_current) {
        sb_error_set(err, SB_E_CONFIG, 0,
                     "key rotate: the configured key is not the repository's current key");
        goto out;
    }
    if (recipient) {
        if (sb_pubfile_load(recipient, &key, err) < 0)
            goto out;
    } else if (write_only) {
        if (swap_suffix(new_file, ".key", ".pub", pub, sizeof(pub), err) < 0 ||
            keygen_write_only(new_file, pub, err) < 0 || sb_keyfile_load(new_file, &key, err) < 0)
            goto out;
        created = true;
    } else {
        if (write_new_key(new_file, err) < 0)
            goto out;
        created = true;
        if (sb_keyfile_load(new_file, &key, err) < 0)
            goto out;
    }
    char old_id[33];
    memcpy(old_id, repo->meta.key_id, sizeof(old_id));
    if (sb_repo_rotate_key(repo, key, err) < 0)
        goto out;
    created = false; /* in use now */
    const char *old_file = cli->cfg->key_file ? cli->cfg->key_file : cli->cfg->recipient;
    printf("repository '%s': the current key is now %.8s... (key mode %d); key %.8s... is "
           "retired\n",
           repo->store->display, repo->meta.key_id, repo->meta.key_mode, old_id);
    printf("next: in '%s' set %s to '%s'", cli->cfg->source_path,
           key->mode == SB_KEY_SEALED ? "\"recipient\"" : "\"key_file\"",
           recipient                    ? recipient
           : key->mode == SB_KEY_SEALED ? pub
                                        : new_file);
    if (key->mode == SB_KEY_SEALED && cli->cfg->key_file)
        printf(" (and remove key_file)");
    printf(", and where snapshots are read, add the old key '%s' to \"old_key_files\"\n", old_file);
    struct sb_error jerr = SB_ERROR_INIT;
    if (sb_journal_append(cli->cfg->state_dir, "key-rotate", "ok", NULL, repo->meta.key_id, 0,
                          &jerr) < 0)
        sb_warn("%s", jerr.msg);
    rc = 0;
out:
    if (created && new_file) { /* nothing was encrypted with it */
        unlink(new_file);
        if (pub[0])
            unlink(pub);
    }
    sb_key_free(key);
    sb_repo_free(repo);
    return rc;
}
