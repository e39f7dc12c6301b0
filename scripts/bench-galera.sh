#!/usr/bin/env bash
# Benchmark of ezdb on a private 3-node MariaDB Galera cluster on loopback beside a private
# single server with the same settings, in the same run (crates/ezdb-bench, `--galera`): store,
# fetch, process_cache hit and miss, the .generating lock, through node 1 and spread over the
# nodes; then callers on the three nodes contending for one expired entry. The servers are the
# benchmark's own (temporary datadirs, stopped on exit); galera-4 is installed when missing.
# Usage: scripts/bench-galera.sh [--seconds=S]   (seconds per measurement, default 2)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/lib/common.sh

ensure_galera
cargo build --release --locked -q -p ezdb-bench
echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo) RAM;" \
    "$(/usr/sbin/mariadbd --version 2>/dev/null | awk '{print $3}' || echo MariaDB), galera-4, all on loopback; load average $(cut -d' ' -f1-3 /proc/loadavg)."
echo
target/release/ezdb-bench --galera "$@"
