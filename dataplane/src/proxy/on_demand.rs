//! Holding an outbound RPC the held config cannot route yet, for a route configuration that
//! names `vhds` (Envoy's on-demand VHDS): the virtual host for its `:authority` has not
//! arrived, or a cluster its route sends to, or that cluster's endpoints. The RPC waits on
//! the config `watch` — asking the xDS client, over a channel, to subscribe the host's name
//! — until [`ProxyConfig::lookup`] has an answer (a route, no route, not found), for at most
//! [`HOLD_LIMIT`]. What to ask for and when a name counts as answered is decided there, in
//! plain code; this is only the waiting.
//!
//! Concurrent RPCs for one authority each send the name at most once; the xDS client
//! subscribes it once for all of them (`config::OnDemandLookups::demand`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::metrics::VhdsOutcome;
use crate::config::{Lookup, ProxyConfig, RpcTarget};

/// How long an RPC is held, at most, for its virtual host, clusters and endpoints.
pub const HOLD_LIMIT: Duration = Duration::from_secs(5);

/// Names waiting for the xDS client, at most; past it an RPC waits for room (within its
/// hold) rather than queue without bound.
pub const DEMAND_QUEUE: usize = 1024;

/// The data path's end of VHDS: where to ask for names.
#[derive(Debug, Clone)]
pub struct OnDemand {
    demands: mpsc::Sender<String>,
}

/// How holding an RPC ended.
#[derive(Debug)]
pub enum Hold {
    /// The config now says what to do (route, no route, not found): route with it.
    Answered(Arc<ProxyConfig>),
    /// [`HOLD_LIMIT`] passed first.
    TimedOut,
    /// The RPC's own deadline passed first.
    DeadlineExceeded,
}

impl OnDemand {
    /// Asks for names on `demands` (read by `xds::spawn_with_demands`).
    pub fn new(demands: mpsc::Sender<String>) -> Self {
        Self { demands }
    }

    /// The channel for [`Self::new`] and the xDS client.
    pub fn channel() -> (Self, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(DEMAND_QUEUE);
        (Self::new(tx), rx)
    }

    /// Waits until `config` can say what to do with `rpc`, asking for each name the
    /// lookup wants once; gives up after [`HOLD_LIMIT`], or at `rpc_deadline` if sooner.
    pub async fn hold(
        &self,
        mut config: watch::Receiver<Arc<ProxyConfig>>,
        rpc: &RpcTarget<'_>,
        rpc_deadline: Option<Instant>,
    ) -> Hold {
        let limit = Instant::now() + HOLD_LIMIT;
        // The RPC's deadline ends the hold when it comes first: a call held past it would
        // only be failed later.
        let (deadline, ended) = match rpc_deadline {
            Some(at) if at < limit => (at, Hold::DeadlineExceeded),
            _ => (limit, Hold::TimedOut),
        };
        let mut asked: Vec<String> = Vec::new();
        loop {
            let current = config.borrow_and_update().clone();
            let demand = match current.lookup(rpc) {
                Lookup::Wait { demand } => demand,
                _ => return Hold::Answered(current),
            };
            if let Some(name) = demand.filter(|name| !asked.contains(name)) {
                asked.push(name.clone());
                // A closed channel (no xDS client) or a full one past the deadline: the
                // answer cannot come, and the wait below times out.
                let _ = tokio::time::timeout_at(deadline, self.demands.send(name)).await;
            }
            tokio::select! {
                changed = config.changed() => if changed.is_err() {
                    // The xDS client is gone (shutting down): nothing more will arrive.
                    tokio::time::sleep_until(deadline).await;
                    return ended;
                },
                () = tokio::time::sleep_until(deadline) => return ended,
            }
        }
    }
}

/// What a held RPC's lookup came to, for `weft_proxy_vhds_requests_total`: a host
/// answered (whether or not a route of it matched), or none serves the authority.
pub fn outcome(lookup: &Lookup<'_>) -> VhdsOutcome {
    match lookup {
        Lookup::Route(_) | Lookup::NoRoute => VhdsOutcome::Found,
        // Not after an answer: the same config looked up again answers the same.
        Lookup::NotFound | Lookup::Wait { .. } => VhdsOutcome::NotFound,
    }
}

#[cfg(test)]
#[path = "on_demand_tests.rs"]
mod tests;
