//! The open-loop unary load generator (`weft-bench openloop`): calls start on a fixed
//! schedule whatever the replies do, over several HTTP/2 connections (tonic), one 1 KB
//! call each. Starts are paced by tokio's timer, whose resolution is 1 ms: at 1000 rps one
//! call starts each millisecond, at 5000 rps five. Latency runs from a call's start to
//! its reply. (h2load's `--rps` mode was tried first: it reported ~1 ms at 1000 rps for
//! calls that take ~0.1 ms, on this machine.)

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::client::{ClientRun, connect};
use crate::h2load::{PAYLOAD_BYTES, unary_request};
use crate::stats::Percentiles;

/// Calls in flight beyond which a new one is counted as failed instead of started.
const MAX_IN_FLIGHT: usize = 20_000;
/// A call not answered within this is a failure.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `rate` calls per second for `warmup + duration`; calls started after the warm-up
/// are measured.
pub async fn open_loop(
    target: SocketAddr,
    authority: &str,
    rate: u32,
    connections: usize,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<ClientRun> {
    let mut clients = Vec::new();
    for _ in 0..connections.max(1) {
        clients.push(connect(target, authority).await?);
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<Option<f64>>();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let measure_from = start + warmup;
    let total = (f64::from(rate) * (warmup + duration).as_secs_f64()) as u64;
    let mut overload = 0u64;
    let request = unary_request();
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(rate));
        tokio::time::sleep_until(due.into()).await;
        let measured = due >= measure_from;
        if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
            overload += u64::from(measured);
            continue;
        }
        in_flight.fetch_add(1, Ordering::Relaxed);
        let mut client = clients[i as usize % clients.len()].clone();
        let (tx, in_flight, request) = (tx.clone(), in_flight.clone(), request.clone());
        tokio::spawn(async move {
            let sent = Instant::now();
            let result = tokio::time::timeout(CALL_TIMEOUT, client.unary(request)).await;
            let ok =
                matches!(&result, Ok(Ok(reply)) if reply.get_ref().message.len() == PAYLOAD_BYTES);
            in_flight.fetch_sub(1, Ordering::Relaxed);
            if measured {
                let _ = tx.send(ok.then(|| sent.elapsed().as_secs_f64() * 1e6));
            }
        });
    }
    let ended = Instant::now();
    drop(tx);
    let mut latencies = Vec::new();
    let mut errors = overload;
    while let Some(result) = rx.recv().await {
        match result {
            Some(us) => latencies.push(us),
            None => errors += 1,
        }
    }
    let seconds = ended
        .saturating_duration_since(measure_from)
        .as_secs_f64()
        .max(1e-9);
    Ok(ClientRun {
        calls: latencies.len() as u64,
        errors,
        seconds,
        latency: Percentiles::of(&mut latencies),
    })
}
