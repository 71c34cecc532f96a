//! Regression tests for the defects of the v1 review (issue "Core v1"): each failed before
//! its fix.

mod common;

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certstore::{Event, Options, Reason, Store, SubscriptionId};
use common::{KubeletDir, Pair, leaf, leaf_with, wait_for};

const PATIENCE: Duration = Duration::from_secs(10);

fn watch_only(cert: &Path, key: &Path) -> Options {
    let mut o = Options::new(cert, key);
    o.reread_interval = None;
    o
}

fn der_of(pem: &str) -> Vec<u8> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn ders_of(pem: &[u8]) -> Vec<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem)
        .map(|c| c.unwrap().to_vec())
        .collect()
}

/// The base64 body lines of a PEM block.
fn body(pem: &str) -> String {
    pem.lines()
        .filter(|l| !l.starts_with("-----"))
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn chain_pem_is_the_validated_chain_not_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (leaf(), leaf());
    // A comment naming a BEGIN line, then B's body and END: a substring scan takes B; the PEM
    // parser (and so the validator) takes A, which matches the key.
    let cert = format!(
        "# -----BEGIN CERTIFICATE-----\n{}-----END CERTIFICATE-----\n{}",
        body(&b.cert),
        a.cert
    );
    let (cert_path, key_path) = (tmp.path().join("tls.crt"), tmp.path().join("tls.key"));
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &a.key).unwrap();
    let store = Store::open(watch_only(&cert_path, &key_path)).unwrap();
    let snap = store.current();
    assert_eq!(ders_of(snap.cert_pem()), vec![der_of(&a.cert)]);
    assert_eq!(snap.serial_hex(), a.serial_hex);

    // CRLF line ends and a trailing comment: the output is the canonical PEM of the DER.
    let crlf = format!("{}# trailing comment\r\n", a.cert.replace('\n', "\r\n"));
    std::fs::write(&cert_path, crlf).unwrap();
    store.reload().unwrap();
    let pem = store.current().cert_pem().to_vec();
    assert!(!pem.contains(&b'\r') && !pem.windows(7).any(|w| w == b"comment"));
    assert_eq!(ders_of(&pem), vec![der_of(&a.cert)]);
    let text = String::from_utf8(pem).unwrap();
    assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(text.lines().all(|l| l.len() <= 64));
}

#[test]
fn key_pem_is_re_encoded_from_the_loaded_key() {
    let tmp = tempfile::tempdir().unwrap();
    let a = leaf();
    let (cert_path, key_path) = (tmp.path().join("tls.crt"), tmp.path().join("tls.key"));
    std::fs::write(&cert_path, &a.cert).unwrap();
    // Text around the key block is not carried over.
    std::fs::write(
        &key_path,
        format!("Bag Attributes: x\r\n{}", a.key.replace('\n', "\r\n")),
    )
    .unwrap();
    let store = Store::open(watch_only(&cert_path, &key_path)).unwrap();
    let key = String::from_utf8(store.current().key_pem().to_vec()).unwrap();
    assert!(
        key.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{}",
        key.lines().next().unwrap()
    );
    assert!(!key.contains('\r') && !key.contains("Bag"));
    assert_eq!(body(&key).replace('\n', ""), body(&a.key).replace('\n', ""));
}

