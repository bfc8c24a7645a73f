//! The container image as `scripts/image` builds it offline: an OCI layout archive that
//! unpacks without Docker into a root filesystem from which both release binaries run as
//! the image's non-root user (chroot, so these tests need root, as CI has), with the
//! config and name the Helm chart relies on, and that crane can push to a registry. The
//! image's `weft-proxy init` (the injected init container) programs its rules with the
//! image's own iptables in a network namespace the test makes, with both backends.
//!
//! The image is built once per test binary (a release build of both binaries, then the
//! archive) into `target/image/test/`.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use weft_tests::netns::Netns;
use weft_tests::oci::{self, CONFIG_MEDIA_TYPE, Layout, MANIFEST_MEDIA_TYPE};
use weft_tests::process::{Process, free_port, wait_until};
use weft_tests::tools::tool;

const VERSION: &str = env!("CARGO_PKG_VERSION");
const USER: &str = "1337:1337";
/// The image's PATH (Debian's default, as in the Dockerfile's debian:12-slim runtime): it
/// must hold /usr/sbin, where `weft-proxy init` finds iptables-save and iptables-restore.
const IMAGE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const BINARIES: [&str; 2] = ["weft-controller", "weft-proxy"];

/// The image built by `scripts/image`, unpacked.
struct Built {
    /// What the script printed on its `image:` and `digest:` lines.
    image_name: String,
    reported_digest: String,
    work: PathBuf,
    layout: Layout,
    image: oci::Image,
    rootfs: PathBuf,
}

/// Built once; a failure (or a panic such as a missing crane) fails every test with its
/// message.
static BUILT: LazyLock<Result<Built, String>> =
    LazyLock::new(|| match std::panic::catch_unwind(build) {
        Ok(Ok(built)) => Ok(built),
        Ok(Err(err)) => Err(format!("{err:#}")),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panicked".to_string())),
    });

fn built() -> &'static Built {
    BUILT
        .as_ref()
        .unwrap_or_else(|err| panic!("building the image failed: {err}"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
}

fn build() -> anyhow::Result<Built> {
    let uid = Command::new("id").arg("-u").output()?;
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the image tests chroot into the image's root filesystem: run them as root (CI does)"
    );
    let crane = tool("crane");
    let work = target_dir().join("image/test");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    let archive = work.join("weft.oci.tar");

    let start = Instant::now();
    let out = Command::new(repo_root().join("scripts/image"))
        .arg("--output")
        .arg(&archive)
        .env("CRANE", &crane)
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(
        out.status.success(),
        "scripts/image failed ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("scripts/image took {:?}", start.elapsed());
    let line = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| v.trim().to_string())
            .ok_or_else(|| anyhow::anyhow!("scripts/image printed no `{key}` line:\n{stdout}"))
    };
    let image_name = line("image:")?;
    let reported_digest = line("digest:")?;
    anyhow::ensure!(
        Path::new(&line("archive:")?) == archive,
        "archive not at --output"
    );

    let layout = Layout::unpack(&archive, &work.join("layout"))?;
    let image = layout.single_image()?;
    let rootfs = work.join("rootfs");
    layout.extract_rootfs(&image, &rootfs)?;
    Ok(Built {
        image_name,
        reported_digest,
        work,
        layout,
        image,
        rootfs,
    })
}

#[test]
fn archive_is_an_oci_layout_naming_the_weft_image() {
    let built = built();
    assert_eq!(built.image_name, format!("weft/weft:{VERSION}"));
    assert_eq!(built.reported_digest, built.image.descriptor.digest);
    assert_eq!(built.layout.layout_version().expect("oci-layout"), "1.0.0");

    let annotations = &built.image.descriptor.annotations;
    assert_eq!(
        annotations["io.containerd.image.name"],
        format!("docker.io/weft/weft:{VERSION}"),
        "{annotations:?}"
    );
    assert_eq!(
        annotations["org.opencontainers.image.ref.name"], VERSION,
        "{annotations:?}"
    );
    assert_eq!(built.image.manifest["mediaType"], MANIFEST_MEDIA_TYPE);
    assert_eq!(built.image.config_descriptor.media_type, CONFIG_MEDIA_TYPE);
    assert_eq!(
        built.image.layers.len(),
        1,
        "one layer: binaries, libraries, users"
    );
}

