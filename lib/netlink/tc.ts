// Traffic control over rtnetlink, encoded as `tc` sends it: qdiscs (tbf,
// ingress) and a u32 match-all filter whose mirred action redirects what a
// device receives to another device's egress (how an ifb shapes ingress).
// Pure encoding and decoding here; Netlink (index.ts) does the round trips.
import { attr, u32, str, struct, concat, parseAttrs, readStr } from './codec.ts';

export const RTM_NEWQDISC = 36;
export const RTM_DELQDISC = 37;
export const RTM_GETQDISC = 38;
export const RTM_NEWTFILTER = 44;
export const RTM_DELTFILTER = 45;
export const RTM_GETTFILTER = 46;

export const TC_H_ROOT = 0xffffffff;
export const TC_H_INGRESS = 0xfffffff1;
/** The handle `tc` gives the ingress qdisc (ffff:). */
export const INGRESS_HANDLE = 0xffff0000;
export const ETH_P_ALL = 0x0003;

const TCA_KIND = 1;
const TCA_OPTIONS = 2;

const TCA_TBF_PARMS = 1;
const TCA_TBF_RATE64 = 4;

const TCA_U32_CLASSID = 1;
const TCA_U32_SEL = 5;
const TCA_U32_ACT = 7;
const TC_U32_TERMINAL = 1;

const TCA_ACT_KIND = 1;
const TCA_ACT_OPTIONS = 2;
const TCA_MIRRED_PARMS = 2;
export const TCA_EGRESS_REDIR = 1;
export const TC_ACT_STOLEN = 4;

/** The kernel keeps time in psched ticks of 2^6 ns (PSCHED_SHIFT). */
const PSCHED_SHIFT = 6;
const U32_MAX = 0xffffffff;
const TIME_UNITS_PER_SEC = 1e6;

/** major:minor, as `tc` writes handles. */
export function tcHandle(major: number, minor: number): number {
  return ((major << 16) | minor) >>> 0;
}

/**
 * tc's nests carry no NLA_F_NESTED flag; the kernel's tc code parses them
 * without strict validation, and `tc` itself never sets it.
 */
function nest(type: number, children: readonly Uint8Array[]): Uint8Array {
  return attr(type, concat(children));
}

function u64(type: number, v: number): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v), true);
  return attr(type, b);
}

/** struct tcmsg: family, ifindex, handle, parent, info. */
export function tcmsg(ifindex: number, handle: number, parent: number, info = 0): Uint8Array {
  return struct(20, (dv) => {
    dv.setUint8(0, 0 /* AF_UNSPEC */);
    dv.setInt32(4, ifindex, true);
    dv.setUint32(8, handle >>> 0, true);
    dv.setUint32(12, parent >>> 0, true);
    dv.setUint32(16, info >>> 0, true);
  });
}

// ---- the token bucket, as the reference bandwidth plugin computes it

/** The kernel's packet scheduler clock, from /proc/net/psched. */
export interface PschedClock {
  tickInUsec: number;
}

/** Reads the four hex words of /proc/net/psched as iproute2 (and vishvananda/netlink) do. */
export function parsePsched(text: string): PschedClock {
  const parts = text.trim().split(/\s+/);
  const v: number[] = [];
  for (let i = 0; i < 4; i++) v.push(parseInt(parts[i] ?? '', 16));
  if (v.some((x) => !Number.isFinite(x)) || v[1] === 0) throw new Error(`unreadable /proc/net/psched: "${text.trim()}"`);
  // A clock resolution of 1 GHz means the first word is stale (iproute2's compatibility rule).
  if (v[2] === 1e9) v[0] = v[1]!;
  const clockFactor = v[2]! / TIME_UNITS_PER_SEC;
  return { tickInUsec: (v[0]! / v[1]!) * clockFactor };
}

/** What a tbf qdisc holds: rate in bytes/s, limit in bytes, buffer in psched ticks. */
export interface TbfParams {
  rate: number;
  limit: number;
  buffer: number;
}

/** The reference plugin's queueing latency: limit = rate × 25 ms + burst. */
export const TBF_LATENCY_MS = 25;

