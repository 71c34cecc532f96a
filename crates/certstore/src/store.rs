//! The store: the current snapshot behind an `ArcSwap`, reloads, status and subscriptions.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use arc_swap::ArcSwap;

use crate::error::Error;
use crate::event::Event;
use crate::notifier::{Notifier, SubscriptionId};
use crate::options::Options;
use crate::reader::read_generation;
use crate::snapshot::Snapshot;
use crate::status::Status;
use crate::time::unix_now;
use crate::validator::validate;
use crate::watcher::Watcher;

/// What a successful reload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The files hold the generation already served; nothing was published.
    Unchanged,
    /// A new generation was published.
    Rotated { generation: u64 },
}

/// What asked for a reload; decides whether an identical refused generation is reported again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// An inotify event. Bursts of events for the same bad files are reported once.
    Watch,
    /// The re-read timer or an explicit call: always reported.
    Timer,
    Explicit,
}

pub(crate) struct Inner {
    pub(crate) options: Options,
    current: ArcSwap<Snapshot>,
    generation: Arc<AtomicU64>,
    /// Serializes reloads; holds what the last refused attempt looked like.
    reload_lock: Mutex<LastRefusal>,
    status: Mutex<Status>,
    pub(crate) notifier: Notifier,
}

#[derive(Default)]
struct LastRefusal {
    content_hash: Option<[u8; 32]>,
    message: Option<String>,
}

