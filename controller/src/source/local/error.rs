//! What can be wrong with a file in the config directory, and where.

use std::fmt;
use std::path::PathBuf;

use crate::model::{Kind, ObjectKey};

/// The kinds a config directory may hold, as said in error messages.
pub const SUPPORTED_KINDS: &str = "v1 Service, discovery.k8s.io/v1 EndpointSlice, \
     weft.dev/v1alpha1 GrpcRoute, weft.dev/v1alpha1 FaultInjection, weft.dev/v1alpha1 MtlsPolicy, \
     weft.dev/v1alpha1 BackendPolicy";

/// One problem in one file. Displays as `file:line:column: problem`, the form editors and
/// terminals link to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileError {
    pub file: PathBuf,
    /// 1-based; `None` when the problem is the whole file (it cannot be read).
    pub line: Option<usize>,
    /// 1-based, in characters; `None` when only the line is known.
    pub column: Option<usize>,
    pub problem: Problem,
}

impl FileError {
    pub(crate) fn new(file: impl Into<PathBuf>, problem: Problem) -> Self {
        Self {
            file: file.into(),
            line: None,
            column: None,
            problem,
        }
    }

    pub(crate) fn at(mut self, line: usize, column: Option<usize>) -> Self {
        self.line = Some(line);
        self.column = column;
        self
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.problem)
    }
}

impl std::error::Error for FileError {}

/// What is wrong. (Object keys are boxed to keep [`FileError`] small.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// The file could not be read, or is not UTF-8.
    #[error("cannot read the file: {0}")]
    Unreadable(String),
    /// The text is not valid YAML.
    #[error("YAML syntax error: {0}")]
    Syntax(String),
    /// The document is not a Kubernetes object (not a mapping, no `apiVersion` or `kind`).
    #[error("not a Kubernetes object: {0}")]
    NotAnObject(String),
    /// A kind weft reads, or the `weft.dev` group, with an apiVersion/kind pair it does not.
    #[error("unsupported apiVersion/kind {api_version} {kind}; supported: {SUPPORTED_KINDS}")]
    UnsupportedKind { api_version: String, kind: String },
    /// The document does not deserialize into its kind's type.
    #[error("invalid {}{}: {message}", kind.name(), field.as_ref().map(|f| format!(" at {f}")).unwrap_or_default())]
    Invalid {
        kind: Kind,
        field: Option<String>,
        message: String,
    },
    /// A field the kind does not have (a typo, or a field of another version).
    #[error("{}: unknown field {field}", kind.name())]
    UnknownField { kind: Kind, field: String },
    #[error("{} has no metadata.name", kind.name())]
    MissingName { kind: Kind },
    /// The same object twice in one file.
    #[error("{key} is defined twice in this file (first at line {first_line})")]
    DuplicateInFile {
        key: Box<ObjectKey>,
        first_line: usize,
    },
    /// An object another file already defines; this definition is ignored.
    #[error("{key} is already defined in {}:{owner_line}; this definition is ignored", owner.display())]
    DefinedElsewhere {
        key: Box<ObjectKey>,
        owner: PathBuf,
        owner_line: usize,
    },
    /// The directory itself could not be listed; everything read before stays in force.
    #[error("cannot list the directory: {0}")]
    DirectoryUnreadable(String),
}
