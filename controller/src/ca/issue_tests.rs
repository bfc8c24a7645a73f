//! Tests of issuing: what a leaf carries (and what a CSR cannot make it carry), lifetimes,
//! and that peers verify what is issued.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, SystemTime};

use rcgen::{CustomExtension, KeyPair, PublicKeyData as _, SanType};
use weft_common::spiffe::SpiffeId;

use super::test_support::{
    TD, csr, make_ca, not_after, not_before, sans, verify_as_client, verify_as_server, with_cert,
    workload,
};
use super::{CaError, CertificateAuthority};

const HOUR: Duration = Duration::from_secs(3600);

fn near(a: SystemTime, b: SystemTime) -> bool {
    let diff = a
        .duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap();
    diff <= Duration::from_secs(5)
}

#[test]
fn generated_root_verifies_the_leaf_it_issues() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let (request, _key) = csr(vec![]);
    let issued = ca.issue_for_csr(&request, &workload(), HOUR).unwrap();
    assert_eq!(issued.chain_pem.len(), 1);
    assert_eq!(issued.chain_pem_joined(), issued.chain_pem[0]);
    verify_as_client(ca.trust_bundle_pem(), &issued.chain_pem).unwrap();
    // And the signature directly, with x509-parser.
    with_cert(ca.cert_pem(), |root| {
        with_cert(&issued.chain_pem[0], |leaf| {
            assert_eq!(leaf.issuer(), root.subject());
            leaf.verify_signature(Some(root.public_key())).unwrap();
        })
    });
}

#[test]
fn csr_subject_sans_and_extensions_are_ignored() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let (request, key) = csr(vec![
        SanType::URI(
            "spiffe://cluster.local/ns/kube-system/sa/admin"
                .try_into()
                .unwrap(),
        ),
        SanType::DnsName("kubernetes.default.svc".try_into().unwrap()),
    ]);
    let issued = ca.issue_for_csr(&request, &workload(), HOUR).unwrap();
    let leaf = &issued.chain_pem[0];
    assert_eq!(sans(leaf), ["URI:spiffe://cluster.local/ns/team-a/sa/web"]);
    assert_eq!(issued.spiffe_id, workload());
    with_cert(leaf, |cert| {
        assert_eq!(cert.subject().to_string(), "O=cluster.local");
        // The CSR asked to be a CA; the leaf says explicitly that it is not.
        assert!(!cert.basic_constraints().unwrap().unwrap().value.ca);
        let usage = cert.key_usage().unwrap().unwrap().value;
        assert!(usage.digital_signature() && usage.key_encipherment());
        assert!(!usage.key_cert_sign());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.der_bytes()
        );
    });
}

#[test]
fn csr_with_an_extension_rcgen_cannot_model_is_still_signed() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.custom_extensions = vec![CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 4, 1, 99999, 1],
        vec![0x05, 0x00],
    )];
    let request = params.serialize_request(&key).unwrap().pem().unwrap();
    let issued = ca.issue_for_csr(&request, &workload(), HOUR).unwrap();
    with_cert(&issued.chain_pem[0], |cert| {
        assert!(
            cert.extensions()
                .iter()
                .all(|ext| ext.oid.to_id_string() != "1.3.6.1.4.1.99999.1")
        );
    });
}

#[test]
fn validity_is_backdated_and_as_long_as_asked() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let issued = ca.issue_for_csr(&csr(vec![]).0, &workload(), HOUR).unwrap();
    let now = SystemTime::now();
    assert!(near(issued.not_before, now - Duration::from_secs(60)));
    assert!(near(issued.not_after, now + HOUR));
    assert_eq!(issued.not_before, not_before(&issued.chain_pem[0]));
    assert_eq!(issued.not_after, not_after(&issued.chain_pem[0]));
}

#[test]
fn lifetime_is_capped_by_the_ca_expiry() {
    let key = KeyPair::generate().unwrap();
    let root = make_ca("short root", &key, None, HOUR);
    let ca = CertificateAuthority::from_pem(&root, &key.serialize_pem(), None, TD).unwrap();
    let issued = ca
        .issue_for_csr(&csr(vec![]).0, &workload(), HOUR * 24)
        .unwrap();
    assert_eq!(issued.not_after, ca.not_after());
    assert_eq!(not_after(&issued.chain_pem[0]), not_after(&root));
}

