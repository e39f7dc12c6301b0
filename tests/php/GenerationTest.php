<?php
// Spec section 9, scenarios 74-86: the generation lock primitives (start, end with and without
// rename, abort, timeout check), takeover of old locks, lost locks and the shutdown cleanup.

final class GenerationTest extends TestCase
{
    public function testStartTwiceAndBusy(): void
    {
        $first = $this->handler('g.cache');
        $locked = microtime(true);
        $this->assertTrue($first->startCacheGeneration());
        $this->assertSame($this->path('g.cache.generating'), $first->name());
        $remaining = $this->handler('g.cache')->startCacheGeneration();
        // The timeout (60 s) less the lock's age in whole seconds (a loaded machine may take some).
        $age = (int) ceil(microtime(true) - $locked);
        $this->assertTrue(is_int($remaining) && $remaining >= 59 - $age && $remaining <= 60, 'seconds remaining: ' . var_export($remaining, true));
        $this->assertTrue($first->startCacheGeneration());
        $this->assertSame($this->path('g.cache.generating'), $first->name(), 'never .generating.generating:');
        $first->abortCacheGeneration();
    }

    public function testStartStoreEnd(): void
    {
        $handler = $this->handler('end.cache');
        $handler->startCacheGeneration();
        $handler->storeContents('contents');
        $this->assertTrue($handler->endCacheGeneration());
        $this->assertSame($this->path('end.cache'), $handler->name());
        $this->assertTrue($handler->exists());
        $this->assertSame('contents', $handler->fetchContents());
        $this->assertNull($this->legacy()->row($this->path('end.cache.generating')));
    }

    public function testEndWithoutGenerating(): void
    {
        $handler = $this->handler('plain.cache');
        $handler->storeContents('kept');
        $this->assertFalse($handler->endCacheGeneration());
        $this->assertSame($this->path('plain.cache'), $handler->name());
        $this->assertTrue($handler->exists());
    }

    public function testStartStoreAbort(): void
    {
        $handler = $this->handler('abort.cache');
        $handler->startCacheGeneration();
        $handler->storeContents('never published');
        $handler->abortCacheGeneration();
        $this->assertSame($this->path('abort.cache'), $handler->name());
        $this->assertFalse($handler->exists());
        $this->assertNull($this->legacy()->row($this->path('abort.cache.generating')));
    }

    public function testCheckTimeoutWhileOurs(): void
    {
        $handler = $this->handler('check.cache');
        $handler->startCacheGeneration();
        $handler->storeContents('c');
        $this->assertTrue($handler->checkCacheGenerationTimeout());
        $this->assertTrue($handler->endCacheGeneration());
        $this->assertFalse($handler->checkCacheGenerationTimeout(), 'not generating any more:');
    }

    public function testTakenOverLockIsNotPublished(): void
    {
        $handler = $this->handler('taken.cache');
        $this->assertSame(2, $handler->processCache(null, null)->errno());
        self::$db->query('UPDATE ezdbfile SET mtime = mtime + 5 WHERE name_hash = ?', [md5($this->path('taken.cache.generating'))]);
        $this->assertFalse($handler->checkCacheGenerationTimeout());
        $this->assertSame('late', $handler->storeCache('late'));
        $this->assertFalse($this->handler('taken.cache')->exists(), 'nothing published:');
        $this->assertTrue($this->legacy()->row($this->path('taken.cache.generating')) !== null, "the new holder's lock stays:");
        $this->assertTrue(str_contains(implode("\n", $this->logs), 'EZDB_LOCK_LOST'), 'logged:');
    }

