#!/usr/bin/env bash
# Benchmark (issue #3, never run by meson test): PostgreSQL dump and restore through snapback
# against the stock tools, on a pgbench database in a throwaway PostgreSQL 15 cluster
# (tests/harness/pg.sh; run as root: the cluster runs as the postgres user through runuser).
#
#   tests/bench/db.sh [--data pgbench|text] [--scale N] [--repeat N] [--snapback PATH]
#                     [--workdir DIR] [--keep]
#
#   --data         pgbench (default): the tables of `pgbench -i`, whose rows are mostly blanks,
#                  gzip's best case; text: one table of every text file under /usr/share (man
#                  pages, changelogs, scripts, HTML; path, body, a jsonb of its stat), loaded
#                  --scale times (tests/bench/db_text.py): data nobody tuned for
#   --scale N      pgbench -i -s N (default 50: about 750 MB of tables; 10: about 150 MB); with
#                  --data text the number of copies of the files (default 2: about 620 MB of
#                  text, 220 MB on disk after PostgreSQL's own TOAST compression)
#   --repeat N     run every measurement N times, alternating tools; the median is reported
#   --snapback     the binary (default: $SNAPBACK, then build/snapback in the source tree)
#   --workdir      where the cluster, the repository and the dump files go (default: a
#                  mktemp -d in $TMPDIR)
#   --keep         keep the work directory (the cluster is stopped anyway)
#
# Dump (each reads the same database; the page cache and shared buffers are warmed first):
#   snapback       snapback snapshot --only db (pg_dump -Fc -Z0 | zstd -3, all cores | encrypt
#                  | BLAKE2b | file, in one process)
#   pg_dump -Fc    pg_dump -Fc > file (its default compression, gzip level 6 in one thread)
#   +zstd+age      pg_dump -Fc | zstd -3 -T0 | age -r R > file (what the issue compares with)
#   -Z0+zstd+age   pg_dump -Fc -Z0 | zstd -3 -T0 | age -r R > file (the same chain as snapback,
#                  as three processes)
#   -Z0 > /dev/null  pg_dump -Fc -Z0 > /dev/null: the floor of any tool that runs pg_dump (the
#                  server backend's COPY TO and pg_dump, nothing stored): how far snapback is
#                  from it says what is left to win on this machine
# Restore (each into a new database; CREATE DATABASE is part of every timing):
#   snapback       snapback restore ID --only db --db-target main=NEW
#   pg_restore     createdb NEW && pg_restore -d NEW file (the pg_dump -Fc file above)
#   pg_restore -Z0 the same from a pg_dump -Fc -Z0 file
# Reported: wall time, output size, the ratio to pg_dump -Fc / pg_restore, and peak RSS: for
# every command the largest process of its tree (GNU time's maximum resident set size, which
# for snapback includes its pg_dump child), and for snapback its own VmHWM (sampled from
# /proc every 0.1 s until it exits).
USAGE_END=32
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SCALE=
DATA=pgbench
REPEAT=1
while (($#)); do
    case $1 in
    --scale) SCALE=${2:?}; shift ;;
    --data) DATA=${2:?}; shift ;;
    --repeat) REPEAT=${2:?}; shift ;;
    *) bench_option "$@" || bench_bad_arg "$1"; shift $((BENCH_SHIFT - 1)) ;;
    esac
    shift
done
case $DATA in
pgbench) SCALE=${SCALE:-50} ;;
text) SCALE=${SCALE:-2} ;;
*) bench_bad_arg "--data $DATA" ;;
esac
bench_positive --scale "$SCALE" --repeat "$REPEAT"
bench_resolve_sb
[[ -x /usr/bin/time ]] || { echo "db.sh: needs GNU time (apt-get install time)" >&2; exit 69; }
bench_require zstd age age-keygen pgbench pg_dump pg_restore psql createdb

bench_pg_init bench-db
pg_setup

PGARGS=(-h "$PG_SOCK" -p "$PG_PORT" -U postgres)
t0=$EPOCHREALTIME
if [[ $DATA == pgbench ]]; then
    DATA_NAME="pgbench scale $SCALE"
    echo "== pgbench -i -s $SCALE"
    pgbench -i -s "$SCALE" -q "${PGARGS[@]}" postgres >"$WORK/pgbench.out" 2>&1 || { cat "$WORK/pgbench.out" >&2; exit 1; }
