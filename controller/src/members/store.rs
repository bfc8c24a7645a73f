//! Local mode: the mesh's members kept in `<state dir>/members.json` across restarts. A
//! restarted controller remembers them (they linger like proxies that just left), so the
//! first proxy to reconnect is not told that its `Strict` servers speak plaintext before
//! they have reconnected too. A missing or unreadable file means no memory: a warning,
//! never a failed start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;

use crate::ads::ProxyRegistry;
use crate::translate::Members;

/// The file, in the state directory.
pub const MEMBERS_FILE: &str = "members.json";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a members file: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
}

/// The members in `path`; none when the file does not exist.
pub fn load(path: &Path) -> Result<Members, StoreError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Members::new()),
        Err(source) => return Err(io(path, source)),
    };
    serde_json::from_str(&text).map_err(|source| StoreError::Parse {
        path: path.display().to_string(),
        source,
    })
}

/// Writes `members` to `path` (a temporary file renamed over it, so a crash never leaves
/// half a file).
pub fn save(path: &Path, members: &Members) -> Result<(), StoreError> {
    let text = serde_json::to_string_pretty(members).map_err(|source| StoreError::Parse {
        path: path.display().to_string(),
        source,
    })?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, text).map_err(|source| io(&partial, source))?;
    std::fs::rename(&partial, path).map_err(|source| io(path, source))
}

/// Remembers the members kept in `state_dir`, then keeps the file current as members
/// change (until the registry goes away).
pub fn restore_and_keep(state_dir: &Path, registry: &Arc<ProxyRegistry>) {
    let path: PathBuf = state_dir.join(MEMBERS_FILE);
    if let Err(err) = std::fs::create_dir_all(state_dir) {
        tracing::warn!(%err, dir = %state_dir.display(), "cannot create the state directory");
    }
    match load(&path) {
        Ok(members) if !members.is_empty() => {
            tracing::info!(count = members.len(), path = %path.display(), "remembered the mesh's members from before the restart");
            registry.remember(members);
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(%err, "ignoring the remembered mesh members"),
    }
    let mut members: watch::Receiver<Members> = registry.members();
    tokio::spawn(async move {
        while members.changed().await.is_ok() {
            let current = members.borrow_and_update().clone();
            if let Err(err) = save(&path, &current) {
                tracing::warn!(%err, "cannot keep the mesh's members for a restart");
            }
        }
    });
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::translate::Member;

    #[test]
    fn members_round_trip_and_a_missing_file_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MEMBERS_FILE);
        assert!(load(&path).unwrap().is_empty());
        let member = Member {
            namespace: "default".into(),
            labels: [("app".to_owned(), "greeter".to_owned())].into(),
            inbound_addr: Some("127.0.0.1:15006".parse().unwrap()),
            pod_ip: None,
        };
        let members = Members::from([("greeter-0.default".to_owned(), member)]);
        save(&path, &members).unwrap();
        assert_eq!(load(&path).unwrap(), members);
    }

    #[test]
    fn a_corrupt_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MEMBERS_FILE);
        std::fs::write(&path, "{not json").unwrap();
        let err = load(&path).unwrap_err().to_string();
        assert!(err.contains("members.json: not a members file"), "{err}");
    }
}
