# shellcheck shell=bash
# Shared pieces of the benchmarks in tests/bench/ (run by hand, never by meson test): the
# options every benchmark takes, finding the binary, the tools, the work directory, the
# snapback config, GNU time measurement and the median. A benchmark sets USAGE_END (the last
# line of its header comment, which --help prints) and sources this file first:
#
#   USAGE_END=19
#   # shellcheck source=tests/bench/lib.sh
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# then parses its own options, handing the rest to bench_option:
#
#   while (($#)); do
#       case $1 in
#       --size) SIZE=${2:?}; shift ;;
#       *) bench_option "$@" || bench_bad_arg "$1"; shift $((BENCH_SHIFT - 1)) ;;
#       esac
#       shift
#   done
#   bench_resolve_sb
set -euo pipefail

BENCH_NAME=$(basename "$0")
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# Debian's python3 starts in 40 ms; a pyenv shim earlier in PATH can take 170 ms.
if [[ -x /usr/bin/python3 ]]; then PYTHON=/usr/bin/python3; else PYTHON=python3; fi
SB=${SNAPBACK:-$ROOT/build/snapback}
WORKBASE=${TMPDIR:-/tmp}
KEEP=0
WORK=
BENCH_SHIFT=1

# usage: the benchmark's header comment, lines 2 to USAGE_END.
usage() { sed -n "2,${USAGE_END:?}p" "$0" | sed 's/^# \{0,1\}//'; }

# bench_option ARGS...: takes an option every benchmark has (--snapback PATH, --workdir DIR,
# --keep, -h/--help) from the front of ARGS and sets BENCH_SHIFT to how many arguments it
# used; returns 1 for any other argument.
# shellcheck disable=SC2034 # BENCH_SHIFT: read by the benchmark's option loop
bench_option() {
    BENCH_SHIFT=1
    case $1 in
    --snapback) SB=${2:?}; BENCH_SHIFT=2 ;;
    --workdir) WORKBASE=${2:?}; BENCH_SHIFT=2 ;;
    --keep) KEEP=1 ;;
    -h | --help) usage; exit 0 ;;
    *) return 1 ;;
    esac
}

# bench_bad_arg ARG: an argument the benchmark does not take: says so, exits 64.
bench_bad_arg() {
    echo "$BENCH_NAME: unknown argument '$1' (see --help)" >&2
    exit 64
}

# bench_positive OPTION VALUE [OPTION VALUE...]: exits 64 unless every VALUE is a positive
# whole number.
bench_positive() {
    while (($#)); do
        [[ $2 =~ ^[1-9][0-9]*$ ]] || { echo "$BENCH_NAME: $1 needs a positive number" >&2; exit 64; }
        shift 2
    done
}

# bench_resolve_sb: makes $SB (--snapback, $SNAPBACK or build/snapback) an absolute path to
# an executable, or exits 69.
bench_resolve_sb() {
    [[ -x $SB ]] || {
        echo "$BENCH_NAME: snapback binary '$SB' not found: build it (ninja -C build) or pass --snapback" >&2
        exit 69
    }
    SB=$(cd "$(dirname "$SB")" && pwd)/$(basename "$SB")
}

# bench_require [--hint TEXT] TOOL...: exits 69 unless every TOOL is installed.
bench_require() {
    local hint="" tool
    if [[ ${1:-} == --hint ]]; then
        hint=" ($2)"
        shift 2
    fi
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$BENCH_NAME: '$tool' is not installed$hint" >&2; exit 69; }
    done
}

# bench_install_pipeline_tools: /usr/bin/time (package time), zstd, age and python3,
# apt-get installed when missing and run as root; else exits 69.
bench_install_pipeline_tools() {
    local need_pkgs=()
    [[ -x /usr/bin/time ]] || need_pkgs+=(time)
    command -v zstd >/dev/null || need_pkgs+=(zstd)
    command -v age >/dev/null || need_pkgs+=(age)
    command -v python3 >/dev/null || need_pkgs+=(python3)
    ((${#need_pkgs[@]})) || return 0
    if [[ $(id -u) == 0 ]]; then
        echo "installing ${need_pkgs[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null; }
    else
        echo "missing: ${need_pkgs[*]} (apt-get install ${need_pkgs[*]}, or run as root)" >&2
        exit 69
    fi
}

# bench_mkwork NAME: WORK=a new mktemp -d under --workdir (mode 0755, for a server that runs
# as another user).
bench_mkwork() {
    WORK=$(mktemp -d "$WORKBASE/$1.XXXXXX")
    chmod 0755 "$WORK"
}

# bench_remove_work: removes $WORK, or with --keep says where it is (for the EXIT trap).
bench_remove_work() {
    [[ -n $WORK ]] || return 0
    if ((KEEP)); then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}

# bench_pg_init NAME: for a benchmark with a throwaway PostgreSQL cluster (tests/harness/pg.sh):
# $WORK (bench_mkwork NAME), pg.sh sourced, an EXIT trap that stops the cluster (when
# pg_setup started one) and removes $WORK, keeping the exit status.
bench_pg_init() {
    # shellcheck disable=SC2034 # read by tests/harness/pg.sh
    TEST_NAME=$1
    bench_mkwork "snapback-$1"
    # shellcheck source=tests/harness/pg.sh
    source "$ROOT/tests/harness/pg.sh"
    trap _bench_pg_cleanup EXIT
}
_bench_pg_cleanup() {
    local status=$?
    pg_cleanup
    bench_remove_work
    exit "$status"
}

# bench_config FILE RELEASE-JSON DATABASES-JSON [REPO [STATE]]: the snapback config of app
# "bench": release and databases as given (either may be empty), the repository REPO
# (default $WORK/repo), the key $WORK/key, the state STATE (default $WORK/state), zstd -3
# on all cores.
bench_config() {
    local release="" dbs=""
    [[ -z $2 ]] || release="\"release\": $2, "
    [[ -z $3 ]] || dbs="\"databases\": [ $3 ], "
    printf '{ "app": "bench", %s%s"repository": { "url": "%s" }, "key_file": "%s",\n  "state_dir": "%s", "compression": { "level": 3, "threads": 0 } }\n' \
        "$release" "$dbs" "${4:-$WORK/repo}" "$WORK/key" "${5:-$WORK/state}" >"$1"
}

# bench_machine: a line on the machine and the binary.
bench_machine() {
    echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); snapback: $("$SB" --version)"
}

# bench_measure LABEL CMD...: runs CMD under /usr/bin/time -v (stdout in $WORK/cmd.out,
# stderr in $WORK/cmd.err); appends "LABEL wall_s rss_kib cpu_s" to $WORK/results (cpu_s: user
# + system time of CMD and its children, steadier than the wall time on a shared VM); exits
# loudly when CMD fails.
bench_measure() {
    local label=$1
    shift
    # the write-back of what the previous step wrote or removed (a restore of 69,000 files
    # keeps an ext4 disk busy for many seconds) must not land in this step's time
    sync
    if ! /usr/bin/time -v -o "$WORK/time.txt" "$@" >"$WORK/cmd.out" 2>"$WORK/cmd.err"; then
        echo "FAILED: $label: $*" >&2
        tail -n 20 "$WORK/cmd.err" >&2
        exit 1
    fi
    local wall rss cpu
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$WORK/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$WORK/time.txt")
    cpu=$(awk -F': ' '/(User|System) time \(seconds\)/ {s += $2} END {print s}' "$WORK/time.txt")
    echo "$label $wall $rss $cpu" >>"$WORK/results"
}

# median: the median of the numbers on stdin (separated by spaces or newlines).
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
