<?php
// An opened cluster (ezdb_cluster*): every libezdb operation as a PHP method, statuses turned
// into Ezdb\Exception, and every buffer the library hands out copied and freed at once.

namespace Ezdb;

use FFI;
use FFI\CData;

final class Cluster
{
    public const FETCH_LIVE = 0;
    public const FETCH_INCLUDE_DELETED = 1;
    /** Finished cache runs kept for reuse (see $spareRuns). */
    private const SPARE_RUNS = 8;

    /** The text fields of ezdb_options, each given by the option of the same name. */
    private const TEXT_OPTIONS = ['legacy_expiry_file', 'layout', 'mount_point', 'dfs_storage_table',
        'dfs_cache_table', 'cache_dir', 'storage_dir'];

    private FFI $ffi;
    private ?CData $handle;
    /** Out-parameters reused by every call (one call at a time in a PHP process). */
    private CData $data;
    private CData $len;
    private CData $count;
    private CData $info;
    private CData $int32;
    private CData $int64;
    private CData $uint64;
    private CData $lockOut;
    private CData $freshness;
    private CData $cacheRules;
    private CData $cacheStep;
    private CData $cacheOut;
    /** FFI::addr() of the out-parameters the hot calls use, taken once. */
    private CData $int32Addr;
    private CData $infoAddr;
    private CData $lockOutAddr;
    private CData $cacheRulesAddr;
    private CData $cacheStepAddr;
    private CData $cacheOutAddr;
    /**
     * Finished cache runs kept for the next processCache calls (ezdb_cache_restart), at most
     * SPARE_RUNS: a handler keeps its run while it may still ask for the row (CacheRun::row()),
     * so nested processCache calls each find one.
     * @var list<CData>
     */
    private array $spareRuns = [];
    /** The rules last written into $cacheRules (the struct keeps them between calls). */
    private ?array $cacheRulesWritten = null;
    /** @var \WeakMap<GenerationLock, true> locks held through this handle, aborted by close() */
    private \WeakMap $locks;

    private function __construct(FFI $ffi, CData $handle)
    {
        $this->ffi = $ffi;
        $this->handle = $handle;
        $this->locks = new \WeakMap();
        foreach (['data' => 'char*', 'len' => 'size_t', 'count' => 'size_t', 'info' => 'ezdb_file_info',
            'int32' => 'int32_t', 'int64' => 'int64_t', 'uint64' => 'uint64_t', 'lockOut' => 'ezdb_lock*',
            'freshness' => 'ezdb_freshness', 'cacheRules' => 'ezdb_cache_rules', 'cacheStep' => 'ezdb_cache_step',
            'cacheOut' => 'ezdb_cache*'] as $field => $type) {
            $this->$field = $ffi->new($type);
        }
        $this->int32Addr = FFI::addr($this->int32);
        $this->infoAddr = FFI::addr($this->info);
        $this->lockOutAddr = FFI::addr($this->lockOut);
        $this->cacheRulesAddr = FFI::addr($this->cacheRules);
        $this->cacheStepAddr = FFI::addr($this->cacheStep);
        $this->cacheOutAddr = FFI::addr($this->cacheOut);
    }

