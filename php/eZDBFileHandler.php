<?php
// eZ Publish legacy's eZDB cluster file handler as a drop-in over libezdb: the legacy public API
// and processCache protocol (spec sections 3-5) on one shared Ezdb\Cluster, legacy defects fixed.

require_once __DIR__ . '/autoload.php';
require_once __DIR__ . '/compat/interfaces.php';
if (!class_exists('eZClusterFileFailure')) {
    require_once __DIR__ . '/compat/eZClusterFileFailure.php';
}

class eZDBFileHandler implements Ezdb\Compat\ClusterFileHandlerInterface, Ezdb\Compat\DatabaseBasedClusterFileHandler
{
    /** Local copies of cluster files are kept (legacy constant). */
    const LOCAL_CACHE = 1;
    /** Kept for compatibility: each handler object caches its own row instead. */
    const INFOCACHE_MAX = 200;

    /** Settings and their defaults (legacy file.ini / site.ini names). */
    const DEFAULTS = [
        'DBHost' => 'db',
        'DBPort' => 3306,
        'DBSocket' => '',
        'DBName' => 'cluster',
        'DBUser' => 'root',
        'DBPassword' => '',
        'DBChunkSize' => 65535,
        'DBExecuteRetries' => 20,
        'DBConnectRetries' => 3,
        'NonExistantStaleCacheHandling' => ['viewcache' => 'wait', 'cacheblock' => 'wait', 'misc' => 'wait'],
        'CacheGenerationTimeout' => 60,
        'StorageFilePermissions' => '0666',
        // Cluster name of the legacy expiry.php through which legacy nodes share global expiry
        // keys: inside eZ Publish <VarDir>/<CacheDir>/expiry.php (site.ini [FileSettings]).
        'LegacyExpiryFile' => null,
        // Asynchronous read replicas of the database (DBReadReplicas[]=...): each a URL
        // (mysql://user:pass@host:port/db) or host[:port] with DBUser, DBPassword and DBName.
        // Plain reads use one that is up and at most DBMaxReplicaLag seconds behind (0: the
        // library's default, 5); what it lacks is read from the primary; writes never go there.
        'DBReadReplicas' => [],
        'DBMaxReplicaLag' => 0,
        // Not in eZ Publish: a full DSN instead of DBHost..DBName, the library path, the
        // connect timeout in milliseconds, and a logger callable fn(string $level, string $message).
        'URL' => null,
        'Library' => null,
        'ConnectTimeout' => 0,
        'Logger' => null,
    ];

    /**
     * Keys of file.ini [ClusteringSettings] that eZ Publish itself reads (to pick the handler
     * and backend classes, and where to find them): accepted by configure() and ignored.
     */
    const IGNORED_SETTINGS = ['FileHandler', 'DBBackend', 'ExtensionDirectories'];

    /** The file.ini section of the handler's settings, and the keys read from it inside eZ Publish. */
    const SETTINGS_SECTION = 'ClusteringSettings';
    const FILE_INI_KEYS = ['DBHost', 'DBPort', 'DBSocket', 'DBName', 'DBUser', 'DBPassword', 'DBChunkSize',
        'DBExecuteRetries', 'DBConnectRetries', 'NonExistantStaleCacheHandling', 'LegacyExpiryFile',
        'DBReadReplicas', 'DBMaxReplicaLag'];
    /** The site.ini keys read inside eZ Publish: name => group. */
    const SITE_INI_KEYS = ['CacheGenerationTimeout' => 'ContentSettings', 'StorageFilePermissions' => 'FileSettings'];

    /** Passes of processCache's read/generate loop before it gives up waiting for others. */
    const MAX_PASSES = 8;
    /** processCache's wait for another process's generation polls once per second (legacy). */
    const WAIT_POLL_MS = 1000;
    /** Distinct processCache rules kept (cacheRules()); all are forgotten when there are more. */
    const CACHE_RULES_KEPT = 64;

    /** @var string|false the current path: the ".generating" name while a generation lock is held */
    public $filePath;
    /** @var string|null the real path while generating */
    private $realFilePath = null;
    /**
     * @var Ezdb\FileInfo|Ezdb\CacheRun|false|null the row: null = not loaded yet, false = no row,
     *      a CacheRun = the row its last step read, copied out by loadMetaData() when first needed
     */
    private $info = null;
    /** @var Ezdb\GenerationLock|null */
    private $lock = null;

    // Per class (eZDFSFileHandler redeclares them: its own settings and cluster handle), hence
    // protected and always reached through static::.
    protected static $settings = null;
    protected static $configured = null;
    /** @var Ezdb\Cluster|null the one cluster handle of this process, shared by all handlers */
    protected static $cluster = null;
    protected static $connectedPid = null;
    /** @var array<int, eZDBFileHandler> handlers holding a generation lock (for the shutdown cleanup) */
    private static $generating = [];
    /** @var array<string, array> processCache rules by their arguments (cacheRules()) */
    private static $cacheRules = [];
    private static $generatingPid = null;

    /**
     * A handler for $filePath (false: no file, for the static-style file* methods). Connects this
     * process on first use; throws Ezdb\Exception when the database cannot be reached.
     */
    public function __construct($filePath = false)
    {
        $this->filePath = self::cleanPath($filePath);
        self::cluster();
    }

    // ---------------------------------------------------------------- configuration

