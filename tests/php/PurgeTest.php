<?php
// Spec section 9, scenarios 98-102: purging rows physically (soft-deleted ones, or all older
// than an expiry), with their chunks and local copies.

final class PurgeTest extends TestCase
{
    public function testDeleteThenPurge(): void
    {
        $handler = $this->handler('p.txt');
        $handler->storeContents('p');
        $handler->fetch();
        $handler->delete();
        $this->assertTrue($handler->purge());
        $handler->loadMetaData(true);
        $this->assertFalse($handler->metaData);
        $this->assertNoFile($this->path('p.txt'));
    }

    public function testPurgeADirectory(): void
    {
        for ($i = 0; $i < 10; $i++) {
            $this->handler()->fileStoreContents($this->path("dir/set1/$i"), "$i");
            $this->handler()->fileFetch($this->path("dir/set1/$i"));
            $this->handler()->fileDelete($this->path("dir/set1/$i"));
        }
        for ($i = 0; $i < 5; $i++) {
            $this->handler()->fileStoreContents($this->path("dir/set2/$i"), "$i");
            $this->handler()->fileFetch($this->path("dir/set2/$i"));
        }
        $reported = [];
        $this->handler('dir/set1')->purge(function ($path, $count) use (&$reported) {
            $reported[] = [$path, $count];
        });
        $this->assertSame([[$this->path('dir/set1'), 10], [$this->path('dir/set1'), 0]], $reported,
            'a report per pass, the last one empty, as legacy:');
        for ($i = 0; $i < 10; $i++) {
            $this->assertNull($this->legacy()->row($this->path("dir/set1/$i")));
        }
        $this->assertNoFile($this->path('dir/set1'));
        for ($i = 0; $i < 5; $i++) {
            $this->assertTrue($this->handler()->fileExists($this->path("dir/set2/$i")));
            $this->assertFileContent("$i", $this->path("dir/set2/$i"));
        }
    }

    public function testPurgeWithAndWithoutExpiry(): void
    {
        $this->cluster()->store($this->path('e/live-old'), 'x', '', '', time() - 100);
        $this->cluster()->store($this->path('e/live-new'), 'y', '', '', time() + 100);
        $this->handler('e')->purge();
        $this->assertTrue($this->handler()->fileExists($this->path('e/live-old')), 'live rows stay without expiry:');
        $this->handler('e')->purge(false, false, false, time());
        $this->assertNull($this->legacy()->row($this->path('e/live-old')), 'older than the expiry: gone:');
        $this->assertTrue($this->handler()->fileExists($this->path('e/live-new')));
    }

    public function testPurgeInSmallBatches(): void
    {
        for ($i = 0; $i < 10; $i++) {
            $this->handler()->fileStoreContents($this->path("b/$i"), random_bytes(70000));
            $this->handler()->fileDelete($this->path("b/$i"));
        }
        $counts = [];
        $this->handler('b')->purge(function ($path, $count) use (&$counts) {
            $counts[] = $count;
        }, 1000, 3);
        $this->assertSame([3, 3, 3, 1, 0], $counts, 'one report per batch of $max:');
        $left = self::$db->query('SELECT COUNT(*) AS n FROM ezdbfile_data d LEFT JOIN ezdbfile f ON f.name_hash = d.name_hash WHERE f.name_hash IS NULL');
        $this->assertSame(0, (int) $left[0]['n'], 'no chunk left behind:');
        $this->assertSame(0, (int) self::$db->query('SELECT COUNT(*) AS n FROM ezdbfile WHERE name LIKE ?', [$this->path('b/%')])[0]['n']);
    }
}
