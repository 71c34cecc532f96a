//! Every bad new generation is refused with a reason naming the file, and the previous
//! generation keeps being served.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use certstore::{Event, Options, Store};
use common::{Pair, leaf, leaf_with, openssl_pkey};

struct Fixture {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    store: Store,
    first: Pair,
    failures: Arc<Mutex<Vec<String>>>,
}

fn options(cert: &Path, key: &Path) -> Options {
    let mut o = Options::new(cert, key);
    o.watch = false;
    o.reread_interval = None;
    o.retry_backoff = Vec::new();
    o.max_file_size = 16 * 1024;
    o
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let first = leaf();
    std::fs::write(&cert, &first.cert).unwrap();
    std::fs::write(&key, &first.key).unwrap();
    let store = Store::open(options(&cert, &key)).unwrap();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&failures);
    store.subscribe(move |event| {
        if let Event::ReloadFailed {
            error,
            served_generation,
        } = event
        {
            assert_eq!(*served_generation, 1);
            seen.lock().unwrap().push(error.to_string());
        }
    });
    Fixture {
        _dir: dir,
        cert,
        key,
        store,
        first,
        failures,
    }
}

/// Applies `damage`, reloads, and checks the refusal names `culprit` and contains `reason`.
fn refused(damage: impl FnOnce(&Fixture), culprit: fn(&Fixture) -> &Path, reason: &str) {
    let f = fixture();
    damage(&f);
    let error = f
        .store
        .reload()
        .expect_err("a bad generation must be refused");
    let message = error.to_string();
    assert!(
        message.contains(&culprit(&f).display().to_string()),
        "message does not name the file: {message}"
    );
    assert!(message.contains(reason), "expected {reason:?} in {message}");
    assert!(
        !message.contains("PRIVATE KEY-----"),
        "no key material in errors"
    );
    // The last good generation is still served, and the status says why.
    assert_eq!(f.store.generation(), 1);
    assert_eq!(f.store.current().serial_hex(), f.first.serial_hex);
    let status = f.store.status();
    assert_eq!(status.reloads_failed, 1);
    assert_eq!(status.last_error.unwrap().to_string(), message);
    // Subscribers heard about it.
    assert!(common::wait_for(std::time::Duration::from_secs(5), || {
        f.failures.lock().unwrap().len() == 1
    }));
    assert_eq!(f.failures.lock().unwrap()[0], message);
}

fn cert_path(f: &Fixture) -> &Path {
    &f.cert
}
fn key_path(f: &Fixture) -> &Path {
    &f.key
}

#[test]
fn mismatched_key() {
    refused(
        |f| std::fs::write(&f.cert, leaf().cert).unwrap(),
        key_path,
        "does not match the leaf certificate",
    );
}

#[test]
fn expired_leaf() {
    let expired = leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, -7200, -3600);
    refused(
        move |f| {
            std::fs::write(&f.cert, &expired.cert).unwrap();
            std::fs::write(&f.key, &expired.key).unwrap();
        },
        cert_path,
        "expired",
    );
}

#[test]
fn not_yet_valid_leaf() {
    let future = leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, 3600, 7200);
    refused(
        move |f| {
            std::fs::write(&f.cert, &future.cert).unwrap();
            std::fs::write(&f.key, &future.key).unwrap();
        },
        cert_path,
        "not valid before",
    );
}

#[test]
fn encrypted_key() {
    refused(
        |f| {
            let next = leaf();
            let encrypted = openssl_pkey(&next.key, &["-aes256", "-passout", "pass:secret"]);
            std::fs::write(&f.cert, &next.cert).unwrap();
            std::fs::write(&f.key, encrypted).unwrap();
        },
        key_path,
        "encrypted keys are not supported",
    );
}

#[test]
fn empty_cert_file() {
    refused(
        |f| std::fs::write(&f.cert, b"").unwrap(),
        cert_path,
        "is empty",
    );
}

