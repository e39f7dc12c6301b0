<?php
// Spec section 9, scenarios 61-73: processCache in one process: generate once, serve local and
// downloaded copies, retrieve failures 1/3/other, manual mode, result forms, expiry, failed writes.

final class ProcessCacheTest extends TestCase
{
    private array $calls = [];

    private function retrieve(): callable
    {
        return function ($path, $mtime, $extra = null) {
            $this->calls[] = ['retrieve', $path, $mtime, $extra];
            return file_get_contents($path);
        };
    }

    private function generate(mixed $result): callable
    {
        return function ($path, $extra = null) use ($result) {
            $this->calls[] = ['generate', $path, $extra];
            return $result;
        };
    }

    private function count(string $kind): int
    {
        return count(array_filter($this->calls, fn ($c) => $c[0] === $kind));
    }

    public function testABrokenStoredCopyIsRegenerated(): void
    {
        $this->handler()->fileStoreContents($this->path('cache/broken.cache'), str_repeat('x', 500));
        self::$db->query('DELETE FROM ezdbfile_data WHERE name_hash = ?', [md5($this->path('cache/broken.cache'))]);
        $value = $this->handler('cache/broken.cache')->processCache($this->retrieve(), $this->generate('repaired'), 3600);
        $this->assertSame('repaired', $value);
        $this->assertSame(1, $this->count('generate'));
        $this->assertSame('repaired', $this->handler()->fileFetchContents($this->path('cache/broken.cache')));
    }

    public function testGeneratesOnceThenDelete(): void
    {
        $handler = $this->handler('cache/a.cache');
        $value = $handler->processCache($this->retrieve(), $this->generate(['content' => 'generated', 'binarydata' => 'generated']));
        $this->assertSame('generated', $value);
        $this->assertSame(1, $this->count('generate'));
        $this->assertSame($this->path('cache/a.cache') . '.generating', $this->calls[0][1], 'generate runs on the lock name:');
        $this->assertSame($this->path('cache/a.cache'), $handler->name(), 'the path is restored:');
        $this->assertTrue($handler->exists());
        $this->assertFileContent('generated', $this->path('cache/a.cache'));
        $this->assertNull($this->legacy()->row($this->path('cache/a.cache') . '.generating'), 'the lock is gone:');
        $handler->delete();
        $this->assertFalse($handler->exists());
    }

    public function testManualGenerationHoldsTheLock(): void
    {
        $handler = $this->handler('cache/manual.cache');
        $failure = $handler->processCache($this->retrieve(), null);
        $this->assertInstanceOf(eZClusterFileFailure::class, $failure);
        $this->assertSame(2, $failure->errno());
        $this->assertSame($this->path('cache/manual.cache.generating'), $handler->name());
        $this->assertTrue($this->handler()->fileExists($this->path('cache/manual.cache.generating')), 'lock row:');
        $handler->abortCacheGeneration();
        $this->assertFalse($this->handler()->fileExists($this->path('cache/manual.cache.generating')), 'released:');
        $this->assertSame($this->path('cache/manual.cache'), $handler->name());
    }

    public function testManualGenerationThenStoreCache(): void
    {
        $handler = $this->handler('cache/block.cache');
        $this->assertSame(2, $handler->processCache(null, null)->errno());
        $this->assertSame('block', $handler->storeCache(['binarydata' => 'block', 'scope' => 'template-block', 'datatype' => 'php']));
        $this->assertSame('block', $this->handler()->fileFetchContents($this->path('cache/block.cache')));
        $this->assertSame('template-block', $handler->stat()['scope']);
    }

    public function testHandlerWithoutAPathNeitherWaitsNorThrows(): void
    {
        // Legacy treats any false-like path as "no file": processCache returns failure 2 at once.
        foreach (['empty' => '', 'null' => null] as $how => $path) {
            $handler = new eZDBFileHandler($path);
            $started = microtime(true);
            $failure = $handler->processCache($this->retrieve(), $this->generate('x'));
            $this->assertTrue(microtime(true) - $started < 2, "$how, no wait for a lock that cannot exist:");
            $this->assertInstanceOf(eZClusterFileFailure::class, $failure, "$how:");
            $this->assertSame(2, $failure->errno(), "$how:");
            $this->assertSame([], $this->calls, "$how, no callback:");
            $this->assertFalse($handler->exists(), "$how:");
            $this->assertFalse($handler->stat(), "$how:");
            $this->assertFalse($handler->fetchContents(), "$how:");
            $this->assertFalse($handler->startCacheGeneration(), "$how:");
        }
    }

