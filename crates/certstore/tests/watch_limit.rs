//! When inotify cannot watch a store's directories (fs.inotify.max_user_watches exhausted),
//! the store still loads and serves, says so, follows rotations on its timer, and gets its
//! watch back when possible. Its own test binary: the simulated limit is process-wide.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use certstore::{Event, Options, Store, simulate_watch_limit};
use common::{KubeletDir, leaf, wait_for};

#[test]
fn exhausted_watches_fall_back_to_the_timer_and_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&leaf());
    simulate_watch_limit(0);
    let mut o = Options::new(kube.path("tls.crt"), kube.path("tls.key"));
    o.reread_interval = Some(Duration::from_millis(200));
    let store = Store::open(o).expect("loads without a watch");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    store.subscribe(move |e| {
        sink.lock().unwrap().push(match e {
            Event::WatchDegraded { error, .. } => format!("degraded {error}"),
            Event::WatchRestored { .. } => "restored".to_owned(),
            Event::Rotated { .. } => "rotated".to_owned(),
            _ => "other".to_owned(),
        })
    });
    let degraded = store
        .status()
        .watch_degraded
        .expect("status says the watch is degraded");
    let message = degraded.to_string();
    assert!(message.contains("fs.inotify.max_user_watches"), "{message}");
    assert!(
        message.contains(&tmp.path().display().to_string()),
        "{message}"
    );

    let next = leaf();
    kube.write_pair(&next);
    assert!(
        wait_for(Duration::from_secs(10), || store.current().serial_hex()
            == next.serial_hex),
        "the timer picked up the rotation"
    );

    simulate_watch_limit(usize::MAX);
    assert!(wait_for(Duration::from_secs(10), || store
        .status()
        .watch_degraded
        .is_none()));
    assert!(wait_for(Duration::from_secs(10), || seen
        .lock()
        .unwrap()
        .contains(&"restored".to_owned())));
    let after = leaf();
    kube.write_pair(&after);
    assert!(wait_for(Duration::from_secs(10), || store
        .current()
        .serial_hex()
        == after.serial_hex));
}
