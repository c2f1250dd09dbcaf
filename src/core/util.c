/* Small formatting and parsing helpers: hex, ISO-8601 UTC times, sizes, decimals. */
#include "snapback/core.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

void
sb_hex_encode(const unsigned char *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t idx = 0; idx < len; idx++) {
        out[2 * idx] = digits[in[idx] >> 4];
        out[2 * idx + 1] = digits[in[idx] & 15];
    }
    out[2 * len] = '\0';
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
sb_hex_decode(const char *in, unsigned char *out, size_t out_len)
{
    if (strlen(in) != 2 * out_len)
        return -1;
    for (size_t idx = 0; idx < out_len; idx++) {
        int hi = hex_value(in[2 * idx]), lo = hex_value(in[2 * idx + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[idx] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

void
sb_format_time_iso(time_t t, char out[32])
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
sb_parse_time_iso(const char *text, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end)
        return -1;
    *out = timegm(&tm);
    return 0;
}

void
sb_format_size(uint64_t bytes, char out[32])
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    int unit = 0;
    while (v >= 1024 && unit < 4) {
        v /= 1024;
        unit++;
    }
    if (unit == 0)
        snprintf(out, 32, "%llu B", (unsigned long long)bytes);
    else
        snprintf(out, 32, "%.1f %s", v, units[unit]);
}

char *
sb_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t len = strlen(s);
    char *out = malloc(len + 1);
    if (out)
        memcpy(out, s, len + 1);
    return out;
}

double
sb_now_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
sb_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s < '0' || *s > '9')
        return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        return -1;
    *out = v;
    return 0;
}

void
sb_test_kill_point(const char *name)
{
    static uint64_t calls;
    const char *hooks = getenv("SNAPBACK_TEST_HOOKS");
    const char *spec = getenv("SNAPBACK_TEST_KILL_AT");
    if (!hooks || strcmp(hooks, "1") != 0 || !spec)
        return;
    size_t len = strlen(name);
    uint64_t want = 0;
    if (strncmp(spec, name, len) != 0 || spec[len] != ':' || sb_parse_u64(spec + len + 1, &want))
        return;
    if (++calls == want)
        raise(SIGKILL);
}

void
sb_test_pause_point(const char *name)
{
    const char *hooks = getenv("SNAPBACK_TEST_HOOKS");
    const char *spec = getenv("SNAPBACK_TEST_PAUSE_AT");
    if (!hooks || strcmp(hooks, "1") != 0 || !spec)
        return;
    size_t len = strlen(name);
    if (strncmp(spec, name, len) != 0 || spec[len] != ':' || !spec[len + 1])
        return;
    const char *file = spec + len + 1;
    int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    close(fd);
    /* bounded: a test that dies never leaves a snapshot hanging for long */
    for (int waited = 0; waited < 3000 && access(file, F_OK) == 0; waited++)
        usleep(20000);
}

bool
sb_test_pause_armed(void)
{
    static int armed = -1;
    if (armed < 0) {
        const char *hooks = getenv("SNAPBACK_TEST_HOOKS");
        armed = hooks && strcmp(hooks, "1") == 0 && getenv("SNAPBACK_TEST_PAUSE_AT");
    }
    return armed == 1;
}

/* Read once (pthread_once): the digest walk calls its fail points from several threads. */
static struct {
    bool armed;
    char name[64];
    uint64_t want;
    int fail_errno;
    _Atomic uint64_t calls;
} fail_at;

static void
fail_at_init(void)
{
    const char *hooks = getenv("SNAPBACK_TEST_HOOKS");
    const char *spec = getenv("SNAPBACK_TEST_FAIL_AT");
    if (!hooks || strcmp(hooks, "1") != 0 || !spec)
        return;
    const char *c1 = strchr(spec, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    char num[32];
    uint64_t e = 0;
    size_t nlen = c1 ? (size_t)(c1 - spec) : 0, wlen = c2 ? (size_t)(c2 - c1 - 1) : 0;
    if (!c2 || !nlen || nlen >= sizeof(fail_at.name) || !wlen || wlen >= sizeof(num) ||
        sb_parse_u64(c2 + 1, &e) != 0 || e == 0 || e >= 4096)
        return;
    memcpy(fail_at.name, spec, nlen);
    memcpy(num, c1 + 1, wlen);
    num[wlen] = '\0';
    if (sb_parse_u64(num, &fail_at.want) == 0 && fail_at.want > 0) {
        fail_at.fail_errno = (int)e;
        fail_at.armed = true;
    }
}

bool
sb_test_fail_point(const char *name)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, fail_at_init);
    if (!fail_at.armed || strcmp(name, fail_at.name) != 0 ||
        atomic_fetch_add(&fail_at.calls, 1) + 1 != fail_at.want)
        return false;
    errno = fail_at.fail_errno;
    return true;
}

static volatile sig_atomic_t stop_signal;

void
sb_request_stop(int signo)
{
    stop_signal = signo;
}

int
sb_check_stop(struct sb_error *err)
{
    if (!stop_signal)
        return 0;
    return sb_error_set(err, SB_E_TEMPFAIL, 0,
                        "interrupted by signal %d; nothing half-written was kept, run again",
                        (int)stop_signal);
}

static struct rlimit saved_nofile;
static bool nofile_raised;

void
sb_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t want = 8192;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        want = rl.rlim_max;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur >= want)
        return;
    struct rlimit raised = {want, rl.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
        saved_nofile = rl;
        nofile_raised = true;
    }
}

void
sb_restore_nofile(void)
{
    if (nofile_raised)
        setrlimit(RLIMIT_NOFILE, &saved_nofile);
}
