<?php
// Spec section 9, scenarios 87-97: stale cache while another process generates, waiting or
// generating privately, takeover from a dead generator, the recheck, clears during a
// generation, 16 processes on one expired entry, many publishers, and fork safety.

final class ConcurrencyTest extends TestCase
{
    private function reader(): callable
    {
        return fn ($path) => file_get_contents($path);
    }

    private function counted(string $content, string $counter, int $sleepMs = 0): callable
    {
        return function () use ($content, $counter, $sleepMs) {
            file_put_contents($counter, 'x', FILE_APPEND | LOCK_EX);
            usleep($sleepMs * 1000);
            return $content;
        };
    }

    private function generations(string $counter): int
    {
        clearstatcache(true, $counter);
        return is_file($counter) ? strlen(file_get_contents($counter)) : 0;
    }

    private function never(): callable
    {
        return fn () => $this->fail('generate must not run');
    }

    public function testStaleCacheWhileAnotherProcessGenerates(): void
    {
        $name = $this->path('cache/content/s/2-stale.cache');
        $this->cluster()->store($name, 'old', 'viewcache', 'php', time() - 100);
        $this->assertSame('old', (new eZDBFileHandler($name))->processCache($this->reader(), $this->never()));
        $this->handler()->fileDelete($name);
        $generator = new eZDBFileHandler($name);
        $this->assertTrue($generator->startCacheGeneration());

        $this->assertSame('old', (new eZDBFileHandler($name))->processCache($this->reader(), $this->never()), 'local stale copy:');
        $this->handler()->fileDeleteLocal($name);
        $this->assertSame('old', (new eZDBFileHandler($name))->processCache($this->reader(), $this->never()), 'stale copy from the database:');

        $generator->storeContents('new', 'viewcache', 'php');
        $this->assertTrue($generator->endCacheGeneration());
        $this->assertSame('new', (new eZDBFileHandler($name))->processCache($this->reader(), $this->never()));
        touch($name, time() - 3600);
        $this->assertSame('new', (new eZDBFileHandler($name))->processCache($this->reader(), $this->never()));
    }

    public function testStaleLocalCopyIsServedWithoutWaiting(): void
    {
        $name = $this->path('cache/a.cache');
        $this->handler()->fileStoreContents($name, 'previous');
        $this->handler()->fileFetch($name);
        $this->handler()->fileDelete($name);
        $this->assertTrue((new eZDBFileHandler($name))->startCacheGeneration());
        $started = microtime(true);
        $this->assertSame('previous', (new eZDBFileHandler($name))->processCache($this->reader(), $this->never()));
        $this->assertTrue(microtime(true) - $started < 0.5, 'no waiting:');
    }

    public function testStaleRowIsServedWithoutALocalCopy(): void
    {
        $name = $this->path('cache/b.cache');
        $this->handler()->fileStoreContents($name, 'expired row');
        $this->handler()->fileDelete($name);
        $this->assertTrue((new eZDBFileHandler($name))->startCacheGeneration());
        $this->assertSame('expired row', (new eZDBFileHandler($name))->processCache($this->reader(), $this->never()));
    }

    public function testWaitForTheGeneratorOfANewEntry(): void
    {
        $this->configure(['CacheGenerationTimeout' => 10]);
        $name = $this->path('cache/new.cache');
        $ready = "$this->dir/.locked";
        $generator = $this->spawn(function () use ($name, $ready) {
            $handler = new eZDBFileHandler($name);
            $handler->startCacheGeneration();
            touch($ready);
            usleep(1500000);
            $handler->storeContents('from the generator');
            return $handler->endCacheGeneration();
        });
        while (!file_exists($ready)) {
            usleep(10000);
        }
        $started = microtime(true);
        $this->assertSame('from the generator', (new eZDBFileHandler($name))->processCache($this->reader(), $this->never()));
        $waited = microtime(true) - $started;
        $this->assertTrue($waited >= 1.0 && $waited <= 11, "waited $waited s:");
        $this->assertSame(0, pcntl_wexitstatus($this->waitFor($generator)));
    }

    public function testGeneratePrivatelyWhenConfigured(): void
    {
        $this->configure(['NonExistantStaleCacheHandling' => ['viewcache' => 'wait', 'cacheblock' => 'wait', 'misc' => 'generate']]);
        $name = $this->path('cache/private.cache');
        $generator = new eZDBFileHandler($name);
        $generator->startCacheGeneration();
        $started = microtime(true);
        $this->assertSame('mine', (new eZDBFileHandler($name))->processCache($this->reader(), fn () => 'mine'));
        $this->assertTrue(microtime(true) - $started < 0.5, 'no waiting:');
        $this->assertFalse($this->handler()->fileExists($name), 'nothing stored:');
        $generator->storeContents('theirs');
        $generator->endCacheGeneration();
        $this->assertSame('theirs', $this->handler()->fileFetchContents($name), "the generator's result stays:");
    }

    public function testDeadGeneratorIsTakenOver(): void
    {
        $this->configure(['CacheGenerationTimeout' => 2]);
        $name = $this->path('cache/orphan.cache');
        $dead = $this->spawn(function () use ($name) {
            (new eZDBFileHandler($name))->startCacheGeneration();
            posix_kill(getmypid(), SIGKILL);
        });
        $this->assertTrue(pcntl_wifsignaled($this->waitFor($dead)));
        $this->assertTrue($this->legacy()->row("$name.generating") !== null, 'the dead process left its lock:');
        $started = microtime(true);
        $this->assertSame('taken over', (new eZDBFileHandler($name))->processCache($this->reader(), fn () => 'taken over'));
        $waited = microtime(true) - $started;
        $this->assertTrue($waited >= 1.0 && $waited <= 6, "waited $waited s:");
        $this->assertSame('taken over', $this->handler()->fileFetchContents($name));
    }

