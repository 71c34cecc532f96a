//! One engine per process: one inotify instance read by one thread, a registry of watched
//! directories shared by every store, a small fixed pool of reload workers and one notifier.
//!
//! A store costs its snapshot and a registry entry, never a thread or a descriptor: threads
//! and descriptors are per process, inotify watches per distinct directory. The engine starts
//! with the first store and stops — threads joined, descriptors closed — when the last store
//! is shut down, before that shutdown returns.
//!
//! Flow: the watch thread maps each inotify event to the stores that watch that name, and hands
//! them to the workers (a store already queued or reloading is only marked for another pass, so
//! a burst costs one read and a slow store holds one worker at most). After every reload the
//! store's watch points are recomputed from its symlink chain and its timers (re-read, retry
//! after a transient refusal, a not-yet-valid leaf's notBefore) are set in one heap; the watch
//! thread sleeps until the next timer or event.
//!
//! Never silently stale: a watch can die without an event (an ancestor directory replaced, the
//! kernel's queue overflowing). Every reload checks that each watched directory is the one
//! watched (device + inode recorded when the watch was added) and re-adds it if not, reported
//! as a repair to every store that used it unless the old directory's deletion event comes
//! within [`DEAD_WATCH_GRACE`]; an overflow re-adds every watch; a newly
//! registered name is read once more. The re-read timer audits the rest: a generation it finds
//! that no event announced rebuilds the store's watches and is reported as a repair.

mod paths;
#[allow(unsafe_code)] // the system calls; every block carries its SAFETY comment
mod sys;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::notifier::{Notifier, StoreId};

pub(crate) use paths::WatchPoint;

/// What asked for a reload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Trigger {
    /// An inotify event. Files identical to the ones refused last are not validated again.
    Watch,
    /// A retry after a refusal a writer in progress could explain, or a read after watches
    /// were added (what changed before the watch existed).
    Retry,
    /// The re-read timer: an audit of the watches when nothing else asked for the reload.
    Timer,
    /// A watch died, or the kernel's event queue overflowed: events may have been lost.
    Rescan,
    /// The first reload after the watches are set up.
    Start,
    /// [`crate::Store::reload`]: validates whatever differs from what is served, always
    /// reports a refusal, never waits.
    Explicit,
}

/// Timers a reload asks the engine for.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Schedule {
    /// Read again at this instant (a retry, a slow retry of an I/O error, a notBefore).
    pub retry_at: Option<Instant>,
    /// Leave the retry timer as it is (the reload learned nothing new).
    pub keep_retry: bool,
}

/// What a reload tells the engine.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Reloaded {
    pub schedule: Schedule,
    /// A new generation was published.
    pub rotated: bool,
}

/// A change in how a store is watched, for the store to record and report.
pub(crate) enum WatchChange {
    /// Some watch point cannot be watched; re-reading on a timer.
    Degraded(Arc<Error>),
    /// Every watch point is watched again.
    Restored,
    /// A watch was found dead (a watched path names another directory), or a re-read found a
    /// generation no event announced; the watches were rebuilt, this directory among them.
    Repaired(PathBuf),
}

/// What the engine needs from a store. The store implements it; the engine knows no more.
pub(crate) trait Watched: Send + Sync {
    /// The configured paths (certificate, key, CA bundle) whose symlink chains are watched.
    fn paths(&self) -> [Option<&Path>; 3];
    /// Whether the store watches its files with inotify at all.
    fn watches(&self) -> bool;
    /// The store's own re-read interval (`None`: off).
    fn reread_interval(&self) -> Option<Duration>;
    /// Reads and, if changed and valid, publishes the files.
    fn reload(&self, trigger: Trigger) -> Reloaded;
    /// Records and reports a change in how the store is watched.
    fn watch_changed(&self, change: WatchChange);
}

/// Reload workers. Two: one store stuck on a hung disk leaves the other working.
const WORKERS: usize = 2;

/// How long after a file is created with `open(O_CREAT)` (seen as IN_CREATE, no IN_CLOSE_WRITE
/// yet) the store reads it anyway: a writer normally closes it sooner, which reads at once.
/// Files linked into place (`link(2)`, several links) are read at once.
const CREATE_SETTLE: Duration = Duration::from_millis(250);

/// The re-read interval while inotify cannot watch a store's files, when the store's own
/// interval is longer or off.
pub const DEGRADED_REREAD_INTERVAL: Duration = Duration::from_secs(10);

/// How long the watch of a directory whose path names another directory now is kept, waiting
/// for the event of its deletion (the kernel may queue it after the path was created again):
/// without one, the watch was dead and the stores that used it are told of the repair.
const DEAD_WATCH_GRACE: Duration = Duration::from_secs(1);

/// How often a missing inotify instance is asked for again.
const INSTANCE_RETRY: Duration = Duration::from_secs(10);

/// Test hook: the number of directories the engine may watch before inotify_add_watch is
/// treated as failing with ENOSPC (the `fs.inotify.max_user_watches` limit).
static WATCH_LIMIT: AtomicUsize = AtomicUsize::new(usize::MAX);

/// Makes the engine behave as if `fs.inotify.max_user_watches` allowed `limit` watched
/// directories in this process (`usize::MAX` restores the real limit). For tests of the
/// timer fallback; takes effect on the next watch added.
#[doc(hidden)]
pub fn simulate_watch_limit(limit: usize) {
    WATCH_LIMIT.store(limit, Ordering::SeqCst);
}

/// Test hook: the state of simulated event loss (see [`simulate_lost_events`]).
static LOST_EVENTS: AtomicU8 = AtomicU8::new(EVENTS_DELIVERED);
const EVENTS_DELIVERED: u8 = 0;
const EVENTS_LOSS_ASKED: u8 = 1;
const EVENTS_LOST: u8 = 2;
const EVENTS_OVERFLOWED: u8 = 3;

