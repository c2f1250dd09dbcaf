#!/usr/bin/env bash
# One run at a time per state_dir (DESIGN §9): while another process holds the flock on
# STATE/lock, snapshot, init and restore exit 75 naming the holder and change nothing, while
# list, show and verify still work; two real snapshot runs started together: exactly one
# succeeds and the other exits 75 naming the first one's pid; a holder killed with SIGKILL
# leaves no stale lock.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
need flock
sb_env
sb_init
sb_snapshot
S0=$SNAP_ID
sleep 1.1

# wait_locked: until a snapback run has taken the lock and written its pid into STATE/lock
# (at most 10 s). Probing with flock -n would itself take the lock for an instant and make the
# run being waited for fail with 75.
wait_locked() {
    local _
    for _ in $(seq 1 1000); do
        grep -q '^pid ' "$STATE/lock" 2>/dev/null && return 0
        sleep 0.01
    done
    RC='?'
    fail "no snapback run took the lock on $STATE/lock within 10 s"
}

# --- deterministic: flock(1) holds the lock ---
# one process holds it (flock(1) locks the subshell's fd 9, then the subshell becomes sleep),
# so killing $holder frees the lock
(
    exec 9>>"$STATE/lock"
    flock 9
    : >"$WORK/holder.ready"
    exec sleep 30
) >/dev/null 2>&1 &
holder=$!
for _ in $(seq 1 1000); do
    [[ -e $WORK/holder.ready ]] && break
    sleep 0.01
done
n=$(manifest_count)
repo_before=$(tree_digest "$REPO")
expect_exit 75 sb snapshot
expect_err_contains "pid"
expect_err_contains "$STATE/lock"
check "snapshot printed no id" test -z "$OUT"
expect_exit 75 sb snapshot --only shared
expect_exit 75 sb restore "$S0" --target "$WORK/r"
check "locked restore wrote no target" test ! -e "$WORK/r"
check "locked runs changed nothing in the repository" test "$(tree_digest "$REPO")" = "$repo_before"
check "no new manifest" test "$(manifest_count)" = "$n"
# read-only commands do not need the lock
expect_ok sb list
expect_ok sb show "$S0"
expect_ok sb verify "$S0"
expect_ok sb config check
kill "$holder"
wait "$holder" 2>/dev/null || true
expect_ok sb snapshot --only shared
sleep 1.1

# --- the holder is a real snapshot: the message names its pid ---
"$PYTHON" "$INTEGRATION_DIR/make_tree.py" bulk "$APP/shared/uploads/bulk" --mib "${LOCK_MIB:-256}" --files 32
"$SNAPBACK" --config "$CFG" --no-progress snapshot >"$WORK/first.out" 2>"$WORK/first.err" &
first=$!
wait_locked
expect_exit 75 sb snapshot
expect_err_contains "pid $first"
expect_err_contains "snapshot"
first_rc=0
wait "$first" || first_rc=$?
LAST_CMD="snapshot (first, pid $first)"
check "the first snapshot succeeded (exit $first_rc: $(cat "$WORK/first.err"))" test "$first_rc" = 0
sleep 1.1

# --- real concurrency: two snapshots started together, several rounds ---
for round in 1 2 3; do
    n=$(manifest_count)
    "$SNAPBACK" --config "$CFG" --no-progress snapshot >"$WORK/a.out" 2>"$WORK/a.err" &
    pa=$!
    "$SNAPBACK" --config "$CFG" --no-progress snapshot >"$WORK/b.out" 2>"$WORK/b.err" &
    pb=$!
    ra=0 rb=0
    wait "$pa" || ra=$?
    wait "$pb" || rb=$?
    log "round $round: exits $ra and $rb"
    LAST_CMD="two concurrent snapshots: a=$ra ($(tail -n1 "$WORK/a.err")), b=$rb ($(tail -n1 "$WORK/b.err"))"
    if [[ $ra == 0 && $rb == 75 ]]; then
        loser=$WORK/b.err winner=$pa
    elif [[ $ra == 75 && $rb == 0 ]]; then
        loser=$WORK/a.err winner=$pb
    else
        fail "round $round: expected one exit 0 and one exit 75"
    fi
    check "round $round: the loser names the winner's pid $winner ($(cat "$loser"))" grep -q "pid $winner" "$loser"
    check "round $round: exactly one new snapshot" test "$(manifest_count)" = $((n + 1))
    sleep 1.1
done

# --- a holder killed with SIGKILL leaves no stale lock ---
"$SNAPBACK" --config "$CFG" --no-progress snapshot >"$WORK/victim.out" 2>"$WORK/victim.err" &
victim=$!
LAST_CMD="snapshot (to be killed, pid $victim)"
wait_locked
kill -KILL "$victim"
wait "$victim" 2>/dev/null || true
expect_ok sb snapshot
expect_ok sb verify --all
