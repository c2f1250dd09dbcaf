/* Child processes (pg_dump, pg_restore, mysqldump, psql...): spawned with argv (never a
 * shell) and an environment that carries credentials (PGPASSFILE, ...), never argv. The
 * child's stdout (or stdin) is a stream in the pipeline; its stderr is read at the same time
 * so it can never block the child, and its last lines are kept for error messages. The child
 * is always reaped; one killed or exiting non-zero is an error naming its status. */
#ifndef SNAPBACK_PROC_H
#define SNAPBACK_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include "snapback/stream.h"

struct sb_proc;

enum sb_proc_io {
    SB_PROC_STDOUT, /* read the child's stdout (sb_proc_stdout) */
    SB_PROC_STDIN,  /* write the child's stdin (sb_proc_stdin) */
    SB_PROC_NONE,   /* neither: stdout is captured like stderr */
};

/* Starts argv[0] (looked up in PATH) with extra environment entries "K=V" (may be NULL). */
int sb_proc_spawn(const char *const *argv, const char *const *env_extra, enum sb_proc_io io,
                  struct sb_proc **out, struct sb_error *err);
/* Like sb_proc_spawn, with fd3 open as the child's file descriptor 3 (e.g. the read end of
 * a pipe the child reads as /dev/fd/3). */
int sb_proc_spawn_fd3(const char *const *argv, const char *const *env_extra, enum sb_proc_io io,
                      int fd3, struct sb_proc **out, struct sb_error *err);
/* A pipeline without a shell: starts argv with its stdin ours (sb_proc_stdin) and its stdout
 * the stdin of next (started with SB_PROC_STDIN, whose stdin we then no longer hold). */
int sb_proc_spawn_into(const char *const *argv, const char *const *env_extra, struct sb_proc *next,
                       struct sb_proc **out, struct sb_error *err);
/* The child's stdout as an istream (borrowed; valid until sb_proc_finish). */
struct sb_istream *sb_proc_stdout(struct sb_proc *proc);
/* The child's stdin as an ostream (borrowed); closing it closes the pipe. */
struct sb_ostream *sb_proc_stdin(struct sb_proc *proc);
/* Waits for the child (closing its pipes), then: exit 0 -> 0; otherwise -1 with
 * "NAME exited with status N: <last stderr line>" or "NAME was killed by signal S". */
int sb_proc_finish(struct sb_proc *proc, struct sb_error *err);
/* Kills (SIGTERM, then SIGKILL) and reaps a child that is no longer wanted; frees it. */
void sb_proc_free(struct sb_proc *proc);
/* The captured tail of stderr (and of stdout for SB_PROC_NONE), NUL-terminated. */
const char *sb_proc_output(const struct sb_proc *proc);
/* Runs a command to completion and returns its captured output (malloc'd) in *output. */
int sb_proc_run(const char *const *argv, const char *const *env_extra, char **output,
                struct sb_error *err);
/* True when the program is found in PATH. */
bool sb_proc_available(const char *program);
/* The first executable `program` in path_env (a PATH; a name with a '/' is taken as it is),
 * malloc'd, or NULL. */
char *sb_proc_which(const char *program, const char *path_env);

#endif
