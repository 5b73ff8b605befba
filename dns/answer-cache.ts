// Upstream answers kept for their TTL, so a name asked again is answered
// without a round trip: the stored message with the asker's ID and every
// record's TTL lowered by the time it was kept. Bounded in entries and in
// message size; the oldest entry goes first.

/** Where each record's TTL sits in a message, and the smallest TTL; undefined if the message does not walk cleanly. */
export function ttlFields(msg: Buffer): { offsets: number[]; minTtl: number } | undefined {
  if (msg.length < 12) return undefined;
  const skipName = (off: number): number => {
    for (let hops = 0; hops < 128 && off < msg.length; hops++) {
      const len = msg[off]!;
      if (len === 0) return off + 1;
      if ((len & 0xc0) === 0xc0) return off + 2;
      if (len > 63) return -1;
      off += len + 1;
    }
    return -1;
  };
  let off = 12;
  for (let i = msg.readUInt16BE(4); i > 0; i--) {
    off = skipName(off);
    if (off < 0 || off + 4 > msg.length) return undefined;
    off += 4;
  }
  const records = msg.readUInt16BE(6) + msg.readUInt16BE(8) + msg.readUInt16BE(10);
  const offsets: number[] = [];
  let minTtl = Infinity;
  for (let i = 0; i < records; i++) {
    off = skipName(off);
    if (off < 0 || off + 10 > msg.length) return undefined;
    const type = msg.readUInt16BE(off);
    // OPT's "TTL" carries EDNS flags, not a lifetime.
    if (type !== 41) {
      const ttl = msg.readUInt32BE(off + 4);
      offsets.push(off + 4);
      minTtl = Math.min(minTtl, ttl);
    }
    off += 10 + msg.readUInt16BE(off + 8);
    if (off > msg.length) return undefined;
  }
  if (off !== msg.length || offsets.length === 0) return undefined;
  return { offsets, minTtl };
}

interface Entry {
  msg: Buffer;
  offsets: number[];
  ttls: number[];
  stored: number;
  expires: number;
}

export class AnswerCache {
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly maxEntries = 4096,
    private readonly maxBytes = 1232,
    /** No answer is kept longer than this, whatever its TTL (s). */
    private readonly maxTtl = 3600,
    private readonly now: () => number = () => performance.now(),
  ) {}

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }

  /**
   * Keeps an answer (NOERROR or NXDOMAIN, not truncated) for its smallest TTL.
   * An answer with no records (nothing saying how long it holds) or a TTL of 0 is not kept.
   */
  put(key: string, answer: Buffer): void {
    if (answer.length > this.maxBytes || answer.length < 12) return;
    const rcode = answer[3]! & 0x0f;
    if ((rcode !== 0 && rcode !== 3) || (answer[2]! & 0x02) !== 0) return;
    const f = ttlFields(answer);
    if (!f || f.minTtl <= 0) return;
    const msg = Buffer.from(answer);
    const now = this.now();
    this.entries.delete(key);
    if (this.entries.size >= this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(key, { msg, offsets: f.offsets, ttls: f.offsets.map((o) => msg.readUInt32BE(o)), stored: now, expires: now + Math.min(f.minTtl, this.maxTtl) * 1000 });
  }

  /** A copy of the kept answer with ID `id` and TTLs lowered by its age, or undefined when none is kept or it expired. */
  get(key: string, id: number): Buffer | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    const now = this.now();
    if (now >= e.expires) {
      this.entries.delete(key);
      return undefined;
    }
    const age = Math.floor((now - e.stored) / 1000);
    const r = Buffer.from(e.msg);
    r.writeUInt16BE(id, 0);
    for (let i = 0; i < e.offsets.length; i++) r.writeUInt32BE(Math.max(0, e.ttls[i]! - age), e.offsets[i]!);
    return r;
  }
}
