// Published ports, chained after bridge: DNAT from host ports to the
// container's address (Docker's -p and -P), with hairpin and localhost SNAT.
// ADD with no mappings execs nothing; DEL works from the plugin's records,
// so it needs neither the netns nor the prevResult.
import type { PortmapConf, Result, Attachment } from '../../lib/spec/index.ts';
import { validatePortmapConf } from '../../lib/spec/validators.gen.js';
import { CniError, ErrorCode, type Plugin, type Context } from '../../lib/skel/index.ts';
import { openFirewall, checkConditions, findTool, type AttachmentKey, type PortMappingRequest, type Backend } from '../../lib/firewall/index.ts';
import { AttachmentStore, DEFAULT_DATA_DIR } from '../../lib/state/attachments.ts';
import { PublishedPorts } from './published.ts';
import { registerLiveAttachments } from '../live.ts';
import { withFileLock } from '../../lib/state/index.ts';
import { boundSockets, findConflict, ephemeralPortRange, reservedPorts } from '../../lib/hostports/index.ts';
import { Netlink, writeSysctl } from '../../lib/netlink/index.ts';
import { sys } from '../../lib/sys/index.ts';
import { parsePrefix, formatPrefix, type Prefix } from '../../lib/ip/index.ts';
import {
  normalize, checkConflicts, choosePorts, containerAddresses, hostIPAddr, type Published, type HoldersOf, type Holder,
} from './mappings.ts';

const PLUGIN = 'portmap';

export interface PortmapRecord {
  network: string;
  containerId: string;
  ifname: string;
  backend: Backend;
  /** Container addresses with prefix length, one per family. */
  containers: string[];
  ports: Published[];
  snat: boolean;
  masqAll: boolean;
  /** conditionsV4/V6: extra iptables match arguments of the DNAT rules. */
  conditions?: { 4?: string[]; 6?: string[] };
}

function dataDir(conf: PortmapConf): string {
  return conf.dataDir ?? DEFAULT_DATA_DIR;
}

function store(conf: PortmapConf, network = conf.name): AttachmentStore<PortmapRecord> {
  return new AttachmentStore<PortmapRecord>(dataDir(conf), PLUGIN, network);
}

function keyOf(ctx: Context<PortmapConf>): AttachmentKey {
  return { network: ctx.conf.name, containerId: ctx.inv.containerId, ifname: ctx.inv.ifname };
}

function requestOf(r: Pick<PortmapRecord, 'containers' | 'ports' | 'snat' | 'masqAll' | 'conditions'>): PortMappingRequest {
  // Loops rather than array builtins on the ADD and DEL paths: each builtin's first use costs tens of µs under Bun.
  const containers: Prefix[] = [];
  for (const c of r.containers) containers.push(parsePrefix(c));
  const mappings: PortMappingRequest['mappings'] = [];
  for (const p of r.ports) mappings.push({ hostIP: hostIPAddr(p), hostPort: p.hostPort, containerPort: p.containerPort, protocol: p.protocol });
  return { ...(r.conditions ? { conditions: r.conditions } : {}), containers, mappings, snat: r.snat, masqAll: r.masqAll };
}

function formatPrefixes(ps: readonly Prefix[]): string[] {
  const out: string[] = [];
  for (const p of ps) out.push(formatPrefix(p));
  return out;
}

function publishedPorts(conf: PortmapConf): PublishedPorts {
  return new PublishedPorts(`${dataDir(conf)}/${PLUGIN}-ports`);
}

function sameKey(a: AttachmentKey, b: AttachmentKey): boolean {
  return a.network === b.network && a.containerId === b.containerId && a.ifname === b.ifname;
}

/**
 * Who else publishes a port, from the port index; an entry whose record is
 * gone (a crash between the two writes) is dropped on the way.
 */
function holdersOf(conf: PortmapConf, index: PublishedPorts, key: AttachmentKey): HoldersOf {
  return (protocol, port) => {
    const out: Holder[] = [];
    for (const h of index.holders(protocol, port)) {
      if (sameKey(h, key)) continue;
      if (!store(conf, h.network).read(h)) {
        index.drop(protocol, port, h);
        continue;
      }
      out.push({ network: h.network, containerId: h.containerId, port: { hostIP: h.hostIP, hostPort: port, containerPort: h.containerPort, protocol } });
    }
    return out;
  };
}

