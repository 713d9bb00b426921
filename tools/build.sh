#!/usr/bin/env bash
# Builds the pinned local-cluster tools into "$CICLO_CACHE/bin" (default
# ~/.cache/ciclo/bin). A family is rebuilt only when its pin (go.mod, go.sum)
# or its build flags change; a stamp file per family records what was built.
# The Prometheus Operator's CRDs are copied, not built, into "$CICLO_CACHE/crds".
#
#   tools/build.sh            build what is missing or stale
#   tools/build.sh --check    exit 1 (naming the family) if anything is stale
#   tools/build.sh [--check] node coredns   the same, for the opt-in families named too
#
# The opt-in families "node" (kubelet, kube-proxy) and "coredns" (the real node's cluster
# DNS), for `localcluster up --real-node`, are built only when named (`make node-tools`):
# 230 MB and minutes of building nobody else needs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache=${CICLO_CACHE:-$HOME/.cache/ciclo}
bin=$cache/bin
stamps=$cache/stamps
mkdir -p "$bin" "$stamps"

export CGO_ENABLED=0 GOFLAGS=-trimpath GOTOOLCHAIN=local

# Read a module's pinned version from a go.mod so ldflags cannot drift from the pin.
# Both forms: inside a require block, and a one-line `require module version`.
pin() {
  awk -v m="$2" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' \
    "$here/$1/go.mod"
}

k8s=$(pin kubernetes k8s.io/kubernetes)          # v1.36.4
k8s_minor=$(echo "$k8s" | cut -d. -f2)
kwok=$(pin kwok sigs.k8s.io/kwok)                 # v0.8.0
helm=$(pin helm helm.sh/helm/v3)                  # v3.22.0
helm_kube=$(pin helm k8s.io/client-go)            # v0.37.0: what helm assumes offline
etcd=$(pin etcd go.etcd.io/etcd/server/v3)        # v3.6.16
prom=$(pin prometheus github.com/prometheus/prometheus)  # v0.313.5 is Prometheus 3.13.5
traefik=$(pin traefik github.com/traefik/traefik/v3)  # v3.6.12
coredns=$(pin coredns github.com/coredns/coredns)      # v1.15.0
prom_version=3.${prom#v0.3}; prom_version=${prom_version%%.*}.$(echo "$prom" | cut -d. -f2 | cut -c2-).$(echo "$prom" | cut -d. -f3)

kube_ldflags() {
  local v
  for v in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    printf ' -X %s.gitVersion=%s -X %s.gitMajor=1 -X %s.gitMinor=%s -X %s.gitTreeState=clean' \
      "$v" "$k8s" "$v" "$v" "$k8s_minor" "$v"
  done
}

family_ldflags() {
  case $1 in
    kubernetes | node) echo "-s -w $(kube_ldflags)" ;;
    etcd) echo "-s -w" ;;
    prometheus) echo "-s -w -X github.com/prometheus/common/version.Version=$prom_version -X github.com/prometheus/common/version.Branch=HEAD" ;;
    traefik) echo "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=$traefik" ;;
    # coremain.CoreVersion is a constant of the release; GitCommit is all a build sets.
    coredns) echo "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$coredns" ;;
    kwok) echo "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=${kwok#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=${k8s#v}" ;;
    helm)
      local hminor; hminor=$(echo "$helm_kube" | cut -d. -f2)
      echo "-s -w -X helm.sh/helm/v3/internal/version.version=$helm -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
        "-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$hminor" \
        "-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$hminor" ;;
  esac
}

