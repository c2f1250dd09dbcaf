#!/usr/bin/env bash
# Benchmark (issue #7, never run by meson test): `snapback verify latest` of a snapshot of
# SIZE MiB against reading the same data stored the plain way, `age -d | zstd -d | tar -t`
# over `tar | zstd -3 -T0 | age` of the same release. Both read every stored byte, decrypt,
# decompress and walk every tar entry; snapback also checks the BLAKE2b of every object and
# the entry count against the manifest. Prints wall time, MB/s of plaintext, peak RSS (from
# /usr/bin/time -v) and the ratio snapback/pipeline.
#
#   tests/bench/verify.sh [--size MIB] [--repeat N] [--snapback PATH] [--workdir DIR] [--keep]
#
#   --size MIB     the release: half random bytes (incompressible), half text, in 8 MiB files
#                  and 1000 small ones (default 1024)
#   --repeat N     run each measurement N times, alternating, and report the median
#   --snapback     the binary (default: $SNAPBACK, then build/snapback in the source tree)
#   --workdir      where the data and repositories go (default: a mktemp -d in $TMPDIR)
#   --keep         keep the work directory
#
# The stored files are read once before measuring (page cache warm), so the figures compare
# CPU and pipeline cost rather than the disk.
USAGE_END=19
# shellcheck source=tests/bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SIZE=1024
REPEAT=1
while (($#)); do
    case $1 in
    --size) SIZE=${2:?}; shift ;;
    --repeat) REPEAT=${2:?}; shift ;;
    *) bench_option "$@" || bench_bad_arg "$1"; shift $((BENCH_SHIFT - 1)) ;;
    esac
    shift
done
bench_positive --size "$SIZE" --repeat "$REPEAT"
bench_resolve_sb
bench_install_pipeline_tools

bench_mkwork snapback-bench-verify
trap bench_remove_work EXIT

# --- the release: SIZE MiB ---
REL=bench
APP=$WORK/app
DATA=$APP/releases/$REL
mkdir -p "$DATA/small" "$APP/shared"
ln -s "releases/$REL" "$APP/current"
python3 - "$DATA" "$SIZE" <<'PY'
import os, random, sys
root, size = sys.argv[1], int(sys.argv[2]) << 20
rnd = random.Random(7)
words = [("w%d" % i).encode() for i in range(5000)]
for i in range(1000):
    with open(os.path.join(root, "small", "f%04d.txt" % i), "wb") as f:
        f.write(b" ".join(rnd.choice(words) for _ in range(200)) + b"\n")
chunk, left, n = 8 << 20, size, 0
while left > 0:
    part = min(chunk, left)
    with open(os.path.join(root, "blob%04d.bin" % n), "wb") as f:
        if n % 2:
            f.write(os.urandom(part))
        else:
            line = b" ".join(rnd.choice(words) for _ in range(12)) + b"\n"
            f.write((line * (part // len(line) + 1))[:part])
    left -= part
    n += 1
PY
BYTES=$(du -sb --apparent-size "$DATA" | cut -f1)
FILES=$(find "$DATA" | wc -l)

"$SB" keygen --key-file "$WORK/key" >/dev/null 2>&1
bench_config "$WORK/sb.json" "{ \"root\": \"$APP\", \"shared_paths\": [] }" "" "$WORK/sb-repo" "$WORK/sb-state"
age-keygen -o "$WORK/age.key" 2>/dev/null
RECIPIENT=$(age-keygen -y "$WORK/age.key")

echo "verify benchmark: $((BYTES / 1048576)) MiB in $FILES entries, $REPEAT run(s) each"
bench_machine
echo "tools: $(zstd --version | head -n1); age $(age --version 2>&1)"
echo "storing it both ways (not measured)..."
"$SB" --config "$WORK/sb.json" init >/dev/null 2>&1
"$SB" --config "$WORK/sb.json" --quiet --no-progress snapshot >/dev/null
tar -C "$APP/releases" -cf - "$REL" | zstd -3 -T0 -q | age -r "$RECIPIENT" >"$WORK/out.tar.zst.age"
SB_STORED=$(du -sb "$WORK/sb-repo" | cut -f1)
AGE_STORED=$(stat -c %s "$WORK/out.tar.zst.age")
cat "$WORK/out.tar.zst.age" >/dev/null
find "$WORK/sb-repo" -type f -exec cat {} + >/dev/null

: >"$WORK/results"
for _ in $(seq 1 "$REPEAT"); do
    bench_measure snapback-verify "$SB" --config "$WORK/sb.json" --quiet --no-progress verify latest
    # shellcheck disable=SC2016 # expanded by the inner bash
    bench_measure pipeline-read bash -c 'set -o pipefail; age -d -i "$1" "$2" | zstd -d -q | tar -t >/dev/null' \
        _ "$WORK/age.key" "$WORK/out.tar.zst.age"
done

python3 - "$WORK/results" "$BYTES" "$SB_STORED" "$AGE_STORED" <<'PY'
import statistics, sys
rows, nbytes = {}, int(sys.argv[2])
for line in open(sys.argv[1]):
    label, wall, rss = line.split()[:3]
    rows.setdefault(label, []).append((float(wall), int(rss)))
def med(label, i):
    return statistics.median(r[i] for r in rows[label])
print()
print("%-22s %10s %10s %12s %14s" % ("", "wall s", "MB/s", "peak RSS", "stored"))
for label, stored in (("snapback-verify", int(sys.argv[3])), ("pipeline-read", int(sys.argv[4]))):
    wall = med(label, 0)
    print("%-22s %10.2f %10.1f %9.1f MiB %10.1f MiB" % (label, wall, nbytes / 1e6 / wall if wall else 0,
                                                       med(label, 1) / 1024, stored / 1048576))
print("ratio snapback/pipeline (wall): %.2f" % (med("snapback-verify", 0) / med("pipeline-read", 0)))
PY
