<?php
// eZDBFileHandler inside (stand-ins of) eZ Publish, in a PHP process of its own: it implements
// the legacy interfaces with compatible signatures and takes its settings from eZINI.

final class EzPublishTest extends TestCase
{
    public function testInsideEzPublish(): void
    {
        $parts = TestDb::parse(getenv('EZDB_TEST_URL') ?: 'mysql://root@127.0.0.1:3306');
        $script = <<<'PHP'
            require getenv('EZDB_TESTS') . '/fixtures/ezpublish-stubs.php';
            [$host, $port, $user, $pass, $db, $name] = json_decode(getenv('EZDB_SETTINGS'), true);
            eZINI::$values = [
                'file.ini' => ['ClusteringSettings' => ['FileHandler' => 'eZDBFileHandler', 'DBHost' => $host, 'DBPort' => $port,
                    'DBUser' => $user, 'DBPassword' => $pass, 'DBName' => $db,
                    'NonExistantStaleCacheHandling' => ['viewcache' => 'wait', 'cacheblock' => 'wait', 'misc' => 'generate']]],
                'site.ini' => ['ContentSettings' => ['CacheGenerationTimeout' => '7'], 'FileSettings' => ['StorageFilePermissions' => '0640', 'VarDir' => 'var/ezdemo_site']],
            ];
            require getenv('EZDB_PHP') . '/autoload.php';
            $handler = new eZDBFileHandler($name);
            $out = [
                $handler instanceof eZClusterFileHandlerInterface, $handler instanceof ezpDatabaseBasedClusterFileHandler,
                $handler->startCacheGeneration(), array_keys(eZClusterFileHandler::$generating) === [$name],
                (new eZDBFileHandler($name))->startCacheGeneration(),
                (new eZDBFileHandler($name))->processCache(fn () => 'stale?', fn () => 'private copy'),
            ];
            $handler->storeContents('published');
            $out[] = $handler->endCacheGeneration();
            $out[] = count(eZClusterFileHandler::$generating);
            $out[] = $handler->fileFetch($name) === $name ? sprintf('%o', fileperms($name) & 0777) : 'not fetched';
            $out[] = (new eZDBFileHandler())->fileStoreContents("bad\0", 'x');
            $out[] = count(eZDebug::$messages);
            $out[] = eZDBFileHandler::settings()['LegacyExpiryFile'];
            echo json_encode($out);
            PHP;
        $settings = json_encode([$parts['host'], $parts['port'], $parts['user'], $parts['pass'], self::$db->name, $this->path('ez.cache')]);
        $output = $this->php($script, ['EZDB_SETTINGS' => $settings, 'EZDB_TESTS' => __DIR__, 'EZDB_PHP' => dirname(__DIR__, 2) . '/php']);
        $this->assertSame([true, true, true, true, 7, 'private copy', true, 0, '640', false, 1, 'var/ezdemo_site/cache/expiry.php'],
            json_decode($output, true), $output);
    }

    public function testTheLegacyExpiryFileFollowsTheCacheDirectory(): void
    {
        $script = <<<'PHP'
            require getenv('EZDB_TESTS') . '/fixtures/ezpublish-stubs.php';
            require getenv('EZDB_PHP') . '/autoload.php';
            $out = [];
            eZINI::$values = ['site.ini' => ['FileSettings' => ['CacheDir' => '/srv/cache']]];
            $out[] = eZDBFileHandler::settings()['LegacyExpiryFile'];
            eZDBFileHandler::configure([]);  // configure() replaces eZINI: no expiry.php unless given
            $out[] = eZDBFileHandler::settings()['LegacyExpiryFile'];
            echo json_encode($out);
            PHP;
        $output = $this->php($script, ['EZDB_TESTS' => __DIR__, 'EZDB_PHP' => dirname(__DIR__, 2) . '/php']);
        $this->assertSame(['/srv/cache/expiry.php', null], json_decode($output, true), $output);
        $script = 'class eZSys { static function cacheDirectory() { return "var/plain_site/cache/"; } }'
            . 'require getenv("EZDB_TESTS") . "/fixtures/ezpublish-stubs.php"; require getenv("EZDB_PHP") . "/autoload.php";'
            . 'echo eZDBFileHandler::settings()["LegacyExpiryFile"];';
        $output = $this->php($script, ['EZDB_TESTS' => __DIR__, 'EZDB_PHP' => dirname(__DIR__, 2) . '/php']);
        $this->assertSame('var/plain_site/cache/expiry.php', $output, 'eZSys::cacheDirectory() when eZ Publish has it:');
    }

    public function testWithoutEzPublishTheStandInsAreUsed(): void
    {
        $script = 'require getenv("EZDB_PHP") . "/autoload.php"; class_exists("eZDBFileHandler");'
            . 'echo json_encode([interface_exists("eZClusterFileHandlerInterface"), class_exists("eZClusterFileFailure"),'
            . '(new eZClusterFileFailure(2, "m"))->errno(), class_implements("eZDBFileHandler")]);';
        $output = $this->php($script, ['EZDB_PHP' => dirname(__DIR__, 2) . '/php']);
        $this->assertSame([false, true, 2, ['Ezdb\Compat\NoClusterFileHandlerInterface' => 'Ezdb\Compat\NoClusterFileHandlerInterface',
            'Ezdb\Compat\NoDatabaseBasedClusterFileHandler' => 'Ezdb\Compat\NoDatabaseBasedClusterFileHandler']], json_decode($output, true), $output);
    }

    private function php(string $code, array $env): string
    {
        $process = proc_open([PHP_BINARY, '-r', $code], [1 => ['pipe', 'w'], 2 => ['redirect', 1]], $pipes, $this->dir, $env + getenv());
        $output = trim(stream_get_contents($pipes[1]));
        fclose($pipes[1]);
        $this->assertSame(0, proc_close($process), $output);
        return $output;
    }
}
