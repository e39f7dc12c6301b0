#!/usr/bin/env bash
# The main job, end to end: makes MariaDB and PHP available (installing or starting them when
# needed), builds the release binaries, then stores files, serves them through index_image and
# reads them from PHP, in a throwaway database.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/lib/common.sh

DATABASE="ezdb_demo_site"

# 1. The core on its own: store, read, generate a cache entry once, expire and purge.
core_tour() {
    section "core: the Rust library on its own"
    target/release/examples/demo
}

# 2. A small site tree imported the way `clusterize` did.
import_site() {
    section "ezdb import: a site's var/ tree into the cluster"
    mkdir -p "$WORK/site/var/demo/storage/images/10/1/eng-GB" "$WORK/site/var/demo/cache/content/demo/1"
    head -c 48000 /dev/urandom > "$WORK/site/var/demo/storage/images/10/1/eng-GB/logo.png"
    printf '<?php return "cached view";' > "$WORK/site/var/demo/cache/content/demo/1/1-0.cache"
    target/release/ezdb --url="$URL" schema install
    target/release/ezdb --url="$URL" import "$WORK/site"
}

# 3. index_image serves the image over HTTP straight from the database, and refuses the rest.
serve_images() {
    section "index_image: the image gateway"
    local port; port="$(free_port 28600)"
    target/release/index_image --database-url="$URL" --listen="127.0.0.1:$port" >"$WORK/index_image.log" 2>&1 &
    GATEWAY_PID=$!
    wait_for_http "http://127.0.0.1:$port/healthz"
    GATEWAY="http://127.0.0.1:$port"
    local image="/var/demo/storage/images/10/1/eng-GB/logo.png"
    curl -s -D "$WORK/headers" -o "$WORK/served.png" "$GATEWAY$image"
    cmp "$WORK/served.png" "$WORK/site$image"
    echo "GET $image -> $(head -1 "$WORK/headers" | tr -d '\r'), $(stat -c %s "$WORK/served.png") bytes, identical to the file on disk"
    grep -iE '^(content-type|etag|last-modified|cache-control):' "$WORK/headers" | sed 's/^/  /'
    local etag; etag="$(grep -i '^etag:' "$WORK/headers" | cut -d' ' -f2 | tr -d '\r')"
    echo "GET with If-None-Match $etag -> $(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $etag" "$GATEWAY$image")"
    echo "GET a range of 100 bytes -> $(curl -s -o /dev/null -w '%{http_code}, %{size_download} bytes' -H 'Range: bytes=100-199' "$GATEWAY$image")"
    echo "GET the view cache file -> $(curl -s -o /dev/null -w '%{http_code}' "$GATEWAY/var/demo/cache/content/demo/1/1-0.cache") (never served)"
    echo "GET /var/demo/storage/images/../../cache/x -> $(curl -s -o /dev/null -w '%{http_code}' --path-as-is "$GATEWAY/var/demo/storage/images/../../cache/x")"
}

# 4. PHP through FFI: the drop-in eZDBFileHandler reads what Rust stored and stores what
#    index_image then serves.
php_side() {
    section "PHP: eZDBFileHandler through FFI"
    # Like eZ Publish, the handler keeps local copies of caches relative to the site root.
    (cd "$WORK/site" && EZDB_LIBRARY="$ROOT/target/release/libezdb.so" php "$ROOT/php/examples/demo.php" "$URL" .)
    local image="/var/demo/storage/images/10/2/eng-GB/from-php.txt"
    echo "index_image serves the file PHP stored: $(curl -s "$GATEWAY$image")"
}

run() {
    WORK="$(mktemp -d /tmp/ezdb-demo.XXXXXX)"
    trap cleanup EXIT
    cargo build --release --locked --workspace # libraries (libezdb.so) and binaries
    cargo build --release --locked -p ezdb-core --example demo
    core_tour
    mariadb_client -e "DROP DATABASE IF EXISTS $DATABASE; CREATE DATABASE $DATABASE"
    URL="$(database_url "$DATABASE")"
    import_site
    serve_images
    php_side
    section "done"
    echo "every step passed; database $DATABASE dropped"
}

cleanup() {
    [[ -n "${GATEWAY_PID:-}" ]] && kill "$GATEWAY_PID" 2>/dev/null && wait "$GATEWAY_PID" 2>/dev/null
    mariadb_client -e "DROP DATABASE IF EXISTS $DATABASE" 2>/dev/null || true
    rm -rf "$WORK"
}

if [[ "${1:-}" == "--inner" ]]; then
    run
else
    ensure_php
    exec scripts/with-db.sh bash scripts/demo.sh --inner
fi
