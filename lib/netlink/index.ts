// rtnetlink in the namespace the socket was opened in: links (veth, bridge),
// addresses and routes. Open it inside withNetns() to work on a container.
import { NETLINK_ROUTE } from '../sys/index.ts';
import { withNetns } from '../netns/index.ts';
import {
  type Family, type IPAddr, type Prefix, formatIP, ipToBytes, ipFromBytes, lastAddress, networkOf,
} from '../ip/index.ts';
import {
  attr, nested, u8, u32, str, struct, concat, parseAttrs, readU8, readU32, readI32, readStr,
  formatMac, parseMac,
} from './codec.ts';
import { NetlinkSocket, NetlinkError, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_ECHO } from './socket.ts';

import {
  RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC, RTM_NEWTFILTER, RTM_GETTFILTER, TC_H_ROOT, INGRESS_HANDLE,
  tbfQdiscMessage, ingressQdiscMessage, qdiscRef, redirectFilterMessage, filterDumpMessage, decodeQdisc, decodeFilter,
  type TbfParams, type Qdisc, type Filter,
} from './tc.ts';

export { NetlinkError } from './socket.ts';
export { TC_H_ROOT, TC_H_INGRESS, INGRESS_HANDLE, tcHandle, tbfParams, tbfAsReported, parsePsched, type TbfParams, type Qdisc, type Filter, type PschedClock } from './tc.ts';
export { readSysctl, writeSysctl } from './sysctl.ts';

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_GETLINK = 18;
const RTM_SETLINK = 19;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const RTM_GETADDR = 22;
const RTM_NEWROUTE = 24;
const RTM_DELROUTE = 25;
const RTM_GETROUTE = 26;

const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_BRIDGE = 7;
const AF_INET6 = 10;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_MTU = 4;
const IFLA_TXQLEN = 13;
const IFLA_LINK = 5;
const IFLA_MASTER = 10;
const IFLA_PROTINFO = 12;
const IFLA_LINKINFO = 18;
const IFLA_IFALIAS = 20;
const IFLA_NET_NS_FD = 28;
const IFLA_LINK_NETNSID = 37;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const IFLA_INFO_SLAVE_KIND = 4;
const VETH_INFO_PEER = 1;
const IFLA_BR_VLAN_FILTERING = 7;
const IFLA_BRPORT_MODE = 4;
const IFLA_BRPORT_ISOLATED = 33;

const IFF_UP = 0x1;
export const IFF_PROMISC = 0x100;
const IFF_ALLMULTI = 0x200;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_BROADCAST = 4;
const IFA_FLAGS = 8;
export const IFA_F_NODAD = 0x02;
export const IFA_F_DADFAILED = 0x08;
export const IFA_F_TENTATIVE = 0x40;
export const IFA_F_NOPREFIXROUTE = 0x200;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_PREFSRC = 7;
const RTA_METRICS = 8;
const RTA_TABLE = 15;
const RTAX_MTU = 2;
const RTAX_ADVMSS = 8;
export const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
export const RT_SCOPE_UNIVERSE = 0;
export const RT_SCOPE_LINK = 253;
export const RT_SCOPE_HOST = 254;
const RTN_UNICAST = 1;

export interface Link {
  index: number;
  name: string;
  flags: number;
  up: boolean;
  mtu: number;
  mac: string;
  /** IFLA_INFO_KIND: 'veth', 'bridge', … ('' for plain devices such as lo). */
  kind: string;
  /** Index of the bridge (or other master) it is enslaved to. */
  masterIndex?: number;
  /** The transmit queue length (IFLA_TXQLEN). */
  txQLen?: number;
  /** For a veth: the peer's index (in the namespace linkNetnsId names, if set). */
  linkIndex?: number;
  linkNetnsId?: number;
  /** IFLA_IFALIAS, the free-text alias of `ip link set … alias`. */
  alias?: string;
}

