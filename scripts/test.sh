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
    local step name command
    for step in "${TEST_STEPS[@]}"; do
        name="${step%%|*}"; command="${step#*|}"
        echo "==> $name: $command"
        if ! bash -c "$command"; then
            echo "FAILED step: $name ($command)" >&2
            return 1
        fi
    done
}

if [[ "${1:-}" == "--inner" ]]; then
    run_steps
else
    exec scripts/with-db.sh "$0" --inner
fi
