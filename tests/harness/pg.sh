# shellcheck shell=bash
# A throwaway PostgreSQL 15 cluster for the database tests (tests/integration/db_postgresql.sh)
# and the benchmark (tests/bench/db.sh). NOTES.md "Servers in tests": PostgreSQL refuses to
# run as root, so initdb and pg_ctl run as the `postgres` user through runuser, in a directory
# under $WORK (whose parent must be traversable by postgres), on a unix socket only
# (listen_addresses=''). The cluster is stopped with `pg_ctl stop -m immediate` on exit, even
# on failure, before lib.sh removes $WORK.
#
# Source it after lib.sh and call pg_setup after sb_setup (the benchmark, which does not use
# lib.sh, sets WORK and calls pg_setup itself and pg_cleanup in its own trap).
#
#   pg_setup                start the cluster; sets PG_BIN, PG_DIR, PG_DATA, PG_SOCK, PG_PORT,
#                           PG_LOG. PG_OPTS (set before) adds server options, e.g. "-c
#                           fsync=off" (the tests use it: they test snapback, not the disk)
#   pg_start / pg_stop      start again / stop (-m fast) -- for "server down" checks
#   pg_psql DB ARGS...      psql as the superuser `postgres` (trust) on the socket, -X, -q,
#                           ON_ERROR_STOP=1 (SQL on stdin, or -c SQL, or -f FILE)
#   pg_query DB SQL         one statement, unaligned tuples-only output (-A -t)
#   pg_scram_user USER PASSWORD
#                           a LOGIN CREATEDB role with a SCRAM-SHA-256 password, and a
#                           pg_hba.conf that keeps trust for `postgres` (the harness) and asks
#                           every other role for a scram-sha-256 password; reloaded
#   pg_app_database NAME PASSWORD
#                           pg_scram_user NAME PASSWORD, a database NAME it owns, and the
#                           password in PWFILE=$WORK/NAME.password (mode 0600): what an
#                           application connects with
#   pg_app_psql DB ARGS...  psql as that application role, with its password (as pg_psql)
#   pg_app_config FILE      a snapback config with that database as "main" (password_file)
#   pg_dump_checksums DB    one line per base table of schema public: "table rows md5", and
#                           one per sequence: "seq last_value is_called" (for comparing a
#                           restored database with its source)
#   pg_schema DB            `pg_dump -s --no-owner --no-privileges`, normalised (comments,
#                           blank lines and the random \restrict lines of 15.14+ removed)
#
# When a server cannot be installed or started, the test prints a loud SKIPPED line and exits
# 77 (meson's skip), unless SNAPBACK_REQUIRE_SERVERS=1 or CI is set: then it fails, because
# CI installs the packages and a skip there would hide a broken harness.

PG_VERSION=${PG_VERSION:-15}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/$PG_VERSION/bin}
PG_OPTS=${PG_OPTS:-}
PG_RUNNING=0
PG_DIR=
PG_SOCK=
PG_PORT=

# db_server_unavailable MESSAGE: skip loudly, or fail where servers are required.
db_server_unavailable() {
    local msg=$1
    if [[ ${SNAPBACK_REQUIRE_SERVERS:-0} == 1 || -n ${CI:-} ]]; then
        printf '[%s] FAIL: %s (a database server is required here: SNAPBACK_REQUIRE_SERVERS=1 or CI is set)\n' \
            "${TEST_NAME:-db}" "$msg" >&2
        exit 1
    fi
    {
        printf '\n'
        printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n'
        printf '!!! SKIPPED: %s\n' "${TEST_NAME:-db}"
        printf '!!! %s\n' "$msg"
        printf '!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n\n'
    } >&2
    exit 77
}

