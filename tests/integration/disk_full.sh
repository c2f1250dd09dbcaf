#!/usr/bin/env bash
# A full disk (DESIGN §10): a snapshot into a repository that runs out of space fails with
# exit 74 and a message that says to free space, through every thread of the pipeline (the
# error comes from the storing thread); it leaves no partial object and no manifest, the space
# it took is given back, earlier snapshots still verify, and the next run succeeds once there
# is room. The repository is a 3 MiB tmpfs (needs root to mount; skipped otherwise).
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
[[ $(id -u) == 0 ]] || skip "mounting a small tmpfs needs root"
sb_env
mkdir -p "$REPO"
mount -t tmpfs -o size=3m,mode=0700 snapback-test "$REPO" 2>/dev/null || skip "cannot mount a tmpfs"
# unmount before lib.sh removes $WORK, keeping the test's exit status
SMALL=$WORK/small-target
trap 'st=$?; umount -l "$REPO" 2>/dev/null; umount -l "$SMALL" 2>/dev/null; (exit $st); _cleanup' EXIT
sb_init
sb_snapshot
first=$SNAP_ID
used_before=$(du -sb "$REPO" | cut -f1)

REL=$APP/releases/20260102T000000Z
head -c $((8 << 20)) /dev/urandom >"$REL/big.bin" # does not compress: cannot fit
expect_exit 74 sb snapshot
expect_err_contains "free some space"
expect_err_contains "No space left on device"
check "no partial object left" test -z "$(find "$REPO" -name '*.partial')"
check "the space is given back" test "$(du -sb "$REPO" | cut -f1)" -le $((used_before + 4096))
expect_ok sb list --json
check "only the first snapshot is listed" test "$(json_get "$OUT" 'len(j)')" = 1
expect_ok sb verify "$first"

log "with room again, the next run succeeds"
rm "$REL/big.bin"
sb_snapshot
expect_ok sb verify latest

log "a restore into a filesystem without room: 74, says what to do, leaves nothing"
mkdir -p "$SMALL"
mount -t tmpfs -o size=1m,mode=0755 snapback-test-target "$SMALL" || fail "cannot mount a second tmpfs"
head -c $((3 << 20)) /dev/zero >"$REL/zeros.bin" # compresses to nothing: fits the repository
sb_snapshot
expect_exit 74 sb restore "$SNAP_ID" --target "$SMALL/out"
expect_err_contains "free some space there or restore to another --target"
expect_err_contains "No space left on device"
check "no target and no temp dir left" test -z "$(ls -A "$SMALL")"
expect_ok sb restore "$SNAP_ID" --target "$WORK/roomy"
check "restored elsewhere in full" cmp -s "$REL/zeros.bin" "$WORK/roomy/releases/20260102T000000Z/zeros.bin"
