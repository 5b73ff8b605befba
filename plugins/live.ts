// The firewall intents of every attachment still alive on this host, from
// the records bridge and portmap keep: what `cnikit firewall reload` (and an
// ADD or DEL that finds cnikit's table flushed) puts back. A record is live
// when what it describes is still here, in the network namespace this runs
// in: a bridge attachment's host veth on its bridge; a port mapping's bridge
// attachment (or, on a network cnikit's bridge does not serve, a direct route
// to its container).
// Records of attachments gone (a DEL that never came) are left to DEL and GC
// and listed as stale, never resurrected.
import { AttachmentStore, DEFAULT_DATA_DIR } from '../lib/state/attachments.ts';
import { listDirIfExists } from '../lib/fs/index.ts';
import { hostStateDir } from '../lib/state/scope.ts';
import { Netlink, type Link } from '../lib/netlink/index.ts';
import { parsePrefix, networkOf, formatPrefix, tryParseIP, type Prefix } from '../lib/ip/index.ts';
import {
  detectBackend, setLiveAttachments, type AttachmentKey, type Backend, type SetupOp, type NetworkPolicy, type PortMappingRequest,
} from '../lib/firewall/index.ts';
import type { AttachmentRecord } from './bridge/records.ts';
import type { PortmapRecord } from './portmap/records.ts';
import { publishedRequest } from './portmap/forward.ts';
import { requestOf as firewallRequest, type FirewallRecord } from './firewall/records.ts';
import type { ForwardRequest, IngressPolicy } from '../lib/firewall/forward.ts';

export interface LiveAttachments {
  /** Setup operations per backend: one network policy per bridge, then masquerade and ports per attachment. */
  ops: Map<Backend, SetupOp[]>;
  /** Host veth and MAC of every live attachment with a MAC spoof check. */
  spoofChecks: { port: string; mac: string }[];
  /** iptables FORWARD accepts (filter table) of the firewall plugin and of portmap's published ports. */
  forward: { key: AttachmentKey; req: ForwardRequest }[];
  /** The firewall plugin's ingress policies on the nftables backend (table inet cnikit-fw). */
  ingress: { policy: IngressPolicy; bridge: string; addresses: ForwardRequest['addresses'] }[];
  /** How many live attachments (bridge, portmap and firewall records) the ops come from. */
  live: number;
  /** Records whose attachment is gone from this namespace. */
  stale: (AttachmentKey & { plugin: string })[];
}

function sameKey(a: AttachmentKey, b: AttachmentKey): boolean {
  return a.network === b.network && a.containerId === b.containerId && a.ifname === b.ifname;
}

function keyText(k: AttachmentKey): string {
  return `${k.network}\0${k.containerId}\0${k.ifname}`;
}

function records<R extends AttachmentKey>(dataDir: string, plugin: string): R[] {
  const out: R[] = [];
  // Networks with records of this host (lib/state's per-namespace directory).
  for (const network of listDirIfExists(`${hostStateDir(dataDir)}/${plugin}`)) {
    for (const r of new AttachmentStore<R & { containerId: string; ifname: string }>(dataDir, plugin, network).list()) {
      // A record names its own network; one copied into another directory is not trusted.
      if (r.network === network) out.push(r);
    }
  }
  return out;
}

/** The request portmap made for a record (as its ADD did). */
function portRequest(r: PortmapRecord): PortMappingRequest {
  const mappings: PortMappingRequest['mappings'] = [];
  for (const p of r.ports) {
    mappings.push({ ...(p.hostIP === '' ? {} : { hostIP: tryParseIP(p.hostIP)! }), hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol });
  }
  return {
    ...(r.conditions ? { conditions: r.conditions } : {}),
    containers: r.containers.map((c) => parsePrefix(c)),
    mappings,
    snat: r.snat,
    masqAll: r.masqAll,
  };
}

/**
 * Reads the records under each data dir (bridge and portmap, every network)
 * and keeps the live ones. `exclude`: an attachment being deleted.
 */
export function collectLive(dataDirs: readonly string[], exclude?: AttachmentKey): LiveAttachments {
  return Netlink.with((nl) => collect(nl, dataDirs, exclude));
}

