#!/usr/bin/env bash
# shellcheck disable=SC2034 # LAST_CMD, PG_OPTS, TEST_NAME, PYTHON: read by the sourced harness
# PostgreSQL databases (issue #3) against a real PostgreSQL 15 started by tests/harness/pg.sh
# on a unix socket, with snapback connecting as a role with a SCRAM password (password_file,
# so through PGPASSFILE):
#   - round trip of a data set with pgbench tables (scale 2 here to keep CI time low; the
#     benchmark tests/bench/db.sh uses 50), bytea (every byte value, a TOASTed MiB), json and
#     jsonb, unicode text, NULLs, an enum, arrays, a sequence, a view, a trigger and
#     functions: snapshot --only db, restore --db-target into a new database, then row counts,
#     per-table md5 checksums, sequence values and the schema dump (pg_dump -s) compared; the
#     trigger and the functions work in the copy;
#   - restore --target DIR writes DIR/databases/main.pgdump, a valid custom dump (pg_restore -l,
#     and restored by pg_restore it equals the source);
#   - --db-target into an existing database: 73, nothing changed;
#   - --in-place after the live database was changed brings it back;
#   - consistency under load: writers move money between accounts in transactions while a
#     snapshot runs; the restored total is exactly the invariant and every account agrees
#     with the transfer log;
#   - failures: password_file 0644 -> 77; wrong password -> 77; unknown role -> 77; no
#     psql/pg_dump in PATH -> 69 naming postgresql-client; pg_dump killed mid-dump ->
#     non-zero, no manifest, no zombie or orphan, nothing left in state_dir/tmp; server down
#     -> 69 naming the socket; `config check` reports the same three (77, 69, 69).
source "$(dirname "$0")/../harness/lib.sh"
source "$(dirname "$0")/../harness/pg.sh"
source "$(dirname "$0")/../harness/db_load.sh"
sb_setup "$@"
need pgbench pg_dump pg_restore psql

# The tests are about snapback, not the disk: no fsync in the throwaway cluster.
PG_OPTS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
pg_setup

PASSWORD='s3cr:et\pw with spaces'
pg_app_database shop "$PASSWORD"


REPO=$WORK/repo
KEY=$WORK/key
STATE=$WORK/state
CFG=$WORK/snapback.json

# pg_config FILE [USER [PASSWORD_FILE [DBNAME]]]: a config with one PostgreSQL database and
# no release.
pg_config() {
    local file=$1 user=${2:-shop} pwfile=${3-$PWFILE} dbname=${4:-shop} pwjson=
    [[ -z $pwfile ]] || pwjson=", \"password_file\": \"$pwfile\""
    db_config "$file" "{ \"name\": \"main\", \"engine\": \"postgresql\", \"host\": \"$PG_SOCK\", \"port\": $PG_PORT,
                   \"dbname\": \"$dbname\", \"user\": \"$user\"$pwjson }"
}
pg_config "$CFG"
sb_init

# --- the data set ---
log "loading pgbench -i -s 2 and the fixture tables"
PGPASSWORD=$PASSWORD pgbench -i -s 2 -q -h "$PG_SOCK" -p "$PG_PORT" -U shop shop >"$WORK/pgbench.out" 2>&1 ||
    fail "pgbench -i failed: $(tail -n 5 "$WORK/pgbench.out")"
pg_app_psql shop <<'SQL'
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE SEQUENCE invoice_no START 1000 INCREMENT 7;
CREATE TABLE items (
    id            serial PRIMARY KEY,
    name          text NOT NULL,
    note          text,
    payload       bytea,
    doc           json,
    docb          jsonb,
    price         numeric(12,2),
    tags          text[],
    feeling       mood,
    created       timestamptz NOT NULL DEFAULT '2026-01-01 00:00:00+00',
    invoice       bigint NOT NULL DEFAULT nextval('invoice_no'),
    updated_count integer NOT NULL DEFAULT 0
);
COMMENT ON TABLE items IS 'fixture: every kind of value';
CREATE FUNCTION bump_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_count := OLD.updated_count + 1;
    RETURN NEW;
END $$;
CREATE TRIGGER items_bump BEFORE UPDATE ON items FOR EACH ROW EXECUTE FUNCTION bump_updated();
CREATE FUNCTION tag_total(p_tag text) RETURNS numeric LANGUAGE sql STABLE AS
    $$ SELECT coalesce(sum(price), 0) FROM items WHERE p_tag = ANY (tags) $$;
