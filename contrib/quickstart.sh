#!/usr/bin/env bash
# snapback in five minutes, on a fresh Debian 12: installs the build dependencies, builds
# snapback, creates a demo app (Capistrano layout: two releases, current, shared uploads, a
# SQLite database) in a temp dir, and takes it through keygen, init, snapshot, list, a second
# snapshot (the unchanged release is not stored again), show, ls, restore into a new directory, a
# diff against the live release, verify (also restoring the database into a scratch copy), a
# bad deploy rolled back with its database, and status. Every step prints its command and its result; the first failure stops
# the script with a non-zero exit.
#
#   contrib/quickstart.sh [--clean] [--no-install] [--build-dir DIR]
#
#   --clean        remove the demo directory at the end (default: keep it and print its path)
#   --no-install   do not run apt-get (the dependencies are already there)
#   --build-dir    meson build directory (default: build, in the source tree)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CLEAN=0
INSTALL=1
BUILD=$ROOT/build
while (($#)); do
    case $1 in
    --clean) CLEAN=1 ;;
    --no-install) INSTALL=0 ;;
    --build-dir)
        BUILD=$(realpath -m "${2:?--build-dir needs a directory}")
        shift
        ;;
    -h | --help)
        sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "quickstart: unknown option '$1' (see --help)" >&2
        exit 64
        ;;
    esac
    shift
done

BUILD_DEPS=(build-essential meson ninja-build pkg-config libarchive-dev libzstd-dev
    libsodium-dev libcjson-dev libssh2-1-dev libsqlite3-dev)

if [[ -t 1 ]]; then
    B=$'\e[1m' G=$'\e[32m' R=$'\e[31m' N=$'\e[0m'
else
    B='' G='' R='' N=''
fi
STEP=0
CURRENT_STEP=
DEMO=

say() { printf '%s\n' "$*"; }

on_exit() {
    local status=$?
    if ((status != 0)); then
        printf '\n%squickstart FAILED%s at step %d (%s), exit %d.\n' "$R" "$N" "$STEP" "$CURRENT_STEP" "$status" >&2
        [[ -n $DEMO && -d $DEMO ]] && printf 'The demo directory is kept for a look: %s\n' "$DEMO" >&2
    fi
}
trap on_exit EXIT

# step [--show TEXT] "what" CMD...: announces, runs, reports; stops the script on failure.
# TEXT is the command shown when CMD is a helper function.
step() {
    local shown=
    if [[ $1 == --show ]]; then
        shown=$2
        shift 2
    fi
    local what=$1
    shift
    STEP=$((STEP + 1))
    CURRENT_STEP=$what
    printf '\n%s==> %d. %s%s\n' "$B" "$STEP" "$what" "$N"
    [[ -n $shown ]] || shown=$(printf '%q ' "$@")
    printf '$ %s\n' "$(printf '%s' "$shown" | sed "s|$DEMO_SED|\$DEMO|g")"
    local t0=$SECONDS rc=0
    "$@" || rc=$?
    if ((rc != 0)); then
        printf '%sFAILED%s: exit %d\n' "$R" "$N" "$rc"
        exit "$rc"
    fi
    printf '%sok%s (%d s)\n' "$G" "$N" "$((SECONDS - t0))"
}
DEMO_SED='^$' # no demo dir yet

# --- 1. dependencies ---
missing=()
for pkg in "${BUILD_DEPS[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]} == 0)); then
    say "${B}==> build dependencies already installed${N}"
elif ((INSTALL == 0)); then
    say "quickstart: missing packages: ${missing[*]} (run without --no-install, as root)" >&2
    exit 69
elif [[ $(id -u) != 0 ]]; then
    say "quickstart: missing packages: ${missing[*]}; run as root (sudo $0) to install them" >&2
    exit 77
else
    step "install the build dependencies (${missing[*]})" \
        env DEBIAN_FRONTEND=noninteractive apt-get update -q
    step "apt-get install" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# --- 2. build ---
if [[ -f $BUILD/build.ninja ]]; then
    step "configure the existing build directory for a release build" \
        meson configure "$BUILD" -Dbuildtype=release
