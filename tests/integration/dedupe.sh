#!/usr/bin/env bash
# A release is archived once (DESIGN §4): a second snapshot of an unchanged release stores no
# new release object and its manifest references the stored one (release.reused); a changed
# file in the release (even only its mtime) makes the next snapshot store a new object; and
# switching `current` to another release stores that release; when another host took the
# newest snapshot of the app moments before, the next one warns that two hosts are not kept
# apart (not when it was an hour before).
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
sb_init

release_objects() { find "$REPO/demo/releases" -maxdepth 1 -type f -name '*.snpb' | LC_ALL=C sort; }
show_json() {
    expect_ok sb show "$1" --json
    printf '%s' "$OUT"
}

sb_snapshot
id1=$SNAP_ID
j1=$(show_json "$id1")
obj1=$(json_get "$j1" 'j["release"]["object"]')
check "1st snapshot: one release object" test "$(release_objects | wc -l)" -eq 1
check "1st snapshot: release.reused is false" test "$(json_get "$j1" 'j["release"]["reused"]')" = false
check "1st snapshot: the object exists" test -f "$REPO/demo/$obj1"
mtime_before=$(stat -c %Y.%y "$REPO/demo/$obj1")

sleep 1.1 # distinct second: ids sort by time
sb_snapshot
id2=$SNAP_ID
check "2nd snapshot has a new id" test "$id2" != "$id1"
j2=$(show_json "$id2")
check "2nd snapshot: still one release object" test "$(release_objects | wc -l)" -eq 1
check "2nd snapshot: release.reused is true" test "$(json_get "$j2" 'j["release"]["reused"]')" = true
check "2nd snapshot: same release object" test "$(json_get "$j2" 'j["release"]["object"]')" = "$obj1"
check "2nd snapshot: same fingerprint" test "$(json_get "$j2" 'j["release"]["fingerprint"]')" = "$(json_get "$j1" 'j["release"]["fingerprint"]')"
check "2nd snapshot: the object lists the same hash" test \
    "$(json_get "$j2" '[o["blake2b"] for o in j["objects"] if o["name"]==j["release"]["object"]][0]')" = \
    "$(json_get "$j1" '[o["blake2b"] for o in j["objects"] if o["name"]==j["release"]["object"]][0]')"
check "the stored object was not rewritten" test "$(stat -c %Y.%y "$REPO/demo/$obj1")" = "$mtime_before"
check "2nd snapshot: shared paths are stored again" test -f "$REPO/demo/data/$id2/shared-0.snpb"
expect_ok sb show "$id2"
expect_out_contains "stored by an earlier snapshot"
expect_ok sb verify "$id2"
expect_ok sb restore "$id2" --target "$WORK/r2"
compare_trees "$APP/releases/20260102T000000Z" "$WORK/r2/releases/20260102T000000Z" noroot

# touching a file (mtime only) changes the fingerprint: a new object
sleep 1.1
touch "$APP/releases/20260102T000000Z/REVISION"
sb_snapshot
id3=$SNAP_ID
j3=$(show_json "$id3")
check "3rd snapshot: two release objects" test "$(release_objects | wc -l)" -eq 2
check "3rd snapshot: release.reused is false" test "$(json_get "$j3" 'j["release"]["reused"]')" = false
check "3rd snapshot: a new object name" test "$(json_get "$j3" 'j["release"]["object"]')" != "$obj1"

# adding a file makes a new object too
sleep 1.1
echo new >"$APP/releases/20260102T000000Z/app/new.rb"
sb_snapshot
check "4th snapshot (file added): three release objects" test "$(release_objects | wc -l)" -eq 3

# switching current to the other release stores it; switching back reuses the 3rd's object
sleep 1.1
ln -sfn releases/20260101T000000Z "$APP/current"
sb_snapshot
j5=$(show_json "$SNAP_ID")
check "5th snapshot: the other release" test "$(json_get "$j5" 'j["release"]["name"]')" = 20260101T000000Z
check "5th snapshot: four release objects" test "$(release_objects | wc -l)" -eq 4
sleep 1.1
ln -sfn releases/20260102T000000Z "$APP/current"
sb_snapshot
j6=$(show_json "$SNAP_ID")
check "6th snapshot: back to the newer release, reused" test "$(json_get "$j6" 'j["release"]["reused"]')" = true
check "6th snapshot: still four release objects" test "$(release_objects | wc -l)" -eq 4

