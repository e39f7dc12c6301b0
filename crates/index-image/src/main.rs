//! The index_image binary: parses the settings, binds the listener and runs the server until
//! SIGTERM or Ctrl-C.

use index_image::{run, Config, ConfigError};
use std::io::IsTerminal;

fn main() {
    let config = match Config::parse_from(std::env::args_os()) {
        Ok(config) => config,
        Err(ConfigError::Arguments(e)) => e.exit(),
        Err(ConfigError::File(message)) => {
            eprintln!("index_image: error: {message}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(serve(config)) {
        eprintln!("index_image: error: {e}");
        std::process::exit(1);
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let address = listener.local_addr().map_err(|e| e.to_string())?;
    println!("index_image listening on http://{address}");
    run(listener, config, shutdown_signal())
        .await
        .map_err(|e| e.to_string())
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
}
