//! Rotation latency from the kubelet's `..data` rename, for ECDSA P-256 and RSA-2048, next to
//! the floor measured in the same run (a bare inotify watch on the directory, through notify,
//! plus one read of the files and `CertifiedKey::from_der` on notify's own thread — the least
//! any watcher must do):
//! - publish: rename → the new generation is visible to readers (`Store::current`, Go's
//!   handshake path), taken from the snapshot's publication time;
//! - callback: rename → a subscriber is called;
//! - recovery: a refused generation (mismatched key) swapped in, and a good one swapped in right
//!   after it: the good one's rename → publish.
//!
//! Prints p50, p99 and the p50 ratio to the floor.
//!
//! `cargo bench -p certstore --bench rotation` (ROTATIONS=N to change the count).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant, SystemTime};

use certstore::{Event, Options, Store};
use common::{KubeletDir, Pair, leaf_with};
use notify::{RecursiveMode, Watcher};
use rustls::crypto::aws_lc_rs::default_provider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Lets the kubelet's old-directory cleanup and its events settle between two swaps.
const SETTLE: Duration = Duration::from_millis(15);

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Maps a `SystemTime` taken in this process onto the `Instant` clock.
struct Clocks {
    instant: Instant,
    system: SystemTime,
}

impl Clocks {
    fn now() -> Clocks {
        Clocks {
            instant: Instant::now(),
            system: SystemTime::now(),
        }
    }
    fn instant_of(&self, t: SystemTime) -> Instant {
        match t.duration_since(self.system) {
            Ok(after) => self.instant + after,
            Err(e) => self.instant - e.duration(),
        }
    }
}

struct Measured {
    publish: Vec<Duration>,
    callback: Vec<Duration>,
    recovery: Vec<Duration>,
}

fn store_latencies(pairs: &[Pair; 2], bad: &Pair, rotations: usize, out: &mut Measured) {
    let clocks = Clocks::now();
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&pairs[0]);
    let mut options = Options::new(kube.path("tls.crt"), kube.path("tls.key"));
    options.reread_interval = None;
    let store = Store::open(options).unwrap();
    let (tx, rx) = channel();
    store.subscribe(move |event| {
        if let Event::Rotated { snapshot } = event {
            let _ = tx.send((Instant::now(), snapshot.loaded_at()));
        }
    });
    for i in 0..rotations {
        let recovering = i % 4 == 3;
        if recovering {
            // A refused generation first; the good one lands right after it.
            kube.write_pair(bad);
        }
        kube.write_pair(&pairs[(i + 1) % 2]);
        let renamed = kube.last_swap.expect("write_pair swaps ..data");
        let (called, published) = rx
            .recv_timeout(Duration::from_secs(5))
            .expect("the swap was observed");
        let publish = clocks
            .instant_of(published)
            .saturating_duration_since(renamed);
        if recovering {
            out.recovery.push(publish);
        } else {
            out.publish.push(publish);
            out.callback.push(called.saturating_duration_since(renamed));
        }
        std::thread::sleep(SETTLE);
        while rx.try_recv().is_ok() {}
    }
}

/// Floor: bare inotify on the directory, then read + parse + CertifiedKey::from_der.
fn floor_latencies(pairs: &[Pair; 2], rotations: usize) -> Vec<Duration> {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&pairs[0]);
    let (cert_path, key_path) = (kube.path("tls.crt"), kube.path("tls.key"));
    let provider = default_provider();
    let (tx, rx) = channel();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else { return };
        if event.paths.iter().any(|p| p.ends_with("..data")) && !event.kind.is_access() {
            let cert = std::fs::read(&cert_path).unwrap();
            let key = std::fs::read(&key_path).unwrap();
            let chain: Vec<_> = CertificateDer::pem_slice_iter(&cert)
                .collect::<Result<_, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(&key).unwrap();
            let ck = CertifiedKey::from_der(chain, key, &provider).unwrap();
            std::hint::black_box(ck);
            let _ = tx.send(Instant::now());
        }
    })
    .unwrap();
    watcher
        .watch(tmp.path(), RecursiveMode::NonRecursive)
        .unwrap();
    swap_and_time(&mut kube, pairs, rotations, &rx)
}

