//! `certstore probe`: a real TLS handshake, the leaf the endpoint serves, and how it compares
//! with a certificate file.

use std::fmt::Write as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use certstore::format_unix;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde_json::{Value, json};

use crate::against::Against;
use crate::cli::ProbeArgs;
use crate::describe::{Authority, Leaf};
use crate::signals::Termination;
use crate::timearg::now_unix;
use crate::{EXIT_OK, EXIT_REFUSED, EXIT_TROUBLE, output};

/// Verifies the chain against `--ca` when given and remembers the answer, but lets every
/// handshake complete: the served chain is shown whether it is trusted or not. The
/// handshake's signatures are always checked, so the peer did prove it holds the leaf's key.
#[derive(Debug)]
struct Recorder {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    outcome: Mutex<Option<Result<(), String>>>,
}

impl Recorder {
    fn take(&self) -> Option<Result<(), String>> {
        self.outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}

impl ServerCertVerifier for Recorder {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let outcome = self.webpki.as_ref().map(|webpki| {
            webpki
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = outcome;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What one probe found.
enum Outcome {
    Served(Box<Served>),
    Unreachable(String),
}

struct Served {
    leaf: Leaf,
    chain_length: usize,
    intermediates: Vec<Authority>,
    protocol: String,
    cipher_suite: String,
    /// `None`: not verified (no --ca).
    verified: Option<Result<(), String>>,
    against: Option<Compared>,
}

/// The outcome of `--against`, and what it compared with.
struct Compared {
    /// The input as the text output names it (see `Certificates::label`).
    label: String,
    /// NAMESPACE/NAME of the Secret the certificate came from.
    secret: Option<String>,
    comparison: Comparison,
}

enum Comparison {
    Match,
    Differ {
        file_leaf: Leaf,
        /// `Some(true)`: the endpoint's leaf is the newer one.
        served_newer: Option<bool>,
    },
    /// The file was read but holds no usable certificate (a broken generation on disk): it
    /// does not hold the served leaf either, so this counts as a difference.
    Unusable(String),
    /// There is nothing to compare with: the file cannot be read, or it is a Secret without
    /// a tls.crt, or no Secret at all.
    FileError(String),
}

impl Outcome {
    fn exit_code(&self) -> i32 {
        match self {
            Outcome::Unreachable(_) => EXIT_TROUBLE,
            Outcome::Served(served) => match served.against.as_ref().map(|a| &a.comparison) {
                None | Some(Comparison::Match) => EXIT_OK,
                Some(Comparison::Differ { .. } | Comparison::Unusable(_)) => EXIT_REFUSED,
                Some(Comparison::FileError(_)) => EXIT_TROUBLE,
            },
        }
    }

    /// Two probes with the same key report the same thing; only changes are printed.
    fn key(&self) -> String {
        match self {
            Outcome::Unreachable(why) => format!("unreachable {why}"),
            Outcome::Served(served) => {
                let against = match served.against.as_ref().map(|a| &a.comparison) {
                    None => String::new(),
                    Some(Comparison::Match) => "match".to_owned(),
                    Some(Comparison::Differ { file_leaf, .. }) => {
                        format!("differs {}", file_leaf.sha256_hex)
                    }
                    Some(Comparison::Unusable(why)) => format!("unusable {why}"),
                    Some(Comparison::FileError(why)) => format!("file error {why}"),
                };
                format!(
                    "{} {:?} {against}",
                    served.leaf.sha256_hex,
                    served.verified.as_ref().map(Result::is_ok)
                )
            }
        }
    }
}

struct Target {
    host: String,
    port: u16,
    display: String,
    server_name: ServerName<'static>,
}

fn parse_target(text: &str, servername: Option<&str>) -> Result<Target, String> {
    let (host, port) = text
        .rsplit_once(':')
        .ok_or_else(|| format!("{text:?}: expected HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{text:?}: the port must be a number from 0 to 65535"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(format!("{text:?}: the host is empty"));
    }
    let name = servername.unwrap_or(host);
    let server_name = ServerName::try_from(name.to_owned())
        .map_err(|_| format!("{name:?} is not a valid server name (DNS name or IP address)"))?;
    Ok(Target {
        host: host.to_owned(),
        port,
        display: text.to_owned(),
        server_name,
    })
}

fn parse_certs(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("malformed PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM CERTIFICATE block found".to_owned());
    }
    Ok(certs)
}

fn read_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("{what} file {}: cannot read: {e}", path.display()))?;
    parse_certs(&bytes).map_err(|e| format!("{what} file {}: {e}", path.display()))
}

fn client_config(args: &ProbeArgs) -> Result<(Arc<ClientConfig>, Arc<Recorder>), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let webpki = match &args.ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in read_certs(path, "CA bundle")? {
                roots
                    .add(cert)
                    .map_err(|e| format!("CA bundle file {}: unusable CA: {e}", path.display()))?;
            }
            let verifier =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("CA bundle file {}: {e}", path.display()))?;
            Some(verifier)
        }
        None => None,
    };
    let recorder = Arc::new(Recorder {
        webpki,
        provider: provider.clone(),
        outcome: Mutex::new(None),
    });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS configuration: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(recorder.clone());
    let config = match (&args.client_cert, &args.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let chain = read_certs(cert_path, "client certificate")?;
            // Errors name the file and the kind of problem; the key's bytes are never shown.
            let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| {
                format!(
                    "client key file {}: no usable PEM private key ({})",
                    key_path.display(),
                    pem_error_kind(&e)
                )
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("client key file {}: {e}", key_path.display()))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok((Arc::new(config), recorder))
}

