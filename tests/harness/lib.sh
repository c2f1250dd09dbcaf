# shellcheck shell=bash
# Shared helpers for the integration tests in tests/integration/: each test sources this file,
# calls sb_setup, and then drives the real binary through sb/expect_exit. The idea is that a
# failing test says what it ran and what it saw (command, exit status, stdout, stderr), and
# that every test works in its own mktemp -d directory, removed on exit even on failure
# (keep it with SNAPBACK_KEEP_WORKDIR=1 to look at it).
#
# The binary is the first argument of the test script or $SNAPBACK.

set -Eeuo pipefail

TEST_NAME=$(basename "$0" .sh)
# Debian's python3 starts in 40 ms; a pyenv shim earlier in PATH can take 170 ms.
if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
HARNESS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INTEGRATION_DIR=$(cd "$HARNESS_DIR/../integration" && pwd)
export INTEGRATION_DIR

# Output of the last `run`/`expect_exit`.
RC=0
OUT=
ERR=
LAST_CMD=
CHECKS=0

log() { printf '[%s] %s\n' "$TEST_NAME" "$*"; }

# Prints the last command and what it printed, then fails the test.
fail() {
    _FAILED=1
    printf '[%s] FAIL: %s\n' "$TEST_NAME" "$*" >&2
    if [[ -n $LAST_CMD ]]; then
        {
            printf '  last command: %s\n' "$LAST_CMD"
            printf '  exit status:  %s\n' "$RC"
            printf '  stdout:\n%s\n' "$(head -c 4000 "$WORK/.out" 2>/dev/null | sed 's/^/    | /')"
            printf '  stderr:\n%s\n' "$(head -c 4000 "$WORK/.err" 2>/dev/null | sed 's/^/    | /')"
        } >&2
    fi
    exit 1
}

_on_err() {
    local status=$1 line=$2 cmd=$3
    # fail() (or a subshell that called it) has said what went wrong already
    [[ ${_FAILED:-0} == 1 || $cmd == exit\ * ]] && return 0
    printf '[%s] FAIL: line %s: command exited %s: %s\n' "$TEST_NAME" "$line" "$status" "$cmd" >&2
}

# at_exit CMD...: run CMD when the test ends, passed or failed (before $WORK is removed).
_AT_EXIT=()
at_exit() {
    local q
    printf -v q '%q ' "$@"
    _AT_EXIT+=("$q")
}

_cleanup() {
    local status=$?
    local cmd
    for cmd in "${_AT_EXIT[@]}"; do
        eval "$cmd" >/dev/null 2>&1 || true
    done
    # Stop background jobs this test started (lock holders, killed snapshots).
    local pids
    pids=$(jobs -pr 2>/dev/null || true)
    if [[ -n $pids ]]; then
        # shellcheck disable=SC2086
        kill $pids 2>/dev/null || true
        wait 2>/dev/null || true
    fi
    if [[ -n ${WORK:-} && -d $WORK ]]; then
        if [[ ${SNAPBACK_KEEP_WORKDIR:-0} == 1 ]]; then
            printf '[%s] workdir kept: %s\n' "$TEST_NAME" "$WORK" >&2
        else
            chmod -R u+rwX "$WORK" 2>/dev/null || true
            rm -rf "$WORK"
        fi
    fi
    if ((status == 0)); then
        printf '[%s] PASS (%d checks, %d s)\n' "$TEST_NAME" "$CHECKS" "$SECONDS"
    elif ((status == 77)); then
        printf '[%s] SKIP\n' "$TEST_NAME"
    else
        printf '[%s] FAILED (exit %d after %d s)\n' "$TEST_NAME" "$status" "$SECONDS" >&2
    fi
    exit "$status"
}

# sb_setup [BINARY]: finds the binary, creates $WORK, installs the traps.
sb_setup() {
    SNAPBACK=${1:-${SNAPBACK:-}}
    if [[ -z $SNAPBACK ]]; then
        echo "usage: $0 PATH/TO/snapback (or set SNAPBACK)" >&2
        exit 64
    fi
    SNAPBACK=$(cd "$(dirname "$SNAPBACK")" && pwd)/$(basename "$SNAPBACK")
    [[ -x $SNAPBACK ]] || { echo "$SNAPBACK is not executable" >&2; exit 64; }
    export SNAPBACK
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/snapback-$TEST_NAME.XXXXXX")
    chmod 0755 "$WORK"
    trap _cleanup EXIT
    trap '_on_err $? $LINENO "$BASH_COMMAND"' ERR
    # The binary must not pick up a config from the environment of whoever runs the tests.
    unset SNAPBACK_CONFIG
    # Sanitizer runs: make any report fatal and visible (contrib/test.sh sets the same).
    export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:print_stacktrace=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
    log "binary: $SNAPBACK; workdir: $WORK"
}

