<?php
// Read replicas from PHP: file.ini [ClusteringSettings] DBReadReplicas[] and DBMaxReplicaLag, on a
// private primary with one asynchronous replica on loopback, started for the test by the
// ezdb-replicated-pair helper (crates/ezdb-testdb; scripts/test-php.sh builds it and sets
// EZDB_REPLICATED_PAIR). Reads go to the replica, a file just stored is found at once while the
// replica lags, and a replica that is down is skipped.

final class ReplicaTest extends TestCase
{
    /** @var resource|null the helper process, and its stdin/stdout */
    private $pair = null;
    private array $pipes = [];

    public function tearDown(): void
    {
        try {
            parent::tearDown();
        } finally {
            eZDBFileHandler::configure([]);  // closes the connections to the pair
            if ($this->pair !== null) {
                fclose($this->pipes[0]);  // end of stdin: the helper stops both servers
                fclose($this->pipes[1]);
                proc_close($this->pair);
                $this->pair = null;
            }
        }
    }

    /** Starts the pair; its two server URLs (mysql://root@127.0.0.1:PORT). */
    private function startPair(): array
    {
        $helper = getenv('EZDB_REPLICATED_PAIR');
        if ($helper === false || !is_executable($helper)) {
            throw new AssertionFailed('EZDB_REPLICATED_PAIR does not name the ezdb-replicated-pair helper ('
                . var_export($helper, true) . '); run the PHP tests through scripts/test-php.sh, which builds it '
                . '(cargo build -p ezdb-testdb --bin ezdb-replicated-pair)');
        }
        $this->pair = proc_open([$helper], [0 => ['pipe', 'r'], 1 => ['pipe', 'w'], 2 => STDERR], $this->pipes);
        if ($this->pair === false) {
            $this->pair = null;
            throw new AssertionFailed("cannot run $helper");
        }
        $urls = [];
        while (($line = $this->reply()) !== 'ready') {
            [$role, $url] = explode(' ', $line, 2) + [1 => ''];
            $urls[$role] = $url;
        }
        return [$urls['primary'], $urls['replica']];
    }

    /** The helper's next line; its "error ..." lines fail the test. */
    private function reply(): string
    {
        $line = fgets($this->pipes[1]);
        if ($line === false) {
            throw new AssertionFailed('ezdb-replicated-pair ended without a reply (its messages are on stderr)');
        }
        $line = rtrim($line, "\n");
        if (str_starts_with($line, 'error ')) {
            throw new AssertionFailed('ezdb-replicated-pair: ' . substr($line, 6));
        }
        return $line;
    }

    private function tell(string $command): void
    {
        fwrite($this->pipes[0], "$command\n");
        $this->assertSame('ok', $this->reply(), "ezdb-replicated-pair $command:");
    }

    public function testReadsUseTheReplicaAndNeverMissWhatThePrimaryHas(): void
    {
        [$primary, $replica] = $this->startPair();
        $database = 'ezdb_php_replica_' . getmypid();
        $server = TestDb::parse($primary);
        $admin = new mysqli($server['host'], $server['user'], $server['pass'], '', $server['port']);
        $admin->query("CREATE DATABASE `$database` CHARACTER SET utf8mb4");
        $setup = Ezdb\Cluster::open(TestDb::withDatabase($primary, $database));
        $setup->installSchema();
        $setup->disconnect();  // the library keeps a process's connections until told
        $replicaServer = TestDb::parse($replica);
        $deadline = microtime(true) + 30;
        while (true) {
            try {
                $link = new mysqli($replicaServer['host'], $replicaServer['user'], $replicaServer['pass'], $database,
                    $replicaServer['port']);
                $link->query('SELECT 1 FROM ezdbfile LIMIT 1');
                $link->close();
                break;
            } catch (mysqli_sql_exception $e) {
                $this->assertTrue(microtime(true) < $deadline, "the schema did not reach the replica within 30 s: {$e->getMessage()}");
                usleep(100000);
            }
        }
        // A file only the replica has (written there directly) proves reads go to it.
        $only = $this->path('storage/images/only-on-replica.png');
        $direct = Ezdb\Cluster::open(TestDb::withDatabase($replica, $database));
        $direct->store($only, 'replica', 'image', 'image/png');
        $direct->disconnect();

        // As a file.ini [ClusteringSettings] section gives it: one replica by host:port (with
        // DBUser, DBPassword and DBName), one by URL on a closed port (down: skipped).
        $this->configure(['URL' => null, 'DBHost' => $server['host'], 'DBPort' => $server['port'],
            'DBUser' => $server['user'], 'DBPassword' => $server['pass'], 'DBName' => $database,
            'DBReadReplicas' => ['', "{$replicaServer['host']}:{$replicaServer['port']}", "mysql://root@127.0.0.1:9/$database"],
            'DBMaxReplicaLag' => 60]);
        $this->assertSame([], $this->logs, 'both settings are known:');
        for ($i = 0; $i < 4; $i++) {
            $this->assertSame('replica', $this->handler('storage/images/only-on-replica.png')->fetchContents(),
                'read through the replica:');
        }

        // The replica applies everything 3 s late: what a request just stored is found by the next.
        $this->tell('delay 3');
        $stored = [];
        for ($i = 0; $i < 8; $i++) {
            $relative = "storage/images/lag/$i.png";
            $bytes = random_bytes(1000 + $i * 30000);
            $this->assertTrue($this->handler($relative)->storeContents($bytes, 'image', 'image/png'), "store $relative");
            $this->assertTrue($this->handler($relative)->exists(), "$relative exists at once");
            $this->assertSame(strlen($bytes), (int) $this->handler($relative)->size(), "$relative size");
            $this->assertBytes($bytes, $this->handler($relative)->fetchContents(), "$relative bytes");
            $stored[$relative] = $bytes;
            usleep(250000);
        }

        // The replica dies: reads carry on from the primary, which lacks the replica-only file.
        $this->tell('kill-replica');
        foreach ($stored as $relative => $bytes) {
            $this->assertBytes($bytes, $this->handler($relative)->fetchContents(), "$relative with the replica down");
        }
        $this->assertFalse($this->handler('storage/images/only-on-replica.png')->fetchContents(),
            'with the replica down the primary answers:');
        $admin->close();
    }

    public function testAReplicaThatIsNotAUrlIsRefusedNamingTheSetting(): void
    {
        $this->configure(['DBReadReplicas' => ['postgres://replica/db']]);
        $e = $this->assertThrowsEzdb(Ezdb\Exception::CONFIG, fn () => $this->handler('x'));
        $this->assertTrue(str_contains($e->getMessage(), 'read replica "postgres://replica/db"')
            && str_contains($e->getMessage(), '[ClusteringSettings]'), $e->getMessage());
        // eZDFSFileHandler takes the same keys in its section.
        eZDFSFileHandler::configure(['URL' => self::$db->url, 'MountPointPath' => $this->dir,
            'DBReadReplicas' => ['postgres://replica/db'], 'DBMaxReplicaLag' => 2]);
        $e = $this->assertThrowsEzdb(Ezdb\Exception::CONFIG, fn () => new eZDFSFileHandler('x'));
        $this->assertTrue(str_contains($e->getMessage(), 'read replica "postgres://replica/db"')
            && str_contains($e->getMessage(), '[eZDFSClusteringSettings]'), $e->getMessage());
        eZDFSFileHandler::configure([]);
    }
}
