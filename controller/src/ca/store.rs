//! The CA in files (synchronous): a generated root persisted in a state directory
//! (`ca.crt`, `ca.key`), and an operator's CA in a directory in cert-manager's shape
//! (`tls.crt`, `tls.key`, optional `ca.crt`, as a mounted Secret looks).

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use super::{CaError, CertificateAuthority};

/// Whether the CA was made by this call or was already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// Generated now (and persisted).
    Created,
    /// Read back from where an earlier run (or another replica) persisted it.
    Loaded,
}

const ROOT_CERT_FILE: &str = "ca.crt";
const ROOT_KEY_FILE: &str = "ca.key";

/// The root CA persisted in `state_dir`, generated and written there on first use.
///
/// `ca.crt` is written last and is what says "a CA is here": a crash before it is renamed
/// into place leaves at most a key nobody was ever given a certificate for, which the next
/// run replaces. Each file is written to a temporary name, synced and renamed, so neither is
/// ever seen half-written. One process owns the directory; two controllers sharing it
/// could both generate.
pub fn load_or_create_in_dir(
    state_dir: &Path,
    trust_domain: &str,
) -> Result<(CertificateAuthority, Created), CaError> {
    let cert_path = state_dir.join(ROOT_CERT_FILE);
    let key_path = state_dir.join(ROOT_KEY_FILE);
    if let Some(cert) = read_optional(&cert_path)? {
        let Some(key) = read_optional(&key_path)? else {
            return Err(CaError::invalid(
                key_path.display().to_string(),
                "missing while ca.crt is present: restore the key, or delete ca.crt to have a \
                 new root generated (every workload must then get new certificates)",
            ));
        };
        let ca =
            CertificateAuthority::from_pem(&cert, &key, None, trust_domain).map_err(|err| {
                err.located(|what| match what {
                    "tls.crt" => cert_path.display().to_string(),
                    "tls.key" => key_path.display().to_string(),
                    other => format!("{} ({other})", state_dir.display()),
                })
            })?;
        return Ok((ca, Created::Loaded));
    }

    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(io_error(state_dir))?;
    let ca = CertificateAuthority::generate(trust_domain)?;
    write_atomically(&key_path, ca.key_pem(), 0o600)?;
    write_atomically(&cert_path, ca.cert_pem(), 0o644)?;
    // The renames are durable only once the directory entry is.
    fs::File::open(state_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(io_error(state_dir))?;
    Ok((ca, Created::Created))
}

/// An operator's CA from `dir`: `tls.crt`, `tls.key` and, for an intermediate, `ca.crt`.
pub fn load_user_files(dir: &Path, trust_domain: &str) -> Result<CertificateAuthority, CaError> {
    let read = |name: &str| {
        let path = dir.join(name);
        fs::read_to_string(&path).map_err(io_error(&path))
    };
    let cert = read("tls.crt")?;
    let key = read("tls.key")?;
    let bundle = read_optional(&dir.join("ca.crt"))?;
    CertificateAuthority::from_pem(&cert, &key, bundle.as_deref(), trust_domain)
        .map_err(|err| err.located(|what| dir.join(what).display().to_string()))
}

/// The file's text, or `None` when it does not exist.
fn read_optional(path: &Path) -> Result<Option<String>, CaError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(CaError::Io {
            path: path.to_owned(),
            source: err,
        }),
    }
}

/// Writes `contents` to `path` through a temporary file created with `mode` (so a key is
/// never readable by others, not even for a moment) and renamed over `path`.
fn write_atomically(path: &Path, contents: &str, mode: u32) -> Result<(), CaError> {
    let file_name = path
        .file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = path.with_file_name(format!(".{file_name}.tmp"));
    // A leftover from a crash would make create_new fail, and could have looser permissions.
    match fs::remove_file(&temp) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => {
            return Err(CaError::Io {
                path: temp,
                source: err,
            });
        }
        _ => {}
    }
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)
        .and_then(|mut file| {
            file.write_all(contents.as_bytes())?;
            file.sync_all()
        })
        .and_then(|()| fs::rename(&temp, path));
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(CaError::Io {
            path: path.to_owned(),
            source: err,
        });
    }
    Ok(())
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> CaError {
    let path: PathBuf = path.to_owned();
    move |source| CaError::Io { path, source }
}
