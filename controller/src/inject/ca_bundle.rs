//! Keeps the MutatingWebhookConfiguration's `caBundle` equal to the mesh's trust bundle, so
//! the apiserver trusts the webhook's certificate (issued by the mesh CA) without the chart
//! having to know the CA. Checked at start and every minute (an operator's `helm upgrade`
//! rewrites the configuration without the bundle); written with a JSON patch per webhook
//! entry, and only when it differs. Every replica does this: the writes are idempotent.

use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

/// How often the bundle is compared again.
const RECHECK: Duration = Duration::from_secs(60);

/// Runs until the process ends; logs (does not fail) when the configuration is missing or
/// cannot be written, and tries again.
pub async fn keep_ca_bundle(client: Client, name: String, bundle_pem: String) {
    let api: Api<MutatingWebhookConfiguration> = Api::all(client);
    let mut reported = false;
    loop {
        match sync(&api, &name, bundle_pem.as_bytes()).await {
            Ok(0) => {}
            Ok(written) => {
                tracing::info!(%name, written, "webhook caBundle updated");
                reported = false;
            }
            Err(err) if !reported => {
                tracing::warn!(%name, %err, "cannot keep the webhook's caBundle current");
                eprintln!("weft-controller: MutatingWebhookConfiguration {name}: {err}");
                reported = true;
            }
            Err(_) => {}
        }
        tokio::time::sleep(RECHECK).await;
    }
}

/// Writes the bundle into every webhook entry that lacks it; returns how many were written.
async fn sync(
    api: &Api<MutatingWebhookConfiguration>,
    name: &str,
    bundle: &[u8],
) -> Result<usize, kube::Error> {
    let config = api.get(name).await?;
    let stale: Vec<usize> = config
        .webhooks
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, hook)| {
            hook.client_config.ca_bundle.as_ref() != Some(&ByteString(bundle.to_vec()))
        })
        .map(|(i, _)| i)
        .collect();
    if stale.is_empty() {
        return Ok(0);
    }
    let encoded = serde_json::to_value(ByteString(bundle.to_vec())).unwrap_or_default();
    let ops: Vec<serde_json::Value> = stale
        .iter()
        .map(|i| json!({ "op": "add", "path": format!("/webhooks/{i}/clientConfig/caBundle"), "value": encoded }))
        .collect();
    let patch: json_patch::Patch =
        serde_json::from_value(serde_json::Value::Array(ops)).map_err(kube::Error::SerdeError)?;
    api.patch(name, &PatchParams::default(), &Patch::<()>::Json(patch))
        .await?;
    Ok(stale.len())
}
