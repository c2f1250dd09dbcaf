#!/usr/bin/env bash
# A release and a shared path 1,500 directories deep (paths of about 3,000 bytes), taken with
# a soft limit of 256 open files: the walks hold one directory open per level, so snapback
# raises its soft RLIMIT_NOFILE (and gives children the old one back). The snapshot verifies
# and restores byte for byte; a hook run by it sees the soft limit it was started with; a path
# longer than PATH_MAX fails with a message that names it, and no manifest.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
hard=$(ulimit -Hn)
[[ $hard == unlimited || $hard -ge 2048 ]] || skip "the hard limit of open files is $hard (< 2048)"
R=$APP/releases/20260102T000000Z
deep() { # deep DIR LEVELS: a chain of one-letter directories with a file at the bottom
    local dir=$1 n=$2 path i
    path=$dir
    for ((i = 0; i < n; i++)); do path+=/d; done
    mkdir -p "$path"
    printf 'at the bottom of %s\n' "$dir" >"$path/bottom.txt"
    printf '%s\n' "$path"
}
bottom=$(deep "$R/vendor" 1500)/bottom.txt
deep "$APP/shared/uploads/nested" 1200 >/dev/null
"$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1]))
c["hooks"] = {"after_snapshot": ["/bin/sh", "-c", "ulimit -Sn > " + sys.argv[2]]}
json.dump(c, open(sys.argv[1], "w"))' "$CFG" "$WORK/hook-limit"
sb_init

log "a snapshot under ulimit -Sn 256"
lim() { (ulimit -Sn 256 && "$@"); }
expect_ok lim sb snapshot
ID=$(printf '%s\n' "$OUT" | tail -n 1)
check "the hook ran with the soft limit snapback was given" test "$(cat "$WORK/hook-limit")" = 256
expect_ok lim sb verify "$ID"
expect_ok lim sb restore "$ID" --target "$WORK/restored"
rel=${bottom#"$APP/"}
(cd "$WORK/restored" && cmp -s "$bottom" "$rel") || fail "the deepest file is not restored"
compare_trees "$R" "$WORK/restored/releases/20260102T000000Z"
compare_trees "$APP/shared/uploads" "$WORK/restored/shared/uploads"

log "a path longer than PATH_MAX fails with a message that names it"
before=$(find "$REPO" -name '*.manifest' | wc -l)
long=$R/vendor
for ((i = 0; i < 20; i++)); do long+=/$(printf 'x%.0s' {1..250}); done
mkdir -p "$long"
expect_exit 74 sb snapshot
expect_err_contains "is longer than 4096 bytes, which snapback cannot archive; move or rename what is below 'vendor/xxxxx"
check "no new manifest" test "$(find "$REPO" -name '*.manifest' | wc -l)" = "$before"
# a release name not seen before: the archive walk (not the fingerprint walk) meets it first
R3=$APP/releases/20260103T000000Z
mkdir -p "$R3"
mv "$R/vendor/x"* "$R3/"
ln -sfn releases/20260103T000000Z "$APP/current"
expect_exit 74 sb snapshot
expect_err_contains "is longer than 4096 bytes, which snapback cannot archive; move or rename what is below 'xxxxx"
check "no new manifest" test "$(find "$REPO" -name '*.manifest' | wc -l)" = "$before"
check "no partial file or pending object" test -z "$(find "$REPO" "$STATE" -name '*.partial' -o -name '*-new-*')"
