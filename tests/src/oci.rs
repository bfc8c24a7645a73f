//! Reads an OCI image layout archive without Docker: unpacks the archive, follows
//! index.json → manifest → config and layer blobs (each checked against its digest and
//! size), and applies the layers in order to a root filesystem directory. Uses the
//! machine's `tar`, `gzip` and `sha256sum`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail, ensure};
use serde_json::Value;

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const GZIP_LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An unpacked OCI image layout directory.
#[derive(Debug)]
pub struct Layout {
    dir: PathBuf,
}

/// A content descriptor: what a manifest or index says about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    pub annotations: serde_json::Map<String, Value>,
}

/// The one image an index names, read and verified.
#[derive(Debug)]
pub struct Image {
    /// The manifest's descriptor in index.json (its digest is the image digest).
    pub descriptor: Descriptor,
    pub manifest: Value,
    pub config_descriptor: Descriptor,
    pub config: Value,
    pub layers: Vec<Descriptor>,
}

impl Layout {
    /// Unpacks `archive` (a tar of an OCI layout) into `dir`, which must not exist yet.
    pub fn unpack(archive: &Path, dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir(dir).with_context(|| format!("create {}", dir.display()))?;
        run(Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(dir))?;
        Ok(Self::open(dir))
    }

    pub fn open(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The `oci-layout` file's `imageLayoutVersion`.
    pub fn layout_version(&self) -> anyhow::Result<String> {
        let value = read_json(&self.dir.join("oci-layout"))?;
        value["imageLayoutVersion"]
            .as_str()
            .map(str::to_string)
            .context("oci-layout has no imageLayoutVersion")
    }

    /// The path of a blob, after checking its size and SHA-256 digest.
    pub fn verified_blob(&self, descriptor: &Descriptor) -> anyhow::Result<PathBuf> {
        let hex = descriptor
            .digest
            .strip_prefix("sha256:")
            .with_context(|| format!("{}: not a sha256 digest", descriptor.digest))?;
        let path = self.dir.join("blobs/sha256").join(hex);
        let size = std::fs::metadata(&path)
            .with_context(|| format!("blob {} is missing", descriptor.digest))?
            .len();
        ensure!(
            size == descriptor.size,
            "blob {} is {size} bytes, its descriptor says {}",
            descriptor.digest,
            descriptor.size
        );
        let actual = sha256_file(&path)?;
        ensure!(
            actual == descriptor.digest,
            "blob {} hashes to {actual}",
            descriptor.digest
        );
        Ok(path)
    }

    /// Reads the index, which must name exactly one image, and that image's manifest and
    /// config, verifying every blob.
    pub fn single_image(&self) -> anyhow::Result<Image> {
        let index = read_json(&self.dir.join("index.json"))?;
        ensure!(
            index["schemaVersion"] == 2,
            "index.json schemaVersion: {}",
            index["schemaVersion"]
        );
        let manifests = index["manifests"]
            .as_array()
            .context("index.json has no manifests")?;
        ensure!(
            manifests.len() == 1,
            "index.json names {} manifests, expected one",
            manifests.len()
        );
        let descriptor = parse_descriptor(&manifests[0])?;
        ensure!(
            descriptor.media_type == MANIFEST_MEDIA_TYPE,
            "index names a {}, not an image manifest",
            descriptor.media_type
        );
        let manifest = read_json(&self.verified_blob(&descriptor)?)?;
        let config_descriptor = parse_descriptor(&manifest["config"]).context("manifest config")?;
        let config = read_json(&self.verified_blob(&config_descriptor)?)?;
        let layers = manifest["layers"]
            .as_array()
            .context("manifest has no layers")?
            .iter()
            .map(parse_descriptor)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Image {
            descriptor,
            manifest,
            config_descriptor,
            config,
            layers,
        })
    }

