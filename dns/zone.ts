// The names the responder serves, built from the records: per network, its
// containers' names (short, aliases, and under the network's domain) with
// their addresses, and the reverse map. Which network a question is about is
// decided by the gateway address it was asked on: a container sees only the
// names of its own networks.
import { tryParseIP, tryParsePrefix, formatIP, ipFromBytes, contains, networkOf, type Prefix } from '../lib/ip/index.ts';
import type { NameRecord } from './records.ts';

export interface Addresses {
  v4: string[];
  v6: string[];
}

export interface NetworkZone {
  network: string;
  domain: string;
  internal: boolean;
  gateways: string[];
  subnets: Prefix[];
  /** Lower-case name (short and name.domain) → addresses. */
  names: Map<string, Addresses>;
  /** Address → the fully qualified name of its container. */
  ptr: Map<string, string>;
}

export type Answer =
  | { kind: 'local'; rcode: number; a?: string[]; aaaa?: string[]; ptr?: string }
  | { kind: 'forward' };

export const NOERROR = 0;
export const FORMERR = 1;
export const SERVFAIL = 2;
export const NXDOMAIN = 3;
export const NOTIMP = 4;
export const REFUSED = 5;

function normalIP(s: string): string | undefined {
  const ip = tryParseIP(s.split('/')[0]!);
  return ip ? formatIP(ip) : undefined;
}

function addName(map: Map<string, Addresses>, name: string, ips: string[]): void {
  let entry = map.get(name);
  if (!entry) map.set(name, (entry = { v4: [], v6: [] }));
  for (const ip of ips) {
    const list = ip.includes(':') ? entry.v6 : entry.v4;
    if (!list.includes(ip)) list.push(ip);
  }
}

export class Zones {
  /** Gateway address → its network. */
  readonly byGateway = new Map<string, NetworkZone>();
  readonly networks = new Map<string, NetworkZone>();
  /** Every name any network serves: another network's container asks for one → NXDOMAIN, not forwarded. */
  private readonly allNames = new Set<string>();
  private readonly allDomains = new Set<string>();
  private readonly allPtr = new Set<string>();

  constructor(records: readonly NameRecord[]) {
    for (const r of records) {
      let z = this.networks.get(r.network);
      if (!z) {
        z = { network: r.network, domain: r.domainName, internal: r.internal, gateways: [], subnets: [], names: new Map(), ptr: new Map() };
        this.networks.set(r.network, z);
      }
      // Any container's record saying internal makes the network internal: never forward by mistake.
      if (r.internal) z.internal = true;
      const ips: string[] = [];
      for (const cidr of r.ips) {
        const ip = normalIP(cidr);
        if (ip) ips.push(ip);
        const p = tryParsePrefix(cidr);
        if (p && !z.subnets.some((s) => s.length === p.length && contains(s, p.ip))) z.subnets.push(networkOf(p));
      }
      for (const g of r.gateways) {
        const ip = normalIP(g);
        if (ip && !z.gateways.includes(ip)) z.gateways.push(ip);
      }
      for (const n of r.names) {
        const fqdn = `${n}.${z.domain}`;
        addName(z.names, n, ips);
        addName(z.names, fqdn, ips);
        this.allNames.add(n);
        this.allNames.add(fqdn);
      }
      const first = r.names[0];
      if (first !== undefined) {
        for (const ip of ips) {
          z.ptr.set(ip, `${first}.${z.domain}`);
          this.allPtr.add(ip);
        }
      }
      this.allDomains.add(z.domain);
    }
    for (const z of this.networks.values()) for (const g of z.gateways) this.byGateway.set(g, z);
  }

  get empty(): boolean {
    return this.networks.size === 0;
  }

  /** Every address to listen on. */
  gateways(): string[] {
    return [...this.byGateway.keys()];
  }

  /** The answer to one question asked on gateway address `local`. */
  answer(local: string, qname: string, qtype: string): Answer {
    const z = this.byGateway.get(local);
    const name = qname.toLowerCase().replace(/\.$/, '');
    if (!z) return { kind: 'local', rcode: REFUSED };
    if (name.endsWith('.in-addr.arpa') || name.endsWith('.ip6.arpa')) return this.reverse(z, name, qtype);
    const hit = z.names.get(name);
    if (hit) {
      if (qtype === 'A') return { kind: 'local', rcode: NOERROR, a: hit.v4 };
      if (qtype === 'AAAA') return { kind: 'local', rcode: NOERROR, aaaa: hit.v6 };
      if (qtype === 'ANY') return { kind: 'local', rcode: NOERROR, a: hit.v4, aaaa: hit.v6 };
      return { kind: 'local', rcode: NOERROR };
    }
    if (this.allNames.has(name) || this.underOurDomains(name)) return { kind: 'local', rcode: NXDOMAIN };
    return z.internal ? { kind: 'local', rcode: REFUSED } : { kind: 'forward' };
  }

  private underOurDomains(name: string): boolean {
    for (const d of this.allDomains) if (name === d || name.endsWith(`.${d}`)) return true;
    return false;
  }

  private reverse(z: NetworkZone, name: string, qtype: string): Answer {
    const ip = reverseToIP(name);
    if (ip !== undefined) {
      const fqdn = z.ptr.get(ip);
      if (fqdn !== undefined) return qtype === 'PTR' || qtype === 'ANY' ? { kind: 'local', rcode: NOERROR, ptr: fqdn } : { kind: 'local', rcode: NOERROR };
      const parsed = tryParseIP(ip)!;
      if (this.allPtr.has(ip) || z.subnets.some((s) => contains(s, parsed))) return { kind: 'local', rcode: NXDOMAIN };
    }
    return z.internal ? { kind: 'local', rcode: REFUSED } : { kind: 'forward' };
  }
}

/** 4.3.2.1.in-addr.arpa → 1.2.3.4; 32 nibbles of ip6.arpa → the IPv6 address; else undefined. */
export function reverseToIP(name: string): string | undefined {
  const labels = name.split('.');
  if (name.endsWith('.in-addr.arpa')) {
    if (labels.length !== 6) return undefined;
    const octets = labels.slice(0, 4).reverse();
    if (!octets.every((o) => /^(0|[1-9][0-9]{0,2})$/.test(o) && Number(o) <= 255)) return undefined;
    return normalIP(octets.join('.'));
  }
  if (labels.length !== 34) return undefined;
  const nibbles = labels.slice(0, 32).reverse();
  if (!nibbles.every((n) => /^[0-9a-f]$/.test(n))) return undefined;
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 16; i++) bytes[i] = parseInt(nibbles[2 * i]! + nibbles[2 * i + 1]!, 16);
  return formatIP(ipFromBytes(bytes));
}
