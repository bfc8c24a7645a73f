//! The data-plane benchmark's vocabulary: topologies, workloads, the interleaved schedule
//! of runs, and what one run measured.

use serde::{Deserialize, Serialize};

use crate::stats::Percentiles;

/// Where the client's calls go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TopoId {
    /// T0: client → server.
    Direct,
    /// T1: client → weft-proxy → server.
    WeftHop,
    /// T1: client → Envoy → server.
    EnvoyHop,
    /// T2: client → weft-proxy → weft-proxy (inbound) → server.
    WeftPair,
    /// T2: client → Envoy → Envoy (inbound) → server.
    EnvoyPair,
    /// T2 with mutual TLS between the two weft-proxies (MtlsPolicy `Strict`).
    WeftPairMtls,
    /// T2 with mutual TLS between the two Envoys (certificates over SDS).
    EnvoyPairMtls,
}

impl TopoId {
    pub const ALL: [TopoId; 7] = [
        Self::Direct,
        Self::WeftHop,
        Self::EnvoyHop,
        Self::WeftPair,
        Self::EnvoyPair,
        Self::WeftPairMtls,
        Self::EnvoyPairMtls,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Self::Direct => "T0 direct",
            Self::WeftHop => "T1 weft-proxy",
            Self::EnvoyHop => "T1 Envoy",
            Self::WeftPair => "T2 weft-proxy pair",
            Self::EnvoyPair => "T2 Envoy pair",
            Self::WeftPairMtls => "T2 weft-proxy pair, mTLS",
            Self::EnvoyPairMtls => "T2 Envoy pair, mTLS",
        }
    }

    /// The weft topology an Envoy topology is compared with.
    pub fn weft_peer(self) -> Option<TopoId> {
        match self {
            Self::EnvoyHop => Some(Self::WeftHop),
            Self::EnvoyPair => Some(Self::WeftPair),
            Self::EnvoyPairMtls => Some(Self::WeftPairMtls),
            _ => None,
        }
    }

    /// The Envoy topology a weft topology is compared with.
    pub fn envoy_peer(self) -> Option<TopoId> {
        match self {
            Self::WeftHop => Some(Self::EnvoyHop),
            Self::WeftPair => Some(Self::EnvoyPair),
            Self::WeftPairMtls => Some(Self::EnvoyPairMtls),
            _ => None,
        }
    }
}

/// What the client does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Workload {
    /// Unary 1 KB calls at a fixed total rate (open loop).
    Open(u32),
    /// Unary 1 KB calls, a fixed number in flight, as fast as they complete.
    Closed,
    /// Bidirectional streams, 1 KB each way, one message in flight per stream.
    PingPong,
}

impl Workload {
    pub fn label(self) -> String {
        match self {
            Self::Open(rps) => format!("unary, open loop {rps} rps"),
            Self::Closed => "unary, closed loop (saturation)".into(),
            Self::PingPong => "bidi streaming ping-pong, 1 stream".into(),
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    pub topo: TopoId,
    pub workload: Workload,
    pub round: u32,
    /// Completed calls (or round trips) per second.
    pub rps: f64,
    pub ok: u64,
    pub errors: u64,
    /// Latency per call or round trip (µs).
    pub latency: Option<Percentiles>,
    /// Proxy CPU in cores (CPU seconds per second, all proxies of the topology).
    pub proxy_cores: f64,
    /// Proxy CPU time per call (µs); NaN for T0.
    pub cpu_per_call_us: f64,
    /// Highest RSS during the run (bytes, all proxies of the topology summed).
    pub peak_rss: f64,
    /// CPU (cores) other processes used on the proxy core during the run.
    #[serde(default)]
    pub foreign_cores: f64,
    /// Anything that makes the run suspect (a rate not sustained, errors).
    pub note: Option<String>,
}

/// The order of runs: each round runs every workload on every topology back to back, the
/// topologies rotated by one each round (A B C, B C A, …), so slow drifts of the machine
/// fall on all of them alike.
pub fn schedule(
    rounds: u32,
    workloads: &[Workload],
    topos: &[TopoId],
) -> Vec<(u32, Workload, TopoId)> {
    let mut out = Vec::new();
    for round in 0..rounds {
        for &workload in workloads {
            for i in 0..topos.len() {
                let topo = topos[(i + round as usize) % topos.len()];
                out.push((round, workload, topo));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_interleaves_and_rotates() {
        let topos = [TopoId::Direct, TopoId::WeftHop, TopoId::EnvoyHop];
        let plan = schedule(2, &[Workload::Open(1000), Workload::Closed], &topos);
        assert_eq!(plan.len(), 12);
        let first: Vec<TopoId> = plan[..3].iter().map(|p| p.2).collect();
        assert_eq!(first, topos);
        assert_eq!(plan[3].1, Workload::Closed);
        let second_round: Vec<TopoId> = plan[6..9].iter().map(|p| p.2).collect();
        assert_eq!(
            second_round,
            [TopoId::WeftHop, TopoId::EnvoyHop, TopoId::Direct]
        );
        assert!(plan[6..].iter().all(|p| p.0 == 1));
    }

    #[test]
    fn labels_and_peers() {
        assert_eq!(TopoId::WeftPair.envoy_peer(), Some(TopoId::EnvoyPair));
        assert_eq!(TopoId::Direct.envoy_peer(), None);
        assert_eq!(TopoId::EnvoyHop.weft_peer(), Some(TopoId::WeftHop));
        assert_eq!(Workload::Open(5000).label(), "unary, open loop 5000 rps");
    }
}
