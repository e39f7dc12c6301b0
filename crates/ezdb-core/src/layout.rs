//! Where a file's metadata row and its bytes live: the eZDB layout (`ezdbfile`, bytes as chunks
//! in `ezdbfile_data`) or the eZDFS layout (`ezdfsfile` / `ezdfsfile_cache`, or Ibexa's
//! `ibexa_dfs_file`, with the bytes as plain files on a shared mount). Owns the one rule for
//! which table a name belongs to, shared by every operation, the gateway and the tools.

use crate::error::{Error, Result};
use std::path::PathBuf;

/// The storage table of legacy eZDFS (hard-coded in legacy PHP).
pub const DFS_STORAGE_TABLE: &str = "ezdfsfile";
/// The cache table of legacy eZDFS (`MetaDataTableNameCache`, `CLUSTER_METADATA_TABLE_CACHE`).
pub const DFS_CACHE_TABLE: &str = "ezdfsfile_cache";
/// The one table of Ibexa 5's DFS handler (`ezdfsfile` renamed; no cache table).
pub const IBEXA_DFS_TABLE: &str = "ibexa_dfs_file";

/// Which layout a cluster database has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Layout {
    /// `ezdbfile` + `ezdbfile_data`: the bytes are chunked blobs in the database.
    #[default]
    Ezdb,
    /// eZDFS / Ibexa DFS: metadata in the database, bytes on a shared mount.
    Dfs(DfsLayout),
}

impl Layout {
    /// The metadata tables: `ezdbfile`, or the eZDFS storage and cache tables.
    pub fn meta_tables(&self) -> Vec<&str> {
        match self {
            Layout::Ezdb => vec!["ezdbfile"],
            Layout::Dfs(dfs) => dfs.tables(),
        }
    }
}

/// The settings of an eZDFS site (`file.ini [eZDFSClusteringSettings]`, `site.ini [FileSettings]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DfsLayout {
    /// `MountPointPath`: the shared directory every node mounts; `<mount>/<name>` holds the bytes.
    pub mount_point: PathBuf,
    /// Table of storage files (`ezdfsfile`; `ibexa_dfs_file` for Ibexa 5).
    pub storage_table: String,
    /// `MetaDataTableNameCache`: table of cache files; equal to `storage_table` for one table.
    pub cache_table: String,
    /// `site.ini [FileSettings] CacheDir`: a name containing it goes to the cache table...
    pub cache_dir: String,
    /// `site.ini [FileSettings] StorageDir`: ...unless it also contains this.
    pub storage_dir: String,
    /// This process only reads the mount (index_image): it is checked to be a readable
    /// directory instead of a writable one, so it may be mounted read-only.
    pub read_only: bool,
}

impl DfsLayout {
    /// Legacy defaults: `ezdfsfile` and `ezdfsfile_cache`, markers `cache` and `storage`.
    pub fn new(mount_point: impl Into<PathBuf>) -> DfsLayout {
        DfsLayout {
            mount_point: mount_point.into(),
            storage_table: DFS_STORAGE_TABLE.to_owned(),
            cache_table: DFS_CACHE_TABLE.to_owned(),
            cache_dir: "cache".to_owned(),
            storage_dir: "storage".to_owned(),
            read_only: false,
        }
    }

    /// The same layout for a process that only reads the mount (see [`DfsLayout::read_only`]).
    pub fn reading_only(mut self) -> DfsLayout {
        self.read_only = true;
        self
    }

    /// One table for everything (single-table mode, or Ibexa's table, which has no cache table).
    pub fn single_table(mut self, table: &str) -> DfsLayout {
        self.storage_table = table.to_owned();
        self.cache_table = table.to_owned();
        self
    }

    /// The table `name` (or a pattern's fixed text) belongs to: the cache table when it contains
    /// the cache directory marker and not the storage one, as legacy eZDFS decides (plain
    /// case-sensitive substring tests). A `.generating` lock row lands beside its file.
    pub fn table_for(&self, name: &str) -> &str {
        if name.contains(self.cache_dir.as_str()) && !name.contains(self.storage_dir.as_str()) {
            &self.cache_table
        } else {
            &self.storage_table
        }
    }

    /// Every metadata table, storage first, each once: what pattern operations and listings
    /// cover (legacy reaches only the table its pattern text picks, and misses the other).
    pub fn tables(&self) -> Vec<&str> {
        let mut tables = vec![self.storage_table.as_str()];
        if self.cache_table != self.storage_table {
            tables.push(self.cache_table.as_str());
        }
        tables
    }

    pub(crate) fn validate(&self) -> Result<()> {
        Ok(self.check()?)
    }