fn pem_error_kind(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no key block found".to_owned(),
        Error::MissingSectionEnd { .. } => "truncated PEM".to_owned(),
        Error::Base64Decode(_) => "bad base64".to_owned(),
        _ => "malformed PEM".to_owned(),
    }
}

fn protocol_name(version: Option<rustls::ProtocolVersion>) -> String {
    match version {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLS 1.3".to_owned(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLS 1.2".to_owned(),
        Some(other) => format!("{other:?}"),
        None => "unknown".to_owned(),
    }
}

fn handshake(
    target: &Target,
    config: &Arc<ClientConfig>,
    recorder: &Recorder,
    timeout: Duration,
) -> Result<Served, String> {
    let addrs: Vec<_> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| format!("{}: cannot resolve: {e}", target.display))?
        .collect();
    let mut last_error = format!("{}: no address", target.display);
    let mut stream = None;
    for addr in &addrs {
        match TcpStream::connect_timeout(addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) if addr.to_string() == target.display => {
                last_error = format!("{}: cannot connect: {e}", target.display);
            }
            Err(e) => last_error = format!("{} ({addr}): cannot connect: {e}", target.display),
        }
    }
    let mut stream = stream.ok_or(last_error)?;
    let failed = |e: std::io::Error| format!("{}: TLS handshake failed: {e}", target.display);
    stream.set_read_timeout(Some(timeout)).map_err(failed)?;
    stream.set_write_timeout(Some(timeout)).map_err(failed)?;
    recorder.take();
    let mut conn = ClientConnection::new(config.clone(), target.server_name.clone())
        .map_err(|e| format!("{}: TLS handshake failed: {e}", target.display))?;
    while conn.is_handshaking() {
        conn.complete_io(&mut stream).map_err(failed)?;
    }
    let chain = conn
        .peer_certificates()
        .filter(|chain| !chain.is_empty())
        .ok_or_else(|| format!("{}: the server sent no certificate", target.display))?;
    let leaf = Leaf::from_der(chain[0].as_ref())
        .map_err(|e| format!("{}: the served leaf is {e}", target.display))?;
    let served = Served {
        leaf,
        chain_length: chain.len(),
        intermediates: chain[1..]
            .iter()
            .map(|der| Authority::from_der(der.as_ref()))
            .collect(),
        protocol: protocol_name(conn.protocol_version()),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default(),
        verified: recorder.take(),
        against: None,
    };
    // A polite goodbye; the answer is already in hand, so failures here do not matter.
    conn.send_close_notify();
    let _ = conn.complete_io(&mut stream);
    Ok(served)
}

fn compare(served: &Leaf, against: &Against) -> Compared {
    let certificates = match against.read() {
        Ok(certificates) => certificates,
        Err(why) => {
            return Compared {
                label: against.label(),
                secret: None,
                comparison: Comparison::FileError(why),
            };
        }
    };
    let parsed = parse_certs(&certificates.pem).and_then(|certs| {
        Leaf::from_der(certs[0].as_ref()).map_err(|e| format!("the first certificate is {e}"))
    });
    let comparison = match parsed {
        Err(why) => Comparison::Unusable(format!("{}: {why}", certificates.source)),
        Ok(leaf) if leaf.sha256_hex == served.sha256_hex => Comparison::Match,
        Ok(leaf) => Comparison::Differ {
            served_newer: served.newer_than(&leaf),
            file_leaf: leaf,
        },
    };
    Compared {
        label: certificates.label,
        secret: certificates.secret,
        comparison,
    }
}

