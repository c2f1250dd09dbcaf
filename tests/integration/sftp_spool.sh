#!/usr/bin/env bash
# The spool of an SFTP repository (issue #4): a snapshot is written into state_dir/spool and
# uploaded objects first, manifests last. A run killed after a manifest reached the server
# but before it left the spool must not block later runs: the next snapshot sees the same
# bytes on the server, counts it as uploaded and goes on; a different manifest under the same
# name is refused (73). 'push' with an empty spool is a no-op; status shows what is pending.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
sb_setup "$@"
sftp_app_snapshot
first=$FIRST
[[ -z $(find "$SPOOL" -type f 2>/dev/null) ]] || fail "the spool is not empty after a good snapshot"
CHECKS=$((CHECKS + 1))

# the state after a crash between the manifest's upload and its removal from the spool
mkdir -p "$SPOOL/snapshots"
cp "$REPO/demo/snapshots/$first.manifest" "$SPOOL/snapshots/"
expect_ok sb status
expect_out_contains "1 file(s) in the spool"
sb_snapshot
[[ -z $(find "$SPOOL" -type f) ]] || fail "the stale spool entry was not cleared"
[[ $(manifest_count) == 2 ]] || fail "expected 2 manifests on the server, found $(manifest_count)"
CHECKS=$((CHECKS + 2))

# a different manifest under an existing name is not silently dropped
mkdir -p "$SPOOL/snapshots"
cp "$REPO/demo/snapshots/$SNAP_ID.manifest" "$SPOOL/snapshots/$first.manifest"
expect_exit 73 sb push
[[ -f $SPOOL/snapshots/$first.manifest ]] || fail "a conflicting manifest left the spool"
CHECKS=$((CHECKS + 1))
rm "$SPOOL/snapshots/$first.manifest"
expect_ok sb push
expect_out_contains "0 file(s) uploaded"
expect_ok sb verify --all
