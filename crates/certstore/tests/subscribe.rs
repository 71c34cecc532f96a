//! Subscription lifetimes: unsubscribe waits for a running callback, works from inside one,
//! and a panicking subscriber does not stop delivery.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certstore::{Options, Store, SubscriptionId};
use common::{leaf, wait_for};

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let pair = leaf();
    std::fs::write(&cert, &pair.cert).unwrap();
    std::fs::write(&key, &pair.key).unwrap();
    let mut o = Options::new(&cert, &key);
    o.watch = false;
    o.reread_interval = None;
    (dir, Store::open(o).unwrap())
}

fn rotate(dir: &tempfile::TempDir, store: &Store) {
    let pair = leaf();
    std::fs::write(dir.path().join("tls.crt"), &pair.cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), &pair.key).unwrap();
    store.reload().unwrap();
}

#[test]
fn unsubscribe_waits_for_the_running_callback() {
    let (dir, store) = store();
    let inside = Arc::new(AtomicBool::new(false));
    let finished = Arc::new(AtomicBool::new(false));
    let (i, f) = (Arc::clone(&inside), Arc::clone(&finished));
    let id = store.subscribe(move |_| {
        i.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(200));
        f.store(true, Ordering::SeqCst);
    });
    rotate(&dir, &store);
    assert!(wait_for(Duration::from_secs(5), || inside.load(Ordering::SeqCst)));
    assert!(store.unsubscribe(id));
    assert!(
        finished.load(Ordering::SeqCst),
        "unsubscribe returned while the callback ran"
    );
    assert!(!store.unsubscribe(id), "second unsubscribe finds nothing");
}

#[test]
fn unsubscribe_from_inside_the_callback_returns_and_stops_delivery() {
    let (dir, store) = store();
    let store = Arc::new(store);
    let calls = Arc::new(AtomicUsize::new(0));
    let my_id: Arc<Mutex<Option<SubscriptionId>>> = Arc::default();
    let (s, c, m) = (
        Arc::downgrade(&store),
        Arc::clone(&calls),
        Arc::clone(&my_id),
    );
    let id = store.subscribe(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
        let id = m.lock().unwrap().expect("id set");
        if let Some(store) = s.upgrade() {
            assert!(store.in_callback());
            assert!(store.unsubscribe(id));
        }
    });
    *my_id.lock().unwrap() = Some(id);
    rotate(&dir, &store);
    assert!(wait_for(Duration::from_secs(5), || calls
        .load(Ordering::SeqCst)
        == 1));
    rotate(&dir, &store);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn a_panicking_subscriber_does_not_stop_delivery() {
    let (dir, store) = store();
    store.subscribe(|_| panic!("subscriber bug"));
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    store.subscribe(move |_| {
        c.fetch_add(1, Ordering::SeqCst);
    });
    rotate(&dir, &store);
    rotate(&dir, &store);
    assert!(wait_for(Duration::from_secs(5), || calls
        .load(Ordering::SeqCst)
        == 2));
}

#[test]
fn snapshots_outlive_rotations_and_the_store() {
    let (dir, store) = store();
    let held = store.current();
    let serial = held.serial_hex().to_owned();
    rotate(&dir, &store);
    assert_ne!(store.current().serial_hex(), serial);
    drop(store);
    assert_eq!(held.serial_hex(), serial);
    assert!(held.key_pem().starts_with(b"-----BEGIN PRIVATE KEY-----"));
}
