#!/usr/bin/env bash
# The main job, as a container runtime would do it: a bridge network with
# host-local IPAM and published ports, two containers, traffic between them
# and from "another host" through a published port, then a clean teardown.
# Everything happens inside namespaces this script creates (a lab host, an
# outside host, two containers), so the machine's own network is never changed.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm run --silent build

tag="ckdemo$$"
lab="$tag-host" out="$tag-out" web1="$tag-web1" web2="$tag-web2"
work=$(mktemp -d)
bin="$PWD/dist/bin"
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  for ns in "$web1" "$web2" "$out" "$lab"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
inlab() { nsenter --net="/run/netns/$lab" -- "$@"; }

# One plugin call, exactly as a runtime makes it: config on stdin, CNI_* in the environment.
cni() { # cni PLUGIN COMMAND CONTAINER CONFIG_JSON
  local ns="/run/netns/$tag-$3"
  [ "$2" = DEL ] && [ ! -e "$ns" ] && ns=""
  printf '%s' "$4" | inlab env CNI_COMMAND="$2" CNI_CONTAINERID="$3" CNI_NETNS="$ns" CNI_IFNAME=eth0 CNI_PATH="$bin" "$bin/$1"
}

step "a lab host, and an outside host behind it (203.0.113.0/24)"
for ns in "$lab" "$out" "$web1" "$web2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$lab" link add uplink0 type veth peer name eth0 netns "$out"
ip -n "$lab" addr add 203.0.113.1/24 dev uplink0 && ip -n "$lab" link set uplink0 up
ip -n "$out" addr add 203.0.113.2/24 dev eth0 && ip -n "$out" link set eth0 up

net='{"cniVersion":"1.1.0","name":"demo","type":"bridge","bridge":"cnikit-demo","isGateway":true,"isDefaultGateway":true,"ipMasq":true,
      "dataDir":"'"$work"'/state","ipam":{"type":"host-local","ranges":[[{"subnet":"172.22.16.0/24"}]],"dataDir":"'"$work"'/ipam"}}'
portmap() { # portmap PREV_RESULT MAPPINGS
  printf '{"cniVersion":"1.1.0","name":"demo","type":"portmap","dataDir":"%s/state","runtimeConfig":{"portMappings":%s},"prevResult":%s}' "$work" "$2" "$1"
}

step "web1: bridge + host-local (docker run --network demo -p 8080:80)"
r1=$(cni bridge ADD web1 "$net"); echo "$r1"
cni portmap ADD web1 "$(portmap "$r1" '[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]')" >/dev/null
ip1=$(echo "$r1" | grep -o '"address":"[0-9.]*' | head -1 | cut -d'"' -f4)

step "web2: bridge + host-local"
r2=$(cni bridge ADD web2 "$net"); echo "$r2"
ip2=$(echo "$r2" | grep -o '"address":"[0-9.]*' | head -1 | cut -d'"' -f4)

step "a web server in web1 on port 80 (answers with the client's address)"
ip netns exec "$web1" env NODE_EXTRA_CA_CERTS= node -e '
  require("net").createServer((s) => s.end(`hello from web1, you are ${s.remoteAddress}\n`)).listen(80, () => console.log("listening"));' &
server_pid=$!
sleep 1

step "web2 -> web1 ($ip1:80) over the bridge"
ip netns exec "$web2" timeout 3 bash -c "exec 3<>/dev/tcp/$ip1/80 && cat <&3"

step "outside host -> lab host 203.0.113.1:8080 (published port) -> web1:80"
ip netns exec "$out" timeout 3 bash -c 'exec 3<>/dev/tcp/203.0.113.1/8080 && cat <&3'

step "web2 -> the outside host: masqueraded behind the lab host"
ip netns exec "$web2" ping -c1 -W2 203.0.113.2 | grep -E 'bytes from|transmitted'

step "the rules (nftables, table inet cnikit)"
inlab nft list map inet cnikit ports4
inlab nft list map inet cnikit masq4

step "teardown: DEL in reverse, as a runtime does"
kill "$server_pid"; server_pid=""
cni portmap DEL web1 "$(portmap "$r1" '[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]')"
cni bridge DEL web1 "$net"
cni bridge DEL web2 "$net"
echo "veths left on the lab host: $(inlab ip -o link show type veth | grep -vc uplink0 || true)"
echo "leases left: $(find "$work/ipam" -type f -name '172.*' | wc -l)"
echo "rules naming $ip1 or $ip2: $(inlab nft list ruleset | grep -cE "$ip1|$ip2" || true)"

step "clean up"
cleanup
trap - EXIT
echo "removed the lab namespaces; the machine's network was not touched"
