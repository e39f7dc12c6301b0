-- The eZDFS cluster tables as eZ Publish legacy ships them (5.2+): metadata only, the bytes are
-- files on the shared mount. ezdfsfile holds storage, ezdfsfile_cache holds caches (no status).
CREATE TABLE ezdfsfile (
  datatype VARCHAR(255) NOT NULL DEFAULT 'application/octet-stream',
  name TEXT NOT NULL,
  name_trunk TEXT NOT NULL,
  name_hash VARCHAR(34) NOT NULL DEFAULT '',
  scope VARCHAR(25) NOT NULL DEFAULT '',
  size BIGINT(20) UNSIGNED NOT NULL DEFAULT '0',
  mtime INT(11) NOT NULL DEFAULT '0',
  expired TINYINT(1) NOT NULL DEFAULT '0',
  status TINYINT(1) NOT NULL DEFAULT '0',
  PRIMARY KEY (name_hash),
  KEY ezdfsfile_name (name(191)),
  KEY ezdfsfile_name_trunk (name_trunk(191)),
  KEY ezdfsfile_mtime (mtime),
  KEY ezdfsfile_expired_name (expired, name(191))
) ENGINE=InnoDB;

CREATE TABLE ezdfsfile_cache (
  datatype VARCHAR(255) NOT NULL DEFAULT 'application/octet-stream',
  name TEXT NOT NULL,
  name_trunk TEXT NOT NULL,
  name_hash VARCHAR(34) NOT NULL DEFAULT '',
  scope VARCHAR(25) NOT NULL DEFAULT '',
  size BIGINT(20) UNSIGNED NOT NULL DEFAULT '0',
  mtime INT(11) NOT NULL DEFAULT '0',
  expired TINYINT(1) NOT NULL DEFAULT '0',
  PRIMARY KEY (name_hash),
  KEY ezdfsfile_name (name(191)),
  KEY ezdfsfile_name_trunk (name_trunk(191)),
  KEY ezdfsfile_mtime (mtime),
  KEY ezdfsfile_expired_name (expired, name(191))
) ENGINE=InnoDB;
