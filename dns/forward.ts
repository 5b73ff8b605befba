// Forwarding a question the responder does not own to the host's upstream
// resolvers: one UDP socket per family, queries re-numbered so an answer is
// matched to its question by ID, source and question section. Bounded: at
// most MAX_PENDING questions in flight; beyond that the client gets SERVFAIL
// at once rather than the responder holding more memory.
import { readFileIfExists } from '../lib/fs/index.ts';
import { tryParseIP, formatIP } from '../lib/ip/index.ts';
import { udpClient, type UdpClient } from './udp.ts';

export const MAX_UPSTREAMS = 3;
export const MAX_PENDING = 2048;

export interface Upstream {
  address: string;
  port: number;
}

/** `nameserver` lines of a resolv.conf, at most 3 (as the libc resolver), none of `exclude`. */
export function upstreamsFrom(resolvConf: string, exclude: readonly string[] = []): Upstream[] {
  const out: Upstream[] = [];
  for (const line of resolvConf.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) continue;
    const [addr, zone] = m[1]!.split('%');
    const ip = tryParseIP(addr!);
    if (!ip) continue;
    const address = formatIP(ip) + (zone ? `%${zone}` : '');
    if (exclude.includes(formatIP(ip)) || out.some((u) => u.address === address)) continue;
    out.push({ address, port: 53 });
    if (out.length === MAX_UPSTREAMS) break;
  }
  return out;
}

export function readUpstreams(path: string, exclude: readonly string[]): Upstream[] {
  return upstreamsFrom(readFileIfExists(path) ?? '', exclude);
}

/** Where the question section of a query ends (the query was decoded already, so it is well formed). */
export function questionEnd(msg: Buffer): number {
  let off = 12;
  while (off < msg.length) {
    const len = msg[off]!;
    if (len === 0) return off + 5;
    if ((len & 0xc0) === 0xc0) return off + 6;
    off += len + 1;
  }
  return msg.length;
}

interface Pending {
  query: Buffer;
  originalId: number;
  qEnd: number;
  tried: number;
  upstream?: Upstream;
  /** When the current upstream has had its time (performance.now()). */
  deadline: number;
  done: (answer: Buffer | undefined) => void;
}

export class Forwarder {
  private readonly pending = new Map<number, Pending>();
  private sockets: { 4?: UdpClient; 6?: UdpClient } = {};
  /** One sweep for every deadline, not a timer per question. */
  private sweep?: ReturnType<typeof setInterval>;

  constructor(
    public upstreams: Upstream[],
    private readonly timeoutMs = 2000,
  ) {}

  get inFlight(): number {
    return this.pending.size;
  }

  /** Calls done with the upstream's answer (its ID restored), or undefined when none answered usefully. */
  forward(query: Buffer, done: (answer: Buffer | undefined) => void): void {
    if (this.upstreams.length === 0 || this.pending.size >= MAX_PENDING) return done(undefined);
    let id = (Math.random() * 0x10000) | 0;
    while (this.pending.has(id)) id = (id + 1) & 0xffff;
    const copy = Buffer.from(query);
    copy.writeUInt16BE(id, 0);
    const p: Pending = { query: copy, originalId: query.readUInt16BE(0), qEnd: questionEnd(query), tried: 0, deadline: 0, done };
    this.pending.set(id, p);
    this.sweep ??= setInterval(() => this.expire(), Math.max(10, Math.min(100, this.timeoutMs / 4)));
    this.next(id, p);
  }

  private expire(): void {
    const now = performance.now();
    for (const [id, p] of this.pending) if (p.deadline <= now) this.next(id, p);
    if (this.pending.size === 0 && this.sweep) {
      clearInterval(this.sweep);
      this.sweep = undefined;
    }
  }

  private socket(family: 4 | 6): UdpClient {
    let s = this.sockets[family];
    if (!s) {
      s = udpClient(family, (msg, port, address) => this.onAnswer(msg, { port, address }));
      this.sockets[family] = s;
    }
    return s;
  }

  private next(id: number, p: Pending): void {
    const u = this.upstreams[p.tried++];
    if (!u) return this.finish(id, p, undefined);
    p.upstream = u;
    p.deadline = performance.now() + this.timeoutMs;
    this.socket(u.address.includes(':') ? 6 : 4).send(p.query, u.port, u.address);
  }

  private finish(id: number, p: Pending, answer: Buffer | undefined): void {
    this.pending.delete(id);
    p.done(answer);
  }

  private onAnswer(msg: Buffer, rinfo: { port: number; address: string }): void {
    if (msg.length < 12 || (msg[2]! & 0x80) === 0) return;
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    const u = p?.upstream;
    if (!p || !u || rinfo.port !== u.port || rinfo.address !== u.address.split('%')[0]) return;
    // The same question, or it is not the answer to ours.
    if (msg.length < p.qEnd || msg.readUInt16BE(4) !== p.query.readUInt16BE(4) || msg.compare(p.query, 12, p.qEnd, 12, p.qEnd) !== 0) return;
    const rcode = msg[3]! & 0x0f;
    // A server failure or refusal: the next upstream may do better.
    if ((rcode === 2 || rcode === 5) && p.tried < this.upstreams.length) return this.next(id, p);
    msg.writeUInt16BE(p.originalId, 0);
    this.finish(id, p, msg);
  }

  close(): void {
    if (this.sweep) clearInterval(this.sweep);
    this.sweep = undefined;
    for (const [id, p] of this.pending) this.finish(id, p, undefined);
    this.sockets[4]?.close();
    this.sockets[6]?.close();
    this.sockets = {};
  }
}
