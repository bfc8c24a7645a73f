//! Sidecar injection: what the mutating admission webhook adds to a Pod. This file is the
//! pure part — from a Pod and the [`InjectionConfig`] (rendered by the Helm chart from its
//! values) to a JSON patch, or a reason to leave the Pod alone; `server` answers the
//! apiserver's AdmissionReviews with it and `ca_bundle` keeps the webhook's `caBundle` current.
//!
//! Which Pods: the webhook configuration selects namespaces labelled `weft.dev/inject:
//! enabled`; here a Pod annotated `weft.dev/inject: "false"` is skipped, and so is a Pod that
//! already has a `weft-proxy` container, so injecting twice is a no-op.
//!
//! What is added:
//! - init container `weft-init` (`weft-proxy init`, NET_ADMIN and NET_RAW, as root) that
//!   redirects the Pod's TCP through the proxy with iptables;
//! - container `weft-proxy` (uid 1337, read-only root, no capabilities) with its node id and
//!   namespace from the downward API, the projected ServiceAccount token (audience `weft`)
//!   it authenticates with, the mesh's root certificate, ports, probes and resources;
//! - label `weft.dev/sidecar: injected`: the controller watches pods with it, so a client
//!   reaches this pod over mutual TLS even while its proxy is connected to another replica;
//! - with annotation `weft.dev/web-port: "<port>"` on the Pod, a web listener on that port
//!   (`--web-addr 0.0.0.0:<port>`, container port `weft-web`) that browsers' gRPC-Web calls
//!   reach (a gateway Pod behind an ingress, typically), and that port left out of inbound
//!   interception. A value that is not a free port denies the Pod, with the reason;
//! - annotation `weft.dev/xds-root`: the root certificate the proxy verifies the controller
//!   with, mounted into the proxy through a downward-API volume. It keeps the webhook free of
//!   any per-namespace object (Istio writes a ConfigMap into every namespace); a Pod sees
//!   the root of the day it was created, and a new root reaches Pods as they are replaced.

mod ca_bundle;
mod server;

pub use ca_bundle::keep_ca_bundle;
pub use server::{WebhookServer, serve};

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;
use serde_json::{Value, json};

/// The annotation (and namespace label) that controls injection.
pub const INJECT_KEY: &str = "weft.dev/inject";
/// The annotation that gives the sidecar a web listener (browsers' gRPC-Web) on a port.
pub const WEB_PORT_ANNOTATION: &str = "weft.dev/web-port";
/// The annotation holding the root certificate for the proxy.
pub const ROOT_ANNOTATION: &str = "weft.dev/xds-root";
/// The label every injected pod gets (value [`SIDECAR_INJECTED`]): the controller watches
/// pods carrying it to know which endpoints run a proxy, whichever replica that proxy is
/// connected to.
pub const SIDECAR_LABEL: &str = "weft.dev/sidecar";
pub const SIDECAR_INJECTED: &str = "injected";
/// The sidecar's container name (its presence means "already injected").
pub const PROXY_CONTAINER: &str = "weft-proxy";
/// The init container's name.
pub const INIT_CONTAINER: &str = "weft-init";
/// Where the proxy finds its token and the root certificate.
const TOKEN_DIR: &str = "/var/run/weft/token";
const ROOT_DIR: &str = "/var/run/weft/root";

/// What the chart's values say the injected containers look like.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InjectionConfig {
    /// The image holding `weft-proxy` (and its `init`).
    pub image: String,
    #[serde(default = "default_pull_policy")]
    pub image_pull_policy: String,
    /// `host:port` of the controller's xDS over TLS (its Service).
    pub xds_address: String,
    /// The name the controller's serving certificate carries for that address.
    pub xds_server_name: String,
    /// The proxy's user id; its own traffic is not intercepted.
    #[serde(default = "default_proxy_uid")]
    pub proxy_uid: i64,
    #[serde(default)]
    pub ports: Ports,
    /// The sidecar's `resources`, as in a container spec.
    #[serde(default)]
    pub resources: Value,
    /// How long the proxy drains on shutdown (`5s`).
    #[serde(default = "default_drain")]
    pub drain_timeout: String,
    /// The audience of the projected token.
    #[serde(default = "default_audience")]
    pub token_audience: String,
    /// Log filter of the sidecar.
    #[serde(default = "default_log_level")]
    pub log_level: String,
}

