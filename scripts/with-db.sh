#!/usr/bin/env bash
# Runs a command with a reachable MariaDB/MySQL server named by EZDB_TEST_URL: installs the
# Debian packages when missing, and starts a private throwaway server when none answers.
set -euo pipefail

DEFAULT_URL="mysql://root@127.0.0.1:3306"
URL="${EZDB_TEST_URL:-$DEFAULT_URL}"
PRIVATE_DIR=""

say() { echo "with-db: $*" >&2; }

# Splits mysql://user:pass@host:port/db?socket=/path into DB_USER DB_PASS DB_HOST DB_PORT DB_SOCKET.
parse_url() {
    local rest="${1#mysql://}" auth hostport query=""
    [[ "$rest" == *\?* ]] && { query="${rest#*\?}"; rest="${rest%%\?*}"; }
    rest="${rest%%/*}"
    if [[ "$rest" == *@* ]]; then auth="${rest%@*}"; hostport="${rest##*@}"; else auth="root"; hostport="$rest"; fi
    DB_USER="${auth%%:*}"; DB_PASS=""; [[ "$auth" == *:* ]] && DB_PASS="${auth#*:}"
    DB_HOST="${hostport%%:*}"; DB_PORT=3306; [[ "$hostport" == *:* ]] && DB_PORT="${hostport##*:}"
    DB_SOCKET=""; [[ "$query" == socket=* ]] && DB_SOCKET="${query#socket=}"
    [[ -n "$DB_HOST" ]] || DB_HOST=127.0.0.1
}

client() { command -v mariadb || command -v mysql || true; }
server_binary() { command -v mariadbd || command -v mysqld || ls /usr/sbin/mariadbd /usr/sbin/mysqld 2>/dev/null | head -n1 || true; }

install_packages() {
    [[ -n "$(client)" && -n "$(server_binary)" ]] && return 0
    say "installing Debian packages mariadb-server mariadb-client"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q mariadb-server mariadb-client >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q mariadb-server mariadb-client >/dev/null; }
}

reachable() {
    local args=(-u "$DB_USER" -e "SELECT 1")
    [[ -n "$DB_PASS" ]] && args+=("-p$DB_PASS")
    if [[ -n "$DB_SOCKET" ]]; then args+=(--socket="$DB_SOCKET"); else args+=(--protocol=TCP -h "$DB_HOST" -P "$DB_PORT"); fi
    "$(client)" "${args[@]}" >/dev/null 2>&1
}

wait_until_reachable() {
    local seconds="$1"
    for _ in $(seq 1 "$seconds"); do reachable && return 0; sleep 1; done
    return 1
}

start_system_server() {
    [[ "$URL" == "$DEFAULT_URL" ]] || return 1
    say "no server answers at $URL; starting the system MariaDB"
    start-stop-daemon --start --oknodo --background --exec "$(server_binary)" >/dev/null 2>&1 || return 1
    wait_until_reachable 20
}

free_port() {
    local port
    for port in $(seq 23306 23999); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
    done
    return 1
}

stop_private_server() {
    [[ -n "$PRIVATE_DIR" ]] || return 0
    if [[ -f "$PRIVATE_DIR/mysqld.pid" ]]; then
        local pid; pid="$(cat "$PRIVATE_DIR/mysqld.pid")"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
        kill -9 "$pid" 2>/dev/null || true
    fi
    rm -rf "$PRIVATE_DIR"
}

start_private_server() {
    local port user_args=()
    PRIVATE_DIR="$(mktemp -d /tmp/ezdb-mariadb.XXXXXX)"
    trap stop_private_server EXIT INT TERM
    port="$(free_port)" || { say "no free port in 23306-23999"; return 1; }
    [[ "$(id -u)" == 0 ]] && user_args=(--user=root)
    mariadb-install-db --no-defaults "${user_args[@]}" --datadir="$PRIVATE_DIR/data" \
        --auth-root-authentication-method=normal >"$PRIVATE_DIR/install.log" 2>&1 \
        || { say "mariadb-install-db failed:"; tail -n 20 "$PRIVATE_DIR/install.log" >&2; return 1; }
    "$(server_binary)" --no-defaults "${user_args[@]}" --datadir="$PRIVATE_DIR/data" \
        --socket="$PRIVATE_DIR/mysqld.sock" --port="$port" --bind-address=127.0.0.1 \
        --pid-file="$PRIVATE_DIR/mysqld.pid" --log-error="$PRIVATE_DIR/error.log" \
        --innodb-buffer-pool-size=256M --max-allowed-packet=64M >/dev/null 2>&1 &
    URL="mysql://root@127.0.0.1:$port"
    parse_url "$URL"
    wait_until_reachable 60 || { say "the private server did not start:"; tail -n 20 "$PRIVATE_DIR/error.log" >&2; return 1; }
    say "started a private MariaDB at $URL (data in $PRIVATE_DIR, removed afterwards)"
}

main() {
    [[ $# -gt 0 ]] || { echo "usage: $0 COMMAND [ARGS...]" >&2; exit 2; }
    install_packages || say "could not install the MariaDB packages; trying what is there"
    parse_url "$URL"
    if ! reachable && ! start_system_server && ! start_private_server; then
        say "no database: nothing answers at ${URL%%@*}@..., and no server could be started here."
        say "Set EZDB_TEST_URL=mysql://user:pass@host:port to a server where that user may create databases."
        exit 2
    fi
    export EZDB_TEST_URL="$URL"
    local status=0
    "$@" || status=$?
    return "$status"
}

main "$@"
