#!/usr/bin/env bash
# Benchmark of index_image beside nginx serving the same 2,000 files from disk, in the same run:
# wrk at 1, 16 and 64 connections, hot (20 files) and cold (random files); prints a table with
# each cache tier's hit rate. BENCH_SECONDS sets the length of each measurement (default 5);
# index_image runs with its defaults plus a 1 GiB disk tier that holds the corpus (after one
# pass over every file; BENCH_DISK_TIER=0 leaves the tier off), or with the INDEX_IMAGE_*
# variables set in the environment (for example INDEX_IMAGE_CACHE_MAX_FILE=1048576).
# BENCH_LAYOUT=dfs imports the corpus into an eZDFS site instead (ezdfsfile rows, bytes on a
# mount directory) and serves it with --layout=dfs, and BENCH_LAYOUT=ezdb,dfs measures both
# layouts one after the other in the same run (nginx beside each); the disk tier is off for
# dfs unless BENCH_DISK_TIER=1 (the mount is a local disk here). With the ezdb layout it then
# measures index_image with both cache tiers off (--cache-bytes=0, no disk tier) beside the raw
# database reference of the same run: ezdb-bench --raw-read, the same files read with the
# legacy handler's plain SELECTs on as many connections, no HTTP (BENCH_TIERS_OFF=0 skips it).
# Everything it starts or creates (nginx, index_image, the temporary directory, the database)
# is removed on exit, whether the run succeeds, fails or is interrupted.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/lib/common.sh
source scripts/lib/corpus.sh

SECONDS_PER_RUN="${BENCH_SECONDS:-5}"
WARMUP_SECONDS=$((SECONDS_PER_RUN < 2 ? SECONDS_PER_RUN : 2))

# What the EXIT trap cleans up; set as each piece comes into being.
BENCH_DIR=""
NGINX_STARTED=""
GATEWAY_PID=""
DATABASE=""

install_tools() {
    command -v nginx >/dev/null && command -v wrk >/dev/null && command -v curl >/dev/null && return 0
    echo "bench: installing Debian packages nginx-light, wrk and curl" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q nginx-light wrk curl >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q nginx-light wrk curl >/dev/null; }
}

# The corpus (scripts/lib/corpus.sh) plus wrk's request script.
make_corpus() {
    make_image_corpus "$1"
    # Each wrk thread loads the list, pre-formats its requests and picks one at random per
    # request, from its own seed.
    cat > "$1/paths.lua" <<'LUA'
local threads = 0
function setup(thread)
    threads = threads + 1
    thread:set("id", threads)
end
local requests = {}
function init(args)
    for line in io.lines(os.getenv("PATHS_FILE")) do
        requests[#requests + 1] = wrk.format("GET", line)
    end
    math.randomseed(os.time() * 1000 + id)
end
function request()
    return requests[math.random(#requests)]
end
LUA
}

start_nginx() {
    local dir="$1" port="$2"
    cat > "$dir/nginx.conf" <<CONF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=4000 inactive=60s;
    client_body_temp_path $dir/tmp; proxy_temp_path $dir/tmp; fastcgi_temp_path $dir/tmp; uwsgi_temp_path $dir/tmp; scgi_temp_path $dir/tmp;
    server { listen 127.0.0.1:$port; root $dir/www; location / { expires 1d; etag on; } }
}
CONF
    mkdir -p "$dir/tmp"
    nginx -c "$dir/nginx.conf" -e "$dir/nginx-error.log"
    NGINX_STARTED=1
}

# wrk figures in fixed units: latency in ms, transfer in MB/s (wrk prints us/ms/s, KB/MB/GB).
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /[0-9]s$/) n *= 1000; printf "%.2f", n }'; }
to_mb() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /KB$/) n /= 1024; else if (v ~ /GB$/) n *= 1024; else if (v ~ /[0-9]B$/) n /= 1048576; printf "%.1f", n }'; }

