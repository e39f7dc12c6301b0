//! The request handler: a path becomes a cluster name; the file is read from the memory cache,
//! or from the database whole (into memory, or into a spool file when large) before anything is
//! sent, so a client's pace never holds a database connection; its metadata decides the status
//! (412, 304, 416, 206, 200) under RFC 9110.

use crate::config::{seconds, Config};
use crate::disk_cache::{DiskCache, DiskEntry, DiskLookup};
use crate::headers::file_headers;
use crate::hot_cache::{Cached, HotCache, LoadSlot, Lookup};
use crate::metrics::{Metrics, Tier};
use crate::preconditions::{decide, is_conditional, Decision};
use crate::request_name::{name_for, Refusal};
use crate::revalidation::{Clock, Revalidator};
use crate::server::RunError;
use crate::spool::{Spool, SpoolError, SpoolFile};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use ezdb_core::{ByteRange, Cluster, Error, FileMeta, FileStream, Visibility};
use futures_util::StreamExt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OnceCell, OwnedSemaphorePermit, Semaphore};

/// Disk-tier hits at least this large are sent from a mapping; smaller ones are read whole.
const MAP_MIN_FILE: u64 = 256 << 10;

pub struct AppState {
    /// Filled once the database has answered; until then every file request gets 503.
    pub cluster: OnceCell<Cluster>,
    pub config: Config,
    pub served_by: Option<HeaderValue>,
    pub cache: Arc<HotCache>,
    pub spool: Spool,
    /// The disk tier, when a directory is set.
    pub disk: Option<Arc<DiskCache>>,
    /// Keeps the copies in use of both tiers confirmed in the background.
    pub revalidator: Arc<Revalidator>,
    /// How long one request may wait on the database.
    pub database_timeout: Duration,
    pub metrics: Arc<Metrics>,
    /// KiB of file content held in memory for responses in flight, outside the cache.
    memory_budget: Arc<Semaphore>,
}

impl AppState {
    pub fn new(config: Config) -> Result<AppState, RunError> {
        let served_by = config.served_by().and_then(|s| s.parse().ok());
        let revalidate = seconds(config.cache_revalidate);
        let clock = Clock::new();
        let cache = HotCache::new(config.cache_bytes, config.cache_max_file, revalidate, clock);
        let dir = config.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
        let spool = Spool::new(&dir, config.spool_bytes).map_err(|source| RunError::Spool { path: dir, source })?;
        let disk = match &config.disk_cache_dir {
            Some(dir) => Some(Arc::new(
                DiskCache::open(
                    dir,
                    config.disk_cache_bytes,
                    config.disk_cache_max_file,
                    revalidate,
                    clock,
                )
                .map_err(|source| RunError::DiskCache {
                    path: dir.clone(),
                    source,
                })?,
            )),
            None => None,
        };
        Ok(AppState {
            cluster: OnceCell::new(),
            disk,
            revalidator: Arc::new(Revalidator::new(clock, revalidate)),
            database_timeout: seconds(config.database_timeout),
            metrics: Arc::default(),
            memory_budget: Arc::new(Semaphore::new(
                (config.memory_bytes / 1024).min(Semaphore::MAX_PERMITS as u64) as usize,
            )),
            config,
            served_by,
            cache: Arc::new(cache),
            spool,
        })
    }

    /// Files up to this size are read into memory; larger ones go through the spool.
    fn memory_max_file(&self) -> u64 {
        self.config.cache_max_file as u64
    }

    /// Whether `len` bytes may be held in memory for one response: `Some(None)` when the cache
    /// takes them (it is bounded itself), `Some(permit)` when the budget has room, `None` when
    /// the file must go through the spool instead.
    fn reserve_memory(&self, len: u64, cached: bool) -> Option<Option<OwnedSemaphorePermit>> {
        if len > self.memory_max_file() {
            return None;
        }
        if cached {
            return Some(None);
        }
        let kib = u32::try_from(len.div_ceil(1024)).ok()?;
        self.memory_budget
            .clone()
            .try_acquire_many_owned(kib.max(1))
            .ok()
            .map(Some)
    }
}

pub type Shared = Arc<AppState>;

