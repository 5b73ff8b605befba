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

// Parsing and formatting are on every plugin's path: plain loops over char
// codes, no regular expressions or array builtins, whose first use costs a
// plugin exec tens of microseconds each under Bun.

/** A decimal of 1-3 digits without leading zeros ("0" itself is fine), or -1. */
function smallDecimal(s: string, from: number, to: number): number {
  const len = to - from;
  if (len < 1 || len > 3) return -1;
  if (len > 1 && s.charCodeAt(from) === 48) return -1;
  let n = 0;
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return -1;
    n = n * 10 + c;
  }
  return n;
}

function parse4(s: string): bigint | undefined {
  let v = 0;
  let start = 0;
  for (let part = 0; part < 4; part++) {
    let end = s.indexOf('.', start);
    if (part === 3) {
      if (end !== -1) return undefined;
      end = s.length;
    } else if (end === -1) return undefined;
    const n = smallDecimal(s, start, end);
    if (n < 0 || n > 255) return undefined;
    v = v * 256 + n;
    start = end + 1;
  }
  return BigInt(v);
}

/** A group of 1-4 hex digits, or -1. */
function hexGroup(s: string): number {
  if (s.length < 1 || s.length > 4) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
    if (d < 0) return -1;
    n = n * 16 + d;
  }
  return n;
}

function parse6(s: string): bigint | undefined {
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
  const head = halves[0] === '' ? [] : halves[0]!.split(':');
  const rest = halves.length === 2 && halves[1] !== '' ? halves[1]!.split(':') : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return undefined;
  let v = 0n;
  for (let i = 0; i < head.length; i++) {
    const g = hexGroup(head[i]!);
    if (g < 0) return undefined;
    v = (v << 16n) | BigInt(g);
  }
  if (halves.length === 2) v <<= BigInt(16 * missing);
  for (let i = 0; i < rest.length; i++) {
    const g = hexGroup(rest[i]!);
    if (g < 0) return undefined;
    v = (v << 16n) | BigInt(g);
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
    const v = Number(ip.value);
    return `${Math.floor(v / 16777216) % 256}.${Math.floor(v / 65536) % 256}.${Math.floor(v / 256) % 256}.${v % 256}`;
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
  const hex = (from: number, to: number): string => {
    let out = '';
    for (let i = from; i < to; i++) out += `${i > from ? ':' : ''}${groups[i]!.toString(16)}`;
    return out;
  };
  if (bestStart < 0) return hex(0, 8);
  return `${hex(0, bestStart)}::${hex(bestStart + bestLen, 8)}`;
}

export function ipToBytes(ip: IPAddr): Uint8Array {
  if (ip.family === 4) {
    const v = Number(ip.value);
    return Uint8Array.of(Math.floor(v / 16777216) % 256, Math.floor(v / 65536) % 256, Math.floor(v / 256) % 256, v % 256);
  }
  const out = new Uint8Array(16);
  let v = ip.value;
  for (let i = 14; i >= 0; i -= 2) {
    const g = Number(v & 0xffffn);
    out[i] = g >> 8;
    out[i + 1] = g & 0xff;
    v >>= 16n;
  }
  return out;
}

export function ipFromBytes(b: Uint8Array): IPAddr {
  if (b.length !== 4 && b.length !== 16) throw new IPParseError(`an IP address has 4 or 16 bytes, not ${b.length}`);
  if (b.length === 4) return { family: 4, value: BigInt(((b[0]! * 256 + b[1]!) * 256 + b[2]!) * 256 + b[3]!) };
  let v = 0n;
  for (let i = 0; i < 16; i += 2) v = (v << 16n) | BigInt(b[i]! * 256 + b[i + 1]!);
  return { family: 6, value: v };
}

export function tryParsePrefix(s: string): Prefix | undefined {
  const slash = s.indexOf('/');
  if (slash < 0) return undefined;
  const ip = tryParseIP(s.slice(0, slash));
  const length = smallDecimal(s, slash + 1, s.length);
  if (!ip || length < 0 || length > bits(ip.family)) return undefined;
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