/**
 * conditionsV4/V6 are iptables match arguments, so they choose the iptables
 * backend when none is configured, and cannot go with nftables.
 */
function conditionsAndBackend(conf: PortmapConf): { conditions?: PortmapRecord['conditions']; backend?: Backend } {
  const c4 = conf.conditionsV4 ?? [];
  const c6 = conf.conditionsV6 ?? [];
  if (c4.length + c6.length === 0) return { backend: conf.backend };
  if (conf.backend === 'nftables') {
    throw new CniError(ErrorCode.UnsupportedField, 'conditionsV4/conditionsV6 are iptables match arguments: they need backend iptables', 'field conditionsV4');
  }
  try {
    checkConditions([...c4, ...c6]);
  } catch (e) {
    throw new CniError(ErrorCode.InvalidConfig, `invalid conditionsV4/conditionsV6: ${(e as Error).message}`);
  }
  return { conditions: { 4: c4, 6: c6 }, backend: 'iptables' };
}

/**
 * 127.0.0.1:port reaches a container only if the kernel may route a
 * loopback-sourced packet out of the interface towards it.
 */
function enableLocalnetRouting(containers: Prefix[]): void {
  let v4: Prefix | undefined;
  for (const c of containers) if (c.ip.family === 4) v4 ??= c;
  if (!v4) return;
  // The interface the host routes the container's address out of (its bridge):
  // one route lookup, not a dump of every address on the host.
  const link = Netlink.with((nl) => {
    const route = nl.routeTo(v4.ip);
    return route?.index !== undefined && route.gw === undefined ? nl.linkByIndex(route.index) : undefined;
  });
  if (link && link.name !== 'lo') writeSysctl(`net/ipv4/conf/${link.name}/route_localnet`, '1');
}

/**
 * A UDP "connection" tracked before the port was published keeps its old
 * NAT verdict and blackholes the port until it times out: drop those entries.
 */
function flushUdpConntrack(ports: Published[], log: Context<PortmapConf>['log']): void {
  const udp = new Set<number>();
  for (const p of ports) if (p.protocol === 'udp') udp.add(p.hostPort);
  if (udp.size === 0) return;
  const conntrack = findTool('conntrack');
  if (!conntrack) {
    log.warn({}, 'conntrack is not installed: stale UDP entries were not flushed');
    return;
  }
  for (const port of udp) {
    for (const family of ['ipv4', 'ipv6']) {
      const r = sys.run(conntrack, ['-D', '-f', family, '-p', 'udp', '--orig-port-dst', String(port)]);
      if (r.failure) {
        log.warn({ err: r.failure.message }, 'conntrack did not run: stale UDP entries were not flushed');
        return;
      }
    }
  }
}

function add(ctx: Context<PortmapConf>): Result {
  const prev = ctx.prevResult;
  if (!prev) {
    throw new CniError(ErrorCode.InvalidConfig, 'portmap must be chained after a plugin that gives the container an address (there is no prevResult)');
  }
  const wanted = normalize(ctx.conf.runtimeConfig?.portMappings ?? []);
  if (wanted.length === 0) return prev;
  const { conditions, backend } = conditionsAndBackend(ctx.conf);
  const containers = containerAddresses(prev);
  if (containers.length === 0) throw new CniError(ErrorCode.InvalidConfig, 'the prevResult has no container address to publish ports to');

  const key = keyOf(ctx);
  const fw = openFirewall(backend);
  const records = store(ctx.conf);
  registerLiveAttachments(dataDir(ctx.conf));
  const record = withFileLock(`${dataDir(ctx.conf)}/${PLUGIN}.lock`, () => {
    const index = publishedPorts(ctx.conf);
    const others = holdersOf(ctx.conf, index, key);
    checkConflicts(wanted, others);
    let needRandom = false;
    for (const w of wanted) if (w.hostPort === 0) needRandom = true;
    const sockets = needRandom ? boundSockets() : [];
    const { low, high } = needRandom ? ephemeralPortRange() : { low: 0, high: 0 };
    const ports = choosePorts(wanted, {
      low,
      high,
      reserved: needRandom ? reservedPorts() : new Set(),
      bound: (protocol, port, hostIP) => findConflict(sockets, protocol, hostIP, port) !== undefined,
      holdersOf: others,
    });
    const r: PortmapRecord = {
      ...key,
      backend: fw.backend,
      containers: formatPrefixes(containers),
      ports,
      snat: ctx.conf.snat ?? true,
      masqAll: ctx.conf.masqAll ?? false,
      ...(conditions ? { conditions } : {}),
    };
    // Record first: a crash after the rules leaves something DEL and GC can find.
    records.create(r);
    index.add(key, ports);
    try {
      fw.addPortMappings(key, requestOf(r));
    } catch (e) {
      index.remove(key, ports);
      records.remove(key);
      throw e;
    }
    return r;
  });
  let localhost = false;
  for (const p of record.ports) if (p.hostIP === '' || p.hostIP.startsWith('127.')) localhost = true;
  if (localhost) enableLocalnetRouting(containers);
  flushUdpConntrack(record.ports, ctx.log);
  // The chosen ports (-P) for whoever reads the result; runtimes ignore fields they do not know.
  return { ...prev, portMappings: record.ports };
}

