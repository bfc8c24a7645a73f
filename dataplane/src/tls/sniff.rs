//! What an inbound connection speaks, read from its first bytes without consuming them: a
//! TLS handshake (a mesh peer) or plaintext (HTTP/2 prior knowledge from a peer outside the
//! mesh, or from before mTLS is on), so one port can serve both while a policy allows it.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

/// What the first bytes of a connection are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// A TLS record (a ClientHello, on a fresh connection).
    Tls,
    /// Anything else; for gRPC, the HTTP/2 preface `PRI * HTTP/2.0`.
    Plaintext,
}

/// Bytes `classify` ever needs.
const NEEDED: usize = 2;

/// How long to wait before peeking again when the bytes so far did not decide. Only a
/// client that sent exactly the first byte of a TLS record can make this loop, so the wait
/// costs nothing in practice and keeps a slow sender from spinning the CPU.
const REPEEK: Duration = Duration::from_millis(5);

/// A TLS record starts with its content type, 0x16 (handshake) for a ClientHello, then the
/// major version, 0x03 for every SSL 3.0/TLS version. No HTTP/2 or HTTP/1 request starts
/// with 0x16, so one byte that is not 0x16 decides too. `None`: not enough bytes to tell.
pub fn classify(first: &[u8]) -> Option<Transport> {
    match first {
        [] | [0x16] => None,
        [0x16, 0x03, ..] => Some(Transport::Tls),
        _ => Some(Transport::Plaintext),
    }
}

/// Peeks at `stream` until `classify` decides, leaving the bytes for whoever reads next.
/// A client that sends too little within `timeout` gets an error of kind `TimedOut`; one
/// that closes before sending anything, `UnexpectedEof` (one that sends a lone 0x16 and
/// closes times out: a peek cannot see the end behind buffered bytes).
pub async fn detect(stream: &TcpStream, timeout: Duration) -> io::Result<Transport> {
    let deadline = Instant::now() + timeout;
    match tokio::time::timeout_at(deadline, peek_until_decided(stream)).await {
        Ok(decided) => decided,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client sent too little to tell TLS from plaintext within {timeout:?}"),
        )),
    }
}

async fn peek_until_decided(stream: &TcpStream) -> io::Result<Transport> {
    let mut buf = [0u8; NEEDED];
    let mut seen = 0;
    loop {
        // `peek` waits for data only while none is buffered; with some buffered it returns
        // at once, so it alone would spin while the rest is in flight.
        stream.readable().await?;
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the client closed the connection before its first bytes told TLS from plaintext",
            ));
        }
        if let Some(transport) = classify(&buf[..n]) {
            return Ok(transport);
        }
        if n <= seen {
            tokio::time::sleep(REPEEK).await;
        }
        seen = n;
    }
}

#[cfg(test)]
#[path = "sniff_tests.rs"]
mod tests;
