//! HTTP/2 abuse against weft-proxy's outbound listener, each from a raw TCP client writing
//! frames by hand: rapid reset (HEADERS then RST_STREAM, over and over), a CONTINUATION
//! flood (a header block that never ends), an oversized header list, and SETTINGS and PING
//! floods. For each, the proxy must survive and a well-behaved client on another connection
//! must keep getting answers while the abuse goes on, and the abuse is bounded: the proxy
//! closes the connection (rapid reset, CONTINUATION flood, oversized headers), or, for
//! control-frame floods that it answers, stops reading while its answers wait for a client
//! that never reads them — its memory grows by less than [`RSS_BOUND_KB`] either way.
//! Then the listener's bounds on what a client may hold: the connection cap, the handshake
//! timeout and the idle timeout.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use weft_tests::backend::Backend;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_TYPES: (u8, u8, u8, u8, u8) = (0x1, 0x3, 0x4, 0x6, 0x9); // HEADERS, RST_STREAM, SETTINGS, PING, CONTINUATION
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
/// How much the proxy's resident memory may grow during one abuse.
const RSS_BOUND_KB: u64 = 16 * 1024;
/// How long one abuse goes on, at most.
const ABUSE_FOR: Duration = Duration::from_secs(3);

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A request header block (HPACK, static table): POST, http, `/`, `:authority: a`, then
/// `extra` literal bytes.
fn request_block(extra: &[u8]) -> Vec<u8> {
    let mut block = vec![0x83, 0x86, 0x84, 0x01, 0x01, b'a'];
    block.extend_from_slice(extra);
    block
}

/// Which abuse a raw connection commits; `round` counts up from 0.
#[derive(Debug, Clone, Copy)]
enum Abuse {
    RapidReset,
    ContinuationFlood,
    OversizedHeaders,
    SettingsFlood,
    PingFlood,
}

impl Abuse {
    /// Whether the proxy is expected to close the abusive connection.
    fn is_closed_by_the_proxy(self) -> bool {
        matches!(
            self,
            Abuse::RapidReset | Abuse::ContinuationFlood | Abuse::OversizedHeaders
        )
    }

    /// The bytes of round `round` (after the preface and an empty SETTINGS).
    fn round(self, round: u32) -> Vec<u8> {
        let (headers, rst, settings, ping, continuation) = FRAME_TYPES;
        match self {
            Abuse::RapidReset => {
                let stream = 1 + 2 * round;
                let mut out = frame(
                    headers,
                    END_HEADERS | END_STREAM,
                    stream,
                    &request_block(&[]),
                );
                out.extend(frame(rst, 0, stream, &8u32.to_be_bytes())); // CANCEL
                out
            }
            Abuse::ContinuationFlood if round == 0 => frame(headers, 0, 1, &request_block(&[])),
            // Literal header fields without indexing, new name "x", 100-byte values.
            Abuse::ContinuationFlood => {
                let mut field = vec![0x00, 0x01, b'x', 100];
                field.extend(std::iter::repeat_n(b'v', 100));
                frame(continuation, 0, 1, &field.repeat(10))
            }
            Abuse::OversizedHeaders => {
                let stream = 1 + 2 * round;
                // 200 fields of 1 KB each: 200 KB, over the proxy's 64 KB list limit.
                let mut field = vec![0x00, 0x01, b'x', 0x7f, 0x81, 0x07]; // 1024 = 127 + 897
                field.extend(std::iter::repeat_n(b'v', 1024));
                let block = request_block(&field.repeat(200));
                let mut out = frame(headers, END_STREAM, stream, &block[..16_000]);
                for (i, chunk) in block[16_000..].chunks(16_000).enumerate() {
                    let last = 16_000 + (i + 1) * 16_000 >= block.len();
                    let flags = if last { END_HEADERS } else { 0 };
                    out.extend(frame(continuation, flags, stream, chunk));
                }
                out
            }
            Abuse::SettingsFlood => frame(settings, 0, 0, &[0, 4, 0, 1, 0, 0]), // INITIAL_WINDOW_SIZE
            Abuse::PingFlood => frame(ping, 0, 0, &u64::from(round).to_be_bytes()),
        }
    }
}

/// Commits `abuse` on a fresh connection to `port` for at most [`ABUSE_FOR`], never
/// reading what the proxy sends (so its replies pile up as they would for an attacker).
/// Returns whether the proxy closed the connection (a write failed) and how many rounds went
/// out.
async fn commit(abuse: Abuse, port: u16) -> (bool, u32) {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    socket.write_all(PREFACE).await.unwrap();
    socket
        .write_all(&frame(FRAME_TYPES.2, 0, 0, &[]))
        .await
        .unwrap();
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < ABUSE_FOR && round < 200_000 {
        let bytes = abuse.round(round);
        let write = tokio::time::timeout(Duration::from_millis(500), socket.write_all(&bytes));
        match write.await {
            Ok(Ok(())) => round += 1,
            Ok(Err(_)) => return (true, round), // reset by the proxy
            Err(_) => break,                    // the proxy stopped reading: flow-controlled
        }
    }
    // Closed by the proxy if reading now ends (after whatever it sent) within a second.
    let closed = closed_within(&mut socket, Duration::from_secs(1)).await;
    (closed, round)
}

