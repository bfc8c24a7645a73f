//! The I/O shell of the local source: one thread that does the first full sync, then polls
//! the directory and writes changes to the shared index.
//!
//! A plain thread rather than a task: the work is blocking file I/O, the loop needs no
//! runtime (it works under any tokio flavour, or none), and dropping the handle ends it at
//! once. Subscribers learn about changes through a `tokio::sync::watch` revision counter.
//!
//! The thread sleeps on a channel: a directory notification (from `notify`) wakes it for a
//! poll at once, the poll interval is the fallback, and while a changed file is settling
//! the next poll comes after [`SETTLE_INTERVAL`]. A file renamed into the directory (how
//! editors, `kubectl`-style tools and config management save atomically) is complete when
//! the rename is seen, so it is read on that first poll without settling.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::{oneshot, watch};

use super::error::{FileError, Problem};
use super::scan::DirScanner;
use super::state::{LocalState, Update};
use crate::source::SharedIndex;

/// How often the directory is polled without notifications: a change is in the index
/// within two polls.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// The next poll after one that saw a change: the change is read once it looks the same.
const SETTLE_INTERVAL: Duration = Duration::from_millis(10);
/// Notifications this close together are one wake-up (an editor's save is several).
const NOTIFY_COALESCE: Duration = Duration::from_millis(2);

/// What wakes the source thread.
enum Wake {
    /// Something in the directory changed; `placed` are files renamed into it (an atomic
    /// save), complete as they are.
    Changed { placed: Vec<PathBuf> },
    /// The handle was dropped or stopped.
    Stop,
}

/// The local source, before it starts.
#[derive(Debug, Clone)]
pub struct LocalSource {
    dir: PathBuf,
    poll_interval: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum LocalSourceError {
    #[error("config directory {}: {source}", dir.display())]
    Directory { dir: PathBuf, source: io::Error },
    #[error("cannot start the local source thread: {0}")]
    Thread(io::Error),
    #[error("the local source thread ended before its first sync")]
    Ended,
}

impl LocalSource {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            poll_interval: DEFAULT_POLL_INTERVAL,
        }
    }

    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Reads the whole directory, writes it to `index` (every kind is reset, so the index is
    /// synced even for kinds no file defines), then keeps polling on a thread of its own.
    /// Returns once the first full sync is in the index; fails if the directory cannot be
    /// listed. Broken files are not a failure: they are in [`LocalSourceHandle::current_errors`].
    pub async fn start(self, index: SharedIndex) -> Result<LocalSourceHandle, LocalSourceError> {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (wake_tx, wake_rx) = mpsc::channel();
        let (revision_tx, mut revision) = watch::channel(0);
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut worker = Worker {
            scanner: DirScanner::new(&self.dir),
            state: LocalState::new(),
            index,
            revision: revision_tx,
            errors: errors.clone(),
            dir_error: None,
        };
        let interval = self.poll_interval;
        let watcher = watch_dir(&self.dir, wake_tx.clone());
        let thread = std::thread::Builder::new()
            .name("weft-local-source".into())
            .spawn(move || {
                let _watcher = watcher; // notifications stop when the thread ends
                let synced = worker.first_sync();
                let failed = synced.is_err();
                if ready_tx.send(synced).is_err() || failed {
                    return;
                }
                let mut next_poll = interval;
                loop {
                    let mut complete = BTreeSet::new();
                    match wake_rx.recv_timeout(next_poll) {
                        Ok(Wake::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                        Ok(Wake::Changed { placed }) => {
                            complete.extend(placed);
                            // Let a burst of notifications end; a stop still ends the thread.
                            while let Ok(wake) = wake_rx.recv_timeout(NOTIFY_COALESCE) {
                                match wake {
                                    Wake::Stop => return,
                                    Wake::Changed { placed } => complete.extend(placed),
                                }
                            }
                        }
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    worker.poll(&complete);
                    next_poll = if worker.scanner.settling() {
                        SETTLE_INTERVAL
                    } else {
                        interval
                    };
                }
            })
            .map_err(LocalSourceError::Thread)?;
        match ready_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(source)) => {
                return Err(LocalSourceError::Directory {
                    dir: self.dir,
                    source,
                });
            }
            Err(_) => return Err(LocalSourceError::Ended),
        }
        revision.borrow_and_update();
        Ok(LocalSourceHandle {
            dir: self.dir,
            revision,
            errors,
            stop: wake_tx,
            thread: Some(thread),
        })
    }
}

/// A running local source. Dropping it stops the polling thread.
#[derive(Debug)]
pub struct LocalSourceHandle {
    dir: PathBuf,
    revision: watch::Receiver<u64>,
    errors: Arc<Mutex<Vec<FileError>>>,
    stop: mpsc::Sender<Wake>,
    thread: Option<JoinHandle<()>>,
}

