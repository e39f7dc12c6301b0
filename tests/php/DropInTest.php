<?php
// The drop-in details of issue 10 (item 6): configure() takes a real [ClusteringSettings]
// section, stat() is the legacy row, long texts and 4-byte UTF-8 names round-trip, passthrough
// sends one version and serves deleted rows as legacy, and a stale-cache pass (and each hot
// call) makes no more statements than the legacy handler, counted on the wire.

final class DropInTest extends TestCase
{
    /** The [ClusteringSettings] section as a site's file.ini (with overrides) has it. */
    private function fileIni(array $server): string
    {
        return <<<INI
            [ClusteringSettings]
            # the handler eZ Publish instantiates, and its backend
            FileHandler=eZDBFileHandler
            DBBackend=eZDBFileHandlerMysqliBackend
            DBHost={$server['host']}
            DBPort={$server['port']}
            DBSocket=
            DBName={$this->database()}
            DBUser={$server['user']}
            DBPassword={$server['pass']}
            DBChunkSize=65535
            DBConnectRetries=3
            DBExecuteRetries=20
            ExtensionDirectories[]
            NonExistantStaleCacheHandling[]
            NonExistantStaleCacheHandling[viewcache]=wait
            NonExistantStaleCacheHandling[cacheblock]=wait
            NonExistantStaleCacheHandling[misc]=generate
            INI;
    }

    private function database(): string
    {
        return self::$db->name;
    }

    /** As eZINI reads it: '#' lines are comments, "Name[]" starts an array. */
    private static function section(string $ini): array
    {
        $ini = preg_replace(['/^\s*#.*$/m', '/^(\s*\w+\[\])\s*$/m'], ['', '$1='], $ini);
        return parse_ini_string($ini, true, INI_SCANNER_RAW)['ClusteringSettings'];
    }

    public function testConfigureTakesTheWholeClusteringSection(): void
    {
        $server = TestDb::parse(getenv('EZDB_TEST_URL') ?: 'mysql://root@127.0.0.1:3306');
        $section = self::section($this->fileIni($server));
        $this->assertSame('eZDBFileHandlerMysqliBackend', $section['DBBackend'], 'the section is parsed:');
        $this->configure(['URL' => null] + $section);
        $this->assertSame([], $this->logs, 'nothing to warn about in a real section:');
        $settings = eZDBFileHandler::settings();
        $this->assertSame('generate', $settings['NonExistantStaleCacheHandling']['misc']);
        $this->assertSame($server['host'], $settings['DBHost']);
        $name = $this->path('configured.txt');
        $this->assertTrue($this->handler()->fileStoreContents($name, 'through file.ini settings'));
        $this->assertSame('through file.ini settings', $this->legacy()->fetchContents($name));

        // Flat "Name[key]" keys, as a plain INI reader without arrays gives them.
        $this->configure(['URL' => self::$db->url, 'FileHandler' => 'eZDBFileHandler',
            'NonExistantStaleCacheHandling[viewcache]' => 'generate']);
        $this->assertSame([], $this->logs);
        $this->assertSame('generate', eZDBFileHandler::settings()['NonExistantStaleCacheHandling']['viewcache']);
    }

    public function testUnknownSettingsAreNamedInAWarningNotAnException(): void
    {
        $this->configure(['DBHots' => 'typo', 'DBChunkSize' => 1000]);
        $this->assertSame(1, count($this->logs), implode("\n", $this->logs));
        $this->assertTrue(str_starts_with($this->logs[0], 'warning: ') && str_contains($this->logs[0], 'DBHots'), $this->logs[0]);
        $this->assertTrue($this->handler()->fileStoreContents($this->path('still-works'), 'x'), 'the known settings apply:');
        $this->assertSame(1, count($this->legacy()->chunks($this->path('still-works'))));

        // Without a Logger or eZDebug: a PHP warning (E_USER_WARNING).
        $warnings = [];
        set_error_handler(function (int $severity, string $message) use (&$warnings): bool {
            $warnings[] = [$severity, $message];
            return true;
        });
        try {
            eZDBFileHandler::configure(['URL' => self::$db->url, 'DBHots' => 'typo', 'Verbose' => true]);
        } finally {
            restore_error_handler();
        }
        $this->assertSame(1, count($warnings));
        $this->assertSame(E_USER_WARNING, $warnings[0][0]);
        $this->assertTrue(str_contains($warnings[0][1], 'DBHots, Verbose'), $warnings[0][1]);
    }