    /**
     * Outside eZ Publish: the settings, e.g. the whole file.ini [ClusteringSettings] section as
     * eZINI or parse_ini_file() returns it, plus CacheGenerationTimeout, StorageFilePermissions,
     * LegacyExpiryFile and URL, Library, ConnectTimeout, Logger. Keys eZ Publish reads for itself
     * (IGNORED_SETTINGS) are ignored; unknown keys are named in a warning and ignored.
     * Takes precedence over eZINI; closes the current connection so the next use reopens it.
     */
    public static function configure(array $settings)
    {
        $settings = self::arraysOf($settings);
        $unknown = array_diff_key($settings, static::DEFAULTS, array_flip(static::IGNORED_SETTINGS));
        static::$configured = array_intersect_key($settings, static::DEFAULTS);
        static::$settings = null;
        if (static::$cluster !== null && static::$connectedPid === getmypid()) {
            // The library keeps a process's connection per distinct settings until told: close
            // the old settings' one, or every reconfiguration would hold another open.
            try {
                static::$cluster->disconnect();
            } catch (Ezdb\Exception $e) {
                // Already gone: nothing to close.
            }
        }
        static::$cluster = null;
        static::$connectedPid = null;
        if ($unknown) {
            $names = implode(', ', array_keys($unknown));
            self::log('warning', "configure: unknown settings $names ignored (known: "
                . implode(', ', array_keys(static::DEFAULTS)) . ')', E_USER_WARNING);
        }
    }

    /** Flat "Name[key]" entries (an INI file read without sections' arrays) become Name => [key => value]. */
    private static function arraysOf(array $settings)
    {
        foreach ($settings as $name => $value) {
            if (is_string($name) && preg_match('/^(\w+)\[(\w*)\]$/', $name, $m)) {
                unset($settings[$name]);
                $settings[$m[1]] = (array) ($settings[$m[1]] ?? []);
                if ($m[2] !== '') {
                    $settings[$m[1]][$m[2]] = $value;
                }
            }
        }
        return $settings;
    }

    /** The settings in force: configure(), else eZ Publish's INI files, else the defaults. */
    public static function settings()
    {
        if (static::$settings === null) {
            $given = static::$configured ?? (class_exists('eZINI') ? static::iniSettings() : []);
            static::$settings = array_merge(static::DEFAULTS, $given);
        }
        return static::$settings;
    }

    /** The settings from eZ Publish's file.ini (SETTINGS_SECTION) and site.ini. */
    protected static function iniSettings()
    {
        $settings = [];
        $file = eZINI::instance('file.ini');
        // NonExistantStaleCacheHandling is a [ClusteringSettings] key for every handler.
        $keys = array_fill_keys(static::FILE_INI_KEYS, static::SETTINGS_SECTION)
            + ['NonExistantStaleCacheHandling' => 'ClusteringSettings'];
        foreach ($keys as $name => $group) {
            if ($file->hasVariable($group, $name)) {
                $settings[$name] = $file->variable($group, $name);
            }
        }
        $site = eZINI::instance('site.ini');
        foreach (static::SITE_INI_KEYS as $name => $group) {
            if ($site->hasVariable($group, $name)) {
                $settings[$name] = $site->variable($group, $name);
            }
        }
        $settings['LegacyExpiryFile'] ??= self::cacheDirectory($site) . '/expiry.php';
        return $settings;
    }

    /**
     * eZ Publish's cache directory, where eZExpiryHandler keeps expiry.php: eZSys::cacheDirectory()
     * when eZ Publish is loaded, else as it computes it from site.ini [FileSettings] VarDir and
     * CacheDir (defaults var and cache; a CacheDir starting with / is used as it is).
     */
    protected static function cacheDirectory($site)
    {
        if (method_exists('eZSys', 'cacheDirectory')) {
            return self::cleanPath((string) eZSys::cacheDirectory());
        }
        $setting = fn ($name, $default) => $site->hasVariable('FileSettings', $name)
            ? (string) $site->variable('FileSettings', $name) : $default;
        $cacheDir = $setting('CacheDir', 'cache');
        $path = substr($cacheDir, 0, 1) === '/' ? $cacheDir : $setting('VarDir', 'var') . '/' . $cacheDir;
        return self::cleanPath($path);
    }

    /** The DSN for the library: URL, or built from DBHost/DBPort/DBSocket/DBUser/DBPassword/DBName. */
    public static function url(array $s)
    {
        if (!empty($s['URL'])) {
            return $s['URL'];
        }
        $auth = rawurlencode((string) $s['DBUser']);
        if ((string) $s['DBPassword'] !== '') {
            $auth .= ':' . rawurlencode((string) $s['DBPassword']);
        }
        $db = rawurlencode((string) $s['DBName']);
        if ((string) $s['DBSocket'] !== '') {
            return "mysql://$auth@localhost/$db?socket=" . rawurlencode((string) $s['DBSocket']);
        }
        $port = (int) $s['DBPort'] ?: 3306;
        return "mysql://$auth@{$s['DBHost']}:$port/$db";
    }

    /**
     * The process-wide cluster handle, opened on first use and connected once per process (with
     * DBConnectRetries attempts), so a bad host or password fails at construction like legacy.
     */
    public static function cluster()
    {
        if (static::$cluster !== null && static::$connectedPid === getmypid()) {
            return static::$cluster;  // the hot path: no settings lookup
        }
        $s = self::settings();
        if (static::$cluster === null) {
            try {
                static::$cluster = Ezdb\Cluster::open(self::url($s), static::clusterOptions($s));
            } catch (Ezdb\Exception $e) {
                throw static::settingsError($e);
            }
        }
        if (static::$connectedPid !== getmypid()) {
            self::connect(static::$cluster, $s);
            static::$connectedPid = getmypid();
        }
        return static::$cluster;
    }

    /** A setting the library refuses; its message names the one to fix. */
    private static function settingsError(Ezdb\Exception $e)
    {
        $where = static::class . ' (file.ini [' . static::SETTINGS_SECTION . '])';
        return new Ezdb\Exception("$where: " . $e->getMessage(), $e->getCode(), $e);
    }

