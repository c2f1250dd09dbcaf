#!/usr/bin/env bash
# Benchmark (issue #2, never run by meson test): snapback snapshot + restore of DIR, against
# the same data through `tar | zstd -3 -T0 | age` and back, and restic's first backup and
# restore when restic is installed. Prints wall time, MB/s, peak RSS (from /usr/bin/time -v)
# and the ratios snapback/pipeline (issue #2's target: <= 0.9 for both directions, peak RSS
# <= 64 MiB).
#
#   tests/bench/snapshot.sh DIR [--repeat N] [--snapback PATH] [--workdir DIR] [--keep]
#                               [--snapshot-only]
#
#   --repeat N     run every measurement N times, alternating tools, and report the median
#   --snapback     the binary (default: $SNAPBACK, then build/snapback in the source tree)
#   --workdir      where repositories and restores go (default: a mktemp -d in $TMPDIR; put it
#                  on the same kind of disk as DIR for fair numbers)
#   --keep         keep the work directory
#   --snapshot-only  time the snapshots only (no restores, no restic): a tree of many small
#                  files spends most of a restore creating inodes, which takes minutes
#
# DIR becomes the release of a temp app: bind-mounted into its releases/ when run as root and
# mount works, else copied there (all tools then read the copy). The page cache is warmed
# first, so the numbers compare CPU and pipeline cost rather than the disk. The peak RSS of a
# shell pipeline is that of its largest process, as getrusage(RUSAGE_CHILDREN) reports it.
set -euo pipefail

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SRC=
REPEAT=1
SB=${SNAPBACK:-$ROOT/build/snapback}
WORKBASE=${TMPDIR:-/tmp}
KEEP=0
SNAPSHOT_ONLY=0
while (($#)); do
    case $1 in
    --repeat)
        REPEAT=${2:?}
        shift
        ;;
    --snapback)
        SB=${2:?}
        shift
        ;;
    --workdir)
        WORKBASE=${2:?}
        shift
        ;;
    --keep) KEEP=1 ;;
    --snapshot-only) SNAPSHOT_ONLY=1 ;;
    -h | --help)
        usage
        exit 0
        ;;
    -*)
        echo "snapshot.sh: unknown option '$1'" >&2
        exit 64
        ;;
    *)
        [[ -z $SRC ]] || {
            echo "snapshot.sh: one DIR only" >&2
            exit 64
        }
        SRC=$1
        ;;
    esac
    shift
done
[[ -n $SRC && -d $SRC ]] || {
    usage >&2
    exit 64
}
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || {
    echo "--repeat needs a positive number" >&2
    exit 64
}
SRC=$(cd "$SRC" && pwd)
[[ -x $SB ]] || {
    echo "snapback binary '$SB' not found: build it (ninja -C build) or pass --snapback" >&2
    exit 69
}
SB=$(cd "$(dirname "$SB")" && pwd)/$(basename "$SB")

