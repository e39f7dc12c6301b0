// index_image: an HTTP/1.1 server that serves rewritten image URLs from the cluster database,
// replacing the PHP gateway. Startup, database connection (retried while it is down), shutdown.

mod config;
mod headers;
mod hot_cache;
mod http_range;
mod request_name;
mod serve;

use axum::serve::ListenerExt;
use clap::Parser;
use config::Config;
use ezdb_core::{Cluster, ClusterConfig, Error};
use serve::AppState;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Err(message) = config::load_config_file(&args) {
        eprintln!("index_image: error: {message}");
        std::process::exit(1);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(start(Config::parse()));
}

async fn start(config: Config) {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Err(message) = run(config).await {
        eprintln!("index_image: error: {message}");
        std::process::exit(1);
    }
}

async fn run(config: Config) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    let served_by = config.served_by().and_then(|s| s.parse().ok());
    let revalidate = Duration::from_secs_f64(config.cache_revalidate.max(0.0));
    let cache = hot_cache::HotCache::new(config.cache_bytes, config.cache_max_file, revalidate);
    let state = Arc::new(AppState {
        cluster: OnceCell::new(),
        config,
        served_by,
        cache,
    });
    connect_first(&state).await?;
    println!("index_image listening on http://{address}");
    let app = axum::Router::new().fallback(serve::handle).with_state(state);
    // Without TCP_NODELAY a response written in two segments (headers, then the body) waits
    // for the client's delayed ACK: 40 ms on Linux, on every keep-alive request.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!("stopped after finishing in-flight responses");
    Ok(())
}

/// Connects now if the database answers; if it is merely unreachable, keeps trying in the
/// background (answering 503 meanwhile); a wrong URL or password stops the start.
async fn connect_first(state: &Arc<AppState>) -> Result<(), String> {
    // Answer 503 within about two seconds when the database is down, rather than queueing.
    let mut config = ClusterConfig::new(&state.config.database_url).with_pool(state.config.pool_size);
    config.max_attempts = 2;
    config.connect_timeout = Duration::from_secs(1);
    match Cluster::connect(config.clone()).await {
        Ok(cluster) => {
            let _ = state.cluster.set(cluster);
            Ok(())
        }
        Err(Error::Connect {
            source: sqlx::Error::Io(_),
            url,
        }) => {
            tracing::warn!(%url, "database unreachable; serving 503 until it answers");
            let state = state.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    if let Ok(cluster) = Cluster::connect(config.clone()).await {
                        let _ = state.cluster.set(cluster);
                        tracing::info!("database reachable");
                        return;
                    }
                }
            });
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight responses");
}
