#!/usr/bin/env bash
# Trees that change while the walk is inside them. A shared path (uploads, caches) is written
# by the running app: an entry that vanishes between the walk's stat and its read is skipped
# with a warning naming it, a file that shrinks while it is read is stored padded to the size
# its header declared (with a warning), one that grows is stored as the prefix its stat gave,
# one replaced or rewritten in place while it is read is stored with a warning;
# the snapshot succeeds, verifies and restores. A release must not change: the same events fail
# its snapshot with exit 75, no manifest and no partial file. Each change is made at the exact
# point between the walk's stat of an entry and its read (test hook "entry:PATH" of
# SNAPBACK_TEST_PAUSE_AT), so nothing here depends on timing. Reading leaves atimes as they
# were (O_NOATIME), and a file of another owner (O_NOATIME refused) is still read.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
sb_init
export SNAPBACK_TEST_HOOKS=1
"$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["metrics_file"] = sys.argv[2]
json.dump(c, open(sys.argv[1], "w"))' "$CFG" "$WORK/metrics.prom"
UP=$APP/shared/uploads
R2=$APP/releases/20260102T000000Z

# paused_snapshot ENTRY ONLY CMD...: `snapshot --only ONLY` paused after the walk's stat of
# ENTRY (relative to the tree), CMD run there, then the snapshot goes on; sets RC, OUT, ERR, ID.
paused_snapshot() {
    local entry=$1 only=$2
    shift 2
    paused_snapshot_at "entry:$entry" --only "$only" -- "$@"
}
manifests() { find "$REPO/demo/snapshots" -maxdepth 1 -type f -name '*.manifest' | wc -l; }
restored_uploads() { # restores the shared path of $ID into a fresh directory, prints its path
    local dest=$WORK/restored.$1
    expect_ok sb restore "$ID" --target "$dest" --only shared
    printf '%s\n' "$dest/shared/uploads"
}

mkdir -p "$UP/cache/d1/d2"
for i in 1 2 3 4 5; do printf 'file %s\n' "$i" >"$UP/cache/f$i"; done
printf 'deep\n' >"$UP/cache/d1/d2/x"
head -c 300000 /dev/urandom >"$UP/big.bin"
cp "$UP/big.bin" "$WORK/big.orig"

log "shared: a file removed between the walk's stat and its read is skipped with a warning"
paused_snapshot cache/f3 shared rm "$UP/cache/f3"
check "exit 0" test "$RC" = 0
expect_err_contains "cache/f3: it vanished while the tree was archived and is skipped"
expect_ok sb verify "$ID"
dest=$(restored_uploads a)
check "the vanished file is not restored" test ! -e "$dest/cache/f3"
for i in 1 2 4 5; do
    check "f$i is restored whole" cmp -s "$UP/cache/f$i" "$dest/cache/f$i"
done
check "the rest of the tree is restored" cmp -s "$UP/big.bin" "$dest/big.bin"

log "the run's warnings are counted in the journal, status and the metrics"
check "journal: the snapshot is ok with 1 warning" \
    grep -q '"event":"snapshot","outcome":"ok","snapshot":"'"$ID"'","detail":"1 warning(s); see the log of this run"' "$STATE/journal.jsonl"
expect_ok sb status
expect_out_contains "(ok): 1 warning(s); see the log of this run"
grep -q '^snapback_last_warnings{app="demo",job="snapshot"} 1.000$' "$WORK/metrics.prom" ||
    fail "metrics: snapback_last_warnings is not 1 ($(grep last_warnings "$WORK/metrics.prom" || true))"
CHECKS=$((CHECKS + 1))

log "shared: a directory removed after its entry, before its visit: skipped with a warning"
paused_snapshot cache/d1 shared rm -rf "$UP/cache/d1"
check "exit 0" test "$RC" = 0
expect_err_contains "cache/d1: it vanished while the tree was archived and is skipped"
expect_ok sb verify "$ID"
dest=$(restored_uploads b)
check "nothing of its contents is restored" test ! -e "$dest/cache/d1/d2"
check "its siblings are restored" cmp -s "$UP/cache/f1" "$dest/cache/f1"

