<?php
// Loads libezdb through PHP FFI, once per request: the preloaded "ezdb" scope (ffi.preload) when
// there is one, else php/ezdb.h with the library found by setting, EZDB_LIBRARY or a search.

namespace Ezdb;

use FFI;

final class Library
{
    public const SCOPE = 'ezdb';

    private static ?FFI $ffi = null;
    private static ?string $path = null;
    private static ?string $header = null;

    /** Uses this library file (absolute path) instead of searching; call before the first use. */
    public static function setPath(?string $path): void
    {
        self::$path = $path;
    }

    /** Uses this PHP-ready header instead of php/ezdb.h; call before the first use. */
    public static function setHeader(?string $header): void
    {
        self::$header = $header;
    }

    /** The loaded library (loaded on first call). */
    public static function ffi(): FFI
    {
        return self::$ffi ??= self::load();
    }

    public static function version(): string
    {
        return (string) self::ffi()->ezdb_version();
    }

    /** The header path given by setHeader(), else php/ezdb.h next to this package. */
    public static function headerPath(): string
    {
        return self::$header ?? dirname(__DIR__, 2) . '/ezdb.h';
    }

    /**
     * Where the library is looked for, in order: setPath(), EZDB_LIBRARY, this repository's
     * release then debug build, then "libezdb.so" for the dynamic linker (ld.so.conf, LD_LIBRARY_PATH).
     * @return list<string>
     */
    public static function candidates(): array
    {
        if (self::$path !== null && self::$path !== '') {
            return [self::$path];
        }
        $env = getenv('EZDB_LIBRARY');
        if (is_string($env) && $env !== '') {
            return [$env];
        }
        $repo = dirname(__DIR__, 3);
        return [$repo . '/target/release/libezdb.so', $repo . '/target/debug/libezdb.so', 'libezdb.so'];
    }

    private static function load(): FFI
    {
        $tried = [];
        $scope = self::preloadedScope($tried);
        if ($scope !== null) {
            return $scope;
        }
        $declarations = self::declarations();
        foreach (self::candidates() as $candidate) {
            if (str_contains($candidate, '/') && !is_file($candidate)) {
                $tried[] = "$candidate (no such file)";
                continue;
            }
            try {
                return FFI::cdef($declarations, $candidate);
            } catch (\Throwable $e) {
                $tried[] = "$candidate (" . $e->getMessage() . ')';
            }
        }
        throw new Exception(
            "cannot load libezdb; tried:\n  - " . implode("\n  - ", $tried)
            . "\nBuild it (cargo build --release -p ezdb-ffi), set EZDB_LIBRARY to its absolute path,"
            . ' or preload it (see php/README.md).',
            Exception::CONFIG
        );
    }

    /** FFI::scope('ezdb') when a header was preloaded with ffi.preload, else null. */
    private static function preloadedScope(array &$tried): ?FFI
    {
        if ((string) ini_get('ffi.preload') === '') {
            return null;
        }
        try {
            return FFI::scope(self::SCOPE);
        } catch (\Throwable $e) {
            $tried[] = 'FFI::scope("' . self::SCOPE . '") (' . $e->getMessage() . ')';
            return null;
        }
    }

    /** The header without its #define lines, which FFI::cdef() does not accept. */
    private static function declarations(): string
    {
        $path = self::headerPath();
        $text = @file_get_contents($path);
        if ($text === false) {
            $hint = 'build ezdb-ffi or call Library::setHeader()';
            throw new Exception("cannot read the libezdb header $path; $hint", Exception::CONFIG);
        }
        return preg_replace('/^\s*#.*$/m', '', $text);
    }
}
