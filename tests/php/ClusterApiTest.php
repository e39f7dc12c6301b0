<?php
// The framework-free API (Ezdb\Cluster, FileInfo, GenerationLock) used directly, and misuse
// through PHP: bad names, closed handles, released locks, bad settings -> Ezdb\Exception.

use Ezdb\Cluster;
use Ezdb\Exception;
use Ezdb\GenerationLock;

final class ClusterApiTest extends TestCase
{
    private function open(): Cluster
    {
        return Cluster::open(self::$db->url, [
            'chunk_size' => 1000,
            'generation_timeout' => 30,
            'legacy_expiry_file' => $this->expiryFile(),
        ]);
    }

    public function testStoreFetchStat(): void
    {
        $c = $this->open();
        $name = $this->path('api/a.bin');
        $info = $c->store($name, "a\0b", 'image', 'image/png', 1700000000);
        $this->assertSame([3, 1700000000, false, 'image', 'image/png', null], [$info->size, $info->mtime, $info->deleted, $info->scope, $info->datatype, $info->globalExpiry]);
        $this->assertSame("a\0b", $c->fetch($name));
        [$bytes, $meta] = $c->fetchWithInfo($name);
        $this->assertSame(["a\0b", 1700000000], [$bytes, $meta->mtime]);
        $this->assertSame('image/png', $c->stat($name)->datatype);
        $this->assertNull($c->stat($this->path('api/none')));
        $this->assertNull($c->fetch($this->path('api/none')));
        $this->assertTrue($c->exists($name));
        $this->assertSame("\0b", $c->fetchRange($name, 1));
        $this->assertTrue(abs($c->now() - time()) < 5, 'database clock:');
    }

    public function testEachRequestReusesTheProcesssConnection(): void
    {
        $sessions = fn () => (int) self::$db->query(
            'SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ?', [self::$db->name])[0]['n'];
        $this->open()->exists($this->path('api/warm'));
        $before = $sessions();
        for ($request = 0; $request < 5; $request++) {
            // PHP-FPM drops every object between requests; the library keeps the connection.
            $c = $this->open();
            $c->exists($this->path('api/x'));
            $c->close();
        }
        $this->assertSame($before, $sessions(), 'no new connection per request:');
    }

    public function testChunkSizeOption(): void
    {
        $c = $this->open();
        $c->store($this->path('api/chunks'), str_repeat('x', 2500));
        $this->assertSame([0, 1000, 2000], array_column($this->legacy()->chunks($this->path('api/chunks')), 'offset'));
    }

    public function testFilesDeletesAndLists(): void
    {
        $c = $this->open();
        $local = "$this->dir/in.txt";
        file_put_contents($local, 'from disk');
        $c->storeFile($this->path('api/f/1.txt'), $local, 'binaryfile', 'text/plain');
        $this->assertSame('from disk', $c->fetch($this->path('api/f/1.txt')));
        $this->assertSame(9, $c->fetchToFile($this->path('api/f/1.txt'), "$this->dir/out/x.txt")->size);
        $this->assertFileContent('from disk', "$this->dir/out/x.txt");
        $this->assertNull($c->fetchToFile($this->path('api/none'), "$this->dir/out/none"));

        $this->assertTrue($c->copy($this->path('api/f/1.txt'), $this->path('api/f/2.txt')));
        $this->assertTrue($c->linkCopy($this->path('api/f/1.txt'), $this->path('api/f/3.php')));
        $this->assertTrue($c->move($this->path('api/f/3.php'), $this->path('api/f/4.php')));
        $this->assertFalse($c->copy($this->path('api/none'), $this->path('api/x')));
        $this->assertFalse($c->move($this->path('api/none'), $this->path('api/x')));
        $mine = fn (array $names) => array_values(array_filter($names, fn ($n) => str_starts_with($n, $this->prefix)));
        $this->assertSame([$this->path('api/f/1.txt'), $this->path('api/f/2.txt'), $this->path('api/f/4.php')], $mine($c->list(['binaryfile'])));

        $this->assertSame(1, $c->deleteWildcard($this->path('api/f/*.php')));
        $this->assertSame(2, $c->deletePrefix($this->path('api/f'), ''));
        $this->assertSame(0, $c->delete($this->path('api/f/1.txt')), 'already deleted:');
        $this->assertTrue($c->stat($this->path('api/f/1.txt'))->deleted);
        $expired = $c->listExpired(['binaryfile'], null, 0, 1000);
        $this->assertSame(3, count($mine($expired)));
        $this->assertTrue($c->purge($this->path('api/f/1.txt')));
        $this->assertSame(2, $c->purgePrefix($this->path('api/f')));
        $this->assertSame([], $mine($c->list()));
    }

