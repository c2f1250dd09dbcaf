/* ls: the files of a snapshot, as restore --target would lay them out, without restoring. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "snapback/core.h"
#include "snapback/ops.h"

const struct sb_cmd_help help_ls = {
    "snapback ls ID|latest [PATH]... [--only release,shared,db] [--json]",
    "Lists the entries of a snapshot as 'restore --target' lays them out (releases/NAME/...,\n"
    "current, the shared paths, databases/NAME.pgdump|.sql|.sqlite3), like 'tar -tv': type\n"
    "and mode, owner, size, mtime (UTC), path, and a link's target. With PATHs (named as for\n"
    "'restore --path': releases/NAME/..., current/... or a shared path/...), only those files\n"
    "and what is below them. Each object listed is read to its end and checked as a restore\n"
    "reads it (a damaged one fails with 65); nothing is written. Needs the key that reads the\n"
    "snapshots (on a write-only host: --key).",
    "  --only PARTS   a comma-separated subset of release, shared, db\n"
    "  --json         one JSON object per entry and line: path, type (file, dir, symlink,\n"
    "                 hardlink, char, block, fifo), mode (octal), uid, gid, user, group, size,\n"
    "                 mtime (RFC 3339, UTC, with nanoseconds) and link; a path that is not\n"
    "                 UTF-8 has its other bytes as U+FFFD and is given exactly in path_hex\n"
    "                 (a link's target in link_hex)\n",
};

/* Length of the valid UTF-8 sequence at s (1-4), or 0. */
static size_t
utf8_seq(const unsigned char *s)
{
    size_t n = s[0] < 0x80             ? 1
               : (s[0] & 0xe0) == 0xc0 ? 2
               : (s[0] & 0xf0) == 0xe0 ? 3
               : (s[0] & 0xf8) == 0xf0 ? 4
                                       : 0;
    if (n == 0 || (n == 2 && s[0] < 0xc2) || (n == 4 && s[0] > 0xf4))
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    if ((n == 3 && s[0] == 0xe0 && s[1] < 0xa0) || (n == 3 && s[0] == 0xed && s[1] >= 0xa0) ||
        (n == 4 && s[0] == 0xf0 && s[1] < 0x90) || (n == 4 && s[0] == 0xf4 && s[1] >= 0x90))
        return 0;
    return n;
}

/* s as a JSON string: control characters escaped, bytes that are not UTF-8 as U+FFFD.
 * Returns whether every byte was kept. */
static bool
put_json_string(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    bool exact = true;
    putchar('"');
    while (*p) {
        size_t n = utf8_seq(p);
        if (n == 0) {
            fputs("\\ufffd", stdout);
            exact = false;
            p++;
        } else if (*p == '"' || *p == '\\') {
            printf("\\%c", *p++);
        } else if (*p < 0x20 || *p == 0x7f) {
            printf("\\u%04x", *p++);
        } else {
            fwrite(p, 1, n, stdout);
            p += n;
        }
    }
    putchar('"');
    return exact;
}

/* s for a terminal or a line-based reader: a backslash, control characters and bytes that
 * are not UTF-8 as C escapes (\n, \\, \377), as ls -b and GNU tar do. */
static void
put_text(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_seq(p);
        if (*p == '\\') {
            fputs("\\\\", stdout);
            p++;
        } else if (*p == '\n') {
            fputs("\\n", stdout);
            p++;
        } else if (*p == '\t') {
            fputs("\\t", stdout);
            p++;
        } else if (n == 0 || *p < 0x20 || *p == 0x7f) {
            printf("\\%03o", *p++);
        } else {
            fwrite(p, 1, n, stdout);
            p += n;
        }
    }
}

/* prefix, then s in hex and a closing quote */
static void
put_hex(const char *prefix, const char *s)
{
    fputs(prefix, stdout);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        printf("%02x", *p);
    putchar('"');
}

static const char *
type_name(char type)
{
    switch (type) {
    case 'd':
        return "dir";
    case 'l':
        return "symlink";
    case 'h':
        return "hardlink";
    case 'c':
        return "char";
    case 'b':
        return "block";
    case 'p':
        return "fifo";
    default:
        return "file";
    }
}

struct ls_out {
    bool json;
    unsigned long long entries;
    int write_errno; /* stdout failed (EPIPE: the reader of a pipe went away) */
};

static void print_line(const struct sb_tree_entry *e, const struct ls_out *o);

/* Prints one entry; false once stdout fails, which stops the listing. */
static bool
print_entry(const struct sb_tree_entry *e, void *arg)
{
    struct ls_out *o = arg;
    o->entries++;
    errno = 0;
    print_line(e, o);
    if (ferror(stdout)) {
        o->write_errno = errno ? errno : EIO;
        return false;
    }
    return true;
}

