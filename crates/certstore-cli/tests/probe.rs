//! `certstore probe` against a real rustls server on 127.0.0.1: the served leaf, verification,
//! `--against` (0 match, 1 differ, 2 unreachable), client certificates, `--interval`.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use common::{Ca, Pair, certstore, code, json, path, stdout};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn certified(pair: &Pair) -> Arc<CertifiedKey> {
    let chain = CertificateDer::pem_slice_iter(pair.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
    Arc::new(CertifiedKey::from_der(chain, key, &provider()).unwrap())
}

/// Serves `leaves[0]` for the first `per_leaf` handshakes, then `leaves[1]`, and so on (the
/// last one for ever): a rotation at a known handshake, not at a moment in time.
#[derive(Debug)]
struct Rotating {
    leaves: Vec<Arc<CertifiedKey>>,
    per_leaf: usize,
    handshakes: AtomicUsize,
}

impl ResolvesServerCert for Rotating {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let n = self.handshakes.fetch_add(1, Ordering::SeqCst) / self.per_leaf;
        Some(Arc::clone(&self.leaves[n.min(self.leaves.len() - 1)]))
    }
}

struct Server {
    addr: SocketAddr,
    /// For each completed handshake: whether the client presented a certificate.
    client_certs: Arc<Mutex<Vec<bool>>>,
}

struct ServerSpec<'a> {
    leaves: &'a [&'a Pair],
    per_leaf: usize,
    client_ca: Option<&'a str>,
    tls12_only: bool,
}

impl Default for ServerSpec<'_> {
    fn default() -> Self {
        ServerSpec {
            leaves: &[],
            per_leaf: usize::MAX,
            client_ca: None,
            tls12_only: false,
        }
    }
}

/// A TLS server on 127.0.0.1 that handshakes with each connection in turn. Its thread ends
/// with the test process.
fn serve(spec: ServerSpec<'_>) -> Server {
    let versions: &[&rustls::SupportedProtocolVersion] = if spec.tls12_only {
        &[&rustls::version::TLS12]
    } else {
        rustls::DEFAULT_VERSIONS
    };
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap();
    let builder = match spec.client_ca {
        Some(pem) => {
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = Arc::new(builder.with_cert_resolver(Arc::new(Rotating {
        leaves: spec.leaves.iter().map(|p| certified(p)).collect(),
        per_leaf: spec.per_leaf,
        handshakes: AtomicUsize::new(0),
    })));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client_certs = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&client_certs);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut conn = ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut ok = true;
            while conn.is_handshaking() {
                if conn.complete_io(&mut stream).is_err() {
                    ok = false;
                    break;
                }
            }
            if ok {
                seen.lock()
                    .unwrap()
                    .push(conn.peer_certificates().is_some());
                // Until the client says goodbye.
                let mut sink = [0u8; 256];
                while conn.complete_io(&mut stream).is_ok() {
                    if conn.reader().read(&mut sink).is_ok_and(|n| n == 0) {
                        break;
                    }
                }
            }
        }
    });
    Server { addr, client_certs }
}

fn serve_one(pair: &Pair) -> Server {
    serve(ServerSpec {
        leaves: &[pair],
        ..ServerSpec::default()
    })
}

struct Disk {
    dir: tempfile::TempDir,
}

impl Disk {
    fn new() -> Disk {
        Disk {
            dir: tempfile::tempdir().unwrap(),
        }
    }
    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        path(&p).to_owned()
    }
}

