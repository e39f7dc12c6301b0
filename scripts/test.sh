#!/usr/bin/env bash
# The one command that runs every test: formatting, the whole workspace build, all Rust tests
# and the PHP tests, against a real MariaDB that scripts/with-db.sh provides (installed or
# started if needed); PHP is installed when missing.
set -euo pipefail

# Steps in order, as "name|command"; the first failing step stops the run. Append new ones here.
TEST_STEPS=(
    "format check|cargo fmt --all -- --check"
    "lints|cargo clippy --workspace --all-targets --locked -- -D warnings"
    "build|cargo build --workspace --all-targets --locked"
    "tests|cargo test --workspace --locked -- --test-threads=4"
    "php tests|bash scripts/test-php.sh"
    "php tests on the legacy DDL|EZDB_TEST_SCHEMA=legacy bash scripts/test-php.sh"
)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

# One total over every cargo test binary and the PHP suite in the log, when any test ran.
summary() {
    grep -qE '^(test result|php tests):' "$LOG" || return 0
    awk '/^test result:/ { p += $4; f += $6 }
         /^php tests:/ { p += $3; f += $5 }
         END { printf "tests: %d passed, %d failed\n", p, f }' "$LOG"
}

# Runs TEST_STEPS in order, stopping at the first failure.
run_steps() {
    local step name command
    LOG="$(mktemp)"
    trap 'rm -f "$LOG"' EXIT
    for step in "${TEST_STEPS[@]}"; do
        name="${step%%|*}"; command="${step#*|}"
        echo "==> $name: $command"
        if ! bash -o pipefail -c "$command 2>&1 | tee -a \"\$0\"" "$LOG"; then
            summary
            echo "FAILED step: $name ($command)" >&2
            return 1
        fi
    done
    summary
}

if [[ "${1:-}" == "--inner" ]]; then
    run_steps
else
    source scripts/lib/common.sh
    ensure_php
    ensure_galera
    ensure_haproxy
    exec scripts/with-db.sh bash scripts/test.sh --inner
fi
