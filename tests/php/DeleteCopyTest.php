<?php
// Spec section 9, scenarios 33-53: existence, soft deletes (one, prefix, dir list, wildcard),
// local copies, copy, link-copy, move, listing and the handler's metadata.

final class DeleteCopyTest extends TestCase
{
    public function testExistsBeforeAndAfterCreation(): void
    {
        $handler = $this->handler('a.txt');
        $this->assertFalse($handler->exists());
        $this->assertFalse($this->handler()->fileExists($this->path('a.txt')));
        $handler->storeContents('a');
        $this->assertTrue($handler->exists());
        $this->assertTrue($this->handler()->fileExists($this->path('a.txt')));
    }

    public function testDeleteIsSoft(): void
    {
        foreach (['handler' => fn ($h, $p) => $h->delete(), 'static' => fn ($h, $p) => $this->handler()->fileDelete($p)] as $how => $delete) {
            $path = $this->path("$how.txt");
            $handler = new eZDBFileHandler($path);
            $handler->storeContents('soft');
            $mtime = $handler->mtime();
            $delete($handler, $path);
            $handler->loadMetaData(true);
            $this->assertFalse($handler->exists(), "$how:");
            $row = $this->legacy()->row($path);
            $this->assertSame([-$mtime, 1], [(int) $row['mtime'], (int) $row['expired']], "$how, row kept:");
            $this->assertSame('soft', $handler->fetchContents(), "$how, content still readable:");
        }
    }

    public function testFileDeleteWithEmptyNamePartDeletesTheDirectory(): void
    {
        $names = [];
        for ($i = 1; $i <= 20; $i++) {
            $names[] = $this->path("dir/file-$i.txt");
            $this->handler()->fileStoreContents(end($names), "$i");
        }
        $this->handler()->fileStoreContents($this->path('dirx/outside.txt'), 'x');
        $this->handler()->fileDelete($this->path('dir'), '');
        foreach ($names as $name) {
            $this->assertFalse($this->handler()->fileExists($name), $name);
        }
        $this->assertTrue($this->handler()->fileExists($this->path('dirx/outside.txt')));
    }

    public function testFileDeleteByNamePart(): void
    {
        for ($i = 1; $i <= 10; $i++) {
            $this->handler()->fileStoreContents($this->path("p/file-$i.txt"), 'f');
            $this->handler()->fileStoreContents($this->path("p/otherfile-$i.txt"), 'o');
        }
        $this->handler()->fileStoreContents($this->path('p/aXb.txt'), 'x');
        $this->handler()->fileDelete($this->path('p'), 'file');
        $this->handler()->fileDelete($this->path('p'), 'a_b');
        for ($i = 1; $i <= 10; $i++) {
            $this->assertFalse($this->handler()->fileExists($this->path("p/file-$i.txt")));
            $this->assertTrue($this->handler()->fileExists($this->path("p/otherfile-$i.txt")));
        }
        $this->assertTrue($this->handler()->fileExists($this->path('p/aXb.txt')), 'underscore is literal:');
    }

    public function testFileDeleteByDirList(): void
    {
        foreach ([1, 2, 3] as $folder) {
            for ($i = 1; $i <= 5; $i++) {
                $this->handler()->fileStoreContents($this->path("folder$folder/fileToDelete-$i"), 'd');
                $this->handler()->fileStoreContents($this->path("folder$folder/fileToKeep-$i"), 'k');
            }
        }
        $this->handler()->fileDeleteByDirList(['folder1', 'folder2', 'folder3'], $this->prefix, 'fileToDelete');
        $deleted = $kept = 0;
        foreach ([1, 2, 3] as $folder) {
            for ($i = 1; $i <= 5; $i++) {
                $deleted += !$this->handler()->fileExists($this->path("folder$folder/fileToDelete-$i"));
                $kept += $this->handler()->fileExists($this->path("folder$folder/fileToKeep-$i"));
            }
        }
        $this->assertSame([15, 15], [$deleted, $kept]);
    }

    public function testFileDeleteByDirListUnderViewCacheUsesTheTrunk(): void
    {
        $common = $this->prefix . '/cache/content';
        $node2 = ["$common/site/2-aaa.cache", "$common/site/2-bbb.cache"];
        $node21 = "$common/site/21-ccc.cache";
        foreach ([...$node2, $node21] as $name) {
            $this->handler()->fileStoreContents($name, 'view', 'viewcache', 'php');
        }
        $this->handler()->fileDeleteByDirList(['site'], $common, '2-');
        foreach ($node2 as $name) {
            $this->assertFalse($this->handler()->fileExists($name), $name);
        }
        $this->assertTrue($this->handler()->fileExists($node21), 'node 21 kept:');
    }

