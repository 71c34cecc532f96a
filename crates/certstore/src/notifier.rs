//! Delivers events of every store in the process from one background thread, with no lock
//! held while a callback runs, and no user closure dropped under a lock either.
//!
//! Guarantees: a store's events reach each of its subscribers in publication order; a slow
//! subscriber is handed the latest generation, not a backlog of them (an undelivered `Rotated`
//! event is replaced by a newer one, so an old generation's key is not kept alive by a queue);
//! an identical refusal right behind another is merged into it; other events wait, up to
//! [`MAX_QUEUED_PER_STORE`] per store, after which the oldest one that is not the latest
//! `Rotated` is discarded and counted: the subscribers get an [`Event::EventsDropped`] saying
//! how many, before the events that followed them (and `Status::events_dropped` counts them);
//! a callback that panics is caught and does not stop delivery; once [`Notifier::unsubscribe`]
//! returns, the callback is not running and will not run again — except when called from
//! inside that callback, where waiting would deadlock, so it returns at once (the callback
//! finishes normally). Subscription ids are unique for the life of the process.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};

use crate::event::Event;

/// Identifies one subscription. Ids are private to the store that issued them: another
/// store's id, or an id never handed out, is not found. No id is handed out twice in a
/// process, even when the engine stops and starts again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(pub u64);

/// Identifies a store inside the process.
pub(crate) type StoreId = u64;

type Callback = Arc<dyn Fn(&Event) + Send + Sync>;

/// The most events kept for one store while its subscribers are slow. Generous: a refusal is
/// queued only when the files changed (the same one is reported once), so only a subscriber
/// stuck for many rotations of the files reaches it.
pub const MAX_QUEUED_PER_STORE: usize = 64;

/// Process-wide, not per notifier: the engine (and its notifier) stops with its last store.
static NEXT_SUBSCRIPTION_ID: AtomicU64 = AtomicU64::new(1);

/// Events of one store discarded since its subscribers were last told.
#[derive(Clone, Copy, Default)]
struct Dropped {
    count: u64,
    /// The generation served after the newest of them.
    served_generation: u64,
}

#[derive(Default)]
struct State {
    subscribers: HashMap<StoreId, BTreeMap<u64, Callback>>,
    queues: HashMap<StoreId, VecDeque<Event>>,
    dropped: HashMap<StoreId, Dropped>,
    /// Stores with queued events, in the order they became ready.
    ready: VecDeque<StoreId>,
    /// The (store, subscription) callbacks on the notifier thread's stack, innermost last:
    /// more than one when a callback frees another store, whose queued events are delivered
    /// from inside it.
    running: Vec<(StoreId, u64)>,
    stop: bool,
}

impl State {
    /// The next event to deliver for `store`: a report of discarded events first (they came
    /// before everything still queued).
    fn next_event(&mut self, store: StoreId) -> Option<Event> {
        if let Some(Dropped {
            count,
            served_generation,
        }) = self.dropped.remove(&store)
        {
            return Some(Event::EventsDropped {
                count,
                served_generation,
            });
        }
        self.queues.get_mut(&store).and_then(VecDeque::pop_front)
    }

    fn has_queued(&self, store: StoreId) -> bool {
        self.queues.get(&store).is_some_and(|q| !q.is_empty())
    }

    fn is_running(&self, store: StoreId) -> bool {
        self.running.iter().any(|(s, _)| *s == store)
    }
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when events are queued or on stop.
    work: Condvar,
    /// Signalled when a callback returns or a store's queue drains.
    progress: Condvar,
    thread_id: std::sync::OnceLock<ThreadId>,
}

