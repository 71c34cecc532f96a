//! The watcher never stays silently stale: a watch that died without an event (an ancestor
//! directory replaced, events lost to a queue overflow) or a name registered after its file
//! changed is noticed and repaired, with the re-read timer off (fixed outright) and on (the
//! timer's re-read is an audit that reports the repair). Its own test binary: the event-loss
//! hook is process-wide.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certstore::{Event, Options, Store, simulate_lost_events};
use common::{Pair, ca, leaf, leaf_for_key, wait_for};

/// Generous: the machine running the tests may be busy.
const PATIENCE: Duration = Duration::from_secs(15);

/// Tests of this binary one at a time: the event-loss hook is process-wide.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes `name` in `dir` by rename, as most writers do.
fn put(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn put_pair(dir: &Path, pair: &Pair) {
    std::fs::create_dir_all(dir).unwrap();
    put(dir, "tls.crt", pair.cert.as_bytes());
    put(dir, "tls.key", pair.key.as_bytes());
}

/// `root/app/certs/tls.{crt,key}` holding `pair`; returns the certs directory.
fn app_layout(root: &Path, pair: &Pair) -> PathBuf {
    let certs = root.join("app/certs");
    put_pair(&certs, pair);
    certs
}

/// Replaces `root/app` as deployment tools do: a new tree beside it, then two renames. The
/// watched `app/certs` moves away with the old `app`, which no inotify watch reports.
fn swap_app(root: &Path, pair: &Pair) {
    put_pair(&root.join("app.new/certs"), pair);
    let _ = std::fs::remove_dir_all(root.join("app.old"));
    std::fs::rename(root.join("app"), root.join("app.old")).unwrap();
    std::fs::rename(root.join("app.new"), root.join("app")).unwrap();
}

fn open(certs: &Path, reread: Option<Duration>) -> Store {
    let mut o = Options::new(certs.join("tls.crt"), certs.join("tls.key"));
    o.reread_interval = reread;
    Store::open(o).unwrap()
}

/// Lets the store's first reload (which follows its opening and would itself notice a dead
/// watch or a missing directory, without a repair to report) finish: what the test does next
/// is then found only by what it tests.
fn settle(store: &Store) {
    assert_eq!(store.reload().unwrap(), certstore::ReloadOutcome::Unchanged);
    std::thread::sleep(Duration::from_millis(200));
}

fn serves(store: &Store, pair: &Pair) -> bool {
    wait_for(PATIENCE, || store.current().serial_hex() == pair.serial_hex)
}

/// The repairs a store reported through events, as (path, served generation).
fn repairs_of(store: &Store) -> Arc<Mutex<Vec<(PathBuf, u64)>>> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&seen);
    store.subscribe(move |e| {
        if let Event::WatchRepaired {
            path,
            served_generation,
        } = e
        {
            sink.lock()
                .unwrap()
                .push((path.clone(), *served_generation));
        }
    });
    seen
}

#[test]
fn ancestor_swap_is_repaired_by_an_explicit_reload_and_by_a_new_store() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let certs = app_layout(&root, &leaf());
    let store = open(&certs, None);
    settle(&store);

    let swapped = leaf();
    swap_app(&root, &swapped);
    assert_eq!(
        store.reload().unwrap(),
        certstore::ReloadOutcome::Rotated { generation: 2 }
    );
    let next = leaf();
    put_pair(&certs, &next);
    assert!(
        serves(&store, &next),
        "after an explicit reload, a rotation under the replaced ancestor is seen (serving {}, \
         want {})",
        store.current().serial_hex(),
        next.serial_hex
    );

    swap_app(&root, &leaf());
    let second = open(&certs, None);
    let later = leaf();
    put_pair(&certs, &later);
    assert!(
        serves(&second, &later),
        "a store opened after the ancestor was replaced watches the new directory"
    );
}