log "shared: a file that shrinks after its stat is stored at its declared size, with a warning"
paused_snapshot big.bin shared truncate -s 1000 "$UP/big.bin"
check "exit 0" test "$RC" = 0
expect_err_contains "big.bin' shrank from 300000 to 1000 bytes while it was read"
expect_ok sb verify "$ID"
dest=$(restored_uploads c)
check "restored at the size of its header" test "$(stat -c %s "$dest/big.bin")" = 300000
check "its first 1000 bytes are the file's" cmp -s -n 1000 "$WORK/big.orig" "$dest/big.bin"
check "the rest is zeros" test "$(tail -c +1001 "$dest/big.bin" | tr -d '\0' | wc -c)" = 0

log "shared: a file that grows after its stat is stored as the prefix its stat described"
cp "$WORK/big.orig" "$UP/big.bin"
paused_snapshot big.bin shared sh -c "head -c 5000000 /dev/zero >>'$UP/big.bin'"
check "exit 0" test "$RC" = 0
check "no warning" test -z "$(grep -i warning <<<"$ERR" || true)"
expect_ok sb verify "$ID"
dest=$(restored_uploads d)
check "restored as it was at its stat" cmp -s "$WORK/big.orig" "$dest/big.bin"
cp "$WORK/big.orig" "$UP/big.bin"

log "shared: a file replaced (a new version renamed over it) after its stat: a warning"
printf 'version one\n' >"$UP/cache/f1"
paused_snapshot cache/f1 shared sh -c "printf 'the second, longer version\n' >'$UP/cache/f1.new' && mv '$UP/cache/f1.new' '$UP/cache/f1'"
check "exit 0" test "$RC" = 0
expect_err_contains "cache/f1' changed while it was read: the stored copy may mix two versions"
expect_ok sb verify "$ID"

log "shared: a file rewritten in place with the same size after its stat: a warning"
printf 'aaaa\n' >"$UP/cache/f2"
paused_snapshot cache/f2 shared sh -c "sleep 0.01; printf 'bbbb\n' >'$UP/cache/f2'"
check "exit 0" test "$RC" = 0
expect_err_contains "cache/f2' changed while it was read"

log "shared: nothing changed: no warning"
paused_snapshot cache/f2 shared true
check "exit 0" test "$RC" = 0
check "no warning" test -z "$(grep -i warning <<<"$ERR" || true)"
grep -q '^snapback_last_warnings{app="demo",job="snapshot"} 0.000$' "$WORK/metrics.prom" ||
    fail "metrics: snapback_last_warnings is not back to 0"
CHECKS=$((CHECKS + 1))

before=$(manifests)
log "release: a file removed between the walk's stat and its read fails the snapshot with 75"
paused_snapshot app/main.rb release rm "$R2/app/main.rb"
check "exit 75 (temporary: run again)" test "$RC" = 75
expect_err_contains "app/main.rb: it vanished while the release was archived (releases must not change once deployed); run the snapshot again"
check "no new manifest" test "$(manifests)" = "$before"
check "no partial file or release object" test -z "$(find "$REPO" "$STATE" -name '*.partial' -o -name '*.snpb' -path '*releases*')"
printf 'restored\n' >"$R2/app/main.rb"

log "release: a file that shrinks while it is read fails the snapshot with 75"
head -c 200000 /dev/urandom >"$R2/app/asset.bin"
paused_snapshot app/asset.bin release truncate -s 10 "$R2/app/asset.bin"
check "exit 75" test "$RC" = 75
expect_err_contains "asset.bin' shrank from 200000 to 10 bytes while the release was archived"
check "no new manifest" test "$(manifests)" = "$before"
check "no partial file or release object" test -z "$(find "$REPO" "$STATE" -name '*.partial' -o -name '*.snpb' -path '*releases*')"

