#!/usr/bin/env bash
# shellcheck disable=SC2034 # PG_OPTS: read by the sourced harness
# Rollback with a PostgreSQL database (DESIGN §7, issue #5), against a real PostgreSQL 15
# (tests/harness/pg.sh), snapback connecting as an application role with a SCRAM password.
# A Capistrano layout (releases/R1..R3, current, shared/) whose database is migrated by the
# deploy of R3 (a column added, rows changed, a row added, the sequence moved on):
#   - --dry-run changes nothing: tree digest, database checksums and schema, and the
#     repository's file list identical before and after;
#   - rollback --to previous --with-database: R2 live, the database exactly as in the
#     pre-deploy snapshot (pg_dump-based per-table checksums, sequences and schema);
#   - rollback --to R3 --with-database rolls forward: R3 and the migrated database back (from
#     the safety snapshot the first rollback took);
#   - a failing health check reverts: R3 live again and the database as it was just before
#     the rollback (the migration and a later change included), exit 69;
#   - no snapshot with a database for the target release: exit 66, nothing changed.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/pg.sh
source "$(dirname "$0")/../harness/pg.sh"
# shellcheck source=tests/harness/rollback.sh
source "$HARNESS_DIR/rollback.sh"
sb_setup "$@"
need pg_dump pg_restore psql

PG_OPTS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
pg_setup

PASSWORD='rollback pw'
pg_app_database shop "$PASSWORD"
shop_psql() { PGPASSWORD=$PASSWORD psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U shop -d shop "$@"; }

rollback_layout

write_config() { # $1: extra JSON members (hooks, rollback)
    rollback_config "{ \"name\": \"main\", \"engine\": \"postgresql\", \"host\": \"$PG_SOCK\", \"port\": $PG_PORT,
                   \"dbname\": \"shop\", \"user\": \"shop\", \"password_file\": \"$PWFILE\" }" "${1:-}"
}
db_state() { pg_dump_checksums shop && pg_schema shop; }
repo_files() { (cd "$REPO" && find . | LC_ALL=C sort); }

# same_db WANT WHAT: the live database's checksums and schema equal WANT (a db_state output).
same_db() {
    local got
    got=$(db_state)
    expect_same "$1" "$got" "$2: the database differs from what it should be (diff want -> live above)" 40
}

write_config ""
sb_init

# --- release R2 is live with its data; the pre-deploy snapshot ---
ln -sfn "releases/$R2" "$APP/current"
shop_psql <<'SQL'
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL);
CREATE TABLE orders (id serial PRIMARY KEY, customer integer REFERENCES customers, total integer NOT NULL);
CREATE TABLE schema_migrations (version text PRIMARY KEY);
INSERT INTO customers (name) SELECT 'customer ' || i FROM generate_series(1, 50) i;
INSERT INTO orders (customer, total) SELECT 1 + i % 50, i * 10 FROM generate_series(1, 500) i;
INSERT INTO schema_migrations VALUES ('20261121000000');
SQL
DB_R2=$(db_state)
sb_snapshot --tag pre-deploy
PRE_DEPLOY=$SNAP_ID

# --- deploy R3: switch current, run its migration ---
ln -sfn "releases/$R3" "$APP/current"
shop_psql <<'SQL'
ALTER TABLE orders ADD COLUMN currency text NOT NULL DEFAULT 'EUR';
CREATE INDEX orders_currency ON orders (currency);
UPDATE orders SET total = total * 100, currency = 'USD' WHERE id % 3 = 0;
INSERT INTO orders (customer, total, currency) VALUES (1, 99, 'GBP');
UPDATE customers SET name = upper(name) WHERE id < 5;
INSERT INTO schema_migrations VALUES ('20261122000000');
-- objects the pre-deploy snapshot does not have: a table with a foreign key to an existing
-- one, a view over an existing table, a schema (pg_restore --clean alone would leave them,
-- and the view and the key would even make its DROP of orders fail)
CREATE TABLE payments (id serial PRIMARY KEY, order_id integer REFERENCES orders, amount integer);
INSERT INTO payments (order_id, amount) SELECT id, total FROM orders WHERE id % 2 = 0;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 1000;
CREATE SCHEMA reporting;
CREATE TABLE reporting.daily (day date, total bigint);
SQL
DB_R3=$(db_state)
check "the migration changed the database" test "$DB_R3" != "$DB_R2"

# --- --dry-run: the plan, nothing changed ---
log "rollback --dry-run"
tree_before=$(tree_digest "$APP")
repo_before=$(repo_files)
journal_before=$(cat "$STATE/journal.jsonl")
expect_ok sb rollback --to previous --with-database --dry-run
expect_out_contains "$R3 -> $R2"
expect_out_contains "restored in place from snapshot $PRE_DEPLOY"
expect_out_contains "dry run: nothing was changed"
check "--dry-run: the app tree is unchanged" test "$(tree_digest "$APP")" = "$tree_before"
same_db "$DB_R3" "--dry-run"
check "--dry-run: the repository's file list is unchanged" test "$(repo_files)" = "$repo_before"
check "--dry-run: nothing was journaled" test "$(cat "$STATE/journal.jsonl")" = "$journal_before"

