<?php
// Benchmark: ops/s of eZDBFileHandler (libezdb through FFI) beside, in the same run and on a
// database of its own, (1) the original legacy handler's statements as it sends them (mysqli_query,
// escaped literals, MD5() in SQL: spec sections 2-4) and (2) plain mysqli prepared statements doing
// the same SQL as ezdb (single-statement calls) or the legacy layout (the others). The statements
// each call sends are counted on the wire (a loopback proxy, tests/php/lib/StatementCounter.php).
// Usage: php php/bench.php [SECONDS_PER_MEASURE]   (server: EZDB_TEST_URL, default mysql://root@127.0.0.1:3306)

require __DIR__ . '/autoload.php';
require_once __DIR__ . '/eZDBFileHandler.php';
require_once dirname(__DIR__) . '/tests/php/lib/StatementCounter.php';

const CHUNK = 65535;
/** Rounds per measure (each side runs SECONDS / ROUNDS per round, interleaved). */
const ROUNDS = 9;
/**
 * Rounds of the single-statement calls, whose rates are compared most closely: shorter rounds,
 * more of them. This machine kind's CPU time comes in bursts (a VM whose vCPUs are throttled
 * and woken in periods of tens of milliseconds): with a fixed order of the three sides, rounds
 * of about 110 ms each kept one side in the same phase of those periods run after run, which
 * moved the mysqli column between 5,600 and 33,500 ops/s for one build (the second of two
 * sides on one connection was slower, whichever came second, identical closures included).
 */
const HOT_ROUNDS = 30;
/** The single-statement calls (see HOT_ROUNDS). */
const HOT_CASES = ['fileExists', 'Ezdb\\Cluster::exists', 'processCache hit'];

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

/** The original legacy handler's statements, sent as it sends them (text protocol, escaped literals). */
final class LegacyHandlerSql
{
    public function __construct(private mysqli $db)
    {
    }

    private function literal(string $text): string
    {
        return "'" . $this->db->real_escape_string($text) . "'";
    }

    /** _exists: the row's name and mtime; a negative mtime is a deleted file. */
    public function exists(string $name): bool
    {
        $row = $this->db->query('SELECT name, mtime FROM ezdbfile WHERE name_hash=MD5(' . $this->literal($name) . ')')->fetch_row();
        return $row !== null && (int) $row[1] >= 0;
    }

    /** loadMetaData / _fetchMetadata. */
    public function metadata(string $name): array|false
    {
        return $this->db->query('SELECT * FROM ezdbfile WHERE name_hash=MD5(' . $this->literal($name) . ')')->fetch_assoc() ?? false;
    }

    /** _fetchContents: metadata, then the chunks in order, checked. */
    public function fetchContents(string $name): string|false
    {
        $meta = $this->metadata($name);
        if ($meta === false) {
            return false;
        }
        $result = $this->db->query('SELECT filedata, `offset` FROM ezdbfile_data WHERE name_hash=MD5(' . $this->literal($name) . ') ORDER BY `offset`');
        $data = '';
        while ($row = $result->fetch_row()) {
            if ((int) $row[1] !== strlen($data)) {
                return false;
            }
            $data .= $row[0];
        }
        return strlen($data) === (int) $meta['size'] ? $data : false;
    }

    /** _storeContents in _protect: BEGIN, metadata upsert, one upsert per chunk, leftovers, COMMIT. */
    public function storeContents(string $name, string $data, string $scope = 'UNKNOWN_SCOPE', string $datatype = 'misc'): void
    {
        $hash = $this->literal(md5($name));
        $this->db->query('BEGIN');
        $this->db->query('INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired) VALUES ('
            . implode(', ', [$this->literal($datatype), $this->literal($name), $this->literal($name), $hash, $this->literal($scope),
                strlen($data), time(), 0])
            . ') ON DUPLICATE KEY UPDATE datatype=VALUES(datatype), name_trunk=VALUES(name_trunk), scope=VALUES(scope), '
            . 'size=VALUES(size), mtime=VALUES(mtime), expired=VALUES(expired)');
        for ($offset = 0; $offset < strlen($data); $offset += CHUNK) {
            $this->db->query("INSERT INTO ezdbfile_data (name_hash, `offset`, filedata) VALUES ($hash, $offset, "
                . $this->literal(substr($data, $offset, CHUNK)) . ') ON DUPLICATE KEY UPDATE filedata=VALUES(filedata)');
        }
        $this->db->query("DELETE FROM ezdbfile_data WHERE name_hash=$hash AND (`offset` % " . CHUNK . ' != 0 OR `offset` > ' . strlen($data) . ')');
        $this->db->query('COMMIT');
    }

