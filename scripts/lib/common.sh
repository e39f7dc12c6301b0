# Shell helpers shared by the demo, benchmark and test scripts: output sections, free ports,
# waiting for HTTP, the database client, and installing PHP when it is missing.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

section() { printf '\n== %s\n' "$*"; }

# A TCP port in $1..$1+$2-1 (default 500 ports) that nothing on 127.0.0.1 accepts connections
# on; the scan starts at a random offset so that concurrent runs rarely pick the same one.
free_port() {
    local first="$1" count="${2:-500}" i port offset=$((RANDOM % ${2:-500}))
    for ((i = 0; i < count; i++)); do
        port=$((first + (offset + i) % count))
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return 0; }
    done
    echo "no free port in $first..$((first + count - 1))" >&2
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

# Percent-decodes a URL component (user names and passwords may be encoded).
url_decode() {
    local s="${1//\\/\\\\}"
    printf '%b' "${s//%/\\x}"
}

# Splits mysql://user:pass@host:port/db?socket=/path into DB_USER DB_PASS DB_HOST DB_PORT DB_SOCKET.
parse_url() {
    local rest="${1#*://}" auth="root" hostport query="" param
    if [[ "$rest" == *\?* ]]; then query="${rest#*\?}"; rest="${rest%%\?*}"; fi
    rest="${rest%%/*}"
    hostport="${rest##*@}"
    [[ "$rest" == *@* ]] && auth="${rest%@*}"
    DB_USER="$(url_decode "${auth%%:*}")"; DB_PASS=""
    [[ "$auth" == *:* ]] && DB_PASS="$(url_decode "${auth#*:}")"
    DB_HOST="${hostport%%:*}"; DB_PORT=3306
    [[ "$hostport" == *:* ]] && DB_PORT="${hostport##*:}"
    [[ -n "$DB_HOST" ]] || DB_HOST=127.0.0.1
    DB_SOCKET=""
    local IFS='&'
    for param in $query; do
        [[ "$param" == socket=* ]] && DB_SOCKET="$(url_decode "${param#socket=}")"
    done
    return 0
}

# The mariadb (or mysql) client program, empty when neither is installed.
db_client() { command -v mariadb || command -v mysql || true; }

# Runs the client on the server in DB_* (see parse_url); the password goes through the
# environment, never the command line.
db_run() {
    local args=(-u "$DB_USER")
    if [[ -n "$DB_SOCKET" ]]; then args+=(--protocol=SOCKET --socket="$DB_SOCKET")
    else args+=(--protocol=TCP -h "$DB_HOST" -P "$DB_PORT"); fi
    MYSQL_PWD="$DB_PASS" "$(db_client)" --no-defaults "${args[@]}" "$@"
}

# The client on the server named by EZDB_TEST_URL (set by with-db.sh).
mariadb_client() {
    parse_url "$EZDB_TEST_URL"
    db_run "$@"
}

# PHP 8.2 as the demo and the PHP tests need it: the CLI with FFI, pcntl, posix and mysqli, and
# PHP-FPM with a FastCGI client for the FPM test.
php_ready() {
    command -v php >/dev/null 2>&1 && command -v php-fpm8.2 >/dev/null 2>&1 && command -v cgi-fcgi >/dev/null 2>&1 \
        && php -r 'exit(extension_loaded("ffi") && extension_loaded("mysqli") && function_exists("pcntl_fork")
            && function_exists("posix_kill") ? 0 : 1);'
}

# Installs Debian packages unless READY (a shell function) already succeeds:
#   ensure_packages READY "what they are for" PACKAGE...
ensure_packages() {
    local ready="$1" purpose="$2" sudo="" log
    shift 2
    "$ready" && return 0
    echo "installing Debian packages $* ($purpose)" >&2
    [[ "$(id -u)" != 0 ]] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    log="$(mktemp)"
    $sudo apt-get install -y -q "$@" >"$log" 2>&1 \
        || { $sudo apt-get update -q >>"$log" 2>&1; $sudo apt-get install -y -q "$@" >>"$log" 2>&1; } \
        || true
    "$ready" || {
        tail -n 15 "$log" >&2
        echo "ERROR: need $purpose (Debian: $*)" >&2
        rm -f "$log"
        return 1
    }
    rm -f "$log"
}

# The Debian packages of PHP 8.2 when php_ready fails; fails naming them if it cannot.
ensure_php() {
    ensure_packages php_ready "PHP 8.2 with FFI, pcntl, posix and mysqli, php-fpm8.2 and cgi-fcgi" \
        php8.2-cli php8.2-mysql php8.2-fpm libfcgi-bin
}

# The Galera provider and rsync (the state transfer of a joining node), for the private 3-node
# cluster of crates/ezdb-core/tests/galera.rs: installed from Debian when missing.
galera_ready() {
    local provider
    command -v rsync >/dev/null || return 1
    for provider in /usr/lib/galera/libgalera_smm.so /usr/lib/libgalera_smm.so \
        /usr/lib/x86_64-linux-gnu/galera/libgalera_smm.so; do
        [[ -f "$provider" ]] && return 0
    done
    return 1
}

ensure_galera() {
    ensure_packages galera_ready "galera-4 and rsync, for the private Galera cluster of the tests" galera-4 rsync
}

# HAProxy and the mariadb client (its Galera health check, deploy/galera-check.sh), for the
# HAProxy deploy example that crates/ezdb-core/tests/galera.rs runs: installed when missing.
haproxy_ready() {
    { command -v haproxy >/dev/null || [[ -x /usr/sbin/haproxy ]]; } && command -v mariadb >/dev/null
}

ensure_haproxy() {
    ensure_packages haproxy_ready "haproxy and the mariadb client, for the HAProxy deploy example in the Galera tests" \
        haproxy mariadb-client
}
