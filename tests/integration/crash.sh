#!/usr/bin/env bash
# A snapshot killed with SIGKILL at any moment leaves the repository valid (DESIGN §6, §10):
# killed after fixed delays (20, 100, 300, 700 ms) and at fractions of a measured full run,
# and at three exact moments found by watching the repository (kill_at.py --when-new: the
# release object renamed into place, the last object renamed into place before the manifest,
# the manifest's temp file written). After each kill: `list` shows exactly the manifests
# present and every one of them verifies (no partial snapshot is ever visible), the snapshot
# taken before still restores equal to its source, and the lock is free. At the end a new
# snapshot succeeds. A restore killed midway leaves no target. Leftover *.partial files are
# allowed (prune removes them) but never count as a snapshot.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
MIB=${CRASH_MIB:-384}

sb_init
sb_snapshot --tag base
S0=$SNAP_ID
S0_REL=20260102T000000Z
cp -a "$APP/shared/uploads" "$WORK/uploads-at-S0"

# a big new release (and more shared data): a snapshot now takes a while
BIG=20260103T000000Z
"$PYTHON" "$INTEGRATION_DIR/make_tree.py" bulk "$APP/releases/$BIG" --mib "$MIB" --files 96
"$PYTHON" "$INTEGRATION_DIR/make_tree.py" bulk "$APP/shared/uploads/bulk" --mib 64 --files 16
ln -sfn "releases/$BIG" "$APP/current"

# how long a full snapshot takes here (in a scratch copy, so the release is not stored yet)
cp -a "$REPO" "$WORK/repo.scratch"
sed -e "s|\"$REPO\"|\"$WORK/repo.scratch\"|" -e "s|\"$STATE\"|\"$WORK/state.scratch\"|" "$CFG" >"$WORK/scratch.json"
t0=$(date +%s%N)
expect_ok "$SNAPBACK" --config "$WORK/scratch.json" snapshot
D=$((($(date +%s%N) - t0) / 1000000))
rm -rf "$WORK/repo.scratch" "$WORK/state.scratch"
log "a full snapshot of $MIB MiB takes $D ms here"
((D >= 300)) || log "warning: the snapshot is fast ($D ms); late fixed delays may kill nothing"

sleep 1.1 # the next snapshots get ids after S0's
completed=0

# after_kill RESULT-JSON WHAT: the checks after every kill
after_kill() {
    local res=$1 what=$2
    log "$what: $res"
    local n listed
    n=$(manifest_count)
    expect_ok sb list --json
    listed=$(json_get "$OUT" 'len(j)')
    check "$what: list shows exactly the $n manifest(s) present" test "$listed" = "$n"
    check "$what: no partial file is listed as a snapshot" test -z "$(json_get "$OUT" '[s["id"] for s in j if "partial" in s["id"]]' | tr -d '[]')"
    expect_ok sb verify --all
    rm -rf "$WORK/r0"
    expect_ok sb restore "$S0" --target "$WORK/r0"
    compare_trees "$APP/releases/$S0_REL" "$WORK/r0/releases/$S0_REL" noroot >/dev/null
    compare_trees "$WORK/uploads-at-S0" "$WORK/r0/shared/uploads" noroot >/dev/null
    rm -rf "$WORK/r0"
    check "$what: the lock is free" flock -n "$STATE/lock" true
    if [[ $(json_get "$res" 'j["killed"]') == false ]]; then
        completed=$((completed + 1))
    fi
}

# fresh_release: a new fingerprint for the big release (one mtime changes), so the next
# snapshot archives it again instead of reusing an object a completed run stored
ROUND=0
fresh_release() {
    ROUND=$((ROUND + 1))
    touch -d "@$((1700000000 + ROUND))" "$APP/releases/$BIG/tiny"
}

kill_after() {
    local ms=$1
    local res
    fresh_release
    res=$("$PYTHON" "$INTEGRATION_DIR/kill_at.py" --after-ms "$ms" -- \
        "$SNAPBACK" --config "$CFG" --no-progress snapshot)
    after_kill "$res" "killed after $ms ms"
}

kill_when() {
    local pattern=$1 what=$2
    local res
    fresh_release
    res=$("$PYTHON" "$INTEGRATION_DIR/kill_at.py" --root "$REPO" --when-new "$pattern" -- \
        "$SNAPBACK" --config "$CFG" --no-progress snapshot)
    after_kill "$res" "$what"
    KILL_RESULT=$res
}

for ms in 20 100 300 700 $((D / 2)) $((D * 8 / 10)) $((D * 95 / 100)); do
    kill_after "$ms"
done

# exact moments: the release object is in place, nothing else of the snapshot is
kill_when "demo/releases/$BIG-*.snpb" "killed when the release object was renamed into place"
check "the release object was seen" test "$(json_get "$KILL_RESULT" 'j["seen"] is not None')" = true

# between the last object and the manifest
n_before=$(manifest_count)
kill_when "demo/data/*/shared-0.snpb" "killed between the objects and the manifest"
check "the last object was seen" test "$(json_get "$KILL_RESULT" 'j["seen"] is not None')" = true
if [[ $(json_get "$KILL_RESULT" "len(j['manifests_at_kill'])") == "$n_before" ]]; then
    check "killed before the manifest: no new snapshot" test "$(manifest_count)" = "$n_before"
    check "its last object is an orphan on disk" test -e "$REPO/$(json_get "$KILL_RESULT" 'j["seen"]')"
else
    log "note: the manifest was already written when the kill came (window missed)"
fi

# while the manifest's temp file exists
n_before=$(manifest_count)
kill_when "demo/snapshots/*.partial" "killed while the manifest was being written"
if [[ $(json_get "$KILL_RESULT" 'j["seen"] is not None') == true ]]; then
    check "a manifest temp file is not a snapshot" test "$(manifest_count)" = "$n_before"
fi

leftovers=$(find "$REPO" -name '*.partial' | wc -l)
log "leftover *.partial files after the kills: $leftovers (allowed; prune removes them)"

# a later snapshot succeeds and is complete
n_before=$(manifest_count)
sb_snapshot --tag after-crashes
S1=$SNAP_ID
check "the new snapshot is listed" test "$(manifest_count)" = $((n_before + 1))
expect_ok sb verify --all
expect_ok sb restore "$S1" --target "$WORK/r1"
compare_trees "$APP/releases/$BIG" "$WORK/r1/releases/$BIG" noroot
compare_trees "$APP/shared/uploads" "$WORK/r1/shared/uploads" noroot
rm -rf "$WORK/r1"

# a restore killed midway leaves no target (a temp dir beside it may remain)
for ms in 50 $((D / 3)) $((D * 2 / 3)); do
    res=$("$PYTHON" "$INTEGRATION_DIR/kill_at.py" --after-ms "$ms" -- \
        "$SNAPBACK" --config "$CFG" --no-progress restore "$S1" --target "$WORK/rk")
    log "restore killed after $ms ms: $res"
    if [[ $(json_get "$res" 'j["killed"]') == true ]]; then
        check "killed restore: no target" test ! -e "$WORK/rk"
    else
        compare_trees "$APP/releases/$BIG" "$WORK/rk/releases/$BIG" noroot
        rm -rf "$WORK/rk"
    fi
    check "killed restore: the lock is free" flock -n "$STATE/lock" true
done
expect_ok sb verify --all
log "$completed of the killed snapshots had completed before the kill"
