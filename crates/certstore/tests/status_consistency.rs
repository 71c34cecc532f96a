//! A status read after a caller saw generation G (through `current()` or `generation()`) is
//! the status of G or of a later generation: never the one before, with the old serial on
//! disk still marked as differing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use certstore::{Options, Store};
use common::{KubeletDir, leaf};

#[test]
fn status_never_trails_a_generation_already_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    let pairs: Vec<_> = (0..4).map(|_| leaf()).collect();
    kube.write_pair(&pairs[0]);
    let mut o = Options::new(kube.path("tls.crt"), kube.path("tls.key"));
    o.reread_interval = None;
    let store = Arc::new(Store::open(o).unwrap());

    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut checks = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let seen = store.current();
                    let status = store.status();
                    assert!(
                        status.generation >= seen.generation(),
                        "status of generation {} read after generation {} was seen",
                        status.generation,
                        seen.generation()
                    );
                    if status.generation == seen.generation() {
                        assert_eq!(status.disk.serial_hex.as_deref(), Some(seen.serial_hex()));
                        assert!(!status.disk_differs(), "generation {}", seen.generation());
                    }
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    // Explicit reloads publish on this thread while the readers look.
    for i in 1..200 {
        kube.write_pair(&pairs[i % pairs.len()]);
        store.reload().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() > 0);
    }
}
