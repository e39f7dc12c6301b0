<?php
// Base class of the PHP tests: assertions, a fresh working directory and cluster path prefix
// per test, eZDBFileHandler configured on the run's database, and helpers to fork processes.

class AssertionFailed extends Exception
{
}

abstract class TestCase
{
    public static TestDb $db;
    public static string $root;

    /** The test's working directory (the current directory while it runs: local copies land here). */
    protected string $dir;
    /** Cluster names of this test start with it, e.g. "var/StoreTest-testFoo". */
    protected string $prefix;
    /** Messages eZDBFileHandler logged during the test. */
    protected array $logs = [];

    public function setUp(string $test): void
    {
        $slug = static::class . '-' . $test;
        $this->dir = self::$root . '/' . $slug;
        $this->prefix = 'var/' . $slug;
        mkdir($this->dir, 0777, true);
        chdir($this->dir);
        $this->configure();
    }

    public function tearDown(): void
    {
        eZDBFileHandler::cleanupGeneratingFiles();
        chdir(self::$root);
    }

    /** (Re)configures eZDBFileHandler on the test database, with $settings on top. */
    protected function configure(array $settings = []): void
    {
        eZDBFileHandler::configure($settings + [
            'URL' => self::$db->url,
            // As a site has it: global expiry keys in its clustered expiry.php (one per test).
            'LegacyExpiryFile' => $this->expiryFile(),
            'Logger' => function (string $level, string $message): void {
                $this->logs[] = "$level: $message";
            },
        ]);
    }

    /** This test's clustered expiry.php, where its global expiry keys go. */
    protected function expiryFile(): string
    {
        return $this->path('cache/expiry.php');
    }

    /** Forgets every global expiry key: this test's expiry.php, and ezdb's table where it exists. */
    protected function forgetGlobalExpiry(): void
    {
        self::$db->query('DELETE FROM ezdbfile WHERE name_hash = MD5(?)', [$this->expiryFile()]);
        if (self::$db->schema === 'ezdb') {
            self::$db->query('DELETE FROM ezdbfile_expiry');
        }
    }

    protected function path(string $relative): string
    {
        return $this->prefix . '/' . $relative;
    }

    protected function handler(string|false $relative = false): eZDBFileHandler
    {
        return new eZDBFileHandler($relative === false ? false : $this->path($relative));
    }

    protected function cluster(): Ezdb\Cluster
    {
        return eZDBFileHandler::cluster();
    }

    protected function legacy(int $chunkSize = 65535, int $timeout = 60): LegacyNode
    {
        return new LegacyNode(self::$db, $chunkSize, $timeout);
    }

    /**
     * Runs $body($i) in $n forked processes at once; returns their return values by $i. A child
     * that throws, dies or outlives $timeout seconds fails the test.
     */
    protected function inChildren(int $n, callable $body, int $timeout = 120): array
    {
        self::$db->release();
        $pids = [];
        for ($i = 0; $i < $n; $i++) {
            $pids[$i] = $this->spawn(fn () => $body($i), "$this->dir/.child-$i");
        }
        $results = [];
        foreach ($pids as $i => $pid) {
            $status = $this->waitFor($pid, $timeout);
            $outcome = @unserialize((string) @file_get_contents("$this->dir/.child-$i"));
            if (!is_array($outcome) || !pcntl_wifexited($status) || pcntl_wexitstatus($status) !== 0) {
                throw new AssertionFailed("child $i failed: " . ($outcome['error'] ?? "exit status $status, no result"));
            }
            $results[$i] = $outcome['value'];
        }
        return $results;
    }

    /** Forks a child running $body; its return value (or error) is serialized to $resultFile. */
    protected function spawn(callable $body, ?string $resultFile = null): int
    {
        self::$db->release();
        $pid = pcntl_fork();
        if ($pid === -1) {
            throw new AssertionFailed('pcntl_fork failed');
        }
        if ($pid > 0) {
            return $pid;
        }
        try {
            $outcome = ['value' => $body()];
        } catch (Throwable $e) {
            $outcome = ['error' => get_class($e) . ': ' . $e->getMessage() . ' at ' . $e->getFile() . ':' . $e->getLine()];
        }
        if ($resultFile !== null) {
            file_put_contents($resultFile, serialize($outcome));
        }
        exit(isset($outcome['error']) ? 1 : 0);
    }

