#!/usr/bin/env bash
# The systemd units of contrib/systemd pass `systemd-analyze verify` (with ExecStart pointing
# at the binary under test), and a path in ReadWritePaths that may be missing on a host (a
# local repository, node-exporter's directory) is marked "-", since systemd refuses to start a
# unit whose ReadWritePaths does not exist. Skips without systemd-analyze.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
UNITS=$(cd "$INTEGRATION_DIR/../../contrib/systemd" && pwd)
mkdir -p "$WORK/units"
for unit in "$UNITS"/*; do
    sed "s|/usr/local/bin/snapback|$SNAPBACK|g" "$unit" >"$WORK/units/$(basename "$unit")"
done
(cd "$WORK/units" && systemd-analyze verify --man=no ./*.service ./*.timer) >"$WORK/verify.out" 2>&1 ||
    fail "systemd-analyze verify: $(cat "$WORK/verify.out")"
check "systemd-analyze verify says nothing ($(head -c 300 "$WORK/verify.out"))" test ! -s "$WORK/verify.out"
while read -r line; do
    for path in ${line#ReadWritePaths=}; do
        check "ReadWritePaths '$path' may be missing ('-') or is the state directory" \
            test "${path:0:1}" = -
    done
done < <(grep -h '^ReadWritePaths=' "$UNITS"/*.service)
check "the state directory is systemd's StateDirectory" grep -q '^StateDirectory=snapback' "$UNITS/snapback@.service"
