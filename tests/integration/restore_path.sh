#!/usr/bin/env bash
# restore --path: only the files asked for, named as in the restored layout (releases/NAME/...,
# current/..., a shared path/...), come back, byte for byte and with their metadata; a
# directory brings what is below it; several --path combine; every object is still read to
# its end (a damaged object fails even when the file asked for comes before the damage); a
# PATH that matches nothing fails with 66 and leaves nothing; unsafe paths and --path with
# database options are usage errors (64); a hard link whose target is left out is refused
# with a message that says to ask for both.
# shellcheck source=tests/harness/lib.sh disable=SC2119
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
sb_env
R=$APP/releases/20260102T000000Z
mkdir -p "$R/config/initializers" "$R/public/assets"
printf 'production:\n  adapter: postgresql\n' >"$R/config/database.yml"
printf 'Rails.application.configure {}\n' >"$R/config/initializers/app.rb"
head -c 300000 /dev/urandom >"$R/public/assets/app.js"
ln "$R/public/assets/app.js" "$R/public/assets/app-linked.js"
mkdir -p "$APP/shared/uploads/2026/11"
printf 'a photo\n' >"$APP/shared/uploads/2026/11/photo.jpg"
sb_init
sb_snapshot
ID=$SNAP_ID
REL=releases/20260102T000000Z

log "one file of a shared path"
expect_ok sb restore "$ID" --target "$WORK/one" --path shared/uploads/avatar.png
expect_out_contains ": 1 entry,"
check "the file is restored" cmp -s "$APP/shared/uploads/avatar.png" "$WORK/one/shared/uploads/avatar.png"
check "and nothing else" test "$(cd "$WORK/one" && find . -type f | sort)" = "./shared/uploads/avatar.png"

log "a directory of the release through current/, and a file through releases/NAME/"
expect_ok sb restore "$ID" --target "$WORK/two" --path current/config --path "$REL/app/main.rb"
compare_trees "$R/config" "$WORK/two/$REL/config"
check "main.rb is restored" cmp -s "$R/app/main.rb" "$WORK/two/$REL/app/main.rb"
check "current points at the release" test "$(readlink "$WORK/two/current")" = "$REL"
check "nothing else of the release" test "$(cd "$WORK/two/$REL" && find . -type f | sort | tr '\n' ' ')" = \
    "./app/main.rb ./config/database.yml ./config/initializers/app.rb "
check "no shared path" test ! -e "$WORK/two/shared"

log "a directory of a shared path, with a trailing slash"
expect_ok sb restore "$ID" --target "$WORK/three" --path shared/uploads/2026/
compare_trees "$APP/shared/uploads/2026" "$WORK/three/shared/uploads/2026"

log "an ancestor of a shared path takes all of it"
expect_ok sb restore "$ID" --target "$WORK/four" --path shared
compare_trees "$APP/shared/uploads" "$WORK/four/shared/uploads" noroot
check "no release" test ! -e "$WORK/four/releases"

log "a hard link and its target together"
expect_ok sb restore "$ID" --target "$WORK/five" --path "$REL/public/assets"
check "the two names are one file" test "$(stat -c %i "$WORK/five/$REL/public/assets/app.js")" = \
    "$(stat -c %i "$WORK/five/$REL/public/assets/app-linked.js")"
check "with the content" cmp -s "$R/public/assets/app.js" "$WORK/five/$REL/public/assets/app-linked.js"

log "a hard link without its target: refused, says to ask for both"
run sb restore "$ID" --target "$WORK/six" --path "$REL/public/assets/app-linked.js"
if [[ $RC == 0 ]]; then
    # the archive stored app-linked.js first: then it is the file and app.js the link
    check "the file is restored whole" cmp -s "$R/public/assets/app.js" "$WORK/six/$REL/public/assets/app-linked.js"
    expect_exit 64 sb restore "$ID" --target "$WORK/six-b" --path "$REL/public/assets/app.js"
else
    check "exit 64" test "$RC" = 64
fi
expect_err_contains "ask for both"
check "nothing left by the refused restore" test -z "$(tmp_leftovers "$WORK" -maxdepth 1)"

log "a path that matches nothing: 66, nothing left"
expect_exit 66 sb restore "$ID" --target "$WORK/none" --path shared/uploads/nosuch.png
expect_err_contains "--path 'shared/uploads/nosuch.png': no such file or directory in snapshot"
check "no target" test ! -e "$WORK/none"
check "no temp dir" test -z "$(tmp_leftovers "$WORK" -maxdepth 1)"
expect_exit 66 sb restore "$ID" --target "$WORK/none" --path var/log/app.log
expect_err_contains "is in no part of snapshot"

log "usage errors"
expect_exit 64 sb restore "$ID" --target "$WORK/bad" --path ../etc/passwd
expect_exit 64 sb restore "$ID" --target "$WORK/bad" --path /etc/passwd
expect_exit 64 sb restore "$ID" --target "$WORK/bad" --path shared/./uploads
expect_exit 64 sb restore "$ID" --target "$WORK/bad" --path shared/uploads --only db
check "nothing made" test ! -e "$WORK/bad"

log "the object is still read and checked to its end"
obj=$(find "$REPO/demo/releases" -name '*.snpb' | head -n 1)
cp -a "$obj" "$WORK/obj.orig"
flip_byte "$obj" -100
expect_exit 65 sb restore "$ID" --target "$WORK/damaged" --path current/config/database.yml
check "nothing restored from a damaged object" test ! -e "$WORK/damaged"
cp -a "$WORK/obj.orig" "$obj"
expect_ok sb verify "$ID"