/// The proxy's ports in the Pod.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Ports {
    pub outbound: u16,
    pub inbound: u16,
    pub admin: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Self {
            outbound: 15001,
            inbound: 15006,
            admin: 15000,
        }
    }
}

fn default_pull_policy() -> String {
    "IfNotPresent".into()
}
fn default_proxy_uid() -> i64 {
    1337
}
fn default_drain() -> String {
    "5s".into()
}
fn default_audience() -> String {
    crate::auth::DEFAULT_AUDIENCE.into()
}
fn default_log_level() -> String {
    "warn".into()
}

/// What the webhook does with a Pod.
#[derive(Debug, Clone, PartialEq)]
pub enum Injection {
    /// Leave it as it is, for this reason (logged and returned as a warning-free allow).
    Skip(&'static str),
    /// Refuse the Pod, saying why (a weft annotation it carries is wrong).
    Deny(String),
    /// Apply this JSON patch (RFC 6902 operations).
    Patch(Vec<Value>),
}

/// Decides and builds the patch for `pod`. `root_pem` is the mesh's trust bundle.
pub fn inject(pod: &Pod, config: &InjectionConfig, root_pem: &str) -> Injection {
    let annotations = pod.metadata.annotations.as_ref();
    if annotations
        .and_then(|a| a.get(INJECT_KEY))
        .is_some_and(|v| v.eq_ignore_ascii_case("false"))
    {
        return Injection::Skip("the pod opts out (weft.dev/inject: \"false\")");
    }
    let Some(spec) = pod.spec.as_ref() else {
        return Injection::Skip("the pod has no spec");
    };
    if spec.containers.iter().any(|c| c.name == PROXY_CONTAINER) {
        return Injection::Skip("already injected");
    }
    if spec.host_network == Some(true) {
        // iptables in the host's network namespace would capture the node's traffic.
        return Injection::Skip("the pod uses the host network");
    }

    let web_port = match annotations.and_then(|a| a.get(WEB_PORT_ANNOTATION)) {
        None => None,
        Some(value) => match web_port(value, &config.ports) {
            Ok(port) => Some(port),
            Err(reason) => return Injection::Deny(reason),
        },
    };
    let app_port = spec
        .containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.protocol.as_deref().unwrap_or("TCP") == "TCP")
        .and_then(|p| u16::try_from(p.container_port).ok());
    let mut labels = pod.metadata.labels.clone().unwrap_or_default();

    let mut ops = Vec::new();
    // The sidecar label: create the map if absent, else add our key. The proxy's own
    // labels (for MtlsPolicy selectors) include it, like the pod's.
    match pod.metadata.labels {
        None => ops.push(json!({
            "op": "add", "path": "/metadata/labels",
            "value": { SIDECAR_LABEL: SIDECAR_INJECTED },
        })),
        Some(_) => ops.push(json!({
            "op": "add", "path": format!("/metadata/labels/{}", escape(SIDECAR_LABEL)),
            "value": SIDECAR_INJECTED,
        })),
    }
    labels.insert(SIDECAR_LABEL.to_owned(), SIDECAR_INJECTED.to_owned());
    // Annotations: create the map if absent, else add our key (`/` escaped as `~1`).
    match annotations {
        None => ops.push(json!({
            "op": "add", "path": "/metadata/annotations",
            "value": { ROOT_ANNOTATION: root_pem },
        })),
        Some(_) => ops.push(json!({
            "op": "add", "path": format!("/metadata/annotations/{}", escape(ROOT_ANNOTATION)),
            "value": root_pem,
        })),
    }
    push_to_list(
        &mut ops,
        "/spec/initContainers",
        spec.init_containers.is_some(),
        init_container(config, web_port),
    );
    ops.push(json!({
        "op": "add", "path": "/spec/containers/-",
        "value": proxy_container(config, app_port, web_port, &labels),
    }));
    let has_volumes = spec.volumes.is_some();
    push_to_list(&mut ops, "/spec/volumes", has_volumes, token_volume(config));
    push_to_list(&mut ops, "/spec/volumes", true, root_volume());
    Injection::Patch(ops)
}

