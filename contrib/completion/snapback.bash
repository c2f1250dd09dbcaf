# bash completion for snapback(1)                                    -*- shell-script -*-
#
# Installed by `meson install` as share/bash-completion/completions/snapback. Nothing here is
# a copy of snapback's options: the commands come from `snapback --help` and each command's
# options from `snapback CMD --help`, read the first time they are needed in a shell and then
# cached, so the completion cannot drift from the binary it completes.
#
# Completes: commands; each command's options and the global ones; file names after --config,
# --key, --key-file, --new-key-file, --recipient, --junit; directories after --target;
# text/json after --log-format; release,shared,db after --only; snapshot ids (and "latest")
# for show, ls, restore and verify, from `snapback list --json`; "previous", release names (from
# `snapback releases`) and snapshot ids for rollback --to. Ids and releases need a readable
# config (--config on the line, $SNAPBACK_CONFIG or /etc/snapback/snapback.json); without one,
# or when snapback fails or takes longer than 3 s, they are simply not offered.

# The snapback binary the line names (a path typed on the line, else the one in PATH).
_snapback_bin() {
    local bin=${COMP_WORDS[0]}
    if [[ $bin == */* ]]; then
        bin=${bin/#\~/$HOME}
        [[ -x $bin ]] && {
            printf '%s\n' "$bin"
            return
        }
    fi
    command -v snapback 2>/dev/null || printf 'snapback\n'
}

# The commands, from `snapback --help` ("commands:" up to the next blank line).
_snapback_commands() {
    local bin=$1
    if [[ -z ${_snapback_cache_commands:-} || ${_snapback_cache_bin:-} != "$bin" ]]; then
        _snapback_cache_bin=$bin
        declare -gA _snapback_cache_options=()
        _snapback_cache_commands=$("$bin" --help 2>/dev/null |
            sed -n '/^commands:/,/^$/p' | sed -n 's/^  \([a-z][a-z-]*\) .*/\1/p' | tr '\n' ' ')
    fi
    printf '%s\n' "$_snapback_cache_commands"
}

# The options of a command (or the global ones for ""), from its --help.
_snapback_options() {
    local bin=$1 cmd=$2 key=${2:-_global}
    _snapback_commands "$bin" >/dev/null
    if [[ -z ${_snapback_cache_options[$key]+set} ]]; then
        local text
        if [[ -n $cmd ]]; then
            text=$("$bin" "$cmd" --help 2>/dev/null)
        else
            text=$("$bin" --help 2>/dev/null | sed -n '/^global options:/,/^$/p')
        fi
        _snapback_cache_options[$key]=$(printf '%s\n' "$text" | grep -o -- '--[a-z][a-z-]*' |
            LC_ALL=C sort -u | tr '\n' ' ')
    fi
    printf '%s\n' "${_snapback_cache_options[$key]}"
}

# A command's sub-command word, from its usage in `snapback --help` ("  key   key rotate ...").
_snapback_subcommand() {
    "$1" --help 2>/dev/null | sed -n '/^commands:/,/^$/p' |
        awk -v cmd="$2" '$1 == cmd && $2 == cmd && $3 ~ /^[a-z]+$/ { print $3 }'
}

# The --config of the line, else $SNAPBACK_CONFIG, else the default when readable.
_snapback_config_args() {
    local idx word cfg=
    for ((idx = 1; idx < ${#COMP_WORDS[@]}; idx++)); do
        word=${COMP_WORDS[idx]}
        if [[ $word == --config && $((idx + 1)) -lt ${#COMP_WORDS[@]} && $((idx + 1)) -ne $COMP_CWORD ]]; then
            cfg=${COMP_WORDS[idx + 1]}
        elif [[ $word == --config=* ]]; then
            cfg=${word#--config=}
        fi
    done
    cfg=${cfg/#\~/$HOME}
    [[ -z $cfg ]] && cfg=${SNAPBACK_CONFIG:-/etc/snapback/snapback.json}
    [[ -r $cfg ]] || return 1
    printf '%s\n' "--config" "$cfg"
}

# Runs snapback quietly with the line's config, bounded in time; prints nothing on failure.
_snapback_query() {
    local bin=$1
    shift
    local cfg
    mapfile -t cfg < <(_snapback_config_args) || true
    ((${#cfg[@]} == 2)) || return 0
    if command -v timeout >/dev/null 2>&1; then
        timeout 3 "$bin" "${cfg[@]}" --quiet --no-progress "$@" 2>/dev/null
    else
        "$bin" "${cfg[@]}" --quiet --no-progress "$@" 2>/dev/null
    fi
}

_snapback_snapshot_ids() {
    _snapback_query "$1" list --json | grep -o '"id": *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/'
}

_snapback_release_names() {
    _snapback_query "$1" releases | awk 'NF { print ($1 == "*") ? $2 : $1 }'
}

_snapback() {
    local cur prev bin cmd='' idx word
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    bin=$(_snapback_bin)
    local commands
    commands=" $(_snapback_commands "$bin") "

    # the command: the first word that is a command and not the argument of an option
    for ((idx = 1; idx < COMP_CWORD; idx++)); do
        word=${COMP_WORDS[idx]}
        case ${COMP_WORDS[idx - 1]} in
        --config | --log-format | --key) continue ;;
        esac
        if [[ $word != -* && $commands == *" $word "* ]]; then
            cmd=$word
            break
        fi
    done

    case $prev in
    --config | --key | --key-file | --new-key-file | --recipient | --junit)
        mapfile -t COMPREPLY < <(compgen -f -- "$cur")
        compopt -o filenames 2>/dev/null
        return 0
        ;;
    --target)
        mapfile -t COMPREPLY < <(compgen -d -- "$cur")
        compopt -o filenames 2>/dev/null
        return 0
        ;;
    --log-format)
        mapfile -t COMPREPLY < <(compgen -W "text json" -- "$cur")
        return 0
        ;;
    --only)
        # a comma-separated list: complete the part after the last comma
        local done_part=${cur%"${cur##*,}"}
        mapfile -t COMPREPLY < <(compgen -P "$done_part" -W "release shared db" -- "${cur##*,}")
        compopt -o nospace 2>/dev/null
        return 0
        ;;
    --to)
        mapfile -t COMPREPLY < <(compgen -W "previous $(_snapback_release_names "$bin") $(_snapback_snapshot_ids "$bin")" -- "$cur")
        return 0
        ;;
    --tag | --sample | --db-target | --path)
        return 0 # free text
        ;;
    esac

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            mapfile -t COMPREPLY < <(compgen -W "$(_snapback_options "$bin" "")" -- "$cur")
        else
            mapfile -t COMPREPLY < <(compgen -W "$commands" -- "$cur")
        fi
        return 0
    fi

    if [[ $cur == -* ]]; then
        local options
        # shellcheck disable=SC2046 # word splitting of the option lists is meant
        options=$(printf '%s\n' $(_snapback_options "$bin" "$cmd") $(_snapback_options "$bin" "") |
            LC_ALL=C sort -u | tr '\n' ' ')
        mapfile -t COMPREPLY < <(compgen -W "$options" -- "$cur")
        return 0
    fi
    case $cmd in
    show | ls | restore | verify)
        mapfile -t COMPREPLY < <(compgen -W "latest $(_snapback_snapshot_ids "$bin")" -- "$cur")
        ;;
    *)
        # a sub-command ("key rotate", "config check", "remote trust"), right after the command
        [[ ${COMP_WORDS[COMP_CWORD - 1]} == "$cmd" ]] &&
            mapfile -t COMPREPLY < <(compgen -W "$(_snapback_subcommand "$bin" "$cmd")" -- "$cur")
        ;;
    esac
    return 0
}

complete -F _snapback snapback
