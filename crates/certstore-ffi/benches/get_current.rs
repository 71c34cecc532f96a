//! `certstore_get_current` + `certstore_snapshot_free` on an unchanged store, from 1 and 2
//! threads at once (ns per pair of calls, per thread).
//!
//! `cargo bench -p certstore-ffi --bench get_current`

use std::ffi::CString;
use std::time::{Duration, Instant};

use certstore::{
    certstore_free, certstore_get_current, certstore_load, certstore_options,
    certstore_options_init, certstore_snapshot_free, certstore_store,
};
use criterion::{Criterion, criterion_group, criterion_main};

struct Shared(*mut certstore_store);
// SAFETY: certstore_store is documented as safe to use from any thread.
unsafe impl Send for Shared {}
// SAFETY: as above; only shared access is used across threads.
unsafe impl Sync for Shared {}

fn load() -> (tempfile::TempDir, Shared) {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.path().join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(dir.path().join("tls.key"), key.serialize_pem()).unwrap();
    let cert_path = CString::new(dir.path().join("tls.crt").to_str().unwrap()).unwrap();
    let key_path = CString::new(dir.path().join("tls.key").to_str().unwrap()).unwrap();
    let mut options = std::mem::MaybeUninit::<certstore_options>::uninit();
    let mut store = std::ptr::null_mut();
    // SAFETY: options_init fills the whole struct; the paths outlive certstore_load, which
    // copies them; `store` is a valid out-pointer.
    unsafe {
        certstore_options_init(options.as_mut_ptr(), size_of::<certstore_options>());
        let mut options = options.assume_init();
        options.cert_path = cert_path.as_ptr();
        options.key_path = key_path.as_ptr();
        let rc = certstore_load(&options, &mut store, std::ptr::null_mut());
        assert_eq!(rc as i32, 0);
    }
    (dir, Shared(store))
}

fn get_and_free(store: &Shared) {
    let mut snapshot = std::ptr::null_mut();
    // SAFETY: the store is live for the whole benchmark; the snapshot is freed once.
    unsafe {
        certstore_get_current(store.0, &mut snapshot);
        certstore_snapshot_free(std::hint::black_box(snapshot));
    }
}

fn bench(c: &mut Criterion) {
    let (_dir, store) = load();
    let mut group = c.benchmark_group("certstore_get_current+snapshot_free");
    group.bench_function("1 thread", |b| b.iter(|| get_and_free(&store)));
    group.bench_function("2 threads", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..2 {
                    s.spawn(|| {
                        for _ in 0..iters {
                            get_and_free(&store);
                        }
                    });
                }
            });
            // Per call on each thread: both threads ran `iters` calls concurrently.
            start.elapsed()
        })
    });
    group.finish();
    // SAFETY: no other thread uses the store any more.
    unsafe { certstore_free(store.0) };
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! { name = benches; config = config(); targets = bench }
criterion_main!(benches);
