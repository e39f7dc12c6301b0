<?php
// eZDFSFileHandler: eZDBFileHandler's methods on the eZDFS layout, with the legacy eZDFS tables
// (cluster_dfs_schema.sql) and a mount directory of its own per test: bytes at <mount>/<name>,
// storage rows in ezdfsfile, caches in ezdfsfile_cache, configured from a real
// [eZDFSClusteringSettings] section; an unset or missing MountPointPath is a clear exception.

final class DfsTest extends TestCase
{
    /** The shared directory of this test (outside its working directory, where local copies go). */
    private string $mount;
    private static bool $tables = false;

    public function setUp(string $test): void
    {
        parent::setUp($test);
        self::createTables();
        $this->mount = self::$root . '/mount-' . static::class . '-' . $test;
        mkdir($this->mount, 0777, true);
        $this->configureDfs();
    }

    public function tearDown(): void
    {
        try {
            parent::tearDown();
        } finally {
            eZDFSFileHandler::configure([]);  // closes this test's connection
            exec('rm -rf ' . escapeshellarg($this->mount));
        }
    }

    /** The legacy eZDFS tables, as a site has them, beside the run's ezdb tables. */
    private static function createTables(): void
    {
        if (self::$tables) {
            return;
        }
        $ddl = file_get_contents(dirname(__DIR__, 2) . '/sql/mysql/legacy/cluster_dfs_schema.sql');
        $code = implode("\n", array_filter(explode("\n", $ddl), fn ($l) => !str_starts_with(ltrim($l), '--')));
        foreach (array_filter(array_map('trim', explode(';', $code))) as $statement) {
            self::$db->link()->query($statement);
        }
        self::$tables = true;
    }

    private function configureDfs(array $settings = []): void
    {
        eZDFSFileHandler::configure($settings + [
            'URL' => self::$db->url,
            'MountPointPath' => $this->mount,
            'LegacyExpiryFile' => $this->path('cache/expiry.php'),
            'Logger' => function (string $level, string $message): void {
                $this->logs[] = "$level: $message";
            },
        ]);
    }

    private function dfs(string|false $relative = false): eZDFSFileHandler
    {
        return new eZDFSFileHandler($relative === false ? false : $this->path($relative));
    }

    /** The row of $name in $table (null when none). */
    private function row(string $table, string $name): ?array
    {
        $rows = self::$db->query("SELECT name, scope, datatype, size, mtime, expired FROM $table WHERE name_hash = MD5(?)", [$name]);
        return $rows[0] ?? null;
    }

    private function onMount(string $name): string|false
    {
        clearstatcache();
        return @file_get_contents("$this->mount/$name");
    }

