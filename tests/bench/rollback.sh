#!/usr/bin/env bash
# Benchmark (issue #5, never run by meson test): how long a rollback takes.
#
#   tests/bench/rollback.sh [--scale N] [--runs N] [--db-runs N] [--snapback PATH]
#                           [--workdir DIR] [--keep] [--no-db]
#
#   --scale N      pgbench -i -s N for the database part (default 10: about 150 MB)
#   --runs N       runs of each switch-only measurement (default 30)
#   --db-runs N    runs of each database measurement, alternating tools (default 3)
#   --snapback     the binary (default: $SNAPBACK, then build/snapback in the source tree)
#   --workdir      where the app, the cluster and the repository go (default: mktemp -d in
#                  $TMPDIR)
#   --keep         keep the work directory (the cluster is stopped anyway)
#   --no-db        only the switch-only part (no PostgreSQL needed)
#
# Switch-only: a Capistrano app with two releases on disk (about 2000 files, 60 MiB each),
# no database; `rollback --to OTHER` from one to the other, `current` put back before every
# run (not timed). Measured twice: --no-safety-snapshot (plan, hooks none, rename(2) of the
# symlink: the pure switch) and the default (a safety snapshot first: the release object is
# reused by fingerprint, the shared path is stored). With hyperfine when installed (median of
# --runs, one warm-up), else a loop timing each run with date +%s%N.
# Database: a pgbench database of scale N in a throwaway PostgreSQL 15 cluster
# (tests/harness/pg.sh; run as root); a snapshot while release A is live, then release B
# deployed. Compared, alternating: `rollback --to A --with-database --no-safety-snapshot`
# (download, decrypt, decompress, pg_restore --clean --if-exists --single-transaction into
# the live database, switch) against `pg_restore --clean --if-exists --single-transaction
# --no-owner` of the same dump file (the snapshot's dump restored with `restore --target`)
# into the same database. The default rollback (with the safety snapshot, which adds a
# pg_dump of the live database) is reported too.
USAGE_END=29
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SCALE=10
RUNS=30
DB_RUNS=3
WITH_DB=1
while (($#)); do
    case $1 in
    --scale) SCALE=${2:?}; shift ;;
    --runs) RUNS=${2:?}; shift ;;
    --db-runs) DB_RUNS=${2:?}; shift ;;
    --no-db) WITH_DB=0 ;;
    *) bench_option "$@" || bench_bad_arg "$1"; shift $((BENCH_SHIFT - 1)) ;;
    esac
    shift
done
bench_positive --scale "$SCALE" --runs "$RUNS" --db-runs "$DB_RUNS"
bench_resolve_sb
((!WITH_DB)) || bench_require --hint "or use --no-db" pgbench pg_dump pg_restore psql

bench_pg_init bench-rollback

APP=$WORK/app
A=20261120T100000Z
B=20261121T100000Z
mkdir -p "$APP/releases" "$APP/shared/uploads"
for r in "$A" "$B"; do
    "$PYTHON" "$ROOT/tests/integration/make_tree.py" bulk "$APP/releases/$r" --mib 60 --files 2000 >/dev/null
done
head -c $((1024 * 1024)) /dev/urandom >"$APP/shared/uploads/avatar.png"
ln -s "releases/$B" "$APP/current"

# config [DATABASE-JSON]
config() {
    bench_config "$WORK/snapback.json" "{ \"root\": \"$APP\", \"shared_paths\": [\"shared/uploads\"] }" "${1:-}"
}
config ""
SBC=("$SB" --config "$WORK/snapback.json" --no-progress --quiet)
"${SBC[@]}" keygen >/dev/null 2>&1
"${SBC[@]}" init >/dev/null
# both releases stored once, so the safety snapshots reuse them
ln -sfn "releases/$A" "$APP/current" && "${SBC[@]}" snapshot >/dev/null
ln -sfn "releases/$B" "$APP/current" && "${SBC[@]}" snapshot >/dev/null

# time_runs N PREPARE CMD: the median wall time (ms) of CMD over N runs, PREPARE (a shell
# command, not timed) before each.
time_runs() {
    local n=$1 prepare=$2 cmd=$3
    if command -v hyperfine >/dev/null; then
        hyperfine --style none --warmup "${WARMUP:-1}" --runs "$n" --prepare "$prepare" \
            --export-json "$WORK/hf.json" "$cmd" >/dev/null
        "$PYTHON" -c 'import json,statistics,sys; r=json.load(open(sys.argv[1]))["results"][0]; print("%.1f" % (statistics.median(r["times"]) * 1000))' "$WORK/hf.json"
        return
    fi
    local i t0 all=""
    for ((i = 0; i <= n; i++)); do
        bash -c "$prepare"
        t0=$(date +%s%N)
        bash -c "$cmd" >/dev/null 2>&1
        ((i == 0)) || all+="$((($(date +%s%N) - t0) / 1000)) " # the first run warms up
    done
    median <<<"$all" | awk '{printf "%.1f\n", $1 / 1000}'
}

