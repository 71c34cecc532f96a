//! Rotation latency: from the kubelet's `..data` rename to the subscriber callback, over
//! ROTATIONS swaps, for ECDSA P-256 and RSA-2048, next to the floor measured in the same run:
//! a bare inotify watch on a directory plus one read of the files and
//! `CertifiedKey::from_der` — the least any watcher must do. Prints median, p99 and the ratio.
//!
//! `cargo bench -p certstore --bench rotation` (ROTATIONS=N to change the count).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

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

/// Store: rename → callback.
fn store_latencies(pairs: &[Pair; 2], rotations: usize) -> Vec<Duration> {
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&pairs[0]);
    let mut options = Options::new(kube.path("tls.crt"), kube.path("tls.key"));
    options.reread_interval = None;
    let store = Store::open(options).unwrap();
    let (tx, rx) = channel();
    store.subscribe(move |event| {
        if let Event::Rotated { .. } = event {
            let _ = tx.send(Instant::now());
        }
    });
    swap_and_time(&mut kube, pairs, rotations, &rx)
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

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run a short pass.
    let benching = std::env::args().any(|a| a == "--bench");
    let rotations: usize = std::env::var("ROTATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { 250 } else { 5 });
    println!(
        "rotation latency, kubelet ..data rename -> subscriber callback, {rotations} rotations"
    );
    println!(
        "{:<10} {:>12} {:>12} {:>12} {:>12} {:>10}",
        "key", "store p50", "store p99", "floor p50", "floor p99", "p50 ratio"
    );
    for (name, alg) in [
        ("P-256", &rcgen::PKCS_ECDSA_P256_SHA256),
        ("RSA-2048", &rcgen::PKCS_RSA_SHA256),
    ] {
        let pairs = [leaf_with(alg, -60, 86_400), leaf_with(alg, -60, 86_400)];
        // Interleave so both see the same machine load.
        let mut store = Vec::new();
        let mut floor = Vec::new();
        for _ in 0..5 {
            store.extend(store_latencies(&pairs, rotations.div_ceil(5)));
            floor.extend(floor_latencies(&pairs, rotations.div_ceil(5)));
        }
        store.sort();
        floor.sort();
        let (s50, s99) = (percentile(&store, 0.5), percentile(&store, 0.99));
        let (f50, f99) = (percentile(&floor, 0.5), percentile(&floor, 0.99));
        println!(
            "{:<10} {:>9.3} ms {:>9.3} ms {:>9.3} ms {:>9.3} ms {:>9.2}x",
            name,
            ms(s50),
            ms(s99),
            ms(f50),
            ms(f99),
            s50.as_secs_f64() / f50.as_secs_f64()
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
