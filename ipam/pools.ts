// Subnets for `cnikit network create`, as Docker chooses them: the next free
// subnet of the default address pools, or the user's --subnet/--gateway/
// --ip-range/--aux-address checked and turned into host-local ranges. Pure
// logic: the caller passes the existing networks and the host's routes.
import type { HostLocalRange } from '../lib/spec/index.ts';
import {
  type Prefix, type IPAddr, type Family, tryParsePrefix, tryParseIP, networkOf, lastAddress, addToIP, contains,
  overlaps, formatIP, formatPrefix, compareIP, equalIP, bits,
} from '../lib/ip/index.ts';

export class PoolError extends Error {}

interface Pool {
  base: string;
  /** Prefix length of the subnets cut from base. */
  size: number;
}

/** Docker's default-address-pools: 172.17-31.0.0/16 as /16s, then 192.168.0.0/16 as /20s. */
export const DEFAULT_POOLS_V4: readonly Pool[] = [
  { base: '172.17.0.0/16', size: 16 }, { base: '172.18.0.0/16', size: 16 }, { base: '172.19.0.0/16', size: 16 },
  { base: '172.20.0.0/14', size: 16 }, { base: '172.24.0.0/14', size: 16 }, { base: '172.28.0.0/14', size: 16 },
  { base: '192.168.0.0/16', size: 20 },
];

/** A ULA /48 of cnikit's (RFC 4193, fixed so networks are stable across hosts), cut into /64s. */
export const DEFAULT_POOL_V6: Pool = { base: 'fd4e:6b69:7400::/48', size: 64 };

export interface ExistingNetwork {
  name: string;
  subnets: Prefix[];
}

function parseCidr(s: string, what: string): Prefix {
  const p = tryParsePrefix(s);
  if (!p) throw new PoolError(`invalid ${what} "${s}": not a CIDR`);
  return p;
}

function parseAddr(s: string, what: string): IPAddr {
  const ip = tryParseIP(s);
  if (!ip) throw new PoolError(`invalid ${what} "${s}": not an IP address`);
  return ip;
}

function* subnetsOf(pool: Pool): Generator<Prefix> {
  const base = networkOf(tryParsePrefix(pool.base)!);
  const step = 1n << BigInt(bits(base.ip.family) - pool.size);
  const end = lastAddress(base);
  for (let ip = base.ip; compareIP(ip, end) <= 0; ip = addToIP(ip, step)) {
    yield { ip, length: pool.size };
    if (end.value - ip.value < step) break;
  }
}

function clashWith(p: Prefix, networks: readonly ExistingNetwork[]): ExistingNetwork | undefined {
  return networks.find((n) => n.subnets.some((s) => overlaps(s, p)));
}

/**
 * The first subnet of the default pools of that family that overlaps no
 * existing network and no route of the host (the default route aside).
 */
export function nextFreeSubnet(family: Family, networks: readonly ExistingNetwork[], hostRoutes: readonly Prefix[]): Prefix {
  const pools = family === 4 ? DEFAULT_POOLS_V4 : [DEFAULT_POOL_V6];
  const routes = hostRoutes.filter((r) => r.length > 0);
  for (const pool of pools) {
    for (const s of subnetsOf(pool)) {
      if (clashWith(s, networks)) continue;
      if (routes.some((r) => overlaps(r, s))) continue;
      return s;
    }
  }
  throw new PoolError(`the default IPv${family} address pools are exhausted: every subnet overlaps a network or a route of this host; give --subnet`);
}

export interface NetworkRequest {
  subnets?: string[];
  /** One per subnet, in order (Docker's repeated --gateway). */
  gateways?: string[];
  /** One per subnet, in order: the sub-range container addresses are leased from. */
  ipRanges?: string[];
  /** name → address: reserved, never leased. */
  auxAddresses?: Record<string, string>;
  /** Also an IPv6 subnet when none of the given subnets is IPv6. */
  ipv6?: boolean;
}

export interface PlannedSubnet {
  subnet: Prefix;
  gateway: IPAddr;
  /** host-local ranges of this subnet's range set (split around aux addresses). */
  ranges: HostLocalRange[];
  aux: Record<string, IPAddr>;
}

function splitAround(start: IPAddr, end: IPAddr, holes: IPAddr[]): [IPAddr, IPAddr][] {
  const out: [IPAddr, IPAddr][] = [];
  let from = start;
  for (const h of [...holes].sort(compareIP)) {
    if (compareIP(h, from) < 0 || compareIP(h, end) > 0) continue;
    if (compareIP(h, from) > 0) out.push([from, addToIP(h, -1n)]);
    if (equalIP(h, end)) return out;
    from = addToIP(h, 1n);
  }
  out.push([from, end]);
  return out;
}

