<?php
// The PHP half of scripts/demo.sh: eZDBFileHandler (the eZ Publish drop-in, configured without
// eZ Publish) reads what Rust imported, stores a file, and generates a cache entry once.
// Usage: php php/examples/demo.php mysql://user:pass@host:port/db SITE_DIR

require __DIR__ . '/../autoload.php';

[$script, $url, $site] = $argv + [null, null, null];
if ($url === null || $site === null) {
    fwrite(STDERR, "usage: php $script mysql://user:pass@host:port/db SITE_DIR\n");
    exit(2);
}
$parts = parse_url($url);
eZDBFileHandler::configure([
    'DBHost' => $parts['host'] ?? '127.0.0.1',
    'DBPort' => $parts['port'] ?? 3306,
    'DBName' => ltrim($parts['path'] ?? '', '/'),
    'DBUser' => urldecode($parts['user'] ?? 'root'),
    'DBPassword' => urldecode($parts['pass'] ?? ''),
]);
echo 'libezdb ', Ezdb\Library::version(), ' loaded through FFI in PHP ', PHP_VERSION, "\n";

$image = 'var/demo/storage/images/10/1/eng-GB/logo.png';
$handler = new eZDBFileHandler($image);
$bytes = $handler->fetchContents();
$same = $bytes === file_get_contents("$site/$image");
printf("fetchContents(%s): %d bytes, %s the file on disk; mtime %d, datatype %s\n",
    $image, strlen($bytes), $same ? 'identical to' : 'DIFFERENT FROM', $handler->mtime(), $handler->stat()["datatype"]);
if (!$same) {
    exit(1);
}

$stored = 'var/demo/storage/images/10/2/eng-GB/from-php.txt';
(new eZDBFileHandler())->fileStoreContents($stored, "stored by PHP\n", 'image', 'text/plain');
echo "fileStoreContents($stored): exists = ", var_export((new eZDBFileHandler($stored))->exists(), true), "\n";

$cache = new eZDBFileHandler("var/demo/cache/content/demo/2/2-0.cache");
$generated = 0;
$generate = function (string $path) use (&$generated) {
    $generated++;
    return ['content' => 'view of node 2', 'scope' => 'viewcache', 'datatype' => 'php'];
};
$retrieve = fn (string $path, int $mtime) => include $path;
for ($i = 0; $i < 3; $i++) {
    $view = $cache->processCache($retrieve, $generate, 3600);
    echo "processCache #$i: ", var_export($view, true), "\n";
}
echo "the generate callback ran $generated time(s)\n";
exit($generated === 1 ? 0 : 1);
