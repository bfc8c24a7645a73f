//! Who a proxy says it is: its xDS `Node` (`id` = `<pod>.<namespace>`, metadata with the
//! namespace, service account, workload labels, listener addresses, the app's address and
//! the pod IP) read into [`NodeInfo`]. Errors name the field at fault.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};

use super::services::is_dns_label;

/// The outbound listener address when the node does not name one.
pub const DEFAULT_OUTBOUND_ADDR: &str = "127.0.0.1:15001";
/// The inbound listener address when the node does not name one.
pub const DEFAULT_INBOUND_ADDR: &str = "127.0.0.1:15006";
/// The local app's address when the node does not name one (weft-proxy's `--app-addr`).
pub const DEFAULT_APP_ADDR: &str = "127.0.0.1:8080";

/// What translation needs to know about one proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node id as sent.
    pub id: String,
    pub pod: String,
    /// Picks the RouteConfiguration (`outbound/<namespace>`).
    pub namespace: String,
    /// Metadata `serviceAccount`, if sent.
    pub service_account: Option<String>,
    /// Metadata `labels` (the workload's pod labels), if sent.
    pub labels: BTreeMap<String, String>,
    /// Metadata `outboundAddr`, default 127.0.0.1:15001.
    pub outbound_addr: SocketAddr,
    /// Metadata `inboundAddr`, default 127.0.0.1:15006: where the proxy accepts RPCs for
    /// its app (in local mode, what the Services' endpoints list).
    pub inbound_addr: SocketAddr,
    /// Whether the proxy said where its inbound listener is (metadata `inboundAddr`): only
    /// then does it get an `inbound` listener (a client-only Envoy never sends it).
    pub serves_inbound: bool,
    /// Metadata `appAddr`, default 127.0.0.1:8080: where the proxy's app listens.
    pub app_addr: SocketAddr,
    /// Metadata `podIP`, if sent (Kubernetes: endpoints list pod IPs).
    pub pod_ip: Option<IpAddr>,
    /// Metadata `webAddr`, if sent: where the proxy accepts browsers' gRPC-Web calls (it
    /// then gets a `web` listener there).
    pub web_addr: Option<SocketAddr>,
}

impl NodeInfo {
    /// A node with id `<pod>.<namespace>`, no labels, no service account, no pod IP and
    /// the default inbound and app addresses.
    pub fn new(pod: &str, namespace: &str, outbound_addr: SocketAddr) -> Self {
        Self {
            id: format!("{pod}.{namespace}"),
            pod: pod.to_owned(),
            namespace: namespace.to_owned(),
            service_account: None,
            labels: BTreeMap::new(),
            outbound_addr,
            inbound_addr: default_addr(DEFAULT_INBOUND_ADDR),
            serves_inbound: true,
            app_addr: default_addr(DEFAULT_APP_ADDR),
            pod_ip: None,
            web_addr: None,
        }
    }

    /// Reads a Node. The namespace comes from metadata `namespace` when present (the id
    /// may then be `<pod>.<namespace>` or just `<pod>`), otherwise from the id's last
    /// dot-separated part (pod names may contain dots, namespaces cannot).
    pub fn from_node(node: &Node) -> Result<Self, String> {
        let empty = Struct::default();
        let metadata = node.metadata.as_ref().unwrap_or(&empty);
        let id = node.id.clone();
        let (pod, namespace) = match string_field(metadata, "namespace")? {
            Some(ns) => {
                let pod = id.strip_suffix(&format!(".{ns}")).unwrap_or(&id);
                (pod.to_owned(), ns)
            }
            None => match id.rsplit_once('.') {
                Some((pod, ns)) => (pod.to_owned(), ns.to_owned()),
                None => {
                    return Err(format!(
                        "node.id: {id:?} is not <pod>.<namespace>, and node.metadata has no namespace"
                    ));
                }
            },
        };
        if pod.is_empty() {
            return Err(format!("node.id: {id:?} names no pod"));
        }
        if !is_dns_label(&namespace, false) {
            return Err(format!(
                "node.metadata.namespace: {namespace:?} is not a namespace name"
            ));
        }
        let pod_ip = match string_field(metadata, "podIP")? {
            None => None,
            Some(ip) => Some(
                ip.parse()
                    .map_err(|_| format!("node.metadata.podIP: {ip:?} is not an IP address"))?,
            ),
        };
        Ok(Self {
            id,
            pod,
            namespace,
            service_account: string_field(metadata, "serviceAccount")?,
            labels: labels(metadata)?,
            outbound_addr: addr_field(metadata, "outboundAddr", DEFAULT_OUTBOUND_ADDR)?,
            inbound_addr: addr_field(metadata, "inboundAddr", DEFAULT_INBOUND_ADDR)?,
            serves_inbound: string_field(metadata, "inboundAddr")?.is_some(),
            app_addr: addr_field(metadata, "appAddr", DEFAULT_APP_ADDR)?,
            pod_ip,
            web_addr: match string_field(metadata, "webAddr")? {
                None => None,
                Some(_) => Some(addr_field(metadata, "webAddr", "127.0.0.1:15080")?),
            },
        })
    }
}

