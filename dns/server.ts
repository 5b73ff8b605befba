// The responder's sockets and message handling: UDP and TCP port 53 on each
// gateway address, one decoder for both. Everything a client sends is
// untrusted: a message that does not decode gets FORMERR (or nothing, if it
// has no header), TCP connections are capped in number, size and idle time,
// so no traffic makes memory grow without bound.
import net from 'node:net';
import * as dnsPacket from 'dns-packet';
import { Zones, FORMERR, NOTIMP, SERVFAIL, type Answer } from './zone.ts';
import { Forwarder, questionEnd } from './forward.ts';
import { listenUdp, type UdpListener } from './udp.ts';
import { AnswerCache } from './answer-cache.ts';

export const TTL = 60;
const MAX_TCP_CONNECTIONS = 256;
const TCP_IDLE_MS = 10_000;
/** Questions of one TCP connection still waiting for an upstream. */
const MAX_TCP_PENDING = 32;
const QR = 0x8000;

/** A header-only reply to a message whose header is readable but whose body is not. */
function headerReply(msg: Buffer, rcode: number): Buffer | undefined {
  if (msg.length < 12 || (msg[2]! & 0x80) !== 0) return undefined;
  const b = Buffer.alloc(12);
  b.writeUInt16BE(msg.readUInt16BE(0), 0);
  // QR, the opcode and RD kept, the rcode given.
  b.writeUInt16BE(QR | (msg.readUInt16BE(2) & 0x7900) | rcode, 2);
  return b;
}

function localReply(q: dnsPacket.DecodedPacket, question: dnsPacket.Question, a: Extract<Answer, { kind: 'local' }>): Buffer {
  const answers: dnsPacket.Answer[] = [];
  for (const ip of a.a ?? []) answers.push({ type: 'A', name: question.name, ttl: TTL, class: 'IN', data: ip });
  for (const ip of a.aaaa ?? []) answers.push({ type: 'AAAA', name: question.name, ttl: TTL, class: 'IN', data: ip });
  if (a.ptr !== undefined) answers.push({ type: 'PTR', name: question.name, ttl: TTL, class: 'IN', data: a.ptr });
  const rd = q.flag_rd ? dnsPacket.RECURSION_DESIRED : 0;
  const aa = a.rcode === 0 || a.rcode === 3 ? dnsPacket.AUTHORITATIVE_ANSWER : 0;
  return dnsPacket.encode({ type: 'response', id: q.id ?? 0, flags: rd | aa | dnsPacket.RECURSION_AVAILABLE | a.rcode, questions: [question], answers });
}

/** The largest UDP answer the client takes (EDNS), at least 512. */
function udpLimit(q: dnsPacket.DecodedPacket): number {
  for (const add of q.additionals ?? []) if (add.type === 'OPT') return Math.min(4096, Math.max(512, add.udpPayloadSize));
  return 512;
}

function truncated(reply: Buffer, limit: number): Buffer {
  if (reply.length <= limit) return reply;
  // Header and question only, TC set: the client asks again over TCP.
  const end = Math.min(reply.length, questionEnd(reply));
  const b = Buffer.from(reply.subarray(0, end));
  b.writeUInt16BE(0, 6);
  b.writeUInt16BE(0, 8);
  b.writeUInt16BE(0, 10);
  b[2] = b[2]! | 0x02;
  return b;
}


/** Answers kept per zone generation, cleared on reload; bounded. */
const MAX_CACHED = 4096;

/**
 * A cache key for the common question: a query (opcode 0, no flags but RD),
 * exactly one question, no other records (no EDNS), nothing after it.
 * Anything else takes the full decode.
 */
