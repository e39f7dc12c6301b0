// The cache-generation protocol as one state machine (`CacheRun`): which copy to serve, when to
// take the lock, when to serve stale, wait or generate privately. `Cluster::advance_cache` runs
// its database steps (row read, lock + re-check on the separate connection, wait polls); the
// caller only serves, generates and sleeps. Rust's `process_cache` and the C ABI both drive it.

use crate::cluster::Cluster;
use crate::error::{Error, Result};
use crate::fetch::{FileData, Visibility};
use crate::generation::GenerationLock;
use crate::meta::{is_file_expired, FileMeta, Freshness};
use crate::name::FileName;
use crate::process_cache::Regeneration;
use std::time::{Duration, Instant};

/// Whether the caller may generate, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CacheGenerate {
    /// Read only: never generate (legacy `$generate === false`).
    Never,
    /// Generate under the lock, or privately when the protocol says so.
    #[default]
    Always,
    /// Only under the lock, which is handed to the caller to generate later (legacy
    /// `$generate === null` + `storeCache`); never a private copy.
    LockedOnly,
}

/// How a `CacheRun` decides.
#[derive(Debug, Clone)]
pub struct CacheRules {
    /// When an entry counts as fresh (`ttl` 0: never; negative values: no limit).
    pub freshness: Freshness,
    /// The caller serves stored (and local) copies; `false` always generates (legacy
    /// `$retrieve === null`).
    pub retrieve: bool,
    pub generate: CacheGenerate,
    /// No stale copy while another process generates: `true` generates a private copy,
    /// `false` waits for the generator (legacy `NonExistantStaleCacheHandling`).
    pub generate_while_busy: bool,
    /// The caller already holds the generation lock: never take it again.
    pub holds_lock: bool,
    /// Give up after this many passes (a pass reads, then locks or serves); `None`: no limit.
    pub max_passes: Option<u32>,
    /// Interval of the wait polls.
    pub poll: Duration,
    /// Waiting longer than this (from the start of the run) gives up with `TimedOut`.
    pub max_wait: Option<Duration>,
    /// Scope of the lock row (`None`: guessed from the path, see `Cluster::start_generation`).
    pub lock_scope: Option<String>,
}

impl Default for CacheRules {
    fn default() -> CacheRules {
        CacheRules {
            freshness: Freshness::default(),
            retrieve: true,
            generate: CacheGenerate::Always,
            generate_while_busy: false,
            holds_lock: false,
            max_passes: None,
            poll: Duration::from_millis(100),
            max_wait: None,
            lock_scope: None,
        }
    }
}

/// How the run reads the row at the start of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheRead {
    /// Metadata only (the caller downloads what it serves, and keeps local copies).
    Stat,
    /// Metadata and content in one snapshot (no local copies); a broken copy reads as no row.
    Fetch,
}

/// What the caller does next.
#[derive(Debug)]
pub enum CacheAction {
    /// Serve the caller's local copy; its retrieve callback gets `retrieve_mtime`.
    ServeLocal { retrieve_mtime: i64 },
    /// Serve the stored row (`CacheRun::row`): download it, give the local copy `local_mtime`
    /// and call retrieve with `retrieve_mtime` (with `CacheRead::Fetch`, `CacheRun::take_data`
    /// has it). `stale`: the previous version, served while another process generates;
    /// `rechecked`: published by another process while this one took the lock.
    ServeStored {
        stale: bool,
        rechecked: bool,
        local_mtime: i64,
        retrieve_mtime: i64,
    },
    /// The lock is ours: generate and publish with it (or abort it).
    Generate(GenerationLock),
    /// Generate for this caller only and store nothing; `no_cache`: the caller's serve said
    /// "do not cache" (legacy failure 3).
    GenerateUnstored { no_cache: bool },
    /// Sleep this long, then report `CacheEvent::Waited`.
    Wait(Duration),
    /// Nothing to serve and the caller may not generate now (legacy failure 2).
    GiveUp,
    /// Waited `max_wait` for another process's generation.
    TimedOut,
}

/// What the caller reports to `Cluster::advance_cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheEvent {
    /// The first call of a run.
    Begin,
    /// The copy the last `Serve*` action named could not be served (download failed, retrieve
    /// said "expired", legacy failure 1): regenerate.
    ServeFailed,
    /// Serving said "do not cache" (legacy failure 3): generate privately.
    NoCache,
    /// The `Wait` is over.
    Waited,
    /// The previous `advance_cache` failed in its database step (the caller logged it): go on
    /// as if the read found no row, or the lock could not be taken.
    Continue,
}

