/* snapback's entry point: global options, the command table (git's builtin idea), the flags
 * main enforces for each command (config, lock), and the mapping of errors to sysexits codes.
 * Global options may stand before or after the command name. */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/hooks.h"
#include "snapback/ops.h"
#include "snapback/pipeline.h"
#include "snapback_version.h"

#define NEEDS_CONFIG 1u
#define TAKES_LOCK 2u
#define OPTIONAL_CONFIG 4u
#define LOCK_MAY_WAIT 8u /* takes --wait[=SECONDS]: wait for the lock instead of exit 75 */

/* --wait without a value waits this long for the lock; --wait=SECONDS up to the max. */
#define LOCK_WAIT_DEFAULT_S 300
#define LOCK_WAIT_MAX_S 86400

struct sb_command {
    const char *name;
    sb_cmd_fn fn;
    unsigned flags;
    const struct sb_cmd_help *help;
};

static const struct sb_command commands[] = {
    {"keygen", cmd_keygen, OPTIONAL_CONFIG, &help_keygen},
    {"init", cmd_init, NEEDS_CONFIG | TAKES_LOCK, &help_init},
    {"key", cmd_key, NEEDS_CONFIG | TAKES_LOCK, &help_key},
    {"snapshot", cmd_snapshot, NEEDS_CONFIG | TAKES_LOCK | LOCK_MAY_WAIT, &help_snapshot},
    {"list", cmd_list, NEEDS_CONFIG, &help_list},
    {"show", cmd_show, NEEDS_CONFIG, &help_show},
    {"ls", cmd_ls, NEEDS_CONFIG, &help_ls},
    {"restore", cmd_restore, NEEDS_CONFIG | TAKES_LOCK, &help_restore},
    {"verify", cmd_verify, NEEDS_CONFIG, &help_verify},
    {"config", cmd_config, NEEDS_CONFIG, &help_config},
    {"rollback", cmd_rollback, NEEDS_CONFIG | TAKES_LOCK | LOCK_MAY_WAIT, &help_rollback},
    {"releases", cmd_releases, NEEDS_CONFIG, &help_releases},
    {"prune", cmd_prune, NEEDS_CONFIG | TAKES_LOCK, &help_prune},
    {"status", cmd_status, NEEDS_CONFIG, &help_status},
    {"daemon", cmd_daemon, NEEDS_CONFIG, &help_daemon},
    {"push", cmd_push, NEEDS_CONFIG | TAKES_LOCK, &help_push},
    {"remote", cmd_remote, NEEDS_CONFIG, &help_remote},
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))
#define DEFAULT_CONFIG "/etc/snapback/snapback.json"

static void
print_main_help(FILE *f)
{
    fprintf(f, "usage: snapback [global options] <command> [options]\n\n"
               "Encrypted, compressed snapshots of a deployed release and its data, with\n"
               "restore and verify.\n\ncommands:\n");
    for (size_t idx = 0; idx < COMMAND_COUNT; idx++)
        fprintf(f, "  %-10s %s\n", commands[idx].name, commands[idx].help->usage + 9);
    fprintf(f, "\nglobal options:\n"
               "  --config FILE        config file (default $SNAPBACK_CONFIG, then " DEFAULT_CONFIG
               ")\n"
               "  --quiet              only errors on stderr\n"
               "  --verbose            debug messages\n"
               "  --log-format FORMAT  text (default) or json (one object per line)\n"
               "  --no-progress        no progress output\n"
               "  --key FILE           the key to read with instead of key_file/recipient (a\n"
               "                       write-only host's secret key; also $SNAPBACK_KEY_FILE)\n"
               "  --version            print the version\n"
               "  --help               this help; 'snapback COMMAND --help' for a command\n"
               "\nexit codes: 0 ok, 64 usage, 65 corrupt or tampered data or wrong key,\n"
               "66 no such snapshot or file, 69 unavailable, 73 cannot create, 74 I/O error,\n"
               "75 locked by another run (retry later), 77 permission, 78 bad config.\n");
}

