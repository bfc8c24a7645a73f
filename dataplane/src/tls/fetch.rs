//! Getting certificates from the controller: one CreateCertificate call
//! (`request_certificate`), and the task that keeps a valid certificate published for the
//! life of the process (`CertificateManager::spawn_rotation`).

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use weft_common::ca_api::CertificateRequest;
use weft_common::ca_api::certificate_service_client::CertificateServiceClient;

use super::rotation::{renew_at, retry_delay};
use super::{Credentials, TlsConfigs, TlsError, WorkloadKey};

/// The metadata that names the proxy's node (the controller's `certs::NODE_ID_METADATA`).
const NODE_ID_METADATA: &str = "x-weft-node-id";

/// Reads the ServiceAccount token; called before every request, because kubelet rotates
/// projected tokens in place and a token read once at start expires.
pub type TokenSource = Arc<dyn Fn() -> Result<String, String> + Send + Sync>;

/// The longest a rotation task sleeps at once. Tokio's clock stops while the machine is
/// suspended but certificates expire by the wall clock, so long waits are cut into pieces
/// and the wall clock is read again after each.
const MAX_NAP: Duration = Duration::from_secs(60);

/// Asks the controller for a certificate for `key`, proving who this proxy is with `token`
/// (surrounding whitespace, such as a token file's newline, is dropped), and checks the
/// answer (`Credentials::from_response`). `validity`: `None` for the controller's default.
/// `node_id`, when given, ties the certificate to this proxy's xDS node in the controller's
/// `/debug/proxies` (it must be in the token's namespace).
pub async fn request_certificate(
    channel: Channel,
    token: &str,
    node_id: Option<&str>,
    key: &WorkloadKey,
    validity: Option<Duration>,
) -> Result<Credentials, TlsError> {
    let validity_seconds = validity.map_or(0, |validity| {
        // 0 would mean "the default"; a sub-second request means "as short as possible".
        i64::try_from(validity.as_secs().max(1)).unwrap_or(i64::MAX)
    });
    let mut request = tonic::Request::new(CertificateRequest {
        csr: key.csr_pem()?,
        validity_seconds,
    });
    let bearer: MetadataValue<Ascii> = format!("Bearer {}", token.trim())
        .parse()
        .map_err(|_| TlsError::TokenNotAscii)?;
    request.metadata_mut().insert("authorization", bearer);
    if let Some(node_id) = node_id {
        let node_id = node_id.parse().map_err(|_| TlsError::NodeIdNotAscii)?;
        request.metadata_mut().insert(NODE_ID_METADATA, node_id);
    }
    let response = CertificateServiceClient::new(channel)
        .create_certificate(request)
        .await
        .map_err(|status| {
            let (code, message) = (code_name(status.code()), status.message().to_owned());
            match status.code() {
                Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => {
                    TlsError::Unreachable { code, message }
                }
                _ => TlsError::Refused { code, message },
            }
        })?;
    Credentials::from_response(key, response.get_ref())
}

/// Keeps this proxy's certificate fresh: where to ask, how to prove who it is, and for
/// how long to ask.
#[derive(Clone)]
pub struct CertificateManager {
    /// To the controller; tonic reconnects it by itself.
    pub channel: Channel,
    pub token: TokenSource,
    /// This proxy's xDS node id.
    pub node_id: String,
    /// `None`: the controller's default.
    pub validity: Option<Duration>,
}

impl CertificateManager {
    /// One certificate for a new key. Every renewal uses a fresh key, as istio-agent does: a
    /// key that leaked (it never should: it lives only in memory) is then only good until
    /// the certificate it belonged to expires, and generating a P-256 key costs
    /// microseconds.
    pub async fn fetch(&self) -> Result<Credentials, TlsError> {
        let token = (self.token)().map_err(TlsError::Token)?;
        let key = WorkloadKey::generate()?;
        let node_id = Some(self.node_id.as_str());
        request_certificate(self.channel.clone(), &token, node_id, &key, self.validity).await
    }

    /// Fetches the first certificate, publishes its configs on `configs`, then renews at
    /// `renew_at` of each certificate for as long as someone holds a receiver. A failed
    /// renewal is logged and retried after `retry_delay`; the published configs stay in
    /// force meanwhile (even past expiry: peers will refuse them then, which is louder and
    /// no less safe than serving no TLS at all). Before the first certificate, the watch
    /// holds `None`.
    pub fn spawn_rotation(self, configs: watch::Sender<Option<Arc<TlsConfigs>>>) -> JoinHandle<()> {
        tokio::spawn(async move { rotate(|| self.fetch(), configs, retry_delay).await })
    }
}

/// The rotation loop, with the fetch and the retry pacing as parameters so tests can drive
/// it without a controller.
pub(crate) async fn rotate<F, Fut>(
    mut fetch: F,
    configs: watch::Sender<Option<Arc<TlsConfigs>>>,
    retry: fn(u32) -> Duration,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Credentials, TlsError>>,
{
    let mut failures = 0u32;
    while !configs.is_closed() {
        let renewed = fetch()
            .await
            .and_then(|credentials| Ok((TlsConfigs::new(&credentials)?, credentials)));
        match renewed {
            Ok((tls, credentials)) => {
                failures = 0;
                let due = renew_at(SystemTime::now(), credentials.not_after, fastrand::f64());
                tracing::info!(
                    identity = %tls.identity,
                    expires_in = ?until(credentials.not_after),
                    renews_in = ?until(due),
                    "new workload certificate"
                );
                configs.send_replace(Some(Arc::new(tls)));
                // Never sooner than a first retry: a controller that issues certificates
                // already due for renewal (too short, or backdated too far) is not hammered.
                sleep_until(due.max(SystemTime::now() + retry(0))).await;
            }
            Err(err) => {
                let delay = retry(failures);
                failures = failures.saturating_add(1);
                let current = configs.borrow().as_ref().map(|tls| until(tls.not_after));
                tracing::warn!(
                    %err,
                    failures,
                    retry_in = ?delay,
                    current_expires_in = ?current,
                    "cannot get a workload certificate; the current one (if any) stays in force"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Whole seconds from now until `at` (zero once past), for logs.
fn until(at: SystemTime) -> Duration {
    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
    Duration::from_secs(left.as_secs())
}

/// Sleeps until the wall clock reaches `at` (see `MAX_NAP`).
async fn sleep_until(at: SystemTime) {
    while let Ok(left) = at.duration_since(SystemTime::now()) {
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(MAX_NAP)).await;
    }
}

/// The status code as gRPC spells it (tonic's `Display` gives a sentence instead).
fn code_name(code: Code) -> &'static str {
    weft_common::grpc::code_name(u32::try_from(code as i32).unwrap_or(u32::MAX))
}

#[cfg(test)]
#[path = "fetch_tests.rs"]
mod tests;
