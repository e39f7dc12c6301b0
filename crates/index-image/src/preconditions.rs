//! What a request asks of a file's current version, RFC 9110 section 13.2.2 in its order:
//! If-Match, then If-Unmodified-Since (412), If-None-Match, then If-Modified-Since (304),
//! then If-Range and Range (206, 416 or the whole file).

use crate::headers::{etag, last_modified};
use crate::http_range::{self, RangeRequest};
use axum::http::{header, HeaderMap, HeaderName, Method};
use ezdb_core::{ByteRange, FileMeta};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    PreconditionFailed,
    NotModified,
    Unsatisfiable,
    Whole,
    Part(ByteRange),
}

/// Whether the request carries anything that depends on the file's metadata.
pub fn is_conditional(request: &HeaderMap) -> bool {
    [
        header::IF_MATCH,
        header::IF_UNMODIFIED_SINCE,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::RANGE,
    ]
    .iter()
    .any(|h| request.contains_key(h))
}

pub fn decide(method: &Method, request: &HeaderMap, meta: &FileMeta) -> Decision {
    let ours = etag(meta);
    if let Some(tags) = list(request, header::IF_MATCH) {
        if !tags.iter().any(|tag| tag == "*" || *tag == ours) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(since) = date(request, header::IF_UNMODIFIED_SINCE) {
        if last_modified(meta) > since {
            return Decision::PreconditionFailed;
        }
    }
    if let Some(tags) = list(request, header::IF_NONE_MATCH) {
        if tags.iter().any(|tag| tag == "*" || weak_equal(tag, &ours)) {
            return Decision::NotModified;
        }
    } else if let Some(since) = date(request, header::IF_MODIFIED_SINCE) {
        if last_modified(meta) <= since {
            return Decision::NotModified;
        }
    }
    // Range is defined for GET only (section 14.2): HEAD answers as a GET without Range.
    if method != Method::GET || !if_range_holds(request, meta, &ours) {
        return Decision::Whole;
    }
    let range = request.get(header::RANGE).and_then(|v| v.to_str().ok());
    match http_range::parse(range, meta.size) {
        RangeRequest::Whole => Decision::Whole,
        RangeRequest::Part(r) => Decision::Part(r),
        RangeRequest::Unsatisfiable => Decision::Unsatisfiable,
    }
}

/// If-Range: the range applies only to the version the client has (a strong ETag match, or
/// exactly the Last-Modified date); otherwise the whole file is sent.
fn if_range_holds(request: &HeaderMap, meta: &FileMeta, ours: &str) -> bool {
    let Some(value) = request.get(header::IF_RANGE) else {
        return true;
    };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') {
        return value == ours;
    }
    httpdate::parse_http_date(value).is_ok_and(|date| date == last_modified(meta))
}

/// The entity tags of every line of a list header (`None` when absent).
fn list(request: &HeaderMap, name: HeaderName) -> Option<Vec<String>> {
    let mut values = request.get_all(name).iter().peekable();
    values.peek()?;
    Some(
        values
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|tag| tag.trim().to_owned())
            .filter(|tag| !tag.is_empty())
            .collect(),
    )
}

fn weak_equal(tag: &str, ours: &str) -> bool {
    tag.trim_start_matches("W/") == ours
}

fn date(request: &HeaderMap, name: HeaderName) -> Option<std::time::SystemTime> {
    let value = request.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn meta() -> FileMeta {
        FileMeta {
            name: "n".into(),
            name_trunk: "n".into(),
            size: 100,
            mtime: 1_000_000_000,
            scope: "image".into(),
            datatype: "image/png".into(),
            deleted: false,
            global_expiry: None,
        }
    }

    fn decide_with(method: Method, headers: &[(&'static str, &str)]) -> Decision {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        decide(&method, &map, &meta())
    }

    #[test]
    fn the_rfc_order() {
        let tag = "\"1000000000-100\"";
        let lm = httpdate::fmt_http_date(last_modified(&meta()));
        let old = "Sun, 06 Nov 1994 08:49:37 GMT";
        let get = || Method::GET;
        assert_eq!(
            decide_with(get(), &[("if-match", "\"x\"")]),
            Decision::PreconditionFailed
        );
        assert_eq!(
            decide_with(get(), &[("if-match", &format!("W/{tag}"))]),
            Decision::PreconditionFailed,
            "strong comparison"
        );
        assert_eq!(decide_with(get(), &[("if-match", "*")]), Decision::Whole);
        assert_eq!(
            decide_with(get(), &[("if-match", "\"x\""), ("if-match", tag)]),
            Decision::Whole,
            "lines combined"
        );
        assert_eq!(
            decide_with(get(), &[("if-unmodified-since", old)]),
            Decision::PreconditionFailed
        );
        assert_eq!(decide_with(get(), &[("if-unmodified-since", &lm)]), Decision::Whole);
        assert_eq!(
            decide_with(get(), &[("if-match", tag), ("if-unmodified-since", old)]),
            Decision::Whole,
            "If-Unmodified-Since only without If-Match"
        );
        assert_eq!(
            decide_with(get(), &[("if-match", "\"x\""), ("if-none-match", tag)]),
            Decision::PreconditionFailed,
            "412 before 304"
        );
        assert_eq!(
            decide_with(get(), &[("if-none-match", "\"a\""), ("if-none-match", tag)]),
            Decision::NotModified
        );
        assert_eq!(
            decide_with(Method::HEAD, &[("if-none-match", tag)]),
            Decision::NotModified
        );
        assert_eq!(
            decide_with(get(), &[("range", "bytes=0-9")]),
            Decision::Part(ByteRange { start: 0, end: 9 })
        );
        assert_eq!(
            decide_with(Method::HEAD, &[("range", "bytes=0-9")]),
            Decision::Whole,
            "HEAD ignores Range"
        );
        assert_eq!(decide_with(Method::HEAD, &[("range", "bytes=500-")]), Decision::Whole);
        assert_eq!(
            decide_with(get(), &[("range", "bytes=0-9"), ("if-range", "\"x\"")]),
            Decision::Whole
        );
        assert_eq!(
            decide_with(get(), &[("range", "bytes=0-9"), ("if-range", tag)]),
            Decision::Part(ByteRange { start: 0, end: 9 })
        );
        assert_eq!(
            decide_with(get(), &[("range", "bytes=0-9"), ("if-range", &format!("W/{tag}"))]),
            Decision::Whole,
            "a weak tag never matches If-Range"
        );
        assert_eq!(
            decide_with(get(), &[("range", "bytes=0-9"), ("if-range", &lm)]),
            Decision::Part(ByteRange { start: 0, end: 9 })
        );
        assert_eq!(
            decide_with(get(), &[("range", "bytes=0-9"), ("if-range", old)]),
            Decision::Whole
        );
        assert_eq!(decide_with(get(), &[("range", "bytes=100-")]), Decision::Unsatisfiable);
    }
}
