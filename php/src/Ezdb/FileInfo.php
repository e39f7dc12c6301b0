<?php
// What the library reports about one stored file (ezdb_file_info) as an immutable PHP value,
// its texts copied out of the library's memory at once.

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
        /** The expiry group of the row (legacy name_trunk). */
        public readonly string $nameTrunk,
    ) {
    }

    /** Copies the library's struct (its texts live only until the next call that fills one). */
    public static function fromC(string $name, CData $info): self
    {
        return new self(
            $name,
            $info->size,
            $info->mtime,
            $info->deleted !== 0,
            $info->has_global_expiry !== 0 ? $info->global_expiry : null,
            FFI::string($info->scope, $info->scope_len),
            FFI::string($info->datatype, $info->datatype_len),
            FFI::string($info->name_trunk, $info->name_trunk_len),
        );
    }

    /** Deleted, or older than the global expiry of its scope: absent for exists(), stale for caches. */
    public function isExpired(): bool
    {
        return Rules::isRowExpired($this->mtime, $this->deleted, $this->globalExpiry);
    }
}
