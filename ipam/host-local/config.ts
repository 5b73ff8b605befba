// host-local's configuration with the reference plugin's defaults: range sets
// (each gives one address), the gateway at .1, the range from after the
// network address to before the broadcast address, and the addresses a
// runtime asks for (runtimeConfig.ips, args.cni.ips, CNI_ARGS IP=).
import type { HostLocalConf, HostLocalRange, Route } from '../../lib/spec/index.ts';
import { CniError, ErrorCode, type Invocation } from '../../lib/skel/index.ts';
import {
  type IPAddr, type Prefix, tryParseIP, tryParsePrefix, networkOf, lastAddress, addToIP, contains, formatIP,
  formatPrefix, compareIP, bits, equalIP,
} from '../../lib/ip/index.ts';

export const DEFAULT_DATA_DIR = '/var/lib/cni/networks';

export interface Range {
  subnet: Prefix;
  start: IPAddr;
  end: IPAddr;
  gateway: IPAddr;
}

export type RangeSet = Range[];

export interface HostLocalConfig {
  network: string;
  rangeSets: RangeSet[];
  routes: Route[];
  dataDir: string;
  resolvConf?: string;
  /** Addresses the runtime asked for, each to come from the range set that holds it. */
  requested: IPAddr[];
}

function invalid(msg: string): CniError {
  return new CniError(ErrorCode.InvalidConfig, msg);
}

function address(s: string | undefined, field: string): IPAddr | undefined {
  if (s === undefined || s === '') return undefined;
  const ip = tryParseIP(s);
  if (!ip) throw invalid(`invalid ${field} ${JSON.stringify(s)}: not an IP address`);
  return ip;
}

export function rangeText(r: Range): string {
  return `${formatIP(r.start)}-${formatIP(r.end)}`;
}

export function rangeSetText(set: RangeSet): string {
  return set.map(rangeText).join(',');
}

/** One range with the reference's defaults, checked. */
export function canonicalRange(raw: HostLocalRange, where: string): Range {
  const parsed = tryParsePrefix(raw.subnet);
  if (!parsed) throw invalid(`invalid ${where}.subnet ${JSON.stringify(raw.subnet)}: not a CIDR`);
  const subnet = networkOf(parsed);
  const family = subnet.ip.family;
  if (subnet.length > bits(family) - 2) throw invalid(`${where}.subnet ${formatPrefix(subnet)} is too small to allocate from`);
  const inSubnet = (ip: IPAddr | undefined, field: string): IPAddr | undefined => {
    if (ip && !contains(subnet, ip)) throw invalid(`${where}.${field} ${formatIP(ip)} is not in the subnet ${formatPrefix(subnet)}`);
    return ip;
  };
  const first = addToIP(subnet.ip, 1n);
  // The IPv4 broadcast address is never handed out; IPv6 has none.
  const last = family === 4 ? addToIP(lastAddress(subnet), -1n) : lastAddress(subnet);
  const start = inSubnet(address(raw.rangeStart, `${where}.rangeStart`), 'rangeStart') ?? first;
  const end = inSubnet(address(raw.rangeEnd, `${where}.rangeEnd`), 'rangeEnd') ?? last;
  const gateway = inSubnet(address(raw.gateway, `${where}.gateway`), 'gateway') ?? first;
  if (compareIP(start, end) > 0) throw invalid(`${where}: rangeStart ${formatIP(start)} is after rangeEnd ${formatIP(end)}`);
  return { subnet, start, end, gateway };
}

function overlap(a: Range, b: Range): boolean {
  return a.start.family === b.start.family && compareIP(a.start, b.end) <= 0 && compareIP(b.start, a.end) <= 0;
}

function requestedAddresses(conf: HostLocalConf, inv: Invocation): IPAddr[] {
  // Precedence as the conventions: runtimeConfig.ips, then args.cni.ips, then CNI_ARGS IP=.
  const fromRuntime = conf.runtimeConfig?.ips;
  const fromArgs = conf.args?.cni?.ips;
  const fromEnv = inv.args.get('IP');
  const [list, where] =
    fromRuntime && fromRuntime.length > 0
      ? [fromRuntime, 'runtimeConfig.ips']
      : fromArgs && fromArgs.length > 0
        ? [fromArgs, 'args.cni.ips']
        : fromEnv
          ? [fromEnv.split(','), 'CNI_ARGS IP']
          : [[], ''];
  const out: IPAddr[] = [];
  for (const s of list) {
    // An address may come with its prefix length ("10.0.0.5/24"); the range decides the prefix.
    const ip = tryParseIP(s.split('/')[0] ?? '');
    if (!ip) throw invalid(`invalid requested address ${JSON.stringify(s)} in ${where}`);
    out.push(ip);
  }
  return out;
}

