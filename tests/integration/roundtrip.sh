#!/usr/bin/env bash
# Round trip (issue #2): a release with every kind of entry (make_tree.py full: empty files, a
# 200 MiB file, 20,000 small files, empty dirs, symlinks of every sort, hard links, odd names,
# modes 0600/0755/4755 and more, owners, mtimes) and two shared paths go through keygen, init,
# snapshot, verify and restore into a new directory, and come back equal byte for byte and by
# metadata; and again when the objects are read without snapback (tests/integration/sbforge.py,
# written from docs/FORMAT.md, then zstd and GNU tar). Sizes can be lowered for a quick run:
# RT_BIG_MIB=8 RT_SMALL=500.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"

BIG_MIB=${RT_BIG_MIB:-200}
SMALL=${RT_SMALL:-20000}
REL=20261124T101500Z

APP=$WORK/app
mkdir -p "$APP/releases" "$APP/shared"
log "building the release tree ($BIG_MIB MiB file, $SMALL small files)"
"$PYTHON" "$INTEGRATION_DIR/make_tree.py" full "$APP/releases/$REL" --big-mib "$BIG_MIB" --small "$SMALL"
mkdir -p "$APP/releases/20261120T090000Z"
echo old >"$APP/releases/20261120T090000Z/REVISION"
ln -s "releases/$REL" "$APP/current"

# shared paths: uploads (nested dirs, a symlink, a hard link, odd modes) and config
mkdir -p "$APP/shared/public/uploads/2026/11" "$APP/shared/config"
head -c 300000 /dev/urandom >"$APP/shared/public/uploads/2026/11/photo 1.jpg"
echo "résumé" >"$APP/shared/public/uploads/résumé.txt"
: >"$APP/shared/public/uploads/empty"
ln -s "2026/11/photo 1.jpg" "$APP/shared/public/uploads/latest.jpg"
ln "$APP/shared/public/uploads/résumé.txt" "$APP/shared/public/uploads/résumé-link.txt"
mkdir "$APP/shared/public/uploads/empty-dir"
echo "secret_key_base: x" >"$APP/shared/config/master.key"
chmod 0600 "$APP/shared/config/master.key"
touch -d '2020-02-29 12:34:56.123456789' "$APP/shared/config/master.key" "$APP/shared/public/uploads/2026"

REPO=$WORK/repo KEY=$WORK/keys/key STATE=$WORK/state CFG=$WORK/snapback.json
mkdir -p "$WORK/keys"
make_config "$CFG" "$APP" "$REPO" "$KEY" "$STATE" shared/public/uploads shared/config
before=$(tree_digest "$APP")

sb_init
t0=$SECONDS
sb_snapshot --tag roundtrip
log "snapshot $SNAP_ID took $((SECONDS - t0)) s"
id=$SNAP_ID
check "one release object" test "$(find "$REPO/demo/releases" -name '*.snpb' | wc -l)" -eq 1
check "two shared objects" test "$(find "$REPO/demo/data/$id" -name 'shared-*.snpb' | wc -l)" -eq 2
check "no partial files left" test -z "$(find "$REPO" -name '*.partial')"

expect_ok sb show "$id" --json
check "manifest names the release" test "$(json_get "$OUT" 'j["release"]["name"]')" = "$REL"
check "manifest has the tag" test "$(json_get "$OUT" 'j["tag"]')" = roundtrip
check "manifest lists 2 shared paths" test "$(json_get "$OUT" 'len(j["shared"])')" = 2

t0=$SECONDS
expect_ok sb verify "$id"
log "verify took $((SECONDS - t0)) s"

t0=$SECONDS
OUTDIR=$WORK/restored
expect_ok sb restore "$id" --target "$OUTDIR"
log "restore took $((SECONDS - t0)) s"

check "current is a symlink" test -L "$OUTDIR/current"
check "current -> releases/$REL" test "$(readlink "$OUTDIR/current")" = "releases/$REL"
check "only the snapshot's release is restored" test "$(ls "$OUTDIR/releases")" = "$REL"
compare_trees "$APP/releases/$REL" "$OUTDIR/releases/$REL"
compare_trees "$APP/shared/public/uploads" "$OUTDIR/shared/public/uploads"
compare_trees "$APP/shared/config" "$OUTDIR/shared/config"
check "no temp dir left beside the target" test -z "$(tmp_leftovers "$WORK" -maxdepth 1)"

# Without snapback: the independent reader written from docs/FORMAT.md decrypts the objects,
# Debian's zstd and GNU tar do the rest, and the trees are equal by the same comparison.
if "$PYTHON" -c "import sys; sys.path.insert(0, '$INTEGRATION_DIR'); import sbforge" 2>/dev/null &&
    command -v zstd >/dev/null && tar --version 2>/dev/null | grep -q 'GNU tar'; then
    log "recovery without snapback: sbforge.py open --raw | zstd -d | GNU tar -x"
    gnu_extract() { # OBJECT DIR
        mkdir -p "$2"
        "$PYTHON" "$INTEGRATION_DIR/sbforge.py" open --raw "$KEY" "$1" | zstd -dcq |
            tar -x --xattrs --xattrs-include='*' --acls -p --same-owner --warning=no-timestamp \
                --warning=no-unknown-keyword -C "$2"
    }
    gnu_extract "$(find "$REPO/demo/releases" -name '*.snpb')" "$WORK/gnu/release"
    compare_trees "$APP/releases/$REL" "$WORK/gnu/release"
    # shared-N.snpb holds the config's shared_paths[N], its entries relative to it
    gnu_extract "$REPO/demo/data/$id/shared-0.snpb" "$WORK/gnu/shared-0"
    gnu_extract "$REPO/demo/data/$id/shared-1.snpb" "$WORK/gnu/shared-1"
    compare_trees "$APP/shared/public/uploads" "$WORK/gnu/shared-0"
    compare_trees "$APP/shared/config" "$WORK/gnu/shared-1"
else
    log "python3 with libsodium/libzstd, zstd or GNU tar missing: recovery without snapback not checked"
fi

# the live app was only read
check "the live app is unchanged" test "$before" = "$(tree_digest "$APP")"

# --only shared into an existing empty directory
mkdir "$WORK/only-shared"
expect_ok sb restore "$id" --target "$WORK/only-shared" --only shared
check "--only shared: no release" test ! -e "$WORK/only-shared/releases"
check "--only shared: no current" test ! -L "$WORK/only-shared/current"
compare_trees "$APP/shared/config" "$WORK/only-shared/shared/config"
compare_trees "$APP/shared/public/uploads" "$WORK/only-shared/shared/public/uploads"
