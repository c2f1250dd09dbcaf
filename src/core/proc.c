/* Child processes for the database sources: fork + exec with pipes, a poll loop that drains
 * stderr while stdout (or stdin) is streamed, and reaping that never leaves a zombie. The
 * tail of stderr goes into error messages ("pg_dump exited with status 1: FATAL: ..."). */
#include "snapback/proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "snapback/core.h"

#define TAIL_MAX 4096

extern char **environ;

struct proc_in {
    struct sb_istream base;
    struct sb_proc *proc;
};

struct proc_out {
    struct sb_ostream base;
    struct sb_proc *proc;
};

struct sb_proc {
    pid_t pid;
    char name[64];
    int data_fd; /* stdout (read) or stdin (write) of the child, -1 when closed */
    int err_fd;  /* stderr (and stdout for SB_PROC_NONE) of the child */
    enum sb_proc_io io;
    char tail[TAIL_MAX];
    size_t tail_len;
    bool reaped;
    int status;
    struct proc_in in;
    struct proc_out out;
};

static void
tail_append(struct sb_proc *p, const char *buf, size_t len)
{
    if (len >= TAIL_MAX - 1) {
        buf += len - (TAIL_MAX - 1);
        len = TAIL_MAX - 1;
    }
    if (p->tail_len + len > TAIL_MAX - 1) {
        size_t drop = p->tail_len + len - (TAIL_MAX - 1);
        memmove(p->tail, p->tail + drop, p->tail_len - drop);
        p->tail_len -= drop;
    }
    memcpy(p->tail + p->tail_len, buf, len);
    p->tail_len += len;
    p->tail[p->tail_len] = '\0';
}

/* Reads what stderr has; returns -1 at its end. */
static int
drain_err(struct sb_proc *p)
{
    char buf[4096];
    for (;;) {
        ssize_t n = read(p->err_fd, buf, sizeof(buf));
        if (n > 0) {
            tail_append(p, buf, (size_t)n);
            continue;
        }
        if (n == 0) {
            close(p->err_fd);
            p->err_fd = -1;
            return -1;
        }
        if (errno == EINTR)
            continue;
        return 0; /* EAGAIN */
    }
}

/* Waits until data_fd is ready for `events`, draining stderr meanwhile.
 *
 * The first wait after progress is paced: 1 ms, then the caller tries again. The kernel
 * reports a pipe readable as soon as the child wrote anything, and writable as soon as the
 * child read one page, so with a child that writes or reads 4-8 KiB at a time (pg_dump,
 * pg_restore, psql) a plain poll wakes us, and the child, for every 4-8 KiB: 125,000 switches
 * for 500 MiB, 1-1.8 s of system time per PostgreSQL restore on the cores the server needs.
 * After 1 ms the pipe holds (or has room for) up to ~1 MiB, so each wake-up moves a batch.
 * When the child is slow (still nothing after the 1 ms), the next wait is a plain poll, so
 * an idle child costs nothing. */
#define PACE_MS 1

static int
wait_ready(struct sb_proc *p, short events, int attempt, struct sb_error *err)
{
    if (attempt == 0) {
        struct pollfd fds[1] = {{p->err_fd, POLLIN, 0}};
        int r = poll(fds, p->err_fd >= 0 ? 1 : 0, PACE_MS);
        if (r < 0 && errno != EINTR)
            return sb_error_set(err, SB_E_IO, errno, "cannot wait for %s", p->name);
        if (r < 0 && sb_check_stop(err) < 0)
            return -1;
        if (r > 0 && fds[0].revents)
            drain_err(p);
        return 0;
    }
    for (;;) {
        struct pollfd fds[2] = {{p->data_fd, events, 0}, {p->err_fd, POLLIN, 0}};
        nfds_t n = p->err_fd >= 0 ? 2 : 1;
        int r = poll(fds, n, -1);
        if (r < 0) {
            if (errno == EINTR) {
                if (sb_check_stop(err) < 0)
                    return -1;
                continue;
            }
            return sb_error_set(err, SB_E_IO, errno, "cannot wait for %s", p->name);
        }
        if (n == 2 && fds[1].revents)
            drain_err(p);
        if (fds[0].revents)
            return 0;
    }
}

