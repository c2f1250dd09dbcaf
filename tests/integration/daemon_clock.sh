#!/usr/bin/env bash
# The daemon driven by the test clock (issue #6; SNAPBACK_TEST_HOOKS=1 + SNAPBACK_TEST_CLOCK,
# see src/cli/cmd_daemon.c): with snapshot "*/5 * * * *", prune "0 * * * *", verify
# "30 2 * * *" in schedule.timezone Europe/Berlin (the machine's own zone is another), the
# clock is stepped a minute at a time across an hour and across 02:30, and the journal must
# show exactly the jobs a minute-by-minute cron matcher written here (in Python, independent
# of src/ops/cron.c) expects, in order, each once. Then the clock jumps 3 hours: each missed
# job catches up once. SIGHUP with a broken config keeps the old schedule (and says why), with
# a valid one uses the new schedule. SIGTERM while a snapshot is in the middle of a database
# dump (a fake pg_dump that waits for a file) stops the daemon with exit 0 and leaves the
# repository valid: verify --all passes and every object a manifest names is there.
# SNAPBACK_TEST_CLOCK without SNAPBACK_TEST_HOOKS=1 is ignored with a warning. Lastly, with
# schedule.jitter 10m an hourly job runs once per hour, within 10 minutes of its time; and a
# fixed-time job across Berlin's DST changes runs once on each day, as cronie does.
#
# Synchronisation: after writing a time to the clock file, the test waits (bounded) until the
# daemon has written that time to CLOCK.idle, which it does only once nothing is due.
# shellcheck source=tests/harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
DLOG=$WORK/daemon.err
CLOCK=$WORK/clock
BIN=$WORK/bin
mkdir -p "$BIN"

# A fake PostgreSQL client: psql answers the version probe, pg_dump --version the check of the
# dump client; pg_dump writes a dump in two parts, and while $WORK/block exists it waits
# between them until $WORK/release appears (bounded, so a broken test cannot hang).
cat >"$BIN/psql" <<'EOF'
#!/bin/sh
echo "15.4"
EOF
cat >"$BIN/pg_dump" <<EOF
#!/bin/sh
[ "\$1" = --version ] && { echo 'pg_dump (PostgreSQL) 15.4'; exit 0; }
printf 'PGDMP fake dump, part 1\n'
head -c 300000 /dev/urandom
if [ -e "$WORK/block" ]; then
    : >"$WORK/dump-started"
    i=0
    while [ ! -e "$WORK/release" ] && [ \$i -lt 1200 ]; do sleep 0.05; i=\$((i + 1)); done
fi
printf 'part 2\n'
EOF
chmod +x "$BIN/psql" "$BIN/pg_dump"

# write_config FILE SNAPSHOT_CRON: the test's config with the given snapshot schedule
write_config() {
    "$PYTHON" - "$CFG" "$1" "$2" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["schedule"] = {"snapshot": sys.argv[3], "prune": "0 * * * *", "verify": "30 2 * * *",
                 "timezone": "Europe/Berlin"}
c["retention"] = {"keep_last": 3}
c["databases"] = [{"name": "main", "engine": "postgresql", "host": "127.0.0.1",
                   "dbname": "shop"}]
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
}
write_config "$CFG" "*/5 * * * *"
cp "$CFG" "$WORK/base.json"
sb_init

# berlin "YYYY-MM-DD HH:MM": the epoch second of that wall time in Europe/Berlin
berlin() {
    "$PYTHON" -c 'import sys, datetime, zoneinfo
d = datetime.datetime.fromisoformat(sys.argv[1]).replace(tzinfo=zoneinfo.ZoneInfo("Europe/Berlin"))
print(int(d.timestamp()))' "$1"
}

# set_clock EPOCH: atomically (a reader never sees half a number), then waits until the
# daemon has run everything due up to then.
set_clock() {
    printf '%s\n' "$1" >"$CLOCK.tmp"
    mv "$CLOCK.tmp" "$CLOCK"
    wait_idle "$1"
}