    /**
     * Records the settings; each process connects on its first call (fork-safe).
     * @param string $url mysql://user:pass@host:port/db or mysql://user@localhost/db?socket=/path
     * @param array{chunk_size?:int, generation_timeout?:int, max_attempts?:int, connect_timeout_ms?:int,
     *     legacy_expiry_file?:?string, layout?:?string, mount_point?:?string, dfs_storage_table?:?string,
     *     dfs_cache_table?:?string, cache_dir?:?string, storage_dir?:?string, read_replicas?:list<string>,
     *     max_replica_lag?:int, library?:string} $options
     *     legacy_expiry_file: cluster name of the legacy expiry.php (e.g. var/site/cache/expiry.php)
     *     shared with legacy nodes; layout: 'ezdb' (default), 'dfs' (eZDFS: ezdfsfile and
     *     ezdfsfile_cache, bytes at <mount_point>/<name>) or 'ibexa-dfs' (ibexa_dfs_file);
     *     mount_point: MountPointPath (required by the DFS layouts); dfs_cache_table:
     *     MetaDataTableNameCache; cache_dir, storage_dir: site.ini [FileSettings] CacheDir and
     *     StorageDir; read_replicas: URLs of asynchronous read replicas (plain reads use one that
     *     is up and at most max_replica_lag seconds behind, default 5; what it lacks is read from
     *     the primary). Empty or null: unset (the library's defaults). Invalid layout settings
     *     or replica URLs throw Ezdb\Exception CONFIG with the library's reason.
     */
    public static function open(string $url, array $options = []): self
    {
        if (isset($options['library'])) {
            Library::setPath($options['library']);
        }
        $ffi = Library::ffi();
        $settings = $ffi->new('ezdb_options');
        $ffi->ezdb_options_init(FFI::addr($settings));
        $settings->chunk_size = (int) ($options['chunk_size'] ?? 0);
        $settings->generation_timeout_secs = (int) ($options['generation_timeout'] ?? 0);
        $settings->max_attempts = (int) ($options['max_attempts'] ?? 0);
        $settings->connect_timeout_ms = (int) ($options['connect_timeout_ms'] ?? 0);
        $settings->max_replica_lag_secs = (int) ($options['max_replica_lag'] ?? 0);
        // Kept alive until ezdb_open has copied them. A list is one text, items NUL-separated.
        $texts = [];
        $lists = ['read_replicas' => implode("\0", array_map('strval', (array) ($options['read_replicas'] ?? [])))];
        foreach ([...self::TEXT_OPTIONS, ...array_keys($lists)] as $field) {
            $text = self::text($ffi, $lists[$field] ?? (string) ($options[$field] ?? ''));
            if ($text !== null) {
                $texts[] = $text;
                $settings->$field = $ffi->cast('char*', FFI::addr($text));
                $settings->{$field . '_len'} = FFI::sizeof($text);
            }
        }
        $out = $ffi->new('ezdb_cluster*');
        $status = $ffi->ezdb_open($url, strlen($url), FFI::addr($settings), FFI::addr($out));
        if ($status !== 0) {
            throw Exception::fromStatus($status, (string) $ffi->ezdb_last_error(), 'open');
        }
        return new self($ffi, $out);
    }

    /** $text in C memory owned by PHP (null when empty). */
    private static function text(FFI $ffi, string $text): ?CData
    {
        if ($text === '') {
            return null;
        }
        $buffer = $ffi->new('char[' . strlen($text) . ']');
        FFI::memcpy($buffer, $text, strlen($text));
        return $buffer;
    }

    public function __destruct()
    {
        $this->close();
    }

    /** Aborts the generations still held through this handle, closes its connections, frees it. */
    public function close(): void
    {
        $held = [];
        foreach ($this->locks as $lock => $_) {
            $held[] = $lock;
        }
        foreach ($held as $lock) {
            $lock->abort();
        }
        foreach ($this->spareRuns as $spare) {
            $this->ffi->ezdb_cache_free($spare);
        }
        $this->spareRuns = [];
        if ($this->handle !== null) {
            $this->ffi->ezdb_close($this->handle);
            $this->handle = null;
        }
    }

    public function isOpen(): bool
    {
        return $this->handle !== null;
    }

    /** Connects now, so a bad URL or password is reported at once. */
    public function connect(): void
    {
        $this->call('connect', 'ezdb_connect');
    }

    /** Closes this process's connection; the next call reconnects. */
    public function disconnect(): void
    {
        $this->call('disconnect', 'ezdb_disconnect');
    }

    /** Creates the cluster tables when missing (idempotent; safe on a legacy database). */
    public function installSchema(): void
    {
        $this->call('install schema', 'ezdb_install_schema');
    }

    /** The database clock, Unix seconds: the clock every mtime is stamped with. */
    public function now(): int
    {
        $this->call('now', 'ezdb_now', FFI::addr($this->int64));
        return $this->int64->cdata;
    }