    public function testFileDeleteByWildcard(): void
    {
        foreach (['a.txt', 'a.php', 'aXtxt'] as $name) {
            $this->handler()->fileStoreContents($this->path("w/$name"), $name);
        }
        $this->handler()->fileDeleteByWildcard($this->path('w/*.txt'));
        $this->assertFalse($this->handler()->fileExists($this->path('w/a.txt')));
        $this->assertTrue($this->handler()->fileExists($this->path('w/a.php')));
        $this->assertTrue($this->handler()->fileExists($this->path('w/aXtxt')), 'the dot is literal:');
    }

    public function testBulkDeletesCleanTheirPaths(): void
    {
        // Legacy cleans the wildcard, the dir list, the common path and suffix, and the name part.
        foreach (['w/a.txt', 'd/sub/file-1.txt', 'p/sub/file-1.txt'] as $name) {
            $this->handler()->fileStoreContents($this->path($name), $name);
        }
        $this->handler()->fileDeleteByWildcard($this->prefix . '//w\\*.txt');
        $this->assertFalse($this->handler()->fileExists($this->path('w/a.txt')), 'wildcard:');
        $this->handler()->fileDeleteByDirList(['sub/'], $this->prefix . '/d/', 'file');
        $this->assertFalse($this->handler()->fileExists($this->path('d/sub/file-1.txt')), 'dir list:');
        $this->handler()->fileDelete($this->path('p'), 'sub//file');
        $this->assertFalse($this->handler()->fileExists($this->path('p/sub/file-1.txt')), 'name part:');
    }

    public function testDeletingAMissingPathCreatesNothing(): void
    {
        $this->assertTrue($this->handler()->fileDelete($this->path('never.txt')));
        $this->assertNull($this->legacy()->row($this->path('never.txt')));
        $this->assertSame([], $this->logs);
    }

    public function testDeletedFileStillGivesItsContent(): void
    {
        $handler = $this->handler('stale.txt');
        $handler->storeContents('old bytes');
        $handler->delete();
        $this->assertSame('old bytes', $handler->fetchContents());
        $this->assertFalse($handler->exists());
    }

    public function testDeleteLocal(): void
    {
        $handler = $this->handler('deep/er/local.txt');
        $handler->storeContents('l');
        $handler->fetch();
        $this->assertFileContent('l', $this->path('deep/er/local.txt'));
        $handler->deleteLocal();
        $this->assertNoFile($this->path('deep/er/local.txt'));
        $this->assertNoFile($this->path('deep'), 'empty parents removed:');
        $this->assertTrue($handler->exists(), 'database untouched:');
        $this->handler()->fileFetch($this->path('deep/er/local.txt'));
        $this->handler()->fileDeleteLocal($this->path('deep/er/local.txt'));
        $this->assertNoFile($this->path('deep/er/local.txt'));
    }

    public function testRestoringADeletedPath(): void
    {
        $handler = $this->handler('again.txt');
        $handler->storeContents('1');
        $handler->delete();
        $handler->storeContents('2');
        $row = $this->legacy()->row($this->path('again.txt'));
        $this->assertTrue((int) $row['mtime'] > 0 && (int) $row['expired'] === 0, 'live again:');
        $this->assertTrue($handler->exists());
    }

    public function testFileCopyKeepsEverything(): void
    {
        $src = $this->path('cache/content/s/2-src.cache');
        $dst = $this->path('cache/content/s/3-dst.cache');
        $bytes = random_bytes(150000);
        $this->cluster()->store($src, $bytes, 'viewcache', 'php', 1600000000);
        $this->assertTrue($this->handler()->fileCopy($src, $dst));
        $this->assertTrue($this->handler()->fileExists($src));
        $this->assertTrue($this->handler()->fileExists($dst));
        $copy = (new eZDBFileHandler($dst))->stat();
        $this->assertSame(['viewcache', 'php', '150000', '1600000000', $this->path('cache/content/s/3-')],
            [$copy['scope'], $copy['datatype'], $copy['size'], $copy['mtime'], $copy['name_trunk']]);
        $this->assertBytes($bytes, $this->handler()->fileFetchContents($dst));
        $this->assertSame($this->path('cache/content/s/3-'), $this->legacy()->row($dst)['name_trunk']);
    }

