/* remote trust: the one way a new SFTP host key gets into known_hosts (DESIGN §10: no
 * trust-on-first-use). It shows the key's type and SHA256 fingerprint, as OpenSSH prints them,
 * so that the operator can compare them with the server's, asks on the terminal (as ssh does:
 * /dev/tty, not stdin) unless --yes, and appends the key. A key that CHANGED is never
 * replaced here: the old line has to be removed by hand first. */
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "snapback/store.h"

const struct sb_cmd_help help_remote = {
    "snapback remote trust [--yes]",
    "Connects to the SFTP server of repository.url (without logging in), prints the type\n"
    "and SHA256 fingerprint of its host key, asks on the terminal whether to trust it and\n"
    "adds it to repository.known_hosts (default ~/.ssh/known_hosts; the file is created 0600\n"
    "and its directory 0700 when missing). Compare the fingerprint with the server's own:\n"
    "ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub on the server. A key that differs from\n"
    "the one already known is refused: remove the old line first (ssh-keygen -R), and so is\n"
    "a key on a @revoked line. Without repository.known_hosts, /etc/ssh/ssh_known_hosts is\n"
    "read too (as ssh does): a key found there is already trusted.",
    "  --yes, -y   add the key without asking (for provisioning scripts that checked the\n"
    "              fingerprint some other way)\n",
};

/* Asks on the controlling terminal; false for anything but y/yes, and when there is none. */
static bool
confirm(const char *question, bool *no_tty)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    *no_tty = fd < 0;
    if (fd < 0)
        return false;
    FILE *tty = fdopen(fd, "r+");
    if (!tty) {
        close(fd);
        *no_tty = true;
        return false;
    }
    fprintf(tty, "%s [y/N] ", question);
    fflush(tty);
    char answer[16] = "";
    bool yes = false;
    if (fgets(answer, sizeof(answer), tty)) {
        answer[strcspn(answer, "\r\n")] = '\0';
        yes = !strcmp(answer, "y") || !strcmp(answer, "Y") || !strcmp(answer, "yes") ||
              !strcmp(answer, "YES") || !strcmp(answer, "Yes");
    }
    fclose(tty);
    return yes;
}

static int
remote_trust(struct sb_cli *cli, bool assume_yes, struct sb_error *err)
{
    const struct sb_config *cfg = cli->cfg;
    if (!cfg->repository.is_sftp)
        return sb_error_set(err, SB_E_CONFIG, 0,
                            "remote trust: repository '%s' is not an SFTP repository; host keys "
                            "only matter for sftp://user@host/path",
                            cfg->repository.url);
    struct sb_sftp_hostkey hk;
    if (sb_sftp_hostkey_fetch(cfg, &hk, err) < 0)
        return sb_error_wrap(err, "remote trust");
    int rc = -1;
    printf("%s presents an %s host key:\n  %s\n", hk.server, hk.type, hk.fingerprint);
    fflush(stdout);
    if (hk.revoked_line) {
        sb_error_set(err, SB_E_PERM, 0,
                     "remote trust: this key is marked @revoked in '%s' line %u: it is not "
                     "added. Check that this is the right server and ask its administrator for "
                     "its new key",
                     hk.found_in, hk.revoked_line);
        goto out;
    }
    if (hk.known) {
        printf("it is already trusted in '%s'; nothing to do\n", hk.found_in);
        rc = 0;
        goto out;
    }
    if (hk.changed) {
        sb_error_set(err, SB_E_PERM, 0,
                     "remote trust: WARNING: '%s' already has ANOTHER %s key for '%s': the "
                     "host key has CHANGED. Someone may be intercepting the connection, or the "
                     "server was reinstalled. Check the new fingerprint with the server's "
                     "administrator; if it is right, remove the old key with ssh-keygen -R '%s' "
                     "-f '%s' and run 'snapback remote trust' again",
                     hk.found_in, hk.type, hk.name, hk.name, hk.found_in);
        goto out;
    }
    if (!assume_yes) {
        char question[4500];
        bool no_tty = false;
        snprintf(question, sizeof(question), "add it to '%s'?", hk.known_hosts);
        if (!confirm(question, &no_tty)) {
            if (no_tty)
                sb_error_set(err, SB_E_USAGE, 0,
                             "remote trust: no terminal to ask on; compare the fingerprint "
                             "with the server's (ssh-keygen -lf "
                             "/etc/ssh/ssh_host_ed25519_key.pub there) and run 'snapback "
                             "remote trust --yes'");
            else
                sb_error_set(err, SB_E_PERM, 0,
                             "remote trust: the host key of '%s' was not added; snapback keeps "
                             "refusing to connect to it",
                             hk.server);
            goto out;
        }
    }
    if (sb_sftp_hostkey_trust(&hk, err) < 0) {
        sb_error_wrap(err, "remote trust: cannot add the key to '%s'", hk.known_hosts);
        goto out;
    }
    printf("added the %s key of '%s' to '%s'\n", hk.type, hk.name, hk.known_hosts);
    rc = 0;
out:
    sb_sftp_hostkey_release(&hk);
    return rc;
}

int
cmd_remote(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"yes", no_argument, NULL, 'y'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool assume_yes = false;
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "yh", longopts, "remote", &help_remote, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 'y')
            assume_yes = true;
    }
    int pos = sb_cli_optind();
    if (pos + 1 != cli->argc || strcmp(cli->argv[pos], "trust") != 0)
        return sb_error_set(err, SB_E_USAGE, 0,
                            "remote: the only subcommand is 'trust'; see 'snapback remote --help'");
    return remote_trust(cli, assume_yes, err);
}