    /** The Ezdb\Cluster::open() options for the settings $s. */
    protected static function clusterOptions(array $s)
    {
        return [
            'chunk_size' => (int) $s['DBChunkSize'],
            'generation_timeout' => (int) $s['CacheGenerationTimeout'],
            'max_attempts' => (int) $s['DBExecuteRetries'],
            'connect_timeout_ms' => (int) $s['ConnectTimeout'],
            'legacy_expiry_file' => self::cleanPath((string) $s['LegacyExpiryFile']),
            'read_replicas' => self::replicaUrls($s),
            'max_replica_lag' => (int) $s['DBMaxReplicaLag'],
            'library' => $s['Library'],
        ];
    }

    /** The URLs of DBReadReplicas: a URL as it is, host[:port] with DBUser, DBPassword and DBName. */
    protected static function replicaUrls(array $s)
    {
        $urls = [];
        foreach ((array) $s['DBReadReplicas'] as $replica) {
            $replica = trim((string) $replica);
            if ($replica === '') {
                continue;  // "DBReadReplicas[]" alone: eZINI's way to start an empty list
            }
            if (str_contains($replica, '://')) {
                $urls[] = $replica;  // the library checks it
                continue;
            }
            [$host, $port] = preg_match('/^(.+):(\d+)$/', $replica, $m) ? [$m[1], (int) $m[2]] : [$replica, 3306];
            $urls[] = self::url(['URL' => null, 'DBHost' => $host, 'DBPort' => $port, 'DBSocket' => ''] + $s);
        }
        return $urls;
    }

    private static function connect(Ezdb\Cluster $cluster, array $s)
    {
        for ($attempt = max(1, (int) $s['DBConnectRetries']); ; $attempt--) {
            try {
                $cluster->connect();
                return;
            } catch (Ezdb\Exception $e) {
                if ($e->getCode() === Ezdb\Exception::CONFIG) {
                    throw static::settingsError($e);  // e.g. a DFS mount point that is not there: no retry
                }
                if ($attempt <= 1) {
                    $password = str_repeat('*', strlen((string) $s['DBPassword']));
                    $where = "host {$s['DBHost']}, user {$s['DBUser']}, password '$password'";
                    $message = static::class . ": cannot connect to the cluster database ($where): " . $e->getMessage();
                    throw new Ezdb\Exception($message, $e->getCode(), $e);
                }
            }
        }
    }

    /** Closes this process's database connection; the next call reconnects (legacy preFork()). */
    public function disconnect()
    {
        if (static::$cluster !== null) {
            static::$cluster->disconnect();
        }
    }

    // ---------------------------------------------------------------- paths and metadata

    /** Legacy cleanPath: runs of / and \ become one /, one trailing / goes; non-strings unchanged. */
    public static function cleanPath($path)
    {
        return is_string($path) ? Ezdb\Rules::cleanPath($path) : $path;
    }

    /** cleanPath() as a string: a missing path (null, false) becomes '', which the library refuses. */
    private static function nameOf($path)
    {
        return (string) self::cleanPath($path);
    }

    /** Whether the handler names a file: legacy treats any false-like path (false, null, '') as none. */
    private function hasPath()
    {
        return $this->filePath !== false && $this->filePath !== null && $this->filePath !== '';
    }

    /** Loads the row of the handler's path once (again with $force); a missing row is remembered. */
    public function loadMetaData($force = false)
    {
        if ($this->info instanceof Ezdb\CacheRun && !$force) {
            // What processCache read, kept in its run: the same row, no second read.
            try {
                $this->info = $this->info->row() ?? false;
            } catch (Ezdb\Exception $e) {
                self::log('error', 'stat: ' . $e->getMessage());
                $this->info = false;
            }
            return;
        }
        if (!$this->hasPath() || ($this->info !== null && !$force)) {
            return;
        }
        try {
            // A hot call (every processCache): no closure, no settings lookup.
            $this->info = self::cluster()->stat($this->filePath) ?? false;
        } catch (Ezdb\Exception $e) {
            self::log('error', 'stat: ' . $e->getMessage());
            $this->info = false;
        }
    }

    public function __get($name)
    {
        if ($name === 'metaData') {
            $this->loadMetaData();
            return $this->info ? self::legacyRow($this->info) : false;
        }
        if ($name === 'cacheType') {
            return self::cacheTypeOf((string) $this->filePath);
        }
        trigger_error(static::class . ": undefined property $name", E_USER_NOTICE);
        return null;
    }

    public function __isset($name)
    {
        return $name === 'metaData' || $name === 'cacheType';
    }

    /**
     * The row as the legacy handler returned it: every column of ezdbfile in table order, each a
     * string as mysqli returns them (name_hash is md5(name), the primary key).
     */
    private static function legacyRow(Ezdb\FileInfo $info)
    {
        return [
            'datatype' => $info->datatype,
            'name' => $info->name,
            'name_trunk' => $info->nameTrunk,
            'name_hash' => md5($info->name),
            'scope' => $info->scope,
            'size' => (string) $info->size,
            'mtime' => (string) $info->mtime,
            'expired' => $info->deleted ? '1' : '0',
        ];
    }

    /** Which NonExistantStaleCacheHandling entry applies: viewcache, cacheblock or misc. */
    private static function cacheTypeOf($path)
    {
        return Ezdb\Rules::cacheType((string) $path);
    }

    /** The row as an array (see legacyRow), or false when there is none. */
    public function stat()
    {
        return $this->metaData;
    }

    public function size()
    {
        $this->loadMetaData();
        return $this->info ? $this->info->size : null;
    }

    public function mtime()
    {
        $this->loadMetaData();
        return $this->info ? $this->info->mtime : null;
    }

    public function name()
    {
        return $this->filePath;
    }

    // ---------------------------------------------------------------- storing