function plainQuestionKey(msg: Buffer, local: string): string | undefined {
  if (msg.length < 17 || (msg[2]! & 0xfe) !== 0 || msg.readUInt16BE(4) !== 1 || msg.readUInt32BE(6) !== 0 || msg.readUInt16BE(10) !== 0) return undefined;
  // Labels only (no compression pointer), ending exactly 4 bytes before the end.
  let off = 12;
  while (off < msg.length) {
    const len = msg[off]!;
    if (len === 0) break;
    if (len > 63) return undefined;
    off += len + 1;
  }
  if (off + 5 !== msg.length) return undefined;
  return `${local}\0${msg.toString('latin1', 12)}`;
}

const TYPES: Record<number, string> = { 1: 'A', 12: 'PTR', 28: 'AAAA', 255: 'ANY' };

/** Name and type of a message plainQuestionKey accepted (labels only, one question). */
function plainQuestion(msg: Buffer): { name: string; type: string } {
  const labels: string[] = [];
  let off = 12;
  for (let len = msg[off]!; len !== 0; len = msg[off]!) {
    labels.push(msg.toString('latin1', off + 1, off + 1 + len));
    off += len + 1;
  }
  return { name: labels.join('.'), type: TYPES[msg.readUInt16BE(off + 1)] ?? 'OTHER' };
}

export class Responder {
  private zonesNow = new Zones([]);
  /** Encoded local UDP answers by gateway + the question's raw bytes: a repeated question costs no decode or encode. */
  private readonly answers = new Map<string, Buffer>();

  get zones(): Zones {
    return this.zonesNow;
  }

  set zones(z: Zones) {
    this.zonesNow = z;
    this.answers.clear();
    // A name forwarded until now may be a container's from now on, or the network internal.
    this.forwardedAnswers.clear();
  }

  /** Upstream answers to plain UDP questions, by gateway + the question's flags, counts and section; kept for their TTL. */
  readonly forwardedAnswers = new AnswerCache();

  readonly forwarder: Forwarder;
  private readonly listeners = new Map<string, { udp: UdpListener; tcp: net.Server }>();
  private readonly failed = new Set<string>();
  private tcpConnections = 0;
  /** Counters for tests and `dns status`. */
  readonly stats = { queries: 0, malformed: 0, forwarded: 0, forwardCacheHits: 0 };

  constructor(forwarder: Forwarder, private readonly port = 53) {
    this.forwarder = forwarder;
  }

