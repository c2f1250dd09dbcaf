#!/usr/bin/env bash
# verify for CI (issue #7) through the SFTP store, against a real OpenSSH sshd on loopback
# (tests/harness/sshd.sh): the failure kinds of verify.sh, made on the server's disk and read
# back over SFTP (a flipped byte in the second chunk, an object cut at a chunk boundary, a
# missing object, another snapshot's object in its place, a tampered manifest, a forged
# manifest whose recorded BLAKE2b does not match, a wrong key),
# and an unreachable server (sshd stopped: 69). For each: the exit status, the snapshot, the
# object and the byte offset in the message, --json parsed by python json and --junit by
# xml.etree (verify_reports.py): structure, counts, and the same failures named.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
# shellcheck source=tests/harness/verify_checks.sh
source "$HARNESS_DIR/verify_checks.sh"
sb_setup "$@"
sshd_setup

RELS=(20260101T000000Z 20260102T000000Z 20260103T000000Z)
APP=$WORK/app
make_app "$APP" "${RELS[@]}"
# 2.5 MiB of random data in the second release: its object has three chunks
head -c $((2500 * 1024)) /dev/urandom >"$APP/releases/${RELS[1]}/assets.bin"
sftp_env
sb_init
IDS=()
for idx in "${!RELS[@]}"; do
    ln -sfn "releases/${RELS[idx]}" "$APP/current"
    sb_snapshot
    IDS+=("$SNAP_ID")
done
log "snapshots over SFTP: ${IDS[*]}"
check "three manifests on the server" test "$(manifest_count)" -eq 3

HEADER=111
CHUNK=$((1048576 + 17))
BIG=${IDS[1]}
BIGREL=$(cd "$REPO/demo" && ls releases/"${RELS[1]}"-*.snpb)
save_base "$WORK/remote.base"

vr 0 "--all" --ok --tests 6

# a flipped byte in the second chunk: the chunk and its offset
reset_repo
flip_byte "$REPO/demo/$BIGREL" $((HEADER + CHUNK + 5))
verify_fails 65 "$BIG" "snapshot '$BIG'" "$BIGREL" "chunk 1 at byte $((HEADER + CHUNK))"
vr 65 "$BIG" --snapshot "$BIG" --failed "$BIGREL" --failed-text "at byte $((HEADER + CHUNK))" \
    --tests 2
vr 65 "--all" --snapshot "$BIG" --failed "$BIGREL" --tests 6

# cut at a chunk boundary
reset_repo
truncate_to "$REPO/demo/$BIGREL" $((HEADER + CHUNK))
verify_fails 65 "$BIG" "snapshot '$BIG'" "is $((HEADER + CHUNK)) bytes, the manifest records"
vr 65 "$BIG" --snapshot "$BIG" --failed "$BIGREL" --failed-text "the manifest records" --tests 2

# a missing object: 66
reset_repo
MISSING=data/${IDS[2]}/shared-0.snpb
rm "$REPO/demo/$MISSING"
verify_fails 66 "${IDS[2]}" "snapshot '${IDS[2]}'" "$MISSING"
vr 66 "${IDS[2]}" --snapshot "${IDS[2]}" --failed "$MISSING" --tests 2

# another snapshot's object in its place (same size: the shared path did not change)
swapped_object_case "${IDS[0]}" "${IDS[2]}" shared-0.snpb 2

# a tampered manifest
reset_repo
MAN=snapshots/${IDS[0]}.manifest
flip_byte "$REPO/demo/$MAN" 150
verify_fails 65 "${IDS[0]}" "$MAN" "at byte"
vr 65 "--all" --snapshot "${IDS[0]}" --failed "$MAN" --failed-text "at byte" --tests 5

# a manifest that authenticates but records another BLAKE2b for one object (sbforge.py)
forged_manifest_case "${IDS[2]}" "data/${IDS[2]}/shared-0.snpb" 2

# a wrong key: the run fails before any snapshot is read
reset_repo
wrong_key_config
vr 65 "latest" --run-error "key" --tests 1
VCFG=

# the untouched repository verifies again
vr 0 "--all" --ok --tests 6

# the server is down: 69 naming host:port, and both reports say so
sshd_stop
started=$SECONDS
vr 69 "latest" --run-error "127.0.0.1:$SSHD_PORT" --tests 1
check "69 within 30 s" test $((SECONDS - started)) -lt 30
vr 69 "--all" --run-error "127.0.0.1:$SSHD_PORT" --tests 1
expect_exit 69 sb verify
expect_err_contains "127.0.0.1:$SSHD_PORT"