pub async fn handle(State(state): State<Shared>, method: Method, uri: Uri, request: HeaderMap) -> Response {
    let started = Instant::now();
    let response = route(&state, &method, &uri, &request).await;
    let status = response.status();
    let sends_content = method == Method::GET && (status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT);
    let content_bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .filter(|_| sends_content)
        .unwrap_or(0);
    state.metrics.response(status.as_u16(), content_bytes);
    // Debug, not info: at the default level a line per request floods the journal (about
    // 250 bytes each, 200 MB a minute at 15,000 req/s); the web server in front keeps the
    // access log.
    tracing::debug!(%method, path = uri.path(), status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    response
}

async fn route(state: &AppState, method: &Method, uri: &Uri, request: &HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "only GET and HEAD\n",
        )
            .into_response();
    }
    if uri.path() == "/healthz" {
        return health(state).await;
    }
    if uri.path() == "/metrics" {
        let content_type = "text/plain; version=0.0.4; charset=utf-8";
        let pool_waits = state.cluster.get().map(Cluster::pool_waits);
        return ([(header::CONTENT_TYPE, content_type)], state.metrics.render(pool_waits)).into_response();
    }
    let name = match name_for(uri.path(), &state.config.prefixes) {
        Ok(name) => name,
        Err(Refusal::BadRequest(why)) => {
            return (StatusCode::BAD_REQUEST, format!("bad request: {why}\n")).into_response()
        }
        Err(Refusal::NotServed) => return not_found(),
    };
    let Some(cluster) = state.cluster.get() else {
        return unavailable();
    };
    match tokio::time::timeout(state.database_timeout, answer(state, cluster, &name, method, request)).await {
        Ok(Ok(response)) => response,
        Ok(Err(failure)) => failure.response(),
        Err(_) => {
            state.metrics.deadline_missed();
            tracing::warn!(%name, seconds = state.database_timeout.as_secs_f64(), "the database did not answer within the deadline");
            unavailable()
        }
    }
}

/// Why a request could not be answered from the file.
enum Failure {
    Core(Error),
    Spool(SpoolError),
    /// The file kept changing between the reads of one request.
    Unstable,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Core(e)
    }
}

impl Failure {
    fn response(self) -> Response {
        match self {
            Failure::Core(e) => error_response(&e),
            Failure::Spool(SpoolError::Full) => {
                tracing::warn!("spool directory full: a large file was refused; raise --spool-bytes");
                unavailable()
            }
            Failure::Spool(SpoolError::Io(e)) => {
                tracing::error!(error = %e, "cannot write the spool directory");
                (StatusCode::INTERNAL_SERVER_ERROR, "local spool failed\n").into_response()
            }
            Failure::Spool(SpoolError::Read(e)) => error_response(&e),
            Failure::Unstable => {
                tracing::info!("a file changed during every read of one request");
                unavailable()
            }
        }
    }
}

/// A version of the file read whole or in part, ready to send.
struct Loaded {
    meta: FileMeta,
    content: Content,
    /// The part of the file `content` holds; `None` for all of it.
    covers: Option<ByteRange>,
}

enum Content {
    /// In memory, with the share of the memory budget it holds (none when the cache owns it).
    Memory(Bytes, Option<OwnedSemaphorePermit>),
    Spooled(SpoolFile),
}

async fn answer(
    state: &AppState,
    cluster: &Cluster,
    name: &str,
    method: &Method,
    request: &HeaderMap,
) -> Result<Response, Failure> {
    let mut slot = match cached(state, cluster, name).await? {
        Memory::Hit(file) => {
            let decision = decide(method, request, &file.meta);
            let loaded = Loaded {
                meta: file.meta,
                content: Content::Memory(file.body, None),
                covers: None,
            };
            return respond(state, method, loaded, decision).ok_or(Failure::Unstable);
        }
        Memory::Miss(slot) => slot,
    };
    if let Some(disk) = &state.disk {
        if let Some(response) = from_disk(state, disk, cluster, name, method, request, &mut slot).await? {
            return Ok(response);
        }
    }
    // Metadata first when it may spare the read (304, 412, 416, HEAD) or narrow it (a range
    // of a large file); a plain GET reads metadata and content in one statement.
    let mut stat_first = method == Method::HEAD || is_conditional(request);
    for _ in 0..3 {
        let mut part = None;
        if stat_first {
            let timer = state.metrics.database();
            // Readable, not only a row: on eZDFS a row whose file is missing is 404 to HEAD and
            // conditionals as to GET.
            let meta = cluster.stat_readable(name).await?;
            drop(timer);
            let meta = match meta {
                Some(meta) if servable(state, &meta) => meta,
                _ => return Ok(not_found()),
            };
            let decision = decide(method, request, &meta);
            match decision {
                Decision::Whole | Decision::Part(_) if method == Method::GET => {}
                _ => return Ok(without_body(state, &meta, decision)),
            }
            if let Decision::Part(range) = decision {
                part = Some(range).filter(|_| meta.size > state.memory_max_file());
            }
        }
        let loaded = match load(state, cluster, name, part, slot.take()).await {
            Ok(Some(loaded)) => loaded,
            Ok(None) => return Ok(not_found()),
            // The file shrank below the range since its metadata was read.
            Err(Failure::Core(Error::InvalidArgument { .. })) if part.is_some() => {
                stat_first = true;
                continue;
            }
            Err(e) => return Err(e),
        };
        let decision = decide(method, request, &loaded.meta);
        match respond(state, method, loaded, decision) {
            Some(response) => return Ok(response),
            // It changed between the metadata and the read: decide again on the new version.
            None => stat_first = true,
        }
    }
    Err(Failure::Unstable)
}

