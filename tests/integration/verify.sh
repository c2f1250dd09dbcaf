#!/usr/bin/env bash
# verify for CI (issue #7), against a local repository: what corruption.sh does not cover.
# corruption.sh proves that every kind of damage is detected (exit 65, the object named) by
# verify and restore; this test checks what a CI job sees of it: for each failure kind (a
# flipped byte, a cut object, a missing object, another snapshot's object in its place, a
# tampered manifest, a forged manifest whose recorded BLAKE2b does not match, a wrong key, no
# such snapshot) the exit status, that the message names the snapshot, the object and the byte
# offset where verify reports one, and that --json parses (python json) and --junit is a
# well-formed JUnit report (python xml.etree: testsuites/testsuite/testcase/failure, counts
# equal to what is in it) that names the same failures. Then --sample: 24 objects over six
# snapshots of changing releases; --sample 25% reads about a quarter of them per run, and
# repeated runs (at most 60) together read every one.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
# shellcheck source=tests/harness/verify_checks.sh
source "$HARNESS_DIR/verify_checks.sh"
sb_setup "$@"

RELS=(20260101T000000Z 20260102T000000Z 20260103T000000Z 20260104T000000Z 20260105T000000Z
    20260106T000000Z)
APP=$WORK/app
make_app "$APP" "${RELS[@]}"
mkdir -p "$APP/shared/a" "$APP/shared/b"
printf 'b\n' >"$APP/shared/b/file"
# 2.5 MiB of random data in the third release: its object has three chunks
head -c $((2500 * 1024)) /dev/urandom >"$APP/releases/${RELS[2]}/assets.bin"
sb_env
make_config "$CFG" "$APP" "$REPO" "$KEY" "$STATE" shared/uploads shared/a shared/b
sb_init
IDS=()
for idx in "${!RELS[@]}"; do
    ln -sfn "releases/${RELS[idx]}" "$APP/current"
    printf 'deploy %d\n' "$idx" >"$APP/shared/a/file"
    sb_snapshot
    IDS+=("$SNAP_ID")
done
log "snapshots: ${IDS[*]}"
check "six snapshots" test "$(manifest_count)" -eq 6

HEADER=111              # see corruption.sh and docs/FORMAT.md
CHUNK=$((1048576 + 17)) # 1 MiB of ciphertext + the secretstream tag and MAC
BIG=${IDS[2]}
BIGREL=$(cd "$REPO/demo" && ls releases/"${RELS[2]}"-*.snpb)
check "the big release object has three chunks" \
    test $(($(file_size "$REPO/demo/$BIGREL") / CHUNK)) -eq 2

save_base "$WORK/repo.base"

# --- all good: every object a passing testcase ---
vr 0 "--all" --ok --tests 24
vr 0 "$BIG" --ok --tests 4
expect_ok sb verify --all
for id in "${IDS[@]}"; do expect_out_contains "snapshot $id: ok (4 object(s), 0 failed)"; done

# --- a flipped byte in the second chunk: 65, the snapshot, the object and the chunk's offset ---
reset_repo
flip_byte "$REPO/demo/$BIGREL" $((HEADER + CHUNK + 5))
verify_fails 65 "$BIG" "snapshot '$BIG'" "$BIGREL" "chunk 1 at byte $((HEADER + CHUNK))"
expect_out_contains "FAILED  demo/$BIGREL: chunk 1 at byte $((HEADER + CHUNK))"
expect_out_contains "snapshot $BIG: FAILED (4 object(s), 1 failed)"
vr 65 "$BIG" --snapshot "$BIG" --failed "$BIGREL" --failed-text "at byte $((HEADER + CHUNK))" \
    --tests 4
# --all: the other five snapshots pass, one failing testcase among 24
vr 65 "--all" --snapshot "$BIG" --failed "$BIGREL" --tests 24
expect_exit 65 sb verify --all
expect_out_contains "snapshot ${IDS[0]}: ok"
expect_out_contains "snapshot $BIG: FAILED"
expect_err_contains "verify failed for 1 snapshot(s)"

# --- cut at a chunk boundary: the size against the manifest ---
reset_repo
truncate_to "$REPO/demo/$BIGREL" $((HEADER + CHUNK))
verify_fails 65 "$BIG" "snapshot '$BIG'" "$BIGREL" "is $((HEADER + CHUNK)) bytes, the manifest records"
vr 65 "$BIG" --snapshot "$BIG" --failed "$BIGREL" --failed-text "the manifest records" --tests 4

# --- a missing object: 66, and the path that is missing ---
reset_repo
MISSING=data/${IDS[4]}/shared-1.snpb
rm "$REPO/demo/$MISSING"
verify_fails 66 "${IDS[4]}" "snapshot '${IDS[4]}'" "$REPO/demo/$MISSING"
vr 66 "${IDS[4]}" --snapshot "${IDS[4]}" --failed "$MISSING" --failed-text "cannot open" --tests 4
vr 66 "--all" --snapshot "${IDS[4]}" --failed "$MISSING" --tests 24

