//! The store: the one current snapshot behind an `ArcSwap`, reloads, status and subscriptions.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;

use crate::engine::{self, Engine, Reloaded, Schedule, Trigger, WatchChange, Watched};
use crate::error::{Error, Reason};
use crate::event::Event;
use crate::notifier::{Notifier, StoreId, SubscriptionId};
use crate::options::Options;
use crate::reader::{RawFiles, read_generation};
use crate::snapshot::Snapshot;
use crate::status::{DiskState, Status};
use crate::time::unix_now;
use crate::validator::{LeafFacts, Refusal, validate};

/// What a successful reload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// The files hold the generation already served; nothing was published.
    Unchanged,
    /// A new generation was published.
    Rotated { generation: u64 },
}

/// Slow retries of a file that cannot be read (missing, EMFILE, EIO, EACCES) after the
/// failure was reported: 1 s, doubling up to this.
const SLOW_RETRY_MAX: Duration = Duration::from_secs(30);

#[derive(Default)]
struct ReloadState {
    /// Backoff step of the refusal being retried (index into `Options::retry_backoff`).
    retry_step: usize,
    /// Slow-retry step after a reported I/O refusal.
    slow_step: u32,
    /// The message of the refusal reported last; the same refusal is reported once.
    reported: Option<String>,
    /// Content hash of the bytes refused last (inotify bursts over them are not re-validated).
    refused_hash: Option<[u8; 32]>,
}

/// A store's state shared with the engine's threads.
pub(crate) struct Shared {
    pub(crate) id: StoreId,
    pub(crate) options: Options,
    current: ArcSwap<Snapshot>,
    /// The generation of `current`, published after it, for readers without a call (Go).
    counter: Arc<AtomicU64>,
    reload: Mutex<ReloadState>,
    status: Mutex<Status>,
    notifier: Arc<Notifier>,
    closed: AtomicBool,
}

/// Serves the last good generation of a certificate, its key and an optional CA bundle, and
/// replaces it when the files change and the new generation validates.
///
/// Reading the current generation ([`Store::current`], [`Store::generation`]) never touches
/// the disk and never blocks on a reload. Every store of a process shares one engine (one
/// inotify instance, a fixed set of threads); see the crate documentation.
pub struct Store {
    shared: Arc<Shared>,
    engine: Arc<Engine>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

/// Whether a refusal for `reason` may be a writer still at work, so worth a second look
/// before it is reported. A kubelet-style generation is complete when it appears.
fn transient(reason: Reason, complete: bool) -> bool {
    matches!(reason, Reason::Missing | Reason::Io)
        || (!complete && matches!(reason, Reason::KeyMismatch | Reason::Parse))
}

/// A refused attempt: why, the content hash if the files were read, and whether they came as
/// one complete kubelet-style generation.
struct Failed {
    refusal: Refusal,
    hash: Option<[u8; 32]>,
    complete: bool,
}

/// One read: the files, or why they could not be read.
fn read(options: &Options) -> Result<RawFiles, Box<Failed>> {
    read_generation(options).map_err(|e| {
        Box::new(Failed {
            refusal: Refusal::from(e),
            hash: None,
            complete: false,
        })
    })
}

/// Validation of what [`read`] returned.
fn check(raw: RawFiles, options: &Options) -> Result<Snapshot, Box<Failed>> {
    let (hash, complete) = (raw.content_hash, raw.complete());
    validate(raw, options, unix_now()).map_err(|refusal| {
        Box::new(Failed {
            refusal,
            hash: Some(hash),
            complete,
        })
    })
}

impl Store {
    /// Loads and validates the files, then starts watching them (per `options`).
    ///
    /// Relative paths are made absolute against the working directory now. Fails when the
    /// initial generation is invalid (after the retry backoff, for refusals a writer in
    /// progress could explain) or when the engine cannot start; the error names the file and
    /// the reason. A store whose directories cannot be watched still loads, re-reads on a timer
    /// and says so in [`Status::watch_degraded`].
    pub fn open(options: Options) -> Result<Store, Error> {
        options.check()?;
        let options = options.absolute()?;
        let mut delays = options.retry_backoff.iter();
        let snapshot = loop {
            match read(&options).and_then(|raw| check(raw, &options)) {
                Ok(snapshot) => break snapshot,
                Err(failed) => match delays.next() {
                    Some(delay) if transient(failed.refusal.error.reason(), failed.complete) => {
                        std::thread::sleep(*delay)
                    }
                    _ => return Err(failed.refusal.error),
                },
            }
        };
        let engine = engine::acquire()?;
        let shared = Arc::new(Shared::new(
            NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
            options,
            snapshot,
            Arc::clone(&engine.notifier),
        ));
        engine.register(shared.id, Arc::clone(&shared) as Arc<dyn Watched>);
        Ok(Store { shared, engine })
    }