void
sb_cli_print_help(const char *name, const struct sb_cmd_help *help)
{
    (void)name;
    printf("usage: %s\n\n%s\n", help->usage, help->description);
    if (help->options)
        printf("\noptions:\n%s", help->options);
    printf("\nglobal options (--config, --quiet, --verbose, --log-format, --no-progress, --key) "
           "are accepted too; see 'snapback --help'.\n");
}

int
sb_cli_getopt(struct sb_cli *cli, const char *shortopts, const struct option *longopts,
              const char *name, const struct sb_cmd_help *help, struct sb_error *err)
{
    opterr = 0;
    int c = getopt_long(cli->argc, cli->argv, shortopts, longopts, NULL);
    if (c == 'h') {
        sb_cli_print_help(name, help);
        return 'h';
    }
    if (c == '?' || c == ':') {
        const char *arg = optind > 0 && optind <= cli->argc ? cli->argv[optind - 1] : "?";
        if (optopt && c == ':')
            sb_error_set(err, SB_E_USAGE, 0,
                         "%s: option '%s' needs an argument; see 'snapback "
                         "%s --help'",
                         name, arg, name);
        else
            sb_error_set(err, SB_E_USAGE, 0, "%s: unknown option '%s'; see 'snapback %s --help'",
                         name, arg, name);
        return '?';
    }
    return c;
}

void
sb_cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

void
sb_cli_job_done(struct sb_cli *cli, const char *event, int rc, const char *snapshot,
                const char *detail, double duration_s, uint64_t bytes, uint64_t objects,
                const struct sb_error *err)
{
    const struct sb_config *cfg = cli->cfg;
    struct sb_error e = SB_ERROR_INIT;
    unsigned warnings = sb_log_warning_count();
    char counted[96];
    if (rc == 0 && !detail && warnings) {
        snprintf(counted, sizeof(counted), "%u warning(s); see the log of this run", warnings);
        detail = counted;
    }
    if (sb_journal_append(cfg->state_dir, event, rc == 0 ? "ok" : "failed", snapshot,
                          rc == 0 ? detail : err->msg, duration_s, &e) < 0)
        sb_warn("%s", e.msg);
    sb_error_clear(&e);
    if (sb_metrics_record(cfg, event, rc == 0, duration_s, bytes, objects, warnings, &e) < 0)
        sb_warn("%s", e.msg);
    if (rc < 0 && cfg->hooks.on_error.present) {
        struct sb_hook_env env = {"on_error", cfg->app, snapshot, NULL, err->msg};
        char ev[64];
        snprintf(ev, sizeof(ev), "%s_failed", event);
        env.event = ev;
        sb_error_clear(&e);
        if (sb_hook_run(&cfg->hooks.on_error, &env, cfg->hooks.timeout_s, &e) < 0)
            sb_warn("%s", e.msg);
    }
}

int
sb_cli_layout_path(char *path, const char *cmd, const char *what, struct sb_error *err)
{
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') /* a trailing '/' is tolerated */
        path[--len] = '\0';
    if (sb_path_is_clean_relative(path))
        return 0;
    return sb_error_set(err, SB_E_USAGE, 0,
                        "%s: %s'%s' must be a relative path in the restored layout "
                        "(releases/NAME/..., current/..., or a shared path), without '.', '..' "
                        "or empty components",
                        cmd, what, path);
}

int
sb_cli_optind(void)
{
    return optind;
}

