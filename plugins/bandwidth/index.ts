// Traffic shaping, chained after the plugin that made the veth pair, as the
// reference bandwidth plugin does it: traffic to the container (ingress) is
// held to its rate by a tbf qdisc on the host end of the veth, where the
// host sends to the container; traffic from the container (egress) arrives
// at the host end's ingress, where a u32 match-all filter redirects it to an
// ifb device, whose tbf qdisc shapes it. All through rtnetlink, no `tc`.
// DEL works from the plugin's records, without the netns or the prevResult.
import type { BandwidthConf, Result, Attachment, Interface } from '../../lib/spec/index.ts';
import { validateBandwidthConf } from '../../lib/spec/validators.gen.js';
import { keysBandwidthConf } from '../../lib/spec/keys.gen.js';
import { CniError, ErrorCode, type Plugin, type Context } from '../../lib/skel/index.ts';
import { AttachmentStore, DEFAULT_DATA_DIR } from '../../lib/state/attachments.ts';
import {
  Netlink, TC_H_ROOT, TC_H_INGRESS, INGRESS_HANDLE, tcHandle, tbfParams, tbfAsReported, parsePsched,
  type Link, type PschedClock, type TbfParams,
} from '../../lib/netlink/index.ts';
import { readFileIfExists, listDirIfExists } from '../../lib/fs/index.ts';
import { sys } from '../../lib/sys/index.ts';

const PLUGIN = 'bandwidth';
const TBF_HANDLE = tcHandle(1, 0);

/** A rate in bits/s and a burst in bits, as configured. */
export interface Shape {
  rate: number;
  burst: number;
}

export interface Limits {
  ingress?: Shape;
  egress?: Shape;
}

export interface BandwidthRecord {
  network: string;
  containerId: string;
  ifname: string;
  /** The host end of the veth pair; its index tells it from a later link of the same name. */
  host: { name: string; index: number };
  ingress?: Shape;
  egress?: Shape & { ifb: string };
}

/**
 * The ifb's name, as the reference derives it ("bwp" + sha512 of network
 * and container ID), so either plugin's DEL finds the other's device.
 */
export function ifbName(network: string, containerId: string): string {
  return `bwp${sys.sha512hex(network + containerId)}`.slice(0, 15);
}

function store(conf: BandwidthConf, network = conf.name): AttachmentStore<BandwidthRecord> {
  return new AttachmentStore<BandwidthRecord>(conf.dataDir ?? DEFAULT_DATA_DIR, PLUGIN, network);
}

function keyOf(ctx: Context<BandwidthConf>): { network: string; containerId: string; ifname: string } {
  return { network: ctx.conf.name, containerId: ctx.inv.containerId, ifname: ctx.inv.ifname };
}

const MAX_BURST_BITS = 0xffffffff * 8;

function shapeOf(rate: number | undefined, burst: number | undefined, field: string): Shape | undefined {
  const r = rate ?? 0;
  const b = burst ?? 0;
  if (r === 0 && b === 0) return undefined;
  if (b === 0) throw new CniError(ErrorCode.InvalidConfig, `${field}Burst must be set when ${field}Rate is (if rate is set, burst must also be set)`);
  if (r === 0) throw new CniError(ErrorCode.InvalidConfig, `${field}Rate must be set when ${field}Burst is (if burst is set, rate must also be set)`);
  if (b >= MAX_BURST_BITS) throw new CniError(ErrorCode.InvalidConfig, `${field}Burst ${b} is too large: burst cannot be more than 4GB`);
  // Under 8 bits/s the rate is 0 bytes/s, which the kernel cannot shape to.
  if (r < 8) throw new CniError(ErrorCode.InvalidConfig, `${field}Rate ${r} is below 8 bits/s (one byte per second)`);
  return { rate: r, burst: b };
}

/**
 * The limits asked for: runtimeConfig.bandwidth (what a runtime passes from
 * the pod's annotations) in place of the configuration's own keys. (The
 * reference prefers the configuration's keys when both are given.)
 */