# tools: /usr/bin/time (package time), zstd, age, python3 (the report); restic is optional
need_pkgs=()
[[ -x /usr/bin/time ]] || need_pkgs+=(time)
command -v zstd >/dev/null || need_pkgs+=(zstd)
command -v age >/dev/null || need_pkgs+=(age)
command -v python3 >/dev/null || need_pkgs+=(python3)
if ((${#need_pkgs[@]})); then
    if [[ $(id -u) == 0 ]]; then
        echo "installing ${need_pkgs[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null ||
            { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >/dev/null; }
    else
        echo "missing: ${need_pkgs[*]} (apt-get install ${need_pkgs[*]}, or run as root)" >&2
        exit 69
    fi
fi
HAVE_RESTIC=0
command -v restic >/dev/null && HAVE_RESTIC=1

W=$(mktemp -d "$WORKBASE/snapback-bench.XXXXXX")
MOUNTED=
cleanup() {
    [[ -n $MOUNTED ]] && umount "$MOUNTED" 2>/dev/null
    if ((KEEP)); then
        echo "work directory kept: $W"
    else
        rm -rf "$W"
    fi
}
trap cleanup EXIT

# --- the app: DIR as its release ---
REL=bench
APP=$W/app
mkdir -p "$APP/releases/$REL" "$APP/shared"
how="copied"
if [[ $(id -u) == 0 ]] && mount --bind "$SRC" "$APP/releases/$REL" 2>/dev/null; then
    MOUNTED=$APP/releases/$REL
    how="bind-mounted"
else
    rmdir "$APP/releases/$REL"
    cp -a "$SRC" "$APP/releases/$REL"
fi
ln -s "releases/$REL" "$APP/current"
DATA=$APP/releases/$REL
BYTES=$(du -sb --apparent-size "$DATA" | cut -f1)
FILES=$(find "$DATA" | wc -l)

"$SB" keygen --key-file "$W/sb.key" >/dev/null 2>&1
age-keygen -o "$W/age.key" 2>/dev/null
RECIPIENT=$(age-keygen -y "$W/age.key")
printf 'bench-password\n' >"$W/restic.pass"

sb_config() { # $1: run number
    cat >"$W/sb-$1.json" <<EOF
{ "app": "bench", "release": { "root": "$APP", "shared_paths": [] },
  "repository": { "url": "$W/sb-repo-$1" }, "key_file": "$W/sb.key",
  "state_dir": "$W/sb-state-$1", "compression": { "level": 3, "threads": 0 } }
EOF
}

# measure LABEL CMD...: runs CMD under /usr/bin/time -v; appends "label wall_s rss_kib" to
# $W/results; fails loudly when CMD fails.
measure() {
    local label=$1
    shift
    if ! /usr/bin/time -v -o "$W/time.txt" "$@" >"$W/cmd.out" 2>"$W/cmd.err"; then
        echo "FAILED: $label: $*" >&2
        tail -n 20 "$W/cmd.err" >&2
        exit 1
    fi
    local wall rss
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {
        n = split($2, p, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + p[i]; print s }' "$W/time.txt")
    rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time.txt")
    echo "$label $wall $rss" >>"$W/results"
}

echo "snapback benchmark: $SRC ($how), $((BYTES / 1048576)) MiB in $FILES entries, $REPEAT run(s) each"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); snapback: $("$SB" --version)"
echo "tools: $(zstd --version | head -n1); age $(age --version 2>&1); restic: $( ((HAVE_RESTIC)) && restic version | head -n1 || echo 'not installed')"
echo "warming the page cache..."
tar -C "$APP/releases" -cf - "$REL" | cat >/dev/null
: >"$W/results"

for run in $(seq 1 "$REPEAT"); do
    # snapback: a fresh repository each run, so the release is archived every time
    sb_config "$run"
    "$SB" --config "$W/sb-$run.json" init >/dev/null 2>&1
    measure snapback-snapshot "$SB" --config "$W/sb-$run.json" --quiet --no-progress snapshot
    id=$(tail -n1 "$W/cmd.out")
    du -sb "$W/sb-repo-$run" | cut -f1 >"$W/size.snapback"
    ((SNAPSHOT_ONLY)) ||
        measure snapback-restore "$SB" --config "$W/sb-$run.json" --quiet --no-progress restore "$id" --target "$W/restore-sb"
    rm -rf "$W/restore-sb" "$W/sb-repo-$run" "$W/sb-state-$run"

    # shellcheck disable=SC2016 # expanded by the inner bash
    measure pipeline-snapshot bash -c 'set -o pipefail; tar -C "$1" -cf - "$2" | zstd -3 -T0 -q | age -r "$3" >"$4"' \
        _ "$APP/releases" "$REL" "$RECIPIENT" "$W/out.tar.zst.age"
    stat -c %s "$W/out.tar.zst.age" >"$W/size.pipeline"
    mkdir -p "$W/restore-pipe"
    # shellcheck disable=SC2016
    ((SNAPSHOT_ONLY)) ||
        measure pipeline-restore bash -c 'set -o pipefail; age -d -i "$1" "$2" | zstd -d -q | tar -x -C "$3"' \
        _ "$W/age.key" "$W/out.tar.zst.age" "$W/restore-pipe"
    rm -rf "$W/restore-pipe" "$W/out.tar.zst.age"

    if ((HAVE_RESTIC && !SNAPSHOT_ONLY)); then
        export RESTIC_PASSWORD_FILE=$W/restic.pass RESTIC_CACHE_DIR=$W/restic-cache
        restic init --repo "$W/restic-repo" >/dev/null 2>&1
        measure restic-backup restic --repo "$W/restic-repo" --quiet backup "$DATA"
        du -sb "$W/restic-repo" | cut -f1 >"$W/size.restic"
        measure restic-restore restic --repo "$W/restic-repo" --quiet restore latest --target "$W/restore-restic"
        rm -rf "$W/restore-restic" "$W/restic-repo" "$W/restic-cache"
    fi
done

# --- report: medians ---
python3 - "$W/results" "$BYTES" "$W" <<'PY'
import os, statistics, sys
rows, nbytes, w = {}, int(sys.argv[2]), sys.argv[3]
for line in open(sys.argv[1]):
    label, wall, rss = line.split()
    rows.setdefault(label, []).append((float(wall), int(rss)))
def med(label, i):
    return statistics.median(r[i] for r in rows[label]) if label in rows else None
def size(tool):
    p = os.path.join(w, "size." + tool)
    return int(open(p).read()) if os.path.exists(p) else None
print()
print("%-20s %9s %10s %13s %12s" % ("", "wall (s)", "MB/s", "peak RSS MiB", "stored MiB"))
for label in ("snapback-snapshot", "pipeline-snapshot", "restic-backup",
              "snapback-restore", "pipeline-restore", "restic-restore"):
    if label not in rows:
        continue
    wall, rss = med(label, 0), med(label, 1)
    tool = label.split("-")[0]
    st = size(tool) if label.endswith(("snapshot", "backup")) else None
    print("%-20s %9.2f %10.1f %13.1f %12s" % (label, wall, nbytes / 1e6 / max(wall, 1e-9), rss / 1024,
                                             "%.1f" % (st / 1048576) if st else ""))
print()
for op, other in (("snapshot", "pipeline-snapshot"), ("restore", "pipeline-restore")):
    if other not in rows:
        continue
    a, b = med("snapback-" + op, 0), med(other, 0)
    print("snapback %-8s / tar|zstd|age: %.2f  (target <= 0.90)" % (op, a / b if b else float("nan")))
if "restic-backup" in rows:
    print("snapback snapshot / restic backup: %.2f" % (med("snapback-snapshot", 0) / med("restic-backup", 0)))
    print("snapback restore  / restic restore: %.2f" % (med("snapback-restore", 0) / med("restic-restore", 0)))
rss = max(med(l, 1) for l in ("snapback-snapshot", "snapback-restore") if l in rows) / 1024
print("snapback peak RSS: %.1f MiB  (target <= 64)" % rss)
PY
