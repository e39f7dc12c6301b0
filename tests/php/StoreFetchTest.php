<?php
// Spec section 9, scenarios 9-32: storing from memory and from local files, chunk layout,
// overwrites, empty content, fetching to local files, permissions, integrity and snapshots.

final class StoreFetchTest extends TestCase
{
    private const C = 65535;

    public function testStoreContentsSetsSizeAndMtime(): void
    {
        $handler = $this->handler('md5.txt');
        $this->assertNull($handler->size());
        $this->assertNull($handler->mtime());
        $handler->storeContents(md5('x'));
        $this->assertSame(32, $handler->size());
        $this->assertTrue(is_int($handler->mtime()) && $handler->mtime() > 0, 'mtime is an integer:');
    }

    public function testFileStoreContentsThenExists(): void
    {
        $path = $this->path('a.txt');
        $this->assertTrue($this->handler()->fileStoreContents($path, 'data', 'test', 'text/plain'));
        $this->assertTrue($this->handler()->fileExists($path));
    }

    public function testStoreContentsThenFetchContents(): void
    {
        $handler = $this->handler('b.txt');
        $handler->storeContents('some data', 'test', 'plain/text');
        $this->assertSame('some data', $handler->fetchContents());
        $this->assertSame(['test', 'plain/text'], [$handler->stat()['scope'], $handler->stat()['datatype']]);
    }

    public function testStoreContentsLocally(): void
    {
        $handler = $this->handler('local/c.txt');
        $handler->storeContents('local bytes', 'test', 'text/plain', true);
        $this->assertFileContent('local bytes', $this->path('local/c.txt'));
    }

    public function testFileStoreWithDelete(): void
    {
        $local = $this->localFile('d.txt', 'stored then removed');
        $this->assertTrue($this->handler()->fileStore($local, 'test', true, 'text/plain'));
        $row = $this->handler('d.txt')->stat();
        $this->assertSame(['test', 'text/plain', '19'], [$row['scope'], $row['datatype'], $row['size']]);
        $this->assertNoFile($local, 'the local file is removed:');
    }

    public function testFileStoreKeepsTheLocalFile(): void
    {
        $local = $this->localFile('e.txt', 'kept');
        $this->assertTrue($this->handler()->fileStore($local, 'test', false, 'text/plain'));
        $this->assertTrue($this->handler()->fileExists($local));
        $this->assertFileContent('kept', $local);
        $this->assertSame(filemtime($local), $this->handler('e.txt')->mtime(), 'the local mtime is stored:');
    }

    public function testFileStoreDefaultsAndMissingFile(): void
    {
        $local = $this->localFile('f.txt', 'x');
        $this->handler()->fileStore($local);
        $row = $this->handler('f.txt')->stat();
        $this->assertSame(['UNKNOWN_SCOPE', 'misc'], [$row['scope'], $row['datatype']]);

        $missing = $this->path('missing.txt');
        $this->assertFalse($this->handler()->fileStore($missing, 'test', true));
        $this->assertFalse($this->handler()->fileExists($missing));
        $this->assertTrue(str_contains(implode("\n", $this->logs), 'missing.txt'), 'the error names the file:');
    }

    public function testFailedFileStoreKeepsTheLocalFile(): void
    {
        $local = $this->localFile('g.txt', 'precious');
        $this->assertFalse($this->handler()->fileStore($local, str_repeat('s', 40), true), 'a 40-character scope is refused:');
        $this->assertFileContent('precious', $local, 'the local file is kept:');
        $this->assertFalse($this->handler()->fileExists($local));
        $this->assertTrue($this->logs !== [], 'the failure is logged:');
    }

    public function testChunksOf3CPlus17(): void
    {
        $bytes = random_bytes(3 * self::C + 17);
        $this->handler()->fileStoreContents($this->path('h.bin'), $bytes);
        $this->assertSame([0, self::C, 2 * self::C, 3 * self::C], array_column($this->legacy()->chunks($this->path('h.bin')), 'offset'));
        $this->assertBytes($bytes, $this->handler()->fileFetchContents($this->path('h.bin')));
    }

