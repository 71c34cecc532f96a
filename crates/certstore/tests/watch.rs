//! The watcher follows every way certificates get replaced on disk.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certstore::{Event, Options, Store};
use common::{KubeletDir, Pair, leaf, wait_for};

const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct Seen {
    rotated: Vec<String>,
    failed: Vec<String>,
}

fn record(store: &Store) -> Arc<Mutex<Seen>> {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let sink = Arc::clone(&seen);
    store.subscribe(move |event| match event {
        Event::Rotated { snapshot } => sink
            .lock()
            .unwrap()
            .rotated
            .push(snapshot.serial_hex().to_owned()),
        Event::ReloadFailed { error, .. } => sink.lock().unwrap().failed.push(error.to_string()),
        _ => {}
    });
    seen
}

/// `tls.crt` and `tls.key` in `dir`, written plainly with a fresh leaf.
fn plain_files(dir: &Path) -> (PathBuf, PathBuf, Pair) {
    let (cert, key) = (dir.join("tls.crt"), dir.join("tls.key"));
    let first = leaf();
    std::fs::write(&cert, &first.cert).unwrap();
    std::fs::write(&key, &first.key).unwrap();
    (cert, key, first)
}

/// A store on `cert`/`key` with inotify only (no timer), and the events it reports.
fn watched(cert: &Path, key: &Path) -> (Store, Arc<Mutex<Seen>>) {
    let store = Store::open(watch_only(cert, key)).unwrap();
    let seen = record(&store);
    (store, seen)
}

fn watch_only(cert: &Path, key: &Path) -> Options {
    let mut o = Options::new(cert, key);
    o.reread_interval = None;
    o
}

#[test]
fn five_kubelet_swaps_are_each_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&leaf());
    let store = Store::open(watch_only(&kube.path("tls.crt"), &kube.path("tls.key"))).unwrap();
    let seen = record(&store);
    for round in 0..5 {
        let next = leaf();
        kube.write_pair(&next);
        assert!(
            wait_for(PATIENCE, || store.current().serial_hex() == next.serial_hex),
            "swap {round} was not picked up"
        );
        assert_eq!(store.generation(), round + 2);
    }
    assert!(wait_for(PATIENCE, || seen.lock().unwrap().rotated.len() == 5));
    assert!(seen.lock().unwrap().failed.is_empty());
}

#[test]
fn cert_then_key_50ms_later_never_publishes_a_mismatch() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, _) = plain_files(tmp.path());
    let (store, seen) = watched(&cert, &key);
    for _ in 0..3 {
        let next = leaf();
        std::fs::write(&cert, &next.cert).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        std::fs::write(&key, &next.key).unwrap();
        assert!(wait_for(PATIENCE, || store.current().serial_hex() == next.serial_hex));
        // The pair served is consistent (validation ran) and the key is the new one.
        assert_eq!(store.current().key_pem(), next.key.as_bytes());
    }
    std::thread::sleep(Duration::from_millis(500));
    let seen = seen.lock().unwrap();
    assert!(
        seen.failed.is_empty(),
        "the retry backoff should cover 50 ms: {:?}",
        seen.failed
    );
    assert_eq!(
        seen.rotated.len(),
        3,
        "one publication per pair: {:?}",
        seen.rotated
    );
}

#[test]
fn same_mtime_copy_is_picked_up_by_the_reread_timer() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, _) = plain_files(tmp.path());
    let mut options = Options::new(&cert, &key);
    options.watch = false; // inotify missed it (e.g. a network filesystem)
    options.reread_interval = Some(Duration::from_millis(100));
    let store = Store::open(options).unwrap();
    let mtime = |p: &Path| std::fs::metadata(p).unwrap().modified().unwrap();
    let (cert_mtime, key_mtime) = (mtime(&cert), mtime(&key));
    let next = leaf();
    // `cp -p`: new content, old modification time.
    for (path, bytes, when) in [
        (&cert, &next.cert, cert_mtime),
        (&key, &next.key, key_mtime),
    ] {
        std::fs::write(path, bytes).unwrap();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    assert_eq!(mtime(&cert), cert_mtime);
    assert!(wait_for(PATIENCE, || store.current().serial_hex() == next.serial_hex));
}

#[test]
fn deleting_and_recreating_the_directory_is_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("certs");
    let mut kube = KubeletDir::new(&dir);
    let first = leaf();
    kube.write_pair(&first);
    let store = Store::open(watch_only(&kube.path("tls.crt"), &kube.path("tls.key"))).unwrap();
    let seen = record(&store);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(wait_for(PATIENCE, || !seen
        .lock()
        .unwrap()
        .failed
        .is_empty()));
    assert_eq!(
        store.current().serial_hex(),
        first.serial_hex,
        "last good kept"
    );
    std::thread::sleep(Duration::from_millis(100));
    let mut kube = KubeletDir::new(&dir);
    let next = leaf();
    kube.write_pair(&next);
    assert!(wait_for(PATIENCE, || store.current().serial_hex() == next.serial_hex));
    // And the new directory keeps being watched.
    let third = leaf();
    kube.write_pair(&third);
    assert!(wait_for(PATIENCE, || store.current().serial_hex()
        == third.serial_hex));
}

