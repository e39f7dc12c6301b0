//! From a request path to the cluster name it may serve, or the reason it may not: decoding,
//! traversal, lock rows and the configured prefixes are all checked before any row is read.

use percent_encoding::percent_decode_str;

/// Longest name served, in bytes (as the core accepts).
const MAX_NAME_BYTES: usize = 4096;

#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Malformed: bad escapes, NUL, traversal, too long (400).
    BadRequest(&'static str),
    /// Well-formed but not something this server serves (404).
    NotServed,
}

/// The cluster name for `path` (the URI path, query already cut off by the HTTP layer).
pub fn name_for(path: &str, prefixes: &[String]) -> Result<String, Refusal> {
    if path.len() > 3 * MAX_NAME_BYTES {
        return Err(Refusal::BadRequest("path too long"));
    }
    if !well_escaped(path) {
        return Err(Refusal::BadRequest("bad percent escape in path (write % as %25)"));
    }
    let decoded = percent_decode_str(path)
        .decode_utf8()
        .map_err(|_| Refusal::BadRequest("path is not UTF-8 after percent-decoding"))?;
    let Some(name) = decoded.strip_prefix('/') else {
        return Err(Refusal::BadRequest("path does not start with /"));
    };
    if name.len() > MAX_NAME_BYTES {
        return Err(Refusal::BadRequest("path too long"));
    }
    if name.contains('\0') || name.contains('\\') || name.contains("//") || name.starts_with('/') {
        return Err(Refusal::BadRequest("NUL, backslash or empty segment in path"));
    }
    if name.split('/').any(|segment| segment == ".." || segment == ".") {
        return Err(Refusal::BadRequest("dot segment in path"));
    }
    if name.ends_with(ezdb_core::GENERATING_SUFFIX) || name.is_empty() || name.ends_with('/') {
        return Err(Refusal::NotServed);
    }
    if !prefixes.iter().any(|p| matches_prefix(name, p)) {
        return Err(Refusal::NotServed);
    }
    Ok(name.to_owned())
}

/// Whether every `%` starts a two-digit hex escape.
fn well_escaped(path: &str) -> bool {
    let bytes = path.as_bytes();
    bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

/// Whether `name` starts with `pattern`, where a `*` segment matches any one non-empty segment.
fn matches_prefix(name: &str, pattern: &str) -> bool {
    let mut rest = name;
    let mut parts = pattern.split('/').peekable();
    while let Some(part) = parts.next() {
        let last = parts.peek().is_none();
        if last {
            return rest.starts_with(part) && rest.len() > part.len();
        }
        let Some((segment, after)) = rest.split_once('/') else {
            return false;
        };
        if !(part == "*" && !segment.is_empty() || part == segment) {
            return false;
        }
        rest = after;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        [
            "var/storage/images/",
            "var/*/storage/images/",
            "var/storage/images-versioned/",
            "var/*/storage/images-versioned/",
        ]
        .map(String::from)
        .to_vec()
    }

    #[test]
    fn image_paths_map_to_names() {
        let p = defaults();
        assert_eq!(
            name_for("/var/site/storage/images/a/b.jpg", &p),
            Ok("var/site/storage/images/a/b.jpg".into())
        );
        assert_eq!(
            name_for("/var/storage/images-versioned/1/x.png", &p),
            Ok("var/storage/images-versioned/1/x.png".into())
        );
        assert_eq!(
            name_for("/var/site/storage/images/it%27s%20%C3%BC.jpg", &p),
            Ok("var/site/storage/images/it's ü.jpg".into())
        );
    }

    #[test]
    fn hostile_paths_are_refused() {
        let p = defaults();
        let hostile = [
            "/var/site/storage/images/../../../etc/passwd",
            "/var/site/storage/images/%2e%2e/%2e%2e/cache/content/x.cache",
            "/var/site/storage/images/%2E%2E/secret",
            "/var/site/storage/images/a/..",
            "/var/site/storage/images/./a.jpg",
            "/var/site/storage/images/a%00.jpg",
            "/var/site/storage/images/a%5c..%5csecret",
            "/var/site/storage/images//a.jpg",
            "/var/site/storage/images/%ff%fe.jpg",
            "/var/site/storage/images/a.jpg.generating",
            "/var/site/storage/images/",
            "/var/site/cache/content/site/2-abc.cache",
            "/var/site/cache/template-block/1.cache",
            "/var/site/cache/expiry.php",
            "/var/site/storage/original/application/secret.pdf",
            "/etc/passwd",
            "/",
            "",
            "/var",
            "/var/storage/images",
            "/var/a/b/storage/images/x.jpg",
            "/var//storage/images/x.jpg",
            "/settings/siteaccess/site/site.ini",
            "/var/site/storage/imagesX/x.jpg",
            "/var/site/storage/images-versionedX/x.jpg",
            "/VAR/site/storage/images/x.jpg",
            "/var/site/storage/images/%2fetc%2fpasswd/../x",
            "/var/%2e%2e/storage/images/x.jpg",
            "/var/site/storage/images/x.jpg%00.png",
            "/var/site/storage/images/\\..\\x",
            "/var/site/storage/images/100%.jpg",
            "/var/site/storage/images/a%2.jpg",
            "/var/site/storage/images/a%zz.jpg",
            "//var/site/storage/images/a.jpg",
            "///var/site/storage/images/a.jpg",
            "/%2fvar/site/storage/images/a.jpg",
        ];
        for path in [
            "/var/site/storage/images/100%.jpg",
            "//var/site/storage/images/a.jpg",
            "/var/site/storage/images//a.jpg",
        ] {
            assert!(
                matches!(name_for(path, &p), Err(Refusal::BadRequest(_))),
                "{path} is malformed: 400"
            );
        }
        for path in hostile {
            assert!(name_for(path, &p).is_err(), "{path} was accepted");
        }
        let long = format!("/var/site/storage/images/{}", "a".repeat(5000));
        assert_eq!(name_for(&long, &p), Err(Refusal::BadRequest("path too long")));
    }
}
