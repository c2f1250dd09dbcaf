#!/usr/bin/env bash
# Host keys (DESIGN §10: unknown or changed SFTP host keys are refused with the fingerprint in
# the message; no trust-on-first-use unless 'remote trust'):
# - an empty known_hosts: exit 77 naming the key type, the SHA256 fingerprint (as ssh-keygen
#   prints it) and 'snapback remote trust'; a plain "127.0.0.1" entry does not count for
#   another port;
# - 'remote trust' without a terminal and without --yes adds nothing (exit 64); with --yes it
#   creates the file 0600 in a new 0700 dir, and then every command works; a second run says
#   it is already trusted; existing lines are kept;
# - hashed known_hosts entries (ssh-keygen -H) work;
# - sshd restarted with another host key: exit 77 with 'CHANGED' and the new fingerprint, and
#   'remote trust --yes' refuses to replace it;
# - a key marked @revoked (with any host pattern) is refused with 77 naming the line, also
#   when a plain line trusts it, and 'remote trust' does not add it; a @revoked line for
#   another key changes nothing;
# - without repository.known_hosts, /etc/ssh/ssh_known_hosts is read too (as root: the test
#   adds a line and puts the file back): a key there is known (config check and remote trust
#   name that file), a @revoked line there is refused; with known_hosts set it is not read.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
sb_setup "$@"
sshd_setup
need setsid
sftp_env
fpr=$(sshd_fingerprint)

# A trusted setup first, so that later failures are about the key only.
sb_init
sb_snapshot
first=$SNAP_ID

# --- unknown key
KH=$WORK/ssh-new/known_hosts # the dir does not exist yet
sftp_config "$CFG" "$URL"
sed -i "s|\"known_hosts\": \"$SSHD_KNOWN_HOSTS\"|\"known_hosts\": \"$KH\"|" "$CFG"
expect_exit 77 sb list
expect_err_contains "host key of '127.0.0.1:$SSHD_PORT' is not known (ED25519 $fpr); run 'snapback remote trust' to add it to '$KH'"
check "nothing was created by a refused connection" test ! -e "$WORK/ssh-new"

# A plain host name entry is for port 22 only, as in OpenSSH.
mkdir -m 0700 "$WORK/ssh-new"
sed "s/^\[127.0.0.1\]:$SSHD_PORT /127.0.0.1 /" "$SSHD_KNOWN_HOSTS" >"$KH"
expect_exit 77 sb list
expect_err_contains "is not known (ED25519 $fpr)"
rm -rf "$WORK/ssh-new"

# remote trust: no terminal, no --yes -> nothing added
expect_exit 64 setsid -w "$SNAPBACK" --config "$CFG" remote trust </dev/null
expect_out_contains "$fpr"
expect_err_contains "remote trust --yes"
check "known_hosts not created without consent" test ! -e "$KH"

# On a terminal (script(1) gives it one): anything but y/yes adds nothing.
if command -v script >/dev/null; then
    printf 'n\n' >"$WORK/answer"
    expect_exit 77 script -qec "$(printf '%q ' "$SNAPBACK" --config "$CFG" remote trust)" /dev/null <"$WORK/answer"
    expect_out_contains "add it to '$KH'? [y/N]"
    expect_out_contains "was not added"
    check "known_hosts not created after 'n'" test ! -e "$KH"
    printf 'y\n' >"$WORK/answer"
    expect_ok script -qec "$(printf '%q ' "$SNAPBACK" --config "$CFG" remote trust)" /dev/null <"$WORK/answer"
    expect_out_contains "added the ED25519 key of '[127.0.0.1]:$SSHD_PORT' to '$KH'"
    rm -rf "$WORK/ssh-new"
fi

expect_ok sb remote trust --yes
expect_out_contains "127.0.0.1:$SSHD_PORT presents an ED25519 host key:"
expect_out_contains "$fpr"
expect_out_contains "added the ED25519 key of '[127.0.0.1]:$SSHD_PORT' to '$KH'"
check "known_hosts is 0600" test "$(stat -c %a "$KH")" = 600
check "its new dir is 0700" test "$(stat -c %a "$WORK/ssh-new")" = 700
check "ssh-keygen finds the entry" grep -q "^\[127.0.0.1\]:$SSHD_PORT ssh-ed25519 " "$KH"
check "no temp file left" test "$(find "$WORK/ssh-new" -type f | wc -l)" -eq 1
expect_ok sb list
expect_out_contains "$first"
expect_ok sb remote trust --yes
expect_out_contains "already trusted"
check "still one line" test "$(wc -l <"$KH")" -eq 1

# Existing lines (comments, other hosts, a key type libssh2 may not read) are kept.
KH2=$WORK/kh2
{
    echo "# managed by hand"
    echo "example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    echo "@cert-authority *.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
} >"$KH2"
cp "$KH2" "$WORK/kh2.orig"
chmod 0644 "$KH2"
sed -i "s|\"known_hosts\": \"$KH\"|\"known_hosts\": \"$KH2\"|" "$CFG"
expect_exit 77 sb list
expect_ok sb remote trust --yes
check "the three old lines are kept" test "$(head -n 3 "$KH2")" = "$(cat "$WORK/kh2.orig")"
check "one line added" test "$(wc -l <"$KH2")" -eq 4
check "the mode of an existing file is kept" test "$(stat -c %a "$KH2")" = 644
expect_ok sb list

