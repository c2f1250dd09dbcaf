/* The error record and the table that maps error codes to exit statuses. */
#include "snapback/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const int exit_status[] = {
#define X(name, status, label) status,
#include "snapback/errors.def"
#undef X
};

static const char *const labels[] = {
#define X(name, status, label) label,
#include "snapback/errors.def"
#undef X
};

int
sb_error_set(struct sb_error *err, enum sb_code code, int sys_errno, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    if (sys_errno) {
        size_t len = strlen(err->msg);
        snprintf(err->msg + len, sizeof(err->msg) - len, ": %s", strerror(sys_errno));
    }
    err->code = code;
    err->sys_errno = sys_errno;
    return -1;
}

int
sb_error_wrap(struct sb_error *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[SB_ERROR_MSG_MAX];
    char old[SB_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof(old));
    /* prefix ": " old, cut at the buffer's end */
    size_t pos = strlen(prefix);
    memcpy(err->msg, prefix, pos);
    const char *parts[2] = {": ", old};
    for (int part = 0; part < 2; part++) {
        size_t len = strlen(parts[part]);
        if (pos + len > sizeof(err->msg) - 1)
            len = sizeof(err->msg) - 1 - pos;
        memcpy(err->msg + pos, parts[part], len);
        pos += len;
    }
    err->msg[pos] = '\0';
    if (err->code == SB_OK)
        err->code = SB_E_INTERNAL;
    return -1;
}

void
sb_error_clear(struct sb_error *err)
{
    if (!err)
        return;
    err->code = SB_OK;
    err->sys_errno = 0;
    err->msg[0] = '\0';
}

int
sb_error_exit_status(enum sb_code code)
{
    if ((int)code < 0 || code >= SB_CODE_COUNT)
        return 70;
    return exit_status[code];
}

const char *
sb_error_label(enum sb_code code)
{
    if ((int)code < 0 || code >= SB_CODE_COUNT)
        return "unknown error";
    return labels[code];
}

enum sb_code
sb_error_from_errno(int sys_errno)
{
    switch (sys_errno) {
    case ENOENT:
    case ENOTDIR:
        return SB_E_NOTFOUND;
    case EACCES:
    case EPERM:
    case EROFS:
        return SB_E_PERM;
    case EEXIST:
        return SB_E_CANTCREATE;
    default:
        return SB_E_IO;
    }
}