    /// The settings' own rules: plain table names, non-empty markers and mount point.
    fn check(&self) -> std::result::Result<(), LayoutError> {
        for (what, setting, table) in [
            ("storage table", LayoutSetting::StorageTable, &self.storage_table),
            ("cache table", LayoutSetting::CacheTable, &self.cache_table),
        ] {
            if !is_identifier(table) {
                return Err(LayoutError::new(
                    setting,
                    format!(
                        "the DFS {what} name {table:?} is not a plain table name; use letters, digits and _ only \
                         (ezdfsfile, ezdfsfile_cache, ibexa_dfs_file)"
                    ),
                ));
            }
        }
        for (what, setting, marker) in [
            (
                "cache directory marker (site.ini CacheDir)",
                LayoutSetting::CacheDir,
                &self.cache_dir,
            ),
            (
                "storage directory marker (site.ini StorageDir)",
                LayoutSetting::StorageDir,
                &self.storage_dir,
            ),
        ] {
            if marker.is_empty() {
                return Err(LayoutError::new(setting, format!("the DFS {what} must not be empty")));
            }
        }
        if self.mount_point.as_os_str().is_empty() {
            return Err(LayoutError::new(
                LayoutSetting::MountPoint,
                "the DFS mount point (MountPointPath) is empty; set it to the shared directory every node mounts",
            ));
        }
        Ok(())
    }
}

/// One of the layout settings, for errors that say which one to fix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LayoutSetting {
    Layout,
    MountPoint,
    StorageTable,
    CacheTable,
    CacheDir,
    StorageDir,
}

/// A layout that cannot be used: which setting is wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LayoutError {
    pub setting: LayoutSetting,
    pub message: String,
}

impl LayoutError {
    fn new(setting: LayoutSetting, message: impl Into<String>) -> LayoutError {
        LayoutError {
            setting,
            message: message.into(),
        }
    }
}

impl From<LayoutError> for Error {
    fn from(e: LayoutError) -> Error {
        Error::Config(e.message)
    }
}

/// A layout as the settings of each layer spell it (tool and index_image flags, `ezdb_options`,
/// `file.ini`): all optional text, turned into a [`Layout`] by one rule with errors that say
/// which setting to fix. Unset parts take the legacy defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayoutSettings {
    /// `ezdb` (default), `dfs` (legacy eZDFS: `ezdfsfile` + `ezdfsfile_cache`) or `ibexa-dfs`
    /// (one table, `ibexa_dfs_file`).
    pub layout: Option<String>,
    /// `MountPointPath`: required for the DFS layouts.
    pub mount_point: Option<PathBuf>,
    /// Storage table (default `ezdfsfile`, or `ibexa_dfs_file` for `ibexa-dfs`).
    pub storage_table: Option<String>,
    /// `MetaDataTableNameCache` (default `ezdfsfile_cache`; the storage table for `ibexa-dfs`).
    pub cache_table: Option<String>,
    /// `site.ini [FileSettings] CacheDir` (default `cache`).
    pub cache_dir: Option<String>,
    /// `site.ini [FileSettings] StorageDir` (default `storage`).
    pub storage_dir: Option<String>,
}

/// The layout names [`LayoutSettings::layout`] accepts.
pub const LAYOUT_NAMES: [&str; 3] = ["ezdb", "dfs", "ibexa-dfs"];

impl LayoutSettings {
    /// The layout these settings describe, checked.
    pub fn to_layout(&self) -> std::result::Result<Layout, LayoutError> {
        let kind = self
            .layout
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .unwrap_or("ezdb");
        let dfs_only = [
            ("mount point", self.mount_point.is_some()),
            ("storage table", self.storage_table.is_some()),
            ("cache table", self.cache_table.is_some()),
            ("cache directory", self.cache_dir.is_some()),
            ("storage directory", self.storage_dir.is_some()),
        ];
        let mut dfs = match kind.to_ascii_lowercase().as_str() {
            "ezdb" => {
                // The layout is the setting to fix: DFS settings only mean something with it.
                if let Some((what, _)) = dfs_only.iter().find(|(_, set)| *set) {
                    return Err(LayoutError::new(
                        LayoutSetting::Layout,
                        format!(
                            "a DFS {what} was given but the layout is ezdb; set the layout to dfs or ibexa-dfs, \
                             or drop the DFS settings"
                        ),
                    ));
                }
                return Ok(Layout::Ezdb);
            }
            "dfs" | "ezdfs" => DfsLayout::new(self.mount_point.clone().unwrap_or_default()),
            "ibexa-dfs" | "ibexa" => {
                DfsLayout::new(self.mount_point.clone().unwrap_or_default()).single_table(IBEXA_DFS_TABLE)
            }
            other => {
                return Err(LayoutError::new(
                    LayoutSetting::Layout,
                    format!("unknown layout {other:?}; use one of {}", LAYOUT_NAMES.join(", ")),
                ))
            }
        };
        if self.mount_point.is_none() {
            return Err(LayoutError::new(
                LayoutSetting::MountPoint,
                format!(
                    "the {kind} layout needs the mount point (MountPointPath): the shared directory every node mounts"
                ),
            ));
        }
        if let Some(table) = &self.storage_table {
            if dfs.cache_table == dfs.storage_table && self.cache_table.is_none() {
                dfs.cache_table = table.clone();
            }
            dfs.storage_table = table.clone();
        }
        if let Some(table) = &self.cache_table {
            dfs.cache_table = table.clone();
        }
        if let Some(dir) = &self.cache_dir {
            dfs.cache_dir = dir.clone();
        }
        if let Some(dir) = &self.storage_dir {
            dfs.storage_dir = dir.clone();
        }
        dfs.check()?;
        Ok(Layout::Dfs(dfs))
    }
}

