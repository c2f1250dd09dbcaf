#!/usr/bin/env bash
# prune and status (DESIGN §9, issue #6): the retention policy keeps what it says with the
# rule that keeps it, never the newest or a snapshot tagged keep; manifests go first and
# objects after; an object a surviving snapshot references (the shared release object)
# stays; the data of a removed snapshot goes at once, other orphans only after the grace
# period; every survivor still verifies. status exits
# 1 when the newest snapshot is older than max_age and 66 when there is none.
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
"$PYTHON" - "$CFG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["retention"] = {"keep_last": 2}
c["max_age"] = "1h"
json.dump(c, open(sys.argv[1], "w"))
PY
sb_init
expect_exit 66 sb status
expect_err_contains "has no snapshot yet"

sb_snapshot --tag keep
KEEP=$SNAP_ID
ids=()
for i in 1 2 3 4; do
    printf 'upload %s\n' "$i" >"$APP/shared/uploads/u$i"
    sb_snapshot
    ids+=("$SNAP_ID")
done
release_objects=$(find "$REPO/demo/releases" -name '*.snpb' | wc -l)
[[ $release_objects == 1 ]] || fail "expected one release object, found $release_objects"

expect_ok sb prune --dry-run
expect_out_contains "dry run: nothing was deleted"
expect_out_contains "5 snapshot(s), 3 to keep, 2 to remove"
[[ $(manifest_count) == 5 ]] || fail "dry run deleted something"
printf '%s\n' "$OUT" | grep -q "^keep    ${ids[3]} .*newest, last" || fail "newest not kept as newest"
printf '%s\n' "$OUT" | grep -q "^keep    $KEEP .*tag keep" || fail "keep tag not honoured"
printf '%s\n' "$OUT" | grep -q "^remove  ${ids[0]}" || fail "oldest untagged not removed"
CHECKS=$((CHECKS + 4))

# The data of the removed snapshots goes at once (their manifests are gone, and no snapshot
# references another's data/<ID>/): prune frees space when the disk is full. An orphan of a
# snapshot in progress (objects, no manifest yet) stays until the grace period.
INPROGRESS=$REPO/demo/data/20991231T000000Z-ffff
mkdir -p "$INPROGRESS"
printf 'written by a snapshot in progress\n' >"$INPROGRESS/shared-0.snpb"
expect_ok sb prune
expect_out_contains "deleted 2 snapshot(s) and 2 object(s)"
[[ $(manifest_count) == 3 ]] || fail "expected 3 manifests after prune"
[[ ! -e $REPO/demo/data/${ids[0]} && ! -e $REPO/demo/data/${ids[1]} ]] || fail "the data of a pruned snapshot is still there"
[[ -f $INPROGRESS/shared-0.snpb ]] || fail "a young orphan (a snapshot in progress) was deleted before the grace period"
CHECKS=$((CHECKS + 2))
# objects that are orphans now, made older than the grace period
find "$REPO/demo" -type f -exec touch -d '7 hours ago' {} +
: >"$REPO/demo/data/${ids[3]}/stale.snpb.partial"
touch -d '7 hours ago' "$REPO/demo/data/${ids[3]}/stale.snpb.partial"
expect_ok sb prune
expect_out_contains "0 to remove"
[[ ! -e $INPROGRESS ]] || fail "an orphan older than the grace period is still there"
[[ ! -e $REPO/demo/data/${ids[3]}/stale.snpb.partial ]] || fail "stale partial file not removed"
[[ $(find "$REPO/demo/releases" -name '*.snpb' | wc -l) == 1 ]] || fail "the shared release object was deleted"
CHECKS=$((CHECKS + 4))
expect_ok sb verify --all
for id in "$KEEP" "${ids[2]}" "${ids[3]}"; do
    expect_ok sb restore "$id" --target "$WORK/restore-$id"
done
grep -q '"event":"prune","outcome":"ok"' "$STATE/journal.jsonl" || fail "prune not journalled"

# no rule at all: refused
"$PYTHON" - "$CFG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["retention"] = {}; json.dump(c, open(sys.argv[1], "w"))
PY
expect_exit 78 sb prune
expect_err_contains "no rule is set; refusing to prune"

# status: fresh, then stale once max_age has passed (the manifest's time is what counts)
expect_ok sb status --json
[[ $(json_get "$OUT" 'j["stale"]') == false ]] || fail "fresh snapshot reported stale"
[[ $(json_get "$OUT" 'j["prune"]["last_outcome"]') == failed ]] || fail "status does not show the failed prune"
CHECKS=$((CHECKS + 2))
"$PYTHON" - "$CFG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["max_age"] = "1s"; json.dump(c, open(sys.argv[1], "w"))
PY
sleep 2
expect_exit 1 sb status
expect_out_contains "STALE"
expect_err_contains "more than max_age"