/// Serves the last good generation of a certificate, its key and an optional CA bundle, and
/// replaces it when the files change and the new generation validates.
///
/// Reading the current generation ([`Store::current`], [`Store::generation`]) never touches
/// the disk and never blocks on a reload.
pub struct Store {
    inner: Arc<Inner>,
    watcher: Mutex<Option<Watcher>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Store {
    /// Loads and validates the files, then starts watching them (per `options`).
    ///
    /// Fails when the initial generation is invalid (after the retry backoff) or when the
    /// watcher cannot be set up; the error names the file and the reason.
    pub fn open(options: Options) -> Result<Store, Error> {
        options.check()?;
        let snapshot = match attempt_with_backoff(&options, 1, None, None) {
            Ok(Attempt::Valid(snapshot)) => *snapshot,
            Ok(Attempt::Unchanged | Attempt::RefusedAgain) => {
                return Err(Error::Internal("no generation read at start-up".into()));
            }
            Err((error, _)) => return Err(error),
        };
        let notifier = Notifier::start()
            .map_err(|e| Error::Internal(format!("cannot start the notifier thread: {e}")))?;
        let now = SystemTime::now();
        let status = Status {
            generation: 1,
            reloads_ok: 1,
            last_success: Some(now),
            not_after: snapshot.not_after,
            ..Status::default()
        };
        let inner = Arc::new(Inner {
            options,
            current: ArcSwap::from_pointee(snapshot),
            generation: Arc::new(AtomicU64::new(1)),
            reload_lock: Mutex::new(LastRefusal::default()),
            status: Mutex::new(status),
            notifier,
        });
        let watcher = match Watcher::start(Arc::clone(&inner)) {
            Ok(w) => w,
            Err(e) => {
                inner.notifier.shutdown();
                return Err(e);
            }
        };
        Ok(Store {
            inner,
            watcher: Mutex::new(watcher),
        })
    }

    /// The generation served now. Cheap: one shared reference count increment.
    pub fn current(&self) -> Arc<Snapshot> {
        self.inner.current.load_full()
    }

    /// The number of the generation served now. Cheaper still: one atomic load.
    pub fn generation(&self) -> u64 {
        self.inner.generation.load(Ordering::Acquire)
    }

    /// The counter behind [`Store::generation`], shared: it stays readable after the store is
    /// dropped. For foreign callers that read it without a function call (Go's handshake path).
    pub fn generation_counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.inner.generation)
    }

    /// Reads the files now and publishes them if they changed and validate (e.g. on SIGHUP).
    /// Runs in the caller's thread, after any reload already running.
    pub fn reload(&self) -> Result<ReloadOutcome, Arc<Error>> {
        self.inner.reload(Trigger::Explicit)
    }

    /// Calls `callback` on the notifier thread for every event from now on.
    pub fn subscribe(&self, callback: impl Fn(&Event) + Send + Sync + 'static) -> SubscriptionId {
        self.inner.notifier.subscribe(Arc::new(callback))
    }

    /// Ends a subscription. When this returns the callback is not running and will not run
    /// again, unless this is called from inside that callback. `false` if `id` was unknown.
    pub fn unsubscribe(&self, id: SubscriptionId) -> bool {
        self.inner.notifier.unsubscribe(id)
    }

    /// A copy of the reload counters and last outcome.
    pub fn status(&self) -> Status {
        lock(&self.inner.status).clone()
    }

    /// Whether the calling thread is the notifier thread (i.e. inside a callback).
    pub fn in_callback(&self) -> bool {
        self.inner.notifier.on_notifier_thread()
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("cert_path", &self.inner.options.cert_path)
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Stops the watcher, then delivers the events already queued and stops the notifier.
    /// The store stays usable for reads (`current`, `generation`, `status`) — callbacks still
    /// being delivered may call them — but nothing reloads any more. Idempotent; dropping the
    /// store does it too. From inside a callback, the notifier is left running (it would wait
    /// for itself) and stops when the store is dropped elsewhere.
    pub fn shutdown(&self) {
        if let Some(watcher) = lock(&self.watcher).take() {
            watcher.stop();
        }
        if !self.inner.notifier.on_notifier_thread() {
            self.inner.notifier.shutdown();
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The result of reading and validating with the retry backoff.
enum Attempt {
    /// The files hold the served generation.
    Unchanged,
    /// The files hold a new, valid generation.
    Valid(Box<Snapshot>),
    /// The files hold exactly the bytes refused last time; not retried.
    RefusedAgain,
}

/// Reads and validates, once and then once after each backoff delay until one succeeds.
///
/// `served` is the content hash of the generation served now (none at start-up);
/// `refused` the hash of the bytes refused last time, which are not retried. On failure,
/// returns the last attempt's error and the hash of the bytes it read, if it read any.
fn attempt_with_backoff(
    options: &Options,
    generation: u64,
    served: Option<[u8; 32]>,
    refused: Option<[u8; 32]>,
) -> Result<Attempt, (Error, Option<[u8; 32]>)> {
    let mut delays = options.retry_backoff.iter();
    loop {
        let error = match read_generation(options) {
            Ok(raw) if Some(raw.content_hash) == served => return Ok(Attempt::Unchanged),
            Ok(raw) if Some(raw.content_hash) == refused => return Ok(Attempt::RefusedAgain),
            Ok(raw) => {
                let hash = raw.content_hash;
                match validate(raw, options, generation, unix_now()) {
                    Ok(snapshot) => return Ok(Attempt::Valid(Box::new(snapshot))),
                    Err(e) => (e, Some(hash)),
                }
            }
            Err(e) => (e, None),
        };
        match delays.next() {
            Some(delay) => std::thread::sleep(*delay),
            None => return Err(error),
        }
    }
}

impl Inner {
    pub(crate) fn reload(&self, trigger: Trigger) -> Result<ReloadOutcome, Arc<Error>> {
        match catch_unwind(AssertUnwindSafe(|| self.reload_unguarded(trigger))) {
            Ok(result) => result,
            Err(_) => {
                let error = Arc::new(Error::Internal("panic during reload".into()));
                self.record_failure(Arc::clone(&error));
                Err(error)
            }
        }
    }

    fn reload_unguarded(&self, trigger: Trigger) -> Result<ReloadOutcome, Arc<Error>> {
        let mut last_refusal = lock(&self.reload_lock);
        let served_hash = self.current.load().content_hash;
        let next_generation = self.generation.load(Ordering::Acquire) + 1;
        // Only inotify bursts are deduplicated; a timer or explicit reload re-validates, so a
        // not-yet-valid leaf is taken once its notBefore has passed.
        let skip = match trigger {
            Trigger::Watch => last_refusal.content_hash,
            Trigger::Timer | Trigger::Explicit => None,
        };
        match attempt_with_backoff(&self.options, next_generation, Some(served_hash), skip) {
            Ok(Attempt::Unchanged) => {
                *last_refusal = LastRefusal::default();
                lock(&self.status).last_error = None;
                Ok(ReloadOutcome::Unchanged)
            }
            Ok(Attempt::RefusedAgain) => Err(lock(&self.status)
                .last_error
                .clone()
                .unwrap_or_else(|| Arc::new(Error::Internal("refused again".into())))),
            Ok(Attempt::Valid(snapshot)) => {
                *last_refusal = LastRefusal::default();
                self.publish(Arc::from(snapshot));
                Ok(ReloadOutcome::Rotated {
                    generation: next_generation,
                })
            }
            Err((error, hash)) => {
                let message = error.to_string();
                // A missing file has no hash: the same message from the same burst is a repeat.
                let repeat = trigger == Trigger::Watch
                    && hash.is_none()
                    && last_refusal.message.as_deref() == Some(message.as_str());
                *last_refusal = LastRefusal {
                    content_hash: hash,
                    message: Some(message),
                };
                let error = Arc::new(error);
                if !repeat {
                    self.record_failure(Arc::clone(&error));
                }
                Err(error)
            }
        }
    }

    fn publish(&self, snapshot: Arc<Snapshot>) {
        let generation = snapshot.generation;
        // Snapshot first, counter second: whoever sees the new counter finds the new snapshot.
        self.current.store(Arc::clone(&snapshot));
        self.generation.store(generation, Ordering::Release);
        {
            let mut status = lock(&self.status);
            status.generation = generation;
            status.reloads_ok += 1;
            status.last_success = Some(SystemTime::now());
            status.last_error = None;
            status.not_after = snapshot.not_after;
        }
        tracing::info!(
            generation,
            serial = snapshot.serial_hex.as_str(),
            not_after = %crate::time::format_unix(snapshot.not_after),
            "certstore: new certificate generation published"
        );
        self.notifier.publish(Event::Rotated { snapshot });
    }

    /// The notBefore (unix seconds) of the leaf refused by the latest reload for not being
    /// valid yet, if that is why it was refused: the watcher reloads again at that instant.
    pub(crate) fn refused_until(&self) -> Option<i64> {
        match lock(&self.status).last_error.as_deref() {
            Some(Error::NotYetValid { not_before, .. }) => Some(*not_before),
            _ => None,
        }
    }

    fn record_failure(&self, error: Arc<Error>) {
        let served_generation = self.generation.load(Ordering::Acquire);
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
        self.notifier.publish(Event::ReloadFailed {
            error,
            served_generation,
        });
    }
}
