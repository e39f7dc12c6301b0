<?php
// The library under a real PHP-FPM: ffi.enable=preload, the header from php/install.php in
// ffi.preload, opcache.preload, three forked workers, requests sent over FastCGI (cgi-fcgi).

final class FpmTest extends TestCase
{
    public function testWorkersForkedFromAPreloadingMasterShareOneGenerationAndKeepTheirConnection(): void
    {
        $repo = dirname(__DIR__, 2);
        $fpm = trim((string) shell_exec('command -v php-fpm8.2'));
        $client = trim((string) shell_exec('command -v cgi-fcgi'));
        $this->assertTrue($fpm !== '' && $client !== '', 'php-fpm8.2 and cgi-fcgi are needed (Debian: php8.2-fpm libfcgi-bin; scripts/test-php.sh installs them)');
        $header = "$this->dir/ezdb-php.h";
        exec(escapeshellarg(PHP_BINARY) . ' ' . escapeshellarg("$repo/php/install.php") . ' --library=' . escapeshellarg(getenv('EZDB_LIBRARY')) . ' --header=' . escapeshellarg($header), $out, $status);
        $this->assertSame(0, $status, implode("\n", $out));
        $port = $this->freePort();
        file_put_contents("$this->dir/fpm.conf", "[global]\npid = $this->dir/fpm.pid\nerror_log = $this->dir/fpm.log\ndaemonize = no\n"
            . "[www]\nlisten = 127.0.0.1:$port\npm = static\npm.max_children = 3\nclear_env = no\n");
        $user = posix_getpwuid(posix_geteuid())['name'];
        file_put_contents("$this->dir/php.ini", "ffi.enable=preload\nffi.preload=$header\nzend_extension=opcache\nopcache.enable=1\n"
            . "opcache.preload=$repo/php/preload.php\nopcache.preload_user=$user\n");
        file_put_contents("$this->dir/request.php", <<<'PHP'
            <?php
            require getenv('EZDB_PHP') . '/autoload.php';
            eZDBFileHandler::configure(['URL' => getenv('EZDB_URL')]);
            chdir(getenv('EZDB_DIR'));
            $generated = 0;
            $view = (new eZDBFileHandler(getenv('EZDB_NAME') . '/cache/content/1.cache'))->processCache(
                fn ($path, $mtime) => include $path,
                function () use (&$generated) { usleep(300000); $generated++; return ['content' => 'view']; }, 3600);
            echo json_encode(['pid' => getmypid(), 'preloaded' => class_exists('Ezdb\Cluster', false),
                'view' => $view, 'generated' => $generated]);
            PHP);
        $env = ['EZDB_PHP' => "$repo/php", 'EZDB_URL' => self::$db->url, 'EZDB_DIR' => $this->dir, 'EZDB_NAME' => $this->prefix,
            'EZDB_LIBRARY' => '/nonexistent/libezdb.so'];
        $master = proc_open([$fpm, '-F', '-R', '-y', "$this->dir/fpm.conf", '-c', "$this->dir/php.ini"],
            [1 => ['file', "$this->dir/fpm.out", 'w'], 2 => ['redirect', 1]], $pipes, $this->dir, $env + getenv());
        try {
            $this->waitForPort($port);
            $results = $this->requests($client, $port, 3, true);      // three at once, one per worker
            $sessions = $this->sessions();
            $results = array_merge($results, $this->requests($client, $port, 9, false));
            $this->assertSame($sessions, $this->sessions(), 'later requests reuse each worker\'s connection:');
        } finally {
            proc_terminate($master);
            proc_close($master);
        }
        foreach ($results as $r) {
            $this->assertSame([true, 'view'], [$r['preloaded'], $r['view']], json_encode($r));
        }
        $this->assertSame(1, array_sum(array_column($results, 'generated')), 'generated once across the workers:');
        $this->assertSame(3, count(array_unique(array_column($results, 'pid'))), 'three workers answered:');
    }

    /** Sends $count requests through cgi-fcgi, all at once when $parallel; returns the decoded answers. */
    private function requests(string $client, int $port, int $count, bool $parallel): array
    {
        $command = 'SCRIPT_FILENAME=' . escapeshellarg("$this->dir/request.php") . ' REQUEST_METHOD=GET '
            . escapeshellarg($client) . " -bind -connect 127.0.0.1:$port";
        $runs = [];
        for ($i = 0; $i < $count; $i++) {
            $runs[] = $process = proc_open($command, [1 => ['pipe', 'w']], $pipes);
            $outputs[$i] = $pipes[1];
            if (!$parallel) {
                $answers[] = stream_get_contents($pipes[1]);
                proc_close($process);
            }
        }
        if ($parallel) {
            foreach ($runs as $i => $process) {
                $answers[] = stream_get_contents($outputs[$i]);
                proc_close($process);
            }
        }
        return array_map(function ($answer) {
            $body = substr($answer, strpos($answer, "\r\n\r\n") + 4);
            $decoded = json_decode($body, true);
            $this->assertTrue(is_array($decoded), "FPM answered: $answer");
            return $decoded;
        }, $answers);
    }

    private function sessions(): int
    {
        return (int) self::$db->query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ?', [self::$db->name])[0]['n'];
    }

    private function freePort(): int
    {
        $socket = stream_socket_server('tcp://127.0.0.1:0');
        $port = (int) substr(strrchr(stream_socket_get_name($socket, false), ':'), 1);
        fclose($socket);
        return $port;
    }

    private function waitForPort(int $port): void
    {
        for ($i = 0; $i < 100; $i++) {
            if ($socket = @fsockopen('127.0.0.1', $port)) {
                fclose($socket);
                return;
            }
            usleep(50000);
        }
        $this->fail('php-fpm did not listen within 5 s: ' . @file_get_contents("$this->dir/fpm.out") . @file_get_contents("$this->dir/fpm.log"));
    }
}