/// A controller and one proxy (`options`) whose Service greeter is a tonic backend, once
/// the proxy holds the greeter's endpoint.
async fn proxy_in_front_of_greeter(options: ProxyOptions) -> (Mesh, Backend) {
    let backend = Backend::start("greeter").await.unwrap();
    let mut mesh = Mesh::new();
    mesh.write("services.yaml", &service_yaml("greeter", &[backend.addr()]));
    blocking(|| {
        mesh.start_controller();
        mesh.start_proxy(options);
        mesh.proxy(0).wait_config("the greeter", |dump| {
            endpoints_of(dump, "greeter").len() == 1
        });
    });
    (mesh, backend)
}

/// The resident memory of process `pid`, in KB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_survives_abuse_and_other_clients_keep_their_answers() {
    let (mesh, _backend) = proxy_in_front_of_greeter(ProxyOptions::new("client-0")).await;
    let port = mesh.proxy(0).outbound.port();
    let mut good = client(port, GREETER).await;
    for abuse in [
        Abuse::RapidReset,
        Abuse::ContinuationFlood,
        Abuse::OversizedHeaders,
        Abuse::SettingsFlood,
        Abuse::PingFlood,
    ] {
        let pid = mesh.proxy(0).process.pid();
        let rss_before = rss_kb(pid);
        let attack = tokio::spawn(commit(abuse, port));
        // A well-behaved client's calls while the abuse goes on: every one answered in time.
        let mut answered = 0;
        while !attack.is_finished() {
            let reply = unary(&mut good, request("still there"), Duration::from_secs(2)).await;
            let reply =
                reply.unwrap_or_else(|status| panic!("{abuse:?}: a good call failed: {status:?}"));
            assert_eq!(reply.instance, "greeter");
            answered += 1;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (closed, rounds) = attack.await.unwrap();
        let grown = rss_kb(pid).saturating_sub(rss_before);
        assert!(
            grown < RSS_BOUND_KB,
            "{abuse:?}: the proxy's memory grew by {grown} KB"
        );
        if abuse.is_closed_by_the_proxy() {
            assert!(
                closed,
                "{abuse:?}: the proxy kept the abusive connection after {rounds} rounds"
            );
        }
        // Still alive and answering after it.
        let reply = unary(&mut good, request("after"), Duration::from_secs(2)).await;
        assert!(
            reply.is_ok(),
            "{abuse:?}: no answer after the abuse: {reply:?}"
        );
        blocking(|| mesh.proxy(0).metrics());
        println!(
            "{abuse:?}: {rounds} rounds sent; the proxy {} the connection; memory +{grown} KB; {answered} good calls answered meanwhile",
            if closed { "closed" } else { "kept" }
        );
    }
}

/// Whether the proxy closes `socket` within `within` (reads end), whatever it sent first.
async fn closed_within(socket: &mut TcpStream, within: Duration) -> bool {
    let mut sink = vec![0u8; 16 * 1024];
    tokio::time::timeout(within, async {
        loop {
            match socket.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .is_ok()
}

/// A raw connection that has sent the preface and an empty SETTINGS, then nothing (a
/// connection the proxy closed at once may fail the writes; reading tells).
async fn handshaken(port: u16) -> TcpStream {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut hello = PREFACE.to_vec();
    hello.extend(frame(FRAME_TYPES.2, 0, 0, &[]));
    let _ = socket.write_all(&hello).await;
    socket
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_and_timed_out_before_the_handshake_and_when_idle() {
    let options = ProxyOptions::new("client-0")
        .arg("--max-connections=3")
        .arg("--handshake-timeout=1s")
        .arg("--idle-timeout=2s");
    let (mesh, _backend) = proxy_in_front_of_greeter(options).await;
    let port = mesh.proxy(0).outbound.port();

    // Handshake: silence is closed after about a second; a preface keeps the connection.
    let mut silent = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let started = Instant::now();
    assert!(
        closed_within(&mut silent, Duration::from_secs(5)).await,
        "a silent client was kept"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "closed after {took:?}, before the timeout"
    );
    let mut greeted = handshaken(port).await;
    assert!(
        !closed_within(&mut greeted, Duration::from_millis(1500)).await,
        "a client that sent the preface was closed by the handshake timeout"
    );

    // Idle: a connection with no new request for 2 s gets a GOAWAY; the client's next call
    // goes on a new connection and succeeds.
    let (mut good, connections) = counted_client(port, GREETER).await;
    unary(&mut good, request("first"), Duration::from_secs(2))
        .await
        .unwrap();
    let opened = connections.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    unary(&mut good, request("after idle"), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        opened + 1,
        "the idle connection was not closed"
    );
    assert!(
        closed_within(&mut greeted, Duration::from_secs(2)).await,
        "an idle raw connection was kept"
    );

    // Cap: three connections are held; a fourth is closed at once.
    let held = [
        handshaken(port).await,
        handshaken(port).await,
        handshaken(port).await,
    ];
    let mut fourth = handshaken(port).await;
    assert!(
        closed_within(&mut fourth, Duration::from_millis(500)).await,
        "a fourth connection was accepted over the cap of 3"
    );
    drop(held);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut after = handshaken(port).await;
    assert!(
        !closed_within(&mut after, Duration::from_millis(500)).await,
        "a connection was refused after the others closed"
    );
}