#[test]
fn generation_never_goes_backwards_and_never_lags_a_snapshot() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&leaf());
    let store =
        Arc::new(Store::open(watch_only(&kube.path("tls.crt"), &kube.path("tls.key"))).unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, stop) = (Arc::clone(&store), Arc::clone(&stop));
            std::thread::spawn(move || {
                let (mut last, mut reads) = (0, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    let snap = store.current().generation();
                    let counter = store.generation();
                    assert!(
                        snap >= last,
                        "snapshot generation went back: {last} -> {snap}"
                    );
                    assert!(
                        counter >= snap,
                        "generation() {counter} lags a snapshot {snap}"
                    );
                    last = snap;
                    reads += 1;
                }
                reads
            })
        })
        .collect();
    for i in 0..60 {
        kube.write_pair(&leaf());
        let want = i + 2;
        assert!(
            wait_for(PATIENCE, || store.generation() == want),
            "rotation {want}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

#[test]
fn subscription_ids_are_private_to_their_store() {
    let tmp = tempfile::tempdir().unwrap();
    let open = |name: &str| {
        let dir = tmp.path().join(name);
        let mut kube = KubeletDir::new(&dir);
        kube.write_pair(&leaf());
        (
            Store::open(watch_only(&kube.path("tls.crt"), &kube.path("tls.key"))).unwrap(),
            kube,
        )
    };
    let (a, mut kube_a) = open("a");
    let (b, _kube_b) = open("b");
    let seen = Arc::new(Mutex::new(0));
    let sink = Arc::clone(&seen);
    let id_a = a.subscribe(move |e| {
        if matches!(e, Event::Rotated { .. }) {
            *sink.lock().unwrap() += 1;
        }
    });
    let id_b = b.subscribe(|_| {});
    assert!(!b.unsubscribe(id_a), "b removed a's subscription");
    assert!(
        !a.unsubscribe(SubscriptionId(id_b.0 + 1000)),
        "an id never handed out"
    );
    kube_a.write_pair(&leaf());
    assert!(
        wait_for(PATIENCE, || *seen.lock().unwrap() == 1),
        "a's callback still runs"
    );
    assert!(a.unsubscribe(id_a) && b.unsubscribe(id_b));
}

/// `tls.crt`/`tls.key` symlinks in `links` pointing into `target`.
fn link_pair(links: &Path, target: &Path) {
    for name in ["tls.crt", "tls.key"] {
        let tmp = links.join(format!(".{name}.new"));
        let _ = std::fs::remove_file(&tmp);
        symlink(target.join(name), &tmp).unwrap();
        std::fs::rename(&tmp, links.join(name)).unwrap();
    }
}

fn write_pair_at(dir: &Path, pair: &Pair) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in [("tls.crt", &pair.cert), ("tls.key", &pair.key)] {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, bytes).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
}

fn serial_of(store: &Store) -> String {
    store.current().serial_hex().to_owned()
}

#[test]
fn a_symlink_re_pointed_into_another_directory_is_followed_there() {
    let tmp = tempfile::tempdir().unwrap();
    let (links, one, two) = (
        tmp.path().join("links"),
        tmp.path().join("one"),
        tmp.path().join("two"),
    );
    std::fs::create_dir_all(&links).unwrap();
    write_pair_at(&one, &leaf());
    link_pair(&links, &one);
    let store = Store::open(watch_only(&links.join("tls.crt"), &links.join("tls.key"))).unwrap();
    let moved = leaf();
    write_pair_at(&two, &moved);
    link_pair(&links, &two);
    assert!(
        wait_for(PATIENCE, || serial_of(&store) == moved.serial_hex),
        "re-pointed"
    );
    // The store now lives in `two`: a change there is seen, with the timer off.
    let next = leaf();
    write_pair_at(&two, &next);
    assert!(
        wait_for(PATIENCE, || serial_of(&store) == next.serial_hex),
        "change in two"
    );
}

#[test]
fn a_directory_symlink_swap_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    write_pair_at(&root.join("v1"), &leaf());
    symlink("v1", root.join("current")).unwrap();
    let store = Store::open(watch_only(
        &root.join("current/tls.crt"),
        &root.join("current/tls.key"),
    ))
    .unwrap();
    let v2 = leaf();
    write_pair_at(&root.join("v2"), &v2);
    symlink("v2", root.join("current.new")).unwrap();
    std::fs::rename(root.join("current.new"), root.join("current")).unwrap();
    assert!(
        wait_for(PATIENCE, || serial_of(&store) == v2.serial_hex),
        "current -> v2"
    );
    let v2b = leaf();
    write_pair_at(&root.join("v2"), &v2b);
    assert!(
        wait_for(PATIENCE, || serial_of(&store) == v2b.serial_hex),
        "change in v2"
    );
}

#[test]
fn paths_given_through_data_are_watched() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&leaf());
    let store = Store::open(watch_only(
        &kube.path("..data/tls.crt"),
        &kube.path("..data/tls.key"),
    ))
    .unwrap();
    for _ in 0..3 {
        let next = leaf();
        kube.write_pair(&next);
        assert!(
            wait_for(PATIENCE, || serial_of(&store) == next.serial_hex),
            "swap seen"
        );
    }
}

#[test]
fn files_linked_into_place_are_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_pair_at(dir, &leaf());
    let store = Store::open(watch_only(&dir.join("tls.crt"), &dir.join("tls.key"))).unwrap();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&failures);
    store.subscribe(move |e| {
        if let Event::ReloadFailed { error, .. } = e {
            sink.lock().unwrap().push(error.reason());
        }
    });
    let next = leaf();
    let staging = dir.join("staging");
    write_pair_at(&staging, &next);
    for name in ["tls.key", "tls.crt"] {
        std::fs::remove_file(dir.join(name)).unwrap();
    }
    assert!(
        wait_for(PATIENCE, || failures
            .lock()
            .unwrap()
            .contains(&Reason::Missing)),
        "missing files reported"
    );
    // Let every reload the removals caused finish, so only the links' own events are left.
    std::thread::sleep(Duration::from_millis(1500));
    for name in ["tls.key", "tls.crt"] {
        std::fs::hard_link(staging.join(name), dir.join(name)).unwrap();
    }
    assert!(
        wait_for(PATIENCE, || serial_of(&store) == next.serial_hex),
        "link(2) seen"
    );
}