/// The database step a run needs before it can decide.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Pending {
    Read,
    Lock {
        recheck: Option<Freshness>,
    },
    Check,
    /// The caller serves what a `Serve*` action named.
    Served,
    /// The caller sleeps.
    Waiting,
    Done,
}

/// One `process_cache` call in progress: the protocol's state and its decisions. Pure: the
/// database steps it asks for are run by [`Cluster::advance_cache`].
#[derive(Debug)]
pub struct CacheRun {
    file: FileName,
    rules: CacheRules,
    read: CacheRead,
    /// Database time at the start: the one clock every freshness decision of the run uses.
    now: i64,
    started: Instant,
    local: Option<i64>,
    row: Option<FileMeta>,
    data: Option<FileData>,
    /// mtime of the live row this pass rejected: a re-check accepts only a newer one.
    seen: Option<i64>,
    /// Another process generates: serve stale copies.
    stale: bool,
    /// Seconds until the other generator's lock may be taken over; `None`: taking the lock failed.
    remaining: Option<i64>,
    /// The re-check saw a fresh row published by another process: read it, lock without re-check.
    fresh_elsewhere: bool,
    wait_until: Option<Instant>,
    passes: u32,
    pending: Pending,
}

impl CacheRun {
    /// A run on `file` at database time `now`.
    pub fn new(file: FileName, rules: CacheRules, read: CacheRead, now: i64) -> CacheRun {
        CacheRun {
            file,
            rules,
            read,
            now,
            started: Instant::now(),
            local: None,
            row: None,
            data: None,
            seen: None,
            stale: false,
            remaining: None,
            fresh_elsewhere: false,
            wait_until: None,
            passes: 0,
            pending: Pending::Read,
        }
    }

    /// This run started again on `name`, as [`CacheRun::new`] would start it; the checked name
    /// (cleaned, hashed) is kept when it is the same, as for one hot cache entry read again and
    /// again. On an invalid name the run is unchanged.
    pub fn restart(&mut self, name: &str, rules: CacheRules, read: CacheRead, now: i64) -> Result<()> {
        // A cleaned name cleans to itself, so an equal name is this one.
        if name != self.file.as_str() {
            self.file = FileName::new(name)?;
        }
        let file = std::mem::replace(&mut self.file, FileName::placeholder());
        *self = CacheRun::new(file, rules, read, now);
        Ok(())
    }

    pub fn name(&self) -> &str {
        self.file.as_str()
    }

    /// The database time the run decides with.
    pub fn now(&self) -> i64 {
        self.now
    }

    /// The row as last read (deleted rows too); `None` when there is none.
    pub fn row(&self) -> Option<&FileMeta> {
        self.row.as_ref()
    }

    /// With `CacheRead::Fetch`, the content of the row a `ServeStored` names.
    pub fn take_data(&mut self) -> Option<FileData> {
        self.data.take()
    }

    fn finish(&mut self, action: CacheAction) -> Step {
        self.pending = match action {
            CacheAction::ServeLocal { .. } | CacheAction::ServeStored { .. } => Pending::Served,
            CacheAction::Wait(_) => Pending::Waiting,
            _ => Pending::Done,
        };
        Step::Act(action)
    }

    /// Starts a pass: read the row (reused while serving stale copies, as legacy's per-request
    /// metadata cache), or go straight to generating without a retrieve.
    fn begin_pass(&mut self) -> Step {
        self.passes += 1;
        if self.rules.max_passes.is_some_and(|max| self.passes > max) {
            return self.finish(CacheAction::GiveUp);
        }
        if !self.rules.retrieve {
            return self.generate_phase(false);
        }
        if self.stale {
            return self.read_phase();
        }
        self.pending = Pending::Read;
        Step::Io(Pending::Read)
    }

