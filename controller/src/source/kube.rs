//! The Kubernetes source: one kube-rs watcher per kind (Service, EndpointSlice, GrpcRoute,
//! FaultInjection, MtlsPolicy, BackendPolicy) writing the shared index.
//!
//! A watch (re)start lists every object again; the listing is buffered and applied with
//! `Index::reset` only when complete (`InitDone`), so a relist after a 410 Gone or an
//! apiserver restart changes only what really changed — never a mass deletion. Errors
//! (apiserver away) are logged and retried with kube-rs's default backoff, and the index
//! keeps its last state meanwhile. `start` returns after every kind's first full listing.

use std::fmt::Debug;
use std::sync::{Arc, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::SharedIndex;
use crate::api::{BackendPolicy, FaultInjection, GrpcRoute, MtlsPolicy};
use crate::model::{Kind, Object};

/// Running watchers; dropping the handle stops them.
#[derive(Debug)]
pub struct KubeSourceHandle {
    revision: watch::Receiver<u64>,
    tasks: Vec<JoinHandle<()>>,
}

impl KubeSourceHandle {
    /// The index revision: it moves on after every write that changed the index.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.clone()
    }
}

impl Drop for KubeSourceHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Starts a watcher per kind and waits until each has listed its objects once.
pub async fn start(client: Client, index: SharedIndex) -> KubeSourceHandle {
    let (revision_tx, mut revision) = watch::channel(0u64);
    let revision_tx = Arc::new(revision_tx);
    let tasks = vec![
        spawn_watcher::<Service>(
            &client,
            Kind::Service,
            Object::Service,
            &index,
            &revision_tx,
        ),
        spawn_watcher::<EndpointSlice>(
            &client,
            Kind::EndpointSlice,
            Object::EndpointSlice,
            &index,
            &revision_tx,
        ),
        spawn_watcher::<GrpcRoute>(
            &client,
            Kind::GrpcRoute,
            Object::GrpcRoute,
            &index,
            &revision_tx,
        ),
        spawn_watcher::<FaultInjection>(
            &client,
            Kind::FaultInjection,
            Object::FaultInjection,
            &index,
            &revision_tx,
        ),
        spawn_watcher::<MtlsPolicy>(
            &client,
            Kind::MtlsPolicy,
            Object::MtlsPolicy,
            &index,
            &revision_tx,
        ),
        spawn_watcher::<BackendPolicy>(
            &client,
            Kind::BackendPolicy,
            Object::BackendPolicy,
            &index,
            &revision_tx,
        ),
    ];
    loop {
        if index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_synced()
        {
            break;
        }
        tracing::info!("waiting for the first full listing of every kind");
        if revision.changed().await.is_err() {
            break;
        }
    }
    KubeSourceHandle {
        revision: revision_tx.subscribe(),
        tasks,
    }
}

fn spawn_watcher<K>(
    client: &Client,
    kind: Kind,
    wrap: fn(K) -> Object,
    index: &SharedIndex,
    revision: &Arc<watch::Sender<u64>>,
) -> JoinHandle<()>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::all(client.clone());
    let (index, revision) = (index.clone(), revision.clone());
    tokio::spawn(async move {
        let mut events = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        let mut listing: Vec<Object> = Vec::new();
        while let Some(event) = events.next().await {
            let event = match event {
                Ok(event) => event,
                Err(err) => {
                    tracing::warn!(kind = kind.name(), %err, "watch failed; retrying, the last state stays in force");
                    continue;
                }
            };
            let mut index_guard = index.lock().unwrap_or_else(PoisonError::into_inner);
            let first_sync = !index_guard.is_synced();
            let change = match event {
                Event::Init => {
                    listing.clear();
                    continue;
                }
                Event::InitApply(object) => {
                    listing.push(wrap(object));
                    continue;
                }
                Event::InitDone => index_guard.reset(kind, std::mem::take(&mut listing)),
                Event::Apply(object) => index_guard.apply(wrap(object)),
                Event::Delete(object) => index_guard.delete(&wrap(object).key()),
            };
            drop(index_guard);
            // Before the first full sync every step is signalled, so `start` sees it.
            if !change.is_empty() || first_sync {
                revision.send_modify(|r| *r += 1);
            }
        }
    })
}