    public function testStoreFetchExistsStatDeletePurgeOnTheMount(): void
    {
        $name = $this->path('storage/images/a/1-1-eng-GB/logo.png');
        $png = random_bytes(100000) . "\0";
        $handler = $this->dfs('storage/images/a/1-1-eng-GB/logo.png');
        $this->assertTrue($handler->storeContents($png, 'image', 'image/png'));
        $this->assertBytes($png, $this->onMount($name), 'the bytes are at <mount>/<name>:');
        $row = $this->row('ezdfsfile', $name);
        $this->assertSame([$name, 'image', 'image/png', (string) strlen($png), '0'],
            [$row['name'], $row['scope'], $row['datatype'], (string) $row['size'], (string) $row['expired']], 'the ezdfsfile row:');
        $this->assertNull($this->row('ezdfsfile_cache', $name), 'an image has no cache row:');
        $this->assertSame(0, (int) self::$db->query('SELECT COUNT(*) AS n FROM ezdbfile WHERE name_hash = MD5(?)', [$name])[0]['n'],
            'nothing in the eZDB tables:');

        $this->assertBytes($png, $this->dfs('storage/images/a/1-1-eng-GB/logo.png')->fetchContents());
        $this->assertTrue($handler->exists());
        $this->assertTrue($handler->exists(true), 'the file on the mount too:');
        $this->assertTrue($this->dfs()->fileExists($name, true));
        $stat = $this->dfs('storage/images/a/1-1-eng-GB/logo.png')->stat();
        $this->assertSame([$name, 'image', 'image/png', (string) strlen($png)], [$stat['name'], $stat['scope'], $stat['datatype'], $stat['size']]);
        $this->assertSame(strlen($png), $handler->size());
        $this->assertSame('image/png', $handler->dataType());
        $this->assertSame($name, $handler->fetch(true), 'fetch() always copies (eZDFS ignores $noLocalCache):');
        $this->assertFileContent($png, $name);

        $this->assertTrue($handler->delete());
        $this->assertFalse($handler->exists());
        $this->assertFalse($this->dfs()->fileExists($name));
        $this->assertSame('1', (string) $this->row('ezdfsfile', $name)['expired'], 'a soft delete:');
        $this->assertBytes($png, $this->onMount($name), 'the stale copy stays on the mount until purged:');
        $this->assertBytes($png, $this->dfs()->fileFetchContents($name), 'and is still readable, as legacy:');

        $this->assertTrue($handler->purge());
        $this->assertNull($this->row('ezdfsfile', $name), 'purge removes the row:');
        $this->assertFalse($this->onMount($name), '...and the file on the mount:');
        $this->assertNoFile($name, '...and the local copy:');
        $this->assertSame([], $this->logs, implode("\n", $this->logs));
    }

    public function testProcessCacheGeneratesOnceIntoTheCacheTable(): void
    {
        $name = $this->path('cache/content/site/2-abc.cache');
        $calls = [];
        $retrieve = function ($path, $mtime) use (&$calls) {
            $calls[] = 'retrieve';
            return file_get_contents($path);
        };
        $generate = function ($path) use (&$calls) {
            $calls[] = 'generate';
            return ['content' => 'page', 'binarydata' => 'page', 'scope' => 'viewcache', 'datatype' => 'php'];
        };
        $this->assertSame('page', $this->dfs('cache/content/site/2-abc.cache')->processCache($retrieve, $generate));
        $this->assertSame(['generate'], $calls);
        $row = $this->row('ezdfsfile_cache', $name);
        $this->assertSame(['viewcache', 'php', '4'], [$row['scope'], $row['datatype'], (string) $row['size']], 'the ezdfsfile_cache row:');
        $this->assertNull($this->row('ezdfsfile', $name), 'a cache has no storage row:');
        $this->assertNull($this->row('ezdfsfile_cache', "$name.generating"), 'the lock is gone:');
        $this->assertSame('page', $this->onMount($name));
        $this->assertFalse($this->onMount("$name.generating"), 'no staged file left on the mount:');

        $this->assertSame('page', $this->dfs('cache/content/site/2-abc.cache')->processCache($retrieve, $generate));
        $this->assertSame(['generate', 'retrieve'], $calls, 'the second call serves the copy:');

        unlink($name);  // another web server: no local copy, downloaded from the mount
        $this->assertSame('page', $this->dfs('cache/content/site/2-abc.cache')->processCache($retrieve, $generate));
        $this->assertSame(['generate', 'retrieve', 'retrieve'], $calls);
        $this->assertFileContent('page', $name);
    }

