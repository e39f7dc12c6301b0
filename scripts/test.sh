#!/usr/bin/env bash
# The one command that runs every test: formatting, the whole workspace build, and all tests
# against a real MariaDB that scripts/with-db.sh provides (installed or started if needed).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

TEST_STEPS=(
    "format check|cargo fmt --all -- --check"
    "build|cargo build --workspace --all-targets --locked"
    "tests|cargo test --workspace --locked -- --test-threads=4"
)

run_steps() {
    local step name command log
    log="$(mktemp)"
    trap 'rm -f "$log"' RETURN
    for step in "${TEST_STEPS[@]}"; do
        name="${step%%|*}"; command="${step#*|}"
        echo "==> $name: $command"
        if ! bash -o pipefail -c "$command 2>&1 | tee -a '$log'"; then
            echo "FAILED step: $name ($command)" >&2
            return 1
        fi
    done
    # One closing line for every test binary together (the last cargo line is often a doc-test
    # binary with nothing in it).
    awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
}

if [[ "${1:-}" == "--inner" ]]; then
    run_steps
else
    exec scripts/with-db.sh "$0" --inner
fi
