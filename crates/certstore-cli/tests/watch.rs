//! `certstore watch` while the kubelet rotates a Secret volume: every rotation and the refusal
//! are printed in order, and SIGTERM/SIGINT end it cleanly.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::Duration;

use common::{KubeletDir, Pair, leaf, path};
use serde_json::Value;

/// How long to wait for a line before calling the command hung (a guard, not a measurement).
const HANG: Duration = Duration::from_secs(60);

struct Watch {
    child: Child,
    lines: Receiver<String>,
}

fn watch(dir: &Path, extra: &[&str]) -> Watch {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    // No timer: only the inotify path runs, so each change is reported exactly once.
    let mut args = vec!["watch", "--cert", path(&cert), "--key", path(&key)];
    args.extend(["--reread-interval", "1d"]);
    args.extend(extra);
    let mut child = Command::new(common::BIN)
        .args(&args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    Watch { child, lines }
}

impl Watch {
    fn next(&self) -> String {
        self.lines
            .recv_timeout(HANG)
            .expect("a line from certstore watch")
    }

    fn next_json(&self) -> Value {
        let line = self.next();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Sends `signal`, checks the exit status is 0 and nothing else was printed.
    fn stop(mut self, signal: i32) {
        // SAFETY: plain kill(2) on our own child's pid.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, signal) }, 0);
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{status:?}");
        match self.lines.recv_timeout(HANG) {
            Err(RecvTimeoutError::Disconnected) => {}
            other => panic!("unexpected output after the last event: {other:?}"),
        }
    }
}

fn write(kube: &mut KubeletDir, cert: &Pair, key: &Pair, ca: &str) {
    kube.write(&[
        ("tls.crt", cert.cert.as_bytes()),
        ("tls.key", key.key.as_bytes()),
        ("ca.crt", ca.as_bytes()),
    ]);
}

#[test]
fn kubelet_rotations_and_a_refusal_in_order_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    let ca = common::ca();
    let (one, two, three, four) = (leaf(), leaf(), leaf(), leaf());
    write(&mut kube, &one, &one, &ca);
    let ca_path = kube.path("ca.crt");
    let w = watch(tmp.path(), &["--ca", path(&ca_path), "--json"]);

    let line = w.next_json();
    assert_eq!(line["event"], "serving", "{line}");
    assert_eq!(line["generation"], 1);
    assert_eq!(line["leaf"]["serial"], one.serial_hex.as_str());
    assert_eq!(line["ca_certs"], 1);

    write(&mut kube, &two, &two, &ca);
    let line = w.next_json();
    assert_eq!(line["event"], "rotated", "{line}");
    assert_eq!(line["generation"], 2);
    assert_eq!(line["leaf"]["serial"], two.serial_hex.as_str());

    // A new certificate with the previous key: refused, generation 2 still served.
    write(&mut kube, &three, &two, &ca);
    let line = w.next_json();
    assert_eq!(line["event"], "refused", "{line}");
    assert_eq!(line["reason"], "key_mismatch");
    assert_eq!(line["file"], path(&kube.path("tls.key")));
    assert_eq!(line["served_generation"], 2);
    common::assert_no_key_material(&line.to_string(), &two.key);

    // A broken CA bundle is refused too, naming the CA file.
    write(
        &mut kube,
        &four,
        &four,
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    let line = w.next_json();
    assert_eq!(line["event"], "refused", "{line}");
    assert_eq!(line["reason"], "parse_error");
    assert_eq!(line["file"], path(&ca_path));
    assert_eq!(line["served_generation"], 2);

    write(&mut kube, &four, &four, &ca);
    let line = w.next_json();
    assert_eq!(line["event"], "rotated", "{line}");
    assert_eq!(line["generation"], 3);
    assert_eq!(line["leaf"]["serial"], four.serial_hex.as_str());

    w.stop(libc::SIGTERM);
}

#[test]
fn kubelet_rotations_and_a_refusal_in_order_as_text() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    let (one, two, three) = (leaf(), leaf(), leaf());
    kube.write_pair(&one);
    let w = watch(tmp.path(), &[]);

    let line = w.next();
    assert!(
        line.contains(&format!(" serving generation=1 serial={} ", one.serial_hex)),
        "{line}"
    );
    kube.write_pair(&two);
    let line = w.next();
    assert!(
        line.contains(&format!(" rotated generation=2 serial={} ", two.serial_hex)),
        "{line}"
    );
    let expired = common::leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, -7200, -3600);
    kube.write_pair(&expired);
    let line = w.next();
    assert!(
        line.contains(" refused still_serving=2 reason=expired: certificate file "),
        "{line}"
    );
    assert!(line.contains(path(&kube.path("tls.crt"))), "{line}");
    kube.write_pair(&three);
    let line = w.next();
    assert!(
        line.contains(&format!(
            " rotated generation=3 serial={} ",
            three.serial_hex
        )),
        "{line}"
    );
    w.stop(libc::SIGINT);
}

#[test]
fn refused_initial_files_end_the_command() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (leaf(), leaf());
    std::fs::write(tmp.path().join("tls.crt"), &one.cert).unwrap();
    std::fs::write(tmp.path().join("tls.key"), &two.key).unwrap();
    let mut w = watch(tmp.path(), &["--json"]);
    let line = w.next_json();
    assert_eq!(line["event"], "refused", "{line}");
    assert_eq!(line["reason"], "key_mismatch");
    assert_eq!(line["served_generation"], Value::Null);
    assert_eq!(w.child.wait().unwrap().code(), Some(1));

    std::fs::remove_file(tmp.path().join("tls.key")).unwrap();
    let mut w = watch(tmp.path(), &["--json"]);
    assert_eq!(w.next_json()["reason"], "missing");
    assert_eq!(w.child.wait().unwrap().code(), Some(2));
}
