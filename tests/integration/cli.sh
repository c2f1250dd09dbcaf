#!/usr/bin/env bash
# The command line as DESIGN §2 fixes it: --help for every command, --version, usage errors
# (64), bad or missing config (78, naming the JSON path), refusals to overwrite (73), unknown
# snapshots (66), key permissions (77), and `config check`.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env

COMMANDS=(keygen init snapshot list show restore verify config)

# --- help and version: need no config at all ---
export SNAPBACK_CONFIG=$WORK/does-not-exist.json
expect_ok "$SNAPBACK" --help
expect_out_contains "usage: snapback"
for c in "${COMMANDS[@]}"; do
    expect_out_contains "$c"
done
expect_ok "$SNAPBACK" -h
expect_ok "$SNAPBACK" help
for c in "${COMMANDS[@]}"; do
    expect_ok "$SNAPBACK" "$c" --help
    expect_out_contains "usage: snapback $c"
    expect_ok "$SNAPBACK" help "$c"
    expect_out_contains "usage: snapback $c"
done
expect_ok "$SNAPBACK" --version
[[ $OUT =~ ^snapback\ [0-9]+\.[0-9]+\.[0-9]+ ]] || fail "--version printed '$OUT'"
unset SNAPBACK_CONFIG

# --- usage errors: 64 ---
expect_exit 64 "$SNAPBACK"
expect_exit 64 "$SNAPBACK" frobnicate
expect_err_contains "unknown command 'frobnicate'"
expect_exit 64 "$SNAPBACK" --frobnicate
expect_exit 64 "$SNAPBACK" help frobnicate
expect_exit 64 sb list --frobnicate
expect_err_contains "--frobnicate"
expect_exit 64 sb snapshot --frobnicate
expect_exit 64 sb snapshot extra-argument
expect_exit 64 sb snapshot --tag 'has space'
expect_exit 64 sb snapshot --tag
expect_exit 64 sb snapshot --only nothing
expect_exit 64 sb restore --target "$WORK/x"
expect_exit 64 sb restore a b --target "$WORK/x"
expect_exit 64 sb restore latest --target "$WORK/x" --only bogus
expect_exit 64 sb show
expect_exit 64 sb show a b
expect_exit 64 sb verify a b
expect_exit 64 sb verify latest --all
expect_exit 64 sb config
expect_exit 64 sb config frob
expect_exit 64 sb --log-format xml list
expect_exit 64 sb --quiet --verbose list
expect_exit 64 "$SNAPBACK" --config
check "usage errors wrote nothing" test ! -e "$REPO" -a ! -e "$KEY" -a ! -e "$WORK/x"

# --- config: missing file, bad JSON, bad values: 78 naming the JSON path ---
expect_exit 78 "$SNAPBACK" --config "$WORK/missing.json" list
expect_err_contains "missing.json"
SNAPBACK_CONFIG=$WORK/missing.json expect_exit 78 "$SNAPBACK" list
expect_err_contains "missing.json"
: >"$WORK/empty.json"
expect_exit 78 "$SNAPBACK" --config "$WORK/empty.json" list
printf '{"app": "demo",' >"$WORK/truncated.json"
expect_exit 78 "$SNAPBACK" --config "$WORK/truncated.json" list
expect_err_contains "line"
echo '[]' >"$WORK/array.json"
expect_exit 78 "$SNAPBACK" --config "$WORK/array.json" list

