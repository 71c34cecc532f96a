//! Turns the bytes of one generation into a [`Snapshot`], or says precisely why not.
//!
//! Checks, in order: the chain parses (PEM, then X.509), the key parses and is not encrypted,
//! the crypto provider can load the key and it matches the leaf's public key, the leaf is
//! inside its validity window (per [`ValidityPolicy`]), and the CA bundle parses.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer, X509Certificate};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, FileRole};
use crate::options::{Options, ValidityPolicy};
use crate::reader::RawFiles;
use crate::snapshot::Snapshot;

/// The crypto provider used to load keys: aws-lc-rs, which (unlike ring) loads P-521 keys, so
/// every key Go's crypto/tls accepts loads here too.
pub(crate) fn provider() -> &'static Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER.get_or_init(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// What the validator learned about a leaf before refusing it: the store reports it as "what
/// is on disk" even when it does not serve it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LeafFacts {
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
}

/// A refused generation: why, and the leaf's facts if the leaf parsed.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub error: Error,
    pub leaf: Option<LeafFacts>,
}

impl From<Error> for Refusal {
    fn from(error: Error) -> Refusal {
        Refusal { error, leaf: None }
    }
}

/// Validates `raw` and builds the snapshot it would become (generation 0: the store stamps the
/// generation when it publishes). Every output of the snapshot (chain, key and CA PEM, serial,
/// dates, fingerprint) is derived from the DER parsed here.
pub(crate) fn validate(
    raw: RawFiles,
    options: &Options,
    now_unix: i64,
) -> Result<Snapshot, Refusal> {
    let chain = parse_certs(FileRole::Certificate, &options.cert_path, &raw.cert)?;
    let leaf = parse_x509(FileRole::Certificate, &options.cert_path, 0, &chain[0])?;
    if leaf.version() != x509_parser::x509::X509Version::V3 {
        // TLS clients (and rustls) accept only X.509 v3 end-entity certificates.
        return Err(Refusal::from(Error::InvalidCertificate {
            role: FileRole::Certificate,
            path: options.cert_path.clone(),
            index: 0,
            reason: format!(
                "X.509 version {} leaf; TLS needs version 3",
                leaf.version().0 + 1
            ),
        }));
    }
    let facts = LeafFacts {
        serial_hex: serial_hex(leaf.raw_serial()),
        not_before: leaf.validity().not_before.timestamp(),
        not_after: leaf.validity().not_after.timestamp(),
    };
    drop(leaf);
    for (index, der) in chain.iter().enumerate().skip(1) {
        parse_x509(FileRole::Certificate, &options.cert_path, index, der).map_err(|error| {
            Refusal {
                error,
                leaf: Some(facts.clone()),
            }
        })?;
    }
    let refuse = |error: Error| Refusal {
        error,
        leaf: Some(facts.clone()),
    };

    let fingerprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, chain[0].as_ref());
    let mut fingerprint_sha256 = [0u8; 32];
    fingerprint_sha256.copy_from_slice(fingerprint.as_ref());
    let (certified_key, key_der, key_label) = certify(chain, &raw.key, options).map_err(refuse)?;

    if options.validity == ValidityPolicy::Enforce {
        if now_unix < facts.not_before {
            return Err(refuse(Error::NotYetValid {
                path: options.cert_path.clone(),
                not_before: facts.not_before,
            }));
        }
        if now_unix > facts.not_after {
            return Err(refuse(Error::Expired {
                path: options.cert_path.clone(),
                not_after: facts.not_after,
            }));
        }
    }

    let (ca_certs, ca_not_after) = match (&options.ca_path, &raw.ca) {
        (Some(path), Some(bytes)) => {
            let certs = parse_certs(FileRole::CaBundle, path, bytes).map_err(refuse)?;
            let mut not_after = Vec::with_capacity(certs.len());
            for (index, der) in certs.iter().enumerate() {
                let ca = parse_x509(FileRole::CaBundle, path, index, der).map_err(refuse)?;
                not_after.push(ca.validity().not_after.timestamp());
            }
            (certs, not_after)
        }
        _ => (Vec::new(), Vec::new()),
    };
    Ok(Snapshot {
        generation: 0,
        cert_pem: OnceLock::new(),
        key_der,
        key_label,
        key_pem: OnceLock::new(),
        ca_pem: options.ca_path.as_ref().map(|_| OnceLock::new()),
        ca_certs,
        ca_not_after,
        certified_key: Arc::new(certified_key),
        not_before: facts.not_before,
        not_after: facts.not_after,
        serial: crate::snapshot::Serial::new(facts.serial_hex),
        fingerprint_sha256,
        content_hash: raw.content_hash,
        loaded_at: SystemTime::now(),
    })
}

