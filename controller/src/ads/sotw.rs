//! The State-of-the-World ADS protocol for one stream, as plain synchronous logic: requests
//! and new snapshots go in, responses and client events come out.
//!
//! Rules it keeps (xDS protocol, "ACK/NACK and resource type instance version"):
//! - a request whose `response_nonce` is not the latest one sent for its type is stale: its
//!   ACK/NACK and subscription are ignored;
//! - a NACK (`error_detail` set) is recorded and that version is not sent again; the next
//!   different snapshot is;
//! - a response is sent when the subscription changes or the subscribed resources change;
//! - snapshot pushes go out CDS → EDS → LDS → RDS; a cluster removal is held back until the
//!   listeners and routes no longer refer to it (the clusters are first re-sent as the union
//!   of old and new, and the final set goes out after RDS).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};

use super::progress::{ClientEvent, Nack, NonceSource, TypeProgress};
use super::snapshot::{Snapshot, VersionedResource, content_hash};
use super::types::ResourceType;

/// The result of handling one request.
#[derive(Debug, Default)]
pub struct SotwReply {
    pub responses: Vec<DiscoveryResponse>,
    pub events: Vec<ClientEvent>,
}

/// The protocol state of one SotW stream.
#[derive(Debug, Default)]
pub struct SotwStream {
    nonces: NonceSource,
    types: BTreeMap<ResourceType, TypeState>,
}

#[derive(Debug, Default)]
struct TypeState {
    wildcard: bool,
    names: BTreeSet<String>,
    last_nonce: String,
    /// What the client holds after the last response (by name).
    sent: BTreeMap<String, Arc<VersionedResource>>,
    progress: TypeProgress,
}

/// The resources a subscription selects from a snapshot, with their combined version.
struct View {
    version: String,
    resources: BTreeMap<String, Arc<VersionedResource>>,
}

impl View {
    fn new(resources: BTreeMap<String, Arc<VersionedResource>>) -> Self {
        let version = content_hash(
            resources
                .values()
                .flat_map(|r| [r.name.as_bytes(), r.version.as_bytes()]),
        );
        Self { version, resources }
    }
}

impl TypeState {
    fn view(&self, ty: ResourceType, snapshot: &Snapshot) -> View {
        let all = snapshot.resources(ty);
        let resources = if self.wildcard {
            all.iter().map(|r| (r.name.clone(), r.clone())).collect()
        } else {
            self.names
                .iter()
                .filter_map(|n| all.get(n).map(|r| (n.clone(), r.clone())))
                .collect()
        };
        View::new(resources)
    }

    /// True when `version` differs from what was sent and was not rejected.
    fn worth_sending(&self, version: &str) -> bool {
        let nacked = self
            .progress
            .last_nack
            .as_ref()
            .is_some_and(|n| n.version == version);
        self.progress.sent_version.as_deref() != Some(version) && !nacked
    }
}

impl SotwStream {
    pub fn new() -> Self {
        Self::default()
    }

    /// Per-type progress, for debug output and status.
    pub fn progress(&self) -> impl Iterator<Item = (ResourceType, &TypeProgress)> {
        self.types.iter().map(|(ty, st)| (*ty, &st.progress))
    }

