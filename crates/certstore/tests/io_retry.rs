//! A rotation that lands while the process is out of file descriptors is retried until it
//! can be read, with the re-read timer off. Its own test binary: it exhausts the process's
//! descriptors.

mod common;

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certstore::{Event, Options, Reason, Store};
use common::{KubeletDir, leaf, wait_for};

#[test]
fn a_rotation_during_emfile_is_served_once_descriptors_are_back() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&leaf());
    let mut o = Options::new(kube.path("tls.crt"), kube.path("tls.key"));
    o.reread_interval = None;
    let store = Store::open(o).unwrap();
    let failures = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&failures);
    store.subscribe(move |e| {
        if let Event::ReloadFailed { error, .. } = e {
            sink.lock().unwrap().push(error.reason());
        }
    });

    // Write the new generation first (that needs descriptors), then take every descriptor
    // left and swap `..data` by hand: the store sees the swap but cannot open the files.
    let next = leaf();
    let staged = tmp.path().join("..2026_12_31_00_00_00.000000001");
    std::fs::create_dir(&staged).unwrap();
    std::fs::write(staged.join("tls.crt"), &next.cert).unwrap();
    std::fs::write(staged.join("tls.key"), &next.key).unwrap();
    std::os::unix::fs::symlink(staged.file_name().unwrap(), tmp.path().join("..data_tmp")).unwrap();
    let mut hog: Vec<OwnedFd> = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        hog.push(f.into());
    }
    std::fs::rename(tmp.path().join("..data_tmp"), tmp.path().join("..data")).unwrap();
    assert!(
        wait_for(Duration::from_secs(10), || failures
            .lock()
            .unwrap()
            .contains(&Reason::Io)),
        "the EMFILE refusal is reported: {:?}",
        failures.lock().unwrap()
    );
    assert!(store.status().disk_differs());
    // Hold the descriptors until every reload the swap's own events can cause is over: only
    // a retry the store schedules itself can serve the files afterwards.
    std::thread::sleep(Duration::from_millis(1500));
    drop(hog);
    assert!(
        wait_for(Duration::from_secs(20), || store.current().serial_hex()
            == next.serial_hex),
        "retried once descriptors were back"
    );
    assert!(!store.status().disk_differs());
}
