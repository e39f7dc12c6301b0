// The cache-generation protocol through the C ABI: the core decides each step (`ezdb_cache_begin`,
// `ezdb_cache_next`) and runs its database work; the caller only serves, generates and sleeps.

use crate::args;
use crate::generation::{ezdb_lock, lock_handle};
use crate::guard::{guarded, guarded_ok};
use crate::handle::{ezdb_cluster, CLUSTERS};
use crate::info::{ezdb_file_info, fill};
use crate::registry::Registry;
use crate::status::{ezdb_status, Failure};
use ezdb_core::{CacheAction, CacheEvent, CacheGenerate, CacheRead, CacheRules, CacheRun, Freshness};
use std::ffi::c_char;
use std::time::Duration;

static RUNS: Registry = Registry::new("cache run (ezdb_cache*)");

/// One processCache call in progress. Opaque; created by `ezdb_cache_begin`, freed by
/// `ezdb_cache_free`. Use it only in the process that began it.
pub struct ezdb_cache {
    run: CacheRun,
}

/// How a cache run decides (legacy `processCache` arguments and settings).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ezdb_cache_rules {
    /// Maximum age in seconds; negative: no limit; 0: always stale.
    pub ttl: i64,
    /// Entries with an mtime below this Unix time are stale; negative: none.
    pub expiry: i64,
    /// 1: the caller serves stored and local copies; 0: always generate (legacy `$retrieve` null).
    pub retrieve: i32,
    /// `EZDB_CACHE_GENERATE_*`: never (read only), always, or only under the lock.
    pub generate: i32,
    /// 1: with no stale copy while another process generates, generate a private copy; 0: wait
    /// (legacy `NonExistantStaleCacheHandling` `generate` / `wait`).
    pub generate_while_busy: i32,
    /// 1: the caller already holds the lock of this file: never take it.
    pub holds_lock: i32,
    /// Give up (`EZDB_CACHE_GIVE_UP`) after this many passes; 0: no limit.
    pub max_passes: u32,
    /// Interval of the wait polls in milliseconds; 0: the cluster's (100 ms).
    pub poll_ms: u32,
    /// Give up waiting (`EZDB_CACHE_TIMED_OUT`) after this many milliseconds; 0 or less: never.
    pub max_wait_ms: i64,
}

/// Read only: never generate (legacy `$generate === false`).
pub const EZDB_CACHE_GENERATE_NEVER: i32 = 0;
/// Generate under the lock, or a private copy when the protocol says so.
pub const EZDB_CACHE_GENERATE_ALWAYS: i32 = 1;
/// Only under the lock, handed to the caller (legacy `$generate === null`); never privately.
pub const EZDB_CACHE_GENERATE_LOCKED: i32 = 2;

/// What the caller does next (`ezdb_cache_step.action`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ezdb_cache_action {
    /// Serve the local copy: retrieve it with `retrieve_mtime`.
    EZDB_CACHE_SERVE_LOCAL = 1,
    /// Download the stored row (deleted rows too), give the local copy `local_mtime`, retrieve
    /// it with `retrieve_mtime`. `stale`: the previous version while another process generates.
    EZDB_CACHE_SERVE_STORED = 2,
    /// The lock is ours (`*out_lock`): generate, then `ezdb_generation_publish` or `_abort`.
    EZDB_CACHE_GENERATE = 3,
    /// Generate for this caller only and store nothing (`no_cache`: the retrieve said so).
    EZDB_CACHE_GENERATE_UNSTORED = 4,
    /// Sleep `wait_ms`, then `ezdb_cache_next(EZDB_CACHE_WAITED)`.
    EZDB_CACHE_WAIT = 5,
    /// Nothing to serve and the caller may not generate (legacy failure 2).
    EZDB_CACHE_GIVE_UP = 6,
    /// Waited `max_wait_ms` for another process's generation.
    EZDB_CACHE_TIMED_OUT = 7,
}

// What the caller reports to `ezdb_cache_next` (its `event` argument):

