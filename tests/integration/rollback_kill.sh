#!/usr/bin/env bash
# A rollback killed with SIGKILL at each of its steps (DESIGN §7, §10, issue #5) leaves the
# live release old or new, never dangling or partial, and running the same rollback again
# completes it. The kills are placed, not timed:
#   - inside a hook (before_rollback, after_rollback, health_check): the hook writes its pid
#     and waits for a file; the test kills snapback while the hook holds it there;
#   - at a path appearing (kill_at.py --when-new, which SIGSTOPs the run the moment it sees
#     the path, then SIGKILLs it): the safety snapshot's object being written, the temp
#     symlink of the switch (its window before the rename(2) is microseconds, so this kill
#     lands just before or just after the switch; both are checked, and the temp symlink a
#     kill before the rename leaves is simulated at the end), the release being restored
#     from the repository into
#     releases/.NAME.tmp (as the directory appears, and in the middle of its big file), the
#     restored release renamed into place, and the SQLite database's restore temp file.
# After each kill: `current` resolves to a release directly in releases/ whose tree is that
# release's complete tree (the old one or the target), no .NAME.tmp is listed by `snapback
# releases`, the SQLite database passes integrity_check and is the old or the target state,
# the lock is free, and the repository verifies. Then the same rollback is run again (--to
# previous while the release is on disk) and exits 0 with the target live: from the start
# after a kill before the switch; after a kill past the switch, it finds the run's "started"
# line in the journal and runs only what was left (after_rollback, health check), so
# "previous" does not step back one more release. A resumed run whose health check fails
# reverts release and database from the interrupted run's safety snapshot.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/rollback.sh
source "$HARNESS_DIR/rollback.sh"
sb_setup "$@"
need flock

rollback_layout
# R2 is the release brought back from the repository: a big file makes its restore last
# long enough to be stopped in the middle of it.
head -c $((32 * 1024 * 1024)) /dev/urandom >"$APP/releases/$R2/big.bin"
"$PYTHON" "$INTEGRATION_DIR/make_tree.py" bulk "$APP/releases/$R2/assets" --mib 4 --files 200 >/dev/null
# ... and the safety snapshot's shared object and the database restore take a while too
head -c $((4 * 1024 * 1024)) /dev/urandom >"$APP/shared/uploads/video.bin"
DB=$APP/shared/db.sqlite3

# The hook also logs every event, and fails the health check while $WORK/unhealthy exists.
hold_hook "$(
    cat <<EOF
echo "\$SNAPBACK_EVENT \$SNAPBACK_RELEASE" >>"$WORK/events.log"
if [ "\$SNAPBACK_EVENT" = health_check ] && [ -e "$WORK/unhealthy" ]; then exit 1; fi
EOF
)"
rollback_config "{ \"name\": \"main\", \"engine\": \"sqlite\", \"path\": \"$DB\" }" \
    "\"hooks\": { \"before_rollback\": [\"$HOOK\"], \"after_rollback\": [\"$HOOK\"], \"health_check\": [\"$HOOK\"],
             \"timeout_s\": 120 },
  \"rollback\": { \"health_timeout_s\": 1, \"auto_revert\": true }"
db_state() { sql "SELECT count(*) || ':' || group_concat(total || '/' || coalesce(currency, '-'), ',') FROM orders"; }
sb_init

# the digest of every release, to prove "complete" after a kill
declare -A DIGEST
for r in "$R1" "$R2" "$R3"; do DIGEST[$r]=$(tree_digest "$APP/releases/$r"); done

# R2 live with its data, a snapshot, then R3 deployed with a migration
ln -sfn "releases/$R2" "$APP/current"
sql "CREATE TABLE orders(id INTEGER PRIMARY KEY, total INTEGER)"
sql "CREATE TABLE blobs(b BLOB)"
sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 64) INSERT INTO blobs SELECT randomblob(131072) FROM n"
sql "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) INSERT INTO orders(total) SELECT i FROM n"
sql "ALTER TABLE orders ADD COLUMN currency TEXT"
DB_R2=$(db_state)
sb_snapshot --tag pre-deploy
ln -sfn "releases/$R3" "$APP/current"
sql "UPDATE orders SET total = total * 100, currency = 'EUR'"
sql "INSERT INTO orders(total, currency) VALUES (1, 'GBP')"
DB_R3=$(db_state)
cp "$DB" "$WORK/db-r3.sqlite3"

