-- The Ibexa DXP 5 DFS metadata table (ibexa/core schema.yaml): the legacy columns under a new
-- name, status kept, no cache table.
CREATE TABLE ibexa_dfs_file (
  name_hash VARCHAR(34) NOT NULL DEFAULT '',
  name TEXT NOT NULL,
  name_trunk TEXT NOT NULL,
  mtime INT(11) NOT NULL DEFAULT '0',
  size BIGINT(20) UNSIGNED NOT NULL DEFAULT '0',
  scope VARCHAR(25) NOT NULL DEFAULT '',
  datatype VARCHAR(255) NOT NULL DEFAULT 'application/octet-stream',
  expired TINYINT(1) NOT NULL DEFAULT '0',
  status TINYINT(1) NOT NULL DEFAULT '0',
  PRIMARY KEY (name_hash),
  KEY ibexa_dfs_file_name (name(191)),
  KEY ibexa_dfs_file_name_trunk (name_trunk(191)),
  KEY ibexa_dfs_file_expired_name (expired, name(191)),
  KEY ibexa_dfs_file_mtime (mtime)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
