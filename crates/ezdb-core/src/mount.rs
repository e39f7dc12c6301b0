//! The byte store of the eZDFS layout: one plain file per name at `<mount>/<name>`, where legacy
//! eZDFS and Ibexa nodes put and look for it. Never written in place: new bytes go to a
//! temporary file in the target directory, are fsynced, then renamed over the target, so a
//! reader on any node sees the old file or the new one whole. A replaced file is kept under a
//! backup name until the row that describes the new bytes is committed, so a failed commit can
//! put the old bytes back. Names that would leave the mount are refused.

use crate::error::{Error, Op, Result};
use crate::name::FileName;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// Prefix of every file ezdb creates on the mount besides the files themselves (temporary,
/// backup and purge names). `ezdb check` and operators recognise them by it.
pub const MOUNT_TEMP_PREFIX: &str = ".ezdb-";

/// The shared directory, resolved once.
#[derive(Debug)]
pub(crate) struct Mount {
    root: PathBuf,
}

/// New bytes written and synced under a temporary name, not yet visible.
pub(crate) struct Staged {
    pub(crate) temp: PathBuf,
    pub(crate) target: PathBuf,
    pub(crate) size: u64,
}

/// New bytes installed at the target; the previous file (if any) kept aside until
/// [`Installed::keep`] (the row is committed) or [`Installed::undo`] (it is not).
pub(crate) struct Installed {
    target: PathBuf,
    backup: Option<PathBuf>,
}

