//! Finds the real components installed by `tests/env/setup.sh`. A missing component is a
//! loud failure that says how to install it — tests never skip.

use std::path::PathBuf;

/// The directory holding links to every installed component: `$WEFT_TOOLS_BIN`, else
/// `$WEFT_CACHE/tools/bin`, else `~/.cache/weft/tools/bin` (the setup script's default).
pub fn tools_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("WEFT_TOOLS_BIN") {
        return dir.into();
    }
    let cache = std::env::var_os("WEFT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
            PathBuf::from(home).join(".cache/weft")
        });
    cache.join("tools/bin")
}

/// The path of component `name` (for example `etcd`, `envoy`, `interop_client`).
///
/// # Panics
/// When the component is not installed: the message names it and the install command.
pub fn tool(name: &str) -> PathBuf {
    let path = tools_dir().join(name);
    assert!(
        path.exists(),
        "test component `{name}` is missing at {}: run tests/env/setup.sh (the README's test command does)",
        path.display()
    );
    path
}