#[test]
fn ancestor_swap_is_found_by_the_reread_audit_and_reported() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let certs = app_layout(&root, &leaf());
    let store = open(&certs, Some(Duration::from_secs(1)));
    let repairs = repairs_of(&store);
    settle(&store);

    let swapped = leaf();
    swap_app(&root, &swapped);
    assert!(
        serves(&store, &swapped),
        "the audit re-read serves the swapped files"
    );
    assert!(wait_for(PATIENCE, || !repairs.lock().unwrap().is_empty()));
    assert_eq!(
        repairs.lock().unwrap().clone(),
        vec![(certs.clone(), 2)],
        "one repair, naming the re-added directory and the generation served"
    );
    assert_eq!(store.status().watch_repairs, 1);

    // Served by inotify again: had only the timer seen it, its re-read would have found an
    // unannounced generation and counted a second repair.
    for _ in 0..3 {
        let next = leaf();
        put_pair(&certs, &next);
        assert!(serves(&store, &next));
    }
    assert_eq!(
        store.status().watch_repairs,
        1,
        "later rotations come by inotify"
    );
}

#[test]
fn a_dead_watch_found_by_another_store_is_reported_by_each_store_that_used_it() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let certs = app_layout(&root, &leaf());
    let first = open(&certs, None);
    let first_repairs = repairs_of(&first);
    settle(&first);

    let swapped = leaf();
    swap_app(&root, &swapped);
    std::thread::sleep(Duration::from_millis(300));
    assert_ne!(
        first.current().serial_hex(),
        swapped.serial_hex,
        "no event announced the swap"
    );
    // Its registration finds the first store's watch dead.
    let second = open(&certs, None);
    let second_repairs = repairs_of(&second);
    assert!(serves(&first, &swapped));
    assert!(wait_for(PATIENCE, || first.status().watch_repairs == 1));
    assert!(wait_for(PATIENCE, || !first_repairs
        .lock()
        .unwrap()
        .is_empty()));
    assert_eq!(
        first_repairs
            .lock()
            .unwrap()
            .first()
            .map(|(p, _)| p.clone()),
        Some(certs.clone()),
        "the repair names the dead directory"
    );
    let next = leaf();
    put_pair(&certs, &next);
    assert!(serves(&first, &next) && serves(&second, &next));
    assert_eq!(first.status().watch_repairs, 1, "reported once");
    assert_eq!(first_repairs.lock().unwrap().len(), 1);
    assert_eq!(
        second.status().watch_repairs,
        0,
        "the new store never used the dead watch"
    );
    assert!(second_repairs.lock().unwrap().is_empty());
}

#[test]
fn an_explicit_reload_that_finds_a_dead_watch_reports_it() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let certs = app_layout(&root, &leaf());
    let store = open(&certs, None);
    let repairs = repairs_of(&store);
    settle(&store);

    swap_app(&root, &leaf());
    store.reload().unwrap();
    assert!(wait_for(PATIENCE, || !repairs.lock().unwrap().is_empty()));
    assert_eq!(repairs.lock().unwrap().clone(), vec![(certs.clone(), 2)]);
    assert_eq!(store.status().watch_repairs, 1);
}

#[test]
fn announced_rotations_under_load_are_never_counted_as_repairs() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let pairs: Vec<Pair> = (0..4).map(|_| leaf()).collect();
    put_pair(&dir, &pairs[0]);
    // A re-read at every turn: each can race the watch thread to a rotation's files.
    let store = open(&dir, Some(Duration::from_millis(1)));
    let repairs = repairs_of(&store);
    settle(&store);
    // Busy threads keep the watch thread from reading its events at once.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let hogs: Vec<_> = (0..2 * std::thread::available_parallelism().map_or(2, |n| n.get()))
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
                }
            })
        })
        .collect();
    for i in 0..300 {
        put_pair(&dir, &pairs[i % 3 + 1]);
        std::thread::sleep(Duration::from_millis(3));
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for hog in hogs {
        hog.join().unwrap();
    }
    let last = &pairs[299 % 3 + 1];
    assert!(serves(&store, last));
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        (store.status().watch_repairs, repairs.lock().unwrap().len()),
        (0, 0),
        "every rotation was announced by an event (generation {})",
        store.generation()
    );
}