/// What the memory tier has for a request.
enum Memory<'a> {
    /// A copy that may be served: fresh, or stale but confirmed unchanged by the database.
    Hit(Cached),
    /// Not there; with a slot, this request loads it for the others waiting.
    Miss(Option<LoadSlot<'a>>),
}

async fn cached<'a>(state: &'a AppState, cluster: &Cluster, name: &str) -> Result<Memory<'a>, Error> {
    loop {
        let metrics = &state.metrics;
        let (file, checks) = match state.cache.lookup(name).await {
            Lookup::Fresh(file, checks) => {
                metrics.hit(Tier::Memory);
                state.revalidator.served(name, &checks);
                return Ok(Memory::Hit(file));
            }
            Lookup::Stale(file, checks) => (file, checks),
            Lookup::Miss(slot) => {
                if slot.is_some() {
                    metrics.miss(Tier::Memory);
                }
                return Ok(Memory::Miss(slot));
            }
        };
        let started = state.revalidator.now_ms();
        let timer = metrics.database();
        let meta = cluster.stat(name).await?;
        drop(timer);
        let unchanged = meta.is_some_and(|meta| servable(state, &meta) && meta == file.meta);
        metrics.revalidated(Tier::Memory, unchanged);
        if unchanged {
            checks.confirm(started);
            metrics.hit(Tier::Memory);
            state.revalidator.served(name, &checks);
            return Ok(Memory::Hit(file));
        }
        // Changed or gone: forget it, and load it (once for everyone) like any miss.
        state.cache.remove_if_is(name, &checks);
    }
}

/// Answers from the disk tier when it holds the current version; `None` sends the request on
/// to the database.
async fn from_disk(
    state: &AppState,
    disk: &DiskCache,
    cluster: &Cluster,
    name: &str,
    method: &Method,
    request: &HeaderMap,
    slot: &mut Option<LoadSlot<'_>>,
) -> Result<Option<Response>, Failure> {
    let metrics = &state.metrics;
    let entry = match disk.lookup(name) {
        DiskLookup::Fresh(entry) => entry,
        DiskLookup::Stale(entry) => {
            let started = state.revalidator.now_ms();
            let timer = metrics.database();
            let meta = cluster.stat(name).await?;
            drop(timer);
            let unchanged = meta.is_some_and(|meta| servable(state, &meta) && meta == entry.meta);
            metrics.revalidated(Tier::Disk, unchanged);
            if !unchanged {
                disk.remove_if_is(name, &entry.checks);
                metrics.miss(Tier::Disk);
                return Ok(None);
            }
            entry.checks.confirm(started);
            entry
        }
        DiskLookup::Miss => {
            metrics.miss(Tier::Disk);
            return Ok(None);
        }
    };
    metrics.hit(Tier::Disk);
    state.revalidator.served(name, &entry.checks);
    let meta = entry.meta.clone();
    let decision = decide(method, request, &meta);
    let (start, len, covers) = match decision {
        Decision::Whole if method == Method::GET => (0, meta.size, None),
        Decision::Part(range) => (range.start, range.len(), Some(range)),
        _ => return Ok(Some(without_body(state, &meta, decision))),
    };
    // Read into memory for the memory tier to keep, or when small (one read costs less than
    // setting up and tearing down a mapping); otherwise send from a mapping of the file (no
    // copy through user space, no share of the memory budget: the pages are the kernel's
    // page cache).
    let promote = slot.is_some() && meta.size <= state.memory_max_file() && state.cache.admits(name, meta.size, &meta);
    let small = if !promote && meta.size < MAP_MIN_FILE {
        state.reserve_memory(meta.size, false)
    } else {
        None
    };
    let read_whole = promote || small.is_some();
    let (content, covers) = if read_whole {
        match disk.read(&entry).await {
            Ok((body, path)) => {
                metrics.disk_read(path);
                if let Some(slot) = slot.take() {
                    let file = Cached {
                        meta: meta.clone(),
                        body: body.clone(),
                    };
                    slot.fill(name, file);
                }
                (Content::Memory(body, small.flatten()), None)
            }
            Err(e) => return Ok(disk_failed(disk, name, &entry, &e)),
        }
    } else {
        match disk.map_part(&entry, start, len).await {
            Ok((mapped, path)) => {
                metrics.disk_read(path);
                (Content::Memory(mapped, None), covers)
            }
            Err(e) => return Ok(disk_failed(disk, name, &entry, &e)),
        }
    };
    let loaded = Loaded { meta, content, covers };
    Ok(respond(state, method, loaded, decision))
}

