//! The fuzz target's seed corpus and its findings, run as ordinary tests.
//!
//! `seed_corpus` builds one input per key type and encoding and per bad input the other tests
//! use, checks the validator's verdict on each (a seed meant to reach the accepting path must
//! be accepted), and runs the fuzz target's own checks on it. With `CERTSTORE_FUZZ_SEEDS=DIR`
//! it also writes the inputs to DIR, which is how `make fuzz` gets its seeds (generated, not
//! committed). Inputs the fuzzer found are kept in `fuzz/regressions/` and replayed here.

mod common;

#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::path::{Path, PathBuf};

use certstore::Reason;
use common::{Pair, leaf_with, openssl_pkey};
use rcgen::SignatureAlgorithm;

/// Seconds from now to the fuzz clock, so certificates can be made valid (or not) at it.
fn to_fuzz_clock() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        now < harness::NOW,
        "the fuzz clock must lie in the future of the tests"
    );
    harness::NOW - now
}

/// A leaf valid from an hour before now until a year after the fuzz clock.
fn valid(alg: &'static SignatureAlgorithm) -> Pair {
    leaf_with(alg, -3600, to_fuzz_clock() + 365 * 86_400)
}

struct Seed {
    name: String,
    input: Vec<u8>,
    /// `None`: accepted; `Some(reason)`: refused for that reason.
    expect: Option<Reason>,
}

fn seed(name: &str, cert: &str, key: &str, ca: Option<&str>, expect: Option<Reason>) -> Seed {
    seed_bytes(
        name,
        cert.as_bytes(),
        key.as_bytes(),
        ca.map(str::as_bytes),
        expect,
    )
}

fn seed_bytes(
    name: &str,
    cert: &[u8],
    key: &[u8],
    ca: Option<&[u8]>,
    expect: Option<Reason>,
) -> Seed {
    Seed {
        name: name.to_owned(),
        input: harness::frame(cert, key, ca),
        expect,
    }
}