    /** processCache hit: the local copy is not expired and not older than the row, then retrieve. */
    public function cacheHit(string $name): string|false
    {
        clearstatcache(true, $name);
        $local = @filemtime($name);
        $meta = $this->metadata($name);
        return $local !== false && $meta !== false && $meta['mtime'] >= 0 && $local >= $meta['mtime'] ? file_get_contents($name) : false;
    }
}

/**
 * ezdb's own single statements (on its schema, no legacy expiry.php configured: crates/ezdb-core
 * fetch.rs live_row/stat_row with ExpirySql), sent by plain mysqli as prepared statements.
 */
final class SameSqlReference
{
    private const EXPIRY_JOIN = "LEFT JOIN ezdbfile_expiry e ON e.name = CONCAT('@', f.scope)";
    private ?mysqli_stmt $exists = null;
    private ?mysqli_stmt $stat = null;

    public function __construct(private mysqli $db)
    {
    }

    public function exists(string $name): bool
    {
        $this->exists ??= $this->db->prepare('SELECT 1 FROM ezdbfile f ' . self::EXPIRY_JOIN
            . ' WHERE f.name_hash = ? AND f.expired = 0 AND f.mtime >= 0 AND (e.expiry IS NULL OR f.mtime >= e.expiry)');
        $hash = md5($name);
        $this->exists->bind_param('s', $hash);
        $this->exists->execute();
        $this->exists->bind_result($one);
        $found = $this->exists->fetch();
        $this->exists->free_result();
        return (bool) $found;
    }

