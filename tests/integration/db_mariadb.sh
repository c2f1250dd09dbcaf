#!/usr/bin/env bash
# shellcheck disable=SC2034 # LAST_CMD, PG_OPTS, TEST_NAME, PYTHON: read by the sourced harness
# MariaDB/MySQL databases (issue #3, engine "mysql") against a real MariaDB started by
# tests/harness/mariadb.sh on a unix socket (--skip-networking); snapback connects as root
# through unix-socket auth, and as a user with a password for the password checks:
#   - round trip of InnoDB tables with blobs (every byte value, a MiB), JSON, unicode
#     (4-byte utf8mb4), NULLs, decimals, datetimes, plus a view, a trigger, a procedure, a
#     function and an event: snapshot --only db, restore --db-target into a new database,
#     then CHECKSUM TABLE, row counts, SHOW CREATE TABLE and the definitions of views,
#     triggers, routines and events compared; the trigger and the procedure work in the copy;
#   - restore --target DIR writes DIR/databases/main.sql (a mariadb-dump script);
#   - --db-target into an existing database: 73; --in-place after changes brings it back;
#   - consistency under load: two writers move money between InnoDB accounts in
#     transactions while a snapshot runs (mariadb-dump --single-transaction); the restored
#     total is exactly the invariant and every account agrees with the transfer log;
#   - a user with a password: the right one works, a wrong one is refused with 77 and does
#     not appear in the message; no client in PATH -> 69 naming mariadb-client; server down ->
#     69 naming the socket.
# Checks marked "soft" are reported together at the end, so one bug does not hide another.
source "$(dirname "$0")/../harness/lib.sh"
source "$(dirname "$0")/../harness/pg.sh" # db_server_unavailable, db_install_packages
source "$(dirname "$0")/../harness/mariadb.sh"
source "$(dirname "$0")/../harness/db_load.sh"
sb_setup "$@"
my_setup

REPO=$WORK/repo
KEY=$WORK/key
STATE=$WORK/state
CFG=$WORK/snapback.json


# my_config FILE [USER [PASSWORD_FILE]]
my_config() {
    local file=$1 user=${2:-root} pwfile=${3:-} pwjson=
    [[ -z $pwfile ]] || pwjson=", \"password_file\": \"$pwfile\""
    db_config "$file" "{ \"name\": \"main\", \"engine\": \"mysql\", \"host\": \"$MY_SOCK\", \"dbname\": \"shop\",
                   \"user\": \"$user\"$pwjson }"
}
my_config "$CFG"
sb_init

log "loading the data set"
my_sql <<'SQL'
CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
USE shop;
SET SESSION group_concat_max_len = 8388608;
CREATE TABLE items (
    id       INT AUTO_INCREMENT PRIMARY KEY,
    name     VARCHAR(300) NOT NULL,
    note     MEDIUMTEXT NULL,
    payload  LONGBLOB NULL,
    doc      JSON NULL,
    price    DECIMAL(12,2) NULL,
    qty      BIGINT NULL,
    ratio    DOUBLE NULL,
    created  DATETIME(6) NOT NULL DEFAULT '2026-01-01 00:00:00',
    updated  INT NOT NULL DEFAULT 0,
    KEY items_price (price)
) ENGINE=InnoDB;
CREATE TABLE kv (k VARCHAR(50) PRIMARY KEY, v VARBINARY(100)) ENGINE=InnoDB;
CREATE TABLE acc (id INT PRIMARY KEY, bal BIGINT NOT NULL) ENGINE=InnoDB;
CREATE TABLE xfer (id BIGINT AUTO_INCREMENT PRIMARY KEY, src INT NOT NULL, dst INT NOT NULL) ENGINE=InnoDB;
CREATE TRIGGER items_bump BEFORE UPDATE ON items FOR EACH ROW SET NEW.updated = OLD.updated + 1;
CREATE VIEW expensive AS SELECT id, name, price FROM items WHERE price > 100;
DELIMITER ;;
CREATE PROCEDURE transfer(IN a INT, IN b INT, IN amount INT)
BEGIN
    START TRANSACTION;
    UPDATE acc SET bal = bal - amount WHERE id = a;
    UPDATE acc SET bal = bal + amount WHERE id = b;
    INSERT INTO xfer (src, dst) VALUES (a, b);
    COMMIT;
