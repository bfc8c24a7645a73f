//! Kubernetes mode: the pods the injector labelled `weft.dev/sidecar: injected`, watched
//! across namespaces and handed to the registry as members (namespace, labels, pod IP).
//! Every replica watches them, so a replica marks the endpoints of proxies connected to
//! another one. A pod without an IP yet, or finished, is no member. A relist is applied
//! whole when complete; watch errors are retried with kube-rs's backoff and the last
//! members stay meanwhile.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinHandle;

use crate::ads::ProxyRegistry;
use crate::inject::{SIDECAR_INJECTED, SIDECAR_LABEL};
use crate::translate::{Member, Members};

/// The member a pod is, keyed `pod/<namespace>/<name>`; `None` when it has no IP or has
/// finished.
pub fn member_of(pod: &Pod) -> Option<(String, Member)> {
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let pod_ip = status.pod_ip.as_deref()?.parse().ok()?;
    let member = Member {
        namespace: pod.namespace().unwrap_or_default(),
        labels: pod.labels().clone(),
        inbound_addr: None,
        pod_ip: Some(pod_ip),
    };
    Some((key_of(pod), member))
}

fn key_of(pod: &Pod) -> String {
    format!(
        "pod/{}/{}",
        pod.namespace().unwrap_or_default(),
        pod.name_any()
    )
}

/// Watches injected pods into `registry` until the handle is aborted.
pub fn watch(client: Client, registry: Arc<ProxyRegistry>) -> JoinHandle<()> {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().labels(&format!("{SIDECAR_LABEL}={SIDECAR_INJECTED}"));
    tokio::spawn(async move {
        let mut events = watcher::watcher(api, config).default_backoff().boxed();
        let mut listing = Members::new();
        while let Some(event) = events.next().await {
            match event {
                Err(err) => {
                    tracing::warn!(%err, "pod watch failed; retrying, the last members stay");
                }
                Ok(Event::Init) => listing.clear(),
                Ok(Event::InitApply(pod)) => listing.extend(member_of(&pod)),
                Ok(Event::InitDone) => registry.set_pods(std::mem::take(&mut listing)),
                Ok(Event::Apply(pod)) => {
                    registry.update_pod(key_of(&pod), member_of(&pod).map(|(_, member)| member));
                }
                Ok(Event::Delete(pod)) => registry.update_pod(key_of(&pod), None),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(phase: &str, ip: Option<&str>) -> Pod {
        let mut pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "greeter-1", "namespace": "shop",
                          "labels": { "app": "greeter", SIDECAR_LABEL: SIDECAR_INJECTED } },
            "status": { "phase": phase },
        }))
        .unwrap();
        if let Some(status) = pod.status.as_mut() {
            status.pod_ip = ip.map(str::to_owned);
        }
        pod
    }

    #[test]
    fn a_running_pod_with_an_ip_is_a_member() {
        let (key, member) = member_of(&pod("Running", Some("10.0.0.7"))).unwrap();
        assert_eq!(key, "pod/shop/greeter-1");
        assert_eq!(member.namespace, "shop");
        assert_eq!(member.labels["app"], "greeter");
        assert_eq!(member.pod_ip, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(member.inbound_addr, None);
    }

    #[test]
    fn pods_without_an_ip_or_finished_are_not() {
        assert!(member_of(&pod("Pending", None)).is_none());
        assert!(member_of(&pod("Succeeded", Some("10.0.0.7"))).is_none());
        assert!(member_of(&pod("Running", Some("not-an-ip"))).is_none());
    }
}