/// Appends `value` to the list at `path`, creating the list when `exists` is false.
fn push_to_list(ops: &mut Vec<Value>, path: &str, exists: bool, value: Value) {
    if exists {
        ops.push(json!({ "op": "add", "path": format!("{path}/-"), "value": value }));
    } else {
        ops.push(json!({ "op": "add", "path": path, "value": [value] }));
    }
}

/// JSON Pointer escaping of one path segment (RFC 6901).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The port annotation `weft.dev/web-port` names, or why it names none.
fn web_port(value: &str, ports: &Ports) -> Result<u16, String> {
    let taken = [ports.outbound, ports.inbound, ports.admin];
    match value.trim().parse::<u16>() {
        Ok(port) if port > 0 && !taken.contains(&port) => Ok(port),
        Ok(port) if port > 0 => Err(format!(
            "annotation {WEB_PORT_ANNOTATION}: {port} is one of the sidecar's own ports \
             ({}, {}, {})",
            ports.outbound, ports.inbound, ports.admin
        )),
        _ => Err(format!(
            "annotation {WEB_PORT_ANNOTATION}: {value:?} is not a port (1 to 65535)"
        )),
    }
}

fn init_container(config: &InjectionConfig, web_port: Option<u16>) -> Value {
    let mut args = vec![
        "init".to_owned(),
        "--proxy-uid".to_owned(),
        config.proxy_uid.to_string(),
        "--outbound-port".to_owned(),
        config.ports.outbound.to_string(),
        "--inbound-port".to_owned(),
        config.ports.inbound.to_string(),
        "--admin-port".to_owned(),
        config.ports.admin.to_string(),
        // Connections to the controller are not redirected (the proxy's own are exempt by
        // its uid; this covers the xDS port the chart chose).
        "--xds-ports".to_owned(),
        xds_port(&config.xds_address),
    ];
    if let Some(port) = web_port {
        // Browsers reach the web listener itself, not the inbound one.
        args.extend(["--exclude-inbound-ports".to_owned(), port.to_string()]);
    }
    json!({
        "name": INIT_CONTAINER,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["/usr/local/bin/weft-proxy"],
        "args": args,
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": false,
            "allowPrivilegeEscalation": false,
            // iptables takes its lock in /run/xtables.lock.
            "readOnlyRootFilesystem": false,
            "capabilities": { "drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"] },
        },
        "resources": { "requests": { "cpu": "10m", "memory": "16Mi" }, "limits": { "memory": "64Mi" } },
    })
}

/// The port of `host:port` (15012 when it names none).
fn xds_port(address: &str) -> String {
    address
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse::<u16>().ok())
        .unwrap_or(15012)
        .to_string()
}

