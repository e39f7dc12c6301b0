//! Expiry texts as operators write them (`-2 days`, `2 days ago`, `now`, ISO dates, `@unix`)
//! turned into a Unix time, and `--expiry` as each legacy script reads it: bare numbers are
//! days for clusterpurge.php; ezcache.php hands the text to strtotime. A purge threshold is
//! never in the future. Anything else is refused with a message naming the text.

use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// Which legacy script's reading of `--expiry` applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryForm {
    /// `ezcache.php --purge --expiry=TEXT`: strtotime text.
    Ezcache,
    /// `clusterpurge.php --expiry=DAYS`: a bare number is days; text as ezcache.php.
    Clusterpurge,
}

/// The time before which a purge removes entries, as the legacy script of `form` reads `text`.
/// Refused when it is not readable, or when it is after `now` (a purge never reaches into the
/// future: `--expiry=-3600` would otherwise remove every entry).
pub fn purge_threshold(text: &str, form: ExpiryForm, now: i64) -> Result<i64, String> {
    let number = text.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    let at = match (number, form) {
        (Some(days), ExpiryForm::Clusterpurge) => now - (days * 86_400.0).round() as i64,
        (Some(_), ExpiryForm::Ezcache) => {
            return Err(format!(
                "--expiry={text:?}: a bare number is ambiguous here (ezcache.php reads strtotime text); \
                 write '-{n} days', '{n} seconds ago' or '@<unix time>'",
                n = text.trim().trim_start_matches(['-', '+'])
            ))
        }
        (None, _) => parse_expiry(text, now)?,
    };
    if at > now {
        return Err(format!(
            "--expiry={text:?} names a time in the future; a purge removes entries older than a past time, \
             e.g. '-2 days' or '2 days ago'{}",
            if form == ExpiryForm::Clusterpurge {
                " (a bare number is days ago)"
            } else {
                ""
            }
        ));
    }
    Ok(at)
}

/// The Unix time `text` names, relative to `now` (Unix seconds).
pub fn parse_expiry(text: &str, now: i64) -> Result<i64, String> {
    let t = text.trim().to_ascii_lowercase();
    let refuse = || {
        format!(
            "cannot read the expiry {text:?}: use an age such as '-2 days', '3 hours ago', 'now', \
             an ISO date such as 2024-05-01 or 2024-05-01T12:00:00Z, or @<unix time>"
        )
    };
    match t.as_str() {
        "" => return Err(refuse()),
        "now" => return Ok(now),
        "today" => return Ok(now - now.rem_euclid(86_400)),
        "yesterday" => return Ok(now - now.rem_euclid(86_400) - 86_400),
        _ => {}
    }
    if let Some(unix) = t.strip_prefix('@').and_then(|n| n.parse::<i64>().ok()) {
        return Ok(unix);
    }
    if let Some(at) = parse_date(text.trim()) {
        return Ok(at);
    }
    relative(&t, now).ok_or_else(refuse)
}

fn parse_date(text: &str) -> Option<i64> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp());
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Some(at.and_utc().timestamp());
        }
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp())
}

/// `[+|-]N unit[s] [ago]`, several terms allowed: `-1 day 2 hours`.
fn relative(text: &str, now: i64) -> Option<i64> {
    let (text, ago) = match text.strip_suffix("ago") {
        Some(rest) => (rest.trim(), true),
        None => (text, false),
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.is_empty() || words.len() % 2 != 0 {
        return None;
    }
    let mut offset = 0i64;
    for pair in words.chunks(2) {
        let amount: i64 = pair[0].parse().ok()?;
        offset = offset.checked_add(amount.checked_mul(unit_seconds(pair[1])?)?)?;
    }
    Some(if ago { now - offset } else { now + offset })
}

fn unit_seconds(unit: &str) -> Option<i64> {
    let unit = unit.strip_suffix('s').unwrap_or(unit);
    Some(match unit {
        "sec" | "second" => 1,
        "min" | "minute" => 60,
        "hour" => 3_600,
        "day" => 86_400,
        "week" => 7 * 86_400,
        "month" => 30 * 86_400,
        "year" => 365 * 86_400,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_expiry, purge_threshold, ExpiryForm};

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn reads_what_operators_write() {
        assert_eq!(parse_expiry("now", NOW), Ok(NOW));
        assert_eq!(parse_expiry("-2 days", NOW), Ok(NOW - 2 * 86_400));
        assert_eq!(parse_expiry("2 days ago", NOW), Ok(NOW - 2 * 86_400));
        assert_eq!(parse_expiry("+1 hour", NOW), Ok(NOW + 3_600));
        assert_eq!(parse_expiry("-1 day -2 hours", NOW), Ok(NOW - 86_400 - 7_200));
        assert_eq!(parse_expiry("@1600000000", NOW), Ok(1_600_000_000));
        assert_eq!(parse_expiry("2023-11-14", NOW), Ok(1_699_920_000));
        assert_eq!(parse_expiry("2023-11-14T22:13:20Z", NOW), Ok(NOW));
        assert_eq!(parse_expiry("2023-11-14 22:13:20", NOW), Ok(NOW));
    }

    #[test]
    fn refuses_garbage_naming_it() {
        for bad in ["garbage", "", "-2 fortnights", "2 days 3"] {
            let err = parse_expiry(bad, NOW).unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn each_script_form_reads_expiry_as_legacy_does() {
        use ExpiryForm::*;
        assert_eq!(purge_threshold("30", Clusterpurge, NOW), Ok(NOW - 30 * 86_400));
        assert_eq!(purge_threshold("0.5", Clusterpurge, NOW), Ok(NOW - 43_200));
        assert_eq!(purge_threshold("-2 days", Clusterpurge, NOW), Ok(NOW - 2 * 86_400));
        assert_eq!(purge_threshold("-2 days", Ezcache, NOW), Ok(NOW - 2 * 86_400));
        assert_eq!(purge_threshold("now", Ezcache, NOW), Ok(NOW));
        assert!(purge_threshold("30", Ezcache, NOW).unwrap_err().contains("-30 days"));
        for future in ["-3600", "-1"] {
            let err = purge_threshold(future, Clusterpurge, NOW).unwrap_err();
            assert!(err.contains("future"), "{err}");
        }
        for future in ["+1 hour", "1 day", "tomorrow", "@9999999999"] {
            let err = purge_threshold(future, Ezcache, NOW).unwrap_err();
            assert!(err.contains("future") || err.contains("cannot read"), "{future}: {err}");
        }
    }
}
