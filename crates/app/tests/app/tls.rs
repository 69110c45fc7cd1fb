//! Built-in TLS: the real app (production wiring over SQLite) served over HTTPS on port 0
//! with a certificate chain made here (a self-signed root, an intermediate, a leaf); TLS
//! 1.3 and 1.2 accepted, an older client refused; configuration errors that name the
//! setting and never the key; graceful shutdown as with plain HTTP.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use convene::config::{Config, TlsConfig};
use convene::http::{Limits, router};
use convene::wiring::{Database, key_ring, providers, wire_with};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, KeyUsagePurpose};
use rustls::ProtocolVersion;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// PEM files on disk and the root a client must trust.
struct Pki {
    dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    root_pem: String,
    root_der: CertificateDer<'static>,
    leaf_key_pem: String,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// root (self-signed) → intermediate → leaf for `localhost` and 127.0.0.1; the cert file
/// holds the leaf then the intermediate, the key file the leaf's PKCS#8 key.
fn pki() -> Pki {
    let root =
        CertifiedIssuer::self_signed(ca_params("Convene test root"), KeyPair::generate().unwrap())
            .unwrap();
    let intermediate = CertifiedIssuer::signed_by(
        ca_params("Convene test intermediate"),
        KeyPair::generate().unwrap(),
        &root,
    )
    .unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &intermediate)
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, format!("{}{}", leaf.pem(), intermediate.pem())).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    Pki {
        cert,
        key,
        root_pem: root.pem(),
        root_der: root.der().clone(),
        leaf_key_pem: leaf_key.serialize_pem(),
        dir,
    }
}

/// The real router as `convene serve` builds it, over SQLite in `dir`.
async fn real_router(dir: &Path) -> axum::Router {
    let mut config = Config {
        database_url: format!("sqlite://{}?mode=rwc", dir.join("convene.db").display()),
        base_url: "https://localhost".into(),
        ..Config::default()
    };
    config.mail.dir = dir.join("mail");
    let database = Database::open(&config.database_url, key_ring(&config).unwrap())
        .await
        .unwrap();
    database.migrate().await.unwrap();
    let providers = providers(&config, database.store()).unwrap();
    let wired = wire_with(&config, database, providers).unwrap();
    router(
        wired.app,
        Limits {
            body_bytes: config.limits.body_bytes,
            timeout: Duration::from_secs(10),
            // as `convene serve` decides it: base_url is https://
            https: true,
        },
    )
}

struct Server {
    addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn serve(pki: &Pki) -> Server {
    let tls = convene::tls::server_config(&TlsConfig {
        cert: Some(pki.cert.clone()),
        key: Some(pki.key.clone()),
    })
    .unwrap()
    .expect("both files set: TLS on");
    let routes = real_router(pki.dir.path()).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (shutdown, rx) = watch::channel(false);
    let task = tokio::spawn(convene::tls::serve(listener, tls, routes, rx));
    Server {
        addr,
        shutdown,
        task,
    }
}

fn https_client(pki: &Pki, addr: SocketAddr) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.root_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
}

/// A raw rustls client speaking only `version`: GET /healthz, returns the negotiated
/// version and the response's status line.
async fn raw_get(
    pki: &Pki,
    addr: SocketAddr,
    version: &'static rustls::SupportedProtocolVersion,
) -> (ProtocolVersion, String) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.root_der.clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(convene::tls::provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let negotiated = tls.get_ref().1.protocol_version().unwrap();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    // rustls reports the peer closing without close_notify as an error; what was read
    // before it is all we need.
    let _ = tls.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    (
        negotiated,
        text.lines().next().unwrap_or_default().to_owned(),
    )
}