#[test]
fn config_starts_the_controller_as_the_non_root_user() {
    let built = built();
    let config = &built.image.config;
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "amd64");
    let run = &config["config"];
    assert_eq!(run["User"], USER, "{run}");
    assert_eq!(
        run["Entrypoint"],
        serde_json::json!(["/usr/local/bin/weft-controller"]),
        "{run}"
    );
    assert!(run["Cmd"].is_null(), "{run}");
    assert_eq!(run["WorkingDir"], "/", "{run}");
    let env = run["Env"].as_array().expect("config has Env");
    assert!(
        env.iter()
            .any(|e| e.as_str() == Some(format!("PATH={IMAGE_PATH}").as_str())),
        "{env:?}"
    );
    assert_eq!(
        run["Labels"]["org.opencontainers.image.version"], VERSION,
        "{run}"
    );

    let passwd = std::fs::read_to_string(built.rootfs.join("etc/passwd")).expect("/etc/passwd");
    assert!(
        passwd.lines().any(|l| l.starts_with("weft:x:1337:1337:")),
        "{passwd}"
    );
    let group = std::fs::read_to_string(built.rootfs.join("etc/group")).expect("/etc/group");
    assert!(group.lines().any(|l| l == "weft:x:1337:"), "{group}");
    let tmp = std::fs::metadata(built.rootfs.join("tmp")).expect("/tmp");
    assert_eq!(
        tmp.permissions().mode() & 0o7777,
        0o1777,
        "/tmp is world-writable and sticky"
    );
}

#[test]
fn binaries_in_the_image_are_the_release_builds() {
    let built = built();
    for binary in BINARIES {
        let in_image = built.rootfs.join("usr/local/bin").join(binary);
        let released = target_dir().join("release").join(binary);
        let meta = std::fs::metadata(&in_image).expect("binary in the image");
        assert_eq!(
            (meta.uid(), meta.permissions().mode() & 0o777),
            (0, 0o755),
            "{binary}: owned by root, executable by all"
        );
        assert!(
            std::fs::read(&in_image).expect("read the image's binary")
                == std::fs::read(&released).expect("read target/release's binary"),
            "{} differs from {}",
            in_image.display(),
            released.display()
        );
    }
}

/// The release weft-proxy lays out first the functions `dataplane/link/symbol-order.txt`
/// lists (the code a sidecar runs; dataplane/build.rs), and the file still names that
/// binary's functions: names carry a hash of the dependencies' versions and features, so a
/// dependency change leaves the file naming functions that no longer exist and every
/// sidecar maps code it never runs (idle RSS) until `scripts/proxy-symbol-order` records
/// it again.
#[test]
fn release_proxy_code_is_laid_out_hot_first() {
    let proxy = target_dir().join("release/weft-proxy");
    built();
    let order_file = repo_root().join("dataplane/link/symbol-order.txt");
    let order = std::fs::read_to_string(&order_file).expect("read the symbol order");
    let listed: std::collections::HashSet<&str> = order.lines().collect();
    let functions = weft_tests::symbols::functions_in_address_order(&proxy)
        .expect("read weft-proxy's symbol table");
    let found = functions
        .iter()
        .filter(|f| listed.contains(f.as_str()))
        .count();
    assert!(
        found * 10 >= listed.len() * 9,
        "{} names {} functions, but the release weft-proxy defines only {found} of them: \
         run scripts/proxy-symbol-order and commit the file",
        order_file.display(),
        listed.len()
    );
    let first_laid_out = functions[..found]
        .iter()
        .filter(|f| listed.contains(f.as_str()))
        .count();
    assert!(
        first_laid_out * 100 >= found * 95,
        "of the first {found} functions in weft-proxy's code only {first_laid_out} are listed \
         ones: the linker did not apply {}",
        order_file.display()
    );
}

/// `chroot --userspec=1337:1337 ROOTFS COMMAND...`, with only the image's PATH in the
/// environment (as a container runtime would set it).
fn in_image(rootfs: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(host_chroot());
    command
        .env_clear()
        .env("PATH", IMAGE_PATH)
        .arg(format!("--userspec={USER}"))
        .arg(rootfs)
        .args(args);
    command
}

/// The host's `chroot` (coreutils; in /usr/sbin, which the image's PATH lacks).
fn host_chroot() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join("chroot"))
        .find(|candidate| candidate.is_file())
        .expect("the image tests need coreutils' chroot on PATH")
}