    public function testStatIsTheLegacyRow(): void
    {
        $legacy = $this->legacy();
        $view = $this->path('cache/content/site/2-a54e.cache');
        $this->handler()->fileStoreContents($view, 'page', 'viewcache', 'php');
        $row = $this->handler('cache/content/site/2-a54e.cache')->stat();
        $this->assertSame(['datatype', 'name', 'name_trunk', 'name_hash', 'scope', 'size', 'mtime', 'expired'], array_keys($row));
        $this->assertSame($this->path('cache/content/site/2-'), $row['name_trunk']);
        $this->assertSame($legacy->loadMetaData($view), $row, 'a view cache:');

        $handler = $this->handler('cache/content/site/2-a54e.cache');
        $handler->delete();
        $this->assertSame($legacy->loadMetaData($view), $handler->stat(), 'a deleted row:');
        $this->assertSame('1', $handler->stat()['expired']);

        $this->assertTrue($handler->startCacheGeneration());
        $this->assertSame($legacy->loadMetaData("$view.generating"), $handler->stat(), 'a lock row:');
        $handler->abortCacheGeneration();

        $block = $this->path('cache/template-block/subtree/1/cache/1/1/0/110322645.cache');
        $legacy->storeContents($block, 'block', 'template-block', 'php', 1700000000);
        $this->assertSame($legacy->loadMetaData($block), (new eZDBFileHandler($block))->metaData, 'a row legacy wrote:');
    }

    public function testLongTextsAndFourByteNamesRoundTrip(): void
    {
        $legacy = $this->legacy();
        $scope = str_repeat('😀', 20);
        $datatype = 'application/vnd.' . str_repeat('模', 239);
        $this->assertSame(255, preg_match_all('/./u', $datatype));
        $names = [$this->path('站点/图片/猫.jpg'), $this->path('emoji/😀🎉/file 🚀.txt'), $this->path('mixed/ÄÖÜ-日本-𝄞.bin')];
        foreach ($names as $i => $name) {
            $bytes = "content $i " . random_bytes(100000);
            $this->assertTrue($this->handler()->fileStoreContents($name, $bytes, $scope, $datatype), $name);
            $this->assertBytes($bytes, $this->handler()->fileFetchContents($name), "$name:");
            $this->assertBytes($bytes, $legacy->fetchContents($name), "$name (legacy node):");
            $row = (new eZDBFileHandler($name))->stat();
            $this->assertSame([$name, $scope, $datatype], [$row['name'], $row['scope'], $row['datatype']]);
            $this->assertSame($legacy->loadMetaData($name), $row);
            $this->assertTrue($this->handler()->fileExists($name));
            $this->assertSame($name, $this->handler()->fileFetch($name));
            $this->assertFileContent($bytes, $name);
            ob_start();
            $this->assertTrue((new eZDBFileHandler($name))->passthrough(3, 10));
            $this->assertBytes(substr($bytes, 3, 10), ob_get_clean());
        }
        $listed = array_values(array_filter($this->handler()->getFileList([$scope]), fn ($n) => str_starts_with($n, $this->prefix)));
        sort($listed);
        $expected = $names;
        sort($expected);
        $this->assertSame($expected, $listed, 'getFileList by a 4-byte scope:');
        $legacyName = $this->path('legacy/Ünïcødé ☃ 🐘.txt');
        $legacy->storeContents($legacyName, 'from a legacy node', 'binaryfile');
        $this->assertSame('from a legacy node', $this->handler()->fileFetchContents($legacyName));
    }