fn sha256_hex(pem: &str) -> String {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
    let digest = common::openssl(&["dgst", "-sha256", "-binary"], der.as_ref());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn served_leaf_verified_and_matching_the_file() {
    let ca = Ca::new("Probe CA");
    let pair = ca.leaf(-60, 86_400);
    let server = serve_one(&pair);
    let disk = Disk::new();
    let (cert, ca_file) = (
        disk.file("tls.crt", &pair.cert),
        disk.file("ca.crt", &ca.pem),
    );
    let target = server.addr.to_string();

    let out = certstore(&[
        "probe",
        &target,
        "--against",
        &cert,
        "--ca",
        &ca_file,
        "--json",
    ]);
    let report = json(&out);
    assert_eq!(code(&out), 0, "{report}");
    assert_eq!(report["reachable"], true);
    assert_eq!(report["leaf"]["serial"], pair.serial_hex.as_str());
    assert_eq!(report["leaf"]["sha256"], sha256_hex(&pair.cert).as_str());
    assert_eq!(
        report["leaf"]["sans"],
        serde_json::json!(["DNS:localhost", "IP:127.0.0.1"])
    );
    assert_eq!(report["verified"], true, "{report}");
    assert_eq!(report["against"]["match"], true);
    assert_eq!(report["protocol"], "TLS 1.3");

    let out = certstore(&["probe", &target, "--against", &cert, "--ca", &ca_file]);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}");
    assert!(
        text.contains(&format!("  serial     {}\n", pair.serial_hex)),
        "{text}"
    );
    assert!(text.contains("verified     yes, against "), "{text}");
    assert!(text.contains(": same leaf\n"), "{text}");
}

#[test]
fn against_a_different_leaf_exits_1_and_says_which_is_newer() {
    let ca = Ca::new("Probe CA");
    let old = ca.leaf(-3600, 86_400);
    let new = ca.leaf(-60, 2 * 86_400);
    let disk = Disk::new();
    let (old_file, new_file) = (
        disk.file("old.crt", &old.cert),
        disk.file("new.crt", &new.cert),
    );

    // The classic: the Secret was renewed, the endpoint still serves the old certificate.
    let stale = serve_one(&old);
    let target = stale.addr.to_string();
    let out = certstore(&["probe", &target, "--against", &new_file, "--json"]);
    let report = json(&out);
    assert_eq!(code(&out), 1, "{report}");
    assert_eq!(report["against"]["match"], false);
    assert_eq!(report["against"]["newer"], "file");
    assert_eq!(
        report["against"]["file_leaf"]["serial"],
        new.serial_hex.as_str()
    );
    assert_eq!(report["leaf"]["serial"], old.serial_hex.as_str());
    let out = certstore(&["probe", &target, "--against", &new_file]);
    let text = stdout(&out);
    assert_eq!(code(&out), 1, "{text}");
    assert!(text.contains("DIFFERS"), "{text}");
    assert!(
        text.contains("the endpoint still serves an older certificate"),
        "{text}"
    );

    // The other way round: the file is the stale one.
    let fresh = serve_one(&new);
    let out = certstore(&[
        "probe",
        &fresh.addr.to_string(),
        "--against",
        &old_file,
        "--json",
    ]);
    let report = json(&out);
    assert_eq!(code(&out), 1, "{report}");
    assert_eq!(report["against"]["newer"], "served");
}

#[test]
fn exit_2_when_unreachable_or_unreadable_and_1_for_a_broken_file() {
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let pair = Ca::new("Probe CA").leaf(-60, 3600);
    let disk = Disk::new();
    let cert = disk.file("tls.crt", &pair.cert);
    let out = certstore(&["probe", &closed.to_string(), "--against", &cert, "--json"]);
    let report = json(&out);
    assert_eq!(code(&out), 2, "{report}");
    assert_eq!(report["reachable"], false);
    assert!(
        report["error"].as_str().unwrap().contains("cannot connect"),
        "{report}"
    );
    let out = certstore(&["probe", &closed.to_string()]);
    assert_eq!(code(&out), 2);
    assert!(
        stdout(&out).starts_with("unreachable: "),
        "{}",
        stdout(&out)
    );

    // A TCP server that is not TLS.
    let plain = TcpListener::bind("127.0.0.1:0").unwrap();
    let plain_addr = plain.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in plain.incoming() {
            drop(stream);
        }
    });
    let out = certstore(&["probe", &plain_addr.to_string(), "--json"]);
    assert_eq!(code(&out), 2, "{}", stdout(&out));
    assert_eq!(json(&out)["reachable"], false);

    // The endpoint is fine, the file to compare with is not there.
    let server = serve_one(&pair);
    let missing = disk.dir.path().join("missing.crt");
    let out = certstore(&[
        "probe",
        &server.addr.to_string(),
        "--against",
        path(&missing),
        "--json",
    ]);
    let report = json(&out);
    assert_eq!(code(&out), 2, "{report}");
    assert!(
        report["against"]["error"]
            .as_str()
            .unwrap()
            .contains(path(&missing)),
        "{report}"
    );

    // A broken generation on disk holds no served leaf: a difference (1), not trouble (2).
    let broken = disk.file("broken.crt", "-----BEGIN CERTIFICATE-----\nAAAA\n");
    let out = certstore(&[
        "probe",
        &server.addr.to_string(),
        "--against",
        &broken,
        "--json",
    ]);
    let report = json(&out);
    assert_eq!(code(&out), 1, "{report}");
    assert_eq!(report["against"]["match"], false);
    assert!(
        report["against"]["error"]
            .as_str()
            .unwrap()
            .contains(&broken),
        "{report}"
    );

    for bad in [vec!["probe", "localhost"], vec!["probe", "localhost:x"]] {
        assert_eq!(code(&certstore(&bad)), 2, "{bad:?}");
    }
}

