/* Hooks (DESIGN §9): a string runs under /bin/sh -c, an array is exec'd directly. Each gets
 * SNAPBACK_EVENT, SNAPBACK_APP, SNAPBACK_SNAPSHOT, SNAPBACK_RELEASE and SNAPBACK_ERROR in its
 * environment, runs in its own process group (killed whole on timeout), and its output goes
 * to the log line by line. */
#ifndef SNAPBACK_HOOKS_H
#define SNAPBACK_HOOKS_H

#include "snapback/config.h"

struct sb_hook_env {
    const char *event; /* "before_rollback", "health_check", ... */
    const char *app;
    const char *snapshot; /* may be NULL */
    const char *release;  /* may be NULL */
    const char *error;    /* may be NULL */
};

/* Runs the hook if present (absent: returns 0). A non-zero exit, a signal or the timeout is
 * an SB_E_IO error naming the hook and its last output line. */
int sb_hook_run(const struct sb_command_spec *hook, const struct sb_hook_env *env, int timeout_s,
                struct sb_error *err);

#endif
