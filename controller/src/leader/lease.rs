//! The Lease I/O of leader election: reads the Lease every retry period, applies
//! [`decide`](super::decide), and writes with the `resourceVersion` it read, so of two
//! replicas racing for an expired Lease the apiserver lets exactly one win (the other gets
//! 409 Conflict and follows). Leadership is published on a watch channel the status writer
//! reads. Nothing is released on shutdown: a replica killed or stopped is replaced once its
//! Lease expires (one duration plus at most one retry period).

use std::time::{Duration, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use super::{LeaseView, Step, decide, still_leading};

/// Where the Lease lives and who this replica is.
#[derive(Debug, Clone)]
pub struct LeaderSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's identity in the Lease (its pod name in a cluster).
    pub identity: String,
    /// How long a holder's renewal keeps the Lease (its `leaseDurationSeconds`).
    pub duration: Duration,
}

impl LeaderSettings {
    /// How often the Lease is read and renewed: an eighth of the duration (about 2 s for
    /// the default 15 s), so a dead leader is replaced soon after its Lease expires and a
    /// live one renews several times before its renewal could lapse.
    pub fn retry(&self) -> Duration {
        (self.duration / 8).max(Duration::from_millis(250))
    }
}

/// Whether this replica leads now (for the status writer).
#[derive(Debug, Clone)]
pub struct Election(pub watch::Receiver<bool>);

/// Runs the election until the process ends. Returns the [`Election`] to read.
pub fn run(client: Client, settings: LeaderSettings) -> Election {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(elect(client, settings, tx));
    Election(rx)
}

async fn elect(client: Client, settings: LeaderSettings, leading: watch::Sender<bool>) {
    let api: Api<Lease> = Api::namespaced(client, &settings.namespace);
    let mut renewed: Option<SystemTime> = None;
    loop {
        match attempt(&api, &settings).await {
            Ok(Some(at)) => renewed = Some(at),
            Ok(None) => renewed = None,
            Err(err) => {
                tracing::warn!(lease = %settings.name, %err, "cannot read or write the leader Lease")
            }
        }
        let now = SystemTime::now();
        let leads = renewed.is_some_and(|at| still_leading(at, settings.duration, now));
        leading.send_if_modified(|current| {
            if *current == leads {
                return false;
            }
            *current = leads;
            tracing::info!(identity = %settings.identity, leads, "leadership changed");
            eprintln!(
                "weft-controller: {} the status writer (Lease {}/{})",
                if leads { "leading:" } else { "not leading:" },
                settings.namespace,
                settings.name
            );
            true
        });
        tokio::time::sleep(settings.retry()).await;
    }
}

/// One read-decide-write round: `Some(time)` when this replica holds the Lease renewed at
/// `time`, `None` when another replica holds it or won a race.
async fn attempt(
    api: &Api<Lease>,
    settings: &LeaderSettings,
) -> Result<Option<SystemTime>, kube::Error> {
    let existing = api.get_opt(&settings.name).await?;
    let view = existing.as_ref().map(view);
    let now = SystemTime::now();
    let step = decide(view.as_ref(), &settings.identity, now);
    let transitions = view.as_ref().map_or(0, |v| v.transitions);
    let spec = match &step {
        Step::Follow { .. } => return Ok(None),
        Step::Renew => {
            let mut spec = existing
                .as_ref()
                .and_then(|lease| lease.spec.clone())
                .unwrap_or_default();
            spec.renew_time = Some(micro_time(now));
            spec.lease_duration_seconds = Some(seconds(settings.duration));
            spec
        }
        Step::Acquire | Step::TakeOver { .. } => {
            if let Step::TakeOver { from } = &step {
                tracing::info!(%from, "the leader's Lease expired; taking over");
            }
            LeaseSpec {
                holder_identity: Some(settings.identity.clone()),
                lease_duration_seconds: Some(seconds(settings.duration)),
                acquire_time: Some(micro_time(now)),
                renew_time: Some(micro_time(now)),
                lease_transitions: Some(if existing.is_some() {
                    transitions + 1
                } else {
                    0
                }),
                ..LeaseSpec::default()
            }
        }
    };
    let written = match existing {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(settings.name.clone()),
                    namespace: Some(settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(spec),
            };
            api.create(&PostParams::default(), &lease).await
        }
        Some(mut lease) => {
            // Keeps the resourceVersion read above: a concurrent write makes this a 409.
            lease.spec = Some(spec);
            api.replace(&settings.name, &PostParams::default(), &lease)
                .await
        }
    };
    match written {
        Ok(_) => Ok(Some(now)),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
        Err(err) => Err(err),
    }
}

fn view(lease: &Lease) -> LeaseView {
    let spec = lease.spec.clone().unwrap_or_default();
    LeaseView {
        holder: spec.holder_identity,
        renewed: spec.renew_time.map(|MicroTime(at)| SystemTime::from(at)),
        duration: Duration::from_secs(
            spec.lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(15),
        ),
        transitions: spec.lease_transitions.unwrap_or(0),
    }
}

fn micro_time(at: SystemTime) -> MicroTime {
    MicroTime(
        k8s_openapi::jiff::Timestamp::try_from(at)
            .unwrap_or(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    )
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX)
}
