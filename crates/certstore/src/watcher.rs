//! Watches the parent directories of the files and reloads when something there changes.
//!
//! inotify on a file path follows the symlink to the old inode, sees nothing at a kubelet
//! `..data` swap and dies when the old directory is deleted, so each parent directory is
//! watched instead (non-recursively, once even when several files share it). Any event other
//! that completes a change (a writer closing the file, a rename, a delete, a new symlink) and
//! names a watched file or `..data` triggers a reload at once; no fixed debounce, since the
//! reload itself retries an inconsistent pair with short backoff.
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

use notify::event::{AccessKind, AccessMode, EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};

use crate::error::Error;
use crate::store::{Inner, Trigger};
use crate::time::unix_now;

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

/// How many symlinks are followed from a configured path when looking for directories to watch.
const MAX_SYMLINK_HOPS: usize = 8;

/// Directory → the file names in it that matter: the parent of each configured path and of
/// each symlink it leads through (so `/etc/tls/tls.crt -> /run/secrets/app/tls.crt` watches
/// both directories). The kubelet's own `..data/...` hops are covered by watching `..data` in
/// the mount directory; its timestamped directories come and go and are never watched.
fn watched_directories(options: &crate::Options) -> BTreeMap<PathBuf, BTreeSet<OsString>> {
    let mut dirs: BTreeMap<PathBuf, BTreeSet<OsString>> = BTreeMap::new();
    let paths = [
        Some(&options.cert_path),
        Some(&options.key_path),
        options.ca_path.as_ref(),
    ];
    for path in paths.into_iter().flatten() {
        let mut hop = std::path::absolute(path).unwrap_or_else(|_| path.clone());
        for _ in 0..MAX_SYMLINK_HOPS {
            let (Some(dir), Some(name)) = (hop.parent(), hop.file_name()) else {
                break;
            };
            let kubelet_internal = dir
                .file_name()
                .is_some_and(|d| d.as_encoded_bytes().starts_with(b".."));
            if !kubelet_internal {
                let names = dirs.entry(dir.to_path_buf()).or_default();
                names.insert(name.to_owned());
                names.insert(OsString::from(KUBELET_DATA_LINK));
            }
            match std::fs::read_link(&hop) {
                Ok(target) => hop = dir.join(target),
                Err(_) => break,
            }
        }
    }
    dirs
}

enum Step {
    Continue,
    Stop,
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
        // A rotation between the initial read and the watches being added raised no event.
        let _ = catch_unwind(AssertUnwindSafe(|| self.inner.reload(Trigger::Watch)));
        let mut next_reread = self.next_reread(Instant::now());
        loop {
            match catch_unwind(AssertUnwindSafe(|| self.step(&receiver, &mut next_reread))) {
                Ok(Step::Continue) => {}
                Ok(Step::Stop) => return,
                Err(_) => {
                    tracing::error!("certstore: watcher panicked; watching on");
                    std::thread::sleep(LOST_DIRECTORY_POLL);
                }
            }
        }
    }

    fn next_reread(&self, from: Instant) -> Option<Instant> {
        // An interval too long to add to an Instant means "never".
        self.inner
            .options
            .reread_interval
            .and_then(|every| from.checked_add(every))
    }

    /// Waits for one event or timeout and reloads if it calls for it.
    fn step(&mut self, receiver: &Receiver<Message>, next_reread: &mut Option<Instant>) -> Step {
        let now = Instant::now();
        let mut wait = next_reread.map_or(Duration::from_secs(3600), |t| {
            t.saturating_duration_since(now)
        });
        if !self.lost.is_empty() {
            wait = wait.min(LOST_DIRECTORY_POLL);
        }
        // A leaf refused as not yet valid is taken when its notBefore has passed, even with
        // the re-read timer off and no new file event.
        let valid_at = self.inner.refused_until().map(|not_before| {
            now + Duration::from_secs((not_before - unix_now() + 1).max(0) as u64)
        });
        if let Some(at) = valid_at {
            wait = wait.min(at.saturating_duration_since(now));
        }
        let mut trigger = None;
        match receiver.recv_timeout(wait) {
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return Step::Stop,
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
        if next_reread.is_some_and(|at| Instant::now() >= at) {
            trigger = Some(Trigger::Timer);
            *next_reread = self.next_reread(Instant::now());
        }
        if valid_at.is_some_and(|at| Instant::now() >= at) {
            trigger = Some(Trigger::Timer);
        }
        let Some(trigger) = trigger else {
            return Step::Continue;
        };
        // Coalesce what is already queued (no waiting): one read covers all of it.
        loop {
            match receiver.try_recv() {
                Ok(Message::Stop) => return Step::Stop,
                Ok(Message::Fs(event)) => {
                    let _ = self.is_relevant(event);
                }
                Err(_) => break,
            }
        }
        let _ = self.inner.reload(trigger);
        Step::Continue
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
        if event.need_rescan() || event.paths.is_empty() {
            // The kernel queue overflowed (events were lost): read to be sure.
            return true;
        }
        match event.kind {
            // A write is complete when the writer closes the file; reading at the first
            // IN_MODIFY could publish half a chain (leaf written, intermediates not yet).
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => {}
            EventKind::Access(_) | EventKind::Modify(ModifyKind::Data(_)) => return false,
            // A created regular file is followed by its close; a created symlink is complete.
            EventKind::Create(_)
                if !event.paths.iter().any(|p| {
                    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink())
                }) =>
            {
                return false;
            }
            _ => {}
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