    /**
     * Stores a local file. Fixed: the local file is deleted ($delete) only after a successful
     * store, and the outcome is returned (true/false) instead of nothing.
     */
    public function fileStore($filePath, $scope = false, $delete = false, $datatype = false)
    {
        $filePath = self::nameOf($filePath);
        clearstatcache(true, $filePath);
        if (!is_file($filePath) || !is_readable($filePath)) {
            self::log('error', "fileStore: cannot read the local file '$filePath'; nothing stored");
            return false;
        }
        $stored = self::attempt('fileStore', fn ($c) => $c->storeFile($filePath, $filePath,
            self::scopeOrDefault($scope), self::datatypeOrDefault($datatype), (int) filemtime($filePath)), false);
        $this->forget($filePath);
        if ($stored && $delete) {
            @unlink($filePath);
        }
        return (bool) $stored;
    }

    /** Stores $contents under $filePath (mtime: the database clock). Returns true/false. */
    public function fileStoreContents($filePath, $contents, $scope = false, $datatype = false)
    {
        $filePath = self::nameOf($filePath);
        $stored = self::attempt('fileStoreContents', fn ($c) => $c->store($filePath, (string) $contents,
            self::scopeOrDefault($scope), self::datatypeOrDefault($datatype)), false);
        $this->forget($filePath);
        return (bool) $stored;
    }

    /**
     * Stores $contents under the handler's path: while a generation lock is held, stages it
     * under the ".generating" name (endCacheGeneration() publishes it). $storeLocally also
     * writes the local file atomically. The handler's metadata is refreshed (fixed).
     */
    public function storeContents($contents, $scope = false, $datatype = false, $storeLocally = false)
    {
        if (!$this->hasPath()) {
            return false;
        }
        $contents = (string) $contents;
        $scope = self::scopeOrDefault($scope);
        $datatype = self::datatypeOrDefault($datatype);
        if ($this->lock !== null) {
            $stored = self::attempt('storeContents', fn () => $this->lock->stage($contents, $scope, $datatype) ?? true, false);
            $this->info = null;
        } else {
            $stored = self::attempt('storeContents', fn ($c) => $c->store($this->filePath, $contents, $scope, $datatype), false);
            $this->info = $stored ?: null;
        }
        if ($stored && $storeLocally) {
            self::writeLocal($this->filePath, $contents);
        }
        return (bool) $stored;
    }

    private static function scopeOrDefault($scope)
    {
        return ($scope === false || $scope === null || $scope === '') ? 'UNKNOWN_SCOPE' : (string) $scope;
    }

    private static function datatypeOrDefault($datatype)
    {
        return ($datatype === false || $datatype === null || $datatype === '') ? 'misc' : (string) $datatype;
    }

    // ---------------------------------------------------------------- fetching

    /**
     * Downloads the file (deleted rows too, as legacy) to the same local path, atomically, with
     * StorageFilePermissions. Returns the path, or false when there is no row or on error.
     */
    public function fileFetch($filePath)
    {
        $filePath = self::nameOf($filePath);
        return self::download($filePath, $filePath) ? $filePath : false;
    }

    /**
     * Downloads the handler's file. With $noLocalCache, a local copy that is not older than the
     * row and has its size is kept. Returns the local path or false (legacy returned nothing).
     */
    public function fetch($noLocalCache = false)
    {
        if (!$this->hasPath()) {
            return false;
        }
        if ($noLocalCache && $this->localCopyIsCurrent()) {
            return $this->filePath;
        }
        return $this->fileFetch($this->filePath);
    }

    private function localCopyIsCurrent()
    {
        // As legacy: compared with the row as it is now, not as this handler last saw it.
        $this->loadMetaData(true);
        $mtime = self::localMtime($this->filePath);
        return $this->info && $mtime !== false && is_readable($this->filePath)
            && $mtime >= $this->info->mtime && filesize($this->filePath) === $this->info->size;
    }

    /** Downloads to a new unique name beside the file (".<pid><random>tmp" before the extension). */
    public function fetchUnique()
    {
        if (!$this->hasPath()) {
            return false;
        }
        $unique = self::uniqueName($this->filePath);
        return self::download($this->filePath, $unique) ? $unique : false;
    }

    private static function uniqueName($path)
    {
        $dir = dirname($path);
        $base = basename($path);
        $dot = strrpos($base, '.');
        $tag = '.' . getmypid() . bin2hex(random_bytes(4)) . 'tmp';
        $base = $dot === false || $dot === 0 ? $base . $tag : substr($base, 0, $dot) . $tag . substr($base, $dot);
        return ($dir === '.' ? '' : $dir . '/') . $base;
    }

    /** The bytes (deleted rows too, as legacy), or false when there is no row or on error. */
    public function fileFetchContents($filePath)
    {
        $filePath = self::nameOf($filePath);
        return self::attempt('fileFetchContents', fn ($c) => $c->fetch($filePath, true) ?? false, false);
    }

    public function fetchContents()
    {
        return !$this->hasPath() ? false : $this->fileFetchContents($this->filePath);
    }

    /**
     * Writes bytes [$offset, $offset + $length) (or to the end) of the file to the output, all
     * from one version (one statement: a rewrite meanwhile never mixes versions). As legacy, a
     * deleted row is still sent, and a missing row writes nothing (false here; legacy returned
     * nothing). A range starting past the end writes nothing and is an error (false).
     */
    public function passthrough($offset = 0, $length = false)
    {
        if (!$this->hasPath()) {
            return false;
        }
        if ($length !== false && (int) $length <= 0) {
            return true;
        }
        $length = $length === false ? 0 : (int) $length;
        $info = self::attempt('passthrough', fn ($c) => $c->passthrough($this->filePath, max(0, (int) $offset), $length, true), null);
        return $info !== null;
    }

    /** fileFetch() through the library, then the legacy StorageFilePermissions. */
    private static function download($name, $localPath)
    {
        $info = self::attempt('fetch', fn ($c) => $c->fetchToFile($name, $localPath, true), null);
        if (!$info) {
            return false;
        }
        @chmod($localPath, self::filePermissions());
        return true;
    }

    // ---------------------------------------------------------------- processCache

