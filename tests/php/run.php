<?php
// Runs the PHP tests (tests/php/*Test.php) against a database of its own on EZDB_TEST_URL's
// server, prints each test with ok/FAIL and ends with "php tests: N passed, M failed".
// Usage: php tests/php/run.php [FILTER]   (FILTER: a substring of "Class::method")

error_reporting(E_ALL);
ini_set('display_errors', 'stderr');
set_error_handler(function (int $severity, string $message, string $file, int $line): bool {
    if (!(error_reporting() & $severity)) {
        return false;
    }
    throw new ErrorException($message, 0, $severity, $file, $line);
});

$repo = dirname(__DIR__, 2);
require $repo . '/php/autoload.php';
require_once $repo . '/php/eZDBFileHandler.php';
foreach (glob(__DIR__ . '/lib/*.php') as $file) {
    require_once $file;
}

$serverUrl = getenv('EZDB_TEST_URL') ?: 'mysql://root@127.0.0.1:3306';
try {
    TestCase::$db = new TestDb($serverUrl, getenv('EZDB_TEST_SCHEMA') ?: 'ezdb');
    if (TestCase::$db->schema === 'ezdb') {
        Ezdb\Cluster::open(TestCase::$db->url)->installSchema();
    }
} catch (Throwable $e) {
    fwrite(STDERR, "php tests: cannot prepare a test database on $serverUrl: {$e->getMessage()}\n"
        . "Start MariaDB/MySQL there, or set EZDB_TEST_URL=mysql://user:pass@host:port to a server where that user may create databases.\n");
    echo "php tests: 0 passed, 1 failed\n";
    exit(1);
}
TestCase::$root = sys_get_temp_dir() . '/ezdb-php-tests-' . getmypid();
mkdir(TestCase::$root, 0777, true);
$mainPid = getmypid();
register_shutdown_function(function () use ($mainPid): void {
    if (getmypid() === $mainPid) {
        exec('rm -rf ' . escapeshellarg(TestCase::$root));
    }
});

$filter = $argv[1] ?? '';
$files = glob(__DIR__ . '/*Test.php');
sort($files);
$before = get_declared_classes();
foreach ($files as $file) {
    require_once $file;
}
$classes = array_filter(array_diff(get_declared_classes(), $before), fn ($c) => is_subclass_of($c, TestCase::class));

echo 'libezdb ', Ezdb\Library::version(), ', PHP ', PHP_VERSION, ', database ', TestCase::$db->name,
    ' (', TestCase::$db->schema, " schema)\n";
[$passed, $failed] = [0, 0];
foreach ($classes as $class) {
    foreach ((new ReflectionClass($class))->getMethods(ReflectionMethod::IS_PUBLIC) as $method) {
        $name = "$class::{$method->name}";
        if (!str_starts_with($method->name, 'test') || ($filter !== '' && !str_contains($name, $filter))) {
            continue;
        }
        $started = microtime(true);
        $error = null;
        $test = new $class();
        try {
            $test->setUp($method->name);
            $test->{$method->name}();
        } catch (Throwable $e) {
            $error = $e instanceof AssertionFailed ? $e->getMessage()
                : get_class($e) . ': ' . $e->getMessage() . ' at ' . basename($e->getFile()) . ':' . $e->getLine();
        } finally {
            try {
                $test->tearDown();
            } catch (Throwable $e) {
                $error ??= 'tearDown: ' . $e->getMessage();
            }
        }
        $seconds = sprintf('%.2f s', microtime(true) - $started);
        if ($error === null) {
            $passed++;
            echo "ok    $name ($seconds)\n";
        } else {
            $failed++;
            echo "FAIL  $name ($seconds)\n      " . str_replace("\n", "\n      ", $error) . "\n";
        }
    }
}
echo "php tests: $passed passed, $failed failed\n";
exit($failed === 0 && $passed > 0 ? 0 : 1);
