#!/usr/bin/env bash
# The whole test suite in one command (and what .ci/run calls):
#
#   contrib/test.sh [--no-install] [--only STAGE[,STAGE...]]
#
# 1. installs what the tests need that is missing (Debian 12, apt-get, as root);
# 2. format: clang-format --dry-run --Werror on src/ include/ tests/ (*.c, *.h);
# 3. asan: a --werror build with ASan+UBSan in build-asan/, and `meson test` of every suite
#    (unit, integration, fuzz) with sanitizer reports fatal;
# 4. valgrind: a --werror release build in build-valgrind/, and the unit suite under
#    valgrind (definite leaks and memory errors fail);
# 5. tsan: a --werror ThreadSanitizer build in build-tsan/, the unit suite (which runs the
#    threaded object chain) and four integration tests that snapshot, restore and verify
#    through every pipeline thread and the threaded digest walk (fault_points fails a helper
#    thread's start and a stat inside it), with any data race fatal;
# 6. fuzz: a clang ASan+UBSan build in build-fuzz/ whose libFuzzer targets (object decoder,
#    manifest, config and zone parsers) run coverage-guided for FUZZ_SECONDS each (default
#    30; set it higher for a long manual run, e.g. FUZZ_SECONDS=1800).
# Every stage runs even when an earlier one failed (unless it needs that one's build); the
# summary at the end lists each stage's result, and the exit status is non-zero when any
# failed. STAGE is one of format, asan, valgrind, tsan, fuzz. Environment: MESON_TEST_ARGS
# adds arguments to the asan, valgrind and tsan `meson test` runs (e.g. "--suite
# integration"), FUZZ_SECONDS is passed to the builds (-Dfuzz_seconds) when set.
# shellcheck disable=SC2317 # the stage functions are called through `stage`
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
INSTALL=1
STAGES=format,asan,valgrind,tsan,fuzz
while (($#)); do
    case $1 in
    --no-install) INSTALL=0 ;;
    --only)
        STAGES=${2:?--only needs a list of stages}
        shift
        ;;
    -h | --help)
        sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "test.sh: unknown option '$1' (see --help)" >&2
        exit 64
        ;;
    esac
    shift
done

# Build and test dependencies. Commands the tests call: python3 (helpers, ctypes to
# libsodium/libzstd), flock (util-linux), od/dd/md5sum/stat/truncate (coreutils), diff
# (diffutils), tar and zstd (roundtrip reads the objects without snapback too); sshd,
# paramiko, ProFTPD (mod_sftp), Dropbear, PostgreSQL, MariaDB and sqlite3 for the integration tests of
# those backends; valgrind, clang (fuzz targets) and clang-format for the other stages.
PACKAGES=(build-essential meson ninja-build pkg-config libarchive-dev libzstd-dev
    libsodium-dev libcjson-dev libssh2-1-dev libsqlite3-dev
    python3 clang libclang-rt-14-dev clang-format util-linux coreutils diffutils tar valgrind acl attr
    zstd python3-paramiko proftpd-core proftpd-mod-crypto dropbear-bin
    openssh-server openssh-client postgresql mariadb-server sqlite3)

export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1:print_stacktrace=1:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export LC_ALL=C.UTF-8
export DEBIAN_FRONTEND=noninteractive

declare -A RESULT
ORDER=()
FAILED=0
T_START=$SECONDS

banner() { printf '\n======== %s ========\n' "$*"; }

# stage NAME CMD...: runs a stage, records ok/FAILED and its time, never stops the script.
stage() {
    local name=$1
    shift
    local t0=$SECONDS rc=0
    banner "$name"
    "$@" || rc=$?
    ORDER+=("$name")
    if ((rc == 0)); then
        RESULT[$name]="ok ($((SECONDS - t0)) s)"
    else
        RESULT[$name]="FAILED (exit $rc, $((SECONDS - t0)) s)"
        FAILED=1
    fi
    printf -- '-------- %s: %s\n' "$name" "${RESULT[$name]}"
    return 0
}

want() { [[ ,$STAGES, == *",$1,"* ]]; }

