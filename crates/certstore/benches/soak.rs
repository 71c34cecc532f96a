//! Soak: 10,000 kubelet rotations against one store in one process, every 10th refused
//! (alternately a mismatched key and a garbage certificate) and followed by a good one; each
//! rotation waits until the store published it (or reported the refusal). Prints the process's
//! RSS (VmRSS), open file descriptors and threads at the start, every 1,000 rotations and at
//! the end (flat is the target), and the latency from the `..data` rename to publication.
//!
//! `make soak`, or `cargo bench -p certstore --bench soak` (ROTATIONS=N to change the count;
//! `cargo test --benches` runs 200).

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/soak/mod.rs"]
mod soak;

use std::time::{Duration, Instant};

use soak::{Resources, percentile};

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let rotations: usize = std::env::var("ROTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 10_000 } else { 200 });
    println!("soak: {rotations} kubelet rotations, every 10th refused, one store");
    let before_open = Resources::now();
    let started = Instant::now();
    let mut report = soak::run(rotations, 10, 1_000, 16);
    let elapsed = started.elapsed();
    // The store was the engine's only one: its threads are joined and descriptors closed.
    let after_drop = Resources::now();
    println!(
        "{:>10} {:>10} {:>5} {:>8}",
        "rotations", "RSS KiB", "fds", "threads"
    );
    for s in &report.samples {
        println!(
            "{:>10} {:>10} {:>5} {:>8}",
            s.rotations, s.resources.rss_kib, s.resources.fds, s.resources.threads
        );
    }
    let (start, end) = (
        report.samples.first().unwrap().resources,
        report.samples.last().unwrap().resources,
    );
    println!(
        "start -> end: RSS {} -> {} KiB ({:+} KiB), fds {} -> {}, threads {} -> {}",
        start.rss_kib,
        end.rss_kib,
        end.rss_kib as i64 - start.rss_kib as i64,
        start.fds,
        end.fds,
        start.threads,
        end.threads
    );
    println!(
        "generations published {}, refusals {}, {:.1} s ({:.0} rotations/s)",
        report.generations,
        report.refused,
        elapsed.as_secs_f64(),
        rotations as f64 / elapsed.as_secs_f64()
    );
    println!(
        "{:<32} {:>6} {:>9} {:>9} {:>9} {:>9}",
        "latency from ..data rename", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    for (name, v) in [
        ("publish (good after good)", &mut report.publish),
        ("publish (good after refused)", &mut report.recovery),
        ("refusal reported", &mut report.refusal),
    ] {
        v.sort();
        println!(
            "{:<32} {:>6} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            name,
            v.len(),
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.9)),
            ms(percentile(v, 0.99)),
            ms(v.last().copied().unwrap_or_default())
        );
    }
    println!(
        "without a store: before {} fds, {} threads; after {} fds, {} threads",
        before_open.fds, before_open.threads, after_drop.fds, after_drop.threads
    );
    if end.fds != start.fds || end.threads != start.threads {
        eprintln!("soak: descriptors or threads grew");
        std::process::exit(1);
    }
}