    public function testIsFreshAndGlobalExpiry(): void
    {
        $c = $this->open();
        $info = $c->store($this->path('api/fresh'), 'f', 'user-info-cache', 'php', time() - 100);
        $this->assertTrue($c->isFresh($info));
        $this->assertTrue($c->isFresh($info, 200));
        $this->assertFalse($c->isFresh($info, 50));
        $this->assertFalse($c->isFresh($info, 0));
        $this->assertFalse($c->isFresh($info, null, time()));
        try {
            $this->assertNull($c->globalExpiry('user-info-cache'));
            $at = $c->setGlobalExpiry('user-info-cache');
            $this->assertSame($at, $c->globalExpiry('user-info-cache'));
            $covered = $c->stat($this->path('api/fresh'));
            $this->assertSame($at, $covered->globalExpiry);
            $this->assertTrue($covered->isExpired());
            $this->assertFalse($c->isFresh($covered));
            $this->assertFalse($c->exists($this->path('api/fresh')));
        } finally {
            $this->forgetGlobalExpiry();
        }
    }

    public function testGenerationLockLifecycle(): void
    {
        $c = $this->open();
        $name = $this->path('api/gen.cache');
        $locked = microtime(true);
        $lock = $c->startGeneration($name);
        $this->assertInstanceOf(GenerationLock::class, $lock);
        $this->assertSame("$name.generating", $lock->lockName());
        $this->assertTrue($lock->check());
        // generation_timeout 30 less the lock's age in whole seconds (a loaded machine may take one).
        $remaining = $c->startGeneration($name);
        $age = (int) ceil(microtime(true) - $locked);
        $this->assertTrue(is_int($remaining) && $remaining <= 30 && $remaining >= 30 - $age, 'busy, generation_timeout 30: ' . var_export($remaining, true));
        $lock->stage('staged', 'viewcache', 'php');
        $this->assertSame(6, $lock->end()->size);
        $this->assertFalse($lock->isHeld());
        $this->assertThrowsEzdb(Exception::INVALID_ARGUMENT, fn () => $lock->check());

        $this->assertNull($c->startGeneration($name, '', ['ttl' => null, 'expiry' => null]), 'fresh on recheck, no lock:');
        $again = $c->startGeneration($name, '', ['ttl' => 0]);
        $this->assertSame('published', $again->publish('published') ? $c->fetch($name) : null);
        $dropped = $c->startGeneration($name);
        unset($dropped);
        $this->assertNull($this->legacy()->row("$name.generating"), 'a dropped lock is aborted:');
        $held = $c->startGeneration($name);
        $c->close();
        $this->assertFalse($held->isHeld());
        $this->assertNull($this->legacy()->row("$name.generating"), 'closing the handle aborts its locks:');
    }

    public function testBadNamesAreErrorsNotCrashes(): void
    {
        $c = $this->open();
        $e = $this->assertThrowsEzdb(Exception::INVALID_ARGUMENT, fn () => $c->store("bad\0name", 'x'));
        $this->assertTrue(str_contains($e->getMessage(), 'NUL'), $e->getMessage());
        $e = $this->assertThrowsEzdb(Exception::INVALID_ARGUMENT, fn () => $c->fetch("bad\xff\xfe"));
        $this->assertTrue(str_contains($e->getMessage(), 'UTF-8'), $e->getMessage());
        $this->assertThrowsEzdb(Exception::INVALID_ARGUMENT, fn () => $c->store('', 'x'));
        $this->assertThrowsEzdb(Exception::INVALID_ARGUMENT, fn () => $c->exists("a\0"));
        $this->assertThrowsEzdb(Exception::INVALID_ARGUMENT, fn () => $c->startGeneration("x\xc3"));
        $this->assertThrowsEzdb(Exception::INVALID_ARGUMENT, fn () => $c->store($this->path('ok'), 'x', str_repeat('s', 40)));
        $c->store($this->path('short'), 'abc');
        $this->assertThrowsEzdb(Exception::INVALID_ARGUMENT, fn () => $c->fetchRange($this->path('short'), 10, 1));
        $c->close();
        $this->assertThrowsEzdb(Exception::INVALID_ARGUMENT, fn () => $c->exists('a'));
    }