export function limitsOf(conf: BandwidthConf): Limits {
  const given = conf.runtimeConfig?.bandwidth;
  // An empty (or all-zero) entry asks for nothing: the configured limits stay.
  const rt = given && (given.ingressRate || given.ingressBurst || given.egressRate || given.egressBurst) ? given : undefined;
  const src = rt ?? conf;
  const prefix = rt ? 'runtimeConfig.bandwidth.' : '';
  const ingress = shapeOf(src.ingressRate, src.ingressBurst, `${prefix}ingress`);
  const egress = shapeOf(src.egressRate, src.egressBurst, `${prefix}egress`);
  return { ...(ingress ? { ingress } : {}), ...(egress ? { egress } : {}) };
}

function clock(): PschedClock {
  const text = readFileIfExists('/proc/net/psched');
  if (text === undefined) throw new CniError(ErrorCode.Internal, 'cannot read /proc/net/psched (the kernel\'s packet scheduler clock)');
  return parsePsched(text);
}

function requirePrev(ctx: Context<BandwidthConf>): Result {
  if (!ctx.prevResult) {
    throw new CniError(ErrorCode.InvalidConfig, 'bandwidth must be chained after a plugin that creates the interface (there is no prevResult)');
  }
  return ctx.prevResult;
}

/**
 * The host end of the container interface's veth pair: its peer index, read
 * inside the netns, names a link of this namespace that the prevResult lists
 * as a host interface (no sandbox).
 */
function hostEnd(ctx: Context<BandwidthConf>, prev: Result): Link {
  const { netns, ifname } = ctx.inv;
  const inside = Netlink.inNetns(netns, (nl) => nl.link(ifname));
  if (!inside) throw new CniError(ErrorCode.InvalidConfig, `there is no interface ${ifname} in ${netns} to shape`);
  const notVeth = () =>
    new CniError(ErrorCode.InvalidConfig, `interface ${ifname} in ${netns} has no veth peer in the host namespace: bandwidth must follow a plugin that makes a veth pair (bridge, ptp)`);
  if (inside.kind !== 'veth' || inside.linkIndex === undefined) throw notVeth();
  const peer = inside.linkIndex;
  const host = Netlink.with((nl) => nl.linkByIndex(peer));
  if (!host) throw notVeth();
  let listed = false;
  for (const i of prev.interfaces ?? []) if (!i.sandbox && i.name === host.name) listed = true;
  if (!listed) throw new CniError(ErrorCode.InvalidConfig, `the prevResult lists no host interface ${host.name} (the veth peer of ${ifname})`);
  return host;
}

/** What an ADD made and a failed ADD must take back: only what it created itself. */
interface Made {
  rootTbf?: number;
  ingressQdisc?: number;
  ifb?: number;
}

function takeBack(nl: Netlink, made: Made): void {
  // The ingress qdisc first: its filter redirects to the ifb.
  if (made.ingressQdisc !== undefined) nl.deleteQdisc(made.ingressQdisc, TC_H_INGRESS);
  if (made.rootTbf !== undefined) nl.deleteQdisc(made.rootTbf, TC_H_ROOT);
  if (made.ifb !== undefined) nl.deleteLink(made.ifb);
}

/** Shapes as the record says; `made` tells what exists when a step fails. */
function shape(nl: Netlink, host: Link, r: BandwidthRecord, c: PschedClock, made: Made): Interface | undefined {
  if (r.ingress) {
    nl.addTbf(host.index, tbfParams(r.ingress.rate, r.ingress.burst, c));
    made.rootTbf = host.index;
  }
  if (!r.egress) return undefined;
  // Up, with the host end's MTU and no transmit queue, as the reference makes it.
  nl.createIfb(r.egress.ifb, { mtu: host.mtu, txqlen: 0 });
  const ifb = nl.link(r.egress.ifb);
  if (!ifb) throw new CniError(ErrorCode.Internal, `ifb ${r.egress.ifb} vanished after it was created`);
  made.ifb = ifb.index;
  nl.addIngressQdisc(host.index);
  made.ingressQdisc = host.index;
  nl.addRedirectFilter(host.index, INGRESS_HANDLE, ifb.index);
  nl.addTbf(ifb.index, tbfParams(r.egress.rate, r.egress.burst, c));
  return { name: ifb.name, mac: ifb.mac };
}

