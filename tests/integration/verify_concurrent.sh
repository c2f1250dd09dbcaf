#!/usr/bin/env bash
# Concurrent 'verify --restore-db' runs of one app (a scheduled one and one by hand) take turns
# (state_dir/verify-db.lock): each drops the scratch databases a killed run left, and must not
# drop the other's live one. Three runs at once over a SQLite database of some MiB all pass,
# and no scratch file is left.
# shellcheck source=tests/harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
DB=$WORK/app/shared/db.sqlite3
"$PYTHON" - "$DB" <<'PY'
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, b BLOB)")
c.executemany("INSERT INTO t (b) VALUES (?)", [(os.urandom(4096),) for _ in range(4000)])
c.commit()
PY
"$PYTHON" - "$CFG" "$DB" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["databases"] = [{"name": "main", "engine": "sqlite", "path": sys.argv[2]}]
c["verify"] = {"sql_probe": [{"database": "main", "sql": "SELECT count(*) FROM t", "expect": "4000"}]}
json.dump(c, open(sys.argv[1], "w"))
PY
sb_init
sb_snapshot
need flock
# The test holds the lock first, so the three runs certainly overlap: each must wait.
LOCK=$STATE/verify-db.lock
flock "$LOCK" sh -c "while [ ! -e '$WORK/go' ]; do sleep 0.05; done" &
tries=0
until ! flock -n "$LOCK" true 2>/dev/null; do
    ((tries++ < 200)) || fail "the test could not take $LOCK"
    sleep 0.05
done
pids=()
for n in 1 2 3; do
    "$SNAPBACK" --config "$CFG" --no-progress verify latest --restore-db >"$WORK/v$n.out" 2>"$WORK/v$n.err" &
    pids+=($!)
done
tries=0
until (($(cat "$WORK"/v*.err | grep -c "waiting for another 'verify --restore-db'" || true) == 3)); do
    ((tries++ < 600)) || fail "the runs did not all wait for the lock: $(cat "$WORK"/v*.err)"
    sleep 0.05
done
touch "$WORK/go"
for n in 1 2 3; do
    rc=0
    wait "${pids[$((n - 1))]}" || rc=$?
    CHECKS=$((CHECKS + 1))
    ((rc == 0)) || fail "concurrent verify $n exited $rc: $(tail -n 3 "$WORK/v$n.err")"
done
check "no scratch database is left" test -z "$(find "$STATE" -name 'snapback_verify_*')"
