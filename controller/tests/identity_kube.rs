//! Workload identity against a real kube-apiserver: a proxy proves its ServiceAccount with a
//! projected token (audience `weft`), verified by TokenReview; the certificate it gets names
//! that identity whatever its CSR asks for, and its xDS stream serves its own namespace's
//! routes only. Every forged attempt — no token, another audience, an expired token (signed
//! with the cluster's real service-account key), a node id in another namespace than the
//! token's — gets no certificate and no config, with an error that says why.
//!
//! Calls go straight to the controller's TLS port with tonic, as weft-proxy's would, so each
//! refusal is seen exactly as the controller words it.

#![allow(clippy::unwrap_used)] // test helpers: a panic is how a failed step is reported

mod common;

use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::identity::*;
use common::*;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse;
use tonic::Code;
use tonic::transport::Channel;
use weft_tests::kube::{KubeCluster, SA_ISSUER};
use x509_parser::extensions::GeneralName;

const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const WEB_ID: &str = "spiffe://cluster.local/ns/default/sa/web";
const API_ID: &str = "spiffe://cluster.local/ns/team-b/sa/api";

/// The URI SANs of the first certificate in `chain_pem`.
fn uri_sans(chain_pem: &str) -> Vec<String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes()).unwrap();
    let cert = pem.parse_x509().unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .collect()
}

/// Opens a SotW ADS stream as `node_id` with `token`, asking for the route configurations
/// of both namespaces; the first response, or the stream's error.
async fn first_routes(
    channel: &Channel,
    token: Option<&str>,
    node_id: &str,
) -> Result<DiscoveryResponse, tonic::Status> {
    let names = ["outbound/default", "outbound/team-b"];
    open_ads(channel, token, node_id, RDS, &names)
        .await?
        .next()
        .await
}

/// Route configuration names in an RDS response.
fn route_names(response: &DiscoveryResponse) -> Vec<String> {
    use prost::Message as _;
    response
        .resources
        .iter()
        .map(|any| {
            envoy_types::pb::envoy::config::route::v3::RouteConfiguration::decode(&any.value[..])
                .unwrap()
                .name
        })
        .collect()
}

/// A ServiceAccount token for `default/web`, audience `weft`, that expired an hour ago,
/// signed ES256 with the cluster's own service-account key: everything about it is
/// genuine except its age.
fn expired_token(cluster: &KubeCluster) -> String {
    let pem = std::fs::read_to_string(cluster.dir().join("sa.key")).unwrap();
    let der = rustls_pem_der(&pem);
    let rng = ring::rand::SystemRandom::new();
    let key = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der,
        &rng,
    )
    .unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT"});
    let claims = serde_json::json!({
        "iss": SA_ISSUER,
        "aud": ["weft"],
        "sub": "system:serviceaccount:default:web",
        "iat": now - 7200,
        "nbf": now - 7200,
        "exp": now - 3600,
        "kubernetes.io": {"namespace": "default", "serviceaccount": {"name": "web"}},
    });
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = key.sign(&rng, signed.as_bytes()).unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
}

/// The DER inside a PKCS#8 `PRIVATE KEY` PEM.
fn rustls_pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).unwrap()
}

