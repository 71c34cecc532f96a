//! One validated, immutable generation of certificate, key and CA bundle.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

/// A generation that passed validation. Shared by reference count: handing one out copies
/// nothing, and the key bytes are zeroized when the last reference is dropped.
pub struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) cert_pem: Vec<u8>,
    pub(crate) key_pem: Zeroizing<Vec<u8>>,
    pub(crate) ca_pem: Option<Vec<u8>>,
    pub(crate) ca_certs: Vec<CertificateDer<'static>>,
    pub(crate) certified_key: Arc<CertifiedKey>,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) serial_hex: String,
    pub(crate) fingerprint_sha256: [u8; 32],
    pub(crate) content_hash: [u8; 32],
    pub(crate) loaded_at: SystemTime,
}

impl Snapshot {
    /// Position in the store's sequence: 1 for the initial load, +1 for every published change.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// The CERTIFICATE blocks of the certificate file (PEM, leaf first), without anything
    /// else the file holds (comments, a private key in a combined file).
    pub fn cert_pem(&self) -> &[u8] {
        &self.cert_pem
    }
    /// The private key file as read (PEM). Never log this.
    pub fn key_pem(&self) -> &[u8] {
        &self.key_pem
    }
    /// The CA bundle file as read (PEM), if one is configured.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref()
    }
    /// The CA bundle's certificates (DER), empty when no CA bundle is configured.
    pub fn ca_certs(&self) -> &[CertificateDer<'static>] {
        &self.ca_certs
    }
    /// Chain and signing key, ready for a rustls `ResolvesServerCert`.
    pub fn certified_key(&self) -> &Arc<CertifiedKey> {
        &self.certified_key
    }
    /// The leaf's notBefore, unix seconds.
    pub fn not_before(&self) -> i64 {
        self.not_before
    }
    /// The leaf's notAfter, unix seconds.
    pub fn not_after(&self) -> i64 {
        self.not_after
    }
    /// The leaf's serial number as lowercase hex without leading zeros (as Go's `big.Int`
    /// `Text(16)` prints it).
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }
    /// SHA-256 of the leaf certificate's DER.
    pub fn fingerprint_sha256(&self) -> &[u8; 32] {
        &self.fingerprint_sha256
    }
    /// When this generation was read and validated.
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }
}

impl std::fmt::Debug for Snapshot {
    // Hand-written so that the key can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation)
            .field("serial", &self.serial_hex)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("ca_certs", &self.ca_certs.len())
            .finish_non_exhaustive()
    }
}
