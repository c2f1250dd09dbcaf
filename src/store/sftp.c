/* The SFTP store (DESIGN §6, issue #4): the same tree of files as the local store, on an SSH
 * server, through libssh2. libssh2 types never leave this file.
 *
 * One SSH connection per store, opened at the first operation. The session is non-blocking:
 * every libssh2 call that returns EAGAIN goes through sftp_wait(), which polls the socket for
 * the direction libssh2 waits on, for at most repository.timeout_s seconds without progress
 * (a timeout is its own error). The host key is checked against known_hosts before anything
 * else is sent; unknown or changed keys are refused (never trust on first use).
 *
 * Reconnects: run_op() runs list, stat, remove, open_read and open_write (which sends no byte
 * of data), and re-runs them after a dropped connection, with exponential backoff and jitter,
 * at most repository.retries times. Every connection has a generation number; a stream opened
 * under an older one is dead. A reader resumes at its offset on a new connection (objects are
 * immutable); a writer fails with SB_E_UNAVAILABLE and leaves the decision to the caller, and
 * the next open_write reconnects.
 *
 * Uploads follow the local store's rule: NAME.partial, written with calls of >= 1 MiB to
 * libssh2_sftp_write (which pipelines the SFTP packets of one call; small calls wait for each
 * acknowledgement), fsync@openssh.com when the server has it, then a rename. SFTP v3 (what
 * OpenSSH speaks) has no overwriting rename, and libssh2 1.10 does not offer
 * posix-rename@openssh.com, so: SB_STORE_NO_REPLACE is the plain rename, which OpenSSH refuses
 * when NAME exists (link + unlink); a replacing rename that meets an existing NAME moves it to
 * NAME.replaced-RANDOM first, renames, then removes the old one (see docs/SFTP.md).
 *
 * A mutex serialises the use of the session: the pipeline's worker threads drive the streams
 * while the caller's thread may call other operations. */
#include "snapback/store.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libssh2.h>
#include <libssh2_sftp.h>
#include <sodium.h>

#include "snapback/config.h"
#include "snapback/core.h"

#define WRITE_BUF (4u << 20)   /* the writer's buffer */
#define WRITE_HIGH (2u << 20)  /* send when this much is buffered and not yet acknowledged... */
#define WRITE_LOW (1u << 20)   /* ...until this much is left (so each call passes >= 1 MiB) */
#define READ_BUF (2u << 20)    /* libssh2 reads ahead up to 4 x the buffer it is given */
#define READ_FIRST (32u << 10) /* the first read of a file asks for this much, then doubles */
#define PASSPHRASE_MAX 1024
#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS 30000
#define KEEPALIVE_MAX_S 15
#define CLOSE_WAIT_MS 2000 /* how long a closing session waits for the server to close */
#define NAME_MAX_BYTES 4096

/* libssh2's allocations for one session, in a circular list: libssh2 1.10 keeps an SFTP handle
 * (and every packet queued on it) when it cannot send the close request of a dead connection,
 * and nothing frees it later. conn_close() frees what the session left behind. */
union arena_block {
    struct {
        union arena_block *prev, *next;
    } link;
    max_align_t align;
};

struct sftp_store {
    struct sb_store base;
    pthread_mutex_t mu;
    union arena_block arena; /* the list head */
    char *user, *host, *root, *identity, *passphrase_file, *known_hosts;
    bool system_known_hosts; /* known_hosts not configured: also read SYSTEM_KNOWN_HOSTS */
    const char *known_in;    /* the file the host key was found in (known_hosts or a system one) */
    int port;
    int timeout_s;
    int retries;
    char hostport[300]; /* "host:port", "[v6]:port": in messages */
    char kh_name[300];  /* the name in known_hosts: "host" (port 22) or "[host]:port" */

    int sock;
    LIBSSH2_SESSION *session;
    LIBSSH2_SFTP *sftp;
    unsigned generation; /* bumped by every new connection */
    bool broken;         /* the connection failed: reconnect before the next operation */
    bool retryable;      /* the last error was the network's: worth a reconnect */
    bool no_fsync;       /* the server refused fsync@openssh.com once */
    bool skip_hostkey;   /* remote trust: connect to read the key, do not judge it */
    char banner[256];
    char host_key[128]; /* "ED25519 SHA256:..." of the last connection */
    char login[NAME_MAX_BYTES + 32];
};

static pthread_once_t libssh2_once = PTHREAD_ONCE_INIT;
static int libssh2_init_rc;

static void
libssh2_init_once(void)
{
    libssh2_init_rc = libssh2_init(0);
}

static char *
dup_or_null(const char *s)
{
    return s ? sb_strdup(s) : NULL;
}

/* "/srv/backups" + "shop/x" -> "/srv/backups/shop/x"; "" -> the root itself. */
static char *
remote_path(struct sftp_store *ss, const char *rel, struct sb_error *err)
{
    char *p = sb_path_join(ss->root, rel);
    if (!p)
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    return p;
}

static unsigned
len_u(const char *s)
{
    return (unsigned)strlen(s);
}

static const char *
ssh_message(struct sftp_store *ss)
{
    char *msg = NULL;
    if (!ss->session)
        return "no session";
    libssh2_session_last_error(ss->session, &msg, NULL, 0);
    return msg && *msg ? msg : "unknown libssh2 error";
}

/* --- the one wait helper ----------------------------------------------------------------- */

/* Waits until the socket is ready in the direction libssh2 is blocked on. No progress for
 * timeout_s seconds is SB_E_UNAVAILABLE and breaks the connection (libssh2's state is then
 * half-way through a request). */
static int
sftp_wait(struct sftp_store *ss, const char *doing, struct sb_error *err)
{
    double deadline = sb_now_monotonic() + ss->timeout_s;
    for (;;) {
        int dir = libssh2_session_block_directions(ss->session);
        struct pollfd pfd = {ss->sock, 0, 0};
        if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
            pfd.events = (short)(pfd.events | POLLIN);
        if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
            pfd.events = (short)(pfd.events | POLLOUT);
        double left = deadline - sb_now_monotonic();
        if (left <= 0)
            break;
        /* No direction: libssh2 waits on something else (the agent); look again soon. */
        int ms = pfd.events ? (int)(left * 1000) + 1 : 10;
        if (!pfd.events)
            pfd.events = POLLIN;
        int n = poll(&pfd, 1, ms);
        if (n > 0 || (n == 0 && !dir))
            return 0;
        if (n < 0 && errno != EINTR) {
            ss->broken = true;
            ss->retryable = true;
            return sb_error_set(err, SB_E_UNAVAILABLE, errno, "cannot wait for '%s' (%s)",
                                ss->hostport, doing);
        }
    }
    ss->broken = true;
    ss->retryable = true;
    return sb_error_set(err, SB_E_UNAVAILABLE, 0,
                        "timed out after %d s talking to %s (%s); check the server and the "
                        "network, or raise repository.timeout_s",
                        ss->timeout_s, ss->hostport, doing);
}

/* A session-level failure (socket, channel, protocol): the connection is gone. */
static int
ssh_fail(struct sftp_store *ss, const char *doing, const char *path, struct sb_error *err)
{
    ss->broken = true;
    ss->retryable = true;
    if (path)
        return sb_error_set(err, SB_E_UNAVAILABLE, 0,
                            "connection to %s lost (%s '%s'): %s; try again when the server is "
                            "reachable",
                            ss->hostport, doing, path, ssh_message(ss));
    return sb_error_set(err, SB_E_UNAVAILABLE, 0,
                        "connection to %s lost (%s): %s; try again when the server is reachable",
                        ss->hostport, doing, ssh_message(ss));
}

static const char *
fx_name(unsigned long fx)
{
    static const char *const names[] = {
        "OK",
        "EOF",
        "NO_SUCH_FILE",
        "PERMISSION_DENIED",
        "FAILURE",
        "BAD_MESSAGE",
        "NO_CONNECTION",
        "CONNECTION_LOST",
        "OP_UNSUPPORTED",
        "INVALID_HANDLE",
        "NO_SUCH_PATH",
        "FILE_ALREADY_EXISTS",
        "WRITE_PROTECT",
        "NO_MEDIA",
        "NO_SPACE_ON_FILESYSTEM",
        "QUOTA_EXCEEDED",
        "UNKNOWN_PRINCIPAL",
        "LOCK_CONFLICT",
        "DIR_NOT_EMPTY",
        "NOT_A_DIRECTORY",
        "INVALID_FILENAME",
        "LINK_LOOP",
    };
    return fx < sizeof(names) / sizeof(names[0]) ? names[fx] : "unknown status";
}

/* The status code of the last failed SFTP request, or -1 when the failure was not one. */
static long
last_fx(struct sftp_store *ss, int rc)
{
    if (rc != LIBSSH2_ERROR_SFTP_PROTOCOL || !ss->sftp)
        return -1;
    return (long)libssh2_sftp_last_error(ss->sftp);
}

/* A failed SFTP request on path, by its status code fx (-1: not a status; the connection
 * failed). write_access says whether the request needed write permission (the message then
 * says the user cannot write there). */
static int
sftp_fail_fx(struct sftp_store *ss, long fx, const char *verb, const char *path, bool write_access,
             struct sb_error *err)
{
    if (fx < 0 || fx == (long)LIBSSH2_FX_NO_CONNECTION || fx == (long)LIBSSH2_FX_CONNECTION_LOST)
        return ssh_fail(ss, verb, path, err);
    ss->retryable = false;
    switch (fx) {
    case LIBSSH2_FX_NO_SUCH_FILE:
    case LIBSSH2_FX_NO_SUCH_PATH:
        return sb_error_set(err, SB_E_NOTFOUND, 0,
                            "cannot %s '%s' on %s: no such file or directory", verb, path,
                            ss->hostport);
    case LIBSSH2_FX_PERMISSION_DENIED:
    case LIBSSH2_FX_WRITE_PROTECT:
        if (write_access)
            return sb_error_set(err, SB_E_PERM, 0,
                                "the remote user '%s' cannot write to '%s' on %s (permission "
                                "denied while trying to %s it); give it write access to the "
                                "repository directory",
                                ss->user, path, ss->hostport, verb);
        return sb_error_set(err, SB_E_PERM, 0,
                            "the remote user '%s' cannot %s '%s' on %s: permission denied",
                            ss->user, verb, path, ss->hostport);
    case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM:
    case LIBSSH2_FX_QUOTA_EXCEEDED:
        return sb_error_set(err, SB_E_IO, 0,
                            "cannot %s '%s' on %s: the server is out of space (%s); free some "
                            "space there, or prune",
                            verb, path, ss->hostport, fx_name((unsigned long)fx));
    case LIBSSH2_FX_FAILURE:
        /* SFTP v3 (OpenSSH) has no code for a full disk: ENOSPC and EDQUOT come as FAILURE */
        if (write_access)
            return sb_error_set(err, SB_E_IO, 0,
                                "cannot %s '%s' on %s: the server said FAILURE (SFTP's catch-all; "
                                "when writing, a full disk or a quota on the server is the usual "
                                "cause: check its free space, or prune)",
                                verb, path, ss->hostport);
        /* fall through */
    default:
        return sb_error_set(err, SB_E_IO, 0, "cannot %s '%s' on %s: the server said %s", verb, path,
                            ss->hostport, fx_name((unsigned long)fx));
    }
}

