//! The local-mode config the benchmarks feed weft-controller (the same YAML kinds as a
//! cluster: Service, EndpointSlice, GrpcRoute), and the changes the control-plane
//! benchmark makes to it. Pure text generation plus an atomic file write.
//!
//! - Data plane: Service `echo` (the backend), `echo-weft-pair` and `echo-envoy-pair` (the
//!   inbound side of each proxy pair, T2), each with a GrpcRoute matching `weft.test.Echo`,
//!   so every proxied call goes through a real method match.
//! - Control plane: `namespaces` × `services_per_namespace` Services, each with an
//!   EndpointSlice of `endpoints` addresses, and a GrpcRoute for every tenth Service that
//!   splits its traffic between it and the next one by weight. Each namespace has three
//!   files: `services-<ns>.yaml`, `endpoints-<ns>.yaml` and `routes-<ns>.yaml`.

use std::fmt::Write as _;
use std::path::Path;

/// The namespace of the data-plane config and of its proxies.
pub const DATA_NAMESPACE: &str = "default";
/// The Service port (and virtual host port) of every benchmark Service.
pub const SERVICE_PORT: u16 = 50051;

/// `<name>.<ns>.svc.cluster.local:<port>`: what a client puts in `:authority`.
pub fn authority(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local:{SERVICE_PORT}")
}

/// The Envoy cluster (and ClusterLoadAssignment) name weft-controller gives a Service port.
pub fn cluster_name(name: &str, namespace: &str) -> String {
    format!("outbound|{SERVICE_PORT}||{name}.{namespace}.svc.cluster.local")
}

/// The RouteConfiguration a proxy in `namespace` reads.
pub fn route_config_name(namespace: &str) -> String {
    format!("outbound/{namespace}")
}

fn service(out: &mut String, name: &str, namespace: &str) {
    let _ = write!(
        out,
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec: {{ports: [{{name: grpc, port: {SERVICE_PORT}}}]}}\n---\n"
    );
}

fn endpoint_slice(out: &mut String, service: &str, namespace: &str, port: u16, addrs: &[String]) {
    let endpoints: Vec<String> = addrs
        .iter()
        .map(|a| format!("{{addresses: [\"{a}\"], conditions: {{ready: true}}}}"))
        .collect();
    let _ = write!(
        out,
        "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata: {{name: {service}-slice, namespace: {namespace}, labels: {{kubernetes.io/service-name: {service}}}}}\n\
         addressType: IPv4\nports: [{{name: grpc, port: {port}}}]\nendpoints: [{}]\n---\n",
        endpoints.join(", ")
    );
}

/// A GrpcRoute on `parent` sending `weft.test.Echo` calls to `backends` (name, weight).
fn route(out: &mut String, name: &str, namespace: &str, parent: &str, backends: &[(&str, u32)]) {
    let refs: Vec<String> = backends
        .iter()
        .map(|(b, w)| format!("{{name: {b}, port: {SERVICE_PORT}, weight: {w}}}"))
        .collect();
    let _ = write!(
        out,
        "apiVersion: weft.dev/v1alpha1\nkind: GrpcRoute\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         spec:\n  parentRefs: [{{name: {parent}, port: {SERVICE_PORT}}}]\n  rules:\n\
         \x20 - matches: [{{method: {{service: weft.test.Echo}}}}]\n    backendRefs: [{}]\n---\n",
        refs.join(", ")
    );
}

/// The data-plane benchmark's Services, one per topology, each with its route:
/// `(service name, endpoint port)`. The pairs' inbound sides run plaintext (namespace-wide
/// MtlsPolicy `Disable`) except those labelled [`MTLS_LABEL`], which are
/// `Strict`.
pub fn dataplane_config(services: &[(&str, u16)]) -> String {
    let mut out = String::new();
    let ns = DATA_NAMESPACE;
    for &(name, port) in services {
        service(&mut out, name, ns);
        endpoint_slice(&mut out, name, ns, port, &["127.0.0.1".to_string()]);
        route(&mut out, name, ns, name, &[(name, 1)]);
    }
    let (key, value) = MTLS_LABEL;
    out += &format!(
        "apiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\n\
         metadata: {{name: plaintext, namespace: {ns}}}\nspec: {{mode: Disable}}\n---\n\
         apiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\n\
         metadata: {{name: mtls-pair, namespace: {ns}}}\n\
         spec: {{mode: Strict, selector: {{matchLabels: {{{key}: {value}}}}}}}\n---\n"
    );
    out
}

/// The workload label of the mTLS pairs' inbound sides.
pub const MTLS_LABEL: (&str, &str) = ("app", "mtls");

/// The control-plane benchmark's config and its changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlPlaneConfig {
    pub namespaces: u32,
    pub services_per_namespace: u32,
    pub endpoints: u32,
}

impl ControlPlaneConfig {
    pub fn namespace(&self, n: u32) -> String {
        format!("ns-{n}")
    }

    pub fn total_services(&self) -> u32 {
        self.namespaces * self.services_per_namespace
    }

    /// Endpoint addresses of Service `svc` in namespace `ns`; `generation` shifts the
    /// first one (an endpoint change).
    fn addresses(&self, ns: u32, svc: u32, generation: u32) -> Vec<String> {
        (0..self.endpoints)
            .map(|e| {
                // Others use hosts 2..; the changed first one 100.. (never a duplicate).
                let host = if e == 0 {
                    100 + generation % 150
                } else {
                    1 + e
                };
                format!("10.{}.{}.{host}", ns % 256, svc % 256)
            })
            .collect()
    }