CREATE VIEW expensive AS SELECT id, name, price FROM items WHERE price > 100;
CREATE INDEX items_docb ON items USING gin (docb);

-- every byte value, unicode of several scripts, NULLs, json kept verbatim (whitespace, key
-- order, duplicate keys), jsonb normalised
INSERT INTO items (name, note, payload, doc, docb, price, tags, feeling) VALUES
  ('all bytes', NULL, (SELECT decode(string_agg(lpad(to_hex(i), 2, '0'), ''), 'hex') FROM generate_series(0, 255) i),
   '{"b" :  1, "a":[1, 2 ,3], "b": 2}', '{"b": 1, "a": [1, 2, 3]}', 1.5, ARRAY['x', 'y'], 'ok'),
  ('Grüße — 日本語 — עברית — emoji 🎉👩‍💻 — e' || chr(769) || ' — ' || chr(8203) || 'zwsp', 'ünïcødé note',
   convert_to('ünïcødé', 'UTF8'), '{"s": "\u00e9\ud83c\udf89"}', '{"s": "é🎉", "n": null}', 250.00,
   ARRAY['ü', NULL, 'z'], 'happy'),
  ('nulls', NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('empty', '', '\x', '""', '[]', 0, '{}', 'sad'),
  ('quotes '' " \ , ( ) tab	end', E'line1\nline2\r\n', '\x00ff00', 'null', '{"deep": {"deeper": [{"x": [true, false]}]}}',
   -123456.78, ARRAY['a,b', 'c"d', 'e\f'], NULL),
  ('toasted', repeat('long text ', 20000), (SELECT decode(string_agg(md5(i::text), ''), 'hex') FROM generate_series(1, 65536) i),
   NULL, NULL, 999.99, ARRAY['big'], 'ok');
INSERT INTO items (name, note, payload, docb, price, tags)
SELECT 'item ' || i, CASE WHEN i % 5 = 0 THEN NULL ELSE md5(i::text) END, decode(md5(i::text), 'hex'),
       jsonb_build_object('i', i, 'sq', i * i, 'odd', i % 2 = 1), (i % 300) + 0.25, ARRAY['t' || (i % 10)]
FROM generate_series(1, 5000) i;
UPDATE items SET name = name || ' (edited)' WHERE id % 97 = 0;
SELECT nextval('invoice_no') FROM generate_series(1, 3) \g /dev/null

-- the accounts of the consistency test: 100 accounts of 1000, transfers logged
CREATE TABLE acc (id integer PRIMARY KEY, bal bigint NOT NULL);
CREATE TABLE xfer (id bigserial PRIMARY KEY, src integer NOT NULL, dst integer NOT NULL);
INSERT INTO acc SELECT i, 1000 FROM generate_series(1, 100) i;
ANALYZE items;
ANALYZE acc;
SQL
[[ $(pg_query shop "SELECT count(*) FROM items WHERE updated_count > 0") -gt 0 ]] || fail "the fixture trigger did not fire"

SOURCE_SUMS=$(pg_dump_checksums shop)
SOURCE_SCHEMA=$(pg_schema shop)
printf '%s\n' "$SOURCE_SUMS" >"$WORK/source.sums"
log "source: $(grep -c . <<<"$SOURCE_SUMS") tables and sequences; pgbench_accounts: $(grep '^pgbench_accounts ' <<<"$SOURCE_SUMS")"

# same_db DB WHAT: DB has the data and schema of the source taken above.
same_db() {
    local db=$1 what=$2 sums schema
    sums=$(pg_dump_checksums "$db")
    expect_same "$SOURCE_SUMS" "$sums" "$what: row counts / checksums differ from the source (diff source -> $db above)"
    schema=$(pg_schema "$db")
    expect_same "$SOURCE_SCHEMA" "$schema" "$what: pg_dump -s differs from the source (diff source -> $db above)" 40
}

# --- round trip ---
log "snapshot --only db"
sb_snapshot --only db
SNAP1=$SNAP_ID
expect_ok sb show "$SNAP1" --json
check "show lists database main as postgresql" \
    test "$(json_get "$OUT" '[d["engine"] for d in j["databases"] if d["name"] == "main"][0]')" = postgresql
check "show records the server version 15.x" \
    grep -q '^15\.' <<<"$(json_get "$OUT" '[d.get("server_version", "") for d in j["databases"]][0]')"
check "the dump object is in the repository" test -f "$REPO/demo/data/$SNAP1/db-main.snpb"
check "the stored dump is not the plaintext (no pgbench table name in it)" \
    bash -c "! grep -q pgbench_accounts '$REPO/demo/data/$SNAP1/db-main.snpb'"

log "restore --db-target main=shop_copy"
expect_ok sb restore "$SNAP1" --only db --db-target main=shop_copy
same_db shop_copy "restore --db-target"
check "the trigger works in the copy" test "$(pg_query shop_copy "UPDATE items SET price = price WHERE id = 1 RETURNING updated_count")" = \
    "$(($(pg_query shop "SELECT updated_count FROM items WHERE id = 1") + 1))"
check "the function works in the copy" test "$(pg_query shop_copy "SELECT tag_total('t3')")" = "$(pg_query shop "SELECT tag_total('t3')")"
check "the view works in the copy" test "$(pg_query shop_copy "SELECT count(*) || md5(string_agg(e::text, ',' ORDER BY e.id)) FROM expensive e")" = \
    "$(pg_query shop "SELECT count(*) || md5(string_agg(e::text, ',' ORDER BY e.id)) FROM expensive e")"
check "the sequence goes on where it was" test "$(pg_query shop_copy "SELECT nextval('invoice_no')")" = "$(pg_query shop "SELECT last_value + 7 FROM invoice_no")"
check "the copy is owned by the configured role" test "$(pg_query shop_copy "SELECT tableowner FROM pg_tables WHERE tablename = 'items'")" = shop

restore_into_existing_refused "$SNAP1" shop_copy pg_dump_checksums

log "restore --target DIR: the dump as a file"
expect_ok sb restore "$SNAP1" --only db --target "$WORK/files"
DUMP=$WORK/files/databases/main.pgdump
check "DIR/databases/main.pgdump exists" test -s "$DUMP"
run pg_restore -l "$DUMP"
check "pg_restore -l reads it" test "$RC" = 0
check "its TOC has the pgbench data" grep -q 'TABLE DATA public pgbench_accounts' <<<"$OUT"
check "its TOC has the trigger" grep -q 'TRIGGER public items items_bump' <<<"$OUT"
check "its TOC has the view" grep -q 'VIEW public expensive' <<<"$OUT"
pg_psql postgres -c 'CREATE DATABASE shop_file OWNER shop'
PGPASSWORD=$PASSWORD pg_restore --exit-on-error --no-owner -h "$PG_SOCK" -p "$PG_PORT" -U shop -d shop_file "$DUMP" ||
    fail "pg_restore of DIR/databases/main.pgdump failed"
same_db shop_file "pg_restore of the restored file"

# --- in place ---
log "change the live database, then restore --in-place"
pg_app_psql shop <<'SQL'
UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid % 7 = 0;
DELETE FROM items WHERE id % 3 = 0;
DROP VIEW expensive;
ALTER TABLE items ADD COLUMN junk integer DEFAULT 42;
TRUNCATE pgbench_history;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 5, now());
UPDATE acc SET bal = 0 WHERE id = 1;
SELECT setval('invoice_no', 99999) \g /dev/null
SQL
check "the live database changed" test "$(pg_dump_checksums shop)" != "$SOURCE_SUMS"
expect_ok sb restore "$SNAP1" --only db --in-place
same_db shop "restore --in-place"