function collect(nl: Netlink, dataDirs: readonly string[], exclude?: AttachmentKey): LiveAttachments {
  const out: LiveAttachments = { ops: new Map(), forward: [], ingress: [], spoofChecks: [], live: 0, stale: [] };
  const push = (b: Backend, op: SetupOp) => (out.ops.get(b) ?? out.ops.set(b, []).get(b)!).push(op);
  const dirs = [...new Set(dataDirs)];
  const bridgeRecords: AttachmentRecord[] = [];
  const portRecords: PortmapRecord[] = [];
  const firewallRecords: FirewallRecord[] = [];
  // Networks whose attachments cnikit's bridge makes: a port mapping there without a bridge record has lost its container.
  const bridgeNetworks = new Set<string>();
  for (const d of dirs) {
    bridgeRecords.push(...records<AttachmentRecord>(d, 'bridge'));
    portRecords.push(...records<PortmapRecord>(d, 'portmap'));
    firewallRecords.push(...records<FirewallRecord>(d, 'firewall'));
    for (const n of listDirIfExists(`${d}/bridge`)) bridgeNetworks.add(n);
  }
  if (bridgeRecords.length + portRecords.length + firewallRecords.length === 0) return out;

  const byName = new Map<string, Link>();
  const byIndex = new Map<number, Link>();
  for (const l of nl.links()) byName.set(l.name, l), byIndex.set(l.index, l);
  // Whether the host reaches an address directly over a link other than lo (a container with no bridge record).
  const routed = (p: Prefix) => {
    const r = nl.routeTo(p.ip);
    return r !== undefined && r.gw === undefined && r.index !== undefined && byIndex.get(r.index)?.kind !== '';
  };

  const bridgeLive = new Map<string, boolean>();
  const policies = new Map<string, { backend: Backend; policy: NetworkPolicy }>();
  for (const r of bridgeRecords) {
    const key = { network: r.network, containerId: r.containerId, ifname: r.ifname };
    const veth = byName.get(r.hostVeth);
    const alive = veth !== undefined && veth.masterIndex !== undefined && byIndex.get(veth.masterIndex)?.name === r.bridge;
    bridgeLive.set(keyText(key), alive);
    if (!alive) {
      out.stale.push({ ...key, plugin: 'bridge' });
      continue;
    }
    if (exclude && sameKey(key, exclude)) continue;
    out.live++;
    const subnets: Prefix[] = [];
    for (const ip of r.ips) subnets.push(networkOf(parsePrefix(ip.address)));
    const backend = r.masqBackend ?? detectBackend();
    const seen = policies.get(`${backend}\0${r.bridge}`);
    if (seen) {
      for (const s of subnets) if (!seen.policy.subnets.some((x) => formatPrefix(x) === formatPrefix(s))) seen.policy.subnets.push(s);
      if (r.isolate) seen.policy.isolate = true;
    } else {
      policies.set(`${backend}\0${r.bridge}`, { backend, policy: { bridge: r.bridge, subnets, isolate: r.isolate ?? false, icc: true } });
    }
    if (r.masqBackend && r.ips.length > 0) {
      push(r.masqBackend, { kind: 'masquerade', key, entries: r.ips.map((ip) => ({ address: parsePrefix(ip.address).ip, subnet: networkOf(parsePrefix(ip.address)) })) });
    }
    if (r.spoofCheckMac) out.spoofChecks.push({ port: r.hostVeth, mac: r.spoofCheckMac });
  }
  // Policies first: a transaction sets up bridges before the attachments on them.
  const withPolicies = new Map<Backend, SetupOp[]>();
  for (const { backend, policy } of policies.values()) (withPolicies.get(backend) ?? withPolicies.set(backend, []).get(backend)!).push({ kind: 'network', policy });
  for (const [b, ops] of out.ops) (withPolicies.get(b) ?? withPolicies.set(b, []).get(b)!).push(...ops);
  out.ops = withPolicies;

  for (const r of portRecords) {
    const key = { network: r.network, containerId: r.containerId, ifname: r.ifname };
    const viaBridge = bridgeLive.get(keyText(key));
    const alive = viaBridge ?? (!bridgeNetworks.has(r.network) && r.containers.some((c) => routed(parsePrefix(c))));
    if (!alive) {
      out.stale.push({ ...key, plugin: 'portmap' });
      continue;
    }
    if (exclude && sameKey(key, exclude)) continue;
    out.live++;
    const request = portRequest(r);
    push(r.backend, { kind: 'ports', key, request });
    if (r.forwardAccepts) out.forward.push({ key, req: publishedRequest(request) });
  }

  // The firewall plugin's record is live with its container: the bridge attachment, or a direct route to it.
  for (const r of firewallRecords) {
    const key = { network: r.network, containerId: r.containerId, ifname: r.ifname };
    const req = firewallRequest(r);
    const viaBridge = bridgeLive.get(keyText(key));
    const alive = viaBridge ?? (!bridgeNetworks.has(r.network) && req.addresses.some((ip) => routed({ ip, length: ip.family === 4 ? 32 : 128 })));
    if (!alive) {
      out.stale.push({ ...key, plugin: 'firewall' });
      continue;
    }
    if (exclude && sameKey(key, exclude)) continue;
    out.live++;
    if (r.accepts) out.forward.push({ key, req });
    if (r.backend === 'nftables' && r.bridge && r.ingressPolicy !== 'open') out.ingress.push({ policy: r.ingressPolicy, bridge: r.bridge, addresses: req.addresses });
  }
  return out;
}

/**
 * Lets the firewall backends find every live attachment when they find
 * their table flushed: the plugin's own data dir and the default one.
 */
export function registerLiveAttachments(dataDir: string | undefined): void {
  const dirs = dataDir && dataDir !== DEFAULT_DATA_DIR ? [dataDir, DEFAULT_DATA_DIR] : [DEFAULT_DATA_DIR];
  setLiveAttachments((backend, exclude) => collectLive(dirs, exclude).ops.get(backend) ?? []);
}