fn events(store: &Store) -> Arc<Mutex<Vec<String>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    store.subscribe(move |e| {
        let line = match e {
            Event::Rotated { snapshot } => format!("rotated {}", snapshot.serial_hex()),
            Event::ReloadFailed { error, .. } => format!("failed {}", error.reason()),
            _ => "other".to_owned(),
        };
        sink.lock().unwrap().push(line);
    });
    seen
}

/// Options whose retry backoff is far longer than the test's patience: anything that waits
/// for it shows up as a failure, not as a slow test.
fn long_backoff(cert: &Path, key: &Path) -> Options {
    let mut o = watch_only(cert, key);
    o.retry_backoff = vec![Duration::from_secs(30); 4];
    o
}

#[test]
fn a_good_rotation_during_a_retry_is_served_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_pair_at(dir, &leaf());
    let store = Store::open(long_backoff(&dir.join("tls.crt"), &dir.join("tls.key"))).unwrap();
    // Written in place, not atomically: a half-written generation, so the store retries.
    std::fs::write(dir.join("tls.crt"), "-----BEGIN CERTIFICATE-----\nMIIB").unwrap();
    assert!(
        wait_for(PATIENCE, || store.status().disk_differs()),
        "garbage read"
    );
    let good = leaf();
    write_pair_at(dir, &good);
    assert!(
        wait_for(PATIENCE, || serial_of(&store) == good.serial_hex),
        "not blocked"
    );
    // An explicit reload never waits for a backoff either.
    std::fs::write(dir.join("tls.crt"), "garbage").unwrap();
    assert!(store.reload().is_err());
    assert_eq!(store.status().last_error.unwrap().reason(), Reason::Parse);
}

#[test]
fn a_refusal_of_a_complete_generation_is_reported_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&leaf());
    let store = Store::open(long_backoff(&kube.path("tls.crt"), &kube.path("tls.key"))).unwrap();
    let seen = events(&store);
    // A kubelet generation is complete: a mismatched key cannot be a writer half-way.
    let (a, b) = (leaf(), leaf());
    kube.write_pair(&Pair {
        cert: a.cert,
        key: b.key,
        serial_hex: a.serial_hex,
    });
    assert!(
        wait_for(PATIENCE, || seen
            .lock()
            .unwrap()
            .contains(&"failed key_mismatch".to_owned())),
        "reported without the backoff: {:?}",
        seen.lock().unwrap()
    );
    let expired = leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, -7200, -3600);
    kube.write_pair(&expired);
    assert!(
        wait_for(PATIENCE, || seen
            .lock()
            .unwrap()
            .contains(&"failed expired".to_owned())),
        "{:?}",
        seen.lock().unwrap()
    );
    // Each distinct refusal once: the same expired files again add nothing.
    kube.write_pair(&expired);
    let good = leaf();
    kube.write_pair(&good);
    assert!(wait_for(PATIENCE, || serial_of(&store) == good.serial_hex));
    let events = seen.lock().unwrap().clone();
    assert_eq!(
        events.iter().filter(|e| e.starts_with("failed")).count(),
        2,
        "{events:?}"
    );
}

#[test]
fn a_slow_subscriber_gets_the_latest_generation_not_a_backlog() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&leaf());
    let store = Store::open(watch_only(&kube.path("tls.crt"), &kube.path("tls.key"))).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&got);
    store.subscribe(move |e| {
        if let Event::Rotated { snapshot } = e {
            sink.lock().unwrap().push(snapshot.generation());
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut last = leaf();
    for i in 0..20 {
        last = leaf();
        kube.write_pair(&last);
        let want = i + 2;
        assert!(wait_for(PATIENCE, || store.generation() == want));
    }
    assert!(
        wait_for(PATIENCE, || got.lock().unwrap().last() == Some(&21)),
        "latest delivered"
    );
    let delivered = got.lock().unwrap().clone();
    assert!(
        delivered.len() < 20,
        "a backlog was delivered: {delivered:?}"
    );
    assert!(
        delivered.windows(2).all(|w| w[0] < w[1]),
        "in order: {delivered:?}"
    );
    assert_eq!(serial_of(&store), last.serial_hex);
}

#[test]
fn the_largest_file_size_limit_does_not_wrap() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_pair_at(dir, &leaf());
    let mut o = watch_only(&dir.join("tls.crt"), &dir.join("tls.key"));
    o.max_file_size = u64::MAX;
    Store::open(o).expect("u64::MAX is no limit, not zero");
}

#[test]
fn odd_bytes_in_a_path_are_escaped_in_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let dir: PathBuf = tmp.path().join("evil\nline");
    let err = Store::open(watch_only(&dir.join("tls.crt"), &dir.join("tls.key"))).unwrap_err();
    let message = err.to_string();
    assert!(
        !message.contains('\n') && message.contains("evil\\x0aline"),
        "{message}"
    );
}