    public function testRecheckServesWhatAnotherProcessJustPublished(): void
    {
        $name = $this->path('cache/recheck.cache');
        $this->cluster()->store($name, 'old', '', '', time() - 100);
        $retrieved = 0;
        $retrieve = function ($path) use (&$retrieved, $name) {
            if (++$retrieved === 1) {
                $other = new eZDBFileHandler($name); // another process publishes meanwhile
                $other->startCacheGeneration();
                $other->storeContents('published meanwhile');
                $other->endCacheGeneration();
                return new eZClusterFileFailure(1, 'expired');
            }
            return file_get_contents($path);
        };
        $this->assertSame('published meanwhile', (new eZDBFileHandler($name))->processCache($retrieve, $this->never()));
        $this->assertSame(2, $retrieved);
    }

    public function testClearDuringGenerationExpiresTheResult(): void
    {
        $common = $this->prefix . '/cache/content';
        $name = "$common/site/2-clear.cache";
        $counter = "$this->dir/.generated";
        $generate = function () use ($counter, $common) {
            file_put_contents($counter, 'x', FILE_APPEND);
            $this->handler()->fileDeleteByDirList(['site'], $common, '2-'); // a node clear meanwhile
            return 'built from pre-clear data';
        };
        (new eZDBFileHandler($name))->processCache($this->reader(), $generate);
        $this->assertFalse($this->handler()->fileExists($name), 'published as expired:');
        (new eZDBFileHandler($name))->processCache($this->reader(), $generate);
        $this->assertSame(2, $this->generations($counter), 'regenerated on the next request:');
    }

    public function testSixteenProcessesGenerateOnce(): void
    {
        $name = $this->path('cache/content/s/2-hot.cache');
        $counter = "$this->dir/.generated";
        $this->handler()->fileStoreContents($name, 'old', 'viewcache', 'php');
        $this->handler()->fileDelete($name);
        $start = microtime(true) + 1.0;
        $results = $this->inChildren(16, function () use ($name, $counter, $start) {
            time_sleep_until($start);
            return (new eZDBFileHandler($name))->processCache($this->reader(), $this->counted('new', $counter, 300));
        });
        $this->assertSame(1, $this->generations($counter), 'generate ran once:');
        foreach ($results as $i => $value) {
            $this->assertTrue(in_array($value, ['old', 'new'], true), "process $i got " . var_export($value, true) . ':');
        }
        $this->assertSame('new', $this->handler()->fileFetchContents($name));
        $again = $this->inChildren(16, fn () => (new eZDBFileHandler($name))->processCache($this->reader(), $this->counted('newer', $counter)));
        $this->assertSame(array_fill(0, 16, 'new'), $again, 'all served from the cache afterwards:');
        $this->assertSame(1, $this->generations($counter));
    }

    public function testSixteenProcessesOnAnEntryPastItsTtl(): void
    {
        $name = $this->path('cache/ttl.cache');
        $counter = "$this->dir/.generated";
        $this->cluster()->store($name, 'old', '', '', time() - 100);
        $start = microtime(true) + 1.0;
        $results = $this->inChildren(16, function () use ($name, $counter, $start) {
            time_sleep_until($start);
            return (new eZDBFileHandler($name))->processCache($this->reader(), $this->counted('new', $counter, 300), 50);
        });
        $this->assertSame(1, $this->generations($counter), 'generate ran once:');
        $this->assertSame([], array_diff($results, ['old', 'new']), 'old or new content only:');
    }

    public function testManyPublishersOfDistinctPathsWhileALockIsHeld(): void
    {
        $blocker = $this->handler('cache/held.cache');
        $this->assertTrue($blocker->startCacheGeneration());
        $start = microtime(true) + 1.0;
        $results = $this->inChildren(25, function ($i) use ($start) {
            time_sleep_until($start);
            $began = microtime(true);
            $values = [];
            foreach ([1, 2] as $n) {
                $values[] = $this->handler("cache/p$i-$n.cache")->processCache(null, fn () => "content $i-$n");
            }
            return [$values, microtime(true) - $began];
        });
        foreach ($results as $i => [$values, $seconds]) {
            $this->assertSame(["content $i-1", "content $i-2"], $values);
            $this->assertTrue($seconds < 20, "process $i took $seconds s:");
            $this->assertSame("content $i-2", $this->handler()->fileFetchContents($this->path("cache/p$i-2.cache")));
        }
        $blocker->abortCacheGeneration();
    }

    public function testForkedChildKeepsWorkingAndSoDoesTheParent(): void
    {
        $this->handler()->fileStoreContents($this->path('before-fork'), 'parent');
        $this->assertSame('parent', $this->handler()->fileFetchContents($this->path('before-fork')));
        [$child] = $this->inChildren(1, function () {
            $read = $this->handler()->fileFetchContents($this->path('before-fork'));
            $this->handler()->fileStoreContents($this->path('from-child'), 'child');
            return $read;
        });
        $this->assertSame('parent', $child);
        $this->assertSame('child', $this->handler()->fileFetchContents($this->path('from-child')));
        for ($i = 0; $i < 50; $i++) {
            $this->handler()->fileStoreContents($this->path("after-$i"), "$i");
            $this->assertSame("$i", $this->handler()->fileFetchContents($this->path("after-$i")));
        }
    }
}