/// A hand-written ClientHello with `client_version` and no supported_versions extension
/// (how TLS 1.2 and older clients speak), offering TLS 1.2 GCM and TLS 1.0/1.1 CBC
/// suites, with the signature_algorithms, supported_groups and ec_point_formats
/// extensions: with 1.2 it is acceptable, so a refusal of the same hello at 1.1 is about
/// the version alone.
fn client_hello(client_version: [u8; 2]) -> Vec<u8> {
    fn with_len16(bytes: &[u8]) -> Vec<u8> {
        let mut out = (bytes.len() as u16).to_be_bytes().to_vec();
        out.extend(bytes);
        out
    }
    fn u16s(values: &[u16]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }
    let mut body = client_version.to_vec();
    body.extend([0x5a; 32]);
    body.push(0);
    body.extend(with_len16(&u16s(&[
        0xc02b, 0xc02f, 0xc009, 0xc00a, 0xc013, 0xc014, 0x002f, 0x0035,
    ])));
    body.extend([1, 0]);
    let mut extensions = Vec::new();
    // signature_algorithms
    extensions.extend(u16s(&[0x000d]));
    extensions.extend(with_len16(&with_len16(&u16s(&[
        0x0403, 0x0804, 0x0401, 0x0203, 0x0201,
    ]))));
    // supported_groups
    extensions.extend(u16s(&[0x000a]));
    extensions.extend(with_len16(&with_len16(&u16s(&[0x001d, 0x0017]))));
    // ec_point_formats: uncompressed
    extensions.extend(u16s(&[0x000b]));
    extensions.extend(with_len16(&[1, 0]));
    body.extend(with_len16(&extensions));
    let mut handshake = vec![1];
    handshake.extend(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend(body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend(with_len16(&handshake));
    record
}

/// The first bytes the server answers `hello` with (up to the first record's header and
/// two bytes of its content).
async fn first_answer(addr: SocketAddr, hello: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(hello).await.unwrap();
    let mut answer = vec![0; 7];
    tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut answer))
        .await
        .expect("the server answers")
        .unwrap();
    answer
}

#[tokio::test]
async fn the_real_app_answers_over_https_with_tls_1_2_and_1_3_and_refuses_tls_1_1() {
    let pki = pki();
    let server = serve(&pki).await;
    let port = server.addr.port();

    // reqwest trusting only the test root: 200 from /healthz, HSTS sent (base_url https).
    let client = https_client(&pki, server.addr).build().unwrap();
    let response = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);
    assert!(
        response.headers().contains_key("strict-transport-security"),
        "{:?}",
        response.headers()
    );

    // reqwest pinned to TLS 1.2 also gets in.
    let tls12 = https_client(&pki, server.addr)
        .min_tls_version(reqwest::tls::Version::TLS_1_2)
        .max_tls_version(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    let response = tls12
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);

    // Raw rustls clients limited to one version: both negotiate it and get 200.
    for (version, expected) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let (negotiated, status) = raw_get(&pki, server.addr, version).await;
        assert_eq!(negotiated, expected);
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    }

    // A client that speaks at most TLS 1.1 (no rustls or reqwest client goes that low,
    // so its ClientHello is written by hand): a fatal protocol_version alert, no
    // ServerHello. The same hello at TLS 1.2 gets a ServerHello.
    let answer = first_answer(server.addr, &client_hello([3, 3])).await;
    assert_eq!(answer[0], 0x16, "a handshake record: {answer:?}");
    assert_eq!(answer[5], 2, "a ServerHello: {answer:?}");
    for old in [[3, 2], [3, 1]] {
        let answer = first_answer(server.addr, &client_hello(old)).await;
        assert_eq!(answer[0], 0x15, "an alert, not a handshake: {answer:?}");
        assert_eq!(
            &answer[5..7],
            &[2, 70],
            "fatal protocol_version: {answer:?}"
        );
    }

    // The server still serves after refusing.
    let response = client
        .get(format!("https://localhost:{port}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), reqwest::StatusCode::OK);

    // Graceful shutdown, with the client's idle keep-alive connection still open.
    server.shutdown.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), server.task)
        .await
        .expect("the server stops")
        .unwrap()
        .unwrap();
    let mut refused = false;
    for _ in 0..50 {
        if TcpStream::connect(server.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "the socket closes after shutdown");
    drop(client);
}

