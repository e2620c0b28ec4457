//! TLS on the MCP listener (`--tls-cert`, `--tls-key`): rustls through tokio-rustls, in
//! mcp-edge's own accept loop ([`super::listen`]).
//!
//! Why not pingora's TLS listener: mcp-edge accepts on sockets of its own (one per worker
//! thread), so pingora's listening service, where its `TlsSettings` plug in, is not on the path.
//! The handshake is one call on the accepted socket either way, and pingora's rustls support
//! wraps the same tokio-rustls; called directly, the certificate is a plain rustls
//! `ResolvesServerCert` ([`Certificate`]) that a rotation swaps, and the handshake's deadline
//! and outcome are counted here.
//!
//! | moment | what happens |
//! |---|---|
//! | start | the chain and key are read and must fit each other; else mcp-edge does not start (an expired certificate only warns, as nginx does) |
//! | a connection | the handshake within `--tls-handshake-timeout-ms`: TLS 1.3 or 1.2, rustls's default suites (AEAD with forward secrecy only); ALPN offers `h2` (unless `--http2 false`) and `http/1.1`; a handshake that fails, is closed by the client, or comes too late closes the connection, counted by outcome |
//! | every [`RELOAD_EVERY`] | both files' stamps (modification time, size, inode; symlinks followed, as Kubernetes swaps a directory link) compared with the last loaded |
//! | a changed pair that loads and fits | new handshakes present it; open connections keep the one they were made with |
//! | a changed pair that does not (half written, a key of another certificate) | the loaded pair stays, the error is logged and counted once, and the files are read again at each tick until they make a pair |

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicI64, AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use pingora::protocols::l4::stream::Stream as L4Stream;
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self, ServerConfig,
        crypto::CryptoProvider,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
        server::{ClientHello, ResolvesServerCert},
        sign::CertifiedKey,
    },
    server::TlsStream,
};

use crate::telemetry::registry::{Encoder, Source};

/// How often the certificate's files are looked at for a rotation.
pub const RELOAD_EVERY: Duration = Duration::from_secs(5);

/// ALPN's names of the two protocols.
const H2: &[u8] = b"h2";
const HTTP1: &[u8] = b"http/1.1";

/// The TLS side of the MCP listener.
pub struct Tls {
    acceptor: TlsAcceptor,
    handshake_timeout: Duration,
    pub certificate: Arc<Certificate>,
    handshakes: Handshakes,
}

/// How handshakes ended, for `mcp_edge_tls_handshakes_total`.
#[derive(Default)]
struct Handshakes {
    h2: AtomicU64,
    http1: AtomicU64,
    /// The client closed or reset the connection before the handshake ended (a TCP probe, a
    /// health checker, a client that gave up).
    closed: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
}

impl Tls {
    /// The listener's TLS from the certificate chain and key files; `http2`: offer `h2`.
    pub fn new(
        cert: &Path,
        key: &Path,
        handshake_timeout: Duration,
        http2: bool,
    ) -> Result<Self, String> {
        let certificate = Arc::new(Certificate::load(cert, key)?);
        let provider = Arc::new(provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| format!("TLS versions: {e}"))?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        config.alpn_protocols = if http2 {
            vec![H2.to_vec(), HTTP1.to_vec()]
        } else {
            vec![HTTP1.to_vec()]
        };
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            handshake_timeout,
            certificate,
            handshakes: Handshakes::default(),
        })
    }

    /// The handshake on an accepted connection, within the handshake deadline; with whether
    /// the client chose HTTP/2. `None`: it failed or came too late (counted; the connection
    /// closes).
    pub async fn accept(&self, io: L4Stream) -> Option<(TlsStream<L4Stream>, bool)> {
        let handshake = self.acceptor.accept(io);
        let counts = &self.handshakes;
        match pingora_timeout::timeout(self.handshake_timeout, handshake).await {
            Ok(Ok(stream)) => {
                let h2 = stream.get_ref().1.alpn_protocol() == Some(H2);
                let count = if h2 { &counts.h2 } else { &counts.http1 };
                count.fetch_add(1, Ordering::Relaxed);
                Some((stream, h2))
            }
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                counts.closed.fetch_add(1, Ordering::Relaxed);
                None
            }
            Ok(Err(e)) => {
                tracing::debug!("TLS handshake failed: {e}");
                counts.failed.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(_) => {
                counts.timed_out.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// rustls's cryptography: ring, as pingora's rustls support builds it.
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The certificate new handshakes present, swapped when its files change.
pub struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    current: ArcSwap<CertifiedKey>,
    /// The files' stamps when `current` was read from them, and when a pair was last refused
    /// (a refused pair is read again at each tick, but counted and logged once).
    stamp: Mutex<(Stamp, Option<Stamp>)>,
    /// When `current` expires (Unix seconds).
    not_after: AtomicI64,
    reloaded: AtomicU64,
    refused: AtomicU64,
}

impl std::fmt::Debug for Certificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What tells a file's rotation: modification time, size, inode (of the cert, then the key).
type Stamp = [(Option<SystemTime>, u64, u64); 2];

fn stamp(cert: &Path, key: &Path) -> Stamp {
    [cert, key].map(|path| match fs::metadata(path) {
        Ok(m) => (m.modified().ok(), m.len(), m.ino()),
        Err(_) => (None, 0, 0),
    })
}

/// A chain and key read from PEM files: the key must fit the chain's first certificate.
/// Returns the pair and the certificate's expiry (Unix seconds).
fn read(cert: &Path, key: &Path) -> Result<(CertifiedKey, i64), String> {
    let (cert_name, key_name) = (cert.display(), key.display());
    let pem = fs::read(cert).map_err(|e| format!("cannot read {cert_name} (--tls-cert): {e}"))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert_name} (--tls-cert) is not a PEM certificate chain: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err(format!(
            "{cert_name} (--tls-cert) holds no certificate (-----BEGIN CERTIFICATE-----)"
        ));
    };
    let not_after = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| format!("{cert_name} (--tls-cert): the first certificate: {e}"))?
        .1
        .validity()
        .not_after
        .timestamp();
    let pem = fs::read(key).map_err(|e| format!("cannot read {key_name} (--tls-key): {e}"))?;
    let private = PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        format!("{key_name} (--tls-key) holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}")
    })?;
    let private = provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| format!("{key_name} (--tls-key): a key rustls cannot use: {e}"))?;
    let pair = CertifiedKey::new(chain, private);
    match pair.keys_match() {
        // A key whose public half cannot be compared is taken, as rustls's own from_der does.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(e) => {
            return Err(format!(
                "the key in {key_name} does not fit the certificate in {cert_name}: {e}"
            ));
        }
    }
    Ok((pair, not_after))
}

