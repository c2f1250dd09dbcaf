#!/usr/bin/env bash
# shellcheck disable=SC2034 # LAST_CMD, PG_OPTS, TEST_NAME, PYTHON: read by the sourced harness
# MariaDB features beyond plain tables (issue #3, "data nobody tuned for"), owned, dumped and
# restored by an application user that has privileges on its own databases only (`shop%`.*),
# not on the server, as on a shared host:
#   - a system-versioned table with its history (mariadb-dump --dump-history), a sequence, a partitioned table, stored
#     and virtual generated columns, a FULLTEXT and a SPATIAL index, a foreign key cycle,
#     CHECK constraints, a table named with a reserved word and a space, an Aria table;
#   - a view, a trigger, a procedure and an event defined by that user; the database's
#     COMMENT (quotes, a backslash, a newline, non-ASCII), which a restore sets again;
# snapshot --only db, restore --db-target into a new database, then every table's rows and
# CHECKSUM TABLE, the history rows, the sequence's next value, SHOW CREATE of every table and
# the other objects compared; restore --in-place after changes brings it back;
#   - a table versioned by transaction id, whose history mariadb-dump cannot dump (it refuses
#     the whole dump with --dump-history): the snapshot succeeds without the history and says
#     so; its current rows restore;
#   - a routine and a view the DBA (root) defined: the app user's snapshot fails with 77 and
#     names the grant it needs; with it, the snapshot works, and the app user's restore fails
#     with 77 naming the DEFINER (the half-restored database dropped); root restores it.
source "$(dirname "$0")/../harness/lib.sh"
source "$(dirname "$0")/../harness/pg.sh" # db_server_unavailable, db_install_packages
source "$(dirname "$0")/../harness/mariadb.sh"
sb_setup "$@"
my_setup

