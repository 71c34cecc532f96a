//! Test fixtures: certificates of every key type, a faithful kubelet atomic writer, polling.
#![allow(dead_code)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rcgen::{CertificateParams, KeyPair, SignatureAlgorithm};

/// A certificate and its key, both PEM.
#[derive(Clone)]
pub struct Pair {
    pub cert: String,
    pub key: String,
    pub serial_hex: String,
}

static SERIAL: AtomicU64 = AtomicU64::new(0x1000);

fn next_serial() -> u64 {
    SERIAL.fetch_add(1, Ordering::Relaxed)
}

/// A self-signed leaf for `localhost` valid from `offset_start` to `offset_end` seconds
/// around now, with a fresh key of `alg`.
pub fn leaf_with(alg: &'static SignatureAlgorithm, offset_start: i64, offset_end: i64) -> Pair {
    let key = KeyPair::generate_for(alg).expect("generate key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let serial = next_serial();
    params.serial_number = Some(serial.into());
    let now = time_now();
    params.not_before = now + time::Duration::seconds(offset_start);
    params.not_after = now + time::Duration::seconds(offset_end);
    let cert = params.self_signed(&key).expect("self sign");
    Pair {
        cert: cert.pem(),
        key: key.serialize_pem(),
        serial_hex: format!("{serial:x}"),
    }
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc()
}

/// A new self-signed leaf (new serial) for an existing PKCS#8 key.
pub fn leaf_for_key(key_pem: &str) -> Pair {
    let key = KeyPair::from_pem(key_pem).expect("parse key");
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    let serial = next_serial();
    params.serial_number = Some(serial.into());
    let cert = params.self_signed(&key).expect("self sign");
    Pair {
        cert: cert.pem(),
        key: key_pem.to_owned(),
        serial_hex: format!("{serial:x}"),
    }
}

/// A P-256 leaf valid from an hour ago for a day.
pub fn leaf() -> Pair {
    leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, -3600, 86_400)
}

/// A CA certificate (PEM).
pub fn ca() -> String {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).expect("sign").pem()
}

/// Runs `openssl ARGS` with `stdin` on its standard input and returns its standard output.
pub fn openssl(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is installed");
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "openssl {args:?} failed");
    out.stdout
}

/// Re-encodes a PKCS#8 key with `openssl pkey` (`-traditional` gives PKCS#1 for RSA, SEC1 for
/// EC; other arguments e.g. encrypt it).
pub fn openssl_pkey(pem: &str, args: &[&str]) -> String {
    let args: Vec<&str> = std::iter::once("pkey")
        .chain(args.iter().copied())
        .collect();
    String::from_utf8(openssl(&args, pem.as_bytes())).unwrap()
}

/// A directory written the way the kubelet writes a Secret volume: files live in a
/// `..<timestamp>` directory, `..data` is a symlink to it, the visible names are symlinks
/// through `..data`, and every update swaps `..data` with one rename.
pub struct KubeletDir {
    pub dir: PathBuf,
    version: u64,
    /// When the last update renamed `..data_tmp` over `..data` (taken just before the rename).
    pub last_swap: Option<Instant>,
}

impl KubeletDir {
    pub fn new(dir: &Path) -> KubeletDir {
        std::fs::create_dir_all(dir).unwrap();
        KubeletDir {
            dir: dir.to_path_buf(),
            version: 0,
            last_swap: None,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// One atomic update of all `files`.
    pub fn write(&mut self, files: &[(&str, &[u8])]) {
        self.version += 1;
        let stamp = format!("..2026_11_24_06_00_00.{:09}", self.version);
        let new_dir = self.dir.join(&stamp);
        std::fs::create_dir(&new_dir).unwrap();
        for (name, bytes) in files {
            std::fs::write(new_dir.join(name), bytes).unwrap();
        }
        let old_target = std::fs::read_link(self.dir.join("..data")).ok();
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        symlink(&stamp, &tmp).unwrap();
        self.last_swap = Some(Instant::now());
        std::fs::rename(&tmp, self.dir.join("..data")).unwrap();
        for (name, _) in files {
            let visible = self.dir.join(name);
            if std::fs::symlink_metadata(&visible).is_err() {
                symlink(Path::new("..data").join(name), &visible).unwrap();
            }
        }
        if let Some(old) = old_target {
            std::fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }

    pub fn write_pair(&mut self, pair: &Pair) {
        self.write(&[
            ("tls.crt", pair.cert.as_bytes()),
            ("tls.key", pair.key.as_bytes()),
        ]);
    }
}

/// Polls `cond` every millisecond until it holds or `timeout` passes.
pub fn wait_for(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    cond()
}
