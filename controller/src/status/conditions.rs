//! Pure status computation: a translation report plus what the connected proxies ACKed and
//! NACKed becomes a resource's `status` (observedGeneration, `Accepted`, `ResolvedRefs`,
//! `Programmed`, proxy counts). A condition keeps its `lastTransitionTime` while its status
//! does not change, so recomputing the same status yields the same object (idempotent writes).

use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::ads::{Nack, Protocol, ProxyStatus, TypeProgress};
use crate::api::{
    CONDITION_ACCEPTED, CONDITION_PROGRAMMED, CONDITION_RESOLVED_REFS, ProxyRejection,
    ProxySummary, ResourceStatus,
};
use crate::translate::{Attachments, ResourceReport, route_config_name};

/// NACK reasons quoted in a status, at most (each at most `ads::MAX_NACK_MESSAGE` bytes,
/// so a status stays a few KB however many proxies reject and however much they say).
const MAX_REJECTIONS: usize = 8;

/// The status a resource should carry now. `previous` supplies transition times.
/// `governed`: for an MtlsPolicy, the node ids of the proxies it governs (those whose
/// inbound listener enforces it); `Programmed` and the proxy counts then count only those,
/// so a policy no proxy enforces is never reported as programmed. `None`: the proxies
/// holding one of the Envoy resources the report's attachments name count (a Delta proxy
/// holds the virtual hosts and clusters of the Services it called; a State-of-the-World
/// proxy its namespace's whole route configuration and every cluster), and only the NACKs
/// naming one of those resources mark it rejected.
pub fn desired_status(
    report: &ResourceReport,
    connected: &[ProxyStatus],
    governed: Option<&BTreeSet<String>>,
    previous: Option<&ResourceStatus>,
    now: &Time,
) -> ResourceStatus {
    let generation = report.generation;
    let accepted = match &report.accepted {
        Ok(()) if report.notes.is_empty() => {
            ("True", "Accepted", "the resource is valid".to_string())
        }
        Ok(()) => (
            "True",
            "Accepted",
            format!("accepted, with notes: {}", report.notes.join("; ")),
        ),
        Err(why) => ("False", "Invalid", why.clone()),
    };
    let resolved = match &report.resolved_refs {
        Ok(()) => (
            "True",
            "ResolvedRefs",
            "every referenced Service exists".to_string(),
        ),
        Err(why) => ("False", "BackendNotFound", why.clone()),
    };
    let attachments = governed.is_none().then_some(&report.attachments);
    let counted: Vec<&ProxyStatus> = connected
        .iter()
        .filter(|proxy| match (governed, attachments) {
            (Some(ids), _) => ids.contains(&proxy.node_id),
            (None, Some(attachments)) => holds(proxy, attachments),
            (None, None) => true,
        })
        .collect();
    let summary = summarize(&counted, attachments);
    let (none, proxies) = match governed {
        None => (
            "no connected proxy holds it (none has called the Services it applies to)",
            "proxies holding it",
        ),
        Some(_) => (
            "no connected proxy enforces this policy (none it selects has an inbound \
             listener and a certificate)",
            "proxies enforcing this policy",
        ),
    };
    let programmed = if report.accepted.is_err() {
        (
            "False",
            "Invalid",
            "not programmed: the resource is invalid (see Accepted)".to_string(),
        )
    } else if summary.total == 0 {
        ("Unknown", "NoProxies", none.to_string())
    } else if summary.nacked > 0 {
        let mut reasons: Vec<String> = summary
            .rejections
            .iter()
            .map(|r| format!("{}: {}", r.proxy, r.reason))
            .collect();
        let unquoted = summary.nacked as usize - summary.rejections.len();
        if unquoted > 0 {
            reasons.push(format!("and {unquoted} more"));
        }
        (
            "False",
            "Rejected",
            format!(
                "{} of {} proxies rejected the config: {}",
                summary.nacked,
                summary.total,
                reasons.join("; ")
            ),
        )
    } else if summary.acked == summary.total {
        (
            "True",
            "Programmed",
            format!(
                "{} of {} {proxies} ACKed the config",
                summary.acked, summary.total
            ),
        )
    } else {
        (
            "False",
            "Pending",
            format!(
                "{} of {} {proxies} ACKed the config so far",
                summary.acked, summary.total
            ),
        )
    };
    let conditions = [
        (CONDITION_ACCEPTED, accepted),
        (CONDITION_RESOLVED_REFS, resolved),
        (CONDITION_PROGRAMMED, programmed),
    ]
    .into_iter()
    .map(|(kind, (status, reason, message))| {
        condition(kind, status, reason, message, generation, previous, now)
    })
    .collect();
    ResourceStatus {
        observed_generation: generation,
        conditions,
        proxies: Some(summary),
    }
}