REPO=$WORK/repo KEY=$WORK/key STATE=$WORK/state CFG=$WORK/snapback.json
my_sql -e "CREATE USER 'app'@'localhost' IDENTIFIED BY 'app-pw';
           GRANT ALL PRIVILEGES ON \`shop%\`.* TO 'app'@'localhost';
           CREATE DATABASE shop CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
printf 'app-pw\n' >"$WORK/app.password"
chmod 0600 "$WORK/app.password"
db_config "$CFG" "{ \"name\": \"main\", \"engine\": \"mysql\", \"host\": \"$MY_SOCK\", \"dbname\": \"shop\",
                   \"user\": \"app\", \"password_file\": \"$WORK/app.password\" }"
sb_init
app_sql() { mariadb --no-defaults -S "$MY_SOCK" -u app -papp-pw --default-character-set=utf8mb4 -N -B "$@"; }

log "creating the schema as the application user"
app_sql shop <<'SQL'
CREATE TABLE prices (id INT PRIMARY KEY, amount DECIMAL(10, 2) NOT NULL CHECK (amount >= 0))
    WITH SYSTEM VERSIONING;
INSERT INTO prices SELECT seq, seq * 1.5 FROM seq_1_to_200;
UPDATE prices SET amount = amount + 1 WHERE id % 10 = 0;
DELETE FROM prices WHERE id > 190;
CREATE SEQUENCE invoice_no START WITH 1000 INCREMENT BY 5;
DO NEXTVAL(invoice_no), NEXTVAL(invoice_no);
CREATE TABLE events (id INT NOT NULL, at DATE NOT NULL, amount INT, PRIMARY KEY (id, at))
    PARTITION BY RANGE (YEAR(at)) (PARTITION p2025 VALUES LESS THAN (2026),
                                   PARTITION p2026 VALUES LESS THAN (2027),
                                   PARTITION pmax VALUES LESS THAN MAXVALUE);
INSERT INTO events SELECT seq, DATE '2025-06-01' + INTERVAL seq DAY, seq % 97 FROM seq_1_to_1000;
CREATE TABLE people (id INT AUTO_INCREMENT PRIMARY KEY, first VARCHAR(50), last VARCHAR(50),
                     full_name VARCHAR(101) AS (CONCAT(first, ' ', last)) VIRTUAL,
                     name_len INT AS (CHAR_LENGTH(first) + CHAR_LENGTH(last)) STORED,
                     bio TEXT, spot POINT NOT NULL, best_friend INT,
                     FULLTEXT KEY bio_ft (bio), SPATIAL KEY spot_idx (spot)) ENGINE=InnoDB;
CREATE TABLE teams (id INT PRIMARY KEY, name VARCHAR(50), captain INT,
                    FOREIGN KEY (captain) REFERENCES people (id) ON DELETE SET NULL);
ALTER TABLE people ADD COLUMN team INT, ADD FOREIGN KEY (team) REFERENCES teams (id);
INSERT INTO people (first, last, bio, spot)
SELECT CONCAT('Fïrst', seq), CONCAT('Läst 🎉', seq), CONCAT('bio of person ', seq, ' who likes ', IF(seq % 2, 'tea', 'coffee')),
       POINT(seq / 10, seq / 20) FROM seq_1_to_300;
INSERT INTO teams VALUES (1, 'red', 1), (2, 'blue', 2);
UPDATE people SET team = 1 + id % 2 WHERE id <= 100;
CREATE TABLE `select table` (`order` INT, `group` VARCHAR(10)) ENGINE=Aria;
INSERT INTO `select table` VALUES (1, 'a'), (2, NULL);
CREATE VIEW team_sizes AS SELECT t.name, COUNT(p.id) AS n FROM teams t LEFT JOIN people p ON p.team = t.id GROUP BY t.name;
CREATE TRIGGER people_bi BEFORE INSERT ON people FOR EACH ROW SET NEW.bio = COALESCE(NEW.bio, 'new');
CREATE PROCEDURE bump(IN d INT) MODIFIES SQL DATA UPDATE events SET amount = amount + d WHERE id = 1;
CREATE EVENT purge_nothing ON SCHEDULE EVERY 1 DAY STARTS '2026-01-01 00:00:00' DISABLE DO DELETE FROM events WHERE 1 = 0;
SQL

# my_features DB: rows and checksum of every table, the history of the versioned table, the
# sequence, the definitions, with DB's name normalised.
my_features() {
    local db=$1 t
    for t in $(my_query "$db" "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() AND table_type IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY table_name" | tr ' ' '\001'); do
        t=${t//$'\001'/ }
        printf 'table %s rows %s checksum %s\n' "$t" "$(my_query "$db" "SELECT COUNT(*) FROM \`$t\`")" \
            "$(my_query "$db" "CHECKSUM TABLE \`$t\`" | cut -f2)"
        my_query "$db" "SHOW CREATE TABLE \`$t\`" | cut -f2- | sed 's/ AUTO_INCREMENT=[0-9]*//'
    done
    my_query "$db" "SELECT 'history', COUNT(*), SUM(amount) FROM prices FOR SYSTEM_TIME ALL"
    my_query "$db" "SELECT 'history-versions', COUNT(DISTINCT id, amount) FROM prices FOR SYSTEM_TIME ALL"
    my_query "$db" "SHOW CREATE SEQUENCE invoice_no" | cut -f2-
    my_query "$db" "SELECT 'fulltext', COUNT(*) FROM people WHERE MATCH(bio) AGAINST ('coffee')"
    my_query "$db" "SELECT 'spatial', COUNT(*) FROM people WHERE MBRContains(ST_GeomFromText('POLYGON((0 0, 10 0, 10 5, 0 5, 0 0))'), spot)"
    my_query "$db" "SELECT 'generated', SUM(name_len), MD5(GROUP_CONCAT(full_name ORDER BY id)) FROM people"
    my_query "$db" "SELECT table_name, view_definition FROM information_schema.views WHERE table_schema = DATABASE() ORDER BY table_name"
    my_query "$db" "SELECT trigger_name, action_statement, definer FROM information_schema.triggers WHERE trigger_schema = DATABASE() ORDER BY trigger_name"
    my_query "$db" "SELECT routine_name, routine_definition, definer FROM information_schema.routines WHERE routine_schema = DATABASE() ORDER BY routine_name"
    my_query "$db" "SELECT event_name, event_definition, status, definer FROM information_schema.events WHERE event_schema = DATABASE() ORDER BY event_name"
}
features() { my_features "$1" | sed "s/\`$1\`/\`DB\`/g"; }
SOURCE=$(features shop)
SEQ_NEXT=$(my_query shop "SELECT NEXTVAL(invoice_no)") # moves the live sequence: SOURCE has its state before
SOURCE=$(features shop | sed '/^CREATE SEQUENCE/d')
same_db() { # DB WHAT
    local got
    got=$(features "$1" | sed '/^CREATE SEQUENCE/d')
    expect_same "$SOURCE" "$got" "$2: $1 differs from the source (diff source -> $1 above)" 40 200
}

# the database's comment: quotes, a backslash, a newline and non-ASCII, as the app user
app_sql shop -e "ALTER DATABASE shop COMMENT = 'the shop''s data: \"prices\", a \\\\ and\n✓ 日本'"
db_comment() { my_query "$1" "SELECT HEX(SCHEMA_COMMENT) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()"; }
COMMENT_HEX=$(db_comment shop)
check "the source has its comment ($COMMENT_HEX)" test -n "$COMMENT_HEX"

log "snapshot --only db: the versioned table's history is dumped (mariadb-dump --dump-history)"
sb_snapshot --only db
check "no warning about the history" test "${ERR/history/}" = "$ERR"
SNAP1=$SNAP_ID
log "restore --db-target into a new database, as the application user"
expect_ok sb restore "$SNAP1" --only db --db-target main=shop_copy
same_db shop_copy "restore --db-target"
check "the copy has the source's comment, byte for byte" test "$(db_comment shop_copy)" = "$COMMENT_HEX"
# MariaDB keeps a sequence's next value past its cache (CACHE 1000 by default) on disk, and
# that is what a dump records (as after a server restart): the copy never hands out a number
# the source did
check "the copy's sequence does not hand out a number the source had handed out" \
    test "$(my_query shop_copy "SELECT NEXTVAL(invoice_no)")" -gt "$SEQ_NEXT"
check "the copy still refuses a negative price (CHECK constraint)" \
    bash -c "! mariadb --no-defaults -S '$MY_SOCK' -u root -e 'INSERT INTO prices VALUES (999, -1)' shop_copy 2>/dev/null"
check "the trigger works in the copy" \
    test "$(app_sql shop_copy -e "INSERT INTO people (first, last, spot) VALUES ('x', 'y', POINT(0, 0)); SELECT bio FROM people WHERE first = 'x'")" = new

log "restore --in-place after the live database changed"
app_sql shop <<'SQL'
UPDATE prices SET amount = 0 WHERE id = 1;
DELETE FROM events WHERE id <= 10;
ALTER TABLE events DROP PARTITION p2025;
DROP VIEW team_sizes;
UPDATE people SET team = NULL;
DELETE FROM teams;
CREATE TABLE added_later (x INT);
ALTER DATABASE shop COMMENT = 'changed after the snapshot';
SQL
# ... with a server-wide max_statement_time of 1 s (a DBA's guard against the web app's
# runaway queries) while another session holds a metadata lock on a table for 3 s: the
# restore's DROP waits for it, and must not be killed as a runaway query
my_sql -e "SET GLOBAL max_statement_time = 1"
my_sql shop -e "SET SESSION max_statement_time = 0; BEGIN; SELECT count(*) FROM prices; SELECT SLEEP(3); COMMIT" >/dev/null &
LOCKER=$!
sleeping() { test "$(my_query shop "SELECT count(*) FROM information_schema.processlist WHERE info LIKE 'SELECT SLEEP(3)%'")" -gt 0; }
wait_for sleeping
expect_ok_after 500 sb restore "$SNAP1" --only db --in-place
wait "$LOCKER"
my_sql -e "SET GLOBAL max_statement_time = 0"
same_db shop "restore --in-place"
check "the comment is the snapshot's again" test "$(db_comment shop)" = "$COMMENT_HEX"
check "the table made after the snapshot is gone" test -z "$(my_query shop "SHOW TABLES LIKE 'added_later'")"

log "verify --restore-db as a user who may not create its scratch database: 77, says which grant"
expect_exit 77 sb verify "$SNAP1" --restore-db
expect_out_contains 'GRANT ALL ON `snapback\_verify\_%`.* TO the user'
log "verify --restore-db with that grant"
my_sql -e "GRANT ALL PRIVILEGES ON \`snapback\\_verify\\_%\`.* TO 'app'@'localhost'"
expect_ok sb verify "$SNAP1" --restore-db

log "a table versioned by transaction id: no history, a warning, the current rows restore"
app_sql shop <<'SQL'
CREATE TABLE trx_versioned (id INT PRIMARY KEY, v INT,
    rs BIGINT UNSIGNED GENERATED ALWAYS AS ROW START INVISIBLE,
    re BIGINT UNSIGNED GENERATED ALWAYS AS ROW END INVISIBLE,
    PERIOD FOR SYSTEM_TIME (rs, re)) ENGINE=InnoDB WITH SYSTEM VERSIONING;
INSERT INTO trx_versioned VALUES (1, 1), (2, 2);
UPDATE trx_versioned SET v = 3 WHERE id = 1;
SQL
sb_snapshot --only db
expect_err_contains "versioned by transaction id"
expect_err_contains "2 system-versioned table(s)"
expect_ok sb restore "$SNAP_ID" --only db --db-target main=shop_trx
check "the current rows of both versioned tables are restored" \
    test "$(my_query shop_trx "SELECT CONCAT((SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM trx_versioned), ' ', (SELECT SUM(amount) FROM prices))")" = \
    "$(my_query shop "SELECT CONCAT((SELECT GROUP_CONCAT(id, ':', v ORDER BY id) FROM trx_versioned), ' ', (SELECT SUM(amount) FROM prices))")"

log "a routine and a view the DBA (root) defined: the app user can neither dump nor restore them"
my_sql shop -e "CREATE PROCEDURE dba_proc() SELECT 1; CREATE VIEW dba_view AS SELECT 1 AS one"
expect_exit 77 sb snapshot --only db
expect_err_contains "GRANT SELECT ON mysql.proc"
my_sql -e "GRANT SELECT ON mysql.proc TO 'app'@'localhost'"
sb_snapshot --only db
SNAP_DBA=$SNAP_ID
expect_exit 77 sb restore "$SNAP_DBA" --only db --db-target main=shop_dba
expect_err_contains "the dump names another user as the DEFINER"
check "the half-restored database was dropped" test -z "$(my_query mysql "SHOW DATABASES LIKE 'shop\\_dba'")"
log "... restored as root, who may set any DEFINER"
db_config "$WORK/root.json" "{ \"name\": \"main\", \"engine\": \"mysql\", \"host\": \"$MY_SOCK\", \"dbname\": \"shop\", \"user\": \"root\" }"
expect_ok "$SNAPBACK" --config "$WORK/root.json" --no-progress restore "$SNAP_DBA" --only db --db-target main=shop_dba
check "the DBA's routine is in the copy, still the DBA's" \
    test "$(my_query shop_dba "SELECT definer FROM information_schema.routines WHERE routine_schema = DATABASE() AND routine_name = 'dba_proc'")" = root@localhost
