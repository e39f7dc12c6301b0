//! The connection to the cluster database at start: made now when the database answers, kept
//! trying in the background while it is unavailable for a reason that passes (down, restarting,
//! too many connections), refused at once when it cannot work (wrong URL, password, database).

use crate::config::seconds;
use crate::serve::AppState;
use ezdb_core::{Cluster, ClusterConfig, Error};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longest pause between two connection attempts while the database is unavailable.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(5);

pub fn cluster_config(state: &AppState) -> ClusterConfig {
    // Answer 503 within about two seconds when the database is down, rather than retrying.
    let mut config = ClusterConfig::new(&state.config.database_url)
        .with_pool(state.config.pool_size)
        .with_layout(state.config.cluster_layout());
    config = state.config.with_read_replicas(config);
    config.max_attempts = 2;
    config.connect_timeout = Duration::from_secs(1);
    // A busy pool is not a down database: requests queue for a connection this long.
    config.pool_wait_timeout = seconds(state.config.pool_wait_timeout);
    config
}

/// Connects now, or starts retrying in the background (until `stop`) when the failure passes.
pub async fn connect_first(state: &Arc<AppState>, stop: watch::Receiver<bool>) -> Result<(), Error> {
    let config = cluster_config(state);
    match Cluster::connect(config.clone()).await {
        Ok(cluster) => {
            let _ = state.cluster.set(cluster);
            Ok(())
        }
        Err(e) if is_transient(&e) => {
            tracing::warn!(error = %e, "database unavailable at start; serving 503 and retrying");
            tokio::spawn(keep_connecting(state.clone(), config, stop));
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn keep_connecting(state: Arc<AppState>, config: ClusterConfig, mut stop: watch::Receiver<bool>) {
    let mut pause = Duration::from_millis(250);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            stopped = stop.wait_for(|stopped| *stopped) => {
                let _ = stopped.is_ok();
                return;
            }
        }
        match Cluster::connect(config.clone()).await {
            Ok(cluster) => {
                let _ = state.cluster.set(cluster);
                tracing::info!("database reachable");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "database still unavailable; retrying"),
        }
        pause = (pause * 2).min(MAX_RETRY_PAUSE);
    }
}

/// Whether a failure to connect may pass by itself. Wrong settings (URL, user, password,
/// database name) do not: they stop the start so the operator sees them.
fn is_transient(e: &Error) -> bool {
    let Error::Connect { source, .. } = e else {
        return false;
    };
    match source {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            let code = db
                .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                .map(|m| m.number());
            // 1040 too many connections, 1203/1226 user connection limits, 1053 shutting down,
            // 2006/2013 gone away / lost, 1927 killed, 4031 idle disconnect, 1205 lock wait.
            matches!(code, Some(1040 | 1203 | 1226 | 1053 | 2006 | 2013 | 1927 | 4031 | 1205))
        }
        _ => false,
    }
}
