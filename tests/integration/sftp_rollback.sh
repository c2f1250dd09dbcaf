#!/usr/bin/env bash
# Rollback to a release that is no longer on disk, with the repository on SFTP (DESIGN §7,
# issue #5; rollback.sh covers the local repository): release R2 (every kind of entry,
# make_tree.py full) is snapshotted while live, R3 is deployed, R2 is deleted from disk; then
# `rollback --to R2` downloads it from a real OpenSSH sshd (tests/harness/sshd.sh) into
# releases/.R2.tmp, renames it into place and switches current to it. The restored tree equals
# the original by content and metadata, nothing temporary is left, the safety snapshot was
# uploaded (it used to stay in the local spool, out of reach of the undo and of the
# auto-revert) and rolls forward. An unhealthy rollback with a (SQLite) database is reverted
# from that safety snapshot: release and database. With the server down, a rollback that
# needs the repository exits 69 and changes nothing.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/sshd.sh
source "$HARNESS_DIR/sshd.sh"
sb_setup "$@"
sshd_setup

R1=20261120T100000Z
R2=20261121T100000Z
R3=20261122T100000Z
APP=$WORK/app
make_app "$APP" "$R1" "$R3"
"$PYTHON" "$INTEGRATION_DIR/make_tree.py" full "$APP/releases/$R2" --big-mib 8 --small 300
ln -sfn "releases/$R2" "$APP/current"
sftp_env
current() { readlink "$APP/current"; }
sb_init

# R2 live: a snapshot (uploaded); then R3 deployed and R2 removed from disk
sb_snapshot --tag pre-deploy
PRE_DEPLOY=$SNAP_ID
check "the R2 release object is on the server" test -n "$(find "$REPO/demo/releases" -name "$R2-*.snpb")"
ln -sfn "releases/$R3" "$APP/current"
cp -a "$APP/releases/$R2" "$WORK/r2.orig"
rm -rf "$APP/releases/$R2"

expect_ok sb releases
check "R2 is listed as in the repository only" grep -q "^  $R2 .*repository" <<<"$OUT"

# with the server down: 69, nothing changed
sshd_stop
before=$(tree_digest "$APP")
expect_exit 69 sb rollback --to "$R2"
expect_err_contains "127.0.0.1:$SSHD_PORT"
check "server down: the app is unchanged" test "$(tree_digest "$APP")" = "$before"
check "server down: no temp release left" test -z "$(find "$APP/releases" -maxdepth 1 -name '.*')"
sshd_start

# the rollback: planned from the remote, restored, switched
expect_ok sb rollback --to "$R2" --dry-run
expect_out_contains "$R3 -> $R2 (restored from the repository first)"
expect_out_contains "from snapshot $PRE_DEPLOY"
check "--dry-run restored nothing" test ! -e "$APP/releases/$R2"
expect_ok sb rollback --to "$R2"
expect_out_contains "restored from the repository first"
check "current -> releases/$R2" test "$(current)" = "releases/$R2"
compare_trees "$WORK/r2.orig" "$APP/releases/$R2"
check "no temp release left" test -z "$(find "$APP/releases" -maxdepth 1 -name '.*')"
check "no partial file left on the server" test -z "$(find "$REPO" -name '*.partial')"
SAFETY=$(printf '%s\n' "$OUT" | sed -n 's/.*undo with: snapback rollback --to //p')
check "a safety snapshot is named" test -n "$SAFETY"
check "the safety snapshot's manifest is on the server" test -f "$REPO/demo/snapshots/$SAFETY.manifest"
check "the spool is empty (everything uploaded)" test -z "$(find "$STATE/spool" -type f 2>/dev/null)"
expect_ok sb verify "$SAFETY"

# roll forward to the safety snapshot: R3 again
expect_ok sb rollback --to "$SAFETY"
check "roll forward: current -> releases/$R3" test "$(current)" = "releases/$R3"
expect_ok sb releases
check "releases marks $R3 current" grep -q "^\* $R3 " <<<"$OUT"

# an unhealthy rollback with a database: reverted from the uploaded safety snapshot
DB=$APP/shared/db.sqlite3
sql() { "$PYTHON" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); r=c.execute(sys.argv[2]).fetchall(); c.commit(); print("\n".join("|".join(map(str,x)) for x in r))' "$DB" "$1"; }
"$PYTHON" - "$CFG" "$DB" <<'PY'
import json, sys
cfg = json.load(open(sys.argv[1]))
cfg["databases"] = [{"name": "main", "engine": "sqlite", "path": sys.argv[2]}]
cfg["hooks"] = {"health_check": "test $SNAPBACK_RELEASE != 20261120T100000Z", "timeout_s": 10}
cfg["rollback"] = {"health_timeout_s": 1, "auto_revert": True}
json.dump(cfg, open(sys.argv[1], "w"), indent=2)
PY
ln -sfn "releases/$R1" "$APP/current"
sql "CREATE TABLE t(v TEXT)"
sql "INSERT INTO t VALUES ('r1')"
sb_snapshot
ln -sfn "releases/$R3" "$APP/current"
sql "UPDATE t SET v = 'r3'"
expect_exit 69 sb rollback --to "$R1" --with-database
expect_err_contains "reverted"
check "reverted: current -> releases/$R3" test "$(current)" = "releases/$R3"
check "reverted: the database is R3's again" test "$(sql 'SELECT v FROM t')" = r3
check "the spool is empty" test -z "$(find "$STATE/spool" -type f 2>/dev/null)"