    public function testDirectoryDeletesAndListsCoverBothTables(): void
    {
        $files = ['storage/original/a.pdf', 'storage/original/b.pdf', 'cache/template-block/x.cache'];
        foreach ($files as $file) {
            $this->assertTrue($this->dfs()->fileStoreContents($this->path($file), $file, 'binaryfile'));
        }
        $names = $this->dfs()->getFileList(['binaryfile'], false, false, $this->prefix . '/');
        sort($names);
        $this->assertSame(array_map([$this, 'path'], ['cache/template-block/x.cache', 'storage/original/a.pdf', 'storage/original/b.pdf']), $names);
        $this->assertSame(2, count($this->dfs()->getFileList(['binaryfile'], false, [0, 2], $this->prefix . '/')), 'a limit over the whole list:');

        $this->assertTrue($this->dfs()->fileDelete($this->path('storage/original'), true), 'true: the whole directory (eZDFS):');
        $this->assertFalse($this->dfs()->fileExists($this->path('storage/original/a.pdf')));
        $this->assertFalse($this->dfs()->fileExists($this->path('storage/original/b.pdf')));
        $this->assertTrue($this->dfs()->fileExists($this->path('cache/template-block/x.cache')));
    }

    public function testConfigureTakesARealEzdfsClusteringSection(): void
    {
        $server = TestDb::parse(getenv('EZDB_TEST_URL') ?: 'mysql://root@127.0.0.1:3306');
        $ini = <<<INI
            [eZDFSClusteringSettings]
            MountPointPath={$this->mount}
            DBBackend=eZDFSFileHandlerMySQLiBackend
            DFSBackend=eZDFSFileHandlerDFSBackend
            DBHost={$server['host']}
            DBPort={$server['port']}
            DBSocket=
            DBName={$this->database()}
            DBUser={$server['user']}
            DBPassword={$server['pass']}
            DBConnectRetries=3
            DBExecuteRetries=20
            MaxCopyRetries=5
            MetaDataTableNameCache=ezdfsfile_cache
            INI;
        $section = parse_ini_string($ini, true, INI_SCANNER_RAW)['eZDFSClusteringSettings'];
        $this->configureDfs(['URL' => null] + $section);
        $this->assertSame([], $this->logs, 'nothing to warn about in a real section:');
        $settings = eZDFSFileHandler::settings();
        $this->assertSame($this->mount, $settings['MountPointPath']);
        $this->assertSame($server['host'], $settings['DBHost']);
        $this->assertFalse(array_key_exists('DBChunkSize', $settings), 'eZDFS has no chunk size:');

        $name = $this->path('storage/configured.txt');
        $this->assertTrue($this->dfs()->fileStoreContents($name, 'through file.ini settings'));
        $this->assertSame('through file.ini settings', $this->onMount($name));
        $this->assertSame($name, $this->row('ezdfsfile', $name)['name']);

        // eZDBFileHandler in the same process keeps its own settings and tables.
        $this->assertSame(self::$db->url, eZDBFileHandler::settings()['URL']);
        $this->assertTrue($this->handler()->fileStoreContents($this->path('storage/ezdb.txt'), 'in ezdbfile'));
        $this->assertFalse($this->dfs()->fileExists($this->path('storage/ezdb.txt')), 'not an eZDFS row:');
        $this->assertFalse($this->handler()->fileExists($name), 'not an eZDB row:');

        // The eZDB handler's chunk size means nothing here: named in a warning.
        $this->configureDfs(['DBChunkSize' => 65535]);
        $this->assertSame(1, count($this->logs), implode("\n", $this->logs));
        $this->assertTrue(str_contains($this->logs[0], 'DBChunkSize'), $this->logs[0]);
    }