/// A disk-tier file that cannot be read (evicted meanwhile, damaged) is dropped; the request
/// goes on to the database.
fn disk_failed(disk: &DiskCache, name: &str, entry: &DiskEntry, e: &std::io::Error) -> Option<Response> {
    tracing::debug!(%name, error = %e, "disk-tier file unreadable; reading the database");
    disk.remove_if_is(name, &entry.checks);
    None
}

/// Reads the file (or `part` of it) with one statement, into memory or the spool; the database
/// connection is free again when this returns. `None` when it is not there to serve.
async fn load(
    state: &AppState,
    cluster: &Cluster,
    name: &str,
    part: Option<ByteRange>,
    slot: Option<LoadSlot<'_>>,
) -> Result<Option<Loaded>, Failure> {
    // Only a whole file can fill the cache; the waiters load their part themselves.
    let slot = slot.filter(|_| part.is_none());
    let _timer = state.metrics.database();
    let mut stream = match cluster.open_stream(name, Visibility::Live, part).await {
        Ok(stream) => stream,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if !servable(state, &stream.meta) {
        return Ok(None);
    }
    let meta = stream.meta.clone();
    // Too large to cache: let the waiting requests go now rather than after the spool.
    let slot = slot.filter(|_| state.cache.admits(name, meta.size, &meta));
    let covers = part.map(|r| ByteRange {
        start: r.start,
        end: r.end.min(meta.size.saturating_sub(1)),
    });
    let len = covers.map_or(meta.size, |r| r.len());
    let content = if let Some(permit) = state.reserve_memory(len, slot.is_some()) {
        let body = collect(&mut stream, len).await?;
        if let Some(slot) = slot {
            let file = Cached {
                meta: meta.clone(),
                body: body.clone(),
            };
            slot.fill(name, file);
        }
        if let Some(disk) = state.disk.clone().filter(|d| covers.is_none() && d.admits(meta.size)) {
            // In the background: the response need not wait for the local write.
            let (name, meta, body) = (name.to_owned(), meta.clone(), body.clone());
            tokio::spawn(async move { disk.keep_bytes(&name, &meta, body).await });
        }
        Content::Memory(body, permit)
    } else if let Some(disk) = state.disk.as_ref().filter(|d| covers.is_none() && d.admits(meta.size)) {
        Content::Spooled(disk.keep_stream(name, &mut stream).await.map_err(Failure::Spool)?)
    } else {
        Content::Spooled(state.spool.write(&mut stream, len).await.map_err(Failure::Spool)?)
    };
    Ok(Some(Loaded { meta, content, covers }))
}

/// A body from memory that gives its share of the budget back once hyper has taken the bytes
/// and asks for more.
fn memory_body(bytes: Bytes, permit: Option<OwnedSemaphorePermit>) -> Body {
    let Some(permit) = permit else {
        return Body::from(bytes);
    };
    let content = futures_util::stream::once(async move { Ok::<_, std::convert::Infallible>(bytes) });
    let release = futures_util::stream::once(async move {
        drop(permit);
        None
    });
    Body::from_stream(content.chain(release.filter_map(std::future::ready)))
}

async fn collect(stream: &mut FileStream, len: u64) -> Result<Bytes, Error> {
    let mut body = bytes::BytesMut::with_capacity(len as usize);
    while let Some(chunk) = stream.next_chunk().await {
        body.extend_from_slice(&chunk?);
    }
    Ok(body.freeze())
}

/// The response for `decision` from what was read; `None` when the content read does not hold
/// what the decision needs (the file changed between its metadata and its read).
fn respond(state: &AppState, method: &Method, loaded: Loaded, decision: Decision) -> Option<Response> {
    let wanted = match decision {
        Decision::Whole if method == Method::GET => None,
        Decision::Part(range) => Some(range),
        _ => return Some(without_body(state, &loaded.meta, decision)),
    };
    let meta = &loaded.meta;
    let mut headers = file_headers(meta, state.config.max_age, state.served_by.as_ref());
    let (status, len) = match wanted {
        Some(r) => {
            let value = format!("bytes {}-{}/{}", r.start, r.end, meta.size);
            headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&value).expect("ascii"));
            (StatusCode::PARTIAL_CONTENT, r.len())
        }
        None => (StatusCode::OK, meta.size),
    };
    headers.insert(header::CONTENT_LENGTH, len.into());
    let body = match (loaded.content, loaded.covers, wanted) {
        (Content::Memory(bytes, permit), None, Some(r)) => {
            memory_body(bytes.slice(r.start as usize..=r.end as usize), permit)
        }
        (Content::Memory(bytes, permit), covers, wanted) if covers == wanted => memory_body(bytes, permit),
        (Content::Spooled(file), covers, wanted) if covers == wanted => {
            Body::from_stream(file.into_stream(meta.name.clone()))
        }
        _ => return None,
    };
    Some(with_headers(status, headers, body))
}