    /** Stores bytes under $name; empty scope = UNKNOWN_SCOPE, empty datatype = misc, mtime <= 0 = now. */
    public function store(string $name, string $data, string $scope = '', string $datatype = '', int $mtime = 0): FileInfo
    {
        $this->call("store $name", 'ezdb_store', $name, strlen($name), $data, strlen($data),
            $scope, strlen($scope), $datatype, strlen($datatype), $mtime, FFI::addr($this->info));
        return $this->fileInfo($name);
    }

    /** Stores a local file (streamed) under $name. */
    public function storeFile(string $name, string $path, string $scope = '', string $datatype = '', int $mtime = 0): FileInfo
    {
        $this->call("store $name from $path", 'ezdb_store_file', $name, strlen($name), $path, strlen($path),
            $scope, strlen($scope), $datatype, strlen($datatype), $mtime, FFI::addr($this->info));
        return $this->fileInfo($name);
    }

    /** The whole content, or null when there is no row (or, live only, the file is deleted). */
    public function fetch(string $name, bool $includeDeleted = false): ?string
    {
        return $this->fetchWithInfo($name, $includeDeleted)[0] ?? null;
    }

    /** @return array{0:string, 1:FileInfo}|null content and metadata of one snapshot */
    public function fetchWithInfo(string $name, bool $includeDeleted = false): ?array
    {
        $status = $this->invoke("fetch $name", [Exception::NOT_FOUND], 'ezdb_fetch', $name, strlen($name),
            self::flags($includeDeleted),
            FFI::addr($this->data), FFI::addr($this->len), FFI::addr($this->info));
        if ($status === Exception::NOT_FOUND) {
            return null;
        }
        return [$this->takeBytes(), $this->fileInfo($name)];
    }

    /**
     * $length bytes from $offset ($length 0: to the end) of one version of the file, read with one
     * statement; null when there is no row (or, live only, the file is deleted).
     */
    public function fetchRange(string $name, int $offset, int $length = 0, bool $includeDeleted = false): ?string
    {
        return $this->readRange($name, $offset, $length, $includeDeleted) === null ? null : $this->takeBytes();
    }

    /**
     * Writes bytes [$offset, $offset + $length) ($length 0: to the end) of the file to the output,
     * $piece bytes per echo, all from one version read with one statement. Returns the file's
     * metadata, or null (nothing written) when there is no row.
     */
    public function passthrough(string $name, int $offset = 0, int $length = 0, bool $includeDeleted = false,
        int $piece = 1 << 20): ?FileInfo
    {
        $info = $this->readRange($name, $offset, $length, $includeDeleted);
        if ($info === null) {
            return null;
        }
        $len = $this->len->cdata;
        try {
            for ($at = 0; $at < $len; $at += $piece) {
                echo FFI::string($this->data + $at, min($piece, $len - $at));
            }
        } finally {
            $this->ffi->ezdb_bytes_free($this->data, $len);
        }
        return $info;
    }

    /** ezdb_fetch_range into $this->data/$this->len; the metadata, or null when there is no row. */
    private function readRange(string $name, int $offset, int $length, bool $includeDeleted): ?FileInfo
    {
        $status = $this->invoke("fetch range of $name", [Exception::NOT_FOUND], 'ezdb_fetch_range', $name, strlen($name),
            $offset, $length, self::flags($includeDeleted),
            FFI::addr($this->data), FFI::addr($this->len), FFI::addr($this->info));
        return $status === Exception::NOT_FOUND ? null : $this->fileInfo($name);
    }

    /** Writes the content to $path atomically (temporary name, then rename); null when no row. */
    public function fetchToFile(string $name, string $path, bool $includeDeleted = false): ?FileInfo
    {
        $status = $this->invoke("fetch $name to $path", [Exception::NOT_FOUND], 'ezdb_fetch_to_file', $name, strlen($name),
            $path, strlen($path),
            self::flags($includeDeleted), FFI::addr($this->info));
        return $status === Exception::NOT_FOUND ? null : $this->fileInfo($name);
    }

