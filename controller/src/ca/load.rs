//! Checks on CA material in cert-manager's shape (`tls.crt`: the CA certificate, possibly
//! followed by its issuers; `tls.key`: its key; `ca.crt`: the root(s)). Everything that
//! would make issued certificates unusable is refused here, at startup, with the part
//! named, instead of surfacing later as handshake failures all over the mesh.

use rcgen::{Issuer, PublicKeyData as _};
use rustls_pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use super::CaError;
use super::authority::Inner;
use super::pem::{cert_pem, parse_certs, parse_key, system_time};

const TLS_CRT: &str = "tls.crt";
const TLS_KEY: &str = "tls.key";
const CA_CRT: &str = "ca.crt";

/// The checked CA, ready to sign.
pub(super) fn check(
    cert_pem_text: &str,
    key_pem_text: &str,
    bundle_pem_text: Option<&str>,
    trust_domain: &str,
) -> Result<Inner, CaError> {
    let cert_ders = parse_certs(cert_pem_text, TLS_CRT)?;
    let key = parse_key(key_pem_text, TLS_KEY)?;
    let certs = parse_all(&cert_ders, TLS_CRT)?;
    let Some(ca) = certs.first() else {
        return Err(CaError::invalid(TLS_CRT, "no certificate"));
    };
    let subject = ca.subject().to_string();

    check_is_ca(ca, &subject)?;
    if !ca.validity().is_valid() {
        return Err(CaError::invalid(
            TLS_CRT,
            format!(
                "the CA certificate ({subject}) is not valid now: valid from {} until {}",
                ca.validity().not_before,
                ca.validity().not_after
            ),
        ));
    }
    // The key's public half, as it appears in a certificate's SubjectPublicKeyInfo BIT
    // STRING (the EC point, or the RSAPublicKey), compared with the certificate's.
    if key.der_bytes() != ca.public_key().subject_public_key.data.as_ref() {
        return Err(CaError::invalid(
            TLS_KEY,
            format!("does not match tls.crt: it is not the key of the CA certificate ({subject})"),
        ));
    }
    check_subject_reproducible(ca, &subject)?;
    check_chain_order(&certs)?;

    let bundle_ders = match bundle_pem_text {
        Some(text) => parse_certs(text, CA_CRT)?,
        None if is_self_signed(ca) => vec![cert_ders[0].clone()],
        None => {
            return Err(CaError::invalid(
                CA_CRT,
                format!(
                    "missing: the CA certificate ({subject}) is an intermediate (issued by {}), \
                     so ca.crt must hold the root(s) the mesh trusts",
                    ca.issuer()
                ),
            ));
        }
    };
    let bundle = parse_all(&bundle_ders, CA_CRT)?;
    check_anchored(&certs, &cert_ders, &bundle, &bundle_ders)?;

    // What follows the leaf in every issued chain: the CA certificate and its issuers, but
    // never a root (peers have the roots from the bundle; sending one only costs bytes and
    // invites peers to trust what they were sent).
    let mut chain_pem = Vec::new();
    let mut not_after = system_time(ca.validity().not_after.timestamp());
    for (cert, der) in certs.iter().zip(&cert_ders) {
        if is_self_signed(cert) {
            break;
        }
        chain_pem.push(cert_pem(der));
        // A chain verifies only while every certificate in it is valid.
        not_after = not_after.min(system_time(cert.validity().not_after.timestamp()));
    }
    let not_before = system_time(ca.validity().not_before.timestamp());

    let issuer = Issuer::from_ca_cert_der(&cert_ders[0], key).map_err(|err| {
        CaError::invalid(
            TLS_CRT,
            format!("cannot be used as an issuer by rcgen: {err}"),
        )
    })?;
    let key_pem = issuer.key().serialize_pem();
    Ok(Inner {
        trust_domain: trust_domain.to_owned(),
        issuer,
        cert_pem: cert_ders.iter().map(|der| cert_pem(der)).collect(),
        key_pem,
        bundle_pem: bundle_ders.iter().map(|der| cert_pem(der)).collect(),
        chain_pem,
        ca_der: cert_ders[0].to_vec(),
        subject,
        not_before,
        not_after,
    })
}