    public function testOldLocksAreTakenOverYoungOnesReportTheirAge(): void
    {
        $legacy = $this->legacy();
        foreach (['old' => time() - 100, 'young' => time() - 10] as $name => $mtime) {
            $lock = $this->path("$name.cache.generating");
            self::$db->query("INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired) VALUES (?, ?, MD5(?), '', '', ?, 0)",
                [$lock, $lock, $lock, $mtime]);
        }
        $this->assertTrue($this->handler('old.cache')->startCacheGeneration(), 'taken over:');
        $remaining = $this->handler('young.cache')->startCacheGeneration();
        $this->assertTrue(in_array($remaining, [49, 50, 51], true), 'T - age: ' . var_export($remaining, true));
        $this->assertTrue($legacy->row($this->path('old.cache.generating'))['mtime'] >= time() - 1, 'the lock is fresh again:');
    }

    public function testRaceToTakeOverOneLock(): void
    {
        $lock = $this->path('race.cache.generating');
        self::$db->query("INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired) VALUES (?, ?, MD5(?), '', '', ?, 0)",
            [$lock, $lock, $lock, time() - 100]);
        $start = microtime(true) + 0.5;
        $results = $this->inChildren(4, function () use ($start) {
            time_sleep_until($start);
            $won = $this->handler('race.cache')->startCacheGeneration();
            usleep(300000); // hold it while the others try
            return $won;
        });
        $this->assertSame(1, count(array_filter($results, fn ($r) => $r === true)), 'exactly one winner: ' . json_encode($results));
    }

    public function testEndWithoutRenameOnlyReleases(): void
    {
        $handler = $this->handler('image.jpg');
        $handler->storeContents('original');
        $handler->startCacheGeneration();
        $this->assertTrue($handler->endCacheGeneration(false));
        $this->assertNull($this->legacy()->row($this->path('image.jpg.generating')));
        $this->assertSame('original', $handler->fetchContents());
    }

    public function testAbortWithoutGeneratingDeletesNothing(): void
    {
        $handler = $this->handler('real.cache');
        $handler->storeContents('real');
        $handler->abortCacheGeneration();
        $this->assertTrue($handler->exists());
        $this->assertSame($this->path('real.cache'), $handler->name());
    }

    public function testShutdownCleanup(): void
    {
        $handlers = [$this->handler('s1'), $this->handler('s2'), $this->handler('s3')];
        foreach ($handlers as $handler) {
            $this->assertTrue($handler->startCacheGeneration());
        }
        $handlers[0]->storeContents('done');
        $handlers[0]->endCacheGeneration();
        $this->assertTrue(eZDBFileHandler::cleanupGeneratingFiles());
        foreach ($handlers as $handler) {
            $this->assertFalse(str_ends_with($handler->name(), '.generating'), $handler->name());
        }
        $this->assertNull($this->legacy()->row($this->path('s2.generating')));
        $this->assertFalse(eZDBFileHandler::cleanupGeneratingFiles());
    }

    public function testEndOverAnExistingFileReplacesEverything(): void
    {
        $name = $this->path('replace.cache');
        $this->legacy()->storeContents($name, random_bytes(150000), 'oldscope', 'old/type', time() - 50);
        $this->legacy()->delete($name);
        $handler = new eZDBFileHandler($name);
        $handler->startCacheGeneration();
        $handler->storeContents('short', 'newscope', 'new/type');
        $this->assertTrue($handler->endCacheGeneration());
        $row = $this->legacy()->row($name);
        $this->assertSame(['short', 5, 0, 'newscope', 'new/type'],
            [$this->legacy()->fetchContents($name), (int) $row['size'], (int) $row['expired'], $row['scope'], $row['datatype']]);
        $this->assertSame([['offset' => 0, 'length' => 5]], $this->legacy()->chunks($name));
    }

    public function testEndAfterTheLockVanished(): void
    {
        $handler = $this->handler('vanish.cache');
        $handler->storeContents('untouched');
        $handler->startCacheGeneration();
        $handler->storeContents('staged');
        self::$db->query('DELETE FROM ezdbfile WHERE name_hash = ?', [md5($this->path('vanish.cache.generating'))]);
        $this->assertFalse($handler->endCacheGeneration());
        $this->assertSame($this->path('vanish.cache'), $handler->name());
        $this->assertSame('untouched', $handler->fetchContents());
    }
}