# Prints "req/s|MB/s|p50 ms|p99 ms" for one wrk run of $5 seconds; any error or non-2xx answer
# fails the run (the figures would be meaningless).
measure() {
    local url="$1" connections="$2" paths="$3" dir="$4" seconds="$5" out
    local threads=$((connections < 2 ? connections : 2))
    out="$(PATHS_FILE="$paths" wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$dir/paths.lua" "$url")" \
        || { echo "bench: wrk failed against $url" >&2; return 1; }
    if grep -qE "Non-2xx|Socket errors" <<<"$out"; then
        echo "bench: errors from $url with $connections connections:" >&2
        echo "$out" >&2
        return 1
    fi
    local rps mbs p50 p99
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    mbs="$(awk '/Transfer\/sec/ {print $2}' <<<"$out")"
    p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    [[ -n "$rps" && -n "$mbs" && -n "$p50" && -n "$p99" ]] \
        || { echo "bench: cannot read wrk's output:" >&2; echo "$out" >&2; return 1; }
    echo "$rps|$(to_mb "$mbs")|$(to_ms "$p50")|$(to_ms "$p99")"
}

# "memory hits|memory misses|disk hits|disk misses" from the gateway's /metrics.
tier_counts() {
    curl -fsS "$1/metrics" | awk '
        /^index_image_cache_hits_total\{tier="memory"\}/ { mh = $2 }
        /^index_image_cache_misses_total\{tier="memory"\}/ { mm = $2 }
        /^index_image_cache_hits_total\{tier="disk"\}/ { dh = $2 }
        /^index_image_cache_misses_total\{tier="disk"\}/ { dm = $2 }
        END { printf "%d|%d|%d|%d\n", mh, mm, dh, dm }'
}

# "memory %|disk %": the share of lookups each tier answered between two tier_counts.
hit_rates() {
    awk -v a="$1" -v b="$2" 'BEGIN { split(a, x, "|"); split(b, y, "|");
        mh = y[1] - x[1]; mm = y[2] - x[2]; dh = y[3] - x[3]; dm = y[4] - x[4];
        printf "%s|%s\n", (mh + mm ? sprintf("%.0f", 100 * mh / (mh + mm)) : "-"),
                           (dh + dm ? sprintf("%.0f", 100 * dh / (dh + dm)) : "-") }'
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "$GATEWAY_PID" ]]; then
        kill "$GATEWAY_PID" 2>/dev/null || true
        wait "$GATEWAY_PID" 2>/dev/null || true
        if [[ "$status" != 0 && -s "$BENCH_DIR/index_image.log" ]]; then
            echo "bench: the end of index_image's log:" >&2
            tail -n 20 "$BENCH_DIR/index_image.log" >&2
        fi
    fi
    if [[ -n "$NGINX_STARTED" && -f "$BENCH_DIR/nginx.pid" ]]; then
        local pid; pid="$(cat "$BENCH_DIR/nginx.pid")"
        kill -QUIT "$pid" 2>/dev/null || true
        local i
        for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    if [[ -n "$DATABASE" ]]; then
        mariadb_client -e "DROP DATABASE IF EXISTS \`$DATABASE\`" \
            || echo "bench: could not drop the database $DATABASE" >&2
    fi
    [[ -n "$BENCH_DIR" ]] && rm -rf "$BENCH_DIR"
    exit "$status"
}

