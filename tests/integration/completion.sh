#!/usr/bin/env bash
# bash completion (contrib/completion/snapback.bash, issue #6): sourced into a bash, the
# completion function is called with COMP_WORDS/COMP_CWORD as bash would. Every command of
# `snapback --help` is offered; for every command, every option its --help lists is offered
# after "--" (so the completion cannot fall behind the binary); --config completes file names;
# show/ls/restore/verify complete snapshot ids from the repository and rollback --to release
# names and "previous"; --only completes a comma list; without a config, ids are quietly
# not offered (no output on stderr).
# shellcheck source=tests/harness/lib.sh
source "$(dirname "$0")/../harness/lib.sh"
sb_setup "$@"
need bash
COMPLETION=$(cd "$INTEGRATION_DIR/../../contrib/completion" && pwd)/snapback.bash
[[ -f $COMPLETION ]] || fail "no completion script at $COMPLETION"
sb_env
sb_init
sb_snapshot
S1=$SNAP_ID
sb_snapshot --tag keep
S2=$SNAP_ID

# complete WORD...: the completions bash would offer for the line WORD... (the last word is
# the one being completed), one a line, from a fresh bash that sourced the script
complete_line() {
    bash -c '
        source "$1"
        shift
        COMP_WORDS=("$@")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMP_LINE="$*"
        COMPREPLY=()
        _snapback
        printf "%s\n" "${COMPREPLY[@]}"
    ' _ "$COMPLETION" "$@" 2>"$WORK/complete.err"
}

# offered WHAT EXPECTED-WORD LINE...: EXPECTED-WORD is among the completions of LINE
offered() {
    local what=$1 want=$2
    shift 2
    local got
    got=$(complete_line "$@")
    in_offer "$what" "$want" "$got" "$*"
}

# in_offer WHAT EXPECTED-WORD GOT LINE: EXPECTED-WORD is among GOT, the completions of LINE
# (one completion of a line, checked for many words: each completion is a fresh bash that
# runs snapback --help, a tenth of a second under ASan)
in_offer() {
    CHECKS=$((CHECKS + 1))
    grep -qxF -- "$2" <<<"$3" || fail "$1: '$2' not offered for '$4'; got: $(tr '\n' ' ' <<<"$3")"
}

check "completion script is valid bash" bash -n "$COMPLETION"

# every command of `snapback --help`
commands=$("$SNAPBACK" --help | sed -n '/^commands:/,/^$/p' | awk 'NF && $1 != "commands:" && $1 ~ /^[a-z]/ && $2 == $1 { print $1 }')
[[ $(wc -w <<<"$commands") -ge 10 ]] || fail "could not read the commands from --help: $commands"
got=$(complete_line "$SNAPBACK" "")
for cmd in $commands; do
    in_offer "command" "$cmd" "$got" "$SNAPBACK "
done
offered "command prefix" snapshot "$SNAPBACK" sn
got=$(complete_line "$SNAPBACK" sn)
check "only snapshot starts with 'sn' (got: $got)" test "$got" = snapshot

# every option of every command's --help, and the global ones
for cmd in $commands; do
    options=$("$SNAPBACK" "$cmd" --help | sed -n '/^options:/,/^$/p' | { grep -o -- '--[a-z][a-z-]*' || true; } | sort -u)
    got=$(complete_line "$SNAPBACK" "$cmd" --)
    for opt in $options --config --verbose; do
        in_offer "option of $cmd" "$opt" "$got" "$SNAPBACK $cmd --"
    done
done
offered "global option" --log-format "$SNAPBACK" --
offered "--log-format value" json "$SNAPBACK" --log-format ""

# --config: file names
offered "--config file" "$CFG" "$SNAPBACK" --config "${CFG%.json}"
# sub-commands
offered "key sub-command" rotate "$SNAPBACK" key ""
offered "config sub-command" check "$SNAPBACK" config ""
offered "remote sub-command" trust "$SNAPBACK" remote ""
# --only: a comma list
offered "--only list" release,shared "$SNAPBACK" restore "$S1" --only release,sh

# snapshot ids, with the config from the line, and from $SNAPBACK_CONFIG
for cmd in show ls restore verify; do
    offered "$cmd id" "$S1" "$SNAPBACK" --config "$CFG" "$cmd" ""
    offered "$cmd id" "$S2" "$SNAPBACK" --config "$CFG" "$cmd" ""
    offered "$cmd latest" latest "$SNAPBACK" --config "$CFG" "$cmd" ""
done
got=$(SNAPBACK_CONFIG=$CFG complete_line "$SNAPBACK" show "${S2:0:12}")
check "an id prefix completes from \$SNAPBACK_CONFIG (got: $got)" grep -qxF "$S2" <<<"$got"
# releases for rollback --to
offered "rollback --to" previous "$SNAPBACK" --config "$CFG" rollback --to ""
offered "rollback --to release" 20260101T000000Z "$SNAPBACK" --config "$CFG" rollback --to ""
offered "rollback --to release" 20260102T000000Z "$SNAPBACK" --config "$CFG" rollback --to ""

# no config: no ids, no noise
got=$(SNAPBACK_CONFIG=$WORK/missing.json complete_line "$SNAPBACK" show "")
check "without a config only 'latest' is offered (got: $got)" test "$got" = latest
check "without a config nothing is printed on stderr" test ! -s "$WORK/complete.err"
# a broken config: the same
echo '{broken' >"$WORK/broken.json"
got=$(complete_line "$SNAPBACK" --config "$WORK/broken.json" verify "")
check "with a broken config only 'latest' is offered (got: $got)" test "$got" = latest
check "with a broken config nothing is printed on stderr" test ! -s "$WORK/complete.err"

# installed by meson where bash-completion looks for it
grep -q "install_data('contrib/completion/snapback.bash'" "$INTEGRATION_DIR/../../meson.build" ||
    fail "meson.build does not install the completion"
CHECKS=$((CHECKS + 1))
