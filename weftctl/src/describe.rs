//! `weftctl describe <kind>/<name>`: one weft resource as the controller sees it — its
//! conditions (the same the status writer puts on the object), the proxies holding it, their
//! rejections, notes, and the Envoy resources it becomes. Pure: reads the controller's
//! `/debug/resources` and `/debug/proxies` JSON.
//!
//! A proxy holds a resource when it holds one of the Envoy resources the resource becomes:
//! over Delta, a virtual host or cluster among those it subscribed to (`held`); over
//! State-of-the-World, a virtual host of its namespace's `outbound/<ns>` (it gets them all),
//! or any cluster once clusters were sent.

use std::fmt::Write as _;

use anyhow::bail;
use serde_json::Value;

use crate::proxy_status::cell;

/// `(kind as the controller names it, name)` from `<kind>/<name>`; kinds in any case,
/// singular or plural.
pub fn parse_resource(text: &str) -> anyhow::Result<(&'static str, String)> {
    let Some((kind, name)) = text.split_once('/') else {
        bail!("{text:?}: give <kind>/<name>, e.g. grpcroute/greeter");
    };
    let kind = match kind.to_ascii_lowercase().trim_end_matches('s') {
        "grpcroute" => "GrpcRoute",
        "faultinjection" => "FaultInjection",
        "mtlspolicy" | "mtlspolicie" => "MtlsPolicy",
        "backendpolicy" | "backendpolicie" => "BackendPolicy",
        other => bail!(
            "{other:?} is not a weft kind; give grpcroute, faultinjection, mtlspolicy or backendpolicy"
        ),
    };
    if name.is_empty() || name.contains('/') {
        bail!("{text:?}: the name after the kind is missing or has a '/'");
    }
    Ok((kind, name.to_owned()))
}

/// The description, or `None` when no replica knows the resource.
pub fn render(
    kind: &str,
    namespace: &str,
    name: &str,
    resources: &[(String, Value)],
    proxies: &[(String, Value)],
) -> Option<String> {
    let key = format!("{kind} {namespace}/{name}");
    let (_, entry) = resources.iter().find_map(|(from, json)| {
        json["resources"]
            .as_array()?
            .iter()
            .find(|r| r["resource"] == key.as_str())
            .map(|entry| (from, entry))
    })?;
    let mut out = String::new();
    let _ = writeln!(out, "Name:        {name}");
    let _ = writeln!(out, "Namespace:   {namespace}");
    let _ = writeln!(out, "Kind:        {kind}");
    if let Some(generation) = entry["generation"].as_i64() {
        let _ = writeln!(out, "Generation:  {generation}");
    }
    out.push_str("Conditions:\n");
    for (condition, field) in [("Accepted", "accepted"), ("ResolvedRefs", "resolvedRefs")] {
        match &entry[field] {
            Value::Bool(true) => {
                let _ = writeln!(out, "  {condition:<13} True");
            }
            problem => {
                let _ = writeln!(out, "  {condition:<13} False  {}", cell(problem));
            }
        }
    }
    let programmed = &entry["programmed"];
    if !programmed.is_null() {
        let _ = writeln!(
            out,
            "  {:<13} {}  {}  {}",
            "Programmed",
            cell(&programmed["status"]),
            cell(&programmed["reason"]),
            cell(&programmed["message"])
        );
    }

    let becomes = &entry["becomes"];
    let hosts = strings(&becomes["virtualHosts"]);
    let clusters = strings(&becomes["clusters"]);
    let holders = holders(&hosts, &clusters, proxies);
    let counts = &entry["proxies"];
    let _ = writeln!(
        out,
        "Proxies:     {} hold it ({} ACKed, {} NACKed)",
        holders.len(),
        counts["acked"].as_i64().unwrap_or(0),
        counts["nacked"].as_i64().unwrap_or(0)
    );
    for holder in &holders {
        let _ = writeln!(out, "  {holder}");
    }
    for rejection in counts["rejections"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "Rejected by: {}: {}",
            cell(&rejection["proxy"]),
            cell(&rejection["reason"])
        );
    }
    for note in entry["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "Note:        {}", cell(note));
    }
    out.push_str("Becomes:\n");
    let routes_to = strings(&becomes["routesTo"]);
    if hosts.is_empty() && clusters.is_empty() && routes_to.is_empty() {
        out.push_str("  (no Envoy resource)\n");
    }
    for host in &hosts {
        let _ = writeln!(out, "  virtual host  {host}");
    }
    for cluster in &clusters {
        let _ = writeln!(out, "  cluster       {cluster}");
    }
    for cluster in &routes_to {
        let _ = writeln!(out, "  routes to     {cluster}");
    }
    Some(out)
}

