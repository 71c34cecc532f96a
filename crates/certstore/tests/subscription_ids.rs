//! Subscription ids are unique for the life of the process, even when the engine stops (its
//! last store dropped) and starts again. Alone in its binary: no other store keeps the
//! engine running.

mod common;

use certstore::{Options, Store};
use common::leaf;

#[test]
fn subscription_ids_are_not_reused_after_the_engine_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let pair = leaf();
    std::fs::write(&cert, &pair.cert).unwrap();
    std::fs::write(&key, &pair.key).unwrap();
    let open = || {
        let mut o = Options::new(&cert, &key);
        o.watch = false;
        o.reread_interval = None;
        Store::open(o).unwrap()
    };
    let first = open();
    let first_id = first.subscribe(|_| {});
    drop(first); // the last store: the engine stops
    let second = open();
    let second_id = second.subscribe(|_| {});
    assert_ne!(
        first_id, second_id,
        "a subscription id was handed out twice in one process"
    );
}
