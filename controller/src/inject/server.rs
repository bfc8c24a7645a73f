//! The admission webhook's HTTPS server: `POST /inject` takes an AdmissionReview of a Pod
//! and answers with [`inject`](super::inject)'s JSON patch. Its certificate comes from the
//! mesh CA (so the webhook configuration's `caBundle` is the mesh's trust bundle). A review
//! that cannot be read is answered 400 with the reason; a Pod that cannot be injected is
//! allowed unchanged (the reason is logged): the webhook never blocks a Pod over its own
//! shortcomings; whether an unreachable webhook blocks Pods is the configuration's
//! `failurePolicy` (the chart's choice, see its values).

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use tokio::net::TcpListener;
use tokio_stream::StreamExt;

use super::{Injection, InjectionConfig, inject};

/// The largest AdmissionReview read (a Pod is far smaller; the apiserver caps objects at 1.5 MB).
const MAX_REVIEW_BYTES: usize = 3 * 1024 * 1024;

/// What the webhook needs to answer.
#[derive(Debug)]
pub struct WebhookServer {
    pub config: InjectionConfig,
    /// The mesh's trust bundle, given to the proxy to verify the controller.
    pub root_pem: String,
}

/// Serves the webhook on `listener` with TLS `tls` until the process ends.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    webhook: Arc<WebhookServer>,
) {
    let mut incoming = crate::certs::tls_incoming(listener, tls);
    while let Some(stream) = incoming.next().await {
        let Ok(stream) = stream else { continue };
        let webhook = webhook.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| respond(request, webhook.clone()));
            if let Err(err) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%err, "webhook connection ended with an error");
            }
        });
    }
}

async fn respond(
    request: Request<Incoming>,
    webhook: Arc<WebhookServer>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    if request.method() != Method::POST || request.uri().path() != "/inject" {
        return Ok(text(StatusCode::NOT_FOUND, "POST /inject only"));
    }
    let body = match Limited::new(request.into_body(), MAX_REVIEW_BYTES)
        .collect()
        .await
    {
        Ok(body) => body.to_bytes(),
        Err(err) => {
            return Ok(text(
                StatusCode::BAD_REQUEST,
                &format!("cannot read the body: {err}"),
            ));
        }
    };
    match answer(&body, &webhook) {
        Ok(json) => Ok(Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(json)))
            .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response"))),
        Err(reason) => Ok(text(StatusCode::BAD_REQUEST, &reason)),
    }
}

/// The AdmissionReview answer to `body`, as JSON; `Err` names what is wrong with the review.
pub(super) fn answer(body: &[u8], webhook: &WebhookServer) -> Result<Vec<u8>, String> {
    let review: AdmissionReview<Pod> =
        serde_json::from_slice(body).map_err(|err| format!("not an AdmissionReview: {err}"))?;
    let request: AdmissionRequest<Pod> = review
        .try_into()
        .map_err(|_| "the AdmissionReview has no request".to_owned())?;
    let mut response = AdmissionResponse::from(&request);
    let pod_name = request
        .object
        .as_ref()
        .and_then(|pod| {
            pod.metadata
                .name
                .clone()
                .or(pod.metadata.generate_name.clone())
        })
        .unwrap_or_default();
    match request.object.as_ref() {
        None => tracing::debug!("admission request without an object; allowed unchanged"),
        Some(pod) => match inject(pod, &webhook.config, &webhook.root_pem) {
            Injection::Skip(reason) => {
                tracing::debug!(namespace = ?request.namespace, pod = %pod_name, reason, "not injected")
            }
            Injection::Deny(reason) => {
                tracing::info!(namespace = ?request.namespace, pod = %pod_name, %reason, "pod denied");
                response = response.deny(reason);
            }
            Injection::Patch(ops) => {
                let patch: json_patch::Patch =
                    serde_json::from_value(serde_json::Value::Array(ops))
                        .map_err(|err| format!("internal: the patch does not parse: {err}"))?;
                response = response
                    .with_patch(patch)
                    .map_err(|err| format!("internal: the patch does not serialize: {err}"))?;
                tracing::info!(namespace = ?request.namespace, pod = %pod_name, "sidecar injected");
            }
        },
    }
    let review: AdmissionReview<DynamicObject> = response.into_review();
    serde_json::to_vec(&review).map_err(|err| format!("internal: {err}"))
}

fn text(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{message}\n"))));
    *response.status_mut() = status;
    response
}
