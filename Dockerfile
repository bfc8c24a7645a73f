# weft's container image: one image holding both binaries (README.md, "Images").
#
#   docker build -t weft/weft:0.1.0 .
#
# - /usr/local/bin/weft-controller is the ENTRYPOINT (the chart's controller Deployment);
#   the proxy sidecar sets its command to /usr/local/bin/weft-proxy.
# - Runs as the non-root user weft, uid/gid 1337: the uid that iptables interception of a
#   pod's traffic exempts, so the sidecar's own connections are not redirected to itself.
# - The builder is the Rust release rust-toolchain.toml pins, on Debian 12; the runtime is
#   Debian 12 slim, so the glibc the binaries link against is the one they run with. Pin
#   both by digest (IMAGE@sha256:...) for bit-for-bit release builds.
# - Carries Debian 12's iptables (1.8.9-2, the version tests/env/setup.sh pins): the injected
#   init container runs `weft-proxy init`, which runs iptables-save/iptables-restore (nf_tables
#   by default, or the -nft-/-legacy- ones with --iptables) from PATH.
#
# There is no Docker engine where the test suite runs: scripts/image builds the same image
# (same paths, user and entrypoint, no base image) offline as an OCI archive, and
# tests/tests/image.rs checks it.
ARG RUST_IMAGE=rust:1.95.0-bookworm
ARG RUNTIME_IMAGE=debian:12-slim

FROM ${RUST_IMAGE} AS build
# The image's toolchain is the pinned one; naming it keeps rustup from fetching the extra
# components rust-toolchain.toml lists for developers (rustfmt, clippy).
ENV RUSTUP_TOOLCHAIN=1.95.0 CARGO_INCREMENTAL=0
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p weft-controller -p weft-proxy \
    && install -D -m 0755 -t /out target/release/weft-controller target/release/weft-proxy

FROM ${RUNTIME_IMAGE}
RUN apt-get update \
    && apt-get install -y --no-install-recommends iptables \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 1337 weft \
    && useradd --uid 1337 --gid 1337 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin weft
COPY --from=build /out/ /usr/local/bin/
USER 1337:1337
WORKDIR /
ENTRYPOINT ["/usr/local/bin/weft-controller"]