# --- consistency under load ---
log "consistency: two writers move money between accounts while a snapshot runs"
write_transfers "$WORK/transfers.sql" 7 "BEGIN" $';\n'
apply_transfers() { pg_app_psql shop -f "$WORK/transfers.sql"; }
snapshot_under_load pg_query apply_transfers "SELECT sum(bal) || '/' || count(*) FROM acc"

# --- a dump that does not apply to the server ---
log "GRANTs to a role the restoring server lacks: verify passes, restore names the role and drops its half"
pg_psql postgres -c 'CREATE ROLE report_reader'
pg_psql shop -c 'GRANT SELECT ON items TO report_reader'
sb_snapshot --only db
SNAP_GRANT=$SNAP_ID
pg_psql shop -c 'REVOKE ALL ON items FROM report_reader'
pg_psql postgres -c 'DROP ROLE report_reader' # as on a CI server that never had it
expect_ok sb verify "$SNAP_GRANT" --restore-db
expect_exit 74 sb restore "$SNAP_GRANT" --only db --db-target main=shop_grant
expect_err_contains "the dump refers to a role this server does not have"
expect_err_contains 'role "report_reader" does not exist'
expect_err_contains "dropped the partly restored database 'shop_grant'"
check "the half-restored database is gone" test -z "$(pg_query postgres "SELECT 1 FROM pg_database WHERE datname = 'shop_grant'")"
pg_psql postgres -c 'CREATE ROLE report_reader'
expect_ok sb restore "$SNAP_GRANT" --only db --db-target main=shop_grant
check "with the role back, the GRANT is restored" \
    test "$(pg_query shop_grant "SELECT has_table_privilege('report_reader', 'items', 'SELECT')")" = t