fn is_identifier(table: &str) -> bool {
    !table.is_empty() && table.len() <= 64 && table.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_go_to_the_table_legacy_picks() {
        // eZDFS spec 2.6 examples, defaults.
        let dfs = DfsLayout::new("/mnt/share");
        for (name, table) in [
            ("var/site/cache/content/site/2-ab.cache", DFS_CACHE_TABLE),
            ("var/site/cache/expiry.php", DFS_CACHE_TABLE),
            ("var/site/cache/public/stylesheets/x.css", DFS_CACHE_TABLE),
            ("var/site/storage/images/a/b/1-1-eng-GB/x.jpg", DFS_STORAGE_TABLE),
            ("var/site/storage/images/a/x.jpg.generating", DFS_STORAGE_TABLE),
            ("var/site/storage/original/application/x.pdf", DFS_STORAGE_TABLE),
            ("var/storage_site/cache/content/s/2-x.cache", DFS_STORAGE_TABLE),
            ("var/site/cache/content/storage_admin/2-x.cache", DFS_STORAGE_TABLE),
            ("var/site/cachefiles/x", DFS_CACHE_TABLE),
        ] {
            assert_eq!(dfs.table_for(name), table, "{name}");
        }
        let single = DfsLayout::new("/m").single_table("ezdfsfile");
        assert_eq!(single.table_for("var/site/cache/x"), "ezdfsfile");
        assert_eq!(single.tables(), ["ezdfsfile"]);
        assert_eq!(dfs.tables(), ["ezdfsfile", "ezdfsfile_cache"]);
    }

    #[test]
    fn settings_name_the_layout_and_what_is_missing() {
        assert_eq!(LayoutSettings::default().to_layout().unwrap(), Layout::Ezdb);
        let dfs = LayoutSettings {
            layout: Some("dfs".into()),
            mount_point: Some("/mnt/share".into()),
            ..Default::default()
        };
        assert_eq!(dfs.to_layout().unwrap(), Layout::Dfs(DfsLayout::new("/mnt/share")));
        let ibexa = LayoutSettings {
            layout: Some("ibexa-dfs".into()),
            ..dfs.clone()
        };
        assert_eq!(
            ibexa.to_layout().unwrap(),
            Layout::Dfs(DfsLayout::new("/mnt/share").single_table(IBEXA_DFS_TABLE))
        );
        let renamed = LayoutSettings {
            storage_table: Some("site_dfs".into()),
            ..ibexa
        };
        let Layout::Dfs(renamed) = renamed.to_layout().unwrap() else {
            panic!("dfs")
        };
        assert_eq!(renamed.tables(), ["site_dfs"]);
        let no_mount = LayoutSettings {
            layout: Some("dfs".into()),
            ..Default::default()
        };
        assert!(no_mount.to_layout().unwrap_err().to_string().contains("mount point"));
        let stray = LayoutSettings {
            mount_point: Some("/m".into()),
            ..Default::default()
        };
        assert!(stray.to_layout().unwrap_err().to_string().contains("layout is ezdb"));
        let unknown = LayoutSettings {
            layout: Some("s3".into()),
            ..Default::default()
        };
        assert!(unknown
            .to_layout()
            .unwrap_err()
            .to_string()
            .contains("ezdb, dfs, ibexa-dfs"));
        // Each error names the setting to fix, for the layers to show as their own flag.
        assert_eq!(no_mount.to_layout().unwrap_err().setting, LayoutSetting::MountPoint);
        assert_eq!(stray.to_layout().unwrap_err().setting, LayoutSetting::Layout);
        assert_eq!(unknown.to_layout().unwrap_err().setting, LayoutSetting::Layout);
        let bad_table = LayoutSettings {
            layout: Some("dfs".into()),
            mount_point: Some("/m".into()),
            cache_table: Some("x;drop".into()),
            ..Default::default()
        };
        assert_eq!(bad_table.to_layout().unwrap_err().setting, LayoutSetting::CacheTable);
    }

    #[test]
    fn table_names_cannot_carry_sql() {
        let bad = DfsLayout::new("/m").single_table("ezdfsfile; DROP TABLE x");
        assert!(bad.validate().unwrap_err().to_string().contains("plain table name"));
    }
}
