<?php
// What the library reports about one stored file (ezdb_file_info) as an immutable PHP value,
// keeping a private copy of the C struct for ezdb_info_is_fresh.

namespace Ezdb;

use FFI;
use FFI\CData;

final class FileInfo
{
    public function __construct(
        public readonly string $name,
        public readonly int $size,
        /** Unix seconds; negative when the file was deleted (legacy -ABS(mtime)). */
        public readonly int $mtime,
        /** Soft-deleted: expired = 1 or a negative mtime. */
        public readonly bool $deleted,
        /** The global expiry key covering this file's scope, or null. */
        public readonly ?int $globalExpiry,
        public readonly string $scope,
        public readonly string $datatype,
        private readonly CData $raw,
    ) {
    }

    /** Copies the library's struct (it may be reused by the next call). */
    public static function fromC(FFI $ffi, string $name, CData $info): self
    {
        $raw = $ffi->new('ezdb_file_info');
        FFI::memcpy($raw, $info, FFI::sizeof($raw));
        return new self(
            $name,
            (int) $info->size,
            (int) $info->mtime,
            $info->deleted !== 0,
            $info->has_global_expiry !== 0 ? (int) $info->global_expiry : null,
            FFI::string($info->scope),
            FFI::string($info->datatype),
            $raw,
        );
    }

    /** Deleted, or older than the global expiry of its scope: absent for exists(), stale for caches. */
    public function isExpired(): bool
    {
        return $this->deleted || ($this->globalExpiry !== null && $this->mtime < $this->globalExpiry);
    }

    /** The C struct, for Cluster::isFresh(). */
    public function raw(): CData
    {
        return $this->raw;
    }
}
