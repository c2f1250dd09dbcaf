/* Running hooks: fork, a new process group, exec (/bin/sh -c for strings), output logged
 * line by line as it comes, a deadline after which the whole group is killed, and the child
 * always reaped. */
#include "snapback/hooks.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "snapback/core.h"

static void
log_lines(const char *event, char *buf, size_t *len, char *last, size_t last_cap, bool flush)
{
    size_t start = 0;
    for (size_t idx = 0; idx < *len; idx++) {
        if (buf[idx] != '\n')
            continue;
        buf[idx] = '\0';
        if (idx > start) {
            sb_info("hook %s: %s", event, buf + start);
            snprintf(last, last_cap, "%s", buf + start);
        }
        start = idx + 1;
    }
    if (flush && start < *len) {
        buf[*len] = '\0';
        sb_info("hook %s: %s", event, buf + start);
        snprintf(last, last_cap, "%s", buf + start);
        start = *len;
    }
    memmove(buf, buf + start, *len - start);
    *len -= start;
}

int
sb_hook_run(const struct sb_command_spec *hook, const struct sb_hook_env *env, int timeout_s,
            struct sb_error *err)
{
    if (!hook || !hook->present)
        return 0;
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return sb_error_set(err, SB_E_INTERNAL, errno, "hook %s: cannot create a pipe", env->event);
    const char *name = hook->shell ? hook->shell : hook->argv[0];
    sb_info("running hook %s: %s", env->event, name);
    pid_t pid = fork();
    if (pid < 0) {
        close(pipefd[0]);
        close(pipefd[1]);
        return sb_error_set(err, SB_E_INTERNAL, errno, "hook %s: cannot fork", env->event);
    }
    if (pid == 0) {
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, STDIN_FILENO);
        dup2(pipefd[1], STDOUT_FILENO);
        dup2(pipefd[1], STDERR_FILENO);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sb_restore_nofile();
        setenv("SNAPBACK_EVENT", env->event, 1);
        setenv("SNAPBACK_APP", env->app ? env->app : "", 1);
        setenv("SNAPBACK_SNAPSHOT", env->snapshot ? env->snapshot : "", 1);
        setenv("SNAPBACK_RELEASE", env->release ? env->release : "", 1);
        setenv("SNAPBACK_ERROR", env->error ? env->error : "", 1);
        if (hook->shell)
            execl("/bin/sh", "sh", "-c", hook->shell, (char *)NULL);
        else
            execvp(hook->argv[0], hook->argv);
        fprintf(stderr, "cannot run '%s': %s\n", name, strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid); /* also from here, so the group exists before any kill */
    close(pipefd[1]);
    char buf[8193], last[512] = "";
    size_t len = 0;
    double deadline = sb_now_monotonic() + timeout_s;
    bool timed_out = false, interrupted = false;
    for (;;) {
        double left = deadline - sb_now_monotonic();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        struct pollfd pfd = {pipefd[0], POLLIN, 0};
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r < 0 && errno == EINTR) {
            struct sb_error stop = SB_ERROR_INIT;
            if (sb_check_stop(&stop) < 0) {
                interrupted = true;
                break;
            }
            continue;
        }
        if (r <= 0)
            continue;
        ssize_t n = read(pipefd[0], buf + len, sizeof(buf) - 1 - len);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        len += (size_t)n;
        log_lines(env->event, buf, &len, last, sizeof(last), len == sizeof(buf) - 1);
    }
    log_lines(env->event, buf, &len, last, sizeof(last), true);
    close(pipefd[0]);
    if (timed_out || interrupted)
        kill(-pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (timed_out || interrupted)
        kill(-pid, SIGKILL); /* children that outlived the shell */
    if (timed_out)
        return sb_error_set(err, SB_E_IO, 0, "hook %s ('%s') timed out after %d s and was killed",
                            env->event, name, timeout_s);
    if (interrupted)
        return sb_check_stop(err);
    if (WIFSIGNALED(status))
        return sb_error_set(err, SB_E_IO, 0, "hook %s ('%s') was killed by signal %d", env->event,
                            name, WTERMSIG(status));
    if (WEXITSTATUS(status) != 0)
        return sb_error_set(err, SB_E_IO, 0, "hook %s ('%s') exited with status %d%s%s", env->event,
                            name, WEXITSTATUS(status), *last ? ": " : "", last);
    return 0;
}
