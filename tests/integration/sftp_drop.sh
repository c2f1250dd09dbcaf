#!/usr/bin/env bash
# Dropped connections, refused connections and timeouts on an SFTP repository (issue #4):
# - sshd (the listener and every session) SIGKILLed in the middle of an upload: the snapshot
#   exits 69 naming the server, no manifest is on the server (the snapshot does not exist
#   there) and the snapshot is complete in the spool (state_dir/spool); after sshd restarts,
#   the next snapshot uploads it first, it verifies and restores byte-identically, the new
#   snapshot is taken too, and the older snapshot still verifies;
# - a session killed while verify reads a large object: the reader reconnects and resumes at
#   its offset, and verify passes;
# - sshd down while 'list' starts, back a moment later: list reconnects with backoff;
# - nothing listening: exit 69 naming host:port; a host name that does not resolve: exit 69;
#   sshd stopped (SIGSTOP): exit 69 'timed out after N s' within about N s.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
sb_setup "$@"
sshd_setup
sftp_env
BIG_MIB=${DROP_BIG_MIB:-192}

sb_init
sb_snapshot
first=$SNAP_ID

# A release large enough to be killed in the middle of (random data: zstd cannot shrink it).
REL=20260301T000000Z
mkdir -p "$APP/releases/$REL"
head -c $((BIG_MIB << 20)) /dev/urandom >"$APP/releases/$REL/big.bin"
echo "$REL" >"$APP/releases/$REL/REVISION"
ln -sfn "releases/$REL" "$APP/current"

log "snapshot of a $BIG_MIB MiB release; sshd is killed once 8 MiB are on the server"
"$SNAPBACK" --config "$CFG" --no-progress snapshot >"$WORK/snap.out" 2>"$WORK/snap.err" &
snap_pid=$!
big_partial() { [[ -n $(find "$REPO/demo/releases" -name '*.partial' -size +8M 2>/dev/null) ]]; }
killed=0
if while_running "$snap_pid" big_partial; then
    sshd_kill
    killed=1
fi
status=0
wait "$snap_pid" || status=$?
LAST_CMD="snapback snapshot (sshd killed mid-upload)"
RC=$status
cp "$WORK/snap.out" "$WORK/.out"
cp "$WORK/snap.err" "$WORK/.err"
ERR=$(cat "$WORK/snap.err")
check "sshd was killed during the upload" test "$killed" = 1
check "the snapshot exits 69" test "$status" = 69
expect_err_contains "127.0.0.1:$SSHD_PORT"
check "no new manifest on the server" test "$(manifest_count)" -eq 1
check "the release object was not completed" test -z "$(find "$REPO/demo/releases" -name "$REL-*.snpb")"
spooled=$(find "$STATE/spool" -name '*.manifest' -printf '%f\n' 2>/dev/null | sed 's/\.manifest$//')
check "the snapshot is complete in the spool" test -n "$spooled"
log "snapshot $spooled waits in the spool"

sshd_start
sb_snapshot
third=$SNAP_ID
check "the spooled and the new snapshot are on the server" test "$(manifest_count)" -eq 3
check "the spooled manifest is on the server" test -f "$REPO/demo/snapshots/$spooled.manifest"
check "the spool is empty" test -z "$(find "$STATE/spool" -type f 2>/dev/null)"
check "no partial file left" test -z "$(find "$REPO" -name '*.partial')"
second=$spooled
expect_ok sb verify "$first"
expect_ok sb verify "$third"
expect_ok sb restore "$second" --target "$WORK/restored" --only release
check "the big file is back byte for byte" cmp "$APP/releases/$REL/big.bin" "$WORK/restored/releases/$REL/big.bin"

# A session dies while verify reads the big object: the reader resumes on a new connection.
# (sshd's listener lives on; only the session processes under it are killed.)
"$SNAPBACK" --config "$CFG" --no-progress verify "$second" >"$WORK/verify.out" 2>"$WORK/verify.err" &
verify_pid=$!
for _ in $(seq 500); do
    [[ -n $(pgrep -P "$SSHD_PID" 2>/dev/null) ]] && break
    sleep 0.01
done
sleep 0.5
sessions=$(for p in $(pgrep -P "$SSHD_PID" 2>/dev/null); do _sshd_descendants "$p"; echo "$p"; done)
# shellcheck disable=SC2086
[[ -z $sessions ]] || kill -KILL $sessions 2>/dev/null || true
status=0
wait "$verify_pid" || status=$?
LAST_CMD="snapback verify $second (session killed mid-read)"
RC=$status
cp "$WORK/verify.out" "$WORK/.out"
cp "$WORK/verify.err" "$WORK/.err"
ERR=$(cat "$WORK/verify.err")
check "verify passes across the dropped session" test "$status" = 0
expect_err_contains "resuming"
expect_err_contains "on a new connection to 127.0.0.1:$SSHD_PORT"

# sshd down when list starts, back within the backoff: list reconnects.
sftp_config "$CFG" "$URL" '"retries": 5'
sed -i 's/"retries": 2, //' "$CFG"
sshd_kill
"$SNAPBACK" --config "$CFG" --no-progress list >"$WORK/list.out" 2>"$WORK/list.err" &
list_pid=$!
sleep 1
sshd_start
status=0
wait "$list_pid" || status=$?
LAST_CMD="snapback list (sshd down for 1 s)"
RC=$status
cp "$WORK/list.out" "$WORK/.out"
cp "$WORK/list.err" "$WORK/.err"
ERR=$(cat "$WORK/list.err")
OUT=$(cat "$WORK/list.out")
check "list succeeds after reconnecting" test "$status" = 0
expect_err_contains "connecting again (attempt 1 of 5)"
expect_out_contains "$second"

# Nothing listening, no retries: 69 at once, naming host:port.
sftp_config "$CFG" "$URL" '"retries": 0'
sed -i 's/"retries": 2, //' "$CFG"
sshd_stop
expect_exit 69 sb list
expect_err_contains "cannot connect to 127.0.0.1:$SSHD_PORT"
expect_err_contains "Connection refused"

# A host name that does not resolve: 69, naming it, at once (not retried).
sftp_config "$CFG" "sftp://$(id -un)@no-such-host.invalid:$SSHD_PORT$REPO"
expect_exit 69 sb list
expect_err_contains "cannot resolve the host of no-such-host.invalid:$SSHD_PORT"
sftp_config "$CFG" "$URL" '"retries": 0'
sed -i 's/"retries": 2, //' "$CFG"

# A server that stops answering: the timeout is its own error.
sshd_start
sftp_config "$CFG" "$URL" '"retries": 0, "timeout_s": 2'
sed -i -e 's/"retries": 2, //' -e 's/"timeout_s": 10, //' "$CFG"
sshd_signal STOP
t0=$SECONDS
expect_exit 69 sb list
sshd_signal CONT
expect_err_contains "timed out after 2 s talking to 127.0.0.1:$SSHD_PORT"
check "it gave up in time" test $((SECONDS - t0)) -le 8
expect_ok sb verify latest