run() {
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    cargo build --release --locked -q -p index-image -p ezdb-tools -p ezdb-bench
    BENCH_DIR="$(mktemp -d /tmp/ezdb-bench.XXXXXX)"
    chmod 755 "$BENCH_DIR"   # nginx's workers run as another user and must read the files
    local dir="$BENCH_DIR"
    echo "bench: writing 2,000 files" >&2
    make_corpus "$dir"
    DATABASE="ezdb_bench_gateway_$$"
    mariadb_client -e "DROP DATABASE IF EXISTS \`$DATABASE\`; CREATE DATABASE \`$DATABASE\`"
    local url="${EZDB_TEST_URL%/}/$DATABASE"
    local nginx_port
    nginx_port="$(free_port 28080)"
    start_nginx "$dir" "$nginx_port"
    local first; first="$(head -n 1 "$dir/hot.txt")"
    wait_for_http "http://127.0.0.1:$nginx_port$first"

    echo "Machine: $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo) RAM;" \
        "wrk, index_image, nginx and MariaDB $(mariadb_client -N -e 'SELECT VERSION()') share them. ${SECONDS_PER_RUN} s per measurement." \
        "Load average at the start: $(cut -d' ' -f1-3 /proc/loadavg)."
    local max_file="${INDEX_IMAGE_CACHE_MAX_FILE:-4194304}" cache="${INDEX_IMAGE_CACHE_BYTES:-67108864}" over
    over="$(sed "s|^|$dir/www|" "$dir/hot.txt" | xargs stat -c %s | awk -v m="$max_file" '$1 > m { n++; b += $1 }
        END { if (n) printf "%d hot file(s) (%.2f MB) are larger, read from the database (or the mount) each time", n, b / 1e6;
              else printf "every hot file fits" }')"
    echo "Layouts: ezdb = the cluster tables (chunks in ezdbfile_data); dfs = an eZDFS site (rows in ezdfsfile, bytes on a local mount directory)."
    echo "Note: hot = 20 files, cold = any of the 2,000 (292 MB); index_image's memory cache holds $((cache >> 20)) MiB," \
        "files up to $((max_file >> 10)) KiB: $over; the disk tier, when on, holds 1 GiB (the whole corpus, filled by one pass before);" \
        "nginx reads the files from disk (in the page cache)."
    echo
    echo "| layout | disk tier | files | connections | index_image req/s | MB/s | p50 ms | p99 ms | memory hits % | disk hits % | nginx (disk) req/s | MB/s | p50 ms | p99 ms | index_image / nginx |"
    echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    local layout
    local IFS_SAVED="$IFS"; IFS=','
    local layouts=(${BENCH_LAYOUT:-ezdb})
    IFS="$IFS_SAVED"
    for layout in "${layouts[@]}"; do
        serve_layout "$dir" "$url" "$layout" "$nginx_port"
    done
    echo
    echo "Load average after the tiers' table: $(cut -d' ' -f1-3 /proc/loadavg)."
    if [[ "${BENCH_TIERS_OFF:-1}" != 0 && " ${layouts[*]} " == *" ezdb "* ]]; then
        serve_tiers_off "$dir" "$url"
    fi
}

# index_image with both cache tiers off (every request reads the database) beside the raw
# database reference: the same files read with plain SELECTs on as many connections, no HTTP.
# The ezdb layout's tables are still in the database (serve_layout imported them).
serve_tiers_off() {
    local dir="$1" url="$2" gateway_port
    gateway_port="$(free_port 29090)"
    env -u RUST_LOG -u INDEX_IMAGE_CACHE_BYTES target/release/index_image --database-url="$url" --listen="127.0.0.1:$gateway_port" \
        --spool-dir="$dir/tmp" --cache-bytes=0 >/dev/null 2>"$dir/index_image.log" &
    GATEWAY_PID=$!
    wait_for_http "http://127.0.0.1:$gateway_port/healthz"
    echo
    echo "Both tiers off (--cache-bytes=0, no disk tier: every request reads the database) beside the raw database reference"
    echo "(ezdb-bench --raw-read: the same files, the legacy handler's two plain SELECTs per file on as many connections, no HTTP):"
    echo
    echo "| files | connections | index_image req/s | MB/s | p50 ms | p99 ms | raw database files/s | MB/s | index_image / raw |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    local mode connections ours raw
    for mode in hot cold; do
        for connections in 1 16 64; do
            measure "http://127.0.0.1:$gateway_port" "$connections" "$dir/$mode.txt" "$dir" "$WARMUP_SECONDS" >/dev/null
            ours="$(measure "http://127.0.0.1:$gateway_port" "$connections" "$dir/$mode.txt" "$dir" "$SECONDS_PER_RUN")"
            raw="$(target/release/ezdb-bench --raw-read="$url" --paths="$dir/$mode.txt" --connections="$connections" --seconds="$SECONDS_PER_RUN")"
            awk -v mode="$mode" -v c="$connections" -v o="$ours" -v r="$raw" 'BEGIN {
                split(o, a, "|"); split(r, b, "|");
                printf "| %s | %d | %.0f | %s | %s | %s | %.0f | %s | %.2f |\n", mode, c, a[1], a[2], a[3], a[4], b[1], b[2], a[1] / b[1] }'
        done
    done
    kill "$GATEWAY_PID" 2>/dev/null || true
    wait "$GATEWAY_PID" 2>/dev/null || true
    GATEWAY_PID=""
    echo
    echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
}