static void
print_line(const struct sb_tree_entry *e, const struct ls_out *o)
{
    char ts[40];
    struct tm tm;
    time_t t = (time_t)e->mtime;
    gmtime_r(&t, &tm);
    if (o->json) {
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        fputs("{\"path\":", stdout);
        if (!put_json_string(e->path))
            put_hex(",\"path_hex\":\"", e->path);
        printf(",\"type\":\"%s\",\"mode\":\"%04o\"", type_name(e->type), e->mode);
        if (e->uid >= 0)
            printf(",\"uid\":%lld,\"gid\":%lld", e->uid, e->gid);
        if (e->user && *e->user) {
            fputs(",\"user\":", stdout);
            put_json_string(e->user);
        }
        if (e->group && *e->group) {
            fputs(",\"group\":", stdout);
            put_json_string(e->group);
        }
        printf(",\"size\":%lld,\"mtime\":\"%s.%09ldZ\"", e->size, ts, e->mtime_nsec);
        if (e->link) {
            fputs(",\"link\":", stdout);
            if (!put_json_string(e->link))
                put_hex(",\"link_hex\":\"", e->link);
        }
        fputs("}\n", stdout);
        return;
    }
    strftime(ts, sizeof(ts), "%Y-%m-%d %H:%M:%S", &tm);
    char perm[11];
    /* '-', 'd', 'l', 'h' (a hard link, as bsdtar -tv shows one), 'c', 'b', 'p' */
    perm[0] = e->type;
    static const char rwx[] = "rwxrwxrwx";
    for (int i = 0; i < 9; i++)
        perm[1 + i] = (e->mode & (0400u >> i)) ? rwx[i] : '-';
    if (e->mode & 04000)
        perm[3] = perm[3] == 'x' ? 's' : 'S';
    if (e->mode & 02000)
        perm[6] = perm[6] == 'x' ? 's' : 'S';
    if (e->mode & 01000)
        perm[9] = perm[9] == 'x' ? 't' : 'T';
    perm[10] = '\0';
    char owner[80];
    if (e->uid < 0)
        snprintf(owner, sizeof(owner), "-");
    else {
        char u[24], g[24];
        snprintf(u, sizeof(u), "%lld", e->uid);
        snprintf(g, sizeof(g), "%lld", e->gid);
        snprintf(owner, sizeof(owner), "%.32s/%.32s", e->user && *e->user ? e->user : u,
                 e->group && *e->group ? e->group : g);
    }
    printf("%s %-17s %12lld %s ", perm, owner, e->size, ts);
    put_text(e->path);
    if (e->link) {
        fputs(e->type == 'h' ? " link to " : " -> ", stdout);
        put_text(e->link);
    }
    putchar('\n');
}

int
cmd_ls(struct sb_cli *cli, struct sb_error *err)
{
    static const struct option longopts[] = {
        {"only", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sb_ls_opts opts = {0};
    struct ls_out out = {false, 0, 0};
    int c;
    optind = 1;
    while ((c = sb_cli_getopt(cli, "o:jh", longopts, "ls", &help_ls, err)) != -1) {
        if (c == 'h')
            return 0;
        if (c == '?')
            return -1;
        if (c == 'o' && sb_parts_parse(optarg, &opts.parts, err) < 0)
            return -1;
        if (c == 'j')
            out.json = true;
    }
    if (optind >= cli->argc)
        return sb_error_set(err, SB_E_USAGE, 0, "ls: give a snapshot id (or 'latest')");
    const char *snapshot = cli->argv[optind++];
    size_t count = (size_t)(cli->argc - optind);
    if (count > SB_RESTORE_PATHS_MAX)
        return sb_error_set(err, SB_E_USAGE, 0, "ls: at most %d paths", SB_RESTORE_PATHS_MAX);
    for (int idx = optind; idx < cli->argc; idx++)
        if (sb_cli_layout_path(cli->argv[idx], "ls", "", err) < 0)
            return -1;
    opts.paths = (const char *const *)(cli->argv + optind);
    opts.path_count = count;
    if (count && (opts.parts & SB_PART_DB))
        return sb_error_set(err, SB_E_USAGE, 0,
                            "ls: PATHs select files of the release and shared paths; they do "
                            "not combine with --only db");
    opts.visit = print_entry;
    opts.arg = &out;
    struct sb_repo *repo = NULL;
    struct sb_manifest *m = NULL;
    char *id = NULL;
    int rc = -1;
    if (sb_repo_open(cli->cfg, &repo, err) < 0 ||
        sb_repo_resolve_id(repo, snapshot, &id, err) < 0 ||
        sb_repo_load_manifest(repo, id, &m, err) < 0)
        goto out;
    rc = sb_ls_run(repo, m, &opts, err);
    if (!out.write_errno && fflush(stdout) != 0)
        out.write_errno = errno ? errno : EIO;
    /* The reader of a pipe went away (snapback ls ID | head): done, as for ls and tar, but
     * without the message and status a SIGPIPE death would give. */
    if (out.write_errno == EPIPE) {
        sb_error_clear(err);
        rc = 0;
        goto out;
    }
    if (out.write_errno) {
        sb_error_clear(err);
        rc = sb_error_set(err, SB_E_IO, out.write_errno, "ls: cannot write the listing to stdout");
        goto out;
    }
    if (rc == 0)
        sb_info("snapshot '%s': %llu entr%s listed", id, out.entries,
                out.entries == 1 ? "y" : "ies");
out:
    sb_manifest_free(m);
    sb_repo_free(repo);
    free(id);
    return rc;
}
