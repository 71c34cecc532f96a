//! What the fuzz target checks, shared with `tests/fuzz_regressions.rs` (which includes this
//! file by `#[path]`) so a crash found by the fuzzer and its regression test run the same code.
//!
//! Input framing: `cert ‖ SEP ‖ key` or `cert ‖ SEP ‖ key ‖ SEP ‖ ca`, split at the first two
//! separators (anything after a third stays in the CA bytes). The separator is two ASCII record
//! separators (0x1E), which PEM text never contains, so a seed is readable PEM and a mutation
//! that deletes a separator merges two files, which is an input worth trying too.

#![allow(dead_code)]

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Separates the three files in one fuzz input.
pub const SEP: &[u8] = b"\x1e\x1e";

/// The clock the validator is given (2030-03-17T17:46:40Z): fixed, so a verdict depends on the
/// input only. Seeds are generated valid around it (or deliberately not).
pub const NOW: i64 = 1_900_000_000;

/// Splits one fuzz input into certificate, key and optional CA bytes.
pub fn split(data: &[u8]) -> (&[u8], &[u8], Option<&[u8]>) {
    let Some(first) = find(data, SEP) else {
        return (data, &[], None);
    };
    let (cert, rest) = (&data[..first], &data[first + SEP.len()..]);
    match find(rest, SEP) {
        Some(second) => (cert, &rest[..second], Some(&rest[second + SEP.len()..])),
        None => (cert, rest, None),
    }
}

/// The inverse of [`split`], for writing seeds.
pub fn frame(cert: &[u8], key: &[u8], ca: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(cert.len() + key.len() + ca.map_or(0, <[u8]>::len) + 4);
    out.extend_from_slice(cert);
    out.extend_from_slice(SEP);
    out.extend_from_slice(key);
    if let Some(ca) = ca {
        out.extend_from_slice(SEP);
        out.extend_from_slice(ca);
    }
    out
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Runs the validator on one input and checks what must hold whatever the input: no panic
/// (the fuzzer reports one), an accepted generation hands out exactly the DER that was in the
/// files and parsed, and a refusal never quotes the key file.
pub fn run(data: &[u8]) -> Result<certstore::Snapshot, certstore::Error> {
    let (cert, key, ca) = split(data);
    run_files(cert, key, ca)
}

/// The labels a key DER is wrapped in by [`run_der`], chosen by the key part's first byte.
pub const KEY_LABELS: [&str; 3] = ["PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"];

/// The DER-level input of the `validate_der` target: the fuzzer mutates DER, not base64, so
/// it reaches deep into the X.509 and key parsers. Framing: `u16 LE length ‖ certificate DER ‖
/// u16 LE length ‖ label byte ‖ key DER ‖ CA DER` (no CA when empty; lengths are clamped to
/// the bytes present). Each DER is wrapped in one PEM block, then checked as [`run`] does.
pub fn run_der(data: &[u8]) -> Result<certstore::Snapshot, certstore::Error> {
    let (cert, rest) = take_prefixed(data);
    let (key, ca) = take_prefixed(rest);
    let (label, key) = match key.split_first() {
        Some((&b, der)) => (KEY_LABELS[usize::from(b) % KEY_LABELS.len()], der),
        None => (KEY_LABELS[0], key),
    };
    let cert_pem = pem_block("CERTIFICATE", cert);
    let key_pem = pem_block(label, key);
    let ca_pem = (!ca.is_empty()).then(|| pem_block("CERTIFICATE", ca));
    run_files(&cert_pem, &key_pem, ca_pem.as_deref())
}

/// The inverse of [`run_der`]'s framing, for writing seeds.
pub fn frame_der(cert: &[u8], label: usize, key: &[u8], ca: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(cert.len() as u16).to_le_bytes());
    out.extend_from_slice(cert);
    out.extend_from_slice(&(key.len() as u16 + 1).to_le_bytes());
    out.push(label as u8);
    out.extend_from_slice(key);
    out.extend_from_slice(ca.unwrap_or_default());
    out
}

fn take_prefixed(data: &[u8]) -> (&[u8], &[u8]) {
    if data.len() < 2 {
        return (data, &[]);
    }
    let len = usize::from(u16::from_le_bytes([data[0], data[1]])).min(data.len() - 2);
    data[2..].split_at(len)
}