    /** True when a live row exists (deleted and globally expired files count as absent). */
    public function exists(string $name): bool
    {
        // A hot call: the library function called directly, without call()'s generic path.
        $status = $this->ffi->ezdb_exists($this->handle ?? $this->closed("exists $name"), $name, strlen($name), $this->int32Addr);
        if ($status !== 0) {
            throw Exception::fromStatus($status, (string) $this->ffi->ezdb_last_error(), "exists $name");
        }
        return $this->int32->cdata !== 0;
    }

    /** The row's metadata (deleted rows too), or null when there is none. */
    public function stat(string $name): ?FileInfo
    {
        // A hot call (every processCache): called directly, like exists().
        $status = $this->ffi->ezdb_stat($this->handle ?? $this->closed("stat $name"), $name, strlen($name), $this->infoAddr);
        if ($status === 0) {
            return FileInfo::fromC($name, $this->info);
        }
        if ($status === Exception::NOT_FOUND) {
            return null;
        }
        throw Exception::fromStatus($status, (string) $this->ffi->ezdb_last_error(), "stat $name");
    }

    /**
     * Whether the entry may be served as a fresh cache entry: not deleted, not older than its
     * global expiry, $ttl (seconds, null: none, 0: never fresh) and $expiry (timestamp, null: none).
     */
    public function isFresh(FileInfo $info, ?int $ttl = null, ?int $expiry = null, int $now = 0): bool
    {
        $raw = $this->info;
        $raw->size = $info->size;
        $raw->mtime = $info->mtime;
        $raw->deleted = (int) $info->deleted;
        $raw->has_global_expiry = (int) ($info->globalExpiry !== null);
        $raw->global_expiry = $info->globalExpiry ?? 0;
        return $this->ffi->ezdb_info_is_fresh(FFI::addr($raw), FFI::addr($this->freshness($ttl, $expiry, $now))) === 1;
    }

    /** Soft delete (mtime = -ABS(mtime), expired = 1); returns the rows changed. */
    public function delete(string $name): int
    {
        $this->call("delete $name", 'ezdb_delete', $name, strlen($name), FFI::addr($this->uint64));
        return $this->uint64->cdata;
    }

    /** Soft-deletes every name starting with "$path/$namePart" (legacy fileDelete with a name part). */
    public function deletePrefix(string $path, string $namePart): int
    {
        $this->call("delete $path/$namePart*", 'ezdb_delete_prefix', $path, strlen($path), $namePart, strlen($namePart),
            FFI::addr($this->uint64));
        return $this->uint64->cdata;
    }

    /** Soft-deletes the names matching a glob (*, ?, {a,b}). */
    public function deleteWildcard(string $glob): int
    {
        $this->call("delete $glob", 'ezdb_delete_wildcard', $glob, strlen($glob), FFI::addr($this->uint64));
        return $this->uint64->cdata;
    }

    /** Legacy fileDeleteByDirList: "$commonPath/$dir/$commonSuffix" for every dir. */
    public function deleteByDirList(array $dirs, string $commonPath, string $commonSuffix): int
    {
        $list = implode("\0", $dirs);
        $this->call("delete by dir list under $commonPath", 'ezdb_delete_by_dir_list', $list, strlen($list),
            $commonPath, strlen($commonPath), $commonSuffix, strlen($commonSuffix), FFI::addr($this->uint64));
        return $this->uint64->cdata;
    }

    /** Removes the row physically: a soft-deleted one (null), or one with mtime < $olderThan. */
    public function purge(string $name, ?int $olderThan = null): bool
    {
        $this->call("purge $name", 'ezdb_purge', $name, strlen($name), $olderThan ?? -1, FFI::addr($this->int32));
        return $this->int32->cdata !== 0;
    }

