//! What a store costs, and whether many idle stores slow one store's rotation: for 1, 100 and
//! 1,000 stores in one process (each on its own kubelet-style directory), the process's
//! threads, descriptors, inotify instances and resident memory per store, and the publish
//! latency (`..data` rename → new generation published) of one store among them.
//!
//! `cargo bench -p certstore --bench many_stores` (ROTATIONS=N, STORES=1,100,1000).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime};

use certstore::{Options, Store};
use common::{KubeletDir, leaf};

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

fn inotify_instances() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().contains("inotify"))
        .count()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Publish latencies of one store among `stores`, and the resources with all of them open.
fn run(stores: usize, rotations: usize) -> (usize, usize, usize, f64, Vec<Duration>) {
    let tmp = tempfile::tempdir().unwrap();
    let pairs = [leaf(), leaf()];
    let mut dirs: Vec<KubeletDir> = (0..stores)
        .map(|i| {
            let mut kube = KubeletDir::new(&tmp.path().join(format!("s{i}")));
            kube.write_pair(&pairs[0]);
            kube
        })
        .collect();
    let rss_before = rss_kib();
    let opened: Vec<Store> = dirs
        .iter()
        .map(|kube| {
            let mut o = Options::new(kube.path("tls.crt"), kube.path("tls.key"));
            o.reread_interval = None;
            Store::open(o).unwrap()
        })
        .collect();
    let rss_per_store = (rss_kib().saturating_sub(rss_before)) as f64 / stores as f64;
    let resources = (
        count("/proc/self/task"),
        count("/proc/self/fd"),
        inotify_instances(),
    );
    let (clock_i, clock_s) = (Instant::now(), SystemTime::now());
    let target = &opened[stores / 2];
    let kube = &mut dirs[stores / 2];
    let mut latencies = Vec::with_capacity(rotations);
    for i in 0..rotations {
        let want = target.generation() + 1;
        kube.write_pair(&pairs[(i + 1) % 2]);
        let renamed = kube.last_swap.unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while target.generation() < want {
            assert!(Instant::now() < deadline, "rotation not published");
            std::thread::sleep(Duration::from_micros(200));
        }
        let published = target.current().loaded_at();
        let at = clock_i + published.duration_since(clock_s).unwrap_or_default();
        latencies.push(at.saturating_duration_since(renamed));
        std::thread::sleep(Duration::from_millis(10));
    }
    latencies.sort();
    drop(opened);
    (
        resources.0,
        resources.1,
        resources.2,
        rss_per_store,
        latencies,
    )
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let rotations: usize = std::env::var("ROTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 200 } else { 5 });
    let counts: Vec<usize> = std::env::var("STORES")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| {
            if benching {
                vec![1, 100, 1000]
            } else {
                vec![1, 10]
            }
        });
    println!(
        "one store's publish latency among N idle stores, {rotations} rotations; resources with N open"
    );
    println!(
        "{:>6} {:>8} {:>6} {:>8} {:>14} {:>10} {:>10} {:>11}",
        "stores", "threads", "fds", "inotify", "RSS/store KiB", "p50 ms", "p99 ms", "p50 vs 1"
    );
    let mut one = None;
    for &n in &counts {
        let (threads, fds, inotify, rss, lat) = run(n, rotations);
        let p50 = percentile(&lat, 0.5);
        let base = *one.get_or_insert(p50);
        println!(
            "{:>6} {:>8} {:>6} {:>8} {:>14.1} {:>10.3} {:>10.3} {:>10.2}x",
            n,
            threads,
            fds,
            inotify,
            rss,
            ms(p50),
            ms(percentile(&lat, 0.99)),
            p50.as_secs_f64() / base.as_secs_f64()
        );
    }
}