export interface Address {
  index: number;
  family: Family;
  address: IPAddr;
  prefix: Prefix;
  /** "address/length", the form CNI results use. */
  cidr: string;
  scope: number;
  flags: number;
}

export interface Route {
  family: Family;
  /** Destination; undefined for the default route. */
  dst?: Prefix;
  gw?: IPAddr;
  index?: number;
  table: number;
  scope: number;
  priority?: number;
  prefsrc?: IPAddr;
  mtu?: number;
}

export interface RouteSpec {
  /** Destination; undefined (or /0) for the default route. */
  dst?: Prefix;
  gw?: IPAddr;
  index?: number;
  table?: number;
  scope?: number;
  priority?: number;
  mtu?: number;
  advmss?: number;
}

export interface LinkOptions {
  mtu?: number;
  mac?: string;
}

export interface VethSpec {
  /** The end created in this socket's namespace. */
  name: string;
  /** The other end, created directly in the namespace of `peerNetnsFd` when given. */
  peerName: string;
  peerNetnsFd?: number;
  mtu?: number;
  mac?: string;
  peerMac?: string;
  /** Enslave this end to the bridge (or other master) of that index as it is created. */
  masterIndex?: number;
  /** Bring this end up as it is created. */
  up?: boolean;
}

function familyCode(f: Family): number {
  return f === 4 ? AF_INET : AF_INET6;
}

function ifinfomsg(index: number, flags = 0, change = 0, family = AF_UNSPEC): Uint8Array {
  return struct(16, (dv) => {
    dv.setUint8(0, family);
    dv.setInt32(4, index, true);
    dv.setUint32(8, flags, true);
    dv.setUint32(12, change, true);
  });
}

function macAttr(mac: string): Uint8Array {
  const b = parseMac(mac);
  if (!b) throw new NetlinkError(`invalid MAC address "${mac}"`, 22);
  return attr(IFLA_ADDRESS, b);
}

function linkOptionAttrs(o: LinkOptions): Uint8Array[] {
  const out: Uint8Array[] = [];
  if (o.mtu !== undefined) out.push(u32(IFLA_MTU, o.mtu));
  if (o.mac !== undefined) out.push(macAttr(o.mac));
  return out;
}

function decodeLink(body: Uint8Array): Link {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const index = dv.getInt32(4, true);
  const flags = dv.getUint32(8, true);
  const a = parseAttrs(body, 16);
  const info = a.get(IFLA_LINKINFO);
  const infoAttrs = info ? parseAttrs(info) : undefined;
  const link: Link = {
    index,
    name: readStr(a.get(IFLA_IFNAME)) ?? '',
    flags,
    up: (flags & IFF_UP) !== 0,
    mtu: readU32(a.get(IFLA_MTU)) ?? 0,
    mac: formatMac(a.get(IFLA_ADDRESS)),
    kind: readStr(infoAttrs?.get(IFLA_INFO_KIND)) ?? '',
  };
  const master = readU32(a.get(IFLA_MASTER));
  if (master) link.masterIndex = master;
  const txq = readU32(a.get(IFLA_TXQLEN));
  if (txq !== undefined) link.txQLen = txq;
  const peer = readU32(a.get(IFLA_LINK));
  const nsid = readI32(a.get(IFLA_LINK_NETNSID));
  // A peer in another namespace may have the same index as this link there.
  if (peer !== undefined && (peer !== index || nsid !== undefined)) link.linkIndex = peer;
  if (nsid !== undefined) link.linkNetnsId = nsid;
  const alias = readStr(a.get(IFLA_IFALIAS));
  if (alias) link.alias = alias;
  return link;
}

