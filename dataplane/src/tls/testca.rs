//! A throwaway CA for the tests: signs workload keys' CSRs the way the controller does (the
//! identity from the caller, not from the CSR) and answers with a `CertificateResponse`.

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CertifiedIssuer,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose, SanType,
};
use weft_common::ca_api::CertificateResponse;

use super::{Credentials, TlsConfigs, WorkloadKey};

pub const ID_A: &str = "spiffe://cluster.local/ns/a/sa/b";
pub const ID_C: &str = "spiffe://cluster.local/ns/c/sa/d";

pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// Intermediates between a leaf and the root, nearest the leaf first (PEM).
    intermediates: Vec<String>,
    /// The root (PEM): the trust bundle.
    pub root: String,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let issuer =
            CertifiedIssuer::self_signed(ca_params(name), KeyPair::generate().unwrap()).unwrap();
        let root = issuer.pem();
        Self {
            issuer,
            intermediates: Vec::new(),
            root,
        }
    }

    /// An intermediate CA under this one: its leaves' chains carry it, the bundle is still
    /// this CA's root.
    pub fn intermediate(&self, name: &str) -> Self {
        let issuer = CertifiedIssuer::signed_by(
            ca_params(name),
            KeyPair::generate().unwrap(),
            &*self.issuer,
        )
        .unwrap();
        let mut intermediates = vec![issuer.pem()];
        intermediates.extend(self.intermediates.iter().cloned());
        Self {
            issuer,
            intermediates,
            root: self.root.clone(),
        }
    }

    /// A leaf for `key`'s CSR naming `uris`, valid for a day from an hour ago, for server
    /// and client use. PEM.
    pub fn sign(&self, key: &WorkloadKey, uris: &[&str]) -> String {
        let now = SystemTime::now();
        self.sign_valid(key, uris, now - HOUR, now + 24 * HOUR)
    }

    pub fn sign_valid(
        &self,
        key: &WorkloadKey,
        uris: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> String {
        self.sign_csr(&key.csr_pem().unwrap(), uris, not_before, not_after)
    }

    /// Signs a PEM CSR as the controller does: the identity is `uris`, whatever the CSR says.
    pub fn sign_csr(
        &self,
        csr: &str,
        uris: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> String {
        let mut csr = CertificateSigningRequestParams::from_pem(csr).unwrap();
        csr.params.subject_alt_names = uris
            .iter()
            .map(|uri| SanType::URI((*uri).try_into().unwrap()))
            .collect();
        csr.params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        csr.params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        csr.params.not_before = not_before.into();
        csr.params.not_after = not_after.into();
        csr.signed_by(&*self.issuer).unwrap().pem()
    }

    /// The controller's answer carrying `leaf` (PEM) and this CA's chain and bundle.
    pub fn response_with(&self, leaf: String, spiffe_id: &str) -> CertificateResponse {
        let mut cert_chain = vec![leaf];
        cert_chain.extend(self.intermediates.iter().cloned());
        CertificateResponse {
            cert_chain,
            trust_bundle: self.root.clone(),
            spiffe_id: spiffe_id.to_owned(),
        }
    }

    /// The controller's answer to `key`'s CSR for `spiffe_id`.
    pub fn response(&self, key: &WorkloadKey, spiffe_id: &str) -> CertificateResponse {
        self.response_with(self.sign(key, &[spiffe_id]), spiffe_id)
    }

    /// Checked credentials for a new key named `spiffe_id`.
    pub fn credentials(&self, spiffe_id: &str) -> Credentials {
        let key = WorkloadKey::generate().unwrap();
        Credentials::from_response(&key, &self.response(&key, spiffe_id)).unwrap()
    }

    pub fn configs(&self, spiffe_id: &str) -> TlsConfigs {
        TlsConfigs::new(&self.credentials(spiffe_id)).unwrap()
    }
}

pub const HOUR: Duration = Duration::from_secs(3600);