fn seeds() -> Vec<Seed> {
    let mut out = Vec::new();
    let algs: [(&str, &'static SignatureAlgorithm, Option<&str>); 5] = [
        ("rsa2048", &rcgen::PKCS_RSA_SHA256, Some("pkcs1")),
        ("p256", &rcgen::PKCS_ECDSA_P256_SHA256, Some("sec1")),
        ("p384", &rcgen::PKCS_ECDSA_P384_SHA384, Some("sec1")),
        ("p521", &rcgen::PKCS_ECDSA_P521_SHA512, Some("sec1")),
        ("ed25519", &rcgen::PKCS_ED25519, None),
    ];
    for (name, alg, traditional) in algs {
        let pair = valid(alg);
        out.push(seed(
            &format!("{name}-pkcs8"),
            &pair.cert,
            &pair.key,
            None,
            None,
        ));
        if let Some(encoding) = traditional {
            let key = openssl_pkey(&pair.key, &["-traditional"]);
            out.push(seed(
                &format!("{name}-{encoding}"),
                &pair.cert,
                &key,
                None,
                None,
            ));
        }
        let other = valid(alg);
        out.push(seed(
            &format!("{name}-mismatched-key"),
            &pair.cert,
            &other.key,
            None,
            Some(Reason::KeyMismatch),
        ));
    }

    let pair = valid(&rcgen::PKCS_ECDSA_P256_SHA256);
    let ca = common::ca();
    out.push(seed("p256-with-ca", &pair.cert, &pair.key, Some(&ca), None));
    let two_cas = format!("{ca}{}", common::ca());
    out.push(seed(
        "p256-with-two-cas",
        &pair.cert,
        &pair.key,
        Some(&two_cas),
        None,
    ));
    let chain = format!("{}{ca}", pair.cert);
    out.push(seed(
        "p256-chain-of-two",
        &chain,
        &pair.key,
        Some(&ca),
        None,
    ));
    let crlf = format!(
        "# a comment\r\n{}\r\n# trailing\r\n",
        pair.cert.replace('\n', "\r\n")
    );
    out.push(seed("p256-crlf-comments", &crlf, &pair.key, None, None));

    let rsa = valid(&rcgen::PKCS_RSA_SHA256);
    let pkcs8_encrypted = openssl_pkey(&rsa.key, &["-aes256", "-passout", "pass:secret"]);
    out.push(seed(
        "rsa-encrypted-pkcs8",
        &rsa.cert,
        &pkcs8_encrypted,
        None,
        Some(Reason::EncryptedKey),
    ));
    let legacy_encrypted = openssl_pkey(
        &rsa.key,
        &["-traditional", "-aes256", "-passout", "pass:secret"],
    );
    assert!(legacy_encrypted.contains("Proc-Type: 4,ENCRYPTED"));
    out.push(seed(
        "rsa-encrypted-legacy",
        &rsa.cert,
        &legacy_encrypted,
        None,
        Some(Reason::EncryptedKey),
    ));

    let expired = leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, -7200, -3600);
    out.push(seed(
        "expired",
        &expired.cert,
        &expired.key,
        None,
        Some(Reason::Expired),
    ));
    let ahead = to_fuzz_clock();
    let future = leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, ahead + 3600, ahead + 7200);
    out.push(seed(
        "not-yet-valid",
        &future.cert,
        &future.key,
        None,
        Some(Reason::NotYetValid),
    ));

    let key = &pair.key;
    out.push(seed("empty-cert", "", key, None, Some(Reason::Parse)));
    out.push(seed("empty-key", &pair.cert, "", None, Some(Reason::Parse)));
    out.push(seed_bytes(
        "garbage-cert",
        b"this is not a certificate\n\x00\xff",
        key.as_bytes(),
        None,
        Some(Reason::Parse),
    ));
    out.push(seed(
        "garbage-key",
        &pair.cert,
        "hello",
        None,
        Some(Reason::Parse),
    ));
    out.push(seed(
        "truncated-cert",
        &pair.cert[..pair.cert.len() / 2],
        key,
        None,
        Some(Reason::Parse),
    ));
    out.push(seed(
        "truncated-key",
        &pair.cert,
        &key[..key.len() / 2],
        None,
        Some(Reason::Parse),
    ));
    out.push(seed(
        "bad-ca-bundle",
        &pair.cert,
        key,
        Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
        Some(Reason::Parse),
    ));
    out.push(seed(
        "empty-ca-bundle",
        &pair.cert,
        key,
        Some(""),
        Some(Reason::Parse),
    ));
    out.push(seed("key-as-cert", key, key, None, Some(Reason::Parse)));
    out.push(seed(
        "cert-as-key",
        &pair.cert,
        &pair.cert,
        None,
        Some(Reason::Parse),
    ));
    let mut padded = pair.cert.clone();
    while padded.len() <= 16 * 1024 {
        padded.push_str("# padding padding padding padding padding padding\n");
    }
    // check_bytes has no size limit (the reader enforces it): padding after END is ignored.
    out.push(seed("padded-cert", &padded, key, None, None));
    out
}

fn check_verdict(
    name: &str,
    verdict: &Result<certstore::Snapshot, certstore::Error>,
    expect: Option<Reason>,
) {
    match (verdict, expect) {
        (Ok(_), None) => {}
        (Err(error), Some(reason)) => assert_eq!(error.reason(), reason, "{name}: {error}"),
        (Ok(_), Some(reason)) => panic!("{name}: accepted, expected {reason}"),
        (Err(error), None) => panic!("{name}: refused: {error}"),
    }
}

/// The DER-level input for `validate_der` of a seed whose first certificate, key and first CA
/// certificate are PEM; `None` for the others.
fn der_input(input: &[u8]) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key, ca) = harness::split(input);
    let cert = CertificateDer::from_pem_slice(cert).ok()?;
    let key = PrivateKeyDer::from_pem_slice(key).ok()?;
    let label = match &key {
        PrivateKeyDer::Pkcs8(_) => 0,
        PrivateKeyDer::Pkcs1(_) => 1,
        PrivateKeyDer::Sec1(_) => 2,
        _ => return None,
    };
    assert_eq!(harness::KEY_LABELS[label].contains("RSA"), label == 1);
    let ca = match ca {
        Some(ca) => Some(CertificateDer::from_pem_slice(ca).ok()?),
        None => None,
    };
    Some(harness::frame_der(
        &cert,
        label,
        key.secret_der(),
        ca.as_ref().map(|c| c.as_ref()),
    ))
}

