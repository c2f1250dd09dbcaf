#!/usr/bin/env bash
# A server whose sshd_config allows only ciphers libssh2 1.10 does not have
# (chacha20-poly1305 and AES-GCM, as hardening guides suggest): init and config check fail
# with 69 at once (a mismatch of algorithms is not retried), say that the key exchange failed,
# and list what snapback offers, without the legacy algorithms libssh2 also has, so that the
# administrator can see what to allow. Allowing aes256-ctr as well makes it work.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
sb_setup "$@"
SSHD_EXTRA_CONFIG="Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com"
sshd_setup
sftp_env
expect_ok sb keygen # so that config check has only the server to complain about

t0=$SECONDS
expect_exit 69 sb init
expect_err_contains "SSH handshake with 127.0.0.1:$SSHD_PORT failed"
expect_err_contains "may have no key exchange, host key, cipher or MAC in common"
expect_err_contains "; snapback offers key exchanges: curve25519-sha256"
expect_err_contains "; ciphers: aes128-ctr, aes192-ctr, aes256-ctr; MACs: hmac-sha2-256"
for legacy in cbc arcfour 3des blowfish md5; do
    # shellcheck disable=SC2016 # expanded by the inner bash
    check "no legacy '$legacy' in the list" bash -c '! grep -q -- "$1" <<<"$2"' _ "$legacy" "$ERR"
done
check "not retried (retries 2, backoff from 0.5 s)" test $((SECONDS - t0)) -lt 3
check "nothing created" test ! -e "$REPO"
expect_exit 69 sb config check
expect_out_contains "FAIL  remote 127.0.0.1:$SSHD_PORT is reachable: SSH handshake"
expect_out_contains "ciphers: aes128-ctr"

log "the server allows aes256-ctr too: it works"
sshd_stop
SSHD_EXTRA_CONFIG="Ciphers chacha20-poly1305@openssh.com,aes256-gcm@openssh.com,aes256-ctr"
sshd_start
expect_ok sb init
sb_snapshot
expect_ok sb verify "$SNAP_ID"
