//! Watches the parent directories of the files and reloads when something there changes.
//!
//! inotify on a file path follows the symlink to the old inode, sees nothing at a kubelet
//! `..data` swap and dies when the old directory is deleted, so each parent directory is
//! watched instead (non-recursively, once even when several files share it). Any event other
//! than a plain open/read that names a watched file or `..data` triggers a reload at once; no
//! fixed debounce, since the reload itself retries an inconsistent pair with short backoff.
//! When a watched directory itself is deleted or moved, its watch is re-added as soon as the
//! directory exists again, followed by a reload. A re-read timer (content hash compare)
//! catches whatever inotify cannot see.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::error::Error;
use crate::store::{Inner, Trigger};

/// How often a vanished directory is looked for again.
const LOST_DIRECTORY_POLL: Duration = Duration::from_millis(50);

/// The kubelet's atomic-writer symlink that is renamed over on every Secret update.
const KUBELET_DATA_LINK: &str = "..data";

enum Message {
    Fs(notify::Result<notify::Event>),
    Stop,
}

/// The background thread that runs reloads for a store.
pub(crate) struct Watcher {
    sender: Sender<Message>,
    thread: JoinHandle<()>,
}

impl Watcher {
    /// Starts the thread, unless the options ask for neither inotify nor a re-read timer.
    pub(crate) fn start(inner: Arc<Inner>) -> Result<Option<Watcher>, Error> {
        let options = &inner.options;
        if !options.watch && options.reread_interval.is_none() {
            return Ok(None);
        }
        let (sender, receiver) = channel();
        let directories = if options.watch {
            watched_directories(options)
        } else {
            BTreeMap::new()
        };
        let fs_watcher = if options.watch {
            let events = sender.clone();
            let mut w = RecommendedWatcher::new(
                move |res| {
                    let _ = events.send(Message::Fs(res));
                },
                notify::Config::default(),
            )
            .map_err(|e| Error::Watch {
                path: options.cert_path.clone(),
                reason: e.to_string(),
            })?;
            for dir in directories.keys() {
                w.watch(dir, RecursiveMode::NonRecursive)
                    .map_err(|e| Error::Watch {
                        path: dir.clone(),
                        reason: e.to_string(),
                    })?;
            }
            Some(w)
        } else {
            None
        };
        let mut state = LoopState {
            inner,
            fs_watcher,
            directories,
            lost: BTreeSet::new(),
        };
        let thread = std::thread::Builder::new()
            .name("certstore-watch".into())
            .spawn(move || state.run(receiver))
            .map_err(|e| Error::Internal(format!("cannot start the watcher thread: {e}")))?;
        Ok(Some(Watcher { sender, thread }))
    }

    /// Stops the thread and waits for it (after a reload in progress).
    pub(crate) fn stop(self) {
        let _ = self.sender.send(Message::Stop);
        let _ = self.thread.join();
    }
}

/// Parent directory → the file names in it that matter.
fn watched_directories(options: &crate::Options) -> BTreeMap<PathBuf, BTreeSet<OsString>> {
    let mut dirs: BTreeMap<PathBuf, BTreeSet<OsString>> = BTreeMap::new();
    let paths = [
        Some(&options.cert_path),
        Some(&options.key_path),
        options.ca_path.as_ref(),
    ];
    for path in paths.into_iter().flatten() {
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        let (Some(dir), Some(name)) = (absolute.parent(), absolute.file_name()) else {
            continue;
        };
        let names = dirs.entry(dir.to_path_buf()).or_default();
        names.insert(name.to_owned());
        names.insert(OsString::from(KUBELET_DATA_LINK));
    }
    dirs
}

struct LoopState {
    inner: Arc<Inner>,
    fs_watcher: Option<RecommendedWatcher>,
    directories: BTreeMap<PathBuf, BTreeSet<OsString>>,
    /// Watched directories whose watch died (deleted or moved away) and is to be re-added.
    lost: BTreeSet<PathBuf>,
}

impl LoopState {
    fn run(&mut self, receiver: Receiver<Message>) {
        let interval = self.inner.options.reread_interval;
        let mut next_reread = interval.map(|i| Instant::now() + i);
        loop {
            let now = Instant::now();
            let mut wait = next_reread.map_or(Duration::from_secs(3600), |t| {
                t.saturating_duration_since(now)
            });
            if !self.lost.is_empty() {
                wait = wait.min(LOST_DIRECTORY_POLL);
            }
            let mut trigger = None;
            match receiver.recv_timeout(wait) {
                Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(Message::Fs(event)) => {
                    if self.is_relevant(event) {
                        trigger = Some(Trigger::Watch);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            if self.rewatch_lost() {
                trigger = Some(Trigger::Watch);
            }
            if let (Some(at), Some(every)) = (next_reread, interval)
                && Instant::now() >= at
            {
                trigger = Some(Trigger::Timer);
                next_reread = Some(Instant::now() + every);
            }
            let Some(trigger) = trigger else { continue };
            // Coalesce what is already queued (no waiting): one read covers all of it.
            loop {
                match receiver.try_recv() {
                    Ok(Message::Stop) => return,
                    Ok(Message::Fs(event)) => {
                        let _ = self.is_relevant(event);
                    }
                    Err(_) => break,
                }
            }
            let inner = &self.inner;
            if catch_unwind(AssertUnwindSafe(|| inner.reload(trigger))).is_err() {
                tracing::error!("certstore: watcher reload panicked; watching on");
            }
        }
    }

    /// Whether `event` can change what the store serves. Also notices a watched directory
    /// that went away, so its watch can be re-added.
    fn is_relevant(&mut self, event: notify::Result<notify::Event>) -> bool {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                // Lost events (queue overflow) or a failing watch: read to be sure.
                tracing::debug!(error = %e, "certstore: watcher error");
                return true;
            }
        };
        if let EventKind::Access(kind) = event.kind
            && !matches!(kind, AccessKind::Close(AccessMode::Write))
        {
            return false;
        }
        let mut relevant = false;
        for path in &event.paths {
            if self.directories.contains_key(path.as_path()) {
                // An event about the directory itself: deleted, moved, or its metadata
                // changed. The watch may be dead; re-add it.
                self.mark_lost(path.clone());
                relevant = true;
                continue;
            }
            let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
                continue;
            };
            if self
                .directories
                .get(dir)
                .is_some_and(|names| names.contains(name))
            {
                relevant = true;
            }
        }
        relevant
    }

    fn mark_lost(&mut self, dir: PathBuf) {
        if let Some(w) = self.fs_watcher.as_mut() {
            let _ = w.unwatch(&dir);
        }
        self.lost.insert(dir);
    }

    /// Re-adds the watches of lost directories that exist again; true if any came back.
    fn rewatch_lost(&mut self) -> bool {
        let Some(w) = self.fs_watcher.as_mut() else {
            return false;
        };
        let mut back = Vec::new();
        for dir in &self.lost {
            if Path::new(dir).is_dir() && w.watch(dir, RecursiveMode::NonRecursive).is_ok() {
                back.push(dir.clone());
            }
        }
        for dir in &back {
            self.lost.remove(dir);
        }
        !back.is_empty()
    }
}
