//! Smoke test of the test Kubernetes control plane (`weft_tests::kube`): CRDs can be
//! applied and served, service-account tokens are signed and reviewed, RBAC is enforced,
//! and the apiserver survives a restart with its data.

use std::time::Instant;

use anyhow::Context as _;
use k8s_openapi::api::authentication::v1::{
    TokenRequest, TokenRequestSpec, TokenReview, TokenReviewSpec,
};
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, PostParams,
};
use weft_tests::kube::KubeCluster;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.weft.dev
spec:
  group: smoke.weft.dev
  scope: Namespaced
  names: { plural: widgets, singular: widget, kind: Widget }
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              required: [color]
              properties:
                color: { type: string }
                size: { type: integer, minimum: 1 }
"#;

const WIDGET: &str = r#"
apiVersion: smoke.weft.dev/v1
kind: Widget
metadata: { name: first, namespace: default }
spec: { color: blue, size: 3 }
"#;

const SA_NAME: &str = "smoke-reader";

fn widget_gvk() -> GroupVersionKind {
    GroupVersionKind::gvk("smoke.weft.dev", "v1", "Widget")
}

fn widgets(client: kube::Client) -> Api<DynamicObject> {
    Api::namespaced_with(client, "default", &ApiResource::from_gvk(&widget_gvk()))
}

/// Applies a file written into the cluster's temp dir, as a user would.
fn apply(cluster: &KubeCluster, name: &str, yaml: &str) -> anyhow::Result<()> {
    let path = cluster.dir().join(name);
    std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
    cluster.kubectl_ok([
        std::ffi::OsStr::new("apply"),
        "-f".as_ref(),
        path.as_os_str(),
    ])?;
    Ok(())
}

#[tokio::test]
async fn kube_cluster_serves_crds_tokens_and_rbac() -> anyhow::Result<()> {
    let started = Instant::now();
    let mut cluster = KubeCluster::start()?;
    println!(
        "cluster started in {:?} at {}",
        started.elapsed(),
        cluster.server_url()
    );

    // A CRD applied with kubectl becomes Established and serves objects.
    apply(&cluster, "widget-crd.yaml", CRD)?;
    cluster.kubectl_ok([
        "wait",
        "--for=condition=Established",
        "crd/widgets.smoke.weft.dev",
        "--timeout=60s",
    ])?;
    apply(&cluster, "widget.yaml", WIDGET)?;
    let client = cluster.client().await?;
    let widget = widgets(client.clone()).get("first").await?;
    assert_eq!(widget.data["spec"]["color"], "blue");
    assert_eq!(widget.data["spec"]["size"], 3);

    // The schema is enforced: a widget without the required color is rejected.
    let mut bad = DynamicObject::new("bad", &ApiResource::from_gvk(&widget_gvk()));
    bad.data = serde_json::json!({ "spec": { "size": 1 } });
    let err = widgets(client.clone())
        .create(&PostParams::default(), &bad)
        .await;
    assert!(
        matches!(&err, Err(kube::Error::Api(status)) if status.is_invalid()),
        "expected Invalid, got {err:?}"
    );

    // A service-account token is signed by the apiserver and accepted by TokenReview.
    let sa = ServiceAccount {
        metadata: ObjectMeta {
            name: Some(SA_NAME.into()),
            ..ObjectMeta::default()
        },
        ..ServiceAccount::default()
    };
    let accounts: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    accounts.create(&PostParams::default(), &sa).await?;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = accounts
        .create_token_request(SA_NAME, &PostParams::default(), &request)
        .await?
        .status
        .context("TokenRequest has no status")?
        .token;
    assert!(!token.is_empty());

    let review = TokenReview {
        spec: TokenReviewSpec {
            token: Some(token.clone()),
            ..TokenReviewSpec::default()
        },
        ..TokenReview::default()
    };
    let reviewed = Api::<TokenReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await?
        .status
        .context("TokenReview has no status")?;
    assert_eq!(reviewed.authenticated, Some(true), "review: {reviewed:?}");
    let username = reviewed.user.and_then(|user| user.username);
    assert_eq!(
        username.as_deref(),
        Some("system:serviceaccount:default:smoke-reader")
    );

    // RBAC is on: the service account has no role, so listing secrets is forbidden.
    let as_sa = cluster.client_with_token(&token).await?;
    let denied = Api::<Secret>::namespaced(as_sa, "default")
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(&denied, Err(kube::Error::Api(status)) if status.is_forbidden()),
        "expected Forbidden, got {denied:?}"
    );

    // The apiserver stops (requests fail), then comes back on the same port and certs
    // with the data still in etcd.
    let stopped = Instant::now();
    cluster.stop_apiserver();
    println!("apiserver stopped in {:?}", stopped.elapsed());
    assert!(widgets(client.clone()).get("first").await.is_err());
    let restarted = Instant::now();
    cluster.restart_apiserver()?;
    println!("apiserver restarted in {:?}", restarted.elapsed());
    let widget = widgets(client).get("first").await?;
    assert_eq!(widget.data["spec"]["color"], "blue");
    Ok(())
}
