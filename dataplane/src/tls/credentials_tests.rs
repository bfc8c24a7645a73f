use std::time::{Duration, SystemTime};

use rcgen::PublicKeyData;
use rustls_pki_types::CertificateDer;

use super::*;
use crate::tls::peer_identity;
use crate::tls::testca::{HOUR, ID_A, ID_C, TestCa};

fn key() -> WorkloadKey {
    WorkloadKey::generate().unwrap()
}

#[test]
fn the_csr_is_for_the_key_and_names_nobody() {
    let key = key();
    let csr = rcgen::CertificateSigningRequestParams::from_pem(&key.csr_pem().unwrap()).unwrap();
    assert_eq!(csr.public_key.der_bytes(), key.public_key_raw());
    assert!(csr.params.subject_alt_names.is_empty());
    assert_eq!(csr.params.distinguished_name.iter().count(), 0);
}

#[test]
fn a_good_answer_is_kept_with_its_identity_and_validity() {
    let ca = TestCa::new("root");
    let key = key();
    let not_before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    // X.509 times are whole seconds.
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let not_after = SystemTime::UNIX_EPOCH + Duration::from_secs(now.as_secs()) + 48 * HOUR;
    let leaf = ca.sign_valid(&key, &[ID_A], not_before, not_after);
    let credentials = Credentials::from_response(&key, &ca.response_with(leaf, ID_A)).unwrap();
    assert_eq!(credentials.spiffe_id, ID_A.parse().unwrap());
    assert_eq!(credentials.not_before, not_before);
    assert_eq!(credentials.not_after, not_after);
    assert_eq!(credentials.chain.len(), 1);
    assert_eq!(credentials.trust_bundle.len(), 1);
    assert_eq!(
        peer_identity(&credentials.chain[0]),
        Some(credentials.spiffe_id.clone())
    );
    assert_eq!(credentials.key.secret_der(), key.private_key().secret_der());
}

#[test]
fn a_chain_through_an_intermediate_verifies_against_the_root() {
    let intermediate = TestCa::new("root").intermediate("intermediate");
    let key = key();
    let credentials = Credentials::from_response(&key, &intermediate.response(&key, ID_A)).unwrap();
    assert_eq!(credentials.chain.len(), 2);
    assert_eq!(credentials.trust_bundle.len(), 1);
}

#[test]
fn a_certificate_for_another_key_is_refused() {
    let ca = TestCa::new("root");
    let (mine, theirs) = (key(), key());
    let answer = ca.response(&theirs, ID_A);
    let err = Credentials::from_response(&mine, &answer).unwrap_err();
    assert!(matches!(err, TlsError::KeyMismatch), "{err}");
}

#[test]
fn a_certificate_for_another_identity_than_the_answer_says_is_refused() {
    let ca = TestCa::new("root");
    let key = key();
    let answer = ca.response_with(ca.sign(&key, &[ID_C]), ID_A);
    let err = Credentials::from_response(&key, &answer).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("the leaf certificate is for {ID_C}, but the controller's answer says {ID_A}")
    );

    let answer = ca.response_with(ca.sign(&key, &["https://example.com/"]), ID_A);
    let err = Credentials::from_response(&key, &answer).unwrap_err();
    assert!(matches!(err, TlsError::NoSpiffeId), "{err}");
}

#[test]
fn any_of_several_uri_sans_may_be_the_identity() {
    let ca = TestCa::new("root");
    let key = key();
    let answer = ca.response_with(ca.sign(&key, &["https://example.com/", ID_A]), ID_A);
    let credentials = Credentials::from_response(&key, &answer).unwrap();
    assert_eq!(
        peer_identity(&credentials.chain[0]),
        Some(ID_A.parse().unwrap())
    );
}

#[test]
fn a_chain_from_another_ca_than_the_bundle_is_refused() {
    let (ca, other) = (TestCa::new("root"), TestCa::new("other root"));
    let key = key();
    let mut answer = other.response(&key, ID_A);
    answer.trust_bundle = ca.root.clone();
    let err = Credentials::from_response(&key, &answer).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Untrusted {
                source: webpki::Error::UnknownIssuer,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_expired_certificate_is_refused() {
    let ca = TestCa::new("root");
    let key = key();
    let now = SystemTime::now();
    let leaf = ca.sign_valid(&key, &[ID_A], now - 2 * HOUR, now - HOUR);
    let err = Credentials::from_response(&key, &ca.response_with(leaf, ID_A)).unwrap_err();
    assert!(
        matches!(
            err,
            TlsError::Untrusted {
                source: webpki::Error::CertExpired { .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn malformed_answers_are_refused_with_what_is_wrong() {
    let ca = TestCa::new("root");
    let key = key();
    let good = ca.response(&key, ID_A);

    let mut answer = good.clone();
    answer.cert_chain.clear();
    assert!(matches!(
        Credentials::from_response(&key, &answer),
        Err(TlsError::EmptyChain)
    ));

    let mut answer = good.clone();
    answer.trust_bundle = String::new();
    assert!(matches!(
        Credentials::from_response(&key, &answer),
        Err(TlsError::EmptyBundle)
    ));

    let mut answer = good.clone();
    answer.cert_chain =
        vec!["-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n".into()];
    let err = Credentials::from_response(&key, &answer).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the cert_chain from the controller is not valid PEM"),
        "{err}"
    );

    let mut answer = good.clone();
    // "not a certificate", base64.
    answer.cert_chain = vec![
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n".into(),
    ];
    let err = Credentials::from_response(&key, &answer).unwrap_err();
    assert!(matches!(err, TlsError::BadCertificate { .. }), "{err}");

    let mut answer = good;
    answer.spiffe_id = "spiffe://cluster.local/ns/a".into();
    assert!(matches!(
        Credentials::from_response(&key, &answer),
        Err(TlsError::BadSpiffeId(_))
    ));
}

#[test]
fn peer_identity_is_none_without_a_spiffe_id() {
    let ca = TestCa::new("root");
    let key = key();
    let leaf = ca.sign(&key, &["https://example.com/"]);
    let der = CertificateDer::from_pem_slice(leaf.as_bytes()).unwrap();
    assert_eq!(peer_identity(&der), None);
    assert_eq!(peer_identity(&CertificateDer::from(vec![1, 2, 3])), None);
}
