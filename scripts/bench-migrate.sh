#!/usr/bin/env bash
# Benchmark of `ezdb migrate` (files/s, MB/s) on the 2,000-file corpus of the gateway benchmark
# (292 MB), beside references measured in the same run on the same files: `cp -a` of the
# directory (what the disk gives), `ezdb import` (the clusterize step) and `ezdb export` (every
# byte read back from the eZDB tables). Then eZDB -> eZDFS, the re-run that only verifies, and
# eZDFS -> eZDB into a second database. Everything it creates (the temporary directory, the two
# databases) is removed on exit, whether the run succeeds, fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/lib/common.sh
source scripts/lib/corpus.sh

BENCH_DIR=""
DATABASES=()

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    local db
    for db in "${DATABASES[@]}"; do
        mariadb_client -e "DROP DATABASE IF EXISTS \`$db\`" || echo "bench: could not drop the database $db" >&2
    done
    [[ -n "$BENCH_DIR" ]] && rm -rf "$BENCH_DIR"
    exit "$status"
}

# Runs the command after the label, prints "label|seconds".
timed() {
    local label="$1" start end
    shift
    start="$(date +%s.%N)"
    "$@" >/dev/null
    end="$(date +%s.%N)"
    echo "$label|$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')"
}

run() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    cargo build --release --locked -q -p ezdb-tools
    BENCH_DIR="$(mktemp -d /tmp/ezdb-bench-migrate.XXXXXX)"
    local dir="$BENCH_DIR" ezdb=target/release/ezdb
    echo "bench: writing 2,000 files" >&2
    make_image_corpus "$dir"
    local files bytes
    files="$(find "$dir/www" -type f | wc -l)"
    bytes="$(find "$dir/www" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')"
    local first="ezdb_bench_migrate_$$" second="ezdb_bench_migrate_back_$$"
    DATABASES=("$first" "$second")
    mariadb_client -e "CREATE DATABASE \`$first\`; CREATE DATABASE \`$second\`"
    local url second_url
    url="$(database_url "$first")"
    second_url="$(database_url "$second")"
    mkdir -p "$dir/mount"
    local dfs=(--layout=dfs --mount-point="$dir/mount")
    "$ezdb" --url="$url" schema install >/dev/null
    "$ezdb" --url="$url" "${dfs[@]}" schema install >/dev/null
    "$ezdb" --url="$second_url" schema install >/dev/null
    sync

    local rows=()
    rows+=("$(timed "cp -a of the files (reference: the disk)" cp -a "$dir/www" "$dir/copy")")
    rows+=("$(timed "ezdb import into eZDB (reference: clusterize)" "$ezdb" --url="$url" import "$dir/www")")
    rows+=("$(timed "ezdb export from eZDB (reference: every byte read back)" "$ezdb" --url="$url" export "$dir/export")")
    rows+=("$(timed "ezdb migrate --from=ezdb --to=dfs" "$ezdb" --url="$url" migrate --from=ezdb --to=dfs --mount-point="$dir/mount")")
    rows+=("$(timed "the same again (nothing to copy: every file re-hashed)" "$ezdb" --url="$url" migrate --from=ezdb --to=dfs --mount-point="$dir/mount")")
    rows+=("$(timed "ezdb migrate --from=dfs --to=ezdb (another database)" "$ezdb" --url="$url" migrate --from=dfs --to=ezdb --mount-point="$dir/mount" --to-url="$second_url")")

    echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo) RAM;" \
        "MariaDB $(mariadb_client -N -e 'SELECT VERSION()') on the same machine; the mount is a local directory."
    echo "Corpus: $files files, $(awk -v b="$bytes" 'BEGIN { printf "%.0f MB", b / 1e6 }') (60 % of 2-20 KB, 30 % of 20-200 KB, 10 % of 200 KB-2 MB)."
    echo
    echo "| operation | seconds | files/s | MB/s |"
    echo "|---|---:|---:|---:|"
    local row
    for row in "${rows[@]}"; do
        awk -v r="$row" -v f="$files" -v b="$bytes" 'BEGIN { split(r, x, "|"); s = x[2] < 0.01 ? 0.01 : x[2];
            printf "| %s | %.2f | %.0f | %.1f |\n", x[1], x[2], f / s, b / 1e6 / s }'
    done
}

if [[ "${1:-}" == "--inner" ]]; then
    run
else
    exec scripts/with-db.sh bash scripts/bench-migrate.sh --inner
fi