/**
 * Removes what a record describes, whatever is left of it: the ifb (with its
 * qdisc), and the host end's tbf and ingress qdisc (with the filter) when the
 * host end is still the link the record names.
 */
function unshape(nl: Netlink, r: BandwidthRecord): void {
  const host = nl.link(r.host.name);
  if (host && host.index === r.host.index) {
    if (r.egress && nl.qdisc(host.index, TC_H_INGRESS)?.kind === 'ingress') nl.deleteQdisc(host.index, TC_H_INGRESS);
    const root = r.ingress ? nl.qdisc(host.index, TC_H_ROOT) : undefined;
    if (root?.kind === 'tbf' && root.handle === TBF_HANDLE) nl.deleteQdisc(host.index, TC_H_ROOT);
  }
  if (r.egress) {
    const ifb = nl.link(r.egress.ifb);
    if (ifb?.kind === 'ifb') nl.deleteLinkUnwaited(ifb.index);
  }
}

function add(ctx: Context<BandwidthConf>): Result {
  const prev = requirePrev(ctx);
  const limits = limitsOf(ctx.conf);
  if (!limits.ingress && !limits.egress) return prev;
  const host = hostEnd(ctx, prev);
  const c = clock();
  const key = keyOf(ctx);
  const records = store(ctx.conf);
  // A record of this attachment is left by an ADD that crashed or is repeated: undo it first.
  const stale = records.read(key);
  if (stale) Netlink.with((nl) => unshape(nl, stale));
  const record: BandwidthRecord = {
    network: key.network,
    containerId: key.containerId,
    ifname: key.ifname,
    host: { name: host.name, index: host.index },
    ...(limits.ingress ? { ingress: limits.ingress } : {}),
    ...(limits.egress ? { egress: { ...limits.egress, ifb: ifbName(key.network, key.containerId) } } : {}),
  };
  // Record first: a crash after the first qdisc leaves something DEL and GC can find.
  records.create(record);
  let ifb: Interface | undefined;
  const made: Made = {};
  try {
    ifb = Netlink.with((nl) => shape(nl, host, record, c, made));
  } catch (e) {
    let undone = true;
    try {
      Netlink.with((nl) => takeBack(nl, made));
    } catch {
      // The record stays, so that DEL or GC removes what is left.
      undone = false;
    }
    if (undone) records.remove(key);
    throw e;
  }
  // The reference lists the ifb as one more (host) interface.
  return ifb ? { ...prev, interfaces: [...(prev.interfaces ?? []), ifb] } : prev;
}

/**
 * Another interface of the same container on the same network whose record
 * holds the ifb of that name (the name does not include the ifname).
 */
function ifbHeldByOther(ctx: Context<BandwidthConf>, name: string): boolean {
  const records = store(ctx.conf);
  const prefix = `${ctx.inv.containerId}@`;
  for (const n of listDirIfExists(records.dir)) {
    if (!n.startsWith(prefix) || !n.endsWith('.json')) continue;
    const r = records.read({ containerId: ctx.inv.containerId, ifname: n.slice(prefix.length, -5) });
    if (r && r.ifname !== ctx.inv.ifname && r.egress?.ifb === name) return true;
  }
  return false;
}