#[test]
fn both_binaries_run_from_the_image_as_its_user() {
    let built = built();
    for binary in BINARIES {
        let path = format!("/usr/local/bin/{binary}");
        let out = in_image(&built.rootfs, &[&path, "--version"])
            .output()
            .expect("run chroot");
        assert!(
            out.status.success(),
            "{binary} --version in the image failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("{binary} {VERSION}")
        );
    }
}

#[test]
fn controller_from_the_image_serves_ready_in_local_mode() {
    let built = built();
    // Inside the image: an empty config dir and a token file (so the CA is generated and
    // written to /tmp by the non-root user, and xDS over TLS starts too).
    let tmp = built.rootfs.join("tmp");
    std::fs::create_dir_all(tmp.join("config")).expect("config dir");
    std::fs::write(tmp.join("tokens"), "image-test-token default/client\n").expect("tokens");
    let (xds, xds_tls, admin) = (free_port(), free_port(), free_port());
    let command = in_image(
        &built.rootfs,
        &[
            "/usr/local/bin/weft-controller",
            "--config-dir=/tmp/config",
            "--token-file=/tmp/tokens",
            "--state-dir=/tmp/state",
            &format!("--xds-addr=127.0.0.1:{xds}"),
            &format!("--xds-tls-addr=127.0.0.1:{xds_tls}"),
            &format!("--admin-addr=127.0.0.1:{admin}"),
            "--log-level=info",
        ],
    );
    let mut controller = Process::spawn(
        "weft-controller (image)",
        command,
        &built.work.join("controller.log"),
    )
    .expect("start the controller from the image");

    let url = format!("http://127.0.0.1:{admin}/ready");
    let ready = wait_until(
        "the image's controller /ready",
        Duration::from_secs(20),
        || {
            controller.ensure_running()?;
            Ok(ureq::get(&url).call()?.status() == 200)
        },
    );
    if let Err(err) = ready {
        panic!("{err:#}\n{}", controller.log_tail(30));
    }
    let ca = std::fs::metadata(tmp.join("state/ca.crt")).expect("the controller wrote its CA");
    assert_eq!(ca.uid(), 1337, "written as the image's user");
    let status = controller.stop().expect("the controller exits on SIGTERM");
    assert!(status.success(), "{status}: {}", controller.log_tail(30));
}

