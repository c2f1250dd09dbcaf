#!/usr/bin/env bash
# SFTP against a server that is not OpenSSH (tests/harness/sftp_paramiko.py: paramiko's server,
# SFTP version 3): no fsync@openssh.com (uploads are renamed into place with a warning, once
# per run), a plain rename that refuses an existing target, its own status codes and
# listings. init, snapshots (the second reuses the release), list, show, verify --all, restore
# byte for byte, prune and the offline spool work the same, also with an RSA host key; a
# changed host key is refused with 77 and nothing is written.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
sb_setup "$@"
need ssh-keygen
/usr/bin/python3 -c 'import paramiko' 2>/dev/null ||
    skip "python3-paramiko is not installed (apt-get install python3-paramiko; contrib/test.sh does)"
D=$WORK/paramiko
mkdir -p "$D"
ssh-keygen -q -t ed25519 -N '' -C paramiko-host -f "$D/host_key"
SSHD_CLIENT_KEY=$D/client_key
ssh-keygen -q -t ed25519 -N '' -C snapback-test-client -f "$SSHD_CLIENT_KEY"
SSHD_KNOWN_HOSTS=$D/known_hosts

# start_server HOST_KEY: the server on a port of its choosing (it writes it to a file)
start_server() {
    rm -f "$D/port"
    /usr/bin/python3 "$HARNESS_DIR/sftp_paramiko.py" --host-key "$1" \
        --authorized-key "$SSHD_CLIENT_KEY.pub" --port-file "$D/port" --log "$D/server.log" &
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

start_server "$D/host_key"
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$D/host_key.pub")" >"$SSHD_KNOWN_HOSTS"
log "paramiko $(/usr/bin/python3 -c 'import paramiko; print(paramiko.__version__)') SFTP server on 127.0.0.1:$PORT"
APP=$WORK/app KEY=$WORK/key STATE=$WORK/state CFG=$WORK/snapback.json REPO=$WORK/remote
make_app "$APP" 20260101T000000Z 20260102T000000Z
mkdir -p "$APP/shared/uploads/2026"
head -c 3000000 /dev/urandom >"$APP/shared/uploads/2026/big.bin"
sftp_config "$CFG" "sftp://$(id -un)@127.0.0.1:$PORT$REPO"
"$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["retention"] = {"keep_last": 2}
json.dump(c, open(sys.argv[1], "w"))' "$CFG"

log "init and two snapshots"
sb_init
check "the repository is on the server's filesystem" test -s "$REPO/snapback.json"
sb_snapshot
first=$SNAP_ID
expect_err_contains "does not support fsync@openssh.com"
check "the warning is given once per run" test "$(grep -c 'fsync@openssh.com' <<<"$ERR")" = 1
sb_snapshot
second=$SNAP_ID
expect_err_contains "is unchanged since an earlier snapshot"
check "one release object" test "$(find "$REPO/demo/releases" -name '*.snpb' | wc -l)" = 1
check "no partial file on the server" test -z "$(find "$REPO" -name '*.partial')"

log "list, show, verify, restore"
expect_ok sb list
expect_out_contains "$first"
expect_out_contains "$second"
expect_ok sb show "$first" --json
check "show names the release" test "$(json_get "$OUT" 'j["release"]["name"]')" = 20260102T000000Z
expect_ok sb verify --all
expect_ok sb restore "$first" --target "$WORK/restored"
compare_trees "$APP/releases/20260102T000000Z" "$WORK/restored/releases/20260102T000000Z"
compare_trees "$APP/shared/uploads" "$WORK/restored/shared/uploads"

log "prune: keep_last 2 of 3"
sb_snapshot
expect_ok sb prune
check "two manifests left" test "$(find "$REPO/demo/snapshots" -name '*.manifest' | wc -l)" = 2
check "the first snapshot's data is gone" test ! -e "$REPO/demo/data/$first"
expect_ok sb verify --all

log "the server is down: the snapshot goes into the spool; back up: push uploads it"
stop_server
expect_exit 69 sb snapshot
offline=$(printf '%s\n' "$OUT" | tail -n 1)
expect_err_contains "the snapshot goes into the spool"
start_server "$D/host_key"
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$D/host_key.pub")" >"$SSHD_KNOWN_HOSTS"
sftp_config "$CFG" "sftp://$(id -un)@127.0.0.1:$PORT$REPO"
expect_ok sb push
expect_ok sb verify "$offline"

log "a server with only an RSA host key (older servers): the same repository, known_hosts with its key"
stop_server
ssh-keygen -q -t rsa -b 2048 -N '' -m PEM -C paramiko-rsa -f "$D/rsa_key"
start_server "$D/rsa_key"
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$D/rsa_key.pub")" >"$SSHD_KNOWN_HOSTS"
sftp_config "$CFG" "sftp://$(id -un)@127.0.0.1:$PORT$REPO"
sb_snapshot
expect_ok sb verify "$SNAP_ID"

log "a changed host key is refused with 77, nothing written"
stop_server
ssh-keygen -q -t ed25519 -N '' -C paramiko-other -f "$D/other_key"
start_server "$D/other_key"
printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$D/host_key.pub")" >"$SSHD_KNOWN_HOSTS"
sftp_config "$CFG" "sftp://$(id -un)@127.0.0.1:$PORT$REPO"
before=$(find "$REPO" -type f | sort)
expect_exit 77 sb snapshot
expect_err_contains "$(ssh-keygen -lf "$D/other_key.pub" | awk '{print $2}')"
check "nothing written on the server" test "$(find "$REPO" -type f | sort)" = "$before"
stop_server
