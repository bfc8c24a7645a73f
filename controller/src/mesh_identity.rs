//! Startup of the controller's identity side: which CA signs (loaded, supplied or generated
//! once and persisted), how proxies authenticate, and the xDS-over-TLS listener that also
//! serves certificates. Kept apart from `lib.rs` so the wiring there stays one screen.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::auth::{Authenticator, TokenFile};
use crate::ca::{self, CertificateAuthority, Created};
use crate::certs::ServingIdentity;
use crate::{Settings, SourceMode};

/// The CA the controller signs with, from the flags: `--ca-dir` (files), `--ca-secret`
/// (Kubernetes), or generated once and persisted (Secret `weft-ca` in `--namespace`, or
/// `--state-dir` in local mode).
pub async fn certificate_authority(
    settings: &Settings,
    mode: &SourceMode,
    client: Option<&kube::Client>,
) -> anyhow::Result<CertificateAuthority> {
    let domain = &settings.trust_domain;
    if let Some(dir) = &settings.ca_dir {
        let ca = ca::load_user_files(dir, domain)?;
        eprintln!("weft-controller: CA from {} (user supplied)", dir.display());
        return Ok(ca);
    }
    let (ca, created, place) = match (mode, client) {
        (SourceMode::Kubernetes(_), Some(client)) => {
            let namespace = &settings.namespace;
            if let Some(name) = &settings.ca_secret {
                let ca = ca::load_user_secret(client.clone(), namespace, name, domain).await?;
                eprintln!("weft-controller: CA from Secret {namespace}/{name} (user supplied)");
                return Ok(ca);
            }
            let (ca, created) =
                ca::load_or_create_secret(client.clone(), namespace, CA_SECRET, domain).await?;
            (ca, created, format!("Secret {namespace}/{CA_SECRET}"))
        }
        _ => {
            let dir = state_dir(settings);
            let (ca, created) = ca::load_or_create_in_dir(&dir, domain)?;
            (ca, created, dir.display().to_string())
        }
    };
    let verb = match created {
        Created::Created => "generated a new root CA, kept in",
        Created::Loaded => "root CA from",
    };
    eprintln!("weft-controller: {verb} {place}");
    Ok(ca)
}

/// The Secret a generated CA is kept in (Kubernetes mode).
pub const CA_SECRET: &str = "weft-ca";

pub(crate) fn state_dir(settings: &Settings) -> PathBuf {
    settings.state_dir.clone().unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        home.join(".local/state/weft-controller")
    })
}

/// How proxies prove who they are: TokenReview in Kubernetes mode, `--token-file` in local
/// mode, nothing otherwise (local development: config for anyone, no certificates).
pub fn authenticator(
    settings: &Settings,
    client: Option<&kube::Client>,
) -> anyhow::Result<Authenticator> {
    if let Some(client) = client {
        return Ok(Authenticator::token_review(
            client.clone(),
            &settings.token_audience,
        ));
    }
    match &settings.token_file {
        Some(path) => Ok(Authenticator::TokenFile(Arc::new(TokenFile::open(path)?))),
        None => Ok(Authenticator::Disabled),
    }
}

/// The serving identity for xDS over TLS at `addr`: the configured DNS names, plus the
/// address's IP (and 127.0.0.1 when it listens on every interface).
pub fn serving_identity(
    settings: &Settings,
    ca: &CertificateAuthority,
    addr: SocketAddr,
) -> anyhow::Result<Arc<ServingIdentity>> {
    serving(settings, ca, settings.xds_dns_names.clone(), addr)
}

/// The webhook's serving identity: `--webhook-dns-names` and the address's IP.
pub fn webhook_identity(
    settings: &Settings,
    ca: &CertificateAuthority,
    addr: SocketAddr,
) -> anyhow::Result<Arc<ServingIdentity>> {
    serving(settings, ca, settings.webhook_dns_names.clone(), addr)
}

fn serving(
    settings: &Settings,
    ca: &CertificateAuthority,
    dns_names: Vec<String>,
    addr: SocketAddr,
) -> anyhow::Result<Arc<ServingIdentity>> {
    let mut ips = vec![addr.ip()];
    if addr.ip().is_unspecified() {
        ips = vec![std::net::Ipv4Addr::LOCALHOST.into()];
    }
    let id = weft_common::spiffe::SpiffeId::new(
        &settings.trust_domain,
        &settings.namespace,
        "weft-controller",
    );
    Ok(Arc::new(ServingIdentity::new(
        ca.clone(),
        dns_names,
        ips,
        id,
    )?))
}

/// The injection webhook: `--injection-config` read and checked, and the trust bundle.
pub fn webhook(
    settings: &Settings,
    ca: &CertificateAuthority,
) -> anyhow::Result<Arc<crate::inject::WebhookServer>> {
    let path = settings
        .injection_config
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("--webhook-addr needs --injection-config"))?;
    let text = std::fs::read_to_string(path)
        .map_err(|err| anyhow::anyhow!("--injection-config {}: {err}", path.display()))?;
    let config: crate::inject::InjectionConfig = serde_saphyr::from_str(&text)
        .map_err(|err| anyhow::anyhow!("--injection-config {}: {err}", path.display()))?;
    Ok(Arc::new(crate::inject::WebhookServer {
        config,
        root_pem: ca.trust_bundle_pem().to_owned(),
    }))
}