# Hashed entries, as Debian's ssh writes them (HashKnownHosts yes).
cp "$SSHD_KNOWN_HOSTS" "$WORK/kh-hashed"
ssh-keygen -q -H -f "$WORK/kh-hashed" >/dev/null 2>&1
rm -f "$WORK/kh-hashed.old"
check "the entry is hashed" grep -q '^|1|' "$WORK/kh-hashed"
sed -i "s|\"known_hosts\": \"$KH2\"|\"known_hosts\": \"$WORK/kh-hashed\"|" "$CFG"
expect_ok sb list
expect_out_contains "$first"

# --- changed key
sftp_config "$CFG" "$URL"
sshd_new_host_key
newfpr=$(sshd_fingerprint)
check "the new key differs" test "$newfpr" != "$fpr"
for cmd in list "verify latest" snapshot; do
    # shellcheck disable=SC2086
    expect_exit 77 sb $cmd
    expect_err_contains "WARNING: the host key of '127.0.0.1:$SSHD_PORT' has CHANGED (now ED25519 $newfpr)"
done
check "no snapshot was taken" test "$(manifest_count)" -eq 1
expect_exit 77 sb remote trust --yes
expect_err_contains "CHANGED"
check "known_hosts unchanged" test "$(wc -l <"$SSHD_KNOWN_HOSTS")" -eq 1

# After the operator removes the old key and trusts the new one, it works again.
ssh-keygen -q -R "[127.0.0.1]:$SSHD_PORT" -f "$SSHD_KNOWN_HOSTS" >/dev/null 2>&1
expect_ok sb remote trust --yes
expect_out_contains "$newfpr"
expect_ok sb verify "$first"

# --- a revoked key (OpenSSH's "@revoked" marker): refused even though a plain line trusts it
key_line=$(cut -d' ' -f1,2 "$SSHD_HOST_KEY.pub")
other_revoked=$(ssh-keygen -q -t ed25519 -N '' -f "$WORK/revoked-other" -C x >/dev/null && cut -d' ' -f1,2 "$WORK/revoked-other.pub")
printf '@revoked * %s\n' "$other_revoked" >>"$SSHD_KNOWN_HOSTS"
expect_ok sb list # a revoked line for another key changes nothing
printf '@revoked  *.example.org,127.0.0.1 %s old key\n' "$key_line" >>"$SSHD_KNOWN_HOSTS"
revoked_at=$(wc -l <"$SSHD_KNOWN_HOSTS")
before=$(manifest_count)
for cmd in list snapshot; do
    # shellcheck disable=SC2086
    expect_exit 77 sb $cmd
    expect_err_contains "the host key of '127.0.0.1:$SSHD_PORT' (ED25519 $newfpr) is marked @revoked in '$SSHD_KNOWN_HOSTS' line $revoked_at"
done
check "no snapshot was taken" test "$(manifest_count)" -eq "$before"
expect_exit 77 sb config check
expect_out_contains "@revoked"
cp "$SSHD_KNOWN_HOSTS" "$WORK/kh-before-trust"
expect_exit 77 sb remote trust --yes
expect_err_contains "is marked @revoked in '$SSHD_KNOWN_HOSTS' line $revoked_at: it is not added"
check "known_hosts unchanged by remote trust" cmp -s "$SSHD_KNOWN_HOSTS" "$WORK/kh-before-trust"
sed -i '$d' "$SSHD_KNOWN_HOSTS"
expect_ok sb list

# --- no repository.known_hosts: the system-wide file is read too, as ssh does
# (GlobalKnownHostsFile; configuration management writes host keys there). Root only: the
# test adds a line to /etc/ssh/ssh_known_hosts and puts the file back as it was on exit.
if [[ $(id -u) == 0 ]]; then
    SYS_KH=/etc/ssh/ssh_known_hosts
    mkdir -p /etc/ssh
    if [[ -e $SYS_KH ]]; then
        cp -p "$SYS_KH" "$WORK/system-known-hosts.orig"
        at_exit cp -p "$WORK/system-known-hosts.orig" "$SYS_KH"
    else
        at_exit rm -f "$SYS_KH"
    fi
    "$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1])); del c["repository"]["known_hosts"]
json.dump(c, open(sys.argv[1], "w"))' "$CFG"
    user_kh=$(getent passwd "$(id -un)" | cut -d: -f6)/.ssh/known_hosts
    if [[ -e $user_kh ]] && grep -q "127.0.0.1\]:$SSHD_PORT" "$user_kh"; then
        log "skipping the system known_hosts checks: $user_kh already has this port"
    else
        printf '[127.0.0.1]:%s %s\n' "$SSHD_PORT" "$key_line" >>"$SYS_KH"
        expect_ok sb list
        expect_out_contains "$first"
        expect_ok sb config check
        expect_out_contains "is known in '$SYS_KH'"
        expect_ok sb remote trust --yes
        expect_out_contains "already trusted in '$SYS_KH'"
        # shellcheck disable=SC2016 # expanded by the inner bash
        check "remote trust wrote nothing to the user's file" \
            bash -c '[[ ! -e $1 ]] || ! grep -q "127.0.0.1\]:$2" "$1"' _ "$user_kh" "$SSHD_PORT"
        printf '@revoked * %s\n' "$key_line" >>"$SYS_KH"
        expect_exit 77 sb list
        expect_err_contains "is marked @revoked in '$SYS_KH' line $(wc -l <"$SYS_KH")"
        sed -i '$d' "$SYS_KH"
        log "an explicit repository.known_hosts: the system file is not read"
        : >"$WORK/kh-empty"
        "$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["repository"]["known_hosts"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"))' "$CFG" "$WORK/kh-empty"
        expect_exit 77 sb list
        expect_err_contains "is not known (ED25519 $newfpr)"
    fi
fi
