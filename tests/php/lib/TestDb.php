<?php
// The test database: one uniquely named database per run on the server of EZDB_TEST_URL,
// created through mysqli, dropped at the end (also on failure). Its tables: ezdb's schema
// (installed by libezdb, see run.php), or with EZDB_TEST_SCHEMA=legacy the two legacy tables
// exactly as the legacy DDL creates them, on the server's default character set.

final class TestDb
{
    public readonly string $name;
    public readonly string $url;
    private array $server;
    private ?mysqli $link = null;
    private int $ownerPid;

    /** 'ezdb' or 'legacy' (see the file comment). */
    public readonly string $schema;

    public function __construct(string $serverUrl, string $schema = 'ezdb')
    {
        if (!in_array($schema, ['ezdb', 'legacy'], true)) {
            throw new RuntimeException("EZDB_TEST_SCHEMA must be ezdb or legacy, not '$schema'");
        }
        $this->schema = $schema;
        $this->server = self::parse($serverUrl);
        $this->name = sprintf('ezdb_php_%d_%s', getmypid(), bin2hex(random_bytes(4)));
        $this->url = self::withDatabase($serverUrl, $this->name);
        $this->ownerPid = getmypid();
        $admin = $this->connect(null);
        $admin->query("CREATE DATABASE `$this->name`" . ($schema === 'ezdb' ? ' CHARACTER SET utf8mb4' : ''));
        $admin->close();
        register_shutdown_function([$this, 'drop']);
        if ($schema === 'legacy') {
            $ddl = file_get_contents(dirname(__DIR__, 3) . '/sql/mysql/legacy/cluster_db_schema.sql');
            $code = implode("\n", array_filter(explode("\n", $ddl), fn ($l) => !str_starts_with(ltrim($l), '--')));
            foreach (array_filter(array_map('trim', explode(';', $code))) as $statement) {
                $this->link()->query($statement);
            }
        }
    }

    /** Splits mysql://user:pass@host:port/db?socket=/path into its parts. */
    public static function parse(string $url): array
    {
        $parts = parse_url($url);
        if ($parts === false || ($parts['scheme'] ?? '') !== 'mysql') {
            throw new RuntimeException("EZDB_TEST_URL must look like mysql://user:pass@host:port, not '$url'");
        }
        parse_str($parts['query'] ?? '', $query);
        return [
            'host' => $parts['host'] ?? '127.0.0.1',
            'port' => (int) ($parts['port'] ?? 3306),
            'user' => rawurldecode($parts['user'] ?? 'root'),
            'pass' => rawurldecode($parts['pass'] ?? ''),
            'socket' => $query['socket'] ?? null,
        ];
    }

    /** The server URL with its database part replaced by $db (query string kept). */
    public static function withDatabase(string $url, string $db): string
    {
        $query = '';
        if (($q = strpos($url, '?')) !== false) {
            [$url, $query] = [substr($url, 0, $q), substr($url, $q)];
        }
        $scheme = 'mysql://';
        $rest = substr($url, strlen($scheme));
        $slash = strpos($rest, '/');
        $authority = $slash === false ? $rest : substr($rest, 0, $slash);
        return $scheme . $authority . '/' . $db . $query;
    }

    /** A mysqli connection to the test database (reconnected after a release()). */
    public function link(): mysqli
    {
        return $this->link ??= $this->connect($this->name);
    }

    /** Closes the connection: a forked child must not share (or close) the parent's socket. */
    public function release(): void
    {
        $this->link?->close();
        $this->link = null;
    }

    public function connect(?string $db): mysqli
    {
        mysqli_report(MYSQLI_REPORT_ERROR | MYSQLI_REPORT_STRICT);
        $s = $this->server;
        $link = mysqli_init();
        $link->options(MYSQLI_OPT_CONNECT_TIMEOUT, 5);
        $link->real_connect($s['host'], $s['user'], $s['pass'], $db, $s['port'], $s['socket']);
        $link->set_charset('utf8mb4');
        return $link;
    }

    /** Runs one statement with bound parameters; returns all rows (SELECT) or the affected rows. */
    public function query(string $sql, array $params = []): array|int
    {
        $statement = $this->link()->prepare($sql);
        if ($params !== []) {
            $statement->bind_param(str_repeat('s', count($params)), ...array_map(fn ($p) => $p === null ? null : (string) $p, $params));
        }
        $statement->execute();
        $result = $statement->get_result();
        $rows = $result === false ? $statement->affected_rows : $result->fetch_all(MYSQLI_ASSOC);
        $statement->close();
        return $rows;
    }

    public function drop(): void
    {
        if (getmypid() !== $this->ownerPid) {
            return;
        }
        $this->release();
        try {
            $admin = $this->connect(null);
            $admin->query("DROP DATABASE IF EXISTS `$this->name`");
            $admin->close();
        } catch (Throwable $e) {
            fwrite(STDERR, "could not drop the test database $this->name: {$e->getMessage()}\n");
        }
        $this->ownerPid = -1;
    }
}