pub(crate) struct Notifier {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the maps stay sound.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Notifier {
    pub(crate) fn start() -> std::io::Result<Notifier> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
            thread_id: std::sync::OnceLock::new(),
        });
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("certstore-notify".into())
            .spawn(move || deliver_loop(&thread_shared))?;
        let _ = shared.thread_id.set(thread.thread().id());
        Ok(Notifier {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn subscribe(&self, store: StoreId, callback: Callback) -> SubscriptionId {
        let id = NEXT_SUBSCRIPTION_ID.fetch_add(1, Ordering::Relaxed);
        lock(&self.shared.state)
            .subscribers
            .entry(store)
            .or_default()
            .insert(id, callback);
        SubscriptionId(id)
    }

    /// Removes a subscription of `store`; `false` when `store` has no such subscription.
    pub(crate) fn unsubscribe(&self, store: StoreId, id: SubscriptionId) -> bool {
        let mut state = lock(&self.shared.state);
        let removed = state
            .subscribers
            .get_mut(&store)
            .and_then(|subs| subs.remove(&id.0));
        if !self.on_notifier_thread() {
            while state.running.contains(&(store, id.0)) {
                state = wait(&self.shared.progress, state);
            }
        }
        drop(state);
        // The closure may own anything, another store included: dropped with no lock held.
        removed.is_some()
    }

    pub(crate) fn on_notifier_thread(&self) -> bool {
        self.shared.thread_id.get() == Some(&std::thread::current().id())
    }

    /// Whether the calling thread is inside a callback of `store`.
    pub(crate) fn in_callback_of(&self, store: StoreId) -> bool {
        self.on_notifier_thread() && lock(&self.shared.state).is_running(store)
    }

    /// Queues `event` for the subscribers of `store`; returns how many queued events were
    /// discarded to make room (0 or 1).
    pub(crate) fn publish(&self, store: StoreId, event: Event) -> u64 {
        let mut state = lock(&self.shared.state);
        if state.stop || state.subscribers.get(&store).is_none_or(|s| s.is_empty()) {
            return 0;
        }
        let queue = state.queues.entry(store).or_default();
        let was_empty = queue.is_empty();
        match &event {
            // Subscribers need the latest generation only: drop an older one not yet delivered.
            Event::Rotated { .. } => queue.retain(|e| !matches!(e, Event::Rotated { .. })),
            Event::ReloadFailed { error, .. } => {
                let same = |e: &Event| matches!(e, Event::ReloadFailed { error: queued, .. } if queued == error);
                if queue.back().is_some_and(same) {
                    return 0;
                }
            }
            _ => {}
        }
        let mut discarded = None;
        if queue.len() >= MAX_QUEUED_PER_STORE {
            // Keep the newest events; the oldest one that is not the latest generation goes.
            discarded = queue
                .iter()
                .position(|e| !matches!(e, Event::Rotated { .. }))
                .and_then(|pos| queue.remove(pos));
        }
        queue.push_back(event);
        if let Some(discarded) = &discarded {
            let dropped = state.dropped.entry(store).or_default();
            dropped.count += 1;
            dropped.served_generation = discarded.generation();
        }
        if was_empty {
            state.ready.push_back(store);
        }
        self.shared.work.notify_one();
        u64::from(discarded.is_some())
    }

    /// Delivers what is queued for `store`, then removes its subscriptions. When this returns
    /// no callback of `store` runs or will run. On the notifier thread (a store freed from a
    /// callback of another store) the queued events are delivered right here, from inside
    /// that callback; from a callback of `store` itself they are discarded (waiting for them
    /// would wait for itself).
    pub(crate) fn remove_store(&self, store: StoreId) {
        let mut state = lock(&self.shared.state);
        if self.on_notifier_thread() {
            if !state.is_running(store) {
                while let Some(event) = state.next_event(store) {
                    state = deliver(&self.shared, state, store, &event);
                }
            }
            state.ready.retain(|s| *s != store);
        } else {
            while (state.has_queued(store) || state.is_running(store)) && !state.stop {
                state = wait(&self.shared.progress, state);
            }
        }
        let queue = state.queues.remove(&store);
        let subscribers = state.subscribers.remove(&store);
        state.dropped.remove(&store);
        drop(state);
        // The closures may own anything, another store included: dropped with no lock held.
        drop((queue, subscribers));
    }

    /// Stops the thread once it delivered what is queued. On the notifier thread itself
    /// (the last store freed from inside a callback) the thread is left to end on its own.
    pub(crate) fn shutdown(&self) {
        lock(&self.shared.state).stop = true;
        self.shared.work.notify_all();
        self.shared.progress.notify_all();
        if let Some(thread) = lock(&self.thread).take()
            && thread.thread().id() != std::thread::current().id()
        {
            let _ = thread.join();
        }
    }
}

fn wait<'a>(cv: &Condvar, guard: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
    cv.wait(guard).unwrap_or_else(PoisonError::into_inner)
}

/// Calls every subscriber of `store` with `event`, one at a time, releasing the lock around
/// each call; returns with the lock held again.
fn deliver<'a>(
    shared: &'a Shared,
    mut state: MutexGuard<'a, State>,
    store: StoreId,
    event: &Event,
) -> MutexGuard<'a, State> {
    let ids: Vec<u64> = state
        .subscribers
        .get(&store)
        .map(|s| s.keys().copied().collect())
        .unwrap_or_default();
    for id in ids {
        let Some(callback) = state
            .subscribers
            .get(&store)
            .and_then(|s| s.get(&id))
            .map(Arc::clone)
        else {
            continue;
        };
        state.running.push((store, id));
        drop(state);
        if catch_unwind(AssertUnwindSafe(|| callback(event))).is_err() {
            tracing::error!(
                subscription = id,
                "certstore subscriber panicked; continuing"
            );
        }
        // The last reference when the subscription ended meanwhile: dropped unlocked.
        drop(callback);
        state = lock(&shared.state);
        state.running.pop();
        shared.progress.notify_all();
    }
    state
}

fn deliver_loop(shared: &Shared) {
    let mut state = lock(&shared.state);
    loop {
        let Some(store) = state.ready.pop_front() else {
            if state.stop {
                return;
            }
            state = wait(&shared.work, state);
            continue;
        };
        let Some(event) = state.next_event(store) else {
            continue;
        };
        if state.has_queued(store) {
            // Round robin: one store's burst does not hold back the others.
            state.ready.push_back(store);
        }
        state = deliver(shared, state, store, &event);
        drop(state);
        drop(event);
        state = lock(&shared.state);
        shared.progress.notify_all();
    }
}
