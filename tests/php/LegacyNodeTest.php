<?php
// A mixed cluster: a legacy eZDB node (plain mysqli statements laid out as spec sections 2 and
// 3.9) and eZDBFileHandler share one database: files, deletes and generation locks.

final class LegacyNodeTest extends TestCase
{
    public function testLegacyFilesAreReadByteExact(): void
    {
        $legacy = $this->legacy(1000);
        $files = ['small.txt' => 'hello', 'chunked.bin' => random_bytes(10500), 'exact.bin' => random_bytes(3000), 'nul.bin' => "\0a\0b\0"];
        foreach ($files as $name => $bytes) {
            $legacy->storeContents($this->path($name), $bytes, 'binaryfile', 'application/octet-stream', 1700000000);
        }
        foreach ($files as $name => $bytes) {
            $handler = $this->handler($name);
            $this->assertBytes($bytes, $handler->fetchContents(), $name);
            $this->assertSame(1700000000, $handler->mtime());
            $this->assertSame($this->path($name), $handler->fetch());
            $this->assertFileContent($bytes, $this->path($name));
        }
    }

    public function testLegacyDeletesAndOursAgree(): void
    {
        $legacy = $this->legacy();
        $legacy->storeContents($this->path('a'), 'a');
        $legacy->delete($this->path('a'));
        $this->assertFalse($this->handler()->fileExists($this->path('a')));
        $this->assertSame('a', $this->handler()->fileFetchContents($this->path('a')), 'the stale copy is readable:');

        $this->handler()->fileStoreContents($this->path('b'), 'b');
        $this->handler()->fileDelete($this->path('b'));
        $this->assertFalse($legacy->exists($this->path('b')));
        $this->assertSame('b', $legacy->fetchContents($this->path('b')));
    }

    public function testLegacyLockMakesOurStartReturnTheRemainingTime(): void
    {
        $name = $this->path('cache/legacy-locked.cache');
        $this->assertTrue($this->legacy()->startCacheGeneration($name));
        $remaining = $this->handler('cache/legacy-locked.cache')->startCacheGeneration();
        $this->assertTrue(is_int($remaining) && $remaining >= 58 && $remaining <= 60, var_export($remaining, true));
    }

    public function testLegacyLockMeansStaleCacheForUs(): void
    {
        $name = $this->path('cache/stale.cache');
        $legacy = $this->legacy();
        $legacy->storeContents($name, 'legacy version', 'viewcache', 'php', time() - 100);
        $legacy->delete($name);
        $this->assertTrue($legacy->startCacheGeneration($name));
        $value = (new eZDBFileHandler($name))->processCache(fn ($p) => file_get_contents($p), fn () => $this->fail('no generation while legacy holds the lock'));
        $this->assertSame('legacy version', $value);
    }

    public function testOurLockBlocksALegacyInsert(): void
    {
        $handler = $this->handler('cache/ours.cache');
        $this->assertTrue($handler->startCacheGeneration());
        $lock = $this->path('cache/ours.cache.generating');
        try {
            self::$db->query("INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired) VALUES (?, ?, MD5(?), '', '', ?, 0)",
                [$lock, $lock, $lock, time()]);
            $this->fail('the legacy INSERT must fail with a duplicate key');
        } catch (mysqli_sql_exception $e) {
            $this->assertSame(1062, $e->getCode());
        }
        $remaining = $this->legacy()->startCacheGeneration($this->path('cache/ours.cache'));
        $this->assertTrue(is_int($remaining) && $remaining >= 58, 'legacy sees our lock: ' . var_export($remaining, true));
        $handler->storeContents('ours');
        $this->assertTrue($handler->endCacheGeneration());
        $this->assertSame('ours', $this->legacy()->fetchContents($this->path('cache/ours.cache')));
        $this->assertTrue($this->legacy()->startCacheGeneration($this->path('cache/ours.cache')), 'released for legacy too:');
    }

    public function testLegacyTakeoverOfOurOldLock(): void
    {
        $this->configure(['CacheGenerationTimeout' => 1]);
        $handler = $this->handler('cache/slow.cache');
        $this->assertTrue($handler->startCacheGeneration());
        sleep(3);
        $this->assertTrue($this->legacy(65535, 1)->startCacheGeneration($this->path('cache/slow.cache')), 'legacy takes over:');
        $this->assertFalse($handler->checkCacheGenerationTimeout());
        $handler->storeContents('too late');
        $this->assertFalse($handler->endCacheGeneration(), 'the slow generator publishes nothing:');
        $this->assertFalse($this->handler()->fileExists($this->path('cache/slow.cache')));
        $this->assertTrue($this->legacy()->row($this->path('cache/slow.cache.generating')) !== null, "legacy's lock stays:");
    }

    public function testLegacyCacheEntryIsServedByProcessCache(): void
    {
        $name = $this->path('cache/content/site/5-legacy.cache');
        $this->legacy()->storeContents($name, "<?php\n\treturn 'from legacy';\n?>\n", 'viewcache', 'php');
        $value = (new eZDBFileHandler($name))->processCache(fn ($path) => include $path, fn () => $this->fail('fresh legacy entry'));
        $this->assertSame('from legacy', $value);
    }

    /** A rolling switch: a clear made on either side reaches the other through expiry.php. */
    public function testClearsCrossBothWaysThroughExpiryPhp(): void
    {
        $legacy = $this->legacy();
        $view = $this->path('cache/content/site/2-a.cache');
        $this->handler()->fileStoreContents($view, 'view', 'viewcache', 'php');
        $this->legacy()->storeContents($view, 'view', 'viewcache', 'php', time() - 100);
        $this->assertTrue($this->handler()->fileExists($view));

        // The legacy node clears the view cache: eZExpiryHandler rewrites the whole file.
        $legacyClear = time() - 10;
        $php = "<?php\n\$Timestamps = array (\n  'content-view-cache' => $legacyClear,\n);\n?>\n";
        $legacy->storeContents($this->expiryFile(), $php, 'expirycache', 'misc', time());
        $this->assertFalse($this->handler()->fileExists($view), 'the legacy clear is honoured at once:');
        $value = (new eZDBFileHandler($view))->processCache(fn ($p) => file_get_contents($p), fn () => 'regenerated');
        $this->assertSame('regenerated', $value);

        // Our clear lands in the file the legacy node reads, keeping the legacy node's key.
        try {
            $at = $this->cluster()->setGlobalExpiry('user-info-cache');
            $seen = $legacy->fetchContents($this->expiryFile());
            $this->assertTrue(str_contains($seen, "'user-info-cache' => $at"), $seen);
            $this->assertTrue(str_contains($seen, "'content-view-cache' => $legacyClear"), $seen);
        } finally {
            $this->forgetGlobalExpiry();
        }
    }
}
