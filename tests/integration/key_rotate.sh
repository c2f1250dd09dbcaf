#!/usr/bin/env bash
# Key rotation (issue #8): 'snapback key rotate' in both key modes and from one to the other.
#   - symmetric: snapshots before and after a rotation; the new ones use the new key (the old
#     key alone cannot read them), the old ones read with the old key in old_key_files; a
#     release stored under the old key is stored again under the new one, not reused; the
#     old key alone (--key) reads old snapshots but cannot write (78); a wrong old_key_files
#     entry is refused (78); without old_key_files old manifests fail with a hint (65);
#   - write-only: a server with recipient A rotates to recipient B (--recipient B.pub made
#     elsewhere); the recovery side reads everything with B.key plus A.key in old_key_files;
#   - symmetric -> write-only: --write-only --new-key-file makes a pair and the repository's
#     new snapshots are sealed (key mode 2 in snapback.json).
#   - rotating to a key the repository already has: 64, snapback.json unchanged; an existing
#     --new-key-file: 73.
# shellcheck source=tests/harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
sb_init
K1=$KEY
sb_snapshot --tag before
OLD=$SNAP_ID

log "symmetric -> symmetric"
expect_ok sb key rotate --new-key-file "$WORK/k2"
expect_out_contains "old_key_files"
check "the new key is 0600" test "$(stat -c %a "$WORK/k2")" = 600
check "snapback.json lists the retired key" test "$(json_get "$(cat "$REPO/snapback.json")" 'len(j["retired_keys"])')" = 1
# the config still names k1: it is retired now, so it may read but not write
expect_exit 78 sb snapshot
expect_err_contains "retired by 'snapback key rotate'"
make_config "$CFG" "$APP" "$REPO" "$WORK/k2" "$STATE" shared/uploads
sb_snapshot --tag after
NEW=$SNAP_ID
check "the release was stored again under the new key" \
    test "$(find "$REPO/demo/releases" -name '*.snpb' | wc -l)" = 2
expect_exit 65 sb verify "$OLD"
expect_err_contains "old_key_files"
expect_exit 65 sb show "$OLD"
expect_err_contains "old_key_files"
expect_ok sb show "$NEW"
# old_key_files reads the old snapshots
"$PYTHON" - "$CFG" "$K1" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["old_key_files"] = [sys.argv[2]]
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
expect_ok sb list --json
check "list shows both snapshots" test "$(json_get "$OUT" 'len(j)')" = 2
expect_ok sb verify --all
expect_ok sb restore "$OLD" --target "$WORK/old"
compare_trees "$APP/releases/20260102T000000Z" "$WORK/old/releases/20260102T000000Z" noroot
expect_ok sb restore "$NEW" --target "$WORK/new"
# the old key alone reads the old snapshot, not the new one, and cannot write
expect_ok "$SNAPBACK" --config "$CFG" --key "$K1" --no-progress verify "$OLD"
expect_exit 65 "$SNAPBACK" --config "$CFG" --key "$K1" --no-progress verify "$NEW"
# an unrelated key in old_key_files
expect_ok "$SNAPBACK" keygen --key-file "$WORK/stranger"
"$PYTHON" - "$CFG" "$WORK/stranger" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["old_key_files"].append(sys.argv[2])
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
expect_exit 78 sb list
expect_err_contains "is not a key of repository"
"$PYTHON" - "$CFG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["old_key_files"].pop()
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
expect_exit 73 sb key rotate --new-key-file "$WORK/k2"
expect_err_contains "already exists"
expect_exit 64 sb key rotate
expect_exit 64 sb key spin

log "symmetric -> write-only"
expect_ok sb key rotate --write-only --new-key-file "$WORK/wo.key"
check "snapback.json: key mode 2" test "$(json_get "$(cat "$REPO/snapback.json")" 'j["key_mode"]')" = 2
"$PYTHON" - "$CFG" "$WORK/wo.pub" "$WORK/k2" "$K1" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
del c["key_file"]
c["recipient"] = sys.argv[2]
c["old_key_files"] = [sys.argv[3], sys.argv[4]]
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
sb_snapshot --tag sealed
SEALED=$SNAP_ID
before=$(cat "$REPO/snapback.json")
expect_exit 64 sb key rotate --recipient "$WORK/wo.pub"
expect_err_contains "already a key of repository"
check "a refused rotation leaves snapback.json alone" test "$before" = "$(cat "$REPO/snapback.json")"
expect_exit 77 sb restore "$SEALED" --target "$WORK/nope"
expect_ok "$SNAPBACK" --config "$CFG" --key "$WORK/wo.key" --no-progress verify --all
expect_ok "$SNAPBACK" --config "$CFG" --key "$WORK/wo.key" --no-progress restore "$SEALED" --target "$WORK/sealed"
compare_trees "$APP/shared/uploads" "$WORK/sealed/shared/uploads" noroot

log "write-only -> write-only (a public key made elsewhere)"
expect_ok "$SNAPBACK" keygen --write-only --key-file "$WORK/b.key"
expect_ok sb key rotate --recipient "$WORK/b.pub"
"$PYTHON" - "$CFG" "$WORK/b.pub" "$WORK/wo.key" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["recipient"] = sys.argv[2]
c["old_key_files"].append(sys.argv[3])
json.dump(c, open(sys.argv[1], "w"), indent=1)
PY
sb_snapshot --tag sealed-b
B=$SNAP_ID
expect_exit 65 "$SNAPBACK" --config "$CFG" --key "$WORK/wo.key" --no-progress verify "$B"
expect_ok "$SNAPBACK" --config "$CFG" --key "$WORK/b.key" --no-progress verify --all
expect_ok "$SNAPBACK" --config "$CFG" --key "$WORK/b.key" --no-progress list --json
check "every snapshot of every key is listed" test "$(json_get "$OUT" 'len(j)')" = 4
check "snapback.json has three retired keys" test "$(json_get "$(cat "$REPO/snapback.json")" 'len(j["retired_keys"])')" = 3
check "no temp file left beside snapback.json" test -z "$(find "$REPO" -maxdepth 1 -name 'snapback.json?*')"
