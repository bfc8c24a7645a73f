//! Admitting an inbound connection before any HTTP/2 is read: what its first bytes speak
//! (TLS or plaintext, `tls::detect`), whether the `inbound` listener's mode allows that
//! (`decide`, the MtlsPolicy's enforcement point), the TLS handshake with the current
//! workload certificate, and who the peer is (its SPIFFE id, put into every request's
//! extensions as [`ConnectionSecurity`] for metrics).
//!
//! The mode is read per connection, so a policy change applies to the next connection
//! without restarting anything; connections already admitted keep running, as with Envoy's
//! filter-chain updates. A refused connection is closed without a byte written back: a
//! plaintext HTTP/2 client sees the connection reset, a TLS client a handshake failure.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use weft_common::spiffe::SpiffeId;

use super::listener::Admission;
use super::metrics::{MtlsMetrics, Refusal};
use crate::config::{InboundMode, ProxyConfig};
use crate::tls::{self, TlsConfigs, Transport};

/// How long a client may take to send its first bytes, and then to finish the handshake.
/// gRPC clients speak first (the HTTP/2 preface or a ClientHello) at once; this only
/// bounds connections that never do.
const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How an admitted connection is secured, as seen by every request on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionSecurity {
    /// Mutual TLS; the peer's SPIFFE id (`None` if its verified certificate names none,
    /// which a mesh CA never issues).
    Mtls {
        peer: Option<SpiffeId>,
    },
    Plaintext,
}

/// What to do with a connection, given the listener's mode, what the connection speaks and
/// whether this proxy has a certificate yet. Without a certificate a TLS client cannot be
/// served at all; under `Strict` that means refusing everything until one arrives, which
/// fails closed.
pub fn decide(
    mode: InboundMode,
    transport: Transport,
    has_certificate: bool,
) -> Result<Transport, Refusal> {
    match (mode, transport) {
        (InboundMode::Strict, Transport::Plaintext) => Err(Refusal::PlaintextUnderStrict),
        (InboundMode::Disable, Transport::Tls) => Err(Refusal::TlsUnderDisable),
        (_, Transport::Tls) if !has_certificate => Err(Refusal::NoCertificate),
        (_, transport) => Ok(transport),
    }
}

/// The inbound listener's admission: the mode from the current config, the certificate from
/// the rotation task.
#[derive(Clone)]
pub struct InboundAdmission {
    pub config: watch::Receiver<Arc<ProxyConfig>>,
    pub tls: watch::Receiver<Option<Arc<TlsConfigs>>>,
    pub metrics: Arc<MtlsMetrics>,
}

impl Admission for InboundAdmission {
    type Io = InboundStream;
    type Peer = ConnectionSecurity;

    async fn admit(&self, stream: TcpStream) -> Option<(InboundStream, ConnectionSecurity)> {
        let transport = match tls::detect(&stream, FIRST_BYTES_TIMEOUT).await {
            Ok(transport) => transport,
            Err(err) => {
                tracing::debug!(%err, "inbound connection closed before it was classified");
                return None;
            }
        };
        let mode = self.config.borrow().inbound_mode();
        let server = self.tls.borrow().as_ref().map(|tls| tls.server.clone());
        match decide(mode, transport, server.is_some()) {
            Err(refusal) => {
                tracing::debug!(?mode, ?refusal, peer = ?stream.peer_addr().ok(), "inbound connection refused");
                self.metrics.refused(refusal);
                None
            }
            Ok(Transport::Plaintext) => {
                self.metrics.admitted(false);
                Some((InboundStream::Plain(stream), ConnectionSecurity::Plaintext))
            }
            Ok(Transport::Tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(server?);
                let handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                match handshake.await {
                    Ok(Ok(tls)) => {
                        let peer = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|chain| chain.first())
                            .and_then(tls::peer_identity);
                        self.metrics.admitted(true);
                        let security = ConnectionSecurity::Mtls { peer };
                        Some((InboundStream::Tls(Box::new(tls)), security))
                    }
                    Ok(Err(err)) => {
                        tracing::debug!(%err, "inbound TLS handshake failed");
                        self.metrics.refused(Refusal::HandshakeFailed);
                        None
                    }
                    Err(_) => {
                        self.metrics.refused(Refusal::HandshakeFailed);
                        None
                    }
                }
            }
        }
    }

    fn annotate(peer: &ConnectionSecurity, request: &mut http::Request<hyper::body::Incoming>) {
        request.extensions_mut().insert(peer.clone());
    }
}

/// An admitted inbound connection: plaintext or mutual TLS.
pub enum InboundStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for InboundStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            InboundStream::Plain(stream) => Pin::new(stream).poll_read(cx, buf),
            InboundStream::Tls(stream) => Pin::new(stream.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for InboundStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            InboundStream::Plain(stream) => Pin::new(stream).poll_write(cx, buf),
            InboundStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            InboundStream::Plain(stream) => Pin::new(stream).poll_write_vectored(cx, bufs),
            InboundStream::Tls(stream) => Pin::new(stream.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            InboundStream::Plain(stream) => stream.is_write_vectored(),
            InboundStream::Tls(stream) => stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            InboundStream::Plain(stream) => Pin::new(stream).poll_flush(cx),
            InboundStream::Tls(stream) => Pin::new(stream.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            InboundStream::Plain(stream) => Pin::new(stream).poll_shutdown(cx),
            InboundStream::Tls(stream) => Pin::new(stream.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InboundMode::*;
    use Transport::*;

    #[test]
    fn strict_refuses_plaintext_and_admits_tls() {
        assert_eq!(
            decide(Strict, Plaintext, true),
            Err(Refusal::PlaintextUnderStrict)
        );
        assert_eq!(decide(Strict, Tls, true), Ok(Tls));
    }

    #[test]
    fn permissive_admits_both() {
        assert_eq!(decide(Permissive, Plaintext, true), Ok(Plaintext));
        assert_eq!(decide(Permissive, Tls, true), Ok(Tls));
        assert_eq!(decide(Permissive, Plaintext, false), Ok(Plaintext));
    }

    #[test]
    fn disable_refuses_tls() {
        assert_eq!(decide(Disable, Plaintext, true), Ok(Plaintext));
        assert_eq!(decide(Disable, Tls, true), Err(Refusal::TlsUnderDisable));
    }

    #[test]
    fn tls_without_a_certificate_is_refused_so_strict_fails_closed() {
        assert_eq!(decide(Strict, Tls, false), Err(Refusal::NoCertificate));
        assert_eq!(decide(Permissive, Tls, false), Err(Refusal::NoCertificate));
        assert_eq!(
            decide(Strict, Plaintext, false),
            Err(Refusal::PlaintextUnderStrict)
        );
    }
}
