//! What a store costs, and whether many idle stores slow one store's rotation: for 1, 100 and
//! 1,000 stores in one process (each on its own kubelet-style directory), the process's
//! threads, descriptors, inotify instances and resident memory per store, and the publish
//! latency (`..data` rename → new generation published) of one store among them.
//!
//! Then the cost of idleness: one unchanged re-read next to a bare read + SHA-256 of the same
//! files, and the watch thread's CPU with 10,000 idle stores on the default re-read interval
//! (and with one more store re-reading every 5 ms among them), from the thread's own CPU
//! clock in `/proc/self/task/<tid>/schedstat` (`stat` utime+stime when schedstat is absent).
//!
//! `cargo bench -p certstore --bench many_stores` (ROTATIONS=N, STORES=1,100,1000,
//! IDLE_STORES=10000, IDLE_SECS=65: long enough for one round of default 60 s re-reads).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant, SystemTime};

use certstore::{Options, ReloadOutcome, Store};
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

/// CPU time consumed so far by each thread of this process named `name`.
fn thread_cpu(name: &str) -> Duration {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let dir = task.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        // The kernel keeps 15 bytes of a thread name.
        if comm.trim() != &name[..name.len().min(15)] {
            continue;
        }
        total += match std::fs::read_to_string(dir.join("schedstat")) {
            Ok(s) => Duration::from_nanos(
                s.split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            ),
            Err(_) => {
                // Fields 14 and 15 of stat, after the parenthesised name: clock ticks.
                let stat = std::fs::read_to_string(dir.join("stat")).unwrap_or_default();
                let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
                let fields: Vec<u64> = after
                    .split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|v| v.parse().ok())
                    .collect();
                // SAFETY: sysconf only reads a configuration value.
                let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
                Duration::from_micros(fields.iter().sum::<u64>() * 1_000_000 / hz)
            }
        };
    }
    total
}

/// Median of `batches` timings of `per_batch` calls of `f`, per call.
fn per_call(batches: usize, per_batch: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..batches)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            start.elapsed() / per_batch as u32
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

/// An unchanged re-read (the store's own reload: read, hash, compare, watch check) against a
/// bare read of the same two files and SHA-256 over them.
fn unchanged_reread(benching: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&leaf());
    let mut o = Options::new(kube.path("tls.crt"), kube.path("tls.key"));
    o.reread_interval = None;
    let store = Store::open(o).unwrap();
    let (batches, per_batch) = if benching { (31, 200) } else { (3, 10) };
    let (crt, key) = (kube.path("tls.crt"), kube.path("tls.key"));
    let bare = per_call(batches, per_batch, || {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(&std::fs::read(&crt).unwrap());
        ctx.update(&std::fs::read(&key).unwrap());
        std::hint::black_box(ctx.finish());
    });
    let reread = per_call(batches, per_batch, || {
        assert_eq!(store.reload().unwrap(), ReloadOutcome::Unchanged);
    });
    println!(
        "unchanged re-read (Store::reload, P-256, kubelet layout): {:.1} µs; bare read + SHA-256: \
         {:.1} µs; ratio {:.2}x (target <= 2x)",
        reread.as_secs_f64() * 1e6,
        bare.as_secs_f64() * 1e6,
        reread.as_secs_f64() / bare.as_secs_f64()
    );
}

/// Watch-thread CPU with `stores` idle stores (100 per directory) on the default re-read
/// interval for `secs`, then with one more store re-reading every 5 ms among them.
fn idle_cost(stores: usize, secs: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let pair = leaf();
    let dirs: Vec<KubeletDir> = (0..stores.div_ceil(100))
        .map(|i| {
            let mut kube = KubeletDir::new(&tmp.path().join(format!("d{i}")));
            kube.write_pair(&pair);
            kube
        })
        .collect();
    let opened: Vec<Store> = (0..stores)
        .map(|i| {
            let kube = &dirs[i / 100];
            Store::open(Options::new(kube.path("tls.crt"), kube.path("tls.key"))).unwrap()
        })
        .collect();
    let measure = |secs: u64| {
        let (watch, workers, wall) = (
            thread_cpu("certstore-watch"),
            thread_cpu("certstore-reload"),
            Instant::now(),
        );
        std::thread::sleep(Duration::from_secs(secs));
        let wall = wall.elapsed().as_secs_f64();
        (
            (thread_cpu("certstore-watch") - watch).as_secs_f64() / wall,
            (thread_cpu("certstore-reload") - workers).as_secs_f64() / wall,
        )
    };
    let (watch, workers) = measure(secs);
    println!(
        "{stores} idle stores, default re-read interval, {secs} s: watch thread {:.3}% of one \
         core (target < 1%), reload workers {:.3}%",
        watch * 100.0,
        workers * 100.0
    );
    let mut o = Options::new(dirs[0].path("tls.crt"), dirs[0].path("tls.key"));
    o.reread_interval = Some(Duration::from_millis(5));
    let busy = Store::open(o).unwrap();
    let secs = secs.min(10);
    let (watch, workers) = measure(secs);
    println!(
        "  + one store re-reading every 5 ms, {secs} s: watch thread {:.3}% of one core, \
         reload workers {:.3}%",
        watch * 100.0,
        workers * 100.0
    );
    drop(busy);
    drop(opened);
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
    let idle: usize = std::env::var("IDLE_STORES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 10_000 } else { 200 });
    let secs: u64 = std::env::var("IDLE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 65 } else { 1 });
    unchanged_reread(benching);
    idle_cost(idle, secs);
}