/// Loads the key and checks it belongs to the leaf; returns it with a copy of the key's DER
/// and its PEM label. The decoded key DER is zeroized on every path (rustls'
/// `CertifiedKey::from_der` would drop it unwiped).
fn certify(
    chain: Vec<CertificateDer<'static>>,
    key_pem: &[u8],
    options: &Options,
) -> Result<(CertifiedKey, Zeroizing<Vec<u8>>, &'static str), Error> {
    let mut key = parse_key(&options.key_path, key_pem)?;
    let label = match &key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    let der = Zeroizing::new(key.secret_der().to_vec());
    let signer = provider().key_provider.load_private_key(key.clone_key());
    key.zeroize();
    let signer = signer.map_err(|e| Error::UnsupportedKey {
        path: options.key_path.clone(),
        // rustls' messages for key loading name the algorithm problem, never key bytes.
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) => Ok((certified, der, label)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(Error::KeyMismatch {
                cert: options.cert_path.clone(),
                key: options.key_path.clone(),
            })
        }
        // The leaf's public key could not be read: a certificate problem, not a key one.
        Err(rustls::Error::InvalidCertificate(_)) => Err(Error::InvalidCertificate {
            role: FileRole::Certificate,
            path: options.cert_path.clone(),
            index: 0,
            reason: "its public key cannot be read".into(),
        }),
        // Every key type aws-lc-rs loads reports its public key (tested for each); should one
        // not, refusing is the safe side.
        Err(e) => Err(Error::UnsupportedKey {
            path: options.key_path.clone(),
            reason: format!("cannot check that the key matches the certificate: {e}"),
        }),
    }
}

fn pem_reason(e: &pem::Error) -> &'static str {
    match e {
        pem::Error::MissingSectionEnd { .. } => {
            "a BEGIN line has no matching END line (truncated?)"
        }
        pem::Error::IllegalSectionStart { .. } => "a BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "the base64 body does not decode",
        pem::Error::SectionTooLarge => "a PEM section is too large",
        _ => "unreadable PEM",
    }
}

fn parse_certs(
    role: FileRole,
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(bytes) {
        certs.push(item.map_err(|e| Error::MalformedPem {
            role,
            path: path.to_path_buf(),
            reason: pem_reason(&e),
        })?);
    }
    if certs.is_empty() {
        return Err(Error::NothingFound {
            role,
            path: path.to_path_buf(),
            expected: "PEM CERTIFICATE block",
        });
    }
    Ok(certs)
}

fn parse_x509<'a>(
    role: FileRole,
    path: &Path,
    index: usize,
    der: &'a CertificateDer<'_>,
) -> Result<X509Certificate<'a>, Error> {
    match X509Certificate::from_der(der.as_ref()) {
        Ok((&[], cert)) => Ok(cert),
        Ok(_) => Err(Error::InvalidCertificate {
            role,
            path: path.to_path_buf(),
            index,
            reason: "trailing bytes after the certificate".into(),
        }),
        Err(e) => Err(Error::InvalidCertificate {
            role,
            path: path.to_path_buf(),
            index,
            reason: e.to_string(),
        }),
    }
}

fn parse_key(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, Error> {
    // Both PKCS#8 "ENCRYPTED PRIVATE KEY" and legacy "Proc-Type: 4,ENCRYPTED" say so in clear
    // text; without this check they would surface as the less helpful "no key found".
    let says_encrypted = bytes.split(|&b| b == b'\n').any(|line| {
        line.starts_with(b"-----BEGIN ENCRYPTED")
            || (line.starts_with(b"Proc-Type:") && line.ends_with(b"ENCRYPTED"))
            || (line.starts_with(b"Proc-Type:") && line.ends_with(b"ENCRYPTED\r"))
    });
    if says_encrypted {
        return Err(Error::EncryptedKey {
            path: path.to_path_buf(),
        });
    }
    PrivateKeyDer::from_pem_slice(bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => Error::NothingFound {
            role: FileRole::PrivateKey,
            path: path.to_path_buf(),
            expected: "PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block",
        },
        other => Error::MalformedPem {
            role: FileRole::PrivateKey,
            path: path.to_path_buf(),
            reason: pem_reason(&other),
        },
    })
}

/// Lowercase hex of a DER INTEGER's magnitude without leading zeros ("0" for zero).
fn serial_hex(raw: &[u8]) -> String {
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::serial_hex;

    #[test]
    fn serial_hex_matches_big_int_text() {
        assert_eq!(serial_hex(&[0x00, 0x0a, 0xbc]), "abc");
        assert_eq!(serial_hex(&[0x7f, 0x01]), "7f01");
        assert_eq!(serial_hex(&[0x00]), "0");
        assert_eq!(serial_hex(&[]), "0");
    }
}
