//! `certstore check` gives the store's verdict: for every bad input of the core's catalog the
//! same reason, file and message as `Store::open` on the same files, and every key type loads.

mod common;

use std::path::{Path, PathBuf};

use certstore::{Options, Store, format_unix};
use common::{Ca, Pair, certstore, code, json, leaf, leaf_with, openssl_pkey, path, stdout};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The catalog's size limit (crates/certstore/tests/bad_input.rs), passed to both sides.
const LIMIT: u64 = 16 * 1024;

struct Files {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    ca: Option<PathBuf>,
}

fn files(cert: &[u8], key: &[u8]) -> Files {
    let dir = tempfile::tempdir().unwrap();
    let (c, k) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    Files {
        _dir: dir,
        cert: c,
        key: k,
        ca: None,
    }
}

fn pair_files(pair: &Pair) -> Files {
    files(pair.cert.as_bytes(), pair.key.as_bytes())
}

impl Files {
    fn with_ca(mut self, pem: &[u8]) -> Files {
        let ca = self.cert.with_file_name("ca.crt");
        std::fs::write(&ca, pem).unwrap();
        self.ca = Some(ca);
        self
    }

    fn options(&self) -> Options {
        let mut o = Options::new(&self.cert, &self.key);
        o.ca_path = self.ca.clone();
        o.watch = false;
        o.reread_interval = None;
        o.retry_backoff.clear();
        o.max_file_size = LIMIT;
        o
    }

    fn args<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec![
            "check",
            "--cert",
            path(&self.cert),
            "--key",
            path(&self.key),
        ];
        if let Some(ca) = &self.ca {
            args.extend(["--ca", path(ca)]);
        }
        args.extend(["--max-file-size", "16384"]);
        args.extend(extra);
        args
    }
}

/// Runs the store and the command on the same files and checks they refuse them alike.
/// Returns the stable reason.
fn agree_on_refusal(f: &Files, culprit: &Path, key_pem: &str) -> String {
    let store_error = Store::open(f.options()).expect_err("the store refuses these files");
    let expected_code = match store_error.reason().as_str() {
        "missing" | "io_error" => 2,
        _ => 1,
    };

    let out = certstore(&f.args(&["--json"]));
    let report = json(&out);
    assert_eq!(code(&out), expected_code, "{report}");
    assert_eq!(report["verdict"], "refused");
    assert_eq!(report["reason"], store_error.reason().as_str());
    assert_eq!(report["error"], store_error.to_string());
    assert_eq!(report["file"], path(culprit));
    assert_eq!(
        report["file_role"],
        store_error.role().unwrap().to_string().as_str()
    );
    common::assert_no_key_material(&stdout(&out), key_pem);

    let out = certstore(&f.args(&[]));
    let text = stdout(&out);
    assert_eq!(code(&out), expected_code, "{text}");
    assert!(
        text.contains(&format!("refused: {store_error}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!("reason: {}\n", store_error.reason())),
        "{text}"
    );
    assert!(!text.contains("would be served"), "{text}");
    common::assert_no_key_material(&text, key_pem);
    store_error.reason().as_str().to_owned()
}

#[test]
fn mismatched_key() {
    let (a, b) = (leaf(), leaf());
    let f = files(a.cert.as_bytes(), b.key.as_bytes());
    assert_eq!(agree_on_refusal(&f, &f.key, &b.key), "key_mismatch");
}

#[test]
fn expired_leaf() {
    let p = leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, -7200, -3600);
    let f = pair_files(&p);
    assert_eq!(agree_on_refusal(&f, &f.cert, &p.key), "expired");
}

#[test]
fn not_yet_valid_leaf() {
    let p = leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, 3600, 7200);
    let f = pair_files(&p);
    assert_eq!(agree_on_refusal(&f, &f.cert, &p.key), "not_yet_valid");
}

#[test]
fn encrypted_key() {
    let p = leaf();
    let encrypted = openssl_pkey(&p.key, &["-aes256", "-passout", "pass:secret"]);
    let f = files(p.cert.as_bytes(), encrypted.as_bytes());
    assert_eq!(agree_on_refusal(&f, &f.key, &encrypted), "encrypted_key");
}

#[test]
fn empty_cert_file() {
    let p = leaf();
    let f = files(b"", p.key.as_bytes());
    assert_eq!(agree_on_refusal(&f, &f.cert, &p.key), "parse_error");
}

#[test]
fn garbage_cert_file() {
    let p = leaf();
    let f = files(b"this is not a certificate\n\x00\xff", p.key.as_bytes());
    assert_eq!(agree_on_refusal(&f, &f.cert, &p.key), "parse_error");
}

#[test]
fn garbage_key_file() {
    let p = leaf();
    let f = files(p.cert.as_bytes(), b"hello");
    assert_eq!(agree_on_refusal(&f, &f.key, &p.key), "parse_error");
}

#[test]
fn truncated_pem() {
    let p = leaf();
    let f = files(&p.cert.as_bytes()[..p.cert.len() / 2], p.key.as_bytes());
    assert_eq!(agree_on_refusal(&f, &f.cert, &p.key), "parse_error");
}

