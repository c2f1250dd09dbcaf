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
set -euo pipefail

usage() { sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; }
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SIZE=1024
REPEAT=1
SB=${SNAPBACK:-$ROOT/build/snapback}
WORKBASE=${TMPDIR:-/tmp}
KEEP=0
while (($#)); do
    case $1 in
    --size)
        SIZE=${2:?}
        shift
        ;;
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
    -h | --help)
        usage
        exit 0
        ;;
    *)
        echo "verify.sh: unknown argument '$1'" >&2
        usage >&2
        exit 64
        ;;
    esac
    shift
done
[[ $SIZE =~ ^[1-9][0-9]*$ && $REPEAT =~ ^[1-9][0-9]*$ ]] || {
    echo "--size and --repeat need positive numbers" >&2
    exit 64
}
[[ -x $SB ]] || {
    echo "snapback binary '$SB' not found: build it (ninja -C build) or pass --snapback" >&2
    exit 69
}
SB=$(cd "$(dirname "$SB")" && pwd)/$(basename "$SB")

# tools: /usr/bin/time (package time), zstd, age, python3
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

W=$(mktemp -d "$WORKBASE/snapback-bench-verify.XXXXXX")
cleanup() {
    if ((KEEP)); then
        echo "work directory kept: $W"
    else
        rm -rf "$W"
    fi
}
trap cleanup EXIT

# --- the release: SIZE MiB ---
REL=bench
APP=$W/app
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

"$SB" keygen --key-file "$W/sb.key" >/dev/null 2>&1
cat >"$W/sb.json" <<EOF
{ "app": "bench", "release": { "root": "$APP", "shared_paths": [] },
  "repository": { "url": "$W/sb-repo" }, "key_file": "$W/sb.key",
  "state_dir": "$W/sb-state", "compression": { "level": 3, "threads": 0 } }
EOF
age-keygen -o "$W/age.key" 2>/dev/null
RECIPIENT=$(age-keygen -y "$W/age.key")

echo "verify benchmark: $((BYTES / 1048576)) MiB in $FILES entries, $REPEAT run(s) each"
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); snapback: $("$SB" --version)"
echo "tools: $(zstd --version | head -n1); age $(age --version 2>&1)"
echo "storing it both ways (not measured)..."
"$SB" --config "$W/sb.json" init >/dev/null 2>&1
"$SB" --config "$W/sb.json" --quiet --no-progress snapshot >/dev/null
tar -C "$APP/releases" -cf - "$REL" | zstd -3 -T0 -q | age -r "$RECIPIENT" >"$W/out.tar.zst.age"
SB_STORED=$(du -sb "$W/sb-repo" | cut -f1)
AGE_STORED=$(stat -c %s "$W/out.tar.zst.age")
cat "$W/out.tar.zst.age" >/dev/null
find "$W/sb-repo" -type f -exec cat {} + >/dev/null

# measure LABEL CMD...: as in snapshot.sh
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
: >"$W/results"
for _ in $(seq 1 "$REPEAT"); do
    measure snapback-verify "$SB" --config "$W/sb.json" --quiet --no-progress verify latest
    # shellcheck disable=SC2016 # expanded by the inner bash
    measure pipeline-read bash -c 'set -o pipefail; age -d -i "$1" "$2" | zstd -d -q | tar -t >/dev/null' \
        _ "$W/age.key" "$W/out.tar.zst.age"
done

python3 - "$W/results" "$BYTES" "$SB_STORED" "$AGE_STORED" <<'PY'
import statistics, sys
rows, nbytes = {}, int(sys.argv[2])
for line in open(sys.argv[1]):
    label, wall, rss = line.split()
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
