// `cnikit network create|ls|inspect|rm|prune`: networks stored as CNI
// conflists (bridge + host-local + portmap + firewall + tuning) in the config dir, so Podman and
// containerd can use them too. Subnets come from ipam/pools.ts.
import { writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { loadDir, loadListFile, ResultCache, type LoadedList } from '../driver/index.ts';
import { planNetwork, PoolError, type ExistingNetwork } from '../ipam/pools.ts';
import { tryParsePrefix, networkOf, formatPrefix, type Prefix } from '../lib/ip/index.ts';
import { Netlink } from '../lib/netlink/index.ts';
import { openFirewall } from '../lib/firewall/index.ts';
import { paths } from './paths.ts';
import { listContainers, networksOf } from './containers.ts';

export const BUILTIN = ['bridge', 'host', 'none'] as const;
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$/;

export interface CreateOptions {
  subnets: string[];
  gateways: string[];
  ipRanges: string[];
  auxAddresses: Record<string, string>;
  ipv6: boolean;
  internal: boolean;
  /** -o key=value driver options: com.docker.network.bridge.name, mtu. */
  options: Record<string, string>;
}

export function networkId(name: string): string {
  return createHash('sha256').update(name).digest('hex').slice(0, 12);
}

interface BridgePlugin {
  type: string;
  bridge?: string;
  ipam?: { ranges?: { subnet: string; gateway?: string }[][] };
}

function bridgeOf(list: LoadedList): BridgePlugin | undefined {
  return list.conf.plugins.find((p) => p.type === 'bridge') as BridgePlugin | undefined;
}

export function subnetsOf(list: LoadedList): { subnet: Prefix; gateway?: string }[] {
  const ranges = bridgeOf(list)?.ipam?.ranges ?? [];
  return ranges.flatMap((set) => {
    const first = set[0];
    const p = first && tryParsePrefix(first.subnet);
    return p ? [{ subnet: networkOf(p), ...(first.gateway ? { gateway: first.gateway } : {}) }] : [];
  });
}

export function networks(): LoadedList[] {
  return loadDir(paths().configDir);
}

export function findList(name: string): LoadedList | undefined {
  return networks().find((l) => l.conf.name === name);
}

function hostRoutes(): Prefix[] {
  return Netlink.with((nl) => nl.routes().flatMap((r) => (r.dst ? [r.dst] : [])));
}

function bridgeName(name: string, options: Record<string, string>): string {
  const asked = options['com.docker.network.bridge.name'];
  if (asked) return asked;
  if (name === 'bridge') return 'cnikit0';
  return `ck-${name}`.length <= 15 ? `ck-${name}` : `ck-${networkId(name).slice(0, 12)}`;
}

/** The domain of names on networks made here: `web1` also answers as `web1.dns.cnikit`. */
export const CNIKIT_DOMAIN = 'dns.cnikit';

function dnsnamePlugin(internal: boolean, dirs: { dataDir?: string }): Record<string, unknown> {
  return { type: 'dnsname', domainName: CNIKIT_DOMAIN, capabilities: { aliases: true }, ...(internal ? { internal: true } : {}), ...dirs };
}

export function createNetwork(name: string, o: CreateOptions): LoadedList {
  if (!NAME.test(name)) throw new Error(`invalid network name "${name}": letters, digits, '_', '.', '-', starting with a letter or digit`);
  if ((BUILTIN as readonly string[]).includes(name) && name !== 'bridge') throw new Error(`${name} is a built-in network`);
  const all = networks();
  if (all.some((l) => l.conf.name === name)) throw new Error(`network ${name} already exists`);
  const existing: ExistingNetwork[] = all.map((l) => ({ name: l.conf.name, subnets: subnetsOf(l).map((s) => s.subnet) }));
  let plan;
  try {
    plan = planNetwork({ subnets: o.subnets, gateways: o.gateways, ipRanges: o.ipRanges, auxAddresses: o.auxAddresses, ipv6: o.ipv6 }, existing, hostRoutes());
  } catch (e) {
    if (e instanceof PoolError) throw new Error(e.message);
    throw e;
  }
  const mtu = o.options.mtu ?? o.options['com.docker.network.driver.mtu'];
  const { dataDir } = paths();
  const dirs = (sub: string) => (dataDir ? { dataDir: join(dataDir, sub) } : {});
  const list = {
    // 1.0.0 for runtimes whose libcni predates 1.1.0 (Podman 4); newer ones pick 1.1.0 from cniVersions.
    cniVersion: '1.0.0',
    cniVersions: ['1.0.0', '1.1.0'],
    name,
    plugins: [
      {
        type: 'bridge',
        // As Podman's conflists: --ip and --mac reach the plugin through runtimeConfig.
        capabilities: { ips: true, mac: true },
        bridge: bridgeName(name, o.options),
        isGateway: true,
        isDefaultGateway: !o.internal,
        ipMasq: !o.internal,
        hairpinMode: true,
        // Docker isolates user networks from each other; the default bridge too.
        isolate: true,
        ...(mtu ? { mtu: Number(mtu) } : {}),
        ...dirs('plugins'),
        ipam: { type: 'host-local', ranges: plan.map((p) => p.ranges), ...dirs('networks') },
      },
      { type: 'portmap', capabilities: { portMappings: true }, ...dirs('plugins') },
      // As Podman writes its conflists: firewall lets the containers' traffic
      // through a host whose FORWARD policy drops (Docker, firewalld installed).
      { type: 'firewall', backend: '', ...dirs('plugins') },
      { type: 'tuning', ...dirs('plugins') },
      // Name resolution on user-defined networks, as Docker's (its default bridge has none).
      ...(name === 'bridge' ? [] : [dnsnamePlugin(o.internal, dirs('plugins'))]),
    ],
  };
  const { configDir } = paths();
  mkdirSync(configDir, { recursive: true });
  const file = join(configDir, `${name}.conflist`);
  const text = JSON.stringify(list, null, 2) + '\n';
  writeFileSync(file, text, { mode: 0o644 });
  return loadListFile(file);
}

/** The default `bridge` network (cnikit0, 172.17.0.0/16 unless taken), made on first use. */
export function ensureDefaultBridge(): LoadedList {
  const found = findList('bridge');
  if (found) return found;
  const taken = networks().some((l) => subnetsOf(l).some((s) => s.subnet.ip.family === 4 && formatPrefix(s.subnet) === '172.17.0.0/16'));
  const base: CreateOptions = { subnets: [], gateways: [], ipRanges: [], auxAddresses: {}, ipv6: false, internal: false, options: {} };
  try {
    return createNetwork('bridge', taken ? base : { ...base, subnets: ['172.17.0.0/16'] });
  } catch {
    return createNetwork('bridge', base);
  }
}

export interface NetworkRow {
  id: string;
  name: string;
  driver: string;
  scope: string;
}

export function listNetworks(): NetworkRow[] {
  const rows: NetworkRow[] = networks().map((l) => ({ id: networkId(l.conf.name), name: l.conf.name, driver: l.conf.plugins[0]?.type ?? '', scope: 'local' }));
  for (const b of BUILTIN) {
    if (!rows.some((r) => r.name === b)) rows.push({ id: networkId(b), name: b, driver: b === 'bridge' ? 'bridge' : b === 'host' ? 'host' : 'null', scope: 'local' });
  }
  return rows.sort((a, b) => a.name.localeCompare(b.name));
}

/** Containers attached: the lab's, and any runtime's through libcni's cache. */
function attachments(name: string): string[] {
  const lab = listContainers().filter((c) => networksOf(c).includes(name)).map((c) => c.name);
  const cached = new ResultCache(paths().cacheDir).list(name).map((e) => e.containerId).filter((id) => !lab.some((n) => id === `cnikit-${n}`));
  return [...lab, ...cached];
}

export function inspectNetwork(name: string): Record<string, unknown> {
  const l = findList(name);
  if (!l) throw new Error(`no network named ${name}`);
  const containers = Object.fromEntries(
    listContainers()
      .filter((c) => networksOf(c).includes(name))
      .map((c) => [c.name, c.network === name ? { addresses: c.addresses, ports: c.ports } : { addresses: c.extra?.find((e) => e.network === name)?.addresses ?? [], ports: [] }]),
  );
  return {
    name,
    id: networkId(name),
    driver: l.conf.plugins[0]?.type,
    bridge: bridgeOf(l)?.bridge,
    subnets: subnetsOf(l).map((s) => ({ subnet: formatPrefix(s.subnet), gateway: s.gateway })),
    file: l.file,
    containers,
  };
}

export function removeNetwork(name: string): void {
  const l = findList(name);
  if (!l?.file) throw new Error(`no network named ${name}`);
  const users = attachments(name);
  if (users.length > 0) throw new Error(`network ${name} has containers attached: ${users.join(', ')}`);
  rmSync(l.file, { force: true });
  const bridge = bridgeOf(l)?.bridge;
  if (!bridge) return;
  Netlink.with((nl) => {
    const link = nl.link(bridge);
    if (link?.kind === 'bridge' && !nl.links().some((x) => x.masterIndex === link.index)) nl.deleteLink(link.index);
  });
  for (const backend of ['nftables', 'iptables'] as const) {
    try {
      openFirewall(backend).removeNetwork(bridge);
    } catch {
      // that backend's tool is absent or holds nothing of this bridge
    }
  }
}

/** Removes every network no container uses (built-ins stay). */
export function pruneNetworks(): string[] {
  const removed: string[] = [];
  for (const l of networks()) {
    if (l.conf.name === 'bridge' || attachments(l.conf.name).length > 0) continue;
    removeNetwork(l.conf.name);
    removed.push(l.conf.name);
  }
  return removed;
}
