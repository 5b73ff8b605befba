// docker0-style networking: a Linux bridge on the host, a veth pair per
// container with its end born inside the netns, addresses from IPAM, the
// gateway on the bridge, outbound masquerade. Every step of ADD is undone if
// a later one fails; DEL and GC work from the plugin's own records.
import type { BridgeConf, Result, Route, Attachment } from '../../lib/spec/index.ts';
import { validateBridgeConf } from '../../lib/spec/validators.gen.js';
import { keysBridgeConf } from '../../lib/spec/keys.gen.js';
import { CniError, ErrorCode, type Plugin, type Context } from '../../lib/skel/index.ts';
import { NetnsError } from '../../lib/netns/index.ts';
import { type Prefix, type IPAddr, type Family, parsePrefix, parseIP, networkOf, formatIP, tryParsePrefix } from '../../lib/ip/index.ts';
import { openFirewall, addMacSpoofCheck, delMacSpoofCheck, checkMacSpoofCheck, type Firewall, type AttachmentKey, type MasqEntry, type SetupOp } from '../../lib/firewall/index.ts';
import { resolveOptions, refuseUnsupported, parseExempt, type BridgeOptions } from './config.ts';
import { recordStore, type AttachmentRecord, type RecordIP } from './records.ts';
import type { AttachmentStore } from '../../lib/state/attachments.ts';
import { ipamAdd, ipamDel, ipamDelFor, ipamCheck, ipamGc, ipamStatus } from './ipam.ts';
import { parseHolderDetails } from '../../ipam/host-local/store.ts';
import { goneReason } from '../../lib/state/liveness.ts';
import { releasePublished } from '../portmap/records.ts';
import { registerLiveAttachments } from '../live.ts';
import { Netlink } from '../../lib/netlink/index.ts';
import {
  hostVethName, ensureBridge, createPair, configureContainer, ensureGatewayAddresses,
  deletePair, enableForwarding, restoreBridge, type ContainerAddress, type ContainerRoute,
} from './links.ts';

type Undo = () => unknown;

function keyOf(ctx: Context<BridgeConf>): AttachmentKey {
  return { network: ctx.conf.name, containerId: ctx.inv.containerId, ifname: ctx.inv.ifname };
}

/** The firewall; when the config needs none, a host without nft or iptables is fine too. */
function firewallFor(needed: boolean, backend: 'iptables' | 'nftables' | undefined): Firewall | undefined {
  try {
    return openFirewall(backend);
  } catch (e) {
    if (needed) throw e;
    return undefined;
  }
}

// Loops rather than array builtins on the ADD and DEL paths: each builtin's
// first use costs a plugin exec tens of µs under Bun.
function masqEntries(ips: RecordIP[], exempt: readonly Prefix[]): MasqEntry[] {
  const out: MasqEntry[] = [];
  for (const ip of ips) {
    const p = parsePrefix(ip.address);
    out.push(exempt.length > 0 ? { address: p.ip, subnet: networkOf(p), exempt } : { address: p.ip, subnet: networkOf(p) });
  }
  return out;
}

function defaultRoute(family: Family): Prefix {
  return parsePrefix(family === 4 ? '0.0.0.0/0' : '::/0');
}

/** The container's routes: IPAM's, plus a default route per family via the gateway when isDefaultGateway. */
function plannedRoutes(o: BridgeOptions, ipam: Result, addrs: ContainerAddress[]): { routes: ContainerRoute[]; result: Route[] } {
  const gatewayOf = (f: Family): IPAddr | undefined => {
    for (const a of addrs) if (a.prefix.ip.family === f && a.gateway) return a.gateway;
    return undefined;
  };
  const result: Route[] = [...(ipam.routes ?? [])];
  const routes: ContainerRoute[] = [];
  for (const r of result) {
    const dst = tryParsePrefix(r.dst);
    if (!dst) throw new CniError(ErrorCode.Internal, `IPAM returned a route to ${JSON.stringify(r.dst)}, which is not a CIDR`);
    const gw = r.gw ? parseIP(r.gw) : gatewayOf(dst.ip.family);
    routes.push({ dst, gw, mtu: r.mtu, advmss: r.advmss, priority: r.priority, table: r.table, scope: r.scope });
  }
  if (o.isDefaultGateway) {
    for (const f of [4, 6] as const) {
      const gw = gatewayOf(f);
      if (!gw) continue;
      let hasDefault = false;
      for (const r of routes) if (r.dst.length === 0 && r.dst.ip.family === f) hasDefault = true;
      if (hasDefault) {
        throw new CniError(ErrorCode.InvalidConfig, `isDefaultGateway is set but IPAM also returns an IPv${f} default route`);
      }
      routes.push({ dst: defaultRoute(f), gw });
      result.push({ dst: f === 4 ? '0.0.0.0/0' : '::/0', gw: formatIP(gw) });
    }
  }
  return { routes, result };
}

