# shellcheck shell=bash
# A throwaway MariaDB server for the database tests (tests/integration/db_mariadb.sh).
# NOTES.md "Servers in tests": mariadb-install-db --datadir=DIR --user=mysql (DIR's parent
# owned by mysql), then `runuser -u mysql -- mariadbd` on a unix socket with
# --skip-networking; root connects with unix-socket auth (`mariadb -S SOCK -u root`). Both
# are started with --no-defaults so /etc/mysql/ (a system server's socket, pid file, datadir)
# plays no part. The server is stopped on exit, even on failure, before lib.sh removes $WORK.
# Needs pg.sh's db_server_unavailable/db_install_packages: source pg.sh first (it starts
# nothing by itself).
#
# Source it after lib.sh and pg.sh, and call my_setup after sb_setup.
#
#   my_setup              start the server; sets MY_DIR, MY_DATA, MY_SOCK, MY_LOG
#   my_start / my_stop    start again on the same socket / stop (mariadb-admin shutdown, then
#                         SIGTERM) -- for "server down" checks
#   my_sql [DB] ARGS...   the mariadb client as root on the socket (SQL on stdin or -e SQL),
#                         batch mode, no column names
#   my_query DB SQL       one statement, its rows tab-separated

MY_PID=
MY_SERVER_PID=
MY_DIR=
MY_SOCK=
MY_RUNNING=0

my_sql() {
    mariadb --no-defaults -S "$MY_SOCK" -u root --default-character-set=utf8mb4 -N -B "$@"
}

my_query() {
    local db=$1
    shift
    mariadb --no-defaults -S "$MY_SOCK" -u root --default-character-set=utf8mb4 -N -B -e "$1" "$db"
}

my_start() {
    runuser -u mysql -- mariadbd --no-defaults --datadir="$MY_DATA" --socket="$MY_SOCK" \
        --skip-networking --pid-file="$MY_DIR/mariadbd.pid" --log-error="$MY_LOG" \
        --innodb-buffer-pool-size=64M --innodb-log-file-size=48M \
        --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
        ${MY_OPTS:-} >>"$MY_DIR/mariadbd.stderr" 2>&1 &
    MY_PID=$! # runuser's pid: it forks mariadbd and waits; the server's own is in the pid file
    MY_SERVER_PID=
    local tries=0
    until mariadb-admin --no-defaults -S "$MY_SOCK" -u root ping >/dev/null 2>&1; do
        if ! kill -0 "$MY_PID" 2>/dev/null || ((tries++ > 600)); then
            [[ ! -s $MY_DIR/mariadbd.pid ]] || kill -KILL "$(cat "$MY_DIR/mariadbd.pid")" 2>/dev/null || true
            kill "$MY_PID" 2>/dev/null || true # runuser passes SIGTERM on to the server
            wait "$MY_PID" 2>/dev/null || true
            MY_PID=
            return 1
        fi
        sleep 0.1
    done
    MY_SERVER_PID=$(cat "$MY_DIR/mariadbd.pid")
    MY_RUNNING=1
}

my_stop() {
    ((MY_RUNNING)) || return 0
    mariadb-admin --no-defaults -S "$MY_SOCK" -u root shutdown >/dev/null 2>&1 ||
        kill "$MY_SERVER_PID" 2>/dev/null || true
    local tries=0
    while kill -0 "$MY_SERVER_PID" 2>/dev/null && ((tries++ < 600)); do sleep 0.1; done
    kill -KILL "$MY_SERVER_PID" 2>/dev/null || true
    wait "$MY_PID" 2>/dev/null || true
    MY_PID=
    MY_RUNNING=0
}

my_cleanup() {
    ((MY_RUNNING)) || return 0
    # no need for a clean shutdown of a throwaway server
    # (runuser reaps it and exits: killing runuser too would leave a zombie to pid 1)
    [[ -z $MY_SERVER_PID ]] || kill -KILL "$MY_SERVER_PID" 2>/dev/null || true
    wait "$MY_PID" 2>/dev/null || true
    MY_RUNNING=0
}

my_setup() {
    if ! command -v mariadbd >/dev/null || ! command -v mariadb-install-db >/dev/null ||
        ! command -v mariadb-dump >/dev/null; then
        db_install_packages mariadb-server mariadb-client ||
            db_server_unavailable "MariaDB is not installed and could not be installed (apt-get install mariadb-server)"
    fi
    command -v mariadbd >/dev/null || db_server_unavailable "no mariadbd after installing mariadb-server"
    id mysql >/dev/null 2>&1 || db_server_unavailable "there is no 'mysql' user to run the server as"
    [[ $(id -u) == 0 ]] || db_server_unavailable "the harness runs mariadbd through runuser and needs root"
    MY_DIR=$WORK/mariadb
    MY_DATA=$MY_DIR/data
    MY_SOCK=$MY_DIR/mysqld.sock
    MY_LOG=$MY_DIR/mariadbd.log
    mkdir -p "$MY_DIR"
    chown mysql: "$MY_DIR"
    chmod 0755 "$MY_DIR"
    if declare -F _cleanup >/dev/null; then
        # shellcheck disable=SC2154 # _my_status is set inside the trap
        trap '_my_status=$?; trap - ERR; set +e; my_cleanup; (exit $_my_status); _cleanup' EXIT
    fi
    if ! mariadb-install-db --no-defaults --datadir="$MY_DATA" --user=mysql --skip-test-db \
        --auth-root-authentication-method=socket >"$MY_DIR/install.out" 2>&1; then
        cat "$MY_DIR/install.out" >&2
        db_server_unavailable "mariadb-install-db failed (output above)"
    fi
    if ! my_start; then
        tail -n 30 "$MY_LOG" >&2 2>/dev/null || true
        db_server_unavailable "mariadbd did not start (log above)"
    fi
    printf '[%s] MariaDB %s on socket %s\n' "${TEST_NAME:-db}" "$(my_query mysql 'SELECT VERSION()')" "$MY_SOCK"
}
