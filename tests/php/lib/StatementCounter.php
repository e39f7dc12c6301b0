<?php
// Counts the statements clients send to the database: a TCP proxy on loopback, run in a forked
// process, that forwards every byte unchanged and counts the MySQL commands starting each
// request (COM_QUERY and COM_STMT_EXECUTE are statements; pings, prepares and the rest are
// other round trips). Works on plain-text connections (the test server has no TLS). Used by
// the tests and php/bench.php; a forked proxy never touches its parent's connections.

final class StatementCounter
{
    private const COM_QUERY = 0x03;
    private const COM_STMT_EXECUTE = 0x17;
    private const COM_QUIT = 0x01;

    /** The server URL with host:port replaced by the proxy's (database and query kept). */
    public readonly string $url;
    /** The proxy's port on 127.0.0.1. */
    public readonly int $port;
    private int $pid;
    private string $file;

    public function __construct(string $url)
    {
        $parts = parse_url($url);
        if (str_contains($url, 'socket=') || !isset($parts['host'])) {
            throw new RuntimeException('StatementCounter needs a TCP server URL (mysql://user@host:port/db), not a socket');
        }
        $server = ['host' => $parts['host'], 'port' => $parts['port'] ?? 3306];
        $listener = stream_socket_server('tcp://127.0.0.1:0', $errno, $error);
        if ($listener === false) {
            throw new RuntimeException("StatementCounter: cannot listen on loopback: $error");
        }
        $port = (int) substr(strrchr(stream_socket_get_name($listener, false), ':'), 1);
        $this->file = tempnam(sys_get_temp_dir(), 'ezdb-statements-');
        file_put_contents($this->file, json_encode(['statements' => 0, 'roundTrips' => 0]));
        $this->url = preg_replace('#^(mysql://(?:[^@/]*@)?)[^/?]*#', '${1}127.0.0.1:' . $port, $url);
        $pid = pcntl_fork();
        if ($pid === -1) {
            throw new RuntimeException('StatementCounter: pcntl_fork failed');
        }
        if ($pid === 0) {
            $this->serve($listener, "tcp://{$server['host']}:{$server['port']}");
            exit(0);
        }
        fclose($listener);
        $this->pid = $pid;
        $this->port = $port;
    }

    public function __destruct()
    {
        $this->stop();
    }

    /** @return array{statements:int, roundTrips:int} counted since the proxy started */
    public function counts(): array
    {
        return json_decode((string) file_get_contents($this->file), true);
    }

    /** Statements sent while $body ran (and its return value). */
    public function during(callable $body): array
    {
        $before = $this->counts();
        $value = $body();
        $after = $this->counts();
        return [$after['statements'] - $before['statements'], $after['roundTrips'] - $before['roundTrips'], $value];
    }

    public function stop(): void
    {
        if (isset($this->pid) && $this->pid > 0) {
            posix_kill($this->pid, SIGKILL);
            pcntl_waitpid($this->pid, $status);
            $this->pid = 0;
            @unlink($this->file);
        }
    }

    /** The proxy loop (child process): one upstream connection per client. */
    private function serve($listener, string $upstream): never
    {
        $peers = [];    // id => [client, server]
        $pending = [];  // client id => bytes of client->server data not yet parsed into packets
        $counts = ['statements' => 0, 'roundTrips' => 0];
        while (true) {
            $read = [$listener];
            foreach ($peers as [$client, $server]) {
                $read[] = $client;
                $read[] = $server;
            }
            $write = $except = null;
            if (@stream_select($read, $write, $except, 5) === false) {
                continue;
            }
            foreach ($read as $socket) {
                if ($socket === $listener) {
                    $client = @stream_socket_accept($listener, 5);
                    $server = $client ? @stream_socket_client($upstream, $errno, $error, 5) : false;
                    if ($client && $server) {
                        $peers[(int) $client] = [$client, $server];
                        $pending[(int) $client] = '';
                    }
                    continue;
                }
                foreach ($peers as $id => [$client, $server]) {
                    if ($socket !== $client && $socket !== $server) {
                        continue;
                    }
                    $data = fread($socket, 1 << 20);
                    if ($data === '' || $data === false) {
                        fclose($client);
                        fclose($server);
                        unset($peers[$id], $pending[$id]);
                        break;
                    }
                    if ($socket === $client) {
                        $pending[$id] .= $data;
                        if (self::count($pending[$id], $counts)) {
                            file_put_contents($this->file, json_encode($counts));
                        }
                        fwrite($server, $data);
                    } else {
                        fwrite($client, $data);
                    }
                    break;
                }
            }
        }
    }

    /** Takes the complete packets off $buffer; counts the commands among them. */
    private static function count(string &$buffer, array &$counts): bool
    {
        $counted = false;
        while (strlen($buffer) >= 4) {
            $length = ord($buffer[0]) | (ord($buffer[1]) << 8) | (ord($buffer[2]) << 16);
            if (strlen($buffer) < 4 + $length) {
                break;
            }
            // A command is the first packet of a request (sequence 0); the login has sequence 1.
            if (ord($buffer[3]) === 0 && $length > 0) {
                $command = ord($buffer[4]);
                if ($command !== self::COM_QUIT) {
                    $counts['roundTrips']++;
                    $counted = true;
                }
                if ($command === self::COM_QUERY || $command === self::COM_STMT_EXECUTE) {
                    $counts['statements']++;
                }
            }
            $buffer = substr($buffer, 4 + $length);
        }
        return $counted;
    }
}
