#!/usr/bin/env bash
# Write-only hosts (issue #8, key mode 2): the app server holds only the recipient's public key
# (keygen --write-only's NAME.pub); the secret NAME.key lives on a "recovery" machine (here:
# another directory and config).
#   - keygen --write-only: NAME.key 0600, NAME.pub 0644, formats, no overwrite (73);
#   - on the server: init, snapshot (release, shared, a SQLite database), a second snapshot
#     reusing the stored release, list, show, status, prune, and a switch-only rollback all
#     work with no secret key present;
#   - on the server: restore, verify, ls, and a rollback that needs the database refuse with 77
#     and say how to pass the secret key; show of a snapshot missing from the catalog: 77;
#   - on the recovery side: restore (--key, SNAPBACK_KEY_FILE, key_file) gives back the
#     release, the shared files and the database; verify --restore-db passes;
#   - a sentinel value in the database and in a shared file, and the secret key, appear
#     nowhere in the repository, the state_dir, or anything the server printed or logged;
#   - wrong secret key: 65; a symmetric key on a sealed repository, a secret key as recipient,
#     a public key as key_file: 78 with messages that say what to do;
#   - the same round trip against an SFTP repository (sshd harness), when sshd is available.
# shellcheck source=tests/harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"

SENTINEL=zebra-sentinel-7f3a9c41
APP=$WORK/app
make_app "$APP" R1 R2
DB=$APP/shared/db.sqlite3
"$PYTHON" - "$DB" "$SENTINEL" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE secrets (id INTEGER PRIMARY KEY, v TEXT)")
c.executemany("INSERT INTO secrets (v) VALUES (?)", [(sys.argv[2] + " %d" % i,) for i in range(50)])
c.commit()
PY
printf 'card %s\n' "$SENTINEL" >"$APP/shared/uploads/private.txt"
ln -sfn releases/R1 "$APP/current"

OFFLINE=$WORK/offline # the recovery machine's directory: the secret never goes to the server
SERVER_KEYS=$WORK/server-keys
mkdir -p "$OFFLINE" "$SERVER_KEYS"
REPO=$WORK/repo
STATE=$WORK/state
CFG=$WORK/server.json
RCFG=$WORK/recovery.json
PUB=$SERVER_KEYS/shop.pub
SECRET=$OFFLINE/shop.key

config() { # FILE KEYMEMBER REPO_URL [EXTRA]
    cat >"$1" <<EOF
{
  "app": "demo",
  "release": { "root": "$APP", "shared_paths": ["shared/uploads"] },
  "databases": [ { "name": "main", "engine": "sqlite", "path": "$DB" } ],
  "repository": { "url": "$3"${5:+, $5} },
  $2,
  "state_dir": "$STATE",
  "retention": { "keep_last": 2 }${4:+,
  $4}
}
EOF
}
config "$CFG" "\"recipient\": \"$PUB\"" "$REPO"
config "$RCFG" "\"key_file\": \"$SECRET\"" "$REPO"
# everything the server printed, for the leak check at the end
SERVER_OUTPUT=$WORK/server-output.log
: >"$SERVER_OUTPUT"
srv() { # runs snapback with the server config, appending its output to $SERVER_OUTPUT
    run "$SNAPBACK" --config "$CFG" --no-progress "$@"
    printf '%s\n%s\n' "$OUT" "$ERR" >>"$SERVER_OUTPUT"
}
srv_ok() {
    srv "$@"
    [[ $RC == 0 ]] || fail "expected exit 0, got $RC"
}
srv_exit() {
    local want=$1
    shift
    srv "$@"
    [[ $RC == "$want" ]] || fail "expected exit $want, got $RC"
}

# --- keygen --write-only ---
log "keygen --write-only"
expect_ok "$SNAPBACK" keygen --write-only --key-file "$SECRET"
expect_out_contains "$OFFLINE/shop.pub" # beside the .key; moved to the server below
mv "$OFFLINE/shop.pub" "$PUB"
check "the secret key is 0600" test "$(stat -c %a "$SECRET")" = 600
check "the public key is 0644" test "$(stat -c %a "$PUB")" = 644
check "the secret key file format" test "$(head -n 1 "$SECRET")" = snapback-secret-v1
check "the public key file format" test "$(head -n 1 "$PUB")" = snapback-recipient-v1
check "the public key is 32 bytes of base64" test "$(sed -n 2p "$PUB" | base64 -d | wc -c)" = 32
SECRET_B64=$(sed -n 2p "$SECRET")
touch "$OFFLINE/other.pub"
expect_exit 73 "$SNAPBACK" keygen --write-only --key-file "$OFFLINE/other.key"
expect_err_contains "already exists"
check "no secret written when the .pub exists" test ! -e "$OFFLINE/other.key"
rm "$OFFLINE/other.pub"
expect_exit 73 "$SNAPBACK" keygen --write-only --key-file "$SECRET"

