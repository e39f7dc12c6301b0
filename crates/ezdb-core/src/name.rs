// File names as the legacy handler sees them: path cleaning, validation, md5 name_hash,
// name_trunk (expiry groups), and escaping names into LIKE and REGEXP patterns.

use crate::error::{Error, Result};
use md5::{Digest, Md5};

/// Longest name accepted, in bytes. `name` is a TEXT column; 4 KiB is far above any real path.
pub const MAX_NAME_BYTES: usize = 4096;
/// Suffix of the row that locks the generation of a cache entry.
pub const GENERATING_SUFFIX: &str = ".generating";

/// Legacy `cleanPath`: every run of `/` and `\` becomes one `/`, then one trailing `/` goes.
pub fn clean_path(path: &str) -> String {
    // Most names are clean already (every hot call's): one copy, no byte-by-byte rebuild.
    if is_clean(path.as_bytes()) {
        return path.to_owned();
    }
    // Only ASCII bytes are touched, so UTF-8 stays UTF-8.
    String::from_utf8(clean_path_bytes(path.as_bytes()))
        .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
}

/// Whether [`clean_path_bytes`] would leave `path` as it is: no `\\`, no `//`, no trailing `/`.
fn is_clean(path: &[u8]) -> bool {
    let mut previous_slash = false;
    for &b in path {
        let slash = b == b'/';
        if b == b'\\' || (slash && previous_slash) {
            return false;
        }
        previous_slash = slash;
    }
    !previous_slash
}

/// [`clean_path`] on bytes, for callers whose paths need not be UTF-8 (PHP strings); the result
/// is never longer than `path`.
pub fn clean_path_bytes(path: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.len());
    let mut in_separator_run = false;
    for &b in path {
        if b == b'/' || b == b'\\' {
            if !in_separator_run {
                out.push(b'/');
            }
            in_separator_run = true;
        } else {
            out.push(b);
            in_separator_run = false;
        }
    }
    if out.last() == Some(&b'/') {
        out.pop();
    }
    out
}

/// A cleaned, validated cluster file name with its primary key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FileName {
    name: String,
    hash: String,
}

impl FileName {
    /// Cleans `raw` like the legacy handler and rejects names no row can hold.
    pub fn new(raw: &str) -> Result<FileName> {
        let name = clean_path(raw);
        let invalid = |reason| Error::InvalidName {
            name: raw.chars().take(200).collect(),
            reason,
        };
        if name.is_empty() {
            return Err(invalid(
                "the name is empty; give a relative path such as var/site/storage/images/a.jpg",
            ));
        }
        if name.contains('\0') {
            return Err(invalid("the name contains a NUL byte; remove it"));
        }
        if name.len() > MAX_NAME_BYTES {
            return Err(invalid("the name is longer than 4096 bytes; shorten it"));
        }
        let hash = name_hash(&name);
        Ok(FileName { name, hash })
    }

    /// An empty stand-in (no allocation) for a name moved out of a value that is rebuilt at once;
    /// never a name to use.
    pub(crate) const fn placeholder() -> FileName {
        FileName {
            name: String::new(),
            hash: String::new(),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// md5 of the name as 32 lowercase hex characters: the `name_hash` primary key.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The name of the row that locks this file's cache generation.
    pub fn generating(&self) -> FileName {
        let name = format!("{}{GENERATING_SUFFIX}", self.name);
        let hash = name_hash(&name);
        FileName { name, hash }
    }

    pub fn is_generating(&self) -> bool {
        self.name.ends_with(GENERATING_SUFFIX)
    }
}

impl std::fmt::Display for FileName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Lowercase hex md5 of the name's UTF-8 bytes, exactly as PHP `md5()` and SQL `MD5()` give it.
pub fn name_hash(name: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Md5::digest(name.as_bytes());
    // On every call's path: no formatting machinery, one allocation.
    let mut hex = String::with_capacity(32);
    for byte in digest {
        hex.push(HEX[usize::from(byte >> 4)] as char);
        hex.push(HEX[usize::from(byte & 0xf)] as char);
    }
    hex
}

/// The expiry group of a file (legacy `nameTrunk`): all view caches of one node share one trunk,
/// all template blocks of one subtree share one; any other file is its own group.
pub fn name_trunk(name: &str, scope: &str) -> String {
    match scope {
        "viewcache" => view_cache_trunk(name),
        "template-block" => template_block_trunk(name),
        _ => name.to_owned(),
    }
}

/// `dir/2-abc.cache` -> `dir/2-`: the directory plus the file name up to its first `-`.
fn view_cache_trunk(name: &str) -> String {
    let file_start = name.rfind('/').map_or(0, |i| i + 1);
    match name[file_start..].find('-') {
        Some(dash) => name[..file_start + dash + 1].to_owned(),
        None => name.to_owned(),
    }
}

/// `.../template-block/subtree/1/cache/1/1/0/x.cache` -> `.../template-block/subtree/1/cache/`.
/// The legacy handler takes the template-block directory from the site's settings; here it is the
/// first `template-block/` directory in the name, which is the same for every name it produces.
fn template_block_trunk(name: &str) -> String {
    const DIR: &str = "template-block/";
    let Some(dir_at) = name.find(DIR) else {
        return name.to_owned();
    };
    let rest_at = dir_at + DIR.len();
    let rest = &name[rest_at..];
    if !rest.contains("subtree/") {
        return name.to_owned();
    }
    match rest.find("cache/") {
        Some(i) => name[..rest_at + i + "cache/".len()].to_owned(),
        None => name.to_owned(),
    }
}

/// The legacy `cacheType`: which `NonExistantStaleCacheHandling` entry applies to a name.
pub fn cache_type(name: &str) -> &'static str {
    if name.contains("cache/content") {
        "viewcache"
    } else if name.contains("cache/template-block") {
        "cacheblock"
    } else {
        "misc"
    }
}

/// The escape character of every LIKE pattern (`LIKE ? ESCAPE '!'`); `!` rather than `\` so the
/// SQL text means the same whatever `NO_BACKSLASH_ESCAPES` says.
pub const LIKE_ESCAPE: char = '!';

/// Escapes `!`, `%` and `_` so `text` matches literally inside a `LIKE ? ESCAPE '!'` pattern.
pub fn escape_like(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if matches!(c, LIKE_ESCAPE | '%' | '_') {
            out.push(LIKE_ESCAPE);
        }
        out.push(c);
    }
    out
}