/// The copy named by a serve action could not be served (download failed, or the retrieve said
/// "expired", legacy failure 1): regenerate.
pub const EZDB_CACHE_SERVE_FAILED: i32 = 1;
/// The retrieve said "do not cache" (legacy failure 3): generate a private copy.
pub const EZDB_CACHE_NO_CACHE: i32 = 2;
/// The wait is over.
pub const EZDB_CACHE_WAITED: i32 = 3;
/// The previous `ezdb_cache_begin`/`_next` failed in its database step (the caller has its
/// message): go on as if the read found no row, or the lock could not be taken.
pub const EZDB_CACHE_CONTINUE: i32 = 4;

/// The next step, written by the library into a struct the caller owns.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct ezdb_cache_step {
    /// An `ezdb_cache_action` (an integer, so any memory the caller passes is a valid struct).
    pub action: i32,
    /// `SERVE_*`: the mtime to give the retrieve callback.
    pub retrieve_mtime: i64,
    /// `SERVE_STORED`: the mtime the downloaded local copy gets.
    pub local_mtime: i64,
    /// `SERVE_STORED`: 1 when it is the previous version, served while another process generates.
    pub stale: i32,
    /// `SERVE_STORED`: 1 when another process published it while this one took the lock.
    pub rechecked: i32,
    /// `GENERATE_UNSTORED`: 1 when the retrieve said "do not cache".
    pub no_cache: i32,
    /// `WAIT`: milliseconds to sleep.
    pub wait_ms: i64,
    /// 1 when the run has read a row (deleted too): then `*out_row` (when given) holds it.
    pub has_row: i32,
    /// The database time the run decides with (read once at `ezdb_cache_begin`).
    pub now: i64,
}

impl ezdb_cache_rules {
    fn rules(&self) -> Result<CacheRules, Failure> {
        let generate = match self.generate {
            EZDB_CACHE_GENERATE_NEVER => CacheGenerate::Never,
            EZDB_CACHE_GENERATE_ALWAYS => CacheGenerate::Always,
            EZDB_CACHE_GENERATE_LOCKED => CacheGenerate::LockedOnly,
            other => {
                return Err(Failure::invalid(format!(
                    "rules.generate is {other}; use an EZDB_CACHE_GENERATE_* value"
                )))
            }
        };
        let defaults = CacheRules::default();
        Ok(CacheRules {
            freshness: Freshness {
                ttl: Some(self.ttl).filter(|t| *t >= 0),
                expiry: Some(self.expiry).filter(|e| *e >= 0),
            },
            retrieve: self.retrieve != 0,
            generate,
            generate_while_busy: self.generate_while_busy != 0,
            holds_lock: self.holds_lock != 0,
            max_passes: Some(self.max_passes).filter(|m| *m > 0),
            poll: match self.poll_ms {
                0 => defaults.poll,
                ms => Duration::from_millis(u64::from(ms)),
            },
            max_wait: u64::try_from(self.max_wait_ms)
                .ok()
                .filter(|ms| *ms > 0)
                .map(Duration::from_millis),
            lock_scope: None,
        })
    }
}

/// Starts the cache protocol on `name`: reads the row (one statement) and decides. `rules` is
/// read during the call only. `local_mtime`: the caller's local copy's mtime (0 or less: none).
/// On `EZDB_OK`, `*out_step` holds the next action; `*out_lock` a lock for
/// `EZDB_CACHE_GENERATE` (caller-owned as from `ezdb_generation_start`), else NULL; `*out_row`
/// (nullable) the row read (texts library-owned, as for `ezdb_stat`). `*out_run` receives the
/// run (caller-owned, free with `ezdb_cache_free`) whenever the name is valid, also when the
/// database step failed: then report `EZDB_CACHE_CONTINUE` to go on without it, or free it.
#[no_mangle]
pub unsafe extern "C" fn ezdb_cache_begin(
    cluster: *mut ezdb_cluster,
    name: *const c_char,
    name_len: usize,
    rules: *const ezdb_cache_rules,
    local_mtime: i64,
    out_run: *mut *mut ezdb_cache,
    out_step: *mut ezdb_cache_step,
    out_lock: *mut *mut ezdb_lock,
    out_row: *mut ezdb_file_info,
) -> ezdb_status {
    guarded(|| {
        let out_run = args::out(out_run, "out_run")?;
        *out_run = std::ptr::null_mut();
        let cluster = CLUSTERS.get(cluster)?;
        let name = args::text(name, name_len, "name")?;
        let rules = read_rules(rules)?;
        let (out_step, out_lock) = step_outputs(out_step, out_lock)?;
        let run = cluster.with(|c| c.cache_run(name, rules, CacheRead::Stat))?;
        let run = RUNS.give(ezdb_cache { run });
        *out_run = run;
        advance(
            cluster,
            &mut (*run).run,
            CacheEvent::Begin,
            local_mtime,
            out_step,
            out_lock,
            out_row,
        )
    })
}

