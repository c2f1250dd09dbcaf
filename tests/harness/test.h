/* A tiny unit-test harness: RUN(fn) runs a test function, EXPECT* record failures with the
 * file, line and what was seen, and test_summary() prints "N passed, N failed" and returns the
 * process exit status. Errors are asserted by code and exact message, as pgBackRest does. */
#ifndef SNAPBACK_TEST_H
#define SNAPBACK_TEST_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "snapback/error.h"

static int test_failed_checks;
static int test_current_failed;
static int test_passed, test_failed;
static const char *test_current_name;

#define RUN(fn)                                                                                    \
    do {                                                                                           \
        test_current_name = #fn;                                                                   \
        test_current_failed = 0;                                                                   \
        fn();                                                                                      \
        if (test_current_failed) {                                                                 \
            test_failed++;                                                                         \
            printf("FAIL %s\n", #fn);                                                              \
        } else {                                                                                   \
            test_passed++;                                                                         \
            printf("ok   %s\n", #fn);                                                              \
        }                                                                                          \
        fflush(stdout);                                                                            \
    } while (0)

#define TEST_FAIL(...)                                                                             \
    do {                                                                                           \
        test_failed_checks++;                                                                      \
        test_current_failed = 1;                                                                   \
        printf("  %s:%d: %s: ", __FILE__, __LINE__, test_current_name);                            \
        printf(__VA_ARGS__);                                                                       \
        printf("\n");                                                                              \
    } while (0)

#define EXPECT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TEST_FAIL("expected %s", #cond);                                                       \
    } while (0)

#define EXPECT_INT(got, want)                                                                      \
    do {                                                                                           \
        long long g_ = (long long)(got), w_ = (long long)(want);                                   \
        if (g_ != w_)                                                                              \
            TEST_FAIL("%s: got %lld, want %lld", #got, g_, w_);                                    \
    } while (0)

#define EXPECT_STR(got, want)                                                                      \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (!g_ || !w_ || strcmp(g_, w_) != 0)                                                     \
            TEST_FAIL("%s:\n    got  '%s'\n    want '%s'", #got, g_ ? g_ : "(null)",               \
                      w_ ? w_ : "(null)");                                                         \
    } while (0)

/* expr must return 0; on failure the error message is printed. */
#define EXPECT_OK(expr, errp)                                                                      \
    do {                                                                                           \
        sb_error_clear(errp);                                                                      \
        if ((expr) != 0)                                                                           \
            TEST_FAIL("%s failed: %s", #expr, (errp)->msg);                                        \
    } while (0)

/* expr must fail with the code and, when msg is not NULL, exactly that message. */
#define EXPECT_ERR(expr, errp, want_code, want_msg)                                                \
    do {                                                                                           \
        sb_error_clear(errp);                                                                      \
        if ((expr) == 0) {                                                                         \
            TEST_FAIL("%s succeeded, want error %s", #expr, #want_code);                           \
        } else {                                                                                   \
            if ((errp)->code != (want_code))                                                       \
                TEST_FAIL("%s: code %d (%s), want %s; message '%s'", #expr, (errp)->code,          \
                          sb_error_label((errp)->code), #want_code, (errp)->msg);                  \
            const char *wm_ = (want_msg);                                                          \
            if (wm_ && strcmp((errp)->msg, wm_) != 0)                                              \
                TEST_FAIL("%s: message\n    got  '%s'\n    want '%s'", #expr, (errp)->msg, wm_);   \
        }                                                                                          \
    } while (0)

static inline int
test_summary(void)
{
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}

/* Whether the environment variable name is "1": SNAPBACK_TEST_LIGHT (contrib/test.sh's
 * valgrind and TSan stages: long loops take a sparser sample) and SNAPBACK_TEST_EXHAUSTIVE
 * (by hand: every case). */
static inline int
test_env_on(const char *name)
{
    const char *v = getenv(name);
    return v && strcmp(v, "1") == 0;
}

#endif