else
    DATA_NAME="the text files of /usr/share, $SCALE copies"
    echo "== $DATA_NAME"
    pg_query postgres "CREATE TABLE files (id bigserial PRIMARY KEY, path text, body text, meta jsonb)" >/dev/null
    python3 "$ROOT/tests/bench/db_text.py" /usr/share "$SCALE" |
        pg_query postgres "COPY files (path, body, meta) FROM STDIN" >/dev/null
    pg_query postgres "VACUUM ANALYZE files" >/dev/null
fi
printf 'loaded in %.1f s; database size %s\n' "$(bc -l <<<"$EPOCHREALTIME - $t0")" \
    "$(pg_query postgres "SELECT pg_size_pretty(pg_database_size('postgres'))")"

age-keygen -o "$WORK/age.key" 2>/dev/null
RECIPIENT=$(age-keygen -y "$WORK/age.key")
bench_config "$WORK/snapback.json" "" "{ \"name\": \"main\", \"engine\": \"postgresql\", \"host\": \"$PG_SOCK\", \"port\": $PG_PORT, \"dbname\": \"postgres\", \"user\": \"postgres\" }"
SBC=("$SB" --config "$WORK/snapback.json" --no-progress --quiet)
"${SBC[@]}" keygen >/dev/null 2>&1
"${SBC[@]}" init >/dev/null

# warm the page cache and shared buffers
pg_dump -Fc -Z0 "${PGARGS[@]}" postgres >/dev/null

declare -A WALL RSS OWN SIZE
# measure KEY CMD...: wall time (EPOCHREALTIME), the tree's peak RSS (GNU time, KiB); the
# output of CMD goes to $WORK/out.KEY.
measure() {
    local key=$1
    shift
    local t0 t1
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$WORK/time.$key" "$@" >"$WORK/out.$key" 2>"$WORK/err.$key" || {
        echo "FAILED: $key: $*" >&2
        cat "$WORK/err.$key" >&2
        exit 1
    }
    t1=$EPOCHREALTIME
    WALL[$key]+="$(bc -l <<<"$t1 - $t0") "
    RSS[$key]+="$(tail -n 1 "$WORK/time.$key") "
}
# measure_sb KEY ARGS...: measure of snapback, plus its own VmHWM (KiB) sampled from /proc.
# The sampler must not cost the measured run anything: until 2026-11-25 it forked awk and
# sleep every 10 ms (about 200 processes a second on a 2-core machine, which snapback alone
# paid for) and the wall time was taken when the polling loop noticed the exit (up to one
# poll late). Now the sampler runs beside the run, reads /proc with bash builtins every 0.1 s
# (VmHWM is a high-water mark: nothing is lost but growth in the last 0.1 s), and the wall
# time is taken when `wait` returns.
_sample_hwm() { # PARENT-PID FILE: the highest VmHWM of PARENT's snapback child, into FILE
    local pid="" hwm=0 k v _
    trap 'printf "%s\n" "$hwm" >"$2"; exit 0' TERM
    while :; do
        [[ -n $pid ]] || pid=$(pgrep -P "$1" -x snapback || true)
        if [[ -n $pid ]]; then
            while read -r k v _; do
                [[ $k == VmHWM: ]] || continue
                ((v <= hwm)) || hwm=$v
                break
            done 2>/dev/null <"/proc/$pid/status" || true
        fi
        sleep 0.1 &
        wait $!
    done
}
measure_sb() {
    local key=$1
    shift
    local t0 t1 tpid spid status=0
    t0=$EPOCHREALTIME
    /usr/bin/time -f '%M' -o "$WORK/time.$key" "${SBC[@]}" "$@" >"$WORK/out.$key" 2>"$WORK/err.$key" &
    tpid=$!
    _sample_hwm "$tpid" "$WORK/hwm.$key" &
    spid=$!
    wait "$tpid" || status=$?
    t1=$EPOCHREALTIME
    kill -TERM "$spid" 2>/dev/null || true
    wait "$spid" 2>/dev/null || true
    ((status == 0)) || { echo "FAILED: snapback $*" >&2; cat "$WORK/err.$key" >&2; exit 1; }
    WALL[$key]+="$(bc -l <<<"$t1 - $t0") "
    RSS[$key]+="$(tail -n 1 "$WORK/time.$key") "
    OWN[$key]+="$(cat "$WORK/hwm.$key" 2>/dev/null || echo 0) "
}

