//! What a certificate says, for people and for JSON. Display only: validation is certstore's
//! (for files) or rustls' (for an endpoint's chain); nothing here accepts or refuses anything.

use certstore::{Snapshot, format_unix};
use serde_json::{Value, json};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
use x509_parser::public_key::PublicKey;

/// A leaf certificate's facts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub subject: String,
    pub issuer: String,
    pub sans: Vec<String>,
    pub serial_hex: String,
    pub not_before: i64,
    pub not_after: i64,
    pub sha256_hex: String,
    pub key_type: String,
}

/// A CA or intermediate certificate's facts, as far as operators ask about them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authority {
    pub subject: String,
    pub not_before: i64,
    pub not_after: i64,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| format!("not an X.509 certificate: {e}"))
}

fn name_or_empty(name: String) -> String {
    if name.is_empty() {
        "(empty)".to_owned()
    } else {
        name
    }
}

fn sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(ext)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    ext.value
        .general_names
        .iter()
        .map(|name| match name {
            GeneralName::DNSName(s) => format!("DNS:{s}"),
            GeneralName::IPAddress(b) => match b.len() {
                4 => format!(
                    "IP:{}",
                    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).unwrap())
                ),
                16 => format!(
                    "IP:{}",
                    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).unwrap())
                ),
                _ => format!("IP:{}", hex(b)),
            },
            GeneralName::URI(s) => format!("URI:{s}"),
            GeneralName::RFC822Name(s) => format!("email:{s}"),
            other => other.to_string(),
        })
        .collect()
}

/// "RSA 2048", "ECDSA P-256", "Ed25519", from the subject public key (which, for a validated
/// pair, is the key's public half).
fn key_type(cert: &X509Certificate<'_>) -> String {
    let spki = cert.public_key();
    let algorithm = spki.algorithm.algorithm.to_id_string();
    match spki.parsed() {
        Ok(PublicKey::RSA(rsa)) => format!("RSA {}", rsa.key_size()),
        Ok(PublicKey::EC(_)) => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|oid| oid.to_id_string());
            match curve.as_deref() {
                Some("1.2.840.10045.3.1.7") => "ECDSA P-256".to_owned(),
                Some("1.3.132.0.34") => "ECDSA P-384".to_owned(),
                Some("1.3.132.0.35") => "ECDSA P-521".to_owned(),
                Some(other) => format!("ECDSA (curve {other})"),
                None => "ECDSA (unknown curve)".to_owned(),
            }
        }
        _ if algorithm == "1.3.101.112" => "Ed25519".to_owned(),
        _ if algorithm == "1.3.101.113" => "Ed448".to_owned(),
        _ => format!("unknown ({algorithm})"),
    }
}

fn sha256(der: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref())
}

impl Leaf {
    /// Everything from the DER (an endpoint's leaf, or a certificate file's).
    pub fn from_der(der: &[u8]) -> Result<Leaf, String> {
        let cert = parse(der)?;
        Ok(Leaf {
            subject: name_or_empty(cert.subject().to_string()),
            issuer: name_or_empty(cert.issuer().to_string()),
            sans: sans(&cert),
            // BigUint's hex has no leading zeros, as certstore's serial_hex.
            serial_hex: format!("{:x}", cert.tbs_certificate.serial),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            sha256_hex: sha256(der),
            key_type: key_type(&cert),
        })
    }

    /// A validated generation: serial, validity and fingerprint as the store computed them.
    pub fn from_snapshot(snapshot: &Snapshot) -> Leaf {
        let chain = &snapshot.certified_key().cert;
        // The validator parsed this leaf before accepting it, so it parses here.
        let mut leaf = Leaf::from_der(chain[0].as_ref()).unwrap_or_else(|e| Leaf {
            subject: format!("(cannot display: {e})"),
            issuer: String::new(),
            sans: Vec::new(),
            serial_hex: String::new(),
            not_before: 0,
            not_after: 0,
            sha256_hex: String::new(),
            key_type: String::new(),
        });
        leaf.serial_hex = snapshot.serial_hex().to_owned();
        leaf.not_before = snapshot.not_before();
        leaf.not_after = snapshot.not_after();
        leaf.sha256_hex = hex(snapshot.fingerprint_sha256());
        leaf
    }

    pub fn to_json(&self) -> Value {
        json!({
            "subject": self.subject,
            "issuer": self.issuer,
            "sans": self.sans,
            "serial": self.serial_hex,
            "not_before": format_unix(self.not_before),
            "not_after": format_unix(self.not_after),
            "sha256": self.sha256_hex,
            "key_type": self.key_type,
        })
    }

    /// Indented `label  value` lines.
    pub fn text_lines(&self, indent: &str) -> String {
        let sans = if self.sans.is_empty() {
            "(none)".to_owned()
        } else {
            self.sans.join(", ")
        };
        let rows = [
            ("subject", self.subject.clone()),
            ("issuer", self.issuer.clone()),
            ("SANs", sans),
            ("serial", self.serial_hex.clone()),
            ("notBefore", format_unix(self.not_before)),
            ("notAfter", format_unix(self.not_after)),
            ("key type", self.key_type.clone()),
            ("sha256", self.sha256_hex.clone()),
        ];
        rows.iter()
            .map(|(label, value)| format!("{indent}{label:<11}{value}\n"))
            .collect()
    }

    /// Which of two different leaves is the newer: by notBefore, then by notAfter.
    pub fn newer_than(&self, other: &Leaf) -> Option<bool> {
        match (self.not_before, self.not_after).cmp(&(other.not_before, other.not_after)) {
            std::cmp::Ordering::Greater => Some(true),
            std::cmp::Ordering::Less => Some(false),
            std::cmp::Ordering::Equal => None,
        }
    }
}

impl Authority {
    pub fn from_der(der: &[u8]) -> Authority {
        match parse(der) {
            Ok(cert) => Authority {
                subject: name_or_empty(cert.subject().to_string()),
                not_before: cert.validity().not_before.timestamp(),
                not_after: cert.validity().not_after.timestamp(),
            },
            // Only reachable for an endpoint's chain (files are validated first).
            Err(e) => Authority {
                subject: format!("(cannot display: {e})"),
                not_before: 0,
                not_after: 0,
            },
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "subject": self.subject,
            "not_before": format_unix(self.not_before),
            "not_after": format_unix(self.not_after),
        })
    }

    pub fn text(&self) -> String {
        format!(
            "{}  (notAfter {})",
            self.subject,
            format_unix(self.not_after)
        )
    }
}