static int
proc_read(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    struct sb_proc *p = ((struct proc_in *)s)->proc;
    if (p->data_fd < 0) {
        *got = 0;
        return 0;
    }
    int waits = 0;
    for (;;) {
        ssize_t n = read(p->data_fd, buf, cap);
        if (n >= 0) {
            if (n == 0) {
                close(p->data_fd);
                p->data_fd = -1;
            }
            *got = (size_t)n;
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return sb_error_set(err, SB_E_IO, errno, "cannot read the output of %s", p->name);
        if (wait_ready(p, POLLIN, waits++, err) < 0)
            return -1;
    }
}

static void
proc_ifree(struct sb_istream *s)
{
    (void)s; /* owned by the sb_proc */
}

static const struct sb_istream_ops proc_in_ops = {.read = proc_read, .free = proc_ifree};

static int
proc_write(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    struct sb_proc *p = ((struct proc_out *)s)->proc;
    const unsigned char *ptr = data;
    int waits = 0;
    while (len > 0) {
        if (p->data_fd < 0)
            return sb_error_set(err, SB_E_IO, 0, "%s closed its input", p->name);
        ssize_t n = write(p->data_fd, ptr, len);
        if (n >= 0) {
            ptr += n;
            len -= (size_t)n;
            waits = 0;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EPIPE) {
            /* the child stopped reading: its exit status and stderr say why */
            int status = 0;
            close(p->data_fd);
            p->data_fd = -1;
            struct sb_error perr = SB_ERROR_INIT;
            if (sb_proc_finish(p, &perr) < 0) {
                *err = perr;
                return -1;
            }
            (void)status;
            return sb_error_set(err, SB_E_IO, 0, "%s stopped reading its input", p->name);
        }
        if (errno != EAGAIN)
            return sb_error_set(err, SB_E_IO, errno, "cannot write to %s", p->name);
        if (wait_ready(p, POLLOUT, waits++, err) < 0)
            return -1;
    }
    return 0;
}

static int
proc_oclose(struct sb_ostream *s, struct sb_error *err)
{
    (void)err;
    struct sb_proc *p = ((struct proc_out *)s)->proc;
    if (p->data_fd >= 0) {
        close(p->data_fd);
        p->data_fd = -1;
    }
    return 0;
}

static void
proc_ofree(struct sb_ostream *s)
{
    (void)s;
}

static const struct sb_ostream_ops proc_out_ops = {
    .write = proc_write, .close = proc_oclose, .free = proc_ofree};

static int
set_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

static int
spawn(const char *const *argv, const char *const *env_extra, enum sb_proc_io io, int stdout_fd,
      int fd3, struct sb_proc **out, struct sb_error *err)
{
    int data_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, exec_pipe[2] = {-1, -1};
    struct sb_proc *p = calloc(1, sizeof(*p));
    char **envp = NULL;
    int rc = -1;
    if (!p)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    p->data_fd = p->err_fd = -1;
    p->io = io;
    p->pid = -1;
    /* messages name the program, not the directory it was run from */
    const char *base = strrchr(argv[0], '/');
    snprintf(p->name, sizeof(p->name), "%s", base ? base + 1 : argv[0]);
    p->in.base.ops = &proc_in_ops;
    p->in.proc = p;
    p->out.base.ops = &proc_out_ops;
    p->out.proc = p;

    size_t nenv = 0, nextra = 0;
    while (environ[nenv])
        nenv++;
    while (env_extra && env_extra[nextra])
        nextra++;
    envp = calloc(nenv + nextra + 1, sizeof(*envp));
    if (!envp) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    size_t ne = 0;
    for (size_t idx = 0; idx < nextra; idx++)
        envp[ne++] = (char *)env_extra[idx];
    for (size_t idx = 0; idx < nenv; idx++) {
        /* an extra entry overrides the inherited one of the same name */
        const char *eq = strchr(environ[idx], '=');
        size_t klen = eq ? (size_t)(eq - environ[idx]) : strlen(environ[idx]);
        bool overridden = false;
        for (size_t x = 0; x < nextra; x++)
            if (strncmp(env_extra[x], environ[idx], klen) == 0 && env_extra[x][klen] == '=')
                overridden = true;
        if (!overridden)
            envp[ne++] = environ[idx];
    }

    if ((io != SB_PROC_NONE && pipe2(data_pipe, O_CLOEXEC) < 0) || pipe2(err_pipe, O_CLOEXEC) < 0 ||
        pipe2(exec_pipe, O_CLOEXEC) < 0) {
        sb_error_set(err, SB_E_INTERNAL, errno, "cannot create pipes for %s", argv[0]);
        goto out;
    }
    /* A dump streams hundreds of MiB through the data pipe: 1 MiB instead of 64 KiB cuts the
     * context switches between the client and us (best effort: the limit is
     * /proc/sys/fs/pipe-max-size). */
    if (io != SB_PROC_NONE)
        (void)fcntl(data_pipe[0], F_SETPIPE_SZ, 1 << 20);
    p->pid = fork();
    if (p->pid < 0) {
        sb_error_set(err, SB_E_INTERNAL, errno, "cannot start %s", argv[0]);
        goto out;
    }
    if (p->pid == 0) {
        /* child: only async-signal-safe calls until exec */
        int devnull = open("/dev/null", O_RDWR);
        if (io == SB_PROC_STDOUT) {
            dup2(devnull, STDIN_FILENO);
            dup2(data_pipe[1], STDOUT_FILENO);
        } else if (io == SB_PROC_STDIN) {
            dup2(data_pipe[0], STDIN_FILENO);
            if (stdout_fd >= 0) {
                /* another child's stdin, which our side had made non-blocking */
                dup2(stdout_fd, STDOUT_FILENO);
                int fl = fcntl(STDOUT_FILENO, F_GETFL);
                if (fl >= 0)
                    fcntl(STDOUT_FILENO, F_SETFL, fl & ~O_NONBLOCK);
            } else {
                dup2(err_pipe[1], STDOUT_FILENO);
            }
        } else {
            dup2(devnull, STDIN_FILENO);
            dup2(err_pipe[1], STDOUT_FILENO);
        }
        dup2(err_pipe[1], STDERR_FILENO);
        if (fd3 == 3)
            fcntl(3, F_SETFD, 0); /* keep it across exec */
        else if (fd3 >= 0)
            dup2(fd3, 3);
        signal(SIGPIPE, SIG_DFL);
        sb_restore_nofile();
        execvpe(argv[0], (char *const *)argv, envp);
        int e = errno;
        ssize_t ignored = write(exec_pipe[1], &e, sizeof(e));
        (void)ignored;
        _exit(127);
    }
    close(exec_pipe[1]);
    exec_pipe[1] = -1;
    int child_errno = 0;
    ssize_t n;
    do
        n = read(exec_pipe[0], &child_errno, sizeof(child_errno));
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(child_errno)) {
        int status;
        waitpid(p->pid, &status, 0);
        p->pid = -1;
        if (child_errno == ENOENT)
            sb_error_set(err, SB_E_UNAVAILABLE, 0, "'%s' is not installed or not in PATH", argv[0]);
        else
            sb_error_set(err, SB_E_UNAVAILABLE, child_errno, "cannot run '%s'", argv[0]);
        goto out;
    }
    if (io == SB_PROC_STDOUT) {
        p->data_fd = data_pipe[0];
        data_pipe[0] = -1;
    } else if (io == SB_PROC_STDIN) {
        p->data_fd = data_pipe[1];
        data_pipe[1] = -1;
    }
    p->err_fd = err_pipe[0];
    err_pipe[0] = -1;
    if ((p->data_fd >= 0 && set_nonblock(p->data_fd) < 0) || set_nonblock(p->err_fd) < 0) {
        sb_error_set(err, SB_E_INTERNAL, errno, "cannot configure pipes for %s", argv[0]);
        goto out;
    }
    rc = 0;
out:
    /* the pipe ends the parent keeps were moved into p and set to -1 here */
    for (int idx = 0; idx < 2; idx++) {
        if (data_pipe[idx] >= 0)
            close(data_pipe[idx]);
        if (err_pipe[idx] >= 0)
            close(err_pipe[idx]);
        if (exec_pipe[idx] >= 0)
            close(exec_pipe[idx]);
    }
    free(envp);
    if (rc < 0)
        sb_proc_free(p);
    else
        *out = p;
    return rc;
}