/// Makes the engine lose inotify events as when the kernel's queue overflows: once
/// `simulate_lost_events(true)` returns, the watch thread discards what it reads; after
/// `simulate_lost_events(false)` it discards what is still queued and then handles an
/// `IN_Q_OVERFLOW`, as the kernel reports one once it has dropped events. No effect while no
/// store is open (there are no events to lose). For tests.
#[doc(hidden)]
pub fn simulate_lost_events(lose: bool) {
    let state = if lose {
        EVENTS_LOSS_ASKED
    } else {
        EVENTS_OVERFLOWED
    };
    // Under the global lock, so that the engine is not stopped meanwhile (a new one starts
    // with events delivered).
    let global = lock(&GLOBAL);
    let Some(engine) = global.engine.as_ref() else {
        return;
    };
    LOST_EVENTS.store(state, Ordering::SeqCst);
    sys::wake(&engine.wake);
    // The watch thread acknowledges at the start of a step, so no read it began earlier
    // delivers what happens from now on.
    while lose && LOST_EVENTS.load(Ordering::SeqCst) == EVENTS_LOSS_ASKED {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

struct Global {
    engine: Option<Arc<Engine>>,
    stores: usize,
}

static GLOBAL: Mutex<Global> = Mutex::new(Global {
    engine: None,
    stores: 0,
});

/// The process's engine, started if this is the first store. Pair with [`release`].
pub(crate) fn acquire() -> Result<Arc<Engine>, Error> {
    let mut global = lock(&GLOBAL);
    let engine = match &global.engine {
        Some(engine) => Arc::clone(engine),
        None => {
            let engine = Engine::start()?;
            global.engine = Some(Arc::clone(&engine));
            engine
        }
    };
    global.stores += 1;
    Ok(engine)
}

/// Gives back what [`acquire`] took; the last store's release stops the engine.
pub(crate) fn release() {
    let mut global = lock(&GLOBAL);
    global.stores = global.stores.saturating_sub(1);
    if global.stores == 0
        && let Some(engine) = global.engine.take()
    {
        // Stopped under the global lock: a store opened meanwhile waits and starts a new one.
        engine.stop();
    }
}

/// One watched directory and which stores care about which names in it.
struct Dir {
    wd: i32,
    /// Device and inode of the directory when its watch was added: a path that names another
    /// directory now (an ancestor was replaced) has a dead watch, which no event reports.
    identity: (u64, u64),
    names: HashMap<OsString, BTreeSet<StoreId>>,
}

/// Device and inode of the directory at `path` now.
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A store queued for or under reload, and what asked for it.
struct Job {
    id: StoreId,
    store: Arc<dyn Watched>,
    state: Mutex<JobState>,
}

#[derive(Default)]
struct JobState {
    queued: bool,
    running: bool,
    trigger: Option<Trigger>,
    /// Something other than the re-read timer asked for the pending reload.
    announced: bool,
}

impl Job {
    /// Records that a reload is wanted; `true` when the caller must queue the job (it is
    /// neither queued nor running, where the pending trigger is picked up anyway).
    fn mark_pending(&self, trigger: Trigger) -> bool {
        let mut job = lock(&self.state);
        job.trigger = Some(job.trigger.map_or(trigger, |t| t.max(trigger)));
        job.announced |= trigger != Trigger::Timer;
        if job.queued || job.running {
            return false;
        }
        job.queued = true;
        true
    }

    /// Runs the pending reload (on a worker). Pair with [`Job::finish`], also after a panic.
    fn run_pending(&self, engine: &Engine) {
        let (trigger, announced) = {
            let mut job = lock(&self.state);
            job.queued = false;
            job.running = true;
            (job.trigger.take(), std::mem::take(&mut job.announced))
        };
        if let Some(trigger) = trigger {
            let reloaded = self.store.reload(trigger);
            // An event routed while the files were read announced what the read found; so
            // does one still queued in the kernel (a busy watch thread has not read it yet).
            let announced = announced
                || lock(&self.state).announced
                || (trigger == Trigger::Timer && reloaded.rotated && {
                    engine.route_queued_events();
                    lock(&self.state).announced
                });
            engine.after_reload(self.id, reloaded, trigger, announced);
        }
    }

    /// Ends a run; `true` when another reload became pending meanwhile and the job must be
    /// queued again.
    fn finish(&self) -> bool {
        let mut job = lock(&self.state);
        job.running = false;
        if job.trigger.is_some() && !job.queued {
            job.queued = true;
            return true;
        }
        false
    }
}

#[derive(Default)]
struct Timers {
    reread: Option<Instant>,
    retry: Option<Instant>,
    settle: Option<Instant>,
}

struct Entry {
    job: Arc<Job>,
    /// Watch points registered in `dirs`.
    points: BTreeSet<WatchPoint>,
    /// Why some watch point could not be added, while that lasts.
    degraded: Option<Arc<Error>>,
    timers: Timers,
}

impl Entry {
    /// Arms the re-read timer one interval from now (none when re-reading is off).
    fn rearm_reread(&mut self) {
        self.timers.reread = self
            .reread_interval()
            .and_then(|d| Instant::now().checked_add(d));
    }

    fn reread_interval(&self) -> Option<Duration> {
        let own = self.job.store.reread_interval();
        if self.degraded.is_some() {
            Some(own.map_or(DEGRADED_REREAD_INTERVAL, |d| {
                d.min(DEGRADED_REREAD_INTERVAL)
            }))
        } else {
            own
        }
    }
}

/// A watch whose path names another directory now: when it is due unless a deletion event
/// comes first, and the stores that used it, each with the path they watched.
type Suspect = (Instant, Vec<(Arc<Job>, PathBuf)>);

#[derive(Default)]
struct Registry {
    inotify: Option<OwnedFd>,
    /// Why there is no inotify instance, and when it was last asked for.
    inotify_error: Option<(String, Instant)>,
    dirs: HashMap<PathBuf, Dir>,
    /// The paths watched through each descriptor: several when one directory is reachable by
    /// several paths (a symlinked directory, a bind mount), each path keeping its own `Dir`.
    by_wd: HashMap<i32, BTreeSet<PathBuf>>,
    stores: HashMap<StoreId, Entry>,
    /// Every timer set, by due time: a due timer costs a heap pop, not a scan of the stores.
    /// A timer reset or cleared since leaves a stale element, skipped when it pops.
    timers: BinaryHeap<Reverse<(Instant, StoreId)>>,
    /// Stores that shared a dead watch found while registering another store's points: to be
    /// read again (they re-add the watch).
    rescan: Vec<Arc<Job>>,
    /// Changes in how stores are watched (degraded, restored, a dead watch repaired): logged
    /// and reported once the registry lock is released (a tracing subscriber is user code).
    changes: Vec<(Arc<Job>, WatchChange)>,
    /// Watches whose path names another directory now, no longer routed, by descriptor: an
    /// event of their deletion or move clears them; otherwise, when due, they are removed and
    /// reported as repaired to the stores that used them.
    suspects: HashMap<i32, Suspect>,
}

pub(crate) struct Engine {
    registry: Mutex<Registry>,
    /// Held while inotify is read and what was read routed, by the watch thread or by a
    /// worker that must know no event is left unrouted: events are routed in order.
    reading: Mutex<Box<sys::EventBuffer>>,
    wake: OwnedFd,
    jobs: Mutex<VecDeque<Arc<Job>>>,
    jobs_ready: Condvar,
    pub(crate) notifier: Arc<Notifier>,
    stopping: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    fn start() -> Result<Arc<Engine>, Error> {
        // Events lost by a previous engine do not concern this one.
        LOST_EVENTS.store(EVENTS_DELIVERED, Ordering::SeqCst);
        let resource = |what: &str, e: std::io::Error| Error::Resource(format!("{what}: {e}"));
        let wake = sys::eventfd().map_err(|e| resource("cannot create an eventfd", e))?;
        let notifier = Notifier::start()
            .map_err(|e| resource("cannot start the certstore-notify thread", e))?;
        let mut registry = Registry::default();
        match sys::inotify_init() {
            Ok(fd) => registry.inotify = Some(fd),
            Err(e) => registry.inotify_error = Some((instance_error(&e), Instant::now())),
        }
        let engine = Arc::new(Engine {
            registry: Mutex::new(registry),
            reading: Mutex::new(Box::new(sys::EventBuffer([0; 64 * 1024]))),
            wake,
            jobs: Mutex::new(VecDeque::new()),
            jobs_ready: Condvar::new(),
            notifier: Arc::new(notifier),
            stopping: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        let spawn = |name: &str, body: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.to_owned())
                .spawn(body)
                .map_err(|e| resource(&format!("cannot start the {name} thread"), e))
        };
        let mut threads = Vec::new();
        let watch_engine = Arc::clone(&engine);
        let started = spawn(
            "certstore-watch",
            Box::new(move || watch_loop(&watch_engine)),
        )
        .map(|t| threads.push(t))
        .and_then(|()| {
            for _ in 0..WORKERS {
                let worker_engine = Arc::clone(&engine);
                threads.push(spawn(
                    "certstore-reload",
                    Box::new(move || worker_loop(&worker_engine)),
                )?);
            }
            Ok(())
        });
        *lock(&engine.threads) = threads;
        if let Err(e) = started {
            engine.stop();
            return Err(e);
        }
        Ok(engine)
    }

    /// Stops and joins every thread and closes the inotify descriptor.
    fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        sys::wake(&self.wake);
        {
            let _jobs = lock(&self.jobs);
            self.jobs_ready.notify_all();
        }
        let me = std::thread::current().id();
        for thread in lock(&self.threads).drain(..) {
            if thread.thread().id() != me {
                let _ = thread.join();
            }
        }
        self.notifier.shutdown();
        let mut registry = lock(&self.registry);
        registry.dirs.clear();
        registry.by_wd.clear();
        registry.inotify = None;
    }

    /// Adds a store: its watches, its re-read timer, and (when watching) one reload at once,
    /// which covers a rotation between the store's first read and its watches.
    pub(crate) fn register(&self, id: StoreId, store: Arc<dyn Watched>) {
        let watch = store.watches();
        let job = Arc::new(Job {
            id,
            store,
            state: Mutex::new(JobState::default()),
        });
        let mut registry = lock(&self.registry);
        let mut entry = Entry {
            job: Arc::clone(&job),
            points: BTreeSet::new(),
            degraded: None,
            timers: Timers::default(),
        };
        entry.rearm_reread();
        registry.arm(id, entry.timers.reread);
        registry.stores.insert(id, entry);
        if watch {
            registry.update_points(id);
        }
        let changes = std::mem::take(&mut registry.changes);
        let rescan: Vec<_> = registry
            .rescan
            .drain(..)
            .map(|job| (job, Trigger::Rescan))
            .collect();
        drop(registry);
        report_changes(changes);
        self.dispatch_all(rescan);
        if watch {
            self.dispatch(&job, Trigger::Start);
        }
        sys::wake(&self.wake);
    }

    /// Removes a store: no event or timer reaches it afterwards.
    pub(crate) fn unregister(&self, id: StoreId) {
        let mut registry = lock(&self.registry);
        if let Some(entry) = registry.stores.remove(&id) {
            for point in &entry.points {
                registry.forget_point(id, point);
            }
        }
        drop(registry);
        lock(&self.jobs).retain(|job| job.id != id);
    }

    /// Reads what inotify has queued and routes it now, as the watch thread would once it gets
    /// to it: for a worker about to call a generation unannounced.
    fn route_queued_events(&self) {
        let mut buf = lock(&self.reading);
        if LOST_EVENTS.load(Ordering::SeqCst) != EVENTS_DELIVERED {
            return;
        }
        let Some(fd) = lock(&self.registry)
            .inotify
            .as_ref()
            .map(AsRawFd::as_raw_fd)
        else {
            return;
        };
        let events = sys::read_events(fd, &mut buf);
        let due = route_events(self, &events);
        self.dispatch_all(due);
    }

    /// Queues a reload, merging it with one already queued or running.
    fn dispatch(&self, job: &Arc<Job>, trigger: Trigger) {
        if job.mark_pending(trigger) {
            lock(&self.jobs).push_back(Arc::clone(job));
            self.jobs_ready.notify_one();
        }
    }

    fn dispatch_all(&self, due: Vec<(Arc<Job>, Trigger)>) {
        for (job, trigger) in due {
            self.dispatch(&job, trigger);
        }
    }

    /// Applies what a reload of `id` found: the timers it asks for, and the watch points of
    /// the symlink chain as it is now, each checked to be the directory it was. `announced`:
    /// something other than the re-read timer asked for this reload (an event, a retry, an
    /// explicit call); a timer's reload nothing announced is an audit, where a new generation
    /// means a watch missed it.
    pub(crate) fn after_reload(
        &self,
        id: StoreId,
        reloaded: Reloaded,
        trigger: Trigger,
        announced: bool,
    ) {
        let audit = trigger == Trigger::Timer && !announced;
        let mut registry = lock(&self.registry);
        let Some(entry) = registry.stores.get_mut(&id) else {
            return;
        };
        let armed = [entry.timers.retry, entry.timers.reread];
        if !reloaded.schedule.keep_retry {
            entry.timers.retry = reloaded.schedule.retry_at;
        }
        if matches!(trigger, Trigger::Timer | Trigger::Rescan | Trigger::Start)
            || entry.timers.reread.is_none()
        {
            entry.rearm_reread();
        }
        // Only a store inotify should be watching fully can have been let down by it.
        let repair =
            audit && reloaded.rotated && entry.degraded.is_none() && entry.job.store.watches();
        let (timers, job) = (
            [entry.timers.retry, entry.timers.reread],
            Arc::clone(&entry.job),
        );
        let earliest = registry.earliest();
        let suspects = registry.suspects.len();
        // A timer left as it was is in the heap already: pushing it again would only add a
        // stale element per reload.
        for (at, was) in timers.into_iter().zip(armed) {
            if at != was {
                registry.arm(id, at);
            }
        }
        let mut rescan: Vec<(Arc<Job>, Trigger)> = Vec::new();
        let mut update = Update::default();
        if job.store.watches() {
            if repair {
                let (repaired, others) = registry.rebuild(id);
                update = repaired;
                rescan = others;
            } else if (audit || trigger == Trigger::Explicit)
                && !reloaded.rotated
                && registry.intact(id)
            {
                // The files as served and every watched directory still the one watched: a
                // symlink re-pointed since was announced by an event, which recomputes them.
            } else {
                update = registry.update_points(id);
            }
        }
        // The watch thread sleeps until the earliest timer it saw: wake it only if that moved.
        let wake = registry.earliest() != earliest || registry.suspects.len() > suspects;
        rescan.extend(registry.rescan.drain(..).map(|job| (job, Trigger::Rescan)));
        let mut changes = std::mem::take(&mut registry.changes);
        drop(registry);
        if repair {
            let path = update.readded.first().cloned().unwrap_or_default();
            changes.insert(0, (Arc::clone(&job), WatchChange::Repaired(path)));
        }
        report_changes(changes);
        // A name registered only now may have changed before its watch existed: read once
        // more (unchanged files cost a read and a hash compare; the set then stays the same).
        if update.added {
            self.dispatch(&job, Trigger::Retry);
        }
        self.dispatch_all(rescan);
        if wake {
            sys::wake(&self.wake);
        }
    }
}

/// Logs and reports changes in how stores are watched. Outside the registry lock.
fn report_changes(changes: Vec<(Arc<Job>, WatchChange)>) {
    for (job, change) in changes {
        match &change {
            WatchChange::Degraded(error) => {
                tracing::warn!(error = %error, "certstore: watch degraded");
            }
            WatchChange::Restored => tracing::info!("certstore: watch restored"),
            WatchChange::Repaired(dir) => tracing::warn!(
                dir = %dir.display(),
                "certstore: a watch had died without an event (or a re-read found a change no \
                 event announced); watches rebuilt"
            ),
        }
        // Records status and queues an event: no user code runs here.
        job.store.watch_changed(change);
    }
}

/// What registering a store's watch points did.
#[derive(Default)]
struct Update {
    /// Some watch point was registered that was not before.
    added: bool,
    /// Directories whose watch was (re-)added for a dead one, in order.
    readded: Vec<PathBuf>,
}

fn instance_error(e: &std::io::Error) -> String {
    if e.raw_os_error() == Some(libc::EMFILE) {
        format!(
            "cannot create an inotify instance ({e}): the per-user limit \
             fs.inotify.max_user_instances (sysctl) is reached; re-reading on a timer instead"
        )
    } else {
        format!("cannot create an inotify instance ({e}); re-reading on a timer instead")
    }
}

fn watch_error(dir: &std::path::Path, e: &std::io::Error) -> Error {
    let reason = if e.raw_os_error() == Some(libc::ENOSPC) {
        "the inotify watch limit fs.inotify.max_user_watches (sysctl) is reached; \
         re-reading on a timer instead"
            .to_owned()
    } else {
        format!("{e}; re-reading on a timer instead")
    };
    Error::Watch {
        path: dir.to_path_buf(),
        reason,
    }
}

impl Registry {
    /// Recomputes the watch points of store `id` and registers them, after checking that each
    /// watched directory is still the one its path names (a dead watch is replaced).
    /// Reports a change between degraded and restored to the store.
    fn update_points(&mut self, id: StoreId) -> Update {
        let mut update = Update::default();
        let Some(entry) = self.stores.get(&id) else {
            return update;
        };
        let job = Arc::clone(&entry.job);
        let mut wanted = BTreeSet::new();
        paths::watch_points_of(job.store.paths().into_iter().flatten(), &mut wanted);
        let old = entry.points.clone();
        for point in old.difference(&wanted) {
            self.forget_point(id, point);
        }
        let mut checked: Vec<&Path> = Vec::new();
        let mut failure: Option<Arc<Error>> = None;
        let mut registered = BTreeSet::new();
        for point in &wanted {
            let dir = point.0.as_path();
            if !checked.contains(&dir) {
                checked.push(dir);
                if let Some(d) = self.dirs.get(dir)
                    && identity(dir) != Some(d.identity)
                {
                    // Moved away without an event (an ancestor was replaced) or gone.
                    let wd = d.wd;
                    let users = self.drop_dir_keeping_watch(wd);
                    let due = Instant::now() + DEAD_WATCH_GRACE;
                    for user in users {
                        let Some(e) = self.stores.get(&user) else {
                            continue;
                        };
                        // Every store that used the watch was deaf through it, whatever the
                        // reload that found it reads (unless the directory was deleted).
                        let job = Arc::clone(&e.job);
                        let suspect = self.suspects.entry(wd).or_insert((due, Vec::new()));
                        suspect.1.push((Arc::clone(&job), dir.to_path_buf()));
                        if user != id {
                            // They re-add it at their reload.
                            self.rescan.push(job);
                        }
                    }
                    update.readded.push(dir.to_path_buf());
                }
            }
            let already = old.contains(point)
                && self
                    .dirs
                    .get(dir)
                    .is_some_and(|d| d.names.get(&point.1).is_some_and(|ids| ids.contains(&id)));
            if already {
                registered.insert(point.clone());
                continue;
            }
            match self.watch_dir(dir) {
                Ok(()) => {
                    if let Some(d) = self.dirs.get_mut(dir) {
                        d.names.entry(point.1.clone()).or_default().insert(id);
                    }
                    registered.insert(point.clone());
                    update.added = true;
                }
                Err(error) => {
                    failure.get_or_insert(Arc::new(error));
                }
            }
        }
        let Some(entry) = self.stores.get_mut(&id) else {
            return update;
        };
        entry.points = registered;
        let change = match (&entry.degraded, failure) {
            (None, Some(error)) => {
                entry.degraded = Some(Arc::clone(&error));
                Some(WatchChange::Degraded(error))
            }
            (Some(_), None) => {
                entry.degraded = None;
                Some(WatchChange::Restored)
            }
            _ => None,
        };
        if let Some(change) = change {
            entry.rearm_reread();
            let at = entry.timers.reread;
            self.changes.push((job, change));
            self.arm(id, at);
        }
        update
    }

    /// Drops every directory store `id` watches (for every store watching it) and registers
    /// the store's watch points from scratch. Returns what was re-added and the other stores
    /// that shared a dropped directory (to be read again).
    fn rebuild(&mut self, id: StoreId) -> (Update, Vec<(Arc<Job>, Trigger)>) {
        let dirs: BTreeSet<PathBuf> = self
            .stores
            .get(&id)
            .map(|e| e.points.iter().map(|(d, _)| d.clone()).collect())
            .unwrap_or_default();
        let mut others = BTreeSet::new();
        let mut dead = Vec::new();
        for dir in &dirs {
            if let Some(d) = self.dirs.get(dir) {
                let is_dead = identity(dir) != Some(d.identity);
                let wd = d.wd;
                let users = self.drop_dir(wd);
                if is_dead {
                    dead.push(dir.clone());
                    // The audited store reports its own repair; the others shared the dead
                    // watch.
                    for user in users.iter().filter(|user| **user != id) {
                        if let Some(e) = self.stores.get(user) {
                            self.changes
                                .push((Arc::clone(&e.job), WatchChange::Repaired(dir.clone())));
                        }
                    }
                }
                others.extend(users);
            }
        }
        let mut update = self.update_points(id);
        dead.append(&mut update.readded);
        update.readded = dead;
        let watched: Vec<PathBuf> = self
            .stores
            .get(&id)
            .map(|e| e.points.iter().map(|(d, _)| d.clone()).collect())
            .unwrap_or_default();
        for dir in watched {
            if !update.readded.contains(&dir) {
                update.readded.push(dir);
            }
        }
        let rescan = others
            .into_iter()
            .filter(|other| *other != id)
            .filter_map(|other| self.stores.get(&other))
            .map(|e| (Arc::clone(&e.job), Trigger::Rescan))
            .collect();
        (update, rescan)
    }

    /// Removes every watch and registers every store's watch points again: after the kernel's
    /// queue overflowed, any event may be lost, a dead directory's IN_IGNORED included.
    fn rebuild_all(&mut self) {
        if let Some(fd) = self.inotify.as_ref() {
            for d in self.dirs.values() {
                sys::rm_watch(fd, d.wd);
            }
        }
        self.dirs.clear();
        self.by_wd.clear();
        let ids: Vec<StoreId> = self.stores.keys().copied().collect();
        for id in &ids {
            if let Some(entry) = self.stores.get_mut(id) {
                entry.points.clear();
            }
        }
        for id in ids {
            if self.stores.get(&id).is_some_and(|e| e.job.store.watches()) {
                self.update_points(id);
            }
        }
    }

    /// Whether store `id` has every watch it wants and each watched directory is still the one
    /// its watch was added to.
    fn intact(&self, id: StoreId) -> bool {
        let Some(entry) = self.stores.get(&id) else {
            return true;
        };
        if entry.degraded.is_some() {
            return false;
        }
        let mut checked: Vec<&Path> = Vec::new();
        entry.points.iter().all(|(dir, _)| {
            if checked.contains(&dir.as_path()) {
                return true;
            }
            checked.push(dir);
            self.dirs
                .get(dir)
                .is_some_and(|d| identity(dir) == Some(d.identity))
        })
    }

    /// When the first timer is due (perhaps a stale one, never later than the first).
    fn earliest(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes the suspect watches due at `now` (no deletion event came: they were dead) and
    /// queues their repairs.
    fn settle_suspects(&mut self, now: Instant) {
        let due: Vec<i32> = self
            .suspects
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(wd, _)| *wd)
            .collect();
        for wd in due {
            let Some((_, users)) = self.suspects.remove(&wd) else {
                continue;
            };
            if let Some(fd) = self.inotify.as_ref() {
                sys::rm_watch(fd, wd);
            }
            for (job, dir) in users {
                self.changes.push((job, WatchChange::Repaired(dir)));
            }
        }
    }

    /// Notes that a timer of store `id` is due at `at`.
    fn arm(&mut self, id: StoreId, at: Option<Instant>) {
        if let Some(at) = at {
            self.timers.push(Reverse((at, id)));
        }
    }

    /// Makes sure `dir` is watched.
    fn watch_dir(&mut self, dir: &Path) -> Result<(), Error> {
        if self.dirs.contains_key(dir) {
            return Ok(());
        }
        let Some(fd) = self.inotify.as_ref() else {
            let reason = self
                .inotify_error
                .as_ref()
                .map_or_else(|| "no inotify instance".to_owned(), |(m, _)| m.clone());
            return Err(Error::Watch {
                path: dir.to_path_buf(),
                reason,
            });
        };
        if self.by_wd.len() >= WATCH_LIMIT.load(Ordering::SeqCst) {
            return Err(watch_error(
                dir,
                &std::io::Error::from_raw_os_error(libc::ENOSPC),
            ));
        }
        // Taken before the watch is added: should the path change in between, the next check
        // sees a mismatch and adds the watch again, never the other way round.
        let identity = identity(dir)
            .ok_or_else(|| watch_error(dir, &std::io::Error::from_raw_os_error(libc::ENOENT)))?;
        let wd = sys::add_watch(fd, dir).map_err(|e| watch_error(dir, &e))?;
        // Two paths to one directory share its watch descriptor: each path is registered under
        // it, so neither registration undoes the other.
        self.by_wd.entry(wd).or_default().insert(dir.to_path_buf());
        self.dirs.insert(
            dir.to_path_buf(),
            Dir {
                wd,
                identity,
                names: HashMap::new(),
            },
        );
        Ok(())
    }

    fn forget_point(&mut self, id: StoreId, (dir, name): &WatchPoint) {
        let Some(d) = self.dirs.get_mut(dir) else {
            return;
        };
        if let Some(ids) = d.names.get_mut(name) {
            ids.remove(&id);
            if ids.is_empty() {
                d.names.remove(name);
            }
        }
        if d.names.is_empty() {
            let wd = d.wd;
            self.dirs.remove(dir);
            let Some(paths) = self.by_wd.get_mut(&wd) else {
                return;
            };
            paths.remove(dir);
            // Another path to the same directory still needs the watch.
            if paths.is_empty() {
                self.by_wd.remove(&wd);
                if let Some(fd) = self.inotify.as_ref() {
                    sys::rm_watch(fd, wd);
                }
            }
        }
    }

    /// Forgets a directory whose watch died (deleted, moved away): the stores that watched it
    /// re-add what they need after their next reload. Returns those stores.
    fn drop_dir(&mut self, wd: i32) -> Vec<StoreId> {
        if let Some(fd) = self.inotify.as_ref()
            && self.by_wd.contains_key(&wd)
        {
            sys::rm_watch(fd, wd);
        }
        self.drop_dir_keeping_watch(wd)
    }

    /// [`Registry::drop_dir`] but for the inotify watch itself, left in place.
    fn drop_dir_keeping_watch(&mut self, wd: i32) -> Vec<StoreId> {
        let Some(paths) = self.by_wd.remove(&wd) else {
            return Vec::new();
        };
        let mut ids = BTreeSet::new();
        for path in paths {
            let Some(dir) = self.dirs.remove(&path) else {
                continue;
            };
            for (name, stores) in dir.names {
                for id in stores {
                    if let Some(entry) = self.stores.get_mut(&id) {
                        entry.points.remove(&(path.clone(), name.clone()));
                    }
                    ids.insert(id);
                }
            }
        }
        ids.into_iter().collect()
    }
}

fn watch_loop(engine: &Engine) {
    while !engine.stopping.load(Ordering::SeqCst) {
        if catch_unwind(AssertUnwindSafe(|| watch_step(engine))).is_err() {
            tracing::error!("certstore: watch thread panicked; watching on");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Waits for inotify events, a wake-up or the next timer, and dispatches what is due.
fn watch_step(engine: &Engine) {
    let _ = LOST_EVENTS.compare_exchange(
        EVENTS_LOSS_ASKED,
        EVENTS_LOST,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let (inotify_fd, deadline) = {
        let mut registry = lock(&engine.registry);
        retry_instance(&mut registry);
        let earliest = registry.earliest();
        let suspect_at = registry.suspects.values().map(|(at, _)| *at).min();
        let retry_instance_at = registry
            .inotify_error
            .as_ref()
            .map(|(_, at)| *at + INSTANCE_RETRY);
        (
            registry.inotify.as_ref().map(AsRawFd::as_raw_fd),
            [earliest, suspect_at, retry_instance_at]
                .into_iter()
                .flatten()
                .min(),
        )
    };
    let timeout_ms = deadline.map_or(-1, |at| {
        let left = at.saturating_duration_since(Instant::now());
        // Round up: waking a little early would spin until the deadline.
        left.as_micros().div_ceil(1000).min(i32::MAX as u128) as i32
    });
    let wake_fd = engine.wake.as_raw_fd();
    let (woken, events_ready) = sys::poll_readable(wake_fd, inotify_fd, timeout_ms);
    if engine.stopping.load(Ordering::SeqCst) {
        return;
    }
    if woken {
        sys::drain_wake(wake_fd);
    }
    if let Some(fd) = inotify_fd
        && (events_ready || LOST_EVENTS.load(Ordering::SeqCst) == EVENTS_OVERFLOWED)
    {
        let mut buf = lock(&engine.reading);
        let buf = &mut **buf;
        let events = match LOST_EVENTS.load(Ordering::SeqCst) {
            EVENTS_LOST => {
                sys::read_events(fd, buf);
                Vec::new()
            }
            EVENTS_OVERFLOWED => {
                while !sys::read_events(fd, buf).is_empty() {}
                LOST_EVENTS.store(EVENTS_DELIVERED, Ordering::SeqCst);
                vec![sys::RawEvent::overflow()]
            }
            _ => sys::read_events(fd, buf),
        };
        let due = route_events(engine, &events);
        engine.dispatch_all(due);
    }
    let mut registry = lock(&engine.registry);
    let now = Instant::now();
    let due = due_timers(&mut registry, now);
    registry.settle_suspects(now);
    let changes = std::mem::take(&mut registry.changes);
    drop(registry);
    report_changes(changes);
    engine.dispatch_all(due);
}

/// Takes the timers due at `now` off the heap and returns the reloads they ask for.
fn due_timers(registry: &mut Registry, now: Instant) -> Vec<(Arc<Job>, Trigger)> {
    let mut due = Vec::new();
    while let Some(Reverse((at, id))) = registry.timers.peek().copied() {
        if at > now {
            break;
        }
        registry.timers.pop();
        let Some(entry) = registry.stores.get_mut(&id) else {
            continue;
        };
        let t = &mut entry.timers;
        let mut trigger = None;
        if t.reread.is_some_and(|at| at <= now) {
            t.reread = None;
            trigger = Some(Trigger::Timer);
        }
        if t.retry.is_some_and(|at| at <= now) {
            t.retry = None;
            trigger = trigger.max(Some(Trigger::Retry));
        }
        if t.settle.is_some_and(|at| at <= now) {
            t.settle = None;
            trigger = trigger.max(Some(Trigger::Watch));
        }
        if let Some(trigger) = trigger {
            due.push((Arc::clone(&entry.job), trigger));
        }
    }
    due
}

/// Asks again for an inotify instance when there is none and it is time; on success every
/// store re-registers its watch points at its next reload, which is requested now.
fn retry_instance(registry: &mut Registry) {
    let Some((_, at)) = &registry.inotify_error else {
        return;
    };
    if at.elapsed() < INSTANCE_RETRY {
        return;
    }
    match sys::inotify_init() {
        Ok(fd) => {
            registry.inotify = Some(fd);
            registry.inotify_error = None;
            let now = Instant::now();
            let ids: Vec<StoreId> = registry.stores.keys().copied().collect();
            for id in ids {
                if let Some(entry) = registry.stores.get_mut(&id) {
                    entry.timers.retry = Some(now);
                }
                registry.arm(id, Some(now));
            }
        }
        Err(e) => registry.inotify_error = Some((instance_error(&e), Instant::now())),
    }
}

/// The stores an inotify batch concerns, each with the trigger to reload it with.
fn route_events(engine: &Engine, events: &[sys::RawEvent<'_>]) -> Vec<(Arc<Job>, Trigger)> {
    let mut registry = lock(&engine.registry);
    let mut due: HashMap<StoreId, Trigger> = HashMap::new();
    let mut overflowed = false;
    let now = Instant::now();
    for event in events {
        if event.mask & libc::IN_Q_OVERFLOW != 0 {
            // Events were lost, perhaps a directory's death: every watch is added again and
            // every store reads to be sure.
            overflowed = true;
            registry.rebuild_all();
            registry.rescan.clear();
            for id in registry.stores.keys() {
                due.insert(*id, Trigger::Rescan);
            }
            continue;
        }
        if event.mask & (libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED) != 0 {
            // Deleted or moved: its event came, the watch was not dead.
            if registry.suspects.remove(&event.wd).is_some()
                && let Some(fd) = registry.inotify.as_ref()
            {
                sys::rm_watch(fd, event.wd);
            }
            for id in registry.drop_dir(event.wd) {
                due.insert(id, Trigger::Rescan);
            }
            continue;
        }
        let (Some(name), Some(paths)) = (event.name, registry.by_wd.get(&event.wd)) else {
            continue;
        };
        let ids: BTreeSet<StoreId> = paths
            .iter()
            .filter_map(|path| registry.dirs.get(path)?.names.get(name))
            .flatten()
            .copied()
            .collect();
        let Some(dir_path) = paths.first().cloned() else {
            continue;
        };
        if ids.is_empty() {
            continue;
        }
        let created_file = event.mask & libc::IN_CREATE != 0 && event.mask & libc::IN_ISDIR == 0;
        if created_file && !complete_on_creation(&dir_path.join(name)) {
            // Being written: IN_CLOSE_WRITE will follow (or, if it never does, the settle
            // timer reads it).
            for id in ids {
                let Some(entry) = registry.stores.get_mut(&id) else {
                    continue;
                };
                // What the file becomes is announced, even to a re-read meanwhile.
                lock(&entry.job.state).announced = true;
                if entry.timers.settle.is_none() {
                    entry.timers.settle = Some(now + CREATE_SETTLE);
                    registry.arm(id, Some(now + CREATE_SETTLE));
                }
            }
            continue;
        }
        for id in ids {
            due.entry(id).or_insert(Trigger::Watch);
        }
    }
    let due = due
        .into_iter()
        .filter_map(|(id, trigger)| {
            let entry = registry.stores.get_mut(&id)?;
            entry.timers.settle = None;
            Some((Arc::clone(&entry.job), trigger))
        })
        .collect();
    let changes = std::mem::take(&mut registry.changes);
    drop(registry);
    if overflowed {
        tracing::warn!("certstore: inotify event queue overflowed; re-adding every watch");
    }
    report_changes(changes);
    due
}

/// Whether a just-created name is complete already: a symlink, or a file with several links
/// (put in place with `link(2)`, which no close follows).
fn complete_on_creation(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .is_ok_and(|m| m.file_type().is_symlink() || (m.file_type().is_file() && m.nlink() > 1))
}

fn worker_loop(engine: &Engine) {
    loop {
        let job = {
            let mut jobs = lock(&engine.jobs);
            loop {
                if engine.stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Some(job) = jobs.pop_front() {
                    break job;
                }
                jobs = engine
                    .jobs_ready
                    .wait(jobs)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        if catch_unwind(AssertUnwindSafe(|| job.run_pending(engine))).is_err() {
            tracing::error!("certstore: a reload panicked; the store reloads on its next trigger");
        }
        // Also after a panic: a job left running would never be queued again.
        if job.finish() {
            lock(&engine.jobs).push_back(job);
            engine.jobs_ready.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// A store that reads nothing: it counts its reloads, panics in the first one if asked,
    /// and names one of two certificate paths.
    struct Fake {
        paths: [PathBuf; 2],
        second: AtomicBool,
        reloads: AtomicU64,
        panic_once: AtomicBool,
    }

    impl Fake {
        fn new(dir: &Path, panic_once: bool) -> Arc<Fake> {
            Arc::new(Fake {
                paths: [dir.join("one/tls.crt"), dir.join("two/tls.crt")],
                second: AtomicBool::new(false),
                reloads: AtomicU64::new(0),
                panic_once: AtomicBool::new(panic_once),
            })
        }
    }

    impl Watched for Fake {
        fn paths(&self) -> [Option<&Path>; 3] {
            let which = usize::from(self.second.load(Ordering::SeqCst));
            [Some(self.paths[which].as_path()), None, None]
        }
        fn watches(&self) -> bool {
            true
        }
        fn reread_interval(&self) -> Option<Duration> {
            Some(Duration::from_secs(3600))
        }
        fn reload(&self, _: Trigger) -> Reloaded {
            self.reloads.fetch_add(1, Ordering::SeqCst);
            if self.panic_once.swap(false, Ordering::SeqCst) {
                panic!("a reload panics");
            }
            Reloaded::default()
        }
        fn watch_changed(&self, _: WatchChange) {}
    }

    /// Ids far from the stores' own counter.
    static NEXT_ID: AtomicU64 = AtomicU64::new(u64::MAX / 2);

    /// Runs `test` with the engine and a registered fake store, whose first reload is done.
    fn with_fake(panic_once: bool, test: impl FnOnce(&Engine, StoreId, &Fake)) {
        let tmp = tempfile::tempdir().unwrap();
        for sub in ["one", "two"] {
            std::fs::create_dir(tmp.path().join(sub)).unwrap();
        }
        let fake = Fake::new(tmp.path(), panic_once);
        let engine = acquire().unwrap();
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        engine.register(id, Arc::clone(&fake) as Arc<dyn Watched>);
        let idle = || {
            let registry = lock(&engine.registry);
            let job = lock(&registry.stores[&id].job.state);
            !job.queued && !job.running
        };
        for _ in 0..15_000 {
            if fake.reloads.load(Ordering::SeqCst) > 0 && idle() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        test(&engine, id, &fake);
        engine.unregister(id);
        drop(engine);
        release();
    }

    #[test]
    fn a_timer_reload_merged_with_an_event_recomputes_the_watch_points() {
        with_fake(false, |engine, id, fake| {
            fake.second.store(true, Ordering::SeqCst);
            // A Watch and a Timer trigger merged: the Timer wins, the reload was announced.
            engine.after_reload(id, Reloaded::default(), Trigger::Timer, true);
            let registry = lock(&engine.registry);
            let dirs: Vec<PathBuf> = registry.stores[&id]
                .points
                .iter()
                .map(|(d, _)| d.clone())
                .collect();
            assert_eq!(dirs, vec![fake.paths[1].parent().unwrap().to_path_buf()]);
        });
    }

    #[test]
    fn reloads_leave_no_stale_timers_behind() {
        with_fake(false, |engine, id, _| {
            let of_store = || {
                let registry = lock(&engine.registry);
                registry.timers.iter().filter(|t| t.0.1 == id).count()
            };
            let before = of_store();
            for _ in 0..100 {
                engine.after_reload(id, Reloaded::default(), Trigger::Watch, true);
            }
            let after = of_store();
            assert_eq!(
                after, before,
                "timers left as they were are not pushed again"
            );
        });
    }

    #[test]
    fn a_panicking_reload_does_not_stop_the_store_reloading() {
        with_fake(true, |engine, id, fake| {
            assert_eq!(
                fake.reloads.load(Ordering::SeqCst),
                1,
                "the first reload panicked"
            );
            let job = Arc::clone(&lock(&engine.registry).stores[&id].job);
            engine.dispatch(&job, Trigger::Watch);
            for _ in 0..15_000 {
                if fake.reloads.load(Ordering::SeqCst) > 1 {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            assert_eq!(fake.reloads.load(Ordering::SeqCst), 2);
        });
    }
}