    /// Applies the image's gzip layers in order to `rootfs` (which must not exist yet),
    /// checking each layer's uncompressed digest against the config's `diff_ids`. Whiteout
    /// files (deletions in later layers) are refused rather than interpreted.
    pub fn extract_rootfs(&self, image: &Image, rootfs: &Path) -> anyhow::Result<()> {
        let diff_ids = image.config["rootfs"]["diff_ids"]
            .as_array()
            .context("config has no rootfs.diff_ids")?;
        ensure!(
            diff_ids.len() == image.layers.len(),
            "{} diff_ids for {} layers",
            diff_ids.len(),
            image.layers.len()
        );
        std::fs::create_dir(rootfs).with_context(|| format!("create {}", rootfs.display()))?;
        for (layer, diff_id) in image.layers.iter().zip(diff_ids) {
            ensure!(
                layer.media_type == GZIP_LAYER_MEDIA_TYPE,
                "layer {} is a {}, expected gzip",
                layer.digest,
                layer.media_type
            );
            let blob = self.verified_blob(layer)?;
            let uncompressed = sha256_of_command(Command::new("gzip").arg("-dc").arg(&blob))?;
            ensure!(
                diff_id.as_str() == Some(uncompressed.as_str()),
                "layer {} uncompresses to {uncompressed}, config says {diff_id}",
                layer.digest
            );
            let listing = run(Command::new("tar").arg("-tzf").arg(&blob))?;
            if let Some(whiteout) = listing.lines().find(|entry| {
                entry
                    .rsplit('/')
                    .next()
                    .is_some_and(|n| n.starts_with(".wh."))
            }) {
                bail!("layer {} has a whiteout ({whiteout})", layer.digest);
            }
            run(Command::new("tar")
                .args(["--numeric-owner", "--same-permissions", "-xzf"])
                .arg(&blob)
                .arg("-C")
                .arg(rootfs))?;
        }
        Ok(())
    }
}

fn parse_descriptor(value: &Value) -> anyhow::Result<Descriptor> {
    Ok(Descriptor {
        media_type: value["mediaType"]
            .as_str()
            .with_context(|| format!("descriptor without mediaType: {value}"))?
            .to_string(),
        digest: value["digest"]
            .as_str()
            .with_context(|| format!("descriptor without digest: {value}"))?
            .to_string(),
        size: value["size"]
            .as_u64()
            .with_context(|| format!("descriptor without size: {value}"))?,
        annotations: value["annotations"]
            .as_object()
            .cloned()
            .unwrap_or_default(),
    })
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// `sha256:<hex>` of a file.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let out = run(Command::new("sha256sum").arg(path))?;
    hex_digest(&out)
}

/// `sha256:<hex>` of what `command` prints.
fn sha256_of_command(command: &mut Command) -> anyhow::Result<String> {
    let mut producer = command
        .stdout(std::process::Stdio::piped())
        .spawn()
        .with_context(|| format!("start {command:?}"))?;
    let stdout = producer.stdout.take().context("no stdout")?;
    let out = Command::new("sha256sum")
        .stdin(stdout)
        .output()
        .context("run sha256sum")?;
    let status = producer.wait()?;
    ensure!(status.success(), "{command:?} failed: {status}");
    ensure!(out.status.success(), "sha256sum failed");
    hex_digest(&String::from_utf8_lossy(&out.stdout))
}

fn hex_digest(sha256sum_output: &str) -> anyhow::Result<String> {
    let hex = sha256sum_output
        .split_whitespace()
        .next()
        .filter(|hex| hex.len() == 64)
        .with_context(|| format!("unexpected sha256sum output {sha256sum_output:?}"))?;
    Ok(format!("sha256:{hex}"))
}

/// Runs a command to completion; its stdout, or an error with its stderr.
fn run(command: &mut Command) -> anyhow::Result<String> {
    let out = command
        .output()
        .with_context(|| format!("start {command:?}"))?;
    ensure!(
        out.status.success(),
        "{command:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