# --- the server: write-only ---
log "server: init, snapshots, list, show, status with only the public key"
srv_ok init
srv_ok config check
check "snapback.json records key mode 2" test "$(json_get "$(cat "$REPO/snapback.json")" 'j["key_mode"]')" = 2
srv_ok snapshot --tag pre-deploy
S1=$(tail -n 1 <<<"$OUT")
CATALOG=$(echo "$STATE"/catalog/*/demo) # state_dir/catalog/REPOSITORY-ID/APP
check "one catalog directory, named after the repository id" test -d "$CATALOG" -a \
    "$(basename "$(dirname "$CATALOG")")" = "$(json_get "$(cat "$REPO/snapback.json")" 'j["id"]')"
ln -sfn releases/R2 "$APP/current.tmp" && mv -T "$APP/current.tmp" "$APP/current"
srv_ok snapshot
S2=$(tail -n 1 <<<"$OUT")
srv_ok snapshot
S3=$(tail -n 1 <<<"$OUT")
check "the unchanged release R2 was stored once (reused through the catalog)" \
    test "$(find "$REPO/demo/releases" -name 'R2-*.snpb' | wc -l)" = 1
srv_ok list --json
check "list shows the three snapshots" test "$(json_get "$OUT" 'len(j)')" = 3
srv_ok show "$S1" --json
check "show reads the manifest from the catalog" test "$(json_get "$OUT" 'j["release"]["name"]')" = R1
check "show lists the database" test "$(json_get "$OUT" 'j["databases"][0]["name"]')" = main
srv_ok status
check "the catalog is 0700/0600" test "$(stat -c %a "$STATE/catalog")" = 700 -a \
    "$(stat -c %a "$CATALOG/$S1.json")" = 600

log "server: reading needs the secret key -> 77"
srv_exit 77 restore "$S1" --target "$WORK/nope"
expect_err_contains "--key FILE"
check "nothing restored" test ! -e "$WORK/nope"
srv_exit 77 verify latest
expect_err_contains "secret key"
srv_exit 77 ls latest
expect_err_contains "secret key"
srv_exit 77 restore "$S1" --only db --db-target "main=$WORK/nope.sqlite3"
check "no database file written" test ! -e "$WORK/nope.sqlite3"
mv "$CATALOG/$S2.json" "$WORK/s2.json"
srv_exit 77 show "$S2"
expect_err_contains "not in this host's catalog"
mv "$WORK/s2.json" "$CATALOG/$S2.json"

log "server: a switch-only rollback needs no secret key; one with the database does"
srv_exit 77 rollback --to previous --with-database --no-safety-snapshot
expect_err_contains "secret key"
check "current unchanged after the refused rollback" test "$(readlink "$APP/current")" = releases/R2
srv_ok rollback --to previous
check "current -> R1 after a switch-only rollback" test "$(readlink "$APP/current")" = releases/R1
ln -sfn releases/R2 "$APP/current.tmp" && mv -T "$APP/current.tmp" "$APP/current"

log "server: prune works from the catalog"
srv_ok prune
srv_ok list --json
check "prune kept keep_last=2 snapshots" test "$(json_get "$OUT" 'len(j)')" = 2
check "the pruned snapshots' catalog entries are gone" test ! -e "$CATALOG/$S1.json"

# --- the recovery machine ---
log "recovery: restore and verify with the secret key"
expect_ok "$SNAPBACK" --config "$RCFG" --no-progress verify --all --restore-db
expect_ok "$SNAPBACK" --config "$CFG" --no-progress --key "$SECRET" ls "$S3" shared/uploads/private.txt
expect_out_contains "shared/uploads/private.txt"
expect_ok "$SNAPBACK" --config "$CFG" --no-progress --key "$SECRET" restore "$S3" --target "$WORK/r1"
compare_trees "$APP/releases/R2" "$WORK/r1/releases/R2" noroot
compare_trees "$APP/shared/uploads" "$WORK/r1/shared/uploads" noroot
check "the restored database holds the rows" test "$("$PYTHON" -c 'import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM secrets").fetchone()[0])' "$WORK/r1/databases/main.sqlite3")" = 50
SNAPBACK_KEY_FILE=$SECRET expect_ok "$SNAPBACK" --config "$CFG" --no-progress verify latest
expect_ok "$SNAPBACK" --config "$RCFG" --no-progress restore "$S3" --only db --db-target "main=$WORK/copy.sqlite3"
check "restore --db-target with key_file = the secret key" test -s "$WORK/copy.sqlite3"

log "wrong keys"
expect_ok "$SNAPBACK" keygen --write-only --key-file "$OFFLINE/wrong.key"
expect_exit 65 "$SNAPBACK" --config "$CFG" --no-progress --key "$OFFLINE/wrong.key" verify latest
expect_err_contains "does not open repository"
expect_ok "$SNAPBACK" keygen --key-file "$OFFLINE/sym.key"
config "$WORK/sym.json" "\"key_file\": \"$OFFLINE/sym.key\"" "$REPO"
expect_exit 78 "$SNAPBACK" --config "$WORK/sym.json" --no-progress list
expect_err_contains "sealed to a recipient key"
config "$WORK/secret-as-recipient.json" "\"recipient\": \"$SECRET\"" "$REPO"
expect_exit 78 "$SNAPBACK" --config "$WORK/secret-as-recipient.json" --no-progress snapshot
expect_err_contains "holds a secret key, not a public one"
config "$WORK/pub-as-key.json" "\"key_file\": \"$PUB\"" "$REPO"
chmod 600 "$PUB"
expect_exit 78 "$SNAPBACK" --config "$WORK/pub-as-key.json" --no-progress list
expect_err_contains "is a recipient's public key"
chmod 644 "$PUB"

# --- nothing readable leaked ---
log "no sentinel and no secret in the repository, the state_dir or the server's output"
cat "$STATE/journal.jsonl" >>"$SERVER_OUTPUT" 2>/dev/null || true
for where in "$REPO" "$STATE" "$SERVER_OUTPUT" "$SERVER_KEYS"; do
    check "no sentinel in $where" bash -c "! grep -r -a -q -F '$SENTINEL' '$where'"
    check "no secret key in $where" bash -c "! grep -r -a -q -F '$SECRET_B64' '$where'"
done
check "no .key file on the server side" test -z "$(find "$SERVER_KEYS" "$STATE" -name '*.key')"

# --- SFTP ---
if [[ -x ${SSHD_BIN:-/usr/sbin/sshd} ]] && command -v ssh-keyscan >/dev/null; then
    # shellcheck source=tests/harness/sshd.sh
    source "$HARNESS_DIR/sshd.sh"
    sshd_setup
    log "the same over SFTP"
    REMOTE=$WORK/remote
    STATE=$WORK/state-sftp
    SFTP_REPO="\"identity_file\": \"$SSHD_CLIENT_KEY\", \"known_hosts\": \"$SSHD_KNOWN_HOSTS\", \"timeout_s\": 10, \"retries\": 1"
    URL=sftp://$(id -un)@127.0.0.1:$SSHD_PORT$REMOTE
    config "$CFG" "\"recipient\": \"$PUB\"" "$URL" "" "$SFTP_REPO"
    config "$RCFG" "\"key_file\": \"$SECRET\"" "$URL" "" "$SFTP_REPO"
    srv_ok init
    srv_ok snapshot
    SF=$(tail -n 1 <<<"$OUT")
    check "the manifest is on the server" test -f "$REMOTE/demo/snapshots/$SF.manifest"
    srv_ok list
    srv_exit 77 restore "$SF" --target "$WORK/sftp-nope"
    expect_ok "$SNAPBACK" --config "$RCFG" --no-progress restore "$SF" --target "$WORK/sftp-r"
    compare_trees "$APP/releases/R2" "$WORK/sftp-r/releases/R2" noroot
    expect_ok "$SNAPBACK" --config "$RCFG" --no-progress verify latest --restore-db
    check "no sentinel on the SFTP server" bash -c "! grep -r -a -q -F '$SENTINEL' '$REMOTE' '$STATE'"
else
    log "sshd not installed: the SFTP part is skipped"
fi
