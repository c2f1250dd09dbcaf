# shellcheck shell=bash
# A real OpenSSH sshd on loopback for the SFTP tests (tests/integration/sftp_*.sh). Source it
# after lib.sh and call sshd_setup after sb_setup: it makes a throwaway ed25519 host key, a
# client key, an sshd_config (NOTES.md "Servers in tests"), starts sshd on a free port of
# 127.0.0.1 in the foreground of a background job, and writes $SSHD_KNOWN_HOSTS with
# ssh-keyscan. Everything lives in $WORK/sshd; sshd, its sessions and the users this file
# created are stopped/removed on exit, even on failure.
#
#   sshd_setup                  start it; sets SSHD_PORT, SSHD_DIR, SSHD_KNOWN_HOSTS,
#                               SSHD_CLIENT_KEY (identity file, authorized for root)
#   sshd_start / sshd_stop      start again on the same port / stop gracefully
#   sshd_kill                   SIGKILL sshd and every session process under it
#   sshd_signal SIG             send SIG to sshd and its sessions (STOP/CONT for timeouts)
#   sshd_new_host_key           restart with another host key (known_hosts is not updated)
#   sshd_add_user NAME          a system user (created if missing) whose authorized_keys holds
#                               the client key; removed on exit when this file created it
#   sftp_config FILE URL [JSON] a config like lib.sh's make_config, with an sftp repository:
#                               identity_file, known_hosts, short timeouts, plus JSON members
#                               added inside "repository" (e.g. '"retries": 0')
#   sshd_chroot_dir             sets SSHD_CHROOT to a new root-owned 0755 directory for
#                               ChrootDirectory (outside /tmp: sshd wants every component of
#                               the path root-owned and not writable by others); removed on
#                               exit
#   sftp_env [USER [PATH]]      the standard layout of lib.sh's sb_env over SFTP: $APP, $KEY,
#                               $STATE, $CFG, $URL, and $REPO (the repository on the server's
#                               disk, for inspection)
#   sftp_app_snapshot           sshd_setup, make_app (R1, R2), sftp_env, keygen, init and one
#                               snapshot; sets FIRST (its id) and SPOOL (the app's spool)
# Extra sshd_config lines (Match blocks) go in SSHD_EXTRA_CONFIG before sshd_setup.

SSHD_BIN=${SSHD_BIN:-/usr/sbin/sshd}
SSHD_PID=
SSHD_USERS_CREATED=()
SSHD_CHROOTS=()
SSHD_KEY_GEN=0

_sshd_descendants() {
    local pid=$1 child
    for child in $(pgrep -P "$pid" 2>/dev/null || true); do
        _sshd_descendants "$child"
        echo "$child"
    done
}

# sshd_signal SIG: the sessions first, then the listener.
sshd_signal() {
    local sig=$1 pids
    [[ -n $SSHD_PID ]] || return 0
    pids=$(_sshd_descendants "$SSHD_PID")
    # shellcheck disable=SC2086
    [[ -z $pids ]] || kill "-$sig" $pids 2>/dev/null || true
    kill "-$sig" "$SSHD_PID" 2>/dev/null || true
}

_sshd_wait_gone() {
    local pid=$1 tries=0
    while kill -0 "$pid" 2>/dev/null && ((tries++ < 100)); do sleep 0.05; done
    wait "$pid" 2>/dev/null || true
}

sshd_kill() {
    [[ -n $SSHD_PID ]] || return 0
    log "killing sshd (pid $SSHD_PID) and its sessions with SIGKILL"
    sshd_signal KILL
    _sshd_wait_gone "$SSHD_PID"
    SSHD_PID=
}

sshd_stop() {
    [[ -n $SSHD_PID ]] || return 0
    sshd_signal CONT
    sshd_signal TERM
    _sshd_wait_gone "$SSHD_PID"
    SSHD_PID=
}

_sshd_write_config() {
    cat >"$SSHD_DIR/sshd_config" <<EOF
Port $SSHD_PORT
ListenAddress 127.0.0.1
HostKey $SSHD_HOST_KEY
PidFile $SSHD_DIR/sshd.pid
AuthorizedKeysFile $SSHD_DIR/authorized_keys/%u
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
PermitRootLogin prohibit-password
MaxStartups 100
LogLevel VERBOSE
Subsystem sftp internal-sftp
${SSHD_EXTRA_CONFIG:-}
EOF
}

sshd_start() {
    mkdir -p /run/sshd
    _sshd_write_config
    "$SSHD_BIN" -t -f "$SSHD_DIR/sshd_config" || fail "sshd refuses its config: $SSHD_DIR/sshd_config"
    "$SSHD_BIN" -D -f "$SSHD_DIR/sshd_config" -E "$SSHD_DIR/sshd.log" &
    SSHD_PID=$!
    local tries=0
    until (exec 3<>"/dev/tcp/127.0.0.1/$SSHD_PORT") 2>/dev/null; do
        ((tries++ < 200)) || fail "sshd did not start listening on 127.0.0.1:$SSHD_PORT (log: $(tail -n 5 "$SSHD_DIR/sshd.log" 2>/dev/null))"
        kill -0 "$SSHD_PID" 2>/dev/null || fail "sshd exited: $(tail -n 5 "$SSHD_DIR/sshd.log" 2>/dev/null)"
        sleep 0.05
    done
}