/// A LIKE pattern matching every name that starts with `prefix`.
pub fn like_prefix(prefix: &str) -> String {
    format!("{}%", escape_like(prefix))
}

/// Turns a shell glob (`*`, `?`, `{a,b}`) into an anchored REGEXP; everything else is literal.
/// Also returns the literal text before the first wildcard, to narrow the scan with an index.
pub fn glob_to_regexp(glob: &str) -> (String, String) {
    let mut regex = String::from("^");
    let mut literal_prefix = String::new();
    let mut seen_wildcard = false;
    let mut in_braces = false;
    for c in glob.chars() {
        let piece = match c {
            '*' => ".*".to_owned(),
            '?' => ".".to_owned(),
            '{' => {
                in_braces = true;
                "(".to_owned()
            }
            '}' if in_braces => {
                in_braces = false;
                ")".to_owned()
            }
            ',' if in_braces => "|".to_owned(),
            c => {
                if !seen_wildcard {
                    literal_prefix.push(c);
                }
                regex_literal(c)
            }
        };
        if matches!(c, '*' | '?' | '{') {
            seen_wildcard = true;
        }
        regex.push_str(&piece);
    }
    regex.push('$');
    (regex, literal_prefix)
}

fn regex_literal(c: char) -> String {
    if "\\.+*?()|[]{}^$".contains(c) {
        format!("\\{c}")
    } else {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_clean_exactly_when_cleaning_keeps_it() {
        for path in [
            "",
            "/",
            "a",
            "a/b",
            "a//b",
            "a/",
            "a\\b",
            "/a",
            "//a",
            "a/b/",
            "é/ü.cache",
            "a/./b",
        ] {
            let cleaned = clean_path_bytes(path.as_bytes());
            assert_eq!(is_clean(path.as_bytes()), cleaned == path.as_bytes(), "{path:?}");
            assert_eq!(clean_path(path).as_bytes(), cleaned, "{path:?}");
        }
    }

    #[test]
    fn clean_path_matches_legacy_examples() {
        assert_eq!(clean_path("path\\with\\backslashes.txt"), "path/with/backslashes.txt");
        assert_eq!(
            clean_path("path//with///multiple/slashes.txt"),
            "path/with/multiple/slashes.txt"
        );
        assert_eq!(clean_path("path/with/ending/slash/"), "path/with/ending/slash");
        assert_eq!(clean_path("a\\/\\b"), "a/b");
    }

    #[test]
    fn hash_is_lowercase_md5_hex() {
        assert_eq!(name_hash(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(name_hash("var/site/a.txt").len(), 32);
    }

    #[test]
    fn bad_names_are_refused_with_a_reason() {
        for bad in ["", "/", "a\0b"] {
            let err = FileName::new(bad).unwrap_err().to_string();
            assert!(err.contains("invalid file name"), "{err}");
        }
        assert!(FileName::new(&"x".repeat(MAX_NAME_BYTES + 1)).is_err());
        assert!(FileName::new(&"x".repeat(1000)).is_ok());
    }

    #[test]
    fn trunks_follow_the_legacy_rules() {
        assert_eq!(
            name_trunk(
                "var/plain_site/cache/content/plain_site/2-a54e7f5dba0d9df9de22904d309754b8.cache",
                "viewcache"
            ),
            "var/plain_site/cache/content/plain_site/2-"
        );
        assert_eq!(
            name_trunk(
                "var/plain_site/cache/template-block/subtree/1/cache/1/1/0/110322645.cache",
                "template-block"
            ),
            "var/plain_site/cache/template-block/subtree/1/cache/"
        );
        assert_eq!(
            name_trunk("var/plain_site/cache/template-block/1/2/3.cache", "template-block"),
            "var/plain_site/cache/template-block/1/2/3.cache"
        );
        let classid = "var/plain_site/cache/classidentifiers_fc45.php";
        assert_eq!(name_trunk(classid, "classidentifiers"), classid);
        assert_eq!(cache_type("var/s/cache/content/s/2-x.cache"), "viewcache");
        assert_eq!(cache_type("var/s/cache/template-block/1.cache"), "cacheblock");
        assert_eq!(cache_type(classid), "misc");
    }

    #[test]
    fn like_and_glob_escape_everything_literal() {
        assert_eq!(like_prefix("dir/a_b%c!\\"), "dir/a!_b!%c!!\\%");
        let (re, prefix) = glob_to_regexp("dir/*.txt");
        assert_eq!(re, "^dir/.*\\.txt$");
        assert_eq!(prefix, "dir/");
        assert_eq!(glob_to_regexp("a/{x,y}?.(1)").0, "^a/(x|y).\\.\\(1\\)$");
    }
}