/// `ezdb_cache_begin` on a run the caller already has (from `ezdb_cache_begin`, not freed), in
/// whatever state it is: it is started again on `name` (what it was doing is forgotten; a lock
/// it handed out stays the caller's), so a caller handling one processCache call after another
/// keeps one run instead of allocating and freeing one per call. Arguments and outputs as for
/// `ezdb_cache_begin`; the run stays the caller's (free it with `ezdb_cache_free`). When the
/// name or the rules are invalid the run is unchanged; when the database step failed it is the
/// new run (report `EZDB_CACHE_CONTINUE`, or start it again).
#[no_mangle]
pub unsafe extern "C" fn ezdb_cache_restart(
    cluster: *mut ezdb_cluster,
    run: *mut ezdb_cache,
    name: *const c_char,
    name_len: usize,
    rules: *const ezdb_cache_rules,
    local_mtime: i64,
    out_step: *mut ezdb_cache_step,
    out_lock: *mut *mut ezdb_lock,
    out_row: *mut ezdb_file_info,
) -> ezdb_status {
    guarded(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let held = RUNS.get_mut(run)?;
        let name = args::text(name, name_len, "name")?;
        let rules = read_rules(rules)?;
        let (out_step, out_lock) = step_outputs(out_step, out_lock)?;
        cluster.with(|c| c.restart_cache_run(&mut held.run, name, rules, CacheRead::Stat))?;
        advance(
            cluster,
            &mut held.run,
            CacheEvent::Begin,
            local_mtime,
            out_step,
            out_lock,
            out_row,
        )
    })
}

/// Reports `event` (`EZDB_CACHE_SERVE_FAILED`, `_NO_CACHE`, `_WAITED`, `_CONTINUE`) for the
/// last step of `run`, with the local copy's mtime now (0 or less: none), and gives the next
/// step, as `ezdb_cache_begin` does. An event the run does not expect is
/// `EZDB_INVALID_ARGUMENT` (the run is unchanged).
#[no_mangle]
pub unsafe extern "C" fn ezdb_cache_next(
    cluster: *mut ezdb_cluster,
    run: *mut ezdb_cache,
    event: i32,
    local_mtime: i64,
    out_step: *mut ezdb_cache_step,
    out_lock: *mut *mut ezdb_lock,
    out_row: *mut ezdb_file_info,
) -> ezdb_status {
    guarded(|| {
        let cluster = CLUSTERS.get(cluster)?;
        let held = RUNS.get_mut(run)?;
        let (out_step, out_lock) = step_outputs(out_step, out_lock)?;
        let event = match event {
            EZDB_CACHE_SERVE_FAILED => CacheEvent::ServeFailed,
            EZDB_CACHE_NO_CACHE => CacheEvent::NoCache,
            EZDB_CACHE_WAITED => CacheEvent::Waited,
            EZDB_CACHE_CONTINUE => CacheEvent::Continue,
            other => return Err(Failure::invalid(format!("event is {other}; use an EZDB_CACHE_* event"))),
        };
        advance(cluster, &mut held.run, event, local_mtime, out_step, out_lock, out_row)
    })
}

/// The row the run's last step read (deleted rows too, as `has_row` reported) into `*out_row`
/// (texts library-owned, as for `ezdb_stat`): `EZDB_OK`, or `EZDB_NOT_FOUND` when it read none.
/// No database call: the run keeps its row until its next step, so a caller that may not need
/// the row passes NULL as `out_row` to the step and asks here only when it does.
#[no_mangle]
pub unsafe extern "C" fn ezdb_cache_row(run: *const ezdb_cache, out_row: *mut ezdb_file_info) -> ezdb_status {
    guarded(|| {
        let held = RUNS.get(run)?;
        let out_row = args::out(out_row, "out_row")?;
        match held.run.row() {
            Some(meta) => {
                fill(Some(out_row), meta);
                Ok(ezdb_status::EZDB_OK)
            }
            None => Ok(ezdb_status::EZDB_NOT_FOUND),
        }
    })
}