    /** processCache hit as ezdb does it: local mtime, the stat statement, the freshness rule, retrieve. */
    public function cacheHit(string $name): string|false
    {
        $this->stat ??= $this->db->prepare('SELECT CAST(f.size AS UNSIGNED) AS size,
            CAST(f.mtime AS SIGNED) AS mtime, CAST(f.scope AS CHAR) AS scope, CAST(f.datatype AS CHAR) AS datatype,
            CAST(f.name_trunk AS CHAR) AS name_trunk, CAST(f.expired AS SIGNED) AS expired,
            CAST(e.expiry AS SIGNED) AS table_expiry FROM ezdbfile f ' . self::EXPIRY_JOIN . ' WHERE f.name_hash = ?');
        clearstatcache(true, $name);
        $local = @filemtime($name);
        $hash = md5($name);
        $this->stat->bind_param('s', $hash);
        $this->stat->execute();
        $this->stat->bind_result($size, $mtime, $scope, $datatype, $trunk, $expired, $global);
        $found = $this->stat->fetch();
        $this->stat->free_result();
        $live = $found && !$expired && $mtime >= 0 && ($global === null || $mtime >= $global);
        return $local !== false && $live && $local >= $mtime ? file_get_contents($name) : false;
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

// What the cases call through: swapped for the counting pass (closures capture $via's handle).
$via = new stdClass();
$via->handler = $handler = new eZDBFileHandler();
$via->legacy = new LegacyHandlerSql($mysqli);
$same = new SameSqlReference($mysqli);
$payloads = ['1 KB' => random_bytes(1024), '100 KB' => random_bytes(100 * 1024), '2 MB' => random_bytes(2 * 1024 * 1024)];
foreach (['ezdb', 'legacy', 'mysqli'] as $who) {
    $handler->fileStoreContents("bench/fetch-$who.bin", $payloads['100 KB']);
    $handler->fileStoreContents("bench/small-$who.bin", $payloads['1 KB']);
}
$retrieve = fn ($path) => file_get_contents($path);
foreach (['ezdb', 'legacy', 'mysqli'] as $who) {
    (new eZDBFileHandler("bench/hit-$who.cache"))->processCache($retrieve, fn () => str_repeat('h', 10000));
}

// operation => [ezdb, legacy handler's SQL, plain mysqli (same SQL as ezdb when it is one statement)]
$cases = [
    'fileExists' => [fn () => $via->handler->fileExists('bench/small-ezdb.bin'), fn () => $via->legacy->exists('bench/small-legacy.bin'),
        fn () => $same->exists('bench/small-mysqli.bin')],
    'Ezdb\\Cluster::exists' => [fn () => eZDBFileHandler::cluster()->exists('bench/small-ezdb.bin'),
        fn () => $via->legacy->exists('bench/small-legacy.bin'), fn () => $same->exists('bench/small-mysqli.bin')],
    'processCache hit' => [
        fn () => (new eZDBFileHandler('bench/hit-ezdb.cache'))->processCache($retrieve, fn () => 'miss!'),
        fn () => $via->legacy->cacheHit('bench/hit-legacy.cache'),
        fn () => $same->cacheHit('bench/hit-mysqli.cache'),
    ],
    'fileFetchContents 1 KB' => [fn () => $via->handler->fileFetchContents('bench/small-ezdb.bin'),
        fn () => $via->legacy->fetchContents('bench/small-legacy.bin'), fn () => $reference->fetchContents('bench/small-mysqli.bin')],
    'fileFetchContents 100 KB' => [fn () => $via->handler->fileFetchContents('bench/fetch-ezdb.bin'),
        fn () => $via->legacy->fetchContents('bench/fetch-legacy.bin'), fn () => $reference->fetchContents('bench/fetch-mysqli.bin')],
];
// Each store writes new bytes (the call's number in the first 8): rewriting identical bytes lets
// InnoDB skip the row change and the log flush at COMMIT, which a real rewrite never does.
$changed = fn (string $bytes, int $i) => substr_replace($bytes, pack('J', $i), 0, 8);
foreach ($payloads as $label => $bytes) {
    $cases["fileStoreContents $label"] = [
        fn ($i) => $via->handler->fileStoreContents("bench/store-ezdb-$label", $changed($bytes, $i)),
        fn ($i) => $via->legacy->storeContents("bench/store-legacy-$label", $changed($bytes, $i)),
        fn ($i) => $reference->storeContents("bench/store-mysqli-$label", $changed($bytes, $i)),
    ];
}
$cases['processCache miss (10 KB)'] = [
    fn ($i) => (new eZDBFileHandler("bench/miss/ezdb-$i.cache"))->processCache($retrieve, fn () => str_repeat('m', 10000)),
    null,
    fn ($i) => $reference->cacheMiss("bench/miss/mysqli-$i.cache", str_repeat('m', 10000)),
];

// Statements per call, counted on the wire: ezdb and the legacy SQL each through the proxy once.
$counter = new StatementCounter($url);
$counted = [];
eZDBFileHandler::configure(['URL' => $counter->url]);
$legacyThroughProxy = new mysqli('127.0.0.1', $user, $pass, $dbName, $counter->port);
[$via->handler, $via->legacy] = [new eZDBFileHandler(), new LegacyHandlerSql($legacyThroughProxy)];
foreach ($cases as $name => [$ours, $theirs]) {
    $ours(0);
    $counted[$name] = [$counter->during(fn () => $ours(-1))[0], $theirs === null ? null : $counter->during(fn () => $theirs(-1))[0]];
}
$legacyThroughProxy->close();
$counter->stop();
eZDBFileHandler::configure(['URL' => $url]);
[$via->handler, $via->legacy] = [new eZDBFileHandler(), new LegacyHandlerSql($mysqli)];

printf("libezdb %s (%s), PHP %s, %.1f s per measure, best of %d interleaved rounds (%d for the single-statement calls),\n"
    . "the order of the sides rotating\n\n", Ezdb\Library::version(), getenv('EZDB_LIBRARY') ?: 'default search', PHP_VERSION,
    $seconds, ROUNDS, HOT_ROUNDS);
printf("| %-26s | %10s | %10s | %10s | %9s | %9s | %10s |\n", 'operation', 'ezdb ops/s', 'legacy', 'mysqli',
    'vs legacy', 'vs mysqli', 'statements');
printf("|%s|%s|%s|%s|%s|%s|%s|\n", str_repeat('-', 28), str_repeat('-', 12), str_repeat('-', 12), str_repeat('-', 12),
    str_repeat('-', 11), str_repeat('-', 11), str_repeat('-', 12));
foreach ($cases as $name => [$ours, $theirs, $plain]) {
    $best = [0.0, 0.0, 0.0];
    $sides = array_filter([$ours, $theirs, $plain]);
    $keys = array_keys($sides);
    $rounds = in_array($name, HOT_CASES, true) ? HOT_ROUNDS : ROUNDS;
    // Interleaved short rounds, best of each, the side that goes first rotating: a burst of load
    // elsewhere hits one round, not one side, and no side keeps one place in the rounds.
    for ($round = 0; $round < $rounds; $round++) {
        foreach ($keys as $i => $_) {
            $side = $keys[($i + $round) % count($keys)];
            $best[$side] = max($best[$side], measure($sides[$side], $seconds / $rounds));
        }
    }
    [$a, $b, $c] = $best;
    [$mine, $legacyCount] = $counted[$name];
    printf("| %-26s | %10.0f | %10s | %10.0f | %9s | %8.2fx | %10s |\n", $name, $a, $b ? sprintf('%.0f', $b) : 'n/a', $c,
        $b ? sprintf('%.2fx', $a / $b) : 'n/a', $a / $c, $mine . ' / ' . ($legacyCount ?? 'n/a'));
}
echo "\nvs = ezdb ops/s / theirs (above 1: ezdb is faster). legacy: the legacy handler's statements as it sends them\n"
    . "(text protocol, escaped literals). mysqli: prepared statements, with ezdb's own SQL for fileExists and the\n"
    . "processCache hit, the legacy layout for the others. statements: per call, ezdb / legacy, counted on the wire.\n";
