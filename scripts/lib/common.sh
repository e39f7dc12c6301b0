# Shell helpers shared by the demo, benchmark and test scripts: output sections, free ports,
# waiting for HTTP, the database client, and installing PHP when it is missing.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

section() { printf '\n== %s\n' "$*"; }

# The first TCP port from $1 on that nothing listens on.
free_port() {
    local port
    for port in $(seq "$1" $(($1 + 500))); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
    done
    echo "no free port in $1..$(($1 + 500))" >&2
    return 1
}

# Waits up to 10 s for a URL to answer 200.
wait_for_http() {
    local attempt
    for attempt in $(seq 100); do
        [[ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" == 200 ]] && return 0
        sleep 0.1
    done
    echo "$1 did not answer within 10 s" >&2
    return 1
}

# The server URL (EZDB_TEST_URL, set by with-db.sh) with database $1.
database_url() {
    local server="${EZDB_TEST_URL%/}" query=""
    if [[ "$server" == *\?* ]]; then query="?${server#*\?}"; server="${server%%\?*}"; fi
    echo "$server/$1$query"
}

# The mariadb/mysql client on the server named by EZDB_TEST_URL.
mariadb_client() {
    local rest="${EZDB_TEST_URL#*://}" auth hostport socket=""
    [[ "$rest" == *\?socket=* ]] && socket="${rest#*\?socket=}"
    rest="${rest%%\?*}"; rest="${rest%%/*}"
    auth="root"; [[ "$rest" == *@* ]] && auth="${rest%@*}"
    hostport="${rest##*@}"
    local args=(-u "${auth%%:*}")
    if [[ -n "$socket" ]]; then args+=(--socket="$socket")
    else args+=(--protocol=TCP -h "${hostport%%:*}"); [[ "$hostport" == *:* ]] && args+=(-P "${hostport##*:}"); fi
    local client; client="$(command -v mariadb || command -v mysql)"
    MYSQL_PWD="$( [[ "$auth" == *:* ]] && echo "${auth#*:}" )" "$client" --no-defaults "${args[@]}" "$@"
}

# Installs PHP 8.2 CLI with FFI, pcntl and mysqli (Debian packages) when `php` is missing.
ensure_php() {
    if command -v php >/dev/null && php -m | grep -qx FFI && php -m | grep -qx mysqli; then
        return 0
    fi
    echo "installing Debian packages php8.2-cli php8.2-mysql (PHP with FFI, pcntl, mysqli)" >&2
    local sudo=""; [[ "$(id -u)" != 0 ]] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y -q php8.2-cli php8.2-mysql >/dev/null 2>&1 \
        || { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q php8.2-cli php8.2-mysql >/dev/null; }
}