#[test]
fn untrusted_chains_are_shown_but_not_verified() {
    let ca = Ca::new("Probe CA");
    let pair = ca.leaf(-60, 3600);
    let server = serve_one(&pair);
    let target = server.addr.to_string();
    let disk = Disk::new();
    let (right, wrong) = (
        disk.file("ca.crt", &ca.pem),
        disk.file("other.crt", &Ca::new("Other CA").pem),
    );

    let out = certstore(&["probe", &target, "--json"]);
    let report = json(&out);
    assert_eq!(code(&out), 0, "{report}");
    assert_eq!(report["verified"], Value::Null);
    assert_eq!(report["leaf"]["serial"], pair.serial_hex.as_str());
    assert!(stdout(&certstore(&["probe", &target])).contains("unverified (no --ca given)"));

    let report = json(&certstore(&["probe", &target, "--ca", &wrong, "--json"]));
    assert_eq!(report["verified"], false, "{report}");
    assert!(
        report["verify_error"]
            .as_str()
            .unwrap()
            .contains("UnknownIssuer"),
        "{report}"
    );
    assert_eq!(report["leaf"]["serial"], pair.serial_hex.as_str());

    let args = [
        "probe",
        &target,
        "--ca",
        &right,
        "--servername",
        "other.example",
        "--json",
    ];
    let report = json(&certstore(&args));
    assert_eq!(report["verified"], false, "{report}");
    assert_eq!(report["server_name"], "other.example");
    let args = [
        "probe",
        &target,
        "--ca",
        &right,
        "--servername",
        "localhost",
        "--json",
    ];
    assert_eq!(json(&certstore(&args))["verified"], true);
}

#[test]
fn client_certificate_is_presented() {
    let server_ca = Ca::new("Server CA");
    let client_ca = Ca::new("Client CA");
    let pair = server_ca.leaf(-60, 3600);
    let client = client_ca.leaf(-60, 3600);
    let server = serve(ServerSpec {
        leaves: &[&pair],
        client_ca: Some(&client_ca.pem),
        ..ServerSpec::default()
    });
    let disk = Disk::new();
    let (cert, key) = (
        disk.file("client.crt", &client.cert),
        disk.file("client.key", &client.key),
    );
    let out = certstore(&[
        "probe",
        &server.addr.to_string(),
        "--client-cert",
        &cert,
        "--client-key",
        &key,
    ]);
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    common::assert_no_key_material(&stdout(&out), &client.key);
    assert!(
        common::wait_for(std::time::Duration::from_secs(10), || {
            server.client_certs.lock().unwrap().first() == Some(&true)
        }),
        "the server saw no client certificate: {:?}",
        server.client_certs.lock().unwrap()
    );
    // One without the other is a usage error.
    assert_eq!(
        code(&certstore(&[
            "probe",
            &server.addr.to_string(),
            "--client-cert",
            &cert
        ])),
        2
    );
}

#[test]
fn tls12_only_server() {
    let pair = Ca::new("Probe CA").leaf(-60, 3600);
    let server = serve(ServerSpec {
        leaves: &[&pair],
        tls12_only: true,
        ..ServerSpec::default()
    });
    let report = json(&certstore(&["probe", &server.addr.to_string(), "--json"]));
    assert_eq!(report["protocol"], "TLS 1.2", "{report}");
    assert_eq!(report["leaf"]["serial"], pair.serial_hex.as_str());
}