#[test]
fn crane_pushes_the_archive_and_exports_its_filesystem() {
    let built = built();
    let crane = tool("crane");
    let mut serve = Command::new(&crane);
    serve.args(["registry", "serve", "--address", "127.0.0.1:0"]);
    let registry = Process::spawn("crane registry", serve, &built.work.join("registry.log"))
        .expect("start crane's registry");
    let mut port = String::new();
    wait_until("crane's registry port", Duration::from_secs(10), || {
        let log = std::fs::read_to_string(registry.log_path())?;
        port = log
            .split("serving on port ")
            .nth(1)
            .map(|rest| rest.chars().take_while(char::is_ascii_digit).collect())
            .unwrap_or_default();
        Ok(!port.is_empty())
    })
    .expect("crane registry serve prints its port");

    let reference = format!("127.0.0.1:{port}/weft/weft:{VERSION}");
    let crane_run = |args: &[&str]| {
        let out = Command::new(&crane).args(args).output().expect("run crane");
        assert!(
            out.status.success(),
            "crane {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let layout_dir = built.layout.dir().to_str().expect("UTF-8 path");
    let pushed = crane_run(&["push", layout_dir, &reference]);
    assert!(
        pushed.ends_with(&format!("@{}", built.image.descriptor.digest)),
        "{pushed}"
    );
    assert_eq!(
        crane_run(&["digest", &reference]),
        built.image.descriptor.digest
    );

    // The flattened filesystem, streamed from `crane export` into `tar -t`.
    let mut export = Command::new(&crane)
        .args(["export", &reference, "-"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("run crane export");
    let listing = Command::new("tar")
        .arg("-t")
        .stdin(export.stdout.take().expect("crane export's stdout"))
        .output()
        .expect("list the exported filesystem");
    assert!(
        export.wait().expect("crane export ends").success(),
        "crane export failed"
    );
    let listing = String::from_utf8_lossy(&listing.stdout);
    for expected in [
        "usr/local/bin/weft-controller",
        "usr/local/bin/weft-proxy",
        "usr/sbin/xtables-nft-multi",
        "usr/sbin/iptables-restore",
        "etc/passwd",
    ] {
        assert!(
            listing
                .lines()
                .any(|l| l.trim_start_matches("./") == expected),
            "crane export lacks {expected}:\n{listing}"
        );
    }
    drop(registry);
}

/// `ip netns exec <namespace>`, to which the caller appends a command; only the image's
/// PATH is in its environment (as the container runtime would set it).
fn exec_in(namespace: &Netns) -> Command {
    let mut command = Command::new("ip");
    command
        .env_clear()
        .env("PATH", IMAGE_PATH)
        .args(["netns", "exec", &namespace.name]);
    command
}

/// Runs `command` to its end; its (stdout, stderr), or a panic with everything it said.
fn output_of(command: &mut Command) -> (String, String) {
    let out = command
        .output()
        .unwrap_or_else(|err| panic!("cannot run {command:?}: {err}"));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n--- stdout\n{stdout}--- stderr\n{stderr}",
        out.status,
    );
    (stdout, stderr)
}

/// The nat rules of `weft-proxy init`'s defaults that the test looks for, as iptables-save
/// prints them (an explicit `-m tcp` for `--dport`): weft's two chains, the jumps into them,
/// the REDIRECTs to the proxy's listeners, and rules that need the owner and tcp modules.
const EXPECTED_NAT_RULES: [&str; 8] = [
    ":WEFT_INBOUND - [0:0]",
    ":WEFT_OUTPUT - [0:0]",
    "-A PREROUTING -p tcp -j WEFT_INBOUND",
    "-A OUTPUT -p tcp -j WEFT_OUTPUT",
    "-A WEFT_INBOUND -p tcp -m tcp --dport 15000 -j RETURN",
    "-A WEFT_INBOUND -p tcp -j REDIRECT --to-ports 15006",
    "-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN",
    "-A WEFT_OUTPUT -p tcp -j REDIRECT --to-ports 15001",
];

/// The injected init container: `weft-proxy init` from the image, as root (the init
/// container runs as root with NET_ADMIN), in a fresh network namespace, with the image's
/// own iptables, once with the system links (nf_tables) and once with `--iptables legacy`.
/// Run twice (the second run replaces the first's rules), each rule is then there once, as
/// both the image's iptables-save and the host's read the namespace's nat table.
#[test]
fn init_from_the_image_programs_iptables_in_a_network_namespace() {
    let built = built();
    // A container runtime gives the container a /dev; weft-proxy init runs iptables-save
    // with its stdin on /dev/null.
    let dev = built.rootfs.join("dev");
    std::fs::create_dir_all(&dev).expect("the image's /dev");
    if !dev.join("null").exists() {
        output_of(
            Command::new("mknod")
                .args(["-m", "666"])
                .arg(dev.join("null"))
                .args(["c", "1", "3"]),
        );
    }

    for (backend, save) in [
        ("system", "iptables-save"),
        ("legacy", "iptables-legacy-save"),
    ] {
        // Deleted when dropped, also when the test fails.
        let namespace = Netns::create(&format!("weft-img-{}", std::process::id()));
        let in_namespace_image = |args: &[&str]| {
            let mut command = exec_in(&namespace);
            command.arg(host_chroot()).arg(&built.rootfs).args(args);
            command
        };
        for run in 1..=2 {
            // Its one line goes to stderr.
            let (_, said) = output_of(&mut in_namespace_image(&[
                "/usr/local/bin/weft-proxy",
                "init",
                "--iptables",
                backend,
            ]));
            assert!(
                said.contains("outbound TCP → 15001, inbound TCP → 15006"),
                "{backend}, run {run}: {said}"
            );
        }
        let (by_image, _) = output_of(&mut in_namespace_image(&[save, "-t", "nat"]));
        let (by_host, _) = output_of(exec_in(&namespace).args([save, "-t", "nat"]));
        for (reader, saved) in [("the image's", &by_image), ("the host's", &by_host)] {
            for rule in EXPECTED_NAT_RULES {
                let count = saved.lines().filter(|line| line.trim() == rule).count();
                assert_eq!(
                    count, 1,
                    "{backend}: {reader} {save} shows `{rule}` {count} times:\n{saved}"
                );
            }
        }
        let path = Path::new("/run/netns").join(&namespace.name);
        drop(namespace);
        assert!(
            !path.exists(),
            "network namespace {} not deleted",
            path.display()
        );
    }
}
