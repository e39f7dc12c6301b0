//! The listener loop: accepts clients up to the connection cap, serves each connection with
//! hyper under the header, idle and send timeouts, and on shutdown lets responses in flight finish
//! until the shutdown deadline, then closes what is left.

use crate::config::{seconds, Config};
use crate::database::connect_first;
use crate::request_clock::{RequestClock, RequestTimer};
use crate::serve::{self, AppState};
use crate::watched_io::WatchedIo;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The database refused us for a reason that will not pass (URL, password, database name).
    #[error(transparent)]
    Database(#[from] ezdb_core::Error),
    /// The disk tier's directory cannot be used.
    #[error("disk cache directory {path}: {source}")]
    DiskCache {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The spool directory cannot be used.
    #[error("spool directory {path}: {source}")]
    Spool {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// How long each connection may wait on its client.
#[derive(Clone, Copy)]
struct ConnectionLimits {
    header_timeout: Duration,
    idle_timeout: Duration,
    send_timeout: Duration,
}

/// Serves `listener` until `shutdown` completes; then stops accepting, lets responses in flight
/// finish within the shutdown timeout and returns.
pub async fn run(listener: TcpListener, config: Config, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    let (stop, stopped) = watch::channel(false);
    let limits = ConnectionLimits {
        header_timeout: seconds(config.header_timeout),
        idle_timeout: seconds(config.idle_timeout),
        send_timeout: seconds(config.send_timeout),
    };
    let shutdown_timeout = seconds(config.shutdown_timeout);
    let connections = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let state = Arc::new(AppState::new(config)?);
    connect_first(&state, stopped.clone()).await?;
    // None when stopped before the database answered.
    let revalidating = state.cluster.get().map(|cluster| {
        tokio::spawn(state.revalidator.clone().run(
            cluster.clone(),
            state.cache.clone(),
            state.disk.clone(),
            state.metrics.clone(),
        ))
    });
    let app = axum::Router::new().fallback(serve::handle).with_state(state.clone());
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while tasks.try_join_next().is_some() {}
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let tcp = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    // Out of descriptors, most often: wait for connections to close.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let connection = serve_connection(tcp, app.clone(), state.clone(), limits, stopped.clone(), permit);
        tasks.spawn(connection);
    }
    drop(listener);
    stop.send_replace(true);
    tracing::info!(
        connections = tasks.len(),
        "shutting down: finishing responses in flight"
    );
    let drained = tokio::time::timeout(shutdown_timeout, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        tracing::warn!(
            connections = tasks.len(),
            seconds = shutdown_timeout.as_secs_f64(),
            "shutdown deadline passed; closing the connections still open"
        );
        tasks.shutdown().await;
    }
    if let Some(task) = revalidating {
        task.abort();
    }
    tracing::info!("stopped");
    Ok(())
}

async fn serve_connection(
    tcp: TcpStream,
    app: axum::Router,
    state: Arc<AppState>,
    limits: ConnectionLimits,
    mut stopped: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let _open = state.metrics.connection();
    // Without TCP_NODELAY a response written in two segments (headers, then the body) waits
    // for the client's delayed ACK: 40 ms on Linux, on every keep-alive request.
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    // hyper's header-read timer, made to apply the idle timeout between requests.
    let clock = RequestClock::new(limits.header_timeout, limits.idle_timeout);
    let io = TokioIo::new(WatchedIo::new(tcp, limits.send_timeout, clock.clone()));
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(RequestTimer(clock))
        .header_read_timeout(limits.header_timeout);
    let connection = builder.serve_connection(io, TowerToHyperService::new(app));
    tokio::pin!(connection);
    let ended = tokio::select! {
        ended = connection.as_mut() => ended,
        () = until_stopped(&mut stopped) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = ended {
        // A client that goes away or times out is routine; a response cut short is not.
        if e.is_timeout() {
            tracing::debug!(error = %e, "connection closed: idle, or client too slow to send its request");
        } else if e.is_incomplete_message() || e.is_canceled() {
            tracing::debug!(error = %e, "connection closed by the client");
        } else {
            tracing::info!(error = %e, "connection closed before the response was complete");
        }
    }
}

/// Completes once shutdown has begun.
async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    // The guard wait_for returns is not Send: drop it here.
    let _ = stopped.wait_for(|stopped| *stopped).await.is_ok();
}
