// The legacy ezcache items kept in the cluster: their ids, tags, global-expiry key and the
// name prefixes (under the site cache directory) that clearing and purging act on.

/// How clearing an item invalidates its entries (never by deleting rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clear {
    /// Move the item's global expiry key to now: every server regenerates at once.
    Key,
    /// Mark the files under the item's prefixes expired (soft delete).
    Expire,
    /// Never touched: the item holds the clears themselves (`expiry.php`); removing it would
    /// make every cleared cache valid again.
    Keep,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheItem {
    pub id: &'static str,
    /// Other ids accepted for it (the spellings of the issue and of later eZ versions).
    pub aliases: &'static [&'static str],
    pub name: &'static str,
    pub tags: &'static [&'static str],
    pub expiry_key: Option<&'static str>,
    pub clear: Clear,
    /// Name prefixes below the cache directory, e.g. `content/` for `var/site/cache/content/...`.
    pub prefixes: &'static [&'static str],
}

pub const CLUSTERED: &[CacheItem] = &[
    item(
        "content",
        &["view-cache"],
        "Content view cache",
        &["content"],
        Some("content-view-cache"),
        Clear::Key,
        &["content/"],
    ),
    item(
        "template-block",
        &["cacheblock"],
        "Template block cache",
        &["template", "content"],
        Some("global-template-block-cache"),
        Clear::Key,
        &["template-block/"],
    ),
    item(
        "user_info_cache",
        &["user-info"],
        "User info cache",
        &["user"],
        Some("user-info-cache"),
        Clear::Key,
        &["user-info/"],
    ),
    item(
        "classid",
        &["class-identifier"],
        "Class identifier cache",
        &["content"],
        Some("class-identifier-cache"),
        Clear::Expire,
        &["classidentifiers_", "classattributeidentifiers_"],
    ),
    item(
        "sortkey",
        &["sort-key"],
        "Sort key cache",
        &["content"],
        Some("sort-key-cache"),
        Clear::Expire,
        &["sortkey_"],
    ),
    item(
        "state_limitations",
        &["state-limitations"],
        "State limitations cache",
        &["content"],
        Some("state-limitations"),
        Clear::Expire,
        &["statelimitations_"],
    ),
    item(
        "urlalias",
        &["url-alias"],
        "URL alias wildcard cache",
        &["content"],
        None,
        Clear::Expire,
        &["wildcard/"],
    ),
    item(
        "rss_cache",
        &["rss"],
        "RSS cache",
        &["content"],
        None,
        Clear::Expire,
        &["rss/"],
    ),
    item(
        "texttoimage",
        &[],
        "Text to image cache",
        &["image"],
        None,
        Clear::Expire,
        &["texttoimage/"],
    ),
    item(
        "imagealias",
        &["image-alias"],
        "Image aliases",
        &["image"],
        Some("image-manager-alias"),
        Clear::Key,
        &[],
    ),
    item(
        "expiry",
        &[],
        "Global expiry file (expiry.php)",
        &[],
        None,
        Clear::Keep,
        &[],
    ),
];

/// Legacy items that live on each web server's disk, never in the cluster.
pub const LOCAL_ONLY: &[&str] = &[
    "global_ini",
    "ini",
    "codepage",
    "template",
    "template-override",
    "chartrans",
    "content_tree_menu",
    "design_base",
    "active_extensions",
    "translation",
];

#[allow(clippy::too_many_arguments)]
const fn item(
    id: &'static str,
    aliases: &'static [&'static str],
    name: &'static str,
    tags: &'static [&'static str],
    expiry_key: Option<&'static str>,
    clear: Clear,
    prefixes: &'static [&'static str],
) -> CacheItem {
    CacheItem {
        id,
        aliases,
        name,
        tags,
        expiry_key,
        clear,
        prefixes,
    }
}

/// What a selection of ids or tags resolved to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub items: Vec<&'static CacheItem>,
    /// Legacy ids that are not in the cluster (nothing to do here).
    pub local_only: Vec<String>,
    pub unknown: Vec<String>,
}

impl Resolved {
    fn add(&mut self, item: &'static CacheItem) {
        if !self.items.iter().any(|i| i.id == item.id) {
            self.items.push(item);
        }
    }
}

/// Items for comma-separated ids (`content,template-block`).
pub fn by_ids(ids: &str) -> Resolved {
    let mut resolved = Resolved::default();
    for id in ids.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match CLUSTERED.iter().find(|i| i.id == id || i.aliases.contains(&id)) {
            Some(item) => resolved.add(item),
            None if LOCAL_ONLY.contains(&id) => resolved.local_only.push(id.to_owned()),
            None => resolved.unknown.push(id.to_owned()),
        }
    }
    resolved
}

/// Items carrying any of the comma-separated tags.
pub fn by_tags(tags: &str) -> Resolved {
    let mut resolved = Resolved::default();
    for tag in tags.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let matching: Vec<_> = CLUSTERED.iter().filter(|i| i.tags.contains(&tag)).collect();
        if matching.is_empty() {
            resolved.unknown.push(tag.to_owned());
        }
        matching.into_iter().for_each(|i| resolved.add(i));
    }
    resolved
}

pub fn all() -> Resolved {
    let mut resolved = Resolved::default();
    CLUSTERED.iter().for_each(|i| resolved.add(i));
    resolved
}

/// Every tag, sorted.
pub fn tags() -> Vec<&'static str> {
    let mut tags: Vec<_> = CLUSTERED.iter().flat_map(|i| i.tags.iter().copied()).collect();
    tags.sort_unstable();
    tags.dedup();
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_aliases_and_tags_resolve() {
        let r = by_ids("content, user-info,nosuch,ini");
        assert_eq!(
            r.items.iter().map(|i| i.id).collect::<Vec<_>>(),
            vec!["content", "user_info_cache"]
        );
        assert_eq!(
            (r.unknown, r.local_only),
            (vec!["nosuch".to_owned()], vec!["ini".to_owned()])
        );
        let content = by_tags("content");
        assert!(content.items.len() >= 5 && content.unknown.is_empty());
        assert_eq!(by_tags("nosuch").unknown, vec!["nosuch".to_owned()]);
        assert_eq!(all().items.len(), CLUSTERED.len());
        assert!(tags().contains(&"image"));
    }
}