function decodeAddress(body: Uint8Array): Address | undefined {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const fam = dv.getUint8(0);
  if (fam !== AF_INET && fam !== AF_INET6) return undefined;
  const length = dv.getUint8(1);
  const a = parseAttrs(body, 8);
  // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
  const raw = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
  if (!raw) return undefined;
  const address = ipFromBytes(raw);
  const flags = readU32(a.get(IFA_FLAGS)) ?? dv.getUint8(2);
  const prefix = { ip: address, length };
  return {
    index: dv.getUint32(4, true),
    family: address.family,
    address,
    prefix,
    cidr: `${formatIP(address)}/${length}`,
    scope: dv.getUint8(3),
    flags,
  };
}

function decodeRoute(body: Uint8Array): Route | undefined {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const fam = dv.getUint8(0);
  if (fam !== AF_INET && fam !== AF_INET6) return undefined;
  const family: Family = fam === AF_INET ? 4 : 6;
  const dstLen = dv.getUint8(1);
  const a = parseAttrs(body, 12);
  const route: Route = {
    family,
    table: readU32(a.get(RTA_TABLE)) ?? dv.getUint8(4),
    scope: dv.getUint8(6),
  };
  const dst = a.get(RTA_DST);
  if (dst) route.dst = { ip: ipFromBytes(dst), length: dstLen };
  const gw = a.get(RTA_GATEWAY);
  if (gw) route.gw = ipFromBytes(gw);
  const oif = readU32(a.get(RTA_OIF));
  if (oif !== undefined) route.index = oif;
  const prio = readU32(a.get(RTA_PRIORITY));
  if (prio !== undefined) route.priority = prio;
  const src = a.get(RTA_PREFSRC);
  if (src) route.prefsrc = ipFromBytes(src);
  const metrics = a.get(RTA_METRICS);
  if (metrics) {
    const mtu = readU32(parseAttrs(metrics).get(RTAX_MTU));
    if (mtu) route.mtu = mtu;
  }
  return route;
}

export class Netlink {
  private constructor(private readonly sock: NetlinkSocket) {}

  /** A route netlink socket in the caller's current network namespace. */
  static open(): Netlink {
    return new Netlink(NetlinkSocket.open(NETLINK_ROUTE));
  }

  /** Runs fn with a socket in the current namespace, closed afterwards. */
  static with<T>(fn: (nl: Netlink) => T): T {
    const nl = Netlink.open();
    try {
      return fn(nl);
    } finally {
      nl.close();
    }
  }

  /** Runs fn with a socket in the namespace at path (see lib/netns), always coming back. */
  static inNetns<T>(path: string, fn: (nl: Netlink) => T): T {
    return withNetns(path, () => Netlink.with(fn));
  }

  close(): void {
    this.sock.close();
  }

  // ---- links

  links(): Link[] {
    return this.sock.dump('list links', RTM_GETLINK, ifinfomsg(0)).filter((m) => m.type === RTM_NEWLINK).map((m) => decodeLink(m.body));
  }

