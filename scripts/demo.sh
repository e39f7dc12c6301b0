#!/usr/bin/env bash
# The main job, end to end: makes a MariaDB reachable (installing or starting one if needed),
# builds the release binaries and runs the demo, which stores, reads, expires and purges files.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
exec scripts/with-db.sh cargo run --release --locked -p ezdb-core --example demo
