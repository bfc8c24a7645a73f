//! Local mode's stand-in for TokenReview: a file of `<token> <namespace>/<service-account>`
//! lines (blank lines and `#` comments ignored). It is read again when its modification time
//! changes, so tokens can be added while the controller runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use super::{AuthError, Identity};

#[derive(Debug)]
pub struct TokenFile {
    path: PathBuf,
    loaded: Mutex<(Option<SystemTime>, HashMap<String, Identity>)>,
}

/// A token file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("--token-file {path}: cannot read: {err}")]
    Read { path: String, err: std::io::Error },
    #[error("--token-file {path}:{line}: {problem}")]
    Line {
        path: String,
        line: usize,
        problem: String,
    },
}

impl TokenFile {
    /// Reads the file once now, so a broken file stops the controller at start.
    pub fn open(path: &Path) -> Result<Self, TokenFileError> {
        let file = Self {
            path: path.to_owned(),
            loaded: Mutex::new((None, HashMap::new())),
        };
        file.reload_if_changed()?;
        Ok(file)
    }

    pub(super) fn identity(&self, token: &str) -> Result<Identity, AuthError> {
        if let Err(err) = self.reload_if_changed() {
            tracing::warn!(%err, "cannot reload the token file; the previous tokens stay");
        }
        let loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        loaded
            .1
            .get(token)
            .cloned()
            .ok_or_else(|| AuthError::Refused("the token is not in the token file".into()))
    }

    fn reload_if_changed(&self) -> Result<(), TokenFileError> {
        let path = self.path.display().to_string();
        let read_err = |err| TokenFileError::Read {
            path: path.clone(),
            err,
        };
        let modified = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .map_err(read_err)?;
        let mut loaded = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        if loaded.0 == Some(modified) {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.path).map_err(read_err)?;
        *loaded = (Some(modified), parse(&text, &path)?);
        Ok(())
    }
}

fn parse(text: &str, path: &str) -> Result<HashMap<String, Identity>, TokenFileError> {
    let mut tokens = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fail = |problem: &str| TokenFileError::Line {
            path: path.to_owned(),
            line: number + 1,
            problem: problem.to_owned(),
        };
        let mut words = line.split_whitespace();
        let (Some(token), Some(who), None) = (words.next(), words.next(), words.next()) else {
            return Err(fail("expected `<token> <namespace>/<service-account>`"));
        };
        let Some((namespace, service_account)) = who.split_once('/') else {
            return Err(fail("the identity must be <namespace>/<service-account>"));
        };
        if namespace.is_empty() || service_account.is_empty() || service_account.contains('/') {
            return Err(fail("the identity must be <namespace>/<service-account>"));
        }
        let identity = Identity {
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        };
        if tokens.insert(token.to_owned(), identity).is_some() {
            return Err(fail("this token is listed twice"));
        }
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_tokens_and_reloads_on_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "# proxies\nt1 default/web\n\nt2 team-a/api\n").unwrap();
        let file = TokenFile::open(&path).unwrap();
        assert_eq!(file.identity("t2").unwrap().namespace, "team-a");
        assert!(matches!(file.identity("t3"), Err(AuthError::Refused(_))));
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, "t3 default/db\n").unwrap();
        assert_eq!(file.identity("t3").unwrap().service_account, "db");
        assert!(file.identity("t1").is_err(), "t1 was removed");
    }

    #[test]
    fn errors_name_file_and_line() {
        let err = parse("t1 default/web\nt2 nobody\n", "tokens").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--token-file tokens:2: the identity must be <namespace>/<service-account>"
        );
        let err = parse("t1 a/b\nt1 c/d\n", "tokens").unwrap_err();
        assert!(err.to_string().contains(":2: this token is listed twice"));
        assert!(parse("just-a-token\n", "f").is_err());
    }
}
