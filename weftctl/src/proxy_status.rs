//! `weftctl proxy-status`: every proxy connected to the controller (every replica, in
//! Kubernetes), and per xDS type whether it holds what was sent, as `istioctl proxy-status`
//! shows it. Rendering is pure: it reads the controller's `/debug/proxies` JSON.
//!
//! Per type: `SYNCED` (the proxy ACKed the version last sent), `STALE` (a response is not
//! ACKed yet), `NACKED` (the proxy rejected the latest response, or — over Delta — still
//! rejects some resources of the type), `-` (nothing of the type was sent).

use std::fmt::Write as _;

use serde_json::Value;

/// The columns, in the order Envoy subscribes.
pub const TYPES: [&str; 6] = ["CDS", "LDS", "EDS", "RDS", "VHDS", "SDS"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeState {
    Synced,
    Stale,
    Nacked,
    NotSent,
}

impl TypeState {
    pub fn label(self) -> &'static str {
        match self {
            Self::Synced => "SYNCED",
            Self::Stale => "STALE",
            Self::Nacked => "NACKED",
            Self::NotSent => "-",
        }
    }
}

/// The state of one type's progress (`/debug/proxies`' `types.<TYPE>`).
pub fn type_state(progress: &Value) -> TypeState {
    let sent = &progress["sent_version"];
    if sent.is_null() {
        return TypeState::NotSent;
    }
    let rejects_some = progress["rejected"]
        .as_array()
        .is_some_and(|r| !r.is_empty());
    let acked = &progress["acked_version"] == sent;
    if rejects_some || (!progress["last_nack"].is_null() && !acked) {
        TypeState::Nacked
    } else if acked {
        TypeState::Synced
    } else {
        TypeState::Stale
    }
}

/// The table, then one line per NACK in force with its reason.
pub fn render(replicas: &[(String, Value)]) -> String {
    let mut rows = vec![
        ["NAME", "NAMESPACE", "PROTOCOL"]
            .into_iter()
            .chain(TYPES)
            .chain(["IDENTITY", "CONTROLLER"])
            .map(str::to_owned)
            .collect::<Vec<_>>(),
    ];
    let mut nacks = Vec::new();
    for (controller, proxies) in replicas {
        for proxy in proxies.as_array().into_iter().flatten() {
            let name = cell(&proxy["node_id"]);
            let mut row = vec![
                name.clone(),
                cell(&proxy["namespace"]),
                cell(&proxy["protocol"]),
            ];
            for ty in TYPES {
                let progress = &proxy["types"][ty];
                let state = type_state(progress);
                row.push(state.label().to_owned());
                if state == TypeState::Nacked {
                    let nack = &progress["last_nack"];
                    let resources = nack["resources"]
                        .as_array()
                        .map(|r| r.iter().map(cell).collect::<Vec<_>>().join(", "))
                        .filter(|r| !r.is_empty())
                        .map(|r| format!(" [{r}]"))
                        .unwrap_or_default();
                    nacks.push(format!(
                        "{name} NACKED {ty} version {}{resources}: {}",
                        cell(&nack["version"]),
                        cell(&nack["message"])
                    ));
                }
            }
            row.push(proxy["identity"].as_str().unwrap_or("-").to_owned());
            row.push(controller.clone());
            rows.push(row);
        }
    }
    let mut out = table(&rows);
    if rows.len() == 1 {
        out.push_str("(no proxy is connected)\n");
    }
    for nack in nacks {
        out.push('\n');
        out.push_str(&nack);
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

/// A JSON value as a table cell: a string bare, null as `-`, anything else as JSON.
pub fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// Left-aligned columns separated by two spaces.
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|cell| cell.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn states_follow_sent_acked_and_nacks() {
        assert_eq!(type_state(&json!(null)), TypeState::NotSent);
        assert_eq!(
            type_state(&json!({"sent_version": "a", "acked_version": "a"})),
            TypeState::Synced
        );
        assert_eq!(
            type_state(&json!({"sent_version": "b", "acked_version": "a"})),
            TypeState::Stale
        );
        // SotW: the latest response was rejected.
        assert_eq!(
            type_state(&json!({"sent_version": "b", "acked_version": "a",
                               "last_nack": {"version": "b", "message": "bad"}})),
            TypeState::Nacked
        );
        // An old NACK, since followed by an ACK of what was sent.
        assert_eq!(
            type_state(&json!({"sent_version": "c", "acked_version": "c",
                               "last_nack": {"version": "b", "message": "bad"}})),
            TypeState::Synced
        );
        // Delta: a resource still rejected while others were ACKed.
        assert_eq!(
            type_state(
                &json!({"sent_version": "c", "acked_version": "c", "rejected": ["x"],
                               "last_nack": {"version": "c", "message": "bad"}})
            ),
            TypeState::Nacked
        );
    }

    #[test]
    fn the_table_names_every_proxy_and_quotes_nacks() {
        let proxies = json!([{
            "node_id": "client-0.default", "namespace": "default", "protocol": "Delta",
            "identity": "spiffe://cluster.local/ns/default/sa/client",
            "types": {
                "CDS": {"sent_version": "1", "acked_version": "1"},
                "VHDS": {"sent_version": "2", "acked_version": "2", "rejected": ["outbound/default/greeter:50051"],
                         "last_nack": {"version": "2", "message": "regex too big",
                                       "resources": ["outbound/default/greeter:50051"]}}
            }
        }]);
        let out = render(&[("127.0.0.1:15014".into(), proxies)]);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{out}");
        assert!(
            lines[0].contains("CDS  ") && lines[0].contains("VHDS"),
            "{out}"
        );
        let row: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            row,
            [
                "client-0.default",
                "default",
                "Delta",
                "SYNCED",
                "-",
                "-",
                "-",
                "NACKED",
                "-",
                "spiffe://cluster.local/ns/default/sa/client",
                "127.0.0.1:15014"
            ]
        );
        assert!(
            out.contains(
                "client-0.default NACKED VHDS version 2 [outbound/default/greeter:50051]: regex too big"
            ),
            "{out}"
        );
        assert!(render(&[("c".into(), json!([]))]).contains("no proxy is connected"));
    }
}
