//! Every key Go's crypto/tls accepts loads, in every encoding.

mod common;

use certstore::{Options, Store};
use common::{Pair, leaf_with, openssl_pkey};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

fn opens(pair: &Pair, key_pem: &str) -> Store {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tls.crt"), &pair.cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), key_pem).unwrap();
    let mut options = Options::new(dir.path().join("tls.crt"), dir.path().join("tls.key"));
    options.watch = false;
    options.reread_interval = None;
    let store = Store::open(options).unwrap_or_else(|e| panic!("{key_pem:.40}: {e}"));
    assert_eq!(store.current().serial_hex(), pair.serial_hex);
    assert_eq!(store.current().key_pem(), key_pem.as_bytes());
    store
}

fn check(alg: &'static rcgen::SignatureAlgorithm, traditional_label: Option<&str>) {
    let pair = leaf_with(alg, -60, 3600);
    assert!(
        pair.key.contains("BEGIN PRIVATE KEY"),
        "rcgen writes PKCS#8"
    );
    opens(&pair, &pair.key);
    // rustls treats "cannot tell" as a match; make sure every key type can tell.
    let other = leaf_with(alg, -60, 3600);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c"), &pair.cert).unwrap();
    std::fs::write(dir.path().join("k"), &other.key).unwrap();
    let mut options = Options::new(dir.path().join("c"), dir.path().join("k"));
    options.watch = false;
    options.retry_backoff.clear();
    let error = Store::open(options).unwrap_err().to_string();
    assert!(error.contains("does not match"), "{error}");
    if let Some(label) = traditional_label {
        let traditional = openssl_pkey(&pair.key, &["-traditional"]);
        assert!(
            traditional.contains(label),
            "expected {label}: {traditional:.40}"
        );
        opens(&pair, &traditional);
    }
}

#[test]
fn rsa_2048_pkcs8_and_pkcs1() {
    check(&rcgen::PKCS_RSA_SHA256, Some("BEGIN RSA PRIVATE KEY"));
}

#[test]
fn ecdsa_p256_pkcs8_and_sec1() {
    check(&rcgen::PKCS_ECDSA_P256_SHA256, Some("BEGIN EC PRIVATE KEY"));
}

#[test]
fn ecdsa_p384_pkcs8_and_sec1() {
    check(&rcgen::PKCS_ECDSA_P384_SHA384, Some("BEGIN EC PRIVATE KEY"));
}

#[test]
fn ecdsa_p521_pkcs8_and_sec1() {
    check(&rcgen::PKCS_ECDSA_P521_SHA512, Some("BEGIN EC PRIVATE KEY"));
}

#[test]
fn ed25519_pkcs8() {
    check(&rcgen::PKCS_ED25519, None);
}

#[test]
fn snapshot_facts_describe_the_leaf() {
    let pair = leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, -60, 3600);
    let store = opens(&pair, &pair.key);
    let snap = store.current();
    assert_eq!(snap.generation(), 1);
    assert!(snap.not_after() - snap.not_before() == 3660);
    // The expected digest comes from openssl, not from the code under test.
    let der = CertificateDer::from_pem_slice(pair.cert.as_bytes()).unwrap();
    let digest = common::openssl(&["dgst", "-sha256", "-binary"], der.as_ref());
    assert_eq!(snap.fingerprint_sha256().as_slice(), digest.as_slice());
}
