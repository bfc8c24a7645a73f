//! A raw HTTP/2 server on a loopback port (the h2 crate), for tests that decide exactly
//! which frames a stream gets: each accepted connection, once its HTTP/2 handshake is done,
//! goes to `serve` in a task of its own. Aborting the handle stops the server.

use std::future::Future;
use std::net::SocketAddr;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// A server connection, as `serve` gets it.
pub type RawConnection = h2::server::Connection<TcpStream, Bytes>;

pub async fn raw_h2_server<F, Fut>(serve: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(RawConnection) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((socket, _)) = listener.accept().await {
            let Ok(connection) = h2::server::handshake(socket).await else {
                continue;
            };
            connections.spawn(serve(connection));
        }
    });
    (addr, task)
}