    /**
     * The legacy cache protocol (spec section 4), decided by libezdb (Ezdb\CacheRun): serve the
     * local copy while it is not older than the row and fresh for $ttl/$expiry; else download a
     * fresh row; else take the generation lock (re-checking the row on a separate connection
     * once it is ours), call $generateCallback and publish its result; while another process
     * generates, serve the stale copy, or wait / generate privately
     * (NonExistantStaleCacheHandling) when none exists. This method only runs the callbacks and
     * the local files. $generateCallback null: return eZClusterFileFailure(2) with the lock held
     * (call storeCache); false: never generate.
     */
    public function processCache($retrieveCallback, $generateCallback = null, $ttl = null, $expiry = null, $extraData = null)
    {
        if (!$this->hasPath()) {
            return self::manualGeneration();
        }
        $path = $this->filePath;
        $handling = self::settings()['NonExistantStaleCacheHandling'];
        $run = self::cluster()->cacheRun($path, self::cacheRules(
            self::limitOrNull($ttl),
            self::limitOrNull($expiry),
            $retrieveCallback !== null,
            $generateCallback === false ? Ezdb\CacheRun::GENERATE_NEVER
                : ($generateCallback === null ? Ezdb\CacheRun::GENERATE_LOCKED : Ezdb\CacheRun::GENERATE_ALWAYS),
            is_array($handling) && ($handling[self::cacheTypeOf($path)] ?? 'wait') === 'generate',
            $this->lock !== null
        ));
        $event = null;
        while (true) {
            $local = $retrieveCallback === null ? 0 : (int) self::localMtime($path);
            try {
                $step = $event === null ? $run->begin($local) : $run->next($event, $local);
            } catch (Ezdb\Exception $e) {
                self::log('error', "processCache: {$e->getMessage()}");
                if (!$run->isBegun()) {
                    // Not even a run: no one is known to generate, so generate for this caller.
                    return is_callable($generateCallback)
                        ? $this->storeCache($this->callGenerate($generateCallback, false, $extraData)) : self::manualGeneration();
                }
                $event = Ezdb\CacheRun::CONTINUE;
                continue;
            }
            if ($retrieveCallback !== null) {
                // The row stays in the run until loadMetaData() asks for it: a hit needs none.
                $this->info = $step['hasRow'] ? $run : false;
            }
            $event = null;
            switch ($step['action']) {
                case Ezdb\CacheRun::SERVE_LOCAL:
                    $value = $this->retrieve($retrieveCallback, $path, $step['retrieveMtime'], $extraData);
                    break;
                case Ezdb\CacheRun::SERVE_STORED:
                    if (!self::download($path, $path)) {
                        $event = Ezdb\CacheRun::SERVE_FAILED;
                        continue 2;
                    }
                    @touch($path, $step['localMtime']);
                    $value = $this->retrieve($retrieveCallback, $path, $step['retrieveMtime'], $extraData);
                    break;
                case Ezdb\CacheRun::GENERATE:
                    $this->hold($step['lock']);
                    if ($generateCallback === null) {
                        return self::manualGeneration();
                    }
                    return $this->storeCache($this->callGenerate($generateCallback, false, $extraData));
                case Ezdb\CacheRun::GENERATE_UNSTORED:
                    return is_callable($generateCallback)
                        ? $this->storeCache($this->callGenerate($generateCallback, $step['noCache'], $extraData)) : self::manualGeneration();
                case Ezdb\CacheRun::WAIT:
                    usleep(1000 * $step['waitMs']);
                    $event = Ezdb\CacheRun::WAITED;
                    continue 2;
                default:
                    return self::manualGeneration();
            }
            if (!$value instanceof eZClusterFileFailure) {
                return $value;
            }
            $code = $value->errno();
            if ($code != 1 && $code != 3) {
                self::log('error', "processCache: the retrieve callback failed with code $code for '$path'");
                return null;
            }
            $event = $code == 3 ? Ezdb\CacheRun::NO_CACHE : Ezdb\CacheRun::SERVE_FAILED;
        }
    }

    /**
     * The rules of a processCache call (Cluster::cacheRun), one array per distinct set kept for
     * the next calls: Cluster writes an array into the library's struct only when it is not the
     * one written last, a check that is free for the same array and costs a full comparison for
     * an equal one (every hit passes here).
     */
    private static function cacheRules($ttl, $expiry, $retrieve, $generate, $generateWhileBusy, $holdsLock)
    {
        $key = "$ttl,$expiry,$generate," . (int) $retrieve . (int) $generateWhileBusy . (int) $holdsLock;
        if (isset(self::$cacheRules[$key])) {
            return self::$cacheRules[$key];
        }
        if (count(self::$cacheRules) >= self::CACHE_RULES_KEPT) {
            self::$cacheRules = [];
        }
        return self::$cacheRules[$key] = [
            'ttl' => $ttl,
            'expiry' => $expiry,
            'retrieve' => $retrieve,
            'generate' => $generate,
            'generate_while_busy' => $generateWhileBusy,
            'holds_lock' => $holdsLock,
            'max_passes' => self::MAX_PASSES,
            'poll_ms' => self::WAIT_POLL_MS,
        ];
    }

    /** processCache()'s answer when the caller must generate and call storeCache() (made only then). */
    private static function manualGeneration()
    {
        return new eZClusterFileFailure(2, 'Manual generation of file data is required, calling storeCache is required');
    }

    /** Negative (or non-numeric) ttl and expiry mean "no limit". */
    private static function limitOrNull($value)
    {
        return is_numeric($value) && $value >= 0 ? (int) $value : null;
    }

    private function retrieve($retrieve, $path, $mtime, $extraData)
    {
        // Called directly (any callable, as call_user_func_array takes it): every hit passes here.
        return $extraData === null ? $retrieve($path, $mtime) : $retrieve($path, $mtime, $extraData);
    }

