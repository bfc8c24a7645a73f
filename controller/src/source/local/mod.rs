//! The local source: a directory of YAML files holding the same kinds as a cluster
//! (`v1` Service, `discovery.k8s.io/v1` EndpointSlice, `weft.dev/v1alpha1` GrpcRoute,
//! FaultInjection, MtlsPolicy, BackendPolicy), so a demo config moves to a cluster as is.
//!
//! Split into a pure, synchronous core and a thin I/O layer:
//! - [`parse_file`] turns one file's text into objects, or one [`FileError`] that names the
//!   file, line and column and says what is wrong;
//! - [`LocalState`] keeps, per file, its last good objects and its current error, resolves
//!   names defined in more than one file, and writes the result to the [`Index`];
//! - [`LocalSource`] polls the directory on its own thread and feeds file events to the state.
//!
//! What is read, and how:
//! - Files directly in the directory whose names end in `.yaml` or `.yml`. Subdirectories
//!   and hidden files (names starting with `.`: editor lock files, a Kubernetes ConfigMap
//!   volume's `..data`) are ignored; symlinks are followed.
//! - A file holds any number of documents separated by `---`. Empty documents are skipped;
//!   so are documents of kinds weft does not read (a Deployment, a ConfigMap: a demo
//!   directory may hold other YAML), with a warning. A known kind under the wrong
//!   `apiVersion`, an unknown `weft.dev` kind, or a document without `apiVersion`/`kind` is an
//!   error.
//! - A file is the unit of change: if any document in it is wrong, none of the file's new
//!   content is used and its last good objects stay in force until it is fixed. A removed
//!   file removes its objects.
//! - Unknown fields are errors, as with `kubectl apply`'s strict validation, so a typo never
//!   silently drops a setting.
//! - A name (kind, namespace, name) defined in two files belongs to the file that already
//!   had it, else to the first file in path order; the other definition is reported as an
//!   error on its own file and ignored, while the rest of that file applies.
//! - Change detection: the directory is watched (inotify), and polled every 250 ms as a
//!   fallback (a symlinked file's target outside the directory, a file system without
//!   notifications). A change, or a removal, is acted on once it has looked the same on two
//!   polls in a row, so a half-written file or the gap in a non-atomic save is not loaded.
//!   A notification triggers a poll at once and, while something is settling, polls follow
//!   every 10 ms: a saved file is in the index within a few tens of milliseconds (about
//!   half a second without notifications).

mod error;
mod parse;
mod run;
mod scan;
mod split;
mod state;

#[cfg(test)]
mod parse_tests;
#[cfg(test)]
mod state_tests;

pub use error::{FileError, Problem, SUPPORTED_KINDS};
pub use parse::{LocatedObject, ParsedFile, SkippedDocument, parse_file};
pub use run::{DEFAULT_POLL_INTERVAL, LocalSource, LocalSourceError, LocalSourceHandle};
pub use scan::DirScanner;
pub use state::{FileEvent, LocalState, Update};

#[cfg(doc)]
use crate::model::Index;
