// Published ports, chained after bridge: DNAT from host ports to the
// container's address (Docker's -p and -P), with hairpin and localhost SNAT.
// ADD with no mappings execs nothing; DEL works from the plugin's records,
// so it needs neither the netns nor the prevResult.
import type { PortmapConf, Result, Attachment } from '../../lib/spec/index.ts';
import { validatePortmapConf } from '../../lib/spec/validators.gen.js';
import { keysPortmapConf } from '../../lib/spec/keys.gen.js';
import { CniError, ErrorCode, type Plugin, type Context } from '../../lib/skel/index.ts';
import { openFirewall, checkConditions, findTool, type AttachmentKey, type Backend } from '../../lib/firewall/index.ts';
import { type AttachmentStore, DEFAULT_DATA_DIR } from '../../lib/state/attachments.ts';
import type { PublishedPorts } from './published.ts';
import { portmapStore, portIndex, portmapLock, requestOf, type PortmapRecord } from './records.ts';
import { acceptPublished, unacceptPublished, checkPublished } from './forward.ts';
import { gcForwardAccepts, iptablesUsable } from '../../lib/firewall/index.ts';
import { registerLiveAttachments } from '../live.ts';
import { withFileLock } from '../../lib/state/index.ts';
import { goneReason } from '../../lib/state/liveness.ts';
import { dirname, listDirIfExists } from '../../lib/fs/index.ts';
import { boundSockets, findConflict, ephemeralPortRange, reservedPorts } from '../../lib/hostports/index.ts';
import { Netlink, writeSysctl } from '../../lib/netlink/index.ts';
import { sys } from '../../lib/sys/index.ts';
import { formatPrefix, type Prefix } from '../../lib/ip/index.ts';
import {
  normalize, checkConflicts, choosePorts, containerAddresses, type Published, type HoldersOf, type Holder,
} from './mappings.ts';

const PLUGIN = 'portmap';

export type { PortmapRecord };

function dataDir(conf: PortmapConf): string {
  return conf.dataDir ?? DEFAULT_DATA_DIR;
}

function store(conf: PortmapConf, network = conf.name): AttachmentStore<PortmapRecord> {
  return portmapStore(dataDir(conf), network);
}

function keyOf(ctx: Context<PortmapConf>): AttachmentKey {
  return { network: ctx.conf.name, containerId: ctx.inv.containerId, ifname: ctx.inv.ifname };
}

function formatPrefixes(ps: readonly Prefix[]): string[] {
  const out: string[] = [];
  for (const p of ps) out.push(formatPrefix(p));
  return out;
}

function publishedPorts(conf: PortmapConf): PublishedPorts {
  return portIndex(dataDir(conf));
}

function lockPath(conf: PortmapConf): string {
  return portmapLock(dataDir(conf));
}

function sameKey(a: AttachmentKey, b: AttachmentKey): boolean {
  return a.network === b.network && a.containerId === b.containerId && a.ifname === b.ifname;
}

/**
 * Who else publishes a port, from the port index; an entry whose record is
 * gone (a crash between the two writes) is dropped on the way, and a holder
 * that is provably gone (netns and host veth, see lib/state/liveness.ts) is
 * reclaimed as its DEL would: its rules, index entries and record.
 */
function holdersOf(ctx: Context<PortmapConf>, index: PublishedPorts, key: AttachmentKey): HoldersOf {
  return (protocol, port) => {
    const out: Holder[] = [];
    for (const h of index.holders(protocol, port)) {
      if (sameKey(h, key)) continue;
      const records = store(ctx.conf, h.network);
      const r = records.read(h);
      if (!r) {
        index.drop(protocol, port, h);
        continue;
      }
      const gone = goneReason(r, hasLink);
      if (gone) {
        const req = requestOf(r);
        openFirewall(r.backend).delPortMappings(r, req);
        if (r.forwardAccepts) unacceptPublished(r, req);
        index.remove(r, r.ports);
        records.remove(r);
        ctx.log.warn({ network: r.network, containerId: r.containerId, ifname: r.ifname, ports: r.ports }, `reclaimed ${port}/${protocol} and every other port of container ${r.containerId} (${r.ifname}) on network ${r.network}: ${gone}`);
        continue;
      }
      out.push({ network: h.network, containerId: h.containerId, port: { hostIP: h.hostIP, hostPort: port, containerPort: h.containerPort, protocol } });
    }
    return out;
  };
}

function hasLink(name: string): boolean {
  return Netlink.with((nl) => nl.link(name) !== undefined);
}

