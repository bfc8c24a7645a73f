//! A mesh whose browsers' calls come in through a web listener: weft-proxy's (`--web-addr`)
//! or stock Envoy's (node metadata `webAddr`), both configured by weft-controller in local
//! mode, in front of the two test backends behind Service `greeter`. Shared by the gRPC-Web
//! tests over HTTP/1.1 (`mesh_grpc_web.rs`) and in Chromium (`mesh_browser.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use weft_tests::backend::Backend;
use weft_tests::envoy::{Envoy, mesh_bootstrap};
use weft_tests::process::{free_port, wait_until};

use super::*;

/// Which proxy browsers reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Weft,
    Envoy,
}

/// GrpcRoute `greeter` reachable from browsers: ServerStream to greeter-v2, everything else
/// to greeter-v1; CORS for `origins`, exposing `x-weft-instance`, allowing `headers`.
pub fn web_route_yaml(origins: &[&str], headers: &[&str]) -> String {
    let list = |items: &[&str]| {
        items
            .iter()
            .map(|item| format!("'{item}'"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "{}\n  web:\n    services: [weft.test.Echo]\n    cors:\n      allowOrigins: [{}]\n      \
         allowHeaders: [{}]\n      exposeHeaders: [x-weft-instance]\n      maxAge: 5m\n",
        route_yaml(
            "greeter",
            "  - matches: [{method: {service: weft.test.Echo, method: ServerStream}}]\n    \
             backendRefs: [{name: greeter-v2, port: 50051}]\n  \
             - backendRefs: [{name: greeter-v1, port: 50051}]"
        ),
        list(origins),
        list(headers),
    )
}

pub struct WebMesh {
    pub mesh: Mesh,
    pub envoy: Option<Envoy>,
    _v1: Backend,
    _v2: Backend,
    /// Where browsers call.
    pub web: SocketAddr,
}

impl WebMesh {
    /// Backends v1 and v2, Services greeter/greeter-v1/greeter-v2, `route` and `files` (name,
    /// YAML), the controller, and the proxy of `side` with its web routes in.
    pub async fn start(side: Side, route: &str, files: &[(&str, String)]) -> WebMesh {
        let v1 = Backend::start("v1").await.unwrap();
        let v2 = Backend::start("v2").await.unwrap();
        let mut mesh = Mesh::new();
        mesh.write("services.yaml", &greeter_services(v1.addr(), v2.addr()));
        mesh.write("route.yaml", route);
        for (name, yaml) in files {
            mesh.write(name, yaml);
        }
        let web = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let envoy = blocking(|| {
            mesh.start_controller();
            match side {
                Side::Weft => {
                    let options = ProxyOptions::new("gateway").arg("--web-addr");
                    mesh.start_proxy(options.arg(&web.to_string()));
                    None
                }
                Side::Envoy => Some(start_envoy(&mesh, web)),
            }
        });
        let mesh = WebMesh {
            mesh,
            envoy,
            _v1: v1,
            _v2: v2,
            web,
        };
        blocking(|| {
            mesh.wait_web_routes("the web routes", |routes| {
                routes.contains("weft.test.Echo:")
            })
        });
        mesh
    }

    /// Waits until the proxy's web routes satisfy `check` (given them as JSON text).
    pub fn wait_web_routes(&self, what: &str, check: impl Fn(&str) -> bool) {
        match &self.envoy {
            None => self
                .mesh
                .proxy(0)
                .wait_config(what, |dump| check(&dump["web_routes"].to_string())),
            Some(envoy) => wait_until(what, Duration::from_secs(10), || {
                let dump = envoy.config_dump()?;
                Ok(check(&dump.to_string()))
            })
            .unwrap(),
        }
    }
}

/// Envoy as proxy `envoy-gateway.default` with its web listener at `web` (Delta ADS).
fn start_envoy(mesh: &Mesh, web: SocketAddr) -> Envoy {
    let outbound = free_port();
    let metadata = format!("metadata: {{outboundAddr: \"127.0.0.1:{outbound}\"}}");
    let bootstrap = mesh_bootstrap(
        &format!("envoy-gateway.{NS}"),
        outbound,
        mesh.controller().xds_addr.port(),
        true,
        None,
    );
    assert!(
        bootstrap.contains(&metadata),
        "the bootstrap's metadata line moved"
    );
    let bootstrap = bootstrap.replace(
        &metadata,
        &format!("metadata: {{outboundAddr: \"127.0.0.1:{outbound}\", webAddr: \"{web}\"}}"),
    );
    let envoy = Envoy::start(&bootstrap).unwrap();
    wait_until("Envoy's web listener", Duration::from_secs(10), || {
        Ok(envoy.listener_addr("web").is_ok())
    })
    .unwrap();
    envoy
}
