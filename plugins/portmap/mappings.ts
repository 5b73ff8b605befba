// From runtimeConfig.portMappings to concrete published ports: protocols and
// host addresses normalized, ranges expanded, random host ports chosen, and
// conflicts with ports other containers publish found. Pure logic, in loops
// rather than array builtins: each builtin's first use costs a plugin exec
// tens of µs under Bun.
import type { PortMapping as RuntimePortMapping, Result } from '../../lib/spec/index.ts';
import { CniError, ErrorCode } from '../../lib/skel/index.ts';
import { type Prefix, type IPAddr, tryParseIP, tryParsePrefix, formatIP } from '../../lib/ip/index.ts';
import type { Protocol } from '../../lib/firewall/index.ts';

/** One published host port, as recorded and as listed to users. */
export interface Published {
  /** '' for every host address; otherwise one address (0.0.0.0 / :: mean every address of that family). */
  hostIP: string;
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
}

/** One port another attachment publishes. */
export interface Holder {
  network: string;
  containerId: string;
  port: Published;
}

/** Who publishes this protocol/port now (other attachments only). */
export type HoldersOf = (protocol: Protocol, port: number) => Holder[];

const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];

function protocolOf(p: string | undefined): Protocol {
  const lower = (p ?? '').toLowerCase() || 'tcp';
  if (!PROTOCOLS.includes(lower as Protocol)) throw new CniError(ErrorCode.InvalidConfig, `invalid port mapping protocol ${JSON.stringify(p)}`);
  return lower as Protocol;
}

function hostIPOf(s: string | undefined): string {
  if (s === undefined || s === '') return '';
  const ip = tryParseIP(s);
  if (!ip) throw new CniError(ErrorCode.InvalidConfig, `invalid port mapping hostIP ${JSON.stringify(s)}`);
  return formatIP(ip);
}

/** Normalized mappings, one per port (ranges expanded); hostPort 0 stays 0 until a port is chosen. */
export function normalize(mappings: RuntimePortMapping[]): Published[] {
  const out: Published[] = [];
  for (const m of mappings) {
    const protocol = protocolOf(m.protocol);
    const hostIP = hostIPOf(m.hostIP);
    const count = m.range ?? 1;
    if (m.hostPort === 0 && count > 1) {
      throw new CniError(ErrorCode.InvalidConfig, `a port range (${m.containerPort}-${m.containerPort + count - 1}) needs a host port to start from`);
    }
    if (m.containerPort + count - 1 > 65535 || (m.hostPort > 0 && m.hostPort + count - 1 > 65535)) {
      throw new CniError(ErrorCode.InvalidConfig, `port range of ${count} from ${m.hostPort}:${m.containerPort} goes past 65535`);
    }
    for (let i = 0; i < count; i++) {
      out.push({ hostIP, hostPort: m.hostPort === 0 ? 0 : m.hostPort + i, containerPort: m.containerPort + i, protocol });
    }
  }
  return out;
}

function familyOf(hostIP: string): 4 | 6 | undefined {
  if (hostIP === '') return undefined;
  return hostIP.includes(':') ? 6 : 4;
}

/** Whether two published ports would receive the same packets. */
export function clash(a: Published, b: Published): boolean {
  if (a.protocol !== b.protocol || a.hostPort !== b.hostPort) return false;
  const fa = familyOf(a.hostIP);
  const fb = familyOf(b.hostIP);
  if (fa !== undefined && fb !== undefined && fa !== fb) return false;
  const any = (ip: string) => ip === '' || ip === '0.0.0.0' || ip === '::';
  return any(a.hostIP) || any(b.hostIP) || a.hostIP === b.hostIP;
}

export function describe(p: Published): string {
  const host = p.hostIP === '' ? '' : p.hostIP.includes(':') ? `[${p.hostIP}]:` : `${p.hostIP}:`;
  return `${host}${p.hostPort}/${p.protocol}`;
}

/** Throws PortInUse naming the port and the container that publishes it. */
export function checkConflicts(wanted: Published[], holdersOf: HoldersOf): void {
  for (const w of wanted) {
    if (w.hostPort === 0) continue;
    for (const hit of holdersOf(w.protocol, w.hostPort)) {
      if (!clash(hit.port, w)) continue;
      throw new CniError(ErrorCode.PortInUse, `host port ${describe(w)} is already published by container ${hit.containerId} (network ${hit.network}) as ${describe(hit.port)}`);
    }
    for (const o of wanted) {
      if (o !== w && o.hostPort !== 0 && clash(o, w)) throw new CniError(ErrorCode.InvalidConfig, `host port ${describe(w)} is mapped twice`);
    }
  }
}

export interface PortSpace {
  low: number;
  high: number;
  reserved: Set<number>;
  /** Ports bound by host sockets, per protocol. */
  bound: (protocol: Protocol, port: number, hostIP: string) => boolean;
  holdersOf: HoldersOf;
}

/**
 * Chooses a free host port for each hostPort 0 (Docker's -P): from the
 * ephemeral range, not reserved, not bound on the host, not published.
 * Starts at a random point so parallel runtimes rarely contend.
 */
export function choosePorts(wanted: Published[], space: PortSpace, random: () => number = Math.random): Published[] {
  const taken: Published[] = [];
  for (const w of wanted) if (w.hostPort !== 0) taken.push(w);
  const size = space.high - space.low + 1;
  const clashesAny = (list: readonly Published[], c: Published): boolean => {
    for (const t of list) if (clash(t, c)) return true;
    return false;
  };
  const out: Published[] = [];
  for (const w of wanted) {
    if (w.hostPort !== 0) {
      out.push(w);
      continue;
    }
    const start = Math.floor(random() * size);
    let chosen: Published | undefined;
    for (let i = 0; i < size && !chosen; i++) {
      const port = space.low + ((start + i) % size);
      const candidate = { ...w, hostPort: port };
      if (space.reserved.has(port)) continue;
      if (clashesAny(taken, candidate)) continue;
      let held = false;
      for (const h of space.holdersOf(w.protocol, port)) if (clash(h.port, candidate)) held = true;
      if (held) continue;
      if (space.bound(w.protocol, port, w.hostIP)) continue;
      chosen = candidate;
    }
    if (!chosen) throw new CniError(ErrorCode.PortInUse, `no free host port left in ${space.low}-${space.high} for ${w.containerPort}/${w.protocol}`);
    taken.push(chosen);
    out.push(chosen);
  }
  return out;
}

/** The container's addresses (one per family) from the prevResult: those of its sandbox interfaces. */
export function containerAddresses(prev: Result): Prefix[] {
  const ifaces = prev.interfaces ?? [];
  const out: Prefix[] = [];
  for (const ip of prev.ips ?? []) {
    const iface = ip.interface === undefined ? undefined : ifaces[ip.interface];
    if (iface !== undefined && !iface.sandbox) continue;
    const p = tryParsePrefix(ip.address);
    let seen = false;
    for (const o of out) if (p && o.ip.family === p.ip.family) seen = true;
    if (p && !seen) out.push(p);
  }
  return out;
}

export function hostIPAddr(p: Published): IPAddr | undefined {
  return p.hostIP === '' ? undefined : tryParseIP(p.hostIP);
}