    fn read_phase(&mut self) -> Step {
        let freshness = self.freshness();
        let (ttl, expiry, now, stale) = (freshness.ttl, freshness.expiry, self.now, self.stale);
        let local = self.local;
        let local_expired = is_file_expired(local.unwrap_or(0), expiry, now, ttl);
        let force_db = if stale {
            local.is_none()
        } else {
            ttl == Some(0) || local_expired
        } || self.fresh_elsewhere;
        // What the decision needs of the row, read in place (every hit passes here: no copy).
        let live_mtime = self.row.as_ref().filter(|r| !r.is_expired()).map(|r| r.mtime);
        let stored = self.row.as_ref().map(|r| (r.mtime, freshness.accepts(r, now)));
        self.seen = live_mtime;
        if !force_db {
            if !stale && live_mtime.is_none() {
                self.seen = None;
                return self.generate_phase(false);
            }
            let local = local.unwrap_or(0);
            if stale || !is_file_expired(local, live_mtime, now, ttl) {
                let retrieve_mtime = if stale { now } else { local };
                return self.finish(CacheAction::ServeLocal { retrieve_mtime });
            }
        }
        let Some((mtime, fresh)) = stored else {
            if stale {
                return self.no_stale_copy();
            }
            return self.generate_phase(false);
        };
        if !stale && !fresh {
            return self.generate_phase(false);
        }
        let (local_mtime, retrieve_mtime) = if stale {
            // A stale copy is dated before its row, so whatever the generator publishes is newer.
            ((mtime.abs() - 1).max(1), now)
        } else {
            // As old as its row (legacy: the download time), so a stricter expiry still applies.
            (mtime + 1, mtime + 1)
        };
        let rechecked = !stale && self.fresh_elsewhere;
        self.finish(CacheAction::ServeStored {
            stale,
            rechecked,
            local_mtime,
            retrieve_mtime,
        })
    }

    fn freshness(&self) -> Freshness {
        Freshness {
            ttl: self.rules.freshness.ttl.filter(|t| *t >= 0),
            expiry: self.rules.freshness.expiry.filter(|e| *e >= 0),
        }
    }

    fn generate_phase(&mut self, no_cache: bool) -> Step {
        if self.rules.generate == CacheGenerate::Never {
            return self.finish(CacheAction::GiveUp);
        }
        if !no_cache && !self.stale && !self.rules.holds_lock {
            let recheck = if !self.rules.retrieve || self.fresh_elsewhere {
                None
            } else {
                let freshness = self.freshness();
                let expiry = match self.seen {
                    Some(seen) => Some(freshness.expiry.unwrap_or(-1).max(seen + 1)),
                    None => freshness.expiry,
                };
                Some(Freshness { expiry, ..freshness })
            };
            self.pending = Pending::Lock { recheck };
            return Step::Io(self.pending);
        }
        if self.rules.generate == CacheGenerate::LockedOnly {
            return self.finish(CacheAction::GiveUp);
        }
        self.finish(CacheAction::GenerateUnstored { no_cache })
    }

    fn on_lock(&mut self, outcome: Option<Regeneration>) -> Step {
        match outcome {
            Some(Regeneration::Acquired(lock)) => self.finish(CacheAction::Generate(lock)),
            Some(Regeneration::Fresh(_)) => {
                self.fresh_elsewhere = true;
                self.begin_pass()
            }
            Some(Regeneration::Busy { remaining_secs }) => {
                self.stale = true;
                self.remaining = Some(remaining_secs.max(0));
                self.begin_pass()
            }
            None => {
                // Taking the lock failed: serve a stale copy, or generate privately; no one is
                // known to generate, so waiting would be pointless.
                self.stale = true;
                self.remaining = None;
                self.begin_pass()
            }
        }
    }

    /// Another process generates and there is no old copy to serve.
    fn no_stale_copy(&mut self) -> Step {
        let Some(remaining) = self.remaining.filter(|_| !self.rules.generate_while_busy) else {
            return self.generate_phase(false);
        };
        if self.timed_out() {
            return self.finish(CacheAction::TimedOut);
        }
        // Until the generator's lock may be taken over (its age is counted in whole seconds).
        self.wait_until = Some(Instant::now() + Duration::from_secs(remaining as u64 + 1));
        self.finish(CacheAction::Wait(self.rules.poll))
    }

    fn timed_out(&self) -> bool {
        self.rules.max_wait.is_some_and(|max| self.started.elapsed() >= max)
    }

    fn on_waited(&mut self) -> Step {
        if self.wait_until.is_some_and(|until| Instant::now() >= until) {
            return self.leave_stale();
        }
        if self.timed_out() {
            return self.finish(CacheAction::TimedOut);
        }
        self.pending = Pending::Check;
        Step::Io(Pending::Check)
    }

    fn on_check(&mut self, present: bool) -> Step {
        if present || self.local.is_some() {
            return self.leave_stale();
        }
        self.finish(CacheAction::Wait(self.rules.poll))
    }

