<?php
// The PHP-FPM set-up in a CLI process: php/install.php writes the ffi.preload header, and a PHP
// started with ffi.preload + opcache.preload uses FFI::scope("ezdb") in itself and in forked workers.

final class PreloadTest extends TestCase
{
    public function testInstalledHeaderPreloadsAndWorkersFork(): void
    {
        $repo = dirname(__DIR__, 2);
        $header = "$this->dir/ezdb-php.h";
        $install = $this->php(['php/install.php', '--library=' . getenv('EZDB_LIBRARY'), "--header=$header"], $repo);
        $this->assertTrue(str_contains($install, "ffi.preload=$header"), $install);
        $this->assertTrue(str_starts_with(file_get_contents($header), "#define FFI_SCOPE \"ezdb\"\n#define FFI_LIB \"/"), 'defines first, absolute path:');

        $worker = <<<'PHP'
            require getenv('EZDB_PHP') . '/autoload.php';
            // EZDB_LIBRARY names no file: only the preloaded scope can load the library.
            $parts = [Ezdb\Library::ffi() instanceof FFI ? 'scope' : '?', class_exists('Ezdb\Cluster', false) ? 'preloaded' : 'not preloaded'];
            $cluster = Ezdb\Cluster::open(getenv('EZDB_URL'));
            $cluster->store(getenv('EZDB_NAME') . '/master', 'm');
            for ($i = 0; $i < 3; $i++) {
                if (pcntl_fork() === 0) {
                    $cluster->store(getenv('EZDB_NAME') . "/worker-$i", $cluster->fetch(getenv('EZDB_NAME') . '/master') . $i);
                    exit(0);
                }
            }
            while (pcntl_wait($status) > 0) {
            }
            for ($i = 0; $i < 3; $i++) {
                $parts[] = $cluster->fetch(getenv('EZDB_NAME') . "/worker-$i");
            }
            echo implode(' ', $parts);
            PHP;
        $output = $this->php(['-d', 'ffi.enable=preload', '-d', "ffi.preload=$header", '-d', 'opcache.enable_cli=1', '-d', "opcache.preload=$repo/php/preload.php",
            '-d', 'opcache.preload_user=' . posix_getpwuid(posix_geteuid())['name'], '-r', $worker], $this->dir, [
            'EZDB_PHP' => "$repo/php", 'EZDB_URL' => self::$db->url, 'EZDB_NAME' => $this->prefix, 'EZDB_LIBRARY' => '/nonexistent/libezdb.so',
        ]);
        $this->assertSame('scope preloaded m0 m1 m2', $output);
    }

    /** Runs PHP with $args in $cwd; returns its output (stderr included). */
    private function php(array $args, string $cwd, array $env = []): string
    {
        $command = array_merge([PHP_BINARY], $args);
        $process = proc_open($command, [1 => ['pipe', 'w'], 2 => ['redirect', 1]], $pipes, $cwd, $env + getenv());
        $output = stream_get_contents($pipes[1]);
        fclose($pipes[1]);
        $status = proc_close($process);
        $this->assertSame(0, $status, "php exited with $status: $output");
        return trim($output);
    }
}