fn proxy_container(
    config: &InjectionConfig,
    app_port: Option<u16>,
    web_port: Option<u16>,
    labels: &BTreeMap<String, String>,
) -> Value {
    let field = |path: &str| json!({ "valueFrom": { "fieldRef": { "fieldPath": path } } });
    let mut env = vec![
        json!({ "name": "POD_NAME" }).merged(&field("metadata.name")),
        json!({ "name": "POD_NAMESPACE" }).merged(&field("metadata.namespace")),
        json!({ "name": "WEFT_POD_IP" }).merged(&field("status.podIP")),
        json!({ "name": "WEFT_SERVICE_ACCOUNT" }).merged(&field("spec.serviceAccountName")),
        json!({ "name": "WEFT_NODE_ID", "value": "$(POD_NAME).$(POD_NAMESPACE)" }),
        json!({ "name": "WEFT_XDS_ADDR", "value": format!("https://{}", config.xds_address) }),
        json!({ "name": "WEFT_XDS_SERVER_NAME", "value": config.xds_server_name }),
        json!({ "name": "WEFT_XDS_ROOT_CERT", "value": format!("{ROOT_DIR}/root.pem") }),
        json!({ "name": "WEFT_TOKEN_FILE", "value": format!("{TOKEN_DIR}/token") }),
        // Locally generated traffic is redirected to 127.0.0.1; inbound arrives on the pod IP.
        json!({ "name": "WEFT_OUTBOUND_ADDR", "value": format!("127.0.0.1:{}", config.ports.outbound) }),
        json!({ "name": "WEFT_INBOUND_ADDR", "value": format!("0.0.0.0:{}", config.ports.inbound) }),
        json!({ "name": "WEFT_ADMIN_ADDR", "value": format!("0.0.0.0:{}", config.ports.admin) }),
        json!({ "name": "WEFT_DRAIN_TIMEOUT", "value": config.drain_timeout }),
        json!({ "name": "WEFT_LOG", "value": config.log_level }),
    ];
    if let Some(port) = app_port {
        env.push(json!({ "name": "WEFT_APP_ADDR", "value": format!("127.0.0.1:{port}") }));
    }
    let mut ports = vec![
        json!({ "name": "weft-admin", "containerPort": config.ports.admin, "protocol": "TCP" }),
    ];
    if let Some(port) = web_port {
        env.push(json!({ "name": "WEFT_WEB_ADDR", "value": format!("0.0.0.0:{port}") }));
        ports.push(json!({ "name": "weft-web", "containerPort": port, "protocol": "TCP" }));
    }
    if !labels.is_empty() {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        env.push(json!({ "name": "WEFT_WORKLOAD_LABELS", "value": labels.join(",") }));
    }
    let mut container = json!({
        "name": PROXY_CONTAINER,
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["/usr/local/bin/weft-proxy"],
        "env": env,
        "ports": ports,
        "readinessProbe": {
            "httpGet": { "path": "/ready", "port": config.ports.admin },
            "periodSeconds": 2, "failureThreshold": 30,
        },
        "securityContext": {
            "runAsUser": config.proxy_uid,
            "runAsGroup": config.proxy_uid,
            "runAsNonRoot": true,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": { "drop": ["ALL"] },
        },
        "volumeMounts": [
            { "name": "weft-token", "mountPath": TOKEN_DIR, "readOnly": true },
            { "name": "weft-root", "mountPath": ROOT_DIR, "readOnly": true },
        ],
    });
    if !config.resources.is_null()
        && let Some(object) = container.as_object_mut()
    {
        object.insert("resources".into(), config.resources.clone());
    }
    container
}

fn token_volume(config: &InjectionConfig) -> Value {
    json!({
        "name": "weft-token",
        "projected": { "sources": [{ "serviceAccountToken": {
            "audience": config.token_audience, "expirationSeconds": 43200, "path": "token",
        }}]},
    })
}

fn root_volume() -> Value {
    json!({
        "name": "weft-root",
        "downwardAPI": { "items": [{
            "path": "root.pem",
            "fieldRef": { "fieldPath": format!("metadata.annotations['{ROOT_ANNOTATION}']") },
        }]},
    })
}

/// `json!` objects merged key by key (a small helper for env entries).
trait Merged {
    fn merged(self, other: &Value) -> Value;
}

impl Merged for Value {
    fn merged(mut self, other: &Value) -> Value {
        if let (Some(into), Some(from)) = (self.as_object_mut(), other.as_object()) {
            for (key, value) in from {
                into.insert(key.clone(), value.clone());
            }
        }
        self
    }
}

#[cfg(test)]
mod tests;