async function undoAll(ctx: Context<BridgeConf>, undo: Undo[]): Promise<void> {
  for (const u of undo.reverse()) {
    try {
      await u();
    } catch (e) {
      ctx.log.error({ err: (e as Error).message }, 'rollback step failed');
    }
  }
}

async function add(ctx: Context<BridgeConf>): Promise<Result> {
  refuseUnsupported(ctx.conf);
  const o = resolveOptions(ctx.conf, ctx.inv);
  const { containerId, ifname, netns } = ctx.inv;
  const store = recordStore(o.dataDir, ctx.conf.name);
  const hostName = hostVethName(ctx.conf.name, containerId, ifname);
  const record: AttachmentRecord = { network: ctx.conf.name, containerId, ifname, bridge: o.bridge, hostVeth: hostName, netns, ips: [] };
  registerLiveAttachments(o.dataDir);
  const undo: Undo[] = [];
  // One socket for every host-side step; the undo steps open their own.
  const nl = Netlink.open();
  try {
    // The record comes first: whatever a crash leaves from here on, DEL or GC can find.
    store.create(record);
    undo.push(() => store.remove({ containerId, ifname }));

    const { link: bridge, created, promiscSet } = ensureBridge(nl, o);
    if (promiscSet) undo.push(() => Netlink.with((u) => restoreBridge(u, o, o.bridge)));
    if (created) {
      undo.push(() => Netlink.with((u) => {
        const ports = u.links().filter((l) => l.masterIndex === bridge.index);
        if (ports.length === 0) u.deleteLink(bridge.index);
      }));
    }
    const host = createPair(nl, o, bridge, hostName, netns, ifname);
    undo.push(() => Netlink.with((u) => deletePair(u, hostName)));
    // Read with its first port on: a bridge cnikit could not fix follows its ports' MACs.
    const bridgeNow = nl.linkByIndex(bridge.index) ?? bridge;
    record.bridgeMac = bridgeNow.mac;

    const ipam = await ipamAddReclaiming(ctx, o.dataDir, store);
    undo.push(() => ipamDel(ctx));
    const ips = ipam.ips ?? [];
    const addrs: ContainerAddress[] = [];
    for (const ip of ips) {
      addrs.push({ prefix: parsePrefix(ip.address), gateway: ip.gateway ? parseIP(ip.gateway) : undefined });
      record.ips.push(ip.gateway ? { address: ip.address, gateway: ip.gateway } : { address: ip.address });
    }
    if (o.ipMasq) record.masqBackend = openFirewall(o.ipMasqBackend).backend;
    if (o.ipMasq && o.masqExempt.length > 0) record.masqExempt = ctx.conf.nonMasqueradeCIDRs;
    if (o.isolate) record.isolate = true;
    store.update(record);

    const { routes, result: resultRoutes } = plannedRoutes(o, ipam, addrs);
    const container = configureContainer(netns, ifname, o, addrs, routes);
    if (o.macspoofchk) {
      record.spoofCheckMac = container.mac;
      store.update(record);
      addMacSpoofCheck(hostName, container.mac);
      undo.push(() => delMacSpoofCheck(hostName, container.mac));
    }

    if (o.isGateway) {
      const gateways: Prefix[] = [];
      const families = new Set<Family>();
      for (const a of addrs) {
        if (!a.gateway) continue;
        gateways.push({ ip: a.gateway, length: a.prefix.length });
        families.add(a.gateway.family);
      }
      ensureGatewayAddresses(nl, o, bridge, gateways);
      enableForwarding(families);
    }
    // One firewall transaction (per family) for everything this ADD needs.
    const ops: SetupOp[] = [];
    // Every bridge is registered, so isolated ones know whom to block. icc=false
    // is done by bridge port isolation (links.ts), which needs no br_netfilter.
    const subnets: Prefix[] = [];
    for (const a of addrs) subnets.push(networkOf(a.prefix));
    ops.push({ kind: 'network', policy: { bridge: o.bridge, subnets, isolate: o.isolate, icc: true } });
    const entries = masqEntries(record.ips, o.masqExempt);
    if (o.ipMasq) ops.push({ kind: 'masquerade', key: keyOf(ctx), entries });
    const fw = firewallFor(o.ipMasq || o.isolate, record.masqBackend ?? o.ipMasqBackend);
    if (fw) {
      fw.setup(ops);
      if (o.ipMasq) undo.push(() => fw.delMasquerade(keyOf(ctx), entries));
    }

    const result: Result = {
      cniVersion: ctx.conf.cniVersion,
      interfaces: [
        { name: bridgeNow.name, mac: bridgeNow.mac },
        { name: host.name, mac: host.mac },
        { name: ifname, mac: container.mac, sandbox: netns },
      ],
      ips: [],
      routes: resultRoutes,
      dns: ctx.conf.dns && Object.keys(ctx.conf.dns).length > 0 ? ctx.conf.dns : (ipam.dns ?? {}),
    };
    for (const ip of ips) result.ips!.push({ ...ip, interface: 2 });
    if (result.routes?.length === 0) delete result.routes;
    return result;
  } catch (e) {
    await undoAll(ctx, undo);
    throw e;
  } finally {
    nl.close();
  }
}