int
sb_proc_spawn(const char *const *argv, const char *const *env_extra, enum sb_proc_io io,
              struct sb_proc **out, struct sb_error *err)
{
    return spawn(argv, env_extra, io, -1, -1, out, err);
}

int
sb_proc_spawn_fd3(const char *const *argv, const char *const *env_extra, enum sb_proc_io io,
                  int fd3, struct sb_proc **out, struct sb_error *err)
{
    return spawn(argv, env_extra, io, -1, fd3, out, err);
}

int
sb_proc_spawn_into(const char *const *argv, const char *const *env_extra, struct sb_proc *next,
                   struct sb_proc **out, struct sb_error *err)
{
    if (next->io != SB_PROC_STDIN || next->data_fd < 0)
        return sb_error_set(err, SB_E_INTERNAL, 0, "%s: no stdin to write into", next->name);
    if (spawn(argv, env_extra, SB_PROC_STDIN, next->data_fd, -1, out, err) < 0)
        return -1;
    /* the first child holds next's stdin now: next sees the end when the first exits */
    close(next->data_fd);
    next->data_fd = -1;
    return 0;
}

struct sb_istream *
sb_proc_stdout(struct sb_proc *proc)
{
    return &proc->in.base;
}

struct sb_ostream *
sb_proc_stdin(struct sb_proc *proc)
{
    return &proc->out.base;
}

