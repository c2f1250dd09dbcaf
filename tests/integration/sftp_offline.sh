#!/usr/bin/env bash
# A snapshot while the SFTP server is down (issue #4, DESIGN §6): the snapshot is taken into
# the spool all the same, from state_dir's copy of the repository's snapback.json (kept by the
# last run that reached the server), and the run exits 69 naming the snapshot and how it will
# be uploaded; its id is printed. The release is archived again under a name of its own, so
# that its upload never replaces the object earlier snapshots reference. Once the server is
# back, 'push' (or the next snapshot) uploads it; every snapshot verifies and restores. Without
# the copy (a state_dir that never reached the server) there is nothing to go on: 69, nothing
# written. While the server is down, list and show answer from this host's catalog and exit
# 69, as status does. A host key that changed is never a reason to go offline (77).
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
sb_setup "$@"
sftp_app_snapshot
first=$FIRST
check "the run that reached the server kept a copy of snapback.json" test -s "$STATE/remote.json"
check "the copy is private (0600)" test "$(stat -c %a "$STATE/remote.json")" = 600
release_objects_before=$(find "$REPO/demo/releases" -type f | sort)

log "the server is down: the snapshot goes into the spool, exit 69"
sshd_stop
printf 'uploaded while offline\n' >"$APP/shared/uploads/offline.txt"
expect_exit 69 sb snapshot
offline=$(printf '%s\n' "$OUT" | tail -n 1)
check "the snapshot's id is printed" grep -Eq '^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$' <<<"$offline"
expect_err_contains "the snapshot goes into the spool"
expect_err_contains "snapshot '$offline' is complete in the spool"
expect_err_contains "'snapback push' uploads it"
check "its manifest waits in the spool" test -f "$SPOOL/snapshots/$offline.manifest"
check "its release is stored under a name of its own" \
    test -n "$(find "$SPOOL/releases" -name "R2-*-$offline.snpb")"
check "nothing on the server changed" test "$(find "$REPO/demo/releases" -type f | sort)" = "$release_objects_before"
expect_exit 69 sb status
expect_out_contains "remote    UNREACHABLE: cannot connect to 127.0.0.1"
expect_out_contains "newest    $offline"
expect_out_contains "file(s) in the spool"
expect_exit 69 sb status --json
check "status --json parses and says so" test "$(json_get "$OUT" 'j["newest"]["id"] + " " + str("remote_unreachable" in j)')" = "$offline True"

expect_exit 69 sb list
expect_err_contains "listing the snapshots this host took, from its catalog"
expect_out_contains "$first"
expect_out_contains "$offline"
expect_exit 69 sb list --json
check "list --json parses and has both snapshots" test "$(json_get "$OUT" '" ".join(s["id"] for s in j)')" = "$offline $first"
expect_exit 69 sb show "$offline"
expect_out_contains "snapshot   $offline"
expect_err_contains "showing this host's catalog copy of the manifest"
expect_exit 69 sb show latest --json
check "show latest --json: the spooled snapshot" test "$(json_get "$OUT" 'j["id"]')" = "$offline"
expect_exit 69 sb show 20200101T000000Z-abcd
expect_err_contains "snapshot '20200101T000000Z-abcd' is not in this host's catalog (it holds the snapshots this host took), and the repository"

log "a second snapshot while still down: also into the spool"
expect_exit 69 sb snapshot
offline2=$(printf '%s\n' "$OUT" | tail -n 1)
check "a later id" test "$offline2" \> "$offline"

log "a run killed half-way while the server is down: the next runs and push are not hurt"
cp -a "$APP/releases/R2/REVISION" "$WORK/REVISION.orig"
printf 'changed offline\n' >>"$APP/releases/R2/REVISION" # a new fingerprint: archived again
expect_exit 137 env SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_KILL_AT=release-archived:1 \
    "$SNAPBACK" --config "$CFG" --no-progress snapshot
check "the killed run left no manifest in the spool" test "$(find "$SPOOL/snapshots" -name '*.manifest' | wc -l)" = 2
cp -a "$WORK/REVISION.orig" "$APP/releases/R2/REVISION" # as the earlier snapshots saw it

log "the server is back: push uploads both, everything verifies and restores"
sshd_start
expect_ok sb push
check "the spool is empty" test -z "$(find "$SPOOL" -type f)"
check "no partial file on the server" test -z "$(find "$REPO" -name '*.partial')"
expect_ok sb list --json
check "three snapshots on the server" test "$(json_get "$OUT" 'len(j)')" = 3
expect_ok sb verify --all
expect_ok sb restore "$offline" --target "$WORK/restored"
compare_trees "$APP/releases/R2" "$WORK/restored/releases/R2"
check "the upload made offline is in it" cmp -s "$APP/shared/uploads/offline.txt" "$WORK/restored/shared/uploads/offline.txt"
expect_ok sb verify "$first"
log "online again: the next snapshot reuses the release stored online"
sb_snapshot
expect_err_contains "unchanged since an earlier snapshot"

log "no copy of snapback.json (a state_dir that never reached the server): 69, nothing written"
sshd_stop
rm "$STATE/remote.json"
before=$(find "$STATE" -type f | sort)
expect_exit 69 sb snapshot
expect_err_contains "no snapshot could be taken into the spool instead"
expect_err_contains "remote.json"
check "nothing new in state_dir" test "$(find "$STATE" -type f ! -name journal.jsonl ! -name lock | sort)" = \
    "$(grep -v -e journal.jsonl -e '/lock$' <<<"$before" || true)"

log "a host key that changed is refused (77), never a reason to go offline"
sshd_start
expect_ok sb list # writes the copy again
check "the copy is back" test -s "$STATE/remote.json"
sshd_new_host_key
expect_exit 77 sb snapshot
check "nothing was spooled" test -z "$(find "$SPOOL" -type f)"