# db_install_packages PACKAGE...: apt-get installs the missing ones (as root, Debian); never
# lets a service start (policy-rc.d), waits for a dpkg lock held by a parallel test.
db_install_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    ((${#missing[@]})) || return 0
    [[ $(id -u) == 0 ]] || return 1
    command -v apt-get >/dev/null || return 1
    printf '[%s] installing %s\n' "${TEST_NAME:-db}" "${missing[*]}" >&2
    local policy=/usr/sbin/policy-rc.d made_policy=0 rc=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && made_policy=1
    fi
    {
        DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
            --no-install-recommends "${missing[@]}" >&2 ||
            { apt-get -o DPkg::Lock::Timeout=300 update -q >&2 &&
                DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
                    --no-install-recommends "${missing[@]}" >&2; }
    } || rc=$?
    ((made_policy)) && rm -f "$policy"
    return "$rc"
}

# db_free_port: a TCP port nobody listens on (PostgreSQL uses it to name its socket).
db_free_port() {
    "${PYTHON:-python3}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_pg_as() { runuser -u postgres -- "$@"; }

pg_start() {
    _pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 \
        -o "-p $PG_PORT -k $PG_SOCK -c listen_addresses='' $PG_OPTS" start >"$PG_DIR/pg_ctl.out" 2>&1 || return 1
    PG_RUNNING=1
}

pg_stop() {
    ((PG_RUNNING)) || return 0
    _pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" -m "${1:-fast}" -w -t 60 stop >>"$PG_DIR/pg_ctl.out" 2>&1 || true
    PG_RUNNING=0
}

pg_cleanup() {
    [[ -n $PG_DIR && -d $PG_DIR ]] || return 0
    pg_stop immediate
}

pg_psql() {
    local db=$1
    shift
    psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d "$db" "$@"
}

pg_query() {
    psql -X -A -t -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d "$1" -c "$2"
}

pg_app_database() {
    local name=$1 password=$2
    PG_APP_USER=$name
    PG_APP_PASSWORD=$password
    pg_scram_user "$name" "$password"
    pg_psql postgres -c "CREATE DATABASE $name OWNER $name"
    PWFILE=$WORK/$name.password
    printf '%s\n' "$password" >"$PWFILE"
    chmod 0600 "$PWFILE"
}

pg_app_psql() {
    local db=$1
    shift
    PGPASSWORD=$PG_APP_PASSWORD psql -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCK" -p "$PG_PORT" -U "$PG_APP_USER" -d "$db" "$@"
}

pg_app_config() {
    db_config "$1" "{ \"name\": \"main\", \"engine\": \"postgresql\", \"host\": \"$PG_SOCK\", \"port\": $PG_PORT,
                     \"dbname\": \"$PG_APP_USER\", \"user\": \"$PG_APP_USER\", \"password_file\": \"$PWFILE\" }"
}

pg_scram_user() {
    local user=$1 password=$2
    pg_psql postgres <<EOF
ALTER SYSTEM SET password_encryption = 'scram-sha-256';
SELECT pg_reload_conf() \\g /dev/null
SET password_encryption = 'scram-sha-256';
CREATE ROLE "$user" LOGIN CREATEDB PASSWORD '$password';
EOF
    printf 'local all postgres trust\nlocal all all scram-sha-256\n' >"$PG_DATA/pg_hba.conf"
    chown postgres: "$PG_DATA/pg_hba.conf"
    _pg_as "$PG_BIN/pg_ctl" -D "$PG_DATA" reload >>"$PG_DIR/pg_ctl.out" 2>&1
    # a reload is asynchronous: wait until the new rules refuse a password-less login
    local tries=0
    while PGPASSWORD='' psql -X -w -h "$PG_SOCK" -p "$PG_PORT" -U "$user" -d postgres -c 'SELECT 1' >/dev/null 2>&1; do
        ((tries++ < 100)) || {
            echo "pg_hba.conf reload did not take effect" >&2
            return 1
        }
        sleep 0.05
    done
}

pg_dump_checksums() {
    local db=$1 rel
    for rel in $(pg_query "$db" "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                 WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY c.relname"); do
        printf '%s %s\n' "$rel" "$(pg_query "$db" "SELECT count(*) || ' ' ||
            coalesce(md5(string_agg(t::text, ',' ORDER BY t::text)), 'empty') FROM \"$rel\" t")"
    done
    for rel in $(pg_query "$db" "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                                 WHERE n.nspname = 'public' AND c.relkind = 'S' ORDER BY c.relname"); do
        printf 'sequence %s %s\n' "$rel" "$(pg_query "$db" "SELECT last_value || ' ' || is_called FROM \"$rel\"")"
    done
}

pg_schema() {
    pg_dump -s --no-owner --no-privileges -h "$PG_SOCK" -p "$PG_PORT" -U postgres -d "$1" |
        grep -v -e '^--' -e '^\\restrict' -e '^\\unrestrict' -e '^[[:space:]]*$'
}

pg_setup() {
    if [[ ! -x $PG_BIN/initdb ]] || ! command -v psql >/dev/null || ! command -v pgbench >/dev/null; then
        db_install_packages postgresql ||
            db_server_unavailable "PostgreSQL $PG_VERSION is not installed and could not be installed (apt-get install postgresql)"
    fi
    [[ -x $PG_BIN/initdb ]] || db_server_unavailable "no $PG_BIN/initdb after installing postgresql"
    id postgres >/dev/null 2>&1 || db_server_unavailable "there is no 'postgres' user to run the server as"
    [[ $(id -u) == 0 ]] || db_server_unavailable "the harness runs initdb through runuser and needs root"
    PG_DIR=$WORK/pg
    PG_DATA=$PG_DIR/data
    PG_SOCK=$PG_DIR/sock
    PG_LOG=$PG_DIR/postgresql.log
    mkdir -p "$PG_SOCK"
    chown -R postgres: "$PG_DIR"
    chmod 0755 "$PG_DIR"
    # Stop the server before lib.sh removes $WORK; _cleanup reads the test's status from $?.
    if declare -F _cleanup >/dev/null; then
        # shellcheck disable=SC2154 # _pg_status is set inside the trap
        trap '_pg_status=$?; trap - ERR; set +e; pg_cleanup; (exit $_pg_status); _cleanup' EXIT
    fi
    if ! _pg_as "$PG_BIN/initdb" -D "$PG_DATA" -A trust -U postgres -E UTF8 --locale=C \
        >"$PG_DIR/initdb.out" 2>&1; then
        cat "$PG_DIR/initdb.out" >&2
        db_server_unavailable "initdb failed (output above)"
    fi
    PG_PORT=$(db_free_port)
    if ! pg_start; then
        cat "$PG_DIR/pg_ctl.out" "$PG_LOG" >&2 2>/dev/null || true
        db_server_unavailable "PostgreSQL did not start (pg_ctl output and server log above)"
    fi
    local version
    version=$(pg_query postgres 'SHOW server_version')
    printf '[%s] PostgreSQL %s on socket %s/.s.PGSQL.%s\n' "${TEST_NAME:-db}" "$version" "$PG_SOCK" "$PG_PORT"
}

# db_run_reaped REPORT PIDFILE CMD...: runs CMD as the child of a small Python parent that is
# a child subreaper (prctl PR_SET_CHILD_SUBREAPER), writes CMD's pid to PIDFILE, waits for it,
# and then lists in REPORT ("pid state name" per line) every process CMD left behind: a child
# it did not reap (state Z) or left running. Those are reaped and killed; the exit status is
# CMD's (128+N for a signal). How the "no zombie, no orphan" promise of issue #3 is checked:
# the test machine's pid 1 may reap orphans by itself, so `ps` after the fact proves nothing.
db_run_reaped() {
    "${PYTHON:-python3}" - "$@" <<'PY'
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed")
report, pidfile, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
with open(pidfile, "w") as f:
    f.write("%d\n" % pid)
_, status = os.waitpid(pid, 0)
me = os.getpid()

def leftovers():
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rp = st.rindex(")")
        fields = st[rp + 2:].split()
        if int(fields[1]) == me:
            out.append((int(d), fields[0], st[st.index("(") + 1:rp]))
    return out

time.sleep(0.3)  # let orphans be re-parented to us
left = leftovers()
with open(report, "w") as f:
    for p, state, name in left:
        f.write("%d %s %s\n" % (p, state, name))
for p, _, _ in left:
    try:
        os.kill(p, 9)
    except OSError:
        pass
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
PY
}