skip() {
    log "SKIP: $*"
    exit 77
}

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || skip "'$tool' is not installed"
    done
}

# run CMD...: runs the command, never fails; sets RC, OUT, ERR, LAST_CMD.
run() {
    if [[ $1 == sb ]]; then
        LAST_CMD=$(printf '%q ' "$SNAPBACK" --config "$CFG" --no-progress "${@:2}")
    else
        LAST_CMD=$(printf '%q ' "$@")
    fi
    RC=0
    "$@" >"$WORK/.out" 2>"$WORK/.err" || RC=$?
    OUT=$(cat "$WORK/.out")
    ERR=$(cat "$WORK/.err")
    return 0
}

# expect_exit CODE CMD...: runs CMD and fails the test unless it exits CODE.
expect_exit() {
    local want=$1
    shift
    run "$@"
    CHECKS=$((CHECKS + 1))
    if [[ $RC != "$want" ]]; then
        fail "expected exit $want, got $RC"
    fi
    if [[ $ERR == *"AddressSanitizer"* || $ERR == *"runtime error:"* || $ERR == *"LeakSanitizer"* ]]; then
        fail "sanitizer report on stderr"
    fi
}

# expect_ok CMD...: expect_exit 0.
expect_ok() { expect_exit 0 "$@"; }

# expect_err_contains TEXT: the last command's stderr contains TEXT.
expect_err_contains() {
    CHECKS=$((CHECKS + 1))
    [[ $ERR == *"$1"* ]] || fail "expected stderr to contain '$1'"
}

expect_out_contains() {
    CHECKS=$((CHECKS + 1))
    [[ $OUT == *"$1"* ]] || fail "expected stdout to contain '$1'"
}

# check COND-COMMAND... MESSAGE is awkward in bash; use: check "message" test-command...
check() {
    local what=$1
    shift
    CHECKS=$((CHECKS + 1))
    if ! "$@"; then
        LAST_CMD=
        fail "$what (check: $(printf '%q ' "$@"))"
    fi
}

# wait_for CMD...: runs CMD every 20 ms until it succeeds; fails the test after 2 s.
wait_for() {
    local tries=0
    until "$@"; do
        ((tries++ < 100)) || fail "gave up waiting for: $*"
        sleep 0.02
    done
}

# while_running PID CMD...: runs CMD every 10 ms while process PID lives (at most 20 s);
# returns 0 as soon as CMD succeeds, 1 when PID ended (or the time ran out) first. For
# killing something at a chosen moment of a background run.
while_running() {
    local pid=$1 tries=0
    shift
    while ((tries++ < 2000)); do
        "$@" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.01
    done
    return 1
}

# expect_ok_after MS CMD...: expect_ok CMD, and a check that it took at least MS milliseconds
# (it had to wait for something, a lock another session holds).
expect_ok_after() {
    local min=$1 t0=$EPOCHREALTIME ms
    shift
    expect_ok "$@"
    ms=$(((${EPOCHREALTIME/./} - ${t0/./}) / 1000))
    check "... which waited ($ms ms, at least $min)" test "$ms" -ge "$min"
}

# expect_same WANT GOT MESSAGE [MAX_LINES [MAX_COLUMNS]]: a check that GOT equals WANT; else
# prints their diff (want -> got, cut to MAX_LINES lines of MAX_COLUMNS characters) and fails
# with MESSAGE.
expect_same() {
    CHECKS=$((CHECKS + 1))
    [[ $2 != "$1" ]] || return 0
    LAST_CMD=
    diff <(printf '%s\n' "$1") <(printf '%s\n' "$2") | cut -c1-"${5:-100000}" | head -n "${4:-100000}" |
        sed 's/^/    /' >&2 || true
    fail "$3"
}

