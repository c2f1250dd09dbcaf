#!/usr/bin/env bash
# snapback ls: the entries of a snapshot as restore --target lays them out, without restoring.
# - ls --json of a release with every kind of entry (make_tree.py full: symlinks, hard links,
#   names with newlines and bytes that are not UTF-8, setuid modes, nanosecond mtimes), two
#   shared paths and a SQLite database gives exactly the paths, types, modes, sizes, mtimes,
#   owners and link targets of what restore --target writes (compared with a restore);
# - the text form: one line per entry, a name's newline and non-UTF-8 bytes escaped;
# - PATHs select as restore --path does (current/..., a shared path, a directory and what is
#   below it); one that matches nothing: 66; one outside every part: 66; '../x': 64;
#   --only db: the dumps only; ls | head ends quietly with 0 when head leaves; a full disk
#   under stdout: 74;
# - a damaged object: 65 naming it, as restore.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
REL=20261125T120000Z
APP=$WORK/app
mkdir -p "$APP/releases" "$APP/shared/uploads/2026" "$APP/shared/config"
"$PYTHON" "$INTEGRATION_DIR/make_tree.py" full "$APP/releases/$REL" --big-mib 1 --small 50
ln -sfn "releases/$REL" "$APP/current"
printf 'photo\n' >"$APP/shared/uploads/2026/photo.jpg"
ln -s 2026/photo.jpg "$APP/shared/uploads/latest.jpg"
printf 'x=1\n' >"$APP/shared/config/app.env"
mkdir -p "$APP/shared/uploads/many" # enough lines to fill a pipe that nobody reads (ls | head)
(cd "$APP/shared/uploads/many" && seq 3000 | xargs touch)
"$PYTHON" -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute("CREATE TABLE t (v)"); c.commit()' "$APP/shared/app.sqlite3"
REPO=$WORK/repo KEY=$WORK/key STATE=$WORK/state CFG=$WORK/snapback.json
make_config "$CFG" "$APP" "$REPO" "$KEY" "$STATE" shared/uploads shared/config
"$PYTHON" - "$CFG" "$APP/shared/app.sqlite3" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["databases"] = [{"name": "sessions", "engine": "sqlite", "path": sys.argv[2]}]
json.dump(c, open(sys.argv[1], "w"))
PY
sb_init
sb_snapshot
ID=$SNAP_ID

log "ls --json against what restore --target writes"
expect_ok sb ls "$ID" --json
printf '%s\n' "$OUT" >"$WORK/ls.json"
expect_ok sb restore "$ID" --target "$WORK/restored"
"$PYTHON" - "$WORK/ls.json" "$WORK/restored" <<'PY' || fail "ls --json differs from the restored tree"
import json, os, stat, sys
listed = {}
for line in open(sys.argv[1], encoding="utf-8"):
    e = json.loads(line)
    path = bytes.fromhex(e["path_hex"]) if "path_hex" in e else e["path"].encode()
    assert path not in listed, "listed twice: %r" % path
    listed[path] = e
