#!/usr/bin/env bash
# Logs and metrics (DESIGN §9, issue #6): with --log-format json every stderr line of a
# snapshot, a failure and a verify is one JSON object with time, level and message or error;
# metrics_file is valid Prometheus text (a strict parser below), rewritten after every job,
# and counts failures; the on_error hook runs with SNAPBACK_ERROR.
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
PROM=$WORK/metrics/snapback.prom
mkdir -p "$WORK/metrics"
"$PYTHON" - "$CFG" "$PROM" "$WORK/onerror.txt" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["metrics_file"] = sys.argv[2]
c["hooks"] = {"on_error": ["/bin/sh", "-c", "echo \"$SNAPBACK_EVENT: $SNAPBACK_ERROR\" > " + sys.argv[3]]}
json.dump(c, open(sys.argv[1], "w"))
PY
sb_init
expect_ok sb --log-format json snapshot
cp "$WORK/.err" "$WORK/log1"
expect_exit 66 sb --log-format json restore no-such-snapshot --target "$WORK/r"
cp "$WORK/.err" "$WORK/log2"
expect_ok sb --log-format json verify
cp "$WORK/.err" "$WORK/log3"
"$PYTHON" - "$WORK/log1" "$WORK/log2" "$WORK/log3" <<'PY' || fail "a log line is not a JSON object"
import json, sys
n = 0
for path in sys.argv[1:]:
    for line in open(path):
        j = json.loads(line)
        assert isinstance(j, dict) and "time" in j and "level" in j, line
        assert ("message" in j) or ("error" in j), line
        n += 1
assert n >= 3, n
print(n, "log lines parsed")
PY
grep -q "restore_failed: " "$WORK/onerror.txt" || fail "on_error hook did not run: $(cat "$WORK/onerror.txt" 2>/dev/null)"
"$PYTHON" - "$PROM" <<'PY' || fail "metrics file is not valid Prometheus text"
import re, sys
name = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
sample = re.compile(r"^(" + name + r")\{(" + name + r"=\"[^\"]*\")(," + name + r"=\"[^\"]*\")*\} -?[0-9]+(\.[0-9]+)?$")
types, seen = {}, {}
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# HELP "):
        continue
    if line.startswith("# TYPE "):
        _, _, metric, kind = line.split(" ")
        assert kind in ("gauge", "counter"), line
        types[metric] = kind
        continue
    m = sample.match(line)
    assert m, "bad sample line: " + line
    assert m.group(1) in types, "sample before its TYPE: " + line
    seen[(m.group(1), line.split("{")[1].split("}")[0])] = float(line.rsplit(" ", 1)[1])
fails = [v for (k, labels), v in seen.items() if k == "snapback_failures_total" and 'job="restore"' in labels]
assert fails == [1.0], fails
ok = [v for (k, labels), v in seen.items() if k == "snapback_last_success_timestamp_seconds" and 'job="snapshot"' in labels]
assert ok and ok[0] > 1.7e9, ok
print(len(seen), "samples parsed")
PY
CHECKS=$((CHECKS + 3))

# The progress line: on a terminal (script(1) gives the command a pty) stderr shows bytes,
# percentage, rate and ETA of a large object, and each line is erased before a message; with
# --no-progress, --quiet or JSON logs, or when stderr is not a terminal, there is none.
if command -v script >/dev/null; then
    head -c $((24 << 20)) /dev/urandom >"$APP/releases/20260102T000000Z/big.bin"
    script -qec "'$SNAPBACK' --config '$CFG' snapshot" /dev/null >"$WORK/tty.out" 2>&1 ||
        fail "snapshot on a pty failed: $(tail -n 3 "$WORK/tty.out")"
    check "a progress line with size, percentage, rate and ETA on a terminal" \
        grep -aqE 'releases/20260102T000000Z-[0-9a-f]+\.snpb +[0-9.]+ [KM]iB / 24\.[0-9] MiB +[0-9]+% +[0-9.]+ [KM]?i?B/s +ETA' "$WORK/tty.out"
    check "the progress line is erased before messages" grep -aq $'\r\033\\[Ksnapback: ' "$WORK/tty.out"
    touch "$APP/releases/20260102T000000Z/big.bin" # a new fingerprint: stored again
    script -qec "'$SNAPBACK' --config '$CFG' --no-progress snapshot" /dev/null >"$WORK/tty2.out" 2>&1 ||
        fail "snapshot --no-progress on a pty failed"
    check "no progress line with --no-progress" bash -c "! grep -aq 'ETA' '$WORK/tty2.out'"
    touch "$APP/releases/20260102T000000Z/big.bin"
    expect_ok "$SNAPBACK" --config "$CFG" snapshot # no --no-progress; stderr is a file here
    check "no progress line when stderr is not a terminal" bash -c "! grep -aq \$'\\033' '$WORK/.err'"
else
    log "script(1) not installed: the progress line is not tested"
fi