# The binaries each family produces, as "name=package".
family_targets() {
  case $1 in
    kubernetes) echo kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
      kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
      kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler kubectl=k8s.io/kubernetes/cmd/kubectl ;;
    node) echo kubelet=k8s.io/kubernetes/cmd/kubelet kube-proxy=k8s.io/kubernetes/cmd/kube-proxy ;;
    etcd) echo etcd=go.etcd.io/etcd/server/v3 ;;
    kwok) echo kwok=sigs.k8s.io/kwok/cmd/kwok kwokctl=sigs.k8s.io/kwok/cmd/kwokctl ;;
    helm) echo helm=helm.sh/helm/v3/cmd/helm ;;
    traefik) echo traefik=github.com/traefik/traefik/v3/cmd/traefik ;;
    coredns) echo coredns=github.com/coredns/coredns ;;
    prometheus) echo prometheus=github.com/prometheus/prometheus/cmd/prometheus \
      promtool=github.com/prometheus/prometheus/cmd/promtool ;;
  esac
}

# The module directory a family builds in: the node's binaries come from the same pin.
family_dir() {
  case $1 in node) echo kubernetes ;; *) echo "$1" ;; esac
}

# A family's stamp covers its pin and how it is built, not the rest of this script,
# so adding a family rebuilds nothing else.
stamp_of() {
  local d; d=$(family_dir "$1")
  { cat "$here/$d/go.mod" "$here/$d/go.sum"; family_ldflags "$1"; family_targets "$1"; } |
    sha256sum | cut -c1-16
}

fresh() {
  local f=$1 t
  [ "$(cat "$stamps/$f" 2>/dev/null)" = "$(stamp_of "$f")" ] || return 1
  for t in $(family_targets "$f"); do [ -x "$bin/${t%%=*}" ] || return 1; done
}

