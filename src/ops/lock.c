/* The app lock: flock(2) on state_dir/lock, so every command that changes something runs
 * alone, and a holder that died releases it with its last file descriptor (no stale pid
 * files: restic #1450, borg #2101). The holder writes its pid and command into the file so a
 * second run can say who holds it. */
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

struct sb_lock {
    int fd;
};

int
sb_lock_acquire(const char *state_dir, const char *command, struct sb_lock **out,
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
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK) {
            sb_error_set(err, SB_E_IO, errno, "cannot lock '%s'", path);
            goto out;
        }
        /* The holder writes its pid just after locking: give it a moment if we came in
         * between. */
        char holder[128] = "";
        ssize_t n = 0;
        for (int tries = 0; tries < 50 && n <= 0; tries++) {
            n = pread(fd, holder, sizeof(holder) - 1, 0);
            if (n <= 0) {
                struct timespec ts = {0, 2 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        holder[n > 0 ? n : 0] = '\0';
        char *nl = strchr(holder, '\n');
        if (nl)
            *nl = '\0';
        sb_error_set(err, SB_E_TEMPFAIL, 0,
                     "another snapback run holds the lock '%s' (%s); this run did nothing, "
                     "retry when it has finished",
                     path, *holder ? holder : "pid unknown");
        goto out;
    }
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