    /**
     * Purges $path and everything under "$path/", $batch rows per transaction (0: 1000), at most
     * $maxBatches transactions in this call (0: until none is left); returns the rows removed.
     */
    public function purgePrefix(string $path, ?int $olderThan = null, int $batch = 0, int $maxBatches = 0): int
    {
        $this->call("purge $path", 'ezdb_purge_prefix', $path, strlen($path), $olderThan ?? -1, $batch,
            $maxBatches, FFI::addr($this->uint64));
        return $this->uint64->cdata;
    }

    /** Copies a file server-side; false when $src has no row. */
    public function copy(string $src, string $dst): bool
    {
        return $this->invoke("copy $src to $dst", [Exception::NOT_FOUND], 'ezdb_copy',
            $src, strlen($src), $dst, strlen($dst)) === 0;
    }

    public function linkCopy(string $src, string $dst): bool
    {
        return $this->invoke("link $src to $dst", [Exception::NOT_FOUND], 'ezdb_link_copy',
            $src, strlen($src), $dst, strlen($dst)) === 0;
    }

    /** Renames a file (replacing $dst); false when $src has no row. */
    public function move(string $src, string $dst): bool
    {
        return $this->invoke("move $src to $dst", [Exception::NOT_FOUND], 'ezdb_move',
            $src, strlen($src), $dst, strlen($dst)) === 0;
    }

    /** @return list<string> names of every row, or of the rows in (or, $exclude, not in) $scopes */
    public function list(array $scopes = [], bool $exclude = false): array
    {
        $list = implode("\0", $scopes);
        $this->call('list', 'ezdb_list', $list, strlen($list), (int) $exclude,
            FFI::addr($this->data), FFI::addr($this->len), FFI::addr($this->count));
        return $this->takeList();
    }

    /** @return list<string> deleted rows of $scopes, deleted before $olderThan when given */
    public function listExpired(array $scopes, ?int $olderThan = null, int $offset = 0, int $limit = 100): array
    {
        $list = implode("\0", $scopes);
        $this->call('list expired', 'ezdb_list_expired', $list, strlen($list), $olderThan ?? -1, $offset, $limit,
            FFI::addr($this->data), FFI::addr($this->len), FFI::addr($this->count));
        return $this->takeList();
    }

    /**
     * Takes the generation lock of $name (the legacy "$name.generating" row).
     * With $recheck (['ttl' => ?int, 'expiry' => ?int, 'now' => int]) the entry is re-read on a
     * separate connection once the lock is ours.
     * @return GenerationLock|int|null the lock; or the seconds until another process's lock may
     *         be taken over; or null when the recheck found a fresh entry (no lock held: read it).
     */
    public function startGeneration(string $name, string $scope = '', ?array $recheck = null): GenerationLock|int|null
    {
        $fresh = $recheck === null ? null
            : FFI::addr($this->freshness($recheck['ttl'] ?? null, $recheck['expiry'] ?? null, $recheck['now'] ?? 0));
        $status = $this->invoke("start generation of $name", [Exception::BUSY, Exception::FRESH], 'ezdb_generation_start',
            $name, strlen($name),
            $scope, strlen($scope), $fresh, FFI::addr($this->lockOut), FFI::addr($this->int64));
        return match ($status) {
            Exception::BUSY => max(0, $this->int64->cdata),
            Exception::FRESH => null,
            default => $this->track(new GenerationLock($this, $this->ffi, $name, $this->lockOut)),
        };
    }

    /**
     * The cache protocol on $name, decided by the library: begin() reads the row and answers
     * with the first action (see CacheRun). $rules: ttl, expiry (null: none), retrieve,
     * generate (CacheRun::GENERATE_*), generate_while_busy, holds_lock, max_passes, poll_ms,
     * max_wait_ms.
     */
    public function cacheRun(string $name, array $rules = []): CacheRun
    {
        return new CacheRun($this, $this->ffi, $name, $rules);
    }