/// The proxies (`node (protocol) @ controller`) that hold one of `hosts` or `clusters`.
fn holders(hosts: &[String], clusters: &[String], replicas: &[(String, Value)]) -> Vec<String> {
    let mut holders = Vec::new();
    for (controller, proxies) in replicas {
        for proxy in proxies.as_array().into_iter().flatten() {
            let types = &proxy["types"];
            let delta = proxy["protocol"] == "Delta";
            let holds_host = hosts.iter().any(|host| {
                if delta {
                    strings(&types["VHDS"]["held"]).contains(host)
                } else {
                    let namespace = proxy["namespace"].as_str().unwrap_or_default();
                    host.strip_prefix("outbound/")
                        .and_then(|rest| rest.split_once('/'))
                        .is_some_and(|(ns, _)| ns == namespace)
                        && !types["RDS"]["sent_version"].is_null()
                }
            });
            let holds_cluster = clusters.iter().any(|cluster| {
                if delta {
                    strings(&types["CDS"]["held"]).contains(cluster)
                } else {
                    !types["CDS"]["sent_version"].is_null()
                }
            });
            if holds_host || holds_cluster {
                holders.push(format!(
                    "{} ({}) @ {controller}",
                    cell(&proxy["node_id"]),
                    cell(&proxy["protocol"])
                ));
            }
        }
    }
    holders
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const HOST: &str = "outbound/default/greeter.default.svc.cluster.local:50051";

    #[test]
    fn kinds_are_read_in_any_case_and_number() {
        assert_eq!(
            parse_resource("GrpcRoutes/greeter").unwrap(),
            ("GrpcRoute", "greeter".to_owned())
        );
        assert_eq!(parse_resource("mtlspolicy/strict").unwrap().0, "MtlsPolicy");
        assert_eq!(
            parse_resource("backendpolicies/b").unwrap().0,
            "BackendPolicy"
        );
        let err = parse_resource("service/greeter").unwrap_err().to_string();
        assert!(err.contains("not a weft kind"), "{err}");
        assert!(parse_resource("greeter").is_err());
        assert!(parse_resource("grpcroute/").is_err());
    }

    #[test]
    fn a_description_names_conditions_holders_and_what_it_becomes() {
        let resources = json!({"resources": [{
            "resource": "GrpcRoute default/greeter", "generation": 3,
            "accepted": true, "resolvedRefs": "backendRefs[1]: Service nope not found",
            "programmed": {"status": "True", "reason": "Programmed", "message": "1 of 1 proxies ACKed"},
            "proxies": {"total": 1, "acked": 1, "nacked": 0},
            "notes": ["retry code ABORTED is not retried by Envoy"],
            "becomes": {"virtualHosts": [HOST], "clusters": [],
                        "routesTo": ["outbound|50051||greeter.default.svc.cluster.local"]}
        }]});
        let proxies = json!([
            {"node_id": "a.default", "namespace": "default", "protocol": "Delta",
             "types": {"VHDS": {"sent_version": "1", "held": [HOST]}}},
            {"node_id": "b.default", "namespace": "default", "protocol": "Delta",
             "types": {"VHDS": {"sent_version": "1", "held": []}}},
            {"node_id": "envoy.default", "namespace": "default", "protocol": "Sotw",
             "types": {"RDS": {"sent_version": "1"}}},
            {"node_id": "c.other", "namespace": "other", "protocol": "Sotw",
             "types": {"RDS": {"sent_version": "1"}}}
        ]);
        let out = render(
            "GrpcRoute",
            "default",
            "greeter",
            &[("ctl".into(), resources)],
            &[("ctl".into(), proxies)],
        )
        .unwrap();
        assert!(out.contains("Generation:  3"), "{out}");
        assert!(out.contains("  Accepted      True\n"), "{out}");
        assert!(
            out.contains("  ResolvedRefs  False  backendRefs[1]: Service nope not found\n"),
            "{out}"
        );
        assert!(out.contains("  Programmed    True  Programmed  1 of 1 proxies ACKed"));
        assert!(
            out.contains("Proxies:     2 hold it (1 ACKed, 0 NACKed)"),
            "{out}"
        );
        assert!(out.contains("  a.default (Delta) @ ctl\n  envoy.default (Sotw) @ ctl\n"));
        assert!(
            !out.contains("b.default") && !out.contains("c.other"),
            "{out}"
        );
        assert!(out.contains("Note:        retry code ABORTED"));
        assert!(out.contains(&format!("  virtual host  {HOST}")));
        assert!(out.contains("  routes to     outbound|50051||greeter.default.svc.cluster.local"));
        assert!(render("GrpcRoute", "default", "nope", &[], &[]).is_none());
    }
}