_sshd_new_key_file() {
    SSHD_KEY_GEN=$((SSHD_KEY_GEN + 1))
    SSHD_HOST_KEY=$SSHD_DIR/host_key_$SSHD_KEY_GEN
    ssh-keygen -q -t ed25519 -N '' -C "snapback-test-host-$SSHD_KEY_GEN" -f "$SSHD_HOST_KEY"
}

sshd_new_host_key() {
    sshd_stop
    _sshd_new_key_file
    sshd_start
    log "sshd restarted with a new host key: $(ssh-keygen -lf "$SSHD_HOST_KEY.pub")"
}

# sshd_fingerprint: the host key's SHA256 fingerprint as ssh-keygen prints it.
sshd_fingerprint() {
    ssh-keygen -lf "$SSHD_HOST_KEY.pub" | awk '{print $2}'
}

sshd_add_user() {
    local name=$1 tries=0
    if ! id "$name" >/dev/null 2>&1; then
        # useradd fails while another test holds the passwd lock: try again.
        until useradd -M -N -p '*' -s /bin/sh "$name" 2>"$WORK/.useradd.err"; do
            ((tries++ < 50)) || fail "useradd $name: $(cat "$WORK/.useradd.err")"
            sleep 0.1
        done
        SSHD_USERS_CREATED+=("$name")
    fi
    cp "$SSHD_CLIENT_KEY.pub" "$SSHD_DIR/authorized_keys/$name"
    chmod 0644 "$SSHD_DIR/authorized_keys/$name"
}

sshd_chroot_dir() {
    SSHD_CHROOT=$(mktemp -d /var/lib/snapback-test-chroot.XXXXXX)
    chmod 0755 "$SSHD_CHROOT"
    SSHD_CHROOTS+=("$SSHD_CHROOT")
}

_sshd_cleanup() {
    sshd_stop
    local name tries dir
    for dir in "${SSHD_CHROOTS[@]}"; do
        if [[ ${SNAPBACK_KEEP_WORKDIR:-0} == 1 ]]; then
            printf '[%s] chroot kept: %s\n' "$TEST_NAME" "$dir" >&2
        else
            rm -rf "$dir"
        fi
    done
    SSHD_CHROOTS=()
    for name in "${SSHD_USERS_CREATED[@]}"; do
        tries=0
        until userdel "$name" 2>/dev/null; do
            ((tries++ < 50)) || break
            sleep 0.1
        done
    done
    SSHD_USERS_CREATED=()
}

sshd_setup() {
    need "$SSHD_BIN" ssh-keygen ssh-keyscan
    SSHD_DIR=$WORK/sshd
    mkdir -p "$SSHD_DIR/authorized_keys"
    # Stop sshd before lib.sh removes $WORK; _cleanup reads the test's exit status from $?.
    # shellcheck disable=SC2154 # _sshd_status is set inside the trap
    trap '_sshd_status=$?; trap - ERR; set +e; _sshd_cleanup; (exit $_sshd_status); _cleanup' EXIT
    SSHD_PORT=$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    _sshd_new_key_file
    SSHD_CLIENT_KEY=$SSHD_DIR/client_key
    ssh-keygen -q -t ed25519 -N '' -C snapback-test-client -f "$SSHD_CLIENT_KEY"
    cp "$SSHD_CLIENT_KEY.pub" "$SSHD_DIR/authorized_keys/$(id -un)"
    sshd_start
    SSHD_KNOWN_HOSTS=$SSHD_DIR/known_hosts
    ssh-keyscan -p "$SSHD_PORT" -t ed25519 127.0.0.1 >"$SSHD_KNOWN_HOSTS" 2>/dev/null
    [[ -s $SSHD_KNOWN_HOSTS ]] || fail "ssh-keyscan found no key on 127.0.0.1:$SSHD_PORT"
    log "sshd on 127.0.0.1:$SSHD_PORT (pid $SSHD_PID), host key $(sshd_fingerprint)"
}

sftp_config() {
    local file=$1 url=$2 extra=${3:-}
    cat >"$file" <<EOF
{
  "app": "demo",
  "release": { "root": "$APP", "shared_paths": ["shared/uploads"] },
  "repository": { "url": "$url", "identity_file": "$SSHD_CLIENT_KEY",
                  "known_hosts": "$SSHD_KNOWN_HOSTS", "timeout_s": 10, "retries": 2${extra:+, $extra} },
  "key_file": "$KEY",
  "state_dir": "$STATE",
  "compression": { "level": 3, "threads": 2 }
}
EOF
}

sftp_env() {
    local user=${1:-$(id -un)} path=${2:-$WORK/remote}
    APP=$WORK/app
    KEY=$WORK/key
    STATE=$WORK/state
    CFG=$WORK/snapback.json
    # shellcheck disable=SC2034 # read by the tests and by lib.sh's manifest_count
    REPO=$path
    URL=sftp://$user@127.0.0.1:$SSHD_PORT$path
    [[ -d $APP ]] || make_app "$APP" 20260101T000000Z 20260102T000000Z
    sftp_config "$CFG" "$URL"
}

# sftp_app_snapshot: sshd, the standard app (releases R1 and R2) on an SFTP repository, keygen,
# init and one snapshot; sets FIRST (its id) and SPOOL (the app's spool directory).
sftp_app_snapshot() {
    sshd_setup
    APP=$WORK/app
    make_app "$APP" R1 R2
    sftp_env
    sb_init
    sb_snapshot
    FIRST=$SNAP_ID
    SPOOL=$STATE/spool/demo
}