build() {
  local f=$1 t name pkg pid log start=$SECONDS
  echo "[tools] building $f ($(family_targets "$f" | tr ' ' '\n' | cut -d= -f1 | tr '\n' ' '))"
  for t in $(family_targets "$f"); do
    name=${t%%=*} pkg=${t#*=} log=$cache/build-$name.log
    (cd "$here/$(family_dir "$f")" && go build -v -ldflags "$(family_ldflags "$f")" -o "$bin/$name.tmp" "$pkg") > "$log" 2>&1 &
    pid=$!
    # go build -v names each package it compiles: count them so a cold build shows it moves.
    while kill -0 "$pid" 2>/dev/null; do
      sleep 20
      kill -0 "$pid" 2>/dev/null && echo "[tools] $name: $(grep -c -v '^go: ' "$log") packages compiled, $((SECONDS - start)) s"
    done
    if ! wait "$pid"; then
      tail -n 20 "$log" >&2
      echo "[tools] building $name failed (log: $log)" >&2
      return 1
    fi
    mv -f "$bin/$name.tmp" "$bin/$name"
  done
  stamp_of "$f" > "$stamps/$f"
  echo "[tools] $f built in $((SECONDS - start)) s"
}

# The Prometheus Operator's PodMonitor and PrometheusRule CRDs, which tests install to see
# ciclo wire scraping and alerts: copied out of the pinned module (its go.sum checks the
# download); nothing of it is built.
po_module=github.com/prometheus-operator/prometheus-operator
po_crds="podmonitors prometheusrules"
po_dir=$cache/crds/prometheus-operator

po_stamp() {
  { cat "$here/prometheus-operator/go.mod" "$here/prometheus-operator/go.sum"; echo "$po_crds"; } |
    sha256sum | cut -c1-16
}

po_fresh() {
  local c
  [ "$(cat "$stamps/prometheus-operator" 2>/dev/null)" = "$(po_stamp)" ] || return 1
  for c in $po_crds; do [ -s "$po_dir/monitoring.coreos.com_$c.yaml" ] || return 1; done
}

po_copy() {
  local dir c
  dir=$(cd "$here/prometheus-operator" && go mod download -json "$po_module@$(pin prometheus-operator "$po_module")" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || { echo "[tools] downloading $po_module failed" >&2; return 1; }
  mkdir -p "$po_dir"
  for c in $po_crds; do
    install -m 644 "$dir/example/prometheus-operator-crd/monitoring.coreos.com_$c.yaml" "$po_dir/"
  done
  po_stamp > "$stamps/prometheus-operator"
  echo "[tools] prometheus-operator CRDs ($po_crds) copied to $po_dir"
}

# The Gateway API's standard-channel CRDs, which the rollout tests install for Traefik to
# route HTTPRoutes: copied, like the Prometheus Operator's, out of the pinned module.
gw_module=sigs.k8s.io/gateway-api
gw_dir=$cache/crds/gateway-api

gw_stamp() { cat "$here/gateway-api/go.mod" "$here/gateway-api/go.sum" | sha256sum | cut -c1-16; }

gw_fresh() {
  [ "$(cat "$stamps/gateway-api" 2>/dev/null)" = "$(gw_stamp)" ] && [ -s "$gw_dir/gateway.networking.k8s.io_httproutes.yaml" ]
}

gw_copy() {
  local dir
  dir=$(cd "$here/gateway-api" && go mod download -json "$gw_module@$(pin gateway-api "$gw_module")" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || { echo "[tools] downloading $gw_module failed" >&2; return 1; }
  mkdir -p "$gw_dir"
  install -m 644 "$dir"/config/crd/standard/*.yaml "$gw_dir/"
  gw_stamp > "$stamps/gateway-api"
  echo "[tools] gateway-api CRDs copied to $gw_dir"
}

# Traefik's own CRDs (traefik.io), from the pinned Traefik module: a shadow rollout on the
# local cluster mirrors through a TraefikService, since Traefik's Gateway provider has no
# RequestMirror filter (docs/rollout.md).
tr_module=github.com/traefik/traefik/v3
tr_dir=$cache/crds/traefik
tr_file=docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml

tr_stamp() { cat "$here/traefik/go.mod" "$here/traefik/go.sum" | sha256sum | cut -c1-16; }

tr_fresh() {
  [ "$(cat "$stamps/traefik-crds" 2>/dev/null)" = "$(tr_stamp)" ] && [ -s "$tr_dir/traefik.io.yaml" ]
}

tr_copy() {
  local dir
  dir=$(cd "$here/traefik" && go mod download -json "$tr_module@$traefik" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -f "$dir/$tr_file" ] || { echo "[tools] $tr_module has no $tr_file" >&2; return 1; }
  mkdir -p "$tr_dir"
  install -m 644 "$dir/$tr_file" "$tr_dir/traefik.io.yaml"
  tr_stamp > "$stamps/traefik-crds"
  echo "[tools] traefik CRDs copied to $tr_dir"
}

families="kubernetes etcd kwok helm prometheus traefik"
check=
if [ "${1:-}" = "--check" ]; then check=1; shift; fi
for f in "$@"; do
  case $f in node | coredns) families="$families $f" ;; *) echo "[tools] no opt-in family $f" >&2; exit 2 ;; esac
done
if [ -n "$check" ]; then
  stale=0
  for f in $families; do fresh "$f" || { echo "[tools] $f is missing or stale: run 'make tools'"; stale=1; }; done
  po_fresh || { echo "[tools] prometheus-operator CRDs are missing or stale: run 'make tools'"; stale=1; }
  gw_fresh || { echo "[tools] gateway-api CRDs are missing or stale: run 'make tools'"; stale=1; }
  tr_fresh || { echo "[tools] traefik CRDs are missing or stale: run 'make tools'"; stale=1; }
  exit $stale
fi

for f in $families; do
  if fresh "$f"; then echo "[tools] $f is up to date"; else build "$f"; fi
done
if po_fresh; then echo "[tools] prometheus-operator CRDs are up to date"; else po_copy; fi
if gw_fresh; then echo "[tools] gateway-api CRDs are up to date"; else gw_copy; fi
if tr_fresh; then echo "[tools] traefik CRDs are up to date"; else tr_copy; fi
echo "[tools] binaries in $bin"