# reset [gone]: R3 live with its database; with "gone", R2 deleted from disk
reset() {
    ln -sfn "releases/$R3" "$APP/current"
    cp "$WORK/db-r3.sqlite3" "$DB"
    rm -rf "$APP/releases/.$R2.tmp"
    if [[ ${1:-} == gone ]]; then rm -rf "$APP/releases/$R2"; fi
    rm -f "$GO" "$WORK"/hook.*.pid
}

# after_kill WHAT DB_TOO: the state a kill may leave
after_kill() {
    local what=$1 db_too=$2 live target
    LAST_CMD=
    target=$(current) || fail "$what: current is not a symlink any more"
    live=$(readlink -f "$APP/current") || true
    check "$what: current ($target) resolves to a directory" test -d "$live"
    live=$(basename "$live")
    check "$what: current is releases/$R3 or releases/$R2, not $target" \
        test "$target" = "releases/$R3" -o "$target" = "releases/$R2"
    check "$what: the live release $live is complete" test "$(tree_digest "$APP/releases/$live")" = "${DIGEST[$live]}"
    expect_ok sb releases
    check "$what: no temp release listed" test -z "$(grep -e '\.tmp' -e 'snapback-tmp' <<<"$OUT" || true)"
    check "$what: the releases listed are complete ones" test "$(grep -c 'on disk' <<<"$OUT")" -le 3
    if [[ $db_too == db ]]; then
        check "$what: the database passes integrity_check" test "$(sql 'PRAGMA integrity_check')" = ok
        local state
        state=$(db_state)
        check "$what: the database is the old or the target state" test "$state" = "$DB_R3" -o "$state" = "$DB_R2"
    fi
    check "$what: the lock is free" flock -n "$STATE/lock" true
    expect_ok sb verify --all
}

# rerun WHAT ARGS...: the same rollback again completes it: from the start when the kill
# came before the switch, else (the journal says so) only after_rollback and the health check
rerun() {
    local what=$1 switched=no
    shift
    [[ $(current) == "releases/$R2" ]] && switched=yes
    : >"$WORK/events.log"
    expect_ok sb rollback "$@"
    if [[ $switched == yes ]]; then
        log "$what: the kill came after the switch; the second run resumed"
        expect_out_contains "was interrupted after its switch"
        check "$what: the resumed run ran after_rollback and health_check for $R2, nothing before" \
            test "$(cat "$WORK/events.log")" = "after_rollback $R2"$'\n'"health_check $R2"
    else
        check "$what: the second run went through before_rollback" grep -q "^before_rollback $R2" "$WORK/events.log"
    fi
    check "$what: after the second run current -> releases/$R2" test "$(current)" = "releases/$R2"
    check "$what: after the second run $R2 is complete" test "$(tree_digest "$APP/releases/$R2")" = "${DIGEST[$R2]}"
    check "$what: no releases/.$R2.tmp left" test ! -e "$APP/releases/.$R2.tmp"
    check "$what: the journal's last rollback line is ok" \
        test "$(grep '"event":"rollback"' "$STATE/journal.jsonl" | tail -n 1 | json_get "$(cat)" 'j["outcome"]')" = ok
}

# kill_in_hook EVENT WHAT ARGS...: the rollback stopped inside hook EVENT, then SIGKILLed
kill_in_hook() {
    local event=$1 what=$2
    shift 2
    reset "${GONE:-}"
    HOLD_WHAT=$what start_held "$event" killed rollback "$@"
    kill_held
    log "$what: killed inside the $event hook"
    after_kill "$what" "${DBMODE:-}"
    rerun "$what" "$@"
}