/// One PEM block: written here rather than by the library so that the target does not test
/// the encoder with itself.
pub fn pem_block(label: &str, der: &[u8]) -> Vec<u8> {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut body = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            body.push(if i <= chunk.len() {
                B64[((n >> (18 - 6 * i)) & 63) as usize]
            } else {
                b'='
            });
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n").into_bytes();
    for line in body.chunks(64) {
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out.extend_from_slice(format!("-----END {label}-----\n").as_bytes());
    out
}

/// Validates certificate, key and CA file contents and checks the invariants.
pub fn run_files(
    cert: &[u8],
    key: &[u8],
    ca: Option<&[u8]>,
) -> Result<certstore::Snapshot, certstore::Error> {
    let verdict = certstore::check_bytes(cert, key, ca, NOW);
    match &verdict {
        Ok(snapshot) => check_accepted(snapshot, cert, key, ca),
        Err(error) => check_refused(error, key),
    }
    verdict
}

fn check_accepted(snapshot: &certstore::Snapshot, cert: &[u8], key: &[u8], ca: Option<&[u8]>) {
    // The chain handed out re-parses, with the one PEM parser, to the chain of the file.
    let input_chain = certs(cert).expect("an accepted certificate file parses");
    let served_chain = certs(snapshot.cert_pem()).expect("cert_pem re-parses");
    assert!(!served_chain.is_empty(), "cert_pem holds no certificate");
    assert_eq!(
        served_chain, input_chain,
        "cert_pem is not the validated chain"
    );
    let leaf_digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &served_chain[0]);
    assert_eq!(
        leaf_digest.as_ref(),
        snapshot.fingerprint_sha256(),
        "fingerprint is not the SHA-256 of cert_pem's leaf"
    );
    let signed: Vec<&[u8]> = snapshot
        .certified_key()
        .cert
        .iter()
        .map(|c| c.as_ref())
        .collect();
    let served: Vec<&[u8]> = served_chain.iter().map(Vec::as_slice).collect();
    assert_eq!(signed, served, "the TLS chain differs from cert_pem");

    // The key handed out is the key of the file, re-encoded.
    let input_key = PrivateKeyDer::from_pem_slice(key).expect("an accepted key file parses");
    let served_key = PrivateKeyDer::from_pem_slice(snapshot.key_pem()).expect("key_pem re-parses");
    assert!(
        input_key.secret_der() == served_key.secret_der(),
        "key_pem is not the validated key"
    );

    // The CA bundle handed out is the bundle of the file.
    match (ca, snapshot.ca_pem()) {
        (Some(ca), Some(ca_pem)) => {
            let input_ca = certs(ca).expect("an accepted CA file parses");
            assert_eq!(certs(ca_pem).expect("ca_pem re-parses"), input_ca);
            let ca_ders: Vec<Vec<u8>> = snapshot
                .ca_certs()
                .iter()
                .map(|c| c.as_ref().to_vec())
                .collect();
            assert_eq!(ca_ders, input_ca, "ca_certs differ from ca_pem");
            assert_eq!(snapshot.ca_not_after().len(), input_ca.len());
        }
        (None, None) => assert!(snapshot.ca_certs().is_empty()),
        (ca, pem) => panic!(
            "CA bundle given: {}, ca_pem served: {}",
            ca.is_some(),
            pem.is_some()
        ),
    }

    // The validity window was enforced against the clock given.
    assert!(snapshot.not_before() <= NOW && NOW <= snapshot.not_after());
    let serial = snapshot.serial_hex();
    assert!(
        serial == "0"
            || (!serial.is_empty()
                && !serial.starts_with('0')
                && serial
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))),
        "serial {serial:?} is not lowercase hex without leading zeros"
    );
}

pub fn check_refused(error: &certstore::Error, key: &[u8]) {
    let message = error.to_string();
    let debug = format!("{error:?}");
    assert!(
        !message.contains('\n'),
        "the message is not one line: {message:?}"
    );
    for line in key_body_lines(key) {
        let line = String::from_utf8_lossy(line);
        assert!(
            !message.contains(&*line),
            "the error quotes the key file: {message}"
        );
        assert!(
            !debug.contains(&*line),
            "the error's Debug quotes the key file: {debug}"
        );
    }
}

/// Lines of the key file that look like base64 body (16 or more base64 characters): what an
/// error quoting the key would contain. Shorter runs would match ordinary words.
pub fn key_body_lines(key: &[u8]) -> impl Iterator<Item = &[u8]> {
    key.split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| {
            line.len() >= 16
                && line
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        })
}

fn certs(pem: &[u8]) -> Result<Vec<Vec<u8>>, rustls_pki_types::pem::Error> {
    CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.as_ref().to_vec()))
        .collect()
}