/** Checks a request against the existing networks and the host, and plans its subnets. */
export function planNetwork(req: NetworkRequest, networks: readonly ExistingNetwork[], hostRoutes: readonly Prefix[]): PlannedSubnet[] {
  const given = (req.subnets ?? []).map((s) => networkOf(parseCidr(s, '--subnet')));
  for (const s of given) {
    const other = clashWith(s, networks);
    if (other) throw new PoolError(`subnet ${formatPrefix(s)} overlaps network ${other.name} (${other.subnets.map(formatPrefix).join(', ')})`);
    const twice = given.find((o) => o !== s && overlaps(o, s));
    if (twice) throw new PoolError(`subnets ${formatPrefix(s)} and ${formatPrefix(twice)} overlap`);
    if (s.length > bits(s.ip.family) - 2) throw new PoolError(`subnet ${formatPrefix(s)} is too small for containers`);
  }
  if ((req.gateways?.length ?? 0) > given.length) throw new PoolError('--gateway needs a --subnet of its own');
  if ((req.ipRanges?.length ?? 0) > given.length) throw new PoolError('--ip-range needs a --subnet of its own');

  const subnets = [...given];
  if (subnets.length === 0) subnets.push(nextFreeSubnet(4, networks, hostRoutes));
  if (req.ipv6 && !subnets.some((s) => s.ip.family === 6)) {
    subnets.push(nextFreeSubnet(6, [...networks, { name: '(this network)', subnets }], hostRoutes));
  }

  const aux = Object.entries(req.auxAddresses ?? {}).map(([name, a]) => ({ name, ip: parseAddr(a, `--aux-address ${name}`) }));
  for (const a of aux) {
    if (!subnets.some((s) => contains(s, a.ip))) throw new PoolError(`--aux-address ${a.name}=${formatIP(a.ip)} is outside every subnet (${subnets.map(formatPrefix).join(', ')})`);
  }

  return subnets.map((subnet, i) => {
    const family = subnet.ip.family;
    const first = addToIP(subnet.ip, 1n);
    const last = family === 4 ? addToIP(lastAddress(subnet), -1n) : lastAddress(subnet);
    const usable = (ip: IPAddr, what: string): IPAddr => {
      if (!contains(subnet, ip)) throw new PoolError(`${what} ${formatIP(ip)} is not in subnet ${formatPrefix(subnet)}`);
      if (compareIP(ip, first) < 0 || compareIP(ip, last) > 0) throw new PoolError(`${what} ${formatIP(ip)} is the network or broadcast address of ${formatPrefix(subnet)}`);
      return ip;
    };
    const gwText = req.gateways?.[i];
    const gateway = gwText ? usable(parseAddr(gwText, '--gateway'), '--gateway') : first;

    let start = first;
    let end = last;
    const rangeText = req.ipRanges?.[i];
    if (rangeText) {
      const r = networkOf(parseCidr(rangeText, '--ip-range'));
      if (r.ip.family !== family || !contains(subnet, r.ip) || !contains(subnet, lastAddress(r))) {
        throw new PoolError(`--ip-range ${formatPrefix(r)} is not inside subnet ${formatPrefix(subnet)}`);
      }
      start = compareIP(r.ip, first) < 0 ? first : r.ip;
      end = compareIP(lastAddress(r), last) > 0 ? last : lastAddress(r);
    }

    const mine = aux.filter((a) => contains(subnet, a.ip));
    for (const a of mine) {
      usable(a.ip, `--aux-address ${a.name}`);
      if (equalIP(a.ip, gateway)) throw new PoolError(`--aux-address ${a.name}=${formatIP(a.ip)} is the gateway`);
    }
    // The gateway and the aux addresses are holes: host-local never leases them.
    const pieces = splitAround(start, end, [gateway, ...mine.map((a) => a.ip)]);
    if (pieces.length === 0) throw new PoolError(`no address is left for containers in ${formatPrefix(subnet)}`);
    const ranges: HostLocalRange[] = pieces.map(([a, b]) => ({
      subnet: formatPrefix(subnet),
      rangeStart: formatIP(a),
      rangeEnd: formatIP(b),
      gateway: formatIP(gateway),
    }));
    return { subnet, gateway, ranges, aux: Object.fromEntries(mine.map((a) => [a.name, a.ip])) };
  });
}
