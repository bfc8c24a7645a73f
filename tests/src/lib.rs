//! Test support for weft's end-to-end tests: real components (kube-apiserver with etcd,
//! stock Envoy, the gRPC interop binaries) started on free loopback ports and always
//! stopped, plus a gRPC test backend and a reader for OCI image archives (the container
//! image), Envoy's descriptors to check proto3 JSON, SVG pictures of dashboard panels, and
//! browser page tests (headless Chromium loading a bundled page).
//! Components come from `tests/env/setup.sh`.

pub mod backend;
pub mod browser;
pub mod envoy;
pub mod envoy_protos;
pub mod interop;
pub mod kube;
pub mod netns;
pub mod oci;
pub mod panel_pictures;
pub mod process;
pub mod prometheus;
pub mod symbols;
pub mod tools;
pub mod workspace_bin;
