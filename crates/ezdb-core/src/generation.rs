// The cache-generation lock: a legacy-compatible `<name>.generating` row taken by INSERT, taken
// over by compare-and-set once older than the timeout, kept fresh by heartbeats, and released by
// a publish that first checks, in the same transaction, that the lock is still ours.

use crate::cluster::Cluster;
use crate::content::ContentReader;
use crate::copy::move_row;
use crate::db::{done, Attempt};
use crate::dfs::LockCheck;
use crate::error::{mysql_error_code, Error, Op, Result};
use crate::meta::FileMeta;
use crate::name::{cache_type, name_trunk, FileName};
use crate::store::{RowSpec, StoreOptions};
use sqlx::mysql::MySqlConnection;

/// Attempts at INSERT / take-over before reporting the lock as busy.
const START_ATTEMPTS: u32 = 4;

/// A held generation lock on one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerationLock {
    file: FileName,
    lock: FileName,
    /// Database time the lock was taken: the mtime the published entry gets, so a clear that
    /// happens during the generation makes the result count as expired.
    started: i64,
    /// The lock row's mtime as we last set it (heartbeats move it forward).
    held: i64,
    /// A clear marked the lock row expired while we generated: publish as expired.
    invalidated: bool,
    /// Content was staged under the lock name.
    staged: bool,
}

impl GenerationLock {
    /// The file being generated.
    pub fn name(&self) -> &str {
        self.file.as_str()
    }

    /// The `.generating` row holding the lock (where legacy callers stage content).
    pub fn lock_name(&self) -> &str {
        self.lock.as_str()
    }

    /// Database time the lock was taken.
    pub fn started(&self) -> i64 {
        self.started
    }
}

/// Outcome of asking for the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Generation {
    Acquired(GenerationLock),
    /// Another process generates; it may be taken over after `remaining_secs`.
    Busy {
        remaining_secs: i64,
    },
}

/// What the lock row says about our lock.
enum LockState {
    Ours,
    Invalidated,
    Lost,
}

impl Cluster {
    /// Takes the generation lock of `name`. `scope` (default: guessed from the path like the
    /// legacy `cacheType`) sets the lock row's trunk, so clearing that trunk during the
    /// generation is noticed at publish time.
    pub async fn start_generation(&self, name: &str, scope: Option<&str>) -> Result<Generation> {
        let file = FileName::new(name)?;
        if file.is_generating() {
            return Err(Error::InvalidName {
                name: name.to_owned(),
                reason: "it is already a .generating lock name; lock the file itself",
            });
        }
        let lock = file.generating();
        let scope = scope.unwrap_or(match cache_type(file.as_str()) {
            "viewcache" => "viewcache",
            "cacheblock" => "template-block",
            _ => "",
        });
        let trunk = name_trunk(lock.as_str(), scope);
        let (file, lock, trunk) = (&file, &lock, &trunk);
        self.inner
            .db
            .retrying(Op::Generation, file.as_str(), |mut conn| async move {
                let outcome = self.try_start(&mut conn, file, lock, trunk).await;
                done(conn, outcome)
            })
            .await
    }

    async fn try_start(
        &self,
        conn: &mut MySqlConnection,
        file: &FileName,
        lock: &FileName,
        trunk: &str,
    ) -> Attempt<Generation> {
        let timeout = self.inner.config.generation_timeout.as_secs() as i64;
        let table = self.meta_table(file.as_str());
        for _ in 0..START_ATTEMPTS {
            let now = self.now();
            let insert = format!(
                "INSERT INTO {table} (datatype, name, name_trunk, name_hash, scope, size, mtime, expired)
                 VALUES ('', ?, ?, ?, '', 0, ?, 0)"
            );
            let inserted = sqlx::query(&insert)
                .bind(lock.as_str())
                .bind(trunk)
                .bind(lock.hash())
                .bind(now)
                .execute(&mut *conn)
                .await;
            match inserted {
                Ok(_) => return Ok(Generation::Acquired(GenerationLock::new(file, lock, now))),
                Err(e) if mysql_error_code(&e) == Some(1062) => {}
                Err(e) => return Err(e.into()),
            }
            let Some(holder) = lock_mtime(conn, table, lock).await? else {
                continue; // released between our INSERT and SELECT: try again
            };
            let remaining = holder.abs() + timeout - now;
            if remaining >= 0 {
                return Ok(Generation::Busy {
                    remaining_secs: remaining,
                });
            }
            if compare_and_set(conn, table, lock, holder, now).await? {
                tracing::info!(
                    name = file.as_str(),
                    age = now - holder.abs(),
                    "took over an abandoned generation lock"
                );
                return Ok(Generation::Acquired(GenerationLock::new(file, lock, now)));
            }
        }
        Ok(Generation::Busy { remaining_secs: 0 })
    }