    /**
     * @internal ezdb_cache_begin ($event null) or ezdb_cache_next for $run. The row is not
     * copied out here (cacheRow() does, when asked): a hit that serves its local copy needs none.
     */
    public function cacheStep(CacheRun $run, ?int $event, int $localMtime): array
    {
        $name = $run->name;
        if ($this->handle === null) {
            $this->closed("cache $name");
        }
        $lockOut = $this->lockOutAddr;
        if ($event === null) {
            $rules = $run->rules;
            if ($rules !== $this->cacheRulesWritten) {
                $r = $this->cacheRules;
                $r->ttl = $rules['ttl'] ?? -1;
                $r->expiry = $rules['expiry'] ?? -1;
                $r->retrieve = (int) ($rules['retrieve'] ?? true);
                $r->generate = (int) ($rules['generate'] ?? CacheRun::GENERATE_ALWAYS);
                $r->generate_while_busy = (int) ($rules['generate_while_busy'] ?? false);
                $r->holds_lock = (int) ($rules['holds_lock'] ?? false);
                $r->max_passes = (int) ($rules['max_passes'] ?? 0);
                $r->poll_ms = (int) ($rules['poll_ms'] ?? 0);
                $r->max_wait_ms = (int) ($rules['max_wait_ms'] ?? 0);
                $this->cacheRulesWritten = $rules;
            }
            $spare = $run->handle() === null ? array_pop($this->spareRuns) : null;
            if ($spare !== null) {
                // The previous call's run, started again: no allocation, no free per call.
                $status = $this->ffi->ezdb_cache_restart($this->handle, $spare, $name, strlen($name), $this->cacheRulesAddr,
                    $localMtime, $this->cacheStepAddr, $lockOut, null);
                if ($status !== Exception::INVALID_ARGUMENT) {
                    $run->adopt($spare);
                } else {
                    // Refused (a bad name or rules), it is unchanged and stays spare: not begun, as
                    // ezdb_cache_begin would leave it.
                    $this->spareRuns[] = $spare;
                }
            } else {
                $status = $this->ffi->ezdb_cache_begin($this->handle, $name, strlen($name), $this->cacheRulesAddr, $localMtime,
                    $this->cacheOutAddr, $this->cacheStepAddr, $lockOut, null);
                if (!FFI::isNull($this->cacheOut)) {
                    $run->adopt($this->ffi->cast('ezdb_cache*', $this->ffi->cast('uintptr_t', $this->cacheOut)->cdata));
                }
            }
        } else {
            $handle = $run->handle()
                ?? throw new Exception("cache $name: the run was never begun", Exception::INVALID_ARGUMENT);
            $status = $this->ffi->ezdb_cache_next($this->handle, $handle, $event, $localMtime,
                $this->cacheStepAddr, $lockOut, null);
        }
        if ($status !== 0) {
            throw Exception::fromStatus($status, (string) $this->ffi->ezdb_last_error(), "cache $name");
        }
        $step = $this->cacheStep;
        $action = $step->action;
        // An action sets only the fields it names (ezdb_cache_step), the others are 0: only
        // those are read (every field read is a CData access; a hit needs one).
        $next = ['action' => $action, 'retrieveMtime' => 0, 'localMtime' => 0, 'stale' => false, 'rechecked' => false,
            'noCache' => false, 'waitMs' => 0, 'now' => $step->now, 'hasRow' => $step->has_row !== 0, 'lock' => null];
        switch ($action) {
            case CacheRun::SERVE_LOCAL:
                $next['retrieveMtime'] = $step->retrieve_mtime;
                break;
            case CacheRun::SERVE_STORED:
                $next['retrieveMtime'] = $step->retrieve_mtime;
                $next['localMtime'] = $step->local_mtime;
                $next['stale'] = $step->stale !== 0;
                $next['rechecked'] = $step->rechecked !== 0;
                break;
            case CacheRun::GENERATE:
                $next['lock'] = $this->track(new GenerationLock($this, $this->ffi, $name, $this->lockOut));
                break;
            case CacheRun::GENERATE_UNSTORED:
                $next['noCache'] = $step->no_cache !== 0;
                break;
            case CacheRun::WAIT:
                $next['waitMs'] = $step->wait_ms;
                break;
        }
        return $next;
    }