    public function testALockThatCannotBeTakenDoesNotMakeCallersWait(): void
    {
        // A ".generating" name cannot be locked (its lock would be "x.generating.generating"):
        // taking the lock fails with an error, not "busy". Nobody generates, so waiting
        // (legacy: forever) is pointless: the content is generated for this caller, not stored.
        $name = 'cache/a.cache.generating';
        $handler = $this->handler($name);
        $started = microtime(true);
        $value = $handler->processCache($this->retrieve(), $this->generate('private copy'), 3600);
        $this->assertTrue(microtime(true) - $started < 2, 'no wait for a generation nobody runs:');
        $this->assertSame('private copy', $value);
        $this->assertSame(1, $this->count('generate'));
        $this->assertFalse($handler->exists(), 'not stored without the lock: ' . implode(' / ', $this->logs));
    }

    public function testWithoutRetrieveItAlwaysGenerates(): void
    {
        $handler = $this->handler('cache/noretrieve.cache');
        $handler->storeContents('fresh already');
        $this->assertSame('regenerated', $handler->processCache(null, $this->generate('regenerated')));
        $this->assertSame('regenerated', $handler->fetchContents());
    }

    public function testFreshEntryIsServedFromTheLocalCopy(): void
    {
        $handler = $this->handler('cache/b.cache');
        $handler->processCache($this->retrieve(), $this->generate('b'));
        $this->calls = [];
        $localMtime = filemtime($this->path('cache/b.cache'));
        $this->assertSame('b', $this->handler('cache/b.cache')->processCache($this->retrieve(), $this->generate('new')));
        $this->assertSame([['retrieve', $this->path('cache/b.cache'), $localMtime, null]], $this->calls);
    }

    public function testMetadataAfterAHitIsTheRowItRead(): void
    {
        // A served handler keeps the row its processCache read (copied out of its run only when
        // asked), also while more handlers than the spare runs serve other entries meanwhile.
        foreach (range(1, 12) as $i) {
            $this->handler("cache/meta-$i.cache")->processCache($this->retrieve(), $this->generate(str_repeat('m', $i)));
        }
        $this->calls = [];
        $handlers = [];
        foreach (range(1, 12) as $i) {
            $handlers[$i] = $this->handler("cache/meta-$i.cache");
            $this->assertSame(str_repeat('m', $i), $handlers[$i]->processCache($this->retrieve(), $this->generate('new')));
        }
        $this->assertSame(0, $this->count('generate'));
        foreach ($handlers as $i => $handler) {
            $this->assertSame($i, $handler->size());
            $this->assertSame($this->cluster()->stat($this->path("cache/meta-$i.cache"))->mtime, $handler->mtime());
            $this->assertSame($this->handler("cache/meta-$i.cache")->stat(), $handler->stat());
        }
        // No row read: nothing to copy out, and no read either.
        $missing = $this->handler('cache/meta-none.cache');
        $this->assertSame(2, $missing->processCache($this->retrieve(), false)->errno());
        $this->assertNull($missing->size());
        $this->assertFalse($missing->stat());
    }

    public function testEntryFromAnotherServerIsDownloaded(): void
    {
        $name = $this->path('cache/c.cache');
        $rowMtime = time() + 30;  // read the clock once: a second call may fall in the next second
        $this->cluster()->store($name, 'from A', 'viewcache', 'php', $rowMtime);
        $this->assertSame('from A', (new eZDBFileHandler($name))->processCache($this->retrieve(), $this->generate('x')));
        $this->assertSame(0, $this->count('generate'));
        $this->assertSame($rowMtime + 1, $this->calls[0][2], 'mtime = row mtime + 1:');
        $this->assertFileContent('from A', $name);
    }

    public function testLocalCopyOlderThanTheRowIsReplaced(): void
    {
        $name = $this->path('cache/d.cache');
        @mkdir(dirname($name), 0777, true);
        file_put_contents($name, 'old local');
        touch($name, time() - 100);
        $this->cluster()->store($name, 'newer row');
        $this->assertSame('newer row', (new eZDBFileHandler($name))->processCache($this->retrieve(), $this->generate('x')));
        $this->assertFileContent('newer row', $name);
    }

    public function testRetrieveFailure1Regenerates(): void
    {
        $handler = $this->handler('cache/e.cache');
        $handler->storeContents('expired inside');
        $value = $handler->processCache(fn () => new eZClusterFileFailure(1), $this->generate('regenerated'));
        $this->assertSame('regenerated', $value);
        $this->assertSame('regenerated', $handler->fetchContents());
    }

