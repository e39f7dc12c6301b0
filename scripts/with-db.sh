#!/usr/bin/env bash
# Runs a command with a reachable MariaDB/MySQL server named by EZDB_TEST_URL: installs the
# Debian packages when missing, and starts a private throwaway server when none answers.
set -euo pipefail

DEFAULT_URL="mysql://root@127.0.0.1:3306"
URL="${EZDB_TEST_URL:-$DEFAULT_URL}"
PRIVATE_DIR=""   # the private server's data, tmp, socket and logs; removed on exit
PRIVATE_PID=""
TRIED=()         # what was attempted, for the final error message

source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
say() { echo "with-db: $*" >&2; }

# The URL with any password replaced by ***, for messages.
redacted() {
    local url="$1" scheme rest auth
    scheme="${url%%://*}://"; rest="${url#*://}"
    [[ "$rest" == *@* ]] || { echo "$url"; return; }
    auth="${rest%%@*}"
    [[ "$auth" == *:* ]] && auth="${auth%%:*}:***"
    echo "$scheme$auth@${rest#*@}"
}

server_binary() {
    local bin
    for bin in mariadbd mysqld /usr/sbin/mariadbd /usr/sbin/mysqld; do
        command -v "$bin" && return 0
    done
    return 0
}
install_db_binary() { command -v mariadb-install-db || command -v mysql_install_db || true; }
admin_binary() { command -v mariadb-admin || command -v mysqladmin || true; }

# Step 1: the client and the server binaries, from Debian packages when missing.
install_packages() {
    [[ -n "$(db_client)" && -n "$(server_binary)" ]] && return 0
    local pkgs=(mariadb-server mariadb-client) log
    say "installing Debian packages ${pkgs[*]} (client or server missing)"
    TRIED+=("installing ${pkgs[*]} with apt-get")
    export DEBIAN_FRONTEND=noninteractive
    log="$(mktemp)"
    if ! apt-get install -y -q "${pkgs[@]}" >"$log" 2>&1; then
        apt-get update -q >>"$log" 2>&1 || true
        if ! apt-get install -y -q "${pkgs[@]}" >>"$log" 2>&1; then
            say "apt-get install failed:"; tail -n 15 "$log" >&2; rm -f "$log"; return 1
        fi
    fi
    rm -f "$log"
}

# True when `SELECT 1` succeeds on the server in DB_*.
reachable() {
    [[ -n "$(db_client)" ]] || return 1
    db_run --connect-timeout=3 -e "SELECT 1" </dev/null >/dev/null 2>&1
}

# Polls reachable() for up to $1 seconds; gives up early when the command in $2... (the
# server is still running) fails.
wait_until_reachable() {
    local deadline=$((SECONDS + $1)); shift
    while ((SECONDS < deadline)); do
        reachable && return 0
        "$@" || return 1
        sleep 0.5
    done
    reachable
}

# Step 3a: the system MariaDB, when it is installed but not running and the URL is the default.
start_system_server() {
    local bin; bin="$(server_binary)"
    [[ "$URL" == "$DEFAULT_URL" && -n "$bin" ]] || return 1
    [[ "$(id -u)" == 0 ]] || return 1     # the system server runs as user mysql: needs root
    if start-stop-daemon --status --exec "$bin" >/dev/null 2>&1; then
        return 1                           # running, but not answering here: do not touch it
    fi
    say "nothing answers at $URL; starting the system MariaDB ($bin)"
    TRIED+=("starting the system server $bin")
    if id mysql >/dev/null 2>&1; then
        mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld   # tmpfs: gone after a reboot
    fi
    start-stop-daemon --start --oknodo --background --exec "$bin" >/dev/null 2>&1 || return 1
    sleep 0.5
    wait_until_reachable 20 start-stop-daemon --status --exec "$bin" \
        || { say "the system MariaDB did not come up (see its error log or journal)"; return 1; }
}

# True while process $1 exists and is not a zombie.
alive() {
    local state
    state="$(ps -o stat= -p "$1" 2>/dev/null)" && [[ "$state" != Z* ]]
}

