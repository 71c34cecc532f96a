//! One validated, immutable generation of certificate, key and CA bundle.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use rustls::sign::CertifiedKey;
use rustls_pki_types::CertificateDer;
use zeroize::Zeroizing;

/// A generation that passed validation. Shared by reference count: handing one out copies
/// nothing, and the key bytes are zeroized when the last reference is dropped.
///
/// The PEM forms are encoded from the validated DER on first access (once per snapshot), so a
/// rotation that nobody reads as PEM (a rustls server) does not pay for them.
pub struct Snapshot {
    pub(crate) generation: u64,
    pub(crate) cert_pem: OnceLock<Vec<u8>>,
    /// The private key's DER and the PEM label of its encoding.
    pub(crate) key_der: Zeroizing<Vec<u8>>,
    pub(crate) key_label: &'static str,
    pub(crate) key_pem: OnceLock<Zeroizing<Vec<u8>>>,
    /// Set (possibly empty until first access) when a CA bundle is configured.
    pub(crate) ca_pem: Option<OnceLock<Vec<u8>>>,
    pub(crate) ca_certs: Vec<CertificateDer<'static>>,
    pub(crate) ca_not_after: Vec<i64>,
    pub(crate) certified_key: Arc<CertifiedKey>,
    pub(crate) not_before: i64,
    pub(crate) not_after: i64,
    pub(crate) serial: Serial,
    pub(crate) fingerprint_sha256: [u8; 32],
    pub(crate) content_hash: [u8; 32],
    pub(crate) loaded_at: SystemTime,
}

impl Snapshot {
    /// Position in the store's sequence: 1 for the initial load, +1 for every published change.
    pub fn generation(&self) -> u64 {
        self.generation
    }
    /// The certificate chain that was validated, leaf first: each DER certificate PEM-encoded
    /// as a `CERTIFICATE` block (64-column base64, `\n` line ends). Never the file's bytes:
    /// comments, other blocks and line endings of the file are not carried over.
    pub fn cert_pem(&self) -> &[u8] {
        self.cert_pem.get_or_init(|| {
            crate::pem::certificates(self.certified_key.cert.iter().map(|c| c.as_ref()))
        })
    }
    /// The private key that was loaded and matched against the leaf, PEM-encoded from its DER
    /// under the label of its encoding (`PRIVATE KEY`, `RSA PRIVATE KEY`, `EC PRIVATE KEY`).
    /// Never log this.
    pub fn key_pem(&self) -> &[u8] {
        self.key_pem
            .get_or_init(|| crate::pem::private_key(self.key_label, &self.key_der))
    }
    /// The CA bundle's certificates that were validated, PEM-encoded from their DER like
    /// [`Snapshot::cert_pem`]; `None` when no CA bundle is configured.
    pub fn ca_pem(&self) -> Option<&[u8]> {
        let pem = self.ca_pem.as_ref()?;
        Some(pem.get_or_init(|| crate::pem::certificates(self.ca_certs.iter().map(|c| c.as_ref()))))
    }
    /// notAfter (unix seconds) of each certificate of the CA bundle, in bundle order.
    pub fn ca_not_after(&self) -> &[i64] {
        &self.ca_not_after
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
        self.serial.as_str()
    }
    /// [`Snapshot::serial_hex`] followed by a NUL byte, for C callers.
    pub fn serial_hex_nul(&self) -> &std::ffi::CStr {
        self.serial.as_c_str()
    }
    /// SHA-256 of the leaf certificate's DER.
    pub fn fingerprint_sha256(&self) -> &[u8; 32] {
        &self.fingerprint_sha256
    }
    /// When this generation was published (for the first generation: when the store opened).
    pub fn loaded_at(&self) -> SystemTime {
        self.loaded_at
    }
}

impl std::fmt::Debug for Snapshot {
    // Hand-written so that the key can never reach a log through `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.generation)
            .field("serial", &self.serial.as_str())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("ca_certs", &self.ca_certs.len())
            .finish_non_exhaustive()
    }
}

/// A serial number as lowercase hex, stored NUL-terminated so C callers borrow it as is.
pub(crate) struct Serial(std::ffi::CString);

impl Serial {
    pub(crate) fn new(hex: String) -> Serial {
        // Hex digits never contain NUL.
        Serial(std::ffi::CString::new(hex).unwrap_or_default())
    }
    fn as_str(&self) -> &str {
        // Built from a String of hex digits.
        self.0.to_str().unwrap_or("")
    }
    fn as_c_str(&self) -> &std::ffi::CStr {
        &self.0
    }
}
