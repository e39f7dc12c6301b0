<?php
// Spec section 9, scenarios 54-60: the legacy expiry arithmetic (isFileExpired, isExpired and
// friends), strict comparisons, global expiry keys and ttl 0.

final class ExpiryTest extends TestCase
{
    public function testMissingOrNegativeMtimeIsExpired(): void
    {
        $h = $this->handler();
        $this->assertTrue($h->isFileExpired('f', -1, -1, time(), null));
        $this->assertTrue($h->isFileExpired('f', false, -1, time(), null));
    }

    public function testWithoutTtl(): void
    {
        $h = $this->handler();
        $now = time();
        $this->assertTrue($h->isFileExpired('f', $now - 3600, $now, $now, null));
        $this->assertFalse($h->isFileExpired('f', $now, $now - 3600, $now, null));
        $this->assertFalse($h->isFileExpired('f', $now, null, $now, null), 'no expiry:');
    }

    public function testWithTtl(): void
    {
        $h = $this->handler();
        $now = time();
        $this->assertFalse($h->isFileExpired('f', $now, -1, $now, 60));
        $this->assertTrue($h->isFileExpired('f', $now - 90, -1, $now, 60));
        $this->assertTrue($h->isFileExpired('f', $now - 90, $now, $now, 60));
        $this->assertFalse($h->isFileExpired('f', $now, $now - 90, $now, 60));
    }

    public function testEqualMtimeAndExpiryIsValid(): void
    {
        $now = time();
        $this->assertFalse($this->handler()->isFileExpired('f', $now, $now, $now, null));
        $this->assertFalse(eZDBFileHandler::fileExpired($now - 60, -1, $now, 60), 'mtime equal to now - ttl:');
    }

    public function testIsExpiredOnAStoredFile(): void
    {
        $handler = $this->handler('fresh.txt');
        $handler->storeContents('x');
        $now = $handler->mtime();
        $this->assertFalse($handler->isExpired($now - 3600, $now, null));
        $this->assertTrue($handler->isExpired($now + 3600, $now, null));
        $this->assertFalse($handler->isExpired(-1, $now, 60));
        $this->assertTrue($handler->isExpired(-1, $now, -60));
        $this->assertFalse($handler->isDBFileExpired(-1, $now, 60));
        $this->assertTrue($this->handler('missing')->isDBFileExpired(-1, $now, null), 'missing row:');
        $this->assertTrue($handler->isLocalFileExpired(-1, $now, null), 'no local copy:');
        $handler->fetch();
        $this->assertFalse($handler->isLocalFileExpired(-1, $now, null));
    }

    public function testGlobalExpiryKeyExpiresCoveredFiles(): void
    {
        $name = $this->path('cache/content/site/2-g.cache');
        $this->cluster()->store($name, 'view', 'viewcache', 'php', time() - 100);
        $handler = new eZDBFileHandler($name);
        $this->assertTrue($handler->exists());
        $this->cluster()->setGlobalExpiry('content-view-cache');
        try {
            $handler->loadMetaData(true);
            $this->assertTrue($handler->isExpired(-1, time(), null));
            $this->assertFalse($handler->exists(), 'a globally expired file does not exist:');
            $generated = 0;
            $value = $handler->processCache(fn ($path) => file_get_contents($path), function () use (&$generated) {
                $generated++;
                return 'regenerated';
            });
            $this->assertSame(['regenerated', 1], [$value, $generated]);
            $this->assertTrue((new eZDBFileHandler($name))->exists(), 'the new entry is newer than the key:');
        } finally {
            $this->forgetGlobalExpiry();
        }
    }

    public function testTtlZeroAlwaysRegenerates(): void
    {
        $handler = $this->handler('ttl0.txt');
        $calls = 0;
        $generate = function () use (&$calls) {
            return 'gen ' . ++$calls;
        };
        $retrieve = fn ($path) => file_get_contents($path);
        $this->assertSame('gen 1', $handler->processCache($retrieve, $generate, 0));
        $this->assertSame('gen 2', $handler->processCache($retrieve, $generate, 0));
        $this->assertSame('gen 3', $this->handler('ttl0.txt')->processCache($retrieve, $generate, 0));
    }
}
