//! Delivers events of every store in the process from one background thread, with no lock
//! held while a callback runs.
//!
//! Guarantees: a store's events reach each of its subscribers in publication order; a slow
//! subscriber is handed the latest generation, not a backlog of them (an undelivered `Rotated`
//! event is replaced by a newer one, so an old generation's key is not kept alive by a queue);
//! refusals are never dropped (identical ones are merged); a callback that panics is caught and
//! does not stop delivery; once [`Notifier::unsubscribe`] returns, the callback is not running
//! and will not run again — except when called from inside that callback, where waiting would
//! deadlock, so it returns at once (the callback finishes normally).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};

use crate::event::Event;

/// Identifies one subscription. Ids are private to the store that issued them: another
/// store's id, or an id never handed out, is not found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(pub u64);

/// Identifies a store inside the process.
pub(crate) type StoreId = u64;

type Callback = Arc<dyn Fn(&Event) + Send + Sync>;

/// The most events kept for one store while its subscribers are slow: at most one `Rotated`
/// (the latest) and a bounded number of refusals and watch changes.
const MAX_QUEUED_PER_STORE: usize = 16;

#[derive(Default)]
struct State {
    subscribers: HashMap<StoreId, BTreeMap<u64, Callback>>,
    queues: HashMap<StoreId, VecDeque<Event>>,
    /// Stores with queued events, in the order they became ready.
    ready: VecDeque<StoreId>,
    /// The (store, subscription) whose callback is running right now.
    running: Option<(StoreId, u64)>,
    next_id: u64,
    stop: bool,
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
            state: Mutex::new(State {
                next_id: 1,
                ..State::default()
            }),
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
        let mut state = lock(&self.shared.state);
        let id = state.next_id;
        state.next_id += 1;
        state
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
            .is_some_and(|subs| subs.remove(&id.0).is_some());
        if self.on_notifier_thread() {
            return removed;
        }
        while state.running == Some((store, id.0)) {
            state = wait(&self.shared.progress, state);
        }
        removed
    }

    pub(crate) fn on_notifier_thread(&self) -> bool {
        self.shared.thread_id.get() == Some(&std::thread::current().id())
    }

    /// Whether the calling thread is inside a callback of `store`.
    pub(crate) fn in_callback_of(&self, store: StoreId) -> bool {
        self.on_notifier_thread()
            && lock(&self.shared.state)
                .running
                .is_some_and(|(s, _)| s == store)
    }

    pub(crate) fn publish(&self, store: StoreId, event: Event) {
        let mut state = lock(&self.shared.state);
        if state.stop || state.subscribers.get(&store).is_none_or(|s| s.is_empty()) {
            return;
        }
        let queue = state.queues.entry(store).or_default();
        let was_empty = queue.is_empty();
        match &event {
            // Subscribers need the latest generation only: drop an older one not yet delivered.
            Event::Rotated { .. } => queue.retain(|e| !matches!(e, Event::Rotated { .. })),
            Event::ReloadFailed { error, .. } => {
                let same = |e: &Event| matches!(e, Event::ReloadFailed { error: queued, .. } if queued == error);
                if queue.back().is_some_and(same) {
                    return;
                }
            }
            _ => {}
        }
        if queue.len() >= MAX_QUEUED_PER_STORE {
            // Keep the newest events; the oldest non-Rotated one goes.
            if let Some(pos) = queue
                .iter()
                .position(|e| !matches!(e, Event::Rotated { .. }))
            {
                queue.remove(pos);
            }
        }
        queue.push_back(event);
        if was_empty {
            state.ready.push_back(store);
        }
        self.shared.work.notify_one();
    }

    /// Delivers what is queued for `store` (unless called on the notifier thread, where it
    /// would wait for itself: then the queue is dropped), then removes its subscriptions.
    /// When this returns no callback of `store` runs or will run.
    pub(crate) fn remove_store(&self, store: StoreId) {
        let mut state = lock(&self.shared.state);
        if self.on_notifier_thread() {
            state.queues.remove(&store);
            state.ready.retain(|s| *s != store);
            state.subscribers.remove(&store);
            return;
        }
        while (state.queues.get(&store).is_some_and(|q| !q.is_empty())
            || state.running.is_some_and(|(s, _)| s == store))
            && !state.stop
        {
            state = wait(&self.shared.progress, state);
        }
        state.queues.remove(&store);
        state.subscribers.remove(&store);
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
        let Some(event) = state.queues.get_mut(&store).and_then(VecDeque::pop_front) else {
            continue;
        };
        if state.queues.get(&store).is_some_and(|q| !q.is_empty()) {
            // Round robin: one store's burst does not hold back the others.
            state.ready.push_back(store);
        }
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
            state.running = Some((store, id));
            drop(state);
            if catch_unwind(AssertUnwindSafe(|| callback(&event))).is_err() {
                tracing::error!(
                    subscription = id,
                    "certstore subscriber panicked; continuing"
                );
            }
            drop(callback);
            state = lock(&shared.state);
            state.running = None;
            shared.progress.notify_all();
        }
        drop(event);
        shared.progress.notify_all();
    }
}
