use super::*;
use crate::translate::testutil::{
    DOMAIN, GREETER, clients, greeters, index, route_names, service_yaml,
};
use crate::translate::translate;

fn domains_of(config: &RouteConfiguration) -> Vec<(&str, Vec<&str>)> {
    config
        .virtual_hosts
        .iter()
        .map(|v| {
            (
                v.name.as_str(),
                v.domains.iter().map(String::as_str).collect(),
            )
        })
        .collect()
}

#[test]
fn a_virtual_host_per_service_port_with_every_name_a_client_may_use() {
    let yaml = [
        "apiVersion: v1\nkind: Service\nmetadata: {name: greeter, namespace: default}\n\
         spec: {clusterIP: 10.96.0.10, ports: [{name: grpc, port: 50051}, {name: admin, port: 9000}]}\n"
            .to_string(),
        service_yaml("team-a", "web", &[("http", 8080)]),
    ]
    .join("---\n");
    let t = translate(&index(&yaml));
    let default = t.route_config("default");
    assert_eq!(default.name, "outbound/default");
    assert_eq!(
        domains_of(&default),
        [
            (
                "greeter.default.svc.cluster.local:50051",
                vec![
                    "greeter.default.svc.cluster.local:50051",
                    "greeter.default.svc:50051",
                    "greeter.default:50051",
                    "greeter:50051",
                    "10.96.0.10:50051",
                    "greeter.default.svc.cluster.local",
                    "greeter.default.svc",
                    "greeter.default",
                    "greeter",
                    "10.96.0.10",
                ]
            ),
            (
                "greeter.default.svc.cluster.local:9000",
                vec![
                    "greeter.default.svc.cluster.local:9000",
                    "greeter.default.svc:9000",
                    "greeter.default:9000",
                    "greeter:9000",
                    "10.96.0.10:9000",
                ]
            ),
            (
                "web.team-a.svc.cluster.local:8080",
                vec![
                    "web.team-a.svc.cluster.local:8080",
                    "web.team-a.svc:8080",
                    "web.team-a:8080",
                    "web.team-a.svc.cluster.local",
                    "web.team-a.svc",
                    "web.team-a",
                ]
            ),
        ]
    );
    let team_a = t.route_config("team-a");
    let short: Vec<&str> = domains_of(&team_a)
        .into_iter()
        .flat_map(|(_, d)| d)
        .filter(|d| !d.contains('.'))
        .collect();
    assert_eq!(
        short,
        ["web:8080", "web"],
        "short names only for the client's own namespace"
    );
}

#[test]
fn no_domain_repeats_in_a_route_configuration() {
    // Two Services claiming one cluster IP (possible in local mode): the first keeps it.
    let yaml = ["a", "b"]
        .iter()
        .map(|name| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: default}}\n\
                 spec: {{clusterIP: 10.0.0.1, ports: [{{name: grpc, port: 80}}]}}\n"
            )
        })
        .collect::<Vec<_>>()
        .join("---\n");
    let config = translate(&index(&yaml)).route_config("default");
    let all: Vec<&String> = config
        .virtual_hosts
        .iter()
        .flat_map(|v| &v.domains)
        .collect();
    let unique: HashSet<&String> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "{all:?}");
    assert!(
        config.virtual_hosts[0]
            .domains
            .contains(&"10.0.0.1:80".to_string())
    );
    assert!(
        !config.virtual_hosts[1]
            .domains
            .contains(&"10.0.0.1:80".to_string())
    );
}

#[test]
fn ipv6_cluster_ips_are_bracketed() {
    let yaml = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: default}\n\
                spec: {clusterIP: 'fd00::1', ports: [{name: grpc, port: 80}]}\n";
    let config = translate(&index(yaml)).route_config("default");
    let domains = &config.virtual_hosts[0].domains;
    assert!(domains.contains(&"[fd00::1]:80".to_string()), "{domains:?}");
    assert!(domains.contains(&"[fd00::1]".to_string()), "{domains:?}");
}

