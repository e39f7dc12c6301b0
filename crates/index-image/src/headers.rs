// The response headers of a served file (type, length, validators, caching) and the
// conditional-request rules that turn a GET into a 304.

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ezdb_core::FileMeta;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `"<mtime>-<size>"`, the legacy tag, quoted as RFC 9110 wants.
pub fn etag(meta: &FileMeta) -> String {
    format!("\"{}-{}\"", meta.mtime, meta.size)
}

fn last_modified(meta: &FileMeta) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(meta.mtime.max(0) as u64)
}

/// The headers every answer about an existing file carries (200, 206, 304, HEAD).
pub fn file_headers(meta: &FileMeta, max_age: u64, served_by: Option<&HeaderValue>) -> HeaderMap {
    let mut h = HeaderMap::new();
    let datatype = match meta.datatype.as_str() {
        "" | "misc" => "application/octet-stream",
        other => other,
    };
    let content_type = HeaderValue::from_str(datatype).unwrap_or(HeaderValue::from_static("application/octet-stream"));
    h.insert(header::CONTENT_TYPE, content_type);
    insert(
        &mut h,
        header::LAST_MODIFIED,
        &httpdate::fmt_http_date(last_modified(meta)),
    );
    insert(&mut h, header::ETAG, &etag(meta));
    insert(&mut h, header::CACHE_CONTROL, &format!("public, max-age={max_age}"));
    insert(
        &mut h,
        header::EXPIRES,
        &httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(max_age)),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(value) = served_by {
        h.insert(HeaderName::from_static("served-by"), value.clone());
    }
    h
}

fn insert(h: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        h.insert(name, value);
    }
}

/// RFC 9110 section 13.2.2: If-None-Match first (weak comparison, `*`); If-Modified-Since only
/// without it, and "not modified" when the file is not newer than the date.
pub fn not_modified(request: &HeaderMap, meta: &FileMeta) -> bool {
    if let Some(tags) = request.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()) {
        let ours = etag(meta);
        return tags
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours);
    }
    let since = request
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    since.is_some_and(|since| last_modified(meta) <= since)
}
