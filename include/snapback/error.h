/* Errors: every fallible function returns 0 or -1 and fills a struct sb_error with a code
 * from errors.def (which maps to a sysexits status) and a message that says what failed, on
 * what, and what to do. Context is prepended on the way up with sb_error_wrap(). */
#ifndef SNAPBACK_ERROR_H
#define SNAPBACK_ERROR_H

#include <stddef.h>

enum sb_code {
#define X(name, status, label) name,
#include "snapback/errors.def"
#undef X
    SB_CODE_COUNT
};

#define SB_ERROR_MSG_MAX 1024

struct sb_error {
    enum sb_code code;
    int sys_errno; /* errno at the failure, 0 when none */
    char msg[SB_ERROR_MSG_MAX];
};

#define SB_ERROR_INIT                                                                              \
    {                                                                                              \
        SB_OK, 0,                                                                                  \
        {                                                                                          \
            0                                                                                      \
        }                                                                                          \
    }

#if defined(__GNUC__)
#define SB_PRINTF(fmt_idx, arg_idx) __attribute__((format(printf, fmt_idx, arg_idx)))
#else
#define SB_PRINTF(fmt_idx, arg_idx)
#endif

/* Sets err (when not NULL) and returns -1. When sys_errno is non-zero, ": strerror" is appended. */
int sb_error_set(struct sb_error *err, enum sb_code code, int sys_errno, const char *fmt, ...)
    SB_PRINTF(4, 5);
/* Prepends "context: " to the message, keeping the code. Returns -1. */
int sb_error_wrap(struct sb_error *err, const char *fmt, ...) SB_PRINTF(2, 3);
void sb_error_clear(struct sb_error *err);
int sb_error_exit_status(enum sb_code code);
const char *sb_error_label(enum sb_code code);
/* Maps errno of a failed file operation to a code: ENOENT -> NOTFOUND, EACCES -> PERM, ... */
enum sb_code sb_error_from_errno(int sys_errno);

#endif
