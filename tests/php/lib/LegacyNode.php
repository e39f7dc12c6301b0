<?php
// A legacy eZDB node simulated with plain mysqli: the statements and row layout of spec sections
// 2 and 3.9 (md5 name_hash, chunk upserts, -ABS(mtime) deletes, the ".generating" INSERT lock).

final class LegacyNode
{
    public function __construct(private TestDb $db, private int $chunkSize = 65535, private int $timeout = 60)
    {
    }

    /** Legacy _storeContents: metadata upsert, chunk upserts, leftover cleanup, one transaction. */
    public function storeContents(string $name, string $data, string $scope = 'UNKNOWN_SCOPE', string $datatype = 'misc', ?int $mtime = null): void
    {
        $mtime ??= time();
        $link = $this->db->link();
        $link->begin_transaction();
        $this->db->query(
            'INSERT INTO ezdbfile (datatype, name, name_trunk, name_hash, scope, size, mtime, expired) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON DUPLICATE KEY UPDATE datatype = VALUES(datatype), name_trunk = VALUES(name_trunk), scope = VALUES(scope),
             size = VALUES(size), mtime = VALUES(mtime), expired = VALUES(expired)',
            [$datatype, $name, self::nameTrunk($name, $scope), md5($name), $scope, strlen($data), $mtime, $mtime < 0 ? 1 : 0]
        );
        for ($offset = 0; $offset < strlen($data); $offset += $this->chunkSize) {
            $this->db->query(
                'INSERT INTO ezdbfile_data (name_hash, `offset`, filedata) VALUES (MD5(?), ?, ?) ON DUPLICATE KEY UPDATE filedata = VALUES(filedata)',
                [$name, $offset, substr($data, $offset, $this->chunkSize)]
            );
        }
        $this->db->query('DELETE FROM ezdbfile_data WHERE name_hash = MD5(?) AND (`offset` % ? != 0 OR `offset` > ?)',
            [$name, $this->chunkSize, strlen($data)]);
        $link->commit();
    }

    /** Legacy fetch: row by MD5() in SQL, chunks in offset order, checked for gaps and size. */
    public function fetchContents(string $name): string|false
    {
        $row = $this->row($name);
        if ($row === null) {
            return false;
        }
        $data = '';
        foreach ($this->db->query('SELECT filedata, `offset` FROM ezdbfile_data WHERE name_hash = MD5(?) ORDER BY `offset`', [$name]) as $chunk) {
            if ((int) $chunk['offset'] !== strlen($data)) {
                return false;
            }
            $data .= $chunk['filedata'];
        }
        return strlen($data) === (int) $row['size'] ? $data : false;
    }

    public function exists(string $name): bool
    {
        $row = $this->row($name);
        return $row !== null && (int) $row['mtime'] >= 0;
    }

    public function delete(string $name): void
    {
        $this->db->query('UPDATE ezdbfile SET mtime = -ABS(mtime), expired = 1 WHERE name_hash = MD5(?)', [$name]);
    }

    /** Legacy _startCacheGeneration: true, or the seconds left on another holder's lock, or false. */
    public function startCacheGeneration(string $name): bool|int
    {
        $lock = "$name.generating";
        $now = time();
        try {
            $this->db->query("INSERT INTO ezdbfile (name, name_trunk, name_hash, scope, datatype, mtime, expired) VALUES (?, ?, MD5(?), '', '', ?, 0)",
                [$lock, $lock, $lock, $now]);
            return true;
        } catch (mysqli_sql_exception $e) {
            if ($e->getCode() !== 1062) {
                return false;
            }
        }
        $row = $this->row($lock);
        $remaining = $row === null ? -1 : (int) $row['mtime'] + $this->timeout - $now;
        if ($remaining >= 0) {
            return $remaining;
        }
        $taken = $this->db->query('UPDATE ezdbfile SET mtime = ? WHERE name_hash = MD5(?) AND mtime = ?', [$now, $lock, $row['mtime']]);
        return $taken === 1 ? true : false;
    }

    public function abortCacheGeneration(string $name): void
    {
        $this->db->query('DELETE FROM ezdbfile WHERE name_hash = MD5(?)', ["$name.generating"]);
    }

    /** The metadata row as mysqli returns it, or null. */
    public function row(string $name): ?array
    {
        return $this->db->query('SELECT * FROM ezdbfile WHERE name_hash = MD5(?)', [$name])[0] ?? null;
    }

    /**
     * Legacy loadMetaData: the row as the legacy handler holds it (mysqli text protocol: every
     * column a string, in table order), or false.
     */
    public function loadMetaData(string $name): array|false
    {
        $link = $this->db->link();
        $result = $link->query("SELECT * FROM ezdbfile WHERE name_hash = '" . $link->real_escape_string(md5($name)) . "'");
        return $result->fetch_assoc() ?? false;
    }

    /** @return list<array{offset:int, length:int}> the chunk rows of $name */
    public function chunks(string $name): array
    {
        return array_map(fn ($r) => ['offset' => (int) $r['o'], 'length' => (int) $r['l']],
            $this->db->query('SELECT `offset` AS o, LENGTH(filedata) AS l FROM ezdbfile_data WHERE name_hash = MD5(?) ORDER BY `offset`', [$name]));
    }

    /** Legacy nameTrunk for the scopes the tests use. */
    public static function nameTrunk(string $name, string $scope): string
    {
        if ($scope === 'viewcache' && preg_match('#^(.*/)?([^/-]*-)[^/]*$#', $name, $m)) {
            return $m[1] . $m[2];
        }
        if ($scope === 'template-block' && preg_match('#^(.*?template-block/)(subtree/.*?cache/)#', $name, $m)) {
            return $m[1] . $m[2];
        }
        return $name;
    }
}