/** Each route as the reference parses it (net.IPNet, net.IP), and a gateway of the destination's family. */
function checkRoutes(routes: Route[]): Route[] {
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    const dst = tryParsePrefix(r.dst);
    if (!dst) throw invalid(`invalid ipam.routes[${i}].dst ${JSON.stringify(r.dst)}: not a CIDR`);
    if (r.gw === undefined || r.gw === '') continue;
    const gw = tryParseIP(r.gw);
    if (!gw) throw invalid(`invalid ipam.routes[${i}].gw ${JSON.stringify(r.gw)}: not an IP address`);
    if (gw.family !== dst.ip.family) throw invalid(`ipam.routes[${i}].gw ${r.gw} is not of the family of its dst ${r.dst}`);
  }
  return routes;
}

export function loadConfig(conf: HostLocalConf, inv: Invocation): HostLocalConfig {
  const ipam = conf.ipam;
  const raw: HostLocalRange[][] = [];
  // runtimeConfig.ipRanges come first, as the conventions say.
  for (const set of conf.runtimeConfig?.ipRanges ?? []) raw.push(set);
  for (const set of ipam.ranges ?? []) raw.push(set);
  if (ipam.subnet) raw.push([{ subnet: ipam.subnet, rangeStart: ipam.rangeStart, rangeEnd: ipam.rangeEnd, gateway: ipam.gateway }]);
  if (raw.length === 0) throw invalid('ipam needs "ranges" or "subnet"');

  // Loops rather than array builtins (map, some): this runs in every bridge ADD,
  // where each builtin's first use costs tens of µs under Bun.
  const rangeSets: RangeSet[] = [];
  for (let i = 0; i < raw.length; i++) {
    const ranges: Range[] = [];
    for (let j = 0; j < raw[i]!.length; j++) ranges.push(canonicalRange(raw[i]![j]!, `ipam.ranges[${i}][${j}]`));
    const family = ranges[0]!.start.family;
    for (const r of ranges) if (r.start.family !== family) throw invalid(`ipam.ranges[${i}] mixes IPv4 and IPv6 ranges`);
    for (let a = 0; a < ranges.length; a++) {
      for (let b = a + 1; b < ranges.length; b++) {
        if (overlap(ranges[a]!, ranges[b]!)) throw invalid(`ipam.ranges[${i}]: ranges ${rangeText(ranges[a]!)} and ${rangeText(ranges[b]!)} overlap`);
      }
    }
    rangeSets.push(ranges);
  }
  for (let a = 0; a < rangeSets.length; a++) {
    for (let b = a + 1; b < rangeSets.length; b++) {
      for (const x of rangeSets[a]!) {
        for (const y of rangeSets[b]!) {
          if (overlap(x, y)) throw invalid(`range sets ${a} and ${b} overlap (${rangeText(x)}, ${rangeText(y)})`);
        }
      }
    }
  }

  const out: HostLocalConfig = {
    network: conf.name,
    rangeSets,
    routes: checkRoutes(ipam.routes ?? []),
    dataDir: ipam.dataDir ?? DEFAULT_DATA_DIR,
    requested: requestedAddresses(conf, inv),
  };
  if (ipam.resolvConf) out.resolvConf = ipam.resolvConf;
  return out;
}

/** The range of the set that holds ip, if any. */
export function rangeFor(set: RangeSet, ip: IPAddr): Range | undefined {
  for (const r of set) if (compareIP(r.start, ip) <= 0 && compareIP(ip, r.end) <= 0) return r;
  return undefined;
}

/** Why ip cannot be requested from any set; undefined when it can (from the set returned). */
export function placeRequested(sets: RangeSet[], ip: IPAddr): { set: number; range: Range } {
  for (let i = 0; i < sets.length; i++) {
    const range = rangeFor(sets[i]!, ip);
    if (!range) continue;
    if (equalIP(range.gateway, ip)) throw invalid(`requested address ${formatIP(ip)} is the gateway of ${formatPrefix(range.subnet)}`);
    return { set: i, range };
  }
  for (const set of sets) {
    for (const r of set) {
      if (!contains(r.subnet, ip)) continue;
      if (equalIP(ip, r.subnet.ip)) throw invalid(`requested address ${formatIP(ip)} is the network address of ${formatPrefix(r.subnet)}`);
      if (ip.family === 4 && equalIP(ip, lastAddress(r.subnet))) throw invalid(`requested address ${formatIP(ip)} is the broadcast address of ${formatPrefix(r.subnet)}`);
    }
  }
  throw invalid(`requested address ${formatIP(ip)} is outside every range (${sets.map(rangeSetText).join('; ')})`);
}
