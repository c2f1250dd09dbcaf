#!/usr/bin/env bash
# A release must not change while it is archived (DESIGN §4): a file rewritten, added or
# removed after the archive walk passed it fails the snapshot with exit 75 and "changed while
# it was archived", and leaves no manifest, no release object and no partial file; the next
# run succeeds. Both ways a release is stored are covered: the first snapshot of a release name
# (archived at once, then one fingerprint walk compared with what the archive walk saw) and a
# release name seen before (fingerprint walks before and after). The change is made at the
# exact point between the archive and the walk after it (test hook SNAPBACK_TEST_PAUSE_AT), so
# nothing here depends on timing.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
sb_init
export SNAPBACK_TEST_HOOKS=1

# paused_snapshot CMD...: a snapshot that stops after its archive, CMD, then the snapshot goes
# on; sets RC, OUT, ERR.
paused_snapshot() { paused_snapshot_at release-archived -- "$@"; }
release_objects() { find "$REPO/demo/releases" -maxdepth 1 -type f 2>/dev/null | wc -l || true; }
manifests() { find "$REPO/demo/snapshots" -maxdepth 1 -type f -name '*.manifest' 2>/dev/null | wc -l || true; }
nothing_left() { # $1: manifests expected, $2: release objects expected
    check "exit 75 (temporary: run again)" test "$RC" = 75
    expect_err_contains "changed while it was archived"
    check "no new manifest" test "$(manifests)" -eq "$1"
    check "no new release object" test "$(release_objects)" -eq "$2"
    check "no partial file" test -z "$(find "$REPO" "$STATE" -name '*.partial' -o -name '*-new-*')"
}
R2=$APP/releases/20260102T000000Z
R1=$APP/releases/20260101T000000Z

log "first snapshot of a release name, a file rewritten after it was archived"
paused_snapshot sh -c "printf 'changed\n' >>'$R2/app/main.rb'"
nothing_left 0 0
sb_snapshot
first=$SNAP_ID
check "the next run stores the release" test "$(release_objects)" -eq 1

log "a release name seen before (walks before and after), a file added meanwhile"
printf 'hotfix\n' >"$R2/HOTFIX" # the release differs from the stored one: archived again
paused_snapshot touch "$R2/app/added-meanwhile.rb"
nothing_left 1 1

log "first snapshot of another release name, a file removed meanwhile"
ln -sfn releases/20260101T000000Z "$APP/current"
paused_snapshot rm "$R1/REVISION"
nothing_left 1 1

log "the same point with no change: the snapshot is stored and restores"
paused_snapshot true
check "exit 0" test "$RC" = 0
check "a second release object" test "$(release_objects)" -eq 2
id=$(printf '%s\n' "$OUT" | tail -n 1)
expect_ok sb verify "$id"
expect_ok sb restore "$id" --target "$WORK/restored" --only release
compare_trees "$R1" "$WORK/restored/releases/20260101T000000Z"
expect_ok sb verify "$first"

log "killed right after the archive of a new release name: the next run stores it, prune removes the orphan"
mkdir -p "$APP/releases/R3" && printf 'r3\n' >"$APP/releases/R3/REVISION"
ln -sfn releases/R3 "$APP/current"
expect_exit 137 env SNAPBACK_TEST_KILL_AT=release-archived:1 "$SNAPBACK" --config "$CFG" --no-progress snapshot
check "the killed run left its archive under a pending name" test -n "$(find "$REPO/demo/releases" -name 'R3-new-*.snpb')"
manifests_before=$(manifests)
sb_snapshot
check "the next run stored R3 under its fingerprint" test -n "$(find "$REPO/demo/releases" -name 'R3-[0-9a-f]*.snpb' ! -name '*-new-*')"
check "one more snapshot" test "$(manifests)" -eq $((manifests_before + 1))
"$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["retention"] = {"keep_last": 100}
json.dump(c, open(sys.argv[1], "w"))' "$CFG"
find "$REPO/demo" -type f -exec touch -d '7 hours ago' {} +
expect_ok sb prune
check "prune removed the orphaned pending archive" test -z "$(find "$REPO/demo/releases" -name '*-new-*')"
expect_ok sb verify --all


log "a socket in the release (a stale app.sock) is skipped with a warning, not a failure"
"$PYTHON" -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$APP/releases/R3/app.sock"
sb_snapshot
expect_err_contains "app.sock' is a socket: not archived"
expect_ok sb restore "$SNAP_ID" --target "$WORK/with-socket" --only release
check "the release is restored" test -f "$WORK/with-socket/releases/R3/REVISION"
check "without the socket" test ! -e "$WORK/with-socket/releases/R3/app.sock"
sb_snapshot
expect_err_contains "unchanged since an earlier snapshot"
