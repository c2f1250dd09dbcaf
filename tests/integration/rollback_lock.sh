#!/usr/bin/env bash
# Snapshot and rollback exclude each other through the app lock (DESIGN §9, issue #5): a
# snapshot started while a rollback runs exits 75 naming the rollback and changes nothing,
# and with --wait it waits for the rollback to finish and then snapshots the new state; the
# same the other way round. The first run is held mid-way deterministically by a hook that
# blocks until the test creates a file (before_rollback / before_snapshot run under the
# lock); the waiting run is known to be waiting when it logs so. Also: --wait=SECONDS gives
# up with 75 after that long, a waiting run stopped by SIGTERM exits 75 having done nothing,
# bad --wait values are usage errors (64), and commands without --wait reject it.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/rollback.sh
source "$HARNESS_DIR/rollback.sh"
sb_setup "$@"
need flock

rollback_layout
hold_hook
rollback_config "" '"hooks": { "before_rollback": ["'"$HOOK"'"], "before_snapshot": ["'"$HOOK"'"], "timeout_s": 120 }'
sb_init
sb_snapshot

# release_held: lets the held run go on; it must succeed
release_held() {
    touch "$GO"
    local rc=0
    wait "$HELD" || rc=$?
    CHECKS=$((CHECKS + 1))
    ((rc == 0)) || { LAST_CMD=; fail "the held run exited $rc: $(cat "$WORK/held.err")"; }
}

# start_waiting ARGS...: `snapback ARGS` in the background, returns when it says it waits
start_waiting() {
    local tries=0
    "$SNAPBACK" --config "$CFG" --no-progress "$@" >"$WORK/waiting.out" 2>"$WORK/waiting.err" &
    WAITING=$!
    until grep -q "waiting up to" "$WORK/waiting.err" 2>/dev/null; do
        ((tries++ < 600)) || fail "'$*' does not say it waits for the lock: $(cat "$WORK/waiting.err")"
        kill -0 "$WAITING" 2>/dev/null || fail "'$*' ended instead of waiting: $(cat "$WORK/waiting.err")"
        sleep 0.05
    done
}

wait_waiting() { # EXPECTED-EXIT
    local rc=0
    wait "$WAITING" || rc=$?
    CHECKS=$((CHECKS + 1))
    ((rc == $1)) || { LAST_CMD=; fail "the waiting run exited $rc, want $1: $(cat "$WORK/waiting.err")"; }
}

# --- a snapshot during a rollback ---
log "snapshot while a rollback holds the lock"
start_held before_rollback held rollback --to "$R2"
n=$(manifest_count)
expect_exit 75 sb snapshot
expect_err_contains "holds the lock"
expect_err_contains "pid $HELD, rollback"
expect_err_contains "--wait"
check "75: no snapshot id printed" test -z "$OUT"
expect_exit 75 sb snapshot --wait=1
expect_err_contains "after waiting 1 s"
check "75: no new snapshot" test "$(manifest_count)" = "$n"

check "the rollback has not switched yet" test "$(current)" = "releases/$R3"

# a waiting run stopped by SIGTERM: 75, nothing done
start_waiting snapshot --wait=60
kill -TERM "$WAITING"
wait_waiting 75
check "SIGTERM while waiting: says so ($(cat "$WORK/waiting.err"))" \
    grep -q "interrupted while waiting for the lock" "$WORK/waiting.err"
check "SIGTERM while waiting: no new snapshot" test "$(manifest_count)" = "$n"

log "snapshot --wait during a rollback waits for it"
start_waiting snapshot --wait=60 --tag after-rollback
release_held
wait_waiting 0
check "the rollback switched" test "$(current)" = "releases/$R2"
id=$(tail -n 1 "$WORK/waiting.out")
expect_ok sb show "$id" --json
check "the waiting snapshot ran after the rollback (release $R2)" test "$(json_get "$OUT" 'j["release"]["name"]')" = "$R2"
check "the waiting run logged that it got the lock" grep -q "acquired after waiting" "$WORK/waiting.err"

# --- a rollback during a snapshot ---
log "rollback while a snapshot holds the lock"
start_held before_snapshot held snapshot --tag held
expect_exit 75 sb rollback --to "$R3"
expect_err_contains "pid $HELD, snapshot"
check "75: current unchanged" test "$(current)" = "releases/$R2"
expect_exit 75 sb rollback --to "$R3" --wait=1
expect_err_contains "after waiting 1 s"
check "75 after waiting: current unchanged" test "$(current)" = "releases/$R2"

log "rollback --wait during a snapshot waits for it"
start_waiting rollback --to "$R3" --wait=60
check "the waiting rollback has not switched" test "$(current)" = "releases/$R2"
release_held
wait_waiting 0
check "the rollback ran after the snapshot" test "$(current)" = "releases/$R3"

# --- usage ---
expect_exit 64 sb snapshot --wait=0
expect_err_contains "--wait=SECONDS needs a whole number of seconds from 1 to 86400"
expect_exit 64 sb rollback --to "$R1" --wait=soon
expect_err_contains "not 'soon'"
expect_exit 64 sb restore latest --target "$WORK/r" --wait
expect_err_contains "unknown option '--wait'"
check "the lock is free at the end" flock -n "$STATE/lock" true
