//! A store that has rotated many times holds what it held after its first load: 300 kubelet
//! rotations, every 10th refused (mismatched key or garbage) and followed by a good one, leave
//! the process with the same number of file descriptors and threads. RSS is printed, not
//! asserted (the allocator decides when memory goes back). `make soak` runs 10,000.

mod common;
#[path = "soak/mod.rs"]
mod soak;

use std::time::Duration;

use soak::Resources;

#[test]
fn rotations_leak_no_descriptor_and_no_thread() {
    let before_open = Resources::now();
    let report = soak::run(300, 10, 100, 4);
    let start = report.samples.first().unwrap().resources;
    let end = report.samples.last().unwrap().resources;
    println!("before the store: {before_open:?}");
    for sample in &report.samples {
        println!(
            "after {:>4} rotations: {:?}",
            sample.rotations, sample.resources
        );
    }
    // 300 rotations, 30 refused: 270 new generations after the first.
    assert_eq!(report.generations, 271);
    assert_eq!(report.refused, 30);
    assert_eq!(report.publish.len() + report.recovery.len(), 270);
    assert_eq!(end.fds, start.fds, "file descriptors: {start:?} -> {end:?}");
    assert_eq!(end.threads, start.threads, "threads: {start:?} -> {end:?}");
    // The store opened the engine (inotify, its threads); dropping it, the last store, closes
    // all of it. A thread joined may linger in /proc for an instant: polled, not timed.
    assert!(start.threads > before_open.threads);
    let released = common::wait_for(Duration::from_secs(10), || {
        let now = Resources::now();
        now.threads == before_open.threads && now.fds == before_open.fds
    });
    assert!(
        released,
        "after the store: {:?}, before it: {before_open:?}",
        Resources::now()
    );
}
