//! The response headers of a served file: type (active content never rendered from the site's
//! origin), validators, caching.

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ezdb_core::FileMeta;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `"<mtime>-<size>"`, the legacy tag, quoted as RFC 9110 wants.
pub fn etag(meta: &FileMeta) -> String {
    format!("\"{}-{}\"", meta.mtime, meta.size)
}

pub fn last_modified(meta: &FileMeta) -> SystemTime {
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
    // Stored files come from editors: whatever their type, a browser must not run them with
    // the site's origin. The sandbox is inert for images and disarms SVG scripts; pages and
    // scripts are offered as downloads instead of rendered.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'; img-src data:; style-src 'unsafe-inline'"),
    );
    if is_active(datatype) {
        h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    }
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

/// Types a browser renders as a page or runs as a script (SVG is shown as an image, under the
/// sandbox above).
fn is_active(datatype: &str) -> bool {
    let essence = datatype.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    matches!(
        essence.as_str(),
        "text/html"
            | "application/xhtml+xml"
            | "text/xml"
            | "application/xml"
            | "text/javascript"
            | "application/javascript"
            | "application/x-javascript"
            | "application/ecmascript"
            | "text/ecmascript"
            | "module"
            | "application/wasm"
    ) || essence.ends_with("+xml") && essence != "image/svg+xml"
        || essence.contains("javascript")
}