#[test]
fn garbage_cert_file() {
    refused(
        |f| std::fs::write(&f.cert, b"this is not a certificate\n\x00\xff").unwrap(),
        cert_path,
        "no PEM CERTIFICATE block found",
    );
}

#[test]
fn garbage_key_file() {
    refused(
        |f| std::fs::write(&f.key, b"hello").unwrap(),
        key_path,
        "no PEM PRIVATE KEY",
    );
}

#[test]
fn truncated_pem() {
    refused(
        |f| {
            let next = leaf();
            std::fs::write(&f.cert, &next.cert[..next.cert.len() / 2]).unwrap();
        },
        cert_path,
        "malformed PEM",
    );
}

#[test]
fn fifo_at_cert_path() {
    refused(
        |f| {
            std::fs::remove_file(&f.cert).unwrap();
            let c = std::ffi::CString::new(f.cert.to_str().unwrap()).unwrap();
            // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        },
        cert_path,
        "is a FIFO, not a regular file",
    );
}

#[test]
fn directory_at_cert_path() {
    refused(
        |f| {
            std::fs::remove_file(&f.cert).unwrap();
            std::fs::create_dir(&f.cert).unwrap();
        },
        cert_path,
        "is a directory, not a regular file",
    );
}

#[test]
fn file_over_size_limit() {
    refused(
        |f| {
            let mut big = leaf().cert;
            while big.len() <= 16 * 1024 {
                big.push_str("# padding padding padding padding padding padding\n");
            }
            std::fs::write(&f.cert, big).unwrap();
        },
        cert_path,
        "exceeds the limit of 16384 bytes",
    );
}

#[test]
fn missing_file_after_start() {
    refused(
        |f| std::fs::remove_file(&f.key).unwrap(),
        key_path,
        "No such file or directory",
    );
}

#[test]
fn bad_ca_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let pair = leaf();
    let (cert, key, ca) = (
        dir.path().join("tls.crt"),
        dir.path().join("tls.key"),
        dir.path().join("ca.crt"),
    );
    std::fs::write(&cert, &pair.cert).unwrap();
    std::fs::write(&key, &pair.key).unwrap();
    std::fs::write(&ca, common::ca()).unwrap();
    let store = Store::open(options(&cert, &key).with_ca(&ca)).unwrap();
    assert_eq!(store.current().ca_certs().len(), 1);
    std::fs::write(
        &ca,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let message = store.reload().unwrap_err().to_string();
    assert!(
        message.starts_with(&format!("CA bundle file {}", ca.display())),
        "{message}"
    );
    assert_eq!(store.current().ca_certs().len(), 1);
}

#[test]
fn bad_initial_files_fail_open_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("tls.key");
    let message = Store::open(options(&cert, &key)).unwrap_err().to_string();
    assert!(message.contains(&cert.display().to_string()), "{message}");
    let pair = leaf();
    std::fs::write(&cert, &pair.cert).unwrap();
    std::fs::write(&key, leaf().key).unwrap();
    let message = Store::open(options(&cert, &key)).unwrap_err().to_string();
    assert!(message.contains("does not match"), "{message}");
    let mut o = options(&cert, &key);
    o.cert_path = PathBuf::new();
    assert!(
        Store::open(o)
            .unwrap_err()
            .to_string()
            .contains("cert_path is empty")
    );
}

#[test]
fn good_generation_after_bad_one_recovers() {
    let f = fixture();
    std::fs::write(&f.cert, leaf().cert).unwrap();
    assert!(f.store.reload().is_err());
    let next = leaf();
    std::fs::write(&f.cert, &next.cert).unwrap();
    std::fs::write(&f.key, &next.key).unwrap();
    assert_eq!(
        f.store.reload().unwrap(),
        certstore::ReloadOutcome::Rotated { generation: 2 }
    );
    assert_eq!(f.store.current().serial_hex(), next.serial_hex);
    assert!(f.store.status().last_error.is_none());
    assert_eq!(
        f.store.reload().unwrap(),
        certstore::ReloadOutcome::Unchanged
    );
}