/// One of the `DEFAULT_*_ADDR` constants, which are valid addresses.
fn default_addr(addr: &str) -> SocketAddr {
    addr.parse()
        .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// The address in metadata `field`, or `default` when absent.
fn addr_field(metadata: &Struct, field: &str, default: &str) -> Result<SocketAddr, String> {
    let addr = string_field(metadata, field)?;
    let addr = addr.as_deref().unwrap_or(default);
    addr.parse()
        .map_err(|_| format!("node.metadata.{field}: {addr:?} is not an address like {default}"))
}

fn string_field(metadata: &Struct, field: &str) -> Result<Option<String>, String> {
    match metadata
        .fields
        .get(field)
        .and_then(|v: &Value| v.kind.as_ref())
    {
        None | Some(Kind::NullValue(_)) => Ok(None),
        Some(Kind::StringValue(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("node.metadata.{field}: must be a string")),
    }
}

fn labels(metadata: &Struct) -> Result<BTreeMap<String, String>, String> {
    let labels = match metadata.fields.get("labels").and_then(|v| v.kind.as_ref()) {
        None | Some(Kind::NullValue(_)) => return Ok(BTreeMap::new()),
        Some(Kind::StructValue(labels)) => labels,
        Some(_) => return Err("node.metadata.labels: must be a map of strings".into()),
    };
    labels
        .fields
        .iter()
        .map(|(key, value)| match &value.kind {
            Some(Kind::StringValue(s)) => Ok((key.clone(), s.clone())),
            _ => Err(format!("node.metadata.labels.{key}: must be a string")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn string(s: &str) -> Value {
        Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }

    fn node(id: &str, fields: &[(&str, Value)]) -> Node {
        let fields: HashMap<String, Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        Node {
            id: id.into(),
            metadata: Some(Struct { fields }),
            ..Default::default()
        }
    }

    #[test]
    fn id_gives_pod_and_namespace() {
        let info = NodeInfo::from_node(&node("greeter-7d4f.default", &[])).unwrap();
        assert_eq!(
            info,
            NodeInfo {
                serves_inbound: false,
                ..NodeInfo::new(
                    "greeter-7d4f",
                    "default",
                    DEFAULT_OUTBOUND_ADDR.parse().unwrap()
                )
            }
        );
        let dotted = NodeInfo::from_node(&node("web.v2.team-a", &[])).unwrap();
        assert_eq!(
            (dotted.pod.as_str(), dotted.namespace.as_str()),
            ("web.v2", "team-a")
        );
    }

    #[test]
    fn metadata_namespace_wins_and_fields_are_read() {
        let labels = Value {
            kind: Some(Kind::StructValue(Struct {
                fields: HashMap::from([("app".into(), string("web"))]),
            })),
        };
        let info = NodeInfo::from_node(&node(
            "web-1",
            &[
                ("namespace", string("team-a")),
                ("outboundAddr", string("127.0.0.2:16001")),
                ("inboundAddr", string("127.0.0.2:16006")),
                ("appAddr", string("127.0.0.2:9090")),
                ("podIP", string("10.1.2.3")),
                ("serviceAccount", string("web")),
                ("labels", labels),
            ],
        ))
        .unwrap();
        assert_eq!(info.pod, "web-1");
        assert_eq!(info.namespace, "team-a");
        assert_eq!(info.outbound_addr, "127.0.0.2:16001".parse().unwrap());
        assert_eq!(info.inbound_addr, "127.0.0.2:16006".parse().unwrap());
        assert_eq!(info.app_addr, "127.0.0.2:9090".parse().unwrap());
        assert_eq!(info.pod_ip, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(info.service_account.as_deref(), Some("web"));
        assert_eq!(
            info.labels,
            BTreeMap::from([("app".to_string(), "web".to_string())])
        );
        let suffixed =
            NodeInfo::from_node(&node("web-1.team-a", &[("namespace", string("team-a"))])).unwrap();
        assert_eq!(suffixed.pod, "web-1");
    }

    #[test]
    fn errors_name_the_field() {
        let err = |n: Node| NodeInfo::from_node(&n).unwrap_err();
        assert!(err(node("lonely", &[])).starts_with("node.id:"));
        assert!(err(node(".default", &[])).starts_with("node.id:"));
        assert!(err(node("a.Not_A_Namespace", &[])).starts_with("node.metadata.namespace:"));
        let bad_addr = err(node("a.default", &[("outboundAddr", string("localhost"))]));
        assert!(
            bad_addr.starts_with("node.metadata.outboundAddr: \"localhost\""),
            "{bad_addr}"
        );
        for field in ["inboundAddr", "appAddr"] {
            let bad = err(node("a.default", &[(field, string(":80"))]));
            assert!(
                bad.starts_with(&format!("node.metadata.{field}: \":80\"")),
                "{bad}"
            );
        }
        assert_eq!(
            err(node("a.default", &[("podIP", string("10.0.0.1:80"))])),
            "node.metadata.podIP: \"10.0.0.1:80\" is not an IP address"
        );
        let number = Value {
            kind: Some(Kind::NumberValue(1.0)),
        };
        assert_eq!(
            err(node("a", &[("namespace", number)])),
            "node.metadata.namespace: must be a string"
        );
        let bad_label = Value {
            kind: Some(Kind::StructValue(Struct {
                fields: HashMap::from([(
                    "app".into(),
                    Value {
                        kind: Some(Kind::BoolValue(true)),
                    },
                )]),
            })),
        };
        assert_eq!(
            err(node("a.default", &[("labels", bad_label)])),
            "node.metadata.labels.app: must be a string"
        );
    }
}