    private function callGenerate($generate, $noCache, $extraData)
    {
        if ($noCache) {
            $extraData = is_array($extraData) ? $extraData + ['noCache' => true] : ['noCache' => true];
        }
        $args = [$this->filePath];
        if ($extraData !== null) {
            $args[] = $extraData;
        }
        return call_user_func_array($generate, $args);
    }

    /**
     * Stores a generate result (a string, or an array with scope, datatype, content, binarydata,
     * store) and returns the value for the caller. Publishes only while this handler holds the
     * generation lock, and only if it still owns it; never deletes anything otherwise (fixed).
     */
    public function storeCache($fileData)
    {
        [$scope, $datatype, $content, $binaryData, $store] = self::parseGenerated($fileData);
        if ($content === null && $binaryData === null) {
            self::log('error', "storeCache: the generate result for '$this->filePath' has neither content nor binarydata");
            $this->abortCacheGeneration();
            return null;
        }
        if ($binaryData === null) {
            $binaryData = "<?php\n\treturn " . var_export($content, true) . ";\n?>\n";
        }
        $result = $content ?? $binaryData;
        if ($this->lock === null) {
            return $result;
        }
        if (!$store) {
            $this->abortCacheGeneration();
            return $result;
        }
        $this->publish((string) $binaryData, $scope, $datatype);
        return $result;
    }

    /** @return array{0:string,1:string,2:mixed,3:?string,4:bool} scope, datatype, content, binary data, store */
    private static function parseGenerated($fileData)
    {
        if (!is_array($fileData)) {
            return ['', '', $fileData, $fileData === null ? null : (string) $fileData, true];
        }
        return [
            (string) ($fileData['scope'] ?? ''),
            (string) ($fileData['datatype'] ?? ''),
            $fileData['content'] ?? null,
            isset($fileData['binarydata']) ? (string) $fileData['binarydata'] : null,
            (bool) ($fileData['store'] ?? true),
        ];
    }

    /**
     * Publishes through the held lock, then writes the local copy (not when a clear during the
     * generation made the result expired); a lost lock publishes nothing.
     */
    private function publish($bytes, $scope, $datatype)
    {
        $lock = $this->lock;
        $this->releaseLockState();
        $info = self::attempt('storeCache', fn () => $lock->publish($bytes, $scope, $datatype), null);
        $this->info = $info ?: null;
        if ($info && $info->mtime > 0 && self::writeLocal($this->filePath, $bytes)) {
            @touch($this->filePath, $info->mtime + 1);
        }
    }

    /** processCache(..., false): read only; null instead of a failure object. */
    public function processFile($callback, $expiry = false, $extraData = null)
    {
        $result = $this->processCache($callback, false, null, $expiry === false ? null : $expiry, $extraData);
        return $result instanceof eZClusterFileFailure ? null : $result;
    }

    // ---------------------------------------------------------------- expiry

    /** Legacy isFileExpired (spec 5.1); see fileExpired(). */
    public function isFileExpired($fname, $mtime, $expiry, $curtime, $ttl)
    {
        return self::fileExpired($mtime, $expiry, $curtime, $ttl);
    }

    /**
     * A missing (false/0/null) or negative mtime is expired; without ttl: mtime < expiry;
     * with ttl: mtime < max(expiry, curtime - ttl). Non-numeric expiry disables it.
     */
    public static function fileExpired($mtime, $expiry, $curtime, $ttl)
    {
        return Ezdb\Rules::isFileExpired(
            (int) $mtime,
            is_numeric($expiry) ? (int) $expiry : null,
            (int) $curtime,
            $ttl === null ? null : (int) $ttl
        );
    }

    /** Expired by the row's mtime (a missing row, a deleted row or a global expiry key: expired). */
    public function isExpired($expiry, $curtime, $ttl)
    {
        $this->loadMetaData();
        return !$this->info || $this->info->isExpired() || self::fileExpired($this->info->mtime, $expiry, $curtime, $ttl);
    }

    public function isLocalFileExpired($expiry, $curtime, $ttl)
    {
        return self::fileExpired(self::localMtime((string) $this->filePath), $expiry, $curtime, $ttl);
    }

    public function isDBFileExpired($expiry, $curtime, $ttl)
    {
        return $this->isExpired($expiry, $curtime, $ttl);
    }

    // ---------------------------------------------------------------- existence and deletion

    /** True when a live row exists (a deleted or globally expired file does not exist). */
    public function fileExists($path)
    {
        // The library cleans every name itself (the same rule as cleanPath()): a hot call, so no
        // cleanPath() call, no closure, no settings lookup.
        $path = (string) $path;
        try {
            return self::cluster()->exists($path);
        } catch (Ezdb\Exception $e) {
            self::log('error', 'fileExists: ' . $e->getMessage());
            return false;
        }
    }

    public function exists()
    {
        return $this->hasPath() && $this->fileExists($this->filePath);
    }

    /**
     * Soft-deletes $path; with $fnamePart (even ''), every file named "$path/$fnamePart*"
     * (LIKE wildcards in either are literal). Returns true/false.
     */
    public function fileDelete($path, $fnamePart = false)
    {
        $path = self::nameOf($path);
        $deleted = self::attempt('fileDelete', fn ($c) => $fnamePart === false
            ? $c->delete($path) : $c->deletePrefix($path, (string) self::cleanPath($fnamePart)), false);
        $this->info = null;
        return $deleted !== false;
    }

    public function delete()
    {
        return $this->hasPath() && $this->fileDelete($this->filePath);
    }

    /** Soft-deletes the files matching a glob (*, ?, {a,b}; a dot is literal). */
    public function fileDeleteByWildcard($wildcard)
    {
        $deleted = self::attempt('fileDeleteByWildcard', fn ($c) => $c->deleteWildcard((string) $wildcard), false);
        $this->info = null;
        return $deleted !== false;
    }