/** Drops an attachment's ports from the index, then its record (the source of truth goes last). */
function forget(conf: PortmapConf, r: PortmapRecord): void {
  withFileLock(`${dataDir(conf)}/${PLUGIN}.lock`, () => {
    publishedPorts(conf).remove(r, r.ports);
    store(conf, r.network).remove(r);
  });
}

function del(ctx: Context<PortmapConf>): void {
  const key = keyOf(ctx);
  registerLiveAttachments(dataDir(ctx.conf));
  const records = store(ctx.conf);
  const record = records.read(key);
  if (record) {
    openFirewall(record.backend).delPortMappings(key, requestOf(record));
    forget(ctx.conf, record);
    return;
  }
  // No record (never published, or the data dir was lost): what the config and prevResult still tell.
  const wanted = normalize(ctx.conf.runtimeConfig?.portMappings ?? []).filter((w) => w.hostPort !== 0);
  const containers = ctx.prevResult ? containerAddresses(ctx.prevResult) : [];
  if (wanted.length === 0 || containers.length === 0) return;
  const { conditions, backend } = conditionsAndBackend(ctx.conf);
  openFirewall(backend).delPortMappings(key, requestOf({
    containers: formatPrefixes(containers),
    ports: wanted,
    snat: ctx.conf.snat ?? true,
    masqAll: ctx.conf.masqAll ?? false,
    conditions,
  }));
}

function check(ctx: Context<PortmapConf>): void {
  const wanted = normalize(ctx.conf.runtimeConfig?.portMappings ?? []);
  if (wanted.length === 0) return;
  const record = store(ctx.conf).read(keyOf(ctx));
  if (!record) throw new CniError(ErrorCode.CheckFailed, `no ports are published for container ${ctx.inv.containerId} (${ctx.inv.ifname})`);
  try {
    openFirewall(record.backend).checkPortMappings(keyOf(ctx), requestOf(record));
  } catch (e) {
    throw new CniError(ErrorCode.CheckFailed, (e as Error).message);
  }
}

function gc(ctx: Context<PortmapConf>, valid: Attachment[]): void {
  const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
  const records = store(ctx.conf);
  const backends = new Set<Backend>();
  records.sweepEmpty();
  for (const r of records.list()) {
    backends.add(r.backend);
    if (keep.has(`${r.containerId}\0${r.ifname}`)) continue;
    openFirewall(r.backend).delPortMappings({ network: r.network, containerId: r.containerId, ifname: r.ifname }, requestOf(r));
    forget(ctx.conf, r);
  }
  // Rules whose record was lost.
  if (ctx.conf.backend) backends.add(ctx.conf.backend);
  const keepList = valid.map((a) => ({ containerId: a.containerID, ifname: a.ifname }));
  for (const b of backends) openFirewall(b).gcPortMappings(ctx.conf.name, keepList);
}

export const portmapPlugin: Plugin<PortmapConf> = {
  name: PLUGIN,
  validate: validatePortmapConf,
  add,
  check,
  del,
  gc,
  status: () => undefined,
};