#[test]
fn only_tls_1_3_and_1_2_are_offered() {
    let versions: Vec<ProtocolVersion> = convene::tls::PROTOCOL_VERSIONS
        .iter()
        .map(|v| v.version)
        .collect();
    assert_eq!(
        versions,
        [ProtocolVersion::TLSv1_3, ProtocolVersion::TLSv1_2]
    );
    for old in [
        ProtocolVersion::SSLv2,
        ProtocolVersion::SSLv3,
        ProtocolVersion::TLSv1_0,
        ProtocolVersion::TLSv1_1,
    ] {
        assert!(!versions.contains(&old), "{old:?}");
    }
}

#[test]
fn plain_http_unless_configured_and_errors_name_the_setting_never_the_key() {
    let pki = pki();
    let error = |tls: TlsConfig| {
        convene::tls::server_config(&tls)
            .expect_err("refused")
            .to_string()
    };
    let body = |pem: &str| -> String {
        pem.lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>()
    };
    let leaf_key_body = body(&pki.leaf_key_pem);

    assert!(
        convene::tls::server_config(&TlsConfig::default())
            .unwrap()
            .is_none()
    );

    // One of the two alone.
    let e = error(TlsConfig {
        cert: Some(pki.cert.clone()),
        key: None,
    });
    assert!(
        e.contains("tls.key") && e.contains("CONVENE_TLS__KEY"),
        "{e}"
    );
    let e = error(TlsConfig {
        cert: None,
        key: Some(pki.key.clone()),
    });
    assert!(
        e.contains("tls.cert") && e.contains("CONVENE_TLS__CERT"),
        "{e}"
    );

    // Missing files.
    let nowhere = pki.dir.path().join("nowhere.pem");
    let e = error(TlsConfig {
        cert: Some(nowhere.clone()),
        key: Some(pki.key.clone()),
    });
    assert!(
        e.contains("tls.cert") && e.contains("nowhere.pem") && e.contains("cannot read"),
        "{e}"
    );
    let e = error(TlsConfig {
        cert: Some(pki.cert.clone()),
        key: Some(nowhere),
    });
    assert!(e.contains("tls.key") && e.contains("cannot read"), "{e}");

    // Cert and key swapped: neither file's content is quoted.
    let e = error(TlsConfig {
        cert: Some(pki.key.clone()),
        key: Some(pki.cert.clone()),
    });
    assert!(
        e.contains("tls.cert") && e.contains("no PEM certificate"),
        "{e}"
    );
    assert!(!e.contains(&leaf_key_body[..40]), "{e}");
    let e = error(TlsConfig {
        cert: Some(pki.cert.clone()),
        key: Some(pki.cert.clone()),
    });
    assert!(
        e.contains("tls.key") && e.contains("no PEM private key"),
        "{e}"
    );

    // A damaged key: the error does not quote it.
    let damaged = pki.dir.path().join("damaged.pem");
    std::fs::write(
        &damaged,
        "-----BEGIN PRIVATE KEY-----\nTOPSECRETKEYMATERIAL!!!not*base64\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let e = error(TlsConfig {
        cert: Some(pki.cert.clone()),
        key: Some(damaged),
    });
    assert!(e.contains("tls.key") && !e.contains("TOPSECRET"), "{e}");

    // A key that does not belong to the certificate.
    let other = pki.dir.path().join("other.pem");
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    std::fs::write(&other, &other_key).unwrap();
    let e = error(TlsConfig {
        cert: Some(pki.cert.clone()),
        key: Some(other),
    });
    assert!(e.contains("tls.cert and tls.key"), "{e}");
    assert!(!e.contains(&body(&other_key)[..40]), "{e}");
}