# --- another snapshot's object in its place (same plaintext size, another file key) ---
swapped_object_case "${IDS[0]}" "${IDS[1]}" shared-2.snpb 4 "BLAKE2b"
expect_ok sb verify "${IDS[0]}" # the original is fine

# --- a tampered manifest: the snapshot's error, one failing 'manifest' testcase ---
reset_repo
MAN=snapshots/${IDS[3]}.manifest
flip_byte "$REPO/demo/$MAN" 200
verify_fails 65 "${IDS[3]}" "$MAN" "at byte"
vr 65 "${IDS[3]}" --snapshot "${IDS[3]}" --failed "$MAN" --failed-text "at byte" --tests 1
vr 65 "--all" --snapshot "${IDS[3]}" --failed "$MAN" --tests 21

# --- a manifest that authenticates but records another BLAKE2b for one object (forged with
# sbforge.py, the format implemented again from docs/FORMAT.md) ---
forged_manifest_case "${IDS[5]}" "data/${IDS[5]}/shared-1.snpb" 4 "data/${IDS[5]}/shared-1.snpb"

# --- a wrong key: the run fails before any snapshot, and both reports say so ---
reset_repo
wrong_key_config
vr 65 "latest" --run-error "key" --tests 1
vr 65 "--all" --run-error "key" --tests 1
VCFG=

# --- no such snapshot: 66, reported the same way ---
vr 66 "20200101T000000Z-0000" --run-error "no snapshot '20200101T000000Z-0000'" --tests 1

# --- --sample 25%: about a quarter per run; runs together read every object ---
reset_repo
CHECKS=$((CHECKS + 1))
LAST_CMD="verify --all --sample 25% --json (repeated)"
"$PYTHON" - "$SNAPBACK" "$CFG" "$WORK/r.xml" <<'PY' || fail "--sample 25% does not read about a quarter, or runs together miss objects"
import json, subprocess, sys
import xml.etree.ElementTree as ET
sb, cfg, junit = sys.argv[1:]
TOTAL, RUNS_MIN, RUNS_MAX = 24, 20, 60
counts, seen, problems = [], set(), []
for run in range(RUNS_MAX):
    r = subprocess.run([sb, "--config", cfg, "--no-progress", "verify", "--all", "--sample", "25%",
                        "--json", "--junit", junit], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit("run %d: exit %d: %s" % (run, r.returncode, r.stderr))
    j = json.loads(r.stdout)
    objs = [(s["id"], o["name"], o["skipped"]) for s in j["snapshots"] for o in s["objects"]]
    if len(objs) != TOTAL or not j["ok"]:
        sys.exit("run %d: %d objects listed (expected %d), ok=%r" % (run, len(objs), TOTAL, j["ok"]))
    read = [(i, n) for i, n, skipped in objs if not skipped]
    counts.append(len(read))
    seen.update(read)
    # the JUnit report lists the same objects, the unread ones as <skipped>
    cases = [c for s in ET.parse(junit).getroot() for c in s]
    if len(cases) != TOTAL or sum(c.find("skipped") is not None for c in cases) != TOTAL - len(read):
        problems.append("run %d: the JUnit report does not match the JSON" % run)
    if run + 1 >= RUNS_MIN and len(seen) == TOTAL:
        break
mean = sum(counts[:RUNS_MIN]) / RUNS_MIN
print("--sample 25%%: %d runs, objects read per run %s, mean of the first %d: %.2f (expected 6), "
      "%d of %d objects read at least once" % (len(counts), counts, RUNS_MIN, mean, len(seen), TOTAL))
# 24 objects at 25%: 6 per run, sd 2.1; the mean of 20 runs has sd 0.47, so 3..9 is > 6 sd.
if not 3.0 <= mean <= 9.0:
    problems.append("mean objects read per run %.2f, expected about 6" % mean)
if max(counts) == TOTAL and min(counts) == TOTAL:
    problems.append("every run read every object")
# an object missed by 60 runs at 25%: 0.75^60 = 3e-8 each
if len(seen) != TOTAL:
    problems.append("%d objects never read in %d runs" % (TOTAL - len(seen), len(counts)))
for p in problems:
    print(p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
# --sample 100% reads all; bad percentages are usage errors
vr 0 "--all --sample 100%" --ok --tests 24
CHECKS=$((CHECKS + 1))
"$PYTHON" -c 'import json,sys; j=json.load(open(sys.argv[1])); sys.exit(any(o["skipped"] for s in j["snapshots"] for o in s["objects"]))' "$WORK/r.json" ||
    fail "--sample 100% skipped objects"
for bad in 0% 101% -5% abc 25%%; do
    expect_exit 64 sb verify --sample "$bad"
    expect_err_contains "--sample"
done
