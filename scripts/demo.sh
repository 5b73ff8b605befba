#!/usr/bin/env bash
# The main job, as a user runs it with the cnikit command: a network with a
# custom subnet, two containers, a published port, traffic between the
# containers and from "another host" through the port, then a clean teardown.
# The cnikit commands run inside a lab host namespace this script creates,
# next to an "outside" host namespace, so the machine's own network (links,
# routes, firewall) is never changed; all state goes to a temporary dir.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm run --silent build

tag="ckdemo$$"
lab="$tag-host" out="$tag-out"
web1="$tag-web1" web2="$tag-web2"
work=$(mktemp -d)
export CNIKIT_CONFIG_DIR="$work/net.d" CNIKIT_STATE_DIR="$work/state" CNIKIT_CACHE_DIR="$work/cache" CNIKIT_DATA_DIR="$work/data"
ck() { nsenter --net="/run/netns/$lab" -- "$PWD/dist/cnikit" "$@"; }
cleanup() {
  ck rm -f "$web1" "$web2" >/dev/null 2>&1 || true
  for ns in "$out" "$lab"; do ip netns del "$ns" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; }

step "a lab host, and an outside host behind it on 203.0.113.0/24"
for ns in "$lab" "$out"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n "$lab" link add uplink0 type veth peer name eth0 netns "$out"
ip -n "$lab" addr add 203.0.113.1/24 dev uplink0 && ip -n "$lab" link set uplink0 up
ip -n "$out" addr add 203.0.113.2/24 dev eth0 && ip -n "$out" link set eth0 up

step "a network with a custom subnet"
show cnikit network create --subnet 172.22.16.0/24 --gateway 172.22.16.1 my_net2
ck network create --subnet 172.22.16.0/24 --gateway 172.22.16.1 my_net2
ck network ls

step "two containers; web1 runs a web server and publishes port 80 on 8080"
server='require("net").createServer((s) => s.end(`hello from web1, you are ${s.remoteAddress}\n`)).listen(80)'
show cnikit run --network my_net2 --ip 172.22.16.8 -p 8080:80 web1 -- node -e '…'
ck run --network my_net2 --ip 172.22.16.8 -p 8080:80 "$web1" -- env NODE_EXTRA_CA_CERTS= node -e "$server"
show cnikit run --network my_net2 web2
ck run --network my_net2 "$web2"
ck ps
sleep 1

step "web2 -> web1 over the bridge"
show cnikit exec web2 -- bash -c 'cat </dev/tcp/172.22.16.8/80'
ck exec "$web2" -- timeout 3 bash -c 'exec 3<>/dev/tcp/172.22.16.8/80 && cat <&3'

step "web2 -> web1 by name (the network's name responder, as on Docker's user-defined networks)"
show cnikit exec web2 -- getent hosts web1
ck exec "$web2" -- getent hosts "$web1"

step "the outside host -> the lab host's 203.0.113.1:8080 -> web1:80"
ip netns exec "$out" timeout 3 bash -c 'exec 3<>/dev/tcp/203.0.113.1/8080 && cat <&3'

step "web2 -> the outside host, masqueraded behind the lab host"
ip netns exec "$out" env NODE_EXTRA_CA_CERTS= node -e 'require("net").createServer((s) => { s.end(`the outside sees ${s.remoteAddress}\n`); process.exit(0); }).listen(9000)' &
sleep 1
ck exec "$web2" -- timeout 3 bash -c 'exec 3<>/dev/tcp/203.0.113.2/9000 && cat <&3'

step "what the lab shows"
show cnikit exec web1 -- ip -br addr show eth0
ck exec "$web1" -- ip -br addr show eth0
show cnikit port web1
ck port "$web1"
show cnikit network inspect my_net2
ck network inspect my_net2

step "teardown"
ck rm -f "$web1" "$web2"
ck network rm my_net2
echo "containers: $(ck ps | tail -n +2 | wc -l), veths on the lab host: $(ip -n "$lab" -o link show type veth | grep -vc uplink0 || true), published ports: $(ip netns exec "$lab" nft list map inet cnikit ports4 | grep -c 'elements' || true)"

step "clean up"
cleanup
trap - EXIT
echo "removed the lab namespaces and state; the machine's network was not touched"