END;;
CREATE FUNCTION total_balance() RETURNS BIGINT READS SQL DATA
BEGIN
    RETURN (SELECT SUM(bal) FROM acc);
END;;
DELIMITER ;
CREATE EVENT nightly_noop ON SCHEDULE EVERY 1 DAY STARTS '2026-01-01 03:00:00' DISABLE DO DELETE FROM kv WHERE 1 = 0;

INSERT INTO items (name, note, payload, doc, price, qty, ratio) VALUES
  ('all bytes', NULL, (SELECT UNHEX(GROUP_CONCAT(LPAD(HEX(seq), 2, '0') ORDER BY seq SEPARATOR '')) FROM seq_0_to_255),
   '{"b" :  1, "a": [1, 2, 3]}', 1.50, 1, 0.1),
  ('Grüße — 日本語 — עברית — 🎉👩‍💻 — é — ​zwsp', 'ünïcødé', CONVERT('ünïcødé' USING utf8mb4), '{"s": "é🎉", "n": null}', 250.00, NULL, NULL),
  ('nulls', NULL, NULL, NULL, NULL, NULL, NULL),
  ('empty', '', '', '[]', 0, 0, 0),
  ('quotes '' " \\ , ( ) tab	end', 'line1\nline2\r\n', UNHEX('00FF00'), '{"deep": {"deeper": [{"x": [true, false]}]}}', -123456.78, 9223372036854775807, 1e300),
  ('a MiB', REPEAT('long text ', 10000), (SELECT UNHEX(GROUP_CONCAT(MD5(seq) SEPARATOR '')) FROM seq_1_to_65536), NULL, 999.99, 2, 2.5);
INSERT INTO items (name, note, payload, doc, price, qty)
SELECT CONCAT('item ', seq), IF(seq % 5 = 0, NULL, MD5(seq)), UNHEX(MD5(seq)),
       JSON_OBJECT('i', seq, 'sq', seq * seq), (seq % 300) + 0.25, seq
FROM seq_1_to_5000;
UPDATE items SET name = CONCAT(name, ' (edited)') WHERE id % 97 = 0;
INSERT INTO kv VALUES ('bin', UNHEX('000102')), ('null', NULL), ('text', 'plain');
INSERT INTO acc SELECT seq, 1000 FROM seq_1_to_100;
SQL
check "the trigger fired in the source" test "$(my_query shop 'SELECT COUNT(*) FROM items WHERE updated > 0')" -gt 0
check "a 4-byte character survived the load" test "$(my_query shop "SELECT COUNT(*) FROM items WHERE name LIKE '%🎉%'")" = 1

