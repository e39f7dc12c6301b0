<?php
// Benchmark: ops/s of eZDBFileHandler (libezdb through FFI) beside the same operations done with
// plain mysqli prepared statements in the legacy SQL layout, in one run, on a database of its own.
// Usage: php php/bench.php [SECONDS_PER_MEASURE]   (server: EZDB_TEST_URL, default mysql://root@127.0.0.1:3306)

require __DIR__ . '/autoload.php';
require_once __DIR__ . '/eZDBFileHandler.php';

const CHUNK = 65535;

/** The legacy handler's statements, prepared once, on plain mysqli. */
final class MysqliReference
{
    private array $statements = [];

    public function __construct(private mysqli $db)
    {
    }

    private function run(string $sql, string $types, mixed ...$params): mysqli_stmt
    {
        $statement = $this->statements[$sql] ??= $this->db->prepare($sql);
        if ($types !== '') {
            $statement->bind_param($types, ...$params);
        }
        $statement->execute();
        return $statement;
    }

    /** @return array{0:int,1:int}|null size and mtime */
    public function metadata(string $name): ?array
    {
        $statement = $this->run('SELECT size, mtime FROM ezdbfile WHERE name_hash = ?', 's', md5($name));
        $statement->bind_result($size, $mtime);
        $found = $statement->fetch();
        $statement->free_result();
        return $found ? [$size, $mtime] : null;
    }

    public function exists(string $name): bool
    {
        $meta = $this->metadata($name);
        return $meta !== null && $meta[1] >= 0;
    }

    public function fetchContents(string $name): string|false
    {
        $meta = $this->metadata($name);
        if ($meta === null) {
            return false;
        }
        $statement = $this->run('SELECT filedata, `offset` FROM ezdbfile_data WHERE name_hash = ? ORDER BY `offset`', 's', md5($name));
        $result = $statement->get_result();
        $data = '';
        while ($row = $result->fetch_row()) {
            if ($row[1] !== strlen($data)) {
                return false;
            }
            $data .= $row[0];
        }
        return strlen($data) === $meta[0] ? $data : false;
    }

    public function storeContents(string $name, string $data, string $scope = 'UNKNOWN_SCOPE', string $datatype = 'misc'): void
    {
        $this->db->begin_transaction();
        $this->upsertMetadata($name, strlen($data), $scope, $datatype, time());
        $this->writeChunks($name, $data);
        $this->db->commit();
    }

