//! Relative paths are made absolute at load: a later `chdir` (a daemon's `chdir("/")`) changes
//! nothing. Its own test binary: the working directory is process-wide.

mod common;

use std::time::Duration;

use certstore::{Options, Store};
use common::{KubeletDir, leaf, wait_for};

#[test]
fn relative_paths_survive_chdir() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(&tmp.path().join("certs"));
    kube.write_pair(&leaf());
    // A decoy at the same relative path elsewhere.
    let mut decoy = KubeletDir::new(&tmp.path().join("elsewhere/certs"));
    decoy.write_pair(&leaf());

    std::env::set_current_dir(tmp.path()).unwrap();
    let mut o = Options::new("certs/tls.crt", "certs/tls.key");
    o.reread_interval = None;
    let store = Store::open(o).unwrap();
    std::env::set_current_dir(tmp.path().join("elsewhere")).unwrap();

    let next = leaf();
    kube.write_pair(&next);
    assert!(wait_for(Duration::from_secs(10), || store
        .current()
        .serial_hex()
        == next.serial_hex));
    std::env::set_current_dir("/").unwrap();
    store.reload().expect("reload after chdir(\"/\")");
    assert_eq!(store.current().serial_hex(), next.serial_hex);
}