/* Removes the global options from argv (wherever they stand before "--"). */
static int
parse_globals(int *argc, char **argv, struct sb_cli *cli, bool *show_help, bool *show_version,
              struct sb_error *err)
{
    int out = 1;
    bool after_dashdash = false;
    const char *log_format = NULL;
    for (int idx = 1; idx < *argc; idx++) {
        char *a = argv[idx];
        if (after_dashdash || a[0] != '-') {
            argv[out++] = a;
            continue;
        }
        if (!strcmp(a, "--")) {
            after_dashdash = true;
            argv[out++] = a;
        } else if (!strcmp(a, "--config") || !strcmp(a, "--log-format") || !strcmp(a, "--key")) {
            if (idx + 1 >= *argc)
                return sb_error_set(err, SB_E_USAGE, 0, "option '%s' needs an argument", a);
            if (!strcmp(a, "--config")) {
                cli->config_path = argv[++idx];
                cli->config_explicit = true;
            } else if (!strcmp(a, "--key")) {
                cli->key_path = argv[++idx];
            } else {
                log_format = argv[++idx];
            }
        } else if (!strncmp(a, "--key=", 6)) {
            cli->key_path = a + 6;
        } else if (!strncmp(a, "--config=", 9)) {
            cli->config_path = a + 9;
            cli->config_explicit = true;
        } else if (!strncmp(a, "--log-format=", 13)) {
            log_format = a + 13;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            cli->quiet = true;
        } else if (!strcmp(a, "--verbose") || !strcmp(a, "-v")) {
            cli->verbose = true;
        } else if (!strcmp(a, "--no-progress")) {
            cli->progress = false;
        } else if (!strcmp(a, "--version")) {
            *show_version = true;
        } else if ((!strcmp(a, "--help") || !strcmp(a, "-h")) && out == 1) {
            *show_help = true; /* before the command: the main help */
        } else {
            argv[out++] = a;
        }
    }
    argv[out] = NULL;
    *argc = out;
    if (log_format) {
        if (!strcmp(log_format, "json"))
            cli->json_logs = true;
        else if (strcmp(log_format, "text") != 0)
            return sb_error_set(err, SB_E_USAGE, 0,
                                "--log-format: unknown format '%s'; use text or json", log_format);
    }
    if (cli->quiet && cli->verbose)
        return sb_error_set(err, SB_E_USAGE, 0, "--quiet and --verbose exclude each other");
    return 0;
}

/* --key / SNAPBACK_KEY_FILE, made absolute (restore changes directory while it works). */
static int
set_read_key(struct sb_config *cfg, const char *path, struct sb_error *err)
{
    char cwd[PATH_MAX];
    if (path[0] == '/')
        cfg->read_key_file = sb_strdup(path);
    else if (getcwd(cwd, sizeof(cwd)))
        cfg->read_key_file = sb_path_join(cwd, path);
    else
        return sb_error_set(err, SB_E_IO, errno, "cannot resolve key path '%s'", path);
    if (!cfg->read_key_file)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    return 0;
}

/* Takes --wait / --wait=SECONDS out of the command's arguments (before "--"): main needs it
 * before the command runs, because the lock is taken first. */
static int
take_wait_option(struct sb_cli *cli, const char *name, int *wait_s, struct sb_error *err)
{
    int out = 1;
    bool after_dashdash = false;
    for (int idx = 1; idx < cli->argc; idx++) {
        char *a = cli->argv[idx];
        after_dashdash = after_dashdash || !strcmp(a, "--");
        if (after_dashdash || strncmp(a, "--wait", 6) != 0 || (a[6] != '\0' && a[6] != '=')) {
            cli->argv[out++] = a;
            continue;
        }
        if (a[6] == '\0') {
            *wait_s = LOCK_WAIT_DEFAULT_S;
            continue;
        }
        uint64_t v = 0;
        if (sb_parse_u64(a + 7, &v) < 0 || v < 1 || v > LOCK_WAIT_MAX_S)
            return sb_error_set(err, SB_E_USAGE, 0,
                                "%s: --wait=SECONDS needs a whole number of seconds from 1 to "
                                "%d, not '%s'",
                                name, LOCK_WAIT_MAX_S, a + 7);
        *wait_s = (int)v;
    }
    cli->argv[out] = NULL;
    cli->argc = out;
    return 0;
}

