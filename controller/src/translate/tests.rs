//! Whole-translation properties; each rule has its own tests next to its code.

use super::testutil::{greeters, index, key, objects};
use super::*;
use crate::model::Kind;

const ROUTE_AND_FAULT: &str = "
apiVersion: weft.dev/v1alpha1
kind: GrpcRoute
metadata: {name: greeter, namespace: default, generation: 7}
spec:
  parentRefs: [{name: greeter}]
  rules: [{backendRefs: [{name: greeter-v1, port: 50051}]}]
---
apiVersion: weft.dev/v1alpha1
kind: FaultInjection
metadata: {name: chaos, namespace: default, generation: 2}
spec:
  targetRef: {kind: Service, name: greeter}
  abort: {grpcStatus: UNAVAILABLE, message: boom}
---
apiVersion: weft.dev/v1alpha1
kind: MtlsPolicy
metadata: {name: default, namespace: default}
spec: {mode: Strict}
";

fn all() -> String {
    format!("{}---\n{ROUTE_AND_FAULT}", greeters())
}

#[test]
fn a_cluster_and_endpoints_per_service_port_and_routes_per_namespace() {
    let t = translate(&index(&all()));
    let names = |ty| -> Vec<String> {
        t.snapshot
            .resources(ty)
            .iter()
            .map(|r| r.name.to_string())
            .collect()
    };
    let clusters = [
        "outbound|50051||greeter-v1.default.svc.cluster.local",
        "outbound|50051||greeter-v2.default.svc.cluster.local",
        "outbound|50051||greeter.default.svc.cluster.local",
    ];
    assert_eq!(names(ResourceType::Cluster), clusters);
    assert_eq!(names(ResourceType::Endpoint), clusters);
    assert_eq!(names(ResourceType::Route), ["outbound/default"]);
    assert!(
        t.snapshot.resources(ResourceType::Listener).is_empty(),
        "listeners are per proxy"
    );
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn every_weft_resource_gets_a_report_with_its_generation() {
    let t = translate(&index(&all()));
    let keys: Vec<&ObjectKey> = t.reports.keys().collect();
    assert_eq!(
        keys,
        [
            &key(Kind::GrpcRoute, "default", "greeter"),
            &key(Kind::FaultInjection, "default", "chaos"),
            &key(Kind::MtlsPolicy, "default", "default"),
        ]
    );
    let route = &t.reports[&key(Kind::GrpcRoute, "default", "greeter")];
    assert_eq!(
        route,
        &ResourceReport {
            generation: Some(7),
            attachments: Attachments {
                hosts: vec!["outbound/default/greeter.default.svc.cluster.local:50051".into()],
                clusters: vec![],
                backends: route.attachments.backends.clone(),
            },
            ..ResourceReport::new(None)
        }
    );
    assert!(!route.attachments.backends.is_empty());
    let fault = &t.reports[&key(Kind::FaultInjection, "default", "chaos")];
    assert_eq!(fault.generation, Some(2));
    assert_eq!(fault.attachments.hosts, route.attachments.hosts);
    assert_eq!((&fault.accepted, &fault.resolved_refs), (&Ok(()), &Ok(())));
    assert!(
        fault.notes.is_empty(),
        "Envoy 1.40 sends the abort message: {:?}",
        fault.notes
    );
}

#[test]
fn translation_is_deterministic_whatever_the_order_of_objects() {
    let forward = translate(&index(&all()));
    let mut reversed = crate::model::Index::new();
    for object in objects(&all()).into_iter().rev() {
        reversed.apply(object);
    }
    let backward = translate(&reversed);
    assert_eq!(forward.snapshot, backward.snapshot);
    for _ in 0..5 {
        assert_eq!(
            translate(&index(&all())).snapshot,
            forward.snapshot,
            "maps encode the same each time"
        );
    }
}

#[test]
fn an_empty_index_translates_to_nothing() {
    let t = translate(&crate::model::Index::new());
    for ty in ResourceType::PUSH_ORDER {
        assert!(t.snapshot.resources(ty).is_empty());
    }
    assert!(t.reports.is_empty());
}