wait_idle() {
    local want=$1 i
    for ((i = 0; i < 3000; i++)); do
        [[ -f $CLOCK.idle && $(<"$CLOCK.idle") == "$want" ]] && return 0
        kill -0 "$DPID" 2>/dev/null || fail "the daemon died: $(tail -n 20 "$DLOG")"
        sleep 0.02
    done
    fail "the daemon did not settle at clock $want within 60 s (idle file: $(cat "$CLOCK.idle" 2>/dev/null)); its log: $(tail -n 20 "$DLOG")"
}

# wait_log TEXT: until the daemon's stderr contains TEXT (bounded)
wait_log() {
    local i
    for ((i = 0; i < 600; i++)); do
        grep -qF -- "$1" "$DLOG" && return 0
        sleep 0.05
    done
    fail "the daemon never logged '$1': $(tail -n 20 "$DLOG")"
}

# journal_jobs: the scheduled jobs in the journal, one "event outcome" a line, in order
journal_jobs() {
    "$PYTHON" - "$STATE/journal.jsonl" <<'PY'
import json, sys
try:
    lines = open(sys.argv[1]).read().splitlines()
except FileNotFoundError:
    lines = []
for line in lines:
    j = json.loads(line)
    if j["event"] in ("snapshot", "prune", "verify"):
        print(j["event"], j["outcome"])
PY
}

