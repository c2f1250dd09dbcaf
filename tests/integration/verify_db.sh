#!/usr/bin/env bash
# shellcheck disable=SC2034 # LAST_CMD, PG_OPTS: read by the sourced harness
# verify --restore-db with configured SQL probes (issue #7), against a real PostgreSQL 15
# (tests/harness/pg.sh), a real MariaDB (tests/harness/mariadb.sh) and a SQLite file, all in
# one snapshot:
#   - passing probes, with expect (one and two columns: columns are joined by '|' on every
#     engine) and without: exit 0, each probe a passing testcase in --json and --junit;
#   - failing probes on each engine: a wrong expect, an SQL error, no rows: exit 65, the
#     message names the snapshot, the database, the query, what was expected and what came
#     back; the passing probes still pass; the reports name each failure;
#   - a damaged dump on each engine: 65 naming it, its probes reported as not run, the
#     scratch database dropped all the same;
#   - after every run no scratch database is left (pg_database, SHOW DATABASES,
#     state_dir/tmp), and the live databases are unchanged;
#   - a verify killed with SIGKILL mid-restore (PostgreSQL, MariaDB: the restore client stops
#     itself, so the kill is stepped, not timed; SQLite: the scratch file is polled for, with a
#     slow probe keeping the window open) leaves a scratch database (and, for MariaDB, the
#     client's option file), and the next verify drops it (removes it).
source "$(dirname "$0")/../harness/lib.sh"
source "$(dirname "$0")/../harness/pg.sh"
source "$(dirname "$0")/../harness/mariadb.sh"
sb_setup "$@"
"$PYTHON" -c 'import sqlite3' 2>/dev/null || skip "python3 has no sqlite3 module"

PG_OPTS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
pg_setup
my_setup
# both harnesses set an EXIT trap; stop both servers before lib.sh removes $WORK
# shellcheck disable=SC2154 # _db_status is set inside the trap
trap '_db_status=$?; trap - ERR; set +e; my_cleanup; pg_cleanup; (exit $_db_status); _cleanup' EXIT

REPO=$WORK/repo
KEY=$WORK/key
STATE=$WORK/state
CFG=$WORK/snapback.json
LIVE_SQLITE=$WORK/live/sessions.sqlite3

# --- the live databases ---
pg_psql postgres -c 'CREATE DATABASE shop'
pg_psql shop -c 'CREATE TABLE orders (id int PRIMARY KEY, total numeric NOT NULL)
                 ; INSERT INTO orders SELECT g, g * 1.5 FROM generate_series(1, 1000) g'
my_sql -e 'CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY);
           USE shop; INSERT INTO orders SELECT seq FROM seq_1_to_500'
mkdir -p "$WORK/live"
"$PYTHON" - "$LIVE_SQLITE" <<'PY'
import os, sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, token TEXT)")
c.executemany("INSERT INTO sessions VALUES (?, ?)", [(i, "t%d" % i) for i in range(1, 43)])
# 16 MiB that does not compress: the scratch restore takes a while (the kill below)
c.execute("CREATE TABLE blobs (b BLOB)")
c.executemany("INSERT INTO blobs VALUES (?)", [(os.urandom(1 << 20),) for _ in range(16)])
c.commit()
PY
live_state() {
    printf 'pg %s\n' "$(pg_query shop 'SELECT count(*), sum(total) FROM orders')"
    printf 'my %s\n' "$(my_query shop 'SELECT count(*), sum(id) FROM orders')"
    printf 'sqlite %s\n' "$(sqlite3 "$LIVE_SQLITE" 'SELECT count(*) FROM sessions')"
}
LIVE_BEFORE=$(live_state)

