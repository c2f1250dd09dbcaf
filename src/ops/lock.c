/* The app lock: flock(2) on state_dir/lock, so every command that changes something runs
 * alone, and a holder that died releases it with its last file descriptor (no stale pid
 * files: restic #1450, borg #2101). The holder writes its pid and command into the file so a
 * second run can say who holds it. A run may wait for the lock (snapshot/rollback --wait) up
 * to a bound: it polls, so an interrupt (SIGINT/SIGTERM) still ends the wait at once. */
#include "snapback/ops.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "snapback/core.h"

#define LOCK_POLL_MS 50

struct sb_lock {
    int fd;
};

/* Who holds the lock, as its holder wrote it ("pid N, command"). */
static void
read_holder(int fd, char *holder, size_t cap)
{
    /* The holder writes its pid just after locking: give it a moment if we came in between. */
    ssize_t n = 0;
    for (int tries = 0; tries < 50 && n <= 0; tries++) {
        n = pread(fd, holder, cap - 1, 0);
        if (n <= 0) {
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    holder[n > 0 ? n : 0] = '\0';
    char *nl = strchr(holder, '\n');
    if (nl)
        *nl = '\0';
    if (!*holder)
        snprintf(holder, cap, "pid unknown");
}

int
sb_lock_acquire(const char *state_dir, const char *command, int wait_s, struct sb_lock **out,
                struct sb_error *err)
{
    if (sb_mkdir_p(state_dir, 0700, err) < 0)
        return sb_error_wrap(err, "state_dir");
    char *path = sb_path_join(state_dir, "lock");
    if (!path)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    int rc = -1;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        sb_error_set(err, sb_error_from_errno(errno), errno, "cannot open lock file '%s'", path);
        goto out;
    }
    double deadline = sb_now_monotonic() + (wait_s > 0 ? wait_s : 0);
    bool told = false;
    while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK) {
            sb_error_set(err, SB_E_IO, errno, "cannot lock '%s'", path);
            goto out;
        }
        char holder[128];
        bool expired = sb_now_monotonic() >= deadline;
        if (expired || sb_check_stop(NULL) < 0) {
            read_holder(fd, holder, sizeof(holder));
            if (wait_s > 0 && expired)
                sb_error_set(err, SB_E_TEMPFAIL, 0,
                             "another snapback run still holds the lock '%s' (%s) after "
                             "waiting %d s; this run did nothing, retry when it has finished "
                             "or wait longer (--wait=SECONDS)",
                             path, holder, wait_s);
            else if (wait_s > 0)
                sb_error_set(err, SB_E_TEMPFAIL, 0,
                             "interrupted while waiting for the lock '%s' (held by %s); this "
                             "run did nothing",
                             path, holder);
            else
                sb_error_set(err, SB_E_TEMPFAIL, 0,
                             "another snapback run holds the lock '%s' (%s); this run did "
                             "nothing, retry when it has finished (or use --wait)",
                             path, holder);
            goto out;
        }
        if (!told) {
            read_holder(fd, holder, sizeof(holder));
            sb_info("waiting up to %d s for the lock '%s' (held by %s)", wait_s, path, holder);
            told = true;
        }
        struct timespec ts = {0, LOCK_POLL_MS * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (told)
        sb_info("lock '%s' acquired after waiting", path);
    char info[128];
    int len = snprintf(info, sizeof(info), "pid %ld, %s\n", (long)getpid(), command);
    if (ftruncate(fd, 0) < 0 || pwrite(fd, info, (size_t)len, 0) != len) {
        sb_error_set(err, SB_E_IO, errno, "cannot write lock file '%s'", path);
        goto out;
    }
    struct sb_lock *lock = malloc(sizeof(*lock));
    if (!lock) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    lock->fd = fd;
    fd = -1;
    *out = lock;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

void
sb_lock_release(struct sb_lock *lock)
{
    if (!lock)
        return;
    if (ftruncate(lock->fd, 0) < 0) {
        /* the lock is released by close() anyway; a stale line only names a dead pid */
    }
    close(lock->fd);
    free(lock);
}