// Go's uint32(float64) truncates towards zero; a value beyond 32 bits
// saturates here (the reference wraps around, which no one can mean).
function toU32(x: number): number {
  return x >= U32_MAX ? U32_MAX : Math.max(0, Math.trunc(x));
}

/**
 * rate in bits/s and burst in bits (the CNI bandwidth convention) to the
 * tbf's parameters, with the reference plugin's arithmetic.
 */
export function tbfParams(rateBits: number, burstBits: number, clock: PschedClock): TbfParams {
  const rate = Math.floor(rateBits / 8);
  const burst = toU32(Math.floor(burstBits / 8));
  const bufferUsec = toU32((burst * TIME_UNITS_PER_SEC) / rate);
  const buffer = toU32(bufferUsec * clock.tickInUsec);
  const latencyUsec = TIME_UNITS_PER_SEC * (TBF_LATENCY_MS / 1000);
  const limit = toU32(toU32((rate * latencyUsec) / TIME_UNITS_PER_SEC) + burst);
  return { rate, limit, buffer };
}

/**
 * What the kernel reports back for a tbf set with `p`: it keeps the buffer
 * in nanoseconds capped at 2^32-1, so a longer one comes back shorter.
 */
export function tbfAsReported(p: TbfParams): TbfParams {
  const ns = Math.min(p.buffer * 2 ** PSCHED_SHIFT, U32_MAX);
  return { ...p, buffer: Math.floor(ns / 2 ** PSCHED_SHIFT) };
}

// ---- messages

/** struct tc_ratespec with only the rate set (link layer unaware, no rate table). */
function ratespec(dv: DataView, off: number, rate: number): void {
  dv.setUint32(off + 8, Math.min(rate, U32_MAX), true);
}

/** RTM_NEWQDISC body: a tbf as the root qdisc (handle 1:) of a device. */
export function tbfQdiscMessage(ifindex: number, p: TbfParams, handle = tcHandle(1, 0), parent = TC_H_ROOT): Uint8Array {
  // struct tc_tbf_qopt: rate, peakrate (tc_ratespec, 12 bytes each), limit, buffer, mtu.
  const qopt = struct(36, (dv) => {
    ratespec(dv, 0, p.rate);
    dv.setUint32(24, p.limit, true);
    dv.setUint32(28, p.buffer, true);
  });
  const opts = [attr(TCA_TBF_PARMS, qopt)];
  if (p.rate > U32_MAX) opts.push(u64(TCA_TBF_RATE64, p.rate));
  return concat([tcmsg(ifindex, handle, parent), str(TCA_KIND, 'tbf'), nest(TCA_OPTIONS, opts)]);
}

/** RTM_NEWQDISC body: the ingress qdisc (ffff:) of a device. */
export function ingressQdiscMessage(ifindex: number): Uint8Array {
  return concat([tcmsg(ifindex, INGRESS_HANDLE, TC_H_INGRESS), str(TCA_KIND, 'ingress')]);
}

/** RTM_DELQDISC / RTM_GETQDISC body naming one qdisc by its parent (and handle, when not 0). */
export function qdiscRef(ifindex: number, parent: number, handle = 0): Uint8Array {
  return tcmsg(ifindex, handle, parent);
}

/**
 * RTM_NEWTFILTER body: on the qdisc `parent` of a device, a u32 filter that
 * matches every packet of every protocol (one key, mask 0) and redirects it
 * to the egress of `toIndex` (`tc filter add … u32 match u32 0 0 action
 * mirred egress redirect dev …`), with the reference's priority 1 and flow 1:1.
 */
