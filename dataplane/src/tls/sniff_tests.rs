use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use super::*;
use crate::tls::server_name;
use crate::tls::testca::{ID_A, TestCa};

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The first flight of a real rustls client: a ClientHello record.
fn client_hello() -> Vec<u8> {
    let client = TestCa::new("root").configs(ID_A).client;
    let mut conn = rustls::ClientConnection::new(Arc::clone(&client), server_name()).unwrap();
    let mut bytes = Vec::new();
    conn.write_tls(&mut bytes).unwrap();
    bytes
}

#[test]
fn classifies_first_bytes() {
    let hello = client_hello();
    assert_eq!(&hello[..2], &[0x16, 0x03]);
    assert_eq!(classify(&hello), Some(Transport::Tls));
    assert_eq!(classify(H2_PREFACE), Some(Transport::Plaintext));
    assert_eq!(classify(b"P"), Some(Transport::Plaintext));
    assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Transport::Plaintext));
    assert_eq!(classify(&[0x16]), None);
    assert_eq!(classify(&[]), None);
    assert_eq!(classify(&[0x16, 0x01]), Some(Transport::Plaintext));
}

/// A connected loopback pair: (the accepted side, the client side).
async fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    (accepted, client)
}

#[tokio::test]
async fn detects_tls_and_leaves_the_bytes_unread() {
    let (accepted, mut client) = pair().await;
    let hello = client_hello();
    client.write_all(&hello).await.unwrap();
    let transport = detect(&accepted, Duration::from_secs(5)).await.unwrap();
    assert_eq!(transport, Transport::Tls);
    let mut buf = vec![0u8; hello.len()];
    let mut read = 0;
    while read < buf.len() {
        accepted.readable().await.unwrap();
        match accepted.try_read(&mut buf[read..]) {
            Ok(n) => read += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
            Err(err) => panic!("{err}"),
        }
    }
    assert_eq!(buf, hello);
}

#[tokio::test]
async fn detects_the_http2_preface() {
    let (accepted, mut client) = pair().await;
    client.write_all(H2_PREFACE).await.unwrap();
    let transport = detect(&accepted, Duration::from_secs(5)).await.unwrap();
    assert_eq!(transport, Transport::Plaintext);
}

#[tokio::test]
async fn waits_for_a_byte_that_arrives_late() {
    let (accepted, mut client) = pair().await;
    client.write_all(&[0x16]).await.unwrap();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        client.write_all(&[0x03, 0x01]).await.unwrap();
        client
    });
    let transport = detect(&accepted, Duration::from_secs(5)).await.unwrap();
    assert_eq!(transport, Transport::Tls);
    writer.await.unwrap();
}

#[tokio::test]
async fn a_silent_client_times_out() {
    let (accepted, _client) = pair().await;
    let err = detect(&accepted, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");

    // So does one that sends too little to tell.
    let (accepted, mut client) = pair().await;
    client.write_all(&[0x16]).await.unwrap();
    let err = detect(&accepted, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
}

#[tokio::test]
async fn a_client_that_closes_first_is_an_eof() {
    let (accepted, client) = pair().await;
    drop(client);
    let err = detect(&accepted, Duration::from_secs(5)).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
}