#[test]
fn in_place_writes_and_rename_over_are_picked_up() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key) = (tmp.path().join("tls.crt"), tmp.path().join("tls.key"));
    let write_pair = |p: &Pair| {
        std::fs::write(&key, &p.key).unwrap();
        std::fs::write(&cert, &p.cert).unwrap();
    };
    write_pair(&leaf());
    let store = Store::open(watch_only(&cert, &key)).unwrap();
    let next = leaf();
    write_pair(&next);
    assert!(wait_for(PATIENCE, || store.current().serial_hex() == next.serial_hex));
    // An editor-style save: write a temporary file, rename it over the original.
    let third = leaf();
    for (path, bytes) in [(&key, &third.key), (&cert, &third.cert)] {
        let tmp_path = path.with_extension("swp");
        std::fs::write(&tmp_path, bytes).unwrap();
        std::fs::rename(&tmp_path, path).unwrap();
    }
    assert!(wait_for(PATIENCE, || store.current().serial_hex()
        == third.serial_hex));
    // Delete and recreate the files.
    let fourth = leaf();
    std::fs::remove_file(&cert).unwrap();
    std::fs::remove_file(&key).unwrap();
    write_pair(&fourth);
    assert!(wait_for(PATIENCE, || store.current().serial_hex()
        == fourth.serial_hex));
}

#[test]
fn unchanged_content_is_not_republished() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    let first = leaf();
    kube.write_pair(&first);
    let store = Store::open(watch_only(&kube.path("tls.crt"), &kube.path("tls.key"))).unwrap();
    kube.write_pair(&first); // same bytes, new directory generation
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(store.generation(), 1);
    assert_eq!(store.reload().unwrap(), certstore::ReloadOutcome::Unchanged);
}

#[test]
fn ca_bundle_rotation_is_published() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    let pair = leaf();
    let ca1 = common::ca();
    kube.write(&[
        ("tls.crt", pair.cert.as_bytes()),
        ("tls.key", pair.key.as_bytes()),
        ("ca.crt", ca1.as_bytes()),
    ]);
    let options =
        watch_only(&kube.path("tls.crt"), &kube.path("tls.key")).with_ca(kube.path("ca.crt"));
    let store = Store::open(options).unwrap();
    let ca2 = common::ca();
    kube.write(&[
        ("tls.crt", pair.cert.as_bytes()),
        ("tls.key", pair.key.as_bytes()),
        ("ca.crt", ca2.as_bytes()),
    ]);
    assert!(wait_for(PATIENCE, || store.generation() == 2));
    assert_eq!(store.current().ca_pem().unwrap(), ca2.as_bytes());
}

#[test]
fn a_chain_written_in_two_steps_is_read_once_complete() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, first) = plain_files(tmp.path());
    let (store, seen) = watched(&cert, &key);
    std::thread::sleep(Duration::from_millis(200)); // past the watcher's start-up read
    // A renewed leaf for the same key (cert-manager's default rotationPolicy keeps the key),
    // so the leaf alone would validate. `cat leaf.pem intermediate.pem > tls.crt` with a pause
    // between the two writes.
    let renewed = common::leaf_for_key(&first.key);
    let intermediate = common::ca();
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&cert).unwrap();
        file.write_all(renewed.cert.as_bytes()).unwrap();
        file.flush().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        file.write_all(intermediate.as_bytes()).unwrap();
    }
    assert!(wait_for(PATIENCE, || store.generation() == 2));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(store.generation(), 2, "published once, complete");
    let chain = String::from_utf8(store.current().cert_pem().to_vec()).unwrap();
    assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);
    assert_eq!(store.current().serial_hex(), renewed.serial_hex);
    assert!(seen.lock().unwrap().failed.is_empty());
}

#[test]
fn a_symlink_into_another_kubelet_directory_is_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(&tmp.path().join("secret"));
    kube.write_pair(&leaf());
    let etc = tmp.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    for name in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(kube.path(name), etc.join(name)).unwrap();
    }
    let store = Store::open(watch_only(&etc.join("tls.crt"), &etc.join("tls.key"))).unwrap();
    std::thread::sleep(Duration::from_millis(200)); // past the watcher's start-up read
    let next = leaf();
    kube.write_pair(&next);
    assert!(wait_for(PATIENCE, || store.current().serial_hex() == next.serial_hex));
}

#[test]
fn a_not_yet_valid_leaf_is_taken_once_valid_without_a_timer() {
    let tmp = tempfile::tempdir().unwrap();
    let (cert, key, first) = plain_files(tmp.path());
    let (store, seen) = watched(&cert, &key);
    // Issued a second in the future (a clock a little ahead at the issuer).
    let early = common::leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, 2, 3600);
    std::fs::write(&key, &early.key).unwrap();
    std::fs::write(&cert, &early.cert).unwrap();
    assert!(wait_for(PATIENCE, || !seen
        .lock()
        .unwrap()
        .failed
        .is_empty()));
    assert!(seen.lock().unwrap().failed[0].contains("not valid before"));
    assert_eq!(store.current().serial_hex(), first.serial_hex);
    assert!(wait_for(PATIENCE, || store.current().serial_hex()
        == early.serial_hex));
}
