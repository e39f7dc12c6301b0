<?php
// The one exception type of the ezdb PHP API: a libezdb status code (getCode()) and the
// library's message (getMessage()), plus the status names for readable tests and logs.

namespace Ezdb;

final class Exception extends \RuntimeException
{
    public const OK = 0;
    public const NOT_FOUND = 1;
    public const BUSY = 2;
    public const FRESH = 3;
    public const INVALID_ARGUMENT = 10;
    public const BUFFER_TOO_SMALL = 11;
    public const CONNECT = 12;
    public const DATABASE = 13;
    public const IO = 14;
    public const INTEGRITY = 15;
    public const LOCK_LOST = 16;
    public const TIMEOUT = 17;
    public const SCHEMA = 18;
    public const CONFIG = 19;
    public const PANIC = 20;

    /** The status name, e.g. "EZDB_NOT_FOUND" for code 1. */
    public function statusName(): string
    {
        return self::nameOf($this->getCode());
    }

    public static function nameOf(int $status): string
    {
        $names = array_flip((new \ReflectionClass(self::class))->getConstants());
        return 'EZDB_' . ($names[$status] ?? "STATUS_$status");
    }

    /** An exception for a failed library call, with the library's message. */
    public static function fromStatus(int $status, string $message, string $operation): self
    {
        if ($message === '') {
            $message = 'no message from libezdb';
        }
        return new self(sprintf('%s failed (%s): %s', $operation, self::nameOf($status), $message), $status);
    }
}
