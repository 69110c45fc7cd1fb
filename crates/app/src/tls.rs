//! Optional built-in HTTPS, for deployments without a reverse proxy in front.
//!
//! rustls on the ring crypto provider (the one reqwest already brings into the tree; the
//! provider is passed explicitly, so no process-wide default is needed), TLS 1.3 and 1.2
//! only: a client offering TLS 1.1 or below is refused during the handshake. The
//! certificate chain and the private key (PKCS#8, PKCS#1 RSA or SEC1 EC) come from the PEM
//! files of `tls.cert` and `tls.key`; errors name the setting and the path, never the
//! key's content.
//!
//! Handshakes run in their own tasks, each with a time limit, so a slow or silent client
//! holds up nobody else; finished connections are handed to the same axum server, router
//! and graceful shutdown as plain HTTP (see [`serve`]).

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use rustls::ServerConfig;
use rustls::SupportedProtocolVersion;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::TlsConfig;

/// The protocol versions served: TLS 1.3 (preferred) and TLS 1.2. Nothing older.
pub const PROTOCOL_VERSIONS: &[&SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// How long a client has to complete its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; further connections wait in the kernel's backlog.
const CONCURRENT_HANDSHAKES: usize = 1024;

/// Why built-in TLS cannot start. The message names the setting; it never holds key
/// material.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The crypto provider: ring, as the rest of the tree (reqwest's rustls) uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server configuration `tls` asks for: `None` when neither file is set (plain
/// HTTP), an error naming the missing setting when only one is.
pub fn server_config(tls: &TlsConfig) -> Result<Option<Arc<ServerConfig>>, TlsError> {
    match (&tls.cert, &tls.key) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(TlsError(
            "tls.key (CONVENE_TLS__KEY) is missing: tls.cert is set, and built-in TLS needs both"
                .into(),
        )),
        (None, Some(_)) => Err(TlsError(
            "tls.cert (CONVENE_TLS__CERT) is missing: tls.key is set, and built-in TLS needs both"
                .into(),
        )),
        (Some(cert), Some(key)) => load(cert, key).map(Some),
    }
}

/// A server configuration from a PEM certificate chain and a PEM private key.
pub fn load(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certificates(cert)?;
    let key_path = key;
    let key = private_key(key_path)?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(PROTOCOL_VERSIONS)
        .map_err(|e| TlsError(format!("TLS set-up: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        // rustls's errors here describe the problem (an unsupported key type, a key that
        // does not match the certificate), never the key's bytes.
        .map_err(|e| {
            TlsError(format!(
                "tls.cert and tls.key ({} and {}) do not make a usable pair: {e}",
                cert.display(),
                key_path.display(),
            ))
        })?;
    // The server speaks HTTP/1.1 (axum's `http1`); offering h2 would break h2 clients.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn read(path: &Path, setting: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path)
        .map_err(|e| TlsError(format!("{setting}: cannot read {}: {e}", path.display())))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    const SETTING: &str = "tls.cert (CONVENE_TLS__CERT)";
    let pem = read(path, SETTING)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            TlsError(format!(
                "{SETTING}: {} is not valid PEM: {e}",
                path.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "{SETTING}: {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        )));
    }
    Ok(chain)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    const SETTING: &str = "tls.key (CONVENE_TLS__KEY)";
    let pem = read(path, SETTING)?;
    // The PEM parser's errors may quote a line of the file: they are not passed on.
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        let what = match e {
            rustls::pki_types::pem::Error::NoItemsFound => "holds no PEM private key",
            _ => "is not valid PEM",
        };
        TlsError(format!(
            "{SETTING}: {} {what} (expected PKCS#8, PKCS#1 RSA or SEC1 EC)",
            path.display()
        ))
    })
}

/// Serves `router` over TLS on `listener` until `shutdown` turns true, then finishes
/// in-flight requests: [`crate::serve`] with a TLS handshake before each connection.
pub async fn serve(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    router: axum::Router,
    mut shutdown: watch::Receiver<bool>,
) -> io::Result<()> {
    // `tap_io` only for axum's `ConnectInfo<SocketAddr>`, which it implements for any
    // tapped listener whose address is a `SocketAddr`.
    let listener = TlsListener::new(listener, TlsAcceptor::from(config))?.tap_io(|_| {});
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

type Accepted = (TlsStream<TcpStream>, SocketAddr);

/// A listener whose connections have completed a TLS handshake. Dropping it stops
/// accepting (the socket closes).
pub struct TlsListener {
    local_addr: SocketAddr,
    accepted: mpsc::Receiver<Accepted>,
    accepting: JoinHandle<()>,
}

impl fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsListener")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Accepts on `listener` and runs each handshake in a task of its own.
    pub fn new(listener: TcpListener, acceptor: TlsAcceptor) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        let accepting = tokio::spawn(accept_loop(listener, acceptor, tx));
        Ok(Self {
            local_addr,
            accepted,
            accepting,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(connection) => connection,
            // The accept loop ended (it only does when aborted): nothing more comes.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

async fn accept_loop(listener: TcpListener, acceptor: TlsAcceptor, tx: mpsc::Sender<Accepted>) {
    let handshakes = Arc::new(Semaphore::new(CONCURRENT_HANDSHAKES));
    loop {
        let Ok(permit) = handshakes.clone().acquire_owned().await else {
            return;
        };
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors and the like: wait instead of spinning.
                tracing::error!(error = %e, "accepting a connection");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    // Fails only when the server has stopped: the connection is dropped.
                    let _ = tx.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!("TLS handshake timed out"),
            }
        });
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
