#!/usr/bin/env bash
# SFTP through Dropbear (Debian's dropbear-bin), an SSH server written apart from OpenSSH and
# libssh2 (its own transport, key exchange, channel windows and key formats) that runs
# OpenSSH's sftp-server for the SFTP subsystem, as NAS boxes and small devices do. The
# repository cycle of tests/harness/sftp_other.sh (init, snapshots with the release reused,
# list, show, verify --all, restore byte for byte, prune, the offline spool and push, an RSA
# host key, a changed host key refused with 77), as a user created for the test (Dropbear
# reads ~/.ssh/authorized_keys), then a repository in that user's home (sftp://u@h/~/DIR).
# Runs as root only (useradd); skips otherwise or without dropbear.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
# shellcheck source=tests/harness/sftp_other.sh
source "$HARNESS_DIR/sftp_other.sh"
sb_setup "$@"
need ssh-keygen
DROPBEAR=${DROPBEAR:-/usr/sbin/dropbear}
if [[ ! -x $DROPBEAR ]] || ! command -v dropbearconvert >/dev/null; then
    skip "Dropbear is not installed (apt-get install dropbear-bin; contrib/test.sh does)"
fi
[[ $(id -u) == 0 ]] || skip "Dropbear's test runs as root (it creates a user with useradd)"
[[ -x /usr/lib/sftp-server ]] || skip "no /usr/lib/sftp-server for Dropbear to run (openssh-sftp-server)"
D=$WORK/dropbear
mkdir -p "$D"
OTHER_USER=sb-drop-$$ # one name per run: tests may run side by side
HOMEDIR=$WORK/home-$OTHER_USER
tries=0
until useradd -M -N -p '*' -s /bin/sh -d "$HOMEDIR" "$OTHER_USER" 2>"$WORK/.useradd.err"; do
    ((tries++ < 50)) || fail "useradd $OTHER_USER: $(cat "$WORK/.useradd.err")"
    sleep 0.1 # another test holds the passwd lock
done
at_exit userdel "$OTHER_USER"
SSHD_CLIENT_KEY=$D/client_key
ssh-keygen -q -t ed25519 -N '' -C snapback-test-client -f "$SSHD_CLIENT_KEY"
mkdir -p "$HOMEDIR/.ssh" "$WORK/remote"
cp "$SSHD_CLIENT_KEY.pub" "$HOMEDIR/.ssh/authorized_keys"
chmod 0700 "$HOMEDIR/.ssh"
chmod 0600 "$HOMEDIR/.ssh/authorized_keys"
chown -R "$OTHER_USER" "$HOMEDIR" "$WORK/remote"
SSHD_KNOWN_HOSTS=$D/known_hosts
SERVER_PID=

# start_server HOST_KEY: Dropbear in the foreground of a background job, on a free port, with
# the key converted to its own format; password logins off.
start_server() {
    rm -f "$1.dropbear"
    dropbearconvert openssh dropbear "$1" "$1.dropbear" >/dev/null 2>&1 ||
        fail "dropbearconvert cannot read $1"
    other_free_port
    "$DROPBEAR" -F -E -s -p "127.0.0.1:$PORT" -r "$1.dropbear" -P "$D/dropbear.pid" >>"$D/server.log" 2>&1 &
    SERVER_PID=$!
    other_wait Dropbear "$D/server.log"
}
stop_server() { other_stop; }
at_exit stop_server

other_setup
log "$("$DROPBEAR" -V 2>&1 | head -n 1) on 127.0.0.1:$PORT, login $OTHER_USER"
other_cycle
check "the objects belong to the login" test "$(stat -c %U "$REPO/snapback.json")" = "$OTHER_USER"

log "a repository in the login's home: sftp://$OTHER_USER@127.0.0.1:PORT/~/backups/shop"
start_server "$D/host_key"
other_trust "$D/host_key.pub"
sftp_config "$CFG" "sftp://$OTHER_USER@127.0.0.1:$PORT/~/backups/shop"
STATE=$WORK/state-home
sed -i "s|\"state_dir\": \"[^\"]*\"|\"state_dir\": \"$STATE\"|" "$CFG"
expect_ok sb init
check "the repository is in the home directory" test -s "$HOMEDIR/backups/shop/snapback.json"
sb_snapshot
expect_ok sb verify "$SNAP_ID"
stop_server
