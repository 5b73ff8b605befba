// The links of one attachment: the bridge (created or adopted), the veth pair
// with its container end born inside the netns, and the addresses and routes
// on both sides.
import { Netlink, NetlinkError, writeSysctl, type Link, type Address } from '../../lib/netlink/index.ts';
import { sys } from '../../lib/sys/index.ts';
import { openNetns } from '../../lib/netns/index.ts';
import { type Prefix, type IPAddr, networkOf, formatPrefix, contains, equalIP } from '../../lib/ip/index.ts';
import { CniError, ErrorCode } from '../../lib/skel/index.ts';
import type { BridgeOptions } from './config.ts';

const EEXIST = 17;

/**
 * The host end's name, derived from the attachment so that a DEL or GC
 * without records still finds it, and a retry after a crash replaces its own
 * leftover instead of colliding with it.
 */
export function hostVethName(network: string, containerId: string, ifname: string): string {
  const h = sys.sha256hex(`${network}\0${containerId}\0${ifname}`);
  return `veth${h.slice(0, 11)}`;
}

/** The bridge, created if missing; refuses a non-bridge link of that name. Returns it and whether this call made it. */
/** A random locally administered unicast MAC. */
function randomLocalMac(): string {
  const b = new Uint8Array(6);
  crypto.getRandomValues(b);
  b[0] = (b[0]! & 0xfe) | 0x02;
  let out = '';
  for (let i = 0; i < 6; i++) out += (i ? ':' : '') + b[i]!.toString(16).padStart(2, '0');
  return out;
}

export function ensureBridge(nl: Netlink, o: BridgeOptions): { link: Link; created: boolean } {
  let link = nl.link(o.bridge);
  let created = false;
  if (!link) {
    try {
      // A MAC of its own (addr_assign_type "set"): otherwise the bridge takes its
      // lowest port's, and every container's neighbour entry for the gateway goes
      // stale for seconds when that container leaves (DNS on the gateway included).
      nl.createBridge(o.bridge, { mtu: o.mtu, mac: randomLocalMac() });
      created = true;
    } catch (e) {
      // A parallel ADD made it first: adopt it.
      if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
    }
    link = nl.link(o.bridge);
    if (!link) throw new CniError(ErrorCode.Internal, `bridge ${o.bridge} vanished while it was being set up`);
  }
  if (link.kind !== 'bridge') {
    throw new CniError(ErrorCode.InvalidConfig, `${o.bridge} already exists and is not a bridge (it is ${link.kind || 'a plain device'})`);
  }
  if (o.promiscMode) nl.setPromisc(link.index, true);
  if (!link.up) nl.setUp(link.index);
  return { link, created };
}

/**
 * The veth pair: the host end on the bridge, the container end created
 * directly in the netns under the name the runtime asked for.
 */
export function createPair(nl: Netlink, o: BridgeOptions, bridge: Link, hostName: string, netns: string, ifname: string): Link {
  const fd = openNetns(netns);
  const isClash = (e: unknown) => e instanceof NetlinkError && e.errno === EEXIST;
  const taken = () => new CniError(ErrorCode.InvalidConfig, `an interface named ${ifname} already exists in ${netns}`);
  const create = () => nl.createVeth({ name: hostName, peerName: ifname, peerNetnsFd: fd, mtu: o.mtu ?? bridge.mtu, peerMac: o.mac, masterIndex: bridge.index, up: true });
  try {
    try {
      create();
    } catch (e) {
      if (!isClash(e)) throw e;
      // A host end left by an ADD that crashed (its name is this attachment's): replace it.
      const stale = nl.link(hostName);
      if (!stale) throw taken();
      nl.deleteLink(stale.index);
      try {
        create();
      } catch (e2) {
        throw isClash(e2) ? taken() : e2;
      }
    }
  } finally {
    sys.close(fd);
  }
  const host = nl.link(hostName);
  if (!host) throw new CniError(ErrorCode.Internal, `veth ${hostName} vanished after it was created`);
  if (o.hairpinMode) nl.setHairpin(host.index, true);
  // icc=false: isolated ports of one bridge cannot talk to each other, only to the host.
  if (o.portIsolation) nl.setBridgePortIsolated(host.index, true);
  return host;
}

export interface ContainerAddress {
  prefix: Prefix;
  gateway?: IPAddr;
}

export interface ContainerRoute {
  dst: Prefix;
  gw?: IPAddr;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}

