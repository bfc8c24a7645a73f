//! Lays weft-proxy's release code out hot-first, so a sidecar maps less of its binary.
//!
//! The kernel maps code in 64 KB windows around each page a process touches; with the code
//! that startup, xDS, certificates and a call run scattered across the binary, nearly all of
//! `.text` ends up resident. `link/symbol-order.txt` lists those functions (recorded by
//! `scripts/proxy-symbol-order`), and the linker puts them first, so the rest is never
//! touched. A name the order file lists but the binary lacks (code changed since it was
//! recorded) is skipped: a stale file costs memory, never correctness.
//!
//! Only for release builds with LLD, the linker Rust uses by default on x86_64 Linux.

fn main() {
    println!("cargo:rerun-if-changed=link/symbol-order.txt");
    let release = std::env::var("PROFILE").is_ok_and(|profile| profile == "release");
    let lld_by_default = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    if !(release && lld_by_default) {
        return;
    }
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let order = std::path::Path::new(&manifest_dir).join("link/symbol-order.txt");
    println!(
        "cargo:rustc-link-arg-bin=weft-proxy=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bin=weft-proxy=-Wl,--no-warn-symbol-ordering");
}