    /// The generation served now. Cheap: one shared reference count increment.
    pub fn current(&self) -> Arc<Snapshot> {
        self.shared.current.load_full()
    }

    /// The number of the generation served now: the generation of the snapshot
    /// [`Store::current`] returns at this instant, never behind one it returned before.
    pub fn generation(&self) -> u64 {
        self.shared.generation()
    }

    /// A shared counter holding the served generation, for foreign callers that read it
    /// without a function call (Go's handshake path). It is stored just after a new snapshot
    /// is published, so it may trail [`Store::generation`] by that instant, never lead it. It
    /// stays readable after the store is dropped.
    pub fn generation_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.shared.counter)
    }

    /// Reads the files now and publishes them if they changed and validate (e.g. on SIGHUP).
    /// Runs in the caller's thread, after a reload already running for this store; never
    /// sleeps. A refusal is returned and reported to subscribers; if a writer in progress
    /// could explain it, the store also retries on its own.
    pub fn reload(&self) -> Result<ReloadOutcome, Arc<Error>> {
        let (result, schedule) = self.shared.reload(Trigger::Explicit);
        let rotated = matches!(result, Ok(ReloadOutcome::Rotated { .. }));
        let reloaded = Reloaded { schedule, rotated };
        self.engine
            .after_reload(self.shared.id, reloaded, Trigger::Explicit, true);
        result
    }

    /// Calls `callback` on the notifier thread for every event of this store from now on.
    ///
    /// Events arrive in publication order, one at a time, with no library lock held; a slow
    /// callback is handed the latest generation only (an undelivered [`Event::Rotated`] is
    /// replaced by a newer one). Other events wait, up to
    /// [`MAX_QUEUED_PER_STORE`](crate::MAX_QUEUED_PER_STORE); beyond that the oldest is
    /// discarded, counted in [`Status::events_dropped`] and reported by
    /// [`Event::EventsDropped`]. The closure is dropped with no library lock held either, so it
    /// may own anything, another [`Store`] included. A panic in it is caught and logged.
    pub fn subscribe(&self, callback: impl Fn(&Event) + Send + Sync + 'static) -> SubscriptionId {
        self.shared
            .notifier
            .subscribe(self.shared.id, Arc::new(callback))
    }

    /// Ends a subscription of this store. When this returns the callback is not running and
    /// will not run again, unless this is called from inside that callback. `false` if `id` is
    /// not a subscription of this store.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        self.shared.notifier.unsubscribe(self.shared.id, id)
    }

    /// A copy of the reload counters, last outcome and served-vs-disk state.
    pub fn status(&self) -> Status {
        lock(&self.shared.status).clone()
    }

    /// Whether the calling thread is inside a callback of this store.
    pub fn in_callback(&self) -> bool {
        self.shared.notifier.in_callback_of(self.shared.id)
    }

    /// Stops watching and reloading, delivers the events already queued (unless called from
    /// inside a callback of this store), and releases the store's share of the engine: when
    /// this is the last store, the engine's threads are joined and its descriptors closed
    /// before this returns. The store stays readable (`current`, `generation`, `status`).
    /// Idempotent; dropping the store does it too.
    pub fn shutdown(&self) {
        {
            // Waits for a reload in progress; later ones see `closed` and do nothing.
            let _reload = lock(&self.shared.reload);
            if self.shared.closed.swap(true, Ordering::SeqCst) {
                return;
            }
        }
        self.engine.unregister(self.shared.id);
        self.shared.notifier.remove_store(self.shared.id);
        engine::release();
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("cert_path", &self.shared.options.cert_path)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn disk_of(snapshot: &Snapshot) -> DiskState {
    DiskState {
        content_hash: Some(snapshot.content_hash),
        serial_hex: Some(snapshot.serial_hex().to_owned()),
        not_after: Some(snapshot.not_after),
        refused: None,
    }
}

impl Shared {
    fn new(
        id: StoreId,
        options: Options,
        mut snapshot: Snapshot,
        notifier: Arc<Notifier>,
    ) -> Shared {
        snapshot.generation = 1;
        let status = Status {
            generation: 1,
            reloads_ok: 1,
            last_success: Some(SystemTime::now()),
            not_after: snapshot.not_after,
            disk: disk_of(&snapshot),
            ..Status::default()
        };
        Shared {
            id,
            options,
            current: ArcSwap::from_pointee(snapshot),
            counter: Arc::new(AtomicU64::new(1)),
            reload: Mutex::new(ReloadState::default()),
            status: Mutex::new(status),
            notifier,
            closed: AtomicBool::new(false),
        }
    }

    fn generation(&self) -> u64 {
        self.current.load().generation
    }

    fn notify(&self, event: Event) {
        let discarded = self.notifier.publish(self.id, event);
        if discarded > 0 {
            lock(&self.status).events_dropped += discarded;
        }
    }

    fn reload(&self, trigger: Trigger) -> (Result<ReloadOutcome, Arc<Error>>, Schedule) {
        match catch_unwind(AssertUnwindSafe(|| self.reload_unguarded(trigger))) {
            Ok(result) => result,
            Err(_) => {
                let error = Arc::new(Error::Internal("panic during reload".into()));
                self.record_failure(Arc::clone(&error));
                (Err(error), Schedule::default())
            }
        }
    }

    fn reload_unguarded(&self, trigger: Trigger) -> (Result<ReloadOutcome, Arc<Error>>, Schedule) {
        let mut state = lock(&self.reload);
        if self.closed.load(Ordering::SeqCst) {
            return (Err(Arc::new(Error::Closed)), Schedule::default());
        }
        let served_hash = self.current.load().content_hash;
        let started = Instant::now();
        // The served bytes again (most re-reads): nothing to validate.
        let attempted = match read(&self.options) {
            Ok(raw) if raw.content_hash == served_hash => None,
            read => Some(read.and_then(|raw| check(raw, &self.options))),
        };
        lock(&self.status).last_reload_duration = started.elapsed();
        let Some(attempted) = attempted else {
            return self.unchanged(&mut state);
        };
        match attempted {
            Ok(snapshot) => {
                *state = ReloadState::default();
                let generation = self.publish(snapshot);
                (
                    Ok(ReloadOutcome::Rotated { generation }),
                    Schedule::default(),
                )
            }
            Err(failed)
                if trigger == Trigger::Watch
                    && failed.hash.is_some()
                    && state.refused_hash == failed.hash =>
            {
                // An inotify burst over bytes refused already: nothing new to say.
                let error = lock(&self.status)
                    .last_error
                    .clone()
                    .unwrap_or_else(|| Arc::new(Error::Internal("refused again".into())));
                let keep = Schedule {
                    retry_at: None,
                    keep_retry: true,
                };
                (Err(error), keep)
            }
            Err(failed) => {
                let Failed {
                    refusal,
                    hash,
                    complete,
                } = *failed;
                self.refused(&mut state, trigger, refusal, hash, complete)
            }
        }
    }

    /// The disk holds the served generation (again).
    fn unchanged(&self, state: &mut ReloadState) -> (Result<ReloadOutcome, Arc<Error>>, Schedule) {
        *state = ReloadState::default();
        let current = self.current.load();
        let mut status = lock(&self.status);
        status.last_error = None;
        status.disk = disk_of(&current);
        status.disk_differs_since = None;
        (Ok(ReloadOutcome::Unchanged), Schedule::default())
    }

    fn refused(
        &self,
        state: &mut ReloadState,
        trigger: Trigger,
        refusal: Refusal,
        hash: Option<[u8; 32]>,
        complete: bool,
    ) -> (Result<ReloadOutcome, Arc<Error>>, Schedule) {
        let Refusal { error, leaf } = refusal;
        let reason = error.reason();
        self.record_disk(hash, leaf.as_ref(), reason);
        let error = Arc::new(error);
        let mut schedule = Schedule::default();
        if transient(reason, complete)
            && trigger != Trigger::Explicit
            && let Some(delay) = self.options.retry_backoff.get(state.retry_step)
        {
            // A writer may be half-way: look again soon (or at the next event) before saying
            // anything. Nothing sleeps meanwhile.
            // Status keeps its last reported outcome meanwhile (only `disk` says the files
            // differ): a half-written rotation does not flap a health check.
            state.retry_step += 1;
            state.refused_hash = None;
            schedule.retry_at = Instant::now().checked_add(*delay);
            return (Err(error), schedule);
        }
        state.retry_step = 0;
        state.refused_hash = hash;
        let message = error.to_string();
        let repeat = state.reported.as_deref() == Some(message.as_str());
        if repeat && trigger != Trigger::Explicit {
            lock(&self.status).last_error = Some(Arc::clone(&error));
        } else {
            state.reported = Some(message);
            self.record_failure(Arc::clone(&error));
        }
        if matches!(reason, Reason::Missing | Reason::Io) {
            let delay = Duration::from_secs(1 << state.slow_step.min(5)).min(SLOW_RETRY_MAX);
            state.slow_step += 1;
            schedule.retry_at = Instant::now().checked_add(delay);
        } else if let Error::NotYetValid { not_before, .. } = *error {
            // Taken when its notBefore has passed, even with the re-read timer off.
            let wait = Duration::from_secs((not_before - unix_now() + 1).max(0) as u64);
            schedule.retry_at = Instant::now().checked_add(wait);
        }
        (Err(error), schedule)
    }

    fn record_disk(&self, hash: Option<[u8; 32]>, leaf: Option<&LeafFacts>, reason: Reason) {
        let mut status = lock(&self.status);
        status.disk = DiskState {
            content_hash: hash,
            serial_hex: leaf.map(|l| l.serial_hex.clone()),
            not_after: leaf.map(|l| l.not_after),
            refused: Some(reason),
        };
        status
            .disk_differs_since
            .get_or_insert_with(SystemTime::now);
    }

    fn publish(&self, mut snapshot: Snapshot) -> u64 {
        let generation = self.current.load().generation + 1;
        snapshot.generation = generation;
        snapshot.loaded_at = SystemTime::now();
        let snapshot = Arc::new(snapshot);
        {
            // The swap happens under the status lock, so a status read after a caller saw the
            // new generation (in a snapshot or the counter) is that generation's status.
            // Snapshot first, counter second: whoever sees the new counter finds the new
            // snapshot.
            let mut status = lock(&self.status);
            self.current.store(Arc::clone(&snapshot));
            self.counter.store(generation, Ordering::Release);
            status.generation = generation;
            status.reloads_ok += 1;
            status.last_success = Some(SystemTime::now());
            status.last_error = None;
            status.not_after = snapshot.not_after;
            status.disk = disk_of(&snapshot);
            status.disk_differs_since = None;
        }
        tracing::info!(
            generation,
            serial = snapshot.serial_hex(),
            not_after = %crate::time::format_unix(snapshot.not_after),
            "certstore: new certificate generation published"
        );
        self.notify(Event::Rotated { snapshot });
        generation
    }

    fn record_failure(&self, error: Arc<Error>) {
        let served_generation = self.generation();
        {
            let mut status = lock(&self.status);
            status.reloads_failed += 1;
            status.last_failure = Some(SystemTime::now());
            status.last_error = Some(Arc::clone(&error));
        }
        tracing::warn!(
            generation = served_generation,
            error = %error,
            "certstore: reload refused; still serving the last good generation"
        );
        self.notify(Event::ReloadFailed {
            error,
            served_generation,
        });
    }
}

impl Watched for Shared {
    fn paths(&self) -> [Option<&std::path::Path>; 3] {
        let o = &self.options;
        [
            Some(o.cert_path.as_path()),
            Some(o.key_path.as_path()),
            o.ca_path.as_deref(),
        ]
    }

    fn watches(&self) -> bool {
        self.options.watch
    }

    fn reread_interval(&self) -> Option<Duration> {
        self.options.reread_interval
    }

    fn reload(&self, trigger: Trigger) -> Reloaded {
        let (result, schedule) = Shared::reload(self, trigger);
        let rotated = matches!(result, Ok(ReloadOutcome::Rotated { .. }));
        Reloaded { schedule, rotated }
    }

    fn watch_changed(&self, change: WatchChange) {
        let served_generation = self.generation();
        let event = {
            let mut status = lock(&self.status);
            match change {
                WatchChange::Degraded(error) => {
                    status.watch_degraded = Some(Arc::clone(&error));
                    Event::WatchDegraded {
                        error,
                        served_generation,
                    }
                }
                WatchChange::Restored => {
                    status.watch_degraded = None;
                    Event::WatchRestored { served_generation }
                }
                WatchChange::Repaired(path) => {
                    status.watch_repairs += 1;
                    Event::WatchRepaired {
                        path,
                        served_generation,
                    }
                }
            }
        };
        self.notify(event);
    }
}
