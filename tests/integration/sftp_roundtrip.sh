#!/usr/bin/env bash
# SFTP round trip (issue #4): a release with every kind of entry (make_tree.py full) and a
# shared path go through keygen, init, snapshot, list, show, verify and restore against a
# repository on a real OpenSSH sshd (tests/harness/sshd.sh), and come back equal byte for byte
# and by metadata. Also: a second snapshot reuses the stored release, a second init is
# refused (the no-replace rename), an object uploaded again replaces the old one (the
# replacing rename OpenSSH does not have), no NAME.partial is left on the server, 'config
# check' reports the remote, and an object flipped on the server is caught by verify (65).
# Sizes can be lowered for a quick run: RT_BIG_MIB=4 RT_SMALL=200.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
sb_setup "$@"
sshd_setup

BIG_MIB=${RT_BIG_MIB:-24}
SMALL=${RT_SMALL:-2000}
REL=20261124T101500Z

APP=$WORK/app
mkdir -p "$APP/releases" "$APP/shared/uploads/2026"
log "building the release tree ($BIG_MIB MiB file, $SMALL small files)"
"$PYTHON" "$INTEGRATION_DIR/make_tree.py" full "$APP/releases/$REL" --big-mib "$BIG_MIB" --small "$SMALL"
ln -s "releases/$REL" "$APP/current"
head -c 300000 /dev/urandom >"$APP/shared/uploads/2026/photo 1.jpg"
echo "résumé" >"$APP/shared/uploads/résumé.txt"
ln -s "2026/photo 1.jpg" "$APP/shared/uploads/latest.jpg"

sftp_env
before=$(tree_digest "$APP")
sb_init
check "snapback.json is on the server" test -f "$REPO/snapback.json"

# init again: the no-replace rename refuses to overwrite snapback.json
expect_exit 73 sb init
expect_err_contains "already exists"

sb_snapshot --tag sftp
id=$SNAP_ID
check "one manifest on the server" test "$(manifest_count)" -eq 1
check "one release object on the server" test "$(find "$REPO/demo/releases" -name '*.snpb' | wc -l)" -eq 1
check "no partial files left on the server" test -z "$(find "$REPO" -name '*.partial')"

expect_ok sb list
expect_out_contains "$id"
expect_ok sb show "$id" --json
check "manifest names the release" test "$(json_get "$OUT" 'j["release"]["name"]')" = "$REL"
check "manifest has the tag" test "$(json_get "$OUT" 'j["tag"]')" = sftp

expect_ok sb verify "$id"
OUTDIR=$WORK/restored
expect_ok sb restore "$id" --target "$OUTDIR"
# The roots' own mode and mtime are the restore code's business (roundtrip.sh); here every
# entry below them must have crossed the wire intact.
compare_trees "$APP/releases/$REL" "$OUTDIR/releases/$REL" noroot
compare_trees "$APP/shared/uploads" "$OUTDIR/shared/uploads" noroot
check "current -> releases/$REL" test "$(readlink "$OUTDIR/current")" = "releases/$REL"
check "the live app is unchanged" test "$before" = "$(tree_digest "$APP")"

# A second snapshot stores the shared path again but references the release object.
sb_snapshot
id2=$SNAP_ID
check "still one release object" test "$(find "$REPO/demo/releases" -name '*.snpb' | wc -l)" -eq 1
check "two manifests" test "$(manifest_count)" -eq 2
expect_ok sb verify latest

# The replacing rename: an object uploaded again over itself (what the spool does after a run
# that died between an upload and removing the spooled copy). OpenSSH refuses a plain rename
# over an existing file; the store moves the old one aside, renames, removes the old one.
obj=$(cd "$REPO" && find demo/releases -name '*.snpb' | head -n 1)
size0=$(file_size "$REPO/$obj")
mkdir -p "$(dirname "$STATE/spool/$obj")"
cp "$REPO/$obj" "$STATE/spool/$obj"
printf 'x' >>"$STATE/spool/$obj" # one byte more: the upload must really replace the old one
expect_ok sb push
check "the object was replaced" test "$(file_size "$REPO/$obj")" -eq $((size0 + 1))
check "no leftovers of the replacement" test -z "$(find "$REPO" -name '*.replaced-*' -o -name '*.partial')"
truncate -s "$size0" "$REPO/$obj" # take the extra byte off again, on the server's disk
expect_ok sb verify "$id"

# config check: each remote step on its own line, and nothing left behind by the write test
expect_ok sb config check
expect_out_contains "ok    remote 127.0.0.1:$SSHD_PORT is reachable (SSH-2.0-OpenSSH"
expect_out_contains "ok    host key ED25519 $(sshd_fingerprint) is known in '$SSHD_KNOWN_HOSTS'"
expect_out_contains "ok    login as '$(id -un)' with identity file '$SSHD_CLIENT_KEY'"
expect_out_contains "ok    remote path '$REPO' is writable"
check "the write test file is gone" test -z "$(find "$REPO" -maxdepth 1 -name '.snapback-write-test-*')"

# Corruption on the server side: one flipped byte in the middle of the shared object.
obj=$(find "$REPO/demo/data/$id2" -name 'shared-0.snpb')
flip_byte "$obj" $(($(file_size "$obj") / 2))
expect_exit 65 sb verify "$id2"
expect_err_contains "shared-0.snpb"
# the older snapshot does not share that object and still verifies
expect_ok sb verify "$id"