    private function upsertMetadata(string $name, int $size, string $scope, string $datatype, int $mtime): void
    {
        $this->run('INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired) VALUES (?, ?, ?, ?, ?, ?, ?, 0)
            ON DUPLICATE KEY UPDATE datatype = VALUES(datatype), name_trunk = VALUES(name_trunk), scope = VALUES(scope),
            size = VALUES(size), mtime = VALUES(mtime), expired = 0', 'sssssii', $datatype, $name, $name, md5($name), $scope, $size, $mtime);
    }

    private function writeChunks(string $name, string $data): void
    {
        $hash = md5($name);
        for ($offset = 0; $offset < strlen($data); $offset += CHUNK) {
            $this->run('INSERT INTO ezdbfile_data (name_hash, `offset`, filedata) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE filedata = VALUES(filedata)',
                'sis', $hash, $offset, substr($data, $offset, CHUNK));
        }
        $this->run('DELETE FROM ezdbfile_data WHERE name_hash = ? AND (`offset` % ? != 0 OR `offset` >= ?)', 'sii', $hash, CHUNK, strlen($data));
    }

    /** Legacy processCache hit: local copy not older than the row, then read it. */
    public function cacheHit(string $name): string|false
    {
        clearstatcache(true, $name);
        $local = @filemtime($name);
        $meta = $this->metadata($name);
        return $local !== false && $meta !== null && $meta[1] >= 0 && $local >= $meta[1] ? file_get_contents($name) : false;
    }

    /** Legacy processCache miss: metadata, .generating INSERT, stage, rename transaction, local copy. */
    public function cacheMiss(string $name, string $content): void
    {
        $this->metadata($name);
        $lock = "$name.generating";
        $this->run("INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired) VALUES (?, ?, ?, '', '', ?, 0)",
            'sssi', $lock, $lock, md5($lock), time());
        $this->storeContents($lock, $content, 'viewcache', 'php');
        $this->db->begin_transaction();
        $this->run('SELECT * FROM ezdbfile WHERE name_hash = ? FOR UPDATE', 's', md5($lock))->get_result()->fetch_all();
        $real = $this->run('SELECT * FROM ezdbfile WHERE name_hash = ? FOR UPDATE', 's', md5($name))->get_result()->fetch_all();
        if ($real === []) {
            $this->run('INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
                SELECT datatype, ?, ?, ?, scope, size, mtime, expired FROM ezdbfile WHERE name_hash = ?', 'ssss', $name, $name, md5($name), md5($lock));
        }
        $this->run('UPDATE ezdbfile_data SET name_hash = ? WHERE name_hash = ?', 'ss', md5($name), md5($lock));
        $this->run('DELETE FROM ezdbfile WHERE name_hash = ?', 's', md5($lock));
        $this->db->commit();
        @mkdir(dirname($name), 0777, true);
        file_put_contents("$name.tmp", $content);
        rename("$name.tmp", $name);
    }
}

/** Runs $op($n) repeatedly for $seconds, $n never the same twice in a run; returns ops/s. */
function measure(callable $op, float $seconds): float
{
    static $n = 0;
    $op(++$n);
    $count = 0;
    $started = hrtime(true);
    do {
        $op(++$n);
        $count++;
        $elapsed = (hrtime(true) - $started) / 1e9;
    } while ($elapsed < $seconds);
    return $count / $elapsed;
}

function parseServer(string $url): array
{
    $p = parse_url($url);
    parse_str($p['query'] ?? '', $q);
    return [$p['host'] ?? '127.0.0.1', rawurldecode($p['user'] ?? 'root'), rawurldecode($p['pass'] ?? ''), (int) ($p['port'] ?? 3306), $q['socket'] ?? null];
}

$seconds = (float) ($argv[1] ?? 1.0);
$serverUrl = getenv('EZDB_TEST_URL') ?: 'mysql://root@127.0.0.1:3306';
[$host, $user, $pass, $port, $socket] = parseServer($serverUrl);
mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
$dbName = 'ezdb_bench_' . getmypid();
$admin = new mysqli($host, $user, $pass, null, $port, $socket);
$admin->query("CREATE DATABASE `$dbName`");
$workDir = sys_get_temp_dir() . "/$dbName";
$mysqli = null;
register_shutdown_function(function () use ($admin, $dbName, $workDir, &$mysqli) {
    $mysqli?->close(); // an open transaction would make DROP DATABASE wait for its locks
    eZDBFileHandler::configure([]);
    $admin->query("DROP DATABASE IF EXISTS `$dbName`");
    exec('rm -rf ' . escapeshellarg($workDir));
});
$query = strpos($serverUrl, '?') !== false ? substr($serverUrl, strpos($serverUrl, '?')) : '';
$url = preg_replace('#^(mysql://[^/?]*).*$#', '$1', $serverUrl) . "/$dbName$query";
Ezdb\Cluster::open($url)->installSchema();
eZDBFileHandler::configure(['URL' => $url]);
$mysqli = new mysqli($host, $user, $pass, $dbName, $port, $socket);
$reference = new MysqliReference($mysqli);
mkdir($workDir);
chdir($workDir);

$handler = new eZDBFileHandler();
$payloads = ['1 KB' => random_bytes(1024), '100 KB' => random_bytes(100 * 1024), '2 MB' => random_bytes(2 * 1024 * 1024)];
$handler->fileStoreContents('bench/fetch-ezdb.bin', $payloads['100 KB']);
$reference->storeContents('bench/fetch-mysqli.bin', $payloads['100 KB']);
$handler->fileStoreContents('bench/small-ezdb.bin', $payloads['1 KB']);
$reference->storeContents('bench/small-mysqli.bin', $payloads['1 KB']);
$retrieve = fn ($path) => file_get_contents($path);
(new eZDBFileHandler('bench/hit.cache'))->processCache($retrieve, fn () => str_repeat('h', 10000));
$reference->cacheMiss('bench/hit-mysqli.cache', str_repeat('h', 10000));

$cases = [
    'fileExists' => [fn () => $handler->fileExists('bench/small-ezdb.bin'), fn () => $reference->exists('bench/small-mysqli.bin')],
    'fileFetchContents 1 KB' => [fn () => $handler->fileFetchContents('bench/small-ezdb.bin'), fn () => $reference->fetchContents('bench/small-mysqli.bin')],
    'fileFetchContents 100 KB' => [fn () => $handler->fileFetchContents('bench/fetch-ezdb.bin'), fn () => $reference->fetchContents('bench/fetch-mysqli.bin')],
];
foreach ($payloads as $label => $bytes) {
    $cases["fileStoreContents $label"] = [
        fn ($i) => $handler->fileStoreContents("bench/store-ezdb-$label", $bytes),
        fn ($i) => $reference->storeContents("bench/store-mysqli-$label", $bytes),
    ];
}
$cases['processCache hit'] = [
    fn () => (new eZDBFileHandler('bench/hit.cache'))->processCache($retrieve, fn () => 'miss!'),
    fn () => $reference->cacheHit('bench/hit-mysqli.cache'),
];
$cases['processCache miss (10 KB)'] = [
    fn ($i) => (new eZDBFileHandler("bench/miss/ezdb-$i.cache"))->processCache($retrieve, fn () => str_repeat('m', 10000)),
    fn ($i) => $reference->cacheMiss("bench/miss/mysqli-$i.cache", str_repeat('m', 10000)),
];

printf("libezdb %s (%s), PHP %s, %.1f s per measure, best of 3 rounds\n\n", Ezdb\Library::version(),
    getenv('EZDB_LIBRARY') ?: 'default search', PHP_VERSION, $seconds);
printf("| %-26s | %12s | %12s | %7s | %13s |\n", 'operation', 'ezdb ops/s', 'mysqli ops/s', 'ratio', 'µs/op ezdb−ref');
printf("|%s|%s|%s|%s|%s|\n", str_repeat('-', 28), str_repeat('-', 14), str_repeat('-', 14), str_repeat('-', 9), str_repeat('-', 15));
foreach ($cases as $name => [$ours, $theirs]) {
    [$a, $b] = [0.0, 0.0];
    for ($round = 0; $round < 3; $round++) {
        $a = max($a, measure($ours, $seconds / 3));
        $b = max($b, measure($theirs, $seconds / 3));
    }
    printf("| %-26s | %12.0f | %12.0f | %6.2fx | %+13.1f |\n", $name, $a, $b, $a / $b, 1e6 / $a - 1e6 / $b);
}
echo "\nratio = ezdb ops/s / mysqli ops/s (above 1: ezdb is faster)\n";
