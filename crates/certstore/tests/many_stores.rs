//! One engine per process: a thousand stores cost no more threads and no more inotify
//! instances than one, and freeing the last one returns the process to its baseline at once.
//! Its own test binary: it counts the process's threads and descriptors.

mod common;

use std::path::Path;
use std::time::Duration;

use certstore::{Options, Store};
use common::{KubeletDir, leaf, wait_for};

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

fn fds() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.display().to_string())
        .collect();
    out.sort();
    out
}

fn inotify_instances() -> usize {
    fds().iter().filter(|l| l.contains("inotify")).count()
}

fn open(dir: &Path) -> Store {
    let mut o = Options::new(dir.join("tls.crt"), dir.join("tls.key"));
    o.reread_interval = None;
    Store::open(o).unwrap()
}

#[test]
fn a_thousand_stores_share_one_engine() {
    const STORES: usize = 1000;
    let tmp = tempfile::tempdir().unwrap();
    let pair = leaf();
    let mut dirs = Vec::new();
    for i in 0..STORES {
        let mut kube = KubeletDir::new(&tmp.path().join(format!("s{i}")));
        kube.write_pair(&pair);
        dirs.push(kube);
    }
    let (base_threads, base_fds) = (threads(), fds());

    let one = open(&dirs[0].dir);
    let (threads_one, inotify_one) = (threads(), inotify_instances());
    assert_eq!(inotify_one, 1);
    let mut stores = vec![one];
    for kube in &dirs[1..] {
        stores.push(open(&kube.dir));
    }
    assert_eq!(threads(), threads_one, "threads grew with stores");
    assert_eq!(inotify_instances(), 1, "inotify instances grew with stores");

    // Every store still follows its own files.
    let next = leaf();
    dirs[STORES - 1].write_pair(&next);
    assert!(wait_for(Duration::from_secs(10), || stores[STORES - 1]
        .current()
        .serial_hex()
        == next.serial_hex));
    assert_eq!(stores[0].current().serial_hex(), pair.serial_hex);

    drop(stores);
    assert_eq!(threads(), base_threads, "threads left after the last free");
    assert_eq!(fds(), base_fds, "descriptors left after the last free");

    // Open/free in a loop leaves nothing behind either.
    for _ in 0..50 {
        drop(open(&dirs[1].dir));
    }
    assert_eq!(threads(), base_threads);
    assert_eq!(fds(), base_fds);
}
