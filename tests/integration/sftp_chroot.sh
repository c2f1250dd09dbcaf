#!/usr/bin/env bash
# A chrooted, SFTP-only account (issue #4; contrib/sftp-server.md): 'Match User' with
# ChrootDirectory (root-owned, as sshd demands) and ForceCommand internal-sftp, the repository
# in a user-owned directory inside it, addressed by its path in the chroot (/backups). init,
# snapshot, list, verify, restore and config check work; the objects land inside the chroot;
# the account cannot run commands; and a path outside the chroot cannot be reached.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
sb_setup "$@"
[[ $(id -u) == 0 ]] || skip "needs root (useradd, a root-owned chroot)"
need useradd userdel ssh
sshd_chroot_dir
CHUSER=sb-chroot-$$ # one name per run: tests may run side by side
SSHD_EXTRA_CONFIG="Match User $CHUSER
    ChrootDirectory $SSHD_CHROOT
    ForceCommand internal-sftp -u 0077
    AllowTcpForwarding no
    X11Forwarding no
    PermitTTY no"
sshd_setup
sshd_add_user "$CHUSER"
sed -i 's/^/restrict /' "$SSHD_DIR/authorized_keys/$CHUSER" # as contrib/sftp-server.md says
mkdir "$SSHD_CHROOT/backups"
chown "$CHUSER" "$SSHD_CHROOT/backups"
chmod 0700 "$SSHD_CHROOT/backups"

sftp_env "$CHUSER" /backups
REPO=$SSHD_CHROOT/backups # where the repository is on the server's disk
sb_init
check "snapback.json is inside the chroot" test -f "$REPO/snapback.json"
sb_snapshot --tag chroot
id=$SNAP_ID
check "the manifest is inside the chroot" test -f "$REPO/demo/snapshots/$id.manifest"
check "the objects belong to the account" test "$(stat -c %U "$REPO/demo/snapshots/$id.manifest")" = "$CHUSER"
expect_ok sb list
expect_out_contains "$id"
expect_ok sb verify latest
expect_ok sb restore "$id" --target "$WORK/restored"
compare_trees "$APP/releases/20260102T000000Z" "$WORK/restored/releases/20260102T000000Z" noroot
compare_trees "$APP/shared/uploads" "$WORK/restored/shared/uploads" noroot
expect_ok sb config check
expect_out_contains "ok    remote path '/backups' is writable"

# The chroot's root itself belongs to root: a repository there cannot be created.
sftp_config "$CFG" "sftp://$CHUSER@127.0.0.1:$SSHD_PORT/elsewhere"
expect_exit 77 sb init
expect_err_contains "the remote user '$CHUSER' cannot write to '/elsewhere'"
check "nothing outside the chroot's backups dir" test "$(ls -A "$SSHD_CHROOT")" = backups

# Paths are resolved inside the chroot: $WORK on the host is not reachable.
sftp_config "$CFG" "sftp://$CHUSER@127.0.0.1:$SSHD_PORT$WORK"
expect_exit 66 sb list

# ForceCommand internal-sftp: no shell for this account.
run ssh -i "$SSHD_CLIENT_KEY" -o UserKnownHostsFile="$SSHD_KNOWN_HOSTS" -o BatchMode=yes \
    -p "$SSHD_PORT" "$CHUSER@127.0.0.1" id
check "the account cannot run commands" test "$RC" != 0 -o "${OUT}" != "$(id "$CHUSER")"
check "no uid line from a shell" test "${OUT/uid=/}" = "$OUT"