fn probe_once(
    args: &ProbeArgs,
    against: Option<&Against>,
    target: &Target,
    config: &Arc<ClientConfig>,
    recorder: &Recorder,
) -> Outcome {
    match handshake(target, config, recorder, args.timeout) {
        Ok(mut served) => {
            served.against = against.map(|against| compare(&served.leaf, against));
            Outcome::Served(Box::new(served))
        }
        Err(why) => Outcome::Unreachable(why),
    }
}

pub fn run(args: &ProbeArgs) -> i32 {
    let target = match parse_target(&args.target, args.servername.as_deref()) {
        Ok(target) => target,
        Err(why) => return output::trouble(&why),
    };
    let (config, recorder) = match client_config(args) {
        Ok(pair) => pair,
        Err(why) => return output::trouble(&why),
    };
    let against = match args.against.as_deref().map(Against::open).transpose() {
        Ok(against) => against,
        Err(why) => return output::trouble(&why),
    };
    let against = against.as_ref();
    let Some(interval) = args.interval else {
        let outcome = probe_once(args, against, &target, &config, &recorder);
        if args.json {
            output::json(&outcome_json(args, &target, &outcome));
        } else {
            output::block(&outcome_text(args, &target, &outcome));
        }
        return outcome.exit_code();
    };

    let signals = Termination::block();
    let mut last_key = None;
    let mut probes = 0u64;
    loop {
        let outcome = probe_once(args, against, &target, &config, &recorder);
        probes += 1;
        let key = outcome.key();
        if last_key.as_ref() != Some(&key) {
            if args.json {
                output::json(&outcome_json(args, &target, &outcome));
            } else {
                output::line(&outcome_line(args, &outcome));
            }
            last_key = Some(key);
        }
        if args.count.is_some_and(|count| probes >= count) || signals.wait(Some(interval)) {
            return outcome.exit_code();
        }
    }
}

fn verified_text(args: &ProbeArgs, verified: &Option<Result<(), String>>) -> String {
    match (verified, &args.ca) {
        (Some(Ok(())), Some(ca)) => format!("yes, against {}", ca.display()),
        (Some(Err(why)), Some(ca)) => format!("NO, against {}: {why}", ca.display()),
        _ => "unverified (no --ca given)".to_owned(),
    }
}

fn newer_text(served_newer: Option<bool>) -> &'static str {
    match served_newer {
        Some(false) => "the file's leaf is newer: the endpoint still serves an older certificate",
        Some(true) => "the served leaf is newer: the file holds an older certificate",
        None => "neither is newer (same notBefore and notAfter)",
    }
}

fn outcome_text(args: &ProbeArgs, target: &Target, outcome: &Outcome) -> String {
    let served = match outcome {
        Outcome::Unreachable(why) => return format!("unreachable: {why}\n"),
        Outcome::Served(served) => served,
    };
    let mut text = String::new();
    let _ = writeln!(
        text,
        "endpoint     {} (server name {})",
        target.display,
        target.server_name.to_str()
    );
    let _ = writeln!(
        text,
        "protocol     {} {}",
        served.protocol, served.cipher_suite
    );
    text.push_str("served leaf\n");
    text.push_str(&served.leaf.text_lines("  "));
    let _ = writeln!(
        text,
        "chain        {} certificate{} (leaf first)",
        served.chain_length,
        if served.chain_length == 1 { "" } else { "s" }
    );
    for (i, authority) in served.intermediates.iter().enumerate() {
        let _ = writeln!(text, "  #{}         {}", i + 1, authority.text());
    }
    let _ = writeln!(
        text,
        "verified     {}",
        verified_text(args, &served.verified)
    );
    if let Some(Compared {
        label, comparison, ..
    }) = &served.against
    {
        match comparison {
            Comparison::Match => {
                let _ = writeln!(text, "against      {label}: same leaf");
            }
            Comparison::Differ {
                file_leaf,
                served_newer,
            } => {
                let _ = writeln!(
                    text,
                    "against      {label}: DIFFERS: file serial {} (notBefore {}, notAfter {}); {}",
                    file_leaf.serial_hex,
                    format_unix(file_leaf.not_before),
                    format_unix(file_leaf.not_after),
                    newer_text(*served_newer)
                );
            }
            Comparison::Unusable(why) => {
                let _ = writeln!(text, "against      DIFFERS: {why}");
            }
            Comparison::FileError(why) => {
                let _ = writeln!(text, "against      {why}");
            }
        }
    }
    text
}