    /// Handles one client request against the snapshot currently served.
    pub fn handle_request(&mut self, req: &DiscoveryRequest, snapshot: &Snapshot) -> SotwReply {
        let mut reply = SotwReply::default();
        let Some(ty) = ResourceType::from_type_url(&req.type_url) else {
            reply.events.push(ClientEvent::UnknownType {
                type_url: req.type_url.clone(),
            });
            return reply;
        };
        let first = !self.types.contains_key(&ty);
        let st = self.types.entry(ty).or_default();

        if !req.response_nonce.is_empty() {
            if req.response_nonce != st.last_nonce {
                reply.events.push(ClientEvent::StaleNonce {
                    ty,
                    nonce: req.response_nonce.clone(),
                });
                return reply;
            }
            match &req.error_detail {
                Some(error) => {
                    let nack = Nack {
                        version: st.progress.sent_version.clone().unwrap_or_default(),
                        message: error.message.clone(),
                    };
                    st.progress.last_nack = Some(nack.clone());
                    reply.events.push(ClientEvent::Nack { ty, nack });
                }
                None => {
                    st.progress.acked_version = Some(req.version_info.clone());
                    reply.events.push(ClientEvent::Ack {
                        ty,
                        version: req.version_info.clone(),
                    });
                }
            }
        }

        let wildcard = (req.resource_names.is_empty() && ty.empty_means_wildcard())
            || req.resource_names.iter().any(|n| n == "*");
        let names: BTreeSet<String> = req
            .resource_names
            .iter()
            .filter(|n| *n != "*")
            .cloned()
            .collect();
        let subscription_changed = first || wildcard != st.wildcard || names != st.names;
        st.wildcard = wildcard;
        st.names = names;

        let view = st.view(ty, snapshot);
        if subscription_changed || st.worth_sending(&view.version) {
            reply
                .responses
                .push(respond(ty, st, view, &mut self.nonces));
        }
        reply
    }

    /// Pushes what changed in `snapshot` to the types this stream subscribed to, in
    /// make-before-break order.
    pub fn handle_snapshot(&mut self, snapshot: &Snapshot) -> Vec<DiscoveryResponse> {
        let mut upserts = Vec::new();
        let mut deferred_removals = Vec::new();
        for ty in ResourceType::PUSH_ORDER {
            let Some(st) = self.types.get_mut(&ty) else {
                continue;
            };
            let view = st.view(ty, snapshot);
            if !st.worth_sending(&view.version) {
                continue;
            }
            let removes_clusters = ty == ResourceType::Cluster
                && st
                    .sent
                    .keys()
                    .any(|name| !view.resources.contains_key(name));
            if removes_clusters {
                // Old and new clusters together first; the final set after the routes.
                let mut union = st.sent.clone();
                union.extend(view.resources.iter().map(|(n, r)| (n.clone(), r.clone())));
                upserts.push(respond(ty, st, View::new(union), &mut self.nonces));
                deferred_removals.push((ty, view));
            } else {
                upserts.push(respond(ty, st, view, &mut self.nonces));
            }
        }
        for (ty, view) in deferred_removals {
            if let Some(st) = self.types.get_mut(&ty) {
                upserts.push(respond(ty, st, view, &mut self.nonces));
            }
        }
        upserts
    }
}