/// Frees a run (any lock it handed out stays the caller's). NULL is a no-op.
#[no_mangle]
pub unsafe extern "C" fn ezdb_cache_free(run: *mut ezdb_cache) -> ezdb_status {
    if run.is_null() {
        return ezdb_status::EZDB_OK;
    }
    guarded_ok(|| RUNS.take(run).map(drop))
}

/// The rules a caller passed to `ezdb_cache_begin` or `ezdb_cache_restart`, checked.
unsafe fn read_rules(rules: *const ezdb_cache_rules) -> Result<CacheRules, Failure> {
    rules
        .as_ref()
        .ok_or_else(|| Failure::invalid("rules is NULL; pass an ezdb_cache_rules".to_owned()))?
        .rules()
}

/// The outputs every step call takes, checked; `*out_lock` is NULL until a step hands out a lock.
unsafe fn step_outputs<'a>(
    out_step: *mut ezdb_cache_step,
    out_lock: *mut *mut ezdb_lock,
) -> Result<(&'a mut ezdb_cache_step, &'a mut *mut ezdb_lock), Failure> {
    let out_step = args::out(out_step, "out_step")?;
    let out_lock = args::out(out_lock, "out_lock")?;
    *out_lock = std::ptr::null_mut();
    Ok((out_step, out_lock))
}

unsafe fn advance(
    cluster: &ezdb_cluster,
    run: &mut CacheRun,
    event: CacheEvent,
    local_mtime: i64,
    out_step: &mut ezdb_cache_step,
    out_lock: &mut *mut ezdb_lock,
    out_row: *mut ezdb_file_info,
) -> Result<ezdb_status, Failure> {
    let local = Some(local_mtime).filter(|m| *m > 0);
    let action = {
        let run = &mut *run;
        cluster.run(|c| async move { c.advance_cache(run, event, local).await })
    };
    let now = run.now();
    let row = run.row();
    *out_step = ezdb_cache_step {
        action: ezdb_cache_action::EZDB_CACHE_GIVE_UP as i32,
        retrieve_mtime: 0,
        local_mtime: 0,
        stale: 0,
        rechecked: 0,
        no_cache: 0,
        wait_ms: 0,
        has_row: i32::from(row.is_some()),
        now,
    };
    if let Some(meta) = row {
        fill(args::optional_out(out_row), meta);
    }
    let step = out_step;
    let action = match action? {
        CacheAction::ServeLocal { retrieve_mtime } => {
            step.retrieve_mtime = retrieve_mtime;
            ezdb_cache_action::EZDB_CACHE_SERVE_LOCAL
        }
        CacheAction::ServeStored {
            stale,
            rechecked,
            local_mtime,
            retrieve_mtime,
        } => {
            (step.stale, step.rechecked) = (i32::from(stale), i32::from(rechecked));
            (step.local_mtime, step.retrieve_mtime) = (local_mtime, retrieve_mtime);
            ezdb_cache_action::EZDB_CACHE_SERVE_STORED
        }
        CacheAction::Generate(lock) => {
            *out_lock = lock_handle(lock, None);
            ezdb_cache_action::EZDB_CACHE_GENERATE
        }
        CacheAction::GenerateUnstored { no_cache } => {
            step.no_cache = i32::from(no_cache);
            ezdb_cache_action::EZDB_CACHE_GENERATE_UNSTORED
        }
        CacheAction::Wait(pause) => {
            step.wait_ms = pause.as_millis() as i64;
            ezdb_cache_action::EZDB_CACHE_WAIT
        }
        CacheAction::GiveUp => ezdb_cache_action::EZDB_CACHE_GIVE_UP,
        CacheAction::TimedOut => ezdb_cache_action::EZDB_CACHE_TIMED_OUT,
    };
    step.action = action as i32;
    Ok(ezdb_status::EZDB_OK)
}
