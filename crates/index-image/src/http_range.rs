//! The Range header as RFC 9110 reads it, for one range of bytes; anything else means "send it
//! all", except a range wholly past the end, which cannot be satisfied.

use ezdb_core::ByteRange;

#[derive(Debug, PartialEq, Eq)]
pub enum RangeRequest {
    /// No usable Range header (absent, malformed, several ranges): the whole file, 200.
    Whole,
    /// One satisfiable range: 206.
    Part(ByteRange),
    /// Cannot be satisfied (starts past the end, or the file is empty): 416.
    Unsatisfiable,
}

pub fn parse(header: Option<&str>, size: u64) -> RangeRequest {
    // The range unit is case-insensitive (RFC 9110 14.1).
    let spec = header.map(str::trim).and_then(|h| {
        let unit = h.get(..6)?;
        unit.eq_ignore_ascii_case("bytes=").then(|| &h[6..])
    });
    let Some(spec) = spec else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |s: &str| -> Option<Option<u64>> {
        let s = s.trim();
        if s.is_empty() {
            Some(None)
        } else if s.bytes().all(|b| b.is_ascii_digit()) {
            s.parse().ok().map(Some)
        } else {
            None
        }
    };
    let (Some(first), Some(last)) = (number(first), number(last)) else {
        return RangeRequest::Whole;
    };
    let (start, end) = match (first, last) {
        (Some(start), Some(end)) if end < start => return RangeRequest::Whole,
        (Some(start), end) => (start, end.unwrap_or(u64::MAX)),
        (None, Some(0)) => return RangeRequest::Unsatisfiable,
        (None, Some(suffix)) => (size.saturating_sub(suffix), u64::MAX),
        (None, None) => return RangeRequest::Whole,
    };
    if start >= size {
        return RangeRequest::Unsatisfiable;
    }
    RangeRequest::Part(ByteRange {
        start,
        end: end.min(size - 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(start: u64, end: u64) -> RangeRequest {
        RangeRequest::Part(ByteRange { start, end })
    }

    #[test]
    fn single_ranges() {
        assert_eq!(parse(Some("bytes=0-99"), 1000), part(0, 99));
        assert_eq!(parse(Some("Bytes=0-99"), 1000), part(0, 99));
        assert_eq!(parse(Some("BYTES=-1"), 1000), part(999, 999));
        assert_eq!(parse(Some("bytes=5-5"), 1000), part(5, 5));
        assert_eq!(parse(Some("bytes=990-"), 1000), part(990, 999));
        assert_eq!(parse(Some("bytes=-100"), 1000), part(900, 999));
        assert_eq!(parse(Some("bytes=-5000"), 1000), part(0, 999));
        assert_eq!(parse(Some("bytes=900-5000"), 1000), part(900, 999));
    }

    #[test]
    fn unsatisfiable_and_ignored() {
        assert_eq!(parse(Some("bytes=1000-"), 1000), RangeRequest::Unsatisfiable);
        assert_eq!(parse(Some("bytes=-0"), 1000), RangeRequest::Unsatisfiable);
        assert_eq!(parse(Some("bytes=0-"), 0), RangeRequest::Unsatisfiable);
        for ignored in [
            None,
            Some("bytes=0-9,20-29"),
            Some("items=0-9"),
            Some("bytes=a-b"),
            Some("bytes=9-0"),
            Some("bytes=-"),
        ] {
            assert_eq!(parse(ignored, 1000), RangeRequest::Whole, "{ignored:?}");
        }
    }
}