    public function testAMissingMountPointPathIsAClearException(): void
    {
        $this->configureDfs(['MountPointPath' => '']);
        $e = $this->assertThrowsEzdb(Ezdb\Exception::CONFIG, fn () => $this->dfs('storage/x'));
        foreach (['eZDFSFileHandler', 'eZDFSClusteringSettings', 'MountPointPath'] as $word) {
            $this->assertTrue(str_contains($e->getMessage(), $word), $e->getMessage());
        }

        $gone = "$this->mount/not-mounted";
        $this->configureDfs(['MountPointPath' => $gone, 'DBConnectRetries' => 5]);
        $e = $this->assertThrowsEzdb(Ezdb\Exception::CONFIG, fn () => $this->dfs('storage/x'));
        foreach (['eZDFSFileHandler', 'MountPointPath', $gone] as $word) {
            $this->assertTrue(str_contains($e->getMessage(), $word), $e->getMessage());
        }
        $this->assertFalse(str_contains($e->getMessage(), 'cannot connect'), 'a setting to fix, not a database down: ' . $e->getMessage());

        $this->configureDfs(['MetaDataTableNameCache' => 'ezdfsfile_cache; DROP TABLE ezdfsfile']);
        $e = $this->assertThrowsEzdb(Ezdb\Exception::CONFIG, fn () => $this->dfs('storage/x'));
        $this->assertTrue(str_contains($e->getMessage(), 'plain table name'), $e->getMessage());
    }

    public function testInsideEzPublishTheSettingsComeFromTheEzdfsSectionAndSiteIni(): void
    {
        $parts = TestDb::parse(getenv('EZDB_TEST_URL') ?: 'mysql://root@127.0.0.1:3306');
        $script = <<<'PHP'
            require getenv('EZDB_TESTS') . '/fixtures/ezpublish-stubs.php';
            [$host, $port, $user, $pass, $db, $mount, $prefix] = json_decode(getenv('EZDB_SETTINGS'), true);
            eZINI::$values = [
                'file.ini' => [
                    'ClusteringSettings' => ['FileHandler' => 'eZDFSFileHandler',
                        'NonExistantStaleCacheHandling' => ['viewcache' => 'wait', 'cacheblock' => 'wait', 'misc' => 'generate']],
                    'eZDFSClusteringSettings' => ['MountPointPath' => $mount, 'DBBackend' => 'eZDFSFileHandlerMySQLiBackend',
                        'DBHost' => $host, 'DBPort' => $port, 'DBUser' => $user, 'DBPassword' => $pass, 'DBName' => $db,
                        'DBConnectRetries' => '3', 'DBExecuteRetries' => '20', 'MaxCopyRetries' => '5'],
                ],
                'site.ini' => ['ContentSettings' => ['CacheGenerationTimeout' => '7'],
                    'FileSettings' => ['VarDir' => $prefix, 'CacheDir' => 'mycache', 'StorageDir' => 'storage']],
            ];
            require getenv('EZDB_PHP') . '/autoload.php';
            $s = eZDFSFileHandler::settings();
            $handler = new eZDFSFileHandler("$prefix/mycache/page.cache");
            echo json_encode([$s['MountPointPath'] === $mount, $s['CacheGenerationTimeout'], $s['CacheDir'],
                $s['NonExistantStaleCacheHandling']['misc'], $s['LegacyExpiryFile'],
                $handler->storeContents('cached'), count(eZDebug::$messages)]);
            PHP;
        $settings = json_encode([$parts['host'], $parts['port'], $parts['user'], $parts['pass'], self::$db->name, $this->mount, $this->prefix]);
        $process = proc_open([PHP_BINARY, '-r', $script], [1 => ['pipe', 'w'], 2 => ['redirect', 1]], $pipes, $this->dir,
            ['EZDB_SETTINGS' => $settings, 'EZDB_TESTS' => __DIR__, 'EZDB_PHP' => dirname(__DIR__, 2) . '/php'] + getenv());
        $output = trim(stream_get_contents($pipes[1]));
        fclose($pipes[1]);
        $this->assertSame(0, proc_close($process), $output);
        $this->assertSame([true, '7', 'mycache', 'generate', $this->path('mycache/expiry.php'), true, 0], json_decode($output, true), $output);
        $name = $this->path('mycache/page.cache');
        $this->assertSame('cached', $this->row('ezdfsfile_cache', $name) ? $this->onMount($name) : null,
            'site.ini CacheDir picks the cache table:');
        $this->assertNull($this->row('ezdfsfile', $name));
    }

    private function database(): string
    {
        return self::$db->name;
    }
}