  /** The link named `name`, or undefined when there is none. */
  link(name: string): Link | undefined {
    try {
      return decodeLink(this.sock.get(`get link ${name}`, RTM_GETLINK, concat([ifinfomsg(0), str(IFLA_IFNAME, name)])).body);
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === 19 /* ENODEV */) return undefined;
      throw e;
    }
  }

  linkByIndex(index: number): Link | undefined {
    try {
      return decodeLink(this.sock.get(`get link #${index}`, RTM_GETLINK, ifinfomsg(index)).body);
    } catch (e) {
      if (e instanceof NetlinkError && e.errno === 19) return undefined;
      throw e;
    }
  }

  private newLink(op: string, body: Uint8Array[]): void {
    this.sock.request(op, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, concat(body));
  }

  private setLink(op: string, index: number, attrs: Uint8Array[], flags = 0, change = 0): void {
    this.sock.request(op, RTM_NEWLINK, 0, concat([ifinfomsg(index, flags, change), ...attrs]));
  }

  createBridge(name: string, opts: LinkOptions & { vlanFiltering?: boolean } = {}): void {
    const data = opts.vlanFiltering ? [nested(IFLA_INFO_DATA, [u8(IFLA_BR_VLAN_FILTERING, 1)])] : [];
    this.newLink(`create bridge ${name}`, [
      ifinfomsg(0),
      str(IFLA_IFNAME, name),
      ...linkOptionAttrs(opts),
      nested(IFLA_LINKINFO, [str(IFLA_INFO_KIND, 'bridge'), ...data]),
    ]);
  }

  /**
   * A veth pair whose peer is created directly in another namespace
   * (IFLA_NET_NS_FD): no move afterwards, and a name clash there fails the
   * whole creation (EEXIST) instead of leaving half a pair.
   */
  createVeth(spec: VethSpec): void {
    const peer = concat([
      ifinfomsg(0),
      str(IFLA_IFNAME, spec.peerName),
      ...linkOptionAttrs({ mtu: spec.mtu, mac: spec.peerMac }),
      ...(spec.peerNetnsFd !== undefined ? [u32(IFLA_NET_NS_FD, spec.peerNetnsFd)] : []),
    ]);
    // Master and up state in the creating request itself: one round trip, not three.
    this.newLink(`create veth ${spec.name}/${spec.peerName}`, [
      ifinfomsg(0, spec.up ? IFF_UP : 0, spec.up ? IFF_UP : 0),
      str(IFLA_IFNAME, spec.name),
      ...linkOptionAttrs({ mtu: spec.mtu, mac: spec.mac }),
      ...(spec.masterIndex !== undefined ? [u32(IFLA_MASTER, spec.masterIndex)] : []),
      nested(IFLA_LINKINFO, [str(IFLA_INFO_KIND, 'veth'), nested(IFLA_INFO_DATA, [nested(VETH_INFO_PEER, [peer])])]),
    ]);
  }

  /**
   * An ifb device (what an ingress redirect delivers to, so that an egress
   * qdisc can shape it), up as it is created.
   */
  createIfb(name: string, opts: { mtu?: number; txqlen?: number } = {}): void {
    this.newLink(`create ifb ${name}`, [
      ifinfomsg(0, IFF_UP, IFF_UP),
      str(IFLA_IFNAME, name),
      ...linkOptionAttrs({ mtu: opts.mtu }),
      ...(opts.txqlen !== undefined ? [u32(IFLA_TXQLEN, opts.txqlen)] : []),
      nested(IFLA_LINKINFO, [str(IFLA_INFO_KIND, 'ifb')]),
    ]);
  }

  deleteLink(index: number): void {
    this.sock.request(`delete link #${index}`, RTM_DELLINK, 0, ifinfomsg(index));
  }

  /**
   * Deletes a link and returns once it is gone (its name, addresses, routes,
   * and a veth's peer with it), leaving the kernel's wait before it frees
   * the device to a child (see NetlinkSocket.requestFromChild).
   */
  deleteLinkUnwaited(index: number, opts?: { program?: string; patienceMs?: number }): void {
    this.sock.requestFromChild(`delete link #${index}`, RTM_DELLINK, 0, ifinfomsg(index), () => this.linkByIndex(index) === undefined, opts);
  }

  setUp(index: number): void {
    this.setLink(`set link #${index} up`, index, [], IFF_UP, IFF_UP);
  }

  setDown(index: number): void {
    this.setLink(`set link #${index} down`, index, [], 0, IFF_UP);
  }

  setPromisc(index: number, on: boolean): void {
    this.setLink(`set link #${index} promisc`, index, [], on ? IFF_PROMISC : 0, IFF_PROMISC);
  }

  setAllmulti(index: number, on: boolean): void {
    this.setLink(`set link #${index} allmulticast`, index, [], on ? IFF_ALLMULTI : 0, IFF_ALLMULTI);
  }

  setTxQLen(index: number, len: number): void {
    this.setLink(`set link #${index} txqueuelen ${len}`, index, [u32(IFLA_TXQLEN, len)]);
  }

  setMtu(index: number, mtu: number): void {
    this.setLink(`set link #${index} mtu ${mtu}`, index, [u32(IFLA_MTU, mtu)]);
  }

  /** Also makes the address one the kernel keeps (addr_assign_type NET_ADDR_SET), even when it is the current one. */
  setMac(index: number, mac: string): void {
    this.setLink(`set link #${index} address ${mac}`, index, [macAttr(mac)]);
  }

  setAlias(index: number, alias: string): void {
    this.setLink(`set link #${index} alias`, index, [str(IFLA_IFALIAS, alias)]);
  }

  /** The link must be down. */
  rename(index: number, name: string): void {
    this.setLink(`rename link #${index} to ${name}`, index, [str(IFLA_IFNAME, name)]);
  }

  /** Enslaves to a bridge; masterIndex 0 releases it. */
  setMaster(index: number, masterIndex: number): void {
    this.setLink(`set link #${index} master #${masterIndex}`, index, [u32(IFLA_MASTER, masterIndex)]);
  }

  /** Moves the link to the namespace of the open fd (slower than creating it there). */
  setNetnsFd(index: number, fd: number): void {
    this.setLink(`move link #${index} to netns`, index, [u32(IFLA_NET_NS_FD, fd)]);
  }

  private setBridgePort(index: number, attrType: number, on: boolean, what: string): void {
    this.sock.request(
      `set bridge port #${index} ${what}`,
      RTM_SETLINK,
      0,
      concat([ifinfomsg(index, 0, 0, AF_BRIDGE), nested(IFLA_PROTINFO, [u8(attrType, on ? 1 : 0)])]),
    );
  }

  /** Hairpin: frames may go back out of the port they came in by (reflective relay). */
  setHairpin(index: number, on: boolean): void {
    this.setBridgePort(index, IFLA_BRPORT_MODE, on, 'hairpin');
  }

  /** Isolated ports cannot talk to each other, only to non-isolated ports. */
  setBridgePortIsolated(index: number, on: boolean): void {
    this.setBridgePort(index, IFLA_BRPORT_ISOLATED, on, 'isolated');
  }

  /** The kind of the port's master ('bridge'), read back for CHECK. */
  isBridgePort(link: Link): boolean {
    if (link.masterIndex === undefined) return false;
    return this.linkByIndex(link.masterIndex)?.kind === 'bridge';
  }

  // ---- addresses

  addresses(filter: { family?: Family; index?: number } = {}): Address[] {
    const family = filter.family ? familyCode(filter.family) : AF_UNSPEC;
    // One link's addresses: asked of the kernel, so the cost does not grow
    // with the host's links (every veth has an IPv6 link-local address).
    const strict = filter.index !== undefined && this.sock.strict(true);
    const body = struct(8, (dv) => {
      dv.setUint8(0, family);
      if (strict) dv.setUint32(4, filter.index!, true);
    });
    const out: Address[] = [];
    try {
      for (const m of this.sock.dump('list addresses', RTM_GETADDR, body)) {
        if (m.type !== RTM_NEWADDR) continue;
        const a = decodeAddress(m.body);
        if (a && (filter.index === undefined || a.index === filter.index)) out.push(a);
      }
    } finally {
      if (strict) this.sock.strict(false);
    }
    return out;
  }

  private addressMessage(index: number, p: Prefix, flags = 0): Uint8Array[] {
    const bytes = ipToBytes(p.ip);
    const msg = [
      struct(8, (dv) => {
        dv.setUint8(0, familyCode(p.ip.family));
        dv.setUint8(1, p.length);
        dv.setUint8(2, flags & 0xff);
        dv.setUint32(4, index, true);
      }),
      attr(IFA_LOCAL, bytes),
      attr(IFA_ADDRESS, bytes),
    ];
    if (flags > 0xff) msg.push(u32(IFA_FLAGS, flags));
    if (p.ip.family === 4 && p.length < 31) msg.push(attr(IFA_BROADCAST, ipToBytes(lastAddress(p))));
    return msg;
  }

  /** Adds `p` (address with its prefix length); fails with EEXIST when present. */
  addAddress(index: number, p: Prefix, opts: { noDad?: boolean; noPrefixRoute?: boolean } = {}): void {
    const flags = (opts.noDad ? IFA_F_NODAD : 0) | (opts.noPrefixRoute ? IFA_F_NOPREFIXROUTE : 0);
    this.sock.request(
      `add address ${formatIP(p.ip)}/${p.length} to link #${index}`,
      RTM_NEWADDR,
      NLM_F_CREATE | NLM_F_EXCL,
      concat(this.addressMessage(index, p, flags)),
    );
  }

  deleteAddress(index: number, p: Prefix): void {
    this.sock.request(`delete address ${formatIP(p.ip)}/${p.length} from link #${index}`, RTM_DELADDR, 0, concat(this.addressMessage(index, p)));
  }

  // ---- routes

  routes(filter: { family?: Family; table?: number; index?: number } = {}): Route[] {
    const family = filter.family ? familyCode(filter.family) : AF_UNSPEC;
    const table = filter.table ?? RT_TABLE_MAIN;
    const out: Route[] = [];
    for (const m of this.sock.dump('list routes', RTM_GETROUTE, struct(12, (dv) => dv.setUint8(0, family)))) {
      if (m.type !== RTM_NEWROUTE) continue;
      const r = decodeRoute(m.body);
      if (!r || r.table !== table) continue;
      if (filter.index !== undefined && r.index !== filter.index) continue;
      out.push(r);
    }
    return out;
  }

  /** The route the kernel would take to `dst` (ip route get): one lookup, whatever the size of the table. */
  routeTo(dst: IPAddr): Route | undefined {
    const bytes = ipToBytes(dst);
    const body = concat([
      struct(12, (dv) => {
        dv.setUint8(0, familyCode(dst.family));
        dv.setUint8(1, bytes.length * 8);
      }),
      attr(RTA_DST, bytes),
    ]);
    try {
      return decodeRoute(this.sock.get(`get route to ${formatIP(dst)}`, RTM_GETROUTE, body).body);
    } catch (e) {
      if (e instanceof NetlinkError && (e.errno === 101 /* ENETUNREACH */ || e.errno === 113 /* EHOSTUNREACH */)) return undefined;
      throw e;
    }
  }

  private routeMessage(spec: RouteSpec, family: Family): Uint8Array[] {
    const table = spec.table ?? RT_TABLE_MAIN;
    const dst = spec.dst ? networkOf(spec.dst) : undefined;
    const msg = [
      struct(12, (dv) => {
        dv.setUint8(0, familyCode(family));
        dv.setUint8(1, dst?.length ?? 0);
        dv.setUint8(4, table < 256 ? table : 0);
        dv.setUint8(5, RTPROT_BOOT);
        dv.setUint8(6, spec.scope ?? (spec.gw ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK));
        dv.setUint8(7, RTN_UNICAST);
      }),
    ];
    if (dst && dst.length > 0) msg.push(attr(RTA_DST, ipToBytes(dst.ip)));
    if (spec.gw) msg.push(attr(RTA_GATEWAY, ipToBytes(spec.gw)));
    if (spec.index !== undefined) msg.push(u32(RTA_OIF, spec.index));
    if (spec.priority !== undefined) msg.push(u32(RTA_PRIORITY, spec.priority));
    if (table >= 256) msg.push(u32(RTA_TABLE, table));
    const metrics = [
      ...(spec.mtu ? [u32(RTAX_MTU, spec.mtu)] : []),
      ...(spec.advmss ? [u32(RTAX_ADVMSS, spec.advmss)] : []),
    ];
    if (metrics.length > 0) msg.push(attr(RTA_METRICS, concat(metrics)));
    return msg;
  }

  private routeFamily(spec: RouteSpec): Family {
    const f = spec.dst?.ip.family ?? spec.gw?.family;
    if (!f) throw new NetlinkError('a route needs a destination or a gateway', 22);
    return f;
  }

  private routeText(spec: RouteSpec): string {
    const dst = spec.dst ? `${formatIP(spec.dst.ip)}/${spec.dst.length}` : 'default';
    return `${dst}${spec.gw ? ` via ${formatIP(spec.gw)}` : ''}${spec.index !== undefined ? ` dev #${spec.index}` : ''}`;
  }

  addRoute(spec: RouteSpec, opts: { replace?: boolean } = {}): void {
    this.sock.request(
      `add route ${this.routeText(spec)}`,
      RTM_NEWROUTE,
      NLM_F_CREATE | (opts.replace ? NLM_F_REPLACE : NLM_F_EXCL),
      concat(this.routeMessage(spec, this.routeFamily(spec))),
    );
  }

  deleteRoute(spec: RouteSpec): void {
    this.sock.request(`delete route ${this.routeText(spec)}`, RTM_DELROUTE, 0, concat(this.routeMessage(spec, this.routeFamily(spec))));
  }

  // ---- traffic control (see tc.ts)

  /** A tbf qdisc, by default the root one with handle 1:; fails with EEXIST when the device has one there. */
  addTbf(ifindex: number, p: TbfParams, opts: { handle?: number; parent?: number } = {}): void {
    this.sock.request(`add tbf qdisc to link #${ifindex}`, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, tbfQdiscMessage(ifindex, p, opts.handle, opts.parent));
  }

  /** The ingress qdisc (ffff:), which filters of what the device receives hang from. */
  addIngressQdisc(ifindex: number): void {
    this.sock.request(`add ingress qdisc to link #${ifindex}`, RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, ingressQdiscMessage(ifindex));
  }

  /**
   * The qdisc attached at `parent` (TC_H_ROOT or TC_H_INGRESS), or undefined
   * when there is none but the kernel's default (which it does not report).
   */
  qdisc(ifindex: number, parent: number = TC_H_ROOT): Qdisc | undefined {
    try {
      return decodeQdisc(this.sock.get(`get qdisc of link #${ifindex}`, RTM_GETQDISC, qdiscRef(ifindex, parent), NLM_F_ECHO).body);
    } catch (e) {
      if (e instanceof NetlinkError && (e.errno === 2 /* ENOENT */ || e.errno === 61 /* ENODATA */ || e.errno === 22 /* EINVAL */)) return undefined;
      throw e;
    }
  }

  /** Deletes the qdisc at `parent`; false when there was none (or the device is gone). */
  deleteQdisc(ifindex: number, parent: number = TC_H_ROOT, handle = 0): boolean {
    try {
      this.sock.request(`delete qdisc of link #${ifindex}`, RTM_DELQDISC, 0, qdiscRef(ifindex, parent, handle));
      return true;
    } catch (e) {
      if (e instanceof NetlinkError && (e.errno === 2 || e.errno === 19 /* ENODEV */ || e.errno === 22)) return false;
      throw e;
    }
  }

  /** A u32 match-all filter on qdisc `parent` redirecting every packet to the egress of `toIndex`. */
  addRedirectFilter(ifindex: number, parent: number, toIndex: number, prio = 1): void {
    this.sock.request(`add redirect filter to link #${ifindex}`, RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_EXCL, redirectFilterMessage(ifindex, parent, toIndex, prio));
  }

  /** The filters on qdisc `parent` of a device. */
  filters(ifindex: number, parent: number = INGRESS_HANDLE): Filter[] {
    const out: Filter[] = [];
    for (const m of this.sock.dump(`list filters of link #${ifindex}`, RTM_GETTFILTER, filterDumpMessage(ifindex, parent))) {
      if (m.type === RTM_NEWTFILTER) out.push(decodeFilter(m.body));
    }
    return out;
  }
}