# kill_when ROOT GLOB WHAT ARGS...: the rollback SIGKILLed the moment GLOB appears. The
# windows are tens of milliseconds at least (big files make them so), but on a loaded
# machine the watcher can be descheduled past one: a run that completed without being killed
# is undone (reset) and tried again, up to 5 times. MAY_MISS=1: the window is microseconds
# (the switch); a completed run is then accepted as "killed just after".
kill_when() {
    local root=$1 glob=$2 what=$3 res attempt
    shift 3
    for attempt in 1 2 3 4 5; do
        reset "${GONE:-}"
        res=$("$PYTHON" "$INTEGRATION_DIR/kill_at.py" --root "$root" --when-new "$glob" --timeout 100 -- \
            "$SNAPBACK" --config "$CFG" --no-progress rollback "$@")
        log "$what (attempt $attempt): $res"
        [[ $(json_get "$res" 'j["killed"] and j["seen"] is not None') == true ]] && break
        [[ ${MAY_MISS:-0} == 1 ]] && break
    done
    if [[ ${MAY_MISS:-0} != 1 ]]; then
        check "$what: the run was killed when '$glob' appeared" \
            test "$(json_get "$res" 'j["killed"] and j["seen"] is not None')" = true
    fi
    after_kill "$what" "${DBMODE:-}"
    if [[ $(json_get "$res" 'j["killed"]') == true ]]; then
        rerun "$what" "$@"
    else # MAY_MISS: the run completed; running it again would be another rollback
        log "$what: the run completed before the kill could land"
        check "$what: the completed run switched to $R2" test "$(current)" = "releases/$R2"
    fi
}

# --- release on disk, no database ---
GONE=
DBMODE=
# (--to previous: after a kill past the switch, "previous" must not mean the release before
# the target now)
kill_when "$REPO" "demo/data/*/*.partial" "safety snapshot" --to previous --without-database
kill_in_hook before_rollback "before_rollback" --to previous --without-database
MAY_MISS=1 kill_when "$APP" "current.snapback-tmp-*" "switch" --to previous --without-database
kill_in_hook after_rollback "after_rollback" --to previous --without-database
kill_in_hook health_check "health_check" --to previous --without-database

# --- release deleted from disk, restored from the repository, with the database ---
GONE=gone
DBMODE=db
kill_in_hook before_rollback "from the repository: before_rollback" --to "$R2" --with-database
check "nothing was restored before before_rollback returned" test ! -e "$APP/releases/.$R2.tmp"
kill_when "$APP/releases" ".$R2.tmp" "from the repository: temp dir created" --to "$R2" --with-database
kill_when "$APP/releases" ".$R2.tmp/big.bin" "from the repository: in the middle of the release" --to "$R2" --with-database
kill_when "$APP/releases" "$R2" "from the repository: just renamed into place" --to "$R2" --with-database
kill_when "$APP/shared" "db.sqlite3.snapback-tmp-*" "database restore" --to "$R2" --with-database
check "after the database kill and the second run: the database is R2's" test "$(db_state)" = "$DB_R2"
kill_in_hook health_check "from the repository: health_check" --to "$R2" --with-database
check "after the health_check kill: the database is R2's" test "$(db_state)" = "$DB_R2"

# killed after the switch, then found unhealthy when resumed: reverted, release and database
log "resumed and unhealthy: auto-revert"
GONE=gone
reset gone
start_held after_rollback killed rollback --to "$R2" --with-database
kill_held
check "killed after the switch: $R2 is live" test "$(current)" = "releases/$R2"
touch "$WORK/unhealthy"
expect_exit 69 sb rollback --to previous
expect_out_contains "was interrupted after its switch"
expect_err_contains "reverted"
check "resumed and unhealthy: current -> releases/$R3 again" test "$(current)" = "releases/$R3"
check "resumed and unhealthy: the database is R3's again" test "$(db_state)" = "$DB_R3"
rm "$WORK/unhealthy"
# the journal now ends with the failed outcome: nothing is resumed any more
expect_exit 64 sb rollback --to "$R3"
expect_err_contains "already current"

# the temp symlink a switch killed before its rename leaves (another pid's name) is not a
# release and does not disturb the next rollback
GONE=
DBMODE=
reset
ln -s "releases/$R2" "$APP/current.snapback-tmp-999999"
expect_ok sb releases
check "a leftover temp symlink is not listed" test -z "$(grep snapback-tmp <<<"$OUT" || true)"
expect_ok sb rollback --to "$R2" --without-database --no-safety-snapshot
check "the rollback beside a leftover temp symlink switched current" test "$(current)" = "releases/$R2"
check "current is a symlink, not the leftover renamed" test -L "$APP/current"