/// The work of one reload without any thread hand-off: the store's read + validation
/// (`certstore::check`) next to the floor's read + `CertifiedKey::from_der`, p50 of `n` runs.
fn in_thread(pair: &Pair, n: usize) -> (Duration, Duration) {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(pair);
    let options = Options::new(kube.path("tls.crt"), kube.path("tls.key"));
    let provider = default_provider();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (mut store, mut floor) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        std::hint::black_box(certstore::check(&options, now).unwrap());
        store.push(t.elapsed());
        let t = Instant::now();
        let cert = std::fs::read(kube.path("tls.crt")).unwrap();
        let key = std::fs::read(kube.path("tls.key")).unwrap();
        let chain: Vec<_> = CertificateDer::pem_slice_iter(&cert)
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(&key).unwrap();
        std::hint::black_box(CertifiedKey::from_der(chain, key, &provider).unwrap());
        floor.push(t.elapsed());
    }
    store.sort();
    floor.sort();
    (percentile(&store, 0.5), percentile(&floor, 0.5))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run a short pass.
    let benching = std::env::args().any(|a| a == "--bench");
    let rotations: usize = std::env::var("ROTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 400 } else { 8 });
    println!("rotation latency from the kubelet ..data rename, {rotations} rotations per key");
    println!(
        "{:<9} {:>17} {:>17} {:>17} {:>17} {:>21}",
        "key",
        "publish p50/p99",
        "callback p50/p99",
        "recovery p50/p99",
        "floor p50/p99",
        "p50 ratio pub/cb/rec"
    );
    for (name, alg) in [
        ("P-256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("RSA-2048", &rcgen::PKCS_RSA_SHA256),
    ] {
        let pairs = [leaf_with(alg, -60, 86_400), leaf_with(alg, -60, 86_400)];
        let other = leaf_with(alg, -60, 86_400);
        let bad = Pair {
            cert: pairs[0].cert.clone(),
            key: other.key,
            serial_hex: pairs[0].serial_hex.clone(),
        };
        let mut m = Measured {
            publish: Vec::new(),
            callback: Vec::new(),
            recovery: Vec::new(),
        };
        let mut floor = Vec::new();
        // Interleave so both see the same machine load.
        for _ in 0..5 {
            store_latencies(&pairs, &bad, rotations.div_ceil(5), &mut m);
            floor.extend(floor_latencies(&pairs, rotations.div_ceil(5)));
        }
        for v in [&mut m.publish, &mut m.callback, &mut m.recovery, &mut floor] {
            v.sort();
        }
        let f50 = percentile(&floor, 0.5);
        let cell = |v: &[Duration]| {
            format!(
                "{:.3}/{:.3} ms",
                ms(percentile(v, 0.5)),
                ms(percentile(v, 0.99))
            )
        };
        let ratio = |v: &[Duration]| percentile(v, 0.5).as_secs_f64() / f50.as_secs_f64();
        let (work, floor_work) = in_thread(&pairs[0], rotations.max(20));
        println!(
            "{:<9} one reload's work in one thread (no hand-off): store {:.3} ms, floor {:.3} ms",
            name,
            ms(work),
            ms(floor_work)
        );
        println!(
            "{:<9} {:>17} {:>17} {:>17} {:>17} {:>9.2}/{:.2}/{:.2}x",
            name,
            cell(&m.publish),
            cell(&m.callback),
            cell(&m.recovery),
            cell(&floor),
            ratio(&m.publish),
            ratio(&m.callback),
            ratio(&m.recovery),
        );
    }
}

/// Swaps `..data` `rotations` times, alternating the pairs, and returns for each swap the time
/// from the `..data` rename to the instant the observer sent on `seen`.
fn swap_and_time(
    kube: &mut KubeletDir,
    pairs: &[Pair; 2],
    rotations: usize,
    seen: &Receiver<Instant>,
) -> Vec<Duration> {
    let mut out = Vec::with_capacity(rotations);
    for i in 0..rotations {
        kube.write_pair(&pairs[(i + 1) % 2]);
        let at = seen
            .recv_timeout(Duration::from_secs(5))
            .expect("the swap was observed");
        let renamed = kube.last_swap.expect("write_pair swaps ..data");
        out.push(at.saturating_duration_since(renamed));
        std::thread::sleep(SETTLE);
        while seen.try_recv().is_ok() {}
    }
    out
}