# --- apps, configs, repositories ---

# make_app ROOT [RELEASE...]: a Capistrano-style app: ROOT/releases/R (one small file each),
# ROOT/current -> releases/<last R>, ROOT/shared/uploads with two files.
make_app() {
    local root=$1
    shift
    local releases=("$@")
    ((${#releases[@]})) || releases=(20260101T000000Z)
    mkdir -p "$root/releases" "$root/shared/uploads"
    local r
    for r in "${releases[@]}"; do
        mkdir -p "$root/releases/$r/app"
        printf 'release %s\n' "$r" >"$root/releases/$r/REVISION"
        printf 'puts "hello from %s"\n' "$r" >"$root/releases/$r/app/main.rb"
    done
    ln -sfn "releases/${releases[-1]}" "$root/current"
    printf 'avatar\n' >"$root/shared/uploads/avatar.png"
    printf 'report\n' >"$root/shared/uploads/report.pdf"
}

# make_config FILE ROOT REPO KEY STATE [SHARED_PATH...]: the minimal config of DESIGN §3.
make_config() {
    local file=$1 root=$2 repo=$3 key=$4 state=$5
    shift 5
    local shared="" p
    for p in "$@"; do
        shared+="${shared:+,}\"$p\""
    done
    _config_json "$file" "$repo" "$key" "$state" "\"release\": { \"root\": \"$root\", \"shared_paths\": [$shared] }"
}

# db_config FILE DATABASE-JSON...: a config of app demo with these databases and no release,
# on $REPO, $KEY and $STATE.
db_config() {
    local file=$1 dbs
    shift
    dbs=$(printf '%s,\n                 ' "$@")
    _config_json "$file" "$REPO" "$KEY" "$STATE" "\"databases\": [ ${dbs%,*} ]"
}

# _config_json FILE REPO KEY STATE MEMBER: app demo, MEMBER (the release or the databases),
# the repository, key and state, zstd level 3 on 2 threads.
_config_json() {
    cat >"$1" <<EOF
{
  "app": "demo",
  $5,
  "repository": { "url": "$2" },
  "key_file": "$3",
  "state_dir": "$4",
  "compression": { "level": 3, "threads": 2 }
}
EOF
}

# sb_env: a standard layout under $WORK: $APP (make_app), $REPO, $KEY, $STATE, $CFG.
sb_env() {
    APP=$WORK/app
    REPO=$WORK/repo
    KEY=$WORK/key
    STATE=$WORK/state
    CFG=$WORK/snapback.json
    [[ -d $APP ]] || make_app "$APP" 20260101T000000Z 20260102T000000Z
    make_config "$CFG" "$APP" "$REPO" "$KEY" "$STATE" shared/uploads
}

# sb ARGS...: the binary with the test's config.
sb() { "$SNAPBACK" --config "$CFG" --no-progress "$@"; }

# sb_init: keygen + init on the standard layout.
sb_init() {
    expect_ok sb keygen
    expect_ok sb init
}

# sb_snapshot [ARGS...]: takes a snapshot, sets SNAP_ID.
sb_snapshot() {
    expect_ok sb snapshot "$@"
    SNAP_ID=$(printf '%s\n' "$OUT" | tail -n 1)
    [[ $SNAP_ID =~ ^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{4}$ ]] || fail "snapshot printed '$SNAP_ID', not an id"
}

# paused_snapshot_at POINT [SNAPSHOT_ARGS...] -- CMD...: `snapshot SNAPSHOT_ARGS` stopped at
# the test hook POINT (SNAPBACK_TEST_PAUSE_AT, e.g. release-archived or entry:PATH), CMD run
# there, then the snapshot goes on; sets RC, OUT, ERR and ID (the last line it printed).
paused_snapshot_at() {
    local point=$1 pause=$WORK/.paused args=() n pid
    shift
    while (($#)) && [[ $1 != -- ]]; do
        args+=("$1")
        shift
    done
    shift
    rm -f "$pause"
    SNAPBACK_TEST_HOOKS=1 SNAPBACK_TEST_PAUSE_AT="$point:$pause" "$SNAPBACK" --config "$CFG" \
        --no-progress snapshot "${args[@]}" >"$WORK/.out" 2>"$WORK/.err" &
    pid=$!
    for ((n = 0; n < 1500; n++)); do
        [[ -e $pause ]] && break
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.02
    done
    check "the snapshot paused at '$point'" test -e "$pause"
    "$@"
    rm -f "$pause"
    RC=0
    wait "$pid" || RC=$?
    OUT=$(cat "$WORK/.out")
    ERR=$(cat "$WORK/.err")
    ID=$(printf '%s\n' "$OUT" | tail -n 1)
    check "no sanitizer report" test -z "$(grep -E 'AddressSanitizer|LeakSanitizer|runtime error:' "$WORK/.err" || true)"
}

# need_holes: skips the test when the filesystem of $WORK does not keep holes (sparse files).
need_holes() {
    local probe=$WORK/.holes-probe
    truncate -s 16M "$probe"
    local blocks
    blocks=$(stat -c %b "$probe")
    rm -f "$probe"
    ((blocks < 100)) || skip "the filesystem of $WORK does not keep holes"
}

# write_at FILE OFFSET TEXT: writes TEXT into FILE at OFFSET, leaving the rest as it is.
write_at() { printf '%s' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# manifest_count: how many manifests the repository holds (finished snapshots).
manifest_count() {
    find "$REPO/demo/snapshots" -maxdepth 1 -type f -name '*.manifest' 2>/dev/null | wc -l
}

# json_get JSON-TEXT PYTHON-EXPR: evaluates an expression on the parsed value `j`.
json_get() {
    "$PYTHON" -c 'import json,sys; j=json.loads(sys.argv[1]); v=eval(sys.argv[2]); print(json.dumps(v) if isinstance(v,(dict,list,bool)) or v is None else v)' "$1" "$2"
}

# no_tmp_left DIR: no *.snapback-tmp-* and no *.partial under DIR's parent/DIR.
tmp_leftovers() {
    find "$@" -name '*.snapback-tmp-*' 2>/dev/null
}

# tree_digest DIR: a listing of every path with type, mode, size, mtime, link target and a
# content hash, to prove that something did not change.
tree_digest() {
    (cd "$1" && find . -printf '%y %m %s %T@ %U:%G %p -> %l\n' | LC_ALL=C sort) &&
        (cd "$1" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0r md5sum)
}

# compare_trees A B: fails unless the two trees are equal: the same paths, and for each the
# type, mode (with setuid/setgid/sticky), size, mtime (to the ns; SNAPBACK_CMP_NS=0: to the s),
# symlink target, owner (when root), contents byte for byte, and hard-link grouping. The
# roots are compared too (a restored release dir keeps its own mode and mtime) unless a third
# argument "noroot" is given (for tests about something else).
compare_trees() {
    CHECKS=$((CHECKS + 1))
    LAST_CMD=
    "$PYTHON" - "$1" "$2" "${3:-}" <<'PY' || fail "trees differ: $1 vs $2"
import os, stat, sys, filecmp

sys.setrecursionlimit(20000)  # os.walk recurses per level: deep_tree.sh goes 1,500 deep
a_root, b_root = sys.argv[1].encode(), sys.argv[2].encode()
cmp_ns = os.environ.get("SNAPBACK_CMP_NS", "1") == "1"
owners = os.geteuid() == 0
problems = []

def walk(root):
    out = {}
    for d, dirs, files in os.walk(root):
        for n in dirs + files:
            p = os.path.join(d, n)
            out[os.path.relpath(p, root)] = os.lstat(p)
    if sys.argv[3] != "noroot":
        out[b"."] = os.lstat(root)
    return out

def show(p):
    return p.decode("utf-8", "backslashreplace")

A, B = walk(a_root), walk(b_root)
for p in sorted(set(A) - set(B)):
    problems.append("missing in restored tree: %s" % show(p))
for p in sorted(set(B) - set(A)):
    problems.append("extra in restored tree: %s" % show(p))

links_a, links_b = {}, {}
for p in sorted(set(A) & set(B)):
    sa, sb = A[p], B[p]
    ta, tb = stat.S_IFMT(sa.st_mode), stat.S_IFMT(sb.st_mode)
    what = show(p)
    if ta != tb:
        problems.append("%s: type %o vs %o" % (what, ta, tb))
        continue
    if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
        problems.append("%s: mode %04o vs %04o" % (what, stat.S_IMODE(sa.st_mode), stat.S_IMODE(sb.st_mode)))
    if owners and (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
        problems.append("%s: owner %d:%d vs %d:%d" % (what, sa.st_uid, sa.st_gid, sb.st_uid, sb.st_gid))
    ma, mb = (sa.st_mtime_ns, sb.st_mtime_ns) if cmp_ns else (sa.st_mtime_ns // 10**9, sb.st_mtime_ns // 10**9)
    if ma != mb:
        problems.append("%s: mtime %d vs %d%s" % (what, ma, mb, " ns" if cmp_ns else " s"))
    if stat.S_ISLNK(sa.st_mode):
        la, lb = os.readlink(os.path.join(a_root, p)), os.readlink(os.path.join(b_root, p))
        if la != lb:
            problems.append("%s: symlink target %r vs %r" % (what, la, lb))
    elif stat.S_ISCHR(sa.st_mode) or stat.S_ISBLK(sa.st_mode):
        if sa.st_rdev != sb.st_rdev:
            problems.append("%s: device %d vs %d" % (what, sa.st_rdev, sb.st_rdev))
    elif stat.S_ISREG(sa.st_mode):
        if sa.st_size != sb.st_size:
            problems.append("%s: size %d vs %d" % (what, sa.st_size, sb.st_size))
        elif not filecmp.cmp(os.path.join(a_root, p), os.path.join(b_root, p), shallow=False):
            problems.append("%s: contents differ" % what)
        if sa.st_nlink > 1 or sb.st_nlink > 1:
            links_a.setdefault((sa.st_dev, sa.st_ino), []).append(p)
            links_b.setdefault((sb.st_dev, sb.st_ino), []).append(p)

groups_a = sorted(sorted(g) for g in links_a.values() if len(g) > 1)
groups_b = sorted(sorted(g) for g in links_b.values() if len(g) > 1)
if groups_a != groups_b:
    problems.append("hard-link groups differ:\n      source:   %s\n      restored: %s" % (
        [[show(x) for x in g] for g in groups_a], [[show(x) for x in g] for g in groups_b]))

if problems:
    print("%d difference(s) between %s and %s:" % (len(problems), show(a_root), show(b_root)), file=sys.stderr)
    for pr in problems[:50]:
        print("    " + pr, file=sys.stderr)
    if len(problems) > 50:
        print("    ... and %d more" % (len(problems) - 50), file=sys.stderr)
    sys.exit(1)
print("compared %d entries, %d hard-link group(s): equal" % (len(A), len(groups_a)))
PY
}

# flip_byte FILE OFFSET: xors one byte with 0x5a (negative offsets count from the end).
flip_byte() {
    local file=$1 off=$2 size byte
    size=$(stat -c %s "$file")
    ((off >= 0)) || off=$((size + off))
    byte=$(od -An -tu1 -j "$off" -N1 "$file" | tr -d ' \n')
    [[ -n $byte ]] || fail "flip_byte: offset $off is past the end of $file ($size bytes)"
    # shellcheck disable=SC2059
    printf "$(printf '\\%03o' $((byte ^ 0x5A)))" |
        dd of="$file" bs=1 seek="$off" count=1 conv=notrunc status=none
}

# truncate_to FILE SIZE
truncate_to() { truncate -s "$2" "$1"; }

file_size() { stat -c %s "$1"; }

# soft_check MESSAGE CMD...: like check, but the test goes on and fails at the end (in
# soft_report), so that one bug does not hide the next.
SOFT_FAILURES=()
soft_check() {
    local what=$1
    shift
    CHECKS=$((CHECKS + 1))
    if ! "$@"; then
        printf '[%s] SOFT FAIL: %s\n' "$TEST_NAME" "$what" >&2
        SOFT_FAILURES+=("$what")
    fi
}

# soft_report: fails the test when a soft_check failed, listing them all.
soft_report() {
    if ((${#SOFT_FAILURES[@]})); then
        LAST_CMD=
        printf '[%s] %d soft check(s) failed:\n' "$TEST_NAME" "${#SOFT_FAILURES[@]}" >&2
        printf '    - %s\n' "${SOFT_FAILURES[@]}" >&2
        fail "${#SOFT_FAILURES[@]} soft check(s) failed (listed above)"
    fi
}
