//! The proxy's half of transparent interception: recovering where a client meant to go.
//!
//! `weft-proxy init` makes iptables REDIRECT an app's outbound TCP to the outbound listener;
//! the kernel keeps the address the app dialled in conntrack, and `SO_ORIGINAL_DST` on the
//! accepted socket reads it back. The outbound listener's [`Intercepted`] admission asks once
//! per connection and tags every request on it with [`OriginalDst`].
//!
//! How that address picks a route (the choice, kept minimal): a Service's cluster IP is one
//! of its virtual host's domains — weft-controller lists `<clusterIP>:<port>` (and, for the
//! first port, `<clusterIP>`) next to the DNS names, as Istio does, from `spec.clusterIP`
//! (Kubernetes fills it in; in local mode the Service YAML carries it). So a client that
//! dials `192.0.2.10:50051` and sends that as `:authority` is routed by the domains with no
//! help from here; when the `:authority` names nothing the mesh knows (a name from the app's
//! own resolver, an unrelated host header), the route is looked up by the original
//! destination `ip:port` instead (`RouteTable::select_intercepted`). An address that is no
//! Service's stays a "no route" error: there is no passthrough to unknown destinations yet.
//!
//! A connection that was not redirected (a client that dialled the listener itself, as
//! without interception) has no original destination: the kernel answers with the
//! listener's own address (or `ENOENT` when conntrack has no entry), and nothing is tagged.

use std::net::{SocketAddr, SocketAddrV6};

use http::Request;
use hyper::body::Incoming;
use socket2::SockRef;
use tokio::net::TcpStream;

use super::listener::Admission;

/// The address a client dialled before iptables redirected its connection to the proxy
/// (a request extension, set on intercepted connections only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OriginalDst(pub SocketAddr);

/// The original destination of an accepted connection, when it was redirected.
pub fn original_dst(stream: &TcpStream) -> Option<SocketAddr> {
    let local = stream.local_addr().ok()?;
    let socket = SockRef::from(stream);
    // An IPv6 socket accepts IPv4 connections as v4-mapped addresses; their NAT entry is
    // IPv4, so they are asked with the IPv4 option.
    let original = match local {
        SocketAddr::V4(_) => socket.original_dst_v4(),
        SocketAddr::V6(v6) if v6.ip().to_ipv4_mapped().is_some() => socket.original_dst_v4(),
        SocketAddr::V6(_) => socket.original_dst_v6(),
    }
    .ok()?
    .as_socket()?;
    let original = unmapped(original);
    (original != unmapped(local)).then_some(original)
}

/// `::ffff:a.b.c.d:p` as `a.b.c.d:p`, so a v4-mapped listener compares with IPv4 answers.
fn unmapped(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), v6.port(), 0, 0)),
        },
        v4 => v4,
    }
}

/// Every connection as it is, each request tagged with the connection's [`OriginalDst`]
/// when it was redirected (the outbound listener).
#[derive(Clone, Copy, Debug, Default)]
pub struct Intercepted;

impl Admission for Intercepted {
    type Io = TcpStream;
    type Peer = Option<OriginalDst>;

    async fn admit(&self, stream: TcpStream) -> Option<(TcpStream, Option<OriginalDst>)> {
        let original = original_dst(&stream).map(OriginalDst);
        Some((stream, original))
    }

    fn annotate(peer: &Option<OriginalDst>, request: &mut Request<Incoming>) {
        // Nothing for a connection that was not redirected, which keeps the common path
        // free of the extension map's allocation.
        if let Some(original) = peer {
            request.extensions_mut().insert(*original);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_addresses_compare_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:15001".parse().unwrap();
        assert_eq!(unmapped(mapped), "127.0.0.1:15001".parse().unwrap());
        let v6: SocketAddr = "[2001:db8::1]:80".parse().unwrap();
        assert_eq!(unmapped(v6), v6);
    }

    #[tokio::test]
    async fn a_connection_that_was_not_redirected_has_none() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (stream, _) = accepted.unwrap();
        assert_eq!(original_dst(&stream), None);
    }
}
