/* Choosing the PostgreSQL client binary (sb_pg_client_path): on Debian, psql, pg_dump and
 * pg_restore in PATH are symlinks to postgresql-common's pg_wrapper, a Perl script that, for a
 * connection given with -h, runs the newest installed version's binary. snapback runs that
 * binary itself. Checked on a fake tree: the wrapper is recognised through absolute and
 * relative symlinks, the newest version that has the program wins (numerically: 10 > 9.6),
 * directories that are not versions are skipped, and a user's own client earlier in PATH, a
 * plain binary, or a wrapper with no version behind it leave the choice to PATH. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snapback/core.h"
#include "snapback/db.h"
#include "test.h"

static char base[64]; /* short, so that every path below fits */

/* Creates base/rel as an executable (mode 0755) or plain (0644) file, with its directories. */
static void
make_file(const char *rel, mode_t mode)
{
    char path[PATH_MAX], cmd[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname '%s')\"", path);
    if (system(cmd) != 0)
        TEST_FAIL("cannot create the directory of %s", path);
    FILE *f = fopen(path, "w");
    if (!f) {
        TEST_FAIL("cannot create %s", path);
        return;
    }
    fputs("#!/bin/sh\n", f);
    fclose(f);
    chmod(path, mode);
}

static void
make_link(const char *rel, const char *target)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    if (symlink(target, path) != 0)
        TEST_FAIL("cannot link %s -> %s", path, target);
}

/* sb_pg_client_path of name with PATH made of the given dirs under base, binroot base/lib. */
static const char *
choose(const char *name, const char *dirs, char *out, size_t cap)
{
    char path_env[4 * PATH_MAX] = "", binroot[PATH_MAX], dirs_copy[PATH_MAX];
    snprintf(binroot, sizeof(binroot), "%s/lib", base);
    snprintf(dirs_copy, sizeof(dirs_copy), "%s", dirs);
    char *save = NULL;
    for (char *d = strtok_r(dirs_copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        size_t len = strlen(path_env);
        snprintf(path_env + len, sizeof(path_env) - len, "%s%s/%s", len ? ":" : "", base, d);
    }
    sb_pg_client_path(name, path_env, binroot, out, cap);
    return out;
}

static void
test_wrapper_newest_version(void)
{
    char out[PATH_MAX], want[PATH_MAX];
    /* the newest with pg_dump is 15: 16 has only psql */
    snprintf(want, sizeof(want), "%s/lib/15/bin/pg_dump", base);
    EXPECT_STR(choose("pg_dump", "bin", out, sizeof(out)), want);
    snprintf(want, sizeof(want), "%s/lib/16/bin/psql", base);
    EXPECT_STR(choose("psql", "bin", out, sizeof(out)), want);
    /* 10 is newer than 9.6; pg_restore is a relative symlink to the wrapper */
    snprintf(want, sizeof(want), "%s/lib/10/bin/pg_restore", base);
    EXPECT_STR(choose("pg_restore", "bin", out, sizeof(out)), want);
    /* a directory without the wrapper first, then the wrapper */
    snprintf(want, sizeof(want), "%s/lib/15/bin/pg_dump", base);
    EXPECT_STR(choose("pg_dump", "empty:bin", out, sizeof(out)), want);
    /* a pg_dump that cannot be run is passed over, as the shell and execvp do */
    EXPECT_STR(choose("pg_dump", "noexec:bin", out, sizeof(out)), want);
}

static void
test_path_decides_otherwise(void)
{
    char out[PATH_MAX];
    /* a user's own pg_dump earlier in PATH */
    EXPECT_STR(choose("pg_dump", "own:bin", out, sizeof(out)), "");
    /* no wrapper at all */
    EXPECT_STR(choose("pg_dump", "own", out, sizeof(out)), "");
    /* not in PATH */
    EXPECT_STR(choose("pg_dump", "empty", out, sizeof(out)), "");
    /* a wrapper, but no version has the program (createdb is nowhere under lib/) */
    EXPECT_STR(choose("createdb", "bin", out, sizeof(out)), "");
    /* a file named pg_wrapper outside postgresql-common is not Debian's */
    EXPECT_STR(choose("pg_dump", "fake", out, sizeof(out)), "");
    /* no PATH, and an output too small for the path: PATH's choice */
    sb_pg_client_path("pg_dump", NULL, "/nonexistent", out, sizeof(out));
    EXPECT_STR(out, "");
    char tiny[8];
    EXPECT_STR(choose("pg_dump", "bin", tiny, sizeof(tiny)), "");
}

int
main(void)
{
    snprintf(base, sizeof(base), "/tmp/snapback-test-db-XXXXXX");
    if (!mkdtemp(base))
        return 1;
    char wrapper[PATH_MAX];
    snprintf(wrapper, sizeof(wrapper), "%s/share/postgresql-common/pg_wrapper", base);
    make_file("share/postgresql-common/pg_wrapper", 0755);
    /* many older versions beside the newest: readdir() lists them in an order of the
     * filesystem's own (a hash), so taking the last one seen instead of the newest fails
     * here with every order but a few */
    static const char *const older[] = {"8.3", "8.4", "9.0", "9.1", "9.2", "9.3", "9.4",
                                        "9.5", "9.6", "10",  "11",  "12",  "13",  "14"};
    char rel[128];
    for (size_t idx = 0; idx < sizeof(older) / sizeof(older[0]); idx++) {
        snprintf(rel, sizeof(rel), "lib/%s/bin/pg_dump", older[idx]);
        make_file(rel, 0755);
        snprintf(rel, sizeof(rel), "lib/%s/bin/psql", older[idx]);
        make_file(rel, 0755);
        if (older[idx][0] == '8' || older[idx][0] == '9') {
            snprintf(rel, sizeof(rel), "lib/%s/bin/pg_restore", older[idx]);
            make_file(rel, 0755);
        }
    }
    make_file("lib/15/bin/pg_dump", 0755);
    make_file("lib/15/bin/psql", 0755);
    make_file("lib/16/bin/psql", 0755);
    make_file("lib/10/bin/pg_restore", 0755);
    make_file("lib/17/bin/pg_dump", 0644); /* not executable: not a candidate */
    make_file("lib/99beta/bin/pg_dump", 0755);
    make_file("lib/main/bin/pg_dump", 0755);
    make_file("lib/.15/bin/pg_dump", 0755);
    make_file("own/pg_dump", 0755);
    make_file("noexec/pg_dump", 0644);
    make_file("fake/pg_wrapper", 0755);
    make_file("empty/.keep", 0644);
    make_file("bin/.keep", 0644);
    make_link("bin/pg_dump", wrapper);
    make_link("bin/psql", wrapper);
    make_link("bin/createdb", wrapper);
    make_link("bin/pg_restore", "../share/postgresql-common/pg_wrapper");
    make_link("fake/pg_dump", "pg_wrapper");

    RUN(test_wrapper_newest_version);
    RUN(test_path_decides_otherwise);

    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
    if (system(cmd) != 0)
        printf("warning: could not remove %s\n", base);
    return test_summary();
}