export function redirectFilterMessage(ifindex: number, parent: number, toIndex: number, prio = 1): Uint8Array {
  // struct tc_u32_sel (16 bytes) and one struct tc_u32_key (16 bytes, all zero: matches anything).
  const sel = struct(32, (dv) => {
    dv.setUint8(0, TC_U32_TERMINAL);
    dv.setUint8(2, 1 /* nkeys */);
  });
  // struct tc_mirred: tc_gen (index, capab, action, refcnt, bindcnt), eaction, ifindex.
  const mirred = struct(28, (dv) => {
    dv.setInt32(8, TC_ACT_STOLEN, true);
    dv.setInt32(20, TCA_EGRESS_REDIR, true);
    dv.setUint32(24, toIndex, true);
  });
  const action = nest(1 /* the first action of the list */, [str(TCA_ACT_KIND, 'mirred'), nest(TCA_ACT_OPTIONS, [attr(TCA_MIRRED_PARMS, mirred)])]);
  // tcm_info: priority in the upper half, the protocol in network order in the lower.
  const info = ((prio << 16) | ((ETH_P_ALL & 0xff) << 8) | (ETH_P_ALL >> 8)) >>> 0;
  return concat([
    tcmsg(ifindex, 0, parent, info),
    str(TCA_KIND, 'u32'),
    nest(TCA_OPTIONS, [attr(TCA_U32_SEL, sel), u32(TCA_U32_CLASSID, tcHandle(1, 1)), nest(TCA_U32_ACT, [action])]),
  ]);
}

/** RTM_GETTFILTER dump body: the filters of one qdisc of a device. */
export function filterDumpMessage(ifindex: number, parent: number): Uint8Array {
  return tcmsg(ifindex, 0, parent);
}

// ---- decoding

export interface Qdisc {
  ifindex: number;
  handle: number;
  parent: number;
  kind: string;
  /** For a tbf: what the kernel holds (see tbfAsReported). */
  tbf?: TbfParams;
}

function readU64(b: Uint8Array | undefined): number | undefined {
  return b && b.length >= 8 ? Number(new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true)) : undefined;
}

export function decodeQdisc(body: Uint8Array): Qdisc {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const a = parseAttrs(body, 20);
  const q: Qdisc = {
    ifindex: dv.getInt32(4, true),
    handle: dv.getUint32(8, true),
    parent: dv.getUint32(12, true),
    kind: readStr(a.get(TCA_KIND)) ?? '',
  };
  const opts = a.get(TCA_OPTIONS);
  if (q.kind === 'tbf' && opts) {
    const o = parseAttrs(opts);
    const parms = o.get(TCA_TBF_PARMS);
    if (parms && parms.length >= 36) {
      const p = new DataView(parms.buffer, parms.byteOffset, parms.byteLength);
      q.tbf = {
        rate: readU64(o.get(TCA_TBF_RATE64)) ?? p.getUint32(8, true),
        limit: p.getUint32(24, true),
        buffer: p.getUint32(28, true),
      };
    }
  }
  return q;
}

export interface Filter {
  ifindex: number;
  parent: number;
  handle: number;
  kind: string;
  prio: number;
  /** Host order (ETH_P_ALL is 3). */
  protocol: number;
  /** The device a mirred egress redirect action sends to, if the filter has one. */
  redirectTo?: number;
}

function mirredTarget(actions: Uint8Array): number | undefined {
  for (const act of parseAttrs(actions).values()) {
    const a = parseAttrs(act);
    if (readStr(a.get(TCA_ACT_KIND)) !== 'mirred') continue;
    const opts = a.get(TCA_ACT_OPTIONS);
    const parms = opts ? parseAttrs(opts).get(TCA_MIRRED_PARMS) : undefined;
    if (!parms || parms.length < 28) continue;
    const dv = new DataView(parms.buffer, parms.byteOffset, parms.byteLength);
    if (dv.getInt32(20, true) === TCA_EGRESS_REDIR) return dv.getUint32(24, true);
  }
  return undefined;
}

export function decodeFilter(body: Uint8Array): Filter {
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const info = dv.getUint32(16, true);
  const a = parseAttrs(body, 20);
  const f: Filter = {
    ifindex: dv.getInt32(4, true),
    handle: dv.getUint32(8, true),
    parent: dv.getUint32(12, true),
    kind: readStr(a.get(TCA_KIND)) ?? '',
    prio: info >>> 16,
    protocol: ((info & 0xff) << 8) | ((info >> 8) & 0xff),
  };
  const opts = a.get(TCA_OPTIONS);
  if (f.kind === 'u32' && opts) {
    const acts = parseAttrs(opts).get(TCA_U32_ACT);
    const to = acts ? mirredTarget(acts) : undefined;
    if (to !== undefined) f.redirectTo = to;
  }
  return f;
}