#[test]
fn garbage_csr_is_a_clear_error() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let err = ca
        .issue_for_csr("not a csr", &workload(), HOUR)
        .unwrap_err();
    assert!(matches!(err, CaError::Csr(_)), "{err:?}");
    assert!(err.to_string().contains("CERTIFICATE REQUEST"), "{err}");

    let bogus = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    let err = ca.issue_for_csr(bogus, &workload(), HOUR).unwrap_err();
    assert!(err.to_string().contains("not a PKCS#10 request"), "{err}");
}

#[test]
fn csr_whose_signature_does_not_verify_is_refused() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let (request, _) = csr(vec![]);
    let mut der = pem_body(&request, "CERTIFICATE REQUEST");
    // The last byte is in the signature.
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let tampered = super::pem::cert_pem(&der).replace("CERTIFICATE", "CERTIFICATE REQUEST");
    let err = ca.issue_for_csr(&tampered, &workload(), HOUR).unwrap_err();
    assert!(
        err.to_string().contains("signature does not verify"),
        "{err}"
    );
}

fn pem_body(pem: &str, label: &str) -> Vec<u8> {
    use base64::Engine as _;
    let body: String = pem.lines().filter(|line| !line.contains(label)).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[test]
fn identities_of_other_trust_domains_and_zero_lifetimes_are_refused() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let foreign = SpiffeId::new("evil.example", "team-a", "web");
    let err = ca.issue_with_new_key(&foreign, HOUR).unwrap_err();
    assert!(matches!(err, CaError::ForeignTrustDomain { .. }), "{err:?}");
    let err = ca
        .issue_with_new_key(&workload(), Duration::ZERO)
        .unwrap_err();
    assert!(matches!(err, CaError::Lifetime(_)), "{err:?}");
}

#[test]
fn new_key_matches_its_leaf_and_serials_differ() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let (first, key_pem) = ca.issue_with_new_key(&workload(), HOUR).unwrap();
    let (second, _) = ca.issue_with_new_key(&workload(), HOUR).unwrap();
    let key = KeyPair::from_pem(&key_pem).unwrap();
    with_cert(&first.chain_pem[0], |cert| {
        assert_eq!(
            cert.public_key().subject_public_key.data.as_ref(),
            key.der_bytes()
        );
    });
    let serial = |pem: &str| with_cert(pem, |cert| cert.raw_serial().to_vec());
    assert_ne!(serial(&first.chain_pem[0]), serial(&second.chain_pem[0]));
    assert_eq!(serial(&first.chain_pem[0]).len(), 16);
    assert_eq!(
        sans(&first.chain_pem[0]),
        ["URI:spiffe://cluster.local/ns/team-a/sa/web"]
    );
    verify_as_client(ca.trust_bundle_pem(), &first.chain_pem).unwrap();
}

#[test]
fn server_certificate_has_names_and_server_auth_only() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let id = SpiffeId::new(TD, "weft-system", "weft-controller");
    let dns = ["weft-controller.weft-system.svc".to_owned()];
    let ips = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
    let (issued, key_pem) = ca.issue_server(&dns, &ips, &id, HOUR).unwrap();
    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(issued.spiffe_id, id);
    assert_eq!(
        sans(&issued.chain_pem[0]),
        [
            "URI:spiffe://cluster.local/ns/weft-system/sa/weft-controller",
            "DNS:weft-controller.weft-system.svc",
            "IP:[127, 0, 0, 1]",
        ]
    );
    with_cert(&issued.chain_pem[0], |cert| {
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
    });
    verify_as_server(
        ca.trust_bundle_pem(),
        &issued.chain_pem,
        "weft-controller.weft-system.svc",
    )
    .unwrap();
    verify_as_server(ca.trust_bundle_pem(), &issued.chain_pem, "127.0.0.1").unwrap();
    assert!(verify_as_server(ca.trust_bundle_pem(), &issued.chain_pem, "other.svc").is_err());
    // A leaf without clientAuth cannot pass as a workload.
    assert!(verify_as_client(ca.trust_bundle_pem(), &issued.chain_pem).is_err());
}
