// Port-mapping requests, normalized once for both backends: one entry per
// (family, host address or any, protocol, host port) with its container
// address, and the per-family SNAT needs.
import { type IPAddr, type Prefix, formatIP, networkOf } from '../ip/index.ts';
import { FirewallError, type PortMappingRequest, type Protocol } from './types.ts';
import type { Family } from './restore.ts';

export interface FlatMapping {
  family: Family;
  /** A specific host address; undefined means every local address of the family. */
  hostIP?: IPAddr;
  hostPort: number;
  protocol: Protocol;
  container: IPAddr;
  containerPort: number;
}

export interface FamilyPorts {
  family: Family;
  container: IPAddr;
  /** The container's subnet (hairpin SNAT source). */
  subnet: Prefix;
  mappings: FlatMapping[];
}

const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];

function validPort(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= 65535;
}

/** Groups the request by family; throws FirewallError on anything that cannot become a rule. */
export function flattenPorts(req: PortMappingRequest): FamilyPorts[] {
  const byFamily = new Map<Family, FamilyPorts>();
  for (const c of req.containers) {
    if (byFamily.has(c.ip.family)) throw new FirewallError(`more than one IPv${c.ip.family} container address for port mappings`);
    byFamily.set(c.ip.family, { family: c.ip.family, container: c.ip, subnet: networkOf(c), mappings: [] });
  }
  const seen = new Set<string>();
  for (const m of req.mappings) {
    if (!PROTOCOLS.includes(m.protocol)) throw new FirewallError(`port mapping protocol "${String(m.protocol)}" is not tcp, udp or sctp`);
    if (!validPort(m.hostPort) || !validPort(m.containerPort)) {
      throw new FirewallError(`port mapping ${m.hostPort}:${m.containerPort}/${m.protocol} has a port outside 1-65535`);
    }
    // 0.0.0.0 and :: mean every address of their own family only.
    const unspecified = m.hostIP !== undefined && m.hostIP.value === 0n;
    const families: Family[] = m.hostIP ? [m.hostIP.family] : [4, 6];
    for (const f of families) {
      const target = byFamily.get(f);
      if (!target) {
        if (m.hostIP) throw new FirewallError(`port mapping on ${formatIP(m.hostIP)} needs an IPv${f} container address`);
        continue;
      }
      const hostIP = m.hostIP && !unspecified ? m.hostIP : undefined;
      const id = `${f}/${hostIP ? formatIP(hostIP) : '*'}/${m.protocol}/${m.hostPort}`;
      if (seen.has(id)) throw new FirewallError(`host port ${m.hostPort}/${m.protocol} is mapped twice${hostIP ? ` on ${formatIP(hostIP)}` : ''}`);
      seen.add(id);
      target.mappings.push({ family: f, hostIP, hostPort: m.hostPort, protocol: m.protocol, container: target.container, containerPort: m.containerPort });
    }
  }
  const out: FamilyPorts[] = [];
  for (const p of byFamily.values()) if (p.mappings.length > 0) out.push(p);
  return out;
}

export function describeMapping(m: FlatMapping): string {
  const host = m.hostIP ? (m.family === 6 ? `[${formatIP(m.hostIP)}]` : formatIP(m.hostIP)) : m.family === 6 ? '[::]' : '0.0.0.0';
  return `${host}:${m.hostPort}/${m.protocol}`;
}

export function localhostOf(f: Family): string {
  return f === 4 ? '127.0.0.0/8' : '::1/128';
}
