#!/usr/bin/env bash
# Everything cnikit's build, tests, demo and benchmarks need on a fresh
# Debian machine of this kind (as root): Debian packages, then npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# podman, runc, busybox-static: the real-client test (Podman with its CNI backend on cnikit).
# netavark: the benchmark's third contender (Podman's own network backend).
# aardvark-dns: the dns bench's contender (Podman's name server).
packages=(iproute2 iptables nftables conntrack util-linux iputils-ping time containernetworking-plugins podman netavark runc busybox-static aardvark-dns)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x node_modules/.bin/bun ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