fn outcome_line(args: &ProbeArgs, outcome: &Outcome) -> String {
    let now = format_unix(now_unix());
    let served = match outcome {
        Outcome::Unreachable(why) => return format!("{now} unreachable: {why}"),
        Outcome::Served(served) => served,
    };
    let verified = match &served.verified {
        None => "unverified".to_owned(),
        Some(Ok(())) => "yes".to_owned(),
        Some(Err(why)) => format!("no ({why})"),
    };
    let mut line = format!(
        "{now} served serial={} notAfter={} sha256={} verified={verified}",
        served.leaf.serial_hex,
        format_unix(served.leaf.not_after),
        served.leaf.sha256_hex,
    );
    if args.against.is_some() {
        let _ = match served.against.as_ref().map(|a| &a.comparison) {
            Some(Comparison::Match) => write!(line, " against=match"),
            Some(Comparison::Differ {
                file_leaf,
                served_newer,
            }) => write!(
                line,
                " against=DIFFERS file_serial={}: {}",
                file_leaf.serial_hex,
                newer_text(*served_newer)
            ),
            Some(Comparison::Unusable(why)) => write!(line, " against=DIFFERS: {why}"),
            Some(Comparison::FileError(why)) => write!(line, " against=error: {why}"),
            None => Ok(()),
        };
    }
    line
}

fn outcome_json(args: &ProbeArgs, target: &Target, outcome: &Outcome) -> Value {
    let mut report = json!({
        "time": format_unix(now_unix()),
        "endpoint": target.display,
        "server_name": target.server_name.to_str(),
    });
    match outcome {
        Outcome::Unreachable(why) => {
            report["reachable"] = json!(false);
            report["error"] = json!(why);
        }
        Outcome::Served(served) => {
            report["reachable"] = json!(true);
            report["protocol"] = json!(served.protocol);
            report["cipher_suite"] = json!(served.cipher_suite);
            report["leaf"] = served.leaf.to_json();
            report["chain_length"] = json!(served.chain_length);
            report["intermediates"] = json!(
                served
                    .intermediates
                    .iter()
                    .map(Authority::to_json)
                    .collect::<Vec<_>>()
            );
            report["verified"] = json!(served.verified.as_ref().map(Result::is_ok));
            if let Some(Err(why)) = &served.verified {
                report["verify_error"] = json!(why);
            }
            if let (Some(file), Some(compared)) = (&args.against, &served.against) {
                let mut against = json!({ "file": file.display().to_string() });
                if let Some(secret) = &compared.secret {
                    against["secret"] = json!(secret);
                }
                match &compared.comparison {
                    Comparison::Match => against["match"] = json!(true),
                    Comparison::Differ {
                        file_leaf,
                        served_newer,
                    } => {
                        against["match"] = json!(false);
                        against["file_leaf"] = file_leaf.to_json();
                        against["newer"] = json!(match served_newer {
                            Some(true) => Some("served"),
                            Some(false) => Some("file"),
                            None => None,
                        });
                    }
                    Comparison::Unusable(why) => {
                        against["match"] = json!(false);
                        against["newer"] = Value::Null;
                        against["error"] = json!(why);
                    }
                    Comparison::FileError(why) => {
                        against["match"] = Value::Null;
                        against["error"] = json!(why);
                    }
                }
                report["against"] = against;
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::parse_target;

    #[test]
    fn targets() {
        let t = parse_target("example.com:443", None).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.com", 443));
        assert_eq!(t.server_name.to_str(), "example.com");
        let t = parse_target("[::1]:8443", Some("collector.local")).unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 8443));
        assert_eq!(t.server_name.to_str(), "collector.local");
        assert!(parse_target("example.com", None).is_err());
        assert!(parse_target("example.com:https", None).is_err());
        assert!(parse_target(":443", None).is_err());
    }
}
