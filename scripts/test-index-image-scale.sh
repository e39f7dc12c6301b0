#!/usr/bin/env bash
# index_image's traffic tests at the full scale of the issue that asked for them, too slow and
# too large for every CI run: 64 paused readers of 20 MB files (1.28 GB read from the
# database and spooled) while other clients get 200s, and 1,000 idle sockets closed by the
# timeouts. scripts/test.sh runs the same tests at a smaller scale (6 MiB files).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

if [[ "${1:-}" == "--inner" ]]; then
    INDEX_IMAGE_FULL_SCALE=1 cargo test --locked -p index-image --test limits -- \
        slow_and_paused_readers_of_large_files_never_starve_other_clients \
        idle_sockets_are_closed_by_the_timeouts_and_the_cap_holds
else
    exec scripts/with-db.sh bash scripts/test-index-image-scale.sh --inner
fi
