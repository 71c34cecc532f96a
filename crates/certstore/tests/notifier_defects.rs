//! The notifier's defects of issue 14: a callback that owns the last reference to another
//! store, a store freed from another store's callback, refusals under load.

mod common;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certstore::{Event, Options, Store};
use common::{leaf, wait_for};

/// Generous: only a deadlock takes this long.
const DEADLOCK: Duration = Duration::from_secs(60);

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

fn rotate(dir: &tempfile::TempDir, store: &Store) -> u64 {
    let pair = leaf();
    std::fs::write(dir.path().join("tls.crt"), &pair.cert).unwrap();
    std::fs::write(dir.path().join("tls.key"), &pair.key).unwrap();
    store.reload().unwrap();
    store.generation()
}

/// Runs `body` on its own thread; `false` when it has not returned after [`DEADLOCK`].
fn returns(body: impl FnOnce() + Send + 'static) -> bool {
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    finished.recv_timeout(DEADLOCK).is_ok()
}

/// After a deadlock of the notifier no store of the process can publish: check one can.
fn publishing_still_works() {
    let (dir, store) = store();
    let seen = Arc::new(AtomicU64::new(0));
    let s = Arc::clone(&seen);
    store.subscribe(move |e| s.store(e.generation(), Ordering::SeqCst));
    let generation = rotate(&dir, &store);
    assert!(
        wait_for(DEADLOCK, || seen.load(Ordering::SeqCst) == generation),
        "a rotation was published but never delivered"
    );
}

#[test]
fn unsubscribe_drops_a_closure_owning_the_last_reference_to_another_store() {
    let (_dir_a, a) = store();
    let (_dir_b, b) = store();
    let b = Arc::new(b);
    let owned = Arc::clone(&b);
    let id = a.subscribe(move |_| {
        let _ = owned.generation();
    });
    drop(b); // the closure now holds the last reference to B
    let a = Arc::new(a);
    let a2 = Arc::clone(&a);
    assert!(
        returns(move || assert!(a2.unsubscribe(id))),
        "unsubscribe deadlocked dropping a closure that owned the last Arc<Store>"
    );
    publishing_still_works();
}

#[test]
fn dropping_a_store_drops_a_closure_owning_the_last_reference_to_another_store() {
    let (_dir_a, a) = store();
    let (_dir_b, b) = store();
    let owned = Arc::new(b);
    a.subscribe(move |_| {
        let _ = owned.generation();
    });
    assert!(
        returns(move || drop(a)),
        "dropping a store deadlocked dropping a closure that owned the last Arc<Store>"
    );
    publishing_still_works();
}

#[test]
fn a_store_dropped_from_another_stores_callback_delivers_its_queued_events() {
    let (dir_x, x) = store();
    let (dir_y, y) = store();
    let y_seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let seen = Arc::clone(&y_seen);
    y.subscribe(move |e| seen.lock().unwrap().push(e.generation()));
    let y = Arc::new(Mutex::new(Some(y)));
    let (entered_tx, entered) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let y_in_x = Arc::clone(&y);
    x.subscribe(move |_| {
        let _ = entered_tx.send(());
        let _ = go_rx.lock().unwrap().recv_timeout(DEADLOCK);
        // Frees Y on the notifier thread while Y's rotation is queued behind this callback.
        drop(y_in_x.lock().unwrap().take());
    });
    rotate(&dir_x, &x);
    entered
        .recv_timeout(DEADLOCK)
        .expect("X's callback never ran");
    let y_generation = rotate(&dir_y, y.lock().unwrap().as_ref().unwrap());
    go.send(()).unwrap();
    assert!(
        wait_for(DEADLOCK, || y.lock().unwrap().is_none()),
        "X's callback never dropped Y"
    );
    assert_eq!(
        *y_seen.lock().unwrap(),
        [y_generation],
        "Y's queued rotation was not delivered when Y was dropped from X's callback"
    );
}

/// Publishes `n` refusals that differ from the one before (identical neighbours are merged)
/// while the only subscriber is blocked in its first callback, then lets it go.
fn refusals_behind_a_blocked_subscriber(n: usize) -> (Store, Vec<Event>) {
    let (dir, store) = store();
    let events: Arc<Mutex<Vec<Event>>> = Arc::default();
    let (entered_tx, entered) = mpsc::channel();
    let (go, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let seen = Arc::clone(&events);
    let first = AtomicUsize::new(0);
    store.subscribe(move |e| {
        if first.fetch_add(1, Ordering::SeqCst) == 0 {
            let _ = entered_tx.send(());
            let _ = go_rx.lock().unwrap().recv_timeout(DEADLOCK);
        }
        seen.lock().unwrap().push(e.clone());
    });
    let other_key = leaf().key;
    let good = std::fs::read(dir.path().join("tls.key")).unwrap();
    for i in 0..n {
        // A key of another certificate, then garbage: two distinct refusals in turn.
        let key: &[u8] = if i % 2 == 0 {
            other_key.as_bytes()
        } else {
            b"not a key"
        };
        std::fs::write(dir.path().join("tls.key"), key).unwrap();
        assert!(store.reload().is_err());
        if i == 0 {
            entered
                .recv_timeout(DEADLOCK)
                .expect("the callback never ran");
        }
    }
    std::fs::write(dir.path().join("tls.key"), good).unwrap();
    go.send(()).unwrap();
    // A rotation last: delivered after everything queued before it.
    let generation = rotate(&dir, &store);
    assert!(
        wait_for(DEADLOCK, || events.lock().unwrap().last().is_some_and(
            |e| matches!(e, Event::Rotated { .. }) && e.generation() == generation
        )),
        "the final rotation was not delivered"
    );
    let events = events.lock().unwrap().clone();
    (store, events)
}

#[test]
fn twenty_distinct_refusals_under_load_are_all_delivered() {
    let (_store, events) = refusals_behind_a_blocked_subscriber(20);
    let refusals = events
        .iter()
        .filter(|e| matches!(e, Event::ReloadFailed { .. }))
        .count();
    assert_eq!(refusals, 20, "refusals delivered: {events:#?}");
}

#[test]
fn refusals_beyond_the_bound_are_counted_and_reported() {
    let published = certstore::MAX_QUEUED_PER_STORE + 30;
    let (store, events) = refusals_behind_a_blocked_subscriber(published);
    let refusals = events
        .iter()
        .filter(|e| matches!(e, Event::ReloadFailed { .. }))
        .count() as u64;
    let reported: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::EventsDropped { count, .. } => Some(*count),
            _ => None,
        })
        .collect();
    let dropped = store.status().events_dropped;
    assert!(
        dropped > 0,
        "nothing was discarded: the test did not fill the queue"
    );
    assert_eq!(reported.iter().sum::<u64>(), dropped, "events: {events:#?}");
    assert_eq!(
        refusals + dropped,
        published as u64,
        "every refusal delivered or counted"
    );
    // Reported before the refusals that followed the discarded ones.
    let first_report = events
        .iter()
        .position(|e| matches!(e, Event::EventsDropped { .. }))
        .unwrap();
    assert!(matches!(events[0], Event::ReloadFailed { .. }));
    assert!(
        events[first_report..]
            .iter()
            .any(|e| matches!(e, Event::ReloadFailed { .. })),
        "no refusal after the report: {events:#?}"
    );
}