fn parse_all<'a>(
    ders: &'a [CertificateDer<'static>],
    what: &str,
) -> Result<Vec<X509Certificate<'a>>, CaError> {
    ders.iter()
        .enumerate()
        .map(|(n, der)| match X509Certificate::from_der(der) {
            Ok(([], cert)) => Ok(cert),
            Ok(_) => Err(CaError::invalid(
                what,
                format!(
                    "certificate {}: trailing bytes after the certificate",
                    n + 1
                ),
            )),
            Err(err) => Err(CaError::invalid(
                what,
                format!("certificate {}: not an X.509 certificate: {err}", n + 1),
            )),
        })
        .collect()
}

fn check_is_ca(ca: &X509Certificate<'_>, subject: &str) -> Result<(), CaError> {
    let is_ca = matches!(ca.basic_constraints(), Ok(Some(bc)) if bc.value.ca);
    if !is_ca {
        return Err(CaError::invalid(
            TLS_CRT,
            format!(
                "the certificate ({subject}) is not a CA: it lacks basic constraints CA:TRUE, \
                 so the certificates it signed would be rejected"
            ),
        ));
    }
    match ca.key_usage() {
        Ok(Some(usage)) if !usage.value.key_cert_sign() => Err(CaError::invalid(
            TLS_CRT,
            format!("the CA certificate ({subject}) lacks the keyCertSign key usage"),
        )),
        Ok(_) => Ok(()),
        Err(err) => Err(CaError::invalid(
            TLS_CRT,
            format!("the CA certificate ({subject}) has a malformed key usage: {err}"),
        )),
    }
}

/// rcgen writes the issuer name of what it signs by re-encoding the CA's subject; it
/// cannot represent (and would panic on) a name component with other than one attribute.
fn check_subject_reproducible(ca: &X509Certificate<'_>, subject: &str) -> Result<(), CaError> {
    if ca.subject().iter().all(|rdn| rdn.iter().count() == 1) {
        return Ok(());
    }
    Err(CaError::invalid(
        TLS_CRT,
        format!(
            "the CA's subject ({subject}) has an empty or multi-valued name component, which \
             cannot be reproduced as the issuer of the certificates it signs"
        ),
    ))
}

/// tls.crt is the CA certificate, then its issuer, then that one's issuer...
fn check_chain_order(certs: &[X509Certificate<'_>]) -> Result<(), CaError> {
    for (n, pair) in certs.windows(2).enumerate() {
        let [child, parent] = pair else { continue };
        if !issued_by(child, parent) {
            return Err(CaError::invalid(
                TLS_CRT,
                format!(
                    "certificate {} ({}) is not issued by certificate {} ({}): tls.crt must be \
                     the CA certificate followed by its issuers, in order",
                    n + 1,
                    child.subject(),
                    n + 2,
                    parent.subject()
                ),
            ));
        }
    }
    Ok(())
}

/// The top of tls.crt must be one of the roots or be issued by one, or the bundle that
/// peers verify against would not verify what this CA issues.
fn check_anchored(
    certs: &[X509Certificate<'_>],
    cert_ders: &[CertificateDer<'static>],
    bundle: &[X509Certificate<'_>],
    bundle_ders: &[CertificateDer<'static>],
) -> Result<(), CaError> {
    let anchored = certs.iter().zip(cert_ders).any(|(cert, der)| {
        bundle_ders.contains(der) || bundle.iter().any(|root| issued_by(cert, root))
    });
    if anchored {
        return Ok(());
    }
    let top = certs.last().map(|cert| cert.subject().to_string());
    Err(CaError::invalid(
        CA_CRT,
        format!(
            "none of its certificates is tls.crt's CA or issued it ({}): ca.crt must hold \
             the root the CA chains to",
            top.unwrap_or_default()
        ),
    ))
}

fn is_self_signed(cert: &X509Certificate<'_>) -> bool {
    issued_by(cert, cert)
}

/// Names match byte for byte (as path building compares them) and the signature verifies.
/// (x509-parser's `verify_signature` exists through its `verify` feature, which rcgen's
/// `ring` feature turns on; rcgen's own CSR parsing depends on it the same way.)
pub(super) fn issued_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> bool {
    child.issuer().as_raw() == parent.subject().as_raw()
        && child.verify_signature(Some(parent.public_key())).is_ok()
}
