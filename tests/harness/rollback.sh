# shellcheck shell=bash
# Scaffolding of the rollback tests (tests/integration/rollback*.sh): the app and its paths,
# the config, a hook that holds a run in a chosen event, and SQLite access. Source it after
# lib.sh.
#
#   rollback_layout [R1 R2 R3]
#                   R1, R2, R3 (default three timestamps), the app $APP with those releases
#                   (make_app, R3 live), and $REPO, $KEY, $STATE, $CFG, $GO, $HOOK, $HOOKLOG
#                   under $WORK
#   rollback_config [DATABASE-JSON [EXTRA-JSON]]
#                   $CFG: app demo, release $APP with shared path shared/uploads, the
#                   database if given, $REPO, $KEY, $STATE, and EXTRA-JSON's members (hooks,
#                   rollback) if given
#   hold_hook [LINES]
#                   $HOOK: blocks only in the event named by $STOP_AT (set in the environment
#                   of the run to hold): writes its pid to $WORK/hook.EVENT.pid, then waits
#                   for $GO. LINES (sh) run first, in every event
#   start_held EVENT NAME ARGS...
#                   `snapback ARGS` in the background with STOP_AT=EVENT (stdout and stderr in
#                   $WORK/NAME.out and .err); HELD is its pid; returns once the EVENT hook
#                   holds it, fails if it never gets there (HOLD_WHAT: a prefix for the message)
#   kill_held       SIGKILLs the held run and lets its orphaned hook go
#   current         where $APP/current points
#   sql SQL         one statement on the SQLite database $DB, rows as a|b lines

# shellcheck disable=SC2034 # the tests read them
rollback_layout() {
    R1=${1:-20261120T100000Z}
    R2=${2:-20261121T100000Z}
    R3=${3:-20261122T100000Z}
    APP=$WORK/app
    make_app "$APP" "$R1" "$R2" "$R3"
    REPO=$WORK/repo
    KEY=$WORK/key
    STATE=$WORK/state
    CFG=$WORK/snapback.json
    GO=$WORK/go
    HOOK=$WORK/hook.sh
    HOOKLOG=$WORK/hooks.log
}

rollback_config() {
    local dbs="" extra=""
    [[ -z ${1:-} ]] || dbs=$'\n'"  \"databases\": [ $1 ],"
    [[ -z ${2:-} ]] || extra=$',\n'"  $2"
    printf '{\n  "app": "demo",\n  "release": { "root": "%s", "shared_paths": ["shared/uploads"] },%s
  "repository": { "url": "%s" },\n  "key_file": "%s",\n  "state_dir": "%s"%s\n}\n' \
        "$APP" "$dbs" "$REPO" "$KEY" "$STATE" "$extra" >"$CFG"
}

hold_hook() {
    {
        printf '#!/bin/sh\n'
        [[ -z ${1:-} ]] || printf '%s\n' "$1"
        cat <<EOF
[ "\$SNAPBACK_EVENT" = "\${STOP_AT:-}" ] || exit 0
echo \$\$ >"$WORK/hook.\$SNAPBACK_EVENT.pid"
# at most 120 s, and not beyond the test's life (its workdir gone: it failed)
n=0
while [ ! -e "$GO" ] && [ -d "$WORK" ] && [ \$n -lt 2400 ]; do sleep 0.05; n=\$((n + 1)); done
EOF
    } >"$HOOK"
    chmod +x "$HOOK"
}

start_held() {
    local event=$1 name=$2 tries=0 what=${HOLD_WHAT:+$HOLD_WHAT: }
    shift 2
    rm -f "$GO" "$WORK/hook.$event.pid"
    STOP_AT=$event "$SNAPBACK" --config "$CFG" --no-progress "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    HELD=$!
    until [[ -s $WORK/hook.$event.pid ]]; do
        ((tries++ < 1200)) || fail "${what}the $event hook was not reached: $(cat "$WORK/$name.err")"
        kill -0 "$HELD" 2>/dev/null || fail "${what}'$*' ended before its $event hook: $(cat "$WORK/$name.err")"
        sleep 0.05
    done
}

kill_held() {
    kill -KILL "$HELD"
    wait "$HELD" 2>/dev/null || true
    touch "$GO"
}

current() { readlink "$APP/current"; }

sql() { "$PYTHON" -c 'import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); r=c.execute(sys.argv[2]).fetchall(); c.commit(); print("\n".join("|".join(map(str,x)) for x in r))' "$DB" "$1"; }