    /** Soft-deletes "$commonPath/$dir/$commonSuffix*" for each dir (by name_trunk under caches). */
    public function fileDeleteByDirList($dirList, $commonPath, $commonSuffix)
    {
        $clean = fn ($path) => (string) self::cleanPath((string) $path);
        $deleted = self::attempt('fileDeleteByDirList', fn ($c) => $c->deleteByDirList(array_map($clean, (array) $dirList),
            $clean($commonPath), $clean($commonSuffix)), false);
        $this->info = null;
        return $deleted !== false;
    }

    /** Removes the local copy and the parent directories it leaves empty; the database is untouched. */
    public function fileDeleteLocal($path)
    {
        $path = self::nameOf($path);
        @unlink($path);
        self::removeEmptyParents(dirname($path));
    }

    public function deleteLocal()
    {
        if ($this->hasPath()) {
            $this->fileDeleteLocal($this->filePath);
        }
    }

    /**
     * Physically removes the handler's path and everything under it: soft-deleted rows, or with
     * $expiry every row older than it; then the local file or directory. $printCallback gets
     * (path, rows removed).
     */
    public function purge($printCallback = false, $microsleep = false, $max = false, $expiry = false)
    {
        if (!$this->hasPath()) {
            return false;
        }
        $olderThan = $expiry === false || $expiry === null ? null : (int) $expiry;
        $batch = (int) $max ?: 100;
        do {
            // One batch per call, so the callback reports each and $microsleep paces them.
            $count = self::attempt('purge', fn ($c) => $c->purgePrefix($this->filePath, $olderThan, $batch, 1), false);
            if ($printCallback && $count !== false) {
                call_user_func_array($printCallback, [$this->filePath, $count]);
            }
            if ($count && $microsleep) {
                usleep((int) $microsleep);
            }
        } while ($count);
        self::removeLocalTree($this->filePath);
        self::removeEmptyParents(dirname($this->filePath));
        $this->info = null;
        return $count !== false;
    }

    // ---------------------------------------------------------------- copy, move, list

    /** Copies a file (same datatype, scope, mtime); false (and logged) when $srcPath has no row. */
    public function fileCopy($srcPath, $dstPath)
    {
        return $this->copyWith('copy', $srcPath, $dstPath);
    }

    /** As fileCopy(): the database has no links. */
    public function fileLinkCopy($srcPath, $dstPath, $symLink)
    {
        return $this->copyWith('linkCopy', $srcPath, $dstPath);
    }

    private function copyWith($method, $srcPath, $dstPath)
    {
        [$src, $dst] = [self::nameOf($srcPath), self::nameOf($dstPath)];
        $copied = self::attempt($method, fn ($c) => $c->$method($src, $dst), false);
        if (!$copied) {
            self::log('error', "$method: cannot copy '$src' to '$dst' (no such file, or an error above)");
        }
        $this->forget($dst);
        return $copied;
    }

    /** Renames a file, replacing the destination; false when the source has no row. */
    public function fileMove($srcPath, $dstPath)
    {
        [$src, $dst] = [self::nameOf($srcPath), self::nameOf($dstPath)];
        if ($src === $dst) {
            return true;
        }
        $moved = self::attempt('fileMove', fn ($c) => $c->move($src, $dst), false);
        $this->forget($src);
        $this->forget($dst);
        return $moved;
    }

    /** Moves the handler's file; the handler then refers to $dstPath (fixed). */
    public function move($dstPath)
    {
        if (!$this->hasPath() || !$this->fileMove($this->filePath, $dstPath)) {
            return false;
        }
        $this->filePath = self::cleanPath($dstPath);
        $this->info = null;
        return true;
    }

    /** Names of all rows, or of those in (with $excludeScopes: not in) $scopes; false on error. */
    public function getFileList($scopes = false, $excludeScopes = false)
    {
        $scopes = is_array($scopes) ? array_map('strval', $scopes) : [];
        return self::attempt('getFileList', fn ($c) => $c->list($scopes, (bool) $excludeScopes), false);
    }

    /**
     * Names of deleted rows in $scopes (at least one), $limit = [offset, count] (false: all),
     * deleted from an mtime older than $expiry seconds ago when given.
     */
    public function fetchExpiredItems($scopes, $limit = [0, 100], $expiry = false)
    {
        if (!is_array($scopes) || $scopes === []) {
            throw new InvalidArgumentException('fetchExpiredItems: give at least one scope');
        }
        [$offset, $count] = is_array($limit) ? array_values($limit) + [0, 100] : [0, 0xFFFFFFFF];
        $olderThan = $expiry === false || $expiry === null ? null : time() - (int) $expiry;
        return self::attempt('fetchExpiredItems', fn ($c) => $c->listExpired(array_map('strval', $scopes),
            $olderThan, (int) $offset, (int) $count), false);
    }

    // ---------------------------------------------------------------- generation lock

    /**
     * Takes the generation lock (the "<path>.generating" row): true, and the handler's path is
     * the lock name until end/abort; or the seconds the current holder keeps it; false on error.
     */
    public function startCacheGeneration()
    {
        if ($this->lock !== null) {
            return true;
        }
        if (!$this->hasPath()) {
            return false;
        }
        $started = self::attempt('startCacheGeneration', fn ($c) => $c->startGeneration($this->filePath), false);
        if ($started instanceof Ezdb\GenerationLock) {
            $this->hold($started);
            return true;
        }
        return $started;
    }

    /**
     * Publishes what storeContents() staged and releases the lock ($rename false: only releases
     * it, the image-alias form). False when not generating, when nothing was staged, or when
     * the lock was lost (nothing published then: fixed).
     */
    public function endCacheGeneration($rename = true)
    {
        if ($this->lock === null) {
            return false;
        }
        $lock = $this->lock;
        $this->releaseLockState();
        if (!$rename) {
            return self::attempt('endCacheGeneration', fn () => $lock->abort() ?? true, false);
        }
        $info = self::attempt('endCacheGeneration', fn () => $lock->end(), null);
        $this->info = $info ?: null;
        return (bool) $info;
    }