    public function testExactly2C(): void
    {
        $bytes = random_bytes(2 * self::C);
        $this->handler()->fileStoreContents($this->path('i.bin'), $bytes);
        $this->assertBytes($bytes, $this->handler()->fileFetchContents($this->path('i.bin')));
        foreach ($this->legacy()->chunks($this->path('i.bin')) as $chunk) {
            $this->assertTrue($chunk['offset'] < 2 * self::C || $chunk['length'] === 0, 'no data at or after 2C:');
        }
    }

    public function testOverwriteWithExactlyCBytes(): void
    {
        $path = $this->path('j.bin');
        $this->handler()->fileStoreContents($path, random_bytes(2 * self::C + 5));
        $bytes = random_bytes(self::C);
        $this->handler()->fileStoreContents($path, $bytes);
        $this->assertBytes($bytes, $this->handler()->fileFetchContents($path));
        $this->assertSame([0], array_column($this->legacy()->chunks($path), 'offset'));
    }

    public function testOverwriteLargeWithSmallAndOtherChunkSize(): void
    {
        $path = $this->path('k.bin');
        $this->legacy(1000)->storeContents($path, random_bytes(10500));
        $this->assertSame(11, count($this->legacy()->chunks($path)));
        $bytes = random_bytes(3000);
        $this->handler()->fileStoreContents($path, $bytes);
        $this->assertSame([['offset' => 0, 'length' => 3000]], $this->legacy()->chunks($path));
        $this->assertBytes($bytes, $this->handler()->fileFetchContents($path));
    }

    public function testEmptyContent(): void
    {
        $handler = $this->handler('empty.txt');
        $this->assertTrue($handler->storeContents(''));
        $this->assertSame('', $handler->fetchContents());
        $this->assertSame($this->path('empty.txt'), $handler->fetch());
        $this->assertFileContent('', $this->path('empty.txt'));
    }

    public function testFileFetch(): void
    {
        $path = $this->path('dir/l.txt');
        $this->handler()->fileStoreContents($path, 'fetched');
        $this->assertSame($path, $this->handler()->fileFetch($path));
        $this->assertFileContent('fetched', $path);
        $missing = $this->path('dir/none.txt');
        $this->assertFalse($this->handler()->fileFetch($missing));
        $this->assertNoFile($missing);
    }

    public function testFetch(): void
    {
        $handler = $this->handler('m.txt');
        $handler->storeContents('m');
        $handler->fetch();
        $this->assertFileContent('m', $this->path('m.txt'));
        $this->assertFalse($this->handler('none.txt')->fetch());
        $this->assertNoFile($this->path('none.txt'));
    }

    public function testFetchKeepsAFreshLocalCopy(): void
    {
        $handler = $this->handler('n.txt');
        $handler->storeContents('in the database');
        $handler->fetch();
        file_put_contents($this->path('n.txt'), 'local edit!!!!!'); // same size, newer
        $handler->fetch(true);
        $this->assertFileContent('local edit!!!!!', $this->path('n.txt'), 'kept:');
    }

    public function testFetchReplacesAStaleLocalCopy(): void
    {
        $handler = $this->handler('o.txt');
        $handler->storeContents('in the database');
        $this->localFile('o.txt', 'other size');
        $handler->fetch(true);
        $this->assertFileContent('in the database', $this->path('o.txt'), 'different size:');
        file_put_contents($this->path('o.txt'), 'same size,  old');
        touch($this->path('o.txt'), $handler->mtime() - 100);
        $handler->fetch(true);
        $this->assertFileContent('in the database', $this->path('o.txt'), 'older:');
    }

    public function testFetchWithLocalCacheAsksTheDatabase(): void
    {
        // Legacy fetch(true) compares the local copy with the row as it is now, not as this
        // handler last saw it.
        $handler = $this->handler('q.txt');
        $handler->storeContents('version 1');
        $handler->fetch();
        $this->cluster()->store($this->path('q.txt'), 'version 2', '', '', time() + 100);
        $handler->fetch(true);
        $this->assertFileContent('version 2', $this->path('q.txt'), 'a newer row is downloaded:');
    }