/** Addresses and routes inside the netns; returns the container link as it ends up. */
export function configureContainer(
  netns: string,
  ifname: string,
  o: BridgeOptions,
  addresses: ContainerAddress[],
  routes: ContainerRoute[],
): Link {
  return Netlink.inNetns(netns, (nl) => {
    const link = nl.link(ifname);
    if (!link) throw new CniError(ErrorCode.Internal, `${ifname} is missing in ${netns} right after it was created`);
    let hasV6 = false;
    for (const a of addresses) if (a.prefix.ip.family === 6) hasV6 = true;
    if (!o.enableDad && hasV6) {
      // Without DAD the address is usable at once; a duplicate is IPAM's business.
      writeSysctl(`net/ipv6/conf/${ifname}/accept_dad`, '0');
    }
    for (const a of addresses) nl.addAddress(link.index, a.prefix, { noDad: !o.enableDad });
    if (o.disableContainerInterface) return link;
    nl.setUp(link.index);
    for (const r of routes) {
      try {
        nl.addRoute({ ...r, index: link.index });
      } catch (e) {
        // The kernel already made this one (the prefix route of an address).
        if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
      }
    }
    // Its name, index and MAC, which is what callers use, are as read above.
    return link;
  });
}

/**
 * Gives the bridge the gateway address of each subnet. Another address of the
 * same subnet on the bridge is an error unless forceAddress, which replaces it.
 * Returns the addresses this call added.
 */
export function ensureGatewayAddresses(nl: Netlink, o: BridgeOptions, bridge: Link, gateways: Prefix[]): Prefix[] {
  const added: Prefix[] = [];
  let present: Address[] | undefined;
  const clashOf = (gw: Prefix): Address | undefined => {
    present ??= nl.addresses({ index: bridge.index });
    for (const a of present) {
      if (equalIP(a.address, gw.ip) && a.prefix.length === gw.length) continue;
      if (a.family === gw.ip.family && a.scope === 0 && contains(networkOf(gw), a.address)) return a;
    }
    return undefined;
  };
  const refuse = (gw: Prefix, clash: Address) =>
    new CniError(ErrorCode.InvalidConfig, `bridge ${o.bridge} already has ${clash.cidr}, not the gateway ${formatPrefix(gw)} (set forceAddress to replace it)`);
  for (const gw of gateways) {
    if (gw.ip.family === 4) {
      // The steady state, the gateway already there, in one request: for IPv4
      // the kernel refuses (EEXIST) exactly an address of that length on the link.
      try {
        nl.addAddress(bridge.index, gw, { noDad: true });
      } catch (e) {
        if (e instanceof NetlinkError && e.errno === EEXIST) continue;
        throw e;
      }
      const clash = clashOf(gw);
      if (clash) {
        // Ours came second, so it is the secondary address: it goes first (deleting
        // the primary would take the secondaries of its subnet with it).
        nl.deleteAddress(bridge.index, gw);
        if (!o.forceAddress) throw refuse(gw, clash);
        nl.deleteAddress(bridge.index, clash.prefix);
        nl.addAddress(bridge.index, gw, { noDad: true });
      }
      added.push(gw);
      continue;
    }
    // IPv6 refuses the same address with another length too: look first.
    present ??= nl.addresses({ index: bridge.index });
    let here = false;
    for (const a of present) if (equalIP(a.address, gw.ip) && a.prefix.length === gw.length) here = true;
    if (here) continue;
    const clash = clashOf(gw);
    if (clash) {
      if (!o.forceAddress) throw refuse(gw, clash);
      nl.deleteAddress(bridge.index, clash.prefix);
    }
    try {
      nl.addAddress(bridge.index, gw, { noDad: true });
      added.push(gw);
    } catch (e) {
      if (!(e instanceof NetlinkError && e.errno === EEXIST)) throw e;
    }
  }
  return added;
}

/** Deletes the host end (and with it the container end) if it exists. */
export function deletePair(nl: Netlink, hostName: string): boolean {
  const link = nl.link(hostName);
  if (!link || link.kind !== 'veth') return false;
  try {
    nl.deleteLinkUnwaited(link.index);
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === 19 /* ENODEV: a parallel DEL */) return false;
    throw e;
  }
  return true;
}

export function enableForwarding(families: Set<4 | 6>): void {
  if (families.has(4)) writeSysctl('net/ipv4/ip_forward', '1');
  if (families.has(6)) writeSysctl('net/ipv6/conf/all/forwarding', '1');
}
