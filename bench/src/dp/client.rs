//! The rig's gRPC clients of the tests' Echo service (tests/proto/echo.proto): the
//! correctness probe run through each topology before it is measured, and the
//! bidirectional-streaming ping-pong client (h2load cannot hold a stream open both ways).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use weft_tests::backend::pb::echo_client::EchoClient;

use crate::h2load::{PAYLOAD_BYTES, unary_request};
use crate::stats::Percentiles;

/// How long a probe call may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// A client of `target` that names `authority` in every call.
pub async fn connect(target: SocketAddr, authority: &str) -> anyhow::Result<EchoClient<Channel>> {
    let channel = Endpoint::from_shared(format!("http://{target}"))?
        .origin(
            format!("http://{authority}")
                .parse()
                .context("bad authority")?,
        )
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("cannot connect to {target}"))?;
    Ok(EchoClient::new(channel).max_decoding_message_size(16 * 1024 * 1024))
}

/// Makes a few unary calls through `target` and checks each full 1 KB reply came back.
pub async fn probe(target: SocketAddr, authority: &str) -> anyhow::Result<()> {
    let mut client = connect(target, authority).await?;
    for _ in 0..3 {
        let call = tokio::time::timeout(PROBE_TIMEOUT, client.unary(unary_request()));
        let reply = call
            .await
            .with_context(|| format!("unary call through {target} timed out"))?
            .with_context(|| format!("unary call through {target} ({authority}) failed"))?
            .into_inner();
        anyhow::ensure!(
            reply.message.len() == PAYLOAD_BYTES,
            "reply through {target} carried {} bytes, not {PAYLOAD_BYTES}",
            reply.message.len()
        );
    }
    Ok(())
}

/// What one client run (ping-pong or open loop) measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClientRun {
    /// Calls (or round trips) completed in the measured window, failures, and its length.
    pub calls: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Per call or round-trip latency (µs).
    pub latency: Option<Percentiles>,
}

/// `streams` concurrent BidiStream calls on one connection, each sending a 1 KB message
/// and waiting for its echo before sending the next; round trips after `warmup` count.
pub async fn pingpong(
    target: SocketAddr,
    authority: &str,
    streams: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<ClientRun> {
    let client = connect(target, authority).await?;
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let tasks: Vec<_> = (0..streams)
        .map(|_| tokio::spawn(one_stream(client.clone(), measure_from, end)))
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.context("ping-pong task panicked")??);
    }
    Ok(ClientRun {
        calls: latencies.len() as u64,
        errors: 0,
        seconds: duration.as_secs_f64(),
        latency: Percentiles::of(&mut latencies),
    })
}

async fn one_stream(
    mut client: EchoClient<Channel>,
    measure_from: Instant,
    end: Instant,
) -> anyhow::Result<Vec<f64>> {
    let (tx, rx) = mpsc::channel(1);
    let mut inbound = client
        .bidi_stream(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut latencies = Vec::new();
    let request = unary_request();
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        tx.send(request.clone())
            .await
            .context("request stream closed")?;
        let reply = inbound.message().await?.context("stream ended early")?;
        anyhow::ensure!(
            reply.message.len() == PAYLOAD_BYTES,
            "short ping-pong reply"
        );
        if sent >= measure_from {
            latencies.push(sent.elapsed().as_secs_f64() * 1e6);
        }
    }
    drop(tx);
    while inbound.message().await.ok().flatten().is_some() {}
    Ok(latencies)
}
