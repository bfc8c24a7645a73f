//! Encodings at the CA's edges: certificates and private keys read from operator-supplied
//! PEM (with an error naming the part and saying what to do), DER certificates written back
//! as PEM, and certificate times as `SystemTime` and as text. The PEM framing is
//! rustls-pki-types'; the key itself is loaded by rcgen.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use rcgen::KeyPair;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::CaError;

/// Every `CERTIFICATE` block of `text`, in order; at least one.
pub(crate) fn parse_certs(text: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, CaError> {
    let mut certs = Vec::new();
    for (n, item) in CertificateDer::pem_slice_iter(text.as_bytes()).enumerate() {
        let cert = item.map_err(|err| {
            CaError::invalid(what, format!("PEM block {}: {}", n + 1, describe(&err)))
        })?;
        certs.push(cert.into_owned());
    }
    if certs.is_empty() {
        return Err(CaError::invalid(
            what,
            "no PEM CERTIFICATE block (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    Ok(certs)
}

/// The private key of `text`. Only PKCS#8 is accepted because rcgen with the ring backend
/// (the only crypto provider in this tree) loads nothing else; the other encodings are
/// named so the operator knows exactly what to convert.
pub(crate) fn parse_key(text: &str, what: &str) -> Result<KeyPair, CaError> {
    let key = PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|err| match err {
        pem::Error::NoItemsFound => CaError::invalid(
            what,
            "no PEM private key block (expected -----BEGIN PRIVATE KEY-----)",
        ),
        err => CaError::invalid(what, describe(&err)),
    })?;
    let encoding = match &key {
        PrivateKeyDer::Pkcs8(_) => None,
        PrivateKeyDer::Pkcs1(_) => Some("a PKCS#1 RSA PRIVATE KEY"),
        PrivateKeyDer::Sec1(_) => Some("a SEC1 EC PRIVATE KEY"),
        _ => Some("an unknown private key encoding"),
    };
    if let Some(encoding) = encoding {
        return Err(CaError::invalid(
            what,
            format!(
                "{encoding}; weft reads PKCS#8 keys (-----BEGIN PRIVATE KEY-----): set \
                 spec.privateKey.encoding: PKCS8 on the cert-manager Certificate, or convert \
                 with `openssl pkcs8 -topk8 -nocrypt`"
            ),
        ));
    }
    let pair = KeyPair::try_from(&key).map_err(|_| {
        CaError::invalid(
            what,
            "not a supported private key: the CA key must be ECDSA P-256, ECDSA P-384 or RSA \
             (2048 to 4096 bits)",
        )
    })?;
    // rcgen also loads Ed25519, which BoringSSL-based Envoy builds and many gRPC stacks do not
    // accept in a certificate chain; refuse it here rather than issue unusable SVIDs.
    let supported = [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_RSA_SHA256,
    ];
    if !supported.iter().any(|alg| pair.is_compatible(alg)) {
        let kind = if pair.is_compatible(&rcgen::PKCS_ED25519) {
            "an Ed25519 key"
        } else {
            "this key type"
        };
        return Err(CaError::invalid(
            what,
            format!("{kind} is not supported for the CA: use ECDSA P-256, ECDSA P-384 or RSA"),
        ));
    }
    Ok(pair)
}

/// One certificate as PEM, 64 base64 characters a line (RFC 7468).
pub(crate) fn cert_pem(der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 60);
    out.push_str("-----BEGIN CERTIFICATE-----\n");
    // The base64 alphabet is ASCII, so splitting by bytes never cuts a character.
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// A certificate time (seconds since the epoch, possibly before it) as `SystemTime`.
pub(crate) fn system_time(unix_seconds: i64) -> SystemTime {
    let magnitude = Duration::from_secs(unix_seconds.unsigned_abs());
    if unix_seconds >= 0 {
        UNIX_EPOCH.checked_add(magnitude).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(magnitude).unwrap_or(UNIX_EPOCH)
    }
}

/// pki-types' own messages print byte strings as lists of numbers; these say it in words.
fn describe(err: &pem::Error) -> String {
    match err {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "PEM block is not closed (no -----END {}----- line)",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("malformed PEM line {:?}", String::from_utf8_lossy(line))
        }
        pem::Error::Base64Decode(detail) => format!("PEM body is not valid base64 ({detail})"),
        other => other.to_string(),
    }
}
