#!/usr/bin/env bash
# Damage is detected before a restored byte is trusted (DESIGN §10): a byte flipped at any
# offset of a small object and of a manifest, at chosen offsets of a multi-chunk release
# object, objects cut at and between chunk boundaries or lengthened, objects swapped between
# snapshots, a manifest copied over another's name, a missing object, a wrong key and a key
# file readable by others. verify and restore exit 65 (77 for the key mode) naming the damaged
# object, and restore leaves neither the target nor a temp dir behind.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env

REL=20260102T000000Z
# 3 MiB of random data: the release object has three 1 MiB chunks, the last one partial
head -c $((3 * 1024 * 1024 - 100000)) /dev/urandom >"$APP/releases/$REL/assets.bin"
sb_init
sb_snapshot
id1=$SNAP_ID
sleep 1.1
echo "second" >"$APP/shared/uploads/second.txt"
sb_snapshot
id2=$SNAP_ID

RELOBJ=$(cd "$REPO/demo" && ls releases/*.snpb)
SH1=data/$id1/shared-0.snpb
SH2=data/$id2/shared-0.snpb
MAN1=snapshots/$id1.manifest
MAN2=snapshots/$id2.manifest
HEADER=111            # magic 8 + version/compression/key mode 3 + chunk size 4 + wrapped key 72 + secretstream 24
CHUNK=$((1048576 + 17)) # 1 MiB of ciphertext + the secretstream tag and MAC
rel_size=$(file_size "$REPO/demo/$RELOBJ")
log "release object $RELOBJ: $rel_size bytes; shared object: $(file_size "$REPO/demo/$SH1") bytes; manifest: $(file_size "$REPO/demo/$MAN1") bytes"
check "the release object has 3 chunks" test $(((rel_size - HEADER + CHUNK - 1) / CHUNK)) -eq 3

BASE=$WORK/repo.base
cp -a "$REPO" "$BASE"
reset_repo() {
    rm -rf "$REPO"
    cp -a "$BASE" "$REPO"
}

# expect_detected ID NAME [restore]: verify (and restore) of ID exit 65 naming NAME; the
# restore leaves no target and no temp dir.
expect_detected() {
    local id=$1 name=$2
    expect_exit 65 sb verify "$id"
    expect_err_contains "$name"
    if [[ ${3:-} == restore ]]; then
        local target=$WORK/target
        expect_exit 65 sb restore "$id" --target "$target"
        expect_err_contains "$name"
        check "restore left no target" test ! -e "$target"
        check "restore left no temp dir" test -z "$(tmp_leftovers "$WORK" -maxdepth 1)"
    fi
}

# --- flips in the release object at chosen offsets: magic, header fields, wrapped key,
# secretstream header, first chunk, chunk boundaries, middle, last byte ---
for off in 0 7 8 9 10 11 14 15 40 86 87 100 110 $HEADER $((HEADER + 1)) $((HEADER + CHUNK - 1)) \
    $((HEADER + CHUNK)) $((rel_size / 2)) $((HEADER + 2 * CHUNK)) $((rel_size - 17)) -1; do
    reset_repo
    flip_byte "$REPO/demo/$RELOBJ" "$off"
    expect_detected "$id1" "$RELOBJ" restore
done
log "release object: flips at 21 offsets detected"

# --- every single-byte flip in a small object and in a manifest (issue #2) ---
# On a snapshot of the shared paths alone, so that each of the ~900 runs of verify reads the
# two small objects and not also the 3 MiB release object; LeakSanitizer's check at exit (a
# third of a run's time under ASan) on every 8th flip, and on all the chosen flips above.
reset_repo
sb_snapshot --only shared
id3=$SNAP_ID
every_offset() { # FILE ID NAME: flips each byte in turn, verify must exit 65 naming NAME
    CHECKS=$((CHECKS + 1))
    LAST_CMD=
    "$PYTHON" - "$SNAPBACK" "$CFG" "$1" "$2" "$3" <<'PY' || fail "a flipped byte in $3 was not detected"
import os, subprocess, sys
sb, cfg, path, sid, name = sys.argv[1:]
size = os.path.getsize(path)
bad = []
quick = dict(os.environ)
if "ASAN_OPTIONS" in quick:
    quick["ASAN_OPTIONS"] = quick["ASAN_OPTIONS"].replace("detect_leaks=1", "detect_leaks=0")
with open(path, "r+b") as f:
    for off in range(size):
        f.seek(off); b = f.read(1)
        f.seek(off); f.write(bytes([b[0] ^ 0x01])); f.flush()
        r = subprocess.run([sb, "--config", cfg, "--no-progress", "verify", sid],
                           capture_output=True, text=True, errors="replace",
                           env=None if off % 8 == 0 else quick)
        f.seek(off); f.write(b); f.flush()
        if r.returncode != 65 or name not in r.stderr or "Sanitizer" in r.stderr or "runtime error" in r.stderr:
            bad.append((off, r.returncode, r.stderr.strip()[-300:]))
print("%s: %d offsets flipped, %d undetected" % (name, size, len(bad)))
for off, rc, err in bad[:10]:
    print("  offset %d: exit %d: %s" % (off, rc, err), file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}
every_offset "$REPO/demo/data/$id3/shared-0.snpb" "$id3" "data/$id3/shared-0.snpb"
every_offset "$REPO/demo/snapshots/$id3.manifest" "$id3" "snapshots/$id3.manifest"
expect_ok sb verify --all # the flips were all put back
reset_repo                # the two snapshots of the tests below

# a flipped manifest: the others are still listed and verified, the broken one is named
flip_byte "$REPO/demo/$MAN1" 200
expect_detected "$id1" "$MAN1" restore
expect_exit 65 sb list
expect_out_contains "$id2"
expect_err_contains "$MAN1"
expect_exit 65 sb verify --all
expect_out_contains "$id2: ok"
expect_ok sb verify "$id2"

# a flipped shared object: restore refuses too
reset_repo
flip_byte "$REPO/demo/$SH1" $((HEADER + 5))
expect_detected "$id1" "$SH1" restore
expect_ok sb verify "$id2"

# --- truncation: at each chunk boundary, inside chunks, to nothing; and lengthening ---
for size in 0 1 8 $((HEADER - 1)) $HEADER $((HEADER + 1)) $((HEADER + CHUNK / 2)) \
    $((HEADER + CHUNK - 1)) $((HEADER + CHUNK)) $((HEADER + CHUNK + 1)) $((HEADER + 2 * CHUNK)) \
    $((HEADER + 2 * CHUNK + 1000)) $((rel_size - 1)); do
    reset_repo
    truncate_to "$REPO/demo/$RELOBJ" "$size"
    expect_detected "$id1" "$RELOBJ" restore
done
for size in $((HEADER + 3)) $(($(file_size "$REPO/demo/$SH1") - 1)); do
    reset_repo
    truncate_to "$REPO/demo/$SH1" "$size"
    expect_detected "$id1" "$SH1" restore
done
reset_repo
truncate_to "$REPO/demo/$MAN1" $(($(file_size "$REPO/demo/$MAN1") - 1))
expect_detected "$id1" "$MAN1" restore
reset_repo
printf 'x' >>"$REPO/demo/$RELOBJ"
expect_detected "$id1" "$RELOBJ" restore
reset_repo
head -c $CHUNK /dev/zero >>"$REPO/demo/$SH1"
expect_detected "$id1" "$SH1" restore
log "truncations and extensions detected"

# --- damage behind a manifest that agrees: sbforge.py (the format implemented again from
# docs/FORMAT.md) re-encrypts the manifest with the damaged object's size and BLAKE2b, so only
# the chunk authentication and the TAG_FINAL rule can catch it ---
FORGE=$INTEGRATION_DIR/sbforge.py
remanifest() { "$PYTHON" "$FORGE" remanifest --key "$KEY" --repo "$REPO" --app demo "$1"; }
if "$PYTHON" -c 'import ctypes.util, sys; sys.exit(0 if ctypes.util.find_library("sodium") and ctypes.util.find_library("zstd") else 1)'; then
    reset_repo
    remanifest "$id1"
    expect_ok sb verify "$id1" # the forge itself is right
    for size in $((HEADER + CHUNK)) $((HEADER + 2 * CHUNK)) $((HEADER + CHUNK + 100)) $HEADER; do
        reset_repo
        truncate_to "$REPO/demo/$RELOBJ" "$size"
        remanifest "$id1"
        expect_detected "$id1" "$RELOBJ" restore
    done
    # chunks 1 and 2 swapped
    reset_repo
    "$PYTHON" - "$REPO/demo/$RELOBJ" "$HEADER" "$CHUNK" <<'PY'
import sys
path, h, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
b = open(path, "rb").read()
open(path, "wb").write(b[:h] + b[h + c:h + 2 * c] + b[h:h + c] + b[h + 2 * c:])
PY
    remanifest "$id1"
    expect_detected "$id1" "$RELOBJ" restore
    # bytes after the final chunk, a flipped byte, a changed chunk size field
    reset_repo
    tail -c 100 "$REPO/demo/$RELOBJ" >"$WORK/tail"
    cat "$WORK/tail" >>"$REPO/demo/$RELOBJ"
    remanifest "$id1"
    expect_detected "$id1" "$RELOBJ" restore
    reset_repo
    flip_byte "$REPO/demo/$RELOBJ" $((HEADER + CHUNK + 5))
    remanifest "$id1"
    expect_detected "$id1" "$RELOBJ" restore
    reset_repo
    flip_byte "$REPO/demo/$RELOBJ" 13 # the chunk size field: part of the first chunk's additional data
    remanifest "$id1"
    expect_detected "$id1" "$RELOBJ" restore
    # a shared object re-encrypted without a TAG_FINAL chunk
    reset_repo
    "$PYTHON" "$FORGE" open "$KEY" "$REPO/demo/$SH1" >"$WORK/shared.tar"
    "$PYTHON" "$FORGE" seal "$KEY" "$WORK/shared.tar" "$REPO/demo/$SH1" --no-final
    remanifest "$id1"
    expect_detected "$id1" "$SH1" restore
    # ... and with it (the forge's object restores)
    reset_repo
    "$PYTHON" "$FORGE" seal "$KEY" "$WORK/shared.tar" "$REPO/demo/$SH1"
    remanifest "$id1"
    expect_ok sb verify "$id1"
    # a valid object whose zstd frame is cut: authenticated, but the frame never ends
    reset_repo
    "$PYTHON" - "$WORK/shared.tar" "$WORK/cut.zst" <<'PY'
import subprocess, sys
sys.path.insert(0, __import__("os").environ["INTEGRATION_DIR"])
import sbforge
z = sbforge.zstd_compress(open(sys.argv[1], "rb").read())
open(sys.argv[2], "wb").write(z[: len(z) // 2])
PY
    "$PYTHON" "$FORGE" seal "$KEY" "$WORK/cut.zst" "$REPO/demo/$SH1" --stored
    remanifest "$id1"
    expect_detected "$id1" "$SH1" restore
    log "damage behind an agreeing manifest detected"
else
    log "python3 cannot load libsodium/libzstd: the forged-manifest cases are skipped"
fi

# --- swaps between snapshots ---
reset_repo
mv "$REPO/demo/$SH1" "$WORK/swap"
mv "$REPO/demo/$SH2" "$REPO/demo/$SH1"
mv "$WORK/swap" "$REPO/demo/$SH2"
expect_detected "$id1" "$SH1" restore
expect_detected "$id2" "$SH2" restore

# the same object under both names (a "restore" of an older upload over a newer one)
reset_repo
cp "$REPO/demo/$SH1" "$REPO/demo/$SH2"
expect_detected "$id2" "$SH2" restore
expect_ok sb verify "$id1"

# one snapshot's manifest copied over another's name
reset_repo
cp "$REPO/demo/$MAN1" "$REPO/demo/$MAN2"
expect_detected "$id2" "$MAN2" restore
expect_ok sb verify "$id1"
# ... and moved (only one snapshot file left, under the wrong name)
reset_repo
mv "$REPO/demo/$MAN1" "$REPO/demo/$MAN2"
expect_detected "$id2" "$MAN2" restore

# a missing object: the snapshot cannot be restored, and verify says which object
reset_repo
rm "$REPO/demo/$SH1"
run sb verify "$id1"
CHECKS=$((CHECKS + 1))
[[ $RC == 65 || $RC == 66 ]] || fail "missing object: expected exit 65 or 66"
expect_err_contains "$SH1"
run sb restore "$id1" --target "$WORK/target"
CHECKS=$((CHECKS + 1))
[[ $RC == 65 || $RC == 66 ]] || fail "missing object: expected exit 65 or 66"
check "restore left no target" test ! -e "$WORK/target"
check "restore left no temp dir" test -z "$(tmp_leftovers "$WORK" -maxdepth 1)"

# --- a wrong key: refused with a clear message, nothing written anywhere ---
reset_repo
"$SNAPBACK" keygen --key-file "$WORK/wrong.key" >/dev/null 2>&1
sed "s|\"key_file\": \"$KEY\"|\"key_file\": \"$WORK/wrong.key\"|" "$CFG" >"$WORK/wrong.json"
check "the wrong-key config names the other key" grep -q wrong.key "$WORK/wrong.json"
repo_before=$(tree_digest "$REPO")
app_before=$(tree_digest "$APP")
for cmd in "verify $id1" "verify --all" "list" "show $id1" "snapshot" "restore $id1 --target $WORK/target"; do
    # shellcheck disable=SC2086
    expect_exit 65 "$SNAPBACK" --config "$WORK/wrong.json" --no-progress $cmd
    CHECKS=$((CHECKS + 1))
    [[ ${ERR,,} == *key* ]] || fail "wrong key: '$cmd' should say the key is wrong"
    [[ $OUT != *"$id1"*"ok"* ]] || fail "wrong key: '$cmd' printed a success"
done
check "wrong key: restore wrote no target" test ! -e "$WORK/target"
check "wrong key: no temp dir" test -z "$(tmp_leftovers "$WORK" -maxdepth 1)"
check "wrong key: the repository is unchanged" test "$(tree_digest "$REPO")" = "$repo_before"
check "wrong key: the app is unchanged" test "$app_before" = "$(tree_digest "$APP")"
check "wrong key: no partial files" test -z "$(find "$REPO" -name '*.partial')"

# a damaged key file
printf 'snapback-key-v1\nnot base64 at all!!\n' >"$WORK/damaged.key"
chmod 600 "$WORK/damaged.key"
sed "s|\"key_file\": \"$KEY\"|\"key_file\": \"$WORK/damaged.key\"|" "$CFG" >"$WORK/damaged.json"
run "$SNAPBACK" --config "$WORK/damaged.json" verify "$id1"
CHECKS=$((CHECKS + 1))
[[ $RC == 65 || $RC == 78 ]] || fail "damaged key file: expected 65 or 78"
expect_err_contains "$WORK/damaged.key"

# --- key file readable by others: 77, before anything is read ---
chmod 0644 "$KEY"
expect_exit 77 sb verify "$id1"
expect_err_contains "$KEY"
expect_exit 77 sb restore "$id1" --target "$WORK/target"
check "77: no target" test ! -e "$WORK/target"
chmod 0600 "$KEY"

# after all this, the untouched repository still verifies and restores
reset_repo
expect_ok sb verify --all
expect_ok sb restore "$id1" --target "$WORK/final"
compare_trees "$APP/releases/$REL" "$WORK/final/releases/$REL" noroot