    public function testRetrieveFailure3GeneratesWithoutStoringOrDeleting(): void
    {
        $handler = $this->handler('cache/f.cache');
        $handler->storeContents('the marker');
        $value = $handler->processCache(fn () => new eZClusterFileFailure(3), $this->generate('private'), null, null, ['k' => 'v']);
        $this->assertSame('private', $value);
        $this->assertSame(['k' => 'v', 'noCache' => true], $this->calls[0][2]);
        $this->assertSame('the marker', $this->handler('cache/f.cache')->fetchContents(), 'the row is kept:');
        $this->assertTrue($this->handler('cache/f.cache')->exists());
    }

    public function testOtherRetrieveFailureReturnsNull(): void
    {
        $handler = $this->handler('cache/g.cache');
        $handler->storeContents('g');
        $this->assertNull($handler->processCache(fn () => new eZClusterFileFailure(7), $this->generate('x')));
        $this->assertSame(0, $this->count('generate'));
        $this->assertSame('g', $handler->fetchContents());
    }

    public function testReadOnlyOnAMissingEntry(): void
    {
        $handler = $this->handler('cache/h.cache');
        $failure = $handler->processCache($this->retrieve(), false);
        $this->assertSame(2, $failure->errno());
        $this->assertNull($this->legacy()->row($this->path('cache/h.cache.generating')), 'no lock:');
        $this->assertNull($handler->processFile($this->retrieve()));
        $this->cluster()->store($this->path('cache/h.cache'), 'present');
        $this->assertSame('present', $this->handler('cache/h.cache')->processFile($this->retrieve()));
    }

    public function testStringAndContentResults(): void
    {
        $this->assertSame('plain', $this->handler('cache/i.cache')->processCache($this->retrieve(), $this->generate('plain')));
        $this->assertSame('plain', $this->handler()->fileFetchContents($this->path('cache/i.cache')));

        $content = ['a' => 1, 'b' => [true, 'x']];
        $this->assertSame($content, $this->handler('cache/j.php')->processCache($this->retrieve(), $this->generate(['content' => $content])));
        $stored = $this->handler()->fileFetchContents($this->path('cache/j.php'));
        $this->assertSame("<?php\n\treturn " . var_export($content, true) . ";\n?>\n", $stored);
        $this->assertSame($content, include $this->path('cache/j.php'));
    }

    public function testStoreFalseAndEmptyResults(): void
    {
        $handler = $this->handler('cache/k.cache');
        $this->assertSame('not stored', $handler->processCache($this->retrieve(), $this->generate(['content' => 'not stored', 'store' => false])));
        $this->assertFalse($handler->exists());
        $this->assertNull($this->legacy()->row($this->path('cache/k.cache.generating')), 'lock released:');
        $this->assertNull($handler->processCache($this->retrieve(), $this->generate(['scope' => 'x'])));
        $this->assertNull($this->legacy()->row($this->path('cache/k.cache.generating')), 'lock released:');
    }

    public function testExpiryArgument(): void
    {
        $name = $this->path('cache/l.cache');
        $this->cluster()->store($name, 'old', '', '', time() - 100);
        $this->assertSame('old', (new eZDBFileHandler($name))->processCache($this->retrieve(), $this->generate('x'), null, time() - 200));
        $this->assertSame('fresh', (new eZDBFileHandler($name))->processCache($this->retrieve(), $this->generate('fresh'), null, time() - 50));
        $this->assertSame('fresh', $this->handler()->fileFetchContents($name));
    }

    public function testFailedWriteKeepsThePreviousVersion(): void
    {
        $handler = $this->handler('cache/m.cache');
        $handler->storeContents('previous');
        $value = $handler->processCache(fn () => new eZClusterFileFailure(1),
            $this->generate(['binarydata' => 'next', 'scope' => str_repeat('s', 40)]));
        $this->assertSame('next', $value);
        $this->assertSame('previous', $this->handler('cache/m.cache')->fetchContents());
        $this->assertNull($this->legacy()->row($this->path('cache/m.cache.generating')), 'lock released:');
        $this->assertTrue(str_contains(implode("\n", $this->logs), 'storeCache'), 'logged:');
    }

    public function testStoreCacheWithoutALockDeletesNothing(): void
    {
        $handler = $this->handler('cache/n.cache');
        $handler->storeContents('published by someone');
        $this->assertSame('mine', $this->handler('cache/n.cache')->storeCache('mine'));
        $this->assertSame('published by someone', $handler->fetchContents());
        $this->assertTrue($handler->exists());
    }
}