# bad_config JSON-PATH-IN-MESSAGE PYTHON-STATEMENT-ON-c: one broken copy of the good config
bad_config() {
    local want=$1 edit=$2 file=$WORK/bad.json
    "$PYTHON" - "$CFG" "$file" "$edit" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
exec(sys.argv[3])
open(sys.argv[2], "w").write(json.dumps(c) if not isinstance(c, str) else c)
PY
    expect_exit 78 "$SNAPBACK" --config "$file" list
    CHECKS=$((CHECKS + 1))
    [[ $ERR == *"$want:"* ]] || fail "config edit '$edit': the message should start the problem with '$want:'"
}
bad_config app 'del c["app"]'
bad_config app 'c["app"] = 42'
bad_config app 'c["app"] = "has/slash"'
bad_config bogus 'c["bogus"] = 1'
bad_config release.root 'c["release"]["root"] = "relative/path"'
bad_config release.root 'c["release"]["root"] = 7'
bad_config release.bogus 'c["release"]["bogus"] = True'
bad_config 'release.shared_paths[1]' 'c["release"]["shared_paths"] = ["shared/a", 3]'
bad_config 'release.shared_paths[0]' 'c["release"]["shared_paths"] = ["/etc"]'
bad_config 'release.shared_paths[0]' 'c["release"]["shared_paths"] = ["shared/../../etc"]'
bad_config release.keep_releases 'c["release"]["keep_releases"] = "five"'
bad_config repository 'del c["repository"]'
bad_config repository.url 'c["repository"]["url"] = "ftp://host/x"'
bad_config repository.url 'c["repository"]["url"] = 5'
bad_config repository.bogus 'c["repository"]["bogus"] = "x"'
bad_config key_file 'c["key_file"] = "relative.key"'
bad_config state_dir 'del c["state_dir"]'
bad_config compression.level 'c["compression"]["level"] = 42'
bad_config compression.threads 'c["compression"]["threads"] = -1'
bad_config max_age 'c["max_age"] = "2 parsecs"'
bad_config 'databases[0].engine' 'c["databases"] = [{"name": "main", "engine": "oracle", "dbname": "x"}]'
bad_config schedule.snapshot 'c["schedule"] = {"snapshot": "61 * * * *"}'
bad_config retention.keep_last 'c["retention"] = {"keep_last": -1}'
bad_config rollback.database 'c["rollback"] = {"database": "sometimes"}'
bad_config hooks.after_rollback 'c["hooks"] = {"after_rollback": 42}'

# --- keygen and init: never overwrite (73) ---
expect_ok sb keygen
check "key file mode is 0600" test "$(stat -c %a "$KEY")" = 600
key_sum=$(md5sum <"$KEY")
expect_exit 73 sb keygen
expect_err_contains "$KEY"
check "keygen left the existing key unchanged" test "$(md5sum <"$KEY")" = "$key_sum"
expect_exit 73 sb keygen --key-file "$KEY"
check "keygen --key-file left the key unchanged" test "$(md5sum <"$KEY")" = "$key_sum"
expect_ok "$SNAPBACK" keygen --key-file "$WORK/other.key"
check "keygen --key-file without config writes 0600" test "$(stat -c %a "$WORK/other.key")" = 600
other_key=$(tail -n1 "$WORK/other.key")
check "keygen never prints the key" test -n "$other_key" -a "${OUT/"$other_key"/}" = "$OUT" -a "${ERR/"$other_key"/}" = "$ERR"

# verify/list before init: the repository does not exist
run sb verify
CHECKS=$((CHECKS + 1))
[[ $RC == 66 || $RC == 69 ]] || fail "verify before init: expected 66 (or 69), got $RC"

expect_ok sb init
check "repository created" test -f "$REPO/snapback.json"
check "repository description has no key material" test -z "$(grep -F "$(tail -n1 "$KEY")" "$REPO/snapback.json" || true)"
repo_sum=$(md5sum <"$REPO/snapback.json")
expect_exit 73 sb init
expect_err_contains "$REPO"
check "init twice left snapback.json unchanged" test "$(md5sum <"$REPO/snapback.json")" = "$repo_sum"

# --- an empty repository ---
expect_ok sb list
expect_ok sb list --json
check "list --json of an empty repository is []" test "$(json_get "$OUT" 'len(j)')" = 0
expect_exit 66 sb verify
expect_exit 66 sb verify latest
expect_exit 66 sb show latest
expect_exit 66 sb restore latest --target "$WORK/nothing"
check "restore of nothing created nothing" test ! -e "$WORK/nothing"