fn respond(
    ty: ResourceType,
    st: &mut TypeState,
    view: View,
    nonces: &mut NonceSource,
) -> DiscoveryResponse {
    let (_, nonce) = nonces.next();
    st.last_nonce = nonce.clone();
    st.progress.sent_version = Some(view.version.clone());
    let response = DiscoveryResponse {
        version_info: view.version,
        resources: view.resources.values().map(|r| r.body.clone()).collect(),
        type_url: ty.type_url().to_string(),
        nonce,
        ..Default::default()
    };
    st.sent = view.resources;
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ads::snapshot::tests::snapshot;
    use ResourceType::{Cluster, Endpoint, Listener, Route};
    use envoy_types::pb::google::rpc::Status;

    fn request(ty: ResourceType, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            type_url: ty.type_url().into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            version_info: version.into(),
            response_nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn nack(ty: ResourceType, version: &str, nonce: &str, message: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            error_detail: Some(Status {
                code: 3,
                message: message.into(),
                details: vec![],
            }),
            ..request(ty, &[], version, nonce)
        }
    }

    fn names(response: &DiscoveryResponse) -> Vec<String> {
        response
            .resources
            .iter()
            .map(|any| String::from_utf8_lossy(&any.value).into_owned())
            .collect()
    }

    #[test]
    fn first_request_gets_the_whole_wildcard_type() {
        let snap = snapshot(&[
            (Cluster, "a", "a1"),
            (Cluster, "b", "b1"),
            (Route, "r", "r1"),
        ]);
        let mut stream = SotwStream::new();
        let reply = stream.handle_request(&request(Cluster, &[], "", ""), &snap);
        assert_eq!(reply.responses.len(), 1);
        let response = &reply.responses[0];
        assert_eq!(response.type_url, Cluster.type_url());
        assert_eq!(names(response), ["a1", "b1"]);
        assert!(!response.nonce.is_empty() && !response.version_info.is_empty());
        assert!(reply.events.is_empty());
    }

    #[test]
    fn named_types_send_only_what_is_asked_and_an_empty_first_reply() {
        let snap = snapshot(&[(Endpoint, "a", "a1"), (Endpoint, "b", "b1")]);
        let mut stream = SotwStream::new();
        let reply = stream.handle_request(&request(Endpoint, &["b"], "", ""), &snap);
        assert_eq!(names(&reply.responses[0]), ["b1"]);
        let mut other = SotwStream::new();
        let reply = other.handle_request(&request(Route, &[], "", ""), &snap);
        assert_eq!(
            reply.responses.len(),
            1,
            "a first request is always answered"
        );
        assert!(reply.responses[0].resources.is_empty());
    }

    #[test]
    fn ack_is_recorded_and_sends_nothing() {
        let snap = snapshot(&[(Cluster, "a", "a1")]);
        let mut stream = SotwStream::new();
        let first = stream
            .handle_request(&request(Cluster, &[], "", ""), &snap)
            .responses
            .remove(0);
        let reply = stream.handle_request(
            &request(Cluster, &[], &first.version_info, &first.nonce),
            &snap,
        );
        assert!(reply.responses.is_empty());
        assert_eq!(
            reply.events,
            [ClientEvent::Ack {
                ty: Cluster,
                version: first.version_info.clone()
            }]
        );
        let progress: Vec<_> = stream.progress().collect();
        assert_eq!(
            progress[0].1.acked_version.as_deref(),
            Some(first.version_info.as_str())
        );
    }

    #[test]
    fn nacked_version_is_not_resent_but_the_next_one_is() {
        let bad = snapshot(&[(Cluster, "a", "bad")]);
        let mut stream = SotwStream::new();
        let first = stream
            .handle_request(&request(Cluster, &[], "", ""), &bad)
            .responses
            .remove(0);
        let reply = stream.handle_request(&nack(Cluster, "", &first.nonce, "bad cluster"), &bad);
        assert!(
            reply.responses.is_empty(),
            "a NACKed version must not be re-sent"
        );
        assert_eq!(
            reply.events,
            [ClientEvent::Nack {
                ty: Cluster,
                nack: Nack {
                    version: first.version_info.clone(),
                    message: "bad cluster".into()
                }
            }]
        );
        // The same snapshot published again changes nothing.
        assert!(stream.handle_snapshot(&bad).is_empty());
        let good = snapshot(&[(Cluster, "a", "good")]);
        let pushed = stream.handle_snapshot(&good);
        assert_eq!(pushed.len(), 1);
        assert_eq!(names(&pushed[0]), ["good"]);
    }

    #[test]
    fn stale_nonce_is_ignored() {
        let snap = snapshot(&[(Cluster, "a", "a1")]);
        let mut stream = SotwStream::new();
        let first = stream
            .handle_request(&request(Cluster, &[], "", ""), &snap)
            .responses
            .remove(0);
        let second = stream
            .handle_snapshot(&snapshot(&[(Cluster, "a", "a2")]))
            .remove(0);
        // The client NACKs the first response after the second went out: stale.
        let reply = stream.handle_request(&nack(Cluster, "", &first.nonce, "late"), &snap);
        assert!(reply.responses.is_empty());
        assert_eq!(
            reply.events,
            [ClientEvent::StaleNonce {
                ty: Cluster,
                nonce: first.nonce.clone()
            }]
        );
        assert!(stream.progress().all(|(_, p)| p.last_nack.is_none()));
        assert_eq!(
            second.version_info,
            stream
                .progress()
                .next()
                .unwrap()
                .1
                .sent_version
                .clone()
                .unwrap()
        );
    }

    #[test]
    fn subscription_change_is_answered() {
        let snap = snapshot(&[(Endpoint, "a", "a1"), (Endpoint, "b", "b1")]);
        let mut stream = SotwStream::new();
        let first = stream
            .handle_request(&request(Endpoint, &["a"], "", ""), &snap)
            .responses
            .remove(0);
        let reply = stream.handle_request(
            &request(Endpoint, &["a", "b"], &first.version_info, &first.nonce),
            &snap,
        );
        assert_eq!(names(&reply.responses[0]), ["a1", "b1"]);
    }

    #[test]
    fn snapshot_push_is_ordered_and_skips_unchanged_types() {
        let old = snapshot(&[
            (Cluster, "c", "c1"),
            (Endpoint, "c", "e1"),
            (Listener, "l", "l1"),
            (Route, "r", "r1"),
        ]);
        let mut stream = SotwStream::new();
        for (ty, names) in [
            (Route, vec!["r"]),
            (Listener, vec![]),
            (Endpoint, vec!["c"]),
            (Cluster, vec![]),
        ] {
            stream.handle_request(&request(ty, &names, "", ""), &old);
        }
        let new = snapshot(&[
            (Cluster, "c", "c2"),
            (Endpoint, "c", "e1"),
            (Listener, "l", "l2"),
            (Route, "r", "r2"),
        ]);
        let pushed = stream.handle_snapshot(&new);
        let order: Vec<_> = pushed
            .iter()
            .map(|r| ResourceType::from_type_url(&r.type_url).unwrap())
            .collect();
        assert_eq!(
            order,
            [Cluster, Listener, Route],
            "EDS did not change and is not sent"
        );
    }

    #[test]
    fn cluster_removal_waits_until_routes_moved() {
        let old = snapshot(&[(Cluster, "old", "old"), (Route, "r", "to-old")]);
        let mut stream = SotwStream::new();
        stream.handle_request(&request(Cluster, &[], "", ""), &old);
        stream.handle_request(&request(Route, &["r"], "", ""), &old);
        let new = snapshot(&[(Cluster, "new", "new"), (Route, "r", "to-new")]);
        let pushed = stream.handle_snapshot(&new);
        let summary: Vec<_> = pushed
            .iter()
            .map(|r| (ResourceType::from_type_url(&r.type_url).unwrap(), names(r)))
            .collect();
        assert_eq!(
            summary,
            [
                (Cluster, vec!["new".to_string(), "old".to_string()]),
                (Route, vec!["to-new".to_string()]),
                (Cluster, vec!["new".to_string()]),
            ]
        );
    }

    #[test]
    fn reconnect_is_a_fresh_stream_that_gets_everything_again() {
        let snap = snapshot(&[(Cluster, "a", "a1")]);
        let mut stream = SotwStream::new();
        let first = stream
            .handle_request(&request(Cluster, &[], "", ""), &snap)
            .responses
            .remove(0);
        // The client reconnects and presents the version it holds; SotW resends state.
        let mut again = SotwStream::new();
        let reply = again.handle_request(&request(Cluster, &[], &first.version_info, ""), &snap);
        assert_eq!(reply.responses.len(), 1);
        assert_eq!(reply.responses[0].version_info, first.version_info);
    }

    #[test]
    fn removal_of_everything_sends_an_empty_wildcard_set() {
        let snap = snapshot(&[(Listener, "l", "l1")]);
        let mut stream = SotwStream::new();
        stream.handle_request(&request(Listener, &[], "", ""), &snap);
        let pushed = stream.handle_snapshot(&snapshot(&[]));
        assert_eq!(pushed.len(), 1);
        assert!(pushed[0].resources.is_empty());
    }

    #[test]
    fn unknown_type_is_reported_and_ignored() {
        let mut stream = SotwStream::new();
        let req = DiscoveryRequest {
            type_url: "type.googleapis.com/x.Unknown".into(),
            ..Default::default()
        };
        let reply = stream.handle_request(&req, &snapshot(&[]));
        assert!(reply.responses.is_empty());
        assert_eq!(
            reply.events,
            [ClientEvent::UnknownType {
                type_url: req.type_url.clone()
            }]
        );
    }
}