const char *
sb_proc_output(const struct sb_proc *proc)
{
    return proc->tail;
}

/* How far back last_line looks for the line with the error. */
#define TAIL_LINES_SEARCHED 8

static bool
line_has_error(const char *line, size_t len)
{
    static const char *const marks[] = {"error:", "ERROR", "FATAL", "Error:"};
    for (size_t idx = 0; idx < sizeof(marks) / sizeof(marks[0]); idx++) {
        size_t ml = strlen(marks[idx]);
        for (size_t at = 0; at + ml <= len; at++)
            if (!memcmp(line + at, marks[idx], ml))
                return true;
    }
    return false;
}

/* The last two non-empty lines of the captured output, joined, for messages (clients often
 * say what failed on one line and why on the next), from an earlier line on when that one
 * says what failed and the last two do not (up to TAIL_LINES_SEARCHED back). */
static void
last_line(const struct sb_proc *p, char *out, size_t cap)
{
    size_t end = p->tail_len, start = end, from = 0;
    bool found = false;
    for (int lines = 0; lines < TAIL_LINES_SEARCHED && start > 0; lines++) {
        while (start > 0 && (p->tail[start - 1] == '\n' || p->tail[start - 1] == '\r' ||
                             p->tail[start - 1] == ' '))
            start--;
        if (lines == 0)
            end = start;
        size_t line_end = start;
        while (start > 0 && p->tail[start - 1] != '\n')
            start--;
        if (lines < 2)
            from = start;
        /* the last line that says what failed, when it is not among the last two (pg_dump's
         * "error: query failed: ERROR: ..." comes before a HINT and a detail) */
        if (!found && line_has_error(p->tail + start, line_end - start)) {
            found = true;
            if (start < from)
                from = start;
        }
    }
    start = from;
    size_t len = end - start, pos = 0;
    for (size_t idx = 0; idx < len && pos + 1 < cap; idx++) {
        char c = p->tail[start + idx];
        if (c == '\n' || c == '\t' || c == '\r') {
            if (pos > 0 && out[pos - 1] != ' ')
                out[pos++] = ' ';
        } else {
            out[pos++] = c;
        }
    }
    out[pos] = '\0';
}

