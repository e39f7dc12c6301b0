-- ezdb cluster schema for MariaDB 10.6+ and MySQL 8: the legacy eZDB tables, column for column,
-- plus ezdbfile_expiry (global expiry keys), which legacy nodes never need. Safe to re-run.

-- File metadata: one row per file; a soft delete negates mtime and sets expired = 1.
CREATE TABLE IF NOT EXISTS ezdbfile (
  datatype   VARCHAR(255)        NOT NULL DEFAULT 'application/octet-stream',
  name       TEXT                NOT NULL,
  name_trunk TEXT                NOT NULL,
  name_hash  VARCHAR(34)         NOT NULL DEFAULT '',
  scope      VARCHAR(20)         NOT NULL DEFAULT '',
  size       BIGINT(20) UNSIGNED NOT NULL DEFAULT '0',
  mtime      INT(11)             NOT NULL DEFAULT '0',
  expired    BOOL                NOT NULL DEFAULT '0',
  PRIMARY KEY (name_hash),
  INDEX ezdbfile_name (name(250)),
  INDEX ezdbfile_name_trunk (name_trunk(250)),
  INDEX ezdbfile_mtime (mtime),
  INDEX ezdbfile_expired_name (expired, name(250))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- File content in chunks of at most 65535 bytes at offsets 0, C, 2C, ...
-- `offset` is a reserved word on MariaDB 10.6+: always quote it.
CREATE TABLE IF NOT EXISTS ezdbfile_data (
  name_hash VARCHAR(34)      NOT NULL DEFAULT '',
  `offset`  INT(11) UNSIGNED NOT NULL,
  filedata  BLOB             NOT NULL,
  PRIMARY KEY (name_hash, `offset`),
  CONSTRAINT ezdbfile_fk1 FOREIGN KEY (name_hash) REFERENCES ezdbfile (name_hash) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;

-- Global expiry keys (ezdb addition): a file whose scope is covered by a key and whose mtime is
-- older than the key's timestamp counts as expired, without touching its row. Besides one row
-- per key (e.g. content-view-cache), a row named '@<scope>' holds the latest expiry of the keys
-- covering that scope, so reads find it by primary key.
CREATE TABLE IF NOT EXISTS ezdbfile_expiry (
  name   VARCHAR(100) NOT NULL,
  scope  VARCHAR(20)  NOT NULL DEFAULT '',
  expiry INT(11)      NOT NULL,
  PRIMARY KEY (name),
  INDEX ezdbfile_expiry_scope (scope)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin;