    /** @internal The row the last step of $run read (ezdb_cache_row), or null when it read none. */
    public function cacheRow(CacheRun $run): ?FileInfo
    {
        $name = $run->name;
        $handle = $run->handle()
            ?? throw new Exception("cache $name: the run was never begun", Exception::INVALID_ARGUMENT);
        $status = $this->ffi->ezdb_cache_row($handle, $this->infoAddr);
        if ($status === 0) {
            return FileInfo::fromC($name, $this->info);
        }
        if ($status === Exception::NOT_FOUND) {
            return null;
        }
        throw Exception::fromStatus($status, (string) $this->ffi->ezdb_last_error(), "cache $name");
    }

    /**
     * @internal A CacheRun is done with its run: kept for a next cache call (at most SPARE_RUNS,
     * while the handle is open), else freed.
     */
    public function recycleRun(CData $run): void
    {
        if (count($this->spareRuns) < self::SPARE_RUNS && $this->handle !== null) {
            $this->spareRuns[] = $run;
        } else {
            $this->ffi->ezdb_cache_free($run);
        }
    }

    /** Sets a global expiry key (content-view-cache, ...) to $at (<= 0: now); returns the time set. */
    public function setGlobalExpiry(string $key, int $at = 0): int
    {
        $this->call("set global expiry $key", 'ezdb_set_global_expiry', $key, strlen($key), $at, FFI::addr($this->int64));
        return $this->int64->cdata;
    }

    /** The global expiry key's timestamp, or null when unset. */
    public function globalExpiry(string $key): ?int
    {
        $this->call("global expiry $key", 'ezdb_global_expiry', $key, strlen($key), FFI::addr($this->int64));
        return $this->int64->cdata < 0 ? null : $this->int64->cdata;
    }

    /** @internal Calls $function with the handle first; any status but OK throws. */
    public function call(string $operation, string $function, mixed ...$args): int
    {
        return $this->invoke($operation, [], $function, ...$args);
    }

    /** @internal Like call(), but the statuses in $accepted are returned instead of thrown. */
    public function invoke(string $operation, array $accepted, string $function, mixed ...$args): int
    {
        if ($this->handle === null) {
            $this->closed($operation);
        }
        $status = $this->ffi->$function($this->handle, ...$args);
        if ($status !== 0 && !in_array($status, $accepted, true)) {
            throw Exception::fromStatus($status, (string) $this->ffi->ezdb_last_error(), $operation);
        }
        return $status;
    }

    private function closed(string $operation): never
    {
        throw new Exception("$operation: the cluster handle is closed", Exception::INVALID_ARGUMENT);
    }

    /** @internal GenerationLock forgets itself here once released. */
    public function forget(GenerationLock $lock): void
    {
        unset($this->locks[$lock]);
    }

    private function track(GenerationLock $lock): GenerationLock
    {
        $this->locks[$lock] = true;
        return $lock;
    }

    private function freshness(?int $ttl, ?int $expiry, int $now): CData
    {
        $this->freshness->ttl = $ttl ?? -1;
        $this->freshness->expiry = $expiry ?? -1;
        $this->freshness->now = $now;
        return $this->freshness;
    }

    private function fileInfo(string $name): FileInfo
    {
        return FileInfo::fromC($name, $this->info);
    }

    /** Copies the bytes the library returned, then frees them. */
    private function takeBytes(): string
    {
        $len = $this->len->cdata;
        try {
            return $len === 0 ? '' : FFI::string($this->data, $len);
        } finally {
            $this->ffi->ezdb_bytes_free($this->data, $len);
        }
    }

    /** @return list<string> */
    private function takeList(): array
    {
        $count = $this->count->cdata;
        $bytes = $this->takeBytes();
        return $count === 0 ? [] : explode("\0", $bytes);
    }

    private static function flags(bool $includeDeleted): int
    {
        return $includeDeleted ? self::FETCH_INCLUDE_DELETED : self::FETCH_LIVE;
    }
}
