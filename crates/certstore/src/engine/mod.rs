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
//! after a transient refusal, a not-yet-valid leaf's notBefore) are set; the watch thread sleeps
//! until the next timer or event.

mod paths;
mod sys;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::event::Event;
use crate::notifier::{Notifier, StoreId};
use crate::store::{Schedule, Shared, Trigger};

pub(crate) use paths::WatchPoint;

/// Reload workers. Two: one store stuck on a hung disk leaves the other working.
const WORKERS: usize = 2;

/// How long after a file is created with `open(O_CREAT)` (seen as IN_CREATE, no IN_CLOSE_WRITE
/// yet) the store reads it anyway: a writer normally closes it sooner, which reads at once.
/// Files linked into place (`link(2)`, several links) are read at once.
const CREATE_SETTLE: Duration = Duration::from_millis(250);

/// The re-read interval while inotify cannot watch a store's files, when the store's own
/// interval is longer or off.
pub const DEGRADED_REREAD_INTERVAL: Duration = Duration::from_secs(10);

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
/// `IN_Q_OVERFLOW`, as the kernel reports one once it has dropped events. For tests.
#[doc(hidden)]
pub fn simulate_lost_events(lose: bool) {
    let state = if lose {
        EVENTS_LOSS_ASKED
    } else {
        EVENTS_OVERFLOWED
    };
    LOST_EVENTS.store(state, Ordering::SeqCst);
    let engine = lock(&GLOBAL).engine.clone();
    if let Some(engine) = engine {
        sys::wake(&engine.wake);
        // The watch thread acknowledges at the start of a step, so no read it began earlier
        // delivers what happens from now on.
        while lose && LOST_EVENTS.load(Ordering::SeqCst) == EVENTS_LOSS_ASKED {
            std::thread::sleep(Duration::from_millis(1));
        }
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
    names: HashMap<OsString, BTreeSet<StoreId>>,
}

#[derive(Default)]
struct Timers {
    reread: Option<Instant>,
    retry: Option<Instant>,
    settle: Option<Instant>,
}

impl Timers {
    fn earliest(&self) -> Option<Instant> {
        [self.reread, self.retry, self.settle]
            .into_iter()
            .flatten()
            .min()
    }
}

struct Entry {
    shared: Arc<Shared>,
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
        let own = self.shared.options.reread_interval;
        if self.degraded.is_some() {
            Some(own.map_or(DEGRADED_REREAD_INTERVAL, |d| {
                d.min(DEGRADED_REREAD_INTERVAL)
            }))
        } else {
            own
        }
    }
}

#[derive(Default)]
struct Registry {
    inotify: Option<OwnedFd>,
    /// Why there is no inotify instance, and when it was last asked for.
    inotify_error: Option<(String, Instant)>,
    dirs: HashMap<PathBuf, Dir>,
    by_wd: HashMap<i32, PathBuf>,
    stores: HashMap<StoreId, Entry>,
    /// No store's timer is due before this (it may be earlier than the next timer, never
    /// later): the watch thread scans the stores only when it has passed, so an inotify event
    /// costs the same with a thousand idle stores as with one.
    next_timer: Option<Instant>,
}