static int
run(int argc, char **argv, struct sb_error *err)
{
    struct sb_cli cli = {0};
    bool show_help = false, show_version = false;
    cli.progress = isatty(STDERR_FILENO);
    if (parse_globals(&argc, argv, &cli, &show_help, &show_version, err) < 0) {
        return -1;
    }
    /* the progress line: only for a person watching a terminal */
    sb_progress_enable(cli.progress && !cli.quiet && !cli.json_logs);
    sb_log_setup(cli.verbose ? SB_LOG_DEBUG
                 : cli.quiet ? SB_LOG_WARN
                             : SB_LOG_INFO,
                 cli.json_logs ? SB_LOG_JSON : SB_LOG_TEXT);
    if (show_version) {
        printf("snapback %s\n", SNAPBACK_VERSION);
        return 0;
    }
    if (show_help || argc < 2) {
        print_main_help(show_help ? stdout : stderr);
        if (show_help)
            return 0;
        return sb_error_set(err, SB_E_USAGE, 0, "no command given");
    }
    const struct sb_command *cmd = NULL;
    if (!strcmp(argv[1], "help")) {
        if (argc < 3) {
            print_main_help(stdout);
            return 0;
        }
        for (size_t idx = 0; idx < COMMAND_COUNT; idx++)
            if (!strcmp(argv[2], commands[idx].name)) {
                sb_cli_print_help(commands[idx].name, commands[idx].help);
                return 0;
            }
        return sb_error_set(err, SB_E_USAGE, 0, "unknown command '%s'; see 'snapback --help'",
                            argv[2]);
    }
    for (size_t idx = 0; idx < COMMAND_COUNT; idx++)
        if (!strcmp(argv[1], commands[idx].name))
            cmd = &commands[idx];
    if (!cmd)
        return sb_error_set(err, SB_E_USAGE, 0, "unknown command '%s'; see 'snapback --help'",
                            argv[1]);
    cli.argc = argc - 1;
    cli.argv = argv + 1;
    for (int idx = 1; idx < cli.argc; idx++)
        if (!strcmp(cli.argv[idx], "--help") || !strcmp(cli.argv[idx], "-h")) {
            sb_cli_print_help(cmd->name, cmd->help);
            return 0;
        }

    if (!cli.config_path) {
        const char *env = getenv("SNAPBACK_CONFIG");
        cli.config_path = env && *env ? env : DEFAULT_CONFIG;
    }
    int rc = -1;
    int lock_wait_s = 0;
    struct sb_lock *lock = NULL;
    if ((cmd->flags & LOCK_MAY_WAIT) && take_wait_option(&cli, cmd->name, &lock_wait_s, err) < 0)
        return -1;
    if ((cmd->flags & NEEDS_CONFIG) ||
        ((cmd->flags & OPTIONAL_CONFIG) && (cli.config_explicit || getenv("SNAPBACK_CONFIG")))) {
        if (sb_config_load(cli.config_path, &cli.cfg, err) < 0)
            goto out;
        const char *key = cli.key_path ? cli.key_path : getenv("SNAPBACK_KEY_FILE");
        if (key && *key && set_read_key(cli.cfg, key, err) < 0)
            goto out;
        sb_log_set_context(cli.cfg->app, NULL);
    }
    if (cmd->flags & TAKES_LOCK) {
        if (sb_lock_acquire(cli.cfg->state_dir, cmd->name, lock_wait_s, &lock, err) < 0)
            goto out;
    }
    rc = cmd->fn(&cli, err);
out:
    sb_lock_release(lock);
    sb_config_free(cli.cfg);
    return rc;
}

int
main(int argc, char **argv)
{
    /* Keys live in memory: keep them out of core dumps. Files that hold secrets are created
     * with explicit modes (0600/0700), so the umask is left as the user set it. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    sb_raise_nofile();
    /* A client (pg_restore, ...) that exits early must give EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    /* SIGINT/SIGTERM/SIGHUP: finish the current step and clean up instead of dying with
     * partial files around (zstd's rule). No SA_RESTART: blocking calls return EINTR. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = sb_request_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    struct sb_error err = SB_ERROR_INIT;
    if (sb_crypto_init(&err) < 0) {
        fprintf(stderr, "snapback: error: %s\n", err.msg);
        return 70;
    }
    if (run(argc, argv, &err) < 0) {
        if (err.code == SB_OK)
            err.code = SB_E_INTERNAL;
        sb_log(SB_LOG_ERROR, "error", "%s", err.msg);
        return sb_error_exit_status(err.code);
    }
    return 0;
}