static int
sftp_fail(struct sftp_store *ss, int rc, const char *verb, const char *path, bool write_access,
          struct sb_error *err)
{
    return sftp_fail_fx(ss, last_fx(ss, rc), verb, path, write_access, err);
}

/* --- connecting ---------------------------------------------------------------------------- */

static int
tcp_connect(struct sftp_store *ss, struct sb_error *err)
{
    struct addrinfo hints, *res = NULL;
    char port[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    snprintf(port, sizeof(port), "%d", ss->port);
    int gai = getaddrinfo(ss->host, port, &hints, &res);
    if (gai != 0) {
        ss->retryable = gai == EAI_AGAIN;
        return sb_error_set(err, SB_E_UNAVAILABLE, 0,
                            "cannot resolve the host of %s: %s; check repository.url", ss->hostport,
                            gai_strerror(gai));
    }
    int last_errno = 0;
    bool timed_out = false;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            last_errno = errno;
            close(fd);
            continue;
        }
        struct pollfd pfd = {fd, POLLOUT, 0};
        int n;
        do
            n = poll(&pfd, 1, ss->timeout_s * 1000);
        while (n < 0 && errno == EINTR);
        int so_error = 0;
        socklen_t len = sizeof(so_error);
        if (n == 0) {
            timed_out = true;
            last_errno = ETIMEDOUT;
        } else if (n < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0) {
            last_errno = errno;
        } else if (so_error) {
            last_errno = so_error;
        } else {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            ss->sock = fd;
            freeaddrinfo(res);
            return 0;
        }
        close(fd);
    }
    freeaddrinfo(res);
    ss->retryable = true;
    if (timed_out)
        return sb_error_set(err, SB_E_UNAVAILABLE, 0,
                            "timed out after %d s connecting to %s; check the host, the port "
                            "and the firewall",
                            ss->timeout_s, ss->hostport);
    return sb_error_set(err, SB_E_UNAVAILABLE, last_errno,
                        "cannot connect to %s; check that the SSH server runs and the port is "
                        "right",
                        ss->hostport);
}