    public function testPassthroughSendsOneVersionWithOneStatement(): void
    {
        $counter = new StatementCounter(self::$db->url);
        $this->configure(['URL' => $counter->url]);
        $name = $this->path('download.bin');
        $bytes = random_bytes(3 * 1024 * 1024 + 17);
        $this->assertTrue($this->handler()->fileStoreContents($name, $bytes));
        $handler = $this->handler('download.bin');
        [$statements, , $output] = $counter->during(function () use ($handler): string {
            ob_start();
            $this->assertTrue($handler->passthrough());
            return ob_get_clean();
        });
        $this->assertSame(md5($bytes), md5($output), 'the whole file:');
        $this->assertSame(1, $statements, 'metadata and every chunk of 3 MB in one statement (one snapshot):');
        [$statements, , $output] = $counter->during(function () use ($handler): string {
            ob_start();
            $this->assertTrue($handler->passthrough(1_000_000, 1_500_000));
            return ob_get_clean();
        });
        $this->assertBytes(substr($bytes, 1_000_000, 1_500_000), $output, 'a range:');
        $this->assertSame(1, $statements, 'a range:');
    }

    public function testPassthroughOfDeletedAndMissingFilesIsAsLegacy(): void
    {
        $name = $this->path('gone.bin');
        $bytes = random_bytes(200000);
        $this->handler()->fileStoreContents($name, $bytes);
        $handler = $this->handler('gone.bin');
        $handler->delete();
        ob_start();
        $sent = $handler->passthrough();
        $this->assertBytes($bytes, ob_get_clean(), 'a deleted row keeps its data and legacy sends it:');
        $this->assertTrue($sent);
        ob_start();
        $this->assertFalse($this->handler('never-stored.bin')->passthrough(), 'no row:');
        $this->assertSame('', ob_get_clean(), 'no row, no output:');
        $empty = $this->path('empty.bin');
        $this->handler()->fileStoreContents($empty, '');
        ob_start();
        $this->assertTrue($this->handler('empty.bin')->passthrough());
        $this->assertSame('', ob_get_clean());
    }

    /**
     * Legacy statements (spec 4.2, 3.6, 3.9): a hit is one metadata SELECT; fileExists one SELECT;
     * a stale pass while another node holds the lock is the metadata SELECT, the lock INSERT
     * (duplicate) and the SELECT of the lock's mtime, then the stale copy: the local one (no
     * statement: per-request metadata cache) or a download (metadata SELECT + chunks SELECT).
     */
    public function testStatementsPerCallAreAtMostLegacys(): void
    {
        $counter = new StatementCounter(self::$db->url);
        $this->configure(['URL' => $counter->url]);
        $legacy = $this->legacy();
        $name = $this->path('cache/content/site/2-stale.cache');
        $retrieve = fn ($path) => file_get_contents($path);
        $noGenerate = fn () => $this->fail('no generation while the legacy node holds the lock');

        $this->assertSame('fresh', $this->handler('cache/content/site/2-stale.cache')->processCache($retrieve, fn () => 'fresh'));
        [$statements] = $counter->during(fn () => $this->assertSame('fresh',
            $this->handler('cache/content/site/2-stale.cache')->processCache($retrieve, $noGenerate)));
        $this->assertSame(1, $statements, 'processCache hit (legacy 1):');
        [$statements] = $counter->during(fn () => $this->assertTrue($this->handler()->fileExists($name)));
        $this->assertSame(1, $statements, 'fileExists (legacy 1):');

        $legacy->delete($name);
        $this->assertTrue($legacy->startCacheGeneration($name));
        [$statements] = $counter->during(fn () => $this->assertSame('fresh',
            $this->handler('cache/content/site/2-stale.cache')->processCache($retrieve, $noGenerate)));
        $this->assertTrue($statements <= 3, "stale pass with a local copy: $statements statements (legacy 3)");

        unlink($name);
        [$statements] = $counter->during(fn () => $this->assertSame('fresh',
            $this->handler('cache/content/site/2-stale.cache')->processCache($retrieve, $noGenerate)));
        $this->assertTrue($statements <= 5, "stale pass downloading the old copy: $statements statements (legacy 5)");
        $legacy->abortCacheGeneration($name);
    }
}
