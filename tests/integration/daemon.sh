#!/usr/bin/env bash
# daemon (DESIGN §9, issue #6): a snapshot missed while the daemon was down is caught up once
# at start; SIGHUP with a broken config keeps the old one; SIGTERM stops it with exit 0; a
# config without any schedule is refused (78). The cron arithmetic itself is unit-tested
# (tests/unit/test_cron.c, DST included).
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
sb_init
"$PYTHON" - "$CFG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["schedule"] = {"snapshot": "0 3 * * *", "prune": "@yearly"}
json.dump(c, open(sys.argv[1], "w"))
PY
mkdir -p "$STATE"
printf '{"time":"2020-01-01T00:00:00Z","event":"snapshot","outcome":"ok","duration_s":1}\n' >>"$STATE/journal.jsonl"

"$SNAPBACK" --config "$CFG" daemon >"$WORK/daemon.out" 2>"$WORK/daemon.err" &
pid=$!
for _ in $(seq 1 100); do
    [[ $(manifest_count) -ge 1 ]] && break
    sleep 0.1
done
[[ $(manifest_count) == 1 ]] || fail "the missed snapshot was not caught up: $(cat "$WORK/daemon.err")"
cp "$CFG" "$WORK/good.json"
echo '{broken' >"$CFG"
kill -HUP "$pid"
for _ in $(seq 1 50); do
    grep -q "keeping the old config" "$WORK/daemon.err" && break
    sleep 0.1
done
grep -q "keeping the old config" "$WORK/daemon.err" || fail "no reload message: $(cat "$WORK/daemon.err")"
kill -0 "$pid" || fail "the daemon died on a bad reload"
cp "$WORK/good.json" "$CFG"
kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[[ $status == 0 ]] || fail "daemon exited $status on SIGTERM"
grep -q "daemon stopped by signal 15" "$WORK/daemon.err" || fail "no stop message"
[[ $(manifest_count) == 1 ]] || fail "caught up more than once"
CHECKS=$((CHECKS + 5))

"$PYTHON" - "$CFG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c.pop("schedule"); json.dump(c, open(sys.argv[1], "w"))
PY
expect_exit 78 sb daemon
expect_err_contains "no job is scheduled"