root = sys.argv[2].encode()
seen, problems, inodes = set(), [], {}
for dirpath, dirs, files in os.walk(root):
    for name in dirs + files + ([b""] if dirpath == root else []):
        full = os.path.join(dirpath, name) if name else dirpath
        rel = os.path.relpath(full, root)
        if rel == b".":
            continue
        seen.add(rel)
        st = os.lstat(full)
        e = listed.get(rel)
        if e is None:
            # the parents restore makes (releases/, shared/, databases/) come from no archive
            if not (stat.S_ISDIR(st.st_mode) and any(p.startswith(rel + b"/") for p in listed)):
                problems.append("not listed: %r" % rel)
            continue
        kind = ("dir" if stat.S_ISDIR(st.st_mode) else "symlink" if stat.S_ISLNK(st.st_mode)
                else "fifo" if stat.S_ISFIFO(st.st_mode) else "char" if stat.S_ISCHR(st.st_mode)
                else "block" if stat.S_ISBLK(st.st_mode) else "file")
        if rel.startswith(b"databases/"):
            ok = e["type"] == "file" and e["size"] == st.st_size
            if not ok:
                problems.append("%r: %s" % (rel, e))
            continue
        if e["type"] == "hardlink":
            first = inodes.get(st.st_ino)
            if kind != "file" or st.st_nlink < 2:
                problems.append("%r is listed as a hard link but is not one" % rel)
            continue
        if kind == "file" and st.st_nlink > 1:
            inodes.setdefault(st.st_ino, rel)
        if e["type"] != kind:
            problems.append("%r: type %s, restored %s" % (rel, e["type"], kind))
        if kind == "symlink":
            link = bytes.fromhex(e["link_hex"]) if "link_hex" in e else e["link"].encode()
            if os.readlink(full) != link:
                problems.append("%r: link %r, restored %r" % (rel, link, os.readlink(full)))
        elif int(e["mode"], 8) != stat.S_IMODE(st.st_mode):
            problems.append("%r: mode %s, restored %o" % (rel, e["mode"], stat.S_IMODE(st.st_mode)))
        if kind == "file" and e["size"] != st.st_size:
            problems.append("%r: size %d, restored %d" % (rel, e["size"], st.st_size))
        if rel == b"current":
            continue
        if "uid" in e and os.geteuid() == 0 and (e["uid"], e["gid"]) != (st.st_uid, st.st_gid):
            problems.append("%r: owner %s:%s, restored %d:%d" % (rel, e["uid"], e["gid"], st.st_uid, st.st_gid))
        sec, frac = e["mtime"][:-1].split(".")
        import calendar, time
        ns = calendar.timegm(time.strptime(sec, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(frac)
        if kind != "symlink" and ns != st.st_mtime_ns:
            problems.append("%r: mtime %s, restored %d" % (rel, e["mtime"], st.st_mtime_ns))
for path in listed:
    if path not in seen:
        problems.append("listed but not restored: %r" % path)
for p in problems[:20]:
    print(p)
print("%d entries listed, %d restored, %d problems" % (len(listed), len(seen), len(problems)))
sys.exit(1 if problems else 0)
PY
check "a name that is not UTF-8 has path_hex" grep -q '"path_hex"' "$WORK/ls.json"
check "the hard links are listed as such" grep -q '"type":"hardlink"' "$WORK/ls.json"

log "text form"
expect_ok sb ls "$ID"
check "one line per entry" test "$(printf '%s\n' "$OUT" | wc -l)" = "$(wc -l <"$WORK/ls.json")"
expect_out_contains "lrwxrwxrwx -                            0 "
expect_out_contains " current -> releases/$REL"
expect_out_contains " shared/uploads/latest.jpg -> 2026/photo.jpg"
expect_out_contains " databases/sessions.sqlite3"
check "a setuid mode is shown as s" grep -q '^-rwsr-xr-x ' <<<"$OUT"
check "control characters and other bytes are escaped" grep -q '\\n\|\\[0-3][0-7][0-7]' <<<"$OUT"

log "ls | head: the reader goes away; ls stops, exit 0, no error"
set +o pipefail
"$SNAPBACK" --config "$CFG" --no-progress --quiet ls "$ID" 2>"$WORK/head.err" | head -n 1 >/dev/null
check "exit 0 when the pipe's reader left" test "${PIPESTATUS[0]}" = 0
set -o pipefail
check "nothing on stderr ($(head -c 300 "$WORK/head.err"))" test ! -s "$WORK/head.err"
status=0
"$SNAPBACK" --config "$CFG" --no-progress ls "$ID" --json >/dev/full 2>"$WORK/full.err" || status=$?
check "stdout on a full disk: 74 (got $status)" test "$status" = 74
check "... saying so" grep -q "cannot write the listing to stdout" "$WORK/full.err"

log "PATHs, as restore --path takes them"
expect_ok sb ls "$ID" --json shared/uploads/2026 current/config
check "only those paths and below" "$PYTHON" -c '
import json, sys
paths = [json.loads(l)["path"] for l in sys.stdin]
ok = all(p == "shared/uploads/2026" or p.startswith("shared/uploads/2026/") or
         p == "releases/'"$REL"'/config" or p.startswith("releases/'"$REL"'/config/") for p in paths)
sys.exit(0 if ok and "shared/uploads/2026/photo.jpg" in paths and len(paths) > 2 else 1)' <<<"$OUT"
expect_exit 66 sb ls "$ID" shared/uploads/nothing-here
expect_err_contains "'shared/uploads/nothing-here': no such file or directory in snapshot '$ID'"
expect_exit 66 sb ls "$ID" etc/passwd
expect_err_contains "is in no part of snapshot"
expect_exit 64 sb ls "$ID" ../x
expect_ok sb ls "$ID" --only db
check "--only db: the dump only" test "$(printf '%s\n' "$OUT" | grep -c .)" = 1
expect_out_contains "databases/sessions.sqlite3"

log "a damaged object: 65, as restore"
obj=$(find "$REPO/demo/releases" -name '*.snpb' | head -n 1)
flip_byte "$obj" 200
expect_exit 65 sb ls "$ID"
expect_err_contains "$(basename "$obj")"
