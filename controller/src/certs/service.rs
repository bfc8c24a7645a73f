//! `weft.ca.v1.CertificateService`: a proxy authenticated by its token (see `crate::auth`)
//! sends a CSR and gets a certificate for the identity the token proves. Whatever the CSR
//! asks for (subject, SANs) is ignored; only its public key is signed. A proxy that also
//! names its node (`x-weft-node-id` metadata) must name one in its own namespace, and the
//! certificate's expiry is shown for that node at `/debug/proxies`.

use std::sync::Arc;
use std::time::Duration;

use tonic::{Request, Response, Status};
use weft_common::ca_api::certificate_service_server::{
    CertificateService as CertificateApi, CertificateServiceServer,
};
use weft_common::ca_api::{CertificateRequest, CertificateResponse};

use crate::ads::ProxyRegistry;
use crate::auth::Authenticator;
use crate::ca::CertificateAuthority;

/// Metadata a proxy may send to tie its certificate to its xDS node.
pub const NODE_ID_METADATA: &str = "x-weft-node-id";

/// How long issued certificates live.
#[derive(Debug, Clone, Copy)]
pub struct IssuePolicy {
    /// The lifetime of every certificate, and the longest one a proxy may ask for.
    pub lifetime: Duration,
}

#[derive(Clone)]
pub struct CertificateService {
    ca: CertificateAuthority,
    auth: Authenticator,
    policy: IssuePolicy,
    registry: Arc<ProxyRegistry>,
}

impl CertificateService {
    pub fn new(
        ca: CertificateAuthority,
        auth: Authenticator,
        policy: IssuePolicy,
        registry: Arc<ProxyRegistry>,
    ) -> Self {
        Self {
            ca,
            auth,
            policy,
            registry,
        }
    }

    pub fn into_server(self) -> CertificateServiceServer<Self> {
        CertificateServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl CertificateApi for CertificateService {
    async fn create_certificate(
        &self,
        request: Request<CertificateRequest>,
    ) -> Result<Response<CertificateResponse>, Status> {
        let identity = self
            .auth
            .authenticate(request.metadata())
            .await?
            .ok_or_else(|| {
                Status::failed_precondition(
                    "the controller runs without proxy authentication (no --token-file in local \
                 mode), so it issues no certificates",
                )
            })?;
        let node_id = request
            .metadata()
            .get(NODE_ID_METADATA)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if let Some(node_id) = &node_id {
            check_node_namespace(node_id, &identity.namespace)?;
        }
        let spiffe_id = identity.spiffe_id(self.ca.trust_domain());
        let asked = request.get_ref().validity_seconds;
        let lifetime = match u64::try_from(asked) {
            Ok(seconds) if seconds > 0 => Duration::from_secs(seconds).min(self.policy.lifetime),
            _ => self.policy.lifetime,
        };
        let issued = self
            .ca
            .issue_for_csr(&request.get_ref().csr, &spiffe_id, lifetime)
            .map_err(|err| Status::invalid_argument(format!("csr: {err}")))?;
        tracing::info!(identity = %spiffe_id, node = node_id.as_deref().unwrap_or("-"),
            not_after = ?issued.not_after, "issued a workload certificate");
        if let Some(node_id) = &node_id {
            self.registry.record_certificate(node_id, issued.not_after);
        }
        Ok(Response::new(CertificateResponse {
            cert_chain: issued.chain_pem.clone(),
            trust_bundle: self.ca.trust_bundle_pem().to_owned(),
            spiffe_id: spiffe_id.to_string(),
        }))
    }
}

/// A node id `<pod>.<namespace>` (or one whose namespace is its last part) must name the
/// namespace the token proves.
pub fn check_node_namespace(node_id: &str, proven: &str) -> Result<(), Status> {
    let claimed = node_id.rsplit_once('.').map_or("", |(_, ns)| ns);
    crate::auth::check_namespace(node_id, claimed, proven)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_namespace_must_match_the_token() {
        assert!(check_node_namespace("web-1.team-a", "team-a").is_ok());
        let denied = check_node_namespace("web-1.kube-system", "team-a").unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert_eq!(
            denied.message(),
            "node id \"web-1.kube-system\" names namespace \"kube-system\", but the token is for namespace \"team-a\""
        );
        assert!(check_node_namespace("lonely", "team-a").is_err());
    }
}