    /// Refreshes the lock so no one takes it over during a long generation. Fails with
    /// [`Error::LockLost`] when another process took it over or removed it.
    pub async fn heartbeat(&self, lock: &mut GenerationLock) -> Result<()> {
        let now = self.now();
        let lock_ref = &*lock;
        let table = self.meta_table(lock.name());
        let refreshed = self
            .inner
            .db
            .retrying(Op::Generation, lock.name(), |mut conn| async move {
                let refreshed = refresh(&mut conn, table, lock_ref, now).await;
                done(conn, refreshed)
            })
            .await?;
        match refreshed {
            Some(invalidated) => {
                lock.held = now.max(lock.held);
                lock.invalidated = invalidated;
                Ok(())
            }
            None => Err(Error::LockLost {
                name: lock.name().to_owned(),
            }),
        }
    }

    /// Legacy `checkCacheGenerationTimeout`: true (and refreshed) while the lock is ours.
    pub async fn check_generation(&self, lock: &mut GenerationLock) -> Result<bool> {
        match self.heartbeat(lock).await {
            Ok(()) => Ok(true),
            Err(Error::LockLost { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Publishes `content` as the new version of the locked file and releases the lock, in one
    /// transaction that first checks the lock is still ours. On failure the lock is released and
    /// the previous version stays.
    pub async fn publish(&self, lock: GenerationLock, content: &[u8], options: &StoreOptions) -> Result<FileMeta> {
        let published = self.publish_inner(&lock, content, options).await;
        if published.is_err() {
            let _ = self.abort_generation(lock).await;
        }
        published
    }

    async fn publish_inner(&self, lock: &GenerationLock, content: &[u8], options: &StoreOptions) -> Result<FileMeta> {
        let scope = options.scope.as_deref().unwrap_or(crate::meta::DEFAULT_SCOPE);
        let datatype = options.datatype.as_deref().unwrap_or(crate::meta::DEFAULT_DATATYPE);
        let table = self.meta_table(lock.name());
        if let Some(dfs) = &self.inner.dfs {
            let spec = RowSpec {
                name: &lock.file,
                scope,
                datatype,
                mtime: lock.started,
                expired: false,
            };
            let check = LockCheck::Take(table, lock);
            return dfs
                .publish_bytes(self, &spec, content, check, (stamp(lock, false), stamp(lock, true)))
                .await;
        }
        self.inner
            .db
            .retrying(Op::Generation, lock.name(), |mut conn| async move {
                let result = async {
                    conn.begin().await?;
                    let invalidated = take_lock_row(&mut conn, table, lock).await?;
                    let spec = RowSpec {
                        name: &lock.file,
                        scope,
                        datatype,
                        mtime: stamp(lock, invalidated),
                        expired: invalidated,
                    };
                    let mut reader: ContentReader<'_> = Box::new(content);
                    let size = self
                        .write_file(&mut conn, &spec, &mut reader, Some(content.len() as u64))
                        .await?;
                    conn.commit().await?;
                    Ok(spec.meta(size))
                }
                .await;
                done(conn, result)
            })
            .await
    }

    /// Legacy style, step 1: stores content under the lock name (the `.generating` row), still
    /// locked. Finish with [`Cluster::end_generation`] or [`Cluster::abort_generation`].
    pub async fn stage(&self, lock: &mut GenerationLock, content: &[u8], options: &StoreOptions) -> Result<()> {
        let scope = options.scope.as_deref().unwrap_or(crate::meta::DEFAULT_SCOPE);
        let datatype = options.datatype.as_deref().unwrap_or(crate::meta::DEFAULT_DATATYPE);
        let lock_ref = &*lock;
        let table = self.meta_table(lock.name());
        if let Some(dfs) = &self.inner.dfs {
            let spec = RowSpec {
                name: &lock_ref.lock,
                scope,
                datatype,
                mtime: lock_ref.held,
                expired: false,
            };
            let check = LockCheck::Verify(table, lock_ref);
            dfs.publish_bytes(self, &spec, content, check, (lock_ref.held, -lock_ref.held))
                .await?;
            lock.staged = true;
            return Ok(());
        }
        self.inner
            .db
            .retrying(Op::Generation, lock.name(), |mut conn| async move {
                let result = async {
                    conn.begin().await?;
                    let invalidated = verify_lock(&mut conn, table, lock_ref).await?;
                    let held = if invalidated { -lock_ref.held } else { lock_ref.held };
                    let spec = RowSpec {
                        name: &lock_ref.lock,
                        scope,
                        datatype,
                        mtime: held,
                        expired: invalidated,
                    };
                    let mut reader: ContentReader<'_> = Box::new(content);
                    self.write_file(&mut conn, &spec, &mut reader, Some(content.len() as u64))
                        .await?;
                    conn.commit().await?;
                    Ok(())
                }
                .await;
                done(conn, result)
            })
            .await?;
        lock.staged = true;
        Ok(())
    }

    /// Legacy style, step 2: renames the staged content onto the file and releases the lock, in
    /// one transaction that first checks the lock is still ours.
    pub async fn end_generation(&self, lock: GenerationLock) -> Result<FileMeta> {
        if !lock.staged {
            let _ = self.abort_generation(lock.clone()).await;
            return Err(Error::InvalidArgument {
                name: lock.name().to_owned(),
                what: "generation",
                value: "end".into(),
                reason: "nothing was staged, so there is nothing to publish; the lock was released".into(),
            });
        }
        let lock_ref = &lock;
        let table = self.meta_table(lock.name());
        if let Some(dfs) = &self.inner.dfs {
            let check = LockCheck::Take(table, lock_ref);
            let mtimes = (stamp(lock_ref, false), stamp(lock_ref, true));
            let ended = dfs
                .publish_staged_lock(self, &lock_ref.lock, &lock_ref.file, check, mtimes)
                .await;
            if let Err(e) = ended {
                let _ = self.abort_generation(lock).await;
                return Err(e);
            }
            return ended;
        }
        let ended = self
            .inner
            .db
            .retrying(Op::Generation, lock.name(), |mut conn| async move {
                let result = async {
                    conn.begin().await?;
                    let invalidated = verify_lock(&mut conn, table, lock_ref).await?;
                    let mtime = stamp(lock_ref, invalidated);
                    move_row(&mut conn, &lock_ref.lock, &lock_ref.file, Some(mtime)).await?;
                    conn.commit().await?;
                    Ok(())
                }
                .await;
                done(conn, result)
            })
            .await;
        if let Err(e) = ended {
            let _ = self.abort_generation(lock).await;
            return Err(e);
        }
        self.stat(lock.name())
            .await?
            .ok_or_else(|| Error::not_found(Op::Generation, lock.name()))
    }

    /// Releases the lock without publishing; anything staged goes with it. Removes the lock row
    /// only while it is still ours, never another process's lock or the file itself.
    pub async fn abort_generation(&self, lock: GenerationLock) -> Result<()> {
        let lock = &lock;
        let sql = &format!(
            "DELETE FROM {} WHERE name_hash = ? AND mtime IN (?, ?)",
            self.meta_table(lock.name())
        );
        let removed = self
            .inner
            .db
            .retrying(Op::Generation, lock.name(), |mut conn| async move {
                let deleted = sqlx::query(sql)
                    .bind(lock.lock.hash())
                    .bind(lock.held)
                    .bind(-lock.held)
                    .execute(&mut *conn)
                    .await;
                done(conn, deleted.map(|r| r.rows_affected() > 0).map_err(Into::into))
            })
            .await?;
        // Our lock row went: what we staged on the DFS mount goes with it (never another
        // process's staged file: its lock row would not have matched).
        if let (true, Some(dfs)) = (removed, &self.inner.dfs) {
            dfs.remove_staged(&lock.lock);
        }
        Ok(())
    }
}

impl GenerationLock {
    fn new(file: &FileName, lock: &FileName, now: i64) -> GenerationLock {
        GenerationLock {
            file: file.clone(),
            lock: lock.clone(),
            started: now,
            held: now,
            invalidated: false,
            staged: false,
        }
    }

    fn state(&self, row_mtime: Option<i64>) -> LockState {
        match row_mtime {
            Some(m) if m == self.held && !self.invalidated => LockState::Ours,
            Some(m) if m == -self.held => LockState::Invalidated,
            _ => LockState::Lost,
        }
    }
}

/// The mtime the published file gets: the lock time, negated when a clear hit the lock.
fn stamp(lock: &GenerationLock, invalidated: bool) -> i64 {
    if invalidated {
        -lock.started
    } else {
        lock.started
    }
}

/// Locks the lock row for the rest of the transaction; returns whether a clear invalidated it.
pub(crate) async fn verify_lock(conn: &mut MySqlConnection, table: &str, lock: &GenerationLock) -> Attempt<bool> {
    let sql = format!("SELECT CAST(mtime AS SIGNED) FROM {table} WHERE name_hash = ? FOR UPDATE");
    let row: Option<(i64,)> = sqlx::query_as(&sql)
        .bind(lock.lock.hash())
        .fetch_optional(&mut *conn)
        .await?;
    match lock.state(row.map(|r| r.0)) {
        LockState::Ours => Ok(false),
        LockState::Invalidated => Ok(true),
        LockState::Lost => Err(Error::LockLost {
            name: lock.name().to_owned(),
        }
        .into()),
    }
}

/// Deletes the lock row if it is still ours (the delete also locks it until commit): one round
/// trip for the check and the release. Returns whether a clear had invalidated it.
pub(crate) async fn take_lock_row(conn: &mut MySqlConnection, table: &str, lock: &GenerationLock) -> Attempt<bool> {
    let sql = format!("DELETE FROM {table} WHERE name_hash = ? AND mtime = ?");
    for (mtime, invalidated) in [(lock.held, false), (-lock.held, true)] {
        let deleted = sqlx::query(&sql)
            .bind(lock.lock.hash())
            .bind(mtime)
            .execute(&mut *conn)
            .await?;
        if deleted.rows_affected() == 1 {
            return Ok(invalidated);
        }
    }
    Err(Error::LockLost {
        name: lock.name().to_owned(),
    }
    .into())
}

/// Moves the lock row's mtime to `now` if it is still ours; `None` when lost, else whether it
/// was invalidated by a clear.
async fn refresh(conn: &mut MySqlConnection, table: &str, lock: &GenerationLock, now: i64) -> Attempt<Option<bool>> {
    let current = lock_mtime(conn, table, &lock.lock).await?;
    let (from, to, invalidated) = match lock.state(current) {
        LockState::Ours => (lock.held, now, false),
        LockState::Invalidated => (-lock.held, -now, true),
        LockState::Lost => return Ok(None),
    };
    if now <= lock.held || compare_and_set(conn, table, &lock.lock, from, to).await? {
        Ok(Some(invalidated))
    } else {
        Ok(None)
    }
}

async fn lock_mtime(conn: &mut MySqlConnection, table: &str, lock: &FileName) -> Result<Option<i64>, sqlx::Error> {
    let sql = format!("SELECT CAST(mtime AS SIGNED) FROM {table} WHERE name_hash = ?");
    let row: Option<(i64,)> = sqlx::query_as(&sql)
        .bind(lock.hash())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.0))
}

/// Moves the lock row's mtime from `from` to `to` (never equal, so "rows affected" is 1 exactly
/// when we won, whatever the driver's found-rows convention). Also clears `expired`.
async fn compare_and_set(
    conn: &mut MySqlConnection,
    table: &str,
    lock: &FileName,
    from: i64,
    to: i64,
) -> Result<bool, sqlx::Error> {
    let sql = format!("UPDATE {table} SET mtime = ?, expired = ? WHERE name_hash = ? AND mtime = ?");
    let updated = sqlx::query(&sql)
        .bind(to)
        .bind(to < 0)
        .bind(lock.hash())
        .bind(from)
        .execute(&mut *conn)
        .await?;
    Ok(updated.rows_affected() == 1)
}
