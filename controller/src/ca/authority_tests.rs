//! Tests of the CA value: the generated root, and the checks on operator material.

use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, IsCa, Issuer, KeyPair};

use super::test_support::{TD, make_ca, user_hierarchy, verify_as_client, with_cert, workload};
use super::{CaError, CertificateAuthority};

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(86400);

/// The `what` of an `Invalid` error, so tests can check which part is blamed.
fn blamed(err: &CaError) -> &str {
    match err {
        CaError::Invalid { what, .. } => what,
        other => panic!("expected an Invalid error, got {other:?}"),
    }
}

#[test]
fn generated_root_is_a_p256_ca_for_the_trust_domain() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    assert_eq!(ca.trust_domain(), TD);
    assert_eq!(ca.trust_bundle_pem(), ca.cert_pem());
    assert!(ca.key_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
    assert!(
        KeyPair::from_pem(ca.key_pem())
            .unwrap()
            .is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256)
    );
    with_cert(ca.cert_pem(), |cert| {
        assert_eq!(
            cert.subject().to_string(),
            "CN=weft root CA, O=cluster.local"
        );
        assert_eq!(cert.subject(), cert.issuer());
        assert!(cert.basic_constraints().unwrap().unwrap().value.ca);
        let usage = cert.key_usage().unwrap().unwrap().value;
        assert!(usage.key_cert_sign() && usage.crl_sign());
        assert!(!usage.digital_signature());
        cert.verify_signature(None).unwrap();
    });
    let now = SystemTime::now();
    let not_before = super::test_support::not_before(ca.cert_pem());
    assert!(not_before <= now - HOUR + Duration::from_secs(5));
    assert!(not_before >= now - HOUR - Duration::from_secs(5));
    assert!(ca.not_after() > now + DAY * 3650 && ca.not_after() < now + DAY * 3660);
}

#[test]
fn debug_never_shows_the_key() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let debug = format!("{ca:?}");
    assert!(debug.contains("weft root CA") && debug.contains("[redacted]"));
    assert!(!debug.contains("PRIVATE"));
    let key_body: String = ca
        .key_pem()
        .lines()
        .nth(1)
        .unwrap()
        .chars()
        .take(20)
        .collect();
    assert!(!debug.contains(&key_body));
}

#[test]
fn the_ca_is_shareable() {
    fn shareable<T: Send + Sync + Clone + 'static>() {}
    shareable::<CertificateAuthority>();
}

#[test]
fn bad_trust_domain_is_refused() {
    for bad in ["", "Cluster.Local", "a/b", "cluster local"] {
        let err = CertificateAuthority::generate(bad).unwrap_err();
        assert!(matches!(err, CaError::TrustDomain(_)), "{bad:?}: {err}");
    }
}

#[test]
fn user_root_without_ca_crt_is_its_own_bundle() {
    let key = KeyPair::generate().unwrap();
    let root = make_ca("user root", &key, None, DAY);
    let ca = CertificateAuthority::from_pem(&root, &key.serialize_pem(), None, TD).unwrap();
    assert_eq!(
        super::test_support::der(ca.trust_bundle_pem()),
        super::test_support::der(&root)
    );
    let issued = ca
        .issue_for_csr(&super::test_support::csr(vec![]).0, &workload(), HOUR)
        .unwrap();
    assert_eq!(issued.chain_pem.len(), 1, "a root is never in the chain");
    verify_as_client(ca.trust_bundle_pem(), &issued.chain_pem).unwrap();
}

#[test]
fn user_intermediate_puts_itself_in_chains_and_the_root_in_the_bundle() {
    let user = user_hierarchy();
    // cert-manager may append the root to tls.crt; it must not end up in chains.
    let tls_crt = format!("{}{}", user.intermediate_pem, user.root_pem);
    let ca = CertificateAuthority::from_pem(
        &tls_crt,
        &user.intermediate_key_pem,
        Some(&user.root_pem),
        TD,
    )
    .unwrap();
    assert_eq!(
        super::test_support::der(ca.trust_bundle_pem()),
        super::test_support::der(&user.root_pem)
    );
    let (issued, _key) = ca.issue_with_new_key(&workload(), HOUR).unwrap();
    assert_eq!(issued.chain_pem.len(), 2);
    assert_eq!(
        super::test_support::der(&issued.chain_pem[1]),
        super::test_support::der(&user.intermediate_pem)
    );
    verify_as_client(ca.trust_bundle_pem(), &issued.chain_pem).unwrap();
    // Without the intermediate the leaf does not verify: the chain is what makes it work.
    assert!(verify_as_client(ca.trust_bundle_pem(), &issued.chain_pem[..1]).is_err());
}

#[test]
fn user_intermediate_without_ca_crt_blames_ca_crt() {
    let user = user_hierarchy();
    let err = CertificateAuthority::from_pem(
        &user.intermediate_pem,
        &user.intermediate_key_pem,
        None,
        TD,
    )
    .unwrap_err();
    assert_eq!(blamed(&err), "ca.crt", "{err}");
    assert!(err.to_string().contains("intermediate"), "{err}");
}