    /** Releases the lock without publishing; does nothing when not generating (fixed). */
    public function abortCacheGeneration()
    {
        if ($this->lock === null) {
            return false;
        }
        $lock = $this->lock;
        $this->releaseLockState();
        return self::attempt('abortCacheGeneration', fn () => $lock->abort() ?? true, false);
    }

    /** Refreshes the lock; false when it was taken over or removed (fixed), or not held. */
    public function checkCacheGenerationTimeout()
    {
        if ($this->lock === null) {
            return false;
        }
        return self::attempt('checkCacheGenerationTimeout', fn () => $this->lock->check(), false);
    }

    private function hold(Ezdb\GenerationLock $lock)
    {
        // Registered while filePath is still the real path: eZ Publish keys its list by it.
        self::register($this);
        $this->lock = $lock;
        $this->realFilePath = $this->filePath;
        $this->filePath = $lock->lockName();
        $this->info = null;
    }

    private function releaseLockState()
    {
        $this->filePath = $this->realFilePath;
        $this->realFilePath = null;
        $this->lock = null;
        $this->info = null;
        self::unregister($this);
    }

    private static function register(eZDBFileHandler $handler)
    {
        if (self::$generatingPid !== getmypid()) {
            self::$generating = [];
            self::$generatingPid = getmypid();
            register_shutdown_function([self::class, 'cleanupGeneratingFiles']);
        }
        self::$generating[spl_object_id($handler)] = $handler;
        if (method_exists('eZClusterFileHandler', 'addGeneratingFile')) {
            eZClusterFileHandler::addGeneratingFile($handler);
        }
    }

    private static function unregister(eZDBFileHandler $handler)
    {
        unset(self::$generating[spl_object_id($handler)]);
        if (method_exists('eZClusterFileHandler', 'removeGeneratingFile')) {
            eZClusterFileHandler::removeGeneratingFile($handler);
        }
    }

    /**
     * Aborts every generation this process still holds (run at shutdown); true when there
     * was one. A forked child never touches the locks it inherited from its parent.
     */
    public static function cleanupGeneratingFiles()
    {
        if (self::$generatingPid !== getmypid() || self::$generating === []) {
            return false;
        }
        foreach (self::$generating as $handler) {
            $handler::log('warning', "aborting the unfinished cache generation of '{$handler->realFilePath}'");
            $handler->abortCacheGeneration();
        }
        return true;
    }

    // ---------------------------------------------------------------- capabilities

    public function requiresClusterizing()
    {
        return true;
    }

    public function requiresPurge()
    {
        return true;
    }

    public function hasStaleCacheSupport()
    {
        return true;
    }

    // ---------------------------------------------------------------- helpers

    /**
     * Runs $operation on the shared cluster; a library failure is logged and $onError returned
     * (legacy methods report failures by their return value, not by exceptions).
     */
    protected static function attempt($what, callable $operation, $onError)
    {
        try {
            return $operation(self::cluster());
        } catch (Ezdb\Exception $e) {
            self::log('error', "$what: " . $e->getMessage());
            return $onError;
        }
    }

    /**
     * To the Logger setting, else eZDebug, else trigger_error($phpError) when given (mistakes
     * of the caller's own, such as a misspelt setting), else error_log.
     */
    protected static function log($level, $message, $phpError = null)
    {
        $logger = self::settings()['Logger'];
        if (is_callable($logger)) {
            $logger($level, $message);
        } elseif (class_exists('eZDebug', false)) {
            $level === 'error' ? eZDebug::writeError($message, static::class) : eZDebug::writeWarning($message, static::class);
        } elseif ($phpError !== null) {
            trigger_error(static::class . ": $message", $phpError);
        } else {
            error_log(static::class . " $level: $message");
        }
    }

    /** Forgets the cached row when $path is the handler's own file. */
    private function forget($path)
    {
        if ($path === $this->filePath) {
            $this->info = null;
        }
    }

    private static function localMtime($path)
    {
        clearstatcache(true, $path);
        return @filemtime($path);
    }

    private static function filePermissions()
    {
        return octdec((string) self::settings()['StorageFilePermissions']);
    }

    /** Writes a local copy atomically (temporary file beside it, then rename). */
    private static function writeLocal($path, $bytes)
    {
        $dir = dirname($path);
        if (!is_dir($dir) && !@mkdir($dir, 0777, true) && !is_dir($dir)) {
            self::log('warning', "cannot create the directory '$dir' for the local copy");
            return false;
        }
        $temp = $dir . '/.' . basename($path) . '.' . getmypid() . bin2hex(random_bytes(4)) . '.tmp';
        if (@file_put_contents($temp, $bytes) !== strlen($bytes) || !@chmod($temp, self::filePermissions())
            || !@rename($temp, $path)) {
            @unlink($temp);
            self::log('warning', "cannot write the local copy '$path'");
            return false;
        }
        return true;
    }

    /** Removes a local file, or a local directory with everything in it. */
    private static function removeLocalTree($path)
    {
        if (is_dir($path) && !is_link($path)) {
            foreach (scandir($path) ?: [] as $entry) {
                if ($entry !== '.' && $entry !== '..') {
                    self::removeLocalTree("$path/$entry");
                }
            }
            @rmdir($path);
        } elseif (file_exists($path) || is_link($path)) {
            @unlink($path);
        }
    }

    /** Removes $dir and its parents while they are empty (relative paths stop at the top). */
    private static function removeEmptyParents($dir)
    {
        while ($dir !== '' && $dir !== '.' && $dir !== '/' && @rmdir($dir)) {
            $dir = dirname($dir);
        }
    }
}