/// Rotation at the third handshake: five probes print two lines, one per served leaf.
#[test]
fn interval_prints_each_change() {
    let ca = Ca::new("Probe CA");
    let (first, second) = (ca.leaf(-3600, 86_400), ca.leaf(-60, 86_400));
    let server = serve(ServerSpec {
        leaves: &[&first, &second],
        per_leaf: 2,
        ..ServerSpec::default()
    });
    let disk = Disk::new();
    let file = disk.file("tls.crt", &second.cert);
    let target = server.addr.to_string();
    let args = [
        "probe",
        &target,
        "--against",
        &file,
        "--interval",
        "10ms",
        "--count",
        "5",
    ];

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = certstore(&json_args);
    // The last probe sees the file's leaf.
    assert_eq!(code(&out), 0, "{}", stdout(&out));
    let lines: Vec<Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{}", stdout(&out));
    assert_eq!(lines[0]["leaf"]["serial"], first.serial_hex.as_str());
    assert_eq!(lines[0]["against"]["match"], false);
    assert_eq!(lines[0]["against"]["newer"], "file");
    assert_eq!(lines[1]["leaf"]["serial"], second.serial_hex.as_str());
    assert_eq!(lines[1]["against"]["match"], true);

    // Text: one line per change as well (the server now serves `second` for good).
    let out = certstore(&args);
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(&format!(" served serial={} ", second.serial_hex)),
        "{text}"
    );
    assert!(text.contains("against=match"), "{text}");
}

/// Without --count, probing goes on until SIGINT, then exits with the last probe's status.
#[test]
fn interval_until_interrupted() {
    let ca = Ca::new("Probe CA");
    let (served, on_disk) = (ca.leaf(-3600, 86_400), ca.leaf(-60, 86_400));
    let server = serve_one(&served);
    let disk = Disk::new();
    let file = disk.file("tls.crt", &on_disk.cert);
    let mut child = Command::new(common::BIN)
        .args([
            "probe",
            &server.addr.to_string(),
            "--against",
            &file,
            "--interval",
            "20ms",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.contains("against=DIFFERS"), "{first}");
    // SAFETY: plain kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}");
}

/// `openssl base64 -A`: the one-line standard base64 that Kubernetes prints under `data`.
fn base64(text: &str) -> String {
    String::from_utf8(common::openssl(&["base64", "-A"], text.as_bytes())).unwrap()
}

/// A `kubernetes.io/tls` Secret as `kubectl get secret -n prod api-tls -o json` prints it;
/// `data` maps each key to its PEM text, base64-encoded here.
fn secret_json(data: &[(&str, &str)]) -> String {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String(base64(v))))
        .collect();
    serde_json::to_string_pretty(&serde_json::json!({
        "apiVersion": "v1",
        "data": data,
        "kind": "Secret",
        "metadata": {
            "annotations": { "cert-manager.io/certificate-name": "api" },
            "creationTimestamp": "2026-12-01T09:00:00Z",
            "name": "api-tls",
            "namespace": "prod",
            "resourceVersion": "4711",
            "uid": "0b5f6f4e-2f43-4c39-8d2b-6f1c5d0f9a11"
        },
        "type": "kubernetes.io/tls"
    }))
    .unwrap()
}

/// The same Secret as `kubectl get secret -n prod api-tls -o yaml` prints it.
fn secret_yaml(data: &[(&str, &str)]) -> String {
    let mut yaml = "apiVersion: v1\ndata:\n".to_owned();
    for (k, v) in data {
        yaml.push_str(&format!("  {k}: {}\n", base64(v)));
    }
    yaml.push_str(
        "kind: Secret\nmetadata:\n  annotations:\n    cert-manager.io/certificate-name: api\n  \
         creationTimestamp: \"2026-12-01T09:00:00Z\"\n  name: api-tls\n  namespace: prod\n  \
         resourceVersion: \"4711\"\n  uid: 0b5f6f4e-2f43-4c39-8d2b-6f1c5d0f9a11\n\
         type: kubernetes.io/tls\n",
    );
    yaml
}