static const struct {
    int hostkey_type;
    int knownhost_key;
    const char *name;
} key_types[] = {
    {LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ED25519"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ECDSA"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ECDSA"},
    {LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ECDSA"},
    {LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "RSA"},
    {LIBSSH2_HOSTKEY_TYPE_DSS, LIBSSH2_KNOWNHOST_KEY_SSHDSS, "DSA"},
};

/* The next whitespace-separated field of a known_hosts line at or after p; *len: its length. */
static const char *
next_field(const char *p, size_t *len)
{
    while (*p == ' ' || *p == '\t')
        p++;
    *len = strcspn(p, " \t\r\n");
    return p;
}

/* Whether the known_hosts line is "@revoked HOSTS TYPE BASE64 ..." for exactly this key. The
 * host patterns are not looked at: a revoked key is refused for every host (OpenSSH applies
 * the line to the hosts it names only; a key that was revoked is not to be trusted anywhere,
 * and libssh2 1.10 cannot match OpenSSH's wildcard patterns). */
static bool
line_revokes(const char *line, const char *key, size_t key_len)
{
    size_t len;
    const char *f = next_field(line, &len);
    if (len != 8 || memcmp(f, "@revoked", 8) != 0)
        return false;
    f = next_field(f + len, &len); /* the host patterns */
    f = next_field(f + len, &len); /* the key type */
    f = next_field(f + len, &len); /* the key */
    if (len == 0 || len / 4 * 3 > key_len + 3)
        return false;
    unsigned char *bin = malloc(len);
    size_t bin_len = 0;
    bool same = bin &&
                sodium_base642bin(bin, len, f, len, NULL, &bin_len, NULL,
                                  sodium_base64_VARIANT_ORIGINAL) == 0 &&
                bin_len == key_len && memcmp(bin, key, key_len) == 0;
    free(bin);
    return same;
}

/* Reads known_hosts line by line into kh. A missing file is an empty one; a line libssh2
 * cannot parse (a key type it does not know, a @cert-authority marker) is skipped, so that
 * one odd line does not hide the lines after it. *revoked_line: the number of the first
 * "@revoked" line for key (raw, key_len bytes), else 0. */
static int
known_hosts_load(LIBSSH2_KNOWNHOSTS *kh, const char *path, const char *key, size_t key_len,
                 unsigned *revoked_line, struct sb_error *err)
{
    *revoked_line = 0;
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        return sb_error_set(err, sb_error_from_errno(errno), errno,
                            "cannot read known_hosts file '%s'", path);
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned lineno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (!*revoked_line && line_revokes(line, key, key_len))
            *revoked_line = lineno;
        if (libssh2_knownhost_readline(kh, line, (size_t)len, LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0)
            sb_debug("known_hosts '%s' line %u: not understood by libssh2, skipped", path, lineno);
    }
    int rc = 0;
    if (ferror(f))
        rc = sb_error_set(err, SB_E_IO, errno, "cannot read known_hosts file '%s'", path);
    free(line);
    fclose(f);
    return rc;
}

enum hostkey_status { HOSTKEY_KNOWN, HOSTKEY_UNKNOWN, HOSTKEY_CHANGED, HOSTKEY_REVOKED };

/* The server's host key, its fingerprint as OpenSSH prints it, and its status in
 * known_hosts. */
struct hostkey {
    const char *key; /* borrowed from the session */
    size_t key_len;
    int knownhost_key;
    const char *type;
    char fingerprint[64]; /* "SHA256:<base64 without padding>" */
    enum hostkey_status status;
    unsigned revoked_line; /* HOSTKEY_REVOKED: the known_hosts line that says so */
    const char *found_in;  /* the file of that line, or of the key found (KNOWN, CHANGED) */
};

/* The files ssh reads besides the user's (GlobalKnownHostsFile's default): configuration
 * management (Puppet's sshkey, Ansible's known_hosts with path) often writes host keys there
 * for every user. Read only when repository.known_hosts is not set. */
static const char *const SYSTEM_KNOWN_HOSTS[] = {"/etc/ssh/ssh_known_hosts",
                                                 "/etc/ssh/ssh_known_hosts2"};

static int
hostkey_read(struct sftp_store *ss, struct hostkey *hk, struct sb_error *err)
{
    int type = 0;
    memset(hk, 0, sizeof(*hk));
    hk->key = libssh2_session_hostkey(ss->session, &hk->key_len, &type);
    const unsigned char *hash =
        (const unsigned char *)libssh2_hostkey_hash(ss->session, LIBSSH2_HOSTKEY_HASH_SHA256);
    if (!hk->key || !hash)
        return sb_error_set(err, SB_E_UNAVAILABLE, 0, "cannot get the host key of %s: %s",
                            ss->hostport, ssh_message(ss));
    hk->type = "UNKNOWN";
    hk->knownhost_key = LIBSSH2_KNOWNHOST_KEY_UNKNOWN;
    for (size_t idx = 0; idx < sizeof(key_types) / sizeof(key_types[0]); idx++) {
        if (key_types[idx].hostkey_type == type) {
            hk->type = key_types[idx].name;
            hk->knownhost_key = key_types[idx].knownhost_key;
        }
    }
    memcpy(hk->fingerprint, "SHA256:", 7);
    sodium_bin2base64(hk->fingerprint + 7, sizeof(hk->fingerprint) - 7, hash, 32,
                      sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    snprintf(ss->host_key, sizeof(ss->host_key), "%s %s", hk->type, hk->fingerprint);

    /* Each file on its own, so that a message can name the file of the line it is about. As
     * ssh: a key found in any file is known; else another key of its type in any file is a
     * change. Before both: a @revoked line for it in any file. */
    const char *files[1 + sizeof(SYSTEM_KNOWN_HOSTS) / sizeof(SYSTEM_KNOWN_HOSTS[0])];
    size_t nfiles = 0;
    files[nfiles++] = ss->known_hosts;
    for (size_t i = 0;
         ss->system_known_hosts && i < sizeof(SYSTEM_KNOWN_HOSTS) / sizeof(SYSTEM_KNOWN_HOSTS[0]);
         i++)
        files[nfiles++] = SYSTEM_KNOWN_HOSTS[i];
    hk->status = HOSTKEY_UNKNOWN;
    for (size_t i = 0; i < nfiles && hk->status != HOSTKEY_REVOKED; i++) {
        LIBSSH2_KNOWNHOSTS *kh = libssh2_knownhost_init(ss->session);
        if (!kh)
            return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        unsigned revoked = 0;
        if (known_hosts_load(kh, files[i], hk->key, hk->key_len, &revoked, err) < 0) {
            libssh2_knownhost_free(kh);
            return -1;
        }
        /* The name as OpenSSH writes it: "[host]:port" unless the port is 22. port -1 keeps
         * libssh2 from also accepting the plain host name for another port. */
        struct libssh2_knownhost *entry = NULL;
        int check = libssh2_knownhost_checkp(kh, ss->kh_name, -1, hk->key, hk->key_len,
                                             LIBSSH2_KNOWNHOST_TYPE_PLAIN |
                                                 LIBSSH2_KNOWNHOST_KEYENC_RAW | hk->knownhost_key,
                                             &entry);
        libssh2_knownhost_free(kh);
        if (revoked) {
            hk->status = HOSTKEY_REVOKED;
            hk->revoked_line = revoked;
            hk->found_in = files[i];
        } else if (check == LIBSSH2_KNOWNHOST_CHECK_MATCH) {
            if (hk->status != HOSTKEY_KNOWN)
                hk->found_in = files[i];
            hk->status = HOSTKEY_KNOWN;
        } else if (check == LIBSSH2_KNOWNHOST_CHECK_MISMATCH) {
            if (hk->status == HOSTKEY_UNKNOWN) {
                hk->status = HOSTKEY_CHANGED;
                hk->found_in = files[i];
            }
        } else if (check != LIBSSH2_KNOWNHOST_CHECK_NOTFOUND) {
            return sb_error_set(err, SB_E_INTERNAL, 0, "cannot check the host key of %s: %s",
                                ss->hostport, ssh_message(ss));
        }
    }
    return 0;
}

static int
hostkey_verify(struct sftp_store *ss, struct sb_error *err)
{
    struct hostkey hk;
    if (hostkey_read(ss, &hk, err) < 0)
        return -1;
    if (hk.status == HOSTKEY_KNOWN)
        ss->known_in = hk.found_in;
    if (ss->skip_hostkey || hk.status == HOSTKEY_KNOWN)
        return 0;
    if (hk.status == HOSTKEY_REVOKED)
        return sb_error_set(err, SB_E_PERM, 0,
                            "the host key of '%s' (%s %s) is marked @revoked in '%s' line %u: "
                            "it must not be trusted (whoever revoked it believes someone else "
                            "may hold it); check that this is the right server and ask its "
                            "administrator for its new key",
                            ss->hostport, hk.type, hk.fingerprint, hk.found_in, hk.revoked_line);
    if (hk.status == HOSTKEY_CHANGED)
        return sb_error_set(
            err, SB_E_PERM, 0,
            "WARNING: the host key of '%s' has CHANGED (now %s %s) since it was added to '%s': "
            "someone may be intercepting the connection, or the server was reinstalled; check "
            "the new fingerprint with the server's administrator, then remove the old key with "
            "ssh-keygen -R '%s' -f '%s' and run 'snapback remote trust'",
            ss->hostport, hk.type, hk.fingerprint, hk.found_in, ss->kh_name, hk.found_in);
    return sb_error_set(err, SB_E_PERM, 0,
                        "host key of '%s' is not known (%s %s); run 'snapback remote trust' to "
                        "add it to '%s'",
                        ss->hostport, hk.type, hk.fingerprint, ss->known_hosts);
}

/* Reads the passphrase file into guarded memory (sodium_free wipes it). */
static int
passphrase_read(const char *path, char **out, struct sb_error *err)
{
    *out = NULL;
    if (sb_check_secret_file(path, "identity passphrase file", err) < 0)
        return -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return sb_error_set(err, sb_error_from_errno(errno), errno,
                            "cannot open identity passphrase file '%s'", path);
    char *buf = sodium_malloc(PASSPHRASE_MAX + 2);
    if (!buf) {
        close(fd);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, PASSPHRASE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            sodium_free(buf);
            return sb_error_set(err, SB_E_IO, e, "cannot read identity passphrase file '%s'", path);
        }
        if (n == 0 || (len += (size_t)n) > PASSPHRASE_MAX)
            break;
    }
    close(fd);
    if (len > PASSPHRASE_MAX) {
        sodium_free(buf);
        return sb_error_set(err, SB_E_CONFIG, 0,
                            "identity passphrase file '%s' is longer than %d bytes; it must "
                            "hold the passphrase alone",
                            path, PASSPHRASE_MAX);
    }
    /* One trailing newline (as echo writes it) is not part of the passphrase. */
    if (len > 0 && buf[len - 1] == '\n')
        len--;
    if (len > 0 && buf[len - 1] == '\r')
        len--;
    buf[len] = '\0';
    *out = buf;
    return 0;
}

#define RSA_SHA1_NOTE                                                                              \
    "; note: libssh2 1.10 signs with RSA keys as ssh-rsa (SHA-1), which OpenSSH 8.8 and later "    \
    "refuse by default: use an ED25519 or ECDSA key"

/* Whether the private key file holds an RSA key (PEM "RSA PRIVATE KEY", or the OpenSSH format
 * whose base64 body names "ssh-rsa"): only for the hint above. */
static bool
identity_is_rsa(const char *path)
{
    static const char openssh[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
    char *text = NULL;
    size_t len = 0;
    bool rsa = false;
    if (sb_read_file(path, 64u << 10, &text, &len, NULL) < 0)
        return false;
    if (strstr(text, "-----BEGIN RSA PRIVATE KEY-----")) {
        rsa = true;
    } else if (strncmp(text, openssh, sizeof(openssh) - 1) == 0) {
        /* The key type is in the first few hundred bytes: decode 640 base64 characters. */
        char b64[641];
        size_t b64_len = 0;
        for (const char *p = text + sizeof(openssh) - 1; *p && *p != '-' && b64_len < 640; p++) {
            if (*p != '\n' && *p != '\r')
                b64[b64_len++] = *p;
        }
        b64_len -= b64_len % 4;
        unsigned char bin[480];
        size_t bin_len = 0;
        if (sodium_base642bin(bin, sizeof(bin), b64, b64_len, NULL, &bin_len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) == 0)
            rsa = bin_len > 7 && memmem(bin, bin_len, "ssh-rsa", 7) != NULL;
    }
    sodium_memzero(text, len);
    free(text);
    return rsa;
}

/* An agent key blob starts with its type as an SSH string. */
static bool
blob_is_rsa(const unsigned char *blob, size_t len)
{
    return len > 11 && memcmp(blob, "\0\0\0\7ssh-rsa", 11) == 0;
}

static int
auth_identity_file(struct sftp_store *ss, struct sb_error *err)
{
    if (sb_check_secret_file(ss->identity, "identity file", err) < 0)
        return sb_error_wrap(err, "repository.identity_file");
    char *passphrase = NULL;
    if (ss->passphrase_file && passphrase_read(ss->passphrase_file, &passphrase, err) < 0)
        return -1;
    int rc;
    while ((rc = libssh2_userauth_publickey_fromfile_ex(ss->session, ss->user, len_u(ss->user),
                                                        NULL, ss->identity, passphrase)) ==
           LIBSSH2_ERROR_EAGAIN) {
        if (sftp_wait(ss, "logging in", err) < 0)
            break;
    }
    if (passphrase)
        sodium_free(passphrase);
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return -1;
    if (rc == 0) {
        snprintf(ss->login, sizeof(ss->login), "identity file '%s'", ss->identity);
        return 0;
    }
    if (rc == LIBSSH2_ERROR_FILE)
        return sb_error_set(
            err, SB_E_PERM, 0, "cannot use identity file '%s' to log in to %s: %s (%s)",
            ss->identity, ss->hostport, ssh_message(ss),
            ss->passphrase_file ? "is the passphrase in repository.identity_passphrase_file "
                                  "right?"
                                : "if the key has a passphrase, set "
                                  "repository.identity_passphrase_file");
    if (rc == LIBSSH2_ERROR_AUTHENTICATION_FAILED || rc == LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED)
        return sb_error_set(err, SB_E_PERM, 0,
                            "%s refused to log in user '%s' with the key in '%s'; add its public "
                            "key to that user's authorized_keys on the server%s",
                            ss->hostport, ss->user, ss->identity,
                            identity_is_rsa(ss->identity) ? RSA_SHA1_NOTE : "");
    return ssh_fail(ss, "logging in", NULL, err);
}

static int
auth_agent(struct sftp_store *ss, const char *sock_path, struct sb_error *err)
{
    LIBSSH2_AGENT *agent = libssh2_agent_init(ss->session);
    if (!agent)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    int rc = -1;
    unsigned tried = 0, tried_rsa = 0;
    if (libssh2_agent_connect(agent) != 0 || libssh2_agent_list_identities(agent) != 0) {
        sb_error_set(err, SB_E_UNAVAILABLE, 0,
                     "cannot use the ssh-agent at SSH_AUTH_SOCK '%s' to log in to %s: %s; "
                     "start one, or set repository.identity_file",
                     sock_path, ss->hostport, ssh_message(ss));
        ss->retryable = false;
        goto out;
    }
    struct libssh2_agent_publickey *identity = NULL, *prev = NULL;
    while (libssh2_agent_get_identity(agent, &identity, prev) == 0) {
        int arc;
        tried++;
        if (blob_is_rsa(identity->blob, identity->blob_len))
            tried_rsa++;
        while ((arc = libssh2_agent_userauth(agent, ss->user, identity)) == LIBSSH2_ERROR_EAGAIN) {
            if (sftp_wait(ss, "logging in", err) < 0)
                goto out;
        }
        if (arc == 0) {
            snprintf(ss->login, sizeof(ss->login), "a key of the ssh-agent ('%s')",
                     identity->comment ? identity->comment : "no comment");
            rc = 0;
            goto out;
        }
        if (arc != LIBSSH2_ERROR_AUTHENTICATION_FAILED &&
            arc != LIBSSH2_ERROR_PUBLICKEY_UNVERIFIED && arc != LIBSSH2_ERROR_AGENT_PROTOCOL) {
            ssh_fail(ss, "logging in", NULL, err);
            goto out;
        }
        prev = identity;
    }
    sb_error_set(err, SB_E_PERM, 0,
                 "%s refused to log in user '%s' with the %u key(s) of the ssh-agent "
                 "(SSH_AUTH_SOCK '%s'); add one to that user's authorized_keys on the server, "
                 "or set repository.identity_file%s",
                 ss->hostport, ss->user, tried, sock_path, tried_rsa ? RSA_SHA1_NOTE : "");
out:
    libssh2_agent_disconnect(agent);
    libssh2_agent_free(agent);
    return rc;
}

static int
authenticate(struct sftp_store *ss, struct sb_error *err)
{
    char *methods;
    while (!(methods = libssh2_userauth_list(ss->session, ss->user, len_u(ss->user)))) {
        if (libssh2_userauth_authenticated(ss->session))
            return 0; /* the server let us in with "none" */
        if (libssh2_session_last_errno(ss->session) != LIBSSH2_ERROR_EAGAIN)
            return ssh_fail(ss, "asking how to log in", NULL, err);
        if (sftp_wait(ss, "asking how to log in", err) < 0)
            return -1;
    }
    if (!strstr(methods, "publickey"))
        return sb_error_set(err, SB_E_PERM, 0,
                            "%s does not accept public-key logins for user '%s' (it offers: "
                            "%s); snapback logs in with a key only",
                            ss->hostport, ss->user, methods);
    if (ss->identity)
        return auth_identity_file(ss, err);
    const char *agent_sock = getenv("SSH_AUTH_SOCK");
    if (agent_sock && *agent_sock)
        return auth_agent(ss, agent_sock, err);
    return sb_error_set(err, SB_E_CONFIG, 0,
                        "no way to log in to %s as '%s': set repository.identity_file, or run "
                        "an ssh-agent (SSH_AUTH_SOCK is not set)",
                        ss->hostport, ss->user);
}

static void
arena_link(union arena_block *head, union arena_block *block)
{
    block->link.prev = head;
    block->link.next = head->link.next;
    head->link.next->link.prev = block;
    head->link.next = block;
}

static void
arena_unlink(union arena_block *block)
{
    block->link.prev->link.next = block->link.next;
    block->link.next->link.prev = block->link.prev;
}

static LIBSSH2_ALLOC_FUNC(arena_alloc)
{
    struct sftp_store *ss = *abstract;
    union arena_block *block = malloc(sizeof(*block) + count);
    if (!block)
        return NULL;
    arena_link(&ss->arena, block);
    return block + 1;
}

static LIBSSH2_FREE_FUNC(arena_free)
{
    (void)abstract;
    if (!ptr)
        return;
    union arena_block *block = (union arena_block *)ptr - 1;
    arena_unlink(block);
    free(block);
}

static LIBSSH2_REALLOC_FUNC(arena_realloc)
{
    struct sftp_store *ss = *abstract;
    if (!ptr)
        return arena_alloc(count, abstract);
    union arena_block *block = (union arena_block *)ptr - 1;
    arena_unlink(block);
    union arena_block *moved = realloc(block, sizeof(*block) + count);
    if (!moved) {
        arena_link(&ss->arena, block);
        return NULL;
    }
    arena_link(&ss->arena, moved);
    return moved + 1;
}

/* After the goodbye: end the sending side and read what the server still sends until it
 * closes, for at most CLOSE_WAIT_MS. Closing at once with bytes unread (replies to read
 * requests still in flight, the server's own channel close) makes the kernel reset the
 * connection, and the server then logs an error for a session that ended well (ProFTPD:
 * "error writing packet: Broken pipe", before it has read the goodbye). */
static void
drain_until_closed(int sock)
{
    if (shutdown(sock, SHUT_WR) < 0)
        return;
    double deadline = sb_now_monotonic() + CLOSE_WAIT_MS / 1000.0;
    char sink[4096];
    for (;;) {
        ssize_t n = recv(sock, sink, sizeof(sink), MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            return;
        if (n > 0)
            continue;
        double left = deadline - sb_now_monotonic();
        if (left <= 0)
            return;
        struct pollfd pfd = {.fd = sock, .events = POLLIN};
        if (poll(&pfd, 1, (int)(left * 1000) + 1) < 0 && errno != EINTR)
            return;
    }
}

/* "; snapback offers key exchanges: a, b; ciphers: ...; MACs: ..." for a failed key
 * exchange, so that the server's administrator can see what to allow (libssh2 1.10 has
 * neither chacha20-poly1305 nor AES-GCM, which a hardened sshd_config may insist on). Legacy
 * algorithms libssh2 also offers (CBC modes, arcfour, 3des, MD5, ...) are left out: nobody
 * should enable them for this. */
static bool
legacy_algorithm(const char *name)
{
    static const char *const legacy[] = {"cbc", "arcfour", "blowfish", "cast128", "3des",
                                         "md5", "ripemd",  "-96",      "group1-", "none"};
    for (size_t i = 0; i < sizeof(legacy) / sizeof(legacy[0]); i++)
        if (strstr(name, legacy[i]))
            return true;
    return false;
}

static void
offered_algorithms(LIBSSH2_SESSION *session, char *buf, size_t cap)
{
    static const struct {
        int method;
        const char *what;
    } kinds[] = {{LIBSSH2_METHOD_KEX, "; snapback offers key exchanges: "},
                 {LIBSSH2_METHOD_CRYPT_CS, "; ciphers: "},
                 {LIBSSH2_METHOD_MAC_CS, "; MACs: "}};
    size_t len = 0;
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        const char **algs = NULL;
        int n = libssh2_session_supported_algs(session, kinds[k].method, &algs);
        if (n <= 0)
            continue;
        const char *sep = kinds[k].what;
        for (int i = 0; i < n; i++) {
            if (legacy_algorithm(algs[i]))
                continue;
            int w = snprintf(buf + len, cap - len, "%s%s", sep, algs[i]);
            len = w < 0 || (size_t)w >= cap - len ? cap - 1 : len + (size_t)w;
            sep = ", ";
        }
        libssh2_free(session, (void *)algs);
    }
    if (len == cap - 1 && cap > 4)
        memcpy(buf + cap - 4, "...", 4);
}

/* Frees the session. A broken one is shut down first, so that libssh2's goodbyes fail at once
 * instead of waiting on a dead peer. */
static void
conn_close(struct sftp_store *ss)
{
    if (ss->session) {
        if (ss->broken && ss->sock >= 0)
            shutdown(ss->sock, SHUT_RDWR);
        struct sb_error ignored = SB_ERROR_INIT;
        int rc, rounds = 0;
        if (ss->sftp) {
            while ((rc = libssh2_sftp_shutdown(ss->sftp)) == LIBSSH2_ERROR_EAGAIN &&
                   rounds++ < 100 && sftp_wait(ss, "closing", &ignored) == 0)
                ;
        }
        if (!ss->broken) {
            rounds = 0;
            while ((rc = libssh2_session_disconnect(ss->session, "snapback done")) ==
                       LIBSSH2_ERROR_EAGAIN &&
                   rounds++ < 100 && sftp_wait(ss, "closing", &ignored) == 0)
                ;
            if (rc == 0)
                drain_until_closed(ss->sock);
        }
        shutdown(ss->sock, SHUT_RDWR);
        rounds = 0;
        while (libssh2_session_free(ss->session) == LIBSSH2_ERROR_EAGAIN && rounds++ < 100)
            ;
    }
    size_t leftovers = 0;
    while (ss->arena.link.next != &ss->arena) {
        union arena_block *block = ss->arena.link.next;
        arena_unlink(block);
        free(block);
        leftovers++;
    }
    if (leftovers)
        sb_debug("freed %zu block(s) libssh2 left behind on the lost connection to %s", leftovers,
                 ss->hostport);
    if (ss->sock >= 0)
        close(ss->sock);
    ss->sock = -1;
    ss->session = NULL;
    ss->sftp = NULL;
    ss->broken = false;
}

/* ED25519 first, as OpenSSH does, so that the key checked is the one most servers have and
 * 'ssh-keyscan' lists first. libssh2 1.10 copies overlapping memory when it drops a name it
 * does not support from a preference list, so the list given holds supported names only. */
static void
prefer_hostkeys(LIBSSH2_SESSION *session)
{
    static const char *const wanted[] = {
        "ssh-ed25519",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "rsa-sha2-512",
        "rsa-sha2-256",
        "ssh-rsa",
    };
    const char **algs = NULL;
    int count = libssh2_session_supported_algs(session, LIBSSH2_METHOD_HOSTKEY, &algs);
    char prefs[512] = "";
    size_t pos = 0;
    for (size_t want_idx = 0; want_idx < sizeof(wanted) / sizeof(wanted[0]); want_idx++) {
        for (int alg_idx = 0; alg_idx < count; alg_idx++) {
            if (strcmp(algs[alg_idx], wanted[want_idx]) != 0)
                continue;
            int n = snprintf(prefs + pos, sizeof(prefs) - pos, "%s%s", pos ? "," : "",
                             wanted[want_idx]);
            if (n > 0 && (size_t)n < sizeof(prefs) - pos)
                pos += (size_t)n;
        }
    }
    if (algs)
        libssh2_free(session, algs);
    if (pos)
        libssh2_session_method_pref(session, LIBSSH2_METHOD_HOSTKEY, prefs);
}

/* Connects, checks the host key, logs in and starts SFTP. with_sftp false stops after the
 * host key (remote trust). */
static int
conn_open(struct sftp_store *ss, bool with_login, struct sb_error *err)
{
    pthread_once(&libssh2_once, libssh2_init_once);
    if (libssh2_init_rc != 0)
        return sb_error_set(err, SB_E_INTERNAL, 0, "cannot initialise libssh2");
    conn_close(ss);
    ss->banner[0] = ss->host_key[0] = ss->login[0] = '\0';
    if (tcp_connect(ss, err) < 0)
        return -1;
    ss->generation++;
    if (!(ss->session = libssh2_session_init_ex(arena_alloc, arena_free, arena_realloc, ss))) {
        conn_close(ss);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    libssh2_session_set_blocking(ss->session, 0);
    prefer_hostkeys(ss->session);
    int rc;
    while ((rc = libssh2_session_handshake(ss->session, ss->sock)) == LIBSSH2_ERROR_EAGAIN) {
        if (sftp_wait(ss, "starting SSH", err) < 0)
            goto fail;
    }
    if (rc != 0) {
        /* A key exchange that fails is a mismatch of algorithms, which waiting will not fix. */
        ss->broken = true;
        ss->retryable = rc != LIBSSH2_ERROR_KEX_FAILURE;
        char offered[600] = "";
        if (rc == LIBSSH2_ERROR_KEX_FAILURE)
            offered_algorithms(ss->session, offered, sizeof(offered));
        sb_error_set(err, SB_E_UNAVAILABLE, 0, "SSH handshake with %s failed: %s%s%s", ss->hostport,
                     ssh_message(ss),
                     rc == LIBSSH2_ERROR_KEX_FAILURE
                         ? "; the server and libssh2 " LIBSSH2_VERSION
                           " may have no key exchange, host key, cipher or MAC in common"
                         : "; is it an SSH server?",
                     offered);
        goto fail;
    }
    const char *banner = libssh2_session_banner_get(ss->session);
    snprintf(ss->banner, sizeof(ss->banner), "%s", banner ? banner : "?");
    ss->retryable = false;
    if (hostkey_verify(ss, err) < 0)
        goto fail;
    if (!with_login)
        return 0;
    unsigned interval = (unsigned)(ss->timeout_s / 2 > 0 ? ss->timeout_s / 2 : 1);
    libssh2_keepalive_config(ss->session, 1,
                             interval > KEEPALIVE_MAX_S ? KEEPALIVE_MAX_S : interval);
    if (authenticate(ss, err) < 0)
        goto fail;
    while (!(ss->sftp = libssh2_sftp_init(ss->session))) {
        if (libssh2_session_last_errno(ss->session) != LIBSSH2_ERROR_EAGAIN) {
            ss->retryable = true;
            ss->broken = true;
            sb_error_set(err, SB_E_UNAVAILABLE, 0,
                         "%s does not run SFTP for user '%s': %s; enable 'Subsystem sftp' (or "
                         "ForceCommand internal-sftp) in its sshd_config",
                         ss->hostport, ss->user, ssh_message(ss));
            goto fail;
        }
        if (sftp_wait(ss, "starting SFTP", err) < 0)
            goto fail;
    }
    sb_debug("connected to %s (%s, host key %s, cipher %s, MAC %s, logged in as '%s' with %s)",
             ss->hostport, ss->banner, ss->host_key,
             libssh2_session_methods(ss->session, LIBSSH2_METHOD_CRYPT_CS),
             libssh2_session_methods(ss->session, LIBSSH2_METHOD_MAC_CS), ss->user, ss->login);
    return 0;
fail:
    ss->broken = true;
    conn_close(ss);
    return -1;
}

static int
ensure_connected(struct sftp_store *ss, struct sb_error *err)
{
    if (ss->session && ss->sftp && !ss->broken) {
        int next = 0;
        libssh2_keepalive_send(ss->session, &next);
        return 0;
    }
    return conn_open(ss, true, err);
}

static void
backoff_sleep(int attempt)
{
    long ms = BACKOFF_FIRST_MS;
    for (int idx = 0; idx < attempt && ms < BACKOFF_MAX_MS; idx++)
        ms *= 2;
    if (ms > BACKOFF_MAX_MS)
        ms = BACKOFF_MAX_MS;
    /* "Equal jitter": half fixed, half random, so that many clients cut off at once do not
     * come back at once. */
    ms = ms / 2 + (long)randombytes_uniform((uint32_t)(ms / 2 + 1));
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

typedef int (*sftp_op_fn)(struct sftp_store *ss, void *arg, struct sb_error *err);

/* The reconnect policy: runs op on a live connection; after a network failure, waits (backoff
 * with jitter) and runs it again on a new connection, at most `retries` times. Host-key, login
 * and SFTP status errors are not retried. Called with the mutex held. */
static int
run_op(struct sftp_store *ss, sftp_op_fn op, void *arg, struct sb_error *err)
{
    for (int attempt = 0;; attempt++) {
        ss->retryable = false;
        if (ensure_connected(ss, err) == 0 && op(ss, arg, err) == 0)
            return 0;
        if (!ss->retryable || attempt >= ss->retries)
            return -1;
        sb_warn("%s; connecting again (attempt %d of %d)", err->msg, attempt + 1, ss->retries);
        backoff_sleep(attempt);
    }
}

/* --- directory operations ------------------------------------------------------------------ */

static int
stat_path(struct sftp_store *ss, const char *path, struct sb_store_stat *out, struct sb_error *err)
{
    LIBSSH2_SFTP_ATTRIBUTES attrs;
    int rc;
    memset(out, 0, sizeof(*out));
    while ((rc = libssh2_sftp_stat_ex(ss->sftp, path, len_u(path), LIBSSH2_SFTP_STAT, &attrs)) ==
           LIBSSH2_ERROR_EAGAIN) {
        if (sftp_wait(ss, "stat", err) < 0)
            return -1;
    }
    if (rc != 0) {
        long fx = last_fx(ss, rc);
        if (fx == (long)LIBSSH2_FX_NO_SUCH_FILE || fx == (long)LIBSSH2_FX_NO_SUCH_PATH)
            return 0;
        return sftp_fail(ss, rc, "stat", path, false, err);
    }
    out->exists = true;
    if (attrs.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS)
        out->is_dir = LIBSSH2_SFTP_S_ISDIR(attrs.permissions);
    if (attrs.flags & LIBSSH2_SFTP_ATTR_SIZE)
        out->size = attrs.filesize;
    if (attrs.flags & LIBSSH2_SFTP_ATTR_ACMODTIME)
        out->mtime = (time_t)attrs.mtime;
    return 0;
}

struct stat_args {
    const char *path;
    struct sb_store_stat *out;
};

static int
op_stat(struct sftp_store *ss, void *arg, struct sb_error *err)
{
    struct stat_args *a = arg;
    return stat_path(ss, a->path, a->out, err);
}

static int
sftp_stat(struct sb_store *st, const char *rel, struct sb_store_stat *out, struct sb_error *err)
{
    struct sftp_store *ss = (struct sftp_store *)st;
    char *path = remote_path(ss, rel, err);
    if (!path)
        return -1;
    struct stat_args a = {path, out};
    pthread_mutex_lock(&ss->mu);
    int rc = run_op(ss, op_stat, &a, err);
    pthread_mutex_unlock(&ss->mu);
    free(path);
    return rc;
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
close_handle(struct sftp_store *ss, LIBSSH2_SFTP_HANDLE *h, const char *path, struct sb_error *err)
{
    int rc;
    while ((rc = libssh2_sftp_close_handle(h)) == LIBSSH2_ERROR_EAGAIN) {
        if (sftp_wait(ss, "closing a file", err) < 0)
            return -1;
    }
    if (rc != 0)
        return sftp_fail(ss, rc, "close", path, false, err);
    return 0;
}

struct list_args {
    const char *path;
    char **names;
    size_t count;
};

static int
op_list(struct sftp_store *ss, void *arg, struct sb_error *err)
{
    struct list_args *a = arg;
    sb_store_names_free(a->names, a->count);
    a->names = NULL;
    a->count = 0;
    LIBSSH2_SFTP_HANDLE *h;
    while (!(
        h = libssh2_sftp_open_ex(ss->sftp, a->path, len_u(a->path), 0, 0, LIBSSH2_SFTP_OPENDIR))) {
        int rc = libssh2_session_last_errno(ss->session);
        if (rc != LIBSSH2_ERROR_EAGAIN) {
            long fx = last_fx(ss, rc);
            if (fx == (long)LIBSSH2_FX_NO_SUCH_FILE || fx == (long)LIBSSH2_FX_NO_SUCH_PATH)
                return 0;
            return sftp_fail(ss, rc, "list", a->path, false, err);
        }
        if (sftp_wait(ss, "listing", err) < 0)
            return -1;
    }
    int ret = -1;
    size_t cap = 0;
    char *name = malloc(NAME_MAX_BYTES);
    if (!name) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        LIBSSH2_SFTP_ATTRIBUTES attrs;
        int n = libssh2_sftp_readdir_ex(h, name, NAME_MAX_BYTES, NULL, 0, &attrs);
        if (n == LIBSSH2_ERROR_EAGAIN) {
            if (sftp_wait(ss, "listing", err) < 0)
                goto out;
            continue;
        }
        if (n < 0) {
            sftp_fail(ss, n, "list", a->path, false, err);
            goto out;
        }
        if (n == 0)
            break;
        if (!strcmp(name, ".") || !strcmp(name, ".."))
            continue;
        if (a->count == cap) {
            cap = cap ? cap * 2 : 32;
            char **p = realloc(a->names, cap * sizeof(*p));
            if (!p) {
                sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
                goto out;
            }
            a->names = p;
        }
        if (!(a->names[a->count] = strndup(name, (size_t)n))) {
            sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
            goto out;
        }
        a->count++;
    }
    ret = 0;
out:
    free(name);
    if (!ss->broken && close_handle(ss, h, a->path, ret == 0 ? err : NULL) < 0)
        ret = -1;
    return ret;
}

static int
sftp_list(struct sb_store *st, const char *dir, char ***names, size_t *count, struct sb_error *err)
{
    struct sftp_store *ss = (struct sftp_store *)st;
    *names = NULL;
    *count = 0;
    char *path = remote_path(ss, dir, err);
    if (!path)
        return -1;
    struct list_args a = {path, NULL, 0};
    pthread_mutex_lock(&ss->mu);
    int rc = run_op(ss, op_list, &a, err);
    pthread_mutex_unlock(&ss->mu);
    if (rc == 0) {
        if (a.count)
            qsort(a.names, a.count, sizeof(*a.names), name_cmp);
        *names = a.names;
        *count = a.count;
    } else {
        sb_store_names_free(a.names, a.count);
    }
    free(path);
    return rc;
}

static int
unlink_path(struct sftp_store *ss, const char *path, struct sb_error *err)
{
    int rc;
    while ((rc = libssh2_sftp_unlink_ex(ss->sftp, path, len_u(path))) == LIBSSH2_ERROR_EAGAIN) {
        if (sftp_wait(ss, "removing", err) < 0)
            return -1;
    }
    return rc;
}

static int
op_remove(struct sftp_store *ss, void *arg, struct sb_error *err)
{
    const char *path = arg;
    int rc = unlink_path(ss, path, err);
    if (rc == 0)
        return 0;
    if (rc == LIBSSH2_ERROR_EAGAIN)
        return -1;
    long fx = last_fx(ss, rc);
    if (fx == (long)LIBSSH2_FX_NO_SUCH_FILE || fx == (long)LIBSSH2_FX_NO_SUCH_PATH)
        return 0;
    if (fx < 0)
        return sftp_fail(ss, rc, "remove", path, true, err);
    /* unlink refuses a directory (EISDIR is SSH_FX_FAILURE): an empty one is removed too. */
    struct sb_store_stat st;
    struct sb_error ignored = SB_ERROR_INIT;
    if (stat_path(ss, path, &st, &ignored) == 0 && st.is_dir) {
        while ((rc = libssh2_sftp_rmdir_ex(ss->sftp, path, len_u(path))) == LIBSSH2_ERROR_EAGAIN) {
            if (sftp_wait(ss, "removing", err) < 0)
                return -1;
        }
        if (rc == 0)
            return 0;
        return sftp_fail(ss, rc, "remove", path, true, err);
    }
    if (ss->broken)
        return ssh_fail(ss, "remove", path, err);
    return sftp_fail_fx(ss, fx, "remove", path, true, err);
}

static int
sftp_remove(struct sb_store *st, const char *rel, struct sb_error *err)
{
    struct sftp_store *ss = (struct sftp_store *)st;
    char *path = remote_path(ss, rel, err);
    if (!path)
        return -1;
    pthread_mutex_lock(&ss->mu);
    int rc = run_op(ss, op_remove, path, err);
    pthread_mutex_unlock(&ss->mu);
    free(path);
    return rc;
}

static int
rename_plain(struct sftp_store *ss, const char *from, const char *to, struct sb_error *err)
{
    int rc;
    while ((rc = libssh2_sftp_rename_ex(ss->sftp, from, len_u(from), to, len_u(to),
                                        LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE)) ==
           LIBSSH2_ERROR_EAGAIN) {
        if (sftp_wait(ss, "renaming", err) < 0)
            return -1;
    }
    return rc;
}

/* Renames from over to. The overwriting flags of libssh2_sftp_rename_ex only reach servers of
 * SFTP version 5 and later; OpenSSH (version 3) refuses to rename over an existing file. Then
 * the old file is moved aside, the new one renamed into place and the old one removed: to
 * lasts no longer than two round trips, and a crash between them leaves to.replaced-RANDOM
 * holding the old content. */
static int
rename_replace(struct sftp_store *ss, const char *from, const char *to, struct sb_error *err)
{
    int rc;
    while ((rc = libssh2_sftp_rename_ex(ss->sftp, from, len_u(from), to, len_u(to),
                                        LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC |
                                            LIBSSH2_SFTP_RENAME_NATIVE)) == LIBSSH2_ERROR_EAGAIN) {
        if (sftp_wait(ss, "renaming", err) < 0)
            return -1;
    }
    if (rc == 0)
        return 0;
    long fx = last_fx(ss, rc);
    if (fx != (long)LIBSSH2_FX_FAILURE && fx != (long)LIBSSH2_FX_FILE_ALREADY_EXISTS)
        return sftp_fail(ss, rc, "rename", from, true, err);
    struct sb_store_stat target;
    if (stat_path(ss, to, &target, err) < 0)
        return -1;
    if (!target.exists || target.is_dir)
        return sftp_fail_fx(ss, fx, "rename", from, true, err);

    unsigned char rnd[6];
    char hex[13];
    randombytes_buf(rnd, sizeof(rnd));
    sb_hex_encode(rnd, sizeof(rnd), hex);
    size_t len = strlen(to) + sizeof(".replaced-") + sizeof(hex);
    char *aside = malloc(len);
    if (!aside)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    snprintf(aside, len, "%s.replaced-%s", to, hex);
    int ret = -1;
    if ((rc = rename_plain(ss, to, aside, err)) != 0) {
        if (rc != LIBSSH2_ERROR_EAGAIN)
            sftp_fail(ss, rc, "rename", to, true, err);
        goto out;
    }
    if ((rc = rename_plain(ss, from, to, err)) != 0) {
        if (rc != LIBSSH2_ERROR_EAGAIN)
            sftp_fail(ss, rc, "rename", from, true, err);
        if (!ss->broken)
            rename_plain(ss, aside, to, NULL); /* put the old one back */
        goto out;
    }
    if ((rc = unlink_path(ss, aside, err)) != 0 && rc != LIBSSH2_ERROR_EAGAIN)
        sb_warn("cannot remove '%s' on %s after replacing it; remove it by hand", aside,
                ss->hostport);
    ret = 0;
out:
    free(aside);
    return ret;
}

struct rename_args {
    const char *from, *to;
};

static int
op_rename(struct sftp_store *ss, void *arg, struct sb_error *err)
{
    struct rename_args *a = arg;
    return rename_replace(ss, a->from, a->to, err);
}

static int
sftp_rename(struct sb_store *st, const char *from, const char *to, struct sb_error *err)
{
    struct sftp_store *ss = (struct sftp_store *)st;
    char *pf = remote_path(ss, from, err);
    char *pt = pf ? remote_path(ss, to, err) : NULL;
    int rc = -1;
    if (pf && pt) {
        struct rename_args a = {pf, pt};
        pthread_mutex_lock(&ss->mu);
        /* Not re-run after a drop: the first attempt may have renamed already. */
        ss->retryable = false;
        rc = ensure_connected(ss, err) == 0 ? op_rename(ss, &a, err) : -1;
        pthread_mutex_unlock(&ss->mu);
    }
    free(pf);
    free(pt);
    return rc;
}

/* mkdir -p of dir, walking up only as far as needed (usually one mkdir for a new snapshot's
 * data directory). */
static int
mkdir_parents(struct sftp_store *ss, char *dir, int depth, struct sb_error *err)
{
    int rc;
    while ((rc = libssh2_sftp_mkdir_ex(ss->sftp, dir, len_u(dir), 0700)) == LIBSSH2_ERROR_EAGAIN) {
        if (sftp_wait(ss, "creating a directory", err) < 0)
            return -1;
    }
    if (rc == 0)
        return 0;
    long fx = last_fx(ss, rc);
    if (fx < 0)
        return sftp_fail(ss, rc, "create directory", dir, true, err);
    if (fx == (long)LIBSSH2_FX_NO_SUCH_FILE || fx == (long)LIBSSH2_FX_NO_SUCH_PATH) {
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir || depth > 64)
            return sftp_fail(ss, rc, "create directory", dir, true, err);
        *slash = '\0';
        int prc = mkdir_parents(ss, dir, depth + 1, err);
        *slash = '/';
        if (prc < 0)
            return -1;
        return mkdir_parents(ss, dir, depth + 1, err);
    }
    /* It may exist (OpenSSH says FAILURE for EEXIST). */
    struct sb_store_stat st;
    if (stat_path(ss, dir, &st, err) < 0)
        return -1;
    if (st.exists && st.is_dir)
        return 0;
    if (st.exists)
        return sb_error_set(err, SB_E_CANTCREATE, 0,
                            "cannot create directory '%s' on %s: a file of that name is in the "
                            "way",
                            dir, ss->hostport);
    return sftp_fail_fx(ss, fx, "create directory", dir, true, err);
}

/* --- reader --------------------------------------------------------------------------------- */

struct sftp_reader {
    struct sb_istream base;
    struct sftp_store *ss;
    char *path;
    LIBSSH2_SFTP_HANDLE *handle;
    unsigned generation;
    uint64_t offset; /* bytes received from the file so far */
    size_t want;     /* what the next read asks libssh2 for: READ_FIRST doubling to READ_BUF */
    uint64_t size;   /* the file's size, once asked for (size_known) */
    bool size_known, eof;
    unsigned char *buf;
    size_t pos, len; /* buf[pos..len) not yet handed out */
};

static bool
handle_alive(struct sftp_store *ss, LIBSSH2_SFTP_HANDLE *h, unsigned generation)
{
    return h && ss->session && !ss->broken && generation == ss->generation;
}

static int
open_file(struct sftp_store *ss, const char *path, unsigned long flags, LIBSSH2_SFTP_HANDLE **out,
          struct sb_error *err)
{
    LIBSSH2_SFTP_HANDLE *h;
    while (!(h = libssh2_sftp_open_ex(ss->sftp, path, len_u(path), flags, 0600,
                                      LIBSSH2_SFTP_OPENFILE))) {
        int rc = libssh2_session_last_errno(ss->session);
        if (rc != LIBSSH2_ERROR_EAGAIN)
            return sftp_fail(ss, rc, (flags & LIBSSH2_FXF_WRITE) ? "create" : "open", path,
                             (flags & LIBSSH2_FXF_WRITE) != 0, err);
        if (sftp_wait(ss, "opening a file", err) < 0)
            return -1;
    }
    *out = h;
    return 0;
}

/* (Re)opens the file at r->offset on the current connection. */
static int
reader_reopen(struct sftp_reader *r, struct sb_error *err)
{
    r->handle = NULL;
    if (open_file(r->ss, r->path, LIBSSH2_FXF_READ, &r->handle, err) < 0)
        return -1;
    r->generation = r->ss->generation;
    if (r->offset)
        libssh2_sftp_seek64(r->handle, r->offset);
    return 0;
}

static int
op_fill(struct sftp_store *ss, void *arg, struct sb_error *err)
{
    struct sftp_reader *r = arg;
    if (!handle_alive(ss, r->handle, r->generation)) {
        if (r->handle)
            sb_info("resuming '%s' at byte %llu on a new connection to %s", r->path,
                    (unsigned long long)r->offset, ss->hostport);
        if (reader_reopen(r, err) < 0)
            return -1;
    }
    /* libssh2 sends read requests for 4 x the size it is asked for ahead of the offset, and
     * sends them before it knows where the file ends. Asking for READ_BUF from the start made
     * a 241-byte snapback.json cost 280 requests of 30,000 bytes past its end, and the end of
     * every object as many (ProFTPD logs a warning for each; their replies were still coming
     * when the session closed). So a read starts small and doubles, and a file that is not
     * small has its size asked once (one round trip): near its end, the reads ask for no
     * more than a quarter of what is left, so that the requests stop at the end. */
    if (!r->size_known && r->offset >= 2 * READ_FIRST) {
        LIBSSH2_SFTP_ATTRIBUTES attrs;
        int rc;
        while ((rc = libssh2_sftp_fstat_ex(r->handle, &attrs, 0)) == LIBSSH2_ERROR_EAGAIN)
            if (sftp_wait(ss, "asking a file's size", err) < 0)
                return -1;
        /* A server that answers FSTAT with an error status: read on without the size. */
        if (rc < 0 && rc != LIBSSH2_ERROR_SFTP_PROTOCOL)
            return sftp_fail(ss, rc, "stat", r->path, false, err);
        r->size_known = true;
        r->size = rc == 0 && (attrs.flags & LIBSSH2_SFTP_ATTR_SIZE) ? attrs.filesize : UINT64_MAX;
    }
    size_t want = r->want;
    if (r->size_known && r->size != UINT64_MAX) {
        uint64_t quarter = (r->size > r->offset ? r->size - r->offset : 0) / 4;
        if (quarter < want)
            want = quarter > READ_FIRST ? (size_t)quarter : READ_FIRST;
    }
    for (;;) {
        ssize_t n = libssh2_sftp_read(r->handle, (char *)r->buf, want);
        if (n == LIBSSH2_ERROR_EAGAIN) {
            if (sftp_wait(ss, "reading", err) < 0)
                return -1;
            continue;
        }
        if (n < 0)
            return sftp_fail(ss, (int)n, "read", r->path, false, err);
        r->pos = 0;
        r->len = (size_t)n;
        r->offset += (uint64_t)n;
        if (r->want < READ_BUF)
            r->want *= 2;
        r->eof = n == 0;
        return 0;
    }
}

static int
reader_read(struct sb_istream *s, void *buf, size_t cap, size_t *got, struct sb_error *err)
{
    struct sftp_reader *r = (struct sftp_reader *)s;
    *got = 0;
    if (r->pos == r->len && !r->eof) {
        pthread_mutex_lock(&r->ss->mu);
        int rc = run_op(r->ss, op_fill, r, err);
        pthread_mutex_unlock(&r->ss->mu);
        if (rc < 0)
            return -1;
    }
    size_t n = r->len - r->pos < cap ? r->len - r->pos : cap;
    memcpy(buf, r->buf + r->pos, n);
    r->pos += n;
    *got = n;
    return 0;
}

static void
reader_free(struct sb_istream *s)
{
    struct sftp_reader *r = (struct sftp_reader *)s;
    pthread_mutex_lock(&r->ss->mu);
    if (handle_alive(r->ss, r->handle, r->generation))
        close_handle(r->ss, r->handle, r->path, NULL);
    pthread_mutex_unlock(&r->ss->mu);
    free(r->buf);
    free(r->path);
    free(r);
}

static const struct sb_istream_ops reader_ops = {.read = reader_read, .free = reader_free};

static int
op_open_read(struct sftp_store *ss, void *arg, struct sb_error *err)
{
    (void)ss;
    return reader_reopen(arg, err);
}

static int
sftp_open_read(struct sb_store *st, const char *rel, struct sb_istream **out, struct sb_error *err)
{
    struct sftp_store *ss = (struct sftp_store *)st;
    struct sftp_reader *r = calloc(1, sizeof(*r));
    if (!r)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    r->base.ops = &reader_ops;
    r->ss = ss;
    r->want = READ_FIRST;
    if (!(r->path = remote_path(ss, rel, err)))
        goto fail;
    if (!(r->buf = malloc(READ_BUF))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto fail;
    }
    pthread_mutex_lock(&ss->mu);
    int rc = run_op(ss, op_open_read, r, err);
    pthread_mutex_unlock(&ss->mu);
    if (rc < 0)
        goto fail;
    *out = &r->base;
    return 0;
fail:
    reader_free(&r->base);
    return -1;
}

/* --- writer --------------------------------------------------------------------------------- */

struct sftp_writer {
    struct sb_ostream base;
    struct sftp_store *ss;
    char *final_path, *partial_path;
    unsigned flags;
    LIBSSH2_SFTP_HANDLE *handle;
    unsigned generation;
    unsigned char *buf;
    size_t start, end; /* buf[start..end): not yet acknowledged by the server */
    bool committed;
};

static int
writer_check(struct sftp_writer *w, struct sb_error *err)
{
    if (handle_alive(w->ss, w->handle, w->generation))
        return 0;
    return sb_error_set(err, SB_E_UNAVAILABLE, 0,
                        "connection to %s was lost while writing '%s'; the upload has to start "
                        "again",
                        w->ss->hostport, w->partial_path);
}

/* Sends buffered data until at most `keep` bytes are unacknowledged. Each call passes all of
 * buf[start..end) (>= 1 MiB while streaming): libssh2 skips what it has sent already, sends
 * the rest as pipelined packets and returns how much the server has acknowledged. */
static int
writer_push(struct sftp_writer *w, size_t keep, struct sb_error *err)
{
    struct sftp_store *ss = w->ss;
    if (writer_check(w, err) < 0)
        return -1;
    while (w->end - w->start > keep) {
        ssize_t n =
            libssh2_sftp_write(w->handle, (const char *)w->buf + w->start, w->end - w->start);
        /* 0: nothing acknowledged yet and nothing to wait on in libssh2's eyes; wait anyway,
         * briefly, rather than spin. */
        if (n == LIBSSH2_ERROR_EAGAIN || n == 0) {
            if (sftp_wait(ss, "writing", err) < 0)
                return -1;
            continue;
        }
        if (n < 0)
            return sftp_fail(ss, (int)n, "write", w->partial_path, true, err);
        w->start += (size_t)n;
    }
    if (w->start == w->end)
        w->start = w->end = 0;
    return 0;
}

static int
writer_write(struct sb_ostream *s, const void *data, size_t len, struct sb_error *err)
{
    struct sftp_writer *w = (struct sftp_writer *)s;
    const unsigned char *p = data;
    int rc = 0;
    pthread_mutex_lock(&w->ss->mu);
    while (len > 0 && rc == 0) {
        if (w->end == WRITE_BUF) {
            /* libssh2 holds its own copy of what it sent; ours only has to stay in order. */
            memmove(w->buf, w->buf + w->start, w->end - w->start);
            w->end -= w->start;
            w->start = 0;
        }
        size_t n = WRITE_BUF - w->end < len ? WRITE_BUF - w->end : len;
        memcpy(w->buf + w->end, p, n);
        w->end += n;
        p += n;
        len -= n;
        if (w->end - w->start >= WRITE_HIGH)
            rc = writer_push(w, WRITE_LOW, err);
    }
    pthread_mutex_unlock(&w->ss->mu);
    return rc;
}

static int
writer_commit(struct sftp_writer *w, struct sb_error *err)
{
    struct sftp_store *ss = w->ss;
    if (writer_push(w, 0, err) < 0)
        return -1;
    if (!ss->no_fsync) {
        int rc;
        while ((rc = libssh2_sftp_fsync(w->handle)) == LIBSSH2_ERROR_EAGAIN) {
            if (sftp_wait(ss, "syncing", err) < 0)
                return -1;
        }
        if (rc != 0) {
            if (last_fx(ss, rc) != (long)LIBSSH2_FX_OP_UNSUPPORTED)
                return sftp_fail(ss, rc, "fsync", w->partial_path, true, err);
            ss->no_fsync = true;
            sb_warn("%s does not support fsync@openssh.com: uploads are renamed into place "
                    "without being synced to its disk",
                    ss->hostport);
        }
    }
    LIBSSH2_SFTP_HANDLE *h = w->handle;
    w->handle = NULL;
    if (close_handle(ss, h, w->partial_path, err) < 0)
        return -1;
    if (w->flags & SB_STORE_NO_REPLACE) {
        int rc = rename_plain(ss, w->partial_path, w->final_path, err);
        if (rc == LIBSSH2_ERROR_EAGAIN)
            return -1;
        if (rc != 0) {
            long fx = last_fx(ss, rc);
            struct sb_store_stat target;
            if ((fx == (long)LIBSSH2_FX_FAILURE || fx == (long)LIBSSH2_FX_FILE_ALREADY_EXISTS) &&
                stat_path(ss, w->final_path, &target, err) == 0 && target.exists)
                return sb_error_set(err, SB_E_CANTCREATE, EEXIST, "cannot create '%s' on %s",
                                    w->final_path, ss->hostport);
            if (ss->broken)
                return -1;
            return sftp_fail_fx(ss, fx, "rename", w->partial_path, true, err);
        }
    } else if (rename_replace(ss, w->partial_path, w->final_path, err) < 0) {
        return -1;
    }
    w->committed = true;
    return 0;
}

static int
writer_close(struct sb_ostream *s, struct sb_error *err)
{
    struct sftp_writer *w = (struct sftp_writer *)s;
    pthread_mutex_lock(&w->ss->mu);
    int rc = writer_commit(w, err);
    pthread_mutex_unlock(&w->ss->mu);
    return rc;
}

static void
writer_free(struct sb_ostream *s)
{
    struct sftp_writer *w = (struct sftp_writer *)s;
    struct sftp_store *ss = w->ss;
    pthread_mutex_lock(&ss->mu);
    /* Aborted: close and remove the partial file while the connection lives (a lost one
     * leaves it; the next upload of the name truncates it). */
    if (!w->committed && w->partial_path && w->generation) {
        if (handle_alive(ss, w->handle, w->generation))
            close_handle(ss, w->handle, w->partial_path, NULL);
        if (ss->session && ss->sftp && !ss->broken)
            unlink_path(ss, w->partial_path, NULL);
        else
            sb_debug("'%s' is left on %s: the connection was lost", w->partial_path, ss->hostport);
    }
    pthread_mutex_unlock(&ss->mu);
    free(w->buf);
    free(w->final_path);
    free(w->partial_path);
    free(w);
}

static const struct sb_ostream_ops writer_ops = {
    .write = writer_write, .close = writer_close, .free = writer_free};

static int
op_open_write(struct sftp_store *ss, void *arg, struct sb_error *err)
{
    struct sftp_writer *w = arg;
    w->handle = NULL;
    if (w->flags & SB_STORE_NO_REPLACE) {
        struct sb_store_stat st;
        if (stat_path(ss, w->final_path, &st, err) < 0)
            return -1;
        if (st.exists)
            return sb_error_set(err, SB_E_CANTCREATE, EEXIST, "cannot create '%s' on %s",
                                w->final_path, ss->hostport);
    }
    const unsigned long flags = LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC;
    if (open_file(ss, w->partial_path, flags, &w->handle, err) < 0) {
        if (err->code != SB_E_NOTFOUND)
            return -1;
        /* The parent is missing: create it (and its parents), then try again. */
        char *slash = strrchr(w->partial_path, '/');
        if (!slash || slash == w->partial_path)
            return -1;
        *slash = '\0';
        int rc = mkdir_parents(ss, w->partial_path, 0, err);
        *slash = '/';
        if (rc < 0 || open_file(ss, w->partial_path, flags, &w->handle, err) < 0)
            return -1;
    }
    w->generation = ss->generation;
    return 0;
}

static int
sftp_open_write(struct sb_store *st, const char *rel, unsigned flags, struct sb_ostream **out,
                struct sb_error *err)
{
    struct sftp_store *ss = (struct sftp_store *)st;
    struct sftp_writer *w = calloc(1, sizeof(*w));
    if (!w)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    w->base.ops = &writer_ops;
    w->ss = ss;
    w->flags = flags;
    if (!(w->final_path = remote_path(ss, rel, err)))
        goto fail;
    size_t len = strlen(w->final_path) + sizeof(".partial");
    if (!(w->partial_path = malloc(len)) || !(w->buf = malloc(WRITE_BUF))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(w->partial_path, len, "%s.partial", w->final_path);
    pthread_mutex_lock(&ss->mu);
    int rc = run_op(ss, op_open_write, w, err);
    pthread_mutex_unlock(&ss->mu);
    if (rc < 0)
        goto fail;
    *out = &w->base;
    return 0;
fail:
    writer_free(&w->base);
    return -1;
}

/* --- the store ------------------------------------------------------------------------------ */

static void
sftp_free(struct sb_store *st)
{
    struct sftp_store *ss = (struct sftp_store *)st;
    conn_close(ss);
    pthread_mutex_destroy(&ss->mu);
    free(ss->user);
    free(ss->host);
    free(ss->root);
    free(ss->identity);
    free(ss->passphrase_file);
    free(ss->known_hosts);
    free(ss->base.display);
    free(ss);
}

static const struct sb_store_ops sftp_ops = {
    sftp_open_read, sftp_open_write, sftp_list, sftp_stat, sftp_remove, sftp_rename, sftp_free,
};

/* ~/.ssh/known_hosts of the user running snapback, as ssh finds it (the passwd entry, not
 * $HOME). */
static char *
default_known_hosts(void)
{
    struct passwd *pw = getpwuid(geteuid());
    const char *home = pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : getenv("HOME");
    if (!home || !*home)
        home = "/";
    return sb_path_join(home, ".ssh/known_hosts");
}

static int
store_new(const struct sb_config *cfg, struct sftp_store **out, struct sb_error *err)
{
    if (!cfg->repository.is_sftp)
        return sb_error_set(err, SB_E_CONFIG, 0,
                            "repository '%s' is not an SFTP repository (sftp://user@host/path)",
                            cfg->repository.url);
    struct sftp_store *ss = calloc(1, sizeof(*ss));
    if (!ss)
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    ss->base.ops = &sftp_ops;
    ss->sock = -1;
    ss->arena.link.prev = ss->arena.link.next = &ss->arena;
    pthread_mutex_init(&ss->mu, NULL);
    ss->port = cfg->repository.sftp_port ? cfg->repository.sftp_port : 22;
    ss->timeout_s = cfg->repository.timeout_s > 0 ? cfg->repository.timeout_s : 30;
    ss->retries = cfg->repository.retries >= 0 ? cfg->repository.retries : 0;
    ss->user = dup_or_null(cfg->repository.sftp_user);
    ss->host = dup_or_null(cfg->repository.sftp_host);
    ss->root = dup_or_null(cfg->repository.path);
    ss->identity = dup_or_null(cfg->repository.identity_file);
    ss->passphrase_file = dup_or_null(cfg->repository.identity_passphrase_file);
    ss->known_hosts = cfg->repository.known_hosts ? sb_strdup(cfg->repository.known_hosts)
                                                  : default_known_hosts();
    ss->system_known_hosts = !cfg->repository.known_hosts;
    bool v6 = ss->host && strchr(ss->host, ':');
    snprintf(ss->hostport, sizeof(ss->hostport), v6 ? "[%s]:%d" : "%s:%d",
             ss->host ? ss->host : "?", ss->port);
    if (ss->port == 22)
        snprintf(ss->kh_name, sizeof(ss->kh_name), "%s", ss->host ? ss->host : "?");
    else
        snprintf(ss->kh_name, sizeof(ss->kh_name), "[%s]:%d", ss->host ? ss->host : "?", ss->port);
    size_t dlen = strlen(ss->hostport) + (ss->user ? strlen(ss->user) : 0) +
                  (ss->root ? strlen(ss->root) : 0) + 16;
    if ((ss->base.display = malloc(dlen)))
        snprintf(ss->base.display, dlen, "sftp://%s@%s%s", ss->user ? ss->user : "", ss->hostport,
                 ss->root ? ss->root : "");
    if (!ss->user || !ss->host || !ss->root || !ss->known_hosts || !ss->base.display ||
        (cfg->repository.identity_file && !ss->identity) ||
        (cfg->repository.identity_passphrase_file && !ss->passphrase_file)) {
        sftp_free(&ss->base);
        return sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
    }
    *out = ss;
    return 0;
}

int
sb_store_sftp_new(const struct sb_config *cfg, struct sb_store **out, struct sb_error *err)
{
    struct sftp_store *ss = NULL;
    if (store_new(cfg, &ss, err) < 0)
        return -1;
    *out = &ss->base;
    return 0;
}

/* --- config check and remote trust ---------------------------------------------------------- */

int
sb_sftp_probe(const struct sb_config *cfg, struct sb_sftp_probe *out, struct sb_error *err)
{
    struct sftp_store *ss = NULL;
    memset(out, 0, sizeof(*out));
    out->failed_at = SB_SFTP_STEP_CONNECT;
    if (store_new(cfg, &ss, err) < 0)
        return -1;
    snprintf(out->server, sizeof(out->server), "%s", ss->hostport);
    snprintf(out->known_hosts, sizeof(out->known_hosts), "%s", ss->known_hosts);
    snprintf(out->path, sizeof(out->path), "%s", ss->root);
    int rc = -1;
    LIBSSH2_SFTP_HANDLE *h = NULL;
    char *test_path = NULL;

    /* The steps of conn_open, one at a time, so that the report says which one failed. */
    pthread_once(&libssh2_once, libssh2_init_once);
    ss->skip_hostkey = true;
    if (conn_open(ss, false, err) < 0)
        goto out;
    snprintf(out->banner, sizeof(out->banner), "%s", ss->banner);
    snprintf(out->host_key, sizeof(out->host_key), "%s", ss->host_key);
    out->failed_at = SB_SFTP_STEP_HOSTKEY;
    ss->skip_hostkey = false;
    if (hostkey_verify(ss, err) < 0)
        goto out;
    snprintf(out->known_hosts, sizeof(out->known_hosts), "%s", ss->known_in);
    out->failed_at = SB_SFTP_STEP_LOGIN;
    if (authenticate(ss, err) < 0)
        goto out;
    snprintf(out->login, sizeof(out->login), "%s", ss->login);
    while (!(ss->sftp = libssh2_sftp_init(ss->session))) {
        if (libssh2_session_last_errno(ss->session) != LIBSSH2_ERROR_EAGAIN) {
            sb_error_set(err, SB_E_UNAVAILABLE, 0,
                         "%s does not run SFTP for user '%s': %s; enable 'Subsystem sftp' (or "
                         "ForceCommand internal-sftp) in its sshd_config",
                         ss->hostport, ss->user, ssh_message(ss));
            goto out;
        }
        if (sftp_wait(ss, "starting SFTP", err) < 0)
            goto out;
    }

    out->failed_at = SB_SFTP_STEP_WRITE;
    struct sb_store_stat st;
    if (stat_path(ss, ss->root, &st, err) < 0)
        goto out;
    if (!st.exists) {
        sb_error_set(err, SB_E_NOTFOUND, 0,
                     "'%s' does not exist on %s; 'snapback init' creates it (when the user may)",
                     ss->root, ss->hostport);
        goto out;
    }
    if (!st.is_dir) {
        sb_error_set(err, SB_E_CONFIG, 0, "'%s' on %s is not a directory", ss->root, ss->hostport);
        goto out;
    }
    unsigned char rnd[8];
    char hex[17];
    randombytes_buf(rnd, sizeof(rnd));
    sb_hex_encode(rnd, sizeof(rnd), hex);
    snprintf(out->test_file, sizeof(out->test_file), ".snapback-write-test-%s", hex);
    if (!(test_path = sb_path_join(ss->root, out->test_file))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    if (open_file(ss, test_path, LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL, &h,
                  err) < 0) {
        if (err->code == SB_E_PERM)
            sb_error_set(err, SB_E_PERM, 0,
                         "the remote user '%s' cannot write to '%s' on %s (creating a test file "
                         "was refused); give it write access to that directory",
                         ss->user, ss->root, ss->hostport);
        goto out;
    }
    LIBSSH2_SFTP_HANDLE *opened = h;
    h = NULL;
    if (close_handle(ss, opened, test_path, err) < 0)
        goto out;
    int urc = unlink_path(ss, test_path, err);
    if (urc != 0) {
        if (urc != LIBSSH2_ERROR_EAGAIN)
            sftp_fail(ss, urc, "remove the test file", test_path, true, err);
        goto out;
    }
    out->failed_at = SB_SFTP_STEP_DONE;
    rc = 0;
out:
    if (h && !ss->broken)
        close_handle(ss, h, test_path, NULL);
    free(test_path);
    sftp_free(&ss->base);
    return rc;
}

int
sb_sftp_hostkey_fetch(const struct sb_config *cfg, struct sb_sftp_hostkey *out,
                      struct sb_error *err)
{
    struct sftp_store *ss = NULL;
    memset(out, 0, sizeof(*out));
    if (store_new(cfg, &ss, err) < 0)
        return -1;
    int rc = -1;
    struct hostkey hk;
    ss->skip_hostkey = true;
    if (conn_open(ss, false, err) < 0 || hostkey_read(ss, &hk, err) < 0)
        goto out;
    if (!(out->key = malloc(hk.key_len))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    memcpy(out->key, hk.key, hk.key_len);
    out->key_len = hk.key_len;
    out->key_kind = hk.knownhost_key;
    out->known = hk.status == HOSTKEY_KNOWN;
    out->changed = hk.status == HOSTKEY_CHANGED;
    out->revoked_line = hk.status == HOSTKEY_REVOKED ? hk.revoked_line : 0;
    snprintf(out->found_in, sizeof(out->found_in), "%s", hk.found_in ? hk.found_in : "");
    snprintf(out->type, sizeof(out->type), "%s", hk.type);
    snprintf(out->fingerprint, sizeof(out->fingerprint), "%s", hk.fingerprint);
    snprintf(out->server, sizeof(out->server), "%s", ss->hostport);
    snprintf(out->name, sizeof(out->name), "%s", ss->kh_name);
    snprintf(out->known_hosts, sizeof(out->known_hosts), "%s", ss->known_hosts);
    if (hk.knownhost_key == LIBSSH2_KNOWNHOST_KEY_UNKNOWN) {
        sb_error_set(err, SB_E_UNAVAILABLE, 0,
                     "%s presented a host key of a type this libssh2 cannot store", ss->hostport);
        goto out;
    }
    rc = 0;
out:
    if (rc < 0)
        sb_sftp_hostkey_release(out);
    sftp_free(&ss->base);
    return rc;
}

int
sb_sftp_hostkey_trust(const struct sb_sftp_hostkey *hk, struct sb_error *err)
{
    pthread_once(&libssh2_once, libssh2_init_once);
    if (libssh2_init_rc != 0)
        return sb_error_set(err, SB_E_INTERNAL, 0, "cannot initialise libssh2");
    int rc = -1;
    char *old = NULL, *text = NULL, *dir = sb_strdup(hk->known_hosts);
    size_t old_len = 0;
    LIBSSH2_SESSION *session = libssh2_session_init();
    LIBSSH2_KNOWNHOSTS *kh = session ? libssh2_knownhost_init(session) : NULL;
    if (!dir || !kh) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    /* The line, written by libssh2 in OpenSSH's format. */
    struct libssh2_knownhost *entry = NULL;
    char line[16384];
    size_t line_len = 0;
    if (libssh2_knownhost_addc(kh, hk->name, NULL, (const char *)hk->key, hk->key_len, NULL, 0,
                               LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
                                   hk->key_kind,
                               &entry) != 0 ||
        libssh2_knownhost_writeline(kh, entry, line, sizeof(line), &line_len,
                                    LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0) {
        sb_error_set(err, SB_E_INTERNAL, 0, "cannot format the known_hosts line for '%s'",
                     hk->name);
        goto out;
    }
    /* The file keeps every line it had (libssh2's writefile would drop what it does not
     * parse); the new one is appended, and the whole written atomically. */
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (sb_mkdir_p(dir, 0700, err) < 0)
            goto out;
    }
    mode_t mode = 0600;
    struct stat st;
    if (stat(hk->known_hosts, &st) == 0) {
        mode = st.st_mode & 0777;
        if (sb_read_file(hk->known_hosts, 64u << 20, &old, &old_len, err) < 0)
            goto out;
    } else if (errno != ENOENT) {
        sb_error_set(err, sb_error_from_errno(errno), errno, "cannot read '%s'", hk->known_hosts);
        goto out;
    }
    bool need_newline = old_len > 0 && old[old_len - 1] != '\n';
    if (!(text = malloc(old_len + line_len + 2))) {
        sb_error_set(err, SB_E_INTERNAL, ENOMEM, "out of memory");
        goto out;
    }
    if (old_len)
        memcpy(text, old, old_len);
    size_t len = old_len;
    if (need_newline)
        text[len++] = '\n';
    memcpy(text + len, line, line_len);
    len += line_len;
    if (len == 0 || text[len - 1] != '\n')
        text[len++] = '\n';
    rc = sb_write_file_atomic(hk->known_hosts, text, len, mode, err);
out:
    free(old);
    free(text);
    free(dir);
    if (kh)
        libssh2_knownhost_free(kh);
    if (session)
        libssh2_session_free(session);
    return rc;
}

void
sb_sftp_hostkey_release(struct sb_sftp_hostkey *hk)
{
    if (!hk)
        return;
    free(hk->key);
    hk->key = NULL;
    hk->key_len = 0;
}
