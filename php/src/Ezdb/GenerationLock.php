<?php
// One held cache-generation lock (ezdb_lock*, the legacy "<name>.generating" row): heartbeat,
// stage + end or publish, abort; released exactly once, and aborted in __destruct if still held.

namespace Ezdb;

use FFI;
use FFI\CData;

final class GenerationLock
{
    private ?CData $lock;
    private readonly string $lockName;
    /** The process that took the lock: a forked child must never release its parent's lock. */
    private readonly int $pid;

    /** @internal Made by Cluster::startGeneration(). */
    public function __construct(
        private readonly Cluster $cluster,
        private readonly FFI $ffi,
        /** The file being generated. */
        public readonly string $name,
        CData $lock,
    ) {
        // A copy of the pointer value ($lock is Cluster's reused out-parameter; FFI::cast of a
        // CData would share its storage, FFI::memcpy would write through the pointer).
        $this->lock = $ffi->cast('ezdb_lock*', $ffi->cast('uintptr_t', $lock)->cdata);
        $this->lockName = (string) $ffi->ezdb_lock_name($this->lock);
        $this->pid = getmypid();
    }

    /** A lock still held here is aborted; a failure then is ignored (the lock times out instead). */
    public function __destruct()
    {
        try {
            $this->abort();
        } catch (\Throwable) {
        }
    }

    public function isHeld(): bool
    {
        return $this->lock !== null;
    }

    /** The lock row's name, "<name>.generating". */
    public function lockName(): string
    {
        return $this->lockName;
    }

    /** Refreshes the lock (heartbeat); false when another process took it over or removed it. */
    public function check(): bool
    {
        $ours = $this->ffi->new('int32_t');
        $this->cluster->call("check generation of $this->name", 'ezdb_generation_check', $this->held(), FFI::addr($ours));
        return $ours->cdata !== 0;
    }

    /** Stores content under the lock name, still locked (legacy two-step form); end() publishes it. */
    public function stage(string $data, string $scope = '', string $datatype = ''): void
    {
        $this->cluster->call("stage $this->name", 'ezdb_generation_stage', $this->held(), $data, strlen($data),
            $scope, strlen($scope), $datatype, strlen($datatype));
    }

    /** Publishes the staged content and releases the lock; Exception::LOCK_LOST when it was taken over. */
    public function end(): FileInfo
    {
        $info = $this->ffi->new('ezdb_file_info');
        $this->release("end generation of $this->name", 'ezdb_generation_end', FFI::addr($info));
        return FileInfo::fromC($this->name, $info);
    }

    /** Publishes $data as the new version and releases the lock, in one transaction that checks ownership. */
    public function publish(string $data, string $scope = '', string $datatype = ''): FileInfo
    {
        $info = $this->ffi->new('ezdb_file_info');
        $this->release("publish $this->name", 'ezdb_generation_publish', $data, strlen($data),
            $scope, strlen($scope), $datatype, strlen($datatype), FFI::addr($info));
        return FileInfo::fromC($this->name, $info);
    }

    /**
     * Releases the lock without publishing (only our own lock row goes). No-op when not held,
     * and in a forked child, which only forgets the lock it inherited.
     */
    public function abort(): void
    {
        if ($this->lock !== null && $this->cluster->isOpen() && $this->pid === getmypid()) {
            $this->release("abort generation of $this->name", 'ezdb_generation_abort');
        }
        $this->lock = null;
    }

    /** Calls a function that consumes the lock: it is gone afterwards, whatever the status. */
    private function release(string $operation, string $function, mixed ...$args): void
    {
        $lock = $this->held();
        $this->lock = null;
        $this->cluster->forget($this);
        $this->cluster->call($operation, $function, $lock, ...$args);
    }

    private function held(): CData
    {
        return $this->lock
            ?? throw new Exception("generation of $this->name: the lock was already released", Exception::INVALID_ARGUMENT);
    }
}