/// `certstore ARGS` with `input` on its standard input.
fn certstore_with_stdin(args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(common::BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// `kubectl get secret -o json|yaml | certstore probe HOST:PORT --against -`: 0 when the
/// Secret's tls.crt is the served leaf, 1 when it holds another one (the renewed Secret the
/// endpoint does not serve yet).
#[test]
fn against_a_secret_on_standard_input() {
    let ca = Ca::new("Probe CA");
    let old = ca.leaf(-3600, 86_400);
    let new = ca.leaf(-60, 2 * 86_400);
    let server = serve_one(&old);
    let target = server.addr.to_string();

    for (format, render) in [
        ("json", secret_json as fn(&[(&str, &str)]) -> String),
        ("yaml", secret_yaml),
    ] {
        let served = render(&[
            ("ca.crt", &ca.pem),
            ("tls.crt", &old.cert),
            ("tls.key", &old.key),
        ]);
        let out = certstore_with_stdin(&["probe", &target, "--against", "-", "--json"], &served);
        let report = json(&out);
        assert_eq!(code(&out), 0, "{format}: {report}");
        assert_eq!(report["against"]["match"], true, "{format}: {report}");
        assert_eq!(report["against"]["file"], "-", "{format}: {report}");
        assert_eq!(
            report["against"]["secret"], "prod/api-tls",
            "{format}: {report}"
        );

        let renewed = render(&[
            ("ca.crt", &ca.pem),
            ("tls.crt", &new.cert),
            ("tls.key", &new.key),
        ]);
        let out = certstore_with_stdin(&["probe", &target, "--against", "-", "--json"], &renewed);
        let report = json(&out);
        assert_eq!(code(&out), 1, "{format}: {report}");
        assert_eq!(report["against"]["match"], false, "{format}: {report}");
        assert_eq!(report["against"]["newer"], "file", "{format}: {report}");
        assert_eq!(
            report["against"]["file_leaf"]["serial"],
            new.serial_hex.as_str(),
            "{format}: {report}"
        );

        // Text output names the Secret, and no byte of tls.key is ever shown.
        let out = certstore_with_stdin(&["probe", &target, "--against", "-"], &renewed);
        let text = stdout(&out);
        assert_eq!(code(&out), 1, "{format}: {text}");
        assert!(
            text.contains("against      standard input (Secret prod/api-tls, tls.crt): DIFFERS"),
            "{format}: {text}"
        );
        assert!(
            text.contains("the endpoint still serves an older certificate"),
            "{format}: {text}"
        );
        common::assert_no_key_material(&text, &new.key);
    }
}

/// A Secret saved to a file works as well as one piped in, and a manifest's `stringData`
/// (plain PEM, as written by hand) as well as `data`.
#[test]
fn against_a_secret_file_and_string_data() {
    let ca = Ca::new("Probe CA");
    let pair = ca.leaf(-60, 86_400);
    let server = serve_one(&pair);
    let target = server.addr.to_string();
    let disk = Disk::new();

    let json_file = disk.file("secret.json", &secret_json(&[("tls.crt", &pair.cert)]));
    let yaml_file = disk.file("secret.yaml", &secret_yaml(&[("tls.crt", &pair.cert)]));
    for file in [&json_file, &yaml_file] {
        let out = certstore(&["probe", &target, "--against", file, "--json"]);
        let report = json(&out);
        assert_eq!(code(&out), 0, "{file}: {report}");
        assert_eq!(report["against"]["match"], true, "{file}: {report}");
        assert_eq!(report["against"]["file"], file.as_str(), "{file}: {report}");
    }

    let indented: String = pair.cert.lines().map(|l| format!("    {l}\n")).collect();
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api-tls\ntype: kubernetes.io/tls\n\
         stringData:\n  tls.crt: |\n{indented}"
    );
    let out = certstore_with_stdin(&["probe", &target, "--against", "-", "--json"], &manifest);
    let report = json(&out);
    assert_eq!(code(&out), 0, "{report}");
    assert_eq!(report["against"]["secret"], "api-tls", "{report}");
}

/// Input that cannot be compared at all is trouble (2), with an error naming the input and
/// what is missing; never a byte of the key.
#[test]
fn against_an_unusable_secret_exits_2() {
    let ca = Ca::new("Probe CA");
    let pair = ca.leaf(-60, 86_400);
    let server = serve_one(&pair);
    let target = server.addr.to_string();
    let only_key = [("ca.crt", ca.pem.as_str()), ("tls.key", pair.key.as_str())];

    let cases: Vec<(&str, String, &str)> = vec![
        (
            "json without tls.crt",
            secret_json(&only_key),
            "standard input: Secret prod/api-tls has no \"tls.crt\" in data (it has: ca.crt, tls.key)",
        ),
        (
            "yaml without tls.crt",
            secret_yaml(&only_key),
            "standard input: Secret prod/api-tls has no \"tls.crt\" in data (it has: ca.crt, tls.key)",
        ),
        (
            "bad base64",
            secret_yaml(&[("tls.key", &pair.key)])
                .replace("data:\n", "data:\n  tls.crt: not*base64\n"),
            "standard input: Secret prod/api-tls: data.\"tls.crt\" is not valid base64",
        ),
        (
            "not a Secret",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api\ndata:\n  x: y\n".to_owned(),
            "standard input: a Kubernetes ConfigMap, not a Secret",
        ),
        (
            "truncated JSON",
            secret_json(&[("tls.crt", &pair.cert)])[..40].to_owned(),
            "standard input: not valid JSON",
        ),
    ];
    for (name, input, error) in cases {
        let out = certstore_with_stdin(&["probe", &target, "--against", "-", "--json"], &input);
        let report = json(&out);
        assert_eq!(code(&out), 2, "{name}: {report}");
        assert_eq!(report["against"]["match"], Value::Null, "{name}: {report}");
        let message = report["against"]["error"].as_str().unwrap_or_default();
        assert!(message.starts_with(error), "{name}: {report}");
        common::assert_no_key_material(&stdout(&out), &pair.key);

        let out = certstore_with_stdin(&["probe", &target, "--against", "-"], &input);
        assert_eq!(code(&out), 2, "{name}");
        assert!(
            stdout(&out).contains(&format!("against      {error}")),
            "{name}: {}",
            stdout(&out)
        );
    }

    // A Secret whose tls.crt decodes to something that is no certificate: a broken
    // generation, which does not hold the served leaf (1), exactly as a broken file.
    let broken = secret_json(&[("tls.crt", "-----BEGIN CERTIFICATE-----\nAAAA\n")]);
    let out = certstore_with_stdin(&["probe", &target, "--against", "-", "--json"], &broken);
    let report = json(&out);
    assert_eq!(code(&out), 1, "{report}");
    assert_eq!(report["against"]["match"], false, "{report}");
    assert!(
        report["against"]["error"]
            .as_str()
            .unwrap()
            .starts_with("standard input (Secret prod/api-tls, tls.crt): "),
        "{report}"
    );
}

/// Standard input can be read once: with --interval every probe compares with what was read.
#[test]
fn against_standard_input_with_interval() {
    let ca = Ca::new("Probe CA");
    let pair = ca.leaf(-60, 86_400);
    let server = serve_one(&pair);
    let secret = secret_yaml(&[("tls.crt", &pair.cert)]);
    let out = certstore_with_stdin(
        &[
            "probe",
            &server.addr.to_string(),
            "--against",
            "-",
            "--interval",
            "10ms",
            "--count",
            "3",
        ],
        &secret,
    );
    let text = stdout(&out);
    assert_eq!(code(&out), 0, "{text}");
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("against=match"), "{text}");
}

/// The help shows the one-pipe comparison with a Secret, as the README does.
#[test]
fn help_shows_the_secret_pipe() {
    let out = certstore(&["probe", "--help"]);
    assert_eq!(code(&out), 0);
    let pipe = "kubectl get secret -n prod api-tls -o json | certstore probe api:443 --against -";
    assert!(stdout(&out).contains(pipe), "{}", stdout(&out));
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    assert!(readme.contains(pipe), "README.md lacks: {pipe}");
}