log "release: the next run, with nothing changing, is stored and restores"
paused_snapshot app/asset.bin release true
check "exit 0" test "$RC" = 0
expect_ok sb verify "$ID"
expect_ok sb restore "$ID" --target "$WORK/restored.release" --only release
compare_trees "$R2" "$WORK/restored.release/releases/20260102T000000Z"

log "reading a tree leaves the atimes of its files as they were (O_NOATIME)"
printf 'old\n' >"$UP/cache/aged.txt"
touch -a -d '2020-01-02 03:04:05' "$UP/cache/aged.txt"
expect_ok sb snapshot --only shared
check "the atime is unchanged" test "$(stat -c %X "$UP/cache/aged.txt")" = "$(date -d '2020-01-02 03:04:05' +%s)"

log "a shared path that is a symlink to a directory is archived as that directory"
mkdir -p "$WORK/mnt/uploads/2026"
printf 'on the mount\n' >"$WORK/mnt/uploads/2026/a.txt"
"$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["release"]["shared_paths"].append("shared/mounted")
json.dump(c, open(sys.argv[1], "w"))' "$CFG"
ln -s "$WORK/mnt/uploads" "$APP/shared/mounted"
expect_ok sb snapshot --only shared
ID=$(printf '%s\n' "$OUT" | tail -n 1)
expect_ok sb restore "$ID" --target "$WORK/restored.mounted" --only shared
check "restored as a directory" test -d "$WORK/restored.mounted/shared/mounted" -a ! -L "$WORK/restored.mounted/shared/mounted"
compare_trees "$WORK/mnt/uploads" "$WORK/restored.mounted/shared/mounted"
"$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["release"]["shared_paths"].remove("shared/mounted")
json.dump(c, open(sys.argv[1], "w"))' "$CFG"

log "an unreadable file or directory fails with 77 and says what to do"
# root without capabilities obeys file modes (no second user needed); skipped where setpriv
# cannot drop them (not root, or no util-linux setpriv)
if setpriv --bounding-set=-all true 2>/dev/null && [[ $(id -u) == 0 ]]; then
    noperm() { setpriv --bounding-set=-all "$SNAPBACK" --config "$CFG" --no-progress "$@"; }
    # a file of another owner, readable: O_NOATIME is refused (EPERM) and the walk reads it
    # without
    printf 'theirs\n' >"$UP/cache/theirs.txt"
    chown nobody "$UP/cache/theirs.txt"
    expect_ok noperm snapshot --only shared
    ID=$(printf '%s\n' "$OUT" | tail -n 1)
    check "another owner's file is stored" cmp -s "$UP/cache/theirs.txt" "$(restored_uploads noatime)/cache/theirs.txt"
    rm -f "$UP/cache/theirs.txt"
    printf 'secret\n' >"$UP/locked.txt"
    chmod 000 "$UP/locked.txt"
    expect_exit 77 noperm snapshot --only shared
    expect_err_contains "locked.txt'; run snapback as a user who can read every file under it"
    expect_err_contains "Permission denied"
    rm -f "$UP/locked.txt"
    mkdir -p "$R2/private" && printf 'p\n' >"$R2/private/x" && chmod 000 "$R2/private"
    before=$(manifests)
    # a release name seen before: the fingerprint walk meets it first
    expect_exit 77 noperm snapshot --only release
    expect_err_contains "private'; run snapback as a user who can read every file under it"
    check "no new manifest" test "$(manifests)" = "$before"
    chmod 755 "$R2/private"
    # a new release name: the archive walk meets it first
    mkdir -p "$APP/releases/R4/private" && printf 'p\n' >"$APP/releases/R4/private/x"
    chmod 000 "$APP/releases/R4/private"
    ln -sfn releases/R4 "$APP/current"
    expect_exit 77 noperm snapshot --only release
    expect_err_contains "private'; run snapback as a user who can read every file under it"
    check "no new manifest" test "$(manifests)" = "$before"
    check "no partial file or pending object" test -z "$(find "$REPO" "$STATE" -name '*.partial' -o -name '*-new-*')"
    chmod 755 "$APP/releases/R4/private"
else
    log "SKIP: the permission cases need root and util-linux setpriv"
fi