    fn leave_stale(&mut self) -> Step {
        self.stale = false;
        self.remaining = None;
        self.wait_until = None;
        self.begin_pass()
    }

    /// The decision after the caller's `event`; the local copy's mtime is `local` (`None`: none).
    fn on_event(&mut self, event: CacheEvent, local: Option<i64>) -> Result<Step> {
        self.local = local.filter(|m| *m > 0);
        let step = match (self.pending, event) {
            (Pending::Read, CacheEvent::Begin) if self.passes == 0 => self.begin_pass(),
            (Pending::Read, CacheEvent::Continue) => {
                self.row = None;
                self.data = None;
                self.read_phase()
            }
            (Pending::Lock { .. }, CacheEvent::Continue) => self.on_lock(None),
            (Pending::Check, CacheEvent::Continue) => self.on_check(false),
            (Pending::Served, CacheEvent::ServeFailed) => self.generate_phase(false),
            (Pending::Served, CacheEvent::NoCache) => self.generate_phase(true),
            (Pending::Waiting, CacheEvent::Waited) => self.on_waited(),
            (pending, event) => {
                return Err(Error::InvalidArgument {
                    name: self.file.as_str().to_owned(),
                    what: "cache event",
                    value: format!("{event:?}"),
                    reason: format!("the run expects {}", expected(pending)),
                })
            }
        };
        Ok(step)
    }
}

fn expected(pending: Pending) -> &'static str {
    match pending {
        Pending::Read => "Begin (or Continue after a failed read)",
        Pending::Lock { .. } => "Continue after the failed lock attempt",
        Pending::Check => "Continue after the failed wait poll",
        Pending::Served => "ServeFailed or NoCache for the copy it named",
        Pending::Waiting => "Waited",
        Pending::Done => "nothing more: it is finished",
    }
}

enum Step {
    Io(Pending),
    Act(CacheAction),
}

impl Cluster {
    /// Starts the cache protocol on `name` with this cluster's clock; then call
    /// [`Cluster::advance_cache`] with `CacheEvent::Begin`.
    pub fn cache_run(&self, name: &str, rules: CacheRules, read: CacheRead) -> Result<CacheRun> {
        Ok(CacheRun::new(FileName::new(name)?, rules, read, self.now()))
    }

    /// [`Cluster::cache_run`] into a run the caller already has (see [`CacheRun::restart`]).
    pub fn restart_cache_run(&self, run: &mut CacheRun, name: &str, rules: CacheRules, read: CacheRead) -> Result<()> {
        run.restart(name, rules, read, self.now())
    }

    /// Reports `event` (and the caller's local copy mtime, `None` or 0: none) to `run` and runs
    /// its database steps until it needs the caller: the next action. On an error the run keeps
    /// its state; report `CacheEvent::Continue` to go on without that step.
    pub async fn advance_cache(
        &self,
        run: &mut CacheRun,
        event: CacheEvent,
        local: Option<i64>,
    ) -> Result<CacheAction> {
        let mut step = run.on_event(event, local)?;
        loop {
            let pending = match step {
                Step::Act(action) => return Ok(action),
                Step::Io(pending) => pending,
            };
            step = match pending {
                Pending::Read => {
                    let (row, data) = match run.read {
                        CacheRead::Stat => (self.stat_file(&run.file).await?, None),
                        CacheRead::Fetch => match self.read_optional(&run.file).await? {
                            Some(data) => (Some(data.meta.clone()), Some(data)),
                            None => (None, None),
                        },
                    };
                    (run.row, run.data) = (row, data);
                    run.read_phase()
                }
                Pending::Lock { recheck } => {
                    let name = run.file.as_str();
                    let scope = run.rules.lock_scope.as_deref();
                    let outcome = match recheck {
                        Some(freshness) => self.start_regeneration(name, scope, &freshness, run.now).await?,
                        None => self.start_generation(name, scope).await?.into(),
                    };
                    run.on_lock(Some(outcome))
                }
                Pending::Check => {
                    let present = self.stat_file(&run.file).await?.is_some();
                    run.on_check(present)
                }
                Pending::Served | Pending::Waiting | Pending::Done => {
                    unreachable!("only database steps are pending here")
                }
            };
        }
    }

