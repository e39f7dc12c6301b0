<?php
// eZ Publish legacy's eZDFS cluster file handler as a drop-in over libezdb: eZDBFileHandler's
// methods and processCache protocol on the eZDFS layout (rows in ezdfsfile / ezdfsfile_cache,
// bytes as plain files at <MountPointPath>/<name>), configured from file.ini
// [eZDFSClusteringSettings]. Only what eZDFS does differently is here.

require_once __DIR__ . '/eZDBFileHandler.php';

class eZDFSFileHandler extends eZDBFileHandler
{
    /**
     * Settings and their defaults (legacy file.ini [eZDFSClusteringSettings] / site.ini names).
     * No DBChunkSize: the bytes are files on the mount. Null: the library's default (the cache
     * table ezdfsfile_cache, the markers cache and storage).
     */
    const DEFAULTS = [
        // The shared directory every node mounts (absolute, or relative to the eZ Publish root);
        // required: an unset or missing mount point fails the constructor.
        'MountPointPath' => '',
        'DBHost' => 'dbhost',
        'DBPort' => 3306,
        'DBSocket' => '',
        'DBName' => 'cluster',
        'DBUser' => 'root',
        'DBPassword' => '',
        'DBExecuteRetries' => 20,
        'DBConnectRetries' => 3,
        // The cache table (CLUSTER_METADATA_TABLE_CACHE wins inside eZ Publish, as legacy); set it
        // to ezdfsfile for one table.
        'MetaDataTableNameCache' => null,
        'NonExistantStaleCacheHandling' => ['viewcache' => 'wait', 'cacheblock' => 'wait', 'misc' => 'wait'],
        'CacheGenerationTimeout' => 60,
        'StorageFilePermissions' => '0666',
        // site.ini [FileSettings]: a name containing CacheDir (and not StorageDir) is a cache file.
        'CacheDir' => null,
        'StorageDir' => null,
        'LegacyExpiryFile' => null,
        // Read replicas, as eZDBFileHandler's.
        'DBReadReplicas' => [],
        'DBMaxReplicaLag' => 0,
        'URL' => null,
        'Library' => null,
        'ConnectTimeout' => 0,
        'Logger' => null,
    ];

    /**
     * Keys eZ Publish reads for itself (the handler, its metadata and share backend classes),
     * and the share copy retries (the library copies from the mount in one atomic step).
     */
    const IGNORED_SETTINGS = ['FileHandler', 'DBBackend', 'DFSBackend', 'MaxCopyRetries', 'ExtensionDirectories'];

    const SETTINGS_SECTION = 'eZDFSClusteringSettings';
    const FILE_INI_KEYS = ['MountPointPath', 'DBHost', 'DBPort', 'DBSocket', 'DBName', 'DBUser', 'DBPassword',
        'DBExecuteRetries', 'DBConnectRetries', 'MetaDataTableNameCache', 'LegacyExpiryFile', 'DBReadReplicas',
        'DBMaxReplicaLag'];
    const SITE_INI_KEYS = ['CacheGenerationTimeout' => 'ContentSettings', 'StorageFilePermissions' => 'FileSettings',
        'CacheDir' => 'FileSettings', 'StorageDir' => 'FileSettings'];

    // Its own settings and cluster handle: an eZDBFileHandler in the same process keeps its own.
    protected static $settings = null;
    protected static $configured = null;
    protected static $cluster = null;
    protected static $connectedPid = null;

    protected static function iniSettings()
    {
        $settings = parent::iniSettings();
        if (defined('CLUSTER_METADATA_TABLE_CACHE')) {
            $settings['MetaDataTableNameCache'] = CLUSTER_METADATA_TABLE_CACHE;
        }
        return $settings;
    }

    /** The eZDFS layout; the library checks it (and the mount point, when it connects). */
    protected static function clusterOptions(array $s)
    {
        $options = parent::clusterOptions($s + ['DBChunkSize' => 0]);
        unset($options['chunk_size']);
        return $options + [
            'layout' => 'dfs',
            'mount_point' => (string) $s['MountPointPath'],
            'dfs_cache_table' => (string) $s['MetaDataTableNameCache'],
            'cache_dir' => (string) $s['CacheDir'],
            'storage_dir' => (string) $s['StorageDir'],
        ];
    }

    /** Downloads the file; as legacy eZDFS, always from the mount ($noLocalCache is ignored). */
    public function fetch($noLocalCache = false)
    {
        return parent::fetch(false);
    }

    /** True when a live row exists; with $checkDFSFile, its file on the mount too. */
    public function fileExists($path, $checkDFSFile = false)
    {
        return parent::fileExists($path) && (!$checkDFSFile || is_file(self::mountPathOf($path)));
    }

    public function exists($checkDFSFile = false)
    {
        return parent::exists() && (!$checkDFSFile || is_file(self::mountPathOf($this->filePath)));
    }

    /** As eZDBFileHandler; $fnamePart true (eZDFS): every file under "$path/". */
    public function fileDelete($path, $fnamePart = false)
    {
        return parent::fileDelete($path, $fnamePart === true ? '' : $fnamePart);
    }

    /** The row's datatype, or null when there is no row or it has none. */
    public function dataType()
    {
        $row = $this->metaData;
        return $row && $row['datatype'] !== '' ? $row['datatype'] : null;
    }

    /**
     * As eZDBFileHandler, with eZDFS's extra arguments: names starting with $path (literally),
     * and $limit = [offset, count] over the whole list (legacy applied it to each table).
     */
    public function getFileList($scopes = false, $excludeScopes = false, $limit = false, $path = false)
    {
        $names = parent::getFileList($scopes, $excludeScopes);
        if ($names === false) {
            return false;
        }
        if (is_string($path) && $path !== '') {
            $names = array_values(array_filter($names, fn ($name) => str_starts_with($name, $path)));
        }
        if (is_array($limit) && array_sum($limit) > 0) {
            [$offset, $count] = array_values($limit) + [0, 0];
            $names = array_slice($names, (int) $offset, (int) $count);
        }
        return $names;
    }

    /** The public URL of $path: the path itself, as legacy's default share backend answers. */
    public function applyServerUri($path)
    {
        return $path;
    }

    /** "<MountPointPath>/<name>": where the bytes of $path are. */
    private static function mountPathOf($path)
    {
        return rtrim((string) static::settings()['MountPointPath'], '/') . '/' . self::cleanPath((string) $path);
    }
}
