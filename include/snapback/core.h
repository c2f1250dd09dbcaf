/* Core helpers that include nothing else of ours: logging, file system helpers that make
 * writes atomic, time and hex formatting. */
#ifndef SNAPBACK_CORE_H
#define SNAPBACK_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "snapback/error.h"

/* --- logging (stderr; text or one JSON object per line) --- */
enum sb_log_level { SB_LOG_DEBUG, SB_LOG_INFO, SB_LOG_WARN, SB_LOG_ERROR };
enum sb_log_format { SB_LOG_TEXT, SB_LOG_JSON };

void sb_log_setup(enum sb_log_level min_level, enum sb_log_format format);
/* Context added to every JSON line (copied; NULL clears). */
void sb_log_set_context(const char *app, const char *snapshot);
void sb_log(enum sb_log_level level, const char *event, const char *fmt, ...) SB_PRINTF(3, 4);
#define sb_debug(...) sb_log(SB_LOG_DEBUG, NULL, __VA_ARGS__)
#define sb_info(...) sb_log(SB_LOG_INFO, NULL, __VA_ARGS__)
#define sb_warn(...) sb_log(SB_LOG_WARN, NULL, __VA_ARGS__)
/* Warnings this process has logged so far (also those --quiet kept off stderr): the journal
 * and the metrics report them for a run that succeeded with warnings. */
unsigned sb_log_warning_count(void);
bool sb_log_enabled(enum sb_log_level level);

/* --- the progress line (stderr; only once the CLI enabled it: a TTY, no --no-progress,
 * --quiet or JSON logs). Objects report their bytes themselves (format/object.c). --- */
void sb_progress_enable(bool on);
bool sb_progress_enabled(void);
/* The size the next object written is expected to reach (0: unknown), for % and ETA. */
void sb_progress_expect(uint64_t total);
void sb_progress_begin(const char *what, uint64_t total);
void sb_progress_add(uint64_t bytes);
void sb_progress_end(void);
/* Removes the line (the logger calls it before printing a message). */
void sb_progress_clear(void);

/* --- file system --- */
/* mkdir -p with mode for created dirs; each created dir's parent is fsynced. */
int sb_mkdir_p(const char *path, mode_t mode, struct sb_error *err);
/* fsync a directory (after a rename or create inside it). */
int sb_fsync_dir(const char *dir, struct sb_error *err);
/* fsync the directory that contains path. */
int sb_fsync_parent(const char *path, struct sb_error *err);
/* Writes data to path atomically: path.tmp-XXXXXX, fsync, rename, fsync the dir. */
int sb_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         struct sb_error *err);
/* Reads a whole (small) file; *out is NUL-terminated and malloc'd. max bounds its size. */
int sb_read_file(const char *path, size_t max, char **out, size_t *out_len, struct sb_error *err);
/* rm -rf that never follows symlinks. A missing path is not an error. */
int sb_remove_tree(const char *path, struct sb_error *err);
/* Joins a and b with one '/'; returns malloc'd string or NULL on out of memory. */
char *sb_path_join(const char *a, const char *b);
/* True when rel is a relative path without "." or ".." components and without empty ones. */
bool sb_path_is_clean_relative(const char *rel);

/* --- interruption: SIGINT/SIGTERM set a flag that long loops check, so a run that is
 * asked to stop goes through its normal cleanup (partial files removed, children reaped) --- */
void sb_request_stop(int signo);
/* -1 with SB_E_TEMPFAIL "interrupted by signal N" once a stop was requested. */
int sb_check_stop(struct sb_error *err);

/* --- test hooks: never for production. Only with SNAPBACK_TEST_HOOKS=1 in the environment:
 * SNAPBACK_TEST_KILL_AT=NAME:N makes the N-th call of sb_test_kill_point(NAME) in this
 * process SIGKILL it, so crash tests hit every step of an operation deterministically
 * (tests/integration/prune_crash.sh). Without both variables it does nothing. --- */
void sb_test_kill_point(const char *name);
/* Test hook, never for production: with SNAPBACK_TEST_HOOKS=1 and
 * SNAPBACK_TEST_PAUSE_AT=NAME:FILE, sb_test_pause_point(NAME) creates FILE and waits until the
 * test removes it (at most 60 s), so a test can change things at that exact point. */
void sb_test_pause_point(const char *name);
/* Whether SNAPBACK_TEST_PAUSE_AT is set with the hooks on (read once): lets a per-file pause
 * point ("entry:PATH", the archive walk) cost nothing but this test in production. */
bool sb_test_pause_armed(void);

/* Test hook, never for production: with SNAPBACK_TEST_HOOKS=1 and
 * SNAPBACK_TEST_FAIL_AT=NAME:N:ERRNO (ERRNO a number), the N-th call of
 * sb_test_fail_point(NAME) (that one only) returns true with errno set to ERRNO, so a test
 * can make a system call fail where no real fault can be arranged (lseek SEEK_DATA on a file
 * of the tree, readdir of a directory being walked). Costs one test of a flag read once. */
bool sb_test_fail_point(const char *name);

/* --- descriptors: a tree walk holds one open directory per level of depth (up to about
 * 2,000 for paths below PATH_MAX), more than the usual soft limit of 1024. main raises the
 * soft RLIMIT_NOFILE to 8192 (or the hard limit); children get the limit back before exec,
 * as Go does for its children, so nothing they run (select() users) sees the raise. --- */
void sb_raise_nofile(void);
/* In a child between fork and exec: one system call (prlimit), no lock or allocation. */
void sb_restore_nofile(void);

/* --- misc --- */
void sb_hex_encode(const unsigned char *in, size_t len, char *out /* 2*len+1 */);
int sb_hex_decode(const char *in, unsigned char *out, size_t out_len);
/* "2026-11-24T14:30:00Z" */
void sb_format_time_iso(time_t t, char out[32]);
/* Parses the format above; -1 when malformed. */
int sb_parse_time_iso(const char *text, time_t *out);
/* "1.5 MiB" */
void sb_format_size(uint64_t bytes, char out[32]);
char *sb_strdup(const char *s);
/* Monotonic seconds. */
double sb_now_monotonic(void);
/* strtol-style: whole string an unsigned decimal that fits. */
int sb_parse_u64(const char *s, uint64_t *out);

#endif