    /// The whole file, deleted or expired too; `None` when there is no row, or when its chunks
    /// are broken (then it is regenerated like a missing entry).
    pub(crate) async fn read_optional(&self, file: &FileName) -> Result<Option<FileData>> {
        match self.fetch_with_meta(file.as_str(), Visibility::IncludeExpired).await {
            Ok(data) => Ok(Some(data)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e @ Error::Integrity { .. }) => {
                tracing::warn!(error = %e, "regenerating a cache entry whose stored copy is broken");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn meta(mtime: i64) -> FileMeta {
        FileMeta {
            name: "c".into(),
            size: 1,
            mtime,
            scope: String::new(),
            datatype: String::new(),
            name_trunk: String::new(),
            deleted: mtime < 0,
            global_expiry: None,
        }
    }

    fn run(rules: CacheRules) -> CacheRun {
        CacheRun::new(FileName::new("c").unwrap(), rules, CacheRead::Stat, NOW)
    }

    fn io(step: Step) -> Pending {
        match step {
            Step::Io(p) => p,
            Step::Act(a) => panic!("expected a database step, got {a:?}"),
        }
    }

    fn act(step: Step) -> CacheAction {
        match step {
            Step::Act(a) => a,
            Step::Io(p) => panic!("expected an action, got {p:?}"),
        }
    }

    #[test]
    fn a_fresh_local_copy_is_served_without_locking() {
        let mut r = run(CacheRules::default());
        assert_eq!(io(r.on_event(CacheEvent::Begin, Some(NOW - 5)).unwrap()), Pending::Read);
        r.row = Some(meta(NOW - 10));
        assert!(matches!(act(r.read_phase()), CacheAction::ServeLocal { retrieve_mtime } if retrieve_mtime == NOW - 5));
    }

    #[test]
    fn an_older_local_copy_downloads_the_row() {
        let mut r = run(CacheRules::default());
        io(r.on_event(CacheEvent::Begin, Some(NOW - 50)).unwrap());
        r.row = Some(meta(NOW - 10));
        assert!(matches!(
            act(r.read_phase()),
            CacheAction::ServeStored { stale: false, local_mtime, .. } if local_mtime == NOW - 9
        ));
    }

    #[test]
    fn an_expired_row_locks_with_a_recheck_newer_than_it() {
        let mut r = run(CacheRules {
            freshness: Freshness::ttl(5),
            ..Default::default()
        });
        io(r.on_event(CacheEvent::Begin, None).unwrap());
        r.row = Some(meta(NOW - 10));
        let Pending::Lock { recheck: Some(recheck) } = io(r.read_phase()) else {
            panic!("expected a lock")
        };
        assert_eq!((recheck.ttl, recheck.expiry), (Some(5), Some(NOW - 9)));
    }

    #[test]
    fn busy_serves_stale_then_waits_without_a_copy() {
        let mut r = run(CacheRules::default());
        io(r.on_event(CacheEvent::Begin, None).unwrap());
        r.row = Some(meta(-(NOW - 10)));
        io(r.read_phase());
        let served = act(r.on_lock(Some(Regeneration::Busy { remaining_secs: 3 })));
        assert!(matches!(
            served,
            CacheAction::ServeStored {
                stale: true,
                retrieve_mtime: NOW,
                ..
            }
        ));

        let mut r = run(CacheRules::default());
        io(r.on_event(CacheEvent::Begin, None).unwrap());
        io(r.read_phase());
        assert!(matches!(
            act(r.on_lock(Some(Regeneration::Busy { remaining_secs: 3 }))),
            CacheAction::Wait(_)
        ));
        assert_eq!(io(r.on_event(CacheEvent::Waited, None).unwrap()), Pending::Check);
        assert_eq!(
            io(r.on_check(true)),
            Pending::Read,
            "the generator published: read again"
        );
    }

    #[test]
    fn a_failed_lock_generates_privately_and_read_only_gives_up() {
        let mut r = run(CacheRules::default());
        io(r.on_event(CacheEvent::Begin, None).unwrap());
        io(r.read_phase());
        assert!(matches!(
            act(r.on_event(CacheEvent::Continue, None).unwrap()),
            CacheAction::GenerateUnstored { no_cache: false }
        ));
        let mut r = run(CacheRules {
            generate: CacheGenerate::Never,
            ..Default::default()
        });
        io(r.on_event(CacheEvent::Begin, None).unwrap());
        assert!(matches!(act(r.read_phase()), CacheAction::GiveUp));
        assert!(
            r.on_event(CacheEvent::Waited, None).is_err(),
            "a finished run takes no events"
        );
    }
}