/// Whether `proxy` holds one of the Envoy resources in `attachments`.
fn holds(proxy: &ProxyStatus, attachments: &Attachments) -> bool {
    match proxy.protocol {
        Protocol::Delta => {
            let held = |ty: &str, names: &[String]| {
                proxy
                    .types
                    .get(ty)
                    .is_some_and(|p| p.held.iter().any(|h| names.iter().any(|n| **n == **h)))
            };
            held("VHDS", &attachments.hosts) || held("CDS", &attachments.clusters)
        }
        Protocol::Sotw => {
            let own = format!("{}/", route_config_name(&proxy.namespace));
            attachments.hosts.iter().any(|h| h.starts_with(&own))
                || !attachments.clusters.is_empty()
        }
    }
}

/// Whether `nack` concerns a resource attached to `attachments` (any NACK does when
/// `None`): it names one of them or a cluster its routes send to, names none (it concerned
/// its whole type), or rejected the route configuration holding one of the hosts.
fn concerns(nack: &Nack, attachments: Option<&Attachments>) -> bool {
    let Some(attachments) = attachments else {
        return true;
    };
    nack.resources.is_empty()
        || nack.resources.iter().any(|name| {
            attachments.clusters.contains(name)
                || attachments.backends.contains(name)
                || attachments.hosts.iter().any(|host| {
                    host == name
                        || host
                            .strip_prefix(name.as_str())
                            .is_some_and(|rest| rest.starts_with('/'))
                })
        })
}

/// Whether `nack` still stands: it is of the version last sent, or (Delta) a resource it
/// named is still rejected, whatever was sent of the type since.
fn in_force(progress: &TypeProgress, nack: &Nack) -> bool {
    progress.sent_version.as_deref() == Some(nack.version.as_str())
        || nack
            .resources
            .iter()
            .any(|name| progress.rejected.iter().any(|r| **r == **name))
}

/// A proxy has the current config when every type it was sent is ACKed at that version; it
/// rejected it when its last NACK still stands and concerns it.
fn summarize(proxies: &[&ProxyStatus], attachments: Option<&Attachments>) -> ProxySummary {
    let mut summary = ProxySummary {
        total: proxies.len() as i32,
        ..Default::default()
    };
    for &proxy in proxies {
        let nack = proxy.types.values().find_map(|p| {
            p.last_nack
                .as_ref()
                .filter(|n| in_force(p, n) && concerns(n, attachments))
        });
        if let Some(nack) = nack {
            summary.nacked += 1;
            if summary.rejections.len() < MAX_REJECTIONS {
                summary.rejections.push(ProxyRejection {
                    proxy: proxy.node_id.clone(),
                    reason: nack.message.clone(),
                });
            }
        } else if !proxy.types.is_empty()
            && proxy.types.values().all(|p| {
                // A type whose last response was rejected over other resources is as
                // current for this one as its last ACK left it.
                p.acked_version == p.sent_version
                    || p.last_nack
                        .as_ref()
                        .is_some_and(|n| in_force(p, n) && !concerns(n, attachments))
            })
        {
            summary.acked += 1;
        }
    }
    summary
}

