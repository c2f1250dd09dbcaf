#!/usr/bin/env bash
# Restore never writes outside its target (DESIGN §10). Hostile tar archives
# (make_hostile_tars.py: '../x', absolute paths, a symlink to / or out followed by a file
# through it, hard links to /etc/passwd, to '../outside' and through a symlink, pax and GNU
# long names with '..') are put into the repository as a snapshot's shared object and as its
# release object, encrypted with the repository key by sbforge.py (the object format
# implemented again from docs/FORMAT.md), with a manifest that agrees, so that only the
# extractor stands between them and the disk. Each must be refused with exit 65, leave no
# target and no temp dir, and change nothing outside: not the decoy directory the archives
# aim at, not /etc/passwd, not the target's parent. `verify` must flag them too, since CI
# relies on it to prove a snapshot restores.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
sb_init
FORGE=$INTEGRATION_DIR/sbforge.py
"$PYTHON" -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("sodium") and ctypes.util.find_library("zstd") else 1)' ||
    skip "libsodium or libzstd cannot be loaded from python3"

OUTSIDE=$WORK/outside
mkdir -p "$OUTSIDE"
echo "the victim" >"$OUTSIDE/victim"
"$PYTHON" "$INTEGRATION_DIR/make_hostile_tars.py" "$WORK/tars" --outside "$OUTSIDE"
ETC_X=/etc/snapback-hostile-test-x
[[ ! -e $ETC_X ]] || fail "$ETC_X exists before the test; remove it"

forge() { "$PYTHON" "$FORGE" snapshot --key "$KEY" --repo "$REPO" --app demo "$@"; }

# the forge is right: a benign archive forged the same way restores and verifies
mkdir -p "$WORK/benign/sub"
echo "benign" >"$WORK/benign/sub/file.txt"
ln -s sub/file.txt "$WORK/benign/link"
tar --format=pax -C "$WORK/benign" -cf "$WORK/benign.tar" sub link
id=$(forge --release "benign=$WORK/benign.tar" --shared "shared/uploads=$WORK/benign.tar")
expect_ok sb verify "$id"
expect_ok sb restore "$id" --target "$WORK/benign-restored"
compare_trees "$WORK/benign" "$WORK/benign-restored/releases/benign" noroot
compare_trees "$WORK/benign" "$WORK/benign-restored/shared/uploads" noroot
rm -rf "$WORK/benign-restored"

# /etc/passwd: its link count, mode and owner (a hard link made to it, or metadata applied
# through one). Not its contents or mtime: tests that run beside this one add users.
passwd_meta() { stat -c '%h %a %u %g' /etc/passwd; }
passwd_before=$(passwd_meta)
outside_before=$(tree_digest "$OUTSIDE")
parent_before=$(ls -A "$WORK")
verify_missed=()

mapfile -t CASES < <("$PYTHON" -c 'import json,sys; [print(c["name"], c["expect"]) for c in json.load(open(sys.argv[1]))]' "$WORK/tars/cases.json")
for line in "${CASES[@]}"; do
    read -r name expect <<<"$line"
    what=$("$PYTHON" -c 'import json,sys; print([c["what"] for c in json.load(open(sys.argv[1])) if c["name"]==sys.argv[2]][0])' "$WORK/tars/cases.json" "$name")
    for where in shared release; do
        tar=$WORK/tars/$name.tar
        if [[ $where == shared ]]; then
            id=$(forge --shared "shared/uploads=$tar")
        else
            id=$(forge --release "hostile=$tar")
        fi
        target=$WORK/target
        run sb restore "$id" --target "$target"
        CHECKS=$((CHECKS + 1))
        if [[ $expect == refuse ]]; then
            [[ $RC == 65 ]] || fail "$name in the $where object ($what): restore should be refused with exit 65"
            [[ ! -e $target ]] || fail "$name in the $where object: the refused restore left its target"
        else
            [[ $RC == 0 || $RC == 65 ]] || fail "$name in the $where object ($what): expected exit 0 or 65"
        fi
        [[ $ERR != *Sanitizer* && $ERR != *"runtime error"* ]] || fail "$name: sanitizer report"
        check "$name/$where: no temp dir left" test -z "$(tmp_leftovers "$WORK" -maxdepth 1)"
        check "$name/$where: nothing outside changed" test "$(tree_digest "$OUTSIDE")" = "$outside_before"
        check "$name/$where: /etc/passwd unchanged" test "$(passwd_meta)" = "$passwd_before"
        if [[ -e $ETC_X ]]; then
            rm -f "$ETC_X"
            fail "$name/$where: restore wrote $ETC_X"
        fi
        rm -rf "$target"
        check "$name/$where: nothing new beside the target" test "$(ls -A "$WORK")" = "$parent_before"
        log "$name ($where): restore exit $RC: $(printf '%s' "$ERR" | tail -n1)"
        if [[ $expect == refuse ]]; then
            run sb verify "$id"
            [[ $RC == 65 ]] || verify_missed+=("$name/$where (verify exit $RC)")
        fi
        rm -f "$REPO/demo/snapshots/$id.manifest"
    done
done

# the snapshots snapback itself took are unaffected
sb_snapshot
expect_ok sb verify "$SNAP_ID"

CHECKS=$((CHECKS + 1))
if ((${#verify_missed[@]})); then
    LAST_CMD=
    fail "verify passed ${#verify_missed[@]} snapshot(s) that restore refuses: ${verify_missed[*]}"
fi