/// Answers that carry no content: 412, 304, 416, and HEAD.
fn without_body(state: &AppState, meta: &FileMeta, decision: Decision) -> Response {
    let mut headers = file_headers(meta, state.config.max_age, state.served_by.as_ref());
    match decision {
        Decision::PreconditionFailed => (StatusCode::PRECONDITION_FAILED, "precondition failed\n").into_response(),
        Decision::Unsatisfiable => unsatisfiable(meta.size),
        Decision::NotModified => {
            // The headers a 200 would have, its Content-Length included (RFC 9110 8.6).
            headers.insert(header::CONTENT_LENGTH, meta.size.into());
            with_headers(StatusCode::NOT_MODIFIED, headers, Body::empty())
        }
        Decision::Whole | Decision::Part(_) => {
            headers.insert(header::CONTENT_LENGTH, meta.size.into());
            with_headers(StatusCode::OK, headers, Body::empty())
        }
    }
}

/// Live, in an allowed scope: deleted, expired and cache rows are never served.
fn servable(state: &AppState, meta: &FileMeta) -> bool {
    !meta.is_expired() && state.config.scopes.contains(&meta.scope)
}

fn with_headers(status: StatusCode, headers: HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn unsatisfiable(size: u64) -> Response {
    (
        StatusCode::RANGE_NOT_SATISFIABLE,
        [(header::CONTENT_RANGE, format!("bytes */{size}"))],
        "range not satisfiable\n",
    )
        .into_response()
}

fn unavailable() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, "5")],
        "database unavailable, retry shortly\n",
    )
        .into_response()
}

fn server_error(e: &Error, what: &'static str) -> Response {
    tracing::error!(error = %e, "{what}");
    (StatusCode::INTERNAL_SERVER_ERROR, format!("{what}\n")).into_response()
}

/// Every core error on purpose: only an unreachable or failing database is 503 (details
/// logged, never shown to the client); a refused name is the client's 400; the rest is ours.
fn error_response(e: &Error) -> Response {
    match e {
        Error::NotFound { .. } => not_found(),
        Error::InvalidName { .. } | Error::InvalidArgument { .. } => {
            tracing::debug!(error = %e, "request refused by the core");
            (StatusCode::BAD_REQUEST, "bad request: name or range refused\n").into_response()
        }
        // A read never commits; an unknown commit outcome is the database failing all the same.
        Error::Connect { .. } | Error::Database { .. } | Error::OutcomeUnknown { .. } => {
            tracing::warn!(error = %e, "database unavailable");
            unavailable()
        }
        Error::Integrity { .. } => server_error(e, "stored file is damaged"),
        Error::Schema(_) => server_error(e, "cluster tables missing or different"),
        Error::Config(_) => server_error(e, "invalid database settings"),
        Error::Io { .. } | Error::Source { .. } => server_error(e, "local file error"),
        Error::LockLost { .. } | Error::GenerationTimeout { .. } | Error::Generate { .. } => {
            server_error(e, "unexpected cache-generation error")
        }
    }
}

async fn health(state: &AppState) -> Response {
    let Some(cluster) = state.cluster.get() else {
        return unavailable();
    };
    match tokio::time::timeout(state.database_timeout, cluster.exists("healthz")).await {
        Ok(Ok(_)) => (StatusCode::OK, "ok\n").into_response(),
        Ok(Err(_)) | Err(_) => unavailable(),
    }
}