#[test]
fn unrelated_ca_crt_is_refused() {
    let user = user_hierarchy();
    let other_root = make_ca("other root", &KeyPair::generate().unwrap(), None, DAY);
    let err = CertificateAuthority::from_pem(
        &user.intermediate_pem,
        &user.intermediate_key_pem,
        Some(&other_root),
        TD,
    )
    .unwrap_err();
    assert_eq!(blamed(&err), "ca.crt", "{err}");
}

#[test]
fn wrong_key_blames_tls_key() {
    let key = KeyPair::generate().unwrap();
    let root = make_ca("user root", &key, None, DAY);
    let other = KeyPair::generate().unwrap().serialize_pem();
    let err = CertificateAuthority::from_pem(&root, &other, None, TD).unwrap_err();
    assert_eq!(blamed(&err), "tls.key");
    assert!(err.to_string().contains("does not match tls.crt"), "{err}");
}

#[test]
fn non_ca_certificate_is_refused() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["example.com".to_owned()]).unwrap();
    params.is_ca = IsCa::ExplicitNoCa;
    let leaf = params.self_signed(&key).unwrap().pem();
    let err = CertificateAuthority::from_pem(&leaf, &key.serialize_pem(), None, TD).unwrap_err();
    assert_eq!(blamed(&err), "tls.crt");
    assert!(err.to_string().contains("not a CA"), "{err}");
}

#[test]
fn expired_ca_is_refused() {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_before = (SystemTime::now() - DAY * 2).into();
    params.not_after = (SystemTime::now() - DAY).into();
    let root = params.self_signed(&key).unwrap().pem();
    let err = CertificateAuthority::from_pem(&root, &key.serialize_pem(), None, TD).unwrap_err();
    assert_eq!(blamed(&err), "tls.crt");
    assert!(err.to_string().contains("not valid now"), "{err}");
}

#[test]
fn rsa_ca_issues_verifiable_chains() {
    let key = KeyPair::from_pem(include_str!("testdata/rsa2048.pem")).unwrap();
    let root = make_ca("rsa root", &key, None, DAY);
    let ca = CertificateAuthority::from_pem(&root, &key.serialize_pem(), None, TD).unwrap();
    let issued = ca
        .issue_for_csr(&super::test_support::csr(vec![]).0, &workload(), HOUR)
        .unwrap();
    verify_as_client(ca.trust_bundle_pem(), &issued.chain_pem).unwrap();
}

#[test]
fn sec1_key_is_refused_with_advice() {
    let err = CertificateAuthority::from_pem(
        &make_ca("root", &KeyPair::generate().unwrap(), None, DAY),
        include_str!("testdata/ec_p256_sec1.pem"),
        None,
        TD,
    )
    .unwrap_err();
    assert_eq!(blamed(&err), "tls.key");
    assert!(err.to_string().contains("PKCS8"), "{err}");
}

#[test]
fn ed25519_key_is_refused() {
    let key = KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let root = make_ca("ed root", &key, None, DAY);
    let err = CertificateAuthority::from_pem(&root, &key.serialize_pem(), None, TD).unwrap_err();
    assert_eq!(blamed(&err), "tls.key");
    assert!(err.to_string().contains("Ed25519"), "{err}");
}

#[test]
fn garbage_and_misordered_tls_crt_are_refused() {
    let key = KeyPair::generate().unwrap().serialize_pem();
    let err = CertificateAuthority::from_pem("hello", &key, None, TD).unwrap_err();
    assert_eq!(blamed(&err), "tls.crt");
    assert!(
        err.to_string().contains("no PEM CERTIFICATE block"),
        "{err}"
    );

    let user = user_hierarchy();
    let unrelated = make_ca("unrelated", &KeyPair::generate().unwrap(), None, DAY);
    let err = CertificateAuthority::from_pem(
        &format!("{}{unrelated}", user.intermediate_pem),
        &user.intermediate_key_pem,
        Some(&user.root_pem),
        TD,
    )
    .unwrap_err();
    assert_eq!(blamed(&err), "tls.crt");
    assert!(err.to_string().contains("in order"), "{err}");
}

#[test]
fn ca_not_after_is_the_earliest_in_the_chain() {
    let root_key = KeyPair::generate().unwrap();
    let root_pem = make_ca("root", &root_key, None, DAY * 365);
    let root = Issuer::from_ca_cert_pem(&root_pem, root_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let intermediate = make_ca("short intermediate", &key, Some(&root), DAY);
    let ca =
        CertificateAuthority::from_pem(&intermediate, &key.serialize_pem(), Some(&root_pem), TD)
            .unwrap();
    assert_eq!(
        ca.not_after(),
        super::test_support::not_after(&intermediate)
    );
}
