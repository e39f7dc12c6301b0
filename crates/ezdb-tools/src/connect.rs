// How every tool finds its database: --url or EZDB_URL, with the error a cron job can log.

use ezdb_core::{Cluster, ClusterConfig};

/// Help text shared by the `--url` flags.
pub const URL_HELP: &str =
    "Cluster database, mysql://user:pass@host:port/db or mysql://user@localhost/db?socket=/path [env: EZDB_URL]";

pub async fn connect(
    url: Option<String>,
    tune: impl FnOnce(ClusterConfig) -> ClusterConfig,
) -> Result<Cluster, String> {
    let url = url
        .or_else(|| std::env::var("EZDB_URL").ok())
        .ok_or("no database given: pass --url=mysql://user:pass@host:port/db or set EZDB_URL")?;
    Cluster::connect(tune(ClusterConfig::new(url)))
        .await
        .map_err(|e| e.to_string())
}
