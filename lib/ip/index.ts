// IP addresses and prefixes as (family, bigint) values: parsing, RFC 5952
// formatting, byte encoding for netlink, and the prefix arithmetic IPAM and
// the firewall need. Pure functions, no I/O.

export type Family = 4 | 6;

export interface IPAddr {
  readonly family: Family;
  readonly value: bigint;
}

export interface Prefix {
  /** The address as written (host bits may be set, e.g. 10.0.0.5/24). */
  readonly ip: IPAddr;
  readonly length: number;
}

export class IPParseError extends Error {}

export function bits(family: Family): number {
  return family === 4 ? 32 : 128;
}

function parse4(s: string): bigint | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  let v = 0n;
  for (const p of parts) {
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    v = (v << 8n) | BigInt(n);
  }
  return v;
}

function parse6(s: string): bigint | undefined {
  if (!/^[0-9a-fA-F:.]+$/.test(s)) return undefined;
  let tail4: bigint | undefined;
  let text = s;
  const lastColon = s.lastIndexOf(':');
  if (s.includes('.')) {
    tail4 = parse4(s.slice(lastColon + 1));
    if (tail4 === undefined) return undefined;
    text = s.slice(0, lastColon + 1) + '0:0';
  }
  const halves = text.split('::');
  if (halves.length > 2) return undefined;
  const groups = (h: string): string[] | undefined => (h === '' ? [] : h.split(':'));
  const head = groups(halves[0]!);
  const rest = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !rest) return undefined;
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...rest];
  let v = 0n;
  for (const g of all) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    v = (v << 16n) | BigInt(parseInt(g, 16));
  }
  if (tail4 !== undefined) v = (v & ~0xffffffffn) | tail4;
  return v;
}

/** Parses a bare IPv4 or IPv6 address; undefined when it is not one. */
export function tryParseIP(s: string): IPAddr | undefined {
  if (s.includes(':')) {
    const v = parse6(s);
    return v === undefined ? undefined : { family: 6, value: v };
  }
  const v = parse4(s);
  return v === undefined ? undefined : { family: 4, value: v };
}

export function parseIP(s: string): IPAddr {
  const ip = tryParseIP(s);
  if (!ip) throw new IPParseError(`"${s}" is not an IP address`);
  return ip;
}

export function formatIP(ip: IPAddr): string {
  if (ip.family === 4) {
    const v = ip.value;
    return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 0xffn)).join('.');
  }
  const groups: number[] = [];
  for (let i = 7; i >= 0; i--) groups.push(Number((ip.value >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952: compress the longest run (>= 2) of zero groups, the first on ties.
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]): string => g.map((n) => n.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

export function ipToBytes(ip: IPAddr): Uint8Array {
  const n = bits(ip.family) / 8;
  const out = new Uint8Array(n);
  let v = ip.value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

export function ipFromBytes(b: Uint8Array): IPAddr {
  if (b.length !== 4 && b.length !== 16) throw new IPParseError(`an IP address has 4 or 16 bytes, not ${b.length}`);
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return { family: b.length === 4 ? 4 : 6, value: v };
}

export function tryParsePrefix(s: string): Prefix | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = tryParseIP(s.slice(0, slash));
  const lenText = s.slice(slash + 1);
  if (!ip || !/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return undefined;
  const length = Number(lenText);
  if (length > bits(ip.family)) return undefined;
  return { ip, length };
}

/** Parses "address/length"; the address may have host bits set. */
export function parsePrefix(s: string): Prefix {
  const p = tryParsePrefix(s);
  if (!p) throw new IPParseError(`"${s}" is not an address with a prefix length (CIDR)`);
  return p;
}

export function formatPrefix(p: Prefix): string {
  return `${formatIP(p.ip)}/${p.length}`;
}

function hostMask(family: Family, length: number): bigint {
  return (1n << BigInt(bits(family) - length)) - 1n;
}

/** The prefix with its host bits cleared (10.0.0.5/24 → 10.0.0.0/24). */
export function networkOf(p: Prefix): Prefix {
  return { ip: { family: p.ip.family, value: p.ip.value & ~hostMask(p.ip.family, p.length) }, length: p.length };
}

export function isNetworkAddress(p: Prefix): boolean {
  return networkOf(p).ip.value === p.ip.value;
}

/** The highest address of the prefix (the IPv4 broadcast address). */
export function lastAddress(p: Prefix): IPAddr {
  return { family: p.ip.family, value: networkOf(p).ip.value | hostMask(p.ip.family, p.length) };
}

export function contains(p: Prefix, ip: IPAddr): boolean {
  if (ip.family !== p.ip.family) return false;
  const net = networkOf(p).ip.value;
  return ip.value >= net && ip.value <= lastAddress(p).value;
}

export function overlaps(a: Prefix, b: Prefix): boolean {
  if (a.ip.family !== b.ip.family) return false;
  return contains(a, networkOf(b).ip) || contains(b, networkOf(a).ip);
}

export function addToIP(ip: IPAddr, n: bigint): IPAddr {
  const value = ip.value + n;
  if (value < 0n || value >= 1n << BigInt(bits(ip.family))) {
    throw new RangeError(`${formatIP(ip)} + ${n} leaves the IPv${ip.family} space`);
  }
  return { family: ip.family, value };
}

/** Orders IPv4 before IPv6, then by value. */
export function compareIP(a: IPAddr, b: IPAddr): number {
  if (a.family !== b.family) return a.family - b.family;
  return a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
}

export function equalIP(a: IPAddr, b: IPAddr): boolean {
  return a.family === b.family && a.value === b.value;
}

/** The dotted IPv4 netmask or the length for IPv6, as the kernel reports it. */
export function prefixMask(p: Prefix): IPAddr {
  return { family: p.ip.family, value: ((1n << BigInt(bits(p.ip.family))) - 1n) & ~hostMask(p.ip.family, p.length) };
}
