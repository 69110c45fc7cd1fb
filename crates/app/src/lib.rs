//! Convene's binary as a library: configuration, wiring, the HTTP surface, the worker and
//! the CLI tasks. `main` and the integration tests share [`serve`], so the tests run the
//! real application.
//!
//! Nothing here decides a business rule: handlers translate HTTP to the domain's use
//! cases and back.

pub mod backup;
pub mod config;
pub mod demo;
pub mod http;
pub mod incident;
pub mod logging;
pub mod state;
pub mod system;
pub mod tasks;
pub mod tls;
pub mod wiring;
pub mod worker;

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves `router` on `listener` until `shutdown` turns true, then finishes in-flight
/// requests.
pub async fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        while !*shutdown.borrow() {
            if shutdown.changed().await.is_err() {
                break;
            }
        }
    })
    .await
}

/// A channel that turns true on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {}
            _ = term => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}
