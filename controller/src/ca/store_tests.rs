//! Tests of the CA's persistence: the state directory, an operator's files, and the Secret
//! data (the Secret's shape and parsing; the API calls need an apiserver).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use k8s_openapi::ByteString;

use super::secret::{from_secret, tls_secret};
use super::test_support::{TD, user_hierarchy, verify_as_client, workload};
use super::{CaError, CertificateAuthority, Created, load_or_create_in_dir, load_user_files};

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

#[test]
fn state_dir_ca_is_created_once_then_loaded() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("state/ca");
    let (first, created) = load_or_create_in_dir(&dir, TD).unwrap();
    assert_eq!(created, Created::Created);
    let (second, created) = load_or_create_in_dir(&dir, TD).unwrap();
    assert_eq!(created, Created::Loaded);
    assert_eq!(first.cert_pem(), second.cert_pem());
    assert_eq!(first.key_pem(), second.key_pem());
    // What the first issued, the second's bundle verifies.
    let (issued, _) = first.issue_with_new_key(&workload(), HOUR).unwrap();
    verify_as_client(second.trust_bundle_pem(), &issued.chain_pem).unwrap();

    let mode = |name: &str| fs::metadata(dir.join(name)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("ca.key"), 0o600);
    assert_eq!(
        fs::read_to_string(dir.join("ca.crt")).unwrap(),
        first.cert_pem()
    );
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn lost_key_is_an_error_not_a_new_root() {
    let temp = tempfile::tempdir().unwrap();
    let (ca, _) = load_or_create_in_dir(temp.path(), TD).unwrap();
    fs::remove_file(temp.path().join("ca.key")).unwrap();
    let err = load_or_create_in_dir(temp.path(), TD).unwrap_err();
    assert!(err.to_string().contains("ca.key"), "{err}");
    assert_eq!(
        fs::read_to_string(temp.path().join("ca.crt")).unwrap(),
        ca.cert_pem()
    );
}

#[test]
fn key_left_by_an_interrupted_creation_is_replaced() {
    let temp = tempfile::tempdir().unwrap();
    fs::write(temp.path().join("ca.key"), "half a key").unwrap();
    let (ca, created) = load_or_create_in_dir(temp.path(), TD).unwrap();
    assert_eq!(created, Created::Created);
    assert_eq!(
        fs::read_to_string(temp.path().join("ca.key")).unwrap(),
        ca.key_pem()
    );
}

#[test]
fn damaged_state_file_names_the_file() {
    let temp = tempfile::tempdir().unwrap();
    load_or_create_in_dir(temp.path(), TD).unwrap();
    fs::write(temp.path().join("ca.crt"), "garbage").unwrap();
    let err = load_or_create_in_dir(temp.path(), TD).unwrap_err();
    let path = temp.path().join("ca.crt").display().to_string();
    assert!(err.to_string().starts_with(&path), "{err}");
}

#[test]
fn user_files_load_an_intermediate() {
    let temp = tempfile::tempdir().unwrap();
    let user = user_hierarchy();
    fs::write(temp.path().join("tls.crt"), &user.intermediate_pem).unwrap();
    fs::write(temp.path().join("tls.key"), &user.intermediate_key_pem).unwrap();
    fs::write(temp.path().join("ca.crt"), &user.root_pem).unwrap();
    let ca = load_user_files(temp.path(), TD).unwrap();
    let (issued, _) = ca.issue_with_new_key(&workload(), HOUR).unwrap();
    assert_eq!(issued.chain_pem.len(), 2);
    verify_as_client(ca.trust_bundle_pem(), &issued.chain_pem).unwrap();

    // The wrong key is blamed by path.
    let other = rcgen::KeyPair::generate().unwrap().serialize_pem();
    fs::write(temp.path().join("tls.key"), other).unwrap();
    let err = load_user_files(temp.path(), TD).unwrap_err();
    let key_path = temp.path().join("tls.key").display().to_string();
    assert!(
        matches!(&err, CaError::Invalid { what, .. } if *what == key_path),
        "{err}"
    );

    fs::remove_file(temp.path().join("tls.key")).unwrap();
    let err = load_user_files(temp.path(), TD).unwrap_err();
    assert!(
        matches!(&err, CaError::Io { path, .. } if path.ends_with("tls.key")),
        "{err}"
    );
}

#[test]
fn secret_round_trips_a_generated_root() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let secret = tls_secret("weft-system", "weft-ca", &ca);
    assert_eq!(secret.type_.as_deref(), Some("kubernetes.io/tls"));
    let keys: Vec<_> = secret.data.as_ref().unwrap().keys().cloned().collect();
    assert_eq!(keys, ["ca.crt", "tls.crt", "tls.key"]);
    let loaded = from_secret(&secret, "weft-system/weft-ca", TD, "").unwrap();
    assert_eq!(loaded.cert_pem(), ca.cert_pem());
    assert_eq!(loaded.key_pem(), ca.key_pem());
    assert_eq!(loaded.trust_bundle_pem(), ca.trust_bundle_pem());
}

#[test]
fn secret_errors_name_the_secret_and_key() {
    let ca = CertificateAuthority::generate(TD).unwrap();
    let mut secret = tls_secret("weft-system", "weft-ca", &ca);
    let data = secret.data.as_mut().unwrap();
    data.insert("tls.key".to_owned(), ByteString(b"garbage".to_vec()));
    let err = from_secret(&secret, "weft-system/weft-ca", TD, "").unwrap_err();
    assert!(
        err.to_string()
            .starts_with("Secret weft-system/weft-ca key tls.key: "),
        "{err}"
    );

    secret.data.as_mut().unwrap().remove("tls.key");
    let err = from_secret(&secret, "weft-system/weft-ca", TD, "").unwrap_err();
    assert!(
        matches!(&err, CaError::SecretKeyMissing { secret, key: "tls.key", .. } if secret == "weft-system/weft-ca"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "Secret weft-system/weft-ca has no data key tls.key"
    );
}