pg_psql postgres -c 'DROP DATABASE shop_grant'
pg_psql shop -c 'REVOKE ALL ON items FROM report_reader'
pg_psql postgres -c 'DROP ROLE report_reader'

log "a dump damaged past its first MiB: 65, and the half-restored database is dropped"
cp -a "$REPO/demo/data/$SNAP1/db-main.snpb" "$WORK/db-main.snpb.orig"
flip_byte "$REPO/demo/data/$SNAP1/db-main.snpb" $(($(file_size "$REPO/demo/data/$SNAP1/db-main.snpb") - 100))
expect_exit 65 sb restore "$SNAP1" --only db --db-target main=shop_damaged
expect_err_contains "dropped the partly restored database 'shop_damaged'"
check "the half-restored database is gone" test -z "$(pg_query postgres "SELECT 1 FROM pg_database WHERE datname = 'shop_damaged'")"
cp -a "$WORK/db-main.snpb.orig" "$REPO/demo/data/$SNAP1/db-main.snpb"

# --- failures ---
log "password_file mode 0644 -> 77"
chmod 0644 "$PWFILE"
expect_exit 77 sb snapshot --only db
expect_err_contains "$PWFILE"
chmod 0600 "$PWFILE"
N_MANIFESTS=$(manifest_count)

log "wrong password -> 77"
printf 'not the password\n' >"$WORK/wrong.password"
chmod 0600 "$WORK/wrong.password"
pg_config "$WORK/wrongpw.json" shop "$WORK/wrong.password"
expect_exit 77 "$SNAPBACK" --config "$WORK/wrongpw.json" --no-progress snapshot --only db
expect_err_contains "password authentication failed"
check "the password is not in the message" bash -c "! grep -qF 'not the password' '$WORK/.err'"
expect_exit 77 "$SNAPBACK" --config "$WORK/wrongpw.json" --no-progress config check
expect_err_contains "password authentication failed"

log "no such role -> 77"
pg_config "$WORK/norole.json" nosuchrole "$WORK/wrong.password"
expect_exit 77 "$SNAPBACK" --config "$WORK/norole.json" --no-progress snapshot --only db
expect_err_contains "nosuchrole"

log "no such database -> 66"
pg_config "$WORK/nodb.json" shop "$PWFILE" nosuchdb
expect_exit 66 "$SNAPBACK" --config "$WORK/nodb.json" --no-progress snapshot --only db
expect_err_contains "nosuchdb"

log "psql / pg_dump not in PATH -> 69"
expect_exit 69 env PATH=/nonexistent "$SNAPBACK" --config "$CFG" --no-progress snapshot --only db
expect_err_contains "postgresql-client"
mkdir -p "$WORK/bin-no-pg_dump"
ln -s "$(command -v psql)" "$WORK/bin-no-pg_dump/psql"
expect_exit 69 env PATH="$WORK/bin-no-pg_dump" "$SNAPBACK" --config "$CFG" --no-progress snapshot --only db
expect_err_contains "pg_dump"
expect_err_contains "postgresql-client"
expect_exit 69 env PATH="$WORK/bin-no-pg_dump" "$SNAPBACK" --config "$CFG" --no-progress config check
expect_err_contains "pg_dump"

log "a pg_dump older than the server (the server upgraded, the client not) -> 69, caught up front"
# A wrapper that says it is pg_dump 14 (as Debian 11's does) and runs the real one otherwise.
mkdir -p "$WORK/bin-old-pg_dump"
cat >"$WORK/bin-old-pg_dump/pg_dump" <<SH
#!/bin/sh
[ "\$1" = --version ] && { echo 'pg_dump (PostgreSQL) 14.13 (Debian 14.13-1.pgdg110+1)'; exit 0; }
exec "$(command -v pg_dump)" "\$@"
SH
chmod +x "$WORK/bin-old-pg_dump/pg_dump"
server_major=$(pg_psql postgres -Atc 'SHOW server_version' | cut -d. -f1)
for cmd in "snapshot --only db" "config check"; do
    # shellcheck disable=SC2086
    expect_exit 69 env PATH="$WORK/bin-old-pg_dump:$PATH" "$SNAPBACK" --config "$CFG" --no-progress $cmd
    expect_err_contains "'pg_dump (PostgreSQL) 14.13 (Debian 14.13-1.pgdg110+1)' cannot dump the PostgreSQL $server_major."
    expect_err_contains "install postgresql-client-$server_major"