pub(crate) struct Engine {
    registry: Mutex<Registry>,
    wake: OwnedFd,
    jobs: Mutex<VecDeque<Arc<Shared>>>,
    jobs_ready: Condvar,
    pub(crate) notifier: Arc<Notifier>,
    stopping: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Engine {
    fn start() -> Result<Arc<Engine>, Error> {
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
    pub(crate) fn register(&self, shared: Arc<Shared>) {
        let id = shared.id;
        let watch = shared.options.watch;
        let mut registry = lock(&self.registry);
        let mut entry = Entry {
            shared: Arc::clone(&shared),
            points: BTreeSet::new(),
            degraded: None,
            timers: Timers::default(),
        };
        entry.rearm_reread();
        registry.arm(entry.timers.reread);
        registry.stores.insert(id, entry);
        if watch {
            registry.update_points(id);
        }
        drop(registry);
        if watch {
            self.dispatch(&shared, Trigger::Start);
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
        lock(&self.jobs).retain(|s| s.id != id);
    }

    /// Queues a reload of `shared`, merging it with one already queued or running.
    pub(crate) fn dispatch(&self, shared: &Arc<Shared>, trigger: Trigger) {
        if shared.mark_pending(trigger) {
            lock(&self.jobs).push_back(Arc::clone(shared));
            self.jobs_ready.notify_one();
        }
    }

    /// Applies what a reload of `id` found: the timers it asks for, and the watch points of
    /// the symlink chain as it is now.
    pub(crate) fn after_reload(&self, id: StoreId, schedule: Schedule, trigger: Trigger) {
        let mut registry = lock(&self.registry);
        let Some(entry) = registry.stores.get_mut(&id) else {
            return;
        };
        if !schedule.keep_retry {
            entry.timers.retry = schedule.retry_at;
        }
        if matches!(trigger, Trigger::Timer | Trigger::Start) || entry.timers.reread.is_none() {
            entry.rearm_reread();
        }
        let (next, watch) = (entry.timers.earliest(), entry.shared.options.watch);
        registry.arm(next);
        let added = watch && registry.update_points(id);
        let shared = registry.stores.get(&id).map(|e| Arc::clone(&e.shared));
        drop(registry);
        // A directory watched only now may have changed before its watch existed: read once
        // more (unchanged files cost a hash compare; the set then stays the same).
        if added && let Some(shared) = shared {
            self.dispatch(&shared, Trigger::Retry);
        }
        sys::wake(&self.wake);
    }
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
    /// Recomputes the watch points of store `id` and registers them; returns whether a
    /// directory watch was added. Publishes WatchDegraded/WatchRestored on a change.
    fn update_points(&mut self, id: StoreId) -> bool {
        let Some(entry) = self.stores.get(&id) else {
            return false;
        };
        let options = &entry.shared.options;
        let mut wanted = BTreeSet::new();
        for path in [
            Some(&options.cert_path),
            Some(&options.key_path),
            options.ca_path.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            paths::watch_points(path, &mut wanted);
        }
        let old = entry.points.clone();
        for point in old.difference(&wanted) {
            self.forget_point(id, point);
        }
        let mut added_dir = false;
        let mut failure: Option<Arc<Error>> = None;
        let mut registered = BTreeSet::new();
        for point in &wanted {
            if old.contains(point) && self.dirs.contains_key(&point.0) {
                registered.insert(point.clone());
                continue;
            }
            match self.watch_dir(&point.0) {
                Ok(new_dir) => {
                    added_dir |= new_dir;
                    if let Some(dir) = self.dirs.get_mut(&point.0) {
                        dir.names.entry(point.1.clone()).or_default().insert(id);
                    }
                    registered.insert(point.clone());
                }
                Err(error) => {
                    failure.get_or_insert(Arc::new(error));
                }
            }
        }
        let Some(entry) = self.stores.get_mut(&id) else {
            return added_dir;
        };
        entry.points = registered;
        let served_generation = entry.shared.generation();
        match (&entry.degraded, failure) {
            (None, Some(error)) => {
                tracing::warn!(error = %error, "certstore: watch degraded");
                entry.degraded = Some(Arc::clone(&error));
                entry.shared.set_watch_degraded(Some(Arc::clone(&error)));
                entry.rearm_reread();
                entry.shared.notify(Event::WatchDegraded {
                    error,
                    served_generation,
                });
            }
            (Some(_), None) => {
                tracing::info!("certstore: watch restored");
                entry.degraded = None;
                entry.shared.set_watch_degraded(None);
                entry.rearm_reread();
                entry
                    .shared
                    .notify(Event::WatchRestored { served_generation });
            }
            _ => {}
        }
        let next = entry.timers.earliest();
        self.arm(next);
        added_dir
    }

    /// Notes that a store's timer may now be due at `at`.
    fn arm(&mut self, at: Option<Instant>) {
        if let Some(at) = at {
            self.next_timer = Some(self.next_timer.map_or(at, |t| t.min(at)));
        }
    }

    /// Makes sure `dir` is watched; `Ok(true)` when a new watch was added.
    fn watch_dir(&mut self, dir: &std::path::Path) -> Result<bool, Error> {
        if self.dirs.contains_key(dir) {
            return Ok(false);
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
        if self.dirs.len() >= WATCH_LIMIT.load(Ordering::SeqCst) {
            return Err(watch_error(
                dir,
                &std::io::Error::from_raw_os_error(libc::ENOSPC),
            ));
        }
        let wd = sys::add_watch(fd, dir).map_err(|e| watch_error(dir, &e))?;
        // Two paths to one directory (a symlinked directory) share its watch descriptor.
        if let Some(previous) = self.by_wd.insert(wd, dir.to_path_buf())
            && previous != dir
            && let Some(old) = self.dirs.remove(&previous)
        {
            self.dirs.insert(dir.to_path_buf(), old);
            return Ok(false);
        }
        self.dirs.insert(
            dir.to_path_buf(),
            Dir {
                wd,
                names: HashMap::new(),
            },
        );
        Ok(true)
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
            self.by_wd.remove(&wd);
            if let Some(fd) = self.inotify.as_ref() {
                sys::rm_watch(fd, wd);
            }
        }
    }

    /// Forgets a directory whose watch died (deleted, moved away): the stores that watched it
    /// re-add what they need after their next reload. Returns those stores.
    fn drop_dir(&mut self, wd: i32) -> Vec<StoreId> {
        let Some(path) = self.by_wd.remove(&wd) else {
            return Vec::new();
        };
        let Some(dir) = self.dirs.remove(&path) else {
            return Vec::new();
        };
        if let Some(fd) = self.inotify.as_ref() {
            sys::rm_watch(fd, wd);
        }
        let mut ids = BTreeSet::new();
        for (name, stores) in dir.names {
            for id in stores {
                if let Some(entry) = self.stores.get_mut(&id) {
                    entry.points.remove(&(path.clone(), name.clone()));
                }
                ids.insert(id);
            }
        }
        ids.into_iter().collect()
    }
}

fn watch_loop(engine: &Engine) {
    let mut buf = Box::new(sys::EventBuffer([0; 64 * 1024]));
    while !engine.stopping.load(Ordering::SeqCst) {
        if catch_unwind(AssertUnwindSafe(|| watch_step(engine, &mut buf))).is_err() {
            tracing::error!("certstore: watch thread panicked; watching on");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Waits for inotify events, a wake-up or the next timer, and dispatches what is due.
fn watch_step(engine: &Engine, buf: &mut sys::EventBuffer) {
    let _ = LOST_EVENTS.compare_exchange(
        EVENTS_LOSS_ASKED,
        EVENTS_LOST,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let (inotify_fd, deadline) = {
        let mut registry = lock(&engine.registry);
        retry_instance(&mut registry);
        let earliest = registry.next_timer;
        let retry_instance_at = registry
            .inotify_error
            .as_ref()
            .map(|(_, at)| *at + INSTANCE_RETRY);
        (
            registry.inotify.as_ref().map(AsRawFd::as_raw_fd),
            [earliest, retry_instance_at].into_iter().flatten().min(),
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
        for (shared, trigger) in due {
            engine.dispatch(&shared, trigger);
        }
    }
    let now = Instant::now();
    let mut due = Vec::new();
    {
        let mut registry = lock(&engine.registry);
        if registry.next_timer.is_none_or(|at| at > now) {
            return;
        }
        let mut next = None;
        for entry in registry.stores.values_mut() {
            let t = &mut entry.timers;
            let mut trigger = None;
            if t.reread.is_some_and(|at| at <= now) {
                t.reread = None;
                trigger = Some(Trigger::Timer);
            }
            if t.retry.is_some_and(|at| at <= now) {
                t.retry = None;
                trigger = trigger.or(Some(Trigger::Retry));
            }
            if t.settle.is_some_and(|at| at <= now) {
                t.settle = None;
                trigger = trigger.or(Some(Trigger::Watch));
            }
            if let Some(trigger) = trigger {
                due.push((Arc::clone(&entry.shared), trigger));
            }
            next = [next, t.earliest()].into_iter().flatten().min();
        }
        registry.next_timer = next;
    }
    for (shared, trigger) in due {
        engine.dispatch(&shared, trigger);
    }
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
            for entry in registry.stores.values_mut() {
                entry.timers.retry = Some(Instant::now());
            }
            registry.arm(Some(Instant::now()));
        }
        Err(e) => registry.inotify_error = Some((instance_error(&e), Instant::now())),
    }
}

/// The stores an inotify batch concerns, each with the trigger to reload it with.
fn route_events(engine: &Engine, events: &[sys::RawEvent<'_>]) -> Vec<(Arc<Shared>, Trigger)> {
    let mut registry = lock(&engine.registry);
    let mut due: HashMap<StoreId, Trigger> = HashMap::new();
    let now = Instant::now();
    for event in events {
        if event.mask & libc::IN_Q_OVERFLOW != 0 {
            // Events were lost: every store reads to be sure.
            for id in registry.stores.keys() {
                due.insert(*id, Trigger::Timer);
            }
            continue;
        }
        if event.mask & (libc::IN_DELETE_SELF | libc::IN_MOVE_SELF | libc::IN_IGNORED) != 0 {
            for id in registry.drop_dir(event.wd) {
                due.insert(id, Trigger::Timer);
            }
            continue;
        }
        let (Some(name), Some(dir_path)) = (event.name, registry.by_wd.get(&event.wd).cloned())
        else {
            continue;
        };
        let Some(ids) = registry
            .dirs
            .get(&dir_path)
            .and_then(|d| d.names.get(name))
            .cloned()
        else {
            continue;
        };
        let created_file = event.mask & libc::IN_CREATE != 0 && event.mask & libc::IN_ISDIR == 0;
        if created_file && !complete_on_creation(&dir_path.join(name)) {
            // Being written: IN_CLOSE_WRITE will follow (or, if it never does, the settle
            // timer reads it).
            for id in ids {
                if let Some(entry) = registry.stores.get_mut(&id) {
                    entry.timers.settle.get_or_insert(now + CREATE_SETTLE);
                }
                registry.arm(Some(now + CREATE_SETTLE));
            }
            continue;
        }
        for id in ids {
            due.entry(id).or_insert(Trigger::Watch);
        }
    }
    due.into_iter()
        .filter_map(|(id, trigger)| {
            let entry = registry.stores.get_mut(&id)?;
            entry.timers.settle = None;
            Some((Arc::clone(&entry.shared), trigger))
        })
        .collect()
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
        let shared = {
            let mut jobs = lock(&engine.jobs);
            loop {
                if engine.stopping.load(Ordering::SeqCst) {
                    return;
                }
                if let Some(shared) = jobs.pop_front() {
                    break shared;
                }
                jobs = engine
                    .jobs_ready
                    .wait(jobs)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        let again = catch_unwind(AssertUnwindSafe(|| shared.run_pending(engine)));
        if again.unwrap_or(false) {
            lock(&engine.jobs).push_back(shared);
            engine.jobs_ready.notify_one();
        }
    }
}
