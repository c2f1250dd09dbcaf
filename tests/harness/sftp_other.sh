# shellcheck shell=bash
# The repository cycle run against SFTP servers that are not OpenSSH's (sftp_paramiko.sh,
# sftp_proftpd.sh). Source it after lib.sh and sshd.sh (for sftp_config). The test defines:
#
#   start_server HOST_KEY   start its server with that host key (a private key file); set PORT
#   stop_server             stop it (also when it is not running)
#
# and sets D (its work dir), SSHD_CLIENT_KEY (an identity the server accepts for the login),
# SSHD_KNOWN_HOSTS (a path) and, when the login is not the user running the test, OTHER_USER
# (who must be able to write $WORK/remote) before calling:
#
#   other_trust KEY.pub     known_hosts with that key for [127.0.0.1]:$PORT, and the config
#                           rewritten for $PORT
#   other_setup             the app, the config (keep_last 2), init; sets APP KEY STATE CFG REPO
#   other_cycle             two snapshots (the second reuses the release; FIRST_ERR holds the
#                           first one's stderr), list, show, verify --all, ls, a byte-for-byte
#                           restore, prune (keep_last 2 of 3), a snapshot while the server is
#                           down (spool, 69) pushed once it is back, a server with only an RSA
#                           host key, and a changed host key (77, nothing written). It starts
#                           and stops the server itself (with $D/host_key, $D/rsa_key,
#                           $D/other_key, which it makes when missing).

# Helpers for start_server/stop_server of servers started as a background job:
#   other_free_port         PORT=a free port of 127.0.0.1
#   other_wait NAME LOG...  wait until $PORT accepts connections; fail (naming NAME, with the
#                           logs' tails) when SERVER_PID exits or after 10 s
#   other_stop              stop SERVER_PID and its sessions (children), wait for it
other_free_port() {
    PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
}

other_wait() {
    local name=$1 tries=0
    shift
    until "$PYTHON" -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$PORT" 2>/dev/null; do
        ((tries++ < 200)) || fail "$name did not start (log: $(tail -n 5 "$@" 2>/dev/null))"
        kill -0 "$SERVER_PID" 2>/dev/null || fail "$name exited (log: $(tail -n 5 "$@" 2>/dev/null))"
        sleep 0.05
    done
}

other_stop() {
    [[ -n ${SERVER_PID:-} ]] || return 0
    pkill -P "$SERVER_PID" 2>/dev/null || true
    kill "$SERVER_PID" 2>/dev/null || true
    local tries=0
    while kill -0 "$SERVER_PID" 2>/dev/null && ((tries++ < 100)); do sleep 0.05; done
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

other_trust() {
    printf '[127.0.0.1]:%s %s\n' "$PORT" "$(cut -d' ' -f1,2 "$1")" >"$SSHD_KNOWN_HOSTS"
    sftp_config "$CFG" "sftp://${OTHER_USER:-$(id -un)}@127.0.0.1:$PORT$REPO"
    "$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["retention"] = {"keep_last": 2}
json.dump(c, open(sys.argv[1], "w"))' "$CFG"
}

_other_key() {
    [[ -e $D/$1 ]] || ssh-keygen -q -t "$2" "${@:3}" -N '' -C "snapback-test-$1" -f "$D/$1"
}

other_setup() {
    _other_key host_key ed25519
    # shellcheck disable=SC2034 # read by the tests and by lib.sh
    APP=$WORK/app KEY=$WORK/key STATE=$WORK/state CFG=$WORK/snapback.json REPO=$WORK/remote
    make_app "$APP" 20260101T000000Z 20260102T000000Z
    mkdir -p "$APP/shared/uploads/2026"
    head -c 3000000 /dev/urandom >"$APP/shared/uploads/2026/big.bin"
    start_server "$D/host_key"
    other_trust "$D/host_key.pub"
    log "init"
    sb_init
    check "the repository is on the server's filesystem" test -s "$REPO/snapback.json"
}

other_cycle() {
    log "two snapshots"
    sb_snapshot
    local first=$SNAP_ID second offline
    # shellcheck disable=SC2034 # read by the test
    FIRST_ERR=$ERR
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
    expect_ok sb ls "$first" shared/uploads/2026
    expect_out_contains " shared/uploads/2026/big.bin"
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
    other_trust "$D/host_key.pub"
    expect_ok sb push
    expect_ok sb verify "$offline"

    log "a server with only an RSA host key (older servers): the same repository, known_hosts with its key"
    stop_server
    _other_key rsa_key rsa -b 2048 -m PEM
    start_server "$D/rsa_key"
    other_trust "$D/rsa_key.pub"
    sb_snapshot
    expect_ok sb verify "$SNAP_ID"

    log "a changed host key is refused with 77, nothing written"
    stop_server
    _other_key other_key ed25519
    start_server "$D/other_key"
    other_trust "$D/host_key.pub"
    local before
    before=$(find "$REPO" -type f | sort)
    expect_exit 77 sb snapshot
    expect_err_contains "$(ssh-keygen -lf "$D/other_key.pub" | awk '{print $2}')"
    check "nothing written on the server" test "$(find "$REPO" -type f | sort)" = "$before"
    stop_server
}
