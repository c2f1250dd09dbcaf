#!/usr/bin/env bash
# Rollback (DESIGN §7, issue #5) on a Capistrano layout with a SQLite database migrated in
# the newest release: --dry-run changes nothing; --to previous --with-database brings the
# previous release and the database as it was in its pre-deploy snapshot; the rollback is
# undone by rolling forward; a release gone from disk comes back from the repository; hooks
# see their environment, a failing before_rollback aborts with nothing changed, a failing
# health check reverts release and database; error cases exit 66 and 78 changing nothing.
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/rollback.sh
source "$HARNESS_DIR/rollback.sh"
sb_setup "$@"

rollback_layout R1 R2 R3
DB=$APP/shared/db.sqlite3
mkdir -p "$APP/shared"

write_config() { # $1: extra JSON members (hooks, rollback)
    rollback_config "{ \"name\": \"main\", \"engine\": \"sqlite\", \"path\": \"$DB\" }" "${1:-}"
}

write_config ""
sb_init

# Release 2 is live with its data; a pre-deploy snapshot; then deploy release 3 with a
# migration (a column added, rows changed).
ln -sfn releases/R2 "$APP/current"
sql "CREATE TABLE orders(id INTEGER PRIMARY KEY, total INTEGER)"
sql "INSERT INTO orders(total) VALUES (10),(20),(30)"
sb_snapshot --tag pre-deploy
PRE_DEPLOY=$SNAP_ID
ln -sfn releases/R3 "$APP/current"
sql "ALTER TABLE orders ADD COLUMN currency TEXT DEFAULT 'EUR'"
sql "UPDATE orders SET total = total * 100"
sb_snapshot --tag after-deploy

# --dry-run: the plan, nothing changed
before=$(tree_digest "$APP")
expect_ok sb rollback --to previous --with-database --dry-run
expect_out_contains "R3 -> R2"
expect_out_contains "from snapshot $PRE_DEPLOY"
expect_out_contains "dry run: nothing was changed"
[[ $(tree_digest "$APP") == "$before" ]] || fail "--dry-run changed the app"
CHECKS=$((CHECKS + 1))

# the rollback: release 2 live, database exactly as in the pre-deploy snapshot
expect_ok sb rollback --to previous --with-database
[[ $(current) == releases/R2 ]] || fail "current is $(current), want releases/R2"
[[ $(sql "SELECT group_concat(total) FROM orders") == "10,20,30" ]] || fail "database not rolled back"
[[ $(sql "SELECT count(*) FROM pragma_table_info('orders') WHERE name='currency'") == 0 ]] ||
    fail "the migration's column is still there"
CHECKS=$((CHECKS + 3))
SAFETY=$(printf '%s\n' "$OUT" | sed -n 's/.*undo with: snapback rollback --to //p')
[[ -n $SAFETY ]] || fail "no safety snapshot named in the output"
expect_ok sb show "$SAFETY" --json
[[ $(json_get "$OUT" 'j["tag"]') == pre-rollback ]] || fail "safety snapshot not tagged"
CHECKS=$((CHECKS + 1))
grep -q '"event":"rollback","outcome":"ok"' "$STATE/journal.jsonl" || fail "journal has no rollback"

# roll forward: release 3 and its migrated database, from the safety snapshot
expect_ok sb rollback --to "$SAFETY" --with-database
[[ $(current) == releases/R3 ]] || fail "roll forward: current is $(current)"
[[ $(sql "SELECT group_concat(total) FROM orders") == "1000,2000,3000" ]] || fail "roll forward: database"
CHECKS=$((CHECKS + 2))

# a release gone from disk is restored from the repository (without the database)
digest_r2=$(tree_digest "$APP/releases/R2")
rm -rf "$APP/releases/R2"
expect_ok sb rollback --to R2 --without-database --no-safety-snapshot
expect_out_contains "restored from the repository first"
[[ $(current) == releases/R2 ]] || fail "current is $(current)"
[[ $(tree_digest "$APP/releases/R2") == "$digest_r2" ]] || fail "restored release differs"
[[ -z $(find "$APP/releases" -maxdepth 1 -name '.*.tmp') ]] || fail "temp release dir left"
CHECKS=$((CHECKS + 3))

