#!/usr/bin/env bash
# Prune's crash safety (DESIGN §9, §10; issue #6): a repository of 7 snapshots over 3
# releases (so release objects are shared by several snapshots, and one release's object
# becomes unreferenced), the oldest tagged keep, retention keep_last 2, every file aged past
# the orphan grace period so prune really deletes objects. prune is then SIGKILLed after its
# 1st, 2nd, ... removal (every manifest, catalog entry, object and directory removal, in
# turn: SNAPBACK_TEST_HOOKS=1 + SNAPBACK_TEST_KILL_AT=prune-remove:N, a test-only hook in
# src/core/util.c), each time on a fresh copy of the same repository and state, until a run
# is no longer killed. After every kill: `verify --all` exits 0 (no surviving snapshot lost an
# object), `list` shows exactly the manifests present, the newest snapshot and the one tagged
# keep survive, and a re-run of prune completes and leaves the same end state as an
# uninterrupted prune.
#
# prune_crash_sftp.sh runs the same over SFTP (a real sshd on loopback, tests/harness/sshd.sh):
# there removals are remote, and a replaced file may sit aside as NAME.replaced-*.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
R1=20260101T000000Z
R2=20260102T000000Z
R3=20260103T000000Z
APP=$WORK/app
make_app "$APP" "$R1" "$R2" "$R3"
if [[ ${PRUNE_CRASH_SFTP:-0} == 1 ]]; then
    # shellcheck source=tests/harness/sshd.sh
    source "$HARNESS_DIR/sshd.sh"
    sshd_setup
    sftp_env
else
    sb_env
fi
"$PYTHON" - "$CFG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
c["retention"] = {"keep_last": 2}
json.dump(c, open(sys.argv[1], "w"))
PY
sb_init

# next_second: waits (bounded) until the clock's second changes, so that snapshot ids (UTC
# seconds + randomness) sort in the order the snapshots were taken
next_second() {
    local start i
    start=$(date +%s)
    for ((i = 0; i < 300; i++)); do
        [[ $(date +%s) != "$start" ]] && return 0
        sleep 0.01
    done
    fail "the clock did not advance"
}

ids=()
snap() {
    printf 'upload %s\n' "$1" >"$APP/shared/uploads/u-$1"
    next_second
    sb_snapshot "${@:2}"
    ids+=("$SNAP_ID")
}
ln -sfn "releases/$R1" "$APP/current"
snap 1 --tag keep
snap 2
ln -sfn "releases/$R2" "$APP/current"
snap 3
snap 4
ln -sfn "releases/$R3" "$APP/current"
snap 5
snap 6
snap 7
KEEP=${ids[0]}
NEWEST=${ids[6]}
expect_ok sb list --json
check "list shows the last snapshot first" test "$(json_get "$OUT" 'j[0]["id"]')" = "$NEWEST"
check "three release objects" test "$(find "$REPO/demo/releases" -name '*.snpb' | wc -l)" = 3
# past the orphan grace period (6 h), so that unreferenced objects really go
find "$REPO" "$STATE" -type f -exec touch -d '7 hours ago' {} +
cp -a "$REPO" "$WORK/repo.pristine"
cp -a "$STATE" "$WORK/state.pristine"

# the end state of an uninterrupted prune: what every killed-then-rerun prune must reach
expect_ok sb prune
expect_out_contains "deleted 4 snapshot(s)"
end_state() {
    (cd "$REPO" && find . -type f ! -name '*.partial' | LC_ALL=C sort)
}
WANT_END=$(end_state)
check "the unshared release object ($R2) is gone" test -z "$(find "$REPO/demo/releases" -name "$R2-*")"
check "the shared release objects stay" test "$(find "$REPO/demo/releases" -name '*.snpb' | wc -l)" = 2
expect_ok sb verify --all

reset_repo() {
    rm -rf "$REPO" "$STATE"
    cp -a "$WORK/repo.pristine" "$REPO"
    cp -a "$WORK/state.pristine" "$STATE"
}

kills=0
for ((n = 1; n <= 200; n++)); do
    reset_repo
    # (through an inner bash, so that its "Killed" notice goes to the captured stderr)
    run bash -c '"$@"; exit $?' _ env SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_KILL_AT="prune-remove:$n" \
        "$SNAPBACK" --config "$CFG" --no-progress prune
    if [[ $RC == 0 ]]; then
        log "prune made $((n - 1)) removal(s); killed after each of them in turn"
        break
    fi
    check "kill $n: prune died of SIGKILL (exit $RC)" test "$RC" = 137
    kills=$((kills + 1))
    left=$(manifest_count)
    expect_ok sb list --json
    check "kill $n: list shows exactly the $left manifest(s) present" test "$(json_get "$OUT" 'len(j)')" = "$left"
    check "kill $n: the newest snapshot survives" test -f "$REPO/demo/snapshots/$NEWEST.manifest"
    check "kill $n: the snapshot tagged keep survives" test -f "$REPO/demo/snapshots/$KEEP.manifest"
    expect_ok sb verify --all
    check "kill $n: the lock is free" flock -n "$STATE/lock" true
    expect_ok sb prune
    check "kill $n: the re-run of prune reaches the end state of an uninterrupted one" \
        test "$(end_state)" = "$WANT_END"
    expect_ok sb verify --all
done
((n <= 200)) || fail "prune was still being killed after 200 removals"
check "prune was killed at several points" test "$kills" -ge 8
expect_ok sb restore "$KEEP" --target "$WORK/r-keep"
check "the kept snapshot restores its release" test -f "$WORK/r-keep/releases/$R1/REVISION"