impl Certificate {
    /// Read the pair (at start: an error stops mcp-edge).
    fn load(cert: &Path, key: &Path) -> Result<Self, String> {
        let stamp = stamp(cert, key);
        let (pair, not_after) = read(cert, key)?;
        let now = unix_now();
        if not_after <= now {
            tracing::warn!("the certificate in {} has expired", cert.display());
        }
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: ArcSwap::from_pointee(pair),
            stamp: Mutex::new((stamp, None)),
            not_after: AtomicI64::new(not_after),
            reloaded: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    /// Read the files again if they changed since the pair in use was read (the module's
    /// table). `Some(Ok)`: a new pair is presented from now on; `Some(Err)`: the files changed
    /// into something that does not make a pair, and the old one stays (said once per change);
    /// `None`: nothing new.
    pub fn reload(&self) -> Option<Result<(), String>> {
        let now = stamp(&self.cert, &self.key);
        let mut seen = self.stamp.lock().expect("not poisoned");
        if seen.0 == now {
            return None;
        }
        match read(&self.cert, &self.key) {
            Ok((pair, not_after)) => {
                self.current.store(Arc::new(pair));
                self.not_after.store(not_after, Ordering::Relaxed);
                *seen = (now, None);
                self.reloaded.fetch_add(1, Ordering::Relaxed);
                Some(Ok(()))
            }
            Err(_) if seen.1 == Some(now) => None,
            Err(e) => {
                seen.1 = Some(now);
                self.refused.fetch_add(1, Ordering::Relaxed);
                Some(Err(e))
            }
        }
    }

    /// The certificate file, for the start-up lines.
    pub fn path(&self) -> &Path {
        &self.cert
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// The ticker's job: look for a rotated certificate every [`RELOAD_EVERY`].
pub struct Reload(pub Arc<Certificate>);

#[async_trait]
impl crate::ticker::Periodic for Reload {
    fn name(&self) -> &'static str {
        "certificate reload"
    }

    fn every(&self) -> Duration {
        RELOAD_EVERY
    }

    async fn tick(&self) {
        let certificate = self.0.clone();
        // File reads and a signature check: off the ticker's thread.
        let outcome = tokio::task::spawn_blocking(move || certificate.reload()).await;
        match outcome {
            Ok(Some(Ok(()))) => tracing::info!(
                "TLS certificate reloaded from {}: new handshakes present it",
                self.0.cert.display()
            ),
            Ok(Some(Err(e))) => {
                tracing::error!("TLS certificate not reloaded, the previous one stays: {e}")
            }
            Ok(None) => {}
            Err(e) => tracing::error!("TLS certificate reload: {e}"),
        }
    }
}

impl Source for Tls {
    fn collect(&self, out: &mut Encoder) {
        let counts = &self.handshakes;
        out.counters(
            "mcp_edge_tls_handshakes_total",
            "TLS handshakes on the MCP listener, by outcome: the protocol ALPN chose; closed by the client first; failed (not TLS, no common version or suite, an alert); or not done within --tls-handshake-timeout-ms.",
            "outcome",
            [
                ("h2", &counts.h2),
                ("http1", &counts.http1),
                ("closed", &counts.closed),
                ("failed", &counts.failed),
                ("timed_out", &counts.timed_out),
            ],
        );
        let certificate = &self.certificate;
        out.counters(
            "mcp_edge_tls_certificate_reloads_total",
            "Rotated certificate files: loaded, or refused (the previous certificate stays).",
            "outcome",
            [
                ("loaded", &certificate.reloaded),
                ("refused", &certificate.refused),
            ],
        );
        out.gauge(
            "mcp_edge_tls_certificate_expiry_seconds",
            "When the certificate new handshakes present expires (Unix time).",
            certificate.not_after.load(Ordering::Relaxed),
        );
    }
}
