# shellcheck shell=bash
# Engine-independent pieces of tests/integration/db_postgresql.sh and db_mariadb.sh.
#
# Consistency under load: two
# writers move money between the 100 accounts of table acc (id, bal; 1000 each) of database
# shop, one row of xfer (src, dst) per transfer, while `snapshot --only db` runs; the
# snapshot restored into shop_load must be one point in time between the start and the end
# of the snapshot. Source it after lib.sh; the test keeps the engine's SQL and client.
#
#   write_transfers FILE SEED BEGIN SEP
#                   FILE: 3000 transactions of one transfer each (random, SEED), locking
#                   the two rows in id order so that the writers never deadlock; a
#                   transaction is BEGIN, two UPDATEs, an INSERT and COMMIT, joined by SEP
#   snapshot_under_load QUERY APPLY TOTAL_SQL
#                   QUERY DB SQL prints one value (pg_query, my_query); APPLY runs the SQL
#                   file $WORK/transfers.sql once against shop; TOTAL_SQL selects
#                   "SUM/COUNT" of acc's balances in the engine's dialect. Starts two
#                   writers (APPLY in a loop), snapshots, stops them, restores the snapshot
#                   as shop_load and checks it
#   restore_into_existing_refused SNAP DB DIGEST
#                   `restore SNAP --only db --db-target main=DB` into the existing DB exits 73
#                   saying it already exists, and DB is unchanged (DIGEST DB before and after)

write_transfers() {
    "$PYTHON" - "$@" <<'PY'
import random, sys
path, seed, begin, sep = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
r = random.Random(seed)
with open(path, "w") as f:
    for _ in range(3000):
        a, b = r.sample(range(1, 101), 2)
        lo, hi = min(a, b), max(a, b)  # rows locked in id order: no deadlocks between writers
        da, db = (-1, 1) if a == lo else (1, -1)
        f.write(sep.join([begin, "UPDATE acc SET bal = bal + %d WHERE id = %d" % (da, lo),
                          "UPDATE acc SET bal = bal + %d WHERE id = %d" % (db, hi),
                          "INSERT INTO xfer (src, dst) VALUES (%d, %d)" % (a, b), "COMMIT"]) + ";\n")
PY
}

restore_into_existing_refused() {
    local snap=$1 db=$2 digest=$3 before
    log "restore --db-target into an existing database is refused"
    before=$("$digest" "$db")
    expect_exit 73 sb restore "$snap" --only db --db-target "main=$db"
    expect_err_contains "already exists"
    check "the existing database did not change" test "$("$digest" "$db")" = "$before"
}

snapshot_under_load() {
    local query=$1 apply=$2 total_sql=$3 stop=$WORK/stop-writers w1 w2 tries=0
    local x_before x_after x_restored
    _load_writer() {
        while [[ ! -e $stop && -d $WORK ]]; do
            "$apply" >/dev/null 2>>"$WORK/writer.err" || return 1
        done
    }
    _load_writer &
    w1=$!
    _load_writer &
    w2=$!
    until (($("$query" shop "SELECT count(*) FROM xfer") > 200)); do
        ((tries++ < 300)) || fail "the writers did not start: $(cat "$WORK/writer.err")"
        sleep 0.05
    done
    x_before=$("$query" shop "SELECT count(*) FROM xfer")
    sb_snapshot --only db --tag under-load
    x_after=$("$query" shop "SELECT count(*) FROM xfer")
    touch "$stop"
    wait "$w1" || fail "writer 1 failed: $(cat "$WORK/writer.err")"
    wait "$w2" || fail "writer 2 failed: $(cat "$WORK/writer.err")"
    log "transfers committed: $x_before before the snapshot, $x_after after it"
    check "the writers committed transfers while the snapshot ran" test "$x_after" -gt "$x_before"
    check "the live total is the invariant" test "$("$query" shop "SELECT sum(bal) FROM acc")" = 100000
    expect_ok sb restore "$SNAP_ID" --only db --db-target main=shop_load
    x_restored=$("$query" shop_load "SELECT count(*) FROM xfer")
    log "restored: $x_restored transfers, total $("$query" shop_load "SELECT sum(bal) FROM acc")"
    check "the restored total is exactly 100 x 1000" test "$("$query" shop_load "$total_sql")" = "100000/100"
    check "every restored account agrees with the restored transfer log" test "$("$query" shop_load "
        SELECT count(*) FROM acc a
        WHERE a.bal <> 1000 - (SELECT count(*) FROM xfer WHERE src = a.id) + (SELECT count(*) FROM xfer WHERE dst = a.id)")" = 0
    check "the snapshot is a point between the start and the end of the run" \
        test "$x_restored" -ge "$x_before" -a "$x_restored" -le "$x_after"
}