install_missing() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if ((${#missing[@]} == 0)); then
        echo "all ${#PACKAGES[@]} packages are installed"
        return 0
    fi
    echo "missing: ${missing[*]}"
    if ((INSTALL == 0)); then
        echo "--no-install given: continuing without them" >&2
        return 0
    fi
    if [[ $(id -u) != 0 ]]; then
        echo "not root: cannot install them; run 'sudo $0'" >&2
        return 1
    fi
    # Services installed here must not start (or fail to start) inside a container or CI.
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        made_policy=1
    fi
    local rc=0
    { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } || rc=$?
    ((made_policy)) && rm -f "$policy"
    if ((rc != 0)); then
        echo "apt-get failed (exit $rc) while installing: ${missing[*]}" >&2
        return "$rc"
    fi
}

format_check() {
    if ! command -v clang-format >/dev/null; then
        echo "clang-format is not installed" >&2
        return 1
    fi
    clang-format --version
    local files
    mapfile -t files < <(find src include tests -type f \( -name '*.c' -o -name '*.h' \) | LC_ALL=C sort)
    echo "checking ${#files[@]} files against .clang-format"
    clang-format --dry-run --Werror "${files[@]}"
}

# setup_build DIR OPTIONS...: configures DIR (or reconfigures an existing one with OPTIONS).
setup_build() {
    local dir=$1
    shift
    local extra=()
    [[ -n ${FUZZ_SECONDS:-} ]] && extra+=("-Dfuzz_seconds=$FUZZ_SECONDS")
    if [[ -f $dir/build.ninja ]]; then
        meson setup --reconfigure "$dir" "$@" "${extra[@]}"
    else
        meson setup "$dir" "$@" "${extra[@]}"
    fi
}

asan() {
    setup_build build-asan -Db_sanitize=address,undefined -Db_lundef=false --werror || return
    ninja -C build-asan || return
    # shellcheck disable=SC2086
    meson test -C build-asan --print-errorlogs ${MESON_TEST_ARGS:-}
}

valgrind_unit() {
    setup_build build-valgrind --buildtype=release --werror || return
    ninja -C build-valgrind || return
    # SNAPBACK_TEST_LIGHT: the unit tests' long differential and damage loops sample fewer
    # points under valgrind (30x slower there); the asan stage runs them whole
    # shellcheck disable=SC2086
    SNAPBACK_TEST_LIGHT=1 meson test -C build-valgrind --suite unit --print-errorlogs \
        --wrap='valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite --track-origins=yes' \
        ${MESON_TEST_ARGS:-}
}

tsan() {
    setup_build build-tsan -Db_sanitize=thread --werror || return
    ninja -C build-tsan || return
    export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
    # SNAPBACK_TEST_LIGHT as in valgrind_unit: TSan looks for races, which the unit tests of
    # the thread stages and a sample of the damage loops exercise as well as all of them
    # shellcheck disable=SC2086
    SNAPBACK_TEST_LIGHT=1 meson test -C build-tsan --suite unit --print-errorlogs ${MESON_TEST_ARGS:-} || return
    meson test -C build-tsan --print-errorlogs dedupe release_changed tree_churn fault_points
}

# libFuzzer needs clang: the asan stage's gcc build runs the same targets through
# tests/fuzz/driver.c (corpus replay and blind mutations); this one is coverage-guided, with
# the library instrumented (tests/fuzz/meson.build), FUZZ_SECONDS (default 30) per target.
fuzz() {
    if ! command -v clang >/dev/null; then
        echo "clang is not installed: the libFuzzer targets cannot be built" >&2
        return 1
    fi
    local secs=()
    [[ -n ${FUZZ_SECONDS:-} ]] || secs=(-Dfuzz_seconds=30)
    CC=clang setup_build build-fuzz -Db_sanitize=address,undefined -Db_lundef=false --werror \
        "${secs[@]}" || return
    ninja -C build-fuzz || return
    meson test -C build-fuzz --suite fuzz --print-errorlogs
}

banner "snapback test suite in $ROOT"
echo "stages: $STAGES; $(nproc) cores; $(uname -srm); user $(id -un)"
stage dependencies install_missing
if ! command -v meson >/dev/null || ! command -v ninja >/dev/null; then
    echo "meson or ninja is missing and could not be installed: nothing can be built" >&2
    exit 1
fi
want format && stage format format_check
want asan && stage "asan+ubsan (all suites)" asan
want valgrind && stage "valgrind (unit suite)" valgrind_unit
want tsan && stage "tsan (unit + 4 integration)" tsan
want fuzz && stage "fuzz (libFuzzer, clang)" fuzz

banner "summary ($((SECONDS - T_START)) s)"
for name in "${ORDER[@]}"; do
    printf '  %-28s %s\n' "$name" "${RESULT[$name]}"
done
for dir in build-asan build-valgrind build-tsan build-fuzz; do
    [[ -f $dir/meson-logs/testlog.txt ]] && echo "  test log: $ROOT/$dir/meson-logs/testlog.txt"
done
exit "$FAILED"
