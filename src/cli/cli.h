/* The command-line layer: the only one that prints to stdout or exits. Each command is a
 * function in its own file, registered in main.c's table with the flags main enforces. */
#ifndef SNAPBACK_CLI_H
#define SNAPBACK_CLI_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>

#include "snapback/config.h"
#include "snapback/error.h"

struct sb_cli {
    const char *config_path; /* resolved: --config, $SNAPBACK_CONFIG or the default */
    bool config_explicit;
    const char *key_path;  /* --key FILE */
    struct sb_config *cfg; /* loaded by main for NEEDS_CONFIG commands */
    bool quiet, verbose, json_logs, progress;
    int argc; /* the command's arguments; argv[0] is the command name */
    char **argv;
};

struct sb_cmd_help {
    const char *usage;       /* "snapback list [--json]" */
    const char *description; /* one paragraph */
    const char *options;     /* option lines, or NULL */
};

typedef int (*sb_cmd_fn)(struct sb_cli *cli, struct sb_error *err);

/* Parses the command's options with getopt_long; prints help for -h/--help (returns 1 then,
 * meaning "done, exit 0"). Unknown options are SB_E_USAGE. */
#define SB_CLI_HELP_SHOWN 1

void sb_cli_print_help(const char *name, const struct sb_cmd_help *help);

int cmd_keygen(struct sb_cli *cli, struct sb_error *err);
int cmd_init(struct sb_cli *cli, struct sb_error *err);
int cmd_snapshot(struct sb_cli *cli, struct sb_error *err);
int cmd_list(struct sb_cli *cli, struct sb_error *err);
int cmd_show(struct sb_cli *cli, struct sb_error *err);
int cmd_restore(struct sb_cli *cli, struct sb_error *err);
int cmd_ls(struct sb_cli *cli, struct sb_error *err);
int cmd_verify(struct sb_cli *cli, struct sb_error *err);
int cmd_config(struct sb_cli *cli, struct sb_error *err);
int cmd_rollback(struct sb_cli *cli, struct sb_error *err);
int cmd_releases(struct sb_cli *cli, struct sb_error *err);
extern const struct sb_cmd_help help_rollback, help_releases;
int cmd_prune(struct sb_cli *cli, struct sb_error *err);
int cmd_status(struct sb_cli *cli, struct sb_error *err);
extern const struct sb_cmd_help help_prune, help_status;
int cmd_daemon(struct sb_cli *cli, struct sb_error *err);
extern const struct sb_cmd_help help_daemon;
int cmd_push(struct sb_cli *cli, struct sb_error *err);
extern const struct sb_cmd_help help_push;
int cmd_remote(struct sb_cli *cli, struct sb_error *err);
int cmd_key(struct sb_cli *cli, struct sb_error *err);
extern const struct sb_cmd_help help_key;

extern const struct sb_cmd_help help_keygen, help_init, help_snapshot, help_list, help_show,
    help_restore, help_verify, help_config, help_ls;
extern const struct sb_cmd_help help_remote;

/* Shared by commands: getopt_long over cli->argv with a "-h/--help" entry added. Returns
 * the option char, -1 at the end, '?' after setting err for an unknown/missing argument. */
struct option;
int sb_cli_getopt(struct sb_cli *cli, const char *shortopts, const struct option *longopts,
                  const char *name, const struct sb_cmd_help *help, struct sb_error *err);
/* Writes s as a JSON string literal. */
void sb_cli_json_string(FILE *f, const char *s);
/* After a job: the journal line, the metrics file, and the on_error hook when rc < 0. */
void sb_cli_job_done(struct sb_cli *cli, const char *event, int rc, const char *snapshot,
                     const char *detail, double duration_s, uint64_t bytes, uint64_t objects,
                     const struct sb_error *err);
/* The remaining positional arguments after option parsing. */
int sb_cli_optind(void);
/* A PATH of restore --path or ls, in the restored layout: a trailing '/' cut off (in place);
 * SB_E_USAGE, "CMD: WHAT'PATH' must be ...", when it is not a clean relative path. */
int sb_cli_layout_path(char *path, const char *cmd, const char *what, struct sb_error *err);

#endif
