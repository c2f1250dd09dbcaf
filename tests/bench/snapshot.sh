#!/usr/bin/env bash
# Benchmark (issue #2, never run by meson test): snapback snapshot + restore of DIR, against
# the same data through `tar | zstd -3 -T0 | age` and back (and that pipeline with an fsync of
# its archive, as snapback makes every object durable), and restic's first backup and
# restore when restic is installed. Prints wall time, MB/s, CPU time and peak RSS (from
# /usr/bin/time -v), and the ratios snapback/pipeline of each round and their median (issue
# #2's target: <= 0.9 for both directions, peak RSS <= 64 MiB).
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
USAGE_END=23
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SRC=
REPEAT=1
SNAPSHOT_ONLY=0
while (($#)); do
    case $1 in
    --repeat) REPEAT=${2:?}; shift ;;
    --snapshot-only) SNAPSHOT_ONLY=1 ;;
    -*) bench_option "$@" || bench_bad_arg "$1"; shift $((BENCH_SHIFT - 1)) ;;
    *)
        [[ -z $SRC ]] || { echo "snapshot.sh: one DIR only" >&2; exit 64; }
        SRC=$1
        ;;
    esac
    shift
done
[[ -n $SRC && -d $SRC ]] || { usage >&2; exit 64; }
bench_positive --repeat "$REPEAT"
SRC=$(cd "$SRC" && pwd)
bench_resolve_sb
bench_install_pipeline_tools # restic is optional
HAVE_RESTIC=0
command -v restic >/dev/null && HAVE_RESTIC=1

bench_mkwork snapback-bench
MOUNTED=
cleanup() {
    [[ -n $MOUNTED ]] && umount "$MOUNTED" 2>/dev/null
    bench_remove_work
}
trap cleanup EXIT

# --- the app: DIR as its release ---
REL=bench
APP=$WORK/app
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

"$SB" keygen --key-file "$WORK/key" >/dev/null 2>&1
age-keygen -o "$WORK/age.key" 2>/dev/null
RECIPIENT=$(age-keygen -y "$WORK/age.key")
printf 'bench-password\n' >"$WORK/restic.pass"

sb_config() { # $1: run number
    bench_config "$WORK/sb-$1.json" "{ \"root\": \"$APP\", \"shared_paths\": [] }" "" "$WORK/sb-repo-$1" "$WORK/sb-state-$1"
}

echo "snapback benchmark: $SRC ($how), $((BYTES / 1048576)) MiB in $FILES entries, $REPEAT run(s) each"
bench_machine
echo "tools: $(zstd --version | head -n1); age $(age --version 2>&1); restic: $( ((HAVE_RESTIC)) && restic version | head -n1 || echo 'not installed')"
echo "warming the page cache..."
tar -C "$APP/releases" -cf - "$REL" | cat >/dev/null
: >"$WORK/results"

for run in $(seq 1 "$REPEAT"); do
    # snapback: a fresh repository each run, so the release is archived every time
    sb_config "$run"
    "$SB" --config "$WORK/sb-$run.json" init >/dev/null 2>&1
    bench_measure snapback-snapshot "$SB" --config "$WORK/sb-$run.json" --quiet --no-progress snapshot
    id=$(tail -n1 "$WORK/cmd.out")
    du -sb "$WORK/sb-repo-$run" | cut -f1 >"$WORK/size.snapback"
    ((SNAPSHOT_ONLY)) ||
        bench_measure snapback-restore "$SB" --config "$WORK/sb-$run.json" --quiet --no-progress restore "$id" --target "$WORK/restore-sb"
    rm -rf "$WORK/restore-sb" "$WORK/sb-repo-$run" "$WORK/sb-state-$run"

    # shellcheck disable=SC2016 # expanded by the inner bash
    bench_measure pipeline-snapshot bash -c 'set -o pipefail; tar -C "$1" -cf - "$2" | zstd -3 -T0 -q | age -r "$3" >"$4"' \
        _ "$APP/releases" "$REL" "$RECIPIENT" "$WORK/out.tar.zst.age"
    stat -c %s "$WORK/out.tar.zst.age" >"$WORK/size.pipeline"
    rm -f "$WORK/out.tar.zst.age"
    # the same, made durable as snapback makes its objects (fsync before it counts as
    # stored): on a disk the write-back of the archive is part of the time
    # shellcheck disable=SC2016
    bench_measure pipeline-snapshot+fsync bash -c 'set -o pipefail; tar -C "$1" -cf - "$2" | zstd -3 -T0 -q | age -r "$3" >"$4" && sync "$4"' \
        _ "$APP/releases" "$REL" "$RECIPIENT" "$WORK/out.tar.zst.age"
    mkdir -p "$WORK/restore-pipe"
    # shellcheck disable=SC2016
    ((SNAPSHOT_ONLY)) ||
        bench_measure pipeline-restore bash -c 'set -o pipefail; age -d -i "$1" "$2" | zstd -d -q | tar -x -C "$3"' \
        _ "$WORK/age.key" "$WORK/out.tar.zst.age" "$WORK/restore-pipe"
    rm -rf "$WORK/restore-pipe" "$WORK/out.tar.zst.age"

    if ((HAVE_RESTIC && !SNAPSHOT_ONLY)); then
        export RESTIC_PASSWORD_FILE=$WORK/restic.pass RESTIC_CACHE_DIR=$WORK/restic-cache
        restic init --repo "$WORK/restic-repo" >/dev/null 2>&1
        bench_measure restic-backup restic --repo "$WORK/restic-repo" --quiet backup "$DATA"
        du -sb "$WORK/restic-repo" | cut -f1 >"$WORK/size.restic"
        bench_measure restic-restore restic --repo "$WORK/restic-repo" --quiet restore latest --target "$WORK/restore-restic"
        rm -rf "$WORK/restore-restic" "$WORK/restic-repo" "$WORK/restic-cache"
    fi