/** Removes the links, rules and record of one attachment; each part succeeds when already gone. */
function teardown(record: AttachmentRecord | undefined, key: AttachmentKey, fallback: { ips: RecordIP[]; backend?: 'iptables' | 'nftables'; masq: boolean; exempt: Prefix[] }, netns: string | undefined, store: AttachmentStore<AttachmentRecord>): void {
  const hostName = record?.hostVeth ?? hostVethName(key.network, key.containerId, key.ifname);
  const deleted = Netlink.with((nl) => deletePair(nl, hostName));
  if (record?.spoofCheckMac) delMacSpoofCheck(hostName, record.spoofCheckMac);
  // Deleting our host end took the container end with it.
  if (netns && !deleted) {
    try {
      // A pair made by another plugin (e.g. the reference bridge before an upgrade) has another host name.
      Netlink.inNetns(netns, (nl) => {
        const link = nl.link(key.ifname);
        if (link?.kind === 'veth') nl.deleteLink(link.index);
      });
    } catch (e) {
      if (!(e instanceof NetnsError)) throw e;
    }
  }
  const ips = record?.ips.length ? record.ips : fallback.ips;
  const backend = record?.masqBackend ?? (fallback.masq ? fallback.backend : undefined);
  const exempt = record ? parseExempt(record.masqExempt, false) : fallback.exempt;
  if ((record?.masqBackend || fallback.masq) && ips.length > 0) openFirewall(backend).delMasquerade(key, masqEntries(ips, exempt));
  store.remove(key);
}

function hasLink(name: string): boolean {
  return Netlink.with((nl) => nl.link(name) !== undefined);
}

/**
 * IPAM ADD. A requested address (code 103) held by an attachment of this
 * host whose netns and host veth are both gone is reclaimed as its DEL would
 * (lease, links, rules, record), once, and the ADD goes on.
 */
async function ipamAddReclaiming(ctx: Context<BridgeConf>, dataDir: string, store: AttachmentStore<AttachmentRecord>): Promise<Result> {
  try {
    return await ipamAdd(ctx);
  } catch (e) {
    if (!(e instanceof CniError) || e.code !== ErrorCode.AddressInUse) throw e;
    const holder = parseHolderDetails(e.details);
    if (!holder || (holder.containerId === ctx.inv.containerId && holder.ifname === ctx.inv.ifname)) throw e;
    const r = store.read(holder);
    const gone = r ? goneReason(r, hasLink) : undefined;
    if (!r || !gone) throw e;
    await ipamDelFor(ctx, holder);
    const key = { network: r.network, containerId: r.containerId, ifname: r.ifname };
    // Its published ports would forward to the address's next holder (when portmap keeps its records in the same dataDir).
    releasePublished(dataDir, key, gone, ctx.log);
    teardown(r, key, { ips: [], masq: false, exempt: [] }, undefined, store);
    ctx.log.warn({ containerId: r.containerId, ifname: r.ifname, ips: r.ips }, `reclaimed the address of container ${r.containerId} (${r.ifname}) on network ${r.network}: ${gone}`);
    return await ipamAdd(ctx);
  }
}

function prevResultIPs(ctx: Context<BridgeConf>): RecordIP[] {
  const ifaces = ctx.prevResult?.interfaces ?? [];
  const out: RecordIP[] = [];
  for (const ip of ctx.prevResult?.ips ?? []) {
    if (ip.interface === undefined || ifaces[ip.interface]?.name === ctx.inv.ifname) out.push({ address: ip.address });
  }
  return out;
}

async function del(ctx: Context<BridgeConf>): Promise<void> {
  const o = resolveOptions(ctx.conf, ctx.inv, false);
  const store = recordStore(o.dataDir, ctx.conf.name);
  const record = store.read(ctx.inv);
  registerLiveAttachments(o.dataDir);
  await ipamDel(ctx);
  teardown(record, keyOf(ctx), { ips: prevResultIPs(ctx), backend: o.ipMasqBackend, masq: o.ipMasq, exempt: o.masqExempt }, ctx.inv.netns || undefined, store);
  if (o.promiscMode) Netlink.with((nl) => restoreBridge(nl, o, record?.bridge ?? o.bridge));
}

function checkFailed(msg: string): CniError {
  return new CniError(ErrorCode.CheckFailed, msg);
}

