//! Envoy's protobuf descriptors, to check that JSON really is Envoy's proto3 JSON (field
//! names, types, `@type` of `Any`s) the way Envoy's own parser would: they come from the
//! descriptor set the `envoy-types` crate ships (`src/generated/types.bin`), found in Cargo's
//! registry sources at the version Cargo.lock pins.

use std::path::PathBuf;
use std::sync::OnceLock;

use anyhow::Context as _;
use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage};

/// The descriptor pool of every Envoy API type (loaded once; panics, naming the path, when
/// the descriptor set cannot be found).
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        let path = descriptor_set_path().expect("find envoy-types' descriptor set");
        let bytes = std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
        DescriptorPool::decode(bytes.as_slice())
            .unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    })
}

/// Parses `json` as the proto3 JSON of message `type_name` (e.g. `envoy.admin.v3.ConfigDump`),
/// rejecting unknown fields.
pub fn parse_json(type_name: &str, json: &str) -> anyhow::Result<DynamicMessage> {
    let descriptor = pool()
        .get_message_by_name(type_name)
        .with_context(|| format!("no message {type_name} in Envoy's descriptors"))?;
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let message = DynamicMessage::deserialize_with_options(
        descriptor,
        &mut deserializer,
        &DeserializeOptions::new().deny_unknown_fields(true),
    )
    .with_context(|| format!("not {type_name} proto3 JSON"))?;
    deserializer.end()?;
    Ok(message)
}

fn descriptor_set_path() -> anyhow::Result<PathBuf> {
    let lock_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock");
    let lock = std::fs::read_to_string(lock_path).context("reading Cargo.lock")?;
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("\nname = \"envoy-types\"\n"))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_owned())
        .context("envoy-types is not in Cargo.lock")?;
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set")?;
    let sources = cargo_home.join("registry/src");
    let relative = format!("envoy-types-{version}/src/generated/types.bin");
    std::fs::read_dir(&sources)
        .with_context(|| format!("reading {}", sources.display()))?
        .filter_map(Result::ok)
        .map(|index| index.path().join(&relative))
        .find(|path| path.exists())
        .with_context(|| format!("no {relative} under {}", sources.display()))
}