stop_private_server() {
    [[ -n "$PRIVATE_DIR" ]] || return 0
    if [[ -n "$PRIVATE_PID" ]] && alive "$PRIVATE_PID"; then
        local admin; admin="$(admin_binary)"
        if [[ -z "$admin" ]] || ! "$admin" --no-defaults --socket="$PRIVATE_DIR/mysqld.sock" \
            -u root shutdown </dev/null >/dev/null 2>&1; then
            kill "$PRIVATE_PID" 2>/dev/null || true
        fi
        local deadline=$((SECONDS + 30))
        while alive "$PRIVATE_PID" && ((SECONDS < deadline)); do sleep 0.2; done
        kill -9 "$PRIVATE_PID" 2>/dev/null || true
        wait "$PRIVATE_PID" 2>/dev/null || true
    fi
    rm -rf "$PRIVATE_DIR"
    PRIVATE_DIR=""
}

# Step 3b: a throwaway server in a temporary directory on a free port, stopped and removed
# when this script exits.
start_private_server() {
    local port bin install_db user_args=()
    bin="$(server_binary)"; install_db="$(install_db_binary)"
    [[ -n "$bin" && -n "$install_db" ]] || return 1
    port="$(free_port 23306 694)" || return 1
    say "nothing answers at $(redacted "$URL"); starting a private MariaDB"
    TRIED+=("starting a private server on 127.0.0.1:$port")
    local base="${TMPDIR:-/tmp}"
    ((${#base} <= 60)) || base=/tmp     # a Unix socket path must stay under 108 bytes
    PRIVATE_DIR="$(mktemp -d "$base/ezdb-mariadb.XXXXXX")" || return 1
    [[ "$(id -u)" == 0 ]] && user_args=(--user=root)
    # Its own tmpdir: a starting server deletes every #sql* file in its tmpdir, which would
    # break other servers (the system one, concurrent runs) sharing /tmp.
    mkdir "$PRIVATE_DIR/tmp" || return 1
    "$install_db" --no-defaults "${user_args[@]}" --datadir="$PRIVATE_DIR/data" \
        --tmpdir="$PRIVATE_DIR/tmp" --auth-root-authentication-method=normal \
        </dev/null >"$PRIVATE_DIR/install.log" 2>&1 \
        || { say "$install_db failed:"; tail -n 20 "$PRIVATE_DIR/install.log" >&2; return 1; }
    "$bin" --no-defaults "${user_args[@]}" \
        --datadir="$PRIVATE_DIR/data" --tmpdir="$PRIVATE_DIR/tmp" \
        --socket="$PRIVATE_DIR/mysqld.sock" --port="$port" --bind-address=127.0.0.1 \
        --pid-file="$PRIVATE_DIR/mysqld.pid" --log-error="$PRIVATE_DIR/err.log" \
        --innodb-buffer-pool-size=256M --max-allowed-packet=64M </dev/null >/dev/null 2>&1 &
    PRIVATE_PID=$!
    URL="mysql://root@127.0.0.1:$port"
    parse_url "$URL"
    if ! wait_until_reachable 60 alive "$PRIVATE_PID"; then
        say "the private server did not start; end of $PRIVATE_DIR/err.log:"
        tail -n 20 "$PRIVATE_DIR/err.log" >&2 || true
        return 1
    fi
    say "started a private MariaDB at $URL (files in $PRIVATE_DIR, removed afterwards)"
}

fail() {
    say "ERROR: no MariaDB/MySQL server reachable at $(redacted "${EZDB_TEST_URL:-$DEFAULT_URL}")."
    local step
    for step in "${TRIED[@]}"; do say "  tried: $step"; done
    say "Fix: set EZDB_TEST_URL=mysql://user:pass@host:port to a reachable server where that user"
    say "may create databases, or install mariadb-server and mariadb-client (as root)."
    exit 2
}

main() {
    [[ $# -gt 0 ]] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
    trap stop_private_server EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    install_packages || say "could not install the MariaDB packages; trying what is there"
    [[ -n "$(db_client)" ]] || { say "no mariadb or mysql client program"; fail; }
    parse_url "$URL"
    TRIED+=("connecting to $(redacted "$URL")")
    if reachable; then
        say "using the server at $(redacted "$URL")"
    elif ! start_system_server && ! start_private_server; then
        fail
    fi
    export EZDB_TEST_URL="$URL"
    local status=0
    "$@" || status=$?
    return "$status"
}

main "$@"
