//! mTLS between weft-proxies, configured by weft-controller in local mode with a token file
//! (the stand-in for TokenReview): each proxy proves its ServiceAccount with a token, gets
//! a certificate for its SPIFFE id over the authenticated channel, and the inbound listener
//! enforces the MtlsPolicy mode — Strict refuses plaintext, Permissive takes both, Disable
//! refuses TLS — changing within a second of a file edit. Also: certificates rotate under an
//! open bidirectional stream, and a restarted controller keeps its CA.
//!
//! The roles: proxy B (ServiceAccount `server`, labels `app=greeter`) sits in front of an
//! echo backend, and Service `greeter` points at B's inbound listener; proxy A (`client`)
//! calls it through its outbound listener. "Plaintext client" is the test dialing B's
//! inbound directly without TLS; "TLS client" is the test handshaking with B's inbound
//! using a certificate of its own (ServiceAccount `other`) from the controller.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use common::*;
use rustls_pki_types::CertificateDer;
use tokio_stream::StreamExt as _;
use weft_proxy::tls::{TlsConfigs, WorkloadKey, request_certificate, server_name};
use weft_proxy::xds::ControlPlane;
use weft_tests::backend::{Backend, request};

const CLIENT_ID: &str = "spiffe://cluster.local/ns/default/sa/client";
const SERVER_ID: &str = "spiffe://cluster.local/ns/default/sa/server";
/// How soon an MtlsPolicy edit must be enforced (the promise).
const POLICY_TAKES_EFFECT: Duration = Duration::from_secs(1);
const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// The mesh of the module comment, ready: A's config has B's inbound as `greeter`'s
/// endpoint, marked for mTLS.
struct Pair {
    mesh: Mesh,
    backend: Backend,
    a: usize,
    b: usize,
}

impl Pair {
    async fn start(proxy_args: &[&str]) -> Pair {
        let backend = Backend::start("server").await.unwrap();
        let mut mesh = Mesh::with_mtls();
        let (a, b) = blocking(|| {
            mesh.start_controller();
            let mut server = ProxyOptions::new("server-0")
                .service_account("server")
                .app(backend.addr())
                .labels("app=greeter")
                .no_wait();
            let mut client = ProxyOptions::new("client-0").service_account("client");
            for arg in proxy_args {
                server = server.arg(arg);
                client = client.arg(arg);
            }
            let b = mesh.start_proxy(server);
            let b_inbound = mesh.proxy(b).inbound;
            mesh.write("services.yaml", &service_yaml("greeter", &[b_inbound]));
            mesh.proxies[b].wait_ready();
            let a = mesh.start_proxy(client);
            mesh.proxy(a)
                .wait_config("B's inbound as greeter's mTLS endpoint", |dump| {
                    mtls_endpoints_of(dump, "greeter") == [b_inbound.to_string()]
                });
            (a, b)
        });
        Pair {
            mesh,
            backend,
            a,
            b,
        }
    }

    fn b_inbound(&self) -> SocketAddr {
        self.mesh.proxy(self.b).inbound
    }

    /// One call from A's app through A and B to the backend.
    async fn call_through_a(&self) -> Result<EchoReply, tonic::Status> {
        let mut client = client(self.mesh.proxy(self.a).outbound.port(), GREETER).await;
        unary(&mut client, request("through A"), CALL_DEADLINE).await
    }

    /// One call on a new plaintext connection straight to B's inbound listener.
    async fn plaintext_call(&self) -> Result<EchoReply, tonic::Status> {
        plaintext_call(self.b_inbound()).await
    }

    /// Waits until B's config says `mode`.
    fn wait_b_mode(&self, mode: &str) {
        blocking(|| {
            self.mesh
                .proxy(self.b)
                .wait_config(&format!("inbound mode {mode}"), |dump| {
                    dump["inbound_mode"] == mode
                })
        });
    }
}

async fn plaintext_call(addr: SocketAddr) -> Result<EchoReply, tonic::Status> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .origin(format!("http://{GREETER}").parse().unwrap())
        .connect_timeout(CALL_DEADLINE);
    let channel = endpoint
        .connect()
        .await
        .map_err(|err| tonic::Status::unavailable(format!("connect: {err}")))?;
    unary(
        &mut EchoClient::new(channel),
        request("plaintext"),
        CALL_DEADLINE,
    )
    .await
}

