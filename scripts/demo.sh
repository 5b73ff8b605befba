#!/usr/bin/env bash
# The main job, as a user would run it: install, build, then use the plugins
# the way a container runtime does, inside a lab host namespace of its own so
# the machine's network is never changed. Everything is removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm run --silent build

lab="cnikit-demo-$$"
ctr="cnikit-demo-$$-web1"
cleanup() { ip netns del "$ctr" 2>/dev/null || true; ip netns del "$lab" 2>/dev/null || true; }
trap cleanup EXIT
ip netns add "$lab"
ip netns add "$ctr"
inlab() { nsenter --net="/run/netns/$lab" -- "$@"; }
bin="$PWD/dist/bin"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "a container namespace starts with loopback down"
ip -n "$ctr" -br link show lo

step "none (Docker --net none): CNI ADD brings lo up"
echo '{"cniVersion":"1.1.0","name":"none","type":"none"}' |
  inlab env CNI_COMMAND=ADD CNI_CONTAINERID=web1 CNI_NETNS="/run/netns/$ctr" CNI_IFNAME=eth0 CNI_PATH="$bin" "$bin/none"
ip -n "$ctr" -br addr show lo
ip netns exec "$ctr" ping -c1 -W1 127.0.0.1 | grep -E 'bytes from|transmitted'

step "host (Docker --net host): the container shares the lab host's network"
inlab ip link add demo0 type veth peer name demo1
inlab ip addr add 192.0.2.1/24 dev demo0
echo '{"cniVersion":"1.1.0","name":"host","type":"host"}' |
  inlab env CNI_COMMAND=ADD CNI_CONTAINERID=web2 CNI_NETNS="/run/netns/$lab" CNI_IFNAME=eth0 CNI_PATH="$bin" "$bin/host"

step "host refuses a namespace that is not the host's (CNI error, exit 1)"
echo '{"cniVersion":"1.1.0","name":"host","type":"host"}' |
  inlab env CNI_COMMAND=ADD CNI_CONTAINERID=web3 CNI_NETNS="/run/netns/$ctr" CNI_IFNAME=eth0 CNI_PATH="$bin" "$bin/host" || echo "(exit $?)"

step "DEL is idempotent"
for i in 1 2; do
  echo '{"cniVersion":"1.1.0","name":"none","type":"none"}' |
    inlab env CNI_COMMAND=DEL CNI_CONTAINERID=web1 CNI_NETNS="/run/netns/$ctr" CNI_IFNAME=eth0 CNI_PATH="$bin" "$bin/none" && echo "DEL $i: ok"
done

step "clean up"
cleanup
trap - EXIT
echo "removed the lab namespaces; the machine's network was not touched"
