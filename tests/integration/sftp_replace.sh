#!/usr/bin/env bash
# An interrupted replacing rename on an SFTP server (issue #4). OpenSSH speaks SFTP 3, which
# cannot rename over a file, so the store replaces NAME in three steps (NAME ->
# NAME.replaced-RANDOM, NAME.partial -> NAME, remove the aside copy). A crash between the
# first two leaves NAME missing and its only copy aside. This test puts the server in that
# state by hand, for a release object and for snapback.json, and checks that:
#   - the next reader (verify, list) puts the aside copy back, says so, and succeeds;
#   - prune never deletes such an aside copy (it is put back instead), even past the
#     orphan grace period;
#   - with NAME present, an old NAME.replaced-* is an ordinary leftover prune removes.
# shellcheck source=tests/harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
sb_setup "$@"
sshd_setup
sftp_env
"$PYTHON" - "$CFG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["retention"] = {"keep_last": 5}
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
sb_init
sb_snapshot
OBJ=$(find "$REPO/demo/releases" -name '*.snpb' | head -n 1)
[[ -n $OBJ ]] || fail "no release object on the server"
SUM=$(md5sum <"$OBJ")

interrupt() { # PATH: the state a crash between the first two renames leaves
    mv "$1" "$1.replaced-0123456789ab"
    head -c 1000 /dev/urandom >"$1.partial"
    touch -d '2 days ago' "$1.replaced-0123456789ab" "$1.partial"
}

log "a release object whose replacement was cut short"
interrupt "$OBJ"
expect_ok sb verify latest
expect_err_contains "put '$(basename "$OBJ").replaced-0123456789ab' back"
check "the object is back" test "$(md5sum <"$OBJ")" = "$SUM"
check "no aside copy is left" test -z "$(find "$REPO" -name '*.replaced-*')"

log "snapback.json whose replacement was cut short"
interrupt "$REPO/snapback.json"
expect_ok sb list
check "snapback.json is back" test -s "$REPO/snapback.json"

log "prune puts an aside copy back instead of deleting it"
interrupt "$OBJ"
expect_ok sb prune
check "the object survived prune" test "$(md5sum <"$OBJ")" = "$SUM"
expect_ok sb verify latest

log "an aside copy beside a present NAME is a leftover prune removes"
cp "$OBJ" "$OBJ.replaced-ba9876543210"
touch -d '2 days ago' "$OBJ.replaced-ba9876543210"
expect_ok sb prune
check "the leftover is gone" test ! -e "$OBJ.replaced-ba9876543210"
check "the object is intact" test "$(md5sum <"$OBJ")" = "$SUM"
check "the object's stale partial is gone" test ! -e "$OBJ.partial"
expect_ok sb verify latest

# On an SFTP repository, release reuse, list and show read the manifests this host wrote from
# its catalog (state_dir/catalog), not one download per snapshot; verify still reads the
# repository's own manifest and catches a damaged one.
for f in "$REPO"/demo/snapshots/*.manifest; do flip_byte "$f" 200; done
before=$(find "$REPO/demo/releases" -name '*.snpb' | wc -l)
sb_snapshot
check "with every manifest on the server damaged, a snapshot still reuses the release" \
    test "$(find "$REPO/demo/releases" -name '*.snpb' | wc -l)" = "$before"
expect_ok sb list
expect_ok sb show latest
expect_exit 65 sb verify --all
rm -rf "$STATE/catalog"
expect_exit 65 sb list # without the catalog: the server's (damaged) manifests