/// Waits until the controller's `/debug/resources` says MtlsPolicy `name` is programmed on
/// exactly `proxies` (the count of proxies enforcing it, all ACKed).
fn wait_policy_programmed(mesh: &Mesh, name: &str, proxies: i64) {
    let resource = format!("MtlsPolicy {NS}/{name}");
    let mut last = serde_json::Value::Null;
    weft_tests::process::wait_until(
        &format!("{resource} programmed on {proxies}"),
        CONFIG_TIMEOUT,
        || {
            let (_, body) = mesh.controller().admin("/debug/resources")?;
            let resources: serde_json::Value = serde_json::from_str(&body)?;
            last = resources["resources"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["resource"] == resource.as_str())
                .cloned()
                .unwrap_or_default();
            Ok(last["programmed"]["reason"] == "Programmed"
                && last["proxies"]["total"] == proxies
                && last["proxies"]["acked"] == proxies)
        },
    )
    .unwrap_or_else(|err| panic!("{err:#}\nlast: {last:#}"));
    println!("{resource}: {}", last["programmed"]["message"]);
}

fn mtls_endpoints_of(dump: &serde_json::Value, service: &str) -> Vec<String> {
    dump["clusters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["name"].as_str().is_some_and(|n| n.contains(service)))
        .flat_map(|c| c["mtls_endpoints"].as_array().cloned().unwrap_or_default())
        .filter_map(|e| e.as_str().map(str::to_string))
        .collect()
}

fn policy_yaml(name: &str, mode: &str, selector: Option<&str>) -> String {
    let selector = selector
        .map(|labels| format!(", selector: {{matchLabels: {{{labels}}}}}"))
        .unwrap_or_default();
    format!(
        "apiVersion: weft.dev/v1alpha1\nkind: MtlsPolicy\n\
         metadata: {{name: {name}, namespace: {NS}}}\nspec: {{mode: {mode}{selector}}}\n"
    )
}

/// A certificate for the test itself (ServiceAccount `other`), asked of the controller's
/// certificate service over TLS, as a proxy does.
async fn test_certificate(mesh: &Mesh) -> TlsConfigs {
    let plane = ControlPlane {
        server: mesh.controller().xds_url().parse().unwrap(),
        root_cert_pem: Some(std::fs::read_to_string(mesh.root_cert_path()).unwrap()),
        server_name: None,
        token_file: None,
    };
    let channel = plane.endpoint().unwrap().connect().await.unwrap();
    let key = WorkloadKey::generate().unwrap();
    let credentials = request_certificate(channel, &MeshIdentity::token("other"), None, &key, None)
        .await
        .unwrap();
    TlsConfigs::new(&credentials).unwrap()
}

/// A mutual-TLS handshake with `addr` on a new connection, then one read to see whether
/// the server kept the connection (TLS 1.3 lets the client finish before the server has
/// checked its certificate). The server's leaf certificate, or why the handshake failed.
async fn tls_handshake(
    addr: SocketAddr,
    tls: &TlsConfigs,
) -> Result<CertificateDer<'static>, String> {
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let connector = tokio_rustls::TlsConnector::from(tls.client.clone());
    let stream = tokio::time::timeout(CALL_DEADLINE, connector.connect(server_name(), tcp))
        .await
        .map_err(|_| "handshake timed out".to_owned())?
        .map_err(|e| format!("handshake: {e}"))?;
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .cloned()
        .ok_or("no server certificate")?;
    Ok(leaf.into_owned())
}