async function check(ctx: Context<BridgeConf>): Promise<void> {
  const o = resolveOptions(ctx.conf, ctx.inv, false);
  const { ifname, netns, containerId } = ctx.inv;
  if (!ctx.prevResult) throw new CniError(ErrorCode.InvalidConfig, 'CHECK needs the prevResult of the ADD');
  await ipamCheck(ctx);
  const want = prevResultIPs(ctx);
  const record = recordStore(o.dataDir, ctx.conf.name).read({ containerId, ifname });
  const hostName = record?.hostVeth ?? hostVethName(ctx.conf.name, containerId, ifname);

  Netlink.inNetns(netns, (nl) => {
    const link = nl.link(ifname);
    if (!link) throw checkFailed(`${ifname} does not exist in ${netns}`);
    if (link.kind !== 'veth') throw checkFailed(`${ifname} in ${netns} is a ${link.kind || 'plain device'}, not a veth`);
    const declared = ctx.prevResult?.interfaces?.find((i) => i.name === ifname && i.sandbox);
    if (declared?.mac && declared.mac.toLowerCase() !== link.mac) throw checkFailed(`${ifname} has MAC ${link.mac}, not ${declared.mac}`);
    const have = new Set(nl.addresses({ index: link.index }).map((a) => a.cidr));
    for (const ip of want) {
      const p = parsePrefix(ip.address);
      if (!have.has(`${formatIP(p.ip)}/${p.length}`)) throw checkFailed(`${ifname} in ${netns} lacks the address ${ip.address}`);
    }
    const routes = nl.routes({ index: link.index });
    for (const r of ctx.prevResult?.routes ?? []) {
      const dst = networkOf(parsePrefix(r.dst));
      const found = routes.some((k) => (k.dst?.length ?? 0) === dst.length && (dst.length === 0 || (k.dst && k.dst.ip.value === dst.ip.value && k.family === dst.ip.family)));
      if (!found) throw checkFailed(`the route to ${r.dst} is missing in ${netns}`);
    }
  });
  Netlink.with((nl) => {
    const host = nl.link(hostName);
    if (!host) throw checkFailed(`the host end ${hostName} of ${ifname} is missing`);
    const master = host.masterIndex !== undefined ? nl.linkByIndex(host.masterIndex) : undefined;
    if (master?.name !== o.bridge) throw checkFailed(`${hostName} is not attached to bridge ${o.bridge}`);
    if (record?.bridgeMac && master.mac !== record.bridgeMac) {
      throw checkFailed(`bridge ${o.bridge} has MAC ${master.mac}, not ${record.bridgeMac} as when ${ifname} was attached: its containers may still send to the old one`);
    }
  });
  if (o.macspoofchk && record?.spoofCheckMac) {
    try {
      checkMacSpoofCheck(hostName, record.spoofCheckMac);
    } catch (e) {
      throw checkFailed((e as Error).message);
    }
  }
  if (o.ipMasq) {
    try {
      openFirewall(record?.masqBackend ?? o.ipMasqBackend).checkMasquerade(keyOf(ctx), masqEntries(want, record ? parseExempt(record.masqExempt, false) : o.masqExempt));
    } catch (e) {
      if (e instanceof CniError) throw e;
      throw checkFailed((e as Error).message);
    }
  }
}

async function gc(ctx: Context<BridgeConf>, valid: Attachment[]): Promise<void> {
  const o = resolveOptions(ctx.conf, ctx.inv, false);
  const store = recordStore(o.dataDir, ctx.conf.name);
  const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
  store.sweepEmpty();
  // A record of the layout before per-host state is this host's when its host veth is here.
  for (const r of store.list((legacy) => hasLink(legacy.hostVeth))) {
    if (keep.has(`${r.containerId}\0${r.ifname}`)) continue;
    ctx.log.info({ containerId: r.containerId, ifname: r.ifname }, 'gc: removing a stale attachment');
    // Not the recorded netns: its path may name another container by now.
    teardown(r, { network: r.network, containerId: r.containerId, ifname: r.ifname }, { ips: [], masq: false, exempt: [] }, undefined, store);
  }
  if (o.promiscMode) Netlink.with((nl) => restoreBridge(nl, o, o.bridge));
  // Rules whose record was lost (a crash between the rule and the record, a wiped data dir).
  if (o.ipMasq) {
    const keepList = valid.map((a) => ({ containerId: a.containerID, ifname: a.ifname }));
    openFirewall(o.ipMasqBackend).gcMasquerade(ctx.conf.name, keepList);
  }
  await ipamGc(ctx);
}

export const bridgePlugin: Plugin<BridgeConf> = {
  name: 'bridge',
  validate: validateBridgeConf,
  keys: keysBridgeConf,
  add,
  check,
  del,
  gc,
  status: ipamStatus,
};
