// The request handler: a path becomes a cluster name, the file's metadata decides the status
// (404, 304, 416, 206, 200), and the body streams chunk by chunk from the database.

use crate::config::Config;
use crate::headers::{file_headers, not_modified};
use crate::hot_cache::{Cached, HotCache, Lookup};
use crate::http_range::{self, RangeRequest};
use crate::request_name::{name_for, Refusal};
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use ezdb_core::{ByteRange, Cluster, Error, FileMeta, Visibility};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::OnceCell;

pub struct AppState {
    /// Filled once the database has answered; until then every file request gets 503.
    pub cluster: OnceCell<Cluster>,
    pub config: Config,
    pub served_by: Option<HeaderValue>,
    pub cache: HotCache,
}

pub type Shared = Arc<AppState>;

pub async fn handle(State(state): State<Shared>, method: Method, uri: Uri, request: HeaderMap) -> Response {
    let started = Instant::now();
    let response = route(&state, &method, &uri, &request).await;
    // Debug, not info: at the default level a line per request floods the journal (about
    // 250 bytes each, 200 MB a minute at 15,000 req/s); the web server in front keeps the
    // access log.
    tracing::debug!(%method, path = uri.path(), status = response.status().as_u16(), micros = started.elapsed().as_micros() as u64, "request");
    response
}

async fn route(state: &AppState, method: &Method, uri: &Uri, request: &HeaderMap) -> Response {
    if uri.path() == "/healthz" {
        return health(state).await;
    }
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "only GET and HEAD\n",
        )
            .into_response();
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
    match cached(state, cluster, &name).await {
        Ok(Some(file)) => return from_memory(state, method, request, file),
        Ok(None) => {}
        Err(e) => return error_response(&e),
    }
    let conditional = request.contains_key(header::IF_NONE_MATCH) || request.contains_key(header::IF_MODIFIED_SINCE);
    if method == Method::GET && !conditional && !request.contains_key(header::RANGE) {
        return stream(state, cluster, &name, None, StatusCode::OK).await;
    }
    let meta = match cluster.stat(&name).await {
        Ok(Some(meta)) if servable(state, &meta) => meta,
        Ok(_) => return not_found(),
        Err(e) => return error_response(&e),
    };
    respond(state, cluster, &name, method, request, meta).await
}

/// A cached copy that may be served: fresh, or stale but confirmed unchanged by the database.
async fn cached(state: &AppState, cluster: &Cluster, name: &str) -> Result<Option<Cached>, Error> {
    let file = match state.cache.get(name) {
        Lookup::Fresh(file) => return Ok(Some(file)),
        Lookup::Stale(file) => file,
        Lookup::Miss => return Ok(None),
    };
    match cluster.stat(name).await? {
        Some(meta) if servable(state, &meta) && meta.mtime == file.meta.mtime && meta.size == file.meta.size => {
            state.cache.confirm(name);
            Ok(Some(file))
        }
        _ => {
            state.cache.remove(name);
            Ok(None)
        }
    }
}

fn from_memory(state: &AppState, method: &Method, request: &HeaderMap, file: Cached) -> Response {
    let meta = &file.meta;
    let mut headers = file_headers(meta, state.config.max_age, state.served_by.as_ref());
    if not_modified(request, meta) {
        return with_headers(StatusCode::NOT_MODIFIED, headers, Body::empty());
    }
    let (status, body) = match http_range::parse(request.get(header::RANGE).and_then(|v| v.to_str().ok()), meta.size) {
        RangeRequest::Unsatisfiable => return unsatisfiable(meta.size),
        RangeRequest::Part(r) => {
            let value = format!("bytes {}-{}/{}", r.start, r.end, meta.size);
            headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&value).expect("ascii"));
            (
                StatusCode::PARTIAL_CONTENT,
                file.body.slice(r.start as usize..=r.end as usize),
            )
        }
        RangeRequest::Whole => (StatusCode::OK, file.body),
    };
    headers.insert(header::CONTENT_LENGTH, body.len().into());
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    with_headers(status, headers, body)
}