# hooks: environment, before_rollback failure aborts, unhealthy rollback reverts
write_config "\"hooks\": { \"before_rollback\": [\"/bin/sh\", \"-c\", \"echo before \$SNAPBACK_EVENT \$SNAPBACK_APP \$SNAPBACK_RELEASE >> $HOOKLOG; test ! -e $WORK/block\"],
             \"after_rollback\": \"echo after \$SNAPBACK_RELEASE >> $HOOKLOG\",
             \"health_check\": \"test \$SNAPBACK_RELEASE != R1 && echo healthy\", \"timeout_s\": 10 },
  \"rollback\": { \"health_timeout_s\": 3, \"auto_revert\": true }"
touch "$WORK/block"
before=$(tree_digest "$APP")
expect_exit 74 sb rollback --to R3 --no-safety-snapshot
expect_err_contains "rollback aborted, nothing was changed"
[[ $(tree_digest "$APP") == "$before" ]] || fail "aborted rollback changed the app"
grep -q "before before_rollback demo R3" "$HOOKLOG" || fail "hook environment: $(cat "$HOOKLOG")"
CHECKS=$((CHECKS + 2))
rm "$WORK/block"
expect_ok sb rollback --to R3 --no-safety-snapshot
grep -q "after R3" "$HOOKLOG" || fail "after_rollback did not run"
expect_err_contains "health check passed"
# R1 is "unhealthy": the rollback is reverted, release and database
db_before=$(sql "SELECT group_concat(total) FROM orders")
ln -sfn releases/R1 "$APP/current" && sb_snapshot && ln -sfn releases/R3 "$APP/current"
expect_exit 69 sb rollback --to R1 --with-database
expect_err_contains "reverted"
[[ $(current) == releases/R3 ]] || fail "not reverted: current is $(current)"
[[ $(sql "SELECT group_concat(total) FROM orders") == "$db_before" ]] || fail "database not reverted"
CHECKS=$((CHECKS + 2))

# errors: nothing before the oldest release; no database snapshot for the target; a
# current that is not a symlink
ln -sfn releases/R1 "$APP/current"
write_config ""
expect_exit 66 sb rollback --to previous
expect_err_contains "no release before 'R1'"
mkdir -p "$APP/releases/R0"
expect_exit 66 sb rollback --to R0 --with-database
expect_err_contains "no snapshot with a database was taken while release 'R0' was current"
[[ $(current) == releases/R1 ]] || fail "a refused rollback changed current"
rm "$APP/current" && mkdir "$APP/current"
expect_exit 78 sb rollback --to previous
expect_err_contains "is not a symlink"
CHECKS=$((CHECKS + 1))

# a hook that hangs is killed with its whole process group at hooks.timeout_s, and the
# rollback is aborted before anything changed
rmdir "$APP/current"
ln -s releases/R1 "$APP/current"
# durations no other process on the machine uses, so pgrep finds only the hook's children
write_config "\"hooks\": { \"before_rollback\": \"sleep 300.0731 & sleep 301.0731; echo never\", \"timeout_s\": 1 }"
before=$(tree_digest "$APP")
expect_exit 74 sb rollback --to R2 --no-safety-snapshot
expect_err_contains "timed out after 1 s and was killed"
[[ $(tree_digest "$APP") == "$before" ]] || fail "a timed-out hook left changes"
# the hook's process group was killed: its members vanish (polled, bounded at 20 s: a loaded
# machine with a slow disk may take a moment to deliver SIGKILL and reap them)
hook_children() { pgrep -f '^sleep 30[01][.]0731$' || true; }
for ((tries = 0; tries < 400; tries++)); do
    [[ -z $(hook_children) ]] && break
    sleep 0.05
done
CHECKS=$((CHECKS + 1))
if [[ -n $(hook_children) ]]; then
    ps -o pid,ppid,pgid,stat,etime,cmd -p "$(hook_children | paste -sd,)" >&2 || true
    fail "the hook's children survived the timeout"
fi
CHECKS=$((CHECKS + 2))

# a rollback while another run holds the app lock exits 75 and changes nothing
write_config ""
flock "$STATE/lock" sleep 5 &
holder=$!
sleep 0.3
expect_exit 75 sb rollback --to R2 --no-safety-snapshot
expect_err_contains "holds the lock"
[[ $(current) == releases/R1 ]] || fail "a locked-out rollback changed current"
CHECKS=$((CHECKS + 1))
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
