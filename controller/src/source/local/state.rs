//! The pure core of the local source: per file, the last good objects and the current error;
//! across files, who owns each name; and the objects in force, written to the index.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{FileError, Problem};
use super::parse::{LocatedObject, SkippedDocument, parse_file};
use crate::model::{Index, IndexChange, Kind, Object, ObjectKey};

/// What the directory scan saw happen to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileEvent {
    /// The file exists with this text (new, changed, or re-read unchanged).
    Read { path: PathBuf, text: String },
    /// The file exists but cannot be read (permissions, not UTF-8).
    Unreadable { path: PathBuf, reason: String },
    /// The file is gone: its objects go too.
    Removed { path: PathBuf },
}

/// What one [`LocalState::update`] changed, for logging.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Update {
    /// Errors that were not there before.
    pub new_errors: Vec<FileError>,
    /// Errors that are gone (the file was fixed or removed).
    pub cleared_errors: Vec<FileError>,
    /// Documents of kinds weft does not read, in files parsed by this update.
    pub skipped: Vec<(PathBuf, SkippedDocument)>,
    /// The objects in force or the errors may have changed: write the objects to the index
    /// and publish the errors again.
    pub changed: bool,
    /// Every name defined, before or after, in a file this update parsed or removed: the
    /// only objects that can have changed ([`LocalState::apply_keys`]).
    pub touched: BTreeSet<ObjectKey>,
}

#[derive(Debug, Default)]
struct FileState {
    /// The text last read, to skip parsing an unchanged file.
    text: Option<String>,
    /// The last good parse, by key: these stay in force while the file is broken.
    good: BTreeMap<ObjectKey, LocatedObject>,
    /// Why the current text is not in force.
    error: Option<FileError>,
}

/// The local source's state; no I/O. Feed it [`FileEvent`]s, then write it to an [`Index`].
#[derive(Debug, Default)]
pub struct LocalState {
    files: BTreeMap<PathBuf, FileState>,
    /// The file each object in force comes from.
    owners: BTreeMap<ObjectKey, PathBuf>,
    errors: Vec<FileError>,
}

impl LocalState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies what happened to files since the last update: a changed file is parsed, and
    /// only replaces its objects if it parses; a removed file's objects go. Then decides who
    /// owns each name and recomputes the errors.
    pub fn update(&mut self, events: impl IntoIterator<Item = FileEvent>) -> Update {
        let mut update = Update::default();
        for event in events {
            match event {
                FileEvent::Read { path, text } => {
                    let file = self.files.entry(path.clone()).or_default();
                    if file.text.as_ref() == Some(&text) {
                        continue;
                    }
                    match parse_file(&path, &text) {
                        Ok(parsed) => {
                            update.touched.extend(file.good.keys().cloned());
                            file.good = parsed
                                .objects
                                .into_iter()
                                .map(|o| (o.object.key(), o))
                                .collect();
                            update.touched.extend(file.good.keys().cloned());
                            file.error = None;
                            update
                                .skipped
                                .extend(parsed.skipped.into_iter().map(|s| (path.clone(), s)));
                        }
                        Err(error) => file.error = Some(error),
                    }
                    file.text = Some(text);
                    update.changed = true;
                }
                FileEvent::Unreadable { path, reason } => {
                    let file = self.files.entry(path.clone()).or_default();
                    let error = Some(FileError::new(path, Problem::Unreadable(reason)));
                    if file.text.is_none() && file.error == error {
                        continue;
                    }
                    file.text = None;
                    file.error = error;
                    update.changed = true;
                }
                FileEvent::Removed { path } => {
                    if let Some(file) = self.files.remove(&path) {
                        update.touched.extend(file.good.into_keys());
                        update.changed = true;
                    }
                }
            }
        }
        if update.changed {
            let errors = self.resolve();
            update.new_errors = errors
                .iter()
                .filter(|e| !self.errors.contains(e))
                .cloned()
                .collect();
            update.cleared_errors = self
                .errors
                .iter()
                .filter(|e| !errors.contains(e))
                .cloned()
                .collect();
            self.errors = errors;
        }
        update
    }

    /// Assigns every name to one file: the file that had it keeps it, other names go to the
    /// first file in path order. Returns the errors: each file's own, then the ignored
    /// duplicate definitions, in file and line order.
    fn resolve(&mut self) -> Vec<FileError> {
        let mut owners: BTreeMap<ObjectKey, PathBuf> = BTreeMap::new();
        for (path, file) in &self.files {
            for key in file.good.keys() {
                if self.owners.get(key) == Some(path) {
                    owners.insert(key.clone(), path.clone());
                }
            }
        }
        let mut errors = Vec::new();
        for (path, file) in &self.files {
            errors.extend(file.error.clone());
            for (key, located) in &file.good {
                let owner = owners.entry(key.clone()).or_insert_with(|| path.clone());
                if owner != path {
                    let owner_line = self.files[owner.as_path()].good[key].line;
                    let problem = Problem::DefinedElsewhere {
                        key: Box::new(key.clone()),
                        owner: owner.clone(),
                        owner_line,
                    };
                    errors.push(FileError::new(path, problem).at(located.line, None));
                }
            }
        }
        errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
        self.owners = owners;
        errors
    }

    /// The object in force under `key`, if a file defines it.
    fn object(&self, key: &ObjectKey) -> Option<&Arc<Object>> {
        let path = self.owners.get(key)?;
        Some(&self.files[path.as_path()].good[key].object)
    }

    /// The objects in force, in key order.
    pub fn objects(&self) -> impl Iterator<Item = &Arc<Object>> {
        self.owners
            .iter()
            .map(|(key, path)| &self.files[path.as_path()].good[key].object)
    }

    /// Where the object in force under `key` is defined: its file and the line its
    /// document starts on.
    pub fn origin(&self, key: &ObjectKey) -> Option<(&Path, usize)> {
        let path = self.owners.get(key)?;
        let line = self.files.get(path)?.good.get(key)?.line;
        Some((path.as_path(), line))
    }

    /// The current problems, in file and line order; empty when every file is good.
    pub fn errors(&self) -> &[FileError] {
        &self.errors
    }

    /// Replaces every kind in the index with the objects in force, which marks every kind
    /// synced (even kinds no file defines). Reports only real differences.
    pub fn apply_to(&self, index: &mut Index) -> IndexChange {
        let mut by_kind: BTreeMap<Kind, Vec<Arc<Object>>> =
            Kind::ALL.iter().map(|k| (*k, Vec::new())).collect();
        for object in self.objects() {
            by_kind
                .entry(object.kind())
                .or_default()
                .push(object.clone());
        }
        let mut change = IndexChange::default();
        for (kind, objects) in by_kind {
            let IndexChange { changed, deleted } = index.reset(kind, objects);
            change.changed.extend(changed);
            change.deleted.extend(deleted);
        }
        change
    }

    /// Writes the objects in force under `keys` (an update's [`Update::touched`]) to an
    /// index that [`Self::apply_to`] filled before, and deletes those no file defines any
    /// more. With thousands of objects in a directory, rewriting every kind (cloning and
    /// comparing each object) for a one-file edit took longer than the translation after it.
    pub fn apply_keys<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a ObjectKey>,
        index: &mut Index,
    ) -> IndexChange {
        let mut change = IndexChange::default();
        for key in keys {
            change.merge(match self.object(key) {
                Some(object) => index.apply(object.clone()),
                None => index.delete(key),
            });
        }
        change
    }
}
