<?php
// Writes the PHP-ready header for ffi.preload with the absolute path of the installed libezdb
// (FFI_LIB is resolved against the working directory otherwise), checks it loads, prints php.ini lines.
// Usage: php php/install.php [--library=/usr/local/lib/libezdb.so] [--header=/usr/local/lib/ezdb-php.h]

require __DIR__ . '/src/Ezdb/Exception.php';
require __DIR__ . '/src/Ezdb/Library.php';

$options = getopt('', ['library:', 'header:', 'help']);
if (isset($options['help'])) {
    fwrite(STDOUT, "usage: php php/install.php [--library=PATH] [--header=PATH]\n"
        . "  --library  the libezdb.so to use (default: EZDB_LIBRARY, else target/release, else target/debug)\n"
        . "  --header   where to write the header for ffi.preload (default: ezdb-php.h beside the library)\n");
    exit(0);
}

$library = $options['library'] ?? null;
foreach ($library === null ? Ezdb\Library::candidates() : [$library] as $candidate) {
    if (is_file($candidate)) {
        $library = realpath($candidate);
        break;
    }
}
if ($library === null || !is_file($library)) {
    fwrite(STDERR, "install: no libezdb.so found; build it (cargo build --release -p ezdb-ffi) or pass --library=PATH\n");
    exit(1);
}
$header = $options['header'] ?? dirname($library) . '/ezdb-php.h';

// PHP reads FFI_SCOPE and FFI_LIB only from the very top of the file, before any comment.
$declarations = preg_replace('/^\s*#define FFI_(SCOPE|LIB) .*\n/m', '', (string) @file_get_contents(Ezdb\Library::headerPath()));
$text = '#define FFI_SCOPE "' . Ezdb\Library::SCOPE . "\"\n#define FFI_LIB " . json_encode($library, JSON_UNESCAPED_SLASHES) . "\n" . $declarations;
if ($declarations === '' || file_put_contents($header, $text) === false) {
    fwrite(STDERR, "install: cannot write $header\n");
    exit(1);
}

try {
    $version = FFI::load($header)->ezdb_version();
} catch (Throwable $e) {
    fwrite(STDERR, "install: $header was written but does not load: {$e->getMessage()}\n");
    exit(1);
}
$preload = __DIR__ . '/preload.php';
echo "libezdb $version: $library\nwrote $header\n\nphp.ini (PHP-FPM) lines:\n"
    . "  ffi.enable=preload\n  ffi.preload=$header\n  opcache.enable=1\n  opcache.preload=$preload\n"
    . "  opcache.preload_user=www-data   ; the FPM pool's user (needed when the master runs as root)\n";