# --only shared stores no release at all
sleep 1.1
sb_snapshot --only shared
j7=$(show_json "$SNAP_ID")
check "--only shared: no release in the manifest" test "$(json_get "$j7" 'j.get("release")')" = null
check "--only shared: still four release objects" test "$(release_objects | wc -l)" -eq 4

expect_ok sb list --json
check "list shows 7 snapshots" test "$(json_get "$OUT" 'len(j)')" = 7
check "list is newest first" test "$(json_get "$OUT" 'j[0]["id"]')" = "$SNAP_ID"
expect_ok sb verify --all


# Release reuse reads manifests newest first and stops at the answer: an unreadable old
# manifest is not even opened (a repository of thousands of snapshots costs one manifest).
expect_ok sb list --json
first=$(json_get "$OUT" 'j[-1]["id"]')
cp -a "$REPO/demo/snapshots/$first.manifest" "$WORK/first.manifest"
flip_byte "$REPO/demo/snapshots/$first.manifest" 40
sleep 1.1
sb_snapshot
j8=$(show_json "$SNAP_ID")
check "8th snapshot: the release is reused" test "$(json_get "$j8" 'j["release"]["reused"]')" = true
check "8th snapshot: the oldest manifest was not read" bash -c "! grep -q 'unreadable manifest' <<<\"\$1\"" _ "$ERR"
cp -a "$WORK/first.manifest" "$REPO/demo/snapshots/$first.manifest"

# a chown alone (every mtime as it was: the fix after a deploy as the wrong user) changes the
# fingerprint too, and the new object has the new owner
if [[ $(id -u) == 0 ]]; then
    before=$(release_objects | wc -l)
    chown -R nobody "$APP/releases/20260102T000000Z/app"
    sb_snapshot
    idc=$SNAP_ID
    check "after a chown: one more release object" test "$(release_objects | wc -l)" -eq $((before + 1))
    check "after a chown: release.reused is false" test "$(json_get "$(show_json "$idc")" 'j["release"]["reused"]')" = false
    expect_ok sb restore "$idc" --target "$WORK/rc" --only release
    check "the restored files have the new owner" test "$(stat -c %U "$WORK/rc/releases/20260102T000000Z/app/main.rb")" = nobody
    chown -R root "$APP/releases/20260102T000000Z/app"
else
    log "SKIP: the chown case needs root"
fi

# Another host's snapshot of the same app is the newest (sbforge writes host "sbforge"): taken
# an hour ago (hosts that take turns), the next snapshot says nothing; taken moments ago (two
# hosts at the same time), it warns that they are not kept apart; the one after it does not.
if "$PYTHON" -c "import sys; sys.path.insert(0, '$INTEGRATION_DIR'); import sbforge" 2>/dev/null; then
    mkdir -p "$WORK/other/sub" && echo other >"$WORK/other/sub/f"
    tar --format=pax -C "$WORK/other" -cf "$WORK/other.tar" sub
    forge_other() {
        sleep 1.1 # the forged snapshot is the newest
        "$PYTHON" "$INTEGRATION_DIR/sbforge.py" snapshot --key "$KEY" --repo "$REPO" --app demo \
            --release "other=$WORK/other.tar" "$@" >/dev/null
        sleep 1.1
    }
    forge_other --age 3600
    sb_snapshot
    # shellcheck disable=SC2016 # expanded by the inner bash
    check "another host's snapshot of an hour ago: no warning" bash -c '! grep -q "was taken on host" <<<"$1"' _ "$ERR"
    forge_other
    sb_snapshot
    expect_err_contains "was taken on host 'sbforge'"
    expect_err_contains "s ago, and this is '$(hostname)': two hosts that snapshot one app at the same time are not kept apart"
    sb_snapshot
    # shellcheck disable=SC2016 # expanded by the inner bash
    check "the next snapshot does not warn again" bash -c '! grep -q "was taken on host" <<<"$1"' _ "$ERR"
else
    log "python3 cannot load libsodium/libzstd: the other-host warning is not checked"
fi