  /** Answers one message asked on gateway address `local`; reply is not called for a message to be dropped. */
  handle(msg: Buffer, local: string, udp: boolean, reply: (b: Buffer) => void): void {
    this.stats.queries++;
    const key = udp ? plainQuestionKey(msg, local) : undefined;
    if (key !== undefined) {
      const hit = this.answers.get(key);
      if (hit) {
        const r = Buffer.from(hit);
        r[0] = msg[0]!;
        r[1] = msg[1]!;
        r[2] = (r[2]! & 0xfe) | (msg[2]! & 0x01);
        return reply(r);
      }
      // The key holds RD and CD too: the upstream's answer may depend on them.
      const fkey = `${local}\0${msg.toString('latin1', 2)}`;
      const kept = this.forwardedAnswers.get(fkey, msg.readUInt16BE(0));
      if (kept) {
        this.stats.forwardCacheHits++;
        return reply(kept);
      }
      // A plain question for a name to forward needs no decode either: its labels are read here.
      const { name, type } = plainQuestion(msg);
      if (this.zones.answer(local, name, type).kind === 'forward') return this.forward(msg, reply, fkey);
    }
    let q: dnsPacket.DecodedPacket;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      this.stats.malformed++;
      const r = headerReply(msg, FORMERR);
      if (r) reply(r);
      return;
    }
    if (q.type !== 'query') return;
    const question = q.questions?.[0];
    if (((msg.readUInt16BE(2) >> 11) & 0xf) !== 0) return void reply(headerReply(msg, NOTIMP)!);
    if (!question || q.questions!.length !== 1) return void reply(headerReply(msg, FORMERR)!);
    const a = this.zones.answer(local, question.name, question.type);
    if (a.kind === 'local') {
      const r = localReply(q, question, a);
      if (key !== undefined && r.length <= 512) {
        if (this.answers.size >= MAX_CACHED) this.answers.clear();
        this.answers.set(key, r);
      }
      return reply(udp ? truncated(r, udpLimit(q)) : r);
    }
    this.forward(msg, reply);
  }

  private forward(msg: Buffer, reply: (b: Buffer) => void, cacheKey?: string): void {
    this.stats.forwarded++;
    const zones = this.zonesNow;
    this.forwarder.forward(msg, (answer) => {
      if (!answer) return reply(headerReply(msg, SERVFAIL)!);
      // Not kept if the zones changed while the upstream was asked.
      if (cacheKey !== undefined && zones === this.zonesNow) this.forwardedAnswers.put(cacheKey, answer);
      reply(answer);
    });
  }

  /** Listens on every gateway address of the zones, and on no other. */
  reconcile(): void {
    const want = new Set(this.zones.gateways());
    for (const [addr, l] of this.listeners) {
      if (want.has(addr)) continue;
      l.udp.close();
      l.tcp.close();
      this.listeners.delete(addr);
    }
    this.failed.clear();
    for (const addr of want) if (!this.listeners.has(addr)) this.listen(addr);
  }

  /** Addresses that could not be bound yet (e.g. an IPv6 address still in duplicate address detection). */
  get unbound(): string[] {
    return [...this.failed];
  }

  private listen(addr: string): void {
    const tcp = net.createServer({ pauseOnConnect: false }, (s) => this.onTcp(s, addr));
    tcp.maxConnections = MAX_TCP_CONNECTIONS;
    let failed = false;
    const fail = () => {
      if (failed) return;
      failed = true;
      this.failed.add(addr);
      if (this.listeners.get(addr)?.tcp === tcp) this.listeners.delete(addr);
      udp.close();
      tcp.close();
    };
    const udp = listenUdp(addr, this.port, (msg, reply) => this.handle(msg, addr, true, reply), fail);
    tcp.on('error', fail);
    tcp.listen({ host: addr, port: this.port, exclusive: true });
    this.listeners.set(addr, { udp, tcp });
  }

  private onTcp(s: net.Socket, addr: string): void {
    if (this.tcpConnections >= MAX_TCP_CONNECTIONS) return void s.destroy();
    this.tcpConnections++;
    s.setTimeout(TCP_IDLE_MS, () => s.destroy());
    s.on('error', () => undefined);
    s.on('close', () => this.tcpConnections--);
    let buf: Buffer = Buffer.alloc(0);
    let pending = 0;
    s.on('data', (chunk: Buffer) => {
      // At most one whole message (2 + 65,535 bytes) plus one read is ever buffered.
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (len < 12) return void s.destroy();
        if (buf.length < 2 + len) break;
        const msg = buf.subarray(2, 2 + len);
        buf = buf.subarray(2 + len);
        if (++pending > MAX_TCP_PENDING) return void s.destroy();
        this.handle(Buffer.from(msg), addr, false, (r) => {
          pending--;
          if (s.destroyed) return;
          const framed = Buffer.alloc(2 + r.length);
          framed.writeUInt16BE(r.length, 0);
          r.copy(framed, 2);
          s.write(framed);
        });
        if (s.destroyed) return;
      }
      if (buf.length > 0 && buf.byteOffset > 0) buf = Buffer.from(buf);
    });
  }

  /** Re-binds addresses that failed before. */
  retryFailed(): void {
    const again = [...this.failed];
    this.failed.clear();
    for (const addr of again) if (!this.listeners.has(addr)) this.listen(addr);
  }

  close(): void {
    for (const l of this.listeners.values()) {
      l.udp.close();
      l.tcp.close();
    }
    this.listeners.clear();
    this.forwarder.close();
  }
}