# --- config check ---
expect_ok sb config check
expect_out_contains "all checks passed"

# --- with a snapshot ---
sb_snapshot --tag first
id=$SNAP_ID
expect_ok sb list
expect_out_contains "$id"
expect_out_contains "first"
expect_ok sb show "$id"
expect_out_contains "$id"
expect_ok sb show "${id:0:18}" # a unique prefix
expect_ok sb show latest --json
check "show latest --json has the id" test "$(json_get "$OUT" 'j["id"]')" = "$id"
expect_exit 66 sb show 20200101T000000Z-0000
expect_err_contains "20200101T000000Z-0000"
expect_exit 66 sb show nonsense
expect_exit 66 sb verify 20200101T000000Z-0000
expect_exit 66 sb restore 20200101T000000Z-0000 --target "$WORK/r0"
check "no target for an unknown snapshot" test ! -e "$WORK/r0"
expect_ok sb verify
expect_ok sb verify "$id"
expect_ok sb verify --all

# restore: --target is required for a snapshot with files, and must not exist or be empty
expect_exit 64 sb restore "$id"
expect_err_contains "--target"
expect_exit 64 sb restore "$id" --target ""
mkdir -p "$WORK/busy"
echo keep >"$WORK/busy/file"
expect_exit 73 sb restore "$id" --target "$WORK/busy"
expect_err_contains "$WORK/busy"
check "non-empty target untouched" test "$(ls -A "$WORK/busy")" = file -a "$(cat "$WORK/busy/file")" = keep
echo data >"$WORK/plainfile"
expect_exit 73 sb restore "$id" --target "$WORK/plainfile"
check "file target untouched" test "$(cat "$WORK/plainfile")" = data
mkdir "$WORK/emptydir"
expect_ok sb restore "$id" --target "$WORK/emptydir"
check "restore into an empty dir" test -L "$WORK/emptydir/current"
expect_ok sb restore latest --target "$WORK/new/"
check "restore into a new dir (trailing slash)" test -L "$WORK/new/current"
check "no temp dirs left" test -z "$(tmp_leftovers "$WORK" -maxdepth 1)"

# --- key file permissions: 77 ---
chmod 0644 "$KEY"
expect_exit 77 sb list
expect_err_contains "$KEY"
expect_exit 77 sb snapshot
expect_exit 77 sb config check
chmod 0640 "$KEY"
expect_exit 77 sb verify
chmod 0600 "$KEY"
if [[ $(id -u) == 0 ]]; then
    chown 4321 "$KEY"
    expect_exit 77 sb list
    expect_err_contains "$KEY"
    chown 0 "$KEY"
fi
expect_ok sb list

# a missing key file
mv "$KEY" "$KEY.away"
run sb list
CHECKS=$((CHECKS + 1))
[[ $RC == 66 || $RC == 77 || $RC == 78 ]] || fail "missing key file: expected 66, 77 or 78, got $RC"
[[ $ERR == *"$KEY"* ]] || fail "missing key file: the message should name it"
mv "$KEY.away" "$KEY"

# the key never shows in output or logs, even verbose or as JSON logs
key_b64=$(tail -n1 "$KEY")
for args in "--verbose snapshot" "--log-format json --verbose verify --all" "--verbose config check" "--verbose show latest --json"; do
    # shellcheck disable=SC2086
    expect_ok sb $args
    check "'$args' does not print the key" test "${OUT/"$key_b64"/}" = "$OUT" -a "${ERR/"$key_b64"/}" = "$ERR"
done

# the journal recorded the runs
check "journal exists" test -s "$STATE/journal.jsonl"
"$PYTHON" - "$STATE/journal.jsonl" <<'PY' || fail "journal.jsonl is not one JSON object per line"
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
assert any(e["event"] == "snapshot" and e["outcome"] == "ok" for e in events), events
PY
check "the key never appears in the journal" test -z "$(grep -F "$(tail -n1 "$KEY")" "$STATE/journal.jsonl" || true)"