# --- the rollback: R2 live, the database exactly as in the pre-deploy snapshot ---
log "rollback --to previous --with-database"
expect_ok sb rollback --to previous --with-database
check "current -> releases/$R2" test "$(current)" = "releases/$R2"
same_db "$DB_R2" "rollback --to previous --with-database"
check "the migration's column is gone" test "$(pg_query shop "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'currency'")" = 0
check "the migration's table, view and schema are gone" test "$(pg_query shop "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname IN ('payments', 'big_orders', 'daily') OR n.nspname = 'reporting'")$(pg_query shop "SELECT count(*) FROM pg_namespace WHERE nspname = 'reporting'")" = 00
SAFETY=$(printf '%s\n' "$OUT" | sed -n 's/.*undo with: snapback rollback --to //p')
check "a safety snapshot is named in the output" test -n "$SAFETY"
expect_ok sb show "$SAFETY" --json
check "the safety snapshot is tagged pre-rollback" test "$(json_get "$OUT" 'j["tag"]')" = pre-rollback
check "the safety snapshot has release $R3" test "$(json_get "$OUT" 'j["release"]["name"]')" = "$R3"
check "the safety snapshot has the database" test "$(json_get "$OUT" 'len(j["databases"])')" = 1
check "the journal has the rollback" grep -q "\"event\":\"rollback\",\"outcome\":\"ok\".*$R3 -> $R2 with database" "$STATE/journal.jsonl"
check "the app can write again (sequence and constraints intact)" \
    test "$(pg_query shop "INSERT INTO orders (customer, total) VALUES (2, 1) RETURNING id")" = 501
pg_query shop "DELETE FROM orders WHERE id = 501" >/dev/null
pg_query shop "SELECT setval('orders_id_seq', 500)" >/dev/null
same_db "$DB_R2" "after the write probe"

# --- roll forward: R3 and its migrated database ---
log "rollback --to $R3 --with-database (roll forward)"
expect_ok sb rollback --to "$R3" --with-database
expect_out_contains "restored in place from snapshot $SAFETY"
check "roll forward: current -> releases/$R3" test "$(current)" = "releases/$R3"
same_db "$DB_R3" "roll forward"

# --- an unhealthy rollback is reverted: release and database as just before it ---
log "health check failing -> auto-revert"
shop_psql -c "INSERT INTO orders (customer, total, currency) VALUES (7, 7777, 'CHF')"
DB_BEFORE=$(db_state)
write_config "\"hooks\": { \"after_rollback\": \"echo after \$SNAPBACK_RELEASE >> $HOOKLOG\",
             \"health_check\": \"echo health \$SNAPBACK_RELEASE >> $HOOKLOG; test \$SNAPBACK_RELEASE != $R2\",
             \"timeout_s\": 10 },
  \"rollback\": { \"health_timeout_s\": 1, \"auto_revert\": true }"
expect_exit 69 sb rollback --to previous --with-database
expect_err_contains "reverted"
expect_err_contains "health check"
check "reverted: current -> releases/$R3" test "$(current)" = "releases/$R3"
same_db "$DB_BEFORE" "auto-revert"
check "the health check ran against $R2" grep -q "health $R2" "$HOOKLOG"
check "after_rollback ran again for the reverted release" grep -q "after $R3" "$HOOKLOG"
check "the journal records the reverted rollback" \
    grep -q '"event":"rollback","outcome":"failed".*reverted' "$STATE/journal.jsonl"

# --- no snapshot with a database for the target: 66, nothing changed ---
log "no snapshot of $R1 with a database -> 66"
write_config ""
tree_before=$(tree_digest "$APP")
repo_before=$(repo_files)
expect_exit 66 sb rollback --to "$R1" --with-database
expect_err_contains "no snapshot with a database was taken while release '$R1' was current"
expect_err_contains "nothing was changed"
check "66: the app tree is unchanged" test "$(tree_digest "$APP")" = "$tree_before"
same_db "$DB_BEFORE" "66"
check "66: the repository's file list is unchanged" test "$(repo_files)" = "$repo_before"

# --- an in-place restore cut short by a damaged object: the live database as it was ---
# The drops of what the snapshot lacks and pg_restore's SQL run in one transaction that psql
# commits only when snapback says so (after the whole object passed): a chunk that fails
# authentication at the end of the object leaves the live database exactly as it was, its
# newer tables included.
log "restore --in-place of a damaged object -> 65, the live database unchanged"
# some MiB of little-compressible rows, so the object has several chunks and the damaged last
# one is read after psql has run the drops and part of the restore
shop_psql <<'SQL'
CREATE TABLE filler (v text);
INSERT INTO filler SELECT md5(random()::text) || md5(random()::text) FROM generate_series(1, 150000);
SQL
expect_ok sb snapshot --only db --tag big
BIG=$(printf '%s\n' "$OUT" | tail -n 1)
shop_psql <<'SQL'
CREATE TABLE after_everything (id int);
INSERT INTO after_everything VALUES (1), (2);
DELETE FROM filler WHERE v < '8';
SQL
DB_LIVE=$(db_state)
OBJ=$REPO/demo/data/$BIG/db-main.snpb
[[ -f $OBJ ]] || fail "no database object $OBJ"
check "the object spans several chunks ($(file_size "$OBJ") bytes)" test "$(file_size "$OBJ")" -gt $((3 << 20))
cp "$OBJ" "$WORK/db-object.good"
flip_byte "$OBJ" -40
expect_exit 65 sb restore "$BIG" --only db --in-place
expect_err_contains "rolled back"
same_db "$DB_LIVE" "a failed in-place restore"
check "the newer table is still there" test "$(pg_query shop 'SELECT count(*) FROM after_everything')" = 2
cp "$WORK/db-object.good" "$OBJ"
