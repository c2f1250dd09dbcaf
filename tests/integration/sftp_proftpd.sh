#!/usr/bin/env bash
# SFTP against ProFTPD's mod_sftp (Debian's proftpd-core and proftpd-mod-crypto), a server
# written apart from OpenSSH's and from libssh2: its own SSH transport, SFTP version 3 here,
# authorized keys in RFC 4716 format. The repository cycle of tests/harness/sftp_other.sh
# (init, snapshots with the release reused, list, show, verify --all, restore byte for byte,
# prune, the offline spool and push, an RSA host key, a changed host key refused with 77).
# Then what is particular to it:
# - it supports fsync@openssh.com: no warning about it;
# - small files are read without hundreds of read requests past their end (libssh2 asks for
#   4 x the buffer it is given; ProFTPD logs a warning for each request past the end);
# - its session process killed while verify reads a 64 MiB object: the reader resumes on a
#   new connection at its offset and verify passes;
# - every session ends with snapback's SSH_DISCONNECT, none with the server writing into a
#   closed connection.
# Runs as root only (ProFTPD switches to the logged-in user, here root); skips otherwise.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
# shellcheck source=tests/harness/sftp_other.sh
source "$HARNESS_DIR/sftp_other.sh"
sb_setup "$@"
need ssh-keygen
PROFTPD=${PROFTPD:-/usr/sbin/proftpd}
[[ -x $PROFTPD && -e /usr/lib/proftpd/mod_sftp.so ]] ||
    skip "ProFTPD with mod_sftp is not installed (apt-get install proftpd-core proftpd-mod-crypto; contrib/test.sh does)"
[[ $(id -u) == 0 ]] || skip "ProFTPD's test runs as root (it logs in as root)"
D=$WORK/proftpd
mkdir -p "$D"
SSHD_CLIENT_KEY=$D/client_key
ssh-keygen -q -t ed25519 -N '' -C snapback-test-client -f "$SSHD_CLIENT_KEY"
ssh-keygen -e -f "$SSHD_CLIENT_KEY.pub" >"$D/authorized_keys"
SSHD_KNOWN_HOSTS=$D/known_hosts
SERVER_PID=

# start_server HOST_KEY: ProFTPD in the foreground of a background job, on a free port.
start_server() {
    other_free_port
    cat >"$D/proftpd.conf" <<EOF
ServerName "snapback-test"
ServerType standalone
DefaultServer on
Port $PORT
DefaultAddress 127.0.0.1
SocketBindTight on
User root
Group root
PidFile $D/proftpd.pid
ScoreboardFile $D/scoreboard
DelayTable none
WtmpLog off
TransferLog none
SystemLog $D/system.log
RootLogin on
UseFtpUsers off
RequireValidShell off
AllowOverwrite on
ModulePath /usr/lib/proftpd
LoadModule mod_sftp.c
<IfModule mod_sftp.c>
  SFTPEngine on
  SFTPLog $D/sftp.log
  SFTPHostKey $1
  SFTPAuthMethods publickey
  SFTPAuthorizedUserKeys file:$D/authorized_keys
  SFTPCompression off
</IfModule>
EOF
    "$PROFTPD" -n -q -c "$D/proftpd.conf" >>"$D/server.out" 2>&1 &
    SERVER_PID=$!
    other_wait ProFTPD "$D/server.out" "$D/system.log"
}
stop_server() { other_stop; }
at_exit stop_server

other_setup
log "$("$PROFTPD" -v 2>&1 | head -n 1) (mod_sftp) on 127.0.0.1:$PORT"
other_cycle
ERR=$FIRST_ERR
# shellcheck disable=SC2016 # expanded by the inner bash
check "no warning about fsync@openssh.com (ProFTPD has it)" \
    bash -c '! grep -q "fsync@openssh.com" <<<"$1"' _ "$FIRST_ERR"

log "reads of small files: no flood of read requests past their end"
# ProFTPD logs "requested read offset (N bytes) greater than size of 'FILE'" for each; count
# them per session (the log's [pid]) and file.
most=$(sed -n "s/.*mod_sftp[^[]*\[\([0-9]*\)\].*greater than size of '\([^']*\)'.*/\1 \2/p" "$D/sftp.log" |
    sort | uniq -c | sort -rn | awk 'NR == 1 {n = $1} END {print n + 0}')
log "most read requests past the end of one file in one session: $most"
check "at most 30 read requests past the end of a file in a session (9 per read of a small file; were 280 per read of snapback.json or of the end of any object)" \
    test "$most" -le 30

log "the session is killed while verify reads a 64 MiB object: the read resumes"
start_server "$D/host_key"
other_trust "$D/host_key.pub"
head -c $((64 << 20)) /dev/urandom >"$APP/shared/uploads/2026/big.bin"
sb_snapshot
big=$SNAP_ID
"$SNAPBACK" --config "$CFG" --no-progress -v verify "$big" >"$WORK/verify.out" 2>"$WORK/verify.err" &
verify_pid=$!
# the session (a child of the listener) has read 8 MiB: it is in the middle of the object
session_read_8m() {
    session=$(pgrep -P "$SERVER_PID" 2>/dev/null | head -n 1 || true)
    [[ -n $session ]] &&
        (($(awk '$1 == "rchar:" {print $2}' "/proc/$session/io" 2>/dev/null || echo 0) > (8 << 20)))
}
killed=0
if while_running "$verify_pid" session_read_8m; then
    kill -9 "$session" 2>/dev/null && killed=1
fi
status=0
wait "$verify_pid" || status=$?
ERR=$(cat "$WORK/verify.err")
LAST_CMD="snapback verify $big (session killed)"
check "a session was killed during verify" test "$killed" = 1
check "verify passed (exit $status; $(tail -n 3 "$WORK/verify.err" | tr '\n' ' '))" test "$status" = 0
expect_err_contains "on a new connection to 127.0.0.1:$PORT"
stop_server

log "every session ended with snapback's goodbye"
# shellcheck disable=SC2016 # expanded by the inner bash
check "ProFTPD never wrote into a connection snapback had closed" \
    bash -c '! grep -q "Broken pipe" "$1"' _ "$D/sftp.log"
check "sessions said goodbye" grep -q "sent SSH_DISCONNECT message: snapback done" "$D/sftp.log"