done

# --- report: medians, and the ratio of each round ---
# The tools alternate, so the i-th run of snapback and of the pipeline ran a few seconds apart:
# the ratio of each such pair cancels most of the VM's drift (its speed moved by 10-25 %
# between minutes in every session), which the ratio of two medians does not. The target is
# judged by the median of those paired ratios and by how many rounds met it.
python3 - "$WORK/results" "$BYTES" "$WORK" <<'PY'
import os, statistics, sys
rows, nbytes, w = {}, int(sys.argv[2]), sys.argv[3]
for line in open(sys.argv[1]):
    label, wall, rss, cpu = line.split()
    rows.setdefault(label, []).append((float(wall), int(rss), float(cpu)))
def med(label, i):
    return statistics.median(r[i] for r in rows[label]) if label in rows else None
def size(tool):
    p = os.path.join(w, "size." + tool)
    return int(open(p).read()) if os.path.exists(p) else None
print()
print("%-24s %9s %10s %9s %13s %12s" % ("", "wall (s)", "MB/s", "CPU (s)", "peak RSS MiB", "stored MiB"))
for label in ("snapback-snapshot", "pipeline-snapshot", "pipeline-snapshot+fsync", "restic-backup",
              "snapback-restore", "pipeline-restore", "restic-restore"):
    if label not in rows:
        continue
    wall, rss, cpu = med(label, 0), med(label, 1), med(label, 2)
    tool = label.split("-")[0]
    st = size(tool) if label.endswith(("snapshot", "backup")) else None
    print("%-24s %9.2f %10.1f %9.2f %13.1f %12s" % (label, wall, nbytes / 1e6 / max(wall, 1e-9), cpu,
                                                   rss / 1024, "%.1f" % (st / 1048576) if st else ""))
print()
for op, other in (("snapshot", "pipeline-snapshot"), ("restore", "pipeline-restore"),
                  ("snapshot", "pipeline-snapshot+fsync")):
    mine = "snapback-" + op
    if other not in rows or mine not in rows:
        continue
    pairs = [a[0] / b[0] for a, b in zip(rows[mine], rows[other]) if b[0] > 0]
    cpu = [a[2] / b[2] for a, b in zip(rows[mine], rows[other]) if b[2] > 0]
    met = sum(1 for r in pairs if r <= 0.90)
    print("snapback %-8s / %-23s wall %.2f (median of the %d rounds' ratios; %d of %d <= 0.90), CPU %.2f"
          % (op, other.replace("pipeline-" + op, "tar|zstd|age"), statistics.median(pairs), len(pairs),
             met, len(pairs), statistics.median(cpu) if cpu else float("nan")))
    print("    per round: %s" % " ".join("%.2f" % r for r in pairs))
if "restic-backup" in rows:
    print("snapback snapshot / restic backup: %.2f" % (med("snapback-snapshot", 0) / med("restic-backup", 0)))
    print("snapback restore  / restic restore: %.2f" % (med("snapback-restore", 0) / med("restic-restore", 0)))
print("target (issue #2): each ratio <= 0.90")
rss = max(med(l, 1) for l in ("snapback-snapshot", "snapback-restore") if l in rows) / 1024
print("snapback peak RSS: %.1f MiB  (target <= 64)" % rss)
print()
print("every run (wall s):")
for label, runs in rows.items():
    print("  %-24s %s" % (label, " ".join("%.2f" % r[0] for r in runs)))
PY