else
    step "configure a release build" meson setup "$BUILD" "$ROOT" --buildtype=release
fi
step "build" ninja -C "$BUILD"
SB=$BUILD/snapback
step "the binary runs" "$SB" --version

# --- 3. a demo app ---
DEMO=$(mktemp -d "${TMPDIR:-/tmp}/snapback-quickstart.XXXXXX")
chmod 0755 "$DEMO"
DEMO_SED=$(printf '%s' "$DEMO" | sed 's/[.[\*^$/]/\\&/g')
APP=$DEMO/shop
make_demo() {
    local r
    for r in 20261120T101500Z 20261123T090000Z; do
        mkdir -p "$APP/releases/$r/app" "$APP/releases/$r/public" "$APP/releases/$r/config"
        echo "$r" >"$APP/releases/$r/REVISION"
        printf 'puts "shop, release %s"\n' "$r" >"$APP/releases/$r/app/main.rb"
        printf '<h1>shop %s</h1>\n' "$r" >"$APP/releases/$r/public/index.html"
        ln -s ../../../shared/public/uploads "$APP/releases/$r/public/uploads"
        head -c 200000 /dev/urandom >"$APP/releases/$r/public/app.js"
    done
    ln -s releases/20261123T090000Z "$APP/current"
    mkdir -p "$APP/shared/public/uploads/2026/11"
    head -c 65536 /dev/urandom >"$APP/shared/public/uploads/avatar.png"
    echo "quarterly report" >"$APP/shared/public/uploads/report.pdf"
    head -c 300000 /dev/urandom >"$APP/shared/public/uploads/2026/11/photo 1.jpg"
    mkdir -p "$APP/shared/db"
    python3 - "$APP/shared/db/shop.sqlite3" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE orders(id INTEGER PRIMARY KEY, customer TEXT, total INTEGER)")
c.executemany("INSERT INTO orders(customer, total) VALUES (?, ?)",
              [("customer %d" % i, i * 7 % 1000) for i in range(1, 1001)])
c.commit()
PY
    mkdir -p "$DEMO/keys"
    chmod 0700 "$DEMO/keys"
    cat >"$DEMO/snapback.json" <<EOF
{
  "app": "shop",
  "release": { "root": "$APP", "shared_paths": ["shared/public/uploads"] },
  "databases": [ { "name": "main", "engine": "sqlite", "path": "$APP/shared/db/shop.sqlite3" } ],
  "repository": { "url": "$DEMO/repo" },
  "key_file": "$DEMO/keys/shop.key",
  "state_dir": "$DEMO/state"
}
EOF
    find "$DEMO" -maxdepth 4 | sed "s|^$DEMO|\$DEMO|" | LC_ALL=C sort
    echo "config:"
    sed 's/^/    /' "$DEMO/snapback.json"
}
say ""
say "demo directory: $DEMO"
step --show "mkdir -p \$DEMO/shop/releases/...; ln -s releases/20261123T090000Z \$DEMO/shop/current; ..." \
    "create a demo app: releases/ with two releases, current -> the second, shared uploads" make_demo

sb() { "$SB" --config "$DEMO/snapback.json" "$@"; }
say ""
say "In the commands below, sb stands for: $SB --config \$DEMO/snapback.json"
step "keygen: a new repository key (mode 0600)" sb keygen
step "init: a new local repository" sb init
step "config check" sb config check

snapshot_to() { # snapshot, keep the id in the file $1
    sb snapshot --tag "${2:-quickstart}" | tee "$1"
}
step --show "sb snapshot --tag first" "snapshot: release, shared uploads, manifest" snapshot_to "$DEMO/.id1" first
ID1=$(tail -n1 "$DEMO/.id1")
step "list" sb list
step --show "sb snapshot --tag second" "snapshot again: the unchanged release is not stored again" snapshot_to "$DEMO/.id2" second
ID2=$(tail -n1 "$DEMO/.id2")