# Imports the corpus in `layout`, serves it with index_image and prints its table rows, each
# beside nginx measured right after it.
serve_layout() {
    local dir="$1" url="$2" layout="$3" nginx_port="$4"
    local layout_args=() tier_default=1
    case "$layout" in
        ezdb) ;;
        dfs)
            mkdir -p "$dir/mount"
            layout_args=(--layout=dfs --mount-point="$dir/mount")
            tier_default=0
            ;;
        *) echo "bench: BENCH_LAYOUT takes ezdb, dfs or ezdb,dfs, not $layout" >&2; return 1 ;;
    esac
    echo "bench: importing them into $DATABASE ($layout layout)" >&2
    target/release/ezdb --url="$url" "${layout_args[@]}" schema install >/dev/null
    target/release/ezdb --url="$url" "${layout_args[@]}" import "$dir/www" >/dev/null
    local gateway_port
    gateway_port="$(free_port 29090)"
    # As deployed: default settings and log level (no RUST_LOG), plus the disk tier.
    local tier=() tier_note=off
    if [[ "${BENCH_DISK_TIER:-$tier_default}" != 0 ]]; then
        rm -rf "$dir/disk"
        tier=(--disk-cache-dir="$dir/disk" --disk-cache-bytes=$((1 << 30)))
        tier_note=on
    fi
    env -u RUST_LOG target/release/index_image --database-url="$url" --listen="127.0.0.1:$gateway_port" "${layout_args[@]}" \
        --spool-dir="$dir/tmp" "${tier[@]}" >/dev/null 2>"$dir/index_image.log" &
    GATEWAY_PID=$!
    local first; first="$(head -n 1 "$dir/hot.txt")"
    wait_for_http "http://127.0.0.1:$gateway_port/healthz"
    wait_for_http "http://127.0.0.1:$gateway_port$first"
    if [[ ${#tier[@]} -gt 0 ]]; then
        echo "bench: one pass over every file through index_image (fills the disk tier)" >&2
        xargs -P 8 -I{} curl -fsS --retry 3 --retry-delay 1 -o /dev/null "http://127.0.0.1:$gateway_port{}" <"$dir/cold.txt"
        sleep 1
    fi
    local mode connections ours theirs before rates
    for mode in hot cold; do
        for connections in 1 16 64; do
            measure "http://127.0.0.1:$gateway_port" "$connections" "$dir/$mode.txt" "$dir" "$WARMUP_SECONDS" >/dev/null
            before="$(tier_counts "http://127.0.0.1:$gateway_port")"
            ours="$(measure "http://127.0.0.1:$gateway_port" "$connections" "$dir/$mode.txt" "$dir" "$SECONDS_PER_RUN")"
            rates="$(hit_rates "$before" "$(tier_counts "http://127.0.0.1:$gateway_port")")"
            measure "http://127.0.0.1:$nginx_port" "$connections" "$dir/$mode.txt" "$dir" "$WARMUP_SECONDS" >/dev/null
            theirs="$(measure "http://127.0.0.1:$nginx_port" "$connections" "$dir/$mode.txt" "$dir" "$SECONDS_PER_RUN")"
            awk -v layout="$layout" -v tier="$tier_note" -v mode="$mode" -v c="$connections" -v o="$ours" -v t="$theirs" -v r="$rates" 'BEGIN {
                split(o, a, "|"); split(t, b, "|"); split(r, h, "|");
                printf "| %s | %s | %s | %d | %.0f | %s | %s | %s | %s | %s | %.0f | %s | %s | %s | %.2f |\n", layout, tier, mode, c, a[1], a[2], a[3], a[4], h[1], h[2], b[1], b[2], b[3], b[4], a[1] / b[1] }'
        done
    done
    kill "$GATEWAY_PID" 2>/dev/null || true
    wait "$GATEWAY_PID" 2>/dev/null || true
    GATEWAY_PID=""
}

if [[ "${1:-}" == "--inner" ]]; then
    run
else
    install_tools
    exec scripts/with-db.sh bash scripts/bench-index-image.sh --inner
fi