/** Without a record (the data dir was lost, or the reference made it): what the names still tell. */
function delWithoutRecord(ctx: Context<BandwidthConf>): void {
  const name = ifbName(ctx.conf.name, ctx.inv.containerId);
  Netlink.with((nl) => {
    const ifb = nl.link(name);
    const ifbIndex = ifb?.kind === 'ifb' && !ifbHeldByOther(ctx, name) ? ifb.index : undefined;
    for (const i of ctx.prevResult?.interfaces ?? []) {
      if (i.sandbox) continue;
      const host = nl.link(i.name);
      if (host?.kind !== 'veth') continue;
      const root = nl.qdisc(host.index, TC_H_ROOT);
      if (root?.kind === 'tbf' && root.handle === TBF_HANDLE) nl.deleteQdisc(host.index, TC_H_ROOT);
      if (ifbIndex !== undefined && nl.filters(host.index).some((f) => f.redirectTo === ifbIndex)) nl.deleteQdisc(host.index, TC_H_INGRESS);
    }
    if (ifbIndex !== undefined) nl.deleteLinkUnwaited(ifbIndex);
  });
}

function del(ctx: Context<BandwidthConf>): void {
  const key = keyOf(ctx);
  const records = store(ctx.conf);
  const record = records.read(key);
  if (!record) return delWithoutRecord(ctx);
  Netlink.with((nl) => unshape(nl, record));
  records.remove(key);
}

function sameTbf(got: TbfParams | undefined, want: TbfParams): boolean {
  return got !== undefined && got.rate === want.rate && got.limit === want.limit && got.buffer === want.buffer;
}

function check(ctx: Context<BandwidthConf>): void {
  const prev = requirePrev(ctx);
  const limits = limitsOf(ctx.conf);
  if (!limits.ingress && !limits.egress) return;
  const failed = (what: string) => new CniError(ErrorCode.CheckFailed, what);
  const record = store(ctx.conf).read(keyOf(ctx));
  if (!record) throw failed(`no shaping is recorded for container ${ctx.inv.containerId} (${ctx.inv.ifname})`);
  const host = hostEnd(ctx, prev);
  if (host.index !== record.host.index) throw failed(`the host end of ${ctx.inv.ifname} is ${host.name}, not the ${record.host.name} that ADD shaped`);
  const c = clock();
  Netlink.with((nl) => {
    if (limits.ingress) {
      const want = tbfAsReported(tbfParams(limits.ingress.rate, limits.ingress.burst, c));
      const q = nl.qdisc(host.index, TC_H_ROOT);
      if (q?.kind !== 'tbf') throw failed(`${host.name} has no tbf qdisc (ingress shaping)`);
      if (!sameTbf(q.tbf, want)) throw failed(`the tbf qdisc of ${host.name} is not ingressRate ${limits.ingress.rate} / ingressBurst ${limits.ingress.burst}`);
    }
    if (limits.egress) {
      const name = ifbName(ctx.conf.name, ctx.inv.containerId);
      const ifb = nl.link(name);
      if (ifb?.kind !== 'ifb') throw failed(`the ifb device ${name} (egress shaping) is missing`);
      const want = tbfAsReported(tbfParams(limits.egress.rate, limits.egress.burst, c));
      const q = nl.qdisc(ifb.index, TC_H_ROOT);
      if (q?.kind !== 'tbf' || !sameTbf(q.tbf, want)) throw failed(`the tbf qdisc of ${name} is not egressRate ${limits.egress.rate} / egressBurst ${limits.egress.burst}`);
      if (nl.qdisc(host.index, TC_H_INGRESS)?.kind !== 'ingress' || !nl.filters(host.index).some((f) => f.redirectTo === ifb.index)) {
        throw failed(`nothing redirects what ${host.name} receives to ${name}`);
      }
    }
  });
}

function gc(ctx: Context<BandwidthConf>, valid: Attachment[]): void {
  const keep = new Set(valid.map((a) => `${a.containerID}\0${a.ifname}`));
  const records = store(ctx.conf);
  records.sweepEmpty();
  for (const r of records.list()) {
    if (keep.has(`${r.containerId}\0${r.ifname}`)) continue;
    Netlink.with((nl) => unshape(nl, r));
    records.remove(r);
  }
}

export const bandwidthPlugin: Plugin<BandwidthConf> = {
  name: PLUGIN,
  validate: validateBandwidthConf,
  keys: keysBandwidthConf,
  add,
  check,
  del,
  gc,
  status: () => undefined,
};
