<?php
// One processCache call decided by libezdb (ezdb_cache*): the core reads the row, takes the lock
// and re-checks, and answers with the next action; the caller only serves, generates and sleeps.

namespace Ezdb;

use FFI;
use FFI\CData;

final class CacheRun
{
    /** Actions (ezdb_cache_action). */
    public const SERVE_LOCAL = 1;
    public const SERVE_STORED = 2;
    public const GENERATE = 3;
    public const GENERATE_UNSTORED = 4;
    public const WAIT = 5;
    public const GIVE_UP = 6;
    public const TIMED_OUT = 7;
    /** Events for next() (EZDB_CACHE_*). */
    public const SERVE_FAILED = 1;
    public const NO_CACHE = 2;
    public const WAITED = 3;
    public const CONTINUE = 4;
    /** The 'generate' rule (EZDB_CACHE_GENERATE_*). */
    public const GENERATE_NEVER = 0;
    public const GENERATE_ALWAYS = 1;
    public const GENERATE_LOCKED = 2;

    private ?CData $run = null;

    /**
     * @internal Made by Cluster::cacheRun().
     * @param array{ttl?:?int, expiry?:?int, retrieve?:bool, generate?:int, generate_while_busy?:bool,
     *     holds_lock?:bool, max_passes?:int, poll_ms?:int, max_wait_ms?:int} $rules
     */
    public function __construct(
        private readonly Cluster $cluster,
        private readonly FFI $ffi,
        public readonly string $name,
        public readonly array $rules,
    ) {
    }

    /**
     * Gives the run back to the cluster, which keeps one for the next call. A run is plain memory
     * (no connection, no lock): in a child of fork() it is the child's copy, fine to reuse or free.
     */
    public function __destruct()
    {
        if ($this->run !== null) {
            $this->cluster->recycleRun($this->run);
        }
        $this->run = null;
    }

    /** Whether begin() created the run in the library (also when its database step failed). */
    public function isBegun(): bool
    {
        return $this->run !== null;
    }

    /**
     * Reads the row and decides; $localMtime: the local copy's mtime (0: none).
     * @return array{action:int, retrieveMtime:int, localMtime:int, stale:bool, rechecked:bool,
     *     noCache:bool, waitMs:int, now:int, hasRow:bool, lock:?GenerationLock} hasRow: the step
     *     read a row (deleted too), which row() gives
     * @throws Exception when the database step failed: log it, then next(CONTINUE) goes on without it
     */
    public function begin(int $localMtime): array
    {
        return $this->cluster->cacheStep($this, null, $localMtime);
    }

    /** Reports $event for the last action and gives the next one (as begin()). */
    public function next(int $event, int $localMtime): array
    {
        return $this->cluster->cacheStep($this, $event, $localMtime);
    }

    /**
     * The row the last step read (deleted rows too), or null when it read none: copied out of
     * the library on each call, and only until the next step (a hit that needs no row asks none).
     * @throws Exception when the run was never begun
     */
    public function row(): ?FileInfo
    {
        return $this->cluster->cacheRow($this);
    }

    /** @internal */
    public function handle(): ?CData
    {
        return $this->run;
    }

    /** @internal The run the library made (or restarted) for this call, owned from now on. */
    public function adopt(CData $run): void
    {
        $this->run ??= $run;
    }
}