# my_digest DB: checksums, counts, table definitions and the other objects, with DB's name
# replaced so two databases compare.
my_digest() {
    local db=$1 t
    for t in $(my_query "$db" "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE' ORDER BY table_name"); do
        printf 'table %s rows %s checksum %s\n' "$t" "$(my_query "$db" "SELECT COUNT(*) FROM \`$t\`")" \
            "$(my_query "$db" "CHECKSUM TABLE \`$t\`" | cut -f2)"
        my_query "$db" "SHOW CREATE TABLE \`$t\`" | cut -f2-
    done
    # views through SHOW (information_schema.views leaves out, without an error, a view it
    # cannot open at that moment: seen once in a parallel run of the whole suite)
    for t in $(my_query "$db" "SHOW FULL TABLES WHERE Table_type = 'VIEW'" | cut -f1); do
        my_query "$db" "SHOW CREATE VIEW \`$t\`" | cut -f1,2
    done
    my_query "$db" "SELECT trigger_name, event_manipulation, action_timing, action_statement FROM information_schema.triggers WHERE trigger_schema = DATABASE() ORDER BY trigger_name"
    my_query "$db" "SELECT routine_name, routine_type, routine_definition, data_type FROM information_schema.routines WHERE routine_schema = DATABASE() ORDER BY routine_name"
    my_query "$db" "SELECT event_name, event_definition, interval_value, interval_field, status FROM information_schema.events WHERE event_schema = DATABASE() ORDER BY event_name"
}
my_db_collation() { my_query "$1" "SELECT CONCAT(default_character_set_name, ' ', default_collation_name) FROM information_schema.schemata WHERE schema_name = DATABASE()"; }
SOURCE_COLLATION=$(my_db_collation shop)
my_normalised() { my_digest "$1" | sed "s/\`$1\`/\`DB\`/g"; }
SOURCE=$(my_normalised shop)

same_db() { # DB WHAT
    local got
    got=$(my_normalised "$1")
    expect_same "$SOURCE" "$got" "$2: $1 differs from the source (diff source -> $1 above)" 40 200
    soft_check "$2: the database's default character set and collation are the source's ($SOURCE_COLLATION; got $(my_db_collation "$1"))" \
        test "$(my_db_collation "$1")" = "$SOURCE_COLLATION"
}

# --- round trip ---
log "snapshot --only db"
sb_snapshot --only db
SNAP1=$SNAP_ID
expect_ok sb show "$SNAP1" --json
check "show lists database main as mysql" test "$(json_get "$OUT" '[d["engine"] for d in j["databases"]][0]')" = mysql
check "show records the server version" grep -q '10\.11' <<<"$(json_get "$OUT" '[d.get("server_version", "") for d in j["databases"]][0]')"
check "nothing is left in state_dir/tmp (the option file is gone)" test -z "$(ls -A "$STATE/tmp" 2>/dev/null)"

log "restore --db-target main=shop_copy"
expect_ok sb restore "$SNAP1" --only db --db-target main=shop_copy
same_db shop_copy "restore --db-target"
check "the trigger works in the copy" test "$(my_query shop_copy "UPDATE items SET price = price + 1 WHERE id = 1; SELECT updated FROM items WHERE id = 1")" = \
    "$(($(my_query shop "SELECT updated FROM items WHERE id = 1") + 1))"
check "the procedure and the function work in the copy" \
    test "$(my_query shop_copy "CALL transfer(1, 2, 5); SELECT CONCAT(total_balance(), '/', (SELECT bal FROM acc WHERE id = 2))")" = 100000/1005

restore_into_existing_refused "$SNAP1" shop_copy my_normalised

log "restore --target DIR: the dump as a file"
expect_ok sb restore "$SNAP1" --only db --target "$WORK/files"
DUMP=$WORK/files/databases/main.sql
check "DIR/databases/main.sql exists" test -s "$DUMP"
check "it is a mariadb-dump script with the table" grep -q 'CREATE TABLE `items`' "$DUMP"
check "it has the procedure" grep -q 'CREATE.*PROCEDURE `transfer`' "$DUMP"
my_sql -e 'CREATE DATABASE shop_file CHARACTER SET utf8mb4 COLLATE utf8mb4_bin'
my_sql shop_file <"$DUMP" || fail "loading DIR/databases/main.sql with the mariadb client failed"
same_db shop_file "the restored file loaded by the mariadb client"

log "change the live database, then restore --in-place"
my_sql shop <<'SQL'
DELETE FROM items WHERE id % 3 = 0;
UPDATE acc SET bal = 0 WHERE id = 1;
DROP VIEW expensive;
DROP PROCEDURE transfer;
ALTER TABLE items ADD COLUMN junk INT DEFAULT 42;
-- what a migration after the snapshot created: in place, the result is exactly the snapshot
CREATE TABLE migration_new (id INT PRIMARY KEY, item_id INT, FOREIGN KEY (item_id) REFERENCES items (id));
CREATE VIEW migration_view AS SELECT id FROM items;
CREATE FUNCTION migration_fn () RETURNS INT DETERMINISTIC RETURN 7;
SQL
expect_ok sb restore "$SNAP1" --only db --in-place
same_db shop "restore --in-place"
check "the migration's table, view and function are gone" test "$(my_query shop "SELECT (SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name LIKE 'migration%') + (SELECT count(*) FROM information_schema.routines WHERE routine_schema = DATABASE() AND routine_name = 'migration_fn')")" = 0

# --- consistency under load ---
log "consistency: two writers move money between InnoDB accounts while a snapshot runs"
write_transfers "$WORK/transfers.sql" 11 "START TRANSACTION" "; "
apply_transfers() { my_sql shop <"$WORK/transfers.sql"; }
snapshot_under_load my_query apply_transfers "SELECT CONCAT(SUM(bal), '/', COUNT(*)) FROM acc"

# --- passwords ---
log "a dump damaged near its end: 65, and the half-restored database is dropped"
cp -a "$REPO/demo/data/$SNAP1/db-main.snpb" "$WORK/db-main.snpb.orig"
flip_byte "$REPO/demo/data/$SNAP1/db-main.snpb" $(($(file_size "$REPO/demo/data/$SNAP1/db-main.snpb") - 100))
expect_exit 65 sb restore "$SNAP1" --only db --db-target main=shop_damaged
expect_err_contains "dropped the partly restored database 'shop_damaged'"
check "the half-restored database is gone" test -z "$(my_query mysql "SHOW DATABASES LIKE 'shop_damaged'")"
cp -a "$WORK/db-main.snpb.orig" "$REPO/demo/data/$SNAP1/db-main.snpb"

log "a user with a password"
my_sql -e "CREATE USER 'shop'@'localhost' IDENTIFIED BY 'right-pw'; GRANT ALL PRIVILEGES ON *.* TO 'shop'@'localhost'"
printf 'right-pw\n' >"$WORK/right.password"
chmod 0600 "$WORK/right.password"
my_config "$WORK/pw.json" shop "$WORK/right.password"
expect_ok "$SNAPBACK" --config "$WORK/pw.json" --no-progress snapshot --only db
expect_ok "$SNAPBACK" --config "$WORK/pw.json" --no-progress restore latest --only db --db-target main=shop_pw
check "the restore as the password user has the data" test "$(my_query shop_pw "SELECT SUM(bal) FROM acc")" = 100000

log "wrong password -> 77"
printf 'not-the-pw\n' >"$WORK/wrong.password"
chmod 0600 "$WORK/wrong.password"
my_config "$WORK/wrongpw.json" shop "$WORK/wrong.password"
N_MANIFESTS=$(manifest_count)
expect_exit 77 "$SNAPBACK" --config "$WORK/wrongpw.json" --no-progress snapshot --only db
expect_err_contains "Access denied"
check "the password is not in the message" bash -c "! grep -qF 'not-the-pw' '$WORK/.err'"
check "no manifest was written" test "$(manifest_count)" = "$N_MANIFESTS"
check "nothing is left in state_dir/tmp (the option file is gone)" test -z "$(ls -A "$STATE/tmp" 2>/dev/null)"

log "a password with quotes, backslashes, '#' and spaces"
HARD='p"w\d #x'"'"'y z'
my_sql -e "ALTER USER 'shop'@'localhost' IDENTIFIED BY '$(sed "s/\\\\/\\\\\\\\/g; s/'/\\\\'/g" <<<"$HARD")'"
mariadb --no-defaults -S "$MY_SOCK" -u shop -p"$HARD" -N -B -e 'SELECT 1' >/dev/null 2>&1 ||
    fail "the harness could not set the password (the mariadb client refuses it)"
printf '%s\n' "$HARD" >"$WORK/hard.password"
chmod 0600 "$WORK/hard.password"
my_config "$WORK/hard.json" shop "$WORK/hard.password"
run "$SNAPBACK" --config "$WORK/hard.json" --no-progress snapshot --only db
soft_check "a password with quotes/backslashes/#/spaces is passed intact (exit $RC: $(tail -n 1 <<<"$ERR"))" test "$RC" = 0

log "no such database -> 66"
sed 's/"dbname": "shop"/"dbname": "nosuchdb"/' "$CFG" >"$WORK/nodb.json"
expect_exit 66 "$SNAPBACK" --config "$WORK/nodb.json" --no-progress snapshot --only db
expect_err_contains "nosuchdb"

# --- unavailable ---
log "no mariadb client in PATH -> 69"
expect_exit 69 env PATH=/nonexistent "$SNAPBACK" --config "$CFG" --no-progress snapshot --only db
expect_err_contains "mariadb-client"

log "server down -> 69"
my_stop
N_MANIFESTS=$(manifest_count)
expect_exit 69 sb snapshot --only db
expect_err_contains "$MY_SOCK"
check "no manifest was written" test "$(manifest_count)" = "$N_MANIFESTS"
check "nothing is left in state_dir/tmp" test -z "$(ls -A "$STATE/tmp" 2>/dev/null)"
expect_exit 69 sb restore "$SNAP1" --only db --db-target main=shop_down

soft_report
