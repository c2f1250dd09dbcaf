#!/usr/bin/env bash
# SFTP against a server that is not OpenSSH (tests/harness/sftp_paramiko.py: paramiko's server,
# SFTP version 3): no fsync@openssh.com (uploads are renamed into place with a warning, once
# per run), a plain rename that refuses an existing target, its own status codes and
# listings. init, snapshots (the second reuses the release), list, show, verify --all, restore
# byte for byte, prune and the offline spool work the same, also with an RSA host key; a
# changed host key is refused with 77 and nothing is written. A server that refuses FSTAT on
# open files: objects are still read (without their size).
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
# shellcheck source=tests/harness/sftp_other.sh
source "$HARNESS_DIR/sftp_other.sh"
sb_setup "$@"
need ssh-keygen
/usr/bin/python3 -c 'import paramiko' 2>/dev/null ||
    skip "python3-paramiko is not installed (apt-get install python3-paramiko; contrib/test.sh does)"
D=$WORK/paramiko
mkdir -p "$D"
SSHD_CLIENT_KEY=$D/client_key
ssh-keygen -q -t ed25519 -N '' -C snapback-test-client -f "$SSHD_CLIENT_KEY"
SSHD_KNOWN_HOSTS=$D/known_hosts

# start_server HOST_KEY: the server on a port of its choosing (it writes it to a file)
start_server() {
    rm -f "$D/port"
    # shellcheck disable=SC2086 # PARAMIKO_FLAGS: words
    /usr/bin/python3 "$HARNESS_DIR/sftp_paramiko.py" --host-key "$1" \
        --authorized-key "$SSHD_CLIENT_KEY.pub" --port-file "$D/port" --log "$D/server.log" \
        ${PARAMIKO_FLAGS:-} &
    SERVER_PID=$!
    local tries=0
    until [[ -s $D/port ]]; do
        ((tries++ < 200)) || fail "the paramiko server did not start (log: $(tail -n 5 "$D/server.log" 2>/dev/null))"
        kill -0 "$SERVER_PID" 2>/dev/null || fail "the paramiko server exited (log: $(tail -n 5 "$D/server.log" 2>/dev/null))"
        sleep 0.05
    done
    PORT=$(cat "$D/port")
}
stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

other_setup
log "paramiko $(/usr/bin/python3 -c 'import paramiko; print(paramiko.__version__)') SFTP server on 127.0.0.1:$PORT"
other_cycle
ERR=$FIRST_ERR
expect_err_contains "does not support fsync@openssh.com"
check "the warning is given once per run" test "$(grep -c 'fsync@openssh.com' <<<"$FIRST_ERR")" = 1

log "a server that refuses FSTAT on open files: objects are read without knowing their size"
PARAMIKO_FLAGS=--no-fstat
start_server "$D/host_key"
other_trust "$D/host_key.pub"
head -c 3000000 /dev/urandom >"$APP/shared/uploads/2026/other.bin"
sb_snapshot
expect_ok sb verify "$SNAP_ID"
expect_ok sb restore "$SNAP_ID" --target "$WORK/restored-nofstat" --only shared
compare_trees "$APP/shared/uploads" "$WORK/restored-nofstat/shared/uploads"
stop_server
