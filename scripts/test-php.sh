#!/usr/bin/env bash
# Runs the PHP tests (tests/php/run.php) against the freshly built libezdb: installs PHP 8.2
# (CLI with FFI, pcntl, mysqli; PHP-FPM) when missing, builds crates/ezdb-ffi and the replica
# helper, then runs every test on the server of EZDB_TEST_URL (default mysql://root@127.0.0.1:3306),
# in a database of its own.
# Usage: scripts/test-php.sh [FILTER]   (scripts/with-db.sh scripts/test-php.sh also starts a server)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

source scripts/lib/common.sh
say() { echo "test-php: $*" >&2; }

ensure_php || exit 2

say "building libezdb (cargo build --locked -p ezdb-ffi)"
cargo build --locked -p ezdb-ffi
# ReplicaTest starts a private primary with a replica through this helper.
say "building the replica helper (cargo build --locked -p ezdb-testdb --bin ezdb-replicated-pair)"
cargo build --locked -p ezdb-testdb --bin ezdb-replicated-pair

export EZDB_LIBRARY="$ROOT/target/debug/libezdb.so"
export EZDB_REPLICATED_PAIR="$ROOT/target/debug/ezdb-replicated-pair"
exec php -d memory_limit=1G tests/php/run.php "$@"
