// `process_cache`: serve a fresh entry, or have exactly one process across all servers
// regenerate it (lock, re-check on a separate connection, generate, publish) while the others
// serve the stale copy or wait for the result; the decisions are the protocol's (cache_protocol.rs).

use crate::cache_protocol::{CacheAction, CacheEvent, CacheRead, CacheRules};
use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::fetch::{stat_committed, FileData};
use crate::generation::{Generation, GenerationLock};
use crate::meta::{FileMeta, Freshness};
use crate::name::FileName;
use crate::store::StoreOptions;
use std::future::Future;
use std::time::Duration;

/// How `process_cache` treats an entry.
#[derive(Debug, Clone, Default)]
pub struct CachePolicy {
    pub freshness: Freshness,
    /// Scope and datatype of the generated entry.
    pub store: StoreOptions,
    /// When another process generates and there is no stale copy: `true` waits for its result
    /// (up to the generation timeout), `false` generates a private, unstored copy at once
    /// (legacy `NonExistantStaleCacheHandling` = `wait` / `generate`).
    pub generate_while_busy: bool,
}

/// Where the returned content came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheSource {
    /// The stored entry was fresh.
    Hit,
    /// This call generated and published it.
    Generated,
    /// Another process published a fresh entry while this one was taking the lock.
    Rechecked,
    /// Another process is regenerating; this is the previous (expired) version.
    Stale,
    /// Generated for this caller only and not stored (lock lost, or `generate_while_busy`).
    Unstored,
}

/// Outcome of [`Cluster::start_regeneration`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Regeneration {
    /// The lock is ours and the entry still needs generating.
    Acquired(GenerationLock),
    /// Another process generates; its lock may be taken over after `remaining_secs`.
    Busy { remaining_secs: i64 },
    /// Another process published a fresh entry since the caller's read; no lock is held.
    Fresh(FileMeta),
}

impl From<Generation> for Regeneration {
    fn from(generation: Generation) -> Regeneration {
        match generation {
            Generation::Acquired(lock) => Regeneration::Acquired(lock),
            Generation::Busy { remaining_secs } => Regeneration::Busy { remaining_secs },
        }
    }
}

#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub content: Vec<u8>,
    pub source: CacheSource,
    /// Metadata of the stored entry served; `None` for unstored content.
    pub meta: Option<FileMeta>,
}

impl Cluster {
    /// Returns `name`'s content if fresh under `policy`; otherwise runs `generate` at most once
    /// across all processes for this expiry and publishes its bytes. The decisions are the
    /// core's cache protocol ([`crate::CacheRun`]), the same the C ABI hands to PHP.
    pub async fn process_cache<F, Fut, E>(&self, name: &str, policy: &CachePolicy, generate: F) -> Result<CacheEntry>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<Vec<u8>, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let timeout = self.config().generation_timeout;
        let rules = CacheRules {
            freshness: policy.freshness,
            generate_while_busy: policy.generate_while_busy,
            poll: self.config().generation_poll,
            // Lock ages are whole seconds: one more than the timeout lets an abandoned lock be taken over.
            max_wait: Some(timeout + Duration::from_secs(2)),
            lock_scope: policy.store.scope.clone(),
            ..CacheRules::default()
        };
        let mut run = self.cache_run(name, rules, CacheRead::Fetch)?;
        let file = FileName::new(name)?;
        let mut generate = Some(generate);
        let mut event = CacheEvent::Begin;
        loop {
            match self.advance_cache(&mut run, event, None).await? {
                CacheAction::ServeStored { stale, rechecked, .. } => {
                    let source = match (stale, rechecked) {
                        (true, _) => CacheSource::Stale,
                        (false, true) => CacheSource::Rechecked,
                        (false, false) => CacheSource::Hit,
                    };
                    match run.take_data() {
                        Some(data) => return Ok(entry(data, source)),
                        None => event = CacheEvent::ServeFailed,
                    }
                }
                // No local copies here: a run that reads with `Fetch` never names one.
                CacheAction::ServeLocal { .. } => event = CacheEvent::ServeFailed,
                CacheAction::Generate(lock) => {
                    let content = match run_generate(&file, generate.take()).await {
                        Ok(content) => content,
                        Err(e) => {
                            self.abort_generation(lock).await?;
                            return Err(e);
                        }
                    };
                    return match self.publish(lock, &content, &policy.store).await {
                        Ok(meta) => Ok(CacheEntry {
                            content,
                            source: CacheSource::Generated,
                            meta: Some(meta),
                        }),
                        Err(Error::LockLost { .. }) => Ok(CacheEntry {
                            content,
                            source: CacheSource::Unstored,
                            meta: None,
                        }),
                        Err(e) => Err(e),
                    };
                }
                CacheAction::GenerateUnstored { .. } => {
                    let content = run_generate(&file, generate.take()).await?;
                    return Ok(CacheEntry {
                        content,
                        source: CacheSource::Unstored,
                        meta: None,
                    });
                }
                CacheAction::Wait(pause) => {
                    tokio::time::sleep(pause).await;
                    event = CacheEvent::Waited;
                }
                CacheAction::GiveUp | CacheAction::TimedOut => {
                    return Err(Error::GenerationTimeout {
                        name: file.as_str().to_owned(),
                        waited_secs: timeout.as_secs() + 2,
                    });
                }
            }
        }
    }

    /// Takes the generation lock of `name`, then re-checks the entry on the separate autocommit
    /// connection: when another process published a version fresh under `freshness` since the
    /// caller's read, the lock is released and that version's metadata returned instead.
    pub async fn start_regeneration(
        &self,
        name: &str,
        scope: Option<&str>,
        freshness: &Freshness,
        now: i64,
    ) -> Result<Regeneration> {
        let file = FileName::new(name)?;
        let lock = match self.start_generation(file.as_str(), scope).await? {
            Generation::Acquired(lock) => lock,
            Generation::Busy { remaining_secs } => return Ok(Regeneration::Busy { remaining_secs }),
        };
        match stat_committed(self, &file).await {
            Ok(Some(fresh)) if freshness.accepts(&fresh, now) => {
                self.abort_generation(lock).await?;
                Ok(Regeneration::Fresh(fresh))
            }
            Ok(_) => Ok(Regeneration::Acquired(lock)),
            Err(e) => {
                let _ = self.abort_generation(lock).await;
                Err(e)
            }
        }
    }
}

fn entry(data: FileData, source: CacheSource) -> CacheEntry {
    CacheEntry {
        content: data.bytes,
        source,
        meta: Some(data.meta),
    }
}

/// Runs the caller's generate callback (once: a second need for it is a bug, reported as such).
async fn run_generate<F, Fut, E>(file: &FileName, generate: Option<F>) -> Result<Vec<u8>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = std::result::Result<Vec<u8>, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let generate = generate.ok_or_else(|| Error::Generate {
        name: file.as_str().to_owned(),
        source: "the generate callback was needed twice in one call".into(),
    })?;
    generate().await.map_err(|e| Error::Generate {
        name: file.as_str().to_owned(),
        source: e.into(),
    })
}