check_dedupe() {
    local n
    n=$(find "$DEMO/repo/shop/releases" -name '*.snpb' | wc -l)
    echo "release objects in the repository: $n"
    sb show "$ID2" --json | python3 -c 'import json,sys; r=json.load(sys.stdin)["release"]; print("second snapshot: release", r["name"], "reused:", r["reused"]); sys.exit(0 if r["reused"] else 1)' 2>/dev/null ||
        sb show "$ID2" | grep -q 'stored by an earlier snapshot'
    [[ $n == 1 ]]
}
step --show "sb show $ID2 --json; find \$DEMO/repo/shop/releases -name '*.snpb'" \
    "the second snapshot reuses the stored release" check_dedupe
step "list" sb list
step "show the second snapshot" sb show "$ID2"
step "ls: the files of its shared uploads, without restoring" sb ls "$ID2" shared/public/uploads
step "restore latest into a new directory" sb restore latest --target "$DEMO/restored"
step "diff the restored release against the live one" \
    diff -r "$APP/releases/20261123T090000Z" "$DEMO/restored/releases/20261123T090000Z"
step "diff the restored uploads against the live ones" \
    diff -r "$APP/shared/public/uploads" "$DEMO/restored/shared/public/uploads"
step --show "readlink \$DEMO/restored/current" "current points to the restored release" \
    test "$(readlink "$DEMO/restored/current")" = releases/20261123T090000Z
step "verify the newest snapshot" sb verify latest
step "verify every snapshot" sb verify --all
step "verify, restoring the database into a scratch copy" sb verify latest --restore-db
step --show "python3: SELECT count(*) FROM orders in \$DEMO/restored/databases/main.sqlite3" \
    "the restored database has the 1000 orders" \
    python3 -c 'import sqlite3,sys; n=sqlite3.connect(sys.argv[1]).execute("select count(*) from orders").fetchone()[0]; print(n, "orders"); sys.exit(n != 1000)' "$DEMO/restored/databases/main.sqlite3"
step "snapshot before a deploy" sb snapshot --tag pre-deploy
deploy() {
    cp -a "$APP/releases/20261123T090000Z" "$APP/releases/20261124T120000Z"
    echo 20261124T120000Z >"$APP/releases/20261124T120000Z/REVISION"
    ln -sfn releases/20261124T120000Z "$APP/current.new" && mv -T "$APP/current.new" "$APP/current"
    python3 - "$APP/shared/db/shop.sqlite3" <<'PY'
import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
c.execute("ALTER TABLE orders ADD COLUMN currency TEXT DEFAULT 'EUR'")
c.execute("DELETE FROM orders WHERE id > 500")
c.commit()
print("release 20261124T120000Z is live; the migration added a column and deleted 500 orders")
PY
}
step --show "cp -a releases/...; ln -sfn; mv -T current.new current; sqlite3: ALTER TABLE, DELETE" \
    "deploy a (bad) release: current switched, the database migrated" deploy
step "the releases: current marked" sb releases
step "rollback --dry-run: the plan, nothing changed" sb rollback --to previous --with-database --dry-run
step "rollback to the previous release, with the database" sb rollback --to previous --with-database
step --show "readlink \$DEMO/shop/current" "current points to the previous release again" \
    test "$(readlink "$APP/current")" = releases/20261123T090000Z
step --show "python3: SELECT count(*) FROM orders" "the database is back as before the deploy" \
    python3 -c 'import sqlite3,sys; n=sqlite3.connect(sys.argv[1]).execute("select count(*) from orders").fetchone()[0]; print(n, "orders"); sys.exit(n != 1000)' "$APP/shared/db/shop.sqlite3"
step "status" sb status

printf '\n%sAll %d steps passed.%s Snapshots: %s and %s.\n' "$G" "$STEP" "$N" "$ID1" "$ID2"
if ((CLEAN)); then
    rm -rf "$DEMO"
    say "Removed the demo directory."
else
    say "The demo is in $DEMO (config: $DEMO/snapback.json). Try:"
    say "  $SB --config $DEMO/snapback.json list"
    say "Remove it with: rm -rf $DEMO"
fi