impl Mount {
    /// Resolves `root` and checks it is a writable directory (a readable one when
    /// `read_only`): a missing share fails every request at once instead of looking like
    /// missing files.
    pub(crate) fn open(root: &Path, read_only: bool) -> Result<Mount> {
        let config = |what: String| Error::Config(what);
        let resolved = std::fs::canonicalize(root).map_err(|e| {
            config(format!(
                "the DFS mount point {} cannot be opened ({e}); mount the share or fix MountPointPath",
                root.display()
            ))
        })?;
        if !resolved.is_dir() {
            return Err(config(format!(
                "the DFS mount point {} is not a directory; point MountPointPath at the shared directory",
                resolved.display()
            )));
        }
        if read_only {
            std::fs::read_dir(&resolved).map_err(|e| {
                config(format!(
                    "the DFS mount point {} is not readable ({e}); mount it for this user",
                    resolved.display()
                ))
            })?;
            return Ok(Mount { root: resolved });
        }
        let probe = resolved.join(format!("{MOUNT_TEMP_PREFIX}probe.{}", unique()));
        std::fs::write(&probe, b"").map_err(|e| {
            config(format!(
                "the DFS mount point {} is not writable ({e}); mount it read-write for this user",
                resolved.display()
            ))
        })?;
        let _ = std::fs::remove_file(&probe);
        Ok(Mount { root: resolved })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// `<mount>/<name>`, refusing names that are absolute or climb out with `..`.
    pub(crate) fn path_of(&self, name: &FileName) -> Result<PathBuf> {
        let relative = Path::new(name.as_str());
        let escapes = relative
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
        if escapes {
            return Err(Error::InvalidName {
                name: name.as_str().to_owned(),
                reason: "it would leave the DFS mount (an absolute path or a `..` component); use a relative path",
            });
        }
        Ok(self.root.join(relative))
    }

    /// Writes everything `reader` yields to a temporary file beside the target and syncs it.
    pub(crate) async fn stage(
        &self,
        op: Op,
        name: &FileName,
        reader: &mut (impl AsyncRead + Unpin + ?Sized),
    ) -> Result<Staged> {
        let target = self.path_of(name)?;
        let temp = temp_path(&target, "tmp");
        let io = |path: &Path, e| Error::io(op, name.as_str(), path, e);
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| io(dir, e))?;
        }
        let written = async {
            let mut file = tokio::fs::File::create(&temp).await?;
            let mut buffer = vec![0u8; 256 * 1024];
            let mut size = 0u64;
            loop {
                let n = reader.read(&mut buffer).await?;
                if n == 0 {
                    break;
                }
                file.write_all(&buffer[..n]).await?;
                size += n as u64;
            }
            file.flush().await?;
            file.sync_all().await?;
            Ok::<u64, std::io::Error>(size)
        }
        .await;
        match written {
            Ok(size) => Ok(Staged { temp, target, size }),
            Err(e) => {
                let _ = tokio::fs::remove_file(&temp).await;
                Err(io(&temp, e))
            }
        }
    }

    /// Makes staged bytes the file at the target (atomic rename), keeping the previous file
    /// under a backup name (a hard link) until the caller keeps or undoes the change.
    pub(crate) fn install(&self, op: Op, name: &FileName, staged: Staged) -> Result<Installed> {
        let io = |path: &Path, e| Error::io(op, name.as_str(), path, e);
        let backup = temp_path(&staged.target, "old");
        let backup = match std::fs::hard_link(&staged.target, &backup) {
            Ok(()) => Some(backup),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                let _ = std::fs::remove_file(&staged.temp);
                return Err(io(&staged.target, e));
            }
        };
        if let Err(e) = std::fs::rename(&staged.temp, &staged.target) {
            let _ = std::fs::remove_file(&staged.temp);
            if let Some(backup) = &backup {
                let _ = std::fs::remove_file(backup);
            }
            return Err(io(&staged.target, e));
        }
        sync_dir(&staged.target);
        Ok(Installed {
            target: staged.target,
            backup,
        })
    }

    /// [`Mount::install`] of a hard link to `temp`, which stays for another attempt.
    pub(crate) fn install_copy(&self, op: Op, name: &FileName, temp: &Path) -> Result<Installed> {
        let target = self.path_of(name)?;
        let link = temp_path(&target, "tmp");
        std::fs::hard_link(temp, &link).map_err(|e| Error::io(op, name.as_str(), &link, e))?;
        let size = std::fs::metadata(&link).map(|m| m.len()).unwrap_or(0);
        self.install(
            op,
            name,
            Staged {
                temp: link,
                target,
                size,
            },
        )
    }

    /// Opens the file of `name` for reading with its size; `None` when it is not on the mount.
    pub(crate) async fn open_file(&self, op: Op, name: &FileName) -> Result<Option<(tokio::fs::File, u64)>> {
        let path = self.path_of(name)?;
        match tokio::fs::File::open(&path).await {
            Ok(file) => {
                let size = file
                    .metadata()
                    .await
                    .map_err(|e| Error::io(op, name.as_str(), &path, e))?
                    .len();
                Ok(Some((file, size)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(op, name.as_str(), &path, e)),
        }
    }

    /// Moves the file of `name` out of the way (to a unique name in its directory): after this
    /// a re-store of the name creates a new file that the caller cannot remove by mistake.
    pub(crate) fn take_aside(&self, op: Op, name: &FileName) -> Result<Option<Aside>> {
        let target = self.path_of(name)?;
        let aside = temp_path(&target, "purge");
        match std::fs::rename(&target, &aside) {
            Ok(()) => Ok(Some(Aside { target, aside })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(op, name.as_str(), &target, e)),
        }
    }
}

/// A file moved aside by [`Mount::take_aside`].
pub(crate) struct Aside {
    target: PathBuf,
    aside: PathBuf,
}

impl Aside {
    /// The removal was committed: the bytes go.
    pub(crate) fn remove(self) {
        let _ = std::fs::remove_file(&self.aside);
    }

    /// The removal was not committed: the file comes back, unless a new one took its place.
    pub(crate) fn restore(self) {
        if std::fs::hard_link(&self.aside, &self.target).is_ok() || self.target.exists() {
            let _ = std::fs::remove_file(&self.aside);
        }
    }
}

impl Installed {
    /// The row describing the new bytes is committed: the old bytes go.
    pub(crate) fn keep(self) {
        if let Some(backup) = &self.backup {
            let _ = std::fs::remove_file(backup);
        }
    }

    /// The row was not committed: the previous file comes back (or the new one goes, when
    /// there was none), so the mount agrees with the committed row.
    pub(crate) fn undo(self) {
        match &self.backup {
            Some(backup) => {
                let _ = std::fs::rename(backup, &self.target);
            }
            None => {
                let _ = std::fs::remove_file(&self.target);
            }
        }
        sync_dir(&self.target);
    }
}

impl Staged {
    /// The staged bytes will not be installed.
    pub(crate) fn discard(self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}

/// `dir/.ezdb-<kind>.<file>.<pid>.<n>`: beside the target, so renames stay on one filesystem.
fn temp_path(target: &Path, kind: &str) -> PathBuf {
    let file_name = target
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    target.with_file_name(format!("{MOUNT_TEMP_PREFIX}{kind}.{file_name}.{}", unique()))
}

fn unique() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!("{}.{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Syncs the directory holding `path`, so the rename survives a crash of the file server.
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent() {
        if let Ok(dir) = std::fs::File::open(dir) {
            let _ = dir.sync_all();
        }
    }
}

/// Whether a file name on the mount is one of ezdb's temporary, backup or purge files.
pub fn is_mount_temp_name(file_name: &str) -> bool {
    file_name.starts_with(MOUNT_TEMP_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_the_mount() {
        let dir = std::env::temp_dir().join(format!("ezdb-mount-test-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        let mount = Mount::open(&dir, false).unwrap();
        for bad in ["var/../../etc/passwd", "../x", "/etc/passwd"] {
            let name = FileName::new(bad).unwrap();
            assert!(mount.path_of(&name).is_err(), "{bad}");
        }
        let ok = FileName::new("var/site/storage/a..b.jpg").unwrap();
        assert!(mount.path_of(&ok).unwrap().starts_with(mount.root()));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_reading_node_needs_a_directory_and_writes_nothing() {
        let dir = std::env::temp_dir().join(format!("ezdb-mount-test-{}", unique()));
        std::fs::create_dir_all(&dir).unwrap();
        Mount::open(&dir, true).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        let missing = Mount::open(&dir.join("gone"), true).err().unwrap().to_string();
        assert!(missing.contains("MountPointPath"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
