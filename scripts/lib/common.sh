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

# PHP 8.2 as the demo and the PHP tests need it: the CLI with FFI, pcntl, posix and mysqli, and
# PHP-FPM with a FastCGI client for the FPM test.
php_ready() {
    command -v php >/dev/null 2>&1 && command -v php-fpm8.2 >/dev/null 2>&1 && command -v cgi-fcgi >/dev/null 2>&1 \
        && php -r 'exit(extension_loaded("ffi") && extension_loaded("mysqli") && function_exists("pcntl_fork")
            && function_exists("posix_kill") ? 0 : 1);'
}

# Installs the Debian packages of PHP 8.2 when php_ready fails; fails naming them if it cannot.
ensure_php() {
    php_ready && return 0
    local packages=(php8.2-cli php8.2-mysql php8.2-fpm libfcgi-bin) sudo="" log
    echo "installing Debian packages ${packages[*]} (PHP with FFI, pcntl, mysqli; PHP-FPM)" >&2
    [[ "$(id -u)" != 0 ]] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    log="$(mktemp)"
    $sudo apt-get install -y -q "${packages[@]}" >"$log" 2>&1 \
        || { $sudo apt-get update -q >>"$log" 2>&1; $sudo apt-get install -y -q "${packages[@]}" >>"$log" 2>&1; } \
        || true
    php_ready || {
        tail -n 15 "$log" >&2
        echo "ERROR: need PHP 8.2 with FFI, pcntl, posix and mysqli, php-fpm8.2 and cgi-fcgi (Debian: ${packages[*]})" >&2
        rm -f "$log"
        return 1
    }
    rm -f "$log"
}