    /** Waits for child $pid (killing it after $timeout seconds); returns its wait status. */
    protected function waitFor(int $pid, int $timeout = 120): int
    {
        $deadline = microtime(true) + $timeout;
        while (pcntl_waitpid($pid, $status, WNOHANG) === 0) {
            if (microtime(true) > $deadline) {
                posix_kill($pid, SIGKILL);
                pcntl_waitpid($pid, $status);
                throw new AssertionFailed("child $pid did not finish within $timeout s");
            }
            usleep(10000);
        }
        return $status;
    }

    // ---------------------------------------------------------------- assertions

    protected function fail(string $message): never
    {
        throw new AssertionFailed($message);
    }

    protected function assertSame(mixed $expected, mixed $actual, string $message = ''): void
    {
        if ($expected !== $actual) {
            $this->fail(trim("$message expected " . self::show($expected) . ', got ' . self::show($actual)));
        }
    }

    protected function assertEquals(mixed $expected, mixed $actual, string $message = ''): void
    {
        if ($expected != $actual) {
            $this->fail(trim("$message expected " . self::show($expected) . ', got ' . self::show($actual)));
        }
    }

    protected function assertTrue(mixed $actual, string $message = ''): void
    {
        $this->assertSame(true, $actual, $message);
    }

    protected function assertFalse(mixed $actual, string $message = ''): void
    {
        $this->assertSame(false, $actual, $message);
    }

    protected function assertNull(mixed $actual, string $message = ''): void
    {
        $this->assertSame(null, $actual, $message);
    }

    protected function assertInstanceOf(string $class, mixed $actual, string $message = ''): void
    {
        if (!$actual instanceof $class) {
            $this->fail(trim("$message expected an instance of $class, got " . self::show($actual)));
        }
    }

    /** Binary-safe comparison that reports lengths and the first difference, not the bytes. */
    protected function assertBytes(string $expected, mixed $actual, string $message = ''): void
    {
        if (!is_string($actual)) {
            $this->fail(trim("$message expected " . strlen($expected) . ' bytes, got ' . self::show($actual)));
        }
        if ($expected !== $actual) {
            $at = strspn($expected ^ $actual, "\0");
            $this->fail(trim("$message expected " . strlen($expected) . ' bytes, got ' . strlen($actual) . ", first difference at byte $at"));
        }
    }

    protected function assertFileContent(string $expected, string $path, string $message = ''): void
    {
        clearstatcache(true, $path);
        if (!is_file($path)) {
            $this->fail(trim("$message expected the local file $path to exist"));
        }
        $this->assertBytes($expected, file_get_contents($path), "$message (local file $path)");
    }

    protected function assertNoFile(string $path, string $message = ''): void
    {
        clearstatcache(true, $path);
        if (file_exists($path)) {
            $this->fail(trim("$message expected no local file $path"));
        }
    }

    /** $body must throw Ezdb\Exception with $code and a non-empty message; returns it. */
    protected function assertThrowsEzdb(int $code, callable $body): Ezdb\Exception
    {
        try {
            $body();
        } catch (Ezdb\Exception $e) {
            $this->assertSame(Ezdb\Exception::nameOf($code), $e->statusName(), 'status of "' . $e->getMessage() . '":');
            $this->assertTrue(strlen($e->getMessage()) > 20, 'a message that says what went wrong:');
            return $e;
        }
        $this->fail('expected an Ezdb\Exception ' . Ezdb\Exception::nameOf($code));
    }

    private static function show(mixed $value): string
    {
        if (is_string($value) && (strlen($value) > 120 || preg_match('/[^\x20-\x7e]/', $value))) {
            return 'a string of ' . strlen($value) . ' bytes (md5 ' . md5($value) . ')';
        }
        if (is_object($value)) {
            return get_class($value) . (method_exists($value, 'errno') ? '(' . $value->errno() . ')' : '');
        }
        return var_export($value, true);
    }
}
