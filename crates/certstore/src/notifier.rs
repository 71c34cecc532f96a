//! Delivers events to subscribers from one background thread, with no lock held.
//!
//! Guarantees: events reach each subscriber in publication order; a callback that panics is
//! caught and does not stop delivery; once [`Notifier::unsubscribe`] returns, the callback is
//! not running and will not run again — except when it is called from inside that callback,
//! where waiting would deadlock, so it returns at once (the callback finishes normally).

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{JoinHandle, ThreadId};

use crate::event::Event;

/// Identifies one subscription of one store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubscriptionId(pub u64);

type Callback = Arc<dyn Fn(&Event) + Send + Sync>;

struct Subscribers {
    by_id: BTreeMap<u64, Callback>,
    next_id: u64,
    /// The subscription whose callback is running right now, if any.
    running: Option<u64>,
}

struct Shared {
    subscribers: Mutex<Subscribers>,
    callback_done: Condvar,
    thread_id: std::sync::OnceLock<ThreadId>,
}

pub(crate) struct Notifier {
    shared: Arc<Shared>,
    sender: Mutex<Option<Sender<Event>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the data (a map, an option) is still sound.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Notifier {
    pub(crate) fn start() -> std::io::Result<Notifier> {
        let shared = Arc::new(Shared {
            subscribers: Mutex::new(Subscribers {
                by_id: BTreeMap::new(),
                next_id: 1,
                running: None,
            }),
            callback_done: Condvar::new(),
            thread_id: std::sync::OnceLock::new(),
        });
        let (sender, receiver) = channel();
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("certstore-notify".into())
            .spawn(move || deliver_loop(&thread_shared, receiver))?;
        let _ = shared.thread_id.set(thread.thread().id());
        Ok(Notifier {
            shared,
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(crate) fn subscribe(&self, callback: Callback) -> SubscriptionId {
        let mut subs = lock(&self.shared.subscribers);
        let id = subs.next_id;
        subs.next_id += 1;
        subs.by_id.insert(id, callback);
        SubscriptionId(id)
    }

    /// Removes a subscription; `false` when it was not there.
    pub(crate) fn unsubscribe(&self, id: SubscriptionId) -> bool {
        let mut subs = lock(&self.shared.subscribers);
        let removed = subs.by_id.remove(&id.0).is_some();
        if self.on_notifier_thread() {
            return removed;
        }
        while subs.running == Some(id.0) {
            subs = self
                .shared
                .callback_done
                .wait(subs)
                .unwrap_or_else(PoisonError::into_inner);
        }
        removed
    }

    pub(crate) fn on_notifier_thread(&self) -> bool {
        self.shared.thread_id.get() == Some(&std::thread::current().id())
    }

    pub(crate) fn publish(&self, event: Event) {
        if let Some(sender) = lock(&self.sender).as_ref() {
            // A send error means the thread is gone (shutdown); nothing is left to notify.
            let _ = sender.send(event);
        }
    }

    /// Stops the thread after it delivered what is queued. Must not run on the notifier thread.
    pub(crate) fn shutdown(&self) {
        lock(&self.sender).take();
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
    }
}

fn deliver_loop(shared: &Shared, receiver: Receiver<Event>) {
    for event in receiver {
        let ids: Vec<u64> = lock(&shared.subscribers).by_id.keys().copied().collect();
        for id in ids {
            let callback = {
                let mut subs = lock(&shared.subscribers);
                let Some(callback) = subs.by_id.get(&id).map(Arc::clone) else {
                    continue;
                };
                subs.running = Some(id);
                callback
            };
            if catch_unwind(AssertUnwindSafe(|| callback(&event))).is_err() {
                tracing::error!(
                    subscription = id,
                    "certstore subscriber panicked; continuing"
                );
            }
            drop(callback);
            lock(&shared.subscribers).running = None;
            shared.callback_done.notify_all();
        }
    }
}