/// Answers from the metadata: 304, HEAD, 416, or the (partial) body.
async fn respond(
    state: &AppState,
    cluster: &Cluster,
    name: &str,
    method: &Method,
    request: &HeaderMap,
    meta: FileMeta,
) -> Response {
    if not_modified(request, &meta) {
        return with_headers(
            StatusCode::NOT_MODIFIED,
            file_headers(&meta, state.config.max_age, state.served_by.as_ref()),
            Body::empty(),
        );
    }
    let range = http_range::parse(request.get(header::RANGE).and_then(|v| v.to_str().ok()), meta.size);
    if method == Method::HEAD {
        let mut headers = file_headers(&meta, state.config.max_age, state.served_by.as_ref());
        headers.insert(header::CONTENT_LENGTH, meta.size.into());
        return with_headers(StatusCode::OK, headers, Body::empty());
    }
    match range {
        RangeRequest::Whole => stream(state, cluster, name, None, StatusCode::OK).await,
        RangeRequest::Part(range) => stream(state, cluster, name, Some(range), StatusCode::PARTIAL_CONTENT).await,
        RangeRequest::Unsatisfiable => unsatisfiable(meta.size),
    }
}

/// Streams the file (or one range of it); chunk errors abort the connection, so a client never
/// takes a short body for a whole one.
async fn stream(
    state: &AppState,
    cluster: &Cluster,
    name: &str,
    range: Option<ByteRange>,
    status: StatusCode,
) -> Response {
    let file = match cluster.open_stream(name, Visibility::Live, range).await {
        Ok(file) => file,
        Err(Error::InvalidArgument { .. }) => return unsatisfiable(0),
        Err(e) => return error_response(&e),
    };
    if !servable(state, &file.meta) {
        return not_found();
    }
    if range.is_none() && state.cache.admits(file.meta.size) {
        return match collect(file).await {
            Ok(cached) => {
                state.cache.insert(name, cached.clone());
                from_memory(state, &Method::GET, &HeaderMap::new(), cached)
            }
            Err(e) => error_response(&e),
        };
    }
    let mut headers = file_headers(&file.meta, state.config.max_age, state.served_by.as_ref());
    let length = range.map_or(file.meta.size, |r| {
        r.end.min(file.meta.size.saturating_sub(1)) - r.start + 1
    });
    headers.insert(header::CONTENT_LENGTH, length.into());
    if let Some(r) = range {
        let end = r.end.min(file.meta.size - 1);
        let value = format!("bytes {}-{end}/{}", r.start, file.meta.size);
        headers.insert(header::CONTENT_RANGE, HeaderValue::from_str(&value).expect("ascii"));
    }
    with_headers(status, headers, Body::from_stream(file))
}

/// Reads a small file whole, for the memory cache.
async fn collect(mut file: ezdb_core::FileStream) -> Result<Cached, Error> {
    let mut body = bytes::BytesMut::with_capacity(file.meta.size as usize);
    while let Some(chunk) = file.next_chunk().await {
        body.extend_from_slice(&chunk?);
    }
    Ok(Cached {
        meta: file.meta,
        body: body.freeze(),
    })
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

/// Database trouble is 503 (and logged with its details, which the client never sees).
fn error_response(e: &Error) -> Response {
    match e {
        Error::NotFound { .. } => not_found(),
        Error::Integrity { .. } => {
            tracing::error!(error = %e, "stored file is inconsistent");
            (StatusCode::INTERNAL_SERVER_ERROR, "stored file is damaged\n").into_response()
        }
        _ => {
            tracing::warn!(error = %e, "database unavailable");
            unavailable()
        }
    }
}

async fn health(state: &AppState) -> Response {
    match state.cluster.get() {
        Some(cluster) if cluster.exists("healthz").await.is_ok() => (StatusCode::OK, "ok\n").into_response(),
        _ => unavailable(),
    }
}