#[test]
fn the_default_route_goes_to_the_service_itself() {
    let t = translate(&index(&greeters()));
    let routes = t.routes(GREETER);
    assert_eq!(route_names(&routes), [DEFAULT_ROUTE]);
    let Some(Action::Route(action)) = &routes[0].action else {
        panic!()
    };
    assert_eq!(
        action.cluster_specifier,
        Some(ClusterSpecifier::Cluster(
            "outbound|50051||greeter.default.svc.cluster.local".into()
        ))
    );
    assert_eq!(routes[0].r#match, Some(matching::route_match(None)));
}

#[test]
fn route_configurations_for_service_route_and_client_namespaces() {
    let route = "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {name: r, namespace: team-b}\n\
                 spec:\n  parentRefs: [{name: greeter, namespace: default}]\n  rules:\n  \
                 - backendRefs: [{name: greeter-v1, namespace: default, port: 50051}]\n";
    let index = index(&format!("{}---\n{route}", greeters()));
    let names = |t: crate::translate::Translation| -> Vec<String> {
        t.snapshot
            .resources(crate::ads::ResourceType::Route)
            .iter()
            .map(|r| r.name.to_string())
            .collect()
    };
    assert_eq!(
        names(translate(&index)),
        ["outbound/default", "outbound/team-b"]
    );
    assert_eq!(
        names(crate::translate::translate_for(
            &index,
            &clients(&["team-c", "default"]),
            &crate::translate::Members::new(),
            Some(DOMAIN)
        )),
        ["outbound/default", "outbound/team-b", "outbound/team-c"]
    );
}

#[test]
fn hosts_shared_across_namespaces_keep_each_view_and_prosts_encoding() {
    // greeter (default) seen from default (short names), team-b (a consumer route) and
    // team-c (the shared view); `dup` in team-c claims greeter's cluster IP, so in team-c the
    // shared greeter host comes first and `dup` loses the IP.
    let consumer = "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {name: r, namespace: team-b}\n\
                    spec:\n  parentRefs: [{name: greeter, namespace: default}]\n  rules:\n  \
                    - backendRefs: [{name: greeter, namespace: default, port: 50051}]\n";
    let dup = "apiVersion: v1\nkind: Service\nmetadata: {name: dup, namespace: team-c}\n\
               spec: {clusterIP: 10.96.0.10, ports: [{name: grpc, port: 50051}]}\n";
    let greeter = "apiVersion: v1\nkind: Service\nmetadata: {name: greeter, namespace: default}\n\
                   spec: {clusterIP: 10.96.0.10, ports: [{name: grpc, port: 50051}]}\n";
    let t = translate_for_all(&[greeter, consumer, dup], &["default", "team-b", "team-c"]);
    for resource in t.snapshot.resources(crate::ads::ResourceType::Route).iter() {
        let decoded: RouteConfiguration = crate::translate::testutil::decode(&resource.body);
        assert_eq!(
            decoded.encode_to_vec(),
            resource.body.value,
            "{}: assembled bytes differ from prost's",
            resource.name
        );
    }
    let host = "greeter.default.svc.cluster.local:50051";
    let names = |ns: &str| route_names(&t.vhost(ns, host).routes).join(",");
    assert_eq!(
        names("team-b"),
        "grpcroute:team-b/r:rules[0].matches[0],default"
    );
    assert_eq!(names("team-c"), "default");
    assert!(
        t.vhost("default", host)
            .domains
            .contains(&"greeter".to_string())
    );
    assert!(
        !t.vhost("team-c", host)
            .domains
            .contains(&"greeter".to_string())
    );
    let dup = t.vhost("team-c", "dup.team-c.svc.cluster.local:50051");
    assert!(dup.domains.contains(&"dup".to_string()));
    assert!(
        !dup.domains.iter().any(|d| d.starts_with("10.96.0.10")),
        "{:?}",
        dup.domains
    );
}

fn translate_for_all(yaml: &[&str], namespaces: &[&str]) -> crate::translate::Translation {
    crate::translate::translate_for(
        &index(&yaml.join("---\n")),
        &clients(namespaces),
        &crate::translate::Members::new(),
        Some(DOMAIN),
    )
}