# settle: no dirty pages or checkpoint of an earlier step in the next measurement.
settle() {
    pg_query postgres CHECKPOINT >/dev/null
    sync
    sleep 1
}
dump_sb() {
    measure_sb sb_dump snapshot --only db
    ID=$(tail -n 1 "$WORK/out.sb_dump")
    SIZE[sb_dump]=$(stat -c %s "$WORK/repo/bench/data/$ID/db-main.snpb")
}
dump_pg() {
    measure pg_dump bash -c 'pg_dump -Fc "$@" postgres >"'"$WORK"'/plain.dump"' _ "${PGARGS[@]}"
    SIZE[pg_dump]=$(stat -c %s "$WORK/plain.dump")
}
dump_pg_zstd_age() {
    measure pg_zstd_age bash -o pipefail -c 'pg_dump -Fc "$@" postgres | zstd -3 -T0 -q | age -r '"$RECIPIENT"' >"'"$WORK"'/dump.zst.age"' _ "${PGARGS[@]}"
    SIZE[pg_zstd_age]=$(stat -c %s "$WORK/dump.zst.age")
}
dump_pgz0_zstd_age() {
    measure pgz0_zstd_age bash -o pipefail -c 'pg_dump -Fc -Z0 "$@" postgres | zstd -3 -T0 -q | age -r '"$RECIPIENT"' >"'"$WORK"'/dumpz0.zst.age"' _ "${PGARGS[@]}"
    SIZE[pgz0_zstd_age]=$(stat -c %s "$WORK/dumpz0.zst.age")
}
dump_pgz0_null() {
    measure pgz0_null bash -c 'pg_dump -Fc -Z0 "$@" postgres >/dev/null' _ "${PGARGS[@]}"
}
restore_sb() {
    measure_sb sb_restore restore "$ID" --only db --db-target "main=r_sb_$i"
    pg_query postgres "DROP DATABASE r_sb_$i" >/dev/null
}
restore_pg() {
    measure pg_restore bash -c 'createdb "$@" r_pg_'"$i"' && pg_restore --no-owner "$@" -d r_pg_'"$i"' "'"$WORK"'/plain.dump"' _ "${PGARGS[@]}"
    pg_query postgres "DROP DATABASE r_pg_$i" >/dev/null
}
restore_pg_z0() {
    measure pg_restore_z0 bash -c 'createdb "$@" r_z0_'"$i"' && pg_restore --no-owner "$@" -d r_z0_'"$i"' "'"$WORK"'/z0.dump"' _ "${PGARGS[@]}"
    pg_query postgres "DROP DATABASE r_z0_$i" >/dev/null
}
DUMPS=(dump_sb dump_pg dump_pg_zstd_age dump_pgz0_zstd_age dump_pgz0_null)
RESTORES=(restore_sb restore_pg restore_pg_z0)
pg_dump -Fc -Z0 "${PGARGS[@]}" postgres >"$WORK/z0.dump"

