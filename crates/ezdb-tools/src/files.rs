// Moving a site between disk and cluster: which scope and datatype a file under `var/` gets
// (the legacy clusterize rules), and where an exported name lands on disk.

use std::path::{Component, Path, PathBuf};

/// Where a file sits, as legacy decides its scope.
enum Place {
    /// The name contains this directory.
    Dir(&'static str),
    /// The file name starts with this, inside a cache directory.
    CacheFile(&'static str),
    /// The name ends with this.
    End(&'static str),
}

/// The legacy scope rules, first match wins.
const SCOPES: &[(Place, &str)] = &[
    (Place::Dir("/storage/images/"), "image"),
    (Place::Dir("/storage/images-versioned/"), "image"),
    (Place::Dir("/storage/original/video/"), "mediafile"),
    (Place::Dir("/storage/original/audio/"), "mediafile"),
    (Place::Dir("/storage/"), "binaryfile"),
    (Place::Dir("/cache/content/"), "viewcache"),
    (Place::Dir("/cache/template-block/"), "template-block"),
    (Place::Dir("/cache/user-info/"), "user-info-cache"),
    (Place::Dir("/cache/texttoimage/"), "texttoimage"),
    (Place::Dir("/cache/rss/"), "rsscache"),
    (Place::Dir("/cache/public/"), "ezjscore"),
    (Place::Dir("/cache/wildcard/"), "wildcard-cache-index"),
    (Place::End("/cache/expiry.php"), "expirycache"),
    (Place::CacheFile("classidentifiers_"), "classidentifiers"),
    (Place::CacheFile("classattributeidentifiers_"), "classattridentifiers"),
    (Place::CacheFile("statelimitations_"), "statelimitations"),
    (Place::CacheFile("sortkey_"), "sortkey"),
];

/// Scope and datatype for a file name such as `var/site/storage/images/a/b.jpg`; `None` for
/// files legacy keeps on each server's disk (logs, INI and template caches, ...).
pub fn classify(name: &str) -> Option<(&'static str, String)> {
    let file = name.rsplit('/').next().unwrap_or(name);
    let matches = |place: &Place| match place {
        Place::Dir(dir) => name.contains(dir),
        Place::CacheFile(start) => name.contains("/cache/") && file.starts_with(start),
        Place::End(end) => name.ends_with(end),
    };
    let scope = SCOPES
        .iter()
        .find(|(place, _)| matches(place))
        .map(|(_, scope)| *scope)?;
    let binary = matches!(scope, "image" | "binaryfile" | "mediafile");
    Some((scope, if binary { mime_type(file) } else { "misc" }.to_owned()))
}

/// MIME type from the file extension (legacy sniffs images; extensions agree for real sites).
pub fn mime_type(file: &str) -> &'static str {
    let ext = file
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "bmp" => "image/bmp",
        "tif" | "tiff" => "image/tiff",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "doc" => "application/msword",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xls" => "application/vnd.ms-excel",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "html" | "htm" => "text/html",
        "css" => "text/css",
        "js" => "application/javascript",
        "mp3" => "audio/mpeg",
        "ogg" => "audio/ogg",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

/// Where the file named `name` goes under `root`; `None` for names that would leave it (`..`,
/// absolute paths) — such rows are reported, never written.
pub fn export_path(root: &Path, name: &str) -> Option<PathBuf> {
    let relative = Path::new(name);
    let safe = relative.components().all(|c| matches!(c, Component::Normal(_)));
    safe.then(|| root.join(relative))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_scopes_and_types() {
        assert_eq!(
            classify("var/s/storage/images/a/1-1-eng-GB/x.JPG"),
            Some(("image", "image/jpeg".into()))
        );
        assert_eq!(
            classify("var/s/storage/original/application/a.pdf"),
            Some(("binaryfile", "application/pdf".into()))
        );
        assert_eq!(
            classify("var/s/storage/original/video/a.mp4"),
            Some(("mediafile", "video/mp4".into()))
        );
        assert_eq!(
            classify("var/s/cache/content/s/2-abc.cache"),
            Some(("viewcache", "misc".into()))
        );
        assert_eq!(
            classify("var/s/cache/classidentifiers_fc45.php"),
            Some(("classidentifiers", "misc".into()))
        );
        assert_eq!(
            classify("var/s/cache/sortkey_9f3a.php"),
            Some(("sortkey", "misc".into())),
            "--clear-id=sortkey acts on these rows, so they are clustered"
        );
        assert_eq!(classify("var/s/log/error.log"), None);
        assert_eq!(classify("var/cache/ini/site.php"), None);
    }

    #[test]
    fn exported_names_stay_inside_the_root() {
        let root = Path::new("/out");
        assert_eq!(
            export_path(root, "var/a/b.jpg"),
            Some(PathBuf::from("/out/var/a/b.jpg"))
        );
        assert_eq!(export_path(root, "var/../../etc/passwd"), None);
        assert_eq!(export_path(root, "/etc/passwd"), None);
    }
}

/// The file `ezdb export --max-per-dir` writes beside `var/`: one `name<TAB>path` line per file
/// it moved into a spread subdirectory, read back by `ezdb import`.
pub const SPREAD_MANIFEST: &str = ".ezdb-spread.tsv";

/// Where exported names go on disk. Names in a directory that would hold more than
/// `max_per_dir` files move into `<dir>/<hh>/` (or `<dir>/<hh>/<hh>/` for very large ones), `hh`
/// being hex digits of md5(name), so no directory exceeds the limit of the filesystem.
pub struct Layout {
    max_per_dir: usize,
    /// Crowded directories and the number of hash levels each needs.
    levels: std::collections::HashMap<String, usize>,
}

impl Layout {
    pub fn new<'a>(names: impl Iterator<Item = &'a str>, max_per_dir: Option<usize>) -> Layout {
        let max_per_dir = max_per_dir.unwrap_or(usize::MAX).max(1);
        let mut counts = std::collections::HashMap::<String, usize>::new();
        for name in names {
            *counts.entry(parent(name).to_owned()).or_default() += 1;
        }
        let levels = counts
            .into_iter()
            .filter(|(_, n)| *n > max_per_dir)
            .map(|(dir, n)| (dir, if n > 256 * max_per_dir { 2 } else { 1 }))
            .collect();
        Layout { max_per_dir, levels }
    }

    /// The path of `name` relative to the export root; `Some` second value when spread.
    pub fn place(&self, name: &str) -> (String, bool) {
        let dir = parent(name);
        let Some(levels) = self.levels.get(dir).filter(|_| self.max_per_dir < usize::MAX) else {
            return (name.to_owned(), false);
        };
        let hash = ezdb_core::name_hash(name);
        let buckets: Vec<&str> = (0..*levels).map(|l| &hash[l * 2..l * 2 + 2]).collect();
        let file = &name[dir.len()..].trim_start_matches('/');
        let prefix = if dir.is_empty() {
            String::new()
        } else {
            format!("{dir}/")
        };
        (format!("{prefix}{}/{file}", buckets.join("/")), true)
    }
}

fn parent(name: &str) -> &str {
    name.rfind('/').map_or("", |i| &name[..i])
}

/// The spread manifest under `root`, as relative path -> cluster name (empty when absent).
pub fn read_spread_manifest(root: &Path) -> std::collections::HashMap<String, String> {
    let text = std::fs::read_to_string(root.join(SPREAD_MANIFEST)).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(name, path)| (path.to_owned(), name.to_owned()))
        .collect()
}

#[cfg(test)]
mod layout_tests {
    use super::*;

    #[test]
    fn crowded_directories_are_spread_and_others_kept() {
        let names = ["a/1", "a/2", "a/3", "b/1"];
        let layout = Layout::new(names.iter().copied(), Some(2)); // the CLI insists on >= 256
        assert_eq!(layout.place("b/1"), ("b/1".to_owned(), false));
        let (path, spread) = layout.place("a/3");
        assert!(
            spread && path.starts_with("a/") && path.ends_with("/3") && path.len() == "a/xx/3".len(),
            "{path}"
        );
        let unlimited = Layout::new(names.iter().copied(), None);
        assert_eq!(unlimited.place("a/3"), ("a/3".to_owned(), false));
    }
}
