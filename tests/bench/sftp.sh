#!/usr/bin/env bash
# SFTP throughput benchmark (issue #4; a benchmark, not a timed test): the same file uploaded
# and downloaded by snapback's SFTP store and by OpenSSH's sftp(1) -b, against the same
# loopback sshd (tests/harness/sshd.sh), alternating, best of ROUNDS. snapback's side is a
# small program built here against BUILD/libsnapback.a that copies the file through
# sb_store_open_write / sb_store_open_read, so the figures are the store's (no compression or
# encryption); its upload includes the fsync@openssh.com and the rename of NAME.partial,
# OpenSSH's 'put' does neither. Both sides' times include connecting and logging in.
#
#   tests/bench/sftp.sh [BUILD_DIR [SIZE_MIB [ROUNDS]]]     default: build 1024 3
#
# Needs root (sshd), openssh-server, openssh-client, a C compiler and pkg-config.
# shellcheck disable=SC2119
set -Eeuo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd)
SIZE_MIB=${2:-1024}
ROUNDS=${3:-3}
export SNAPBACK=$BUILD/snapback
# shellcheck source=tests/harness/lib.sh
source "$ROOT/tests/harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$ROOT/tests/harness/sshd.sh"
sb_setup "$SNAPBACK"
need cc pkg-config sftp
[[ -f $BUILD/libsnapback.a ]] || fail "$BUILD/libsnapback.a not found: build first (ninja -C $BUILD)"
sshd_setup
sftp_env
mkdir -p "$REPO"

cat >"$WORK/store_copy.c" <<'EOF'
/* store_copy put|get CONFIG LOCAL REMOTE: one file through the store of CONFIG's repository. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "snapback/config.h"
#include "snapback/core.h"
#include "snapback/pipeline.h"
#include "snapback/store.h"

int
main(int argc, char **argv)
{
    struct sb_error err = SB_ERROR_INIT;
    struct sb_config *cfg = NULL;
    struct sb_store *st = NULL;
    struct sb_istream *in = NULL;
    struct sb_ostream *out = NULL;
    uint64_t n = 0;
    int fd = -1, rc = 1;
    if (argc != 5)
        return 64;
    if (sb_crypto_init(&err) < 0 || sb_config_load(argv[2], &cfg, &err) < 0 ||
        sb_store_sftp_new(cfg, &st, &err) < 0)
        goto out;
    if (!strcmp(argv[1], "put")) {
        if ((fd = open(argv[3], O_RDONLY)) < 0 || !(in = sb_fd_istream_new(fd, argv[3])) ||
            sb_store_open_write(st, argv[4], 0, &out, &err) < 0 ||
            sb_stream_copy(in, out, &n, &err) < 0 || sb_ostream_close(out, &err) < 0)
            goto out;
    } else {
        if ((fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0 ||
            !(out = sb_fd_ostream_new(fd, argv[3])) ||
            sb_store_open_read(st, argv[4], &in, &err) < 0 ||
            sb_stream_copy(in, out, &n, &err) < 0 || sb_ostream_close(out, &err) < 0)
            goto out;
    }
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "store_copy: %s\n", err.msg[0] ? err.msg : "failed");
    sb_ostream_free(out);
    sb_istream_free(in);
    if (fd >= 0)
        close(fd);
    sb_store_free(st);
    sb_config_free(cfg);
    return rc;
}
EOF
# shellcheck disable=SC2046
cc -O2 -D_GNU_SOURCE -I"$ROOT/include" -I"$BUILD" -o "$WORK/store_copy" "$WORK/store_copy.c" \
    "$BUILD/libsnapback.a" $(pkg-config --cflags --libs libarchive libzstd libsodium libcjson libssh2 sqlite3) \
    -lpthread -lm

log "writing $SIZE_MIB MiB of random data"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$WORK/data.bin"
SFTP=(sftp -q -i "$SSHD_CLIENT_KEY" -o "UserKnownHostsFile=$SSHD_KNOWN_HOSTS" -o BatchMode=yes
    -P "$SSHD_PORT" -b "$WORK/batch" "$(id -un)@127.0.0.1")

measure() { # measure CMD...: "WALL CPU" seconds of CMD (the client side), which must succeed
    /usr/bin/time -f '%e %U %S' -o "$WORK/.time" "$@" >/dev/null || fail "failed: $*"
    awk '{ printf "%.3f %.3f\n", $1, $2 + $3 }' "$WORK/.time"
}
best() { printf '%s\n' "$@" | sort -g | head -n 1; } # best "WALL CPU"...: the fastest run

declare -a sb_put ssh_put sb_get ssh_get
for round in $(seq "$ROUNDS"); do
    rm -f "$REPO/sb.bin" "$REPO/ssh.bin"
    sync
    sb_put+=("$(measure "$WORK/store_copy" put "$CFG" "$WORK/data.bin" sb.bin)")
    echo "put $WORK/data.bin $REPO/ssh.bin" >"$WORK/batch"
    ssh_put+=("$(measure "${SFTP[@]}")")
    cmp "$WORK/data.bin" "$REPO/sb.bin" || fail "the upload differs"
    sync
    sb_get+=("$(measure "$WORK/store_copy" get "$CFG" "$WORK/back-sb.bin" sb.bin)")
    echo "get $REPO/ssh.bin $WORK/back-ssh.bin" >"$WORK/batch"
    ssh_get+=("$(measure "${SFTP[@]}")")
    cmp "$WORK/data.bin" "$WORK/back-sb.bin" || fail "the download differs"
    rm -f "$WORK/back-sb.bin" "$WORK/back-ssh.bin"
    log "round $round (wall s, client cpu s): put snapback ${sb_put[-1]}, sftp ${ssh_put[-1]}; get snapback ${sb_get[-1]}, sftp ${ssh_get[-1]}"
done

report() { # report WHAT "SNAPBACK_WALL CPU" "OPENSSH_WALL CPU"
    awk -v what="$1" -v a="$2" -v b="$3" -v mib="$SIZE_MIB" 'BEGIN {
        split(a, x, " "); split(b, y, " ")
        printf "%-9s snapback %6.1f MiB/s (%.2f s, client cpu %.2f s)   OpenSSH %6.1f MiB/s (%.2f s, client cpu %.2f s)   ratio %.2fx\n",
               what, mib / x[1], x[1], x[2], mib / y[1], y[1], y[2], y[1] / x[1] }'
}
echo
echo "SFTP store vs OpenSSH sftp, $SIZE_MIB MiB of random data, loopback, best of $ROUNDS, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
report upload "$(best "${sb_put[@]}")" "$(best "${ssh_put[@]}")"
report download "$(best "${sb_get[@]}")" "$(best "${ssh_get[@]}")"