#[test]
fn simulated_event_loss_without_a_store_open_does_not_deafen_the_next_engine() {
    let _serial = serial();
    // No store of this binary is open here: the engine is stopped.
    simulate_lost_events(true);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    put_pair(&dir, &leaf());
    let store = open(&dir, None);
    settle(&store);
    let next = leaf();
    put_pair(&dir, &next);
    assert!(serves(&store, &next), "the rotation's events are delivered");
}

#[test]
fn a_directory_deleted_and_created_again_is_no_repair() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let certs = app_layout(&root, &leaf());
    let store = open(&certs, None);
    let repairs = repairs_of(&store);
    settle(&store);
    for _ in 0..40 {
        // Each step has its events (IN_IGNORED among them): the watch is dropped, not dead.
        std::fs::remove_dir_all(&certs).unwrap();
        let next = leaf();
        put_pair(&certs, &next);
        assert!(serves(&store, &next));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        (store.status().watch_repairs, repairs.lock().unwrap().len()),
        (0, 0),
        "the events announced every deletion"
    );
}

#[test]
fn a_repointed_symlink_in_a_watched_directory_sees_a_change_made_while_it_was_read() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().canonicalize().unwrap();
    let first = leaf();
    put(&dir, "a.pem", first.cert.as_bytes());
    put(&dir, "tls.key", first.key.as_bytes());
    std::os::unix::fs::symlink("a.pem", dir.join("tls.crt")).unwrap();
    // A large CA bundle makes validation, between the read and the registration of the new
    // name, long enough for a writer to change the new file meanwhile.
    let bundle = ca().repeat(6000);
    put(&dir, "ca.pem", bundle.as_bytes());
    let mut o = Options::new(dir.join("tls.crt"), dir.join("tls.key"));
    o.ca_path = Some(dir.join("ca.pem"));
    o.max_file_size = 64 << 20;
    o.reread_interval = None;
    let store = Store::open(o).unwrap();
    assert!(wait_for(PATIENCE, || !store
        .status()
        .last_reload_duration
        .is_zero()));
    let took = store.status().last_reload_duration;

    let b1 = leaf_for_key(&first.key);
    put(&dir, "b.pem", b1.cert.as_bytes());
    let accessed = || {
        std::fs::metadata(dir.join("b.pem"))
            .and_then(|m| m.accessed())
            .ok()
    };
    let written = accessed();
    let tmp_link = dir.join("tls.crt.tmp");
    std::os::unix::fs::symlink("b.pem", &tmp_link).unwrap();
    std::fs::rename(&tmp_link, dir.join("tls.crt")).unwrap();
    // Inside the reload that the re-pointing started, after it read b.pem (the read updates
    // its access time where the file system keeps it: relatime) and while it validates for
    // about `took`; without an access time, half-way through.
    if !wait_for(took * 4 + Duration::from_secs(1), || accessed() != written) {
        std::thread::sleep(took / 2);
    }
    let b2 = leaf_for_key(&first.key);
    put(&dir, "b.pem", b2.cert.as_bytes());
    assert!(
        serves(&store, &b2),
        "the change of the newly named file is served (serving {}, b1 {}, b2 {})",
        store.current().serial_hex(),
        b1.serial_hex,
        b2.serial_hex
    );
}

#[test]
fn a_directory_recreated_during_lost_events_is_watched_after_the_overflow() {
    let _serial = serial();
    for reread in [None, Some(Duration::from_secs(1))] {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        let certs = app_layout(&root, &leaf());
        let store = open(&certs, reread);
        let repairs = repairs_of(&store);
        settle(&store);

        simulate_lost_events(true);
        std::fs::remove_dir_all(&certs).unwrap();
        let recreated = leaf();
        put_pair(&certs, &recreated);
        simulate_lost_events(false);
        assert!(
            serves(&store, &recreated),
            "the overflow re-reads every store"
        );

        let next = leaf();
        put_pair(&certs, &next);
        assert!(
            serves(&store, &next),
            "the recreated directory is watched after the overflow (re-read {reread:?})"
        );
        assert_eq!(
            store.status().watch_repairs,
            0,
            "the overflow rebuilt the watches: the audit found nothing stale"
        );
        assert!(repairs.lock().unwrap().is_empty());
    }
}