fn condition(
    kind: &str,
    status: &str,
    reason: &str,
    message: String,
    generation: Option<i64>,
    previous: Option<&ResourceStatus>,
    now: &Time,
) -> Condition {
    let last_transition_time = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == kind))
        .filter(|c| c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    Condition {
        type_: kind.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ads::{Nack, Protocol, TypeProgress};
    use std::collections::BTreeMap;

    const HOST: &str = "outbound/ns/greeter.ns.svc.cluster.local:50051";
    const OTHER_HOST: &str = "outbound/ns/echo.ns.svc.cluster.local:9000";

    /// A report of a route attached to [`HOST`].
    fn report(accepted: Result<(), String>, resolved: Result<(), String>) -> ResourceReport {
        ResourceReport {
            generation: Some(3),
            accepted,
            resolved_refs: resolved,
            notes: vec![],
            attachments: Attachments {
                hosts: vec![HOST.into()],
                clusters: vec![],
                backends: vec!["greeter-v1".into()],
            },
        }
    }

    /// A Delta proxy holding [`HOST`] (VHDS sent and ACKed as given; a NACK, if any, of the
    /// version sent, about [`HOST`]).
    fn proxy(name: &str, sent: &str, acked: &str, nack: Option<&str>) -> ProxyStatus {
        holding(name, &[HOST], sent, acked, nack.map(|m| (m, HOST)))
    }

    fn holding(
        name: &str,
        hosts: &[&str],
        sent: &str,
        acked: &str,
        nack: Option<(&str, &str)>,
    ) -> ProxyStatus {
        let progress = TypeProgress {
            sent_version: Some(sent.into()),
            acked_version: Some(acked.into()),
            last_nack: nack
                .map(|(m, host)| Box::new(Nack::new(sent.into(), m).about([host].into_iter()))),
            held: hosts.iter().map(|h| std::sync::Arc::from(*h)).collect(),
            rejected: nack
                .map(|(_, host)| std::sync::Arc::from(host))
                .into_iter()
                .collect(),
        };
        ProxyStatus {
            node_id: name.into(),
            namespace: "ns".into(),
            protocol: Protocol::Delta,
            connected_at_unix: 0,
            types: BTreeMap::from([("VHDS", progress)]),
            unknown_types: vec![],
            identity: None,
            certificate_expiry_unix: None,
        }
    }

    fn time(secs: i64) -> Time {
        Time(k8s_openapi::jiff::Timestamp::from_second(secs).unwrap())
    }

    fn find<'a>(status: &'a ResourceStatus, kind: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == kind).unwrap()
    }

    #[test]
    fn invalid_resource_says_why_on_accepted() {
        let status = desired_status(
            &report(Err("spec.rules[0]: bad".into()), Ok(())),
            &[],
            None,
            None,
            &time(1),
        );
        let accepted = find(&status, CONDITION_ACCEPTED);
        assert_eq!(
            (accepted.status.as_str(), accepted.reason.as_str()),
            ("False", "Invalid")
        );
        assert_eq!(accepted.message, "spec.rules[0]: bad");
        assert_eq!(find(&status, CONDITION_PROGRAMMED).status, "False");
        assert_eq!(status.observed_generation, Some(3));
    }

    #[test]
    fn a_policy_counts_only_the_proxies_it_governs() {
        let ok = report(Ok(()), Ok(()));
        let connected = [
            proxy("a.ns", "v2", "v2", None),
            proxy("b.ns", "v2", "v1", Some("unrelated")),
        ];
        let governed = BTreeSet::from(["a.ns".to_owned()]);
        let status = desired_status(&ok, &connected, Some(&governed), None, &time(1));
        let programmed = find(&status, CONDITION_PROGRAMMED);
        assert_eq!(programmed.reason, "Programmed");
        assert_eq!(
            programmed.message,
            "1 of 1 proxies enforcing this policy ACKed the config"
        );
        let nobody = desired_status(&ok, &connected, Some(&BTreeSet::new()), None, &time(1));
        let programmed = find(&nobody, CONDITION_PROGRAMMED);
        assert_eq!(
            (programmed.status.as_str(), programmed.reason.as_str()),
            ("Unknown", "NoProxies")
        );
        assert!(
            programmed
                .message
                .contains("no connected proxy enforces this policy")
        );
    }

    #[test]
    fn programmed_counts_acks_and_quotes_nacks() {
        let ok = report(Ok(()), Ok(()));
        let all = desired_status(
            &ok,
            &[
                proxy("a.ns", "v2", "v2", None),
                proxy("b.ns", "v2", "v2", None),
            ],
            None,
            None,
            &time(1),
        );
        assert_eq!(
            find(&all, CONDITION_PROGRAMMED).message,
            "2 of 2 proxies holding it ACKed the config"
        );
        let rejected = desired_status(
            &ok,
            &[proxy("a.ns", "v2", "v1", Some("bad route"))],
            None,
            None,
            &time(1),
        );
        let programmed = find(&rejected, CONDITION_PROGRAMMED);
        assert_eq!(programmed.reason, "Rejected");
        assert!(
            programmed.message.contains("a.ns: bad route"),
            "{}",
            programmed.message
        );
        let pending = desired_status(
            &ok,
            &[proxy("a.ns", "v2", "v1", None)],
            None,
            None,
            &time(1),
        );
        assert_eq!(find(&pending, CONDITION_PROGRAMMED).reason, "Pending");
    }

    #[test]
    fn only_proxies_holding_the_resource_count_and_only_nacks_about_it_reject_it() {
        let ok = report(Ok(()), Ok(()));
        let connected = [
            proxy("a.ns", "v2", "v2", None),
            // Holds another host only: not counted.
            holding("b.ns", &[OTHER_HOST], "v2", "v2", None),
            // Rejected another host it holds besides: still programmed with this one.
            holding(
                "c.ns",
                &[HOST, OTHER_HOST],
                "v3",
                "v2",
                Some(("bad echo", OTHER_HOST)),
            ),
        ];
        let status = desired_status(&ok, &connected, None, None, &time(1));
        assert_eq!(
            find(&status, CONDITION_PROGRAMMED).message,
            "2 of 2 proxies holding it ACKed the config"
        );
        let nobody = desired_status(&ok, &connected[1..2], None, None, &time(1));
        assert_eq!(find(&nobody, CONDITION_PROGRAMMED).reason, "NoProxies");
    }

    #[test]
    fn a_sotw_proxy_holds_the_hosts_of_its_namespace() {
        let ok = report(Ok(()), Ok(()));
        let sotw = |namespace: &str, nacked: Option<&str>| {
            let mut proxy = holding("s", &[], "v2", "v1", None);
            proxy.protocol = Protocol::Sotw;
            proxy.namespace = namespace.into();
            let rds = proxy.types.remove("VHDS").unwrap();
            let nack = nacked
                .map(|name| Box::new(Nack::new("v2".into(), "bad").about([name].into_iter())));
            proxy.types.insert(
                "RDS",
                TypeProgress {
                    held: Default::default(),
                    last_nack: nack,
                    ..rds
                },
            );
            proxy
        };
        let other_ns = desired_status(&ok, &[sotw("elsewhere", None)], None, None, &time(1));
        assert_eq!(find(&other_ns, CONDITION_PROGRAMMED).reason, "NoProxies");
        let rejected = desired_status(
            &ok,
            &[sotw("ns", Some("outbound/ns"))],
            None,
            None,
            &time(1),
        );
        assert_eq!(find(&rejected, CONDITION_PROGRAMMED).reason, "Rejected");
        // A rejected cluster the route sends to concerns it; another one does not.
        let nacked = |name: &str| {
            let status = desired_status(&ok, &[sotw("ns", Some(name))], None, None, &time(1));
            find(&status, CONDITION_PROGRAMMED).reason.clone()
        };
        assert_eq!(nacked("greeter-v1"), "Rejected");
        assert_eq!(
            nacked("echo"),
            "Programmed",
            "a NACK of another cluster leaves this route as current as its last ACK"
        );
    }

    #[test]
    fn many_long_nacks_quote_eight_cut_reasons_and_count_the_rest() {
        let long = "x".repeat(100_000);
        let connected: Vec<ProxyStatus> = (0..20)
            .map(|i| proxy(&format!("p{i:02}.ns"), "v2", "v1", Some(&long)))
            .collect();
        let status = desired_status(&report(Ok(()), Ok(())), &connected, None, None, &time(1));
        let programmed = find(&status, CONDITION_PROGRAMMED);
        assert!(
            programmed
                .message
                .starts_with("20 of 20 proxies rejected the config: p00.ns: xxx"),
            "{}",
            &programmed.message[..80]
        );
        assert!(programmed.message.ends_with("; and 12 more"));
        assert_eq!(programmed.message.matches("bytes in all").count(), 8);
        // Far below the apiserver's 32 KB limit on a condition message.
        assert!(
            programmed.message.len() < 10 * 1024,
            "{}",
            programmed.message.len()
        );
        let summary = status.proxies.unwrap();
        assert_eq!((summary.nacked, summary.rejections.len()), (20, 8));
    }

    #[test]
    fn unchanged_status_keeps_its_transition_time() {
        let ok = report(Ok(()), Err("no Service default/x".into()));
        let first = desired_status(&ok, &[], None, None, &time(1));
        let again = desired_status(&ok, &[], None, Some(&first), &time(99));
        assert_eq!(first, again, "recomputing must be idempotent");
        let fixed = desired_status(&report(Ok(()), Ok(())), &[], None, Some(&first), &time(99));
        assert_eq!(
            find(&fixed, CONDITION_RESOLVED_REFS).last_transition_time,
            time(99)
        );
    }
}