done
check "no manifest was written by the failed snapshots" test "$(manifest_count)" = "$N_MANIFESTS"

log "pg_dump killed mid-dump"
# The dump is stepped with SIGSTOP/SIGCONT until it has written 2 MiB, then killed: mid-way
# whatever the machine's speed.
REAPED=$WORK/reaped.txt
SBPID_FILE=$WORK/snapback.pid
rm -f "$SBPID_FILE"
db_run_reaped "$REAPED" "$SBPID_FILE" "$SNAPBACK" --config "$CFG" --no-progress snapshot --only db \
    >"$WORK/killed.out" 2>"$WORK/killed.err" &
RUNNER=$!
dump_pid=
tries=0
while [[ -z $dump_pid ]]; do
    ((tries++ < 600)) || fail "no pg_dump child of snapback appeared: $(cat "$WORK/killed.err")"
    [[ -s $SBPID_FILE ]] && dump_pid=$(pgrep -P "$(cat "$SBPID_FILE")" -f 'pg_dump -Fc' || true)
    [[ -n $dump_pid ]] || sleep 0.01
done
kill -STOP "$dump_pid"
written=0
tries=0
while ((written < 2097152)); do
    ((tries++ < 1000)) || fail "pg_dump (pid $dump_pid) wrote only $written bytes"
    kill -CONT "$dump_pid"
    sleep 0.01
    kill -STOP "$dump_pid" 2>/dev/null || fail "pg_dump finished before it could be killed"
    written=$(awk '/^wchar/ {print $2}' "/proc/$dump_pid/io")
done
log "killing pg_dump (pid $dump_pid) after $written bytes"
kill -KILL "$dump_pid"
RC=0
wait "$RUNNER" || RC=$?
OUT=$(cat "$WORK/killed.out")
ERR=$(cat "$WORK/killed.err")
cp "$WORK/killed.out" "$WORK/.out"
cp "$WORK/killed.err" "$WORK/.err"
LAST_CMD="snapback snapshot --only db (pg_dump killed)"
CHECKS=$((CHECKS + 1))
((RC != 0)) || fail "the snapshot succeeded although its pg_dump was killed"
((RC < 128)) || fail "snapback itself died (status $RC)"
expect_err_contains "pg_dump"
expect_err_contains "signal 9"
check "no manifest was written" test "$(manifest_count)" = "$N_MANIFESTS"
check "snapback left no zombie and no orphan (left: $(cat "$REAPED"))" test ! -s "$REAPED"
check "nothing is left in state_dir/tmp ($(ls -A "$STATE/tmp" 2>/dev/null | tr '\n' ' '))" \
    test -z "$(ls -A "$STATE/tmp" 2>/dev/null)"
check "no partial object is left in the repository ($(find "$REPO" -name '*.partial' | tr '\n' ' '))" \
    test -z "$(find "$REPO" -name '*.partial')"
check "no credentials file anywhere under state_dir" test -z "$(find "$STATE" -name 'cred-*')"
expect_ok sb snapshot --only db
check "a snapshot after the killed one works" test "$(manifest_count)" = "$((N_MANIFESTS + 1))"
N_MANIFESTS=$(manifest_count)

log "server down -> 69"
pg_stop
expect_exit 69 sb snapshot --only db
expect_err_contains "$PG_SOCK"
check "no manifest was written" test "$(manifest_count)" = "$N_MANIFESTS"
check "nothing is left in state_dir/tmp" test -z "$(ls -A "$STATE/tmp" 2>/dev/null)"
expect_exit 69 sb restore "$SNAP1" --only db --db-target main=shop_down
expect_err_contains "$PG_SOCK"
log "config check reports the unreachable database"
expect_exit 69 sb config check
CHECKS=$((CHECKS + 1))
[[ "$OUT$ERR" == *"database 'main'"* ]] || fail "config check does not name database 'main'"
