#!/usr/bin/env bash
# Runs the PHP tests (tests/php/run.php) against the freshly built libezdb: installs PHP 8.2
# (CLI with FFI, pcntl, mysqli) when missing, builds crates/ezdb-ffi, then runs every test on the
# server of EZDB_TEST_URL (default mysql://root@127.0.0.1:3306), in a database of its own.
# Usage: scripts/test-php.sh [FILTER]   (scripts/with-db.sh scripts/test-php.sh also starts a server)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

say() { echo "test-php: $*" >&2; }

php_ready() {
    command -v php >/dev/null 2>&1 && php -r 'exit(extension_loaded("ffi") && extension_loaded("mysqli")
        && function_exists("pcntl_fork") && function_exists("posix_kill") ? 0 : 1);'
}

install_php() {
    local pkgs=(php8.2-cli php8.2-mysql) log
    say "installing ${pkgs[*]} with apt-get (php with FFI, pcntl and mysqli is missing)"
    export DEBIAN_FRONTEND=noninteractive
    log="$(mktemp)"
    if ! apt-get install -y -q "${pkgs[@]}" >"$log" 2>&1; then
        apt-get update -q >>"$log" 2>&1 || true
        apt-get install -y -q "${pkgs[@]}" >>"$log" 2>&1 || { tail -n 15 "$log" >&2; rm -f "$log"; return 1; }
    fi
    rm -f "$log"
}

if ! php_ready; then
    install_php || true
    php_ready || { say "ERROR: need php 8.2 with the FFI, pcntl, posix and mysqli extensions (Debian: php8.2-cli php8.2-mysql)"; exit 2; }
fi

say "building libezdb (cargo build --locked -p ezdb-ffi)"
cargo build --locked -p ezdb-ffi

export EZDB_LIBRARY="$ROOT/target/debug/libezdb.so"
exec php -d memory_limit=1G tests/php/run.php "$@"