impl LocalSourceHandle {
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A receiver of the index revision: it moves on after every write that changed the
    /// index (1 after the first sync). Read the index after `changed()` returns.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.revision.clone()
    }

    /// The problems in force now, in file and line order: broken files (whose last good
    /// objects stay in force), names defined in two files, an unreadable directory. A fixed
    /// file's error is gone after the next poll.
    pub fn current_errors(&self) -> Vec<FileError> {
        self.errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops polling and waits for the thread to end (at most one poll's work).
    pub fn stop(mut self) {
        let _ = self.stop.send(Wake::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for LocalSourceHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(Wake::Stop); // the thread ends at its next wake-up, at once
    }
}

/// Watches `dir` (not its subdirectories) and sends [`Wake::Changed`] on every change (an
/// error too: a poll then finds out what happened).
/// Without notifications (none on this file system, or the inotify limit reached) the
/// source still works by polling, so this only warns.
fn watch_dir(dir: &Path, wake: mpsc::Sender<Wake>) -> Option<notify::RecommendedWatcher> {
    use notify::EventKind;
    use notify::Watcher as _;
    use notify::event::{ModifyKind, RenameMode};
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Opening a file is reported too, and this source's own reads would wake it again.
        let access = matches!(&event, Ok(e) if matches!(e.kind, EventKind::Access(_)));
        if access {
            return;
        }
        // A file renamed into the directory (the last path: `Both` lists from, then to).
        let placed = match event {
            Ok(notify::Event {
                kind: EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)),
                mut paths,
                ..
            }) => paths.pop().into_iter().collect(),
            _ => Vec::new(),
        };
        let _ = wake.send(Wake::Changed { placed });
    })
    .and_then(|mut watcher| {
        watcher.watch(dir, notify::RecursiveMode::NonRecursive)?;
        Ok(watcher)
    });
    match watcher {
        Ok(watcher) => Some(watcher),
        Err(err) => {
            tracing::warn!(dir = %dir.display(), %err, "no change notifications; polling only");
            None
        }
    }
}

struct Worker {
    scanner: DirScanner,
    state: LocalState,
    index: SharedIndex,
    revision: watch::Sender<u64>,
    errors: Arc<Mutex<Vec<FileError>>>,
    /// Why the directory could not be listed on the last poll.
    dir_error: Option<String>,
}

impl Worker {
    fn first_sync(&mut self) -> io::Result<()> {
        let events = self.scanner.scan_all()?;
        let update = self.state.update(events);
        self.log(&update);
        self.state
            .apply_to(&mut self.index.lock().unwrap_or_else(PoisonError::into_inner));
        tracing::info!(
            dir = %self.scanner.dir().display(),
            objects = self.state.objects().count(),
            errors = self.state.errors().len(),
            "local source synced"
        );
        self.revision.send_modify(|revision| *revision += 1);
        self.publish_errors();
        Ok(())
    }

    /// `complete`: files known to be whole (renamed into place), read without waiting for
    /// them to settle.
    fn poll(&mut self, complete: &BTreeSet<PathBuf>) {
        let events = match self.scanner.poll(complete) {
            Ok(events) => events,
            Err(err) => {
                let reason = err.to_string();
                if self.dir_error.as_ref() != Some(&reason) {
                    let dir = self.scanner.dir().display();
                    tracing::warn!(
                        "{dir}: cannot list the config directory ({reason}); keeping the config read so far"
                    );
                    self.dir_error = Some(reason);
                    self.publish_errors();
                }
                return;
            }
        };
        if self.dir_error.take().is_some() {
            tracing::info!(
                "{}: config directory readable again",
                self.scanner.dir().display()
            );
            self.publish_errors();
        }
        if events.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let update = self.state.update(events);
        self.log(&update);
        if !update.changed {
            return;
        }
        let change = self.state.apply_keys(
            &update.touched,
            &mut self.index.lock().unwrap_or_else(PoisonError::into_inner),
        );
        if !change.is_empty() {
            tracing::info!(
                changed = change.changed.len(),
                deleted = change.deleted.len(),
                elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
                "local config changed"
            );
            self.revision.send_modify(|revision| *revision += 1);
        }
        self.publish_errors();
    }

    fn log(&self, update: &Update) {
        for error in &update.new_errors {
            tracing::warn!("{error}");
        }
        // A file still broken in a new way has a new error; only a fixed file is "resolved".
        let still_broken = |e: &FileError| update.new_errors.iter().any(|n| n.file == e.file);
        for error in update.cleared_errors.iter().filter(|e| !still_broken(e)) {
            tracing::info!("resolved: {error}");
        }
        for (file, skipped) in &update.skipped {
            tracing::warn!(
                "{}:{}: skipped {} {}: not a kind weft reads (supported: {})",
                file.display(),
                skipped.line,
                skipped.api_version,
                skipped.kind,
                super::SUPPORTED_KINDS
            );
        }
    }

    fn publish_errors(&self) {
        let mut errors = self.state.errors().to_vec();
        if let Some(reason) = &self.dir_error {
            let dir = self.scanner.dir();
            errors.insert(
                0,
                FileError::new(dir, Problem::DirectoryUnreadable(reason.clone())),
            );
        }
        *self.errors.lock().unwrap_or_else(PoisonError::into_inner) = errors;
    }
}