/// Every seed gets the verdict it was made for, through both targets' framing (the DER one
/// for the seeds that have a DER form; its one-certificate files give the same verdicts).
#[test]
fn seed_corpus() {
    let write_to = std::env::var_os("CERTSTORE_FUZZ_SEEDS").map(PathBuf::from);
    let dirs = write_to
        .as_ref()
        .map(|dir| (dir.join("validate"), dir.join("validate_der")));
    if let Some((pem_dir, der_dir)) = &dirs {
        std::fs::create_dir_all(pem_dir).unwrap();
        std::fs::create_dir_all(der_dir).unwrap();
    }
    let mut der_seeds = 0;
    for seed in seeds() {
        check_verdict(&seed.name, &harness::run(&seed.input), seed.expect);
        let der = der_input(&seed.input);
        if let Some(der) = &der {
            der_seeds += 1;
            check_verdict(
                &format!("{} (DER)", seed.name),
                &harness::run_der(der),
                seed.expect,
            );
        }
        if let Some((pem_dir, der_dir)) = &dirs {
            std::fs::write(pem_dir.join(&seed.name), &seed.input).unwrap();
            if let Some(der) = der {
                std::fs::write(der_dir.join(&seed.name), der).unwrap();
            }
        }
    }
    // Every key type and encoding, the mismatches, the validity and CA seeds.
    assert!(der_seeds >= 20, "{der_seeds} seeds have a DER form");
}

/// Every input in `fuzz/regressions/` (crashes the fuzzer found, minimised; `der-*` from
/// `validate_der`) passes the fuzz target's checks now.
#[test]
fn replay_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let input = std::fs::read(&path).unwrap();
        // The file's name says which target found it.
        let der = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("der-");
        println!("{}", path.display());
        let _ = if der {
            harness::run_der(&input)
        } else {
            harness::run(&input)
        };
    }
}

#[test]
fn framing_splits_at_the_first_two_separators() {
    assert_eq!(harness::split(b"c"), (&b"c"[..], &b""[..], None));
    assert_eq!(harness::split(b"c\x1e\x1ek"), (&b"c"[..], &b"k"[..], None));
    assert_eq!(
        harness::split(b"c\x1e\x1ek\x1e\x1ea\x1e\x1eb"),
        (&b"c"[..], &b"k"[..], Some(&b"a\x1e\x1eb"[..]))
    );
    let framed = harness::frame(b"c", b"k", Some(b"a"));
    assert_eq!(
        harness::split(&framed),
        (&b"c"[..], &b"k"[..], Some(&b"a"[..]))
    );
}

/// The no-key-in-errors check fires on an error that quotes the key, and not on the refusals
/// the validator really gives.
#[test]
fn leak_check_catches_a_quoted_key() {
    let pair = common::leaf();
    let key = pair.key.as_bytes();
    let line = harness::key_body_lines(key)
        .next()
        .expect("a PEM key has body lines");
    assert!(!line.starts_with(b"-----"));
    let leaked =
        certstore::Error::InvalidOptions(format!("bad key near {}", String::from_utf8_lossy(line)));
    let caught = std::panic::catch_unwind(|| harness::check_refused(&leaked, key));
    assert!(caught.is_err(), "a quoted key line went unnoticed");
    let mismatch = certstore::check_bytes(common::leaf().cert.as_bytes(), key, None, harness::NOW)
        .expect_err("another leaf's key");
    harness::check_refused(&mismatch, key);
}

/// Issue 7, defect 1, as a fuzz input: a comment line containing a BEGIN marker, followed by
/// another leaf's base64, before the real block. The looser scan that built `cert_pem` then
/// handed out the other leaf with this leaf's key; the target's check that the served chain
/// is the parsed one would catch it again.
#[test]
fn begin_marker_in_a_comment_serves_the_validated_leaf() {
    let served = valid(&rcgen::PKCS_ECDSA_P256_SHA256);
    let decoy = valid(&rcgen::PKCS_ECDSA_P256_SHA256);
    let decoy_body: String = decoy
        .cert
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .map(|l| format!("{l}\n"))
        .collect();
    let cert = format!(
        "# copied from -----BEGIN CERTIFICATE-----\n{decoy_body}{}",
        served.cert
    );
    let input = harness::frame(cert.as_bytes(), served.key.as_bytes(), None);
    let snapshot = harness::run(&input).expect("the real block validates");
    assert_eq!(snapshot.serial_hex(), served.serial_hex);
    let served_pem = String::from_utf8(snapshot.cert_pem().to_vec()).unwrap();
    assert_eq!(
        served_pem.replace("\r\n", "\n"),
        served.cert.replace("\r\n", "\n")
    );
}