    /// Every file of the initial config, as (file name, text).
    pub fn files(&self) -> Vec<(String, String)> {
        (0..self.namespaces)
            .flat_map(|ns| {
                [
                    self.services_file(ns),
                    self.endpoints_file(ns, 0),
                    self.routes_file(ns, 0),
                ]
            })
            .collect()
    }

    fn services_file(&self, ns: u32) -> (String, String) {
        let namespace = self.namespace(ns);
        let mut out = String::new();
        for svc in 0..self.services_per_namespace {
            service(&mut out, &format!("svc-{svc}"), &namespace);
        }
        (format!("services-{namespace}.yaml"), out)
    }

    /// The EndpointSlices of namespace `ns`, with Service `svc-0` at `generation`.
    pub fn endpoints_file(&self, ns: u32, generation: u32) -> (String, String) {
        let namespace = self.namespace(ns);
        let mut out = String::new();
        for svc in 0..self.services_per_namespace {
            let generation = if svc == 0 { generation } else { 0 };
            let addrs = self.addresses(ns, svc, generation);
            endpoint_slice(&mut out, &format!("svc-{svc}"), &namespace, 8080, &addrs);
        }
        (format!("endpoints-{namespace}.yaml"), out)
    }

    /// The GrpcRoutes of namespace `ns`; `generation` changes the weights of `route-0`.
    pub fn routes_file(&self, ns: u32, generation: u32) -> (String, String) {
        let namespace = self.namespace(ns);
        let mut out = String::new();
        for svc in (0..self.services_per_namespace).step_by(10) {
            let next = format!("svc-{}", (svc + 1) % self.services_per_namespace);
            let weight = if svc == 0 {
                90 - generation % 2 * 40
            } else {
                90
            };
            let own = format!("svc-{svc}");
            let backends = [(own.as_str(), weight), (next.as_str(), 100 - weight)];
            route(
                &mut out,
                &format!("route-{svc}"),
                &namespace,
                &own,
                &backends,
            );
        }
        (format!("routes-{namespace}.yaml"), out)
    }

    /// A new Service `extra-<k>` with its EndpointSlice in namespace 0, in a file of its own.
    pub fn new_service_file(&self, k: u32) -> (String, String) {
        let namespace = self.namespace(0);
        let name = format!("extra-{k}");
        let mut out = String::new();
        service(&mut out, &name, &namespace);
        endpoint_slice(
            &mut out,
            &name,
            &namespace,
            8080,
            &self.addresses(0, 255, k),
        );
        (format!("{name}.yaml"), out)
    }
}

/// Writes `text` to `dir/name` the way an editor does: a temp file renamed over the old one.
pub fn write_atomically(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: ControlPlaneConfig = ControlPlaneConfig {
        namespaces: 2,
        services_per_namespace: 20,
        endpoints: 10,
    };

    #[test]
    fn names_follow_the_controller() {
        assert_eq!(
            cluster_name("echo", "default"),
            "outbound|50051||echo.default.svc.cluster.local"
        );
        assert_eq!(route_config_name("ns-3"), "outbound/ns-3");
        assert_eq!(
            authority("echo", "default"),
            "echo.default.svc.cluster.local:50051"
        );
    }

    #[test]
    fn dataplane_config_has_a_service_and_route_each_and_the_policies() {
        let yaml = dataplane_config(&[
            ("echo", 1000),
            ("echo-weft-pair", 2000),
            ("echo-envoy-pair", 3000),
        ]);
        assert_eq!(yaml.matches("kind: Service\n").count(), 3);
        assert_eq!(yaml.matches("kind: GrpcRoute").count(), 3);
        assert!(yaml.contains("ports: [{name: grpc, port: 2000}]"));
        assert!(yaml.contains("{name: echo-envoy-pair, port: 50051, weight: 1}"));
        assert!(yaml.contains("spec: {mode: Disable}"));
        assert!(yaml.contains("spec: {mode: Strict, selector: {matchLabels: {app: mtls}}}"));
    }

    #[test]
    fn control_plane_config_sizes() {
        let files = SMALL.files();
        assert_eq!(files.len(), 6);
        let all: String = files.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(all.matches("kind: Service\n").count(), 40);
        assert_eq!(all.matches("kind: EndpointSlice").count(), 40);
        assert_eq!(all.matches("kind: GrpcRoute").count(), 4);
        assert_eq!(all.matches("conditions: {ready: true}").count(), 400);
    }

    #[test]
    fn changes_change_one_thing() {
        let (name, before) = SMALL.endpoints_file(0, 0);
        let (_, after) = SMALL.endpoints_file(0, 1);
        assert_eq!(name, "endpoints-ns-0.yaml");
        let diff: Vec<_> = before
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(diff.len(), 1);
        let (_, r0) = SMALL.routes_file(0, 0);
        let (_, r1) = SMALL.routes_file(0, 1);
        assert!(r0.contains("{name: svc-0, port: 50051, weight: 90}"));
        assert!(r1.contains("{name: svc-0, port: 50051, weight: 50}"));
        assert_eq!(SMALL.routes_file(0, 2).1, r0);
        let (name, text) = SMALL.new_service_file(3);
        assert_eq!(name, "extra-3.yaml");
        assert!(text.contains("name: extra-3, namespace: ns-0"));
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        write_atomically(dir.path(), "a.yaml", "one").unwrap();
        write_atomically(dir.path(), "a.yaml", "two").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a.yaml")).unwrap(),
            "two"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
