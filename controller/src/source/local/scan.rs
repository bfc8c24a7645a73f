//! Polls the config directory and turns what it sees into [`FileEvent`]s.
//!
//! Each poll lists the YAML files and their size and modification time. A file whose size
//! and time differ from the last poll is left until the next poll: it is read (or, if gone,
//! removed) only once it looked the same on two polls in a row, so a file in the middle of a
//! write, or missing for a moment during a non-atomic save, is not acted on. A file the
//! caller knows is whole (it was renamed into place) is read at once. A file modified
//! in the last two seconds is re-read on every poll (its text is compared, not parsed again),
//! which catches a second same-size write within the file system's timestamp granularity.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::state::FileEvent;

/// How recent a modification must be for the file to be re-read even if it looks unchanged.
const RECENT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    len: u64,
    modified: Option<SystemTime>,
}

#[derive(Debug, Default)]
struct Tracked {
    /// What the last poll saw; `None`: missing.
    polled: Option<Fingerprint>,
    /// What was last handed on as a [`FileEvent::Read`] or [`FileEvent::Unreadable`].
    delivered: Option<Fingerprint>,
    /// The last read failed: read again on every poll (a `chmod` does not change the
    /// fingerprint).
    unreadable: bool,
}

/// The directory scan; I/O only, no parsing.
#[derive(Debug)]
pub struct DirScanner {
    dir: PathBuf,
    tracked: BTreeMap<PathBuf, Tracked>,
    /// The last poll saw a file change: it is read once it looks the same on the next.
    settling: bool,
}

impl DirScanner {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            tracked: BTreeMap::new(),
            settling: false,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the last poll saw a file change that the next poll will act on once the
    /// file looks the same again (so the next poll should come soon).
    pub fn settling(&self) -> bool {
        self.settling
    }

    /// Reads every file now (the first full sync): no waiting for files to settle.
    pub fn scan_all(&mut self) -> io::Result<Vec<FileEvent>> {
        let listed = self.list()?;
        let mut events = Vec::new();
        for (path, fingerprint) in listed {
            let tracked = self.tracked.entry(path.clone()).or_default();
            tracked.polled = Some(fingerprint);
            if let Some(event) = read(&path) {
                tracked.delivered = Some(fingerprint);
                tracked.unreadable = matches!(event, FileEvent::Unreadable { .. });
                events.push(event);
            }
        }
        Ok(events)
    }

    /// One poll: events for the files that changed and have settled since the last poll,
    /// or that are in `complete` (renamed into place: whole, nothing to wait for).
    /// An error (the directory cannot be listed) changes nothing.
    pub fn poll(&mut self, complete: &BTreeSet<PathBuf>) -> io::Result<Vec<FileEvent>> {
        let listed = self.list()?;
        let paths: BTreeSet<PathBuf> = listed.keys().chain(self.tracked.keys()).cloned().collect();
        let now = SystemTime::now();
        let mut events = Vec::new();
        self.settling = false;
        for path in paths {
            let current = listed.get(&path).copied();
            let tracked = self.tracked.entry(path.clone()).or_default();
            let previous = std::mem::replace(&mut tracked.polled, current);
            if current != previous && !(current.is_some() && complete.contains(&path)) {
                self.settling = true;
                continue; // changed since the last poll: wait for it to settle
            }
            match current {
                None => {
                    if tracked.delivered.is_some() {
                        events.push(FileEvent::Removed { path: path.clone() });
                    }
                    self.tracked.remove(&path);
                }
                Some(fingerprint) => {
                    let recent = fingerprint
                        .modified
                        .and_then(|m| now.duration_since(m).ok())
                        .is_none_or(|age| age < RECENT);
                    if tracked.delivered == Some(fingerprint) && !recent && !tracked.unreadable {
                        continue;
                    }
                    match read(&path) {
                        Some(event) => {
                            tracked.delivered = Some(fingerprint);
                            tracked.unreadable = matches!(event, FileEvent::Unreadable { .. });
                            events.push(event);
                        }
                        None => tracked.polled = None, // gone between listing and reading
                    }
                }
            }
        }
        Ok(events)
    }

    /// The YAML files directly in the directory (not hidden, symlinks followed).
    fn list(&self) -> io::Result<BTreeMap<PathBuf, Fingerprint>> {
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let yaml = name.ends_with(".yaml") || name.ends_with(".yml");
            if name.starts_with('.') || !yaml {
                continue;
            }
            let path = entry.path();
            // A dangling symlink or a file removed since the listing counts as missing.
            let Ok(metadata) = std::fs::metadata(&path) else {
                continue;
            };
            if metadata.is_file() {
                let fingerprint = Fingerprint {
                    len: metadata.len(),
                    modified: metadata.modified().ok(),
                };
                files.insert(path, fingerprint);
            }
        }
        Ok(files)
    }
}

/// Reads one file; `None` if it no longer exists.
fn read(path: &Path) -> Option<FileEvent> {
    let path = path.to_path_buf();
    match std::fs::read(&path) {
        Ok(bytes) => Some(match String::from_utf8(bytes) {
            Ok(text) => FileEvent::Read { path, text },
            Err(err) => FileEvent::Unreadable {
                path,
                reason: format!("not UTF-8: {}", err.utf8_error()),
            },
        }),
        Err(err) if err.kind() == io::ErrorKind::NotFound => None,
        Err(err) => Some(FileEvent::Unreadable {
            path,
            reason: err.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_paths(events: &[FileEvent]) -> Vec<&Path> {
        events
            .iter()
            .filter_map(|event| match event {
                FileEvent::Read { path, .. } => Some(path.as_path()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_changed_file_is_read_once_settled_and_a_file_renamed_into_place_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("routes.yaml");
        std::fs::write(&file, "a: 1\n").unwrap();
        let mut scanner = DirScanner::new(dir.path());
        assert_eq!(read_paths(&scanner.scan_all().unwrap()), [file.as_path()]);
        let none = BTreeSet::new();

        std::fs::write(&file, "a: 22\n").unwrap();
        assert!(scanner.poll(&none).unwrap().is_empty(), "still settling");
        assert!(scanner.settling());
        assert_eq!(read_paths(&scanner.poll(&none).unwrap()), [file.as_path()]);

        let staged = dir.path().join(".routes.yaml.tmp");
        std::fs::write(&staged, "a: 333\n").unwrap();
        std::fs::rename(&staged, &file).unwrap();
        let placed = BTreeSet::from([file.clone()]);
        let events = scanner.poll(&placed).unwrap();
        assert_eq!(read_paths(&events), [file.as_path()], "no settling");
        assert!(matches!(&events[0], FileEvent::Read { text, .. } if text == "a: 333\n"));
    }
}
