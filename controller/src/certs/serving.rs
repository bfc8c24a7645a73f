//! xDS over TLS: the controller's serving certificate, issued by its own CA (so proxies
//! need only the trust bundle) and renewed at half its lifetime on the next handshake after
//! that; and the stream of TLS connections tonic serves. Handshakes run in their own tasks,
//! so a slow or silent client never holds up the others.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use weft_common::spiffe::SpiffeId;

use crate::ca::CertificateAuthority;

/// How long the serving certificate lives (renewed at half).
const SERVING_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The names the controller's serving certificate carries, and the certificate in force.
pub struct ServingIdentity {
    ca: CertificateAuthority,
    dns_names: Vec<String>,
    ips: Vec<IpAddr>,
    id: SpiffeId,
    current: Mutex<(Arc<CertifiedKey>, SystemTime)>,
}

impl std::fmt::Debug for ServingIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingIdentity")
            .field("dns_names", &self.dns_names)
            .field("ips", &self.ips)
            .finish_non_exhaustive()
    }
}

impl ServingIdentity {
    pub fn new(
        ca: CertificateAuthority,
        dns_names: Vec<String>,
        ips: Vec<IpAddr>,
        id: SpiffeId,
    ) -> anyhow::Result<Self> {
        let current = issue(&ca, &dns_names, &ips, &id)?;
        Ok(Self {
            ca,
            dns_names,
            ips,
            id,
            current: Mutex::new(current),
        })
    }

    /// A rustls server config presenting this identity (ALPN h2, no client certificates:
    /// proxies authenticate with tokens).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        self.config_with_alpn(b"h2")
    }

    /// The same for HTTP/1.1 (the admission webhook, which the apiserver calls).
    pub fn http1_server_config(
        self: &Arc<Self>,
    ) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        self.config_with_alpn(b"http/1.1")
    }

    fn config_with_alpn(
        self: &Arc<Self>,
        alpn: &[u8],
    ) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![alpn.to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for ServingIdentity {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if SystemTime::now() >= current.1 {
            match issue(&self.ca, &self.dns_names, &self.ips, &self.id) {
                Ok(renewed) => *current = renewed,
                Err(err) => tracing::warn!(%err, "cannot renew the xDS serving certificate"),
            }
        }
        Some(current.0.clone())
    }
}

/// A serving certificate and when to renew it.
fn issue(
    ca: &CertificateAuthority,
    dns_names: &[String],
    ips: &[IpAddr],
    id: &SpiffeId,
) -> anyhow::Result<(Arc<CertifiedKey>, SystemTime)> {
    let (issued, key_pem) = ca.issue_server(dns_names, ips, id, SERVING_LIFETIME)?;
    let chain = issued
        .chain_pem
        .iter()
        .map(|pem| CertificateDer::from_pem_slice(pem.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)?;
    let half = issued
        .not_after
        .duration_since(issued.not_before)
        .unwrap_or_default()
        / 2;
    Ok((
        Arc::new(CertifiedKey::new(chain, signing)),
        issued.not_before + half,
    ))
}

/// TLS connections accepted on `listener`, handshaken in their own tasks.
pub fn tls_incoming(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
) -> ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(%err, "TLS accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            if tx.is_closed() {
                return;
            }
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
