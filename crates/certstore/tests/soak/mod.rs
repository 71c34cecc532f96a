//! Many kubelet rotations against one store, some of them refused, with the process's
//! resources sampled along the way: shared by `benches/soak.rs` (10,000 rotations, reported)
//! and `tests/resources.rs` (300, asserted). Include it next to `common`:
//! `#[path = "../tests/soak/mod.rs"] mod soak;`.
#![allow(dead_code)]

use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant, SystemTime};

use certstore::{Event, Options, Store};

use crate::common::{KubeletDir, Pair, leaf_for_key, leaf_with};

/// What this process holds, from /proc/self.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resources {
    pub rss_kib: u64,
    pub fds: usize,
    pub threads: usize,
}

impl Resources {
    pub fn now() -> Resources {
        let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/self/status");
        // The directory handle read_dir holds is counted too, the same way every time.
        let count = |dir: &str| std::fs::read_dir(dir).expect(dir).count();
        Resources {
            rss_kib,
            fds: count("/proc/self/fd"),
            threads: count("/proc/self/task"),
        }
    }

    /// What the process holds at rest: the fewest descriptors and threads (and least RSS) over
    /// 20 readings 10 ms apart. A reload the engine runs on its own after a publication (a new
    /// directory to watch is read once more) holds the files open for an instant; a leak stays.
    pub fn settled() -> Resources {
        let mut least = Resources::now();
        for _ in 0..19 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let now = Resources::now();
            least = Resources {
                rss_kib: least.rss_kib.min(now.rss_kib),
                fds: least.fds.min(now.fds),
                threads: least.threads.min(now.threads),
            };
        }
        least
    }
}

/// One sample: after how many rotations, and what the process held.
#[derive(Clone, Copy, Debug)]
pub struct Sample {
    pub rotations: usize,
    pub resources: Resources,
}

/// What kind of generation a rotation swapped in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Valid, after a valid one.
    Good,
    /// Valid, right after a refused one.
    Recovery,
    /// The previous leaf with another key.
    MismatchedKey,
    /// A certificate file that is not PEM.
    Garbage,
}

#[derive(Default)]
pub struct Report {
    /// `..data` rename → the new generation published (its snapshot's load time).
    pub publish: Vec<Duration>,
    /// Same, for a good generation right after a refused one.
    pub recovery: Vec<Duration>,
    /// `..data` rename → the refusal reported to a subscriber.
    pub refusal: Vec<Duration>,
    pub samples: Vec<Sample>,
    pub generations: u64,
    pub refused: u64,
}

/// How long one rotation may take to be seen before the run is declared stuck (a bound on the
/// run, not a performance assertion).
const STUCK: Duration = Duration::from_secs(30);

/// Runs `rotations` kubelet rotations against one store; every `bad_every`-th one is refused
/// (alternately a mismatched key and a garbage certificate) and is followed by a good one.
/// Each rotation waits until the store has published it (or reported its refusal) before the
/// next. `sample_every` rotations (and at the start and the end) the resources are sampled,
/// with the store open. `keys` distinct P-256 keys are cycled through (a new leaf each time).
pub fn run(rotations: usize, bad_every: usize, sample_every: usize, keys: usize) -> Report {
    let clocks = Clocks::now();
    let keys: Vec<Pair> = (0..keys.max(2))
        .map(|_| leaf_with(&rcgen::PKCS_ECDSA_P256_SHA256, -3600, 86_400))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let mut kube = KubeletDir::new(tmp.path());
    kube.write_pair(&keys[0]);
    let mut options = Options::new(kube.path("tls.crt"), kube.path("tls.key"));
    // inotify only: every generation must arrive through the watch.
    options.reread_interval = None;
    let store = Store::open(options).expect("the first generation loads");
    let (tx, rx) = channel();
    store.subscribe(move |event| {
        let seen = match event {
            Event::Rotated { snapshot } => Seen::Published(snapshot.loaded_at()),
            Event::ReloadFailed { .. } => Seen::Refused(Instant::now()),
            _ => return,
        };
        let _ = tx.send(seen);
    });

    let mut report = Report::default();
    // The measurements' own memory is made resident before the first sample, so that the RSS
    // samples show the store's growth, not these vectors'.
    for v in [
        &mut report.publish,
        &mut report.recovery,
        &mut report.refusal,
    ] {
        v.resize(rotations, Duration::ZERO);
        v.clear();
    }
    report.samples.reserve(rotations / sample_every.max(1) + 2);
    report.samples.push(Sample {
        rotations: 0,
        resources: Resources::settled(),
    });
    let mut last_good = 0usize;
    let mut previous = Kind::Good;
    for i in 1..=rotations {
        let kind = if bad_every > 0 && i % bad_every == 0 {
            if (i / bad_every) % 2 == 1 {
                Kind::MismatchedKey
            } else {
                Kind::Garbage
            }
        } else if matches!(previous, Kind::MismatchedKey | Kind::Garbage) {
            Kind::Recovery
        } else {
            Kind::Good
        };
        match kind {
            Kind::Good | Kind::Recovery => {
                last_good = (last_good + 1) % keys.len();
                kube.write_pair(&leaf_for_key(&keys[last_good].key));
            }
            Kind::MismatchedKey => {
                let current = String::from_utf8(store.current().cert_pem().to_vec()).unwrap();
                let other = &keys[(last_good + 1) % keys.len()].key;
                kube.write(&[
                    ("tls.crt", current.as_bytes()),
                    ("tls.key", other.as_bytes()),
                ]);
            }
            Kind::Garbage => {
                let key = &keys[last_good].key;
                kube.write(&[
                    ("tls.crt", b"not a certificate\n"),
                    ("tls.key", key.as_bytes()),
                ]);
            }
        }
        let renamed = kube.last_swap.expect("every write swaps ..data");
        match (kind, wait(&rx, i)) {
            (Kind::Good, Seen::Published(at)) => report
                .publish
                .push(clocks.instant_of(at).saturating_duration_since(renamed)),
            (Kind::Recovery, Seen::Published(at)) => report
                .recovery
                .push(clocks.instant_of(at).saturating_duration_since(renamed)),
            (Kind::MismatchedKey | Kind::Garbage, Seen::Refused(at)) => {
                report.refusal.push(at.saturating_duration_since(renamed))
            }
            (kind, seen) => panic!("rotation {i} ({kind:?}): unexpected {seen:?}"),
        }
        previous = kind;
        if i % sample_every == 0 || i == rotations {
            report.samples.push(Sample {
                rotations: i,
                resources: Resources::settled(),
            });
        }
    }
    report.generations = store.generation();
    report.refused = store.status().reloads_failed;
    report
}

#[derive(Debug)]
enum Seen {
    Published(SystemTime),
    Refused(Instant),
}

fn wait(rx: &Receiver<Seen>, rotation: usize) -> Seen {
    rx.recv_timeout(STUCK)
        .unwrap_or_else(|_| panic!("rotation {rotation} was not seen within {STUCK:?}"))
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

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}
