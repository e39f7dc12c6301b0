<?php
// The core's pure rules, for the legacy methods that decide without a database call: name
// cleaning, a name's cache type, whether a file is expired, whether a row is live. Each asks
// the library (ezdb_clean_path, ezdb_cache_type, ezdb_is_file_expired, ezdb_is_row_expired), so
// the rule has one home, the core, whatever layer applies it.

namespace Ezdb;

use FFI;

final class Rules
{
    /** Results of cleanPath() and cacheType(), which are pure: a hot call pays no FFI call twice. */
    private const MEMO_SIZE = 1024;
    private static array $cleaned = [];
    private static array $cacheTypes = [];

    /** Legacy cleanPath: runs of / and \ become one /, one trailing / goes. */
    public static function cleanPath(string $path): string
    {
        if (isset(self::$cleaned[$path])) {
            return self::$cleaned[$path];
        }
        $length = strlen($path);
        if ($length === 0) {
            return '';
        }
        $ffi = Library::ffi();
        $out = $ffi->new("char[$length]");
        $outLength = $ffi->new('size_t');
        $status = $ffi->ezdb_clean_path($path, $length, $out, FFI::addr($outLength));
        if ($status !== 0) {
            throw Exception::fromStatus($status, (string) $ffi->ezdb_last_error(), "clean path $path");
        }
        return self::remember(self::$cleaned, $path, FFI::string($out, $outLength->cdata));
    }

    /** The cache type of a name: viewcache, cacheblock or misc. */
    public static function cacheType(string $name): string
    {
        // A const char * return comes back as a PHP string (a static one of the library).
        return self::$cacheTypes[$name]
            ?? self::remember(self::$cacheTypes, $name, (string) Library::ffi()->ezdb_cache_type($name, strlen($name)));
    }

    /** Keeps $value as the result for $key in $memo (bounded: emptied when full); returns it. */
    private static function remember(array &$memo, string $key, string $value): string
    {
        if (count($memo) >= self::MEMO_SIZE) {
            $memo = [];
        }
        return $memo[$key] = $value;
    }

    /** Legacy isFileExpired: an mtime of 0 or below, or one older than the expiry or the ttl. */
    public static function isFileExpired(int $mtime, ?int $expiry, int $now, ?int $ttl): bool
    {
        return Library::ffi()->ezdb_is_file_expired(
            $mtime,
            $expiry !== null ? 1 : 0,
            $expiry ?? 0,
            $now,
            $ttl !== null ? 1 : 0,
            $ttl ?? 0
        ) === 1;
    }

    /** Deleted, or older than the global expiry of its scope. */
    public static function isRowExpired(int $mtime, bool $deleted, ?int $globalExpiry): bool
    {
        return Library::ffi()->ezdb_is_row_expired(
            $mtime,
            $deleted ? 1 : 0,
            $globalExpiry !== null ? 1 : 0,
            $globalExpiry ?? 0
        ) === 1;
    }
}