    public function testFileCopyOverALargerFileAndFromAMissingOne(): void
    {
        $this->handler()->fileStoreContents($this->path('big'), random_bytes(200000));
        $this->handler()->fileStoreContents($this->path('small'), 'small');
        $this->handler()->fileCopy($this->path('small'), $this->path('big'));
        $this->assertSame('small', $this->handler()->fileFetchContents($this->path('big')));
        $this->assertSame(1, count($this->legacy()->chunks($this->path('big'))));
        $this->assertFalse($this->handler()->fileCopy($this->path('missing'), $this->path('big')));
        $this->assertSame('small', $this->handler()->fileFetchContents($this->path('big')));
        $this->assertTrue(str_contains(implode("\n", $this->logs), 'missing'), 'reported:');
    }

    public function testFileLinkCopyIsACopy(): void
    {
        $this->handler()->fileStoreContents($this->path('l1'), 'link');
        $this->assertTrue($this->handler()->fileLinkCopy($this->path('l1'), $this->path('l2'), true));
        $this->assertSame('link', $this->handler()->fileFetchContents($this->path('l2')));
    }

    public function testFileMoveAndMove(): void
    {
        $this->handler()->fileStoreContents($this->path('m1'), 'moved');
        $this->assertTrue($this->handler()->fileMove($this->path('m1'), $this->path('m2')));
        $this->assertFalse($this->handler()->fileExists($this->path('m1')));
        $this->assertSame('moved', $this->handler()->fileFetchContents($this->path('m2')));
        $handler = $this->handler('m2');
        $this->assertTrue($handler->move($this->path('m3')));
        $this->assertFalse($this->handler()->fileExists($this->path('m2')));
        $this->assertSame($this->path('m3'), $handler->name(), 'the handler follows the move:');
        $this->assertSame('moved', $handler->fetchContents());
    }

    public function testFileMoveOntoADeletedDestination(): void
    {
        $this->handler()->fileStoreContents($this->path('dst'), random_bytes(100000));
        $this->handler()->fileDelete($this->path('dst'));
        $this->handler()->fileStoreContents($this->path('src'), 'new');
        $this->assertTrue($this->handler()->fileMove($this->path('src'), $this->path('dst')));
        $this->assertSame('new', $this->handler()->fileFetchContents($this->path('dst')));
        $this->assertSame([['offset' => 0, 'length' => 3]], $this->legacy()->chunks($this->path('dst')));
        $this->assertTrue($this->handler()->fileMove($this->path('dst'), $this->path('dst')), 'same path:');
        $this->assertSame('new', $this->handler()->fileFetchContents($this->path('dst')));
        $this->assertFalse($this->handler()->fileMove($this->path('nothing'), $this->path('dst')));
    }

    public function testGetFileListByScope(): void
    {
        $this->handler()->fileStoreContents($this->path('i.png'), 'i', 'image', 'image/png');
        $this->handler()->fileStoreContents($this->path('f.pdf'), 'f', 'binaryfile', 'application/pdf');
        $mine = fn (array $names) => array_values(array_filter($names, fn ($n) => str_starts_with($n, $this->prefix)));
        $this->assertSame([$this->path('i.png')], $mine($this->handler()->getFileList(['image'])));
        $this->assertSame([$this->path('f.pdf')], $mine($this->handler()->getFileList(['image'], true)));
        $this->assertSame([$this->path('f.pdf'), $this->path('i.png')], $mine($this->handler()->getFileList()));
    }

    public function testMetadataOfManyHandlers(): void
    {
        $handlers = [];
        for ($i = 0; $i < eZDBFileHandler::INFOCACHE_MAX + 10; $i++) {
            $this->cluster()->store($this->path("meta/$i"), "$i");
            $handlers[] = $this->handler("meta/$i");
        }
        foreach ($handlers as $i => $handler) {
            $this->assertSame(strlen("$i"), $handler->size());
        }
        foreach ($handlers as $i => $handler) {
            $handler->loadMetaData(true);
            $this->assertSame($this->path("meta/$i"), $handler->metaData['name']);
        }
    }

    public function testOwnWritesRefreshTheMetadata(): void
    {
        $handler = $this->handler('own.txt');
        $handler->storeContents('1');
        $this->assertSame('1', $handler->metaData['size']);
        $handler->storeContents('12345');
        $this->assertSame('5', $handler->metaData['size'], 'no stale size:');
        $handler->delete();
        $this->assertTrue($handler->metaData['mtime'] < 0, 'no stale mtime:');
    }
}