fn not_after(cert: &CertificateDer<'_>) -> i64 {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).unwrap();
    parsed.validity().not_after.timestamp()
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Polls fresh plaintext calls to `addr` until `admitted` says so; how long that took.
async fn until_plaintext(addr: SocketAddr, admitted: bool, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let result = plaintext_call(addr).await;
        if result.is_ok() == admitted {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within * 10,
            "plaintext calls still {} after {:?}: {result:?}",
            if admitted { "refused" } else { "admitted" },
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_mtls_mode_is_enforced_at_the_inbound_listener_and_changes_within_a_second() {
    let pair = Pair::start(&[]).await;
    let own = test_certificate(&pair.mesh).await;
    assert_eq!(
        own.identity.to_string(),
        "spiffe://cluster.local/ns/default/sa/other"
    );

    // The controller knows who each proxy is.
    let b_status = blocking(|| pair.mesh.controller().proxy_status("server-0.default")).unwrap();
    assert_eq!(b_status["identity"], SERVER_ID, "{b_status:#}");
    assert!(b_status["certificate_expiry_unix"].as_i64().unwrap() > unix_now());

    // No policy: Permissive. A reaches B over mTLS, and plaintext gets in too.
    pair.wait_b_mode("Permissive");
    let reply = pair.call_through_a().await.unwrap();
    assert_eq!(reply.instance, "server");
    pair.plaintext_call().await.unwrap();
    let leaf = tls_handshake(pair.b_inbound(), &own).await.unwrap();
    assert_eq!(
        weft_proxy::tls::peer_identity(&leaf).unwrap().to_string(),
        SERVER_ID,
        "B presents its own identity"
    );
    let b = pair.mesh.proxy(pair.b);
    let metrics = blocking(|| b.metrics());
    let mtls_calls = metrics.sum(
        "weft_proxy_rpcs_total",
        &[
            ("direction", "inbound"),
            ("connection_security", "mtls"),
            ("peer_identity", CLIENT_ID),
        ],
    );
    let plaintext_calls = metrics.sum(
        "weft_proxy_rpcs_total",
        &[
            ("direction", "inbound"),
            ("connection_security", "plaintext"),
            ("peer_identity", "unknown"),
        ],
    );
    assert!(
        mtls_calls >= 1.0 && plaintext_calls >= 1.0,
        "B's inbound RPCs by security: mTLS from A {mtls_calls}, plaintext {plaintext_calls}\n{}",
        metrics.text
    );
    let expiry = metrics.sum("weft_proxy_certificate_expiry_timestamp_seconds", &[]);
    assert!(
        expiry as i64 > unix_now(),
        "B's certificate expiry: {expiry}"
    );
    assert_eq!(
        expiry as i64,
        not_after(&leaf),
        "the gauge is the served certificate's"
    );

    // Strict, namespace-wide: plaintext refused within a second of the edit; mTLS works.
    pair.mesh
        .write("mtls.yaml", &policy_yaml("default", "Strict", None));
    let took = until_plaintext(pair.b_inbound(), false, POLICY_TAKES_EFFECT).await;
    println!("Strict took effect {took:?} after the file edit");
    assert!(
        took <= POLICY_TAKES_EFFECT,
        "Strict took {took:?} to refuse plaintext"
    );
    // Both proxies have an inbound listener, so both enforce the namespace's policy.
    blocking(|| wait_policy_programmed(&pair.mesh, "default", 2));
    let refused = pair.plaintext_call().await.unwrap_err();
    println!("plaintext under Strict: {refused:?}");
    pair.call_through_a().await.unwrap();
    tls_handshake(pair.b_inbound(), &own).await.unwrap();
    let refusals = blocking(|| {
        b.wait_metric(
            "weft_proxy_inbound_connections_refused_total",
            &[("reason", "plaintext_under_strict")],
            CONFIG_TIMEOUT,
            |n| n >= 2.0,
        )
    });
    println!("B refused {refusals} plaintext connections under Strict");

    // A workload policy beats the namespace-wide one: Disable for app=greeter. Plaintext
    // gets in again, TLS is refused, and A (whose endpoint is no longer marked) switches to
    // plaintext.
    pair.mesh.write(
        "greeter-mtls.yaml",
        &policy_yaml("greeter", "Disable", Some("app: greeter")),
    );
    let took = until_plaintext(pair.b_inbound(), true, POLICY_TAKES_EFFECT).await;
    println!("Disable took effect {took:?} after the file edit");
    assert!(
        took <= POLICY_TAKES_EFFECT,
        "Disable took {took:?} to admit plaintext"
    );
    let err = tls_handshake(pair.b_inbound(), &own).await.unwrap_err();
    println!("TLS under Disable: {err}");
    blocking(|| {
        pair.mesh
            .proxy(pair.a)
            .wait_config("greeter no longer marked for mTLS", |dump| {
                mtls_endpoints_of(dump, "greeter").is_empty()
            })
    });
    pair.call_through_a().await.unwrap();
    // B now enforces the workload policy; only A is left under the namespace's.
    blocking(|| {
        wait_policy_programmed(&pair.mesh, "greeter", 1);
        wait_policy_programmed(&pair.mesh, "default", 1);
    });
    blocking(|| {
        b.wait_metric(
            "weft_proxy_inbound_connections_refused_total",
            &[("reason", "tls_under_disable")],
            CONFIG_TIMEOUT,
            |n| n >= 1.0,
        )
    });

    // Back to the namespace's Strict when the workload policy goes.
    pair.mesh.remove("greeter-mtls.yaml");
    pair.wait_b_mode("Strict");
    until_plaintext(pair.b_inbound(), false, POLICY_TAKES_EFFECT).await;
    blocking(|| {
        pair.mesh
            .proxy(pair.a)
            .wait_config("greeter marked for mTLS again", |dump| {
                !mtls_endpoints_of(dump, "greeter").is_empty()
            })
    });
    pair.call_through_a().await.unwrap();
    assert!(pair.backend.calls() >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bidi_stream_lives_across_three_certificate_rotations() {
    let pair = Pair::start(&["--cert-lifetime", "20s"]).await;
    pair.mesh
        .write("mtls.yaml", &policy_yaml("default", "Strict", None));
    pair.wait_b_mode("Strict");
    let own = test_certificate(&pair.mesh).await;

    // One bidirectional stream from A's app through A and B (mTLS between them).
    let mut client = client(pair.mesh.proxy(pair.a).outbound.port(), GREETER).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut replies = client
        .bidi_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();

    // Each B certificate seen on a new connection, by expiry.
    let mut served = BTreeSet::new();
    let started = Instant::now();
    let mut sent = 0;
    // Three rotations at half of 20 s (±10%) take about 30 s; 60 s bounds the loop.
    while served.len() < 4 && started.elapsed() < Duration::from_secs(60) {
        sent += 1;
        tx.send(request(&format!("message {sent}"))).await.unwrap();
        let reply = tokio::time::timeout(CALL_DEADLINE, replies.next())
            .await
            .unwrap_or_else(|_| panic!("no reply to message {sent}"))
            .unwrap_or_else(|| panic!("the stream ended at message {sent}"))
            .unwrap_or_else(|status| panic!("the stream failed at message {sent}: {status:?}"));
        assert_eq!(reply.instance, "server");

        let leaf = tls_handshake(pair.b_inbound(), &own).await.unwrap();
        let expiry = not_after(&leaf);
        let gauge = blocking(|| {
            pair.mesh
                .proxy(pair.b)
                .metrics()
                .sum("weft_proxy_certificate_expiry_timestamp_seconds", &[])
        }) as i64;
        if served.insert(expiry) {
            println!(
                "{:?}: B serves a certificate expiring at {expiry} (gauge {gauge})",
                started.elapsed()
            );
            assert!(
                expiry > unix_now(),
                "a new connection got an expired certificate"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        served.len() >= 4,
        "new connections saw {} certificates in {:?} (expected the first and three renewals)",
        served.len(),
        started.elapsed()
    );
    // The stream is still alive after the rotations.
    tx.send(request("after the rotations")).await.unwrap();
    let last = replies.next().await.unwrap().unwrap();
    assert_eq!(last.instance, "server");
    drop(tx);
    assert!(replies.next().await.is_none_or(|end| end.is_ok()));
    println!(
        "{sent} messages on one stream across {} certificates",
        served.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_controller_keeps_its_ca_and_old_certificates_still_validate() {
    let mut pair = Pair::start(&[]).await;
    pair.mesh
        .write("mtls.yaml", &policy_yaml("default", "Strict", None));
    pair.wait_b_mode("Strict");
    pair.call_through_a().await.unwrap();
    let root_before = std::fs::read(pair.mesh.root_cert_path()).unwrap();

    let (xds, admin) = {
        let controller = pair.mesh.controller();
        (controller.xds_addr, controller.admin_addr)
    };
    blocking(|| {
        pair.mesh.controller.as_mut().unwrap().kill();
        pair.mesh.restart_controller(xds, admin);
    });
    let root_after = std::fs::read(pair.mesh.root_cert_path()).unwrap();
    assert_eq!(root_before, root_after, "the CA changed across a restart");
    let log = std::fs::read_to_string(pair.mesh.dir.path().join("controller.log")).unwrap();
    assert!(
        log.contains("root CA from"),
        "the restart did not load the CA:\n{log}"
    );
    // Nor does it forget which endpoints run a proxy: A, reconnecting first, must not be
    // told that B (Strict) speaks plaintext before B has reconnected too.
    assert!(
        log.contains("remembered the mesh's members"),
        "the restart forgot the mesh's members:\n{log}"
    );

    // B's certificate from before the restart is still trusted by a client whose
    // certificate comes from the new controller process, and A's still works with B.
    let own = test_certificate(&pair.mesh).await;
    let leaf = tls_handshake(pair.b_inbound(), &own).await.unwrap();
    assert!(not_after(&leaf) > unix_now());
    pair.call_through_a().await.unwrap();
    let c = blocking(|| {
        pair.mesh
            .start_proxy(ProxyOptions::new("client-1").service_account("client"))
    });
    let mut client = client(pair.mesh.proxy(c).outbound.port(), GREETER).await;
    let reply = unary(&mut client, request("from C"), CALL_DEADLINE)
        .await
        .unwrap();
    assert_eq!(reply.instance, "server");
    // The new proxy's certificate names its reviewed identity.
    let c_status = blocking(|| pair.mesh.controller().proxy_status("client-1.default")).unwrap();
    assert_eq!(c_status["identity"], CLIENT_ID);
}