/// Asserts a refusal: `code`, and a message containing `words`.
fn assert_refused(
    what: &str,
    result: Result<impl std::fmt::Debug, tonic::Status>,
    code: Code,
    words: &str,
) {
    let status = match result {
        Ok(answer) => panic!("{what}: expected {code:?}, got an answer: {answer:?}"),
        Err(status) => status,
    };
    println!("{what}: {:?}: {}", status.code(), status.message());
    assert_eq!(status.code(), code, "{what}: {status:?}");
    assert!(
        status.message().contains(words),
        "{what}: the message does not say {words:?}: {}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewed_token_gets_its_own_identity_and_namespace_and_forgeries_get_nothing() {
    let cluster = tokio::task::block_in_place(KubeCluster::start).unwrap();
    let kubeconfig = cluster.kubeconfig_path().to_str().unwrap().to_string();
    let (web, api, other_audience) = tokio::task::block_in_place(|| {
        install_crds(&cluster);
        cluster
            .kubectl_ok(["create", "namespace", "team-b"])
            .unwrap();
        apply(
            &cluster,
            "services.yaml",
            &services_yaml_at("192.0.2.10", 7001, 7002),
        );
        (
            token_for(&kubeconfig, "default", "web", "weft"),
            token_for(&kubeconfig, "team-b", "api", "weft"),
            token_for(&kubeconfig, "default", "web", "not-weft"),
        )
    });
    let controller = tokio::task::block_in_place(|| {
        Controller::start(
            &["--kubeconfig", &kubeconfig],
            &cluster.dir().join("controller.log"),
        )
    });
    let root = tokio::task::block_in_place(|| {
        let data = cluster
            .kubectl_ok([
                "get",
                "secret",
                "weft-ca",
                "-n",
                "default",
                "-o",
                r"jsonpath={.data.ca\.crt}",
            ])
            .unwrap();
        String::from_utf8(STANDARD.decode(data.trim()).unwrap()).unwrap()
    });
    let channel = channel(controller.tls_port.unwrap(), &root).await;

    // The genuine article: a certificate for the reviewed identity, routes of its namespace.
    let issued = create_certificate(&channel, Some(&web), Some("web-0.default"), &[])
        .await
        .unwrap();
    assert_eq!(issued.spiffe_id, WEB_ID);
    assert_eq!(uri_sans(&issued.cert_chain[0]), [WEB_ID]);
    let routes = first_routes(&channel, Some(&web), "web-0.default")
        .await
        .unwrap();
    assert_eq!(
        route_names(&routes),
        ["outbound/default"],
        "config for its namespace only"
    );
    let routes = first_routes(&channel, Some(&api), "api-0.team-b")
        .await
        .unwrap();
    assert_eq!(route_names(&routes), ["outbound/team-b"]);

    // A CSR asking for someone else: the certificate still names the reviewed identity.
    let asked = "spiffe://cluster.local/ns/kube-system/sa/admin";
    let issued = create_certificate(&channel, Some(&web), None, &[asked])
        .await
        .unwrap();
    assert_eq!(
        uri_sans(&issued.cert_chain[0]),
        [WEB_ID],
        "the CSR's SAN was not used"
    );

    // Forgeries: no certificate, no config, and a message that says why.
    assert_refused(
        "certificate without a token",
        create_certificate(&channel, None, None, &[]).await,
        Code::Unauthenticated,
        "token",
    );
    assert_refused(
        "xDS without a token",
        first_routes(&channel, None, "web-0.default").await,
        Code::Unauthenticated,
        "token",
    );
    let expired = expired_token(&cluster);
    for (what, token, says) in [
        ("another audience", &other_audience, "audience"),
        ("an expired token", &expired, "expired"),
    ] {
        assert_refused(
            &format!("certificate with {what}"),
            create_certificate(&channel, Some(token), None, &[]).await,
            Code::Unauthenticated,
            says,
        );
        assert_refused(
            &format!("xDS with {what}"),
            first_routes(&channel, Some(token), "web-0.default").await,
            Code::Unauthenticated,
            says,
        );
    }
    assert_refused(
        "xDS as a node of another namespace",
        first_routes(&channel, Some(&api), "web-0.default").await,
        Code::PermissionDenied,
        "team-b",
    );
    assert_refused(
        "certificate for a node of another namespace",
        create_certificate(&channel, Some(&api), Some("web-0.default"), &[]).await,
        Code::PermissionDenied,
        "team-b",
    );

    // Certificates issued for a foreign identity: none. Every issuance the controller
    // logged names the identity of the token that asked.
    let log = std::fs::read_to_string(cluster.dir().join("controller.log")).unwrap();
    let issued: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("issued a workload certificate"))
        .collect();
    assert!(!issued.is_empty(), "no issuance logged:\n{log}");
    for line in &issued {
        assert!(
            line.contains(&format!("identity={WEB_ID}"))
                || line.contains(&format!("identity={API_ID}"))
                || line.contains("identity=spiffe://cluster.local/ns/default/sa/envoy"),
            "a certificate for an identity no token proved: {line}"
        );
    }
    println!(
        "{} certificates issued, each for the identity its token proved",
        issued.len()
    );
}