for ((i = 1; i <= REPEAT; i++)); do
    # each round starts with another tool, so no tool always runs first or after another
    echo "== round $i of $REPEAT: dumps"
    for ((k = 0; k < ${#DUMPS[@]}; k++)); do
        settle
        "${DUMPS[(k + i - 1) % ${#DUMPS[@]}]}"
    done
    echo "== round $i of $REPEAT: restores"
    for ((k = 0; k < ${#RESTORES[@]}; k++)); do
        settle
        "${RESTORES[(k + i - 1) % ${#RESTORES[@]}]}"
    done
    # keep the repository from growing: one snapshot at a time
    rm -rf "$WORK/repo/bench/data/$ID" "$WORK/repo/bench/snapshots/$ID.manifest"
done

w() { median <<<"${WALL[$1]}"; }
r() { median <<<"${RSS[$1]}"; }
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
mb() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo
echo "== results: $DATA_NAME, database $(pg_query postgres "SELECT pg_size_pretty(pg_database_size('postgres'))"), $(nproc) cores, median of $REPEAT"
printf '%-34s %9s %10s %9s %9s %12s\n' "dump" "wall (s)" "size (MiB)" "time/pgd" "size/pgd" "peak RSS MiB"
row() { # LABEL KEY
    local rss
    rss=$(mib "$(r "$2")")
    [[ -z ${OWN[$2]:-} ]] || rss="$rss ($(mib "$(median <<<"${OWN[$2]}")") own)"
    local size=- size_ratio=- # nothing stored: the floor
    if [[ -n ${SIZE[$2]:-} ]]; then
        size=$(mb "${SIZE[$2]}")
        size_ratio=$(ratio "${SIZE[$2]}" "${SIZE[pg_dump]}")
    fi
    printf '%-34s %9.2f %10s %9s %9s %12s\n' "$1" "$(w "$2")" "$size" \
        "$(ratio "$(w "$2")" "$(w pg_dump)")" "$size_ratio" "$rss"
}
row "snapback snapshot --only db" sb_dump
row "pg_dump -Fc > file" pg_dump
row "pg_dump -Fc | zstd -3 -T0 | age" pg_zstd_age
row "pg_dump -Fc -Z0 | zstd -3 -T0 | age" pgz0_zstd_age
row "pg_dump -Fc -Z0 > /dev/null (floor)" pgz0_null
echo
printf '%-34s %9s %9s %12s\n' "restore (into a new database)" "wall (s)" "time/pgr" "peak RSS MiB"
rrow() {
    local rss
    rss=$(mib "$(r "$2")")
    [[ -z ${OWN[$2]:-} ]] || rss="$rss ($(mib "$(median <<<"${OWN[$2]}")") own)"
    printf '%-34s %9.2f %9s %12s\n' "$1" "$(w "$2")" "$(ratio "$(w "$2")" "$(w pg_restore)")" "$rss"
}
rrow "snapback restore --db-target" sb_restore
rrow "pg_restore (pg_dump -Fc file)" pg_restore
rrow "pg_restore (pg_dump -Fc -Z0 file)" pg_restore_z0
echo
# paired A B LIMIT: the ratio A/B of each round (the tools alternate, so the two runs of a round
# were seconds apart and the pair cancels most of the VM's drift), their median, and how many
# rounds met LIMIT.
paired() {
    awk -v a="${WALL[$1]}" -v b="${WALL[$2]}" -v limit="$3" 'BEGIN {
        n = split(a, x, " "); split(b, y, " "); met = 0; list = ""
        for (i = 1; i <= n; i++) { r[i] = x[i] / y[i]; met += (r[i] <= limit); list = list sprintf(" %.2f", r[i]) }
        for (i = 2; i <= n; i++) for (j = i; j > 1 && r[j-1] > r[j]; j--) { t = r[j]; r[j] = r[j-1]; r[j-1] = t }
        m = (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2
        printf "%.2f x (median of the %d rounds%s; %d of %d <= %s)", m, n, list, met, n, limit }'
}
echo "issue #3 targets: snapshot wall <= 0.8 x pg_dump -Fc and smaller: $(ratio "$(w sb_dump)" "$(w pg_dump)") x, $(ratio "${SIZE[sb_dump]}" "${SIZE[pg_dump]}") x the size;"
echo "                  round by round: $(paired sb_dump pg_dump 0.8)"
echo "                  (the floor, pg_dump -Z0 to /dev/null, is $(ratio "$(w pgz0_null)" "$(w pg_dump)") x; snapback is $(ratio "$(w sb_dump)" "$(w pgz0_null)") x the floor)"
echo "                  restore <= 1.1 x pg_restore: $(ratio "$(w sb_restore)" "$(w pg_restore)") x; snapback's own peak RSS < 64 MiB: $(mib "$(median <<<"${OWN[sb_dump]}")") / $(mib "$(median <<<"${OWN[sb_restore]}")") MiB"
echo "                  restore round by round: $(paired sb_restore pg_restore 1.1)"
echo
echo "every run (wall s / tree peak RSS KiB):"
for key in sb_dump pg_dump pg_zstd_age pgz0_zstd_age pgz0_null sb_restore pg_restore pg_restore_z0; do
    printf '  %-14s %s/ %s\n' "$key" "$(printf '%.2f ' ${WALL[$key]})" "${RSS[$key]}"
done
echo "load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews the figures)"
