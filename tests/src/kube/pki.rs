//! The throwaway PKI of a test cluster: a CA, the apiserver's serving certificate, a
//! `system:masters` admin client certificate and a service-account signing key pair.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use super::{ADMIN_USER, write};

/// PEM files the apiserver and clients need, all inside the cluster's temp dir.
pub(super) struct Pki {
    pub(super) ca_cert: PathBuf,
    pub(super) serving_cert: PathBuf,
    pub(super) serving_key: PathBuf,
    pub(super) sa_private_key: PathBuf,
    pub(super) sa_public_key: PathBuf,
    pub(super) ca_pem: String,
    pub(super) admin_cert_pem: String,
    pub(super) admin_key_pem: String,
}

impl Pki {
    /// Generates the CA, the serving and admin certs and the service-account key pair,
    /// and writes the files the apiserver reads into `dir`.
    pub(super) fn generate(dir: &Path) -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate().context("cannot generate the CA key")?;
        let ca_params = ca_params()?;
        let ca_pem = ca_params
            .self_signed(&ca_key)
            .context("cannot self-sign the CA")?
            .pem();
        let issuer = Issuer::new(ca_params, ca_key);

        let serving_key = KeyPair::generate().context("cannot generate the serving key")?;
        let serving_cert = serving_params()?
            .signed_by(&serving_key, &issuer)
            .context("cannot sign the serving cert")?;
        let admin_key = KeyPair::generate().context("cannot generate the admin key")?;
        let admin_cert = admin_params()?
            .signed_by(&admin_key, &issuer)
            .context("cannot sign the admin cert")?;
        let sa_key = KeyPair::generate().context("cannot generate the service-account key")?;

        let pki = Self {
            ca_cert: dir.join("ca.crt"),
            serving_cert: dir.join("apiserver.crt"),
            serving_key: dir.join("apiserver.key"),
            sa_private_key: dir.join("sa.key"),
            sa_public_key: dir.join("sa.pub"),
            ca_pem,
            admin_cert_pem: admin_cert.pem(),
            admin_key_pem: admin_key.serialize_pem(),
        };
        write(&pki.ca_cert, &pki.ca_pem)?;
        write(&pki.serving_cert, &serving_cert.pem())?;
        write(&pki.serving_key, &serving_key.serialize_pem())?;
        write(&pki.sa_private_key, &sa_key.serialize_pem())?;
        write(&pki.sa_public_key, &sa_key.public_key_pem())?;
        Ok(pki)
    }
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, "weft-test-ca");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn serving_params() -> anyhow::Result<CertificateParams> {
    let sans = [
        "127.0.0.1",
        "localhost",
        "kubernetes",
        "kubernetes.default.svc",
    ];
    let mut params = CertificateParams::new(sans.map(String::from).to_vec())
        .context("invalid serving cert SANs")?;
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

fn admin_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(DnType::CommonName, ADMIN_USER);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    Ok(params)
}
