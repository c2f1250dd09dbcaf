#!/usr/bin/env bash
# Sparse files (a database file, a VM image, a preallocated log) are stored as their data
# regions only (GNU sparse pax 1.0, from lseek SEEK_DATA/SEEK_HOLE) and restored with their
# holes: the stored object stays small, the restored file has the same bytes and about as few
# blocks. Covers a hole in the middle, a file that is all hole, data then a hole to the end,
# a hard link to a sparse file, in a release and in a shared path; verify and restore --path
# read the same archive.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
R=$APP/releases/20260102T000000Z
need_holes
truncate -s 256M "$R/holey.img"
write_at "$R/holey.img" 0 'head'
write_at "$R/holey.img" $((128 * 1024 * 1024)) 'middle'
write_at "$R/holey.img" $((256 * 1024 * 1024 - 4)) 'tail'
truncate -s 100M "$R/all-hole.img"
head -c 100000 /dev/urandom >"$R/data-then-hole.img"
truncate -s 50M "$R/data-then-hole.img"
ln "$R/holey.img" "$R/holey-link.img"
# past the 8 GiB of a ustar size field: the size goes into the pax header (in a shared path
# of its own, which compare_trees does not read: 10 GiB of holes take a minute to read)
mkdir -p "$APP/shared/big"
truncate -s 10G "$APP/shared/big/big.img"
write_at "$APP/shared/big/big.img" $((10 * 1024 * 1024 * 1024 - 9)) 'the end.'
"$PYTHON" -c 'import json, sys
c = json.load(open(sys.argv[1])); c["release"]["shared_paths"].append("shared/big")
json.dump(c, open(sys.argv[1], "w"))' "$CFG"

mkdir -p "$APP/shared/uploads/db"
truncate -s 64M "$APP/shared/uploads/db/app.sqlite"
write_at "$APP/shared/uploads/db/app.sqlite" $((32 * 1024 * 1024)) 'row'

sb_init
sb_snapshot
ID=$SNAP_ID
expect_ok sb show "$ID" --json
stored=$(json_get "$OUT" 'sum(o["stored_size"] for o in j["objects"])')
check "the stored objects hold the data, not the holes ($stored bytes)" test "$stored" -lt 2000000
expect_ok sb verify "$ID"
expect_ok sb restore "$ID" --target "$WORK/restored"
RR=$WORK/restored/releases/20260102T000000Z
for f in holey.img all-hole.img data-then-hole.img; do
    check "$f: same bytes" cmp -s "$R/$f" "$RR/$f"
    check "$f: same size" test "$(stat -c %s "$RR/$f")" = "$(stat -c %s "$R/$f")"
    check "$f: restored with its holes ($(stat -c %b "$RR/$f") blocks)" test "$(stat -c %b "$RR/$f")" -le $(($(stat -c %b "$R/$f") + 64))
done
big=$WORK/restored/shared/big/big.img
check "big.img: 10 GiB" test "$(stat -c %s "$big")" = $((10 * 1024 * 1024 * 1024))
check "big.img: its last bytes" test "$(tail -c 9 "$big" | tr -d '\0')" = 'the end.'
check "big.img: with its holes" test "$(stat -c %b "$big")" -le 64
check "the hard link is a hard link" test "$(stat -c %i "$RR/holey.img")" = "$(stat -c %i "$RR/holey-link.img")"
compare_trees "$R" "$RR"
compare_trees "$APP/shared/uploads" "$WORK/restored/shared/uploads"
check "the shared file keeps its holes" test "$(stat -c %b "$WORK/restored/shared/uploads/db/app.sqlite")" -le 64

log "restore --path of one sparse file"
expect_ok sb restore "$ID" --target "$WORK/one" --path shared/uploads/db/app.sqlite
check "same bytes" cmp -s "$APP/shared/uploads/db/app.sqlite" "$WORK/one/shared/uploads/db/app.sqlite"
check "with its holes" test "$(stat -c %b "$WORK/one/shared/uploads/db/app.sqlite")" -le 64
