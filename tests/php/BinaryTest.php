<?php
// Binary safety through PHP FFI: NUL bytes, all 256 byte values, and a 20 MB file stored from
// memory and from a local file, fetched as a string and to a local file.

final class BinaryTest extends TestCase
{
    public function testAll256ByteValuesAndNuls(): void
    {
        $bytes = '';
        for ($i = 0; $i < 256; $i++) {
            $bytes .= chr($i);
        }
        $bytes = "\0\0" . str_repeat($bytes, 300) . "\0";
        $handler = $this->handler('bin/all.bin');
        $this->assertTrue($handler->storeContents($bytes, 'binaryfile', 'application/octet-stream'));
        $this->assertBytes($bytes, $handler->fetchContents());
        $this->assertSame(strlen($bytes), $handler->size());
        $this->assertSame($this->path('bin/all.bin'), $handler->fetch());
        $this->assertFileContent($bytes, $this->path('bin/all.bin'));
        $this->assertBytes($bytes, $this->legacy()->fetchContents($this->path('bin/all.bin')), 'legacy SQL reads the same bytes:');
        ob_start();
        $handler->passthrough(1, 300);
        $this->assertBytes(substr($bytes, 1, 300), ob_get_clean(), 'passthrough range:');
    }

    public function testTwentyMegabytes(): void
    {
        $bytes = random_bytes(20 * 1024 * 1024);
        $name = $this->path('big/20mb.bin');
        $started = microtime(true);
        $this->assertTrue($this->handler()->fileStoreContents($name, $bytes, 'binaryfile', 'application/zip'));
        $this->assertBytes($bytes, $this->handler()->fileFetchContents($name));
        $this->assertSame($name, $this->handler()->fileFetch($name));
        $this->assertSame(md5($bytes), md5_file($name), 'fetched to a file:');
        $this->assertSame(321, count($this->legacy()->chunks($name)), 'chunks of 65535 bytes:');

        $local = $this->path('big/local-20mb.bin');
        copy($name, $local);
        $this->assertTrue($this->handler()->fileStore($local, 'binaryfile', true, 'application/zip'));
        $this->assertNoFile($local);
        $this->assertSame($local, $this->handler()->fileFetch($local));
        $this->assertSame(md5($bytes), md5_file($local), 'stored from a local file and fetched back:');
        ob_start();
        $this->handler('big/20mb.bin')->passthrough();
        $this->assertSame(md5($bytes), md5(ob_get_clean()), 'passthrough of the whole file:');
        $this->assertTrue(microtime(true) - $started < 60);
    }
}