/** The host end of the container's veth among the prevResult's host-side interfaces, if there is one. */
function hostVethOf(prev: Result): string | undefined {
  const names: string[] = [];
  for (const i of prev.interfaces ?? []) if (!i.sandbox && i.name) names.push(i.name);
  if (names.length === 0) return undefined;
  return Netlink.with((nl) => {
    for (const n of names) if (nl.link(n)?.kind === 'veth') return n;
    return undefined;
  });
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
  const hostVeth = hostVethOf(prev);
  registerLiveAttachments(dataDir(ctx.conf));
  const record = withFileLock(lockPath(ctx.conf), () => {
    const index = publishedPorts(ctx.conf);
    const others = holdersOf(ctx, index, key);
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
      ...(ctx.inv.netns ? { netns: ctx.inv.netns } : {}),
      ...(hostVeth ? { hostVeth } : {}),
      ...(iptablesUsable() ? { forwardAccepts: true } : {}),
    };
    // Record first: a crash after the rules leaves something DEL and GC can find.
    records.create(r);
    index.add(key, ports);
    try {
      fw.addPortMappings(key, requestOf(r));
      try {
        if (r.forwardAccepts) acceptPublished(key, requestOf(r));
      } catch (e) {
        fw.delPortMappings(key, requestOf(r));
        unacceptPublished(key, requestOf(r));
        throw e;
      }
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
  withFileLock(lockPath(conf), () => {
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
    if (record.forwardAccepts) unacceptPublished(key, requestOf(record));
    forget(ctx.conf, record);
    return;
  }
  // An empty record is what an ADD killed before its first write leaves (nothing else was done yet).
  records.remove(key);
  // No record (never published, or the data dir was lost): what the config and prevResult still tell.
  let wanted: Published[];
  let found: { conditions?: PortmapRecord['conditions']; backend?: Backend };
  try {
    wanted = normalize(ctx.conf.runtimeConfig?.portMappings ?? []).filter((w) => w.hostPort !== 0);
    found = conditionsAndBackend(ctx.conf);
  } catch (e) {
    // Nothing was published from mappings that do not make sense: DEL is done.
    ctx.log.warn({ err: (e as Error).message }, 'DEL: no record, and the mappings given cannot be read');
    return;
  }
  const containers = ctx.prevResult ? containerAddresses(ctx.prevResult) : [];
  if (wanted.length === 0 || containers.length === 0) return;
  const { conditions, backend } = found;
  const request = requestOf({
    containers: formatPrefixes(containers),
    ports: wanted,
    snat: ctx.conf.snat ?? true,
    masqAll: ctx.conf.masqAll ?? false,
    conditions,
  });
  openFirewall(backend).delPortMappings(key, request);
  if (iptablesUsable()) unacceptPublished(key, request);
}

function check(ctx: Context<PortmapConf>): void {
  const wanted = normalize(ctx.conf.runtimeConfig?.portMappings ?? []);
  if (wanted.length === 0) return;
  const record = store(ctx.conf).read(keyOf(ctx));
  if (!record) throw new CniError(ErrorCode.CheckFailed, `no ports are published for container ${ctx.inv.containerId} (${ctx.inv.ifname})`);
  try {
    openFirewall(record.backend).checkPortMappings(keyOf(ctx), requestOf(record));
    if (record.forwardAccepts) checkPublished(keyOf(ctx), requestOf(record));
  } catch (e) {
    throw new CniError(ErrorCode.CheckFailed, (e as Error).message);
  }
}

function gc(ctx: Context<PortmapConf>, valid: Attachment[]): void {
  const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
  const records = store(ctx.conf);
  const backends = new Set<Backend>();
  records.sweepEmpty();
  // A record of the layout before per-host state is this host's when its rules are in this host's firewall.
  const ours = (r: PortmapRecord): boolean => {
    try {
      openFirewall(r.backend).checkPortMappings(r, requestOf(r));
      return true;
    } catch {
      return false;
    }
  };
  for (const r of records.list(ours)) {
    backends.add(r.backend);
    if (keep.has(`${r.containerId}\0${r.ifname}`)) continue;
    openFirewall(r.backend).delPortMappings({ network: r.network, containerId: r.containerId, ifname: r.ifname }, requestOf(r));
    if (r.forwardAccepts) unacceptPublished({ network: r.network, containerId: r.containerId, ifname: r.ifname }, requestOf(r));
    forget(ctx.conf, r);
  }
  // The index of every network of this host, from the records that remain.
  withFileLock(lockPath(ctx.conf), () => {
    const all: PortmapRecord[] = [];
    const base = dirname(records.dir);
    for (const network of listDirIfExists(base)) all.push(...store(ctx.conf, network).list());
    const { dropped, added } = publishedPorts(ctx.conf).sweep(all);
    if (dropped + added > 0) ctx.log.info({ dropped, added }, 'gc: port index entries without a record dropped, records missing from the index added');
  });
  // Rules whose record was lost.
  if (ctx.conf.backend) backends.add(ctx.conf.backend);
  const keepList = valid.map((a) => ({ containerId: a.containerID, ifname: a.ifname }));
  for (const b of backends) openFirewall(b).gcPortMappings(ctx.conf.name, keepList);
  if (iptablesUsable()) gcForwardAccepts('pub', ctx.conf.name, keepList);
}

export const portmapPlugin: Plugin<PortmapConf> = {
  name: PLUGIN,
  validate: validatePortmapConf,
  keys: keysPortmapConf,
  add,
  check,
  del,
  gc,
  status: () => undefined,
};