int
sb_proc_finish(struct sb_proc *p, struct sb_error *err)
{
    if (p->data_fd >= 0 && p->io == SB_PROC_STDIN) {
        close(p->data_fd);
        p->data_fd = -1;
    }
    /* read whatever the child still writes, so it can exit */
    while (p->err_fd >= 0 || (p->data_fd >= 0 && p->io == SB_PROC_STDOUT)) {
        if (p->data_fd >= 0 && p->io == SB_PROC_STDOUT) {
            char buf[65536];
            ssize_t n = read(p->data_fd, buf, sizeof(buf));
            if (n == 0) {
                close(p->data_fd);
                p->data_fd = -1;
                continue;
            }
            if (n > 0)
                continue;
            if (errno != EAGAIN && errno != EINTR) {
                close(p->data_fd);
                p->data_fd = -1;
                continue;
            }
        }
        struct pollfd fds[2];
        nfds_t n = 0;
        if (p->err_fd >= 0)
            fds[n++] = (struct pollfd){p->err_fd, POLLIN, 0};
        if (p->data_fd >= 0 && p->io == SB_PROC_STDOUT)
            fds[n++] = (struct pollfd){p->data_fd, POLLIN, 0};
        if (poll(fds, n, -1) < 0 && errno != EINTR)
            break;
        if (p->err_fd >= 0)
            drain_err(p);
    }
    if (!p->reaped && p->pid > 0) {
        while (waitpid(p->pid, &p->status, 0) < 0 && errno == EINTR)
            ;
        p->reaped = true;
    }
    char line[768];
    last_line(p, line, sizeof(line));
    if (WIFSIGNALED(p->status))
        return sb_error_set(err, SB_E_IO, 0, "%s was killed by signal %d%s%s", p->name,
                            WTERMSIG(p->status), *line ? ": " : "", line);
    if (WIFEXITED(p->status) && WEXITSTATUS(p->status) != 0)
        return sb_error_set(err, SB_E_IO, 0, "%s exited with status %d%s%s", p->name,
                            WEXITSTATUS(p->status), *line ? ": " : "", line);
    return 0;
}

void
sb_proc_free(struct sb_proc *p)
{
    if (!p)
        return;
    if (p->data_fd >= 0)
        close(p->data_fd);
    if (p->err_fd >= 0)
        close(p->err_fd);
    if (p->pid > 0 && !p->reaped) {
        kill(p->pid, SIGTERM);
        for (int tries = 0; tries < 50; tries++) {
            if (waitpid(p->pid, &p->status, WNOHANG) == p->pid) {
                p->reaped = true;
                break;
            }
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (!p->reaped) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &p->status, 0);
        }
    }
    free(p);
}

int
sb_proc_run(const char *const *argv, const char *const *env_extra, char **output,
            struct sb_error *err)
{
    struct sb_proc *p = NULL;
    *output = NULL;
    if (sb_proc_spawn(argv, env_extra, SB_PROC_NONE, &p, err) < 0)
        return -1;
    int rc = sb_proc_finish(p, err);
    *output = sb_strdup(p->tail);
    sb_proc_free(p);
    if (rc == 0 && !*output)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    return rc;
}

char *
sb_proc_which(const char *program, const char *path_env)
{
    if (!path_env || strchr(program, '/'))
        return access(program, X_OK) == 0 ? sb_strdup(program) : NULL;
    char *copy = sb_strdup(path_env);
    char *found = NULL;
    char *save = NULL;
    for (char *dir = copy ? strtok_r(copy, ":", &save) : NULL; dir && !found;
         dir = strtok_r(NULL, ":", &save)) {
        char *full = sb_path_join(dir, program);
        if (full && access(full, X_OK) == 0)
            found = full;
        else
            free(full);
    }
    free(copy);
    return found;
}

bool
sb_proc_available(const char *program)
{
    char *full = sb_proc_which(program, getenv("PATH"));
    bool found = full != NULL;
    free(full);
    return found;
}
