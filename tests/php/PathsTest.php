<?php
// Spec section 9, scenarios 1-8: path cleaning, name_hash, name_trunk and cacheType, awkward
// characters and long names, and rows that legacy SQL finds (and vice versa).

final class PathsTest extends TestCase
{
    public function testCleanPathNormalisesSeparators(): void
    {
        $this->assertSame('path/with/backslashes.txt', eZDBFileHandler::cleanPath('path\\with\\backslashes.txt'));
        $this->assertSame('path/with/multiple/slashes.txt', eZDBFileHandler::cleanPath('path//with///multiple/slashes.txt'));
        $this->assertSame('path/with/ending/slash', eZDBFileHandler::cleanPath('path/with/ending/slash/'));
        $this->assertSame(false, eZDBFileHandler::cleanPath(false));
        $this->assertSame('a/b', $this->handlerName('a\\\\//b/'));
    }

    private function handlerName(string $path): string
    {
        return (new eZDBFileHandler($path))->name();
    }

    public function testNameHashIsMd5AndLegacySqlFindsTheRow(): void
    {
        $name = $this->path('file.txt');
        $this->handler()->fileStoreContents($name, 'data');
        $row = $this->legacy()->row($name);
        $this->assertSame(md5($name), $row['name_hash']);
        $this->assertSame($name, $row['name']);
    }

    public function testViewCacheTrunkAndCacheType(): void
    {
        $name = 'var/plain_site/cache/content/plain_site/2-a54e7f5dba0d9df9de22904d309754b8.cache';
        $this->assertTrunk($name, 'viewcache', 'var/plain_site/cache/content/plain_site/2-', 'viewcache');
    }

    public function testTemplateBlockTrunkAndCacheType(): void
    {
        $name = 'var/plain_site/cache/template-block/subtree/1/cache/1/1/0/110322645.cache';
        $this->assertTrunk($name, 'template-block', 'var/plain_site/cache/template-block/subtree/1/cache/', 'cacheblock');
    }

    public function testOtherScopesTrunkIsTheName(): void
    {
        $name = 'var/plain_site/cache/classidentifiers_fc45e0fb5d4ee89b8e8e64b4d2ecd7cf.php';
        $this->assertTrunk($name, 'classidentifiers', $name, 'misc');
    }

    private function assertTrunk(string $name, string $scope, string $trunk, string $cacheType): void
    {
        $handler = new eZDBFileHandler($name);
        $this->assertTrue($handler->storeContents('x', $scope, 'php'));
        $this->assertSame($trunk, $this->legacy()->row($name)['name_trunk']);
        $this->assertSame($trunk, LegacyNode::nameTrunk($name, $scope), 'the legacy rule agrees:');
        $this->assertSame($cacheType, $handler->cacheType);
        $handler->purge();
    }

    public function testAwkwardCharactersRoundTrip(): void
    {
        $name = $this->path("it's \"quoted\" 100% a_b c/ünïcødé ✓.txt");
        $handler = new eZDBFileHandler($name);
        $this->assertTrue($handler->storeContents('awkward', 'test', 'text/plain'));
        $this->assertTrue($handler->exists());
        $this->assertSame('awkward', $handler->fetchContents());
        $this->assertSame('awkward', $this->legacy()->fetchContents($name), 'legacy SQL (MD5 in SQL) reads it:');
        $this->assertSame($name, $handler->fetch());
        $this->assertFileContent('awkward', $name);
        $this->assertFalse($this->handler()->fileExists($this->path("it's \"quoted\" 100% aXb c/ünïcødé ✓.txt")), '_ and % are literal:');
        $handler->delete();
        $this->assertFalse((new eZDBFileHandler($name))->exists());
    }

    public function testLegacyRowsAndOursShareOneLayout(): void
    {
        $legacy = $this->legacy();
        $theirs = $this->path('legacy-written.bin');
        $legacy->storeContents($theirs, random_bytes(70000), 'binaryfile', 'application/pdf', 1700000000);
        $handler = new eZDBFileHandler($theirs);
        $this->assertSame($legacy->fetchContents($theirs), $handler->fetchContents());
        $this->assertSame(['datatype' => 'application/pdf', 'name' => $theirs, 'name_trunk' => $theirs, 'name_hash' => md5($theirs),
            'scope' => 'binaryfile', 'size' => '70000', 'mtime' => '1700000000', 'expired' => '0'], $handler->stat());
        $this->assertSame($legacy->loadMetaData($theirs), $handler->stat(), 'every key, type and value of the legacy row:');

        $ours = $this->path('ours.bin');
        $bytes = random_bytes(140000);
        $this->handler()->fileStoreContents($ours, $bytes, 'image', 'image/png');
        $this->assertBytes($bytes, $legacy->fetchContents($ours));
        $this->assertSame([['offset' => 0, 'length' => 65535], ['offset' => 65535, 'length' => 65535], ['offset' => 131070, 'length' => 8930]],
            $legacy->chunks($ours));
        $row = $legacy->row($ours);
        $this->assertSame(['image', 'image/png', 140000, 0, $ours], [$row['scope'], $row['datatype'], $row['size'], $row['expired'], $row['name_trunk']]);
        $this->assertTrue($legacy->exists($ours));
    }

    public function testLongPathOf1000Bytes(): void
    {
        $name = $this->path(str_repeat('d/', 200));
        $name .= str_repeat('x', 1000 - strlen($name));
        $this->assertSame(1000, strlen($name));
        $this->assertTrue($this->handler()->fileStoreContents($name, 'long'));
        $this->assertTrue($this->handler()->fileExists($name));
        $this->assertSame('long', $this->handler()->fileFetchContents($name));
    }
}