# write_config FILE PROBES-JSON: the three databases and verify.sql_probe.
write_config() {
    cat >"$1" <<EOF
{
  "app": "demo",
  "databases": [
    { "name": "main", "engine": "postgresql", "host": "$PG_SOCK", "port": $PG_PORT,
      "dbname": "shop", "user": "postgres" },
    { "name": "legacy", "engine": "mysql", "host": "$MY_SOCK", "dbname": "shop", "user": "root" },
    { "name": "sessions", "engine": "sqlite", "path": "$LIVE_SQLITE" }
  ],
  "repository": { "url": "$REPO" },
  "key_file": "$KEY",
  "state_dir": "$STATE",
  "compression": { "level": 3, "threads": 2 },
  "verify": { "sql_probe": [ $2 ] }
}
EOF
}
P_MAIN_COUNT='SELECT count(*) FROM orders'
P_MAIN_RANGE='SELECT min(id), max(id) FROM orders'
P_MAIN_MAX='SELECT max(id) FROM orders'
P_MY_COUNT='SELECT count(*) FROM orders'
P_MY_RANGE='SELECT min(id), max(id) FROM orders'
P_SQ_COUNT='SELECT count(*) FROM sessions'
P_SQ_RANGE='SELECT min(id), max(id) FROM sessions'
write_config "$CFG" "
    { \"database\": \"main\", \"sql\": \"$P_MAIN_COUNT\", \"expect\": \"1000\" },
    { \"database\": \"main\", \"sql\": \"$P_MAIN_RANGE\", \"expect\": \"1|1000\" },
    { \"database\": \"main\", \"sql\": \"$P_MAIN_MAX\" },
    { \"database\": \"legacy\", \"sql\": \"$P_MY_COUNT\", \"expect\": \"500\" },
    { \"database\": \"legacy\", \"sql\": \"$P_MY_RANGE\", \"expect\": \"1|500\" },
    { \"database\": \"sessions\", \"sql\": \"$P_SQ_COUNT\", \"expect\": \"42\" },
    { \"database\": \"sessions\", \"sql\": \"$P_SQ_RANGE\", \"expect\": \"1|42\" }"
sb_init
sb_snapshot
ID=$SNAP_ID

# no_scratch_left: no snapback_verify_* database on either server, no file in state_dir/tmp.
no_scratch_left() {
    check "no scratch database left on PostgreSQL" test \
        "$(pg_query postgres "SELECT count(*) FROM pg_database WHERE datname LIKE 'snapback_verify%'")" = 0
    check "no scratch database left on MariaDB" test \
        -z "$(my_sql -e "SHOW DATABASES LIKE 'snapback\\_verify\\_%'")"
    check "no scratch file left in state_dir/tmp" test \
        -z "$(find "$STATE/tmp" -name 'snapback_verify_*' 2>/dev/null)"
    check "no credentials file left in state_dir/tmp" test \
        -z "$(find "$STATE/tmp" -name 'cred-*' 2>/dev/null)"
    check "the live databases are unchanged" test "$(live_state)" = "$LIVE_BEFORE"
}
# reports ARGS...: checks the last --json output and $WORK/r.xml (verify_reports.py).
reports() {
    printf '%s\n' "$OUT" >"$WORK/r.json"
    CHECKS=$((CHECKS + 1))
    "$PYTHON" "$INTEGRATION_DIR/verify_reports.py" "$WORK/r.json" "$WORK/r.xml" "$@" >/dev/null ||
        fail "the reports are not as expected"
}

# --- passing probes ---
expect_ok sb verify --restore-db
expect_out_contains "ok      SQL probe main: $P_MAIN_COUNT = '1000'"
expect_out_contains "ok      SQL probe main: $P_MAIN_MAX = '1000'"
expect_out_contains "ok      SQL probe legacy: $P_MY_RANGE = '1|500'"
expect_out_contains "ok      SQL probe sessions: $P_SQ_COUNT = '42'"
expect_out_contains "snapshot $ID: ok (3 object(s), 7 SQL probe(s), 0 failed)"
no_scratch_left
expect_ok sb verify --restore-db --json --junit "$WORK/r.xml"
reports --ok --tests 10 --probe-ok "$P_MAIN_COUNT" --probe-ok "$P_MAIN_RANGE" \
    --probe-ok "$P_MAIN_MAX" --probe-ok "$P_MY_RANGE" --probe-ok "$P_SQ_RANGE"
no_scratch_left
# without --restore-db the probes are not run and not reported
expect_ok sb verify --json --junit "$WORK/r.xml"
reports --ok --tests 3

# --- failing probes: a wrong expect, an SQL error, no rows, on each engine ---
BAD=$WORK/bad.json
write_config "$BAD" "
    { \"database\": \"main\", \"sql\": \"$P_MAIN_COUNT\", \"expect\": \"999\" },
    { \"database\": \"main\", \"sql\": \"SELECT nope FROM orders\" },
    { \"database\": \"main\", \"sql\": \"SELECT id FROM orders WHERE id < 0\" },
    { \"database\": \"main\", \"sql\": \"$P_MAIN_MAX\", \"expect\": \"1000\" },
    { \"database\": \"legacy\", \"sql\": \"$P_MY_COUNT\", \"expect\": \"499\" },
    { \"database\": \"legacy\", \"sql\": \"SELECT nope FROM orders\" },
    { \"database\": \"legacy\", \"sql\": \"$P_MY_RANGE\", \"expect\": \"1|500\" },
    { \"database\": \"sessions\", \"sql\": \"$P_SQ_COUNT\", \"expect\": \"41\" },
    { \"database\": \"sessions\", \"sql\": \"SELECT nope FROM sessions\" },
    { \"database\": \"sessions\", \"sql\": \"$P_SQ_RANGE\", \"expect\": \"1|42\" }"
badsb() { "$SNAPBACK" --config "$BAD" --no-progress "$@"; }
expect_exit 65 badsb verify --restore-db
# the first problem, on stderr: snapshot, database, query, expected, got
expect_err_contains "snapshot '$ID'"
expect_err_contains "database 'main'"
expect_err_contains "SQL probe '$P_MAIN_COUNT'"
expect_err_contains "returned '1000', expected '999'"
# every failure in the summary
expect_out_contains "FAILED  SQL probe: database 'main': SQL probe 'SELECT nope FROM orders' (verify.sql_probe[1]) failed"
expect_out_contains "FAILED  SQL probe: database 'main': SQL probe 'SELECT id FROM orders WHERE id < 0' (verify.sql_probe[2]) returned no rows"
expect_out_contains "FAILED  SQL probe: database 'legacy': SQL probe '$P_MY_COUNT' (verify.sql_probe[4]) returned '500', expected '499'"
expect_out_contains "FAILED  SQL probe: database 'legacy': SQL probe 'SELECT nope FROM orders' (verify.sql_probe[5]) failed"
expect_out_contains "FAILED  SQL probe: database 'sessions': SQL probe '$P_SQ_COUNT' (verify.sql_probe[7]) returned '42', expected '41'"
expect_out_contains "FAILED  SQL probe: database 'sessions': SQL probe 'SELECT nope FROM sessions' (verify.sql_probe[8]) failed"
expect_out_contains "ok      SQL probe main: $P_MAIN_MAX = '1000'"
expect_out_contains "ok      SQL probe legacy: $P_MY_RANGE = '1|500'"
expect_out_contains "ok      SQL probe sessions: $P_SQ_RANGE = '1|42'"
expect_out_contains "snapshot $ID: FAILED (3 object(s), 10 SQL probe(s), 7 failed)"
no_scratch_left
expect_exit 65 badsb verify --restore-db --json --junit "$WORK/r.xml"
reports --snapshot "$ID" --tests 13 --probe-failed "$P_MAIN_COUNT" --probe-failed "SELECT nope FROM orders" \
    --probe-failed "SELECT id FROM orders WHERE id < 0" --probe-failed "SELECT nope FROM sessions" \
    --probe-ok "$P_MAIN_MAX" --probe-ok "$P_MY_RANGE" --probe-ok "$P_SQ_RANGE"
CHECKS=$((CHECKS + 1))
"$PYTHON" - "$WORK/r.json" "$ID" <<'PY' || fail "the JSON probe errors do not say enough"
import json, sys
j = json.load(open(sys.argv[1]))
(s,) = j["snapshots"]
assert s["id"] == sys.argv[2] and not s["ok"], s
bad = [p for p in s["probes"] if not p["ok"]]
assert len(bad) == 7, bad
for p in bad:
    e = p["error"]
    assert "database '%s'" % p["database"] in e and p["sql"] in e, e
    assert p["object"].endswith("db-%s.snpb" % p["database"]), p
    if p["expect"] is not None:
        assert "expected '%s'" % p["expect"] in e and "returned '" in e, e
    elif "nope" in p["sql"]:
        assert "failed:" in e and "nope" in e, e  # the server's own message
    else:
        assert "returned no rows" in e, e
print("7 probe failures, each naming database, query and what came back")
PY
no_scratch_left

# --- a damaged dump: the object fails, its probes are reported as not run, and the scratch
# database it was being loaded into is dropped all the same ---
for name in main legacy sessions; do
    obj=$REPO/demo/data/$ID/db-$name.snpb
    cp "$obj" "$WORK/saved.snpb"
    flip_byte "$obj" 200
    expect_exit 65 sb verify --restore-db --json --junit "$WORK/r.xml"
    expect_err_contains "snapshot '$ID'"
    expect_err_contains "db-$name.snpb"
    reports --snapshot "$ID" --failed "db-$name.snpb" --tests 10
    CHECKS=$((CHECKS + 1))
    "$PYTHON" - "$WORK/r.json" "$name" <<'PY' || fail "the probes of the damaged dump are not reported as not run"
import json, sys
(s,) = json.load(open(sys.argv[1]))["snapshots"]
for p in s["probes"]:
    if p["database"] == sys.argv[2]:
        assert p["skipped"] and p["ok"] and p["error"].startswith("not run: "), p
    else:
        assert p["ok"] and not p["skipped"], p
PY
    no_scratch_left
    cp "$WORK/saved.snpb" "$obj"
done

# --- SIGKILL mid-restore: the next verify drops what the killed one left ---
# wrap_client NAME [CONDITION]: a NAME first in PATH that, when CONDITION holds for its
# arguments, writes its pid to $WORK/stopped and stops itself before running the real one.
WRAP=$WORK/wrap
wrap_client() {
    local name=$1 cond=${2:-true} real
    real=$(command -v "$name")
    mkdir -p "$WRAP"
    cat >"$WRAP/$name" <<EOF
#!/bin/bash
if $cond; then echo \$\$ >"$WORK/stopped"; kill -STOP \$\$; fi
exec "$real" "\$@"
EOF
    chmod +x "$WRAP/$name"
}
# killed_verify CONFIG: runs verify --restore-db in the background with $WRAP first in PATH,
# waits for a wrapped client to stop itself, SIGKILLs verify, then the stopped client.
killed_verify() {
    rm -f "$WORK/stopped"
    PATH=$WRAP:$PATH "$SNAPBACK" --config "$1" --no-progress verify --restore-db >/dev/null 2>&1 &
    local vpid=$! tries=0
    until [[ -s $WORK/stopped ]]; do
        kill -0 "$vpid" 2>/dev/null || fail "verify ended before the restore client stopped"
        ((tries++ < 600)) || fail "the restore client did not stop within 60 s"
        sleep 0.1
    done
    kill -KILL "$vpid"
    local status=0
    wait "$vpid" || status=$?
    check "verify was killed by SIGKILL" test "$status" = 137
    kill -KILL "$(cat "$WORK/stopped")" 2>/dev/null || true
    rm -rf "$WRAP"
}

# PostgreSQL: pg_restore stops with the scratch database created and the dump half-streamed
wrap_client pg_restore
killed_verify "$CFG"
check "the killed verify left a scratch database on PostgreSQL" test \
    "$(pg_query postgres "SELECT count(*) FROM pg_database WHERE datname LIKE 'snapback_verify%'")" = 1
expect_ok sb verify --restore-db
expect_err_contains "dropping scratch database 'snapback_verify_"
no_scratch_left

# MariaDB: the client that loads the dump (two arguments: the option file, the database)
# shellcheck disable=SC2016 # expanded by the wrapper
wrap_client mariadb '[[ $# == 2 && $2 == snapback_verify_* ]]'
killed_verify "$CFG"
check "the killed verify left a scratch database on MariaDB" test \
    -n "$(my_sql -e "SHOW DATABASES LIKE 'snapback\\_verify\\_%'")"
expect_ok sb verify --restore-db
expect_err_contains "dropping scratch database 'snapback_verify_"
expect_err_contains "removed the credentials file"
no_scratch_left

# SQLite: restored in-process, so the scratch file (or its temp file, during the restore) is
# polled for; a slow probe on it keeps the window open for seconds, so the poll cannot miss.
SLOW=$WORK/slow.json
write_config "$SLOW" "
    { \"database\": \"sessions\", \"sql\": \"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000000) SELECT count(*) FROM c\" }"
"$SNAPBACK" --config "$SLOW" --no-progress verify --restore-db >/dev/null 2>&1 &
VPID=$!
CHECKS=$((CHECKS + 1))
KILLED_AT=$("$PYTHON" - "$STATE/tmp" "$VPID" <<'PY'
import os, signal, sys, time
d, pid = sys.argv[1], int(sys.argv[2])
deadline = time.time() + 60
while time.time() < deadline:
    try:
        names = [n for n in os.listdir(d) if n.startswith("snapback_verify_")]
    except FileNotFoundError:
        names = []
    if names:
        os.kill(pid, signal.SIGKILL)
        print("during the restore" if any("snapback-tmp" in n for n in names) else "during the probe")
        sys.exit(0)
    time.sleep(0.001)
sys.exit(1)
PY
) || fail "no scratch SQLite file appeared in $STATE/tmp"
wait "$VPID" || true
log "SQLite: verify killed $KILLED_AT"
check "the killed verify left a scratch file" test -n "$(find "$STATE/tmp" -name 'snapback_verify_*')"
expect_ok sb verify --restore-db
expect_err_contains "removing scratch database file"
no_scratch_left