    public function testHandlerReportsBadNamesAsFalse(): void
    {
        $handler = $this->handler();
        $this->assertFalse($handler->fileStoreContents("bad\0name", 'x'));
        $this->assertFalse($handler->fileExists("bad\xff"));
        $this->assertFalse($handler->fileFetchContents("bad\0"));
        $this->assertFalse((new eZDBFileHandler("bad\xff.cache"))->startCacheGeneration());
        $this->assertSame(4, count($this->logs));
        $this->assertTrue(str_contains($this->logs[0], 'NUL'), $this->logs[0]);
    }

    public function testHandlerReportsNullPathsAsFalseNotTypeErrors(): void
    {
        // Legacy file* methods given null (a missing path) answer false or nothing; never a TypeError.
        $handler = $this->handler();
        $this->assertFalse($handler->fileExists(null));
        $this->assertFalse($handler->fileFetchContents(null));
        $this->assertFalse($handler->fileFetch(null));
        $this->assertFalse($handler->fileStoreContents(null, 'x'));
        $this->assertFalse($handler->fileStore(null));
        $this->assertFalse($handler->fileDelete(null));
        $this->assertFalse($handler->fileCopy(null, $this->path('copy')));
        $this->assertFalse($handler->fileMove(null, $this->path('moved')));
        $handler->fileDeleteLocal(null);
        $this->assertFalse($handler->fileExists($this->path('copy')) || $handler->fileExists($this->path('moved')));
    }

    public function testUnreachableServerAndBadSettings(): void
    {
        $unreachable = Cluster::open('mysql://root@127.0.0.1:1/nothing', ['connect_timeout_ms' => 2000]);
        $this->assertThrowsEzdb(Exception::CONNECT, fn () => $unreachable->connect());
        $this->configure(['URL' => null, 'DBHost' => '127.0.0.1', 'DBPort' => 1, 'DBUser' => 'someone', 'DBPassword' => 'secret', 'DBConnectRetries' => 2]);
        $e = $this->assertThrowsEzdb(Exception::CONNECT, fn () => new eZDBFileHandler('x'));
        $this->assertTrue(str_contains($e->getMessage(), "user someone, password '******'") && !str_contains($e->getMessage(), 'secret'), $e->getMessage());
        $this->assertThrowsEzdb(Exception::CONFIG, fn () => Cluster::open('postgres://x'));
    }

    public function testLibraryNotFoundNamesWhatWasTried(): void
    {
        $script = 'require ' . var_export(dirname(__DIR__, 2) . '/php/autoload.php', true) . ';'
            . 'try { Ezdb\Library::ffi(); } catch (Ezdb\Exception $e) { echo $e->getMessage(); }';
        $output = shell_exec('EZDB_LIBRARY=/nonexistent/libezdb.so ' . escapeshellarg(PHP_BINARY) . ' -r ' . escapeshellarg($script));
        $this->assertTrue(str_contains((string) $output, '/nonexistent/libezdb.so (no such file)'), (string) $output);
        $this->assertTrue(str_contains((string) $output, 'EZDB_LIBRARY'), 'says how to fix it:');
    }

    public function testUrlFromLegacySettings(): void
    {
        $s = eZDBFileHandler::DEFAULTS;
        $this->assertSame('mysql://root@db:3306/cluster', eZDBFileHandler::url($s));
        $this->assertSame('mysql://u%40x:p%3Aw%2F@h:3307/d', eZDBFileHandler::url(['DBUser' => 'u@x', 'DBPassword' => 'p:w/', 'DBHost' => 'h', 'DBPort' => 3307, 'DBName' => 'd'] + $s));
        $this->assertSame('mysql://root@localhost/cluster?socket=%2Frun%2Fmysqld%2Fmysqld.sock', eZDBFileHandler::url(['DBSocket' => '/run/mysqld/mysqld.sock'] + $s));
    }
}
