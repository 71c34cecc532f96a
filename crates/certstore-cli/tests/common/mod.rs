//! Running the built `certstore` binary, plus the core's fixtures (certificates of every key
//! type, the kubelet atomic writer, openssl) used as they are: one writer, one set of facts.
#![allow(dead_code)]

#[path = "../../../certstore/tests/common/mod.rs"]
mod fixtures;

pub use fixtures::*;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_certstore");

/// Runs `certstore ARGS` to completion.
pub fn certstore(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .output()
        .expect("run the certstore binary")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// The one JSON document a `--json` run printed.
pub fn json(out: &Output) -> Value {
    serde_json::from_str(stdout(out).trim())
        .unwrap_or_else(|e| panic!("not one JSON document ({e}): {}", stdout(out)))
}

pub fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

pub fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// Neither the key's PEM armour nor any line of its base64 body appears in `text`.
pub fn assert_no_key_material(text: &str, key_pem: &str) {
    assert!(
        !text.contains("PRIVATE KEY-----"),
        "key armour in output: {text}"
    );
    for line in key_pem
        .lines()
        .filter(|l| !l.starts_with("-----") && l.len() > 16)
    {
        assert!(!text.contains(line), "key bytes in output: {text}");
    }
}

/// Serials of CA-signed leaves, apart from the core fixtures' self-signed ones.
static CA_SERIAL: AtomicU64 = AtomicU64::new(0x10_0000);

/// A CA (P-256) that signs leaves for `localhost` and 127.0.0.1.
pub struct Ca {
    pub pem: String,
    params: CertificateParams,
    key: KeyPair,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let pem = params.self_signed(&key).expect("self sign").pem();
        Ca { pem, params, key }
    }

    /// A leaf for `localhost` and 127.0.0.1 valid from `start` to `end` seconds around now,
    /// with a fresh P-256 key and serial.
    pub fn leaf(&self, start: i64, end: i64) -> Pair {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let serial = CA_SERIAL.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(serial.into());
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::seconds(start);
        params.not_after = now + time::Duration::seconds(end);
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).expect("sign");
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
            serial_hex: format!("{serial:x}"),
        }
    }
}
