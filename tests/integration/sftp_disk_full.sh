#!/usr/bin/env bash
# A full disk on the SFTP server (DESIGN §10): the repository is a 3 MiB tmpfs on the server's
# side. A snapshot too big for it is complete in the local spool first (DESIGN §6), then its
# upload fails: the run exits non-zero with the server's error and the file it was writing,
# leaves no partial file and no manifest on the server, and keeps the snapshot in the spool.
# Earlier snapshots still verify. Once the server has room, 'push' uploads what waited, and
# it verifies and restores. Needs root (mount).
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
sb_setup "$@"
[[ $(id -u) == 0 ]] || skip "mounting a small tmpfs needs root"
sshd_setup
APP=$WORK/app
make_app "$APP" R1 R2
sftp_env
mkdir -p "$REPO"
mount -t tmpfs -o size=3m,mode=0700 snapback-test-sftp "$REPO" 2>/dev/null || skip "cannot mount a tmpfs"
# unmounted before $WORK is removed, passed or failed (sshd.sh's EXIT trap stops sshd first)
at_exit umount -l "$REPO"
sb_init
sb_snapshot
first=$SNAP_ID
SPOOL=$STATE/spool/demo

log "a release that does not fit on the server"
head -c $((6 << 20)) /dev/urandom >"$APP/releases/R2/big.bin" # does not compress
run sb snapshot
CHECKS=$((CHECKS + 1))
[[ $RC != 0 ]] || fail "a snapshot that could not be uploaded exited 0"
log "exit $RC: ${ERR//$'\n'/ | }"
expect_err_contains "cannot write"
expect_err_contains "/demo/releases/"
expect_err_contains "a full disk or a quota on the server is the usual cause"
check "the snapshot is complete in the spool" test -n "$(find "$SPOOL" -name '*.manifest')"
check "no partial file on the server" test -z "$(find "$REPO" -name '*.partial' -o -name '*.tmp*')"
check "no second manifest on the server" test "$(manifest_count)" = 1
expect_ok sb verify "$first"
expect_ok sb status
expect_out_contains "in the spool"

log "with room on the server, push uploads what waited"
mount -o remount,size=64m "$REPO" || fail "cannot grow the tmpfs"
expect_ok sb push
check "the spool is empty" test -z "$(find "$SPOOL" -type f 2>/dev/null)"
check "two manifests on the server" test "$(manifest_count)" = 2
expect_ok sb verify --all
expect_ok sb restore latest --target "$WORK/back" --only release
check "the big file came back" cmp -s "$APP/releases/R2/big.bin" "$WORK/back/releases/R2/big.bin"
