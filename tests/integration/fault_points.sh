#!/usr/bin/env bash
# System calls of the tree walk that fail where no real fault can be arranged, through the
# test hook SNAPBACK_TEST_FAIL_AT=NAME:N:ERRNO (src/core/util.c):
# - an lseek(SEEK_DATA) that fails half-way through a sparse file's map: the file is stored
#   whole (a partial map would have dropped its later data as holes) and comes back with the
#   same bytes;
# - a readdir that fails in a shared path (volatile): ENOENT (the directory was removed while
#   it was read) skips it with a warning, EIO fails the snapshot naming the directory;
# - the same ENOENT in a release (immutable) fails with 75, "run the snapshot again";
# - inside the digest walk after the archive (src/sources/tree_digest.c): an entry that
#   vanishes between its listing and its stat fails with 75 and stores nothing; a helper
#   thread that cannot be created leaves the walk to the threads it has, and the snapshot is
#   stored and restores the same tree.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
need_holes
sb_init
sb_snapshot
EIO=5 ENOENT=2

log "lseek(SEEK_DATA) fails at the second data region: the file is stored whole"
R3=$APP/releases/20260103T000000Z
mkdir -p "$R3"
truncate -s 8M "$R3/three-regions.img"
write_at "$R3/three-regions.img" 0 'first'
write_at "$R3/three-regions.img" $((4 * 1024 * 1024)) 'second'
write_at "$R3/three-regions.img" $((8 * 1024 * 1024 - 5)) 'third'
ln -sfn releases/20260103T000000Z "$APP/current"
SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_FAIL_AT=sparse-seek:2:$EIO sb_snapshot
expect_ok sb restore "$SNAP_ID" --target "$WORK/whole" --only release
f=$WORK/whole/releases/20260103T000000Z/three-regions.img
check "same bytes, the later regions included" cmp -s "$R3/three-regions.img" "$f"
check "stored whole: no holes restored ($(stat -c %b "$f") blocks)" test "$(stat -c %b "$f")" -ge 16000
expect_ok sb verify "$SNAP_ID"
log "the same without the fault: stored with its holes (the test above measures the fallback)"
mkdir -p "$APP/releases/20260104T000000Z"
cp --sparse=always "$R3/three-regions.img" "$APP/releases/20260104T000000Z/"
ln -sfn releases/20260104T000000Z "$APP/current"
sb_snapshot
expect_ok sb restore "$SNAP_ID" --target "$WORK/holes" --only release
f=$WORK/holes/releases/20260104T000000Z/three-regions.img
check "same bytes" cmp -s "$R3/three-regions.img" "$f"
check "with its holes ($(stat -c %b "$f") blocks)" test "$(stat -c %b "$f")" -le 200

log "readdir fails with ENOENT in a shared path: skipped with a warning"
mkdir -p "$APP/shared/uploads/a" && printf 'a\n' >"$APP/shared/uploads/a/file"
before=$(manifest_count)
# the release is stored already, so the first readdir of the walk is the shared path's root
SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_FAIL_AT=walk-readdir:1:$ENOENT sb_snapshot
expect_err_contains "vanished"
check "a snapshot is stored" test "$(manifest_count)" -eq $((before + 1))

log "readdir fails with EIO in a shared path: the snapshot fails and names the directory"
before=$(manifest_count)
RC=0
SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_FAIL_AT=walk-readdir:1:$EIO expect_exit 74 sb snapshot
expect_err_contains "cannot read directory '$APP/shared/uploads'"
check "no snapshot is stored" test "$(manifest_count)" -eq "$before"
check "no partial file" test -z "$(find "$REPO" "$STATE" -name '*.partial' -o -name '*-new-*')"

log "readdir fails with ENOENT in a release: 75, run again"
mkdir -p "$APP/releases/20260105T000000Z/sub" && printf 'x\n' >"$APP/releases/20260105T000000Z/sub/x"
ln -sfn releases/20260105T000000Z "$APP/current"
SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_FAIL_AT=walk-readdir:1:$ENOENT expect_exit 75 sb snapshot
expect_err_contains "run the snapshot again"
check "no snapshot is stored" test "$(manifest_count)" -eq "$before"
sb_snapshot
expect_ok sb verify --all

log "a release entry vanishes inside the digest walk after the archive: 75, run again"
R6=$APP/releases/20260106T000000Z
mkdir -p "$R6/a" "$R6/b" && printf '1\n' >"$R6/a/one" && printf '2\n' >"$R6/b/two"
ln -sfn releases/20260106T000000Z "$APP/current"
before=$(manifest_count)
# the digest walk is the only caller of this point: its third entry "vanishes"
SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_FAIL_AT=digest-stat:3:$ENOENT expect_exit 75 sb snapshot
expect_err_contains "vanished while the release was read"
expect_err_contains "run the snapshot again"
check "no snapshot is stored" test "$(manifest_count)" -eq "$before"
check "no partial file" test -z "$(find "$REPO" "$STATE" -name '*.partial' -o -name '*-new-*')"

log "the digest walk gets no thread for a helper: it walks with the threads it has"
if (($(nproc) < 2)); then
    log "one CPU: the digest walk starts no helper here, nothing to fail (not a failure)"
else
    # a wide tree, so that a helper would have had directories to take
    for d in $(seq 1 40); do mkdir -p "$R6/w$d/x" && printf '%s\n' "$d" >"$R6/w$d/x/f"; done
    SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_FAIL_AT=digest-thread:1:11 sb_snapshot --verbose
    expect_err_contains "1 thread(s) of $(($(nproc) > 4 ? 4 : $(nproc))); no thread for another helper"
    check "a snapshot is stored" test "$(manifest_count)" -eq $((before + 1))
    expect_ok sb restore "$SNAP_ID" --target "$WORK/r6" --only release
    compare_trees "$R6" "$WORK/r6/releases/20260106T000000Z"
fi
expect_ok sb verify --all