# expected SCHEDULE-JSON FROM TO STEP: the jobs the daemon must run when the clock goes from
# FROM to TO in steps of STEP seconds (the daemon's rule: at each step, every job whose next
# fire time has come runs once, earliest fire first, snapshot < prune < verify on a tie; the
# next fire is then the first after the step's time). Cron matching is done minute by minute
# on the Berlin wall clock here, independently of the C code.
expected() {
    "$PYTHON" - "$@" <<'PY'
import datetime, json, sys, zoneinfo
sched, t_from, t_to, step = json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
tz = zoneinfo.ZoneInfo("Europe/Berlin")
def field_ok(spec, value):
    if spec == "*":
        return True
    if spec.startswith("*/"):
        return value % int(spec[2:]) == 0
    return value == int(spec)
def matches(expr, t):
    m, h, dom, mon, dow = expr.split()
    d = datetime.datetime.fromtimestamp(t, tz)
    return (field_ok(m, d.minute) and field_ok(h, d.hour) and field_ok(dom, d.day)
            and field_ok(mon, d.month) and field_ok(dow, (d.isoweekday() % 7)))
def next_fire(expr, after):
    t = (after // 60 + 1) * 60
    while not matches(expr, t):
        t += 60
    return t
jobs = ["snapshot", "prune", "verify"]
nxt = {j: next_fire(sched[j], t_from) for j in jobs}
now = t_from
while now < t_to:
    now = min(now + step, t_to)
    while True:
        due = [j for j in jobs if nxt[j] <= now]
        if not due:
            break
        j = min(due, key=lambda k: (nxt[k], jobs.index(k)))
        print(j, "ok")
        nxt[j] = next_fire(sched[j], now)
PY
}

# check_journal WHAT EXPECTED-LINES: the journal's jobs since the mark equal the expectation
JOURNAL_MARK=0
check_journal() {
    local what=$1 want=$2 got
    got=$(journal_jobs | tail -n +$((JOURNAL_MARK + 1)))
    CHECKS=$((CHECKS + 1))
    if [[ $got != "$want" ]]; then
        LAST_CMD=
        fail "$what: the journal shows
$(printf '%s\n' "$got" | sed 's/^/    | /')
but the schedule wants
$(printf '%s\n' "$want" | sed 's/^/    | /')"
    fi
    JOURNAL_MARK=$(journal_jobs | wc -l)
}

SCHED='{"snapshot": "*/5 * * * *", "prune": "0 * * * *", "verify": "30 2 * * *"}'
T0=$(berlin "2026-03-10 00:58")
printf '%s\n' "$T0" >"$CLOCK"
PATH="$BIN:$PATH" SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_CLOCK=$CLOCK \
    "$SNAPBACK" --config "$CFG" --no-progress daemon >"$WORK/daemon.out" 2>"$DLOG" &
DPID=$!
wait_idle "$T0"
grep -q "time zone Europe/Berlin" "$DLOG" || fail "the daemon does not say it uses Europe/Berlin: $(cat "$DLOG")"
# 02:30 in Berlin (winter, +01:00) is 01:30 UTC; the machine's own zone would say otherwise
grep -qF "next verify at 2026-03-10T01:30:00Z (time zone Europe/Berlin" "$DLOG" ||
    fail "the daemon does not plan verify for 02:30 Berlin time: $(grep -F "next " "$DLOG")"
CHECKS=$((CHECKS + 1))
check_journal "at start (nothing missed)" ""

# 1. a minute at a time from 00:58 to 02:32 Berlin (01:00: snapshot then prune; 02:30 Berlin
# is 01:30 UTC: verify)
T1=$(berlin "2026-03-10 02:32")
for ((t = T0 + 60; t <= T1; t += 60)); do
    set_clock "$t"
done
want=$(expected "$SCHED" "$T0" "$T1" 60)
[[ $(grep -c . <<<"$want") == 22 ]] || fail "the expectation itself is off: $want"
check_journal "stepping 00:58 -> 02:32 a minute at a time" "$want"
log "00:58 -> 02:32: $(grep -c snapshot <<<"$want") snapshots, 2 prunes, 1 verify, in order"

# 2. the clock jumps 3 hours: snapshot (due 02:35) and prune (due 03:00) catch up once each,
# verify (next 02:30 tomorrow) does not run
T2=$(berlin "2026-03-10 05:32")
set_clock "$T2"
want=$(expected "$SCHED" "$T1" "$T2" $((T2 - T1)))
check "the expectation for the jump is snapshot, prune" test "$want" = $'snapshot ok\nprune ok'
check_journal "after a 3-hour jump" "$want"

# 3. SIGHUP with a broken config: the old schedule stays (a snapshot at 05:35)
echo '{broken' >"$CFG"
kill -HUP "$DPID"
wait_log "keeping the old config"
grep -F "keeping the old config" "$DLOG" | grep -q "snapback.json" ||
    fail "the reload error does not name the config file: $(grep -F "keeping the old" "$DLOG")"
T3=$(berlin "2026-03-10 05:35")
set_clock "$T3"
check_journal "after a broken reload" "snapshot ok"

# ... and with a valid config the new schedule: snapshot at :15 only
cp "$WORK/base.json" "$CFG"
write_config "$CFG" "15 * * * *"
kill -HUP "$DPID"
wait_log "config reloaded"
wait_log "next snapshot at 2026-03-10T05:15:00Z"
set_clock "$(berlin "2026-03-10 05:40")"
set_clock "$(berlin "2026-03-10 05:45")"
check_journal "after a good reload, 05:40 and 05:45 (the old schedule's times)" ""
set_clock "$(berlin "2026-03-10 06:00")"
set_clock "$(berlin "2026-03-10 06:15")"
check_journal "after a good reload, 06:00 and 06:15" $'prune ok\nsnapshot ok'

# 4. SIGTERM while a snapshot is inside its database dump
: >"$WORK/block"
printf '%s\n' "$(berlin "2026-03-10 07:15")" >"$CLOCK.tmp"
mv "$CLOCK.tmp" "$CLOCK"
for ((i = 0; i < 1200; i++)); do
    [[ -e $WORK/dump-started ]] && break
    sleep 0.05
done
[[ -e $WORK/dump-started ]] || fail "the 07:15 snapshot never reached its dump: $(tail -n 20 "$DLOG")"
kill -TERM "$DPID"
wait_log "passing signal 15 to the running snapshot"
: >"$WORK/release"
status=0
for ((i = 0; i < 1200; i++)); do
    kill -0 "$DPID" 2>/dev/null || break
    sleep 0.05
done
kill -0 "$DPID" 2>/dev/null && fail "the daemon did not stop within 60 s of SIGTERM"
wait "$DPID" || status=$?
check "the daemon exits 0 on SIGTERM (got $status)" test "$status" = 0
grep -q "daemon stopped by signal 15" "$DLOG" || fail "no stop message: $(tail "$DLOG")"
log "the interrupted snapshot: $(journal_jobs | tail -n 1)"
check "the lock is free after SIGTERM" flock -n "$STATE/lock" true
cp "$WORK/base.json" "$CFG"
expect_ok sb verify --all
expect_ok sb list --json
ids=$(json_get "$OUT" '" ".join(s["id"] for s in j)')
for id in $ids; do
    expect_ok sb show "$id" --json
    missing=$(json_get "$OUT" '[o["name"] for o in j["objects"] if not __import__("os").path.exists("'"$REPO"'/demo/" + o["name"])]')
    check "snapshot $id: every object it names is in the repository (missing: $missing)" test "$missing" = "[]"
done

log "what the interrupted snapshot said: $(grep -F "snapback: error:" "$DLOG" | tail -n 2 | tr '\n' ' ')"

# 5. the test clock is not honoured without SNAPBACK_TEST_HOOKS=1
DLOG=$WORK/daemon2.err
SNAPBACK_TEST_CLOCK=$CLOCK "$SNAPBACK" --config "$CFG" --no-progress daemon \
    >"$WORK/daemon.out" 2>"$DLOG" &
DPID=$!
wait_log "SNAPBACK_TEST_HOOKS is not 1: ignored"
kill -TERM "$DPID"
status=0
wait "$DPID" || status=$?
check "the daemon without test hooks exits 0 on SIGTERM" test "$status" = 0
check "no idle file is written without test hooks" test "$(cat "$CLOCK.idle")" = "$(berlin "2026-03-10 06:15")"

# 6. schedule.jitter: "0 * * * *" with jitter 10m fires once an hour, at a random moment of
# [:00, :10] (stepping a minute at a time, the run shows at the first step after it)
"$PYTHON" - "$WORK/base.json" "$CFG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["schedule"] = {"snapshot": "0 * * * *", "timezone": "Europe/Berlin", "jitter": "10m"}
c.pop("databases")
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
DLOG=$WORK/daemon3.err
J0=$(berlin "2026-03-11 00:55")
printf '%s\n' "$J0" >"$CLOCK"
SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_CLOCK=$CLOCK \
    "$SNAPBACK" --config "$CFG" --no-progress daemon >"$WORK/daemon.out" 2>"$DLOG" &
DPID=$!
wait_idle "$J0"
snapshots() { grep -c '"event":"snapshot"' "$STATE/journal.jsonl" || true; }
fired=()
for ((t = J0 + 60; t <= J0 + 124 * 60; t += 60)); do
    before=$(snapshots)
    set_clock "$t"
    after=$(snapshots)
    ((after == before)) || fired+=("$(TZ=Europe/Berlin date -d "@$t" +%H:%M)x$((after - before))")
done
log "with jitter 10m the hourly snapshot ran at (Berlin time x runs): ${fired[*]}"
check "two hourly fires in 00:56..02:59, one run each (got: ${fired[*]})" test "${#fired[@]}" = 2
check "the 01:00 fire ran once within its 10 minutes (got: ${fired[0]})" \
    grep -qE '^01:(0[0-9]|10)x1$' <<<"${fired[0]}"
check "the 02:00 fire ran once within its 10 minutes (got: ${fired[1]})" \
    grep -qE '^02:(0[0-9]|10)x1$' <<<"${fired[1]}"
kill -TERM "$DPID"
status=0
wait "$DPID" || status=$?
check "the jittered daemon exits 0 on SIGTERM" test "$status" = 0

# 7. DST through the daemon (Europe/Berlin, verify "30 2 * * *", a fixed-time job, as cronie):
# on 2026-03-29 02:30 does not exist (02:00 -> 03:00) and the job runs once, at 03:00; on
# 2026-10-25 02:30 happens twice (03:00 -> 02:00) and the job runs once, at the first
"$PYTHON" - "$WORK/base.json" "$CFG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["schedule"] = {"verify": "30 2 * * *", "timezone": "Europe/Berlin"}
c.pop("databases")
json.dump(c, open(sys.argv[2], "w"), indent=1)
PY
verifies() { grep -c '"event":"verify"' "$STATE/journal.jsonl" || true; }
# dst_walk FROM-UTC MINUTES: starts a daemon at FROM (epoch), steps a minute at a time and
# sets RAN to the UTC times of the steps at which a verify ran (not in a subshell, so that the
# cleanup trap knows the daemon)
dst_walk() {
    local from=$1 minutes=$2 t before
    RAN=
    DLOG=$WORK/daemon-dst-$from.err
    printf '%s\n' "$from" >"$CLOCK"
    SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_CLOCK=$CLOCK \
        "$SNAPBACK" --config "$CFG" --no-progress daemon >"$WORK/daemon.out" 2>"$DLOG" &
    DPID=$!
    wait_idle "$from"
    for ((t = from + 60; t <= from + minutes * 60; t += 60)); do
        before=$(verifies)
        set_clock "$t"
        [[ $(verifies) == "$before" ]] || RAN+="$(date -u -d "@$t" +%H:%MZ) "
    done
    kill -TERM "$DPID"
    wait "$DPID" || fail "the DST daemon did not exit 0 on SIGTERM"
}
# spring: from 01:50 CET (00:50Z) for 80 minutes; 03:00 CEST is 01:00Z
dst_walk "$(date -u -d 2026-03-29T00:50:00Z +%s)" 80
check "spring forward: verify runs once, at 03:00 CEST = 01:00Z (ran at: $RAN)" test "$RAN" = "01:00Z "
# autumn: from 01:50 CEST (23:50Z) for 150 minutes; the first 02:30 (CEST) is 00:30Z, the
# second (CET) 01:30Z
dst_walk "$(date -u -d 2026-10-24T23:50:00Z +%s)" 150
check "fall back: verify runs once, at the first 02:30 = 00:30Z (ran at: $RAN)" test "$RAN" = "00:30Z "

# a daemon started after it missed runs (a reboot): the job catches up once, not once per
# missed run, through the main loop (so with its jitter, when one is set)
# (the journal records when jobs really ran, so the start is three real days ahead)
before=$(verifies)
T=$(($(date +%s) / 60 * 60 + 3 * 86400))
printf '%s\n' "$T" >"$CLOCK"
DLOG=$WORK/daemon-catchup.err
SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_CLOCK=$CLOCK \
    "$SNAPBACK" --config "$CFG" --no-progress daemon >"$WORK/daemon.out" 2>"$DLOG" &
DPID=$!
wait_idle "$T"
set_clock $((T + 60))
kill -TERM "$DPID"
wait "$DPID" || fail "the catch-up daemon did not exit 0 on SIGTERM"
check "at start, the verify missed on three days runs once (ran $(($(verifies) - before)) times)" \
    test $(($(verifies) - before)) = 1
check "the catch-up is logged" grep -q "missed a run while the daemon was down" "$DLOG"

# the daemons and their jobs: no sanitizer report in any log (ASan+UBSan builds)
if grep -lE "AddressSanitizer|LeakSanitizer|runtime error:" "$WORK"/daemon*.err; then
    fail "a sanitizer report in a daemon log: $(grep -hE -A5 "AddressSanitizer|LeakSanitizer|runtime error:" "$WORK"/daemon*.err | head -n 20)"
fi
CHECKS=$((CHECKS + 1))
