// rtnetlink wire format: fixed headers and TLV attributes (rtattr/nlattr),
// 4-byte aligned, host byte order except addresses.

export const NLA_F_NESTED = 0x8000;
const NLA_TYPE_MASK = 0x3fff;
const te = new TextEncoder();
const td = new TextDecoder();

export function align4(n: number): number {
  return (n + 3) & ~3;
}

export function concat(parts: readonly Uint8Array[]): Uint8Array {
  let len = 0;
  for (const p of parts) len += p.length;
  const out = new Uint8Array(len);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** One attribute: 4-byte header (length, type) and the payload, padded. */
export function attr(type: number, payload: Uint8Array): Uint8Array {
  const len = 4 + payload.length;
  const out = new Uint8Array(align4(len));
  const dv = new DataView(out.buffer);
  dv.setUint16(0, len, true);
  dv.setUint16(2, type, true);
  out.set(payload, 4);
  return out;
}

export function nested(type: number, children: readonly Uint8Array[]): Uint8Array {
  return attr(type | NLA_F_NESTED, concat(children));
}

export function u8(type: number, v: number): Uint8Array {
  return attr(type, Uint8Array.of(v));
}

export function u32(type: number, v: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v >>> 0, true);
  return attr(type, b);
}

export function str(type: number, s: string): Uint8Array {
  return attr(type, concat([te.encode(s), Uint8Array.of(0)]));
}

/** Fixed-size header struct filled by `fill`. */
export function struct(size: number, fill: (dv: DataView) => void): Uint8Array {
  const b = new Uint8Array(size);
  fill(new DataView(b.buffer));
  return b;
}

/** Length of struct nlmsghdr, which every netlink message starts with. */
export const NLMSG_HDRLEN = 16;
const NLM_F_REQUEST = 0x1;

/** A request message: nlmsghdr (port id 0: the kernel's) and the body. */
export function nlmsg(type: number, flags: number, seq: number, body: Uint8Array): Uint8Array {
  const header = struct(NLMSG_HDRLEN, (dv) => {
    dv.setUint32(0, NLMSG_HDRLEN + body.length, true);
    dv.setUint16(4, type, true);
    dv.setUint16(6, flags | NLM_F_REQUEST, true);
    dv.setUint32(8, seq, true);
  });
  return concat([header, body]);
}

/**
 * Walks the messages of one received datagram (its first `n` bytes in
 * `buf`), calling `on` with each one's type, sequence number, and offset and
 * length in `buf`, until `on` returns true. Returns whether it did.
 */
export function walkMessages(
  buf: Uint8Array,
  n: number,
  on: (type: number, seq: number, off: number, len: number, dv: DataView) => boolean | void,
): boolean {
  const dv = new DataView(buf.buffer, buf.byteOffset, n);
  for (let off = 0; off + NLMSG_HDRLEN <= n; off += align4(dv.getUint32(off, true))) {
    const len = dv.getUint32(off, true);
    if (len < NLMSG_HDRLEN || off + len > n) break;
    if (on(dv.getUint16(off + 4, true), dv.getUint32(off + 8, true), off, len, dv) === true) return true;
  }
  return false;
}

export type Attrs = Map<number, Uint8Array>;

/** Attributes in buf[start, end); nested/byte-order flags are stripped from the type. */
export function parseAttrs(buf: Uint8Array, start = 0, end = buf.length): Attrs {
  const out: Attrs = new Map();
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let off = start;
  while (off + 4 <= end) {
    const len = dv.getUint16(off, true);
    if (len < 4 || off + len > end) break;
    out.set(dv.getUint16(off + 2, true) & NLA_TYPE_MASK, buf.subarray(off + 4, off + len));
    off += align4(len);
  }
  return out;
}

export function readU8(b: Uint8Array | undefined): number | undefined {
  return b && b.length >= 1 ? b[0] : undefined;
}

export function readU32(b: Uint8Array | undefined): number | undefined {
  return b && b.length >= 4 ? new DataView(b.buffer, b.byteOffset, 4).getUint32(0, true) : undefined;
}

export function readI32(b: Uint8Array | undefined): number | undefined {
  return b && b.length >= 4 ? new DataView(b.buffer, b.byteOffset, 4).getInt32(0, true) : undefined;
}

export function readStr(b: Uint8Array | undefined): string | undefined {
  if (!b) return undefined;
  const nul = b.indexOf(0);
  return td.decode(nul < 0 ? b : b.subarray(0, nul));
}

// A plain loop: spread, map and padStart are JS builtins whose first use
// costs a plugin exec ~0.1 ms each under Bun (compiled on first call).
export function formatMac(b: Uint8Array | undefined): string {
  if (!b) return '';
  let out = '';
  for (let i = 0; i < b.length; i++) out += `${i > 0 ? ':' : ''}${b[i]! < 16 ? '0' : ''}${b[i]!.toString(16)}`;
  return out;
}

export function parseMac(s: string): Uint8Array | undefined {
  if (!/^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$/.test(s)) return undefined;
  return Uint8Array.from(s.split(':').map((x) => parseInt(x, 16)));
}
