// Host ports: which are bound in the current network namespace (read from
// /proc/net, which reflects the namespace of the reading thread), and which
// the kernel hands out as ephemeral ports.
import { readFile } from '../fs/index.ts';
import { formatIP, ipFromBytes } from '../ip/index.ts';
import { readSysctl } from '../netlink/sysctl.ts';

export type Protocol = 'tcp' | 'udp' | 'sctp';

export interface BoundSocket {
  protocol: Protocol;
  address: string;
  port: number;
}

const TCP_LISTEN = '0A';

function readLines(path: string): string[] {
  try {
    return readFile(path).split('\n').slice(1).filter((l) => l.trim() !== '');
  } catch {
    return []; // no IPv6, or the sctp module not loaded
  }
}

/** /proc/net/tcp stores each 32-bit word of the address in host (little-endian) order. */
function decodeAddress(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => (w.match(/../g) ?? []).reverse().map((b) => parseInt(b, 16)));
  return formatIP(ipFromBytes(Uint8Array.from(bytes)));
}

function inet(protocol: 'tcp' | 'udp', file: string): BoundSocket[] {
  const out: BoundSocket[] = [];
  for (const line of readLines(file)) {
    const cols = line.trim().split(/\s+/);
    const [addr, port] = (cols[1] ?? '').split(':');
    if (!addr || !port) continue;
    if (protocol === 'tcp' && cols[3] !== TCP_LISTEN) continue;
    out.push({ protocol, address: decodeAddress(addr), port: parseInt(port, 16) });
  }
  return out;
}

function sctp(): BoundSocket[] {
  // ENDPT SOCK STY SST HBKT LPORT UID INODE LADDRS...
  return readLines('/proc/net/sctp/eps').flatMap((line) => {
    const cols = line.trim().split(/\s+/);
    const port = Number(cols[5]);
    return cols.slice(8).map((address) => ({ protocol: 'sctp' as const, address, port }));
  });
}

export function boundSockets(): BoundSocket[] {
  return [
    ...inet('tcp', '/proc/net/tcp'),
    ...inet('tcp', '/proc/net/tcp6'),
    ...inet('udp', '/proc/net/udp'),
    ...inet('udp', '/proc/net/udp6'),
    ...sctp(),
  ];
}

const WILDCARD = new Set(['', '0.0.0.0', '::']);

/** The bound socket a host port would collide with, if any. */
export function findConflict(sockets: BoundSocket[], protocol: Protocol, hostIP: string, port: number): BoundSocket | undefined {
  return sockets.find(
    (s) => s.protocol === protocol && s.port === port && (WILDCARD.has(hostIP) || WILDCARD.has(s.address) || s.address === hostIP),
  );
}

/** net.ipv4.ip_local_port_range: where -P style random host ports come from. */
export function ephemeralPortRange(): { low: number; high: number } {
  const [low, high] = readSysctl('net/ipv4/ip_local_port_range').split(/\s+/).map(Number);
  if (!low || !high || low > high) return { low: 32768, high: 60999 };
  return { low, high };
}

/** net.ipv4.ip_local_reserved_ports ("8080,9000-9010"): never handed out. */
export function reservedPorts(): Set<number> {
  const out = new Set<number>();
  const text = readSysctl('net/ipv4/ip_local_reserved_ports');
  for (const part of text.split(',').filter((p) => p.trim() !== '')) {
    const [a, b] = part.split('-').map((x) => Number(x.trim()));
    if (a === undefined || Number.isNaN(a)) continue;
    for (let p = a; p <= (b ?? a); p++) out.add(p);
  }
  return out;
}