#[test]
fn fifo_at_cert_path() {
    let p = leaf();
    let f = pair_files(&p);
    std::fs::remove_file(&f.cert).unwrap();
    let c = std::ffi::CString::new(path(&f.cert)).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    assert_eq!(agree_on_refusal(&f, &f.cert, &p.key), "not_regular_file");
}

#[test]
fn directory_at_cert_path() {
    let p = leaf();
    let f = pair_files(&p);
    std::fs::remove_file(&f.cert).unwrap();
    std::fs::create_dir(&f.cert).unwrap();
    assert_eq!(agree_on_refusal(&f, &f.cert, &p.key), "not_regular_file");
}

#[test]
fn file_over_size_limit() {
    let p = leaf();
    let mut big = p.cert.clone();
    while big.len() as u64 <= LIMIT {
        big.push_str("# padding padding padding padding padding padding\n");
    }
    let f = files(big.as_bytes(), p.key.as_bytes());
    assert_eq!(agree_on_refusal(&f, &f.cert, &p.key), "too_large");
    // Under the store's default limit the same file is fine: the option is really passed on.
    let out = certstore(&["check", "--cert", path(&f.cert), "--key", path(&f.key)]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
}

#[test]
fn missing_file() {
    let p = leaf();
    let f = pair_files(&p);
    std::fs::remove_file(&f.key).unwrap();
    assert_eq!(agree_on_refusal(&f, &f.key, &p.key), "missing");
}

#[test]
fn bad_ca_bundle() {
    let p = leaf();
    let f =
        pair_files(&p).with_ca(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    let ca = f.ca.clone().unwrap();
    assert_eq!(agree_on_refusal(&f, &ca, &p.key), "parse_error");
}

#[test]
fn missing_ca_bundle() {
    let p = leaf();
    let f = pair_files(&p).with_ca(b"");
    let ca = f.ca.clone().unwrap();
    std::fs::remove_file(&ca).unwrap();
    assert_eq!(agree_on_refusal(&f, &ca, &p.key), "missing");
}

/// A good pair: exit 0, and the facts printed are the store's own for the same files.
fn served(f: &Files, pair: &Pair, key_type: &str) {
    let store = Store::open(f.options()).expect("the store serves these files");
    let snap = store.current();
    let out = certstore(&f.args(&["--json"]));
    let report = json(&out);
    assert_eq!(code(&out), 0, "{report}");
    assert_eq!(report["verdict"], "would_be_served");
    let leaf = &report["leaf"];
    assert_eq!(leaf["serial"], pair.serial_hex.as_str());
    assert_eq!(leaf["serial"], snap.serial_hex());
    assert_eq!(leaf["not_before"], format_unix(snap.not_before()).as_str());
    assert_eq!(leaf["not_after"], format_unix(snap.not_after()).as_str());
    assert_eq!(leaf["key_type"], key_type);
    assert_eq!(leaf["sans"], serde_json::json!(["DNS:localhost"]));
    // The fingerprint printed is openssl's for the leaf, not only our own computation.
    let der = CertificateDer::from_pem_slice(pair.cert.as_bytes()).unwrap();
    let digest = common::openssl(&["dgst", "-sha256", "-binary"], der.as_ref());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(leaf["sha256"], hex.as_str());
    assert_eq!(report["chain_length"], 1);
    common::assert_no_key_material(&stdout(&out), &std::fs::read_to_string(&f.key).unwrap());

    let out = certstore(&f.args(&[]));
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}");
    assert!(text.ends_with("would be served\n"), "{text}");
    assert!(
        text.contains(&format!("  serial     {}\n", pair.serial_hex)),
        "{text}"
    );
    assert!(
        text.contains(&format!("  key type   {key_type}\n")),
        "{text}"
    );
    assert!(text.contains("  SANs       DNS:localhost\n"), "{text}");
    common::assert_no_key_material(&text, &std::fs::read_to_string(&f.key).unwrap());
}

/// Every key type in every encoding is served, and refused with the key of another pair.
fn key_type(alg: &'static rcgen::SignatureAlgorithm, name: &str, traditional: Option<&str>) {
    let pair = leaf_with(alg, -60, 3600);
    served(&pair_files(&pair), &pair, name);
    if let Some(label) = traditional {
        let key = openssl_pkey(&pair.key, &["-traditional"]);
        assert!(key.contains(label), "{key:.40}");
        let f = files(pair.cert.as_bytes(), key.as_bytes());
        served(&f, &pair, name);
    }
    let other = leaf_with(alg, -60, 3600);
    let f = files(pair.cert.as_bytes(), other.key.as_bytes());
    assert_eq!(agree_on_refusal(&f, &f.key, &other.key), "key_mismatch");
}

#[test]
fn rsa_pkcs8_and_pkcs1() {
    key_type(
        &rcgen::PKCS_RSA_SHA256,
        "RSA 2048",
        Some("BEGIN RSA PRIVATE KEY"),
    );
}

#[test]
fn ecdsa_p256_pkcs8_and_sec1() {
    key_type(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        "ECDSA P-256",
        Some("BEGIN EC PRIVATE KEY"),
    );
}

#[test]
fn ecdsa_p384_pkcs8_and_sec1() {
    key_type(
        &rcgen::PKCS_ECDSA_P384_SHA384,
        "ECDSA P-384",
        Some("BEGIN EC PRIVATE KEY"),
    );
}

#[test]
fn ecdsa_p521_pkcs8_and_sec1() {
    key_type(
        &rcgen::PKCS_ECDSA_P521_SHA512,
        "ECDSA P-521",
        Some("BEGIN EC PRIVATE KEY"),
    );
}

#[test]
fn ed25519_pkcs8() {
    key_type(&rcgen::PKCS_ED25519, "Ed25519", None);
}

#[test]
fn chain_and_ca_bundle_are_described() {
    let (issuing, other) = (Ca::new("Issuing CA"), Ca::new("Other CA"));
    let pair = issuing.leaf(-60, 3600);
    let chain = format!("{}{}", pair.cert, issuing.pem);
    let bundle = format!("{}{}", issuing.pem, other.pem);
    let f = files(chain.as_bytes(), pair.key.as_bytes()).with_ca(bundle.as_bytes());
    let store = Store::open(f.options()).unwrap();
    let out = certstore(&f.args(&["--json"]));
    let report = json(&out);
    assert_eq!(code(&out), 0, "{report}");
    assert_eq!(report["chain_length"], 2);
    assert_eq!(report["intermediates"][0]["subject"], "CN=Issuing CA");
    assert_eq!(report["leaf"]["issuer"], "CN=Issuing CA");
    assert_eq!(
        report["leaf"]["sans"],
        serde_json::json!(["DNS:localhost", "IP:127.0.0.1"])
    );
    let cas = report["ca"].as_array().unwrap();
    assert_eq!(cas.len(), store.current().ca_certs().len());
    assert_eq!(cas[0]["subject"], "CN=Issuing CA");
    assert_eq!(cas[1]["subject"], "CN=Other CA");
    let ca_not_after = common::openssl(&["x509", "-noout", "-enddate"], other.pem.as_bytes());
    // openssl prints "notAfter=Nov 25 12:00:00 2027 GMT"; compare the year and the time.
    let ca_not_after = String::from_utf8(ca_not_after).unwrap();
    let ours = cas[1]["not_after"].as_str().unwrap();
    assert!(
        ca_not_after.contains(&ours[..4]),
        "{ca_not_after} vs {ours}"
    );
    assert!(
        ca_not_after.contains(&ours[11..19]),
        "{ca_not_after} vs {ours}"
    );

    let text = stdout(&certstore(&f.args(&[])));
    assert!(
        text.contains("chain        2 certificates (leaf first)\n"),
        "{text}"
    );
    assert!(text.contains("CA bundle    "), "{text}");
    assert!(
        text.contains("  CA         CN=Other CA  (notAfter "),
        "{text}"
    );
}

#[test]
fn at_judges_the_validity_window_at_another_time() {
    // Valid from an hour ago for a day.
    let p = leaf();
    let f = pair_files(&p);
    let at = |when: &str| json(&certstore(&f.args(&["--json", "--at", when])));
    assert_eq!(at("+2d")["reason"], "expired");
    assert_eq!(at("-2h")["reason"], "not_yet_valid");
    assert_eq!(at("+1h")["verdict"], "would_be_served");
    assert_eq!(at("2000-01-01T00:00:00Z")["reason"], "not_yet_valid");
    let report = at("@4102444800");
    assert_eq!(report["reason"], "expired");
    assert_eq!(report["at"], "2100-01-01T00:00:00Z");
    assert_eq!(code(&certstore(&f.args(&["--at", "+2d"]))), 1);
}

#[test]
fn usage_errors_exit_2() {
    let p = leaf();
    let f = pair_files(&p);
    for args in [
        vec!["check", "--cert", path(&f.cert)],
        vec![
            "check",
            "--cert",
            path(&f.cert),
            "--key",
            path(&f.key),
            "--at",
            "soon",
        ],
        vec![
            "check",
            "--cert",
            path(&f.cert),
            "--key",
            path(&f.key),
            "--max-file-size",
            "0",
        ],
        vec!["frobnicate"],
        vec![],
    ] {
        let out = certstore(&args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stdout(&out));
    }
}

#[test]
fn help_and_version() {
    let out = certstore(&["--version"]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out),
        format!("certstore {}\n", env!("CARGO_PKG_VERSION"))
    );
    for sub in ["check", "probe", "watch"] {
        let out = certstore(&[sub, "--help"]);
        assert_eq!(code(&out), 0);
        let help = stdout(&out);
        assert!(help.contains("Exit status:"), "{sub}: {help}");
        assert!(help.contains(&format!("Usage: certstore {sub}")), "{help}");
    }
    assert!(stdout(&certstore(&["probe", "--help"])).contains("not verified"));
}
