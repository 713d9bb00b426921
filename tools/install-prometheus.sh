#!/usr/bin/env bash
# Installs Prometheus and promtool from Debian's package (see README: why Debian's).
# The package would start a system Prometheus on :9090; policy-rc.d stops that,
# since tests and the demo start their own, configured for the local cluster.
set -euo pipefail
command -v prometheus >/dev/null && command -v promtool >/dev/null && exit 0
[ "$(id -u)" = 0 ] || { echo "installing prometheus needs root (apt-get install prometheus)" >&2; exit 1; }
echo "[tools] installing prometheus from Debian's packages"
policy=/usr/sbin/policy-rc.d
trap 'rm -f "$policy"' EXIT
printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod +x "$policy"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
prometheus --version | head -1