echo "== switch-only rollback ($RUNS runs each$(command -v hyperfine >/dev/null && echo ', hyperfine'))"
SW_CMD="${SBC[*]} rollback --to $A --without-database"
PREP="ln -sfn releases/$B $APP/current"
T_SWITCH=$(time_runs "$RUNS" "$PREP" "$SW_CMD --no-safety-snapshot")
# the safety snapshots pile up in the repository; a few runs are enough
T_SAFETY=$(time_runs $((RUNS < 10 ? RUNS : 10)) "$PREP" "$SW_CMD")
[[ $(readlink "$APP/current") == "releases/$A" ]] || { echo "the rollback did not switch" >&2; exit 1; }

if ((WITH_DB)); then
    PG_OPTS=${PG_OPTS:-}
    pg_setup
    PGARGS=(-h "$PG_SOCK" -p "$PG_PORT" -U postgres)
    pg_query postgres "CREATE DATABASE shop" >/dev/null
    echo "== pgbench -i -s $SCALE"
    pgbench -i -s "$SCALE" -q "${PGARGS[@]}" shop >"$WORK/pgbench.out" 2>&1 || { cat "$WORK/pgbench.out" >&2; exit 1; }
    DBSIZE=$(pg_query postgres "SELECT pg_size_pretty(pg_database_size('shop'))")
    config "{ \"name\": \"main\", \"engine\": \"postgresql\", \"host\": \"$PG_SOCK\", \"port\": $PG_PORT, \"dbname\": \"shop\", \"user\": \"postgres\" }"
    ln -sfn "releases/$A" "$APP/current"
    ID=$("${SBC[@]}" snapshot --tag pre-deploy | tail -n 1)
    ln -sfn "releases/$B" "$APP/current"
    "${SBC[@]}" restore "$ID" --only db --target "$WORK/files" >/dev/null
    DUMP=$WORK/files/databases/main.pgdump
    DUMPSIZE=$(stat -c %s "$DUMP")
    # the deploy's "migration", undone by every measured run
    MIGRATE="psql -X -q -h $PG_SOCK -p $PG_PORT -U postgres -d shop -c 'UPDATE pgbench_branches SET bbalance = bbalance + 1'"
    PREP_DB="ln -sfn releases/$B $APP/current && $MIGRATE && psql -X -q -h $PG_SOCK -p $PG_PORT -U postgres -d shop -c CHECKPOINT && sync"
    RB_CMD="${SBC[*]} rollback --to $A --with-database --no-safety-snapshot"
    PGR_CMD="pg_restore --exit-on-error --no-owner --clean --if-exists --single-transaction -h $PG_SOCK -p $PG_PORT -U postgres -d shop $DUMP"
    export WARMUP=0
    sb_all="" pgr_all=""
    for ((i = 1; i <= DB_RUNS; i++)); do
        echo "== database round $i of $DB_RUNS"
        if ((i % 2)); then
            sb_all+="$(time_runs 1 "$PREP_DB" "$RB_CMD") "
            pgr_all+="$(time_runs 1 "$PREP_DB" "$PGR_CMD") "
        else
            pgr_all+="$(time_runs 1 "$PREP_DB" "$PGR_CMD") "
            sb_all+="$(time_runs 1 "$PREP_DB" "$RB_CMD") "
        fi
    done
    [[ $(pg_query shop "SELECT sum(bbalance) FROM pgbench_branches") == 0 ]] ||
        { echo "the database rollback did not undo the migration" >&2; exit 1; }
    T_DB_SB=$(median <<<"$sb_all")
    T_DB_PGR=$(median <<<"$pgr_all")
    T_DB_SAFETY=$(time_runs 1 "$PREP_DB" "${SBC[*]} rollback --to $A --with-database")
fi

echo
echo "== results: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "switch-only rollback, --no-safety-snapshot (median of $RUNS):      $T_SWITCH ms   (issue #5 target: < 50 ms)"
echo "switch-only rollback with its safety snapshot (median):        $T_SAFETY ms"
if ((WITH_DB)); then
    echo "database: pgbench scale $SCALE, $DBSIZE, dump $((DUMPSIZE / 1048576)) MiB; median of $DB_RUNS alternating runs"
    echo "  rollback --with-database --no-safety-snapshot:  $T_DB_SB ms  (runs: $sb_all)"
    echo "  pg_restore --clean --single-transaction:        $T_DB_PGR ms  (runs: $pgr_all)"
    echo "  ratio: $(awk -v a="$T_DB_SB" -v b="$T_DB_PGR" 'BEGIN {printf "%.2f", a / b}') x   (issue #5 target: < 1.2 x)"
    echo "  rollback --with-database with its safety snapshot (one run): $T_DB_SAFETY ms"
fi
