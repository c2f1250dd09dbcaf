# shellcheck shell=bash
# Checks of `snapback verify` shared by tests/integration/verify.sh (a local repository) and
# sftp_verify.sh (the same failure kinds over SFTP). Source it after lib.sh; the test sets
# up $CFG, $REPO and $KEY.
#
#   save_base DIR           copies $REPO to DIR ($BASE), what reset_repo puts back
#   reset_repo              $REPO as it was at save_base
#   vr EXIT "VERIFY-ARGS" [verify_reports.py options...]
#                           runs verify with --json and --junit (config $VCFG, default $CFG),
#                           expects EXIT, and checks both reports with verify_reports.py
#   verify_fails EXIT ID TEXT...
#                           `sb verify ID` exits EXIT and its stderr contains every TEXT
#   can_forge               python3 can load libsodium and libzstd (what sbforge.py needs)
#   forge_blake2b MANIFEST OBJECT
#                           rewrites the manifest $REPO/demo/MANIFEST (sbforge.py: opened,
#                           changed, sealed again with $KEY) so that it records a BLAKE2b of
#                           zeros for OBJECT, which must be in it once
#   swapped_object_case FROM TO OBJECT TESTS [TEXT...]
#                           $REPO reset, then the object data/TO/OBJECT replaced by FROM's of
#                           the same name (which must have the same size); `verify TO` exits
#                           65 naming the snapshot, the object and every TEXT, and both
#                           reports name the object among TESTS testcases
#   forged_manifest_case ID OBJECT TESTS [TEXT...]
#                           unless can_forge fails (then logged and skipped): $REPO reset,
#                           ID's manifest forged (forge_blake2b) for OBJECT; `verify ID` exits
#                           65 naming the snapshot, every TEXT and the recorded BLAKE2b, and
#                           both reports name OBJECT among TESTS testcases
#   wrong_key_config        $WORK/wrong.json: $CFG with another key ($WORK/wrong.key); sets
#                           VCFG to it (the test sets VCFG= after)

save_base() {
    BASE=$1
    cp -a "$REPO" "$BASE"
}

reset_repo() {
    rm -rf "$REPO"
    cp -a "$BASE" "$REPO"
}

VCFG=
vr() {
    local want=$1 args=$2
    shift 2
    rm -f "$WORK/r.xml" "$WORK/r.json"
    # shellcheck disable=SC2086
    expect_exit "$want" "$SNAPBACK" --config "${VCFG:-$CFG}" --no-progress verify $args --json \
        --junit "$WORK/r.xml"
    printf '%s\n' "$OUT" >"$WORK/r.json"
    check "verify $args wrote the JUnit report" test -s "$WORK/r.xml"
    CHECKS=$((CHECKS + 1))
    "$PYTHON" "$INTEGRATION_DIR/verify_reports.py" "$WORK/r.json" "$WORK/r.xml" "$@" >/dev/null ||
        fail "the reports of 'verify $args' are not as expected"
}

verify_fails() {
    local want=$1 id=$2 text
    shift 2
    expect_exit "$want" sb verify "$id"
    for text in "$@"; do
        expect_err_contains "$text"
    done
}

can_forge() {
    "$PYTHON" -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("sodium") and ctypes.util.find_library("zstd") else 1)'
}

forge_blake2b() {
    local man=$REPO/demo/$1 object=$2 forge=$INTEGRATION_DIR/sbforge.py
    "$PYTHON" "$forge" open "$KEY" "$man" >"$WORK/manifest.json"
    "$PYTHON" - "$WORK/manifest.json" "$object" <<'PY'
import json, sys
path, name = sys.argv[1], sys.argv[2]
m = json.load(open(path))
hits = [o for o in m["objects"] if o["name"] == name]
assert len(hits) == 1, "no object %s in the manifest" % name
hits[0]["blake2b"] = "00" * 32
json.dump(m, open(path, "w"))
PY
    "$PYTHON" "$forge" seal "$KEY" "$WORK/manifest.json" "$man"
}

swapped_object_case() {
    local from=$1 to=$2 swapped=data/$2/$3 tests=$4
    shift 4
    reset_repo
    cp "$REPO/demo/data/$from/$(basename "$swapped")" "$REPO/demo/$swapped"
    check "the swapped object has the same size" \
        test "$(file_size "$REPO/demo/$swapped")" -eq "$(file_size "$BASE/demo/$swapped")"
    verify_fails 65 "$to" "snapshot '$to'" "$swapped" "$@"
    vr 65 "$to" --snapshot "$to" --failed "$swapped" --failed-text "swapped" --tests "$tests"
}

forged_manifest_case() {
    local id=$1 object=$2 tests=$3
    shift 3
    if ! can_forge; then
        log "python3 cannot load libsodium/libzstd: the forged-manifest case is skipped"
        return 0
    fi
    reset_repo
    forge_blake2b "snapshots/$id.manifest" "$object"
    verify_fails 65 "$id" "snapshot '$id'" "$@" "the manifest records 0000000000000000"
    vr 65 "$id" --snapshot "$id" --failed "$object" --failed-text "BLAKE2b" --tests "$tests"
}

wrong_key_config() {
    "$SNAPBACK" keygen --key-file "$WORK/wrong.key" >/dev/null 2>&1
    sed "s|\"key_file\": \"$KEY\"|\"key_file\": \"$WORK/wrong.key\"|" "$CFG" >"$WORK/wrong.json"
    check "the wrong-key config names the other key" grep -q wrong.key "$WORK/wrong.json"
    VCFG=$WORK/wrong.json
}