    public function testFetchUnique(): void
    {
        $handler = $this->handler('p.jpg');
        $handler->storeContents('unique');
        $unique = $handler->fetchUnique();
        $this->assertTrue($unique !== $this->path('p.jpg') && str_ends_with($unique, '.jpg'), "a different name ($unique):");
        $this->assertFileContent('unique', $unique);
        $this->assertTrue($unique !== $handler->fetchUnique(), 'every call gives a new name:');
    }

    public function testFetchContents(): void
    {
        $this->handler()->fileStoreContents($this->path('q.txt'), 'q');
        $this->assertSame('q', $this->handler()->fileFetchContents($this->path('q.txt')));
        $this->assertSame('q', $this->handler('q.txt')->fetchContents());
        $this->assertFalse($this->handler()->fileFetchContents($this->path('none')));
        $this->assertFalse($this->handler('none')->fetchContents());
    }

    public function testChunkGapIsAnErrorAndKeepsTheLocalCopy(): void
    {
        $path = $this->path('gap.bin');
        $this->handler()->fileStoreContents($path, random_bytes(3 * self::C));
        $this->handler()->fileFetch($path);
        $good = file_get_contents($path);
        self::$db->query('DELETE FROM ezdbfile_data WHERE name_hash = ? AND `offset` = ?', [md5($path), self::C]);
        $this->assertFalse($this->handler()->fileFetchContents($path));
        $this->assertFalse($this->handler()->fileFetch($path));
        $this->assertFileContent($good, $path, 'the previous local copy is intact:');
        $this->assertTrue(str_contains(implode("\n", $this->logs), 'EZDB_INTEGRITY'), 'an integrity error is logged:');
    }

    public function testFetchedFilesGetStorageFilePermissions(): void
    {
        $old = umask(0077);
        try {
            $path = $this->path('perm.txt');
            $this->handler()->fileStoreContents($path, 'p');
            $this->handler()->fileFetch($path);
            clearstatcache();
            $this->assertSame('0666', sprintf('%04o', fileperms($path) & 0777));
            $this->configure(['StorageFilePermissions' => '0640']);
            $this->handler()->fileFetch($path);
            clearstatcache();
            $this->assertSame('0640', sprintf('%04o', fileperms($path) & 0777));
        } finally {
            umask($old);
        }
    }

    public function testConcurrentOverwriteNeverMixesVersions(): void
    {
        $path = $this->path('race.bin');
        $versions = [str_repeat('a', 300000), str_repeat('b', 200000)];
        $this->handler()->fileStoreContents($path, $versions[0]);
        $writer = $this->spawn(function () use ($path, $versions) {
            for ($i = 0; $i < 100; $i++) {
                (new eZDBFileHandler())->fileStoreContents($path, $versions[$i % 2]);
            }
        });
        $reads = 0;
        while (pcntl_waitpid($writer, $status, WNOHANG) === 0) {
            $read = $this->handler()->fileFetchContents($path);
            $this->assertTrue(in_array($read, $versions, true), 'a complete version:');
            $reads++;
        }
        $this->assertSame(0, pcntl_wexitstatus($status), 'the writer succeeded:');
        $this->assertTrue($reads > 10, "$reads reads during the writes:");
    }

    public function testStatIsMetaDataAndNameIsThePath(): void
    {
        $handler = $this->handler('r.txt');
        $handler->storeContents('r', 'test', 'text/plain');
        $this->assertSame($handler->metaData, $handler->stat());
        $this->assertSame($this->path('r.txt'), $handler->name());
        $this->assertFalse($this->handler('none')->stat());
    }

    private function localFile(string $relative, string $content): string
    {
        $path = $this->path($relative);
        @mkdir(dirname($path), 0777, true);
        file_put_contents($path, $content);
        return $path;
    }
}
